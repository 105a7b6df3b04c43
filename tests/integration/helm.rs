//! Multi-tenancy with **real Helm** (helm.sh/helm/v3, built from its Go module by tests/helm/;
//! `tests/run` exports `HELM_BIN`), the real Keystone and a real kube-apiserver of these tests'
//! own whose authentication and authorization webhook is the service under test, run as an
//! operator runs it for a multi-tenant cluster (docs/multi-tenancy.md): the example policy and
//! sync files of deploy/rbac/k8s-keystone-auth/, a service identity, the namespace sync on with
//! the rights of deploy/kubernetes/k8s-keystone-auth-sync.yaml (a ServiceAccount token), and the
//! tenant RBAC bundle of deploy/rbac/ applied by the admin.
//!
//! The namespaces and RoleBindings are the sync's: none exists before the tenants' first kubectl
//! requests, which make them. Then Keystone users, bound in their project's namespace only,
//! install, upgrade, roll back, list and uninstall a chart this file writes, and are refused in
//! kube-system and in another project's namespace; a role taken away in Keystone loses its
//! binding at the next full resync, and Helm its access.
//!
//! The cluster has no scheduler and no kubelet, and its kube-controller-manager runs only the
//! ClusterRole aggregation (the bundle's `reader`, `member` and `k8s-admin` are aggregated
//! roles): the chart's pods never exist, and nothing here waits for them (`helm install` without
//! `--wait` needs only the API). One cluster serves all the scenarios, which run concurrently in
//! one test: a cluster in a `static` would never be stopped (statics are not dropped), and its
//! service's resync would keep calling Keystone while the tests that count Keystone's requests
//! run.
//!
//! Also here: the bundle itself (nested tenant roles, nothing cluster-wide) and its example
//! policy and sync files through `k8s-keystone-auth --check-config`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kk_sync::plan::{
    ANN_PROJECT_ID, ANN_PROJECT_NAME, MANAGED_BY, MANAGED_BY_LABEL, MANAGED_SELECTOR,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::apiserver::{Bed, OwnApiserver, planned_webhook};
use crate::sandbox::*;
use crate::support::*;
use crate::sync::{eventually, own_bed, service_account_kubeconfig, service_identity_toml, tag};

const POLICY_FILE: &str = "deploy/rbac/k8s-keystone-auth/policy.json";
const SYNC_FILE: &str = "deploy/rbac/k8s-keystone-auth/sync-config.yaml";
/// The service's full resync interval here (`[sync] resync_interval`; 10 min by default).
const RESYNC_INTERVAL: &str = "2s";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml_docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo(path)).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

fn helm_bin() -> String {
    std::env::var("HELM_BIN").unwrap_or_else(|_| {
        panic!("HELM_BIN is not set: run the Helm tests with tests/run, which builds Helm (tests/helm/build.sh)")
    })
}

/// The namespace the sync makes for a project, by the example sync file's `namespace-format`
/// (`%i` id, `%n` name, `%d` domain id, as in Go; the names here need no DNS-1123 repair).
fn namespace_of(project_id: &str, name: &str, domain_id: &str) -> String {
    let sync: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo(SYNC_FILE)).unwrap()).unwrap();
    sync["namespace-format"]
        .as_str()
        .unwrap()
        .replace("%i", project_id)
        .replace("%n", name)
        .replace("%d", domain_id)
}

