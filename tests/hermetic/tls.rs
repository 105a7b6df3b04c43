//! What an HTTPS client of the project trusts (kk_core::tls): a tokio-rustls server on
//! 127.0.0.1 presenting made-up certificates, and reqwest clients built as the binaries build
//! theirs. A CA file accepts a chain to one of its certificates, or exactly one of its
//! certificates (the self-signed CA:TRUE certificate `openssl req -x509` makes, which webpki
//! alone refuses) when valid now and for the host; no CA file means the platform's roots.
//! Then the real `kubectl-keystone-auth --cacert` against the fake Keystone behind such a
//! certificate.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warp::http::Method;

use crate::fake::*;

/// A certificate and its key.
struct Cert {
    der: CertificateDer<'static>,
    pem: String,
    key: PrivateKeyDer<'static>,
}

fn key_der(key: &rcgen::KeyPair) -> PrivateKeyDer<'static> {
    PrivatePkcs8KeyDer::from(key.serialize_der()).into()
}

/// The certificate `openssl req -x509 -subj /CN=<cn> -addext subjectAltName=...` makes: self
/// signed, basicConstraints CA:TRUE, no extended key usage.
fn self_signed_ca(cn: &str, sans: &[&str], valid: Option<(i32, i32)>) -> Cert {
    let key = rcgen::KeyPair::generate().unwrap();
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(sans).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    if let Some((from, to)) = valid {
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
    }
    let cert = params.self_signed(&key).unwrap();
    Cert {
        der: cert.der().clone(),
        pem: cert.pem(),
        key: key_der(&key),
    }
}

/// A CA (of a name of its own) and a leaf for 127.0.0.1 it signed (CA:FALSE, serverAuth).
fn ca_and_leaf() -> (Cert, Cert) {
    ca_and_leaf_for(rcgen::ExtendedKeyUsagePurpose::ServerAuth)
}

fn ca_and_leaf_for(usage: rcgen::ExtendedKeyUsagePurpose) -> (Cert, Cert) {
    static CAS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("hermetic test CA {n}"));
    let ca_cert = params.self_signed(&ca_key).unwrap();
    let ca_key_der = key_der(&ca_key);
    let issuer = rcgen::Issuer::new(params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf.extended_key_usages = vec![usage];
    let leaf_cert = leaf.signed_by(&key, &issuer).unwrap();
    (
        Cert {
            der: ca_cert.der().clone(),
            pem: ca_cert.pem(),
            key: ca_key_der,
        },
        Cert {
            der: leaf_cert.der().clone(),
            pem: leaf_cert.pem(),
            key: key_der(&key),
        },
    )
}

/// What the test server does with a connection once the handshake is done.
#[derive(Clone, Copy)]
enum Backend {
    /// Answers `HTTP/1.1 200` with the body `hello` to one request.
    Hello,
    /// Passes the bytes on to this plain HTTP server (the fake Keystone).
    Proxy(SocketAddr),
}

/// A TLS server on 127.0.0.1 presenting `chain`; stops when dropped.
struct Server {
    addr: SocketAddr,
    /// The ALPN protocol of each completed handshake.
    alpn: Arc<Mutex<Vec<Option<Vec<u8>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(chain: Vec<CertificateDer<'static>>, key: &PrivateKeyDer<'static>) -> Self {
        Self::start_with(chain, key, None, Backend::Hello).await
    }

    async fn start_with(
        chain: Vec<CertificateDer<'static>>,
        key: &PrivateKeyDer<'static>,
        client_ca: Option<&CertificateDer<'static>>,
        backend: Backend,
    ) -> Self {
        let builder = rustls::ServerConfig::builder_with_provider(kk_core::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.clone()).unwrap();
                builder.with_client_cert_verifier(
                    rustls::server::WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots),
                        kk_core::tls::provider(),
                    )
                    .build()
                    .unwrap(),
                )
            }
        };
        let mut config = builder.with_single_cert(chain, key.clone_key()).unwrap();
        // A server that would speak HTTP/2: the client must not offer it (reqwest here speaks
        // HTTP/1.1 only).
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let alpn = Arc::new(Mutex::new(Vec::new()));
        let seen = alpn.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    seen.lock()
                        .unwrap()
                        .push(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
                    match backend {
                        Backend::Hello => {
                            let mut request = Vec::new();
                            let mut buf = [0u8; 4096];
                            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                                match tls.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => request.extend_from_slice(&buf[..n]),
                                }
                            }
                            let _ = tls
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
                                .await;
                            let _ = tls.shutdown().await;
                        }
                        Backend::Proxy(to) => {
                            let Ok(mut plain) = tokio::net::TcpStream::connect(to).await else {
                                return;
                            };
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                        }
                    }
                });
            }
        });
        Self { addr, alpn, task }
    }

    fn alpn(&self) -> Vec<Option<Vec<u8>>> {
        self.alpn.lock().unwrap().clone()
    }
}

