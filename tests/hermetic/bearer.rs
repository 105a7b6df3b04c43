//! Application-credential bearer tokens (`kkac1_...`) through the service's routes against the
//! fake Keystone: what is asked of Keystone, how often, and what is answered.

use std::time::Duration;

use serde_json::{Value, json};
use warp::http::Method;

use crate::fake::*;
use crate::support::*;
use kk_core::appcred_token::AppCredToken;
use kk_core::secret::Secret;
use kk_webhook::config::AppCredTokensConfig;

const ISSUE: &str = "/v3/auth/tokens";
const GROUPS: &str = "/v3/users/u-alice/groups";
/// The Keystone token the fake issues for the credential.
const ISSUED: &str = "gAAAAABissuedxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
const ID: &str = "ac0123456789abcdef";
const SECRET: &str = "the-Secret_of:alice";

fn bearer(id: &str, secret: &str) -> String {
    AppCredToken::new(id, Secret::new(secret))
        .encode()
        .expose()
        .to_string()
}

fn enabled(max_failures: u32) -> AppCredTokensConfig {
    AppCredTokensConfig {
        enabled: true,
        max_failures,
        failure_window: Duration::from_secs(300),
    }
}

/// The answer to the exchange: alice's token body, as an application credential's.
fn issued(expires_in: u64) -> Answer {
    let mut body = alice_token();
    body["token"]["methods"] = json!(["application_credential"]);
    body["token"]["application_credential"] =
        json!({"id": ID, "name": "kubectl", "restricted": true});
    body["token"]["expires_at"] = json!(in_secs(expires_in));
    Answer::json(201, body).header("x-subject-token", ISSUED)
}

async fn start(config: AppCredTokensConfig) -> (FakeKeystone, Svc) {
    let ks = FakeKeystone::start().await;
    let mut s = Settings::new(ks.url());
    s.appcred_tokens = config;
    ks.on(
        Method::GET,
        GROUPS,
        vec![Answer::json(200, groups(&["devs"], None))],
    );
    (ks, Svc::new(s))
}

fn posts(ks: &FakeKeystone) -> usize {
    ks.count(Method::POST, ISSUE)
}