/// The ClusterRoles deploy/kubernetes/k8s-keystone-auth-sync.yaml lets the service `bind`.
fn bindable_cluster_roles() -> Vec<String> {
    let docs = yaml_docs("deploy/kubernetes/k8s-keystone-auth-sync.yaml");
    let rules = docs[0]["rules"].as_array().unwrap();
    let bind = rules
        .iter()
        .find(|r| r["verbs"] == json!(["bind"]))
        .unwrap();
    bind["resourceNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

/// The cluster of the Helm tests (see the module's comment), with the namespaces of team-a and
/// team-b made by the sync on alice's and bea's first kubectl requests. Dropped in field order:
/// the service first, then the kube-apiserver.
struct Tenants {
    svc: Service,
    _api: OwnApiserver,
    bed: Bed,
    team_a: String,
    team_b: String,
    _dir: tempfile::TempDir,
}

impl Tenants {
    async fn start() -> Tenants {
        let started = Instant::now();
        let ks = Keystone::get();
        let domain = env("KS_DOMAIN_ID");
        // team-b: a second project of the domain k8s, with its member bea.
        let team_b_id = project_id(&ks, "team-b").await;
        let bea = tenant_user(&ks, "bea", "member", ("team-b", &team_b_id)).await;

        // The kube-apiserver, whose webhooks are the service (started below on the port and
        // with the CA chosen now).
        let dir = tempfile::tempdir().unwrap();
        let (port, pki, webhook) = planned_webhook(dir.path());
        let api = OwnApiserver::start_with_controllers(
            &webhook,
            &webhook,
            "v1",
            "",
            "clusterrole-aggregation",
        );
        let bed = own_bed(&api);
        bed.admin(&["apply", "-f", repo("deploy/rbac").to_str().unwrap()])
            .await;
        // The aliases get their rules from kube-controller-manager's aggregation.
        for role in ["reader", "member", "k8s-admin"] {
            eventually(
                &format!("ClusterRole {role} filled by aggregation"),
                Duration::from_secs(30),
                async || {
                    let cr: Value = serde_json::from_str(
                        &bed.admin(&["get", "clusterrole", role, "-o", "json"]).await,
                    )
                    .unwrap();
                    cr["rules"]
                        .as_array()
                        .is_some_and(|r| !r.is_empty())
                        .then_some(())
                },
            )
            .await;
        }
        let kubeconfig =
            service_account_kubeconfig(&api, &bindable_cluster_roles(), dir.path()).await;
        let svc = Service::start(Options {
            listen: Some((port, pki)),
            log_level: "info",
            args: vec![
                "--keystone-policy-file".into(),
                repo(POLICY_FILE).display().to_string(),
                "--sync-config-file".into(),
                repo(SYNC_FILE).display().to_string(),
            ],
            toml: format!(
                "{}[sync]\nresync_interval = \"{RESYNC_INTERVAL}\"\n[kubernetes]\nkubeconfig = \"{}\"\n",
                service_identity_toml(),
                kubeconfig.display()
            ),
            ..Default::default()
        })
        .await;

        // Nothing of the sync's before the tenants' first requests: the full resync at start-up
        // syncs only the projects of its own namespaces and of reviews, and there are none yet.
        let team_a = namespace_of(&env("KS_PROJECT_ID"), "team-a", &domain);
        let team_b = namespace_of(&team_b_id, "team-b", &domain);
        let managed = bed
            .admin(&[
                "get",
                "namespaces,rolebindings",
                "-A",
                "-l",
                MANAGED_SELECTOR,
                "-o",
                "name",
            ])
            .await;
        assert_eq!(managed.trim(), "", "the sync made these before any request");
        for ns in [&team_a, &team_b] {
            assert!(
                admin_get(&bed, "namespace", ns, "default").await.is_none(),
                "{ns} exists before any request"
            );
        }

        // Each tenant's first kubectl request: the sync makes the namespace and the bindings.
        let alice_sb = Sandbox::new();
        let alice = bed
            .keystone_kubeconfig(
                &alice_sb,
                &env("KS_AC_KUBECTL_ID"),
                &env("KS_AC_KUBECTL_SECRET"),
            )
            .await;
        let bea_sb = Sandbox::new();
        let bea_kc = bed
            .keystone_kubeconfig(&bea_sb, &bea.ac_id, &bea.ac_secret)
            .await;
        let alice_id = env("KS_ALICE_ID");
        let team_a_id = env("KS_PROJECT_ID");
        for (sb, kc, user, uid, (project, project_name), ns) in [
            (
                &alice_sb,
                &alice,
                "alice",
                alice_id.as_str(),
                (&team_a_id, "team-a"),
                &team_a,
            ),
            (
                &bea_sb,
                &bea_kc,
                "bea",
                bea.id.as_str(),
                (&team_b_id, "team-b"),
                &team_b,
            ),
        ] {
            let first = Instant::now();
            assert_eq!(sb.whoami(kc).await["username"], user);
            let namespace = eventually(
                &format!("the namespace {ns}"),
                Duration::from_secs(30),
                async || admin_get(&bed, "namespace", ns, "default").await,
            )
            .await;
            record_figure(&format!(
                "helm tests: {user}'s namespace existed {:.1} s after her first kubectl request",
                first.elapsed().as_secs_f64()
            ));
            let meta = &namespace["metadata"];
            assert_eq!(meta["labels"][MANAGED_BY_LABEL], MANAGED_BY, "{namespace}");
            assert_eq!(meta["annotations"][ANN_PROJECT_ID], project.as_str());
            assert_eq!(meta["annotations"][ANN_PROJECT_NAME], project_name);
            // `member` and the `reader` it implies in Keystone.
            for role in ["member", "reader"] {
                synced_binding(&bed, ns, uid, user, role).await;
            }
        }
        record_figure(&format!(
            "helm tests: own kube-apiserver, the service with the sync, deploy/rbac and the namespaces of two tenants ready in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Tenants {
            svc,
            _api: api,
            bed,
            team_a,
            team_b,
            _dir: dir,
        }
    }
}

/// Waits (bounded) for the RoleBinding the sync makes for a user's Keystone role, as the Go
/// reference names it: `<keystone user id>_<role>`, for the user name Kubernetes sees, to the
/// ClusterRole named like the role (deploy/rbac/keystone-roles.yaml), labelled as the service's.
async fn synced_binding(bed: &Bed, ns: &str, user_id: &str, username: &str, role: &str) {
    let name = format!("{user_id}_{role}");
    let rb = eventually(
        &format!("the RoleBinding {name} in {ns}"),
        Duration::from_secs(30),
        async || admin_get(bed, "rolebinding", &name, ns).await,
    )
    .await;
    assert_eq!(
        rb["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY,
        "{rb}"
    );
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}),
        "{rb}"
    );
    assert_eq!(
        rb["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": username}]),
        "{rb}"
    );
}

/// The RoleBindings of the sync in `ns` whose names start with `prefix`.
async fn synced_bindings(bed: &Bed, ns: &str, prefix: &str) -> Vec<String> {
    bed.admin(&[
        "get",
        "rolebindings",
        "-n",
        ns,
        "-l",
        MANAGED_SELECTOR,
        "-o",
        "name",
    ])
    .await
    .lines()
    .filter_map(|l| l.strip_prefix("rolebinding.rbac.authorization.k8s.io/"))
    .filter(|n| n.starts_with(prefix))
    .map(str::to_string)
    .collect()
}

/// A small chart on disk: a Deployment, a Service, a ConfigMap and a Secret (and, with `rbac`,
/// a ServiceAccount with a Role and a RoleBinding; with `grant` a RoleBinding of the
/// ServiceAccount to that ClusterRole too).
fn write_chart(dir: &Path, name: &str, rbac: bool, grant: Option<&str>) -> PathBuf {
    let chart = dir.join(name);
    let t = chart.join("templates");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\nappVersion: \"1.0\"\n"),
    )
    .unwrap();
    std::fs::write(
        chart.join("values.yaml"),
        "message: hello\nreplicas: 1\npassword: s3cr3t-value\n",
    )
    .unwrap();
    let labels = "  labels:\n    app.kubernetes.io/instance: {{ .Release.Name }}\n";
    std::fs::write(
        t.join("configmap.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-config\n{labels}data:\n  message: {{{{ .Values.message | quote }}}}\n"),
    )
    .unwrap();
    std::fs::write(
        t.join("secret.yaml"),
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{{{ .Release.Name }}}}-secret\n{labels}type: Opaque\nstringData:\n  password: {{{{ .Values.password | quote }}}}\n"),
    )
    .unwrap();
    std::fs::write(
        t.join("service.yaml"),
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {{{{ .Release.Name }}}}\n{labels}spec:\n  selector:\n    app.kubernetes.io/instance: {{{{ .Release.Name }}}}\n  ports:\n    - port: 80\n      targetPort: 8080\n"),
    )
    .unwrap();
    std::fs::write(
        t.join("deployment.yaml"),
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{{{ .Release.Name }}}}\n{labels}spec:\n  replicas: {{{{ .Values.replicas }}}}\n  selector:\n    matchLabels:\n      app.kubernetes.io/instance: {{{{ .Release.Name }}}}\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/instance: {{{{ .Release.Name }}}}\n      annotations:\n        message: {{{{ .Values.message | quote }}}}\n    spec:\n      containers:\n        - name: web\n          image: registry.k8s.io/pause:3.10\n          ports:\n            - containerPort: 8080\n"),
    )
    .unwrap();
    if rbac {
        std::fs::write(
            t.join("rbac.yaml"),
            format!("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {{{{ .Release.Name }}}}\n{labels}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {{{{ .Release.Name }}}}-config-reader\n{labels}rules:\n  - apiGroups: [\"\"]\n    resources: [configmaps]\n    verbs: [get, list, watch]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {{{{ .Release.Name }}}}-config-reader\n{labels}roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {{{{ .Release.Name }}}}-config-reader\nsubjects:\n  - kind: ServiceAccount\n    name: {{{{ .Release.Name }}}}\n"),
        )
        .unwrap();
    }
    if let Some(cluster_role) = grant {
        std::fs::write(
            t.join("grant.yaml"),
            format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {{{{ .Release.Name }}}}-{cluster_role}\n{labels}roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: {cluster_role}\nsubjects:\n  - kind: ServiceAccount\n    name: {{{{ .Release.Name }}}}\n"),
        )
        .unwrap();
    }
    chart
}

