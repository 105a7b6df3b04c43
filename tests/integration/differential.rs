//! Side by side with the Go reference (cloud-provider-openstack v1.36.0's `k8s-keystone-auth` and
//! `client-keystone-auth`, built by tests/go-reference/build.sh; `tests/run` exports
//! `GO_REFERENCE_BIN` and `GO_REFERENCE_SRC`).
//!
//! Both services run on 127.0.0.1 with **the same command line** against the same real Keystone,
//! with Go's own test policy files (read from the downloaded module) and one sync file, and get
//! the same reviews. Every answer must be the same except for the deliberate differences listed
//! in docs/compatibility.md, each of which is asserted here as what it is:
//!
//! * D1: a refused token is HTTP 200 `authenticated: false` here, 401 there;
//! * D2: `v1` reviews are answered here, refused (400) there;
//! * D3: the token is not echoed back, a SubjectAccessReview answer carries a `reason`;
//! * D4: a credential with access rules is authenticated here (with its rules in `extra`), refused
//!   there (it may not list its own groups);
//! * D5: policy rules match only identities this service authenticated (not ServiceAccounts or
//!   certificate users).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

fn go_bin(name: &str) -> PathBuf {
    let dir = std::env::var("GO_REFERENCE_BIN").unwrap_or_else(|_| {
        panic!("GO_REFERENCE_BIN is not set: run the differential tests with tests/run, which builds the Go reference (tests/go-reference/build.sh)")
    });
    let p = Path::new(&dir).join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// A file of the Go reference's module (its test fixtures), read where `go mod download` put it.
fn go_fixture(rel: &str) -> PathBuf {
    let src = env("GO_REFERENCE_SRC");
    let p = Path::new(&src).join(rel);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

struct Side {
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Drop for Side {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both services, started with the same arguments.
struct Pair {
    _dir: tempfile::TempDir,
    ours: Side,
    go: Side,
    http: reqwest::Client,
}

impl Pair {
    /// `args` come after `--listen`, the TLS flags and `--keystone-url`.
    async fn start(args: &[String]) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new("differential");
        pki.write_server(dir.path());
        // Our log goes with the others of the run (scanned for tokens); the Go reference logs
        // in the test's own folder: it is test equipment, not under test.
        let ours = spawn(
            PathBuf::from(crate::bins::bin("k8s-keystone-auth")),
            "ours",
            &log_dir(),
            dir.path(),
            args,
        )
        .await;
        let go = spawn(
            go_bin("k8s-keystone-auth"),
            "go",
            dir.path(),
            dir.path(),
            args,
        )
        .await;
        let http = http_client(Some(&pki.ca_pem))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Pair {
            _dir: dir,
            ours,
            go,
            http,
        }
    }

    async fn post(&self, side: &Side, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("https://127.0.0.1:{}/webhook", side.port))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "POST to port {}: {e}; log {}",
                    side.port,
                    side.log.display()
                )
            });
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// One review to both: (ours, go).
    async fn both(&self, body: &Value) -> ((u16, Value), (u16, Value)) {
        (
            self.post(&self.ours, body).await,
            self.post(&self.go, body).await,
        )
    }

    fn go_log(&self) -> String {
        std::fs::read_to_string(self.go.log.with_extension("err")).unwrap_or_default()
    }
}

/// Starts one service with the shared TLS files in `tls` and `args`; retries on a taken port.
async fn spawn(bin: PathBuf, name: &str, log_dir: &Path, tls: &Path, args: &[String]) -> Side {
    for _attempt in 0..5 {
        let port = free_port();
        let log = log_dir.join(format!("{name}-{port}.log"));
        let mut child = Command::new(&bin)
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--tls-cert-file={}", tls.join("tls.crt").display()))
            .arg(format!(
                "--tls-private-key-file={}",
                tls.join("tls.key").display()
            ))
            .arg(format!("--keystone-url={}", env("KS_URL")))
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("OS_AUTH_URL")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        // Up when the port accepts connections (the Go service has no /healthz).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut exited = None;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Side { port, child, log };
            }
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        if text.contains("address already in use") {
            continue;
        }
        panic!("{name} did not start ({exited:?}); args {args:?}; log:\n{text}");
    }
    panic!("{name}: no free port after 5 attempts");
}

