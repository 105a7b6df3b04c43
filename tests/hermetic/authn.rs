//! TokenReviews through the service's routes and authenticator, against the fake Keystone:
//! what is answered, what is cached, what is bounded.

use std::time::{Duration, Instant};

use serde_json::json;
use warp::http::Method;

use crate::client::service_credential;
use crate::fake::*;
use crate::support::*;

const GROUPS: &str = "/v3/users/u-alice/groups";

async fn fake_and_service(f: impl FnOnce(&mut Settings)) -> (FakeKeystone, Svc) {
    let ks = FakeKeystone::start().await;
    let mut s = Settings::new(ks.url());
    f(&mut s);
    let svc = Svc::new(s);
    (ks, svc)
}

#[tokio::test]
async fn a_valid_token_is_mapped_and_cached() {
    let (ks, svc) = fake_and_service(|_| {}).await;
    script_alice(&ks);
    let t = token("valid");
    let status = svc.token_review("v1", &t).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(status["user"]["username"], "alice");
    assert_eq!(status["user"]["uid"], "u-alice");
    assert_eq!(status["user"]["groups"], json!(["devs", "p-team-a"]));
    assert_eq!(
        status["user"]["extra"]["alpha.kubernetes.io/identity/roles"],
        json!(["member", "k8s-viewer"])
    );
    assert!(status.get("error").is_none(), "{status}");
    assert_eq!(svc.token_review("v1beta1", &t).await, status);
    assert_eq!(
        ks.count(Method::GET, VALIDATE),
        1,
        "the second review is a cache hit"
    );
    assert_eq!(ks.count(Method::GET, GROUPS), 1);
}

#[tokio::test]
async fn keystone_server_errors_are_error_answers_that_are_not_cached() {
    for code in [500, 502, 503] {
        let (ks, svc) = fake_and_service(|_| {}).await;
        ks.on(
            Method::GET,
            VALIDATE,
            vec![Answer::error(code, "Service Unavailable")],
        );
        let t = token(&format!("e{code}"));
        for round in 1..=2 {
            let status = svc.token_review("v1", &t).await;
            assert_eq!(status["authenticated"], false, "{code}: {status}");
            assert!(status.get("user").is_none(), "{status}");
            let error = status["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("Keystone unavailable") && error.contains(&format!("HTTP {code}")),
                "{code}: {status}"
            );
            // Not cached: every review asks Keystone again.
            assert_eq!(ks.count(Method::GET, VALIDATE), round, "{code}");
        }
        assert_eq!(
            svc.metric(r#"k8s_keystone_auth_reviews_total{kind="TokenReview",result="error"}"#),
            2
        );
        assert_eq!(
            svc.metric(
                r#"k8s_keystone_auth_keystone_requests_total{call="validate token",outcome="5xx"}"#
            ),
            2
        );
        // Keystone answering 5xx is not ready: /readyz probes, gets 5xx too, and says so.
        ks.on(Method::GET, "/v3", vec![Answer::error(code, "down")]);
        let (ready, body, _) = svc
            .send(warp::test::request().method("GET").path("/readyz"))
            .await;
        assert_eq!(ready, 503, "{code}: {body}");
    }
}

#[tokio::test]
async fn keystone_refusals_are_negative_answers_that_are_cached() {
    for code in [401, 404] {
        let (ks, svc) = fake_and_service(|_| {}).await;
        ks.on(
            Method::GET,
            VALIDATE,
            vec![Answer::error(code, "Could not find token")],
        );
        let t = token(&format!("r{code}"));
        for _ in 0..3 {
            assert_eq!(
                svc.token_review("v1", &t).await,
                json!({"authenticated": false}),
                "{code}"
            );
        }
        assert_eq!(
            ks.count(Method::GET, VALIDATE),
            1,
            "{code}: cached negative"
        );
        assert_eq!(
            svc.metric(
                r#"k8s_keystone_auth_reviews_total{kind="TokenReview",result="unauthenticated"}"#
            ),
            3
        );
        // A refusal is an answer: ready without a probe.
        let (ready, _, _) = svc
            .send(warp::test::request().method("GET").path("/readyz"))
            .await;
        assert_eq!(ready, 200);
        assert_eq!(ks.count(Method::GET, "/v3"), 0);
    }
}

#[tokio::test]
async fn a_hanging_keystone_gives_an_error_answer_within_the_timeout() {
    let (ks, svc) = fake_and_service(|s| s.timeout = Duration::from_millis(500)).await;
    ks.on(Method::GET, VALIDATE, vec![Answer::hang()]);
    let started = Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        svc.token_review("v1", &token("hang")),
    )
    .await
    .expect("the review must be bounded by the Keystone timeout");
    let took = started.elapsed();
    assert_eq!(status["authenticated"], false);
    assert!(
        status["error"]
            .as_str()
            .unwrap_or_default()
            .contains("did not answer within 500ms"),
        "{status}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Groups hanging after a valid validation: bounded the same way, and an error.
    script_alice(&ks);
    ks.on(Method::GET, GROUPS, vec![Answer::hang()]);
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        svc.token_review("v1", &token("hang-groups")),
    )
    .await
    .unwrap();
    assert!(status["error"].is_string(), "{status}");
}

