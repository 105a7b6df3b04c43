//! Keystone faults, in process: a review's whole Keystone round is bounded by
//! `keystone.timeout` (not each of its requests), and readiness follows a failure at once
//! instead of trusting an answer from before it. The same faults with the real Keystone behind
//! a fault-injecting proxy, under load: tests/integration/faults.rs.

use std::time::{Duration, Instant};

use warp::http::Method;

use crate::fake::*;
use crate::support::*;

const GROUPS: &str = "/v3/users/u-alice/groups";

async fn readyz(svc: &Svc) -> u16 {
    svc.send(warp::test::request().method("GET").path("/readyz"))
        .await
        .0
}

#[tokio::test]
async fn a_slow_keystone_round_is_bounded_by_the_timeout_in_all() {
    let ks = FakeKeystone::start().await;
    let mut s = Settings::new(ks.url());
    s.timeout = Duration::from_secs(1);
    let svc = Svc::new(s);
    // Each request within the timeout, both together past it.
    let slow = Duration::from_millis(700);
    ks.on(
        Method::GET,
        VALIDATE,
        vec![Answer::json(200, alice_token()).delayed(slow)],
    );
    ks.on(
        Method::GET,
        GROUPS,
        vec![Answer::json(200, groups(&["devs"], None)).delayed(slow)],
    );
    let t = token("slow");
    let started = Instant::now();
    let status = svc.token_review("v1", &t).await;
    let took = started.elapsed();
    assert_eq!(status["authenticated"], false, "{status}");
    assert!(
        status["error"]
            .as_str()
            .unwrap_or_default()
            .contains("did not answer within 1s"),
        "{status}"
    );
    assert!(
        took < Duration::from_millis(1300),
        "the review took {took:?}"
    );
    // Not cached: with a quick Keystone the same token is authenticated.
    script_alice(&ks);
    assert_eq!(svc.token_review("v1", &t).await["authenticated"], true);
}

#[tokio::test]
async fn readiness_turns_false_at_the_first_failure_after_an_answer_and_back() {
    let ks = FakeKeystone::start().await;
    let mut s = Settings::new(ks.url());
    s.timeout = Duration::from_millis(500);
    let svc = Svc::new(s);
    script_alice(&ks);
    assert_eq!(
        svc.token_review("v1", &token("a")).await["authenticated"],
        true
    );
    // A recent answer: ready without a probe.
    assert_eq!(readyz(&svc).await, 200);
    assert_eq!(ks.count(Method::GET, "/v3"), 0);
    for (i, fault) in [Answer::error(503, "down"), Answer::hang()]
        .into_iter()
        .enumerate()
    {
        let t = token(&format!("b{i}"));
        // Keystone fails a review: the answer before it no longer counts, the probe decides.
        ks.on(Method::GET, VALIDATE, vec![fault.clone()]);
        ks.on(Method::GET, "/v3", vec![fault]);
        let status = svc.token_review("v1", &t).await;
        assert!(status["error"].is_string(), "{status}");
        let probes = ks.count(Method::GET, "/v3");
        assert_eq!(readyz(&svc).await, 503);
        assert_eq!(ks.count(Method::GET, "/v3"), probes + 1);
        // Back: the probe answers, and the answer counts again.
        ks.on(
            Method::GET,
            "/v3",
            vec![Answer::json(200, serde_json::json!({}))],
        );
        script_alice(&ks);
        assert_eq!(readyz(&svc).await, 200);
        assert_eq!(svc.token_review("v1", &t).await["authenticated"], true);
        let probes = ks.count(Method::GET, "/v3");
        assert_eq!(readyz(&svc).await, 200);
        assert_eq!(
            ks.count(Method::GET, "/v3"),
            probes,
            "no probe after an answer"
        );
    }
}
