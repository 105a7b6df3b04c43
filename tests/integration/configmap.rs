//! The policy and the sync config read from ConfigMaps in kube-system
//! (`--policy-configmap-name`, `--sync-configmap-name`; docs/policy.md, docs/sync.md) on the real
//! thing: a real kube-apiserver holds the ConfigMaps, the service reads and watches them with a
//! ServiceAccount token that has exactly the rights of
//! deploy/kubernetes/k8s-keystone-auth-configmaps.yaml (for this test's ConfigMap names), and
//! the real Keystone authenticates. Every test uses ConfigMap and ServiceAccount names of its
//! own: the test bed's apiserver is shared by tests running in parallel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::apiserver::{Bed, OwnApiserver, planned_webhook, token_kubeconfig};
use crate::support::*;
use crate::sync::{can_i, eventually, own_bed, tag};

const WAIT: Duration = Duration::from_secs(60);

/// The shipped ConfigMap rights for `configmaps`, bound to a new ServiceAccount
/// kube-system/`sa` of `bed` (without them when `grant` is false); a kubeconfig with its token,
/// written into `dir`.
async fn service_account(
    bed: &Bed,
    sa: &str,
    configmaps: &[&str],
    grant: bool,
    dir: &Path,
) -> PathBuf {
    use serde::Deserialize;
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/kubernetes/k8s-keystone-auth-configmaps.yaml"),
    )
    .unwrap();
    let mut docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs[0]["kind"], "Role");
    docs[0]["metadata"]["name"] = json!(sa);
    docs[0]["rules"][0]["resourceNames"] = json!(configmaps);
    docs[1]["metadata"]["name"] = json!(sa);
    docs[1]["roleRef"]["name"] = json!(sa);
    docs[1]["subjects"][0]["name"] = json!(sa);
    let mut items = vec![json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": sa, "namespace": "kube-system"}})];
    if grant {
        items.extend(docs);
    }
    bed.apply(&json!({"apiVersion": "v1", "kind": "List", "items": items}))
        .await;
    let token = bed
        .admin(&["create", "token", sa, "-n", "kube-system", "--duration=2h"])
        .await
        .trim()
        .to_string();
    record_issued(&token);
    let path = dir.join(format!("{sa}.kubeconfig"));
    token_kubeconfig(&bed.server, &bed.ca_file, sa, token, &path);
    path
}

/// Creates or replaces kube-system/`name` with `data`, as the admin.
async fn put_configmap(bed: &Bed, name: &str, data: Value) {
    bed.apply(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "kube-system"}, "data": data}))
        .await;
}

/// Waits until the metric reaches `want` (bounded).
async fn metric_reaches(svc: &Service, metric: &str, want: u64) {
    eventually(&format!("{metric} = {want}"), WAIT, async || {
        (svc.metric(metric).await >= want).then_some(())
    })
    .await;
    assert_eq!(svc.metric(metric).await, want, "{metric}");
}

async fn configmap_health(svc: &Service) -> (u16, Value) {
    let (code, body) = svc.get("/healthz/configmaps").await;
    (code, serde_json::from_str(&body).unwrap())
}

fn policy(rules: Value) -> Value {
    json!({ "policies": rules.to_string() })
}

const POLICY_OK: &str =
    "k8s_keystone_auth_policy_reloads_total{source=\"configmap\",result=\"success\"}";
const POLICY_FAILED: &str =
    "k8s_keystone_auth_policy_reloads_total{source=\"configmap\",result=\"failure\"}";

