//! `kubectl-keystone-auth` against the real Keystone, the real `k8s-keystone-auth` and the real
//! `kubectl`: every credential source, the exec info versions, the disk cache and its lock
//! (counted in Keystone's access log), the kubeconfig generator with minting and merging.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::sandbox::*;
use crate::support::*;

const TOKENS: &str = "\"POST /v3/auth/tokens";
const V1: &str = "client.authentication.k8s.io/v1";
const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

fn app_cred_env() -> Vec<(&'static str, String)> {
    vec![
        ("OS_AUTH_URL", env("KS_URL")),
        ("OS_APPLICATION_CREDENTIAL_ID", env("KS_AC_KUBECTL_ID")),
        (
            "OS_APPLICATION_CREDENTIAL_SECRET",
            env("KS_AC_KUBECTL_SECRET"),
        ),
    ]
}

fn exec_info(version: &str) -> (&'static str, String) {
    (
        "KUBERNETES_EXEC_INFO",
        json!({"kind": "ExecCredential", "apiVersion": version, "spec": {"interactive": false}})
            .to_string(),
    )
}

fn unique(prefix: &str) -> String {
    let n = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{n}", std::process::id())
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn cache_files(sandbox: &Sandbox) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(sandbox.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

/// The real kubectl (see [`crate::apiserver::kubectl_bin`]).
fn kubectl() -> PathBuf {
    crate::sandbox::kubectl_bin()
}

/// A real kube-apiserver (tests/k8s/up.sh) whose authentication and authorization webhook is
/// the given service, with its webhook cache off (`--authentication-token-webhook-cache-ttl=0s`;
/// its own 10 s token cache stays), so that what the service answers reaches kubectl soon.
struct Apiserver {
    url: String,
    ca_file: PathBuf,
    _api: crate::apiserver::OwnApiserver,
}

impl Apiserver {
    async fn start(svc: &Service) -> Self {
        let kc = crate::apiserver::webhook_kubeconfig(svc);
        let api = tokio::task::spawn_blocking(move || {
            crate::apiserver::OwnApiserver::start(
                &kc,
                &kc,
                "v1",
                "--authentication-token-webhook-cache-ttl=0s",
            )
        })
        .await
        .unwrap();
        Self {
            url: api.server.clone(),
            ca_file: api.ca_file.clone(),
            _api: api,
        }
    }
}

/// TokenReviews the service answered with `result` (`authenticated`, `unauthenticated`).
async fn token_reviews(svc: &Service, result: &str) -> u64 {
    svc.metric(&format!(
        "k8s_keystone_auth_reviews_total{{kind=\"TokenReview\",result=\"{result}\"}}"
    ))
    .await
}

/// A service that does not cache answers, so that a deleted credential is seen at once.
async fn uncached_service() -> Service {
    Service::start(Options {
        toml: "[cache]\nttl = \"0s\"\nnegative_ttl = \"0s\"\n".into(),
        log_level: "info",
        ..Options::default()
    })
    .await
}

async fn assert_is_alice(svc: &Service, token: &str, project: bool) {
    let status = svc.token_review("v1", token).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(status["user"]["username"], "alice");
    assert_eq!(status["user"]["uid"], env("KS_ALICE_ID"));
    if project {
        assert_eq!(
            status["user"]["extra"]["alpha.kubernetes.io/identity/project/name"][0],
            "team-a"
        );
    }
}

fn read_yaml(p: &Path) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn kubeconfig_env(kc: &serde_yaml_ng::Value, name: &str) -> Option<String> {
    kc["users"][0]["user"]["exec"]["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

#[tokio::test]
async fn kubectl_with_a_generated_kubeconfig_works_until_the_credential_is_deleted() {
    // The write lock: no other test's requests in Keystone's access log while counting.
    let _ks = KEYSTONE.write().await;
    let ks = Keystone::get();
    let svc = uncached_service().await;
    let api = Apiserver::start(&svc).await;
    let (id, secret) = ks
        .create_alice_app_cred(&unique("plugin-kubectl"), json!({}))
        .await;
    let sb = Sandbox::new();
    let kc = sb.path("kubeconfig");
    let kc_s = kc.to_str().unwrap();
    let ca = api.ca_file.to_str().unwrap().to_string();
    let run = sb
        .plugin(
            &[
                "kubeconfig",
                "--server",
                &api.url,
                "--certificate-authority",
                &ca,
                "--command",
                PLUGIN.as_str(),
                "--cluster-name",
                "garr",
                "--namespace",
                "team-a",
                "--output",
                kc_s,
            ],
            &[
                ("OS_AUTH_URL", env("KS_URL")),
                ("OS_APPLICATION_CREDENTIAL_ID", id.clone()),
                ("OS_APPLICATION_CREDENTIAL_SECRET", secret.clone()),
            ],
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "the kubeconfig went to the file");
    assert_eq!(mode(&kc), 0o600, "the kubeconfig holds a secret");
    let doc = read_yaml(&kc);
    let exec = &doc["users"][0]["user"]["exec"];
    assert_eq!(exec["apiVersion"].as_str(), Some(V1));
    assert_eq!(exec["interactiveMode"].as_str(), Some("Never"));
    assert!(
        exec["installHint"]
            .as_str()
            .unwrap()
            .contains("kubectl-keystone-auth")
    );
    assert_eq!(
        kubeconfig_env(&doc, "OS_APPLICATION_CREDENTIAL_ID"),
        Some(id.clone())
    );
    assert_eq!(
        kubeconfig_env(&doc, "OS_AUTH_TYPE").as_deref(),
        Some("v3applicationcredential")
    );
    assert_eq!(doc["current-context"].as_str(), Some("keystone@garr"));

    let kubectl = kubectl();
    let kubectl = kubectl.to_str().unwrap();
    let get_api = ["--kubeconfig", kc_s, "get", "--raw", "/api"];
    let ok = sb.run_program(kubectl, &get_api, &[]).await;
    assert_eq!(ok.code, Some(0), "kubectl failed: {}", ok.stderr);
    let answer: Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(answer["kind"], "APIVersions");
    assert!(token_reviews(&svc, "authenticated").await >= 1);
    assert_eq!(cache_files(&sb).len(), 1, "the plugin cached its token");
    // A second kubectl run reuses the cached token: no POST /v3/auth/tokens.
    let before = Keystone::access_log_settled().await;
    let again = sb.run_program(kubectl, &get_api, &[]).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(
        Keystone::access_log_count_settled(before, TOKENS).await,
        0,
        "the second kubectl run must not ask Keystone for a token"
    );

    ks.delete_alice_app_cred(&id).await;
    // The cached token died with the credential: the apiserver refuses it once its own 10 s
    // token cache lets go (the service and the webhook cache do not cache here).
    let refused_before = token_reviews(&svc, "unauthenticated").await;
    let mut denied = sb.run_program(kubectl, &get_api, &[]).await;
    for _ in 0..40 {
        if denied.code != Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        denied = sb.run_program(kubectl, &get_api, &[]).await;
    }
    assert_ne!(
        denied.code,
        Some(0),
        "kubectl must fail after the credential is deleted"
    );
    assert!(
        denied.stderr.contains("Unauthorized") || denied.stderr.contains("logged in"),
        "{}",
        denied.stderr
    );
    assert!(token_reviews(&svc, "unauthenticated").await > refused_before);
    // Without the cache, the plugin itself fails and kubectl says so.
    let cleared = sb.plugin(&["clear-cache"], &[]).await;
    assert_eq!(cleared.code, Some(0), "{}", cleared.stderr);
    assert!(cache_files(&sb).is_empty());
    let denied = sb.run_program(kubectl, &get_api, &[]).await;
    assert_ne!(denied.code, Some(0));
    assert!(
        denied.stderr.contains("getting credentials"),
        "{}",
        denied.stderr
    );
    assert!(
        denied.stderr.contains("refused the application credential"),
        "{}",
        denied.stderr
    );
}

#[tokio::test]
async fn eight_parallel_runs_make_one_keystone_request_and_renewal_happens_near_expiry() {
    let _ks = KEYSTONE.write().await;
    let sb = Sandbox::new();
    let env = app_cred_env();
    let before = Keystone::access_log_settled().await;
    let runs = futures_util::future::join_all((0..8).map(|_| sb.plugin(&[], &env))).await;
    let tokens: Vec<String> = runs.iter().map(Run::token).collect();
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "all eight runs hand out the same token"
    );
    assert_eq!(
        Keystone::access_log_count_settled(before, TOKENS).await,
        1,
        "eight parallel runs must make exactly one POST /v3/auth/tokens"
    );
    let files = cache_files(&sb);
    assert_eq!(files.len(), 1);
    assert_eq!(mode(&sb.cache_dir()), 0o700);
    assert_eq!(mode(&files[0]), 0o600);
    let name = files[0].file_stem().unwrap().to_str().unwrap().to_string();
    assert_eq!(name.len(), 64, "named by a SHA-256");
    assert!(!name.contains(&env[1].1) && !name.contains(&env[2].1));

    let before = Keystone::access_log_settled().await;
    assert_eq!(sb.plugin(&[], &env).await.token(), tokens[0]);
    assert_eq!(
        Keystone::access_log_count_settled(before, TOKENS).await,
        0,
        "a fresh cached token is reused"
    );

    // The token expires within the refresh margin: renewed once, then reused again.
    let before = Keystone::access_log_settled().await;
    let renewed = sb.plugin(&["--refresh-margin", "2h"], &env).await.token();
    assert_ne!(renewed, tokens[0]);
    assert_eq!(Keystone::access_log_count_settled(before, TOKENS).await, 1);
    let before = Keystone::access_log_settled().await;
    assert_eq!(sb.plugin(&[], &env).await.token(), renewed);
    assert_eq!(Keystone::access_log_count_settled(before, TOKENS).await, 0);

    // A credential that expires in 3 minutes: Keystone caps its tokens' expiry, so the token is
    // always within the default 5-minute margin and every run renews it.
    let ks = Keystone::get();
    let expires = kk_core::timefmt::format_rfc3339(SystemTime::now() + Duration::from_secs(180));
    let (id, secret) = ks
        .create_alice_app_cred(&unique("plugin-short"), json!({"expires_at": expires}))
        .await;
    let short_env = vec![
        ("OS_AUTH_URL", crate::support::env("KS_URL")),
        ("OS_APPLICATION_CREDENTIAL_ID", id.clone()),
        ("OS_APPLICATION_CREDENTIAL_SECRET", secret),
    ];
    let before = Keystone::access_log_settled().await;
    let first = sb.plugin(&[], &short_env).await.credential();
    let exp = first["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .to_string();
    let exp_t = kk_core::timefmt::parse_rfc3339(&exp).unwrap();
    assert!(
        exp_t <= SystemTime::now() + Duration::from_secs(181),
        "token expiry {exp} is capped by the credential's"
    );
    let _second = sb.plugin(&[], &short_env).await.credential();
    assert_eq!(
        Keystone::access_log_count_settled(before, TOKENS).await,
        2,
        "a cached token that nears expiry is renewed"
    );
    ks.delete_alice_app_cred(&id).await;
}

#[tokio::test]
async fn exec_info_versions_are_answered_in_kind() {
    let _ks = KEYSTONE.read().await;
    let sb = Sandbox::new();
    let mut env = app_cred_env();
    let none = sb.plugin(&[], &env).await.credential();
    assert_eq!(none["apiVersion"], V1BETA1, "no exec info: v1beta1");
    env.push(exec_info(V1));
    let v1 = sb.plugin(&[], &env).await.credential();
    assert_eq!(v1["apiVersion"], V1);
    let t = kk_core::timefmt::parse_rfc3339(v1["status"]["expirationTimestamp"].as_str().unwrap())
        .unwrap();
    assert!(
        t > SystemTime::now() + Duration::from_secs(600),
        "expiry comes from Keystone's expires_at"
    );
    env.pop();
    env.push(exec_info(V1BETA1));
    assert_eq!(
        sb.plugin(&[], &env).await.credential()["apiVersion"],
        V1BETA1
    );
    env.pop();
    env.push(exec_info("client.authentication.k8s.io/v1alpha1"));
    let bad = sb.plugin(&[], &env).await;
    assert!(bad.failed().contains("v1alpha1"), "{}", bad.stderr);
}

#[tokio::test]
async fn every_credential_source_gets_alice_a_token() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let svc = Service::start(Options::default()).await;
    let sb = Sandbox::new();
    let url = env("KS_URL");
    let (ac_id, ac_secret) = (env("KS_AC_KUBECTL_ID"), env("KS_AC_KUBECTL_SECRET"));
    let password = env("KS_ALICE_PASSWORD");
    let no_cache = ["--no-cache"];

    // Flags: the reference's flags, application credential by id (the GARR Horizon kubeconfig
    // passes --domain-name=none and --user-name too), and by name + user.
    let t = sb
        .plugin(
            &[
                "--no-cache",
                "--keystone-url",
                &url,
                "--domain-name",
                "none",
                "--user-name",
                "alice",
                "--application-credential-id",
                &ac_id,
                "--application-credential-secret",
                &ac_secret,
            ],
            &[],
        )
        .await
        .token();
    assert_is_alice(&svc, &t, true).await;
    let t = sb
        .plugin(
            &[
                "--no-cache",
                "--keystone-url",
                &url,
                "--user-name",
                "alice",
                "--user-domain-name",
                "k8s",
                "--application-credential-name",
                "kubectl",
                "--application-credential-secret",
                &ac_secret,
            ],
            &[],
        )
        .await
        .token();
    assert_is_alice(&svc, &t, true).await;
    // Flags beat the environment.
    let t = sb
        .plugin(
            &["--no-cache", "--application-credential-secret", &ac_secret],
            &[
                ("OS_AUTH_URL", url.clone()),
                ("OS_APPLICATION_CREDENTIAL_ID", ac_id.clone()),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "wrong".into()),
            ],
        )
        .await
        .token();
    assert_is_alice(&svc, &t, true).await;

    // Environment: each OS_* flow.
    // Each flow gets alice a token.
    let flows: Vec<Vec<(&str, String)>> = vec![
        app_cred_env(),
        vec![
            ("OS_AUTH_URL", url.clone()),
            ("OS_AUTH_TYPE", "v3applicationcredential".into()),
            ("OS_APPLICATION_CREDENTIAL_NAME", "kubectl".into()),
            ("OS_USER_ID", env("KS_ALICE_ID")),
            ("OS_APPLICATION_CREDENTIAL_SECRET", ac_secret.clone()),
            // an openrc's password in the same environment does not win over OS_AUTH_TYPE
            ("OS_USERNAME", "bob".into()),
            ("OS_PASSWORD", "nope".into()),
        ],
        vec![
            ("OS_AUTH_URL", url.clone()),
            ("OS_AUTH_TYPE", "password".into()),
            ("OS_USERNAME", "alice".into()),
            ("OS_PASSWORD", password.clone()),
            ("OS_USER_DOMAIN_NAME", "k8s".into()),
            ("OS_PROJECT_NAME", "team-a".into()),
            ("OS_PROJECT_DOMAIN_NAME", "k8s".into()),
        ],
        // OS_DOMAIN_NAME stands for both domains; OS_PROJECT_ID scopes by id.
        vec![
            ("OS_AUTH_URL", url.clone()),
            ("OS_USERNAME", "alice".into()),
            ("OS_PASSWORD", password.clone()),
            ("OS_DOMAIN_NAME", "k8s".into()),
            ("OS_PROJECT_NAME", "team-a".into()),
        ],
        vec![
            ("OS_AUTH_URL", url.clone()),
            ("OS_USER_ID", env("KS_ALICE_ID")),
            ("OS_PASSWORD", password.clone()),
            ("OS_PROJECT_ID", env("KS_PROJECT_ID")),
        ],
    ];
    for flow in &flows {
        let t = sb.plugin(&no_cache, flow).await.token();
        assert_is_alice(&svc, &t, true).await;
    }
    // User and project in different domains: alice@k8s scoped to... her own project in k8s,
    // alice@Default to "other" in Default (names collide across domains).
    let t = sb
        .plugin(
            &no_cache,
            &[
                ("OS_AUTH_URL", url.clone()),
                ("OS_USERNAME", "alice".into()),
                ("OS_PASSWORD", password.clone()),
                ("OS_USER_DOMAIN_NAME", "Default".into()),
                ("OS_PROJECT_NAME", "other".into()),
                ("OS_PROJECT_DOMAIN_ID", "default".into()),
            ],
        )
        .await
        .token();
    let status = svc.token_review("v1", &t).await;
    assert_eq!(
        status["user"]["uid"],
        env("KS_ALICE_DEFAULT_ID"),
        "{status}"
    );
    // Token flow: a session token as it is, and rescoped to a project.
    let session = ks.alice().await;
    let run = sb
        .plugin(
            &no_cache,
            &[("OS_AUTH_URL", url.clone()), ("OS_TOKEN", session.clone())],
        )
        .await;
    assert_eq!(
        run.token(),
        session,
        "an unscoped token flow hands out the token itself"
    );
    let t = sb
        .plugin(
            &no_cache,
            &[
                ("OS_AUTH_URL", url.clone()),
                ("OS_AUTH_TYPE", "token".into()),
                ("OS_TOKEN", session.clone()),
                ("OS_PROJECT_ID", env("KS_PROJECT_ID")),
            ],
        )
        .await
        .token();
    assert_ne!(t, session);
    assert_is_alice(&svc, &t, true).await;

    // clouds.yaml + secure.yaml through OS_CLOUD and OS_CLIENT_CONFIG_FILE ...
    let clouds = format!(
        "clouds:\n  garr:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {url}\n      application_credential_id: {ac_id}\n  pw:\n    auth:\n      auth_url: {url}\n      username: alice\n      user_domain_name: k8s\n      project_name: team-a\n      project_domain_name: k8s\n"
    );
    let secure = format!(
        "clouds:\n  garr:\n    auth:\n      application_credential_secret: {ac_secret}\n  pw:\n    auth:\n      password: {password}\n"
    );
    let elsewhere = sb.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("my-clouds.yaml"), &clouds).unwrap();
    std::fs::write(elsewhere.join("secure.yaml"), &secure).unwrap();
    let t = sb
        .plugin(
            &no_cache,
            &[
                ("OS_CLOUD", "garr".into()),
                (
                    "OS_CLIENT_CONFIG_FILE",
                    elsewhere
                        .join("my-clouds.yaml")
                        .to_string_lossy()
                        .into_owned(),
                ),
            ],
        )
        .await
        .token();
    assert_is_alice(&svc, &t, true).await;
    // ... and in $XDG_CONFIG_HOME/openstack, the password cloud, picked with --os-cloud.
    let xdg = sb.path("config/openstack");
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::write(xdg.join("clouds.yaml"), &clouds).unwrap();
    std::fs::write(xdg.join("secure.yaml"), &secure).unwrap();
    let t = sb
        .plugin(&["--no-cache", "--os-cloud", "pw"], &[])
        .await
        .token();
    assert_is_alice(&svc, &t, true).await;
    // The environment beats clouds.yaml.
    let bad = sb
        .plugin(
            &no_cache,
            &[
                ("OS_CLOUD", "garr".into()),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "wrong".into()),
            ],
        )
        .await;
    assert!(bad.failed().contains("401"), "{}", bad.stderr);
    // An unknown cloud is named, with the known ones.
    let bad = sb.plugin(&no_cache, &[("OS_CLOUD", "nope".into())]).await;
    assert!(bad.failed().contains("garr, pw"), "{}", bad.stderr);
}

