//! End to end through a **real kube-apiserver** (v1.36, built from the upstream Go modules by
//! tests/k8s/) that uses the real `k8s-keystone-auth` as its authentication and authorization
//! webhook, with the real Keystone behind it and the real `kubectl` (and the real
//! `kubectl-keystone-auth` exec plugin) in front. tests/run starts the bed (tests/k8s/bed.sh):
//! one apiserver with the webhook API `v1`, one with `v1beta1`, both with
//! `--authorization-mode=Node,RBAC,Webhook` and the policy tests/k8s/policy.json.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::sandbox::*;
use crate::support::*;

/// One kube-apiserver of the bed.
pub struct Bed {
    pub version: &'static str,
    pub server: String,
    pub ca_file: PathBuf,
    pub admin: PathBuf,
    pub cert_user: PathBuf,
}

fn read_env_file(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (tests/run starts the bed)", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Bed {
    pub fn get(version: &'static str) -> Bed {
        let dir = env(&format!("K8S_{}_DIR", version.to_uppercase()));
        let vars = read_env_file(&Path::new(&dir).join("env"));
        let var = |k: &str| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{k} missing in {dir}/env"))
        };
        assert_eq!(var("K8S_WEBHOOK_VERSION"), version);
        Bed {
            version,
            server: var("K8S_SERVER"),
            ca_file: var("K8S_CA_FILE").into(),
            admin: var("K8S_ADMIN_KUBECONFIG").into(),
            cert_user: var("K8S_USER_KUBECONFIG").into(),
        }
    }

    /// `kubectl` as the cluster admin (client certificate in system:masters); must succeed.
    pub async fn admin(&self, args: &[&str]) -> String {
        let sb = Sandbox::new();
        let mut all = vec!["--kubeconfig", self.admin.to_str().unwrap()];
        all.extend_from_slice(args);
        let run = sb.kubectl(&all, &[]).await;
        assert_eq!(run.code, Some(0), "admin kubectl {args:?}: {}", run.stderr);
        run.stdout
    }

    /// Applies a manifest as the admin.
    pub async fn apply(&self, manifest: &Value) {
        let sb = Sandbox::new();
        let file = sb.path("manifest.json");
        std::fs::write(&file, manifest.to_string()).unwrap();
        self.admin(&["apply", "-f", file.to_str().unwrap()]).await;
    }

    /// A kubeconfig for the application credential, written by `kubectl-keystone-auth kubeconfig`
    /// into the sandbox (exactly as a user makes one).
    pub async fn keystone_kubeconfig(&self, sb: &Sandbox, id: &str, secret: &str) -> PathBuf {
        let kc = sb.path("kubeconfig");
        let run = sb
            .plugin(
                &[
                    "kubeconfig",
                    "--server",
                    &self.server,
                    "--certificate-authority",
                    self.ca_file.to_str().unwrap(),
                    "--command",
                    PLUGIN.as_str(),
                    "--cluster-name",
                    &format!("bed-{}", self.version),
                    "--output",
                    kc.to_str().unwrap(),
                ],
                &[
                    ("OS_AUTH_URL", env("KS_URL")),
                    ("OS_APPLICATION_CREDENTIAL_ID", id.to_string()),
                    ("OS_APPLICATION_CREDENTIAL_SECRET", secret.to_string()),
                ],
            )
            .await;
        assert_eq!(run.code, Some(0), "kubeconfig: {}", run.stderr);
        kc
    }

    /// `kubectl --server ... --token TOKEN ARGS` with no kubeconfig.
    pub async fn with_token(&self, sb: &Sandbox, token: &str, args: &[&str]) -> Run {
        let empty = sb.path("empty.kubeconfig");
        std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").unwrap();
        let mut all = vec![
            "--kubeconfig",
            empty.to_str().unwrap(),
            "--server",
            &self.server,
            "--certificate-authority",
            self.ca_file.to_str().unwrap(),
            "--token",
            token,
        ];
        all.extend_from_slice(args);
        sb.kubectl(&all, &[]).await
    }
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// The namespaces and objects the policy of the bed talks about (idempotent).
async fn seed_cluster(bed: &Bed) {
    bed.apply(&json!({"apiVersion": "v1", "kind": "List", "items": [
        namespace("team-a"), namespace("shared"), namespace("sa-test"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1", "namespace": "shared"}, "data": {"k": "v"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa1", "namespace": "sa-test"}},
    ]}))
    .await;
}