/// A kube-apiserver whose authentication and authorization webhook is the service; the
/// service's policy is a ConfigMap of that apiserver. `kubectl auth can-i` as alice is answered
/// by the apiserver from what the service says: the ConfigMap's policy; an update changes the
/// answer; an invalid update and a delete keep the last good policy (counted, logged, shown
/// by /healthz/configmaps) and authentication keeps working; a re-created ConfigMap applies.
#[tokio::test]
async fn the_policy_configmap_decides_real_access_reviews_and_follows_its_updates() {
    let _ks = KEYSTONE.read().await;
    let t = tag();
    let name = format!("kkcm-policy-{t}");
    let dir = tempfile::tempdir().unwrap();
    let (port, pki, webhook) = planned_webhook(dir.path());
    // No caching of the webhook's answers by the apiserver beyond 1 s, so that a policy
    // change shows in the next requests.
    let api = OwnApiserver::start(
        &webhook,
        &webhook,
        "v1",
        "--authentication-token-webhook-cache-ttl=0s --authorization-webhook-cache-authorized-ttl=1s --authorization-webhook-cache-unauthorized-ttl=1s",
    );
    let bed = own_bed(&api);
    let v1 = json!([{"users": {"roles": ["member"], "projects": ["team-a"]},
                     "resource_permissions": {"kkcm-ns/pods": ["get"]}}]);
    put_configmap(&bed, &name, policy(v1.clone())).await;
    let kubeconfig = service_account(&bed, &format!("kkcm-{t}"), &[&name], true, dir.path()).await;
    let svc = Service::start(Options {
        args: vec![
            "--policy-configmap-name".into(),
            name.clone(),
            "--kubeconfig".into(),
            kubeconfig.to_str().unwrap().into(),
        ],
        log_level: "info",
        listen: Some((port, pki)),
        ..Default::default()
    })
    .await;
    assert_eq!(svc.metric(POLICY_OK).await, 1, "the start-up load");
    assert_eq!(svc.metric("k8s_keystone_auth_policy_rules").await, 1);
    let (code, health) = configmap_health(&svc).await;
    assert_eq!(
        (code, health["configmaps"].as_str()),
        (200, Some("ok")),
        "{health}"
    );
    assert_eq!(
        health["watches"][0]["configmap"],
        format!("kube-system/{name}")
    );
    assert_eq!(health["watches"][0]["key"], "policies");

    let alice = Keystone::get().alice().await;
    assert!(can_i(&api, &alice, "get", "pods", "kkcm-ns").await);
    assert!(!can_i(&api, &alice, "list", "secrets", "kkcm-ns").await);

    // A valid update: in force at once (the reload is counted), and the apiserver's answers
    // follow.
    let v2 = json!([{"users": {"roles": ["member"], "projects": ["team-a"]},
                     "resource_permissions": {"kkcm-ns/secrets": ["list"]}}]);
    put_configmap(&bed, &name, policy(v2)).await;
    metric_reaches(&svc, POLICY_OK, 2).await;
    eventually("the new policy decides", WAIT, async || {
        (can_i(&api, &alice, "list", "secrets", "kkcm-ns").await
            && !can_i(&api, &alice, "get", "pods", "kkcm-ns").await)
            .then_some(())
    })
    .await;

    // An invalid update: rejected, counted, the policy in force stays.
    put_configmap(&bed, &name, json!({"policies": "[{\"users\": "})).await;
    metric_reaches(&svc, POLICY_FAILED, 1).await;
    assert_eq!(svc.metric(POLICY_OK).await, 2);
    let (code, health) = configmap_health(&svc).await;
    assert_eq!(code, 503, "{health}");
    assert!(
        health["watches"][0]["rejected"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "invalid policy in ConfigMap kube-system/{name}, data key `policies`"
            )),
        "{health}"
    );
    assert!(can_i(&api, &alice, "list", "secrets", "kkcm-ns").await);
    assert!(!can_i(&api, &alice, "get", "pods", "kkcm-ns").await);
    svc.wait_log("policy ConfigMap update rejected; keeping the policy in force")
        .await;
    // The key missing: the same.
    put_configmap(&bed, &name, json!({"policy.json": "[]"})).await;
    metric_reaches(&svc, POLICY_FAILED, 2).await;
    svc.wait_log(&format!(
        "ConfigMap kube-system/{name} has no data key `policies` (its keys: policy.json)"
    ))
    .await;
    assert!(can_i(&api, &alice, "list", "secrets", "kkcm-ns").await);

    // Deleted: the same (Go would empty its policy).
    bed.admin(&["delete", "configmap", "-n", "kube-system", &name])
        .await;
    metric_reaches(&svc, POLICY_FAILED, 3).await;
    svc.wait_log("policy ConfigMap deleted; keeping the policy in force")
        .await;
    let (code, health) = configmap_health(&svc).await;
    assert_eq!(code, 503);
    assert_eq!(
        health["watches"][0]["rejected"],
        format!("ConfigMap kube-system/{name} was deleted")
    );
    assert!(can_i(&api, &alice, "list", "secrets", "kkcm-ns").await);
    // Authentication is not affected.
    assert_eq!(svc.token_review("v1", &alice).await["authenticated"], true);

    // Created again: in force, healthy again.
    put_configmap(&bed, &name, policy(v1)).await;
    metric_reaches(&svc, POLICY_OK, 3).await;
    eventually("the re-created policy decides", WAIT, async || {
        (can_i(&api, &alice, "get", "pods", "kkcm-ns").await
            && !can_i(&api, &alice, "list", "secrets", "kkcm-ns").await)
            .then_some(())
    })
    .await;
    let (code, health) = configmap_health(&svc).await;
    assert_eq!(code, 200, "{health}");
    assert!(
        !svc.log_text().await.contains("ConfigMap watch failed"),
        "the watch never broke:\n{}",
        svc.log_now()
    );
}