#[tokio::test]
async fn corrupt_open_or_foreign_cache_files_are_replaced() {
    let _ks = KEYSTONE.read().await;
    let sb = Sandbox::new();
    let env = app_cred_env();
    let first = sb.plugin(&[], &env).await.token();
    let file = cache_files(&sb).pop().unwrap();
    assert_eq!(mode(&file), 0o600);
    assert!(
        !std::fs::read_to_string(&file).unwrap().contains(&env[2].1),
        "no secret in the cache"
    );

    std::fs::write(&file, b"{ this is not json").unwrap();
    let run = sb.plugin(&[], &env).await;
    let second = run.token();
    assert_ne!(second, first, "a corrupt entry is not used");
    assert!(
        run.stderr.contains("ignoring cache file") && run.stderr.contains("corrupt"),
        "{}",
        run.stderr
    );
    assert_eq!(mode(&file), 0o600);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = sb.plugin(&[], &env).await;
    assert_ne!(run.token(), second, "a file open to others is not trusted");
    assert!(run.stderr.contains("open to other users"), "{}", run.stderr);
    assert_eq!(mode(&file), 0o600, "and it is replaced by a private one");
    let third = sb.plugin(&[], &env).await;
    assert!(third.stderr.trim().is_empty(), "{}", third.stderr);
    let third = third.token();

    // A file of another user (only root can make one).
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
        let run = sb.plugin(&[], &env).await;
        assert_ne!(run.token(), third, "another user's file is not trusted");
        assert!(run.stderr.contains("owned by uid 65534"), "{}", run.stderr);
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&meta),
            0,
            "replaced by our own"
        );
    }

    // A directory open to others is tightened.
    std::fs::set_permissions(sb.cache_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = sb.plugin(&[], &env).await;
    run.token();
    assert_eq!(mode(&sb.cache_dir()), 0o700);
    assert!(run.stderr.contains("0755"), "{}", run.stderr);

    // --no-cache neither reads nor writes it; clear-cache empties it.
    let nc = Sandbox::new();
    nc.plugin(&["--no-cache"], &env).await.token();
    assert!(!nc.cache_dir().exists());
    let cleared = sb.plugin(&["clear-cache"], &[]).await;
    assert_eq!(cleared.code, Some(0));
    assert!(cleared.stderr.contains("removed"), "{}", cleared.stderr);
    assert!(cache_files(&sb).is_empty());
}