async fn can_i(sb: &Sandbox, kc: &Path, verb: &str, what: &str, ns: &str) -> bool {
    let run = sb
        .as_user(kc, &["auth", "can-i", verb, what, "-n", ns])
        .await;
    // kube-apiserver passes the webhook's reason on: "no - no policy rule matched".
    let first = run.stdout.split_whitespace().next().unwrap_or("");
    match (run.code, first) {
        (Some(0), "yes") => true,
        (Some(1), "no") => false,
        _ => panic!("kubectl auth can-i {verb} {what} -n {ns}: {run:?}"),
    }
}

/// Polls `can-i` until it answers `want` (bounded: RBAC's informers take a moment).
async fn eventually_can_i(sb: &Sandbox, kc: &Path, verb: &str, what: &str, ns: &str, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if can_i(sb, kc, verb, what, ns).await == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "can-i {verb} {what} -n {ns} did not become {want} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A Keystone user through the real apiserver: who kubectl says it is, what the policy
/// answers, what RBAC adds where the policy has no opinion, and allowed and forbidden reads.
async fn keystone_user_through_the_apiserver(version: &'static str) {
    let _ks = KEYSTONE.read().await;
    let bed = Bed::get(version);
    seed_cluster(&bed).await;
    let sb = Sandbox::new();
    // alice's read-only credential (role k8s-viewer only) on project team-a.
    let kc = bed
        .keystone_kubeconfig(
            &sb,
            &env("KS_AC_KUBECTL_RO_ID"),
            &env("KS_AC_KUBECTL_RO_SECRET"),
        )
        .await;

    // kubectl auth whoami: the TokenReview answer as the apiserver took it.
    let user = &sb.whoami(&kc).await;
    assert_eq!(user["username"], "alice", "{user}");
    assert_eq!(user["uid"], env("KS_ALICE_ID"));
    let groups: Vec<&str> = user["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    let project_id = env("KS_PROJECT_ID");
    for g in [
        "k8s-admins",
        "team-a-devs",
        &project_id,
        "system:authenticated",
    ] {
        assert!(groups.contains(&g), "group {g} missing in {groups:?}");
    }
    let extra = &user["extra"];
    let one = |k: &str| extra[format!("alpha.kubernetes.io/identity/{k}")].clone();
    assert_eq!(one("project/id"), json!([project_id]));
    assert_eq!(one("project/name"), json!(["team-a"]));
    assert_eq!(one("roles"), json!(["k8s-viewer"]));
    assert_eq!(one("user/domain/id"), json!([env("KS_DOMAIN_ID")]));
    assert_eq!(one("user/domain/name"), json!(["k8s"]));

    // The policy's answers (tests/k8s/policy.json): rule 0 for k8s-viewer on team-a, rule 2 for
    // every Keystone user on shared/configmaps.
    assert!(can_i(&sb, &kc, "list", "pods", "team-a").await);
    assert!(can_i(&sb, &kc, "get", "configmaps", "shared").await);
    assert!(!can_i(&sb, &kc, "delete", "pods", "team-a").await);
    assert!(!can_i(&sb, &kc, "get", "secrets", "kube-system").await);

    let ok = sb.as_user(&kc, &["get", "pods", "-n", "team-a"]).await;
    assert_eq!(ok.code, Some(0), "get pods -n team-a: {}", ok.stderr);
    let cm = sb
        .as_user(
            &kc,
            &["get", "configmap", "cm1", "-n", "shared", "-o", "name"],
        )
        .await;
    assert_eq!(cm.stdout.trim(), "configmap/cm1", "{}", cm.stderr);
    let forbidden = sb.as_user(&kc, &["get", "pods", "-n", "kube-system"]).await;
    assert_ne!(forbidden.code, Some(0));
    assert!(
        forbidden.stderr.contains("Forbidden") && forbidden.stderr.contains("\"alice\""),
        "{}",
        forbidden.stderr
    );

    // Where the policy has no opinion, RBAC decides: a RoleBinding made by the admin grants,
    // its removal takes the grant back.
    let ns = format!("rbac-{version}");
    bed.apply(&json!({"apiVersion": "v1", "kind": "List", "items": [
        namespace(&ns),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "secret-reader", "namespace": ns},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]},
    ]}))
    .await;
    assert!(!can_i(&sb, &kc, "list", "secrets", &ns).await);
    bed.apply(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "alice-reads-secrets", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": project_id}]}))
    .await;
    eventually_can_i(&sb, &kc, "list", "secrets", &ns, true).await;
    let listed = sb.as_user(&kc, &["get", "secrets", "-n", &ns]).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    bed.admin(&["delete", "rolebinding", "alice-reads-secrets", "-n", &ns])
        .await;
    eventually_can_i(&sb, &kc, "list", "secrets", &ns, false).await;
}

