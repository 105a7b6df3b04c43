//! deploy/kubernetes: the manifests parse, hold what the docs promise (kube-system, host
//! network, control-plane nodes, TLS from a Secret, the policy from a ConfigMap mounted as a
//! file, probes on /healthz and /readyz), the sync's and the ConfigMap watch's rights are what
//! the docs say, and their arguments are flags the service accepts
//! with a valid configuration, and the real kube-apiserver of the test bed accepts them
//! (`kubectl apply --dry-run=server -f deploy/kubernetes/`).

use std::path::Path;

use clap::Parser;
use serde::Deserialize;
use serde_json::Value;

fn docs(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy")
            .join(file),
    )
    .unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

#[test]
fn manifests_run_the_service_on_every_control_plane_node() {
    let docs = docs("kubernetes/k8s-keystone-auth.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget"
        ]
    );
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "kube-system", "{}", d["kind"]);
    }
    let dep = &docs[2];
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert!(
        pod["nodeSelector"]
            .get("node-role.kubernetes.io/control-plane")
            .is_some()
    );
    let tolerated: Vec<&str> = pod["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert!(tolerated.contains(&"node-role.kubernetes.io/control-plane"));
    assert_eq!(
        dep["spec"]["selector"]["matchLabels"],
        dep["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(
        docs[3]["spec"]["selector"],
        dep["spec"]["selector"]["matchLabels"]
    );
    let c = &pod["containers"][0];
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"], path);
        assert_eq!(c[probe]["httpGet"]["scheme"], "HTTPS");
        assert_eq!(c[probe]["httpGet"]["port"], 8443);
    }
    // The arguments are the service's flags and make a valid configuration.
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let parsed = kk_webhook::config::cli::ServerArgs::try_parse_from(
        std::iter::once("k8s-keystone-auth".to_string()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let config = kk_webhook::config::load(&parsed, &|_| false).unwrap();
    assert_eq!(config.listen.port(), 8443);
    // Every file the arguments name is in a mounted volume; the Secret and ConfigMap exist.
    let mounts: Vec<(&str, &str)> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["mountPath"].as_str().unwrap(),
            )
        })
        .collect();
    let volumes = pod["volumes"].as_array().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap();
    for flag in [
        "--tls-cert-file=",
        "--tls-private-key-file=",
        "--keystone-policy-file=",
    ] {
        let file = args.iter().find_map(|a| a.strip_prefix(flag)).unwrap();
        let (vol, dir) = mounts
            .iter()
            .find(|(_, dir)| file.starts_with(&format!("{dir}/")))
            .unwrap_or_else(|| panic!("{file} is not mounted"));
        let key = &file[dir.len() + 1..];
        let v = volume(vol);
        if let Some(cm) = v.get("configMap") {
            let map = docs
                .iter()
                .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == cm["name"])
                .unwrap();
            let policy = map["data"][key].as_str().unwrap();
            kk_policy::Policy::parse(policy).unwrap();
        } else {
            assert_eq!(v["secret"]["secretName"], "keystone-auth-certs");
            assert!(["tls.crt", "tls.key"].contains(&key));
        }
    }
}

/// The sync's rights (deploy/kubernetes/k8s-keystone-auth-sync.yaml): what docs/sync.md says,
/// for the ServiceAccount of the Deployment; never a namespace delete.
#[test]
fn manifests_give_the_sync_its_rights_and_no_more() {
    let docs = docs("kubernetes/k8s-keystone-auth-sync.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ClusterRole", "ClusterRoleBinding"]);
    let rules = docs[0]["rules"].as_array().unwrap();
    let verbs = |group: &str, resource: &str| -> Vec<String> {
        rules
            .iter()
            .filter(|r| r["apiGroups"][0] == group && r["resources"][0] == resource)
            .flat_map(|r| r["verbs"].as_array().unwrap().iter())
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        verbs("", "namespaces"),
        ["get", "list", "create", "update", "patch"]
    );
    assert_eq!(
        verbs("rbac.authorization.k8s.io", "rolebindings"),
        ["get", "list", "create", "update", "patch", "delete"]
    );
    assert_eq!(
        verbs("rbac.authorization.k8s.io", "clusterroles"),
        ["get", "list", "bind"]
    );
    let bind = rules.iter().find(|r| r["verbs"][0] == "bind").unwrap();
    assert!(
        !bind["resourceNames"].as_array().unwrap().is_empty(),
        "bind only by name"
    );
    assert_eq!(docs[1]["roleRef"]["name"], docs[0]["metadata"]["name"]);
    let main = self::docs("kubernetes/k8s-keystone-auth.yaml");
    let sa = &main[0];
    assert_eq!(sa["kind"], "ServiceAccount");
    assert_eq!(
        docs[1]["subjects"][0],
        serde_json::json!({"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"]})
    );
}