#[tokio::test]
async fn missing_password_without_a_terminal_names_flag_and_variable() {
    let _ks = KEYSTONE.read().await;
    let sb = Sandbox::new();
    let base = vec![
        ("OS_AUTH_URL", env("KS_URL")),
        ("OS_USERNAME", "alice".to_string()),
        ("OS_USER_DOMAIN_NAME", "k8s".to_string()),
    ];
    // kubectl says non-interactive ...
    let mut with_info = base.clone();
    with_info.push(exec_info(V1));
    // ... or no exec info and stdin is not a terminal.
    for env in [with_info, base] {
        let run = sb.plugin(&[], &env).await;
        let err = run.failed();
        assert!(
            err.contains("--password") && err.contains("OS_PASSWORD"),
            "{err}"
        );
        assert!(err.contains("non-interactively"), "{err}");
        assert_eq!(
            err.matches("kubectl-keystone-auth:").count(),
            1,
            "the error is printed once: {err}"
        );
    }
    let run = sb
        .plugin(&[], &[("OS_APPLICATION_CREDENTIAL_ID", "x".into())])
        .await;
    let err = run.failed();
    assert!(
        err.contains("--keystone-url") && err.contains("OS_AUTH_URL"),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_secret_or_unknown_credential_exits_non_zero_with_no_exec_credential() {
    let _ks = KEYSTONE.read().await;
    let sb = Sandbox::new();
    let url = env("KS_URL");
    let run = sb
        .plugin(
            &[],
            &[
                ("OS_AUTH_URL", url.clone()),
                ("OS_APPLICATION_CREDENTIAL_ID", env("KS_AC_KUBECTL_ID")),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "wrong-secret".into()),
                exec_info(V1),
            ],
        )
        .await;
    let err = run.failed();
    assert!(
        err.contains("refused the application credential") && err.contains("401"),
        "{err}"
    );
    assert!(!err.contains("wrong-secret"), "the secret is never printed");
    let run = sb
        .plugin(
            &[],
            &[
                ("OS_AUTH_URL", url.clone()),
                ("OS_APPLICATION_CREDENTIAL_ID", "0123456789abcdef".into()),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "s".into()),
            ],
        )
        .await;
    assert!(run.failed().contains("404"), "{}", run.stderr);
    let run = sb
        .plugin(
            &[],
            &[
                ("OS_AUTH_URL", url),
                ("OS_USERNAME", "alice".into()),
                ("OS_USER_DOMAIN_NAME", "k8s".into()),
                ("OS_PASSWORD", "not-her-password".into()),
            ],
        )
        .await;
    let err = run.failed();
    assert!(err.contains("refused the user name and password"), "{err}");
    assert!(!err.contains("not-her-password"));
    assert!(
        cache_files_or_none(&sb).is_empty(),
        "nothing cached after failures"
    );
}

