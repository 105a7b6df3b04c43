//! Routes, methods, body limits and `Status` bodies: `warp::test` against the routes, and the
//! in-process accept loop (`webhook::serve`, plain HTTP) for what needs a real connection.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake::*;
use crate::support::*;

const MAX_BODY: usize = 1024 * 1024;

/// A service whose Keystone knows alice.
async fn service() -> (FakeKeystone, Svc) {
    let ks = FakeKeystone::start().await;
    script_alice(&ks);
    let svc = Svc::new(Settings::new(ks.url()));
    (ks, svc)
}

/// A Kubernetes `Status` failure with this code and reason, whose message contains `needle`.
fn assert_status(code: u16, answer: &Value, want_code: u16, reason: &str, needle: &str) {
    assert_eq!(code, want_code, "{answer}");
    assert_eq!(answer["kind"], "Status", "{answer}");
    assert_eq!(answer["apiVersion"], "v1", "{answer}");
    assert_eq!(answer["status"], "Failure", "{answer}");
    assert_eq!(answer["reason"], reason, "{answer}");
    assert_eq!(answer["code"], want_code, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains(needle),
        "{needle:?} not in {answer}"
    );
}

fn post(path: &str, body: impl AsRef<[u8]>) -> warp::test::RequestBuilder {
    warp::test::request()
        .method("POST")
        .path(path)
        .header("content-type", "application/json")
        .body(body)
}

#[tokio::test]
async fn bodies_that_are_not_reviews_get_400_with_a_status() {
    let (ks, svc) = service().await;
    let cases: &[(&str, &str, &str)] = &[
        ("/webhook", "{not json", "not a JSON object"),
        ("/webhook", "", "not a JSON object"),
        ("/webhook", "[]", "not a JSON object"),
        ("/webhook", "\"TokenReview\"", "not a JSON object"),
        ("/webhook", "{\"kind\": 5}", "not a JSON object"),
        (
            "/webhook",
            r#"{"apiVersion":"authentication.k8s.io/v1"}"#,
            "`kind` is missing",
        ),
        (
            "/webhook",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"Pod"}"#,
            "unknown kind \"Pod\"",
        ),
        (
            "/webhook",
            r#"{"kind":"TokenReview","spec":{"token":"x"}}"#,
            "`apiVersion` is missing",
        ),
        (
            "/webhook",
            r#"{"apiVersion":"authentication.k8s.io/v2","kind":"TokenReview","spec":{"token":"x"}}"#,
            "unknown apiVersion \"authentication.k8s.io/v2\"",
        ),
        (
            "/webhook",
            r#"{"apiVersion":"v1","kind":"TokenReview","spec":{"token":"x"}}"#,
            "unknown apiVersion",
        ),
        (
            "/webhook",
            r#"{"apiVersion":"authorization.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}"#,
            "unknown apiVersion",
        ),
        (
            "/webhook",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SubjectAccessReview","spec":{}}"#,
            "unknown apiVersion",
        ),
        (
            "/webhook",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview"}"#,
            "invalid TokenReview",
        ),
        (
            "/webhook",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":5}}"#,
            "invalid type",
        ),
        (
            "/webhook",
            r#"{"apiVersion":"authorization.k8s.io/v1beta1","kind":"SubjectAccessReview","spec":{"user":"a"}}"#,
            "resourceAttributes",
        ),
        (
            "/authenticate",
            r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{}}"#,
            "sent to /authenticate",
        ),
        (
            "/authorize",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}"#,
            "sent to /authorize",
        ),
    ];
    for (path, body, needle) in cases {
        let (code, answer, ct) = svc.send(post(path, body)).await;
        assert_status(code, &answer, 400, "BadRequest", needle);
        assert_eq!(ct, "application/json", "{path} {body}");
    }
    assert!(ks.seen().is_empty(), "no bad request reaches Keystone");
    assert_eq!(
        svc.metric(r#"k8s_keystone_auth_http_requests_rejected_total{reason="bad_request"}"#),
        cases.len() as u64
    );
}

