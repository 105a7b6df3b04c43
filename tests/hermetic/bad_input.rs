//! Bad input, both ways (issue 13, "Bad input"): review bodies that are malformed, truncated,
//! 10,000 levels deep, huge, of the wrong types or the wrong version get a clear 4xx `Status`
//! (no panic, no hang, nothing read past the body limit); Keystone answers of the wrong types,
//! with missing fields, of 100 MB or dripping a byte per 100 ms give `authenticated: false`
//! with `status.error`, uncached, within the Keystone timeout and in bounded memory. Every
//! request is bounded by a timeout here.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warp::http::Method;

use crate::fake::*;
use crate::routes::Served;
use crate::support::*;

/// Bound of every request of these tests.
const BOUND: Duration = Duration::from_secs(10);

async fn service() -> (FakeKeystone, Svc) {
    let ks = FakeKeystone::start().await;
    script_alice(&ks);
    let svc = Svc::new(Settings::new(ks.url()));
    (ks, svc)
}

fn post(path: &str, body: impl AsRef<[u8]>) -> warp::test::RequestBuilder {
    warp::test::request()
        .method("POST")
        .path(path)
        .header("content-type", "application/json")
        .body(body)
}

/// Sends `body` to `path` (bounded) and requires a 4xx Kubernetes `Status` with a message.
async fn refused(svc: &Svc, path: &str, body: &[u8]) -> (u16, String) {
    let (code, answer, _) = tokio::time::timeout(BOUND, svc.send(post(path, body)))
        .await
        .unwrap_or_else(|_| panic!("no answer within {BOUND:?} to {:.80}", show(body)));
    assert!(
        (400..500).contains(&code),
        "{code} {answer} for {:.200}",
        show(body)
    );
    assert_eq!(answer["kind"], "Status", "{answer}");
    assert_eq!(answer["status"], "Failure", "{answer}");
    assert_eq!(answer["code"], code, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "{answer}");
    (code, message)
}