#[tokio::test]
async fn keystone_user_through_the_apiserver_v1() {
    keystone_user_through_the_apiserver("v1").await;
}

#[tokio::test]
async fn keystone_user_through_the_apiserver_v1beta1() {
    keystone_user_through_the_apiserver("v1beta1").await;
}

/// The policy's rule without `users` ("every Keystone user") grants `get configmaps` in
/// `shared`; a ServiceAccount and a client-certificate user must not get it (kube-apiserver puts
/// `authentication.kubernetes.io/credential-id` into their `extra`), and ServiceAccount tokens
/// never reach Keystone.
async fn only_keystone_identities_get_policy_grants(version: &'static str) {
    let _ks = KEYSTONE.write().await;
    let bed = Bed::get(version);
    seed_cluster(&bed).await;
    let sb = Sandbox::new();
    let sa_token = bed
        .admin(&["create", "token", "sa1", "-n", "sa-test"])
        .await
        .trim()
        .to_string();
    record_issued(&sa_token);
    let before = Keystone::access_log_settled().await;

    let sa = bed
        .with_token(&sb, &sa_token, &["get", "configmap", "cm1", "-n", "shared"])
        .await;
    assert_ne!(sa.code, Some(0), "a ServiceAccount got cm1: {}", sa.stdout);
    assert!(
        sa.stderr.contains("Forbidden") && sa.stderr.contains("system:serviceaccount:sa-test:sa1"),
        "{}",
        sa.stderr
    );
    let who = bed
        .with_token(&sb, &sa_token, &["auth", "whoami", "-o", "json"])
        .await;
    let who: Value = serde_json::from_str(&who.stdout).unwrap();
    assert!(
        who["status"]["userInfo"]["extra"]["authentication.kubernetes.io/credential-id"][0]
            .as_str()
            .unwrap()
            .starts_with("JTI="),
        "{who}"
    );

    let cert = sb
        .as_user(&bed.cert_user, &["get", "configmap", "cm1", "-n", "shared"])
        .await;
    assert_ne!(cert.code, Some(0), "a certificate user got cm1");
    assert!(
        cert.stderr.contains("Forbidden") && cert.stderr.contains("\"cert-user\""),
        "{}",
        cert.stderr
    );
    assert_eq!(
        Keystone::access_log_count_settled(before, "/v3/").await,
        0,
        "ServiceAccount and certificate requests must not reach Keystone"
    );
}

#[tokio::test]
async fn only_keystone_identities_get_policy_grants_v1() {
    only_keystone_identities_get_policy_grants("v1").await;
}

#[tokio::test]
async fn only_keystone_identities_get_policy_grants_v1beta1() {
    only_keystone_identities_get_policy_grants("v1beta1").await;
}

#[tokio::test]
async fn invalid_tokens_wrong_secrets_and_deleted_credentials_are_refused_v1() {
    invalid_tokens_wrong_secrets_and_deleted_credentials_are_refused("v1").await;
}

#[tokio::test]
async fn invalid_tokens_wrong_secrets_and_deleted_credentials_are_refused_v1beta1() {
    invalid_tokens_wrong_secrets_and_deleted_credentials_are_refused("v1beta1").await;
}

