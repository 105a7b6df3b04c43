//! The namespace sync (docs/sync.md) on the real thing: the real Keystone (new projects, users,
//! groups and roles made by the test), a real kube-apiserver of the test's own whose
//! authentication webhook is the service under test (so kubectl requests are what trigger the
//! sync, and RBAC alone decides what the created RoleBindings grant), and the service's rights
//! exactly as deploy/kubernetes/k8s-keystone-auth-sync.yaml gives them, through a ServiceAccount
//! token.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use kk_kube::types::{Namespace, RoleBinding};
use kk_kube::{ClientSettings, ClusterConfig, KubeClient};
use kk_sync::plan::{ANN_PROJECT_ID, ANN_PROJECT_NAME, MANAGED_BY, MANAGED_BY_LABEL};

use crate::apiserver::{Bed, OwnApiserver, planned_webhook, token_kubeconfig};
use crate::sandbox::*;
use crate::support::*;

/// A short name part unique to this run and call.
pub(crate) fn tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{:03}", std::process::id() % 100_000, nanos % 1000)
}

/// Keystone, as its admin; calls retried on SQLite's "database is locked" 500s.
struct Admin {
    ks: Keystone,
    token: String,
}

impl Admin {
    async fn new() -> Self {
        let ks = Keystone::get();
        let token = ks.admin().await;
        Self { ks, token }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut answer = (0, Value::Null);
        for _ in 0..20 {
            answer = self
                .ks
                .call(method.clone(), path, &self.token, body.clone())
                .await;
            if answer.0 < 500 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        answer
    }

    async fn create(&self, collection: &str, key: &str, body: Value) -> String {
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                &format!("/{collection}"),
                Some(json!({ key: body })),
            )
            .await;
        assert_eq!(status, 201, "create {key}: {v}");
        v[key]["id"].as_str().unwrap().to_string()
    }

    async fn expect(&self, method: reqwest::Method, path: &str, body: Option<Value>, want: u16) {
        let (status, v) = self.call(method.clone(), path, body).await;
        assert_eq!(status, want, "{method} {path}: {v}");
    }

    async fn grant(&self, project: &str, actor: &str, id: &str, role: &str) {
        let path = format!("/projects/{project}/{actor}/{id}/roles/{role}");
        self.expect(reqwest::Method::PUT, &path, None, 204).await;
    }

    async fn revoke(&self, project: &str, actor: &str, id: &str, role: &str) {
        let path = format!("/projects/{project}/{actor}/{id}/roles/{role}");
        self.expect(reqwest::Method::DELETE, &path, None, 204).await;
    }

    async fn delete_project(&self, id: &str) {
        let path = format!("/projects/{id}");
        self.expect(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"project": {"enabled": false}})),
            200,
        )
        .await;
        self.expect(reqwest::Method::DELETE, &path, None, 204).await;
    }

    /// A password token of `user_id` scoped to `project_id`.
    async fn token_for(&self, user_id: &str, password: &str, project_id: &str) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"id": user_id, "password": password}}},
            "scope": {"project": {"id": project_id}}}});
        for _ in 0..20 {
            match self.ks.auth(body.clone()).await {
                Ok((token, _)) => return token,
                Err(s) if s >= 500 => tokio::time::sleep(Duration::from_millis(250)).await,
                Err(s) => panic!("token for {user_id} on {project_id}: HTTP {s}"),
            }
        }
        panic!("token for {user_id} on {project_id}: Keystone kept failing");
    }
}

pub(crate) fn own_bed(api: &OwnApiserver) -> Bed {
    Bed {
        version: "own",
        server: api.server.clone(),
        ca_file: api.ca_file.clone(),
        admin: api.admin.clone(),
        cert_user: api.dir.path().join("user.kubeconfig"),
    }
}

fn admin_client(api: &OwnApiserver) -> KubeClient {
    KubeClient::new(
        ClusterConfig::from_kubeconfig(&api.admin).unwrap(),
        &ClientSettings::default(),
    )
    .unwrap()
}

