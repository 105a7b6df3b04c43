//! The line splitter, the event parser and the tracker without a server; the driver against a
//! stand-in API server on 127.0.0.1 (lists, watch streams, 410, errors and back-off).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;
use crate::client::ClientSettings;
use crate::config::{ClusterConfig, Credential};
use crate::types::{ConfigMap, ObjectMeta};

fn cm(name: &str, rv: &str, policies: &str) -> ConfigMap {
    let mut meta = ObjectMeta::named(name);
    meta.namespace = Some("kube-system".into());
    meta.resource_version = Some(rv.into());
    ConfigMap::new(
        meta,
        BTreeMap::from([("policies".to_string(), policies.to_string())]),
    )
}

fn line(kind: &str, object: serde_json::Value) -> String {
    json!({"type": kind, "object": object}).to_string()
}

#[test]
fn lines_are_split_across_chunks_and_a_long_line_is_refused() {
    let mut b = LineBuffer::new(10);
    b.push(b"{\"a\":1}\n{\"b\"").unwrap();
    assert_eq!(b.next_line().as_deref(), Some(&b"{\"a\":1}"[..]));
    assert_eq!(b.next_line(), None);
    b.push(b":2}\r\n\n\n").unwrap();
    assert_eq!(b.next_line().as_deref(), Some(&b"{\"b\":2}"[..]));
    assert_eq!(b.next_line(), None, "empty lines are skipped");
    b.push(b"tail").unwrap();
    assert_eq!(b.finish().as_deref(), Some(&b"tail"[..]));
    assert_eq!(b.finish(), None);
    // Exactly the limit is fine; one more byte, even over several chunks, is not.
    let mut b = LineBuffer::new(10);
    b.push(b"0123456789\n").unwrap();
    b.push(b"01234").unwrap();
    b.push(b"56789").unwrap();
    assert_eq!(b.push(b"X"), Err(10));
    let mut b = LineBuffer::new(4);
    assert_eq!(b.push(b"ok\n12345\n"), Err(4));
}