/// Refusals seen from kubectl: a token Keystone does not know, a wrong secret, a deleted
/// application credential.
async fn invalid_tokens_wrong_secrets_and_deleted_credentials_are_refused(version: &'static str) {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let bed = Bed::get(version);
    let sb = Sandbox::new();

    // A token shaped like a Fernet token that Keystone never issued.
    let fake = format!("gAAAAA{}", "x".repeat(180));
    let run = bed.with_token(&sb, &fake, &["get", "--raw", "/api"]).await;
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("Unauthorized") || run.stderr.contains("must be logged in"),
        "{}",
        run.stderr
    );

    // A working credential, then the same kubeconfig with a wrong secret.
    let name = format!("bed-refusals-{version}-{}", std::process::id());
    let (id, secret) = ks.create_alice_app_cred(&name, json!({})).await;
    let kc = bed.keystone_kubeconfig(&sb, &id, &secret).await;
    let ok = sb.as_user(&kc, &["get", "--raw", "/api"]).await;
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);

    let wrong_sb = Sandbox::new();
    let wrong = wrong_sb.path("wrong.kubeconfig");
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(text.contains(&secret));
    std::fs::write(&wrong, text.replace(&secret, "not-the-secret")).unwrap();
    let run = wrong_sb.as_user(&wrong, &["get", "--raw", "/api"]).await;
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("getting credentials")
            && run.stderr.contains("refused the application credential"),
        "{}",
        run.stderr
    );

    // Deleted: the cached token dies with the credential once the caches let go (see the
    // revocation test for the bound); without the plugin's cache the plugin itself refuses.
    ks.delete_alice_app_cred(&id).await;
    let cleared = sb.plugin(&["clear-cache"], &[]).await;
    assert_eq!(cleared.code, Some(0), "{}", cleared.stderr);
    let run = sb.as_user(&kc, &["get", "--raw", "/api"]).await;
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("refused the application credential"),
        "{}",
        run.stderr
    );
}

