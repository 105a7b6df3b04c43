//! The real `k8s-keystone-auth` binary (plain HTTP on 127.0.0.1), its `[keystone] url` pointed
//! at the fake Keystone: the configuration path end to end, and no token in its log at trace
//! level while it goes through the error paths.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warp::http::Method;

use crate::fake::*;
use crate::support::token_review;

pub(crate) struct Binary {
    pub(crate) child: Child,
    pub(crate) port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    async fn start(keystone_url: &str, extra_toml: &str) -> Self {
        Self::start_logging(keystone_url, "trace", extra_toml).await
    }

    /// [`Binary::start`] with this log level.
    pub(crate) async fn start_logging(
        keystone_url: &str,
        log_level: &str,
        extra_toml: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\nlog_level = \"{log_level}\"\ninsecure_http = true\n[keystone]\nurl = \"{keystone_url}\"\ntimeout = \"1s\"\n{extra_toml}"
            ),
        )
        .unwrap();
        let log = dir.path().join("stderr.log");
        let mut cmd = Command::new(crate::bins::bin("k8s-keystone-auth"));
        // Only the file configures it, whatever the caller's shell exports.
        for var in [
            "RUST_LOG",
            "TOKIO_WORKER_THREADS",
            "OS_AUTH_URL",
            "K8S_KEYSTONE_AUTH_CONFIG",
            "TLS_CERT_FILE",
            "TLS_PRIVATE_KEY_FILE",
            "CLIENT_CA_FILE",
            "KEYSTONE_CA_FILE",
            "KEYSTONE_POLICY_FILE",
            "KEYSTONE_SYNC_CONFIG_FILE",
            "KEYSTONE_KUBECONFIG_FILE",
            "KEYSTONE_POLICY_CONFIGMAP_NAME",
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env_remove(var);
        }
        let child = cmd
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let http = crate::support::http_client()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut b = Binary {
            child,
            port,
            log,
            _dir: dir,
            http,
        };
        b.wait_healthy().await;
        b
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = self.http.get(self.url("/healthz")).send().await
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the service exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "the service did not become healthy:\n{}",
                self.log_text()
            );
            // Polling a port that is not open yet: nothing to wait on but time.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn review(&self, token: &str) -> Value {
        let r = self
            .http
            .post(self.url("/webhook?timeout=30s"))
            .json(&token_review("v1", token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["status"].clone()
    }
}

/// Threads of `pid` named as tokio names its runtime's threads (workers, and any blocking
/// threads it started).
fn runtime_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("tokio-rt-worker"))
        .count()
}

#[tokio::test]
async fn server_worker_threads_sets_the_runtime_threads() {
    let ks = FakeKeystone::start().await;
    let one = Binary::start(&ks.url(), "[server]\nworker_threads = 1\n").await;
    let four = Binary::start(&ks.url(), "[server]\nworker_threads = 4\n").await;
    // Blocking threads, if any, are named the same: compare the two, started alike.
    let (n1, n4) = (
        runtime_threads(one.child.id()),
        runtime_threads(four.child.id()),
    );
    assert!(n1 >= 1, "{n1} runtime threads with worker_threads = 1");
    assert_eq!(n4 - n1, 3, "{n1} threads with 1 worker, {n4} with 4");
}

#[tokio::test]
async fn the_binary_uses_the_configured_keystone_and_logs_no_token() {
    let ks = FakeKeystone::start().await;
    let secret = "svc-secret-hermetic-0123456789";
    let svc_tokens = ["gAAAAABsvcfirst0123456789", "gAAAAABsvcsecond0123456789"];
    let mut issued = alice_token();
    issued["token"]["expires_at"] = json!(in_secs(3600));
    ks.on(
        Method::POST,
        VALIDATE,
        svc_tokens
            .iter()
            .map(|t| Answer::json(201, issued.clone()).header("x-subject-token", t))
            .collect(),
    );
    let bin = Binary::start(
        &ks.url(),
        &format!(
            "[keystone.service_identity]\napplication_credential_id = \"svc-ac\"\napplication_credential_secret = \"{secret}\"\n"
        ),
    )
    .await;
    // 503: an error answer.
    ks.on(Method::GET, VALIDATE, vec![Answer::error(503, "down")]);
    let t503 = token("binary503");
    let status = bin.review(&t503).await;
    assert!(
        status["error"]
            .as_str()
            .unwrap_or_default()
            .contains("HTTP 503"),
        "{status}"
    );
    // The service token refused once, then renewed: alice.
    ks.on(
        Method::GET,
        VALIDATE,
        vec![
            Answer::error(401, "revoked"),
            Answer::json(200, alice_token()),
        ],
    );
    ks.on(
        Method::GET,
        "/v3/users/u-alice/groups",
        vec![Answer::json(200, groups(&["devs"], None))],
    );
    let tok = token("binaryok");
    let status = bin.review(&tok).await;
    assert_eq!(status["user"]["username"], "alice", "{status}");
    // 404: refused.
    ks.on(Method::GET, VALIDATE, vec![Answer::error(404, "unknown")]);
    let t404 = token("binary404");
    assert_eq!(bin.review(&t404).await, json!({"authenticated": false}));
    assert_eq!(ks.count(Method::POST, VALIDATE), 2);
    assert!(
        ks.seen().iter().all(|s| s
            .header("user-agent")
            .is_some_and(|ua| ua.contains("k8s-keystone-auth"))),
        "{:?}",
        ks.seen()
            .iter()
            .map(|s| s.header("user-agent"))
            .collect::<Vec<_>>()
    );
    let log = bin.log_text();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "{log}");
    for secret in [t503.as_str(), tok.as_str(), t404.as_str(), secret]
        .into_iter()
        .chain(svc_tokens)
    {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}