fn cache_files_or_none(sb: &Sandbox) -> Vec<PathBuf> {
    if sb.cache_dir().exists() {
        cache_files(sb)
    } else {
        vec![]
    }
}

#[tokio::test]
async fn minted_credential_from_a_session_token_works_with_kubectl() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let svc = uncached_service().await;
    let api = Apiserver::start(&svc).await;
    let sb = Sandbox::new();
    let session = ks.alice().await;
    let name = unique("plugin-minted");
    let kc = sb.path("minted.kubeconfig");
    let ca = api.ca_file.to_string_lossy().into_owned();
    let run = sb
        .plugin(
            &[
                "kubeconfig",
                "--server",
                &api.url,
                "--certificate-authority",
                &ca,
                "--command",
                PLUGIN.as_str(),
                "--create-application-credential",
                &name,
                "--role",
                "k8s-viewer",
                "--description",
                "test",
                "--output",
                kc.to_str().unwrap(),
            ],
            &[
                ("OS_AUTH_URL", env("KS_URL")),
                ("OS_TOKEN", session.clone()),
            ],
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("created application credential {name:?}")),
        "{}",
        run.stderr
    );
    let doc = read_yaml(&kc);
    let id = kubeconfig_env(&doc, "OS_APPLICATION_CREDENTIAL_ID").unwrap();
    assert!(kubeconfig_env(&doc, "OS_APPLICATION_CREDENTIAL_SECRET").is_some_and(|s| s.len() > 20));
    assert_eq!(
        kubeconfig_env(&doc, "OS_TOKEN").as_deref(),
        Some(""),
        "the session token is not kept (the variable is blanked)"
    );
    assert!(!std::fs::read_to_string(&kc).unwrap().contains(&session));
    // Keystone has it, with only the asked role.
    let (status, body) = ks
        .call(
            reqwest::Method::GET,
            &format!("/users/{}/application_credentials/{id}", env("KS_ALICE_ID")),
            &session,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let roles: Vec<&str> = body["application_credential"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["k8s-viewer"]);
    let kubectl = kubectl();
    let ok = sb
        .run_program(
            kubectl.to_str().unwrap(),
            &[
                "--kubeconfig",
                kc.to_str().unwrap(),
                "get",
                "--raw",
                "/version",
            ],
            &[],
        )
        .await;
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert!(
        ok.stdout.contains("\"gitVersion\": \"v1.36"),
        "{}",
        ok.stdout
    );
    ks.delete_alice_app_cred(&id).await;
}

#[tokio::test]
async fn a_restricted_application_credential_cannot_mint_and_says_so() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let sb = Sandbox::new();
    let ac_token = ks
        .app_cred_token(&env("KS_AC_KUBECTL_ID"), &env("KS_AC_KUBECTL_SECRET"))
        .await
        .unwrap();
    let kc = sb.path("never.kubeconfig");
    let args = [
        "kubeconfig",
        "--server",
        "https://127.0.0.1:6443",
        "--create-application-credential",
        "plugin-never",
        "--output",
        kc.to_str().unwrap(),
    ];
    // As a session token ...
    let run = sb
        .plugin(
            &args,
            &[("OS_AUTH_URL", env("KS_URL")), ("OS_TOKEN", ac_token)],
        )
        .await;
    let err = run.failed();
    assert!(
        err.contains("403") && err.contains("restricted application credential"),
        "{err}"
    );
    assert!(
        err.contains("OS_TOKEN") && err.contains("OS_PASSWORD"),
        "{err}"
    );
    // ... or directly.
    let run = sb.plugin(&args, &app_cred_env()).await;
    assert!(
        run.failed().contains("restricted application credential"),
        "{}",
        run.stderr
    );
    assert!(!kc.exists(), "no kubeconfig is written");
}