#[tokio::test]
async fn malformed_json_from_keystone_is_an_error_answer_not_a_panic() {
    let (ks, svc) = fake_and_service(|_| {}).await;
    ks.on(
        Method::GET,
        VALIDATE,
        vec![Answer::raw(200, "{\"token\": {\"user\": ")],
    );
    let t = token("json");
    for round in 1..=2 {
        let status = svc.token_review("v1", &t).await;
        assert_eq!(status["authenticated"], false);
        assert!(
            status["error"]
                .as_str()
                .unwrap_or_default()
                .contains("unexpected answer from Keystone"),
            "{status}"
        );
        assert_eq!(ks.count(Method::GET, VALIDATE), round, "not cached");
    }
    // The service still answers.
    script_alice(&ks);
    assert_eq!(svc.token_review("v1", &t).await["authenticated"], true);
}

#[tokio::test]
async fn groups_failing_is_an_error_groups_refused_is_a_user_without_groups() {
    let (ks, svc) = fake_and_service(|_| {}).await;
    script_alice(&ks);
    ks.on(Method::GET, GROUPS, vec![Answer::error(503, "down")]);
    let status = svc.token_review("v1", &token("g503")).await;
    assert_eq!(status["authenticated"], false);
    assert!(status["error"].is_string(), "{status}");
    ks.on(Method::GET, GROUPS, vec![Answer::error(403, "forbidden")]);
    let status = svc.token_review("v1", &token("g403")).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(status["user"]["groups"], json!(["p-team-a"]));
}

#[tokio::test]
async fn unscoped_and_foreign_service_tokens_are_refused_with_a_reason() {
    let (ks, svc) = fake_and_service(|_| {}).await;
    let mut unscoped = alice_token();
    unscoped["token"].as_object_mut().unwrap().remove("project");
    ks.on(Method::GET, VALIDATE, vec![Answer::json(200, unscoped)]);
    let t = token("unscoped");
    assert_eq!(
        svc.token_review("v1", &t).await,
        json!({"authenticated": false})
    );
    let mut other_service = alice_token();
    other_service["token"]["application_credential"] = json!({"id": "ac1", "name": "n",
        "restricted": true, "access_rules": [{"service": "compute", "method": "GET", "path": "/servers"}]});
    ks.on(
        Method::GET,
        VALIDATE,
        vec![Answer::json(200, other_service)],
    );
    assert_eq!(
        svc.token_review("v1", &token("compute")).await,
        json!({"authenticated": false})
    );
    // Neither asked for groups.
    assert_eq!(ks.count(Method::GET, GROUPS), 0);
}

