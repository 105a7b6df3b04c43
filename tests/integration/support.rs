//! Test support: the seeded Keystone, certificates, and the service under test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

/// Tests that count Keystone requests in its access log, or stop Keystone, take this lock for
/// writing; every other test that talks to Keystone takes it for reading.
pub static KEYSTONE: LazyLock<tokio::sync::RwLock<()>> =
    LazyLock::new(|| tokio::sync::RwLock::new(()));

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests with tests/run, which starts and seeds Keystone")
    })
}

/// Where tests leave logs for the end-of-run token scan (tests/run sets it).
pub fn log_dir() -> PathBuf {
    let dir = std::env::var("TEST_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("kk-test-logs"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Records a token issued outside these helpers (by the plugin) for the end-of-run log scan.
pub fn record_issued(t: &str) {
    record_token(t);
}

fn record_token(t: &str) {
    let path = log_dir().join("issued-tokens");
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{t}").unwrap();
}

/// The seeded Keystone.
pub struct Keystone {
    pub url: String,
    http: reqwest::Client,
}

impl Keystone {
    pub fn get() -> Self {
        Self {
            url: env("KS_URL"),
            http: http_client(None)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// `POST /auth/tokens`; the token and the body, or the status.
    pub async fn auth(&self, body: Value) -> Result<(String, Value), u16> {
        let r = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        if r.status().as_u16() != 201 {
            return Err(r.status().as_u16());
        }
        let tok = r.headers()["x-subject-token"].to_str().unwrap().to_string();
        record_token(&tok);
        Ok((tok, r.json().await.unwrap()))
    }

    pub async fn password_token(
        &self,
        user: &str,
        domain: &str,
        password: &str,
        project: Option<(&str, &str)>,
    ) -> String {
        let mut auth = json!({"identity":{"methods":["password"],"password":{"user":{"name":user,"domain":{"name":domain},"password":password}}}});
        if let Some((p, d)) = project {
            auth["scope"] = json!({"project":{"name":p,"domain":{"name":d}}});
        }
        self.auth(json!({ "auth": auth })).await.unwrap().0
    }

    pub async fn alice(&self) -> String {
        self.password_token(
            "alice",
            "k8s",
            &env("KS_ALICE_PASSWORD"),
            Some(("team-a", "k8s")),
        )
        .await
    }

    pub async fn app_cred_token(&self, id: &str, secret: &str) -> Result<String, u16> {
        self.auth(json!({"auth":{"identity":{"methods":["application_credential"],"application_credential":{"id":id,"secret":secret}}}}))
            .await
            .map(|(t, _)| t)
    }

    pub async fn admin(&self) -> String {
        self.password_token(
            "admin",
            "Default",
            &env("KS_ADMIN_PASSWORD"),
            Some(("admin", "Default")),
        )
        .await
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.url, path))
            .header("X-Auth-Token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates an application credential for alice; returns (id, secret).
    pub async fn create_alice_app_cred(&self, name: &str, extra: Value) -> (String, String) {
        let alice = self.alice().await;
        let secret = format!("{name}-secret");
        let mut ac = json!({"name": name, "secret": secret});
        if let (Some(o), Some(e)) = (ac.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        // SQLite answers "database is locked" (HTTP 500) when tests write at once: retry.
        let mut answer = (0, Value::Null);
        for _ in 0..10 {
            answer = self
                .call(
                    reqwest::Method::POST,
                    &format!("/users/{}/application_credentials", env("KS_ALICE_ID")),
                    &alice,
                    Some(json!({"application_credential": ac.clone()})),
                )
                .await;
            if answer.0 < 500 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (status, body) = answer;
        assert_eq!(status, 201, "create app cred {name}: {body}");
        (
            body["application_credential"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
            secret,
        )
    }

    /// Revokes a token (`DELETE /v3/auth/tokens` as admin).
    pub async fn revoke(&self, admin: &str, token: &str) {
        let r = http_client(None)
            .build()
            .unwrap()
            .delete(format!("{}/auth/tokens", self.url))
            .header("X-Auth-Token", admin)
            .header("X-Subject-Token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    /// A disposable user in the test domain with `member` on team-a; returns its id.
    pub async fn create_member(&self, admin: &str, name: &str, password: &str) -> String {
        let (s, body) = self
            .call(
                reqwest::Method::POST,
                "/users",
                admin,
                Some(json!({"user": {"name": name, "domain_id": env("KS_DOMAIN_ID"), "password": password, "default_project_id": env("KS_PROJECT_ID")}})),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        let uid = body["user"]["id"].as_str().unwrap().to_string();
        let (s, roles) = self
            .call(reqwest::Method::GET, "/roles?name=member", admin, None)
            .await;
        assert_eq!(s, 200, "{roles}");
        let role = roles["roles"][0]["id"].as_str().unwrap();
        let path = format!(
            "/projects/{}/users/{uid}/roles/{role}",
            env("KS_PROJECT_ID")
        );
        let (s, _) = self.call(reqwest::Method::PUT, &path, admin, None).await;
        assert_eq!(s, 204);
        uid
    }

    pub async fn delete_alice_app_cred(&self, id: &str) {
        let alice = self.alice().await;
        let mut status = 0;
        for _ in 0..10 {
            status = self
                .call(
                    reqwest::Method::DELETE,
                    &format!("/users/{}/application_credentials/{id}", env("KS_ALICE_ID")),
                    &alice,
                    None,
                )
                .await
                .0;
            if status < 500 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(status, 204);
    }

    /// Lines of Keystone's access log, for counting requests.
    pub fn access_log_len() -> usize {
        std::fs::read_to_string(env("KS_ACCESS_LOG"))
            .unwrap()
            .lines()
            .count()
    }

    /// The access log's length once it has stopped growing for 300 ms (at most 5 s): gunicorn
    /// writes a request's line just after answering it, so a count taken at once can miss it.
    pub async fn access_log_settled() -> usize {
        let mut last = Self::access_log_len();
        let mut stable_since = Instant::now();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let n = Self::access_log_len();
            if n != last {
                last = n;
                stable_since = Instant::now();
            } else if stable_since.elapsed() >= Duration::from_millis(300) {
                break;
            }
        }
        last
    }

    /// [`Keystone::access_log_count`] once the log has settled.
    pub async fn access_log_count_settled(since: usize, needle: &str) -> usize {
        Self::access_log_settled().await;
        Self::access_log_count(since, needle)
    }

    /// Requests logged since `since` (a line count) whose request line contains `needle`.
    pub fn access_log_count(since: usize, needle: &str) -> usize {
        std::fs::read_to_string(env("KS_ACCESS_LOG"))
            .unwrap()
            .lines()
            .skip(since)
            .filter(|l| l.contains(needle))
            .count()
    }
}

pub const VALIDATE: &str = "\"GET /v3/auth/tokens?nocatalog";

/// A CA and a server certificate for 127.0.0.1/localhost, written as PEM files.
pub struct Pki {
    pub ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        Self {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A leaf certificate: (cert PEM, key PEM).
    pub fn leaf(&self, cn: &str, server: bool) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn write_server(&self, dir: &Path) {
        let (c, k) = self.leaf("k8s-keystone-auth", true);
        write_atomic(&dir.join("tls.crt"), &c);
        write_atomic(&dir.join("tls.key"), &k);
        std::fs::write(dir.join("ca.crt"), &self.ca_pem).unwrap();
    }
}

/// Writes through a temporary file and a rename, as Kubernetes and the charm do.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A port on 127.0.0.1 that nothing listens on now. See [`free_ports`].
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `n` consecutive ports on 127.0.0.1 that nothing listens on now (etcd takes a
/// client and a peer port), picked **below the kernel's ephemeral range**
/// (`net.ipv4.ip_local_port_range`). A port from `bind(0)` lies inside that range, where the
/// kernel also hands out the local ports of outgoing connections: with hundreds of test
/// connections open, another process could take it between our check and its `bind` (CI saw
/// etcd's peer port taken). Below the range only other listeners compete, and the ports come
/// from a counter seeded per process, so two tests of one run never get the same one.
pub fn free_ports(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768)
        .clamp(12000, 65000);
    let (base, span) = (10000u32, low - 10000 - u32::from(n));
    if NEXT.load(Ordering::Relaxed) == 0 {
        let seed = std::process::id().wrapping_mul(7919)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
        let _ = NEXT.compare_exchange(0, seed % span + 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..2000 {
        let first = base + NEXT.fetch_add(u32::from(n), Ordering::Relaxed) % span;
        let all_free = (first..first + u32::from(n))
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", u16::try_from(p).unwrap())).is_ok());
        if all_free {
            return u16::try_from(first).unwrap();
        }
    }
    panic!("no {n} free consecutive ports on 127.0.0.1 in 2000 tries");
}

/// The service under test: the real binary on a free port with its own certificates.
pub struct Service {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub pki: Pki,
    child: Child,
    pub log: PathBuf,
    pub http: reqwest::Client,
}

pub struct Options {
    /// Extra TOML appended to the generated config file.
    pub toml: String,
    pub policy: Option<String>,
    pub keystone_url: Option<String>,
    pub args: Vec<String>,
    pub client_ca: bool,
    pub log_level: &'static str,
    /// The port to serve on and the PKI to serve with, when the test must know them before
    /// the service starts (a kube-apiserver whose webhook it is); else picked here.
    pub listen: Option<(u16, Pki)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            toml: String::new(),
            policy: None,
            keystone_url: None,
            args: vec![],
            client_ca: false,
            // The most verbose level: tests/run scans every log for the secrets it issued.
            log_level: "trace",
            listen: None,
        }
    }
}

impl Service {
    pub async fn start(opts: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, pki) = opts
            .listen
            .unwrap_or_else(|| (free_port(), Pki::new("server")));
        pki.write_server(dir.path());
        let ks = opts.keystone_url.clone().unwrap_or_else(|| env("KS_URL"));
        let opts = Options {
            listen: None,
            ..opts
        };
        let mut toml = format!(
            "listen = \"127.0.0.1:{port}\"\nlog_level = \"{}\"\n[tls]\ncert_file = \"{d}/tls.crt\"\nprivate_key_file = \"{d}/tls.key\"\nreload_interval = \"200ms\"\n",
            opts.log_level,
            d = dir.path().display()
        );
        let mut client_ca_pki = None;
        if opts.client_ca {
            let cpki = Pki::new("client");
            std::fs::write(dir.path().join("client-ca.crt"), &cpki.ca_pem).unwrap();
            toml.push_str(&format!(
                "client_ca_file = \"{}/client-ca.crt\"\n",
                dir.path().display()
            ));
            client_ca_pki = Some(cpki);
        }
        toml.push_str(&format!("[keystone]\nurl = \"{ks}\"\n"));
        if let Some(p) = &opts.policy {
            std::fs::write(dir.path().join("policy.json"), p).unwrap();
            toml.push_str(&format!(
                "[policy]\nfile = \"{}/policy.json\"\nreload_interval = \"200ms\"\n",
                dir.path().display()
            ));
        }
        toml.push_str(&opts.toml);
        std::fs::write(dir.path().join("config.toml"), &toml).unwrap();
        let log = log_dir().join(format!("service-{port}.log"));
        let child = Command::new(crate::bins::bin("k8s-keystone-auth"))
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .args(&opts.args)
            .env_remove("RUST_LOG")
            .env_remove("OS_AUTH_URL")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        let identity = client_ca_pki.as_ref().map(|cpki| {
            let (c, k) = cpki.leaf("kube-apiserver", false);
            kk_core::tls::ClientIdentity {
                chain: kk_core::tls::parse_certs(c.as_bytes()).unwrap(),
                key: rustls_pki_types::PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap(),
            }
        });
        let roots = kk_core::tls::parse_certs(pki.ca_pem.as_bytes()).unwrap();
        let http =
            kk_core::tls::http_client(kk_core::tls::client_config(Some(&roots), identity).unwrap())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
        let svc = Service {
            dir,
            port,
            pki,
            child,
            log: log.with_extension("err"),
            http,
        };
        svc.wait_healthy().await;
        svc
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(self.url("/healthz")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("service did not become healthy; log:\n{}", self.log_now());
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, serde_json::to_vec(body).unwrap()).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// A TokenReview as kube-apiserver sends it; returns the answer's status object.
    pub async fn token_review(&self, version: &str, token: &str) -> Value {
        let body = json!({"apiVersion": format!("authentication.k8s.io/{version}"), "kind": "TokenReview",
                          "metadata": {"creationTimestamp": null}, "spec": {"token": token, "audiences": ["https://kubernetes.default.svc"]}, "status": {}});
        let (status, answer) = self.post("/webhook", &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["apiVersion"],
            format!("authentication.k8s.io/{version}")
        );
        assert_eq!(answer["kind"], "TokenReview");
        assert!(
            answer.get("spec").is_none(),
            "the token must not be echoed back"
        );
        answer["status"].clone()
    }

    pub async fn metric(&self, needle: &str) -> u64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find(|l| l.starts_with(needle) && l[needle.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
    /// The log file as it is now (for failure messages, and once the service has exited).
    pub fn log_now(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log with every line logged up to the decision line of the last TokenReview this
    /// service answered (counted in its /metrics): one thread writes the log in order, so the
    /// lines logged while reviewing the tokens sent so far are all there. For checks that a
    /// line is *not* in the log, or appears exactly so often. Bounded (5 s), then the file as
    /// it is; a service that does not answer: the file as it is.
    pub async fn log_text(&self) -> String {
        let Ok(metrics) = self.http.get(self.url("/metrics")).send().await else {
            return self.log_now();
        };
        let text = metrics.text().await.unwrap_or_default();
        let reviews: u64 = text
            .lines()
            .filter(|l| l.starts_with("k8s_keystone_auth_reviews_total{kind=\"TokenReview\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        let logged = |log: &str| log.matches(" review kind=\"TokenReview\"").count() as u64;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log_now();
            if logged(&log) >= reviews || Instant::now() > deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (at most 10 s) until the log contains `needle` and returns it; panics with the
    /// log when it never does.
    pub async fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log_now();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the service never logged {needle:?}; its log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns the exit status code.
    pub async fn terminate(&mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A SubjectAccessReview body.
pub fn sar(version: &str, user: &Value, attrs: Value) -> Value {
    let mut spec = json!({"user": user["username"], "uid": user["uid"], "extra": user["extra"]});
    if version == "v1" {
        spec["groups"] = user["groups"].clone();
    } else {
        spec["group"] = user["groups"].clone();
    }
    for (k, v) in attrs.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"apiVersion": format!("authorization.k8s.io/{version}"), "kind": "SubjectAccessReview", "spec": spec})
}

pub fn keystone_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keystone")
        .join(name)
}

/// Starts Keystone again when dropped (also when the test panics).
pub struct RestartKeystone;

impl Drop for RestartKeystone {
    fn drop(&mut self) {
        let status = Command::new("bash")
            .arg(keystone_script("up.sh"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            status.map(|s| s.success()).unwrap_or(false),
            "could not restart Keystone"
        );
    }
}

impl Service {
    /// Sends raw bytes over TLS and returns everything the server answers (bounded in time).
    /// For requests a well-behaved HTTP client would not send.
    pub async fn raw_https(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(self.pki.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(kk_core::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        // The server may answer and close before the whole request is written.
        let _ = tls.write_all(request).await;
        let _ = tls.flush().await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Appends a measured figure to `figures.txt` in the run's log folder; tests/run prints them at
/// the end (cargo test hides a passing test's output).
pub fn record_figure(line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir().join("figures.txt"))
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// A reqwest client builder trusting the CA of `ca_pem` (else the platform's roots), as every
/// client of the project is built (kk_core::tls; no process-wide crypto provider).
pub fn http_client(ca_pem: Option<&str>) -> reqwest::ClientBuilder {
    let roots = ca_pem.map(|pem| kk_core::tls::parse_certs(pem.as_bytes()).unwrap());
    kk_core::tls::http_client(kk_core::tls::client_config(roots.as_deref(), None).unwrap())
}
