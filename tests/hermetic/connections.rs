//! Connections: 10,000 concurrent keep-alive connections held by the real binary's accept loop,
//! each answering TokenReviews, with the service's memory growth bounded; and the connection
//! limit (`[server] max_connections`) answering HTTP 503 instead of dropping the connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warp::http::Method;

use crate::binary::Binary;
use crate::fake::*;
use crate::routes::Served;
use crate::support::*;

/// Connections held at once by the big test.
const HELD: usize = 10_000;
/// Bound on the service's resident memory growth per held connection (KiB), each connection
/// having answered two TokenReviews: hyper's read and write buffers (8 KiB each at most), the
/// connection's task and the socket's state, with room for the allocator.
const KIB_PER_CONNECTION: u64 = 40;

/// Raises this process's soft open-file limit to `want` (or the hard limit if lower; the
/// service started from it inherits the limit); the limit in force.
fn raise_open_files(want: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let target = want.min(hard);
    if target > soft {
        setrlimit(Resource::RLIMIT_NOFILE, target, hard).unwrap();
    }
    getrlimit(Resource::RLIMIT_NOFILE).unwrap().0
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// One HTTP/1.1 request on a kept-alive connection and its answer: status, headers (lower
/// case), body. Bounded: 30 s.
async fn exchange(tcp: &mut TcpStream, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(30), async {
        tcp.write_all(request).await.unwrap();
        let mut buf = Vec::with_capacity(1024);
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the answer's head: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
        let mut body = buf[head_end..].to_vec();
        while body.len() < length {
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed in the answer's body");
            body.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(body.len(), length, "more than the answer on the connection");
        (status, headers, body)
    })
    .await
    .expect("an answer within 30 s")
}

/// A kept-alive POST of this TokenReview.
fn review_request(token: &str) -> Vec<u8> {
    let body = token_review("v1", token).to_string();
    let mut r = format!(
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body.as_bytes());
    r
}

/// A TokenReview answer for alice, authenticated.
fn assert_alice(status: u16, body: &[u8]) {
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(body));
    let v: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["status"]["authenticated"], true, "{v}");
    assert_eq!(v["status"]["user"]["username"], "alice", "{v}");
    assert_eq!(v["status"]["user"]["uid"], "u-alice", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keep_alive_connections_are_held_each_answers_and_memory_is_bounded() {
    // Per process (this one holds the clients' ends, the service inherits the limit and holds
    // the other ends): 10,000 and room for the rest.
    let need = HELD as u64 + 4096;
    let limit = raise_open_files(need);
    if limit < need {
        eprintln!(
            "SKIPPED ten_thousand_keep_alive_connections...: the hard open-file limit is {limit}, this test needs {need} (ulimit -Hn)"
        );
        return;
    }
    let ks = FakeKeystone::start().await;
    script_alice(&ks);
    // The default limit (16384) must hold them all.
    let service = Binary::start_logging(&ks.url(), "warn", "").await;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], service.port).into();
    let pid = service.child.id();
    let request: Arc<[u8]> = review_request(&token("held")).into();
    // Warm: the token is cached, the runtime's first allocations are made.
    let mut warm = TcpStream::connect(addr).await.unwrap();
    let (status, _, body) = exchange(&mut warm, &request).await;
    assert_alice(status, &body);
    let before = rss_kib(pid);
    let started = Instant::now();

    // Open them 256 at a time (the listen backlog), each answering a first review.
    let opening = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..HELD {
        let opening = opening.clone();
        let request = request.clone();
        tasks.spawn(async move {
            let _turn = opening.acquire_owned().await.unwrap();
            let mut tcp = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr))
                .await
                .expect("connected within 30 s")
                .unwrap();
            let (status, _, body) = exchange(&mut tcp, &request).await;
            assert_alice(status, &body);
            tcp
        });
    }
    let mut held = Vec::with_capacity(HELD);
    while let Some(t) = tasks.join_next().await {
        held.push(t.unwrap());
    }
    let opened = started.elapsed();
    // All are open at once: each answers a second review on its own connection.
    let mut tasks = tokio::task::JoinSet::new();
    for mut tcp in held {
        let turn = opening.clone();
        let request = request.clone();
        tasks.spawn(async move {
            let _turn = turn.acquire_owned().await.unwrap();
            let (status, headers, body) = exchange(&mut tcp, &request).await;
            assert_alice(status, &body);
            assert!(
                !headers
                    .iter()
                    .any(|(k, v)| k == "connection" && v == "close"),
                "{headers:?}"
            );
            tcp
        });
    }
    let mut held = Vec::with_capacity(HELD);
    while let Some(t) = tasks.join_next().await {
        held.push(t.unwrap());
    }
    assert_eq!(held.len(), HELD);
    let after = rss_kib(pid);
    let growth = after.saturating_sub(before);
    eprintln!(
        "{HELD} connections held: opened and reviewed in {opened:?}, reviewed again, {:?} in all; service RSS {before} KiB -> {after} KiB (+{} B per connection)",
        started.elapsed(),
        growth * 1024 / HELD as u64
    );
    assert!(
        growth <= KIB_PER_CONNECTION * HELD as u64,
        "the service grew by {growth} KiB for {HELD} connections (bound {KIB_PER_CONNECTION} KiB each)"
    );
    // One Keystone validation for 20,001 reviews of one token.
    assert_eq!(ks.count(Method::GET, VALIDATE), 1);
    // Nothing was refused for lack of room.
    let metrics = reqwest_get(addr, "/metrics").await;
    assert!(
        !metrics.contains("reason=\"too_many_connections\""),
        "{metrics}"
    );
    drop(held);
    drop(warm);
}