fn token_review(version: &str, token: &str) -> Value {
    json!({"apiVersion": format!("authentication.k8s.io/{version}"), "kind": "TokenReview",
           "metadata": {"creationTimestamp": null}, "spec": {"token": token}, "status": {}})
}

/// Compares one TokenReview answered by both; returns our `status`.
async fn same_token_review(pair: &Pair, what: &str, token: &str) -> Value {
    let ((os, ours), (gs, go)) = pair.both(&token_review("v1beta1", token)).await;
    assert_eq!(os, 200, "{what}: ours {ours}");
    assert_eq!(
        ours["apiVersion"], "authentication.k8s.io/v1beta1",
        "{what}"
    );
    assert_eq!(go["apiVersion"], ours["apiVersion"], "{what}");
    assert_eq!(go["kind"], ours["kind"], "{what}");
    // D3: Go echoes the token back.
    assert!(ours.get("spec").is_none(), "{what}: {ours}");
    if ours["status"]["authenticated"] == true {
        assert_eq!(gs, 200, "{what}: go {go}\n{}", pair.go_log());
        assert_eq!(ours["status"], go["status"], "{what}");
    } else {
        // D1: Go answers 401 with an empty user.
        assert_eq!(gs, 401, "{what}: go {go}");
        assert_eq!(go["status"]["authenticated"], false, "{what}: go {go}");
        assert_eq!(ours["status"], json!({"authenticated": false}), "{what}");
    }
    // D2: v1 is answered here with the same status, refused there.
    let ((os1, ours1), (gs1, go1)) = pair.both(&token_review("v1", token)).await;
    assert_eq!((os1, &ours1["status"]), (200, &ours["status"]), "{what} v1");
    assert_eq!(gs1, 400, "{what} v1: go {go1}");
    ours["status"].clone()
}

const SYNC: &str = "# Go accepts all of this; ours warns about the last three keys.
role-mappings:
  - keystone-role: member
    groups: [mygroup]
  - keystone-role: k8s-viewer
    groups: [viewers, mygroup]
  - keystone-role: admin
    username: the-admin
    groups: [never]
  - keystone-role: ''
    groups: [never-either]
namespace-format: ''
unknown-key: 1
";

