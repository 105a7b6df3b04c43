//! An in-process fake Keystone: a warp server on 127.0.0.1:0, scripted per request.
//!
//! Each `(method, path)` has a queue of [`Answer`]s; the last one of a queue repeats. Requests
//! nobody scripted get HTTP 418, so a test that sends something unexpected sees it. Every
//! request is recorded (before it is answered, so hung requests are recorded too).
//! [`RawKeystone`] answers on raw TCP what warp cannot: a 100 MB body streamed, a slow drip.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// What the fake answers to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    delay: Option<Duration>,
    hang: bool,
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Self {
        Self::raw(status, serde_json::to_vec(&body).unwrap())
    }

    pub fn raw(status: u16, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
            delay: None,
            hang: false,
        }
    }

    /// Keystone's error envelope.
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(
            status,
            json!({"error": {"code": status, "message": message, "title": "Error"}}),
        )
    }

    /// Never answers (the connection stays open until the client gives up).
    pub fn hang() -> Self {
        Self {
            hang: true,
            ..Self::raw(200, Bytes::new())
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Script {
    answers: HashMap<(Method, String), VecDeque<Answer>>,
    seen: Vec<Seen>,
}

/// The running fake; stops when dropped.
pub struct FakeKeystone {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKeystone {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKeystone {
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = script.clone();
        let filter = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .and_then(
                move |method: Method, path: warp::path::FullPath, query, headers, body| {
                    let script = shared.clone();
                    async move {
                        let seen = Seen {
                            method: method.clone(),
                            path: path.as_str().to_string(),
                            query,
                            headers,
                            body,
                        };
                        let answer = {
                            let mut s = script.lock().unwrap();
                            s.seen.push(seen);
                            s.answers
                                .get_mut(&(method.clone(), path.as_str().to_string()))
                                .and_then(|q| {
                                    if q.len() > 1 {
                                        q.pop_front()
                                    } else {
                                        q.front().cloned()
                                    }
                                })
                        };
                        let answer = answer.unwrap_or_else(|| {
                            Answer::error(418, &format!("unscripted {method} {}", path.as_str()))
                        });
                        Ok::<_, Infallible>(reply(answer).await)
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(warp::serve(filter).incoming(listener).run());
        Self { addr, script, task }
    }

    /// The v3 base URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}/v3", self.addr)
    }

    /// Scripts the answers to `method path` (path as sent, e.g. `/v3/auth/tokens`), in order;
    /// the last one repeats. Replaces an earlier script for the same request.
    pub fn on(&self, method: Method, path: &str, answers: Vec<Answer>) {
        assert!(!answers.is_empty());
        self.script
            .lock()
            .unwrap()
            .answers
            .insert((method, path.to_string()), answers.into());
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    /// Requests received so far for `method path`.
    pub fn count(&self, method: Method, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count()
    }
}

async fn reply(answer: Answer) -> warp::reply::Response {
    if answer.hang {
        std::future::pending::<()>().await;
    }
    if let Some(d) = answer.delay {
        tokio::time::sleep(d).await;
    }
    let mut r = warp::reply::Response::new(answer.body.into());
    *r.status_mut() = StatusCode::from_u16(answer.status).unwrap();
    for (k, v) in answer.headers {
        r.headers_mut().append(
            HeaderName::from_static(k),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    r
}

pub const VALIDATE: &str = "/v3/auth/tokens";

/// An RFC 3339 time `secs` from now, as Keystone writes it.
pub fn in_secs(secs: u64) -> String {
    kk_core::timefmt::format_rfc3339(SystemTime::now() + Duration::from_secs(secs))
}

/// A project-scoped token body for alice (the answer to a validation).
pub fn alice_token() -> Value {
    json!({"token": {
        "methods": ["password"],
        "user": {"id": "u-alice", "name": "alice", "domain": {"id": "d1", "name": "k8s"}},
        "project": {"id": "p-team-a", "name": "team-a", "domain": {"id": "d1", "name": "k8s"}},
        "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "k8s-viewer"}],
        "expires_at": in_secs(3600),
    }})
}

/// A page of groups.
pub fn groups(names: &[&str], next: Option<&str>) -> Value {
    let groups: Vec<Value> = names
        .iter()
        .map(|n| json!({"id": format!("g-{n}"), "name": n}))
        .collect();
    json!({"groups": groups, "links": {"next": next, "self": "x", "previous": null}})
}

/// Scripts a Keystone for which any subject token is alice's, with groups `devs`.
pub fn script_alice(ks: &FakeKeystone) {
    ks.on(
        Method::GET,
        VALIDATE,
        vec![Answer::json(200, alice_token())],
    );
    ks.on(
        Method::GET,
        "/v3/users/u-alice/groups",
        vec![Answer::json(200, groups(&["devs"], None))],
    );
}

/// A token that passes the prefilter (a Fernet token's alphabet), distinct per `tag`.
pub fn token(tag: &str) -> String {
    format!("gAAAAABhermetic{tag}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
}

/// How [`RawKeystone`] answers every request (raw HTTP/1.1, one request per connection), for
/// answers warp cannot make: bodies streamed without being held, bytes written slowly.
#[derive(Debug, Clone)]
pub enum RawAnswer {
    /// `200` with a `Content-Length` of `total` bytes: `prefix`, then spaces, written 64 KiB at
    /// a time as the client reads them (never more than one chunk in memory).
    Huge { prefix: &'static str, total: u64 },
    /// `at_once` (e.g. the status line and headers), then `dripped` one byte every
    /// `interval`.
    Drip {
        at_once: Vec<u8>,
        dripped: Vec<u8>,
        interval: Duration,
    },
}

/// What [`RawKeystone`] has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawStats {
    /// Requests received (= connections).
    pub requests: usize,
    /// Connections whose answer was written to the end or cut by the client.
    pub finished: usize,
    /// Bytes of answers written (and accepted by the kernel).
    pub written: u64,
}

/// A raw-TCP Keystone on 127.0.0.1:0 that answers every request with one [`RawAnswer`];
/// stops when dropped.
pub struct RawKeystone {
    pub addr: SocketAddr,
    stats: tokio::sync::watch::Receiver<RawStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawKeystone {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawKeystone {
    pub async fn start(answer: RawAnswer) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, stats) = tokio::sync::watch::channel(RawStats::default());
        let tx = Arc::new(tx);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                let (tx, answer) = (tx.clone(), answer.clone());
                tokio::spawn(async move {
                    // The request head (a GET: no body), bounded.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    tx.send_modify(|s| s.requests += 1);
                    let wrote = |n: usize| tx.send_modify(|s| s.written += n as u64);
                    match answer {
                        RawAnswer::Huge { prefix, total } => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n{prefix}"
                            );
                            if tcp.write_all(head.as_bytes()).await.is_ok() {
                                wrote(head.len());
                                let chunk = vec![b' '; 64 * 1024];
                                let mut left = total - prefix.len() as u64;
                                while left > 0 {
                                    let n = left.min(chunk.len() as u64) as usize;
                                    if tcp.write_all(&chunk[..n]).await.is_err() {
                                        break;
                                    }
                                    wrote(n);
                                    left -= n as u64;
                                }
                            }
                        }
                        RawAnswer::Drip {
                            at_once,
                            dripped,
                            interval,
                        } => {
                            if tcp.write_all(&at_once).await.is_err() {
                                tx.send_modify(|s| s.finished += 1);
                                return;
                            }
                            wrote(at_once.len());
                            for b in dripped {
                                if tcp.write_all(&[b]).await.is_err() {
                                    break;
                                }
                                wrote(1);
                                tokio::time::sleep(interval).await;
                            }
                        }
                    }
                    tx.send_modify(|s| s.finished += 1);
                });
            }
        });
        Self { addr, stats, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v3", self.addr)
    }

    /// Waits (bounded) until `finished` connections have ended.
    pub async fn finished(&self, finished: usize) -> RawStats {
        let mut rx = self.stats.clone();
        tokio::time::timeout(
            Duration::from_secs(20),
            rx.wait_for(|s| s.finished >= finished),
        )
        .await
        .expect("the connection must end")
        .map(|s| *s)
        .unwrap()
    }
}