/// The error and all its sources, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `GET https://<host>:<port>/` with a client trusting `ca` (`None`: the platform's roots),
/// `host` resolved to the server. The body, or the whole error.
async fn get(
    server: &Server,
    host: &str,
    ca: Option<&[CertificateDer<'static>]>,
    identity: Option<kk_core::tls::ClientIdentity>,
) -> Result<String, String> {
    let config = kk_core::tls::client_config(ca, identity).unwrap();
    let http = kk_core::tls::http_client(config)
        .no_proxy()
        .resolve(host, server.addr)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("https://{host}:{}/", server.addr.port());
    match http.get(url).send().await {
        Ok(r) => Ok(r.text().await.map_err(|e| chain(&e))?),
        Err(e) => Err(chain(&e)),
    }
}

#[tokio::test]
async fn a_pinned_self_signed_ca_certificate_is_accepted() {
    let cert = self_signed_ca("127.0.0.1", &["127.0.0.1"], None);
    let pinned = [cert.der.clone()];
    // What webpki alone says of it (what both binaries said before): a CA as end entity.
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new({
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cert.der.clone()).unwrap();
            roots
        }),
        kk_core::tls::provider(),
    )
    .build()
    .unwrap();
    let refused = rustls::client::danger::ServerCertVerifier::verify_server_cert(
        &*webpki,
        &cert.der,
        &[],
        &rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap(),
        &[],
        rustls_pki_types::UnixTime::now(),
    )
    .unwrap_err();
    assert!(
        format!("{refused:?}").contains("CaUsedAsEndEntity"),
        "{refused:?}"
    );

    let server = Server::start(vec![cert.der.clone()], &cert.key).await;
    assert_eq!(
        get(&server, "127.0.0.1", Some(&pinned), None).await,
        Ok("hello".into())
    );
    // The server offered h2 too; the client asked for HTTP/1.1 only.
    assert_eq!(server.alpn(), vec![Some(b"http/1.1".to_vec())]);
}

#[tokio::test]
async fn a_pinned_certificate_must_name_the_host() {
    let cert = self_signed_ca("127.0.0.1", &["127.0.0.1"], None);
    let server = Server::start(vec![cert.der.clone()], &cert.key).await;
    let err = get(
        &server,
        "keystone.example",
        Some(std::slice::from_ref(&cert.der)),
        None,
    )
    .await
    .unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
    assert!(err.contains("keystone.example"), "{err}");
}

#[tokio::test]
async fn an_expired_or_not_yet_valid_pinned_certificate_is_refused() {
    for (valid, why) in [((2000, 2001), "expired"), ((2999, 3000), "not valid yet")] {
        let cert = self_signed_ca("127.0.0.1", &["127.0.0.1"], Some(valid));
        let server = Server::start(vec![cert.der.clone()], &cert.key).await;
        let err = get(
            &server,
            "127.0.0.1",
            Some(std::slice::from_ref(&cert.der)),
            None,
        )
        .await
        .unwrap_err();
        assert!(err.contains(why), "{why}: {err}");
    }
}

#[tokio::test]
async fn another_self_signed_certificate_than_the_pinned_one_is_refused() {
    let pinned = self_signed_ca("127.0.0.1", &["127.0.0.1"], None);
    let other = self_signed_ca("127.0.0.1", &["127.0.0.1"], None);
    let server = Server::start(vec![other.der.clone()], &other.key).await;
    let err = get(
        &server,
        "127.0.0.1",
        Some(std::slice::from_ref(&pinned.der)),
        None,
    )
    .await
    .unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");
    // Both in the file: the one presented is accepted.
    assert_eq!(
        get(
            &server,
            "127.0.0.1",
            Some(&[pinned.der.clone(), other.der.clone()]),
            None
        )
        .await,
        Ok("hello".into())
    );
}

