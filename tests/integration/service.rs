//! The service as a whole: HTTP edge cases, health, metrics, TLS reloading, client
//! certificates, configuration errors, shutdown, and that no token ever reaches a log.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn malformed_requests_get_clear_4xx_answers() {
    let svc = Service::start(Options {
        keystone_url: Some("http://127.0.0.1:9/v3".into()),
        ..Default::default()
    })
    .await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/webhook", b"{not json".to_vec(), 400, "not a JSON object"),
        ("/webhook", b"[]".to_vec(), 400, "not a JSON object"),
        ("/webhook", br#"{"apiVersion":"authentication.k8s.io/v1","kind":"Pod"}"#.to_vec(), 400, "unknown kind \"Pod\""),
        ("/webhook", br#"{"kind":"TokenReview","spec":{"token":"x"}}"#.to_vec(), 400, "`apiVersion` is missing"),
        ("/webhook", br#"{"apiVersion":"authentication.k8s.io/v2","kind":"TokenReview","spec":{"token":"x"}}"#.to_vec(), 400, "unknown apiVersion"),
        ("/webhook", br#"{"apiVersion":"authorization.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}"#.to_vec(), 400, "unknown apiVersion"),
        ("/webhook", br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{}}"#.to_vec(), 400, "missing field `token`"),
        ("/webhook", br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":5}}"#.to_vec(), 400, "invalid type"),
        ("/webhook", br#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"a"}}"#.to_vec(), 400, "resourceAttributes"),
        ("/webhook", br#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":["a"]}}"#.to_vec(), 400, "invalid SubjectAccessReview"),
        ("/authenticate", br#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{}}"#.to_vec(), 400, "/authenticate"),
        ("/authorize", br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}"#.to_vec(), 400, "/authorize"),
        ("/nowhere", b"{}".to_vec(), 404, "not found"),
    ];
    for (path, body, code, needle) in cases {
        let (got, answer) = svc.post_raw(path, body.clone()).await;
        assert_eq!(
            got,
            code,
            "{path} {}: {answer}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(answer["kind"], "Status");
        assert!(
            answer["message"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
    // Bodies over 1 MiB: 413, refused from the Content-Length before the body is read...
    let head = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\n\r\n";
    let answer = svc.raw_https(head).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("request body larger than 1048576 bytes"),
        "{answer}"
    );
    // ...and counted while reading a chunked body that has no Content-Length.
    let mut chunked =
        b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..18 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 64 * 1024));
        chunked.extend_from_slice(b"\r\n");
    }
    let answer = svc.raw_https(&chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{:.200}", answer);
    // Just under the limit is read (and then refused as not JSON).
    let mut near = vec![b' '; 1024 * 1024 - 2];
    near.extend_from_slice(b"{}");
    assert_eq!(svc.post_raw("/webhook", near).await.0, 400);
    // Wrong method.
    let r = svc.http.get(svc.url("/webhook")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // Still alive and answering.
    assert_eq!(svc.get("/healthz").await, (200, "ok\n".to_string()));
    assert!(
        svc.metric("k8s_keystone_auth_http_requests_rejected_total{reason=\"too_large\"}")
            .await
            >= 2
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let _ks = KEYSTONE.read().await;
    let svc = Service::start(Options::default()).await;
    assert_eq!(svc.get("/healthz").await, (200, "ok\n".into()));
    assert_eq!(svc.get("/readyz").await, (200, "ok\n".into()));
    let token = Keystone::get().alice().await;
    svc.token_review("v1", &token).await;
    let r = svc.http.get(svc.url("/metrics")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4");
    let text = r.text().await.unwrap();
    for name in [
        "k8s_keystone_auth_reviews_total{kind=\"TokenReview\",result=\"authenticated\"} 1",
        "k8s_keystone_auth_review_duration_seconds_count{kind=\"TokenReview\"} 1",
        "k8s_keystone_auth_token_cache_requests_total{result=\"miss\"} 1",
        "k8s_keystone_auth_token_cache_entries 1",
        "k8s_keystone_auth_keystone_requests_total{call=\"validate token\",outcome=\"ok\"} 1",
        "# TYPE k8s_keystone_auth_policy_reloads_total counter",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
}

#[tokio::test]
async fn certificates_are_reloaded_when_their_files_change() {
    let svc = Service::start(Options {
        keystone_url: Some("http://127.0.0.1:9/v3".into()),
        ..Default::default()
    })
    .await;
    let new_pki = Pki::new("renewed");
    let (c, k) = new_pki.leaf("k8s-keystone-auth", true);
    // Key first, then certificate, as a careless writer would: the mismatched pair in between
    // is rejected (counted) and the old certificate stays in force.
    const FAILURE: &str = "k8s_keystone_auth_tls_reloads_total{result=\"failure\"}";
    let failures_before = svc.metric(FAILURE).await;
    write_atomic(&svc.dir.path().join("tls.key"), &k);
    let deadline = Instant::now() + Duration::from_secs(10);
    while svc.metric(FAILURE).await == failures_before {
        assert!(
            Instant::now() < deadline,
            "mismatched key not noticed; log:\n{}",
            svc.log_now()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        svc.metric("k8s_keystone_auth_tls_reloads_total{result=\"success\"}")
            .await,
        0,
        "the mismatched pair was not taken"
    );
    assert_eq!(
        svc.get("/healthz").await.0,
        200,
        "old certificate still served"
    );
    write_atomic(&svc.dir.path().join("tls.crt"), &c);
    let trusting_new = http_client(Some(&new_pki.ca_pem)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = http_client(Some(&new_pki.ca_pem)).build().unwrap();
        if fresh.get(svc.url("/healthz")).send().await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate not served; log:\n{}",
            svc.log_now()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        trusting_new
            .get(svc.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        svc.metric("k8s_keystone_auth_tls_reloads_total{result=\"success\"}")
            .await
            >= 1
    );
    assert!(svc.metric(FAILURE).await > failures_before);
}

#[tokio::test]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    let svc = Service::start(Options {
        client_ca: true,
        keystone_url: Some("http://127.0.0.1:9/v3".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        svc.get("/healthz").await.0,
        200,
        "the apiserver's client certificate is accepted"
    );
    let anonymous = http_client(Some(&svc.pki.ca_pem)).build().unwrap();
    let r = anonymous
        .post(svc.url("/webhook"))
        .json(&json!({"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}))
        .send()
        .await;
    assert!(
        r.is_err(),
        "a client without a certificate must be refused: {r:?}"
    );
}

#[tokio::test]
async fn no_token_appears_in_any_log_even_at_trace_level() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let mut svc = Service::start(Options {
        log_level: "trace",
        ..Default::default()
    })
    .await;
    let mut tokens = vec![ks.alice().await];
    tokens.push(
        ks.app_cred_token(&env("KS_AC_KUBECTL_ID"), &env("KS_AC_KUBECTL_SECRET"))
            .await
            .unwrap(),
    );
    tokens.push(
        ks.app_cred_token(
            &env("KS_AC_KUBECTL_RULES_OTHER_ID"),
            &env("KS_AC_KUBECTL_RULES_OTHER_SECRET"),
        )
        .await
        .unwrap(),
    );
    tokens.push(
        ks.password_token("bob", "k8s", &env("KS_BOB_PASSWORD"), None)
            .await,
    );
    tokens.push(
        "gAAAAABpKwZZnotarealtokenbutlooksalotlikeonexxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            .to_string(),
    );
    for t in &tokens {
        svc.token_review("v1", t).await;
        svc.token_review("v1beta1", t).await;
        let _ = svc.post_raw("/webhook", format!(r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{t}","bad":}}}}"#).into_bytes()).await;
    }
    assert_eq!(
        svc.terminate().await,
        Some(0),
        "SIGTERM ends the service cleanly"
    );
    let log = svc.log_now();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the scan must cover verbose logs:\n{log}"
    );
    for t in &tokens {
        assert!(!log.contains(t.as_str()), "a token appears in the log");
        // Not even a recognisable piece of it.
        assert!(
            !log.contains(&t[10..40]),
            "part of a token appears in the log"
        );
    }
    assert_eq!(
        std::fs::read_to_string(svc.log.with_extension("log")).unwrap(),
        "",
        "nothing on stdout"
    );
}

fn run_binary(args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::bins::bin("k8s-keystone-auth"))
        .args(args)
        .env_remove("OS_AUTH_URL")
        .env_remove("TLS_CERT_FILE")
        .env_remove("TLS_PRIVATE_KEY_FILE")
        .env_remove("KEYSTONE_KUBECONFIG_FILE")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap()
}

#[test]
fn configuration_errors_name_the_file_line_and_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("k.toml");
    std::fs::write(
        &cfg,
        "[keystone]\nurl = \"https://ks:5000\"\n\n[cache]\nttl = \"ten minutes\"\n",
    )
    .unwrap();
    let out = run_binary(&["--config", cfg.to_str().unwrap(), "--insecure-http"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("invalid `cache.ttl` in {} line 5", cfg.display())),
        "{err}"
    );
    std::fs::write(
        &cfg,
        "[keystone]\nurl = \"https://ks:5000\"\ntimeout_s = 5\n",
    )
    .unwrap();
    let err = String::from_utf8_lossy(
        &run_binary(&["--config", cfg.to_str().unwrap(), "--insecure-http"]).stderr,
    )
    .to_string();
    assert!(
        err.contains("line 3") && err.contains("unknown field `timeout_s`"),
        "{err}"
    );
    let out = run_binary(&["--insecure-http"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Keystone URL"));
    let out = run_binary(&["--config", "/nonexistent/k.toml"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read config file /nonexistent/k.toml")
    );
    let out = run_binary(&[
        "--keystone-url",
        "https://ks",
        "--tls-cert-file",
        "/nonexistent.crt",
        "--tls-private-key-file",
        "/x.key",
        "--check-config",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read certificate file /nonexistent.crt")
    );
}

#[test]
fn help_explains_the_flags() {
    let out = run_binary(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--tls-cert-file",
        "--tls-private-key-file",
        "--keystone-url",
        "--keystone-ca-file",
        "--keystone-policy-file",
        "--sync-config-file",
        "--config",
        "--client-ca-file",
        "--insecure-http",
        "OS_AUTH_URL",
        "TLS_CERT_FILE",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert!(
        String::from_utf8_lossy(&run_binary(&["--version"]).stdout)
            .starts_with("k8s-keystone-auth ")
    );
}

#[test]
fn sync_config_is_validated_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let sync = dir.path().join("sync.yaml");
    let check = |yaml: &str| {
        std::fs::write(&sync, yaml).unwrap();
        run_binary(&[
            "--keystone-url",
            "http://127.0.0.1:9",
            "--insecure-http",
            "--check-config",
            "--sync-config-file",
            sync.to_str().unwrap(),
        ])
    };
    let out = check("data-types-to-sync: [projects]\nnamespace-format: \"%n\"\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid sync config file") && err.contains("must contain %i"),
        "{err}"
    );
    // Valid, with data types: the namespace sync needs a Kubernetes API, named by its flag...
    let out = check("data-types-to-sync: [projects]\nnamespace-format: \"k-%i\"\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("which needs the Kubernetes API: set --kubeconfig, KEYSTONE_KUBECONFIG_FILE"),
        "{err}"
    );
    // ...and --check-config asks it (the test bed's) for its version.
    let kubeconfig = std::path::Path::new(&env("K8S_V1_DIR")).join("admin.kubeconfig");
    let out = run_binary(&[
        "--keystone-url",
        "http://127.0.0.1:9",
        "--insecure-http",
        "--check-config",
        "--sync-config-file",
        sync.to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without data types (role mappings only), no Kubernetes API is needed.
    let out = check("role-mappings: [{keystone-role: member, groups: [g]}]\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn insecure_http_is_explicit_and_warns() {
    let port = free_port();
    let mut child = std::process::Command::new(crate::bins::bin("k8s-keystone-auth"))
        .args([
            "--keystone-url",
            "http://127.0.0.1:9/v3",
            "--insecure-http",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(10);
    let http = http_client(None).build().unwrap();
    let body = loop {
        if let Ok(r) = http.get(&url).send().await {
            break r.text().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "plain HTTP service did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body, "ok\n");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WARN") && err.contains("tls=false"), "{err}");
}

/// A kept-alive connection idle for longer than 10 s still serves the next request: the server
/// must not close idle connections before kube-apiserver's client does (Go keeps them 90 s and
/// does not retry a POST on a connection the server closed under it).
#[tokio::test]
async fn an_idle_kept_alive_connection_still_serves_the_next_request() {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let svc = Service::start(Options::default()).await;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(svc.pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(kk_core::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", svc.port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    // Reads one response (headers + the 3-byte "ok\n" body) or fails.
    async fn one_response(
        tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    ) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("\r\n\r\nok\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
                .await
                .expect("no answer within 10 s")
                .expect("read failed");
            assert!(
                n > 0,
                "the server closed the connection: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }
    tls.write_all(request).await.unwrap();
    assert!(one_response(&mut tls).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_secs(12)).await; // the idle time under test, not a wait for an event
    tls.write_all(request).await.unwrap();
    assert!(one_response(&mut tls).await.starts_with("HTTP/1.1 200"));
}