#[tokio::test]
async fn a_cached_valid_token_is_served_stale_while_keystone_fails_when_enabled() {
    let (ks, svc) = fake_and_service(|s| {
        s.ttl = Duration::ZERO; // every review revalidates
        s.serve_stale = true;
    })
    .await;
    script_alice(&ks);
    let t = token("stale");
    assert_eq!(svc.token_review("v1", &t).await["authenticated"], true);
    ks.on(Method::GET, VALIDATE, vec![Answer::error(503, "down")]);
    let status = svc.token_review("v1", &t).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        ks.count(Method::GET, VALIDATE),
        2,
        "Keystone was asked again"
    );
    assert_eq!(
        svc.metric(r#"k8s_keystone_auth_token_cache_requests_total{result="stale"}"#),
        1
    );
    // A token never seen gets the error answer; a refusal is not overridden by staleness.
    assert!(svc.token_review("v1", &token("unseen")).await["error"].is_string());
    ks.on(Method::GET, VALIDATE, vec![Answer::error(404, "revoked")]);
    assert_eq!(
        svc.token_review("v1", &t).await,
        json!({"authenticated": false})
    );
}

#[tokio::test]
async fn with_a_service_identity_the_subject_is_never_the_caller() {
    let (ks, svc) = fake_and_service(|s| s.service_auth = Some(service_credential())).await;
    let mut issued = alice_token();
    issued["token"]["expires_at"] = json!(in_secs(3600));
    ks.on(
        Method::POST,
        VALIDATE,
        vec![
            Answer::json(201, issued.clone()).header("x-subject-token", "svc-1"),
            Answer::json(201, issued).header("x-subject-token", "svc-2"),
        ],
    );
    // The first service token has been revoked behind our back.
    ks.on(
        Method::GET,
        VALIDATE,
        vec![
            Answer::error(401, "revoked"),
            Answer::json(200, alice_token()),
        ],
    );
    ks.on(
        Method::GET,
        GROUPS,
        vec![Answer::json(200, groups(&["ops"], None))],
    );
    let t = token("subject");
    let status = svc.token_review("v1", &t).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(status["user"]["groups"], json!(["ops", "p-team-a"]));
    let seen = ks.seen();
    let gets: Vec<_> = seen
        .iter()
        .filter(|s| s.method == Method::GET)
        .map(|s| (s.path.as_str(), s.header("x-auth-token")))
        .collect();
    assert_eq!(
        gets,
        [
            (VALIDATE, Some("svc-1")),
            (VALIDATE, Some("svc-2")),
            (GROUPS, Some("svc-2"))
        ]
    );
    assert!(
        seen.iter()
            .all(|s| s.header("x-auth-token") != Some(t.as_str())),
        "the subject token was sent as a caller"
    );
}

#[tokio::test]
async fn concurrent_reviews_of_one_token_make_one_keystone_call() {
    let (ks, svc) = fake_and_service(|_| {}).await;
    script_alice(&ks);
    // Slow enough that all reviews are in flight at once.
    ks.on(
        Method::GET,
        VALIDATE,
        vec![Answer::json(200, alice_token()).delayed(Duration::from_millis(300))],
    );
    let t = token("flight");
    let reviews: Vec<_> = (0..8).map(|_| svc.token_review("v1", &t)).collect();
    let answers = futures_util::future::join_all(reviews).await;
    assert!(
        answers.iter().all(|a| a["authenticated"] == true),
        "{answers:?}"
    );
    assert_eq!(ks.count(Method::GET, VALIDATE), 1);
}

#[tokio::test]
async fn prefiltered_tokens_never_reach_keystone() {
    let (ks, svc) = fake_and_service(|_| {}).await;
    for t in [
        "",
        "has spaces in it",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln",
        &"a".repeat(5000),
    ] {
        assert_eq!(
            svc.token_review("v1", t).await,
            json!({"authenticated": false})
        );
    }
    assert!(ks.seen().is_empty(), "{:?}", ks.seen());
}