#[tokio::test]
async fn merge_keeps_existing_entries() {
    let _ks = KEYSTONE.read().await;
    let sb = Sandbox::new();
    let existing = "apiVersion: v1\nkind: Config\npreferences: {}\nclusters:\n- name: prod\n  cluster:\n    server: https://prod.example:6443\ncontexts:\n- name: prod\n  context:\n    cluster: prod\n    user: admin\ncurrent-context: prod\nusers:\n- name: admin\n  user:\n    token: static-admin-token\n";
    let kube = sb.path(".kube");
    std::fs::create_dir_all(&kube).unwrap();
    let cfg = kube.join("config");
    std::fs::write(&cfg, existing).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut env = app_cred_env();
    // --merge without a file: the first file of $KUBECONFIG.
    env.push((
        "KUBECONFIG",
        format!("{}:/nonexistent/other", cfg.display()),
    ));
    let run = sb
        .plugin(
            &[
                "kubeconfig",
                "--server",
                "https://127.0.0.1:6443",
                "--cluster-name",
                "garr",
                "--merge",
            ],
            &env,
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc = read_yaml(&cfg);
    let names = |section: &str| -> Vec<String> {
        doc[section]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("clusters"), ["prod", "garr"]);
    assert_eq!(names("contexts"), ["prod", "keystone@garr"]);
    assert_eq!(names("users"), ["admin", "keystone@garr"]);
    assert_eq!(
        doc["users"][0]["user"]["token"].as_str(),
        Some("static-admin-token")
    );
    assert_eq!(
        doc["clusters"][0]["cluster"]["server"].as_str(),
        Some("https://prod.example:6443")
    );
    assert_eq!(doc["current-context"].as_str(), Some("keystone@garr"));
    assert_eq!(mode(&cfg), 0o600);
    // Merging again replaces its own entries instead of adding more; --merge FILE works too.
    let run = sb
        .plugin(
            &[
                "kubeconfig",
                "--server",
                "https://127.0.0.1:7443",
                "--cluster-name",
                "garr",
                "--merge",
                cfg.to_str().unwrap(),
            ],
            &app_cred_env(),
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc = read_yaml(&cfg);
    assert_eq!(doc["clusters"].as_sequence().unwrap().len(), 2);
    assert_eq!(
        doc["clusters"][1]["cluster"]["server"].as_str(),
        Some("https://127.0.0.1:7443")
    );
    // --output refuses to overwrite without --force.
    let run = sb
        .plugin(
            &[
                "kubeconfig",
                "--server",
                "https://127.0.0.1:6443",
                "--output",
                cfg.to_str().unwrap(),
            ],
            &app_cred_env(),
        )
        .await;
    assert!(run.failed().contains("--force"), "{}", run.stderr);
    // To stdout: the kubeconfig and nothing else.
    let run = sb
        .plugin(
            &["kubeconfig", "--server", "https://127.0.0.1:6443"],
            &app_cred_env(),
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&run.stdout).unwrap();
    assert_eq!(doc["kind"].as_str(), Some("Config"));
}

/// What the generator writes is what real kubectl reads: `kubectl config view -o json` shows
/// the exec section as written (the secret in `env` included: kubectl needs it), and with
/// `--raw` the whole kubeconfig reads back into the model as the plugin's own file does.
#[tokio::test]
async fn kubectl_reads_the_generated_kubeconfig_as_written() {
    use kk_core::kubeconfig::{Config, InteractiveMode};
    let sb = Sandbox::new();
    let ca = sb.path("ca.crt");
    std::fs::write(&ca, Pki::new("kubeconfig test CA").ca_pem).unwrap();
    let kc = sb.path("generated.kubeconfig");
    let kc_s = kc.to_str().unwrap();
    let run = sb
        .plugin(
            &[
                "kubeconfig",
                "--server",
                "https://127.0.0.1:6443",
                "--certificate-authority",
                ca.to_str().unwrap(),
                "--namespace",
                "team-a",
                "--output",
                kc_s,
                "--no-verify",
            ],
            &[
                (
                    "OS_AUTH_URL",
                    "https://keystone.example:5000/v3".to_string(),
                ),
                ("OS_APPLICATION_CREDENTIAL_ID", "ac-id".to_string()),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "ac-secret".to_string()),
            ],
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let ours: Config = serde_yaml_ng::from_str(&std::fs::read_to_string(&kc).unwrap()).unwrap();
    let view = sb
        .kubectl(&["config", "view", "--kubeconfig", kc_s, "-o", "json"], &[])
        .await;
    assert_eq!(view.code, Some(0), "{}", view.stderr);
    let seen: Config = serde_json::from_str(&view.stdout).unwrap();
    let exec = seen.users[0].user.exec.as_ref().expect("no exec section");
    assert_eq!(Some(exec), ours.users[0].user.exec.as_ref());
    assert_eq!(exec.api_version, V1);
    assert_eq!(exec.interactive_mode, Some(InteractiveMode::Never));
    let secret = exec
        .env
        .iter()
        .find(|e| e.name == "OS_APPLICATION_CREDENTIAL_SECRET")
        .map(|e| e.value.expose());
    assert_eq!(secret, Some("ac-secret"));
    assert_eq!(seen.current_context, "keystone@127.0.0.1:6443");
    assert_eq!(
        seen.contexts[0].context.namespace.as_deref(),
        Some("team-a")
    );
    // kubectl shows the CA as DATA+OMITTED without --raw; with it, everything is as written.
    let raw = sb
        .kubectl(
            &[
                "config",
                "view",
                "--raw",
                "--kubeconfig",
                kc_s,
                "-o",
                "json",
            ],
            &[],
        )
        .await;
    assert_eq!(raw.code, Some(0), "{}", raw.stderr);
    let seen: Config = serde_json::from_str(&raw.stdout).unwrap();
    assert_eq!(seen, ours);
}

/// Runs the plugin on a pseudo-terminal (util-linux `script`), typing `answer` a second later.
async fn on_a_terminal(sb: &Sandbox, answer: &str, env: &[(&str, String)]) -> Run {
    let shell = format!(
        "(sleep 1; printf '%s\\n' \"$ANSWER\") | script -qec '{plugin}' /dev/null",
        plugin = PLUGIN.as_str()
    );
    let mut env = env.to_vec();
    env.push(("ANSWER", answer.to_string()));
    sb.run_program("bash", &["-c", &shell], &env).await
}

#[tokio::test]
async fn on_a_terminal_the_password_is_asked_without_echo_and_only_when_allowed() {
    let _ks = KEYSTONE.read().await;
    let sb = Sandbox::new();
    let password = env("KS_ALICE_PASSWORD");
    let base = vec![
        ("OS_AUTH_URL", env("KS_URL")),
        ("OS_USERNAME", "alice".to_string()),
        ("OS_USER_DOMAIN_NAME", "k8s".to_string()),
    ];
    let run = on_a_terminal(&sb, &password, &base).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Keystone password:"), "{}", run.stdout);
    assert!(
        !run.stdout.contains(&password),
        "the password must not be echoed"
    );
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("ExecCredential"))
        .unwrap();
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    let token = v["status"]["token"].as_str().unwrap();
    record_issued(token);
    assert_eq!(v["apiVersion"], V1BETA1);
    // The cached token spares the question.
    let again = on_a_terminal(&sb, "", &base).await;
    assert_eq!(again.code, Some(0), "{}", again.stdout);
    assert!(!again.stdout.contains("password:"), "{}", again.stdout);
    assert!(again.stdout.contains(token));
    // kubectl saying interactive: false wins over the terminal.
    let mut env = base.clone();
    env.push(exec_info(V1));
    env.push(("OS_USERNAME", "bob".to_string()));
    let run = on_a_terminal(&sb, "whatever", &env).await;
    assert_ne!(run.code, Some(0));
    assert!(
        !run.stdout.contains("Keystone password:"),
        "no question when kubectl says non-interactive: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains("OS_PASSWORD") && run.stdout.contains("non-interactively"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn kubeconfig_checks_the_credential_and_never_stores_a_password_or_a_token() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let sb = Sandbox::new();
    let url = env("KS_URL");
    let out = sb.path("checked.kubeconfig");
    let out_s = out.to_str().unwrap();
    let wrong = vec![
        ("OS_AUTH_URL", url.clone()),
        ("OS_APPLICATION_CREDENTIAL_ID", env("KS_AC_KUBECTL_ID")),
        (
            "OS_APPLICATION_CREDENTIAL_SECRET",
            "wrong-secret".to_string(),
        ),
    ];
    let server = ["kubeconfig", "--server", "https://127.0.0.1:6443"];
    let run = sb
        .plugin(&[&server[..], &["--output", out_s]].concat(), &wrong)
        .await;
    let err = run.failed();
    assert!(
        err.contains("does not work") && err.contains("401"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "nothing written for a credential Keystone refuses"
    );
    let run = sb
        .plugin(
            &[&server[..], &["--output", out_s, "--no-verify"]].concat(),
            &wrong,
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(out.exists());

    // A password credential: the kubeconfig asks on the terminal instead of storing it.
    let password = env("KS_ALICE_PASSWORD");
    let run = sb
        .plugin(
            &server,
            &[
                ("OS_AUTH_URL", url.clone()),
                ("OS_USERNAME", "alice".into()),
                ("OS_PASSWORD", password.clone()),
                ("OS_USER_DOMAIN_NAME", "k8s".into()),
                ("OS_PROJECT_NAME", "team-a".into()),
                ("OS_PROJECT_DOMAIN_NAME", "k8s".into()),
            ],
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        !run.stdout.contains(&password),
        "a password never goes into a kubeconfig"
    );
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&run.stdout).unwrap();
    assert_eq!(
        doc["users"][0]["user"]["exec"]["interactiveMode"].as_str(),
        Some("IfAvailable")
    );
    assert_eq!(
        kubeconfig_env(&doc, "OS_USERNAME").as_deref(),
        Some("alice")
    );
    assert_eq!(
        kubeconfig_env(&doc, "OS_PROJECT_NAME").as_deref(),
        Some("team-a")
    );
    assert_eq!(kubeconfig_env(&doc, "OS_PASSWORD"), None);

    // A token expires: it needs --create-application-credential.
    let session = ks.alice().await;
    let run = sb
        .plugin(
            &server,
            &[("OS_AUTH_URL", url), ("OS_TOKEN", session.clone())],
        )
        .await;
    let err = run.failed();
    assert!(err.contains("--create-application-credential"), "{err}");
    assert!(!err.contains(&session));
}

/// Each group of settings (user, project, application credential, domains, flow) is decided by
/// the first layer that sets any of its members: flags beat a shell's openrc whose variables
/// name the same thing differently (an id where the flag gives a name).
#[tokio::test]
async fn flags_beat_an_openrc_that_names_the_same_things_by_id() {
    let _ks = KEYSTONE.read().await;
    let svc = Service::start(Options::default()).await;
    let sb = Sandbox::new();
    let url = env("KS_URL");
    let password = env("KS_ALICE_PASSWORD");
    // bob's openrc, by ids, with the type of flow spelled out.
    let openrc = vec![
        ("OS_AUTH_URL", url.clone()),
        ("OS_AUTH_TYPE", "password".to_string()),
        ("OS_USER_ID", env("KS_BOB_ID")),
        ("OS_USER_DOMAIN_ID", "default".to_string()),
        ("OS_PASSWORD", env("KS_BOB_PASSWORD")),
        ("OS_PROJECT_ID", env("KS_OTHER_PROJECT_ID")),
        ("OS_PROJECT_DOMAIN_ID", "default".to_string()),
        ("OS_APPLICATION_CREDENTIAL_ID", env("KS_AC_KUBECTL_RO_ID")),
    ];
    // --user-name / --project-name / --user-domain-name / --project-domain-name beat the ids.
    let t = sb
        .plugin(
            &[
                "--no-cache",
                "--user-name",
                "alice",
                "--user-domain-name",
                "k8s",
                "--password",
                &password,
                "--project-name",
                "team-a",
                "--project-domain-name",
                "k8s",
            ],
            &openrc,
        )
        .await
        .token();
    assert_is_alice(&svc, &t, true).await;
    // Application-credential flags (by name) beat OS_AUTH_TYPE=password, OS_USER_ID and
    // OS_APPLICATION_CREDENTIAL_ID of the environment.
    let t = sb
        .plugin(
            &[
                "--no-cache",
                "--application-credential-name",
                "kubectl",
                "--application-credential-secret",
                &env("KS_AC_KUBECTL_SECRET"),
                "--user-name",
                "alice",
                "--user-domain-name",
                "k8s",
            ],
            &openrc,
        )
        .await
        .token();
    assert_is_alice(&svc, &t, true).await;
}

/// The reference plugin's password flags, and --token, against Keystone.
#[tokio::test]
async fn reference_password_flags_and_the_token_flag_get_alice_a_token() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let svc = Service::start(Options::default()).await;
    let sb = Sandbox::new();
    let url = env("KS_URL");
    let password = env("KS_ALICE_PASSWORD");
    let t = sb
        .plugin(
            &[
                "--no-cache",
                "--keystone-url",
                &url,
                "--user-name",
                "alice",
                "--password",
                &password,
                "--project-name",
                "team-a",
                "--domain-name",
                "k8s",
            ],
            &[],
        )
        .await
        .token();
    assert_is_alice(&svc, &t, true).await;
    let session = ks.alice().await;
    let run = sb
        .plugin(
            &["--no-cache", "--keystone-url", &url, "--token", &session],
            &[],
        )
        .await;
    assert_eq!(
        run.token(),
        session,
        "an unscoped --token is handed out as it is"
    );
    let t = sb
        .plugin(
            &[
                "--no-cache",
                "--keystone-url",
                &url,
                "--token",
                &session,
                "--project-id",
                &env("KS_PROJECT_ID"),
            ],
            &[],
        )
        .await
        .token();
    assert_ne!(t, session);
    assert_is_alice(&svc, &t, true).await;
}

/// A generated kubeconfig carries its whole credential and blanks every other OS_* variable
/// and OS_CLOUD: the user's shell (an openrc of someone else, a stray OS_CLOUD) cannot leak
/// into it. A cloud that cannot be loaded is only a warning when the credential is complete.
#[tokio::test]
async fn a_stray_os_cloud_or_openrc_in_the_shell_does_not_break_a_generated_kubeconfig() {
    let _ks = KEYSTONE.read().await;
    let svc = Service::start(Options::default()).await;
    let api = Apiserver::start(&svc).await;
    let sb = Sandbox::new();
    let kc = sb.path("kubeconfig");
    let kc_s = kc.to_str().unwrap();
    let ca = api.ca_file.to_str().unwrap().to_string();
    // An application credential by name and user: the kubeconfig has OS_USERNAME.
    let run = sb
        .plugin(
            &[
                "kubeconfig",
                "--server",
                &api.url,
                "--certificate-authority",
                &ca,
                "--command",
                PLUGIN.as_str(),
                "--output",
                kc_s,
            ],
            &[
                ("OS_AUTH_URL", env("KS_URL")),
                ("OS_APPLICATION_CREDENTIAL_NAME", "kubectl".into()),
                ("OS_USERNAME", "alice".into()),
                ("OS_USER_DOMAIN_NAME", "k8s".into()),
                (
                    "OS_APPLICATION_CREDENTIAL_SECRET",
                    env("KS_AC_KUBECTL_SECRET"),
                ),
            ],
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc = read_yaml(&kc);
    for blank in [
        "OS_CLOUD",
        "OS_USER_ID",
        "OS_PROJECT_ID",
        "OS_PASSWORD",
        "OS_TOKEN",
    ] {
        assert_eq!(
            kubeconfig_env(&doc, blank).as_deref(),
            Some(""),
            "{blank} is blanked"
        );
    }
    assert_eq!(
        kubeconfig_env(&doc, "OS_USERNAME").as_deref(),
        Some("alice")
    );
    // bob's openrc and a stray OS_CLOUD (no clouds.yaml anywhere) in kubectl's environment.
    let shell = [
        ("OS_CLOUD", "mycloud".to_string()),
        ("OS_AUTH_TYPE", "password".to_string()),
        ("OS_USER_ID", env("KS_BOB_ID")),
        ("OS_PASSWORD", env("KS_BOB_PASSWORD")),
        ("OS_PROJECT_ID", env("KS_OTHER_PROJECT_ID")),
        ("OS_APPLICATION_CREDENTIAL_ID", env("KS_AC_KUBECTL_RO_ID")),
    ];
    let kubectl = kubectl();
    let ok = sb
        .run_program(
            kubectl.to_str().unwrap(),
            &["--kubeconfig", kc_s, "get", "--raw", "/api"],
            &shell,
        )
        .await;
    assert_eq!(ok.code, Some(0), "kubectl failed: {}", ok.stderr);
    let t = cache_files(&sb);
    assert_eq!(t.len(), 1);
    let cached: Value = serde_json::from_str(&std::fs::read_to_string(&t[0]).unwrap()).unwrap();
    let token = cached["token"].as_str().unwrap().to_string();
    record_issued(&token);
    assert_is_alice(&svc, &token, true).await;

    // The plugin itself: a complete credential in the environment and OS_CLOUD naming a cloud
    // that is nowhere: a warning.
    let mut complete = app_cred_env();
    complete.push(("OS_CLOUD", "mycloud".into()));
    let run = sb.plugin(&["--no-cache"], &complete).await;
    let t = run.token();
    assert_is_alice(&svc, &t, true).await;
    assert!(run.stderr.contains("ignoring OS_CLOUD"), "{}", run.stderr);
    // ... a cloud whose cacert does not exist: a warning too.
    let clouds = sb.path("clouds.yaml");
    std::fs::write(
        &clouds,
        "clouds:\n  mycloud:\n    cacert: /nonexistent/ca.pem\n    auth:\n      auth_url: https://127.0.0.1:1/v3\n",
    )
    .unwrap();
    let run = sb.plugin(&["--no-cache"], &complete).await;
    let t = run.token();
    assert_is_alice(&svc, &t, true).await;
    assert!(run.stderr.contains("/nonexistent/ca.pem"), "{}", run.stderr);
    // Without a complete credential the cloud's problem is the error.
    std::fs::remove_file(&clouds).unwrap();
    let bad = sb
        .plugin(
            &["--no-cache"],
            &[
                ("OS_AUTH_URL", env("KS_URL")),
                ("OS_CLOUD", "mycloud".into()),
            ],
        )
        .await;
    assert!(bad.failed().contains("no clouds.yaml"), "{}", bad.stderr);
}

/// --merge never replaces entries it did not write (kubeadm's `kubernetes` cluster) unless
/// --force; default names come from the server's host; a symlinked kubeconfig stays a link.
#[tokio::test]
async fn merge_refuses_entries_of_others_and_keeps_a_symlinked_kubeconfig() {
    let _ks = KEYSTONE.read().await;
    let sb = Sandbox::new();
    let kubeadm = "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: https://10.0.0.1:6443\ncontexts:\n- name: kubernetes-admin@kubernetes\n  context:\n    cluster: kubernetes\n    user: kubernetes-admin\ncurrent-context: kubernetes-admin@kubernetes\nusers:\n- name: kubernetes-admin\n  user:\n    token: kubeadm-admin\n";
    // The kubeconfig is a link into a dotfiles directory.
    let dotfiles = sb.path("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let real = dotfiles.join("kubeconfig");
    std::fs::write(&real, kubeadm).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let kube = sb.path(".kube");
    std::fs::create_dir_all(&kube).unwrap();
    let link = kube.join("config");
    std::os::unix::fs::symlink("../dotfiles/kubeconfig", &link).unwrap();
    let link_s = link.to_str().unwrap();
    let merge = |extra: &'static [&'static str]| {
        let mut args = vec![
            "kubeconfig",
            "--server",
            "https://127.0.0.1:6443",
            "--merge",
            link_s,
        ];
        args.extend_from_slice(extra);
        args
    };
    let run = sb.plugin(&merge(&[]), &app_cred_env()).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    let doc = read_yaml(&real);
    let names = |doc: &serde_yaml_ng::Value, section: &str| -> Vec<String> {
        doc[section]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&doc, "clusters"), ["kubernetes", "127.0.0.1:6443"]);
    assert_eq!(
        names(&doc, "users"),
        ["kubernetes-admin", "keystone@127.0.0.1:6443"]
    );
    assert_eq!(
        doc["current-context"].as_str(),
        Some("keystone@127.0.0.1:6443")
    );
    // Naming kubeadm's cluster is refused, and the file is left as it was ...
    let before = std::fs::read_to_string(&real).unwrap();
    let run = sb
        .plugin(&merge(&["--cluster-name", "kubernetes"]), &app_cred_env())
        .await;
    let err = run.failed();
    assert!(
        err.contains("\"kubernetes\"") && err.contains("--cluster-name") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), before);
    // ... unless --force.
    let run = sb
        .plugin(
            &merge(&["--cluster-name", "kubernetes", "--force"]),
            &app_cred_env(),
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc = read_yaml(&real);
    assert_eq!(
        doc["clusters"][0]["cluster"]["server"].as_str(),
        Some("https://127.0.0.1:6443")
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(mode(&real), 0o600);
}

/// A run that cannot get the cache lock in time goes on without the cache (with a warning)
/// instead of failing.
#[tokio::test]
async fn a_cache_lock_held_too_long_is_a_warning_not_a_failure() {
    let _ks = KEYSTONE.read().await;
    let sb = Sandbox::new();
    let env = app_cred_env();
    let first = sb.plugin(&[], &env).await.token();
    let lock_file = std::fs::read_dir(sb.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "lock"))
        .expect("the first run made a lock file");
    let held = nix::fcntl::Flock::lock(
        std::fs::File::open(&lock_file).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .map_err(|(_, e)| e)
    .unwrap();
    // A margin longer than the token's life: the cached token is not fresh, the lock is needed.
    let run = sb
        .plugin(&["--refresh-margin", "1000h", "--lock-timeout", "1s"], &env)
        .await;
    let t = run.token();
    assert_ne!(t, first, "a new token, from Keystone");
    assert!(
        run.stderr.contains("going on without the token cache"),
        "{}",
        run.stderr
    );
    drop(held);
}

/// A bad duration is an error of the command line even when a fresh token is cached: nothing
/// on stdout, a non-zero exit, and a message naming the flag (and the variable, where there is
/// one), for every duration setting.
#[tokio::test]
async fn a_bad_duration_fails_even_with_a_fresh_cached_token() {
    let _ks = KEYSTONE.read().await;
    let sb = Sandbox::new();
    let env = app_cred_env();
    let token = sb.plugin(&[], &env).await.token();
    assert_eq!(
        sb.plugin(&[], &env).await.token(),
        token,
        "the cache is fresh"
    );
    for flag in ["--lock-timeout", "--refresh-margin", "--refusal-ttl"] {
        for args in [vec![flag, "garbage"], vec!["token", flag, "garbage"]] {
            let run = sb.plugin(&args, &env).await;
            let err = run.failed();
            assert!(
                err.contains(flag) && err.contains("garbage") && !err.contains(&token),
                "{args:?}: {err}"
            );
        }
    }
    let mut bad_var = env.clone();
    bad_var.push(("OS_REFUSAL_TTL", "garbage".into()));
    let run = sb.plugin(&[], &bad_var).await;
    let err = run.failed();
    assert!(
        err.contains("OS_REFUSAL_TTL") && err.contains("--refusal-ttl") && err.contains("garbage"),
        "{err}"
    );
    assert_eq!(sb.plugin(&[], &env).await.token(), token, "still cached");
}

/// A Keystone URL with a password or a token in it is never echoed.
#[tokio::test]
async fn a_keystone_url_with_a_password_or_a_token_is_not_echoed() {
    let sb = Sandbox::new();
    for url in [
        "ftp://user:SEKRET@127.0.0.1:1/v3",
        "http://user:SEKRET@127.0.0.1:1/v3",
        "http://127.0.0.1:1/v3?token=SEKRET",
    ] {
        let run = sb
            .plugin(
                &["--no-cache"],
                &[
                    ("OS_AUTH_URL", url.to_string()),
                    ("OS_APPLICATION_CREDENTIAL_ID", "x".into()),
                    ("OS_APPLICATION_CREDENTIAL_SECRET", "y".into()),
                ],
            )
            .await;
        let err = run.failed();
        assert!(err.contains("OS_AUTH_URL"), "{err}");
        assert!(!err.contains("SEKRET"), "{err}");
    }
}

fn refusal_files(sb: &Sandbox) -> Vec<PathBuf> {
    if !sb.cache_dir().exists() {
        return vec![];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(sb.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "refused"))
        .collect();
    v.sort();
    v
}

fn password_env(password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OS_AUTH_URL", env("KS_URL")),
        ("OS_USERNAME", "alice".into()),
        ("OS_USER_DOMAIN_NAME", "k8s".into()),
        ("OS_PROJECT_NAME", "team-a".into()),
        ("OS_PROJECT_DOMAIN_NAME", "k8s".into()),
        ("OS_PASSWORD", password.into()),
        exec_info(V1),
    ]
}

/// The run was refused without asking Keystone, and said why, for how long and how to retry.
fn assert_remembered(run: &Run, secret: &str) {
    let err = run.failed();
    for want in [
        "refused the user name and password",
        " s ago (HTTP 401",
        "for the next ",
        "at most one attempt",
        "lockout",
        "kubectl-keystone-auth clear-cache",
        "--refusal-ttl 0",
    ] {
        assert!(err.contains(want), "{want:?} missing: {err}");
    }
    assert!(!err.contains(secret), "the password is never printed");
    assert_eq!(err.matches("kubectl-keystone-auth:").count(), 1, "{err}");
}

#[tokio::test]
async fn a_wrong_password_is_tried_once_per_refusal_ttl_and_a_corrected_one_at_once() {
    // The write lock: only this test's requests in Keystone's access log while counting.
    let _ks = KEYSTONE.write().await;
    let sb = Sandbox::new();
    let wrong = unique("not-alices-password");
    let bad = password_env(&wrong);

    // Six runs in a row with the same exec environment (what one kubectl command does):
    // one password attempt at Keystone.
    let before = Keystone::access_log_settled().await;
    let first = sb.plugin(&[], &bad).await;
    let err = first.failed();
    assert!(
        err.contains("refused the user name and password (HTTP 401"),
        "{err}"
    );
    assert!(
        err.contains("locked") && err.contains("not tried again for 30 s"),
        "{err}"
    );
    assert!(!err.contains("application credential"), "{err}");
    for _ in 2..=6 {
        assert_remembered(&sb.plugin(&[], &bad).await, &wrong);
    }
    assert_eq!(
        Keystone::access_log_count_settled(before, TOKENS).await,
        1,
        "six runs with a wrong password must make exactly one POST /v3/auth/tokens"
    );
    // Remembered next to the token cache: 0600, named by a hash, without the password.
    let files = refusal_files(&sb);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(mode(&files[0]), 0o600);
    assert_eq!(mode(&sb.cache_dir()), 0o700);
    assert_eq!(files[0].file_stem().unwrap().len(), 64);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        !text.contains(&wrong),
        "no secret in the refusal file: {text}"
    );
    assert!(cache_files(&sb).is_empty(), "no token cached");

    // The corrected password is tried at once, and its success forgets the refusal.
    let before = Keystone::access_log_settled().await;
    let right = password_env(&env("KS_ALICE_PASSWORD"));
    sb.plugin(&[], &right).await.token();
    assert_eq!(Keystone::access_log_count_settled(before, TOKENS).await, 1);
    assert!(refusal_files(&sb).is_empty(), "forgotten after a success");

    // --refusal-ttl 0 or OS_REFUSAL_TTL=0 turns it off: each run asks (--no-cache, or the
    // token cached above would answer).
    let sb = Sandbox::new();
    let before = Keystone::access_log_settled().await;
    sb.plugin(&["--refusal-ttl", "0"], &bad).await.failed();
    sb.plugin(&["--refusal-ttl", "0"], &bad).await.failed();
    let mut off = bad.clone();
    off.push(("OS_REFUSAL_TTL", "0".into()));
    let run = sb.plugin(&[], &off).await;
    assert!(!run.failed().contains("ago"), "{}", run.stderr);
    assert_eq!(Keystone::access_log_count_settled(before, TOKENS).await, 3);
    assert!(refusal_files(&sb).is_empty());

    // --no-cache keeps the refusal memory (it holds no token); clear-cache empties it.
    let before = Keystone::access_log_settled().await;
    sb.plugin(&["--no-cache"], &bad).await.failed();
    assert_remembered(&sb.plugin(&["--no-cache"], &bad).await, &wrong);
    assert_eq!(Keystone::access_log_count_settled(before, TOKENS).await, 1);
    assert_eq!(refusal_files(&sb).len(), 1);
    let cleared = sb.plugin(&["clear-cache"], &[]).await;
    assert_eq!(cleared.code, Some(0), "{}", cleared.stderr);
    assert!(refusal_files(&sb).is_empty());
    let before = Keystone::access_log_settled().await;
    let again = sb.plugin(&[], &bad).await;
    assert!(!again.failed().contains(" s ago"), "{}", again.stderr);
    assert_eq!(Keystone::access_log_count_settled(before, TOKENS).await, 1);

    // A short TTL runs out: the credential is tried again afterwards.
    let sb = Sandbox::new();
    let before = Keystone::access_log_settled().await;
    sb.plugin(&["--refusal-ttl", "3s"], &bad).await.failed();
    assert_remembered(&sb.plugin(&["--refusal-ttl", "3s"], &bad).await, &wrong);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut after_ttl = sb.plugin(&["--refusal-ttl", "3s"], &bad).await;
    while after_ttl.failed().contains(" s ago") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after_ttl = sb.plugin(&["--refusal-ttl", "3s"], &bad).await;
    }
    assert!(
        after_ttl.failed().contains("(HTTP 401"),
        "{}",
        after_ttl.stderr
    );
    assert!(!after_ttl.stderr.contains(" s ago"), "{}", after_ttl.stderr);
    assert_eq!(Keystone::access_log_count_settled(before, TOKENS).await, 2);

    // An invalid TTL names the flag, or the variable.
    let run = sb.plugin(&["--refusal-ttl", "soon"], &bad).await;
    assert!(run.failed().contains("--refusal-ttl"), "{}", run.stderr);
    let mut junk = bad.clone();
    junk.push(("OS_REFUSAL_TTL", "soon".into()));
    let run = sb.plugin(&[], &junk).await;
    assert!(run.failed().contains("OS_REFUSAL_TTL"), "{}", run.stderr);
}