/// The shipped sync rights (deploy/kubernetes/k8s-keystone-auth-sync.yaml), `bind` on the
/// test's ClusterRoles, for the ServiceAccount kube-system/k8s-keystone-auth of `api`; a
/// kubeconfig with a token of it, written into `dir`.
pub(crate) async fn service_account_kubeconfig(
    api: &OwnApiserver,
    bind: &[String],
    dir: &Path,
) -> PathBuf {
    use serde::Deserialize;
    let bed = own_bed(api);
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/k8s-keystone-auth-sync.yaml"),
    )
    .unwrap();
    let mut docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    for rule in docs[0]["rules"].as_array_mut().unwrap() {
        if rule["verbs"] == json!(["bind"]) {
            rule["resourceNames"] = json!(bind);
        }
    }
    let mut items = vec![json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "k8s-keystone-auth", "namespace": "kube-system"}})];
    items.extend(docs);
    bed.apply(&json!({"apiVersion": "v1", "kind": "List", "items": items}))
        .await;
    let token = bed
        .admin(&[
            "create",
            "token",
            "k8s-keystone-auth",
            "-n",
            "kube-system",
            "--duration=2h",
        ])
        .await
        .trim()
        .to_string();
    record_issued(&token);
    let path = dir.join("sync.kubeconfig");
    token_kubeconfig(&api.server, &api.ca_file, "k8s-keystone-auth", token, &path);
    path
}

/// Polls `f` until it gives a value (bounded).
pub(crate) async fn eventually<T>(
    what: &str,
    within: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn binding_names(kube: &KubeClient, ns: &str) -> Vec<String> {
    let mut names: Vec<String> = kube
        .list::<RoleBinding>(Some(ns), None)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.metadata.name)
        .collect();
    names.sort();
    names
}

pub(crate) async fn can_i(
    api: &OwnApiserver,
    token: &str,
    verb: &str,
    resource: &str,
    ns: &str,
) -> bool {
    let sb = Sandbox::new();
    let run = api
        .with_token(&sb, token, &["auth", "can-i", verb, resource, "-n", ns])
        .await;
    match (run.code, run.stdout.split_whitespace().next()) {
        (Some(0), Some("yes")) => true,
        (Some(1), Some("no")) => false,
        _ => panic!("can-i {verb} {resource} -n {ns}: {run:?}"),
    }
}

pub(crate) fn service_identity_toml() -> String {
    format!(
        "[keystone.service_identity]\nuser_name = \"admin\"\nuser_domain_id = \"default\"\npassword = \"{}\"\nproject_name = \"admin\"\nproject_domain_id = \"default\"\n",
        env("KS_ADMIN_PASSWORD")
    )
}

