//! Keystone faults under load: the real service, its Keystone URL pointed at a fault-injecting
//! TCP proxy in front of the real Keystone (pass, stopped = connections refused, hanging =
//! accepted and never answered, slow = each request delayed, restarted = pass again), while a
//! bounded load of concurrent reviews of cached and fresh tokens runs. Three services show the
//! cache as configured: a fresh cache (`ttl = 60s`: cached tokens are answered from it), stale
//! serving (`ttl = 0s` + `serve_stale_while_keystone_down`: every review asks Keystone, a
//! failure answers the stale identity) and neither (a failure is an error).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::*;

/// `keystone.timeout` of the services.
const TIMEOUT: Duration = Duration::from_secs(2);
/// What a review may take past [`TIMEOUT`]: HTTPS to the service and scheduling on 2 busy cores.
const MARGIN: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Pass,
    /// The port is closed: connections are refused; open ones are closed.
    Stopped,
    /// Connections are accepted, requests never forwarded.
    Hanging,
    /// Each request forwarded after this delay.
    Slow(Duration),
}

/// A TCP proxy to `upstream` whose [`Mode`] the test sets.
struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl FaultProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, _) = watch::channel(Mode::Pass);
        let mut p = Self {
            addr,
            upstream,
            mode,
            accept: None,
        };
        p.accept = Some(p.spawn_accept(listener));
        p
    }

    fn spawn_accept(&self, listener: TcpListener) -> tokio::task::JoinHandle<()> {
        let upstream = self.upstream;
        let mode = self.mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, mode.subscribe()));
            }
        })
    }

    async fn set(&mut self, mode: Mode) {
        let was = *self.mode.borrow();
        self.mode.send_replace(mode);
        if mode == Mode::Stopped {
            if let Some(a) = self.accept.take() {
                a.abort();
                let _ = a.await;
            }
        } else if was == Mode::Stopped {
            // Restarted on the same port.
            let listener = TcpListener::bind(self.addr).await.unwrap();
            self.accept = Some(self.spawn_accept(listener));
        }
    }
}

/// One proxied connection: requests forwarded as the mode says, answers always; closed when
/// either side closes or the proxy stops.
async fn relay(mut client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    if *mode.borrow() == Mode::Stopped {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let requests = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let now = *mode.borrow();
            match now {
                Mode::Pass => {}
                Mode::Slow(d) => tokio::time::sleep(d).await,
                // Never forwarded: wait for the client to give up, or for the fault to end.
                // Then the connection is closed, as a restarted Keystone closes the ones it
                // hung on; left open, a connection the client kept would hang after the
                // restore (CI saw one review time out so).
                Mode::Hanging => {
                    let mut changed = mode.clone();
                    tokio::select! {
                        () = async { while !matches!(cr.read(&mut buf).await, Ok(0) | Err(_)) {} } => {}
                        _ = changed.wait_for(|m| *m != Mode::Hanging) => {}
                    }
                    return;
                }
                Mode::Stopped => return,
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let answers = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    };
    let stopped = async {
        let _ = mode.clone().wait_for(|m| *m == Mode::Stopped).await;
    };
    tokio::select! {
        () = requests => {}
        () = answers => {}
        () = stopped => {}
    }
}

/// The services under test, one per cache behaviour.
struct Services {
    fresh_cache: Service,
    stale: Service,
    no_cache: Service,
}

impl Services {
    fn all(&self) -> [(&'static str, &Service); 3] {
        [
            ("fresh cache", &self.fresh_cache),
            ("stale", &self.stale),
            ("no cache", &self.no_cache),
        ]
    }
}

/// One timed review: its status and how long it took.
async fn timed_review(svc: &Service, token: &str) -> (Value, Duration) {
    let t = Instant::now();
    let status = svc.token_review("v1", token).await;
    (status, t.elapsed())
}

/// What a review must answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// authenticated: true as alice.
    Alice,
    /// authenticated: false with status.error.
    Error,
    /// authenticated: false (error or not: a refusal, or Keystone down).
    NotAuthenticated,
}

fn check(what: &str, status: &Value, expect: Expect) {
    match expect {
        Expect::Alice => {
            assert_eq!(status["authenticated"], true, "{what}: {status}");
            assert_eq!(status["user"]["username"], "alice", "{what}: {status}");
            assert!(status.get("error").is_none(), "{what}: {status}");
        }
        Expect::Error => {
            assert_eq!(status["authenticated"], false, "{what}: {status}");
            assert!(status.get("user").is_none(), "{what}: {status}");
            assert!(
                status["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Keystone")),
                "{what}: {status}"
            );
        }
        Expect::NotAuthenticated => {
            assert_eq!(status["authenticated"], false, "{what}: {status}");
            assert!(status.get("user").is_none(), "{what}: {status}");
        }
    }
}