/// Deleting an application credential takes effect within the caches' bound: kube-apiserver's
/// 10 s token cache + its webhook cache (`--authentication-token-webhook-cache-ttl`, 30 s in the
/// bed, as docs/kube-apiserver.md and the charm set it) + this service's `cache.ttl` (30 s in the
/// bed). Measured and printed.
#[tokio::test]
async fn a_deleted_credential_is_refused_within_the_cache_bound() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let bed = Bed::get("v1");
    let sb = Sandbox::new();
    let name = format!("bed-revoke-{}", std::process::id());
    let (id, secret) = ks.create_alice_app_cred(&name, json!({})).await;
    let kc = bed.keystone_kubeconfig(&sb, &id, &secret).await;
    let ok = sb.as_user(&kc, &["get", "--raw", "/api"]).await;
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);

    let ttl = |var: &str| -> u64 {
        let v = env(var);
        v.strip_suffix('s')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{var}={v}: expected seconds like 30s"))
    };
    let bound = Duration::from_secs(10 + ttl("BED_AUTHN_CACHE_TTL") + ttl("BED_SERVICE_CACHE_TTL"));
    ks.delete_alice_app_cred(&id).await;
    let deleted = Instant::now();
    loop {
        let run = sb.as_user(&kc, &["get", "--raw", "/api"]).await;
        if run.code != Some(0) {
            assert!(
                run.stderr.contains("Unauthorized") || run.stderr.contains("logged in"),
                "{}",
                run.stderr
            );
            break;
        }
        assert!(
            deleted.elapsed() < bound + Duration::from_secs(5),
            "still accepted {:?} after the deletion (bound {bound:?})",
            deleted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    record_figure(&format!(
        "a deleted application credential was refused by kube-apiserver {:.1} s after the deletion (bound {} s)",
        deleted.elapsed().as_secs_f64(),
        bound.as_secs()
    ));
}

/// Keystone down: kubectl gets an error within a bounded time, the apiserver does not cache the
/// failure, and access comes back with Keystone.
#[tokio::test]
async fn keystone_down_is_a_bounded_error_that_is_not_cached() {
    let _ks = KEYSTONE.write().await;
    let ks = Keystone::get();
    let bed = Bed::get("v1");
    let sb = Sandbox::new();
    // A fresh token that neither the apiserver nor the service has seen.
    let token = ks
        .app_cred_token(&env("KS_AC_KUBECTL_RO_ID"), &env("KS_AC_KUBECTL_RO_SECRET"))
        .await
        .unwrap();
    let restart = RestartKeystone;
    let down = std::process::Command::new("bash")
        .arg(keystone_script("down.sh"))
        .status()
        .unwrap();
    assert!(down.success());

    let run = bed.with_token(&sb, &token, &["get", "--raw", "/api"]).await;
    assert_ne!(run.code, Some(0), "accepted while Keystone is down");
    assert!(
        run.stderr.contains("Unauthorized") || run.stderr.contains("logged in"),
        "{}",
        run.stderr
    );
    assert!(
        run.took < Duration::from_secs(15),
        "kubectl took {:?} with Keystone down",
        run.took
    );
    record_figure(&format!(
        "Keystone down (port closed): kubectl refused in {:.2} s",
        run.took.as_secs_f64()
    ));

    drop(restart); // starts Keystone again
    let run = bed.with_token(&sb, &token, &["get", "--raw", "/api"]).await;
    assert_eq!(run.code, Some(0), "the failure was cached: {}", run.stderr);
}

/// A kube-apiserver of a test's own (tests/k8s/up.sh in a temporary K8S_DIR, no
/// controller manager), stopped by tests/k8s/down.sh when dropped.
pub struct OwnApiserver {
    pub dir: tempfile::TempDir,
    pub server: String,
    pub ca_file: PathBuf,
    pub admin: PathBuf,
}

impl OwnApiserver {
    /// Starts one with these webhook kubeconfigs (an empty path: no such webhook) and webhook
    /// API version. Ports are picked
    /// free, which races with other tests picking ports at the same time: a start that fails on a
    /// port in use is tried again with new ports (at most 3 times).
    pub fn start(authn: &Path, authz: &Path, version: &str, extra_args: &str) -> OwnApiserver {
        Self::start_with_controllers(authn, authz, version, extra_args, "")
    }

    /// [`OwnApiserver::start`] with kube-controller-manager running these `--controllers`
    /// (tests/k8s/up.sh's `K8S_CONTROLLERS`); `""`: none.
    pub fn start_with_controllers(
        authn: &Path,
        authz: &Path,
        version: &str,
        extra_args: &str,
        controllers: &str,
    ) -> OwnApiserver {
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let etcd_port = free_ports(2);
            let mut cmd = std::process::Command::new("bash");
            cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/k8s/up.sh"))
                .env("K8S_DIR", dir.path())
                .env("K8S_PORT", port.to_string())
                .env("K8S_ETCD_PORT", etcd_port.to_string());
            for (var, path) in [
                ("AUTHN_WEBHOOK_CONFIG", authn),
                ("AUTHZ_WEBHOOK_CONFIG", authz),
            ] {
                if !path.as_os_str().is_empty() {
                    cmd.env(var, path);
                }
            }
            let out = cmd
                .env("WEBHOOK_VERSION", version)
                .env("K8S_EXTRA_ARGS", extra_args)
                .env(
                    "K8S_CONTROLLER_MANAGER",
                    if controllers.is_empty() { "0" } else { "1" },
                )
                .env("K8S_CONTROLLERS", controllers)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let guard = OwnApiserver {
                server: format!("https://127.0.0.1:{port}"),
                ca_file: dir.path().join("ca.crt"),
                admin: dir.path().join("admin.kubeconfig"),
                dir,
            };
            if out.status.success() {
                return guard;
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            if !last.contains("already in use") {
                break;
            }
        }
        panic!("tests/k8s/up.sh failed:\n{last}");
    }

    /// `kubectl --token TOKEN ARGS` against it.
    pub async fn with_token(&self, sb: &Sandbox, token: &str, args: &[&str]) -> Run {
        Bed {
            version: "own",
            server: self.server.clone(),
            ca_file: self.ca_file.clone(),
            admin: self.admin.clone(),
            cert_user: self.dir.path().join("user.kubeconfig"),
        }
        .with_token(sb, token, args)
        .await
    }
}

impl Drop for OwnApiserver {
    fn drop(&mut self) {
        let _ = std::fs::copy(
            self.dir.path().join("kube-apiserver.log"),
            log_dir().join(format!(
                "own-apiserver-{}.log",
                self.server.rsplit(':').next().unwrap_or("x")
            )),
        );
        let _ = std::process::Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/k8s/down.sh"))
            .env("K8S_DIR", self.dir.path())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Freezes Keystone's gunicorn processes (SIGSTOP: connections are accepted by the kernel but
/// never answered, as with a hung Keystone) and thaws them when dropped.
struct FrozenKeystone(Vec<nix::unistd::Pid>);

impl FrozenKeystone {
    fn freeze() -> Self {
        let master = std::fs::read_to_string(Path::new(&env("KS_DIR")).join("gunicorn.pid"))
            .unwrap()
            .trim()
            .to_string();
        let children = std::process::Command::new("pgrep")
            .args(["-P", &master])
            .output()
            .unwrap();
        let mut pids: Vec<nix::unistd::Pid> = String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(|p| nix::unistd::Pid::from_raw(p.parse().unwrap()))
            .collect();
        pids.push(nix::unistd::Pid::from_raw(master.parse().unwrap()));
        for p in &pids {
            nix::sys::signal::kill(*p, nix::sys::signal::Signal::SIGSTOP).unwrap();
        }
        FrozenKeystone(pids)
    }
}

impl Drop for FrozenKeystone {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = nix::sys::signal::kill(*p, nix::sys::signal::Signal::SIGCONT);
        }
    }
}

/// A hung Keystone: kubectl gets an error bounded by the service's Keystone timeout (5 s per
/// review; kubectl's discovery retries may ask twice), not the apiserver's 30 s webhook timeout,
/// and once Keystone answers again the same token works (the error was not cached).
#[tokio::test]
async fn a_hung_keystone_is_a_bounded_error_that_is_not_cached() {
    let _ks = KEYSTONE.write().await;
    let ks = Keystone::get();
    let bed = Bed::get("v1");
    let sb = Sandbox::new();
    let token = ks
        .app_cred_token(&env("KS_AC_KUBECTL_RO_ID"), &env("KS_AC_KUBECTL_RO_SECRET"))
        .await
        .unwrap();
    let frozen = FrozenKeystone::freeze();
    let run = bed.with_token(&sb, &token, &["get", "--raw", "/api"]).await;
    drop(frozen);
    assert_ne!(run.code, Some(0), "accepted while Keystone hangs");
    assert!(
        run.took >= Duration::from_secs(4) && run.took < Duration::from_secs(25),
        "kubectl took {:?} with Keystone hanging: {}",
        run.took,
        run.stderr
    );
    record_figure(&format!(
        "Keystone hanging: kubectl refused after {:.1} s (the service's Keystone timeout is 5 s)",
        run.took.as_secs_f64()
    ));
    let run = bed.with_token(&sb, &token, &["get", "--raw", "/api"]).await;
    assert_eq!(run.code, Some(0), "the failure was cached: {}", run.stderr);
}

/// A webhook kubeconfig for a [`Service`] of a test's own (its CA pinned, no client
/// certificate), written next to its config with the one kubeconfig model.
/// Writes a kubeconfig at `path` for a kube-apiserver at `server` (CA in `ca_file`) with a
/// bearer-token user (a ServiceAccount token), as the service's `--kubeconfig`.
pub fn token_kubeconfig(server: &str, ca_file: &Path, user: &str, token: String, path: &Path) {
    use base64::Engine;
    use kk_core::kubeconfig::{
        AuthInfo, Cluster, Config, Context, NamedCluster, NamedContext, NamedUser,
    };
    let kc = Config::single(
        NamedCluster {
            name: "cluster".into(),
            cluster: Cluster {
                server: server.to_string(),
                certificate_authority_data: Some(
                    base64::engine::general_purpose::STANDARD
                        .encode(std::fs::read(ca_file).unwrap()),
                ),
                ..Default::default()
            },
            ..Default::default()
        },
        NamedUser {
            name: user.into(),
            user: AuthInfo {
                token: Some(kk_core::secret::Secret::new(token)),
                ..Default::default()
            },
            ..Default::default()
        },
        NamedContext {
            name: "default".into(),
            context: Context {
                cluster: "cluster".into(),
                user: user.into(),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    std::fs::write(path, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
}

pub fn webhook_kubeconfig(svc: &Service) -> PathBuf {
    let path = svc.dir.path().join("webhook.kubeconfig");
    write_webhook_kubeconfig(&path, svc.port, &svc.pki.ca_pem);
    path
}

/// A webhook kubeconfig for a service on 127.0.0.1:`port` whose CA is `ca_pem`.
/// For a kube-apiserver of a test's own whose webhook is a service started after it: a port
/// and a server PKI chosen now, and the webhook kubeconfig for them in `dir`.
pub fn planned_webhook(dir: &Path) -> (u16, Pki, PathBuf) {
    let (port, pki) = (free_port(), Pki::new("server"));
    let webhook = dir.join("webhook.kubeconfig");
    write_webhook_kubeconfig(&webhook, port, &pki.ca_pem);
    (port, pki, webhook)
}

pub fn write_webhook_kubeconfig(path: &Path, port: u16, ca_pem: &str) {
    use base64::Engine;
    use kk_core::kubeconfig::{Cluster, Config, Context, NamedCluster, NamedContext, NamedUser};
    let kubeconfig = Config::single(
        NamedCluster {
            name: "svc".into(),
            cluster: Cluster {
                server: format!("https://127.0.0.1:{port}/webhook"),
                certificate_authority_data: Some(
                    base64::engine::general_purpose::STANDARD.encode(ca_pem),
                ),
                ..Default::default()
            },
            ..Default::default()
        },
        NamedUser {
            name: "apiserver".into(),
            ..Default::default()
        },
        NamedContext {
            name: "c".into(),
            context: Context {
                cluster: "svc".into(),
                user: "apiserver".into(),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    std::fs::write(path, serde_yaml_ng::to_string(&kubeconfig).unwrap()).unwrap();
}

/// An application credential whose only access rule is `k8s GET /api/v1/namespaces/*/pods`,
/// through a real kube-apiserver: listing pods works, creating a deployment or reading
/// configmaps is denied by the access rules although the policy grants them (alice holds
/// k8s-editor on team-a), and with a service identity its Keystone groups are there for RBAC.
#[tokio::test]
async fn access_rules_bind_what_the_policy_grants() {
    let _ks = KEYSTONE.read().await;
    let policy = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/k8s/policy.json"),
    )
    .unwrap();
    let svc = Service::start(Options {
        policy: Some(policy),
        toml: format!(
            "[keystone.service_identity]\nuser_name = \"admin\"\nuser_domain_id = \"default\"\npassword = \"{}\"\nproject_name = \"admin\"\nproject_domain_id = \"default\"\n",
            env("KS_ADMIN_PASSWORD")
        ),
        log_level: "info",
        ..Default::default()
    })
    .await;
    let kc = webhook_kubeconfig(&svc);
    let api = OwnApiserver::start(&kc, &kc, "v1", "");
    let bed = Bed {
        version: "own",
        server: api.server.clone(),
        ca_file: api.ca_file.clone(),
        admin: api.admin.clone(),
        cert_user: api.dir.path().join("user.kubeconfig"),
    };
    bed.apply(&namespace("team-a")).await;
    let sb = Sandbox::new();
    let kc = bed
        .keystone_kubeconfig(
            &sb,
            &env("KS_AC_KUBECTL_RULES_ID"),
            &env("KS_AC_KUBECTL_RULES_SECRET"),
        )
        .await;

    let user = &sb.whoami(&kc).await;
    assert_eq!(
        user["extra"]["alpha.kubernetes.io/identity/access-rules"],
        json!(["GET /api/v1/namespaces/*/pods"])
    );
    let groups = user["groups"].to_string();
    assert!(
        groups.contains("k8s-admins") && groups.contains("team-a-devs"),
        "the service identity lists the groups: {groups}"
    );

    let pods = sb.as_user(&kc, &["get", "pods", "-n", "team-a"]).await;
    assert_eq!(pods.code, Some(0), "{}", pods.stderr);
    let create = sb
        .as_user(
            &kc,
            &[
                "create",
                "deployment",
                "web",
                "--image=registry.invalid/web",
                "-n",
                "team-a",
            ],
        )
        .await;
    assert_ne!(create.code, Some(0), "created: {}", create.stdout);
    assert!(
        create.stderr.contains("forbidden") && create.stderr.contains("access rules"),
        "{}",
        create.stderr
    );
    let cms = sb
        .as_user(&kc, &["get", "configmaps", "-n", "team-a"])
        .await;
    assert_ne!(cms.code, Some(0));
    assert!(cms.stderr.contains("access rules"), "{}", cms.stderr);
    // The same user with an unrestricted credential may create it (the policy grants).
    let sb2 = Sandbox::new();
    let full = bed
        .keystone_kubeconfig(&sb2, &env("KS_AC_KUBECTL_ID"), &env("KS_AC_KUBECTL_SECRET"))
        .await;
    let create = sb2
        .as_user(
            &full,
            &[
                "create",
                "deployment",
                "web",
                "--image=registry.invalid/web",
                "-n",
                "team-a",
                "--dry-run=server",
            ],
        )
        .await;
    assert_eq!(create.code, Some(0), "{}", create.stderr);
}
