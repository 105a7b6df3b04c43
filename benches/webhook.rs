//! Benchmark of the webhook's hot paths against the real Keystone (run with `benches/run`).
//!
//! Prints, side by side in one run:
//! * TokenReview latency when every review goes to Keystone (cache off) vs. from the cache;
//! * the same for 8 concurrent reviewers (throughput);
//! * SubjectAccessReview policy evaluation;
//! * memory per cached token (RSS growth for 20 000 entries).

#![allow(clippy::print_stdout, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kk_core::keystone::{AuthRequest, ClientSettings, KeystoneClient, normalize_url};
use kk_core::metrics::Metrics;
use kk_core::secret::Secret;
use kk_policy::{Attributes, Policy, Request};
use kk_webhook::authn::Authenticator;
use kk_webhook::cache::{Key, Lifetime, TokenCache};
use kk_webhook::config::CacheConfig;
use kk_webhook::identity::{Identity, UsernameFormat};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn authenticator(url: &str, ttl: Duration) -> Authenticator {
    let keystone = KeystoneClient::new(
        &ClientSettings {
            url: normalize_url(url).expect("KS_URL"),
            ca_file: None,
            client_identity: None,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            user_agent: "bench".into(),
            service_auth: None,
        },
        None,
    )
    .expect("client");
    Authenticator::new(
        keystone,
        CacheConfig {
            max_entries: 10_000,
            ttl,
            negative_ttl: ttl,
            serve_stale: false,
        },
        "k8s".into(),
        UsernameFormat::Name,
        4096,
        Default::default(),
        Arc::new(Metrics::default()),
    )
}

async fn timed(auth: &Authenticator, token: &Secret, n: usize) -> Vec<Duration> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = auth.review(token).await;
        assert!(r.user.is_some(), "{}", r.reason);
        v.push(t.elapsed());
    }
    v.sort();
    v
}

async fn throughput(auth: Arc<Authenticator>, token: Secret, per_task: usize) -> f64 {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (auth, token) = (auth.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                assert!(auth.review(&token).await.user.is_some());
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    (8 * per_task) as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let Ok(url) = std::env::var("KS_URL") else {
        eprintln!("KS_URL is not set: run benches/run, which starts and seeds Keystone");
        std::process::exit(2);
    };
    if cfg!(debug_assertions) {
        println!(
            "(debug build, as run by `cargo test --all-targets`: a smoke run; figures come from `benches/run`)\n"
        );
    }
    let (id, secret) = (
        std::env::var("KS_AC_KUBECTL_ID").expect("seed"),
        std::env::var("KS_AC_KUBECTL_SECRET").expect("seed"),
    );
    let client = authenticator(&url, Duration::ZERO);
    let (token, _) = client
        .keystone()
        .issue_token(&AuthRequest::ApplicationCredential {
            id: Some(id),
            name: None,
            user: None,
            secret: Secret::new(secret),
        })
        .await
        .expect("token");

    let n = 200;
    let uncached = authenticator(&url, Duration::ZERO);
    let cached = authenticator(&url, Duration::from_secs(600));
    let miss = timed(&uncached, &token, n).await;
    let hit = timed(&cached, &token, n * 50).await;
    println!("TokenReview latency, {n} sequential reviews of one application-credential token");
    println!("{:<28} {:>12} {:>12} {:>12}", "", "p50", "p90", "p99");
    for (name, v) in [
        ("Keystone every time (off)", &miss),
        ("token cache (on)", &hit),
    ] {
        println!(
            "{name:<28} {:>12.3?} {:>12.3?} {:>12.3?}",
            percentile(v, 0.5),
            percentile(v, 0.9),
            percentile(v, 0.99)
        );
    }
    println!(
        "ratio p50 off/on: {:.0}x",
        percentile(&miss, 0.5).as_secs_f64() / percentile(&hit, 0.5).as_secs_f64().max(1e-9)
    );

    let off = throughput(
        Arc::new(authenticator(&url, Duration::ZERO)),
        token.clone(),
        25,
    )
    .await;
    let on = throughput(
        Arc::new(authenticator(&url, Duration::from_secs(600))),
        token.clone(),
        5_000,
    )
    .await;
    println!(
        "\n8 concurrent reviewers: {off:>10.0} reviews/s with the cache off, {on:>10.0} reviews/s on ({:.0}x)",
        on / off.max(1e-9)
    );

    let policy = Policy::parse(include_str!("../deploy/policy-example.json"))
        .expect("policy")
        .policy;
    let mut extra = std::collections::BTreeMap::new();
    extra.insert(
        "alpha.kubernetes.io/identity/roles".to_string(),
        vec!["k8s-viewer".to_string()],
    );
    extra.insert(
        "alpha.kubernetes.io/identity/project/name".to_string(),
        vec!["team-a".to_string()],
    );
    extra.insert(
        "alpha.kubernetes.io/identity/project/id".to_string(),
        vec!["p1".to_string()],
    );
    let groups = vec!["p1".to_string()];
    let rounds = 200_000;
    let t = Instant::now();
    let mut allowed = 0;
    for i in 0..rounds {
        let verb = if i % 2 == 0 { "list" } else { "delete" };
        let d = policy.evaluate(&Request {
            user: "alice",
            uid: "u1",
            groups: &groups,
            extra: Some(&extra),
            attributes: Attributes::Resource {
                verb,
                namespace: "default",
                group: "",
                version: "v1",
                resource: "pods",
                subresource: "",
                name: "",
            },
        });
        allowed += usize::from(d.allowed);
    }
    let per = t.elapsed() / rounds;
    println!(
        "\nSubjectAccessReview policy evaluation ({} rules): {per:?} per decision ({allowed} of {rounds} allowed)",
        policy.len()
    );

    let cache: TokenCache<kk_webhook::authn::Outcome> = TokenCache::new(100_000, None);
    let before = rss_kib();
    let entries = 20_000;
    for i in 0..entries {
        let identity = Identity {
            user_id: format!("{i:032x}"),
            user_name: format!("user-{i}"),
            user_domain_id: "88b13db0f5b94a6a925564a65e87bcc4".into(),
            user_domain_name: "k8s".into(),
            project_id: "421047439c3144baa976257b0515ecfd".into(),
            project_name: "team-a".into(),
            project_domain_id: "88b13db0f5b94a6a925564a65e87bcc4".into(),
            roles_complete: false,
            roles: vec!["member".into(), "k8s-viewer".into(), "reader".into()],
            groups: vec!["k8s-admins".into(), "team-a-devs".into()],
            application_credential_id: Some(format!("{i:032x}")),
            access_rules: Vec::new(),
        };
        let outcome = kk_webhook::authn::Outcome::Authenticated(
            Arc::new(kk_webhook::authn::Known::new(
                identity,
                kk_webhook::identity::UsernameFormat::Name,
                &[],
            )),
            std::time::SystemTime::now() + Duration::from_secs(3600),
        );
        cache
            .get_or_compute(
                Key::of(&Secret::new(format!("token-{i}"))),
                |_| async move {
                    (
                        outcome,
                        Some(Lifetime {
                            fresh: Duration::from_secs(600),
                            usable: Duration::from_secs(600),
                        }),
                    )
                },
            )
            .await;
    }
    let grown = rss_kib().saturating_sub(before);
    println!(
        "\nToken cache memory: {entries} entries grew RSS by {grown} KiB, about {} bytes per cached token",
        grown * 1024 / entries as u64
    );
}