/// Real Helm with the kubeconfig `kc`, in the sandbox (its own HOME and Helm folders).
async fn helm(sb: &Sandbox, kc: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--kubeconfig", kc.to_str().unwrap()];
    all.extend_from_slice(args);
    sb.run_program(&helm_bin(), &all, &[]).await
}

fn ok(run: &Run, what: &str) {
    assert_eq!(run.code, Some(0), "{what}: {}\n{}", run.stderr, run.stdout);
}

/// A Helm refusal by RBAC: non-zero, and Helm passes the apiserver's Forbidden on, naming
/// the user and the namespace.
fn forbidden(run: &Run, user: &str, ns: &str, what: &str) {
    assert_ne!(run.code, Some(0), "{what} succeeded: {}", run.stdout);
    // "User" in RBAC's refusals, "user" in its escalation refusals.
    assert!(
        run.stderr.contains("forbidden")
            && run
                .stderr
                .to_lowercase()
                .contains(&format!("user \"{user}\""))
            && run.stderr.contains(ns),
        "{what}: {}",
        run.stderr
    );
}

/// The admin removes a release left over by an earlier run with a kept bed (KEEP_BED=1).
async fn admin_uninstall(bed: &Bed, release: &str, ns: &str) {
    let sb = Sandbox::new();
    let run = helm(
        &sb,
        &bed.admin,
        &["uninstall", release, "-n", ns, "--ignore-not-found"],
    )
    .await;
    ok(&run, "admin helm uninstall");
}

/// `kubectl get` as the admin, as JSON; `None` when the object does not exist.
async fn admin_get(bed: &Bed, kind: &str, name: &str, ns: &str) -> Option<Value> {
    let out = bed
        .admin(&[
            "get",
            kind,
            name,
            "-n",
            ns,
            "--ignore-not-found",
            "-o",
            "json",
        ])
        .await;
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).unwrap())
}

/// The names of the release's objects (by its instance label) and of its release Secrets, as
/// the admin sees them.
async fn admin_release_objects(bed: &Bed, release: &str, ns: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for selector in [
        format!("app.kubernetes.io/instance={release}"),
        format!("owner=helm,name={release}"),
    ] {
        let out = bed
            .admin(&[
                "get",
                "deployments,services,configmaps,secrets,serviceaccounts,roles,rolebindings",
                "-n",
                ns,
                "-l",
                &selector,
                "-o",
                "name",
            ])
            .await;
        names.extend(out.lines().map(str::to_string));
    }
    names
}

async fn can_i(sb: &Sandbox, kc: &Path, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let run = sb.as_user(kc, &all).await;
    match (run.code, run.stdout.split_whitespace().next().unwrap_or("")) {
        (Some(0), "yes") => true,
        (Some(1), "no") => false,
        _ => panic!("kubectl auth can-i {args:?}: {run:?}"),
    }
}