#[tokio::test]
async fn token_reviews_match_the_go_reference() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let dir = tempfile::tempdir().unwrap();
    let sync = dir.path().join("sync.yaml");
    std::fs::write(&sync, SYNC).unwrap();
    // Go's own policy fixture, rule 15 (a `nonresource` without `path`) included; with a sync
    // file Go needs a Kubernetes API (it asks for its version at start): the test bed's.
    let kubeconfig = Path::new(&env("K8S_V1_DIR")).join("admin.kubeconfig");
    let pair = Pair::start(&[
        format!(
            "--keystone_policy_file={}",
            go_fixture("pkg/identity/keystone/authorizer_test_policy.json").display()
        ),
        format!("--sync-config-file={}", sync.display()),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--v=2".into(),
        "--log-flush-frequency=5s".into(),
    ])
    .await;

    let alice = ks.alice().await;
    let st = same_token_review(&pair, "password token", &alice).await;
    // The role mappings of the sync file, as Go applies them: alice holds member and k8s-viewer.
    let groups = st["user"]["groups"].as_array().unwrap();
    let tail: Vec<&str> = groups[groups.len() - 4..]
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    let project = env("KS_PROJECT_ID");
    assert_eq!(tail, [project.as_str(), "mygroup", "viewers", "mygroup"]);
    assert_eq!(st["user"]["username"], "alice");

    let ac = ks
        .app_cred_token(&env("KS_AC_KUBECTL_ID"), &env("KS_AC_KUBECTL_SECRET"))
        .await
        .unwrap();
    same_token_review(&pair, "application credential", &ac).await;
    let ro = ks
        .app_cred_token(&env("KS_AC_KUBECTL_RO_ID"), &env("KS_AC_KUBECTL_RO_SECRET"))
        .await
        .unwrap();
    let st = same_token_review(&pair, "role-restricted credential", &ro).await;
    assert_eq!(
        st["user"]["extra"]["alpha.kubernetes.io/identity/roles"],
        json!(["k8s-viewer"])
    );

    for (what, t) in [
        ("not a token", "garbage".to_string()),
        (
            "a fernet-looking invalid token",
            format!("gAAAAA{}", "x".repeat(180)),
        ),
        ("empty", String::new()),
    ] {
        same_token_review(&pair, what, &t).await;
    }
    let unscoped = ks
        .password_token("alice", "k8s", &env("KS_ALICE_PASSWORD"), None)
        .await;
    same_token_review(&pair, "unscoped token", &unscoped).await;

    let admin = ks.admin().await;
    let revoked = ks.alice().await;
    ks.revoke(&admin, &revoked).await;
    same_token_review(&pair, "revoked token", &revoked).await;

    let name = format!("differential-{}", free_port());
    let (id, secret) = ks.create_alice_app_cred(&name, json!({})).await;
    let t = ks.app_cred_token(&id, &secret).await.unwrap();
    ks.delete_alice_app_cred(&id).await;
    same_token_review(&pair, "deleted credential", &t).await;

    let user = format!("dana-{}", free_port());
    let uid = ks.create_member(&admin, &user, "DanaPass123").await;
    let t = ks
        .password_token(&user, "k8s", "DanaPass123", Some(("team-a", "k8s")))
        .await;
    let (s, _) = ks
        .call(
            reqwest::Method::PATCH,
            &format!("/users/{uid}"),
            &admin,
            Some(json!({"user": {"enabled": false}})),
        )
        .await;
    assert_eq!(s, 200);
    same_token_review(&pair, "disabled user", &t).await;
    let (s, _) = ks
        .call(
            reqwest::Method::DELETE,
            &format!("/users/{uid}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(s, 204);

    // D4: a credential with access rules for the `k8s` service.
    let rules = ks
        .app_cred_token(
            &env("KS_AC_KUBECTL_RULES_ID"),
            &env("KS_AC_KUBECTL_RULES_SECRET"),
        )
        .await
        .unwrap();
    let ((os, ours), (gs, _)) = pair.both(&token_review("v1beta1", &rules)).await;
    assert_eq!((os, gs), (200, 401), "{ours}");
    assert_eq!(ours["status"]["authenticated"], true, "{ours}");
    assert!(
        ours["status"]["user"]["extra"]["alpha.kubernetes.io/identity/access-rules"].is_array(),
        "{ours}"
    );
}

/// Every subject, verb, resource, namespace and path named in a policy file, plus some it does
/// not name: the SubjectAccessReviews sent to both services.
fn reviews_for(policy: &Value) -> Vec<Value> {
    let mut names = std::collections::BTreeSet::new();
    let mut verbs =
        std::collections::BTreeSet::from(["get".to_string(), "patch".into(), "watch".into()]);
    let mut resources = std::collections::BTreeSet::from(["pods".to_string(), "unknown".into()]);
    let mut namespaces = std::collections::BTreeSet::from([
        "default".to_string(),
        "kube-system".into(),
        String::new(),
    ]);
    let mut paths = std::collections::BTreeSet::from([
        "/healthz".to_string(),
        "/api/x/y".into(),
        "/zzz".into(),
    ]);
    let mut walk = vec![policy];
    let mut count = 0;
    while let Some(v) = walk.pop() {
        count += 1;
        assert!(count < 100_000, "policy too large to walk");
        match v {
            Value::Array(a) => walk.extend(a),
            Value::Object(o) => {
                for (k, v) in o {
                    match (k.as_str(), v) {
                        ("verbs", Value::Array(a)) => {
                            verbs.extend(a.iter().filter_map(|s| s.as_str()).map(String::from))
                        }
                        ("resources", Value::Array(a)) => resources.extend(
                            a.iter()
                                .filter_map(|s| s.as_str())
                                .map(|s| s.split('/').next().unwrap_or(s).to_string()),
                        ),
                        ("namespace", Value::String(s)) => {
                            namespaces.insert(s.clone());
                        }
                        ("path", Value::String(s)) => {
                            paths.insert(s.trim_end_matches('*').to_string());
                        }
                        ("values" | "roles" | "projects", Value::Array(a)) => {
                            names.extend(a.iter().filter_map(|s| s.as_str()).map(String::from))
                        }
                        ("resource_permissions", Value::Object(m)) => {
                            for (key, verbs_of) in m {
                                let parts: Vec<&str> = key.split('/').collect();
                                for part in parts {
                                    for w in part.split(|c: char| {
                                        !c.is_ascii_alphanumeric() && c != '_' && c != '-'
                                    }) {
                                        if !w.is_empty() {
                                            resources.insert(w.to_string());
                                            namespaces.insert(w.to_string());
                                        }
                                    }
                                }
                                walk.push(verbs_of);
                            }
                        }
                        ("nonresource_permissions", Value::Object(m)) => {
                            paths.extend(m.keys().cloned());
                        }
                        _ => walk.push(v),
                    }
                }
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => {}
        }
    }
    verbs.remove("*");
    verbs.remove("");
    resources.remove("*");
    names.remove("*");
    let names: Vec<String> = names.into_iter().collect();
    // Subjects: each name as user, group, project and role at once, and one knowing nothing.
    let mut subjects: Vec<(String, Vec<String>, String, Vec<String>)> = names
        .iter()
        .map(|n| (n.clone(), vec![n.clone()], n.clone(), vec![n.clone()]))
        .collect();
    subjects.push(("nobody".into(), vec![], "nowhere".into(), vec![]));
    // And everything at once (rules with several `match` entries or roles).
    subjects.push((
        "user1".into(),
        names.clone(),
        names.first().cloned().unwrap_or_default(),
        names.clone(),
    ));
    let mut out = Vec::new();
    for (user, groups, project, roles) in &subjects {
        let extra = json!({
            "alpha.kubernetes.io/identity/project/id": [project],
            "alpha.kubernetes.io/identity/project/name": [project],
            "alpha.kubernetes.io/identity/roles": roles,
            "alpha.kubernetes.io/identity/user/domain/id": ["default"],
            "alpha.kubernetes.io/identity/user/domain/name": ["Default"],
        });
        let spec = |attrs: Value| {
            let mut s = json!({"user": user, "group": groups, "uid": user, "extra": extra});
            for (k, v) in attrs.as_object().unwrap() {
                s[k] = v.clone();
            }
            json!({"apiVersion": "authorization.k8s.io/v1beta1", "kind": "SubjectAccessReview", "spec": s})
        };
        for verb in &verbs {
            for res in &resources {
                for ns in &namespaces {
                    out.push(spec(json!({"resourceAttributes": {"verb": verb, "namespace": ns, "group": "", "version": "v1", "resource": res}})));
                }
            }
            for path in &paths {
                out.push(spec(
                    json!({"nonResourceAttributes": {"verb": verb, "path": path}}),
                ));
            }
        }
    }
    out
}

async fn same_decisions(pair: &Pair, policy: &Value, what: &str) -> (usize, usize) {
    let reviews = reviews_for(policy);
    let mut allowed = 0;
    for r in &reviews {
        let ((os, ours), (gs, go)) = pair.both(r).await;
        assert_eq!((os, gs), (200, 200), "{what}: {r}\nours {ours}\ngo {go}");
        // D3: only `allowed` is compared; ours also says why.
        assert_eq!(
            ours["status"]["allowed"],
            go["status"]["allowed"].as_bool().unwrap_or(false),
            "{what}: {r}\nours {ours}\ngo {go}"
        );
        assert_eq!(go["apiVersion"], ours["apiVersion"]);
        if ours["status"]["allowed"] == true {
            allowed += 1;
        }
    }
    (reviews.len(), allowed)
}

#[tokio::test]
async fn decisions_on_go_s_own_policies_match_the_go_reference() {
    for fixture in [
        "pkg/identity/keystone/authorizer_test_policy.json",
        "pkg/identity/keystone/authorizer_test_policy_version2.json",
    ] {
        let path = go_fixture(fixture);
        let policy: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let pair = Pair::start(&[format!("--keystone-policy-file={}", path.display())]).await;
        let (n, allowed) = same_decisions(&pair, &policy, fixture).await;
        // The walk must have produced reviews that each policy allows and denies.
        assert!(
            allowed > 10 && allowed < n,
            "{fixture}: {allowed} of {n} allowed"
        );
        record_figure(&format!(
            "differential: {fixture}: {n} SubjectAccessReviews, {allowed} allowed, same decision as the Go reference for each"
        ));
    }
}

#[tokio::test]
async fn a_service_account_is_granted_by_go_s_rules_without_users_and_not_here() {
    // D5, shown on the same request.
    let policy = r#"[{"resource_permissions": {"*/configmaps": ["get"]}}]"#;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.json");
    std::fs::write(&p, policy).unwrap();
    let pair = Pair::start(&[format!("--keystone-policy-file={}", p.display())]).await;
    let sa = json!({"apiVersion": "authorization.k8s.io/v1beta1", "kind": "SubjectAccessReview", "spec": {
        "user": "system:serviceaccount:shared:default", "group": ["system:serviceaccounts"],
        "extra": {"authentication.kubernetes.io/credential-id": ["JTI=1"]},
        "resourceAttributes": {"verb": "get", "namespace": "shared", "version": "v1", "resource": "configmaps"}}});
    let ((_, ours), (_, go)) = pair.both(&sa).await;
    assert_eq!(go["status"]["allowed"], true, "{go}");
    assert_eq!(ours["status"]["allowed"], false, "{ours}");
    assert_eq!(ours["status"]["reason"], "not a Keystone identity");
}

/// Runs a plugin with flags and variables and no terminal; returns (exit code, stdout JSON).
fn run_plugin(bin: &Path, args: &[&str], vars: &[(&str, String)]) -> (Option<i32>, Value, String) {
    run_plugin_as(bin, args, vars, "v1beta1")
}

fn run_plugin_as(
    bin: &Path,
    args: &[&str],
    vars: &[(&str, String)],
    exec_version: &str,
) -> (Option<i32>, Value, String) {
    let mut c = Command::new(bin);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", tempfile::tempdir().unwrap().keep())
        .env(
            "KUBERNETES_EXEC_INFO",
            format!(r#"{{"apiVersion":"client.authentication.k8s.io/{exec_version}","kind":"ExecCredential","spec":{{"interactive":false}}}}"#),
        )
        .stdin(Stdio::null());
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    if let Some(t) = v["status"]["token"].as_str() {
        record_issued(t);
    }
    (
        out.status.code(),
        v,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Environment variables of a plugin run.
type Vars<'a> = Vec<(&'a str, String)>;

#[tokio::test]
async fn both_plugins_log_in_with_the_same_flags_and_variables() {
    let _ks = KEYSTONE.read().await;
    let ours = PathBuf::from(crate::bins::bin("kubectl-keystone-auth"));
    let go = go_bin("client-keystone-auth");
    let url = env("KS_URL");
    let ac_id = env("KS_AC_KUBECTL_ID");
    let ac_secret = env("KS_AC_KUBECTL_SECRET");
    let password = env("KS_ALICE_PASSWORD");
    let cases: Vec<(&str, Vec<String>, Vars<'_>)> = vec![
        (
            // Go's client takes an application credential from flags only with id, name and
            // secret all given (D6).
            "application credential by flags",
            vec![
                format!("--keystone-url={url}"),
                format!("--application-credential-id={ac_id}"),
                "--application-credential-name=kubectl".into(),
                format!("--application-credential-secret={ac_secret}"),
            ],
            vec![],
        ),
        (
            "application credential by OS_* variables",
            vec![],
            vec![
                ("OS_AUTH_URL", url.clone()),
                ("OS_AUTH_TYPE", "v3applicationcredential".into()),
                ("OS_APPLICATION_CREDENTIAL_ID", ac_id.clone()),
                ("OS_APPLICATION_CREDENTIAL_SECRET", ac_secret.clone()),
            ],
        ),
        (
            "password by flags",
            vec![
                format!("--keystone_url={url}"),
                "--user-name=alice".into(),
                format!("--password={password}"),
                "--project-name=team-a".into(),
                "--domain-name=k8s".into(),
                "--v=2".into(),
            ],
            vec![],
        ),
        (
            "password by OS_* variables",
            vec![],
            vec![
                ("OS_AUTH_URL", url.clone()),
                ("OS_USERNAME", "alice".into()),
                ("OS_PASSWORD", password.clone()),
                ("OS_PROJECT_NAME", "team-a".into()),
                ("OS_USER_DOMAIN_NAME", "k8s".into()),
                ("OS_PROJECT_DOMAIN_NAME", "k8s".into()),
            ],
        ),
        (
            "password by gophercloud's older variables",
            vec![],
            vec![
                ("OS_AUTH_URL", url.clone()),
                ("OS_USERNAME", "alice".into()),
                ("OS_PASSWORD", password.clone()),
                ("OS_TENANT_NAME", "team-a".into()),
                ("OS_DEFAULT_DOMAIN", env("KS_DOMAIN_ID")),
            ],
        ),
    ];
    let svc = Service::start(Options::default()).await;
    for (what, args, vars) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (oc, o, oerr) = run_plugin(&ours, &args, vars);
        let (gc, g, gerr) = run_plugin(&go, &args, vars);
        assert_eq!(oc, Some(0), "{what}: ours: {oerr}");
        assert_eq!(gc, Some(0), "{what}: go: {gerr}");
        assert_eq!(o["apiVersion"], g["apiVersion"], "{what}");
        assert_eq!(o["kind"], g["kind"], "{what}");
        assert!(
            g["status"]["expirationTimestamp"].is_string(),
            "{what}: {g}"
        );
        assert!(
            o["status"]["expirationTimestamp"].is_string(),
            "{what}: {o}"
        );
        // Each token is the same Keystone identity.
        let a = svc
            .token_review("v1", o["status"]["token"].as_str().unwrap())
            .await;
        let b = svc
            .token_review("v1", g["status"]["token"].as_str().unwrap())
            .await;
        assert_eq!(a["authenticated"], true, "{what}: {a}");
        assert_eq!(a["user"], b["user"], "{what}");
    }

    // D6: with id and secret but no name, Go ignores every flag and reads OS_* variables only;
    // ours logs in.
    let args = [
        format!("--keystone-url={url}"),
        format!("--application-credential-id={ac_id}"),
        format!("--application-credential-secret={ac_secret}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (oc, o, oerr) = run_plugin(&ours, &args, &[]);
    let (gc, _, gerr) = run_plugin(&go, &args, &[]);
    assert_eq!(oc, Some(0), "ours: {oerr}");
    assert!(o["status"]["token"].is_string());
    assert_eq!(gc, Some(1));
    assert!(
        gerr.contains("Missing input for argument [auth_url]"),
        "{gerr}"
    );

    // D7: a wrong secret. Go prints an ExecCredential without a token and exits 0; ours exits
    // 1 and prints nothing on stdout.
    let vars = [
        ("OS_AUTH_URL", url.clone()),
        ("OS_AUTH_TYPE", "v3applicationcredential".to_string()),
        ("OS_APPLICATION_CREDENTIAL_ID", ac_id.clone()),
        (
            "OS_APPLICATION_CREDENTIAL_SECRET",
            "wrong-secret".to_string(),
        ),
    ];
    let (oc, o, _) = run_plugin(&ours, &[], &vars);
    let (gc, g, gerr) = run_plugin(&go, &[], &vars);
    assert_eq!((oc, o), (Some(1), Value::Null));
    assert_eq!(gc, Some(0), "{gerr}");
    assert_eq!(g["kind"], "ExecCredential", "{g}");
    assert!(
        g["status"]["token"].as_str().is_none_or(str::is_empty),
        "{g}"
    );

    // D8: kubectl asks for exec API v1 (what `kubectl-keystone-auth kubeconfig` writes): ours
    // answers v1, Go always v1beta1, which kubectl refuses for such a kubeconfig.
    let vars = &cases[1].2;
    let (oc, o, _) = run_plugin_as(&ours, &[], vars, "v1");
    let (gc, g, _) = run_plugin_as(&go, &[], vars, "v1");
    assert_eq!((oc, gc), (Some(0), Some(0)));
    assert_eq!(o["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(g["apiVersion"], "client.authentication.k8s.io/v1beta1");
}

/// The policies the Go reference's documentation gives, read from its module as an operator
/// would copy them: each `policies: |` key of a ConfigMap in a `cat <<EOF` block of
/// docs/keystone-auth/using-keystone-webhook-authenticator-and-authorizer.md, and the ConfigMap
/// of examples/webhook/keystone-policy-configmap.yaml. Returns (where, policy JSON text).
fn documented_policies() -> Vec<(String, String)> {
    let policies_of = |where_: String, yaml: &str| -> (String, String) {
        let cm: Value = serde_yaml_ng::from_str(yaml)
            .unwrap_or_else(|e| panic!("{where_}: not YAML: {e}\n{yaml}"));
        assert_eq!(cm["kind"], "ConfigMap", "{where_}");
        let text = cm["data"]["policies"]
            .as_str()
            .unwrap_or_else(|| panic!("{where_}: no data.policies"));
        (where_, text.to_string())
    };
    let doc = "docs/keystone-auth/using-keystone-webhook-authenticator-and-authorizer.md";
    let text = std::fs::read_to_string(go_fixture(doc)).unwrap();
    let mut out = Vec::new();
    let mut block: Option<(usize, Vec<&str>)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut block {
            None if line.contains("cat <<EOF") => block = Some((n + 1, Vec::new())),
            None => {}
            Some((start, lines)) if line.trim() == "EOF" => {
                let yaml = lines.join("\n");
                if yaml.contains("policies: |") {
                    out.push(policies_of(format!("{doc}:{start}"), &yaml));
                }
                block = None;
            }
            Some((_, lines)) => lines.push(line),
        }
    }
    let example = "examples/webhook/keystone-policy-configmap.yaml";
    out.push(policies_of(
        example.into(),
        &std::fs::read_to_string(go_fixture(example)).unwrap(),
    ));
    out
}

/// Our decision for a Keystone user of project `project` with `roles`.
fn ours_allows(
    policy: &kk_policy::Policy,
    project: &str,
    roles: &[&str],
    attributes: kk_policy::Attributes<'_>,
) -> bool {
    let extra = std::collections::BTreeMap::from([
        (
            "alpha.kubernetes.io/identity/project/id".to_string(),
            vec![format!("{project}-id")],
        ),
        (
            "alpha.kubernetes.io/identity/project/name".to_string(),
            vec![project.to_string()],
        ),
        (
            "alpha.kubernetes.io/identity/roles".to_string(),
            roles.iter().map(|r| r.to_string()).collect(),
        ),
    ]);
    policy
        .evaluate(&kk_policy::Request {
            user: "demo",
            uid: "demo-id",
            groups: &[format!("{project}-id")],
            extra: Some(&extra),
            attributes,
        })
        .allowed
}

fn resource<'a>(
    verb: &'a str,
    namespace: &'a str,
    resource: &'a str,
    subresource: &'a str,
) -> kk_policy::Attributes<'a> {
    kk_policy::Attributes::Resource {
        verb,
        namespace,
        group: "",
        version: "v1",
        resource,
        subresource,
        name: "",
    }
}

/// The documented policies mean here what the documentation says they mean (its prose and its
/// curl example: project `demo`, role `member`, may read pods), and each gets the same decision
/// as from the Go reference on every review [`reviews_for`] derives from it.
#[tokio::test]
async fn the_go_documentation_s_policies_mean_the_same_here() {
    let docs = documented_policies();
    // Version 1 and the sub-resource example in the guide, version 2 in the example file.
    assert_eq!(docs.len(), 3, "{docs:#?}");
    for (where_, text) in &docs {
        let parsed = kk_policy::Policy::parse(text).unwrap_or_else(|e| panic!("{where_}: {e}"));
        assert!(
            parsed.warnings.is_empty(),
            "{where_}: {:?}",
            parsed.warnings
        );
        let p = &parsed.policy;
        let exec_example = text.contains("pods/exec");
        if exec_example {
            // "we only want to allow client to be able to `kubectl exec` into pod and only in
            // `utility` namespace", plus discovery.
            let exec = ["utility_exec"];
            for path in ["/api", "/api/v1", "/apis", "/apis/apps/v1"] {
                let get = kk_policy::Attributes::NonResource { verb: "get", path };
                assert!(ours_allows(p, "p", &exec, get), "{where_}: {path}");
            }
            let version = kk_policy::Attributes::NonResource {
                verb: "get",
                path: "/version",
            };
            assert!(!ours_allows(p, "p", &exec, version), "{where_}");
            assert!(
                ours_allows(p, "p", &exec, resource("create", "utility", "pods", "exec")),
                "{where_}"
            );
            assert!(
                !ours_allows(p, "p", &exec, resource("create", "default", "pods", "exec")),
                "{where_}"
            );
            assert!(
                !ours_allows(p, "p", &exec, resource("get", "utility", "pods", "")),
                "{where_}"
            );
            let api = kk_policy::Attributes::NonResource {
                verb: "get",
                path: "/api",
            };
            assert!(!ours_allows(p, "p", &["member"], api), "{where_}");
        } else {
            // The guide's curl SubjectAccessReview: demo/member gets pod1 in default: allowed.
            let member = ["load-balancer_member", "member"];
            assert!(
                ours_allows(p, "demo", &member, resource("get", "default", "pods", "")),
                "{where_}"
            );
            assert!(
                ours_allows(p, "demo", &member, resource("watch", "default", "pods", "")),
                "{where_}"
            );
            assert!(
                !ours_allows(
                    p,
                    "demo",
                    &member,
                    resource("create", "default", "pods", "")
                ),
                "{where_}"
            );
            assert!(
                !ours_allows(
                    p,
                    "demo",
                    &member,
                    resource("get", "default", "services", "")
                ),
                "{where_}"
            );
            assert!(
                !ours_allows(p, "other", &member, resource("get", "default", "pods", "")),
                "{where_}"
            );
            assert!(
                !ours_allows(
                    p,
                    "demo",
                    &["reader"],
                    resource("get", "default", "pods", "")
                ),
                "{where_}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.json");
        std::fs::write(&file, text).unwrap();
        let pair = Pair::start(&[format!("--keystone-policy-file={}", file.display())]).await;
        let policy: Value = serde_json::from_str(text).unwrap();
        let (n, allowed) = same_decisions(&pair, &policy, where_).await;
        assert!(
            allowed > 0 && allowed < n,
            "{where_}: {allowed} of {n} allowed"
        );
        record_figure(&format!(
            "differential: {where_}: the documented policy, {n} SubjectAccessReviews, {allowed} allowed, same decision as the Go reference for each"
        ));
    }
}