#[test]
fn events_are_parsed_as_the_api_sends_them() {
    let added = line("ADDED", serde_json::to_value(cm("p", "5", "[]")).unwrap());
    assert_eq!(
        parse_event::<ConfigMap>(added.as_bytes()).unwrap(),
        WatchEvent::Added(cm("p", "5", "[]"))
    );
    let bookmark = line(
        "BOOKMARK",
        json!({"kind": "ConfigMap", "apiVersion": "v1",
               "metadata": {"resourceVersion": "12", "annotations": {"k8s.io/initial-events-end": "true"}}}),
    );
    assert_eq!(
        parse_event::<ConfigMap>(bookmark.as_bytes()).unwrap(),
        WatchEvent::Bookmark("12".into())
    );
    let gone = line(
        "ERROR",
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "too old resource version: 1 (40)", "reason": "Expired", "code": 410}),
    );
    match parse_event::<ConfigMap>(gone.as_bytes()).unwrap() {
        WatchEvent::Error(s) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("{other:?}"),
    }
    assert!(
        parse_event::<ConfigMap>(br#"{"type":"SURPRISE","object":{}}"#)
            .unwrap_err()
            .contains("SURPRISE")
    );
    assert!(parse_event::<ConfigMap>(b"not json").is_err());
    assert!(parse_event::<ConfigMap>(br#"{"type":"BOOKMARK","object":{"metadata":{}}}"#).is_err());
    assert!(
        parse_event::<ConfigMap>(br#"{"type":"ADDED","object":{"data":{"k":1}}}"#)
            .unwrap_err()
            .contains("not a ConfigMap")
    );
}

#[test]
fn the_tracker_reports_each_change_once_and_follows_versions() {
    let mut t = Tracker::<ConfigMap>::new("p");
    assert_eq!(t.resource_version(), None);
    // Absent at first: reported once.
    assert!(matches!(t.listed(None, "10".into()), Some(Update::Absent)));
    assert_eq!(t.resource_version(), Some("10"));
    assert!(t.listed(None, "11".into()).is_none());
    // Created: present; the same version again (a relist, a duplicate event) is not news.
    assert!(matches!(
        t.event(WatchEvent::Added(cm("p", "12", "a"))),
        Step::Report(Update::Present(c)) if c.data["policies"] == "a"
    ));
    assert!(matches!(
        t.event(WatchEvent::Modified(cm("p", "12", "a"))),
        Step::Nothing
    ));
    assert!(t.listed(Some(cm("p", "12", "a")), "15".into()).is_none());
    assert_eq!(t.resource_version(), Some("12"));
    // Another object's events (a selector the server ignored) change nothing.
    assert!(matches!(
        t.event(WatchEvent::Modified(cm("other", "13", "x"))),
        Step::Nothing
    ));
    assert!(matches!(
        t.event(WatchEvent::Deleted(cm("other", "14", "x"))),
        Step::Nothing
    ));
    // A bookmark moves the version on, silently.
    assert!(matches!(
        t.event(WatchEvent::Bookmark("20".into())),
        Step::Nothing
    ));
    assert_eq!(t.resource_version(), Some("20"));
    assert!(matches!(
        t.event(WatchEvent::Modified(cm("p", "21", "b"))),
        Step::Report(Update::Present(_))
    ));
    assert!(matches!(
        t.event(WatchEvent::Deleted(cm("p", "22", "b"))),
        Step::Report(Update::Absent)
    ));
    assert_eq!(t.resource_version(), Some("22"));
    assert!(matches!(
        t.event(WatchEvent::Deleted(cm("p", "22", "b"))),
        Step::Nothing
    ));
    // 410: list again; any other error: fail.
    let status = |code, reason: &str| Status {
        code,
        reason: reason.into(),
        message: "m".into(),
        ..Default::default()
    };
    assert!(matches!(
        t.event(WatchEvent::Error(status(410, "Expired"))),
        Step::Relist
    ));
    assert_eq!(t.resource_version(), None);
    assert!(matches!(
        t.event(WatchEvent::Error(status(500, "InternalError"))),
        Step::Fail(m) if m.contains("HTTP 500")
    ));
}

#[test]
fn back_off_doubles_and_is_capped() {
    let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
    let got: Vec<u64> = (1..=9).map(|n| backoff(n, min, max).as_secs()).collect();
    assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(backoff(u32::MAX, min, max), max);
}

/// A stand-in API server: each request gets the next scripted answer (status, body), then
/// the connection closes (which ends a watch stream); after the script, 503.
struct Script {
    url: url::Url,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn script(answers: Vec<(u16, String)>) -> Script {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf).into_owned();
            let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(target);
            let (status, body) = answers.lock().unwrap().pop_front().unwrap_or((
                503,
                r#"{"kind":"Status","code":503,"message":"script over"}"#.into(),
            ));
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        }
    });
    Script { url, seen }
}

fn client(url: &url::Url) -> KubeClient {
    KubeClient::new(
        ClusterConfig {
            server: url.clone(),
            origin: "test".into(),
            ca: None,
            identity: None,
            credential: Credential::Token(kk_core::secret::Secret::new("tok".to_string())),
        },
        &ClientSettings {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            user_agent: "test".into(),
        },
    )
    .unwrap()
}

fn list(items: &[ConfigMap], rv: &str) -> String {
    json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items})
        .to_string()
}

fn settings() -> WatchSettings {
    WatchSettings {
        timeout: Duration::from_secs(7),
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
    }
}