/// Waits until RBAC grants what a new RoleBinding gives (the apiserver's informers take a moment).
async fn wait_can_i(sb: &Sandbox, kc: &Path, args: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !can_i(sb, kc, args).await {
        assert!(
            Instant::now() < deadline,
            "can-i {args:?} not granted within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A Keystone call as the admin, retried on SQLite's "database is locked" 500s.
async fn ks_admin(
    ks: &Keystone,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let admin = ks.admin().await;
    let mut answer = (0, Value::Null);
    for _ in 0..10 {
        answer = ks.call(method.clone(), path, &admin, body.clone()).await;
        if answer.0 < 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    answer
}

/// The id of the Keystone object `name` of `collection` (`roles`, `projects` of the domain k8s,
/// `users` of the domain k8s), made from `body` when missing.
async fn find_or_create(ks: &Keystone, collection: &str, name: &str, body: Value) -> String {
    use reqwest::Method;
    let key = collection.trim_end_matches('s');
    let mut query = format!("/{collection}?name={name}");
    if collection != "roles" {
        query.push_str(&format!("&domain_id={}", env("KS_DOMAIN_ID")));
    }
    let find = async || {
        let (s, found) = ks_admin(ks, Method::GET, &query, None).await;
        assert_eq!(s, 200, "{found}");
        found[collection][0]["id"].as_str().map(str::to_string)
    };
    if let Some(id) = find().await {
        return id;
    }
    let (s, made) = ks_admin(
        ks,
        Method::POST,
        &format!("/{collection}"),
        Some(json!({ key: body })),
    )
    .await;
    if s == 409 {
        // Made by a try that got SQLite's "database is locked" 500 after the row was written.
        return find().await.unwrap();
    }
    assert_eq!(s, 201, "create {key} {name}: {made}");
    made[key]["id"].as_str().unwrap().to_string()
}

async fn role_id(ks: &Keystone, role: &str) -> String {
    find_or_create(ks, "roles", role, json!({"name": role})).await
}

/// A project of the domain k8s, made when missing.
async fn project_id(ks: &Keystone, name: &str) -> String {
    let body = json!({"name": name, "domain_id": env("KS_DOMAIN_ID")});
    find_or_create(ks, "projects", name, body).await
}

async fn grant(ks: &Keystone, project_id: &str, user_id: &str, role: &str) {
    let role_id = role_id(ks, role).await;
    let path = format!("/projects/{project_id}/users/{user_id}/roles/{role_id}");
    let (s, body) = ks_admin(ks, reqwest::Method::PUT, &path, None).await;
    assert_eq!(s, 204, "grant {role} to {user_id}: {body}");
}

/// The application credential `helm` of the user `id` (`name` of the domain k8s) on `project`,
/// made when missing, with every role the user holds there: its id and secret.
async fn helm_app_cred(
    ks: &Keystone,
    id: &str,
    name: &str,
    password: &str,
    project: &str,
) -> (String, String) {
    use reqwest::Method;
    let token = ks
        .password_token(name, "k8s", password, Some((project, "k8s")))
        .await;
    let ac_secret = format!("{name}-helm-secret-1");
    let path = format!("/users/{id}/application_credentials");
    let find = async || {
        let (s, body) = ks
            .call(Method::GET, &format!("{path}?name=helm"), &token, None)
            .await;
        assert_eq!(s, 200, "{body}");
        body["application_credentials"][0]["id"]
            .as_str()
            .map(str::to_string)
    };
    if let Some(ac) = find().await {
        return (ac, ac_secret);
    }
    let body = json!({"application_credential": {"name": "helm", "secret": ac_secret}});
    let mut answer = (0, Value::Null);
    for _ in 0..10 {
        answer = ks
            .call(Method::POST, &path, &token, Some(body.clone()))
            .await;
        match answer.0 {
            201 => {
                let ac = answer.1["application_credential"]["id"].as_str().unwrap();
                return (ac.to_string(), ac_secret);
            }
            // A 500 of SQLite's "database is locked" may come after the row was written.
            409 => return (find().await.unwrap(), ac_secret),
            s if s >= 500 => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => break,
        }
    }
    panic!("create app cred for {name}: {}", answer.1);
}

/// A Keystone user of the domain k8s holding `role` on `project` (name, id): user and role made
/// when missing, with an application credential; its id, name and credential.
struct TenantUser {
    id: String,
    name: &'static str,
    ac_id: String,
    ac_secret: String,
}

async fn tenant_user(
    ks: &Keystone,
    name: &'static str,
    role: &str,
    (project, project_id): (&str, &str),
) -> TenantUser {
    let password = format!("{name}-Pass-123");
    let body = json!({"name": name, "domain_id": env("KS_DOMAIN_ID"), "password": password,
                      "default_project_id": project_id});
    let id = find_or_create(ks, "users", name, body).await;
    grant(ks, project_id, &id, role).await;
    let (ac_id, ac_secret) = helm_app_cred(ks, &id, name, &password, project).await;
    TenantUser {
        id,
        name,
        ac_id,
        ac_secret,
    }
}

/// alice holds `member` on team-a: bound to keystone-tenant-editor (through the ClusterRole
/// `member`) in team-a's namespace, she installs, upgrades, rolls back, lists and uninstalls a
/// chart there with real Helm, and Helm is refused in kube-system and in the namespace of
/// another project (team-b's).
async fn a_member_runs_helm_in_her_namespace_and_nowhere_else(t: &Tenants) {
    let bed = &t.bed;
    let ns = t.team_a.as_str();
    let sb = Sandbox::new();
    let kc = bed
        .keystone_kubeconfig(&sb, &env("KS_AC_KUBECTL_ID"), &env("KS_AC_KUBECTL_SECRET"))
        .await;
    wait_can_i(&sb, &kc, &["create", "secrets", "-n", ns]).await;
    // What the editor may not: nothing cluster-wide, no quotas, no RBAC objects.
    assert!(!can_i(&sb, &kc, &["list", "namespaces"]).await);
    assert!(!can_i(&sb, &kc, &["create", "resourcequotas", "-n", ns]).await);
    assert!(!can_i(&sb, &kc, &["create", "rolebindings", "-n", ns]).await);
    assert!(!can_i(&sb, &kc, &["create", "endpoints", "-n", ns]).await);
    assert!(can_i(&sb, &kc, &["create", "pods/exec", "-n", ns]).await);

    let chart = write_chart(&sb.path("charts"), "web", false, None);
    let chart = chart.to_str().unwrap();
    let started = Instant::now();
    let run = helm(&sb, &kc, &["install", "web", chart, "-n", ns]).await;
    ok(&run, "helm install");
    let install_took = started.elapsed();
    assert!(run.stdout.contains("STATUS: deployed"), "{}", run.stdout);
    // The objects exist, as the admin sees them, and Helm's release Secret with them.
    assert_eq!(
        admin_release_objects(bed, "web", ns).await,
        BTreeSet::from(
            [
                "configmap/web-config",
                "deployment.apps/web",
                "secret/sh.helm.release.v1.web.v1",
                "secret/web-secret",
                "service/web",
            ]
            .map(String::from)
        )
    );
    let cm = admin_get(bed, "configmap", "web-config", ns).await.unwrap();
    assert_eq!(cm["data"]["message"], "hello");
    let release = admin_get(bed, "secret", "sh.helm.release.v1.web.v1", ns)
        .await
        .unwrap();
    assert_eq!(release["type"], "helm.sh/release.v1");

    let run = helm(
        &sb,
        &kc,
        &[
            "upgrade",
            "web",
            chart,
            "-n",
            ns,
            "--set",
            "message=second",
            "--set",
            "replicas=2",
        ],
    )
    .await;
    ok(&run, "helm upgrade");
    let cm = admin_get(bed, "configmap", "web-config", ns).await.unwrap();
    assert_eq!(cm["data"]["message"], "second");
    let dep = admin_get(bed, "deployment", "web", ns).await.unwrap();
    assert_eq!(dep["spec"]["replicas"], 2);

    let run = helm(&sb, &kc, &["rollback", "web", "1", "-n", ns]).await;
    ok(&run, "helm rollback");
    let cm = admin_get(bed, "configmap", "web-config", ns).await.unwrap();
    assert_eq!(cm["data"]["message"], "hello");
    let dep = admin_get(bed, "deployment", "web", ns).await.unwrap();
    assert_eq!(dep["spec"]["replicas"], 1);

    let run = helm(&sb, &kc, &["list", "-n", ns, "-o", "json"]).await;
    ok(&run, "helm list");
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    let web: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "web")
        .collect();
    assert_eq!(web.len(), 1, "{list}");
    assert_eq!(web[0]["revision"], "3", "{list}");
    assert_eq!(web[0]["status"], "deployed", "{list}");
    assert_eq!(web[0]["namespace"], ns, "{list}");
    let run = helm(&sb, &kc, &["history", "web", "-n", ns, "-o", "json"]).await;
    ok(&run, "helm history");
    let history: Value = serde_json::from_str(&run.stdout).unwrap();
    let descriptions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["description"].as_str().unwrap())
        .collect();
    assert_eq!(
        descriptions,
        ["Install complete", "Upgrade complete", "Rollback to 1"],
        "{history}"
    );

    // Not in kube-system, not in the other project's namespace: refused, nothing made there.
    for other_ns in ["kube-system", t.team_b.as_str()] {
        let run = helm(&sb, &kc, &["install", "web", chart, "-n", other_ns]).await;
        forbidden(
            &run,
            "alice",
            other_ns,
            &format!("helm install -n {other_ns}"),
        );
        assert_eq!(
            admin_release_objects(bed, "web", other_ns).await,
            BTreeSet::new()
        );
        let run = helm(&sb, &kc, &["list", "-n", other_ns]).await;
        forbidden(&run, "alice", other_ns, &format!("helm list -n {other_ns}"));
    }

    // Without -n, Helm takes the namespace of the kubeconfig's context (docs/multi-tenancy.md).
    let run = sb
        .as_user(
            &kc,
            &["config", "set-context", "--current", "--namespace", ns],
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = helm(&sb, &kc, &["status", "web", "-o", "json"]).await;
    ok(&run, "helm status in the context's namespace");
    assert_eq!(
        serde_json::from_str::<Value>(&run.stdout).unwrap()["namespace"],
        ns
    );

    let run = helm(&sb, &kc, &["uninstall", "web"]).await;
    ok(&run, "helm uninstall");
    assert_eq!(admin_release_objects(bed, "web", ns).await, BTreeSet::new());
    let run = helm(&sb, &kc, &["list", "-n", ns, "-q"]).await;
    ok(&run, "helm list after uninstall");
    assert!(!run.stdout.lines().any(|l| l == "web"), "{}", run.stdout);
    record_figure(&format!(
        "helm install of a 4-object chart by a Keystone tenant, in a namespace the sync made: {:.1} s",
        install_took.as_secs_f64()
    ));
}

/// A user holding only `reader` on team-a (keystone-tenant-viewer through the ClusterRole
/// `reader`) sees the namespace's releases with `helm list`, `status` and `get`, and cannot
/// install, upgrade or uninstall.
async fn a_reader_lists_and_reads_releases_but_cannot_change_them(t: &Tenants) {
    let ks = Keystone::get();
    let bed = &t.bed;
    let ns = t.team_a.as_str();
    let rita = tenant_user(&ks, "rita", "reader", ("team-a", &env("KS_PROJECT_ID"))).await;

    // alice (member) installs a release.
    let alice_sb = Sandbox::new();
    let alice = bed
        .keystone_kubeconfig(
            &alice_sb,
            &env("KS_AC_KUBECTL_ID"),
            &env("KS_AC_KUBECTL_SECRET"),
        )
        .await;
    wait_can_i(&alice_sb, &alice, &["create", "secrets", "-n", ns]).await;
    let chart = write_chart(&alice_sb.path("charts"), "web", false, None);
    let chart = chart.to_str().unwrap();
    ok(
        &helm(&alice_sb, &alice, &["install", "shown", chart, "-n", ns]).await,
        "alice: helm install",
    );

    let sb = Sandbox::new();
    let kc = bed
        .keystone_kubeconfig(&sb, &rita.ac_id, &rita.ac_secret)
        .await;
    // Her first request; the sync binds her (or the resync already did: with a service
    // identity it binds every holder of a role on a project it syncs).
    assert_eq!(sb.whoami(&kc).await["username"], rita.name);
    synced_binding(bed, ns, &rita.id, rita.name, "reader").await;
    wait_can_i(&sb, &kc, &["list", "secrets", "-n", ns]).await;
    assert!(!can_i(&sb, &kc, &["create", "configmaps", "-n", ns]).await);
    assert!(!can_i(&sb, &kc, &["create", "pods/exec", "-n", ns]).await);

    let run = helm(&sb, &kc, &["list", "-n", ns, "-o", "json"]).await;
    ok(&run, "reader: helm list");
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "shown" && r["status"] == "deployed"),
        "{list}"
    );
    ok(
        &helm(&sb, &kc, &["status", "shown", "-n", ns]).await,
        "reader: helm status",
    );
    let run = helm(&sb, &kc, &["get", "manifest", "shown", "-n", ns]).await;
    ok(&run, "reader: helm get manifest");
    assert!(run.stdout.contains("name: shown-config"), "{}", run.stdout);
    let run = helm(
        &sb,
        &kc,
        &["get", "values", "shown", "-n", ns, "--all", "-o", "json"],
    )
    .await;
    ok(&run, "reader: helm get values");
    assert_eq!(
        serde_json::from_str::<Value>(&run.stdout).unwrap()["message"],
        "hello"
    );

    let run = helm(&sb, &kc, &["install", "rita-web", chart, "-n", ns]).await;
    forbidden(&run, "rita", ns, "reader: helm install");
    assert_eq!(
        admin_release_objects(bed, "rita-web", ns).await,
        BTreeSet::new()
    );
    let run = helm(
        &sb,
        &kc,
        &["upgrade", "shown", chart, "-n", ns, "--set", "message=rita"],
    )
    .await;
    forbidden(&run, "rita", ns, "reader: helm upgrade");
    // Helm's uninstall says only "failed to delete release" unless asked for the reasons.
    let run = helm(&sb, &kc, &["uninstall", "shown", "-n", ns, "--debug"]).await;
    forbidden(&run, "rita", ns, "reader: helm uninstall");
    let cm = admin_get(bed, "configmap", "shown-config", ns)
        .await
        .unwrap();
    assert_eq!(
        cm["data"]["message"], "hello",
        "the reader changed the release"
    );

    ok(
        &helm(&alice_sb, &alice, &["uninstall", "shown", "-n", ns]).await,
        "alice: helm uninstall",
    );
    assert_eq!(
        admin_release_objects(bed, "shown", ns).await,
        BTreeSet::new()
    );
}

/// A user holding `k8s-admin` on team-a (keystone-tenant-admin) installs a chart that ships a
/// Role and a RoleBinding for its ServiceAccount; an editor cannot; and even the admin cannot
/// grant more than it holds (Kubernetes' escalation check: a RoleBinding to `edit`).
async fn a_tenant_admin_installs_charts_with_roles_within_its_own_rights(t: &Tenants) {
    let ks = Keystone::get();
    let bed = &t.bed;
    let ns = t.team_a.as_str();
    let kadmin = tenant_user(
        &ks,
        "kadmin",
        "k8s-admin",
        ("team-a", &env("KS_PROJECT_ID")),
    )
    .await;

    let sb = Sandbox::new();
    let kc = bed
        .keystone_kubeconfig(&sb, &kadmin.ac_id, &kadmin.ac_secret)
        .await;
    assert_eq!(sb.whoami(&kc).await["username"], kadmin.name);
    synced_binding(bed, ns, &kadmin.id, kadmin.name, "k8s-admin").await;
    wait_can_i(&sb, &kc, &["create", "rolebindings", "-n", ns]).await;
    assert!(!can_i(&sb, &kc, &["create", "resourcequotas", "-n", ns]).await);
    assert!(!can_i(&sb, &kc, &["create", "rolebindings", "-n", "kube-system"]).await);
    assert!(!can_i(&sb, &kc, &["create", "clusterrolebindings"]).await);

    let rbac_chart = write_chart(&sb.path("charts"), "with-rbac", true, None);
    let rbac_chart = rbac_chart.to_str().unwrap();
    ok(
        &helm(&sb, &kc, &["install", "with-rbac", rbac_chart, "-n", ns]).await,
        "tenant admin: helm install",
    );
    let objects = admin_release_objects(bed, "with-rbac", ns).await;
    for o in [
        "role.rbac.authorization.k8s.io/with-rbac-config-reader",
        "rolebinding.rbac.authorization.k8s.io/with-rbac-config-reader",
        "serviceaccount/with-rbac",
    ] {
        assert!(objects.contains(o), "{o} missing in {objects:?}");
    }

    // alice is an editor: the Role is refused (Helm checks the objects first and makes none).
    let alice_sb = Sandbox::new();
    let alice = bed
        .keystone_kubeconfig(
            &alice_sb,
            &env("KS_AC_KUBECTL_ID"),
            &env("KS_AC_KUBECTL_SECRET"),
        )
        .await;
    wait_can_i(&alice_sb, &alice, &["create", "secrets", "-n", ns]).await;
    let run = helm(
        &alice_sb,
        &alice,
        &["install", "editor-rbac", rbac_chart, "-n", ns],
    )
    .await;
    forbidden(
        &run,
        "alice",
        ns,
        "editor: helm install of a chart with a Role",
    );
    assert!(
        run.stderr.contains("roles.rbac.authorization.k8s.io"),
        "{}",
        run.stderr
    );
    assert!(
        admin_get(bed, "role", "editor-rbac-config-reader", ns)
            .await
            .is_none(),
        "the editor made a Role"
    );
    admin_uninstall(bed, "editor-rbac", ns).await;

    // Binding `edit` (which holds more than keystone-tenant-admin) is an escalation.
    let escalate = write_chart(&sb.path("charts2"), "escalate", true, Some("edit"));
    let run = helm(
        &sb,
        &kc,
        &["install", "escalate", escalate.to_str().unwrap(), "-n", ns],
    )
    .await;
    // RBAC's escalation refusal names the user and the binding, not the namespace.
    assert_ne!(run.code, Some(0), "binding edit succeeded: {}", run.stdout);
    assert!(
        run.stderr
            .contains("\"escalate-edit\" is forbidden: user \"kadmin\"")
            && run
                .stderr
                .contains("attempting to grant RBAC permissions not currently held"),
        "{}",
        run.stderr
    );
    assert!(
        admin_get(bed, "rolebinding", "escalate-edit", ns)
            .await
            .is_none()
    );
    let run = helm(
        &sb,
        &kc,
        &["uninstall", "escalate", "-n", ns, "--ignore-not-found"],
    )
    .await;
    ok(&run, "tenant admin: uninstall the failed release");

    ok(
        &helm(&sb, &kc, &["uninstall", "with-rbac", "-n", ns]).await,
        "tenant admin: helm uninstall",
    );
    assert_eq!(
        admin_release_objects(bed, "with-rbac", ns).await,
        BTreeSet::new()
    );
}

/// A member loses `member` in Keystone (the admin API): at the next full resync her RoleBindings
/// in team-a's namespace go (`member`'s and that of the `reader` it implies), and Helm's access
/// with them. She keeps `k8s-viewer` on team-a, a Keystone role the bundle maps to no ClusterRole,
/// so she still logs in to team-a with the same application credential and kubeconfig, and the
/// refusal is RBAC's.
async fn a_role_removed_in_keystone_takes_the_binding_and_helm_access_with_it(t: &Tenants) {
    use reqwest::Method;
    let ks = Keystone::get();
    let bed = &t.bed;
    let ns = t.team_a.as_str();
    let team_a = env("KS_PROJECT_ID");
    let name = format!("helm-leaver-{}", tag());
    let password = "Helm-leaver-Pass-1";
    let uid = ks.create_member(&ks.admin().await, &name, password).await;
    grant(&ks, &team_a, &uid, "k8s-viewer").await;
    let (ac_id, ac_secret) = helm_app_cred(&ks, &uid, &name, password, "team-a").await;
    let sb = Sandbox::new();
    let kc = bed.keystone_kubeconfig(&sb, &ac_id, &ac_secret).await;
    assert_eq!(sb.whoami(&kc).await["username"], name.as_str());
    for role in ["member", "reader"] {
        synced_binding(bed, ns, &uid, &name, role).await;
    }
    wait_can_i(&sb, &kc, &["create", "secrets", "-n", ns]).await;
    let chart = write_chart(&sb.path("charts"), "web", false, None);
    let chart = chart.to_str().unwrap();
    ok(
        &helm(&sb, &kc, &["install", "leaver", chart, "-n", ns]).await,
        "member: helm install",
    );

    let member = role_id(&ks, "member").await;
    let path = format!("/projects/{team_a}/users/{uid}/roles/{member}");
    let (s, body) = ks_admin(&ks, Method::DELETE, &path, None).await;
    assert_eq!(s, 204, "revoke member: {body}");
    let revoked = Instant::now();
    eventually(
        "the RoleBindings of the revoked role gone",
        Duration::from_secs(30),
        async || {
            synced_bindings(bed, ns, &uid)
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    record_figure(&format!(
        "helm tests: a member's role removed in Keystone lost its RoleBindings {:.1} s later (resync_interval {RESYNC_INTERVAL})",
        revoked.elapsed().as_secs_f64()
    ));
    // Keystone revoked her token of before with the role (kube-apiserver may still hold it in
    // its token cache, with the same RBAC answer); a new one from the same credential carries
    // the role she kept.
    let cleared = sb.plugin(&["clear-cache"], &[]).await;
    assert_eq!(cleared.code, Some(0), "{}", cleared.stderr);
    let who = sb.whoami(&kc).await;
    assert_eq!(
        who["extra"]["alpha.kubernetes.io/identity/roles"],
        json!(["k8s-viewer"]),
        "{who}"
    );
    eventually(
        "RBAC no longer grants",
        Duration::from_secs(20),
        async || (!can_i(&sb, &kc, &["create", "secrets", "-n", ns]).await).then_some(()),
    )
    .await;
    let run = helm(&sb, &kc, &["install", "leaver-again", chart, "-n", ns]).await;
    forbidden(&run, &name, ns, "helm install after the role was removed");
    assert_eq!(
        admin_release_objects(bed, "leaver-again", ns).await,
        BTreeSet::new()
    );
    let run = helm(&sb, &kc, &["list", "-n", ns]).await;
    forbidden(&run, &name, ns, "helm list after the role was removed");
    // The resync does not bring them back (her token's k8s-viewer has no ClusterRole).
    assert_eq!(synced_bindings(bed, ns, &uid).await, Vec::<String>::new());

    admin_uninstall(bed, "leaver", ns).await;
    // The credential first: Keystone deletes a deleted user's credentials with a bulk query
    // that leaves their role rows behind on SQLite, and the next credential given the same row
    // id then fails with 409 "Duplicate entry found with name ...".
    let path = format!("/users/{uid}/application_credentials/{ac_id}");
    let (s, body) = ks_admin(&ks, Method::DELETE, &path, None).await;
    assert_eq!(s, 204, "delete {name}'s credential: {body}");
    let (s, body) = ks_admin(&ks, Method::DELETE, &format!("/users/{uid}"), None).await;
    assert_eq!(s, 204, "delete {name}: {body}");
}

/// Issue 10 on the real thing: the tenants' namespaces and RoleBindings are made by the sync of
/// the service run with the example files (see [`Tenants`]), then the Helm scenarios above run,
/// concurrently, on them; the sync never hit a 403 with the rights it ships with.
#[tokio::test]
async fn tenants_run_helm_in_namespaces_and_role_bindings_made_by_the_sync() {
    let _ks = KEYSTONE.read().await;
    let started = Instant::now();
    let t = Tenants::start().await;
    tokio::join!(
        a_member_runs_helm_in_her_namespace_and_nowhere_else(&t),
        a_reader_lists_and_reads_releases_but_cannot_change_them(&t),
        a_tenant_admin_installs_charts_with_roles_within_its_own_rights(&t),
        a_role_removed_in_keystone_takes_the_binding_and_helm_access_with_it(&t),
    );
    assert_eq!(
        t.svc
            .metric("k8s_keystone_auth_sync_errors_total{reason=\"forbidden\"}")
            .await,
        0,
        "the sync was refused: {}",
        t.svc.log_now()
    );
    record_figure(&format!(
        "helm tests: set-up and the four Helm scenarios took {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

// The bundle itself.

/// (group, resource, verb) triples a ClusterRole grants; panics on what a tenant role must not
/// hold: nonResourceURLs, resourceNames-less wildcards, cluster-scoped resources, bind,
/// escalate, impersonate.
fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    const CLUSTER_SCOPED: [&str; 9] = [
        "namespaces",
        "nodes",
        "persistentvolumes",
        "clusterroles",
        "clusterrolebindings",
        "storageclasses",
        "customresourcedefinitions",
        "certificatesigningrequests",
        "selfsubjectaccessreviews",
    ];
    let name = &role["metadata"]["name"];
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        assert!(rule.get("nonResourceURLs").is_none(), "{name}: {rule}");
        assert!(rule.get("resourceNames").is_none(), "{name}: {rule}");
        let strs = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        for g in strs("apiGroups") {
            assert_ne!(g, "*", "{name}: {rule}");
            for r in strs("resources") {
                assert!(
                    r != "*" && !CLUSTER_SCOPED.contains(&r.as_str()),
                    "{name}: {rule}"
                );
                for v in strs("verbs") {
                    assert!(
                        !["*", "bind", "escalate", "impersonate"].contains(&v.as_str()),
                        "{name}: {rule}"
                    );
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

#[test]
fn the_tenant_roles_are_nested_and_hold_nothing_cluster_wide() {
    let docs = yaml_docs("deploy/rbac/tenant-roles.yaml");
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "keystone-tenant-viewer",
            "keystone-tenant-editor",
            "keystone-tenant-admin"
        ]
    );
    let [viewer, editor, admin] = [&docs[0], &docs[1], &docs[2]].map(grants);
    assert!(
        viewer.is_subset(&editor),
        "viewer holds what editor does not: {:?}",
        viewer.difference(&editor).collect::<Vec<_>>()
    );
    assert!(
        editor.is_subset(&admin),
        "editor holds what admin does not: {:?}",
        editor.difference(&admin).collect::<Vec<_>>()
    );
    let g =
        |group: &str, res: &str, verb: &str| (group.to_string(), res.to_string(), verb.to_string());
    // Helm's release Secrets: the viewer reads them, the editor writes them.
    for verb in ["get", "list", "watch"] {
        assert!(viewer.contains(&g("", "secrets", verb)));
    }
    assert!(
        viewer
            .iter()
            .all(|(_, _, v)| ["get", "list", "watch"].contains(&v.as_str()))
    );
    for verb in ["create", "update", "patch", "delete"] {
        for (group, res) in [
            ("", "secrets"),
            ("", "configmaps"),
            ("", "services"),
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            ("batch", "jobs"),
            ("networking.k8s.io", "ingresses"),
            ("", "persistentvolumeclaims"),
        ] {
            assert!(
                editor.contains(&g(group, res, verb)),
                "editor lacks {verb} {group}/{res}"
            );
        }
    }
    // RBAC objects for the admin only; quotas and endpoints for nobody.
    assert!(admin.contains(&g("rbac.authorization.k8s.io", "rolebindings", "create")));
    assert!(
        !editor
            .iter()
            .any(|(group, _, _)| group == "rbac.authorization.k8s.io")
    );
    for (group, res) in [
        ("", "resourcequotas"),
        ("", "limitranges"),
        ("", "endpoints"),
        ("discovery.k8s.io", "endpointslices"),
    ] {
        assert!(
            !admin.contains(&g(group, res, "create")),
            "admin may create {res}"
        );
    }
}

#[test]
fn the_keystone_role_cluster_roles_aggregate_one_tenant_role_each() {
    let tenant = yaml_docs("deploy/rbac/tenant-roles.yaml");
    let aliases = yaml_docs("deploy/rbac/keystone-roles.yaml");
    let mut got = Vec::new();
    for alias in &aliases {
        let name = alias["metadata"]["name"].as_str().unwrap();
        let selectors = alias["aggregationRule"]["clusterRoleSelectors"]
            .as_array()
            .unwrap();
        assert_eq!(selectors.len(), 1, "{name}");
        let labels = selectors[0]["matchLabels"].as_object().unwrap();
        let matching: Vec<&str> = tenant
            .iter()
            .filter(|t| labels.iter().all(|(k, v)| &t["metadata"]["labels"][k] == v))
            .map(|t| t["metadata"]["name"].as_str().unwrap())
            .collect();
        got.push((name, matching));
    }
    assert_eq!(
        got,
        [
            ("reader", vec!["keystone-tenant-viewer"]),
            ("member", vec!["keystone-tenant-editor"]),
            ("k8s-admin", vec!["keystone-tenant-admin"]),
        ]
    );
}

/// The example policy and sync files pass the service's own `--check-config`, strictly (no
/// rule Go would skip, nothing Go would only warn about), and the policy grants what
/// docs/multi-tenancy.md says: cluster-wide reads of a few cluster-scoped kinds, by role.
#[test]
fn the_example_policy_and_sync_files_pass_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[policy]\nstrict = true\n[sync]\nstrict = true\n").unwrap();
    let out = std::process::Command::new(crate::bins::bin("k8s-keystone-auth"))
        .args([
            "--keystone-url",
            "http://127.0.0.1:9/v3",
            "--insecure-http",
            "--check-config",
            "--config",
        ])
        .arg(&config)
        .arg("--keystone-policy-file")
        .arg(repo("deploy/rbac/k8s-keystone-auth/policy.json"))
        .arg("--sync-config-file")
        .arg(repo("deploy/rbac/k8s-keystone-auth/sync-config.yaml"))
        // Its data types turn the namespace sync on, which needs a Kubernetes API: the bed's
        // (--check-config asks it for its version).
        .arg("--kubeconfig")
        .arg(std::path::Path::new(&env("K8S_V1_DIR")).join("admin.kubeconfig"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");

    let text = std::fs::read_to_string(repo("deploy/rbac/k8s-keystone-auth/policy.json")).unwrap();
    let parsed = kk_policy::Policy::parse(&text).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let policy = parsed.strict().unwrap().policy;
    let allowed = |role: &str, verb: &str, ns: &str, group: &str, resource: &str| {
        let extra = std::collections::BTreeMap::from([
            (
                "alpha.kubernetes.io/identity/project/id".to_string(),
                vec!["p1".to_string()],
            ),
            (
                "alpha.kubernetes.io/identity/roles".to_string(),
                vec![role.to_string()],
            ),
        ]);
        let groups = ["p1".to_string()];
        policy
            .evaluate(&kk_policy::Request {
                user: "u",
                uid: "",
                groups: &groups,
                extra: Some(&extra),
                attributes: kk_policy::Attributes::Resource {
                    verb,
                    namespace: ns,
                    group,
                    version: "v1",
                    resource,
                    subresource: "",
                    name: "",
                },
            })
            .allowed
    };
    for role in ["reader", "member", "k8s-admin"] {
        assert!(
            allowed(role, "list", "", "storage.k8s.io", "storageclasses"),
            "{role}"
        );
        assert!(
            allowed(role, "get", "", "networking.k8s.io", "ingressclasses"),
            "{role}"
        );
        assert!(
            allowed(role, "watch", "", "scheduling.k8s.io", "priorityclasses"),
            "{role}"
        );
        assert!(
            !allowed(role, "create", "", "storage.k8s.io", "storageclasses"),
            "{role}"
        );
        assert!(!allowed(role, "list", "", "", "namespaces"), "{role}");
        assert!(
            !allowed(role, "list", "kube-system", "", "secrets"),
            "{role}"
        );
    }
    assert!(!allowed(
        "k8s-viewer",
        "list",
        "",
        "storage.k8s.io",
        "storageclasses"
    ));
}