#[tokio::test]
async fn disabled_by_default_refused_without_asking_keystone() {
    let (ks, svc) = start(AppCredTokensConfig::default()).await;
    ks.on(Method::POST, ISSUE, vec![issued(3600)]);
    let status = svc.token_review("v1", &bearer(ID, SECRET)).await;
    assert_eq!(status, json!({"authenticated": false}));
    assert!(ks.seen().is_empty(), "{:?}", ks.seen());
    assert_eq!(
        svc.metric(r#"k8s_keystone_auth_application_credential_tokens_total{result="disabled"}"#),
        1
    );
}

#[tokio::test]
async fn the_credential_is_exchanged_once_then_cached_and_maps_like_any_token() {
    let (ks, svc) = start(enabled(5)).await;
    ks.on(Method::POST, ISSUE, vec![issued(3600)]);
    let t = bearer(ID, SECRET);
    let status = svc.token_review("v1", &t).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(status["user"]["username"], "alice");
    assert_eq!(status["user"]["groups"], json!(["devs", "p-team-a"]));
    assert_eq!(
        status["user"]["extra"]["alpha.kubernetes.io/identity/project/id"],
        json!(["p-team-a"])
    );
    assert_eq!(svc.token_review("v1beta1", &t).await, status);
    assert_eq!(posts(&ks), 1, "the second review is a cache hit");
    assert_eq!(ks.count(Method::GET, VALIDATE), 0, "no validation call");
    let seen = ks.seen();
    let post = seen.iter().find(|s| s.method == Method::POST).unwrap();
    let body: Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(
        body["auth"]["identity"],
        json!({"methods": ["application_credential"],
               "application_credential": {"id": ID, "secret": SECRET}})
    );
    assert!(post.header("x-auth-token").is_none());
    // The groups are listed with the issued token, never with the bearer token.
    let groups = seen.iter().find(|s| s.path == GROUPS).unwrap();
    assert_eq!(groups.header("x-auth-token"), Some(ISSUED));
    assert!(
        seen.iter()
            .all(|s| !format!("{:?}", s.headers).contains(&t)),
        "the bearer token itself is never sent to Keystone"
    );
    assert_eq!(
        svc.metric(r#"k8s_keystone_auth_application_credential_tokens_total{result="exchanged"}"#),
        1
    );
}

#[tokio::test]
async fn a_thousand_concurrent_reviews_of_one_credential_make_one_keystone_call() {
    let (ks, svc) = start(enabled(5)).await;
    ks.on(
        Method::POST,
        ISSUE,
        vec![issued(3600).delayed(Duration::from_millis(500))],
    );
    let t = bearer(ID, SECRET);
    let reviews: Vec<_> = (0..1000).map(|_| svc.token_review("v1", &t)).collect();
    let answers = futures_util::future::join_all(reviews).await;
    assert_eq!(
        answers
            .iter()
            .filter(|a| a["authenticated"] == true)
            .count(),
        1000
    );
    assert_eq!(posts(&ks), 1);
    assert_eq!(ks.count(Method::GET, GROUPS), 1);
    assert_eq!(
        svc.metric(r#"k8s_keystone_auth_token_cache_requests_total{result="coalesced"}"#),
        999
    );
}

#[tokio::test]
async fn the_positive_ttl_is_bounded_by_the_issued_tokens_expiry() {
    let (ks, svc) = start(enabled(5)).await;
    // Expires in 1 s (the cache TTL is 60 s): the second review after it asks again.
    ks.on(Method::POST, ISSUE, vec![issued(1), issued(3600)]);
    let t = bearer(ID, SECRET);
    assert_eq!(svc.token_review("v1", &t).await["authenticated"], true);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while posts(&ks) < 2 {
        assert!(std::time::Instant::now() < deadline, "never re-exchanged");
        assert_eq!(svc.token_review("v1", &t).await["authenticated"], true);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(posts(&ks), 2);
}

#[tokio::test]
async fn wrong_secrets_are_refused_cached_and_throttled_per_credential_id() {
    let (ks, svc) = start(enabled(3)).await;
    let good = bearer(ID, SECRET);
    ks.on(Method::POST, ISSUE, vec![issued(3600)]);
    assert_eq!(svc.token_review("v1", &good).await["authenticated"], true);
    ks.on(
        Method::POST,
        ISSUE,
        vec![Answer::error(
            401,
            "The request you have made requires authentication.",
        )],
    );
    // One wrong secret twice: the second answer comes from the negative cache.
    let wrong = bearer(ID, "guess-0");
    for _ in 0..2 {
        assert_eq!(
            svc.token_review("v1", &wrong).await,
            json!({"authenticated": false})
        );
    }
    assert_eq!(posts(&ks), 2);
    // Six more distinct guesses: Keystone sees two more (3 failures in the window), then none.
    for i in 1..=6 {
        assert_eq!(
            svc.token_review("v1", &bearer(ID, &format!("guess-{i}")))
                .await,
            json!({"authenticated": false})
        );
    }
    assert_eq!(
        posts(&ks),
        1 + 3,
        "the bound: max_failures calls per window"
    );
    assert_eq!(
        svc.metric(r#"k8s_keystone_auth_application_credential_tokens_total{result="throttled"}"#),
        4
    );
    assert_eq!(
        svc.metric(r#"k8s_keystone_auth_application_credential_tokens_total{result="refused"}"#),
        3
    );
    // The correct token, still cached, keeps working; another credential is not throttled.
    assert_eq!(svc.token_review("v1", &good).await["authenticated"], true);
    assert_eq!(posts(&ks), 4);
    svc.token_review("v1", &bearer("other-id", "x")).await;
    assert_eq!(posts(&ks), 5);
}

#[tokio::test]
async fn keystone_down_is_an_error_answer_not_cached_without_the_secret() {
    let (ks, svc) = start(enabled(1)).await;
    // A Keystone that echoes the request in its error must not leak the secret.
    ks.on(
        Method::POST,
        ISSUE,
        vec![Answer::error(
            503,
            &format!("cannot handle secret {SECRET}"),
        )],
    );
    let t = bearer(ID, SECRET);
    for round in 1..=3 {
        let status = svc.token_review("v1", &t).await;
        assert_eq!(status["authenticated"], false);
        let error = status["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("Keystone unavailable") && error.contains("HTTP 503"),
            "{status}"
        );
        assert!(
            !error.contains(SECRET) && error.contains("<redacted>"),
            "{error}"
        );
        // Not cached, and not a failed secret (max_failures = 1 would throttle it).
        assert_eq!(posts(&ks), round);
    }
}

#[tokio::test]
async fn malformed_and_unknown_versions_never_reach_keystone() {
    let (ks, svc) = start(enabled(5)).await;
    for t in [
        "kkac1_",
        "kkac1_aWQ",
        "kkac1_aWQ.c2Vj.eA",
        "kkac9_aWQ.c2Vj",
        "kkac1_a+Q.c2Vj",
    ] {
        assert_eq!(
            svc.token_review("v1", t).await,
            json!({"authenticated": false}),
            "{t}"
        );
    }
    assert!(ks.seen().is_empty(), "{:?}", ks.seen());
}
