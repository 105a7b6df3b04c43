//! The servers of the run: our k8s-keystone-auth (as a child process, several configurations),
//! the Go reference, nginx, the static-response server on our own stack (hyper-util + rustls
//! with the service's own ServerConfig, in this process) and the Keystone replay server of the
//! memory figure. Every child is killed when its [`Proc`] is dropped, and its pid is written to
//! `$BENCH_RUN_DIR/pids` so that the wrapper's trap can kill it if this program dies first.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;

use crate::config::Config;

/// A child process, killed on drop.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// VmRSS from /proc, in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .with_context(|| format!("{} is gone", self.name))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("no VmRSS in /proc/PID/status")
    }
}

impl Drop for Proc {
    /// SIGTERM, then SIGKILL after 3 s: nginx's master stops its workers only when asked nicely
    /// (killed, it leaves them serving).
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            // Teardown only (nothing is measured any more): a bounded blocking wait.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(cfg: &Config, name: &str, cmd: &mut Command) -> Result<Proc> {
    let log = cfg.run_dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log)?;
    let child = cmd
        .env_remove("RUST_LOG")
        .env_remove("OS_AUTH_URL")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot start {name} ({cmd:?})"))?;
    let mut pids = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cfg.run_dir.join("pids"))?;
    writeln!(pids, "{}", child.id())?;
    Ok(Proc {
        name: name.to_string(),
        child,
        log,
    })
}

/// Waits (at most 20 s) until the port accepts connections; fails early if the process exits.
async fn wait_port(p: &mut Proc, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(status) = p.child.try_wait()? {
            bail!("{} exited ({status}); see {}", p.name, p.log.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{} did not listen on {port} within 20 s", p.name)
}

/// A CA and a serving certificate for 127.0.0.1, shared by every server of the run.
pub struct Pki {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub roots: Vec<CertificateDer<'static>>,
}

impl Pki {
    pub fn write(dir: &Path) -> Result<Self> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "benchmark CA");
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate()?;
        let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
        leaf.subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = leaf.signed_by(&key, &issuer)?;
        let pki = Self {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            roots: kk_core::tls::parse_certs(ca_cert.pem().as_bytes())?,
        };
        std::fs::write(&pki.cert, cert.pem())?;
        std::fs::write(&pki.key, key.serialize_pem())?;
        Ok(pki)
    }

    /// A client trusting the CA (HTTP/1.1, keep-alive), for the checks and the loads run from
    /// this program; also right for the plain-HTTP Keystone.
    pub fn client(&self) -> Result<reqwest::Client> {
        Ok(
            kk_core::tls::http_client(kk_core::tls::client_config(Some(&self.roots), None)?)
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(2000)
                .build()?,
        )
    }
}

/// One configuration of our service.
pub struct Ours<'a> {
    pub name: &'a str,
    pub port: u16,
    pub log_level: &'a str,
    pub keystone_url: &'a str,
    /// Appended to the config file (a `[cache]` table).
    pub toml: &'a str,
}

pub async fn start_ours(cfg: &Config, pki: &Pki, o: &Ours<'_>) -> Result<Proc> {
    let file = cfg.run_dir.join(format!("{}.toml", o.name));
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\nlog_level = \"{level}\"\n[tls]\ncert_file = \"{cert}\"\nprivate_key_file = \"{key}\"\n[keystone]\nurl = \"{ks}\"\n[policy]\nfile = \"{policy}\"\n{extra}",
        port = o.port,
        level = o.log_level,
        cert = pki.cert.display(),
        key = pki.key.display(),
        ks = o.keystone_url,
        policy = policy_file().display(),
        extra = o.toml,
    );
    std::fs::write(&file, text)?;
    let mut p = spawn(
        cfg,
        o.name,
        Command::new(cfg.bin_dir.join("k8s-keystone-auth"))
            .arg("--config")
            .arg(&file),
    )?;
    wait_port(&mut p, o.port).await?;
    Ok(p)
}

/// The realistic policy of dozens of rules (a fixture of the benchmark).
pub fn policy_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/comparison/policy.json")
}

/// The Go reference, with the flags the differential tests give it.
pub async fn start_go(cfg: &Config, pki: &Pki) -> Result<Proc> {
    let mut p = spawn(
        cfg,
        "go",
        Command::new(&cfg.go_bin)
            .arg(format!("--listen=127.0.0.1:{}", crate::config::port::GO))
            .arg(format!("--tls-cert-file={}", pki.cert.display()))
            .arg(format!("--tls-private-key-file={}", pki.key.display()))
            .arg(format!("--keystone-url={}", cfg.keystone.url))
            .arg(format!(
                "--keystone-policy-file={}",
                policy_file().display()
            )),
    )?;
    wait_port(&mut p, crate::config::port::GO).await?;
    Ok(p)
}

/// The answers the static servers give: path -> (headers, body), captured from our service.
#[derive(Clone, Default)]
pub struct Canned {
    pub by_path: HashMap<String, (Vec<(String, String)>, Bytes)>,
}