#[tokio::test]
async fn the_watch_lists_watches_relists_on_410_and_backs_off_on_errors() {
    let stream = [
        line("BOOKMARK", json!({"metadata": {"resourceVersion": "31"}})),
        line(
            "MODIFIED",
            serde_json::to_value(cm("p", "32", "v2")).unwrap(),
        ),
        line(
            "DELETED",
            serde_json::to_value(cm("p", "33", "v2")).unwrap(),
        ),
    ]
    .join("\n")
        + "\n";
    let s = script(vec![
        // list: present at 30
        (200, list(&[cm("p", "30", "v1")], "30")),
        // watch from 30: a bookmark, a change, a delete, then the stream ends
        (200, stream),
        // watch from 33: too old (as an HTTP status)
        (410, r#"{"kind":"Status","code":410,"reason":"Expired","message":"too old"}"#.into()),
        // relist: re-created meanwhile
        (200, list(&[cm("p", "40", "v3")], "41")),
        // watch from 40: forbidden (RBAC lacks watch)
        (
            403,
            r#"{"kind":"Status","code":403,"reason":"Forbidden","message":"cannot watch resource \"configmaps\""}"#.into(),
        ),
        // after the back-off: the list again (same object: no news), the watch is refused
        // again (the back-off doubles)
        (200, list(&[cm("p", "40", "v3")], "42")),
        (500, r#"{"kind":"Status","code":500,"message":"etcd"}"#.into()),
        (200, list(&[cm("p", "43", "v4")], "43")),
    ])
    .await;
    let mut w =
        ObjectWatch::<ConfigMap>::new(client(&s.url), Some("kube-system"), "p", settings(), None);
    let data = |u: Update<ConfigMap>| match u {
        Update::Present(c) => c.data["policies"].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(data(w.next().await), "v1");
    assert_eq!(data(w.next().await), "v2");
    assert!(matches!(w.next().await, Update::Absent));
    assert_eq!(data(w.next().await), "v3");
    let started = Instant::now();
    match w.next().await {
        Update::Broken { error, retry_in } => {
            assert!(matches!(error, KubeError::Forbidden { .. }), "{error}");
            assert!(
                error.to_string().contains("watch configmap kube-system/p"),
                "{error}"
            );
            assert_eq!(retry_in, Duration::from_millis(100));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(w.next().await, Update::Recovered));
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "waited the back-off"
    );
    match w.next().await {
        Update::Broken { retry_in, .. } => assert_eq!(retry_in, Duration::from_millis(200)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(w.next().await, Update::Recovered));
    assert_eq!(data(w.next().await), "v4");
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        "/api/v1/namespaces/kube-system/configmaps?limit=500&fieldSelector=metadata.name%3Dp"
    );
    assert_eq!(
        seen[1],
        "/api/v1/namespaces/kube-system/configmaps?watch=true&fieldSelector=metadata.name%3Dp&resourceVersion=30&allowWatchBookmarks=true&timeoutSeconds=7"
    );
    assert!(seen[2].contains("resourceVersion=33"), "{}", seen[2]);
    assert!(
        seen[3].contains("limit=500"),
        "relisted after 410: {}",
        seen[3]
    );
    assert!(seen[4].contains("watch=true&") && seen[4].contains("resourceVersion=40"));
}

#[tokio::test]
async fn a_watch_the_server_ends_at_once_or_garbles_is_a_failure_not_a_busy_loop() {
    let s = script(vec![
        // the first list was done by the caller; the watch from 5 ends at once, empty
        (200, String::new()),
        (200, list(&[cm("p", "5", "v1")], "6")),
        // a garbled event
        (200, "{not json\n".into()),
        (200, list(&[cm("p", "5", "v1")], "7")),
        // a line longer than the limit
        (200, format!("{}\n", "x".repeat(MAX_LINE + 1))),
    ])
    .await;
    let mut w = ObjectWatch::<ConfigMap>::new(
        client(&s.url),
        Some("kube-system"),
        "p",
        settings(),
        Some((Some(cm("p", "5", "v1")), "5".into())),
    );
    match w.next().await {
        Update::Broken { error, .. } => {
            assert!(
                error.to_string().contains("ended the watch at once"),
                "{error}"
            )
        }
        other => panic!("{other:?}"),
    }
    // The object was not reported again: the caller already had it.
    assert!(matches!(w.next().await, Update::Recovered));
    match w.next().await {
        Update::Broken { error, .. } => {
            assert!(error.to_string().contains("not a watch event"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(w.next().await, Update::Recovered));
    match w.next().await {
        Update::Broken { error, .. } => {
            assert!(error.to_string().contains("longer than"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.seen.lock().unwrap().len(), 5);
}