/// New Keystone projects and a user with roles: the first kubectl request makes the namespace
/// and Go's RoleBindings (and a group's, from the resync), which grant exactly what their
/// ClusterRoles say; a second project gets its own namespace; a blacklisted project none; a
/// namespace of the name the service did not make is left alone; a ClusterRole that does not
/// exist gets no binding and a warning; a role taken away in Keystone loses its binding (and the
/// access) at the next resync, and a deleted project's namespace loses this service's bindings
/// and stays.
#[tokio::test]
async fn keystone_projects_become_namespaces_and_role_assignments_role_bindings() {
    let _ks = KEYSTONE.read().await;
    let admin = Admin::new().await;
    let t = tag();
    let domain = env("KS_DOMAIN_ID");
    // Keystone: roles, projects, a user and a group.
    let editor = format!("kksync-editor-{t}");
    let member = format!("kksync-member-{t}");
    let no_cluster_role = format!("kksync-nocr-{t}");
    let tenant = format!("kksync-tenant-{t}");
    let mut role_ids = Vec::new();
    for r in [&editor, &member, &no_cluster_role] {
        role_ids.push(admin.create("roles", "role", json!({"name": r})).await);
    }
    let (editor_id, member_id, nocr_id) = (&role_ids[0], &role_ids[1], &role_ids[2]);
    let project = |n: &str| json!({"name": format!("kksync-{n}-{t}"), "domain_id": domain});
    let pa = admin.create("projects", "project", project("a")).await;
    let pb = admin.create("projects", "project", project("b")).await;
    let blocked = admin
        .create("projects", "project", project("blocked"))
        .await;
    let taken = admin.create("projects", "project", project("taken")).await;
    let password = "Kksync-pass-1";
    let user_name = format!("kksync-user-{t}");
    let uid = admin
        .create(
            "users",
            "user",
            json!({"name": user_name, "domain_id": domain, "password": password}),
        )
        .await;
    let group_name = format!("kksync-group-{t}");
    let gid = admin
        .create(
            "groups",
            "group",
            json!({"name": group_name, "domain_id": domain}),
        )
        .await;
    for (p, r) in [
        (&pa, editor_id),
        (&pa, member_id),
        (&pa, nocr_id),
        (&pb, editor_id),
        (&blocked, editor_id),
        (&taken, editor_id),
    ] {
        admin.grant(p, "users", &uid, r).await;
    }
    admin.grant(&pa, "groups", &gid, editor_id).await;

    // A kube-apiserver whose authentication webhook is the service (started below on a port
    // and with a CA chosen now), RBAC alone authorizing.
    let dir = tempfile::tempdir().unwrap();
    let (port, pki, webhook) = planned_webhook(dir.path());
    let api = OwnApiserver::start(&webhook, Path::new(""), "v1", "");
    let bed = own_bed(&api);
    let kube = admin_client(&api);
    bed.apply(&json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": editor},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": tenant},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]},
    ]}))
    .await;
    let ns_name = |p: &str, id: &str| format!("kksync-{p}-{t}-{id}");
    let (ns_a, ns_b, ns_blocked, ns_taken) = (
        ns_name("a", &pa),
        ns_name("b", &pb),
        ns_name("blocked", &blocked),
        ns_name("taken", &taken),
    );
    // Someone else's namespace of the name the "taken" project maps to.
    bed.apply(&json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns_taken, "labels": {"team": "someone-else"}}}))
        .await;
    let kubeconfig = service_account_kubeconfig(
        &api,
        &[editor.clone(), tenant.clone(), no_cluster_role.clone()],
        dir.path(),
    )
    .await;
    let sync_file = dir.path().join("sync.yaml");
    std::fs::write(
        &sync_file,
        format!(
            "data-types-to-sync: [projects, role_assignments]\nnamespace-format: \"%n-%i\"\nprojects-name-blacklist: [kksync-blocked-{t}]\nrole-mappings:\n  - keystone-role: {member}\n    cluster-role: {tenant}\n"
        ),
    )
    .unwrap();
    let svc = Service::start(Options {
        listen: Some((port, pki)),
        log_level: "info",
        toml: format!(
            "{}[sync]\nfile = \"{}\"\nresync_interval = \"2s\"\n[kubernetes]\nkubeconfig = \"{}\"\ntimeout = \"5s\"\n[cache]\nttl = \"1s\"\n",
            service_identity_toml(),
            sync_file.display(),
            kubeconfig.display()
        ),
        ..Default::default()
    })
    .await;

    // The first kubectl request: the namespace and the bindings appear, and grant.
    let token_a = admin.token_for(&uid, password, &pa).await;
    let started = Instant::now();
    // Whatever RBAC answers this first time, the review of the token queues the sync.
    can_i(&api, &token_a, "list", "pods", &ns_a).await;
    let ns: Namespace = eventually(
        "the namespace of project a",
        Duration::from_secs(30),
        async || kube.get::<Namespace>(None, &ns_a).await.unwrap(),
    )
    .await;
    record_figure(&format!(
        "namespace sync: the namespace of a new project existed {:.1} s after the user's first kubectl request",
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(
        ns.metadata.labels.get(MANAGED_BY_LABEL).map(String::as_str),
        Some(MANAGED_BY)
    );
    assert_eq!(ns.metadata.annotations[ANN_PROJECT_ID], pa);
    assert_eq!(
        ns.metadata.annotations[ANN_PROJECT_NAME],
        format!("kksync-a-{t}")
    );
    let want_a = {
        let mut v = vec![
            format!("{uid}_{editor}"),
            format!("{uid}_{member}"),
            format!("group_{gid}_{editor}"),
        ];
        v.sort();
        v
    };
    eventually(
        "the bindings of project a",
        Duration::from_secs(30),
        async || (binding_names(&kube, &ns_a).await == want_a).then_some(()),
    )
    .await;
    let b: RoleBinding = kube
        .get(Some(&ns_a), &format!("{uid}_{member}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.role_ref.name, tenant, "the role mapping's cluster-role");
    assert_eq!(
        (b.subjects[0].kind.as_str(), b.subjects[0].name.as_str()),
        ("User", user_name.as_str())
    );
    let g: RoleBinding = kube
        .get(Some(&ns_a), &format!("group_{gid}_{editor}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (g.subjects[0].kind.as_str(), g.subjects[0].name.as_str()),
        ("Group", group_name.as_str())
    );
    let warned = eventually(
        "the missing ClusterRole's warning",
        Duration::from_secs(10),
        async || {
            let log = svc.log_now();
            log.lines()
                .find(|l| l.contains("WARN") && l.contains(&no_cluster_role))
                .map(str::to_string)
        },
    )
    .await;
    assert!(warned.contains("does not exist"), "{warned}");
    eventually(
        "RBAC grants what the bindings say",
        Duration::from_secs(20),
        async || {
            can_i(&api, &token_a, "list", "pods", &ns_a)
                .await
                .then_some(())
        },
    )
    .await;
    eventually(
        "the tenant ClusterRole's rights",
        Duration::from_secs(20),
        async || {
            can_i(&api, &token_a, "list", "configmaps", &ns_a)
                .await
                .then_some(())
        },
    )
    .await;
    assert!(!can_i(&api, &token_a, "list", "secrets", &ns_a).await);
    assert!(!can_i(&api, &token_a, "list", "pods", "kube-system").await);

    // A second project: its own namespace.
    let token_b = admin.token_for(&uid, password, &pb).await;
    assert_eq!(
        svc.token_review("v1", &token_b).await["authenticated"],
        true
    );
    let want_b = vec![format!("{uid}_{editor}")];
    eventually(
        "the namespace and binding of project b",
        Duration::from_secs(30),
        async || {
            let exists = kube.get::<Namespace>(None, &ns_b).await.unwrap().is_some();
            (exists && binding_names(&kube, &ns_b).await == want_b).then_some(())
        },
    )
    .await;

    // A blacklisted project: authenticated, and no namespace.
    let skipped =
        |reason: &str| format!("k8s_keystone_auth_sync_skipped_total{{reason=\"{reason}\"}}");
    let token_blocked = admin.token_for(&uid, password, &blocked).await;
    assert_eq!(
        svc.token_review("v1", &token_blocked).await["authenticated"],
        true
    );
    eventually(
        "the blacklisted project skipped",
        Duration::from_secs(20),
        async || (svc.metric(&skipped("blacklisted")).await >= 1).then_some(()),
    )
    .await;
    assert!(
        kube.get::<Namespace>(None, &ns_blocked)
            .await
            .unwrap()
            .is_none()
    );

    // Someone else's namespace: untouched, no binding in it, a warning.
    let before_taken = kube
        .get::<Namespace>(None, &ns_taken)
        .await
        .unwrap()
        .unwrap();
    let token_taken = admin.token_for(&uid, password, &taken).await;
    assert_eq!(
        svc.token_review("v1", &token_taken).await["authenticated"],
        true
    );
    eventually(
        "the foreign namespace skipped",
        Duration::from_secs(20),
        async || (svc.metric(&skipped("namespace_not_managed")).await >= 1).then_some(()),
    )
    .await;
    svc.wait_log(&format!(
        "namespace {ns_taken} exists and was not created by this service"
    ))
    .await;
    let theirs = kube
        .get::<Namespace>(None, &ns_taken)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        theirs, before_taken,
        "not a byte changed (resourceVersion included)"
    );
    assert!(!theirs.metadata.labels.contains_key(MANAGED_BY_LABEL));
    assert!(binding_names(&kube, &ns_taken).await.is_empty());

    // The role taken away in Keystone: the binding goes at the next resync, and the access.
    admin.revoke(&pa, "users", &uid, editor_id).await;
    let revoked = Instant::now();
    let without_editor: Vec<String> = want_a
        .iter()
        .filter(|n| **n != format!("{uid}_{editor}"))
        .cloned()
        .collect();
    eventually(
        "the revoked role's binding gone",
        Duration::from_secs(30),
        async || (binding_names(&kube, &ns_a).await == without_editor).then_some(()),
    )
    .await;
    record_figure(&format!(
        "namespace sync: a role removed in Keystone lost its RoleBinding {:.1} s later (resync_interval 2s)",
        revoked.elapsed().as_secs_f64()
    ));
    eventually(
        "the access gone with it",
        Duration::from_secs(20),
        async || (!can_i(&api, &token_a, "list", "pods", &ns_a).await).then_some(()),
    )
    .await;
    assert!(
        can_i(&api, &token_a, "list", "configmaps", &ns_a).await,
        "the other role stays"
    );

    // A deleted project: its namespace loses this service's bindings and stays.
    admin.delete_project(&pb).await;
    eventually(
        "the deleted project's bindings gone",
        Duration::from_secs(30),
        async || binding_names(&kube, &ns_b).await.is_empty().then_some(()),
    )
    .await;
    assert!(
        kube.get::<Namespace>(None, &ns_b).await.unwrap().is_some(),
        "namespaces are never deleted"
    );

    let (code, health) = svc.get("/healthz/sync").await;
    assert_eq!(code, 200, "{health}");
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["sync"], "ok", "{health}");
    assert_eq!(health["keystone_assignments"], true);
    assert!(health["last_full_resync_at"].is_string(), "{health}");
    let created = |kind: &str, action: &str| {
        format!("k8s_keystone_auth_sync_objects_total{{kind=\"{kind}\",action=\"{action}\"}}")
    };
    assert!(svc.metric(&created("namespace", "created")).await >= 2);
    assert!(svc.metric(&created("rolebinding", "created")).await >= 4);
    assert!(svc.metric(&created("rolebinding", "deleted")).await >= 2);
    assert!(
        svc.metric("k8s_keystone_auth_sync_last_full_resync_timestamp_seconds")
            .await
            > 0
    );

    // Keystone's leftovers.
    for p in [&pa, &blocked, &taken] {
        admin.delete_project(p).await;
    }
    admin
        .expect(reqwest::Method::DELETE, &format!("/users/{uid}"), None, 204)
        .await;
    admin
        .expect(
            reqwest::Method::DELETE,
            &format!("/groups/{gid}"),
            None,
            204,
        )
        .await;
    for r in &role_ids {
        admin
            .expect(reqwest::Method::DELETE, &format!("/roles/{r}"), None, 204)
            .await;
    }
}

/// Stops a process with SIGSTOP (a hung server: the kernel accepts connections, nothing
/// answers) and continues it when dropped.
struct Frozen(nix::unistd::Pid);

impl Frozen {
    fn freeze(pid_file: &Path) -> Self {
        let pid: i32 = std::fs::read_to_string(pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let pid = nix::unistd::Pid::from_raw(pid);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

/// With the sync on and its kube-apiserver frozen, TokenReviews are answered as fast as ever
/// (the sync never blocks them); the sync's errors are counted and `/healthz/sync` fails while
/// `/healthz` and `/readyz` do not; thawed, the sync catches up.
#[tokio::test]
async fn token_reviews_do_not_wait_for_a_frozen_apiserver() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let api = OwnApiserver::start(Path::new(""), Path::new(""), "v1", "");
    let kube = admin_client(&api);
    let dir = tempfile::tempdir().unwrap();
    let sync_file = dir.path().join("sync.yaml");
    std::fs::write(
        &sync_file,
        "data-types-to-sync: [projects]\nnamespace-format: \"kkfrozen-%i\"\n",
    )
    .unwrap();
    let svc = Service::start(Options {
        log_level: "info",
        toml: format!(
            "[sync]\nfile = \"{}\"\nresync_interval = \"1h\"\n[kubernetes]\nkubeconfig = \"{}\"\ntimeout = \"2s\"\n",
            sync_file.display(),
            api.admin.display()
        ),
        ..Default::default()
    })
    .await;
    let team_a = format!("kkfrozen-{}", env("KS_PROJECT_ID"));
    let alice = ks.alice().await;
    let t = Instant::now();
    assert_eq!(svc.token_review("v1", &alice).await["authenticated"], true);
    let before = t.elapsed();
    eventually(
        "the namespace of team-a",
        Duration::from_secs(30),
        async || kube.get::<Namespace>(None, &team_a).await.unwrap(),
    )
    .await;

    let frozen = Frozen::freeze(&api.dir.path().join("kube-apiserver.pid"));
    // Reviews of tokens the service has not seen, each a new sync observation: bob on team-a,
    // alice's role-restricted credential, alice@Default on another project.
    let tokens = [
        ks.password_token(
            "bob",
            "k8s",
            &env("KS_BOB_PASSWORD"),
            Some(("team-a", "k8s")),
        )
        .await,
        ks.app_cred_token(&env("KS_AC_KUBECTL_RO_ID"), &env("KS_AC_KUBECTL_RO_SECRET"))
            .await
            .unwrap(),
        ks.password_token(
            "alice",
            "Default",
            &env("KS_ALICE_PASSWORD"),
            Some(("other", "Default")),
        )
        .await,
    ];
    let mut slowest = Duration::ZERO;
    for token in &tokens {
        let t = Instant::now();
        let status = svc.token_review("v1", token).await;
        let took = t.elapsed();
        assert_eq!(status["authenticated"], true, "{status}");
        assert!(
            took < Duration::from_secs(1),
            "a TokenReview took {took:?} with the apiserver frozen"
        );
        slowest = slowest.max(took);
    }
    eventually(
        "the sync's errors counted",
        Duration::from_secs(30),
        async || {
            (svc.metric("k8s_keystone_auth_sync_errors_total{reason=\"timeout\"}")
                .await
                >= 1)
                .then_some(())
        },
    )
    .await;
    let (code, body) = svc.get("/healthz/sync").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("\"sync\":\"failing\"") && body.contains("no answer"),
        "{body}"
    );
    assert_eq!(svc.get("/healthz").await.0, 200);
    assert_eq!(
        svc.get("/readyz").await.0,
        200,
        "a failing sync does not fail readiness"
    );
    record_figure(&format!(
        "namespace sync: with the kube-apiserver frozen, TokenReviews of new tokens took at most {} ms (before freezing: {} ms)",
        slowest.as_millis(),
        before.as_millis()
    ));

    drop(frozen);
    let other = format!("kkfrozen-{}", env("KS_OTHER_PROJECT_ID"));
    eventually(
        "the sync catching up",
        Duration::from_secs(60),
        async || kube.get::<Namespace>(None, &other).await.ok().flatten(),
    )
    .await;
    eventually(
        "the sync healthy again",
        Duration::from_secs(30),
        async || (svc.get("/healthz/sync").await.0 == 200).then_some(()),
    )
    .await;
}

/// Runs the service with this config (and no in-cluster environment) and expects it to stop at
/// start-up; returns its stderr.
async fn start_fails(dir: &Path, toml: &str) -> String {
    let pki = Pki::new("server");
    pki.write_server(dir);
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{}\"\n[tls]\ncert_file = \"{d}/tls.crt\"\nprivate_key_file = \"{d}/tls.key\"\n[keystone]\nurl = \"{}\"\n{toml}",
            free_port(),
            env("KS_URL"),
            d = dir.display()
        ),
    )
    .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(crate::bins::bin("k8s-keystone-auth"))
            .arg("--config")
            .arg(&config)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KEYSTONE_KUBECONFIG_FILE")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the service kept running with a bad sync set-up")
    .unwrap();
    assert!(!out.status.success(), "started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Bad sync set-ups stop start-up with the key, the file or the flag named, before anything
/// is made in the cluster.
#[tokio::test]
async fn bad_sync_set_ups_stop_start_up_naming_the_key_and_make_nothing() {
    let bed = crate::apiserver::Bed::get("v1");
    let dir = tempfile::tempdir().unwrap();
    let sync_file = dir.path().join("sync.yaml");
    let kubeconfig = bed.admin.display().to_string();
    let exec_kubeconfig = dir.path().join("exec.kubeconfig");
    std::fs::write(
        &exec_kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: plugin-user}}]\nclusters: [{name: k, cluster: {server: \"https://127.0.0.1:6443\"}}]\nusers: [{name: plugin-user, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: kubectl-keystone-auth}}}]\n",
    )
    .unwrap();
    for (sync, kc, want) in [
        (
            "data-types-to-sync: [projects, users]\nnamespace-format: \"kkbad-%i\"\n",
            Some(kubeconfig.as_str()),
            "`data-types-to-sync[1]`: unknown data type \"users\"",
        ),
        (
            "data-types-to-sync: [projects]\nnamespace-format: \"kkbad-%n\"\n",
            Some(kubeconfig.as_str()),
            "`namespace-format` \"kkbad-%n\" must contain %i",
        ),
        (
            "data-types-to-sync: [projects]\nnamespace-format: \"kkbad-%i\"\n",
            None,
            "which needs the Kubernetes API: set --kubeconfig, KEYSTONE_KUBECONFIG_FILE or `kubernetes.kubeconfig`",
        ),
        (
            "data-types-to-sync: [role_assignments]\nnamespace-format: \"kkbad-%i\"\n",
            Some(exec_kubeconfig.to_str().unwrap()),
            "user \"plugin-user\": exec credential plugins are not supported",
        ),
    ] {
        std::fs::write(&sync_file, sync).unwrap();
        let mut toml = format!("[sync]\nfile = \"{}\"\n", sync_file.display());
        if let Some(kc) = kc {
            toml.push_str(&format!("[kubernetes]\nkubeconfig = \"{kc}\"\n"));
        }
        let stderr = start_fails(dir.path(), &toml).await;
        assert!(stderr.contains(want), "{sync}: {stderr}");
        assert!(
            stderr.contains(&sync_file.display().to_string()),
            "the file is named: {stderr}"
        );
        if kc == Some(exec_kubeconfig.to_str().unwrap()) {
            assert!(
                stderr.contains(&exec_kubeconfig.display().to_string()),
                "{stderr}"
            );
        }
    }
    // Nothing was made in the cluster.
    let kube = KubeClient::new(
        ClusterConfig::from_kubeconfig(&bed.admin).unwrap(),
        &ClientSettings::default(),
    )
    .unwrap();
    let made: Vec<String> = kube
        .list::<Namespace>(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.metadata.name)
        .filter(|n| n.starts_with("kkbad-"))
        .collect();
    assert!(made.is_empty(), "{made:?}");
}