/// nginx from Debian answering the canned bytes with `return 200 '...'`, with its own config,
/// pid, logs and temp paths in the run's folder.
pub async fn start_nginx(cfg: &Config, pki: &Pki, canned: &Canned) -> Result<Proc> {
    let dir = cfg.run_dir.join("nginx");
    std::fs::create_dir_all(dir.join("tmp"))?;
    let mut locations = String::new();
    for (path, (headers, body)) in &canned.by_path {
        let body = std::str::from_utf8(body)?;
        // In nginx's single-quoted strings `\` escapes; `$` would name a variable.
        if body.contains('$') {
            bail!("the canned answer for {path} cannot be written as an nginx string");
        }
        let body = body.replace('\\', "\\\\").replace('\'', "\\'");
        let mut extra = String::new();
        let mut content_type = "application/octet-stream".to_string();
        for (k, v) in headers {
            if k.eq_ignore_ascii_case("content-type") {
                content_type = v.clone();
            } else {
                extra.push_str(&format!("    add_header {k} \"{v}\" always;\n"));
            }
        }
        locations.push_str(&format!(
            "   location = {path} {{\n    default_type \"{content_type}\";\n{extra}    return 200 '{body}';\n   }}\n"
        ));
    }
    let d = dir.display();
    let conf = format!(
        "worker_processes {workers};\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\ndaemon off;\nevents {{ worker_connections 4096; }}\nhttp {{\n access_log off;\n client_body_temp_path {d}/tmp/body;\n proxy_temp_path {d}/tmp/proxy;\n fastcgi_temp_path {d}/tmp/fastcgi;\n uwsgi_temp_path {d}/tmp/uwsgi;\n scgi_temp_path {d}/tmp/scgi;\n keepalive_requests 100000000;\n keepalive_timeout 300s;\n server_tokens off;\n server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {cert};\n  ssl_certificate_key {key};\n{locations} }}\n}}\n",
        workers = cfg.nginx_workers,
        port = crate::config::port::NGINX,
        cert = pki.cert.display(),
        key = pki.key.display(),
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let mut p = spawn(
        cfg,
        "nginx",
        Command::new(&cfg.nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log")),
    )?;
    wait_port(&mut p, crate::config::port::NGINX).await?;
    Ok(p)
}

fn canned_response(canned: &Canned, path: &str) -> Response<Full<Bytes>> {
    let mut r = Response::builder();
    let body = match canned.by_path.get(path) {
        Some((headers, body)) => {
            for (k, v) in headers {
                r = r.header(k.as_str(), v.as_str());
            }
            body.clone()
        }
        None => {
            r = r.status(404);
            Bytes::new()
        }
    };
    r.body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The ceiling of our own stack: the service's accept loop reduced to TLS with the service's
/// own rustls ServerConfig (`kk_webhook::tls::build_server_config`), hyper-util's auto builder
/// and a handler that reads the body and answers the canned bytes. Runs on this program's
/// runtime (as many workers as the service's: one per core).
pub async fn start_static(pki: &Pki, canned: Canned) -> Result<tokio::task::JoinHandle<()>> {
    let tls = kk_webhook::tls::build_server_config(&kk_webhook::config::TlsConfig {
        cert_file: pki.cert.clone(),
        key_file: pki.key.clone(),
        client_ca_file: None,
        reload_interval: Duration::from_secs(10),
    })?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = TcpListener::bind(("127.0.0.1", crate::config::port::STATIC)).await?;
    let canned = Arc::new(canned);
    Ok(tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let (acceptor, canned) = (acceptor.clone(), canned.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let canned = canned.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(canned_response(&canned, &path))
                    }
                });
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(120));
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }))
}

/// Plain-HTTP stand-in for Keystone answering every validation with one body recorded from the
/// real Keystone (and the X-Subject-Token it was asked about), every group listing with one
/// recorded body: for filling the cache with more distinct tokens than Keystone can issue.
pub async fn start_replay(validate: Bytes, groups: Bytes) -> Result<tokio::task::JoinHandle<()>> {
    let addr: SocketAddr = ([127, 0, 0, 1], crate::config::port::REPLAY).into();
    let listener = TcpListener::bind(addr).await?;
    let bodies = Arc::new((validate, groups));
    Ok(tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let bodies = bodies.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let bodies = bodies.clone();
                    async move {
                        let path = req.uri().path();
                        let mut r = Response::builder().header("content-type", "application/json");
                        let body = if path.starts_with("/v3/auth/tokens") {
                            if let Some(t) = req.headers().get("x-subject-token") {
                                r = r.header("x-subject-token", t.clone());
                            }
                            bodies.0.clone()
                        } else if path.starts_with("/v3/users/") {
                            bodies.1.clone()
                        } else {
                            Bytes::from_static(
                                br#"{"version": {"id": "v3.14", "status": "stable", "links": []}}"#,
                            )
                        };
                        Ok::<_, Infallible>(
                            r.body(Full::new(body))
                                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    }))
}