#[tokio::test]
async fn bodies_over_one_mib_get_413() {
    let (ks, svc) = service().await;
    // A valid review padded with whitespace to exactly the limit is read and answered...
    let mut exact = serde_json::to_vec(&token_review("v1", &token("size"))).unwrap();
    exact.resize(MAX_BODY, b' ');
    let (code, answer, _) = svc.send(post("/webhook", &exact)).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    // ...one byte more is not (refused from its Content-Length).
    exact.push(b' ');
    let (code, answer, _) = svc.send(post("/webhook", &exact)).await;
    assert_status(
        code,
        &answer,
        413,
        "RequestEntityTooLarge",
        "larger than 1048576 bytes",
    );
    // A Content-Length that understates the body: counted while reading.
    let (code, answer, _) = svc
        .send(post("/authenticate", &exact).header("content-length", "100"))
        .await;
    assert_status(code, &answer, 413, "RequestEntityTooLarge", "larger than");
    assert_eq!(ks.count(warp::http::Method::GET, VALIDATE), 1);
    assert_eq!(
        svc.metric(r#"k8s_keystone_auth_http_requests_rejected_total{reason="too_large"}"#),
        2
    );
}

#[tokio::test]
async fn unknown_routes_get_404_and_wrong_methods_405() {
    let (_ks, svc) = service().await;
    let review = serde_json::to_vec(&token_review("v1", &token("route"))).unwrap();
    for (method, path, code, reason, needle) in [
        ("POST", "/nowhere", 404, "NotFound", "not found"),
        ("GET", "/", 404, "NotFound", "not found"),
        ("POST", "/webhook/extra", 404, "NotFound", "not found"),
        ("POST", "/v1/webhook", 404, "NotFound", "not found"),
        (
            "GET",
            "/webhook",
            405,
            "MethodNotAllowed",
            "reviews are POSTed",
        ),
        (
            "PUT",
            "/authenticate",
            405,
            "MethodNotAllowed",
            "method not allowed",
        ),
        (
            "DELETE",
            "/authorize",
            405,
            "MethodNotAllowed",
            "method not allowed",
        ),
        (
            "POST",
            "/healthz",
            405,
            "MethodNotAllowed",
            "method not allowed",
        ),
        (
            "POST",
            "/metrics",
            405,
            "MethodNotAllowed",
            "method not allowed",
        ),
    ] {
        let (got, answer, _) = svc
            .send(
                warp::test::request()
                    .method(method)
                    .path(path)
                    .body(&review),
            )
            .await;
        assert_status(got, &answer, code, reason, needle);
    }
    // The routes that exist answer GET.
    for path in ["/healthz", "/metrics"] {
        let (code, _, _) = svc
            .send(warp::test::request().method("GET").path(path))
            .await;
        assert_eq!(code, 200, "{path}");
    }
}

#[tokio::test]
async fn answers_carry_the_requests_api_version() {
    let (_ks, svc) = service().await;
    for version in ["v1", "v1beta1"] {
        for path in ["/webhook", "/authenticate", "/webhook?timeout=30s"] {
            let (code, answer) = svc
                .post(path, &token_review(version, &token("version")))
                .await;
            assert_eq!(code, 200, "{path}: {answer}");
            assert_eq!(
                answer["apiVersion"],
                format!("authentication.k8s.io/{version}")
            );
            assert_eq!(answer["kind"], "TokenReview");
            assert_eq!(answer["status"]["authenticated"], true, "{answer}");
            assert!(answer.get("spec").is_none(), "{answer}");
        }
        for path in [
            "/webhook",
            "/authorize",
            "/webhook?timeout=30s",
            "/authorize?timeout=10s",
        ] {
            let (code, answer) = svc.post(path, &sar(version)).await;
            assert_eq!(code, 200, "{path}: {answer}");
            assert_eq!(
                answer["apiVersion"],
                format!("authorization.k8s.io/{version}")
            );
            assert_eq!(answer["kind"], "SubjectAccessReview");
            assert_eq!(
                answer["status"]["allowed"], true,
                "{path} {version}: {answer}"
            );
        }
    }
}

/// The real accept loop on 127.0.0.1 (plain HTTP), for what `warp::test` cannot send.
pub(crate) struct Served {
    pub(crate) addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Served {
    pub(crate) async fn start(svc: &Svc) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(kk_webhook::serve(
            listener,
            svc.state.clone(),
            None,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Writes raw bytes and reads the answer until the server closes (bounded).
    pub(crate) async fn raw(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        // The server may answer and close before the whole request is written.
        let _ = tcp.write_all(request).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("serve must return after the shutdown signal")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn over_a_real_connection_chunked_bodies_are_bounded_and_the_timeout_query_works() {
    let (_ks, svc) = service().await;
    let served = Served::start(&svc).await;
    // A Content-Length over the limit: 413 before the body is sent.
    let head = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n";
    let answer = served.raw(head).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("\"reason\":\"RequestEntityTooLarge\""),
        "{answer}"
    );
    // No Content-Length (chunked): counted while reading.
    let mut chunked = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..17 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 64 * 1024));
        chunked.extend_from_slice(b"\r\n");
    }
    let answer = served.raw(&chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{:.300}", answer);
    // A chunked review under the limit is answered.
    let review = serde_json::to_vec(&token_review("v1", &token("chunked"))).unwrap();
    let mut small = b"POST /webhook?timeout=30s HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    small.extend_from_slice(format!("{:x}\r\n", review.len()).as_bytes());
    small.extend_from_slice(&review);
    small.extend_from_slice(b"\r\n0\r\n\r\n");
    let answer = served.raw(&small).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"authenticated\":true"), "{answer}");
    // What kube-apiserver sends: POST /webhook?timeout=30s with a JSON body.
    let http = crate::support::http_client()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = http
        .post(format!("http://{}/webhook?timeout=30s", served.addr))
        .json(&sar("v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"]["allowed"], json!(true), "{v}");
    served.stop().await;
}

/// Clients that send their headers a byte at a time (slowloris) hold only their own
/// connections: while 64 of them drip, other clients are answered at once.
#[tokio::test]
async fn clients_dripping_headers_do_not_starve_others() {
    use tokio::io::AsyncWriteExt;
    let (_ks, svc) = service().await;
    let served = Served::start(&svc).await;
    let head = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n";
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut drips = Vec::new();
    for _ in 0..64 {
        let addr = served.addr;
        let mut stop = stop_rx.clone();
        let started = started.clone();
        drips.push(tokio::spawn(async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            // At most the head's length in bytes, 20 ms apart: bounded.
            let mut sent = 0;
            for b in head.iter() {
                if *stop.borrow() || tcp.write_all(&[*b]).await.is_err() {
                    break;
                }
                sent += 1;
                if sent == 1 {
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = stop.changed() => break,
                }
            }
            sent
        }));
    }
    // All drippers are connected and writing before the others come.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while started.load(std::sync::atomic::Ordering::SeqCst) < 64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the drippers did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = std::time::Instant::now();
        let answer = served
            .raw(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await;
        slowest = slowest.max(t.elapsed());
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // Each dripper is still mid-header (none got an answer, none was done).
    stop_tx.send(true).unwrap();
    for d in drips {
        let sent = d.await.unwrap();
        assert!(sent > 0 && sent < head.len(), "a dripper sent {sent} bytes");
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a normal request waited {slowest:?} behind 64 dripping clients"
    );
    served.stop().await;
}

/// What each connection serves (`filters::Front`: the three review routes straight to their
/// handler, the rest through warp) answers every request as the warp routes alone do: the
/// same status, body and rejection counters.
#[tokio::test]
async fn the_front_answers_as_the_warp_routes_do() {
    use http_body_util::BodyExt;
    use hyper::service::Service as _;
    let (_ks, svc) = service().await;
    let front = kk_webhook::filters::Front::new(
        svc.state.clone(),
        warp::service(kk_webhook::filters::routes(svc.state.clone())),
    );
    let tr = serde_json::to_vec(&token_review("v1", "gAAAAAfront")).unwrap();
    let sar = serde_json::to_vec(&sar("v1")).unwrap();
    let big = vec![b' '; MAX_BODY + 1];
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("POST", "/webhook", tr.clone()),
        ("POST", "/authenticate", tr.clone()),
        ("POST", "/authorize", sar.clone()),
        ("POST", "/webhook", sar.clone()),
        ("POST", "/authenticate", sar.clone()),
        ("POST", "/authorize", tr.clone()),
        ("POST", "/webhook", b"{not json".to_vec()),
        ("POST", "/webhook", Vec::new()),
        ("POST", "/webhook", big.clone()),
        ("POST", "/authorize", big),
        ("POST", "/webhook/", tr.clone()),
        ("POST", "/webhooks", tr.clone()),
        ("GET", "/webhook", Vec::new()),
        ("PUT", "/authenticate", tr),
        ("GET", "/healthz", Vec::new()),
        ("POST", "/healthz", Vec::new()),
    ];
    let rejected = |svc: &Svc| {
        ["too_large", "bad_request", "not_found", "method"].map(|r| {
            svc.metric(&format!(
                "k8s_keystone_auth_http_requests_rejected_total{{reason=\"{r}\"}}"
            ))
        })
    };
    for (method, path, body) in cases {
        let before = rejected(&svc);
        let request = warp::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
            .unwrap();
        let answer = front.call(request).await.unwrap();
        let status = answer.status().as_u16();
        let content_type = answer.headers().get("content-type").cloned();
        let text = answer.into_body().collect().await.unwrap().to_bytes();
        let by_front = rejected(&svc);
        let (want_status, want, want_type) = svc
            .send(
                warp::test::request()
                    .method(method)
                    .path(path)
                    .header("content-type", "application/json")
                    .body(&body),
            )
            .await;
        let by_routes = rejected(&svc);
        let what = format!("{method} {path}");
        assert_eq!(status, want_status, "{what}");
        let got: Value = serde_json::from_slice(&text)
            .unwrap_or(Value::String(String::from_utf8_lossy(&text).into()));
        assert_eq!(got, want, "{what}");
        assert_eq!(
            content_type
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            want_type,
            "{what}"
        );
        let counted = |a: [u64; 4], b: [u64; 4]| -> Vec<u64> {
            a.iter().zip(b).map(|(x, y)| y - x).collect()
        };
        assert_eq!(
            counted(before, by_front),
            counted(by_front, by_routes),
            "{what}"
        );
    }
    // A body streamed past the limit without a Content-Length: refused as it arrives.
    let chunks =
        futures_util::stream::iter((0..3).map(|_| {
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from(
                vec![b' '; MAX_BODY / 2],
            )))
        }));
    let request = warp::http::Request::builder()
        .method("POST")
        .uri("/authenticate")
        .body(http_body_util::StreamBody::new(chunks))
        .unwrap();
    let streamed = kk_webhook::filters::Front::new(
        svc.state.clone(),
        warp::service(kk_webhook::filters::routes(svc.state.clone())),
    );
    let answer = streamed.call(request).await.unwrap();
    assert_eq!(answer.status().as_u16(), 413);
}