/// Polls `/readyz` until it answers `want` (bounded: 20 s; each probe is bounded by the timeout).
async fn wait_ready(name: &str, svc: &Service, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = svc.get("/readyz").await;
        if code == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: /readyz still {code} ({body}), not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn keystone_stopped_hanging_slow_and_restarted_under_load() {
    let _ks = KEYSTONE.read().await;
    let keystone = Keystone::get();
    let url = reqwest::Url::parse(&keystone.url).unwrap();
    let upstream: SocketAddr = format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    )
    .parse()
    .unwrap();
    let mut proxy = FaultProxy::start(upstream).await;
    let via_proxy = format!("http://{}/v3", proxy.addr);
    let start = |cache: &'static str| {
        Service::start(Options {
            keystone_url: Some(via_proxy.clone()),
            toml: format!(
                "timeout = \"{}s\"\nconnect_timeout = \"1s\"\n[cache]\nnegative_ttl = \"10m\"\n{cache}",
                TIMEOUT.as_secs()
            ),
            log_level: "info",
            ..Default::default()
        })
    };
    // `toml` is appended after `[keystone] url`: the timeouts land in [keystone].
    let services = Arc::new(Services {
        fresh_cache: start("ttl = \"60s\"\n").await,
        stale: start("ttl = \"0s\"\nserve_stale_while_keystone_down = true\n").await,
        no_cache: start("ttl = \"0s\"\n").await,
    });
    // Cached: reviewed by every service while Keystone is up.
    let mut cached = Vec::new();
    for _ in 0..3 {
        cached.push(keystone.alice().await);
    }
    let invalid = "gAAAAABnot-a-real-token-of-this-keystone-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    for (name, svc) in services.all() {
        for t in &cached {
            check(name, &svc.token_review("v1", t).await, Expect::Alice);
        }
        check(
            name,
            &svc.token_review("v1", invalid).await,
            Expect::NotAuthenticated,
        );
        wait_ready(name, svc, 200).await;
    }
    let cached = Arc::new(cached);
    let mut figures = Vec::new();
    for mode in [
        Mode::Stopped,
        Mode::Hanging,
        Mode::Slow(TIMEOUT + Duration::from_secs(1)),
        // Each request within the timeout, a review's two (validation, groups) past it.
        Mode::Slow(TIMEOUT * 3 / 4),
    ] {
        // Fresh: issued now (straight from Keystone), never reviewed by the services.
        let mut fresh = Vec::new();
        for _ in 0..2 {
            fresh.push(keystone.alice().await);
        }
        let fresh = Arc::new(fresh);
        proxy.set(mode).await;
        // The load: 4 clients per service, each reviewing cached and fresh tokens in turn.
        let started = Instant::now();
        let mut load = tokio::task::JoinSet::new();
        for s in 0..3 {
            for client in 0..4 {
                let services = services.clone();
                let cached = cached.clone();
                let fresh = fresh.clone();
                load.spawn(async move {
                    let (name, svc) = services.all()[s];
                    let mut slowest = Duration::ZERO;
                    for round in 0..4 {
                        let is_fresh = (client + round) % 2 == 1;
                        let (token, expect) = if is_fresh {
                            (&fresh[round % fresh.len()], Expect::Error)
                        } else {
                            let expect = match name {
                                "no cache" => Expect::Error,
                                _ => Expect::Alice,
                            };
                            (&cached[round % cached.len()], expect)
                        };
                        let (status, took) = timed_review(svc, token).await;
                        let what = format!(
                            "{mode:?}, {name}, {} token",
                            if is_fresh { "fresh" } else { "cached" }
                        );
                        check(&what, &status, expect);
                        assert!(
                            took <= TIMEOUT + MARGIN,
                            "{what}: the review took {took:?}, past the timeout {TIMEOUT:?} + {MARGIN:?}"
                        );
                        slowest = slowest.max(took);
                    }
                    slowest
                });
            }
        }
        let mut slowest = Duration::ZERO;
        while let Some(r) = load.join_next().await {
            slowest = slowest.max(r.unwrap());
        }
        // A refused token stays refused (the negative cache, or an error): never authenticated.
        for (name, svc) in services.all() {
            check(
                name,
                &svc.token_review("v1", invalid).await,
                Expect::NotAuthenticated,
            );
        }
        // Keystone failed the reviews: not ready (a probe within the timeout still answers
        // when each request alone is quick enough).
        if mode != Mode::Slow(TIMEOUT * 3 / 4) {
            for (name, svc) in services.all() {
                wait_ready(name, svc, 503).await;
            }
        }
        figures.push(format!(
            "{mode:?}: 48 reviews, slowest {slowest:?}, {:?} in all",
            started.elapsed()
        ));
        // Restarted: ready again, and every answer right.
        proxy.set(Mode::Pass).await;
        for (name, svc) in services.all() {
            wait_ready(name, svc, 200).await;
            for t in cached.iter().chain(fresh.iter()) {
                check(
                    &format!("after {mode:?}, {name}"),
                    &svc.token_review("v1", t).await,
                    Expect::Alice,
                );
            }
            check(
                name,
                &svc.token_review("v1", invalid).await,
                Expect::NotAuthenticated,
            );
        }
    }
    // The stale service answered from the stale identity, and said so in its metrics.
    assert!(
        services
            .stale
            .metric("k8s_keystone_auth_token_cache_requests_total{result=\"stale\"}")
            .await
            > 0
    );
    assert!(
        services
            .fresh_cache
            .metric("k8s_keystone_auth_token_cache_requests_total{result=\"hit\"}")
            .await
            > 0
    );
    record_figure(&format!(
        "Keystone faults under load (timeout {TIMEOUT:?}): {}",
        figures.join("; ")
    ));
}