/// The ConfigMap rights (deploy/kubernetes/k8s-keystone-auth-configmaps.yaml): get, list and
/// watch on ConfigMaps by name in kube-system only, for the ServiceAccount of the Deployment.
#[test]
fn manifests_give_the_configmap_watch_its_rights_and_no_more() {
    let docs = docs("kubernetes/k8s-keystone-auth-configmaps.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Role", "RoleBinding"]);
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "kube-system", "{}", d["kind"]);
    }
    let rules = docs[0]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["apiGroups"], serde_json::json!([""]));
    assert_eq!(rules[0]["resources"], serde_json::json!(["configmaps"]));
    assert_eq!(
        rules[0]["verbs"],
        serde_json::json!(["get", "list", "watch"])
    );
    let names = rules[0]["resourceNames"].as_array().unwrap();
    assert!(!names.is_empty(), "ConfigMaps only by name");
    assert_eq!(docs[1]["roleRef"]["kind"], "Role");
    assert_eq!(docs[1]["roleRef"]["name"], docs[0]["metadata"]["name"]);
    let main = self::docs("kubernetes/k8s-keystone-auth.yaml");
    let sa = &main[0];
    assert_eq!(
        docs[1]["subjects"][0],
        serde_json::json!({"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"]})
    );
    // The policy ConfigMap of the main manifest is one of the names.
    let policy_map = main.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert!(names.contains(&policy_map["metadata"]["name"]));
}

#[test]
fn manifests_webhook_kubeconfig_pins_a_ca() {
    let docs = docs("webhook-kubeconfig.yaml");
    assert_eq!(docs.len(), 1);
    let k = &docs[0];
    assert_eq!(k["kind"], "Config");
    assert_eq!(k["current-context"], "webhook");
    let cluster = &k["clusters"][0]["cluster"];
    assert!(
        cluster["server"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:8443/")
    );
    assert!(cluster.get("certificate-authority").is_some());
    assert!(cluster.get("insecure-skip-tls-verify").is_none());
}

/// `kubectl apply --dry-run=server -f deploy/kubernetes/` against the real kube-apiserver of the
/// test bed: every object is accepted by the server's validation and admission.
#[tokio::test]
async fn manifests_are_accepted_by_a_real_kube_apiserver() {
    let bed = crate::apiserver::Bed::get("v1");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let out = bed
        .admin(&["apply", "--dry-run=server", "-f", dir.to_str().unwrap()])
        .await;
    for want in [
        "serviceaccount/k8s-keystone-auth created (server dry run)",
        "configmap/k8s-auth-policy created (server dry run)",
        "deployment.apps/k8s-keystone-auth created (server dry run)",
        "service/k8s-keystone-auth-service created (server dry run)",
        "poddisruptionbudget.policy/k8s-keystone-auth created (server dry run)",
        "clusterrole.rbac.authorization.k8s.io/k8s-keystone-auth-sync created (server dry run)",
        "clusterrolebinding.rbac.authorization.k8s.io/k8s-keystone-auth-sync created (server dry run)",
        "role.rbac.authorization.k8s.io/k8s-keystone-auth-configmaps created (server dry run)",
        "rolebinding.rbac.authorization.k8s.io/k8s-keystone-auth-configmaps created (server dry run)",
    ] {
        assert!(out.contains(want), "{want} missing in:\n{out}");
    }
}
