//! Application-credential bearer tokens (`kkac1_...`, docs/bearer-tokens.md) for real: a
//! kube-apiserver of the test's own whose authentication webhook is a `k8s-keystone-auth` with
//! `[application_credential_tokens]` enabled, the real Keystone behind it, and in front what a
//! machine without the plugin has: real `kubectl` with a kubeconfig holding only `token:`,
//! `curl` with an `Authorization: Bearer` header, and the Python `kubernetes` client from PyPI
//! (tests/python/venv.sh) with a plain token configuration. The test bed's shared service has
//! them disabled (the default): refused there without a Keystone call.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::apiserver::{OwnApiserver, planned_webhook};
use crate::sandbox::*;
use crate::support::*;
use crate::sync::{eventually, tag};
use kk_core::appcred_token::AppCredToken;
use kk_core::secret::Secret;

/// Keystone's request line of a token issue (the exchange), as its access log shows it.
const ISSUE: &str = "\"POST /v3/auth/tokens";

/// A secret nobody else uses, recorded for the run's token scan.
fn fresh_secret(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let s = format!("kkbr-{name}-{nanos:x}-{:x}", std::process::id());
    record_issued(&s);
    s
}

/// An application credential of alice with a fresh secret; (id, secret, bearer token), the
/// secret and the bearer token recorded for the scan.
async fn credential(ks: &Keystone, name: &str) -> (String, String, String) {
    let secret = fresh_secret(name);
    let (id, _) = ks
        .create_alice_app_cred(name, json!({"secret": secret}))
        .await;
    let bearer = bearer(&id, &secret);
    (id, secret, bearer)
}

/// The bearer token of `id` and `secret`, recorded for the scan.
fn bearer(id: &str, secret: &str) -> String {
    let t = AppCredToken::new(id, Secret::new(secret))
        .encode()
        .expose()
        .to_string();
    record_issued(&t);
    t
}