/// A plain GET on a new connection, its body (200 required).
async fn reqwest_get(addr: std::net::SocketAddr, path: &str) -> String {
    let r = http_client()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_connection_over_the_limit_gets_a_quick_503_with_retry_after_and_a_status() {
    let ks = FakeKeystone::start().await;
    script_alice(&ks);
    let mut settings = Settings::new(ks.url());
    settings.server.max_connections = 2;
    let svc = Svc::new(settings);
    let served = Served::start(&svc).await;
    let healthz: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    // Two kept-alive connections hold the two places.
    let mut first = TcpStream::connect(served.addr).await.unwrap();
    let mut second = TcpStream::connect(served.addr).await.unwrap();
    for tcp in [&mut first, &mut second] {
        let (status, _, _) = exchange(tcp, healthz).await;
        assert_eq!(status, 200);
    }
    // A third gets an answer, not a dropped connection: a review too.
    for request in [healthz.to_vec(), review_request(&token("over"))] {
        let t = Instant::now();
        let mut third = TcpStream::connect(served.addr).await.unwrap();
        let (status, headers, body) = exchange(&mut third, &request).await;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        assert_eq!(header("retry-after"), Some("1"), "{headers:?}");
        assert_eq!(header("connection"), Some("close"), "{headers:?}");
        assert_eq!(header("content-type"), Some("application/json"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "Status", "{v}");
        assert_eq!(v["apiVersion"], "v1", "{v}");
        assert_eq!(v["status"], "Failure", "{v}");
        assert_eq!(v["reason"], "ServiceUnavailable", "{v}");
        assert_eq!(v["code"], 503, "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("too many connections (server.max_connections = 2)"),
            "{v}"
        );
        // ...and then the connection is closed.
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut rest))
            .await
            .expect("closed after the 503")
            .unwrap_or(0);
        assert_eq!(n, 0, "{}", String::from_utf8_lossy(&rest));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    assert_eq!(
        svc.metric(
            "k8s_keystone_auth_http_requests_rejected_total{reason=\"too_many_connections\"}"
        ),
        2
    );
    // The review over the limit never reached Keystone.
    assert_eq!(ks.count(Method::GET, VALIDATE), 0);
    // The held connections still work.
    let (status, _, body) = exchange(&mut second, &review_request(&token("held"))).await;
    assert_alice(status, &body);
    // Once one closes, a new connection is served again (when the server has seen the close).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut tcp = TcpStream::connect(served.addr).await.unwrap();
        let (status, _, _) = exchange(&mut tcp, healthz).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place was not reused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(second);
    served.stop().await;
}