fn show(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// The peak resident set of this process (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test]
async fn malformed_and_wrong_type_bodies_get_400() {
    let (ks, svc) = service().await;
    let tr = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview""#;
    let sar = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview""#;
    let cases: Vec<(String, &str)> = vec![
        // Malformed.
        ("{\"apiVersion\":".into(), "not a JSON object"),
        ("{\"a\":1}}".into(), "not a JSON object"),
        ("{'kind': 'TokenReview'}".into(), "not a JSON object"),
        ("\u{feff}{}".into(), "not a JSON object"),
        ("null".into(), "not a JSON object"),
        ("{}".into(), "`kind` is missing"),
        (format!("{tr},\"spec\":{{\"token\":\"x\"}}}} trailing"), "not a JSON object"),
        (format!("{tr},\"spec\":{{\"token\":\"\\ud800\"}}}}"), "invalid TokenReview"),
        // Wrong types.
        (r#"{"apiVersion":1,"kind":"TokenReview"}"#.into(), "not a JSON object"),
        (r#"{"apiVersion":"authentication.k8s.io/v1","kind":["TokenReview"]}"#.into(), "not a JSON object"),
        (format!("{tr},\"spec\":\"x\"}}"), "invalid TokenReview"),
        (format!("{tr},\"spec\":[]}}"), "invalid TokenReview"),
        (format!("{tr},\"spec\":{{\"token\":[\"a\"]}}}}"), "invalid TokenReview"),
        (format!("{tr},\"spec\":{{\"token\":null}}}}"), "invalid TokenReview"),
        (format!("{tr},\"spec\":{{\"token\":\"x\",\"audiences\":\"a\"}}}}"), "invalid TokenReview"),
        (format!("{sar},\"spec\":{{\"resourceAttributes\":\"pods\"}}}}"), "invalid SubjectAccessReview"),
        (format!("{sar},\"spec\":{{\"user\":5,\"resourceAttributes\":{{}}}}}}"), "invalid SubjectAccessReview"),
        (format!("{sar},\"spec\":{{\"groups\":\"devs\",\"resourceAttributes\":{{}}}}}}"), "invalid SubjectAccessReview"),
        (format!("{sar},\"spec\":{{\"resourceAttributes\":{{\"verb\":[\"get\"]}}}}}}"), "invalid SubjectAccessReview"),
        (format!("{sar},\"spec\":{{\"nonResourceAttributes\":{{\"path\":1}}}}}}"), "invalid SubjectAccessReview"),
        (format!("{sar},\"spec\":{{\"resourceAttributes\":null}}}}"), "resourceAttributes or spec.nonResourceAttributes is required"),
        // Wrong kind or version.
        (r#"{"apiVersion":"authentication.k8s.io/v1","kind":"tokenreview","spec":{"token":"x"}}"#.into(), "unknown kind \"tokenreview\""),
        (r#"{"apiVersion":"authentication.k8s.io/V1","kind":"TokenReview","spec":{"token":"x"}}"#.into(), "unknown apiVersion \"authentication.k8s.io/V1\""),
        (r#"{"apiVersion":"authentication.k8s.io/v1 ","kind":"TokenReview","spec":{"token":"x"}}"#.into(), "unknown apiVersion"),
        (r#"{"apiVersion":"authorization.k8s.io/v2","kind":"SubjectAccessReview","spec":{}}"#.into(), "expected authorization.k8s.io/v1 or authorization.k8s.io/v1beta1"),
        (r#"{"apiVersion":"v1","kind":"Status"}"#.into(), "unknown kind \"Status\""),
    ];
    for (body, needle) in &cases {
        let (code, message) = refused(&svc, "/webhook", body.as_bytes()).await;
        assert_eq!(code, 400, "{body}");
        assert!(
            message.contains(needle),
            "{needle:?} not in {message:?} for {body}"
        );
    }
    // Bytes that are not UTF-8, NULs, control characters.
    for body in [
        &b"{\"kind\":\"\xff\xfe\"}"[..],
        b"{\0}",
        b"{\x01\x02\x03",
        b"\xef\xbb\xbf{}",
    ] {
        let (code, _) = refused(&svc, "/webhook", body).await;
        assert_eq!(code, 400);
    }
    assert!(ks.seen().is_empty(), "no bad body reaches Keystone");
}

#[tokio::test]
async fn every_truncation_of_a_review_gets_400() {
    let (ks, svc) = service().await;
    for (path, review) in [
        ("/authenticate", token_review("v1", &token("cut"))),
        ("/authorize", sar("v1beta1")),
        ("/webhook", sar("v1")),
    ] {
        let whole = serde_json::to_vec(&review).unwrap();
        for cut in 0..whole.len() {
            let (code, _) = refused(&svc, path, &whole[..cut]).await;
            assert_eq!(code, 400, "{path} cut at {cut}");
        }
        // The whole body is answered (so the cuts above were refused for being cut).
        let (code, answer, _) = tokio::time::timeout(BOUND, svc.send(post(path, &whole)))
            .await
            .unwrap();
        assert_eq!(code, 200, "{answer}");
    }
    assert_eq!(
        ks.count(Method::GET, VALIDATE),
        1,
        "only the whole TokenReview"
    );
}

#[tokio::test]
async fn ten_thousand_levels_of_nesting_get_400_without_overflowing_the_stack() {
    let (ks, svc) = service().await;
    const DEPTH: usize = 10_000;
    let arrays = |depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = |depth| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let tr = |spec: &str| {
        format!(r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{spec}}}"#)
    };
    let cases = [
        // The whole body.
        (arrays(DEPTH), "not a JSON object"),
        // (serde_json skips an unknown member without recursing: an object without `kind`.)
        (objects(DEPTH), "`kind` is missing"),
        // Deep in a field the service reads, in one it ignores, before `kind`.
        (
            tr(&format!(r#"{{"token":"x","audiences":{}}}"#, arrays(DEPTH))),
            "invalid TokenReview",
        ),
        (
            tr(&format!(r#"{{"token":{}}}"#, objects(DEPTH))),
            "invalid TokenReview",
        ),
        (
            format!(
                r#"{{"metadata":{},"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview"}}"#,
                objects(DEPTH)
            ),
            // An ignored field is skipped without recursing (and without building anything), so
            // what is wrong with this body is what it lacks.
            "invalid TokenReview: missing field `spec`",
        ),
        (
            format!(
                r#"{{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{{"extra":{},"resourceAttributes":{{}}}}}}"#,
                objects(DEPTH)
            ),
            "invalid SubjectAccessReview",
        ),
        // Unclosed: truncated and deep.
        ("[".repeat(DEPTH), "not a JSON object"),
        ("{\"a\":".repeat(DEPTH), "not a JSON object"),
    ];
    for (body, needle) in &cases {
        for path in ["/webhook", "/authenticate", "/authorize"] {
            let (code, message) = refused(&svc, path, body.as_bytes()).await;
            assert_eq!(code, 400, "{path} {:.100}", body);
            if path == "/webhook" {
                assert!(message.contains(needle), "{needle:?} not in {message:?}");
            }
        }
    }
    // serde_json's limit is 128 levels; a review nested less deep in an ignored field is fine.
    let shallow = tr(&format!(
        r#"{{"token":"{}","x":{}}}"#,
        token("deep"),
        arrays(100)
    ));
    let (code, answer, _) = svc.send(post("/webhook", &shallow)).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    assert_eq!(ks.count(Method::GET, VALIDATE), 1);
}

/// Writes `head` then `body_bytes` bytes of spaces (chunked when `chunked`) to the service
/// while reading its answer; returns the answer and how many body bytes were written by the
/// time it came (or the service closed).
async fn stream_body(served: &Served, head: &str, body_bytes: u64, chunked: bool) -> (String, u64) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let sent = Arc::new(AtomicU64::new(0));
    let head = head.to_string();
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b' '; 64 * 1024];
        let mut done = 0u64;
        while done < body_bytes {
            let n = (body_bytes - done).min(chunk.len() as u64) as usize;
            let r = if chunked {
                let mut framed = format!("{n:x}\r\n").into_bytes();
                framed.extend_from_slice(&chunk[..n]);
                framed.extend_from_slice(b"\r\n");
                wr.write_all(&framed).await
            } else {
                wr.write_all(&chunk[..n]).await
            };
            if r.is_err() {
                return;
            }
            done += n as u64;
            counter.store(done, Ordering::Relaxed);
        }
    });
    let reader = async move {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        // Until the answer's Status body is in (the connection may stay open).
        while !out.windows(8).any(|w| w == b"\"code\":4") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let answer = tokio::time::timeout(BOUND, reader)
        .await
        .expect("the service must answer a huge body within the bound");
    let written = sent.load(Ordering::Relaxed);
    writer.abort();
    (answer, written)
}

#[tokio::test]
async fn huge_bodies_are_refused_with_413_without_being_read() {
    let (ks, svc) = service().await;
    let served = Served::start(&svc).await;
    let before = peak_rss();
    const HUNDRED_MB: u64 = 100 * 1024 * 1024;
    // A Content-Length of 100 MB (and one of 10 GB), body sent: refused from the header.
    for total in [HUNDRED_MB, 10 * 1024 * HUNDRED_MB] {
        let head = format!(
            "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {total}\r\n\r\n"
        );
        let started = Instant::now();
        let (answer, _) = stream_body(&served, &head, HUNDRED_MB, false).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.300}");
        assert!(
            answer.contains("\"reason\":\"RequestEntityTooLarge\""),
            "{answer:.300}"
        );
        assert!(started.elapsed() < BOUND);
    }
    // 100 MB chunked (no length): refused once past 1 MiB, the rest never read.
    let head = "POST /authenticate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (answer, sent) = stream_body(&served, head, HUNDRED_MB, true).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.300}");
    assert!(
        answer.contains("larger than 1048576 bytes"),
        "{answer:.300}"
    );
    assert!(sent < HUNDRED_MB / 4, "the service read {sent} bytes");
    // A Content-Length that understates a huge body: the declared length is read, then the
    // request is answered; the rest is not a request.
    let head = "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n";
    let (answer, _) = stream_body(&served, head, HUNDRED_MB, false).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:.300}");
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "peak memory grew by {grown} bytes"
    );
    assert!(ks.seen().is_empty());
    assert!(
        svc.metric(r#"k8s_keystone_auth_http_requests_rejected_total{reason="too_large"}"#) >= 3
    );
    served.stop().await;
}

/// Requires an error answer (never authenticated, `status.error` set) within `within`.
async fn error_answer(svc: &Svc, tag: &str, within: Duration) -> String {
    let started = Instant::now();
    let status = tokio::time::timeout(BOUND, svc.token_review("v1", &token(tag)))
        .await
        .unwrap_or_else(|_| panic!("{tag}: no answer within {BOUND:?}"));
    let took = started.elapsed();
    assert_eq!(status["authenticated"], false, "{tag}: {status}");
    assert!(status.get("user").is_none(), "{tag}: {status}");
    let error = status["error"].as_str().unwrap_or_default().to_string();
    assert!(
        !error.is_empty(),
        "{tag}: an error answer, not a refusal: {status}"
    );
    assert!(took < within, "{tag}: took {took:?}");
    error
}

#[tokio::test]
async fn odd_keystone_token_answers_are_uncached_errors_never_authenticated() {
    let (ks, svc) = service().await;
    let user = json!({"id": "u-alice", "name": "alice", "domain": {"id": "d1", "name": "k8s"}});
    let project = json!({"id": "p-team-a", "name": "team-a", "domain": {"id": "d1"}});
    let exp = in_secs(3600);
    let odd: Vec<(&str, Answer)> = vec![
        ("token-not-object", Answer::json(200, json!({"token": []}))),
        ("token-null", Answer::json(200, json!({"token": null}))),
        ("no-token", Answer::json(200, json!({"tokens": {}}))),
        ("array", Answer::json(200, json!([alice_token()]))),
        (
            "user-string",
            Answer::json(
                200,
                json!({"token": {"user": "alice", "project": project, "expires_at": exp}}),
            ),
        ),
        (
            "no-user",
            Answer::json(
                200,
                json!({"token": {"project": project, "expires_at": exp}}),
            ),
        ),
        (
            "no-user-id",
            Answer::json(
                200,
                json!({"token": {"user": {"name": "alice"}, "project": project, "expires_at": exp}}),
            ),
        ),
        (
            "user-id-number",
            Answer::json(
                200,
                json!({"token": {"user": {"id": 7}, "project": project, "expires_at": exp}}),
            ),
        ),
        (
            "no-expiry",
            Answer::json(200, json!({"token": {"user": user, "project": project}})),
        ),
        (
            "expiry-number",
            Answer::json(
                200,
                json!({"token": {"user": user, "project": project, "expires_at": 1}}),
            ),
        ),
        (
            "roles-string",
            Answer::json(
                200,
                json!({"token": {"user": user, "project": project, "roles": "admin", "expires_at": exp}}),
            ),
        ),
        (
            "roles-of-strings",
            Answer::json(
                200,
                json!({"token": {"user": user, "project": project, "roles": ["admin"], "expires_at": exp}}),
            ),
        ),
        (
            "project-id-missing",
            Answer::json(
                200,
                json!({"token": {"user": user, "project": {"name": "x"}, "expires_at": exp}}),
            ),
        ),
        (
            "rules-not-list",
            Answer::json(
                200,
                json!({"token": {"user": user, "project": project, "expires_at": exp,
            "application_credential": {"id": "ac", "access_rules": {"service": "k8s"}}}}),
            ),
        ),
        ("empty-200", Answer::raw(200, "")),
        (
            "html-200",
            Answer::raw(200, "<html>maintenance</html>").header("content-type", "text/html"),
        ),
        (
            "truncated",
            Answer::raw(
                200,
                serde_json::to_string(&alice_token()).unwrap()[..60].to_string(),
            ),
        ),
        (
            "deep",
            Answer::raw(
                200,
                format!("{{\"token\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000)),
            ),
        ),
        ("weird-status", Answer::json(299, alice_token())),
        (
            "redirect",
            Answer::raw(302, "").header("location", "http://127.0.0.1:1/v3/auth/tokens"),
        ),
        ("teapot", Answer::error(418, "short and stout")),
    ];
    let mut calls = 0;
    for (tag, answer) in odd {
        ks.on(Method::GET, VALIDATE, vec![answer]);
        for round in 0..2 {
            error_answer(&svc, tag, Duration::from_secs(3)).await;
            calls += 1;
            assert_eq!(
                ks.count(Method::GET, VALIDATE),
                calls,
                "{tag} round {round}: not cached"
            );
        }
    }
    // The service is fine afterwards.
    script_alice(&ks);
    assert_eq!(
        svc.token_review("v1", &token("after")).await["authenticated"],
        true
    );
}

#[tokio::test]
async fn odd_group_answers_are_uncached_errors_never_authenticated() {
    let (ks, svc) = service().await;
    const GROUPS: &str = "/v3/users/u-alice/groups";
    let odd: Vec<(&str, Answer)> = vec![
        (
            "groups-object",
            Answer::json(200, json!({"groups": {"name": "devs"}})),
        ),
        (
            "group-string",
            Answer::json(200, json!({"groups": ["devs"]})),
        ),
        (
            "group-name-number",
            Answer::json(200, json!({"groups": [{"id": "g", "name": 5}]})),
        ),
        (
            "links-string",
            Answer::json(200, json!({"groups": [], "links": "next"})),
        ),
        (
            "next-number",
            Answer::json(200, json!({"groups": [], "links": {"next": 5}})),
        ),
        ("not-json", Answer::raw(200, "groups: devs")),
    ];
    let mut calls = 0;
    for (tag, answer) in odd {
        ks.on(Method::GET, GROUPS, vec![answer]);
        for _ in 0..2 {
            error_answer(&svc, tag, Duration::from_secs(3)).await;
            calls += 1;
            assert_eq!(ks.count(Method::GET, GROUPS), calls, "{tag}: not cached");
        }
    }
}

#[tokio::test]
async fn a_100_mb_keystone_answer_is_cut_off_in_bounded_memory_and_not_cached() {
    const HUNDRED_MB: u64 = 100 * 1024 * 1024;
    let ks = RawKeystone::start(RawAnswer::Huge {
        prefix: r#"{"token": {"methods": ["password"], "user": {"id": "u", "name": "#,
        total: HUNDRED_MB,
    })
    .await;
    let mut settings = Settings::new(ks.url());
    settings.timeout = Duration::from_secs(5);
    let svc = Svc::new(settings);
    let before = peak_rss();
    for round in 1..=2 {
        let error = error_answer(&svc, "huge", Duration::from_secs(5)).await;
        assert!(error.contains("unexpected answer from Keystone"), "{error}");
        let stats = ks.finished(round).await;
        assert_eq!(stats.requests, round, "not cached");
        // The service hung up after its 4 MiB limit (plus what the sockets buffer).
        assert!(stats.written < round as u64 * 32 * 1024 * 1024, "{stats:?}");
    }
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "peak memory grew by {grown} bytes"
    );
}

#[tokio::test]
async fn a_keystone_dripping_a_byte_per_100_ms_is_cut_off_at_the_timeout() {
    let body = serde_json::to_string(&alice_token()).unwrap();
    let whole = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let head_len = whole.len() - body.len();
    for (what, at_once) in [
        // The head at once, then the body a byte per 100 ms.
        ("body", head_len),
        // Everything a byte per 100 ms.
        ("head", 0),
    ] {
        let ks = RawKeystone::start(RawAnswer::Drip {
            at_once: whole.as_bytes()[..at_once].to_vec(),
            dripped: whole.as_bytes()[at_once..].to_vec(),
            interval: Duration::from_millis(100),
        })
        .await;
        let mut settings = Settings::new(ks.url());
        settings.timeout = Duration::from_secs(1);
        let svc = Svc::new(settings);
        for round in 1..=2 {
            let error = error_answer(&svc, what, Duration::from_millis(2500)).await;
            assert!(
                error.contains("did not answer within 1s"),
                "{what}: {error}"
            );
            let stats = ks.finished(round).await;
            assert_eq!(stats.requests, round, "{what}: not cached");
            // Cut off long before the whole answer (a byte per 100 ms for ~1 s).
            assert!(
                stats.written < round as u64 * (at_once as u64 + 20),
                "{what}: {stats:?}"
            );
        }
    }
}

/// A valid answer to an invalid request must not be taken for `authenticated: true` of
/// another: reviews in the wrong shape never reach Keystone at all.
#[tokio::test]
async fn wrong_version_reviews_never_reach_keystone() {
    let (ks, svc) = service().await;
    for version in ["v2", "v1alpha1", "", "V1"] {
        let mut review = token_review("v1", &token("version"));
        review["apiVersion"] = Value::String(format!("authentication.k8s.io/{version}"));
        let body = serde_json::to_vec(&review).unwrap();
        let (code, message) = refused(&svc, "/webhook", &body).await;
        assert_eq!(code, 400);
        assert!(message.contains("unknown apiVersion"), "{message}");
    }
    assert!(ks.seen().is_empty());
}