#[tokio::test]
async fn kubectl_with_a_wrong_password_makes_one_password_attempt() {
    let _ks = KEYSTONE.write().await;
    let svc = uncached_service().await;
    let api = Apiserver::start(&svc).await;
    let sb = Sandbox::new();
    // kubectl runs this wrapper, which counts its runs and execs the plugin.
    let runs = sb.path("plugin-runs");
    let wrapper = sb.path("plugin-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho run >> '{}'\nexec '{plugin}' \"$@\"\n",
            runs.display(),
            plugin = PLUGIN.as_str()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kc = sb.path("kubeconfig");
    let kc_s = kc.to_str().unwrap();
    let ca = api.ca_file.to_str().unwrap().to_string();
    let generated = sb
        .plugin(
            &[
                "kubeconfig",
                "--server",
                &api.url,
                "--certificate-authority",
                &ca,
                "--command",
                wrapper.to_str().unwrap(),
                "--output",
                kc_s,
            ],
            &[
                ("OS_AUTH_URL", env("KS_URL")),
                ("OS_USERNAME", "alice".into()),
                ("OS_USER_DOMAIN_NAME", "k8s".into()),
                ("OS_PROJECT_NAME", "team-a".into()),
                ("OS_PROJECT_DOMAIN_NAME", "k8s".into()),
            ],
        )
        .await;
    assert_eq!(generated.code, Some(0), "{}", generated.stderr);
    assert_eq!(
        read_yaml(&kc)["users"][0]["user"]["exec"]["interactiveMode"].as_str(),
        Some("IfAvailable")
    );

    let kubectl = kubectl();
    let kubectl = kubectl.to_str().unwrap();
    let get_api = ["--kubeconfig", kc_s, "get", "--raw", "/api"];
    let plugin_runs = || {
        std::fs::read_to_string(&runs)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };

    // `kubectl get --raw /api`: fails, after exactly one password attempt.
    let wrong = unique("not-alices-password");
    let before = Keystone::access_log_settled().await;
    let denied = sb
        .run_program(kubectl, &get_api, &[("OS_PASSWORD", wrong.clone())])
        .await;
    assert_ne!(denied.code, Some(0), "kubectl must fail: {}", denied.stdout);
    for want in ["getting credentials", "refused the user name and password"] {
        assert!(denied.stderr.contains(want), "{want}: {}", denied.stderr);
    }
    assert!(!denied.stderr.contains(&wrong));
    assert_eq!(
        Keystone::access_log_count_settled(before, TOKENS).await,
        1,
        "`kubectl get --raw /api` with a wrong password must make exactly one password attempt"
    );

    // `kubectl get pods` runs the plugin again on each discovery retry: still one attempt.
    let wrong = unique("another-wrong-password");
    let runs_before = plugin_runs();
    let before = Keystone::access_log_settled().await;
    let denied = sb
        .run_program(
            kubectl,
            &["--kubeconfig", kc_s, "get", "pods"],
            &[("OS_PASSWORD", wrong.clone())],
        )
        .await;
    assert_ne!(denied.code, Some(0), "kubectl must fail: {}", denied.stdout);
    let retries = plugin_runs() - runs_before;
    assert!(
        retries >= 2,
        "kubectl ran the plugin {retries} time(s): the retries this guards against did not happen"
    );
    assert_eq!(
        Keystone::access_log_count_settled(before, TOKENS).await,
        1,
        "{retries} plugin runs of one `kubectl get pods` with a wrong password must make exactly one password attempt"
    );
    assert_eq!(
        denied.stderr.matches("at most one attempt").count(),
        retries - 1,
        "every retry says its refusal is remembered: {}",
        denied.stderr
    );
    assert!(!denied.stderr.contains(&wrong));

    // The corrected password works at once: one more POST.
    let before = Keystone::access_log_settled().await;
    let ok = sb
        .run_program(
            kubectl,
            &get_api,
            &[("OS_PASSWORD", env("KS_ALICE_PASSWORD"))],
        )
        .await;
    assert_eq!(ok.code, Some(0), "kubectl failed: {}", ok.stderr);
    let answer: Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(answer["kind"], "APIVersions");
    assert_eq!(Keystone::access_log_count_settled(before, TOKENS).await, 1);
    if let Some(f) = cache_files(&sb).first() {
        let cached: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        record_issued(cached["token"].as_str().unwrap());
    }
}