/// `curl` as a phone or a GUI calls the API, with `Authorization: Bearer <token>` (from a header
/// file, so the token is not in the logged command line): a GET of `path`, or a POST of `body`.
/// Returns the HTTP status and the answer.
async fn curl(
    sb: &Sandbox,
    server: &str,
    ca: &Path,
    token: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let header = sb.path("auth.header");
    std::fs::write(&header, format!("Authorization: Bearer {token}\n")).unwrap();
    let out = sb.path("curl.out");
    let _ = std::fs::remove_file(&out);
    let (ca, header_arg, out_arg) = (
        ca.to_str().unwrap().to_string(),
        format!("@{}", header.display()),
        out.to_str().unwrap().to_string(),
    );
    let url = format!("{server}{path}");
    let mut args = vec!["-sS", "--cacert", &ca, "-H", &header_arg];
    if let Some(body) = body {
        args.extend([
            "-H",
            "Content-Type: application/json",
            "-X",
            "POST",
            "--data",
            body,
        ]);
    }
    args.extend(["-o", &out_arg, "-w", "%{http_code}", &url]);
    let run = sb.run_program("curl", &args, &[]).await;
    assert_eq!(run.code, Some(0), "curl: {}", run.stderr);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    (
        run.stdout.trim().parse().unwrap(),
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// POSTs a SelfSubjectReview (what `kubectl auth whoami` sends).
async fn curl_whoami(sb: &Sandbox, server: &str, ca: &Path, token: &str) -> (u16, Value) {
    let review = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;
    let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    curl(sb, server, ca, token, path, Some(review)).await
}

/// GETs `/api` (no request body, which a refusing apiserver may cut short): 200 or 401.
async fn curl_api(sb: &Sandbox, server: &str, ca: &Path, token: &str) -> u16 {
    curl(sb, server, ca, token, "/api", None).await.0
}

/// The kubeconfig `kubectl-keystone-auth kubeconfig --bearer-token` writes for the credential.
async fn token_kubeconfig(sb: &Sandbox, api: &OwnApiserver, id: &str, secret: &str) -> PathBuf {
    let kc = sb.path("kubeconfig");
    let run = sb
        .plugin(
            &[
                "kubeconfig",
                "--bearer-token",
                "--server",
                &api.server,
                "--certificate-authority",
                api.ca_file.to_str().unwrap(),
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
    assert_eq!(
        run.code,
        Some(0),
        "kubeconfig --bearer-token: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("[application_credential_tokens]"),
        "{}",
        run.stderr
    );
    kc
}

/// The Python `kubernetes` client with a plain token configuration (no kubeconfig, no exec):
/// the user name the apiserver took, or the HTTP status it refused with.
async fn python_whoami(sb: &Sandbox, server: &str, ca: &Path, token: &str) -> Result<String, u16> {
    let venv = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/venv.sh"))
        .output()
        .unwrap();
    assert!(
        venv.status.success(),
        "tests/python/venv.sh: {}",
        String::from_utf8_lossy(&venv.stderr)
    );
    let python = String::from_utf8(venv.stdout).unwrap().trim().to_string();
    let script = r#"
import os, sys
from kubernetes import client
c = client.Configuration()
c.host = os.environ["K8S_SERVER"]
c.ssl_ca_cert = os.environ["K8S_CA"]
c.api_key = {"authorization": os.environ["K8S_TOKEN"]}
c.api_key_prefix = {"authorization": "Bearer"}
api = client.AuthenticationV1Api(client.ApiClient(c))
try:
    r = api.create_self_subject_review(client.V1SelfSubjectReview())
    print(r.status.user_info.username)
except client.exceptions.ApiException as e:
    print("HTTP", e.status)
    sys.exit(3)
"#;
    let run = sb
        .run_program(
            &python,
            &["-c", script],
            &[
                ("K8S_SERVER", server.to_string()),
                ("K8S_CA", ca.to_str().unwrap().to_string()),
                ("K8S_TOKEN", token.to_string()),
            ],
        )
        .await;
    match run.code {
        Some(0) => Ok(run.stdout.trim().to_string()),
        Some(3) => Err(run
            .stdout
            .trim()
            .strip_prefix("HTTP ")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)),
        _ => panic!("python client: {run:?}"),
    }
}

/// A kube-apiserver whose authentication webhook is a service with the tokens enabled: the
/// service answers valid tokens for 30 s (long enough that the throttle test's guesses on a loaded machine do not outlast the correct token's entry), the apiserver caches its answers for 1 s.
async fn enabled_cluster() -> (Service, OwnApiserver) {
    let dir = tempfile::tempdir().unwrap();
    let (port, pki, webhook) = planned_webhook(dir.path());
    let api = OwnApiserver::start(
        &webhook,
        Path::new(""),
        "v1",
        "--authentication-token-webhook-cache-ttl=1s",
    );
    let svc = Service::start(Options {
        toml: "[cache]\nttl = \"30s\"\n[application_credential_tokens]\nenabled = true\nmax_failures = 3\nfailure_window = \"5m\"\n".into(),
        listen: Some((port, pki)),
        ..Default::default()
    })
    .await;
    (svc, api)
}

const TTL_BOUND: Duration = Duration::from_secs(30 + 1);

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_work_with_kubectl_curl_and_python_and_wrong_secrets_are_throttled() {
    let ks = Keystone::get();
    let t = tag();
    let (svc, api) = enabled_cluster().await;
    let (id, secret, good) = {
        let _read = KEYSTONE.read().await;
        credential(&ks, &format!("kkbr-{t}")).await
    };
    let sb = Sandbox::new();

    // kubectl with a kubeconfig that holds only `token:`.
    let (kc, who) = {
        let _read = KEYSTONE.read().await;
        let kc = token_kubeconfig(&sb, &api, &id, &secret).await;
        (kc.clone(), sb.whoami(&kc).await)
    };
    let written: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&kc).unwrap()).unwrap();
    let user = &written["users"][0]["user"];
    assert_eq!(user["token"].as_str(), Some(good.as_str()));
    assert!(user.get("exec").is_none(), "no exec: no plugin needed");
    assert_eq!(who["username"], "alice", "{who}");
    assert_eq!(who["uid"], env("KS_ALICE_ID"));
    assert_eq!(
        who["extra"]["alpha.kubernetes.io/identity/project/name"],
        json!(["team-a"]),
        "{who}"
    );

    // curl, as a phone or a GUI does.
    let (code, body) = {
        let _read = KEYSTONE.read().await;
        curl_whoami(&sb, &api.server, &api.ca_file, &good).await
    };
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["status"]["userInfo"]["username"], "alice", "{body}");

    // The Python kubernetes client from PyPI with a plain token configuration.
    let py = {
        let _read = KEYSTONE.read().await;
        python_whoami(&sb, &api.server, &api.ca_file, &good).await
    };
    assert_eq!(py, Ok("alice".to_string()));

    // Wrong secrets: 401 for kubectl and curl; after 3 failures of this credential id, further
    // guesses are refused without asking Keystone (the access log shows the bound), and the
    // correct token, still cached, keeps working.
    {
        let _write = KEYSTONE.write().await;
        let (code, _) = curl_whoami(&sb, &api.server, &api.ca_file, &good).await;
        assert_eq!(code, 201, "the correct token, fresh in the service's cache");
        let mark = Keystone::access_log_settled().await;
        let wrong_kc = sb.path("wrong.kubeconfig");
        let wrong = bearer(&id, &format!("{secret}-wrong-0"));
        std::fs::write(
            &wrong_kc,
            std::fs::read_to_string(&kc).unwrap().replace(&good, &wrong),
        )
        .unwrap();
        let run = sb.as_user(&wrong_kc, &["auth", "whoami"]).await;
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(run.stderr.contains("Unauthorized"), "{}", run.stderr);
        for i in 1..=5 {
            let wrong = bearer(&id, &format!("{secret}-wrong-{i}"));
            let code = curl_api(&sb, &api.server, &api.ca_file, &wrong).await;
            assert_eq!(code, 401, "guess {i}");
        }
        let exchanges = Keystone::access_log_count_settled(mark, ISSUE).await;
        assert_eq!(
            exchanges, 3,
            "6 wrong secrets, max_failures = 3: Keystone is asked 3 times"
        );
        let (code, body) = curl_whoami(&sb, &api.server, &api.ca_file, &good).await;
        assert_eq!(code, 201, "the correct cached token still works: {body}");
        assert_eq!(Keystone::access_log_count_settled(mark, ISSUE).await, 3);
        record_figure(&format!(
            "bearer tokens: 6 wrong secrets for one credential id made {exchanges} Keystone exchanges (max_failures = 3)"
        ));
    }
    let metric = |r: &str| {
        format!("k8s_keystone_auth_application_credential_tokens_total{{result=\"{r}\"}}")
    };
    assert_eq!(svc.metric(&metric("throttled")).await, 3);
    assert_eq!(svc.metric(&metric("refused")).await, 3);
    let log = svc.log_text().await;
    assert!(
        log.contains("too many failed secrets") && log.contains(&id),
        "the throttle is logged with the credential id: {log}"
    );
    for s in [&secret, &good] {
        assert!(
            !log.contains(s.as_str()),
            "a secret is in the service's log"
        );
    }
    assert!(
        !log.contains("wrong-"),
        "a wrong secret is in the service's log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_credential_is_refused_within_the_ttl() {
    let ks = Keystone::get();
    let _read = KEYSTONE.read().await;
    let (_svc, api) = enabled_cluster().await;
    let (id, _secret, good) = credential(&ks, &format!("kkbr-del-{}", tag())).await;
    let sb = Sandbox::new();
    assert_eq!(
        python_whoami(&sb, &api.server, &api.ca_file, &good).await,
        Ok("alice".to_string())
    );
    ks.delete_alice_app_cred(&id).await;
    let deleted = Instant::now();
    eventually(
        "the deleted credential refused",
        TTL_BOUND + Duration::from_secs(10),
        async || {
            let code = curl_api(&sb, &api.server, &api.ca_file, &good).await;
            assert!(matches!(code, 200 | 401), "{code}");
            (code == 401).then_some(())
        },
    )
    .await;
    let took = deleted.elapsed();
    assert!(took <= TTL_BOUND + Duration::from_secs(5), "{took:?}");
    assert_eq!(
        python_whoami(&sb, &api.server, &api.ca_file, &good).await,
        Err(401)
    );
    record_figure(&format!(
        "bearer tokens: a deleted application credential refused {:.1} s after its deletion (cache.ttl 10 s + apiserver 1 s)",
        took.as_secs_f64()
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_bearer_tokens_are_refused_by_the_bed_without_asking_keystone() {
    let ks = Keystone::get();
    let bed = crate::apiserver::Bed::get("v1");
    let (_, _, good) = {
        let _read = KEYSTONE.read().await;
        credential(&ks, &format!("kkbr-off-{}", tag())).await
    };
    let sb = Sandbox::new();
    let _write = KEYSTONE.write().await;
    let mark = Keystone::access_log_settled().await;
    let run = bed.with_token(&sb, &good, &["auth", "whoami"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("Unauthorized"), "{}", run.stderr);
    assert_eq!(curl_api(&sb, &bed.server, &bed.ca_file, &good).await, 401);
    assert_eq!(
        Keystone::access_log_count_settled(mark, "/v3/").await,
        0,
        "no Keystone call"
    );
    let log = std::fs::read_to_string(env("BED_SERVICE_LOG")).unwrap();
    assert!(
        log.contains("they are disabled; to accept them set `enabled = true` in the [application_credential_tokens] section"),
        "the bed's service says how to enable them"
    );
    assert!(!log.contains(&good));
}

#[tokio::test]
async fn access_rules_of_the_exchanged_credential_are_checked_and_carried() {
    let _read = KEYSTONE.read().await;
    let svc = Service::start(Options {
        toml: "[application_credential_tokens]\nenabled = true\n".into(),
        ..Default::default()
    })
    .await;
    // Rules for service type k8s: Keystone's answer to the exchange carries them, and so does
    // the TokenReview answer, for authorization to enforce.
    let k8s = bearer(
        &env("KS_AC_KUBECTL_RULES_ID"),
        &env("KS_AC_KUBECTL_RULES_SECRET"),
    );
    let status = svc.token_review("v1", &k8s).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(status["user"]["username"], "alice");
    let rules = &status["user"]["extra"]["alpha.kubernetes.io/identity/access-rules"];
    assert!(rules.as_array().is_some_and(|r| !r.is_empty()), "{status}");
    // Rules for compute only: refused, a definite answer.
    let compute = bearer(
        &env("KS_AC_KUBECTL_RULES_OTHER_ID"),
        &env("KS_AC_KUBECTL_RULES_OTHER_SECRET"),
    );
    assert_eq!(
        svc.token_review("v1", &compute).await,
        json!({"authenticated": false})
    );
    svc.wait_log("access rules do not allow service type \"k8s\"")
        .await;
}