#[tokio::test]
async fn a_ca_signed_chain_still_works_and_a_pinned_leaf_needs_no_issuer() {
    let (ca, leaf) = ca_and_leaf();
    let server = Server::start(vec![leaf.der.clone()], &leaf.key).await;
    assert_eq!(
        get(
            &server,
            "127.0.0.1",
            Some(std::slice::from_ref(&ca.der)),
            None
        )
        .await,
        Ok("hello".into())
    );
    // The leaf itself as the CA file (its issuer unknown), as the Go reference accepts.
    assert_eq!(
        get(
            &server,
            "127.0.0.1",
            Some(std::slice::from_ref(&leaf.der)),
            None
        )
        .await,
        Ok("hello".into())
    );
    // A CA file of another CA: the issuer is unknown and the leaf is not pinned.
    let (other_ca, _) = ca_and_leaf();
    let err = get(
        &server,
        "127.0.0.1",
        Some(std::slice::from_ref(&other_ca.der)),
        None,
    )
    .await
    .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    // The chain still has to name the host.
    let err = get(
        &server,
        "keystone.example",
        Some(std::slice::from_ref(&ca.der)),
        None,
    )
    .await
    .unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn without_a_ca_file_the_platform_roots_decide() {
    let cert = self_signed_ca("127.0.0.1", &["127.0.0.1"], None);
    let server = Server::start(vec![cert.der.clone()], &cert.key).await;
    let err = get(&server, "127.0.0.1", None, None).await.unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");
    let (_, leaf) = ca_and_leaf();
    let server = Server::start(vec![leaf.der.clone()], &leaf.key).await;
    let err = get(&server, "127.0.0.1", None, None).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn the_client_certificate_is_presented_when_asked_for() {
    let (server_ca, leaf) = ca_and_leaf();
    let (client_ca, client) = ca_and_leaf_for(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let server = Server::start_with(
        vec![leaf.der.clone()],
        &leaf.key,
        Some(&client_ca.der),
        Backend::Hello,
    )
    .await;
    let identity = kk_core::tls::ClientIdentity {
        chain: vec![client.der.clone()],
        key: client.key.clone_key(),
    };
    let roots = [server_ca.der.clone()];
    assert_eq!(
        get(&server, "127.0.0.1", Some(&roots), Some(identity)).await,
        Ok("hello".into())
    );
    assert!(get(&server, "127.0.0.1", Some(&roots), None).await.is_err());
}

/// The exact command of the docs, when `openssl` is installed (tests/run needs it anyway): an
/// RSA key, so the handshake's RSA signature is checked too.
#[tokio::test]
async fn a_certificate_made_by_openssl_req_x509_is_accepted_when_pinned() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: no openssl on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("ks.crt"), dir.path().join("ks.key"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs = kk_core::tls::load_certs(&crt).unwrap();
    let key = kk_core::tls::load_private_key(&key).unwrap();
    let server = Server::start(certs.clone(), &key).await;
    assert_eq!(
        get(&server, "127.0.0.1", Some(&certs), None).await,
        Ok("hello".into())
    );
    let err = get(&server, "127.0.0.1", None, None).await.unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");
}

/// The real plugin, `--cacert` naming the self-signed certificate of an HTTPS Keystone (the
/// fake behind a TLS front).
#[tokio::test]
async fn the_plugin_trusts_the_self_signed_keystone_its_cacert_names() {
    let ks = FakeKeystone::start().await;
    ks.on(
        Method::POST,
        VALIDATE,
        vec![
            Answer::json(201, json!({"token": {"expires_at": in_secs(3600), "methods": ["application_credential"],
                "user": {"id": "u-alice", "name": "alice", "domain": {"id": "d1", "name": "k8s"}}}}))
            .header("x-subject-token", "gAAAAABpinned-token"),
        ],
    );
    let cert = self_signed_ca("127.0.0.1", &["127.0.0.1"], None);
    let front = Server::start_with(
        vec![cert.der.clone()],
        &cert.key,
        None,
        Backend::Proxy(ks.addr),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let pinned = dir.path().join("keystone.crt");
    std::fs::write(&pinned, &cert.pem).unwrap();
    let other = dir.path().join("other.crt");
    std::fs::write(
        &other,
        self_signed_ca("127.0.0.1", &["127.0.0.1"], None).pem,
    )
    .unwrap();
    let url = format!("https://127.0.0.1:{}/v3", front.addr.port());
    // Run without blocking the runtime the fake and the TLS front run on.
    let plugin = async |cacert: &std::path::Path| {
        let out = tokio::process::Command::new(crate::bins::bin("kubectl-keystone-auth"))
            .env_clear()
            .env("HOME", dir.path())
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .args(["--keystone-url", &url])
            .args(["--application-credential-id", "ac-1"])
            .args(["--application-credential-secret", "ac-secret"])
            .arg("--cacert")
            .arg(cacert)
            .arg("--no-cache")
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = plugin(&pinned).await;
    assert_eq!(code, Some(0), "{stderr}");
    let cred: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(cred["status"]["token"], "gAAAAABpinned-token", "{stdout}");
    assert_eq!(ks.count(Method::POST, VALIDATE), 1);

    let (code, stdout, stderr) = plugin(&other).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    assert_eq!(
        ks.count(Method::POST, VALIDATE),
        1,
        "refused before any request"
    );
}
