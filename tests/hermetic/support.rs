//! The service's state and routes, in process, pointed at a fake Keystone.

use std::sync::Arc;
use std::time::Duration;

use kk_core::keystone::AuthRequest;
use kk_core::metrics::Metrics;
use kk_webhook::config::{AppCredTokensConfig, CacheConfig, Config, KeystoneConfig, ServerConfig};
use kk_webhook::{State, filters};
use serde_json::{Value, json};

/// What differs between the tests' services.
pub struct Settings {
    pub keystone_url: String,
    pub timeout: Duration,
    pub ttl: Duration,
    pub serve_stale: bool,
    pub service_auth: Option<AuthRequest>,
    /// Policy JSON; `None`: one that allows everything to every Keystone user.
    pub policy: Option<String>,
    /// `[application_credential_tokens]` (default: off).
    pub appcred_tokens: AppCredTokensConfig,
    /// `[server]` (default: 16384 connections).
    pub server: ServerConfig,
}

impl Settings {
    pub fn new(keystone_url: String) -> Self {
        Self {
            keystone_url,
            timeout: Duration::from_secs(2),
            ttl: Duration::from_secs(60),
            serve_stale: false,
            service_auth: None,
            policy: None,
            appcred_tokens: Default::default(),
            server: Default::default(),
        }
    }
}

/// The state plus the temporary directory its policy file lives in.
pub struct Svc {
    pub state: Arc<State>,
    _dir: tempfile::TempDir,
}

pub const ALLOW_ALL: &str = r#"[{"resource_permissions": {"*/*": ["*"]}, "nonresource_permissions": {"/healthz": ["get"]}}]"#;

impl Svc {
    pub fn new(s: Settings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.json");
        std::fs::write(&policy, s.policy.as_deref().unwrap_or(ALLOW_ALL)).unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            server: s.server,
            tls: None,
            keystone: KeystoneConfig {
                url: kk_core::keystone::normalize_url(&s.keystone_url).unwrap(),
                ca_file: None,
                timeout: s.timeout,
                connect_timeout: s.timeout,
                service_type: "k8s".into(),
                user_agent: "hermetic-test".into(),
                service_auth: s.service_auth,
            },
            username_format: Default::default(),
            max_token_length: 4096,
            cache: CacheConfig {
                max_entries: 100,
                ttl: s.ttl,
                negative_ttl: Duration::from_secs(10),
                serve_stale: s.serve_stale,
            },
            appcred_tokens: s.appcred_tokens,
            policy_file: Some(policy),
            policy_configmap: None,
            policy_reload_interval: Duration::from_secs(2),
            policy_strict: false,
            sync_strict: false,
            sync_config_file: None,
            sync_configmap: None,
            sync: Default::default(),
            kubernetes: Default::default(),
            log_level: "info".into(),
            warnings: vec![],
        };
        let state = Arc::new(State::build(&config, Arc::new(Metrics::default())).unwrap());
        Self { state, _dir: dir }
    }

    /// A request through every route, as `warp::test` sends it.
    pub async fn send(&self, req: warp::test::RequestBuilder) -> (u16, Value, String) {
        let r = req.reply(&filters::routes(self.state.clone())).await;
        let text = String::from_utf8_lossy(r.body()).into_owned();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (
            r.status().as_u16(),
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ct,
        )
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (code, v, _) = self
            .send(
                warp::test::request()
                    .method("POST")
                    .path(path)
                    .header("content-type", "application/json")
                    .json(body),
            )
            .await;
        (code, v)
    }

    /// A TokenReview as kube-apiserver sends it; the answer's `status`.
    pub async fn token_review(&self, version: &str, token: &str) -> Value {
        let (code, answer) = self.post("/webhook", &token_review(version, token)).await;
        assert_eq!(code, 200, "{answer}");
        assert_eq!(
            answer["apiVersion"],
            format!("authentication.k8s.io/{version}")
        );
        assert_eq!(answer["kind"], "TokenReview");
        assert!(answer.get("spec").is_none(), "the token must not be echoed");
        answer["status"].clone()
    }

    /// The value of one metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, needle: &str) -> u64 {
        self.state
            .metrics
            .render()
            .lines()
            .find(|l| l.starts_with(needle) && l[needle.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

pub fn token_review(version: &str, token: &str) -> Value {
    json!({"apiVersion": format!("authentication.k8s.io/{version}"), "kind": "TokenReview",
           "metadata": {"creationTimestamp": null},
           "spec": {"token": token, "audiences": ["https://kubernetes.default.svc"]}, "status": {}})
}

/// A SubjectAccessReview for alice from Keystone, as kube-apiserver sends it (`groups` in v1,
/// `group` in v1beta1).
pub fn sar(version: &str) -> Value {
    let mut spec = json!({"user": "alice", "uid": "u-alice",
        "extra": {"alpha.kubernetes.io/identity/project/id": ["p-team-a"]},
        "resourceAttributes": {"verb": "list", "namespace": "default", "version": "v1", "resource": "pods"}});
    spec[if version == "v1" { "groups" } else { "group" }] = json!(["devs", "p-team-a"]);
    json!({"apiVersion": format!("authorization.k8s.io/{version}"), "kind": "SubjectAccessReview",
           "metadata": {"creationTimestamp": null}, "spec": spec, "status": {"allowed": false}})
}

/// A reqwest client builder for plain HTTP to 127.0.0.1, built as every client of the project
/// is (kk_core::tls; no process-wide crypto provider).
pub fn http_client() -> reqwest::ClientBuilder {
    kk_core::tls::http_client(kk_core::tls::client_config(None, None).unwrap())
}