/// The sync config from a ConfigMap of the test bed's apiserver: its role mappings change the
/// groups (and the user name) of the TokenReview answer as soon as it is updated; an invalid
/// update keeps the mappings in force and is counted.
#[tokio::test]
async fn the_sync_configmap_role_mappings_follow_its_updates() {
    let _ks = KEYSTONE.read().await;
    let bed = Bed::get("v1");
    let t = tag();
    let name = format!("kkcm-sync-{t}");
    let dir = tempfile::tempdir().unwrap();
    let mapping = |group: &str| json!({"syncConfig": format!("role-mappings:\n  - keystone-role: member\n    groups: [\"{group}\"]\n")});
    put_configmap(&bed, &name, mapping(&format!("first-{t}"))).await;
    let kubeconfig = service_account(&bed, &format!("kkcm-{t}"), &[&name], true, dir.path()).await;
    let svc = Service::start(Options {
        args: vec![
            "--sync-configmap-name".into(),
            name.clone(),
            "--kubeconfig".into(),
            kubeconfig.to_str().unwrap().into(),
        ],
        log_level: "info",
        ..Default::default()
    })
    .await;
    let ok = "k8s_keystone_auth_sync_config_reloads_total{source=\"configmap\",result=\"success\"}";
    let failed =
        "k8s_keystone_auth_sync_config_reloads_total{source=\"configmap\",result=\"failure\"}";
    assert_eq!(svc.metric(ok).await, 1);
    let alice = Keystone::get().alice().await;
    let groups = async || -> Vec<String> {
        let status = svc.token_review("v1", &alice).await;
        assert_eq!(status["authenticated"], true, "{status}");
        status["user"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect()
    };
    assert!(groups().await.contains(&format!("first-{t}")));
    // No data-types-to-sync: the namespace sync is off.
    let (_, sync) = svc.get("/healthz/sync").await;
    assert_eq!(serde_json::from_str::<Value>(&sync).unwrap()["sync"], "off");

    put_configmap(&bed, &name, mapping(&format!("second-{t}"))).await;
    metric_reaches(&svc, ok, 2).await;
    let now = groups().await;
    assert!(now.contains(&format!("second-{t}")), "{now:?}");
    assert!(!now.contains(&format!("first-{t}")), "{now:?}");

    // Invalid (a data type Go does not know): rejected naming the ConfigMap, the mappings stay.
    put_configmap(
        &bed,
        &name,
        json!({"syncConfig": "data-types-to-sync: [flavors]\n"}),
    )
    .await;
    metric_reaches(&svc, failed, 1).await;
    assert!(groups().await.contains(&format!("second-{t}")));
    svc.wait_log(&format!(
        "invalid sync config in ConfigMap kube-system/{name}, data key `syncConfig`"
    ))
    .await;
    svc.wait_log("sync config ConfigMap update rejected").await;
    let (code, _) = configmap_health(&svc).await;
    assert_eq!(code, 503);
}

/// Start-up fails, naming the flag, the ConfigMap and the key, when the ConfigMap does not
/// exist, lacks its key, does not parse, or the service may not read it.
#[tokio::test]
async fn start_up_errors_name_the_configmap_and_the_key() {
    let bed = Bed::get("v1");
    let t = tag();
    let dir = tempfile::tempdir().unwrap();
    let (missing, no_key, invalid, sync_invalid) = (
        format!("kkcm-missing-{t}"),
        format!("kkcm-nokey-{t}"),
        format!("kkcm-invalid-{t}"),
        format!("kkcm-syncinvalid-{t}"),
    );
    put_configmap(&bed, &no_key, json!({"policy.json": "[]"})).await;
    put_configmap(&bed, &invalid, json!({"policies": "{\"not\": \"a list\"}"})).await;
    put_configmap(
        &bed,
        &sync_invalid,
        json!({"syncConfig": "namespace-format: \"%n\"\n"}),
    )
    .await;
    let granted = service_account(
        &bed,
        &format!("kkcm-a-{t}"),
        &[&missing, &no_key, &invalid, &sync_invalid],
        true,
        dir.path(),
    )
    .await;
    let ungranted = service_account(&bed, &format!("kkcm-b-{t}"), &[], false, dir.path()).await;
    let start =
        async |args: &[&str], kubeconfig: &Path, check_only: bool| -> (Option<i32>, String) {
            let mut cmd = tokio::process::Command::new(crate::bins::bin("k8s-keystone-auth"));
            cmd.args([
                "--keystone-url",
                "http://127.0.0.1:9",
                "--insecure-http",
                "--listen",
                &format!("127.0.0.1:{}", free_port()),
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
            ])
            .args(args)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KEYSTONE_POLICY_CONFIGMAP_NAME")
            .env_remove("KEYSTONE_SYNC_CONFIGMAP_NAME")
            .kill_on_drop(true);
            if check_only {
                cmd.arg("--check-config");
            }
            let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
                .await
                .expect("start-up did not fail within 30 s")
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
    // The real start-up (no --check-config) fails at once.
    let (code, err) = start(&["--policy-configmap-name", &missing], &granted, false).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "--policy-configmap-name: ConfigMap kube-system/{missing} does not exist (the policy goes under its data key `policies`)"
        )),
        "{err}"
    );
    for (args, want) in [
        (
            ["--policy-configmap-name", no_key.as_str()],
            format!(
                "--policy-configmap-name {no_key}: ConfigMap kube-system/{no_key} has no data key `policies` (its keys: policy.json)"
            ),
        ),
        (
            ["--policy-configmap-name", invalid.as_str()],
            format!(
                "--policy-configmap-name {invalid}: invalid policy in ConfigMap kube-system/{invalid}, data key `policies`"
            ),
        ),
        (
            ["--sync-configmap-name", sync_invalid.as_str()],
            format!(
                "--sync-configmap-name {sync_invalid}: invalid sync config in ConfigMap kube-system/{sync_invalid}, data key `syncConfig`"
            ),
        ),
    ] {
        let (code, err) = start(&args, &granted, true).await;
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains(&want), "{args:?}:\n{err}\nwant: {want}");
    }
    // No right to read it: the 403, and which rights are missing.
    let (code, err) = start(&["--policy-configmap-name", &invalid], &ungranted, false).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "--policy-configmap-name: cannot read ConfigMap kube-system/{invalid}: the service's Kubernetes identity"
        )) && err.contains(&format!(
            "needs get, list and watch on configmaps named {invalid} in kube-system"
        )) && err.contains("forbidden (HTTP 403)"),
        "{err}"
    );
    // A ConfigMap that is fine passes --check-config.
    put_configmap(&bed, &missing, policy(json!([]))).await;
    let (code, err) = start(&["--policy-configmap-name", &missing], &granted, true).await;
    assert_eq!(code, Some(0), "{err}");
}
