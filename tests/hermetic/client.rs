//! `KeystoneClient` against the fake Keystone: the answers a real Keystone cannot be made to
//! give.

use std::time::{Duration, Instant};

use kk_core::keystone::{
    AuthRequest, ClientSettings, KeystoneClient, KeystoneError, normalize_url,
};
use kk_core::secret::Secret;
use serde_json::json;
use warp::http::Method;

use crate::fake::*;

pub fn client(
    ks: &FakeKeystone,
    timeout: Duration,
    service: Option<AuthRequest>,
) -> KeystoneClient {
    KeystoneClient::new(
        &ClientSettings {
            url: normalize_url(&ks.url()).unwrap(),
            ca_file: None,
            client_identity: None,
            timeout,
            connect_timeout: timeout,
            user_agent: "hermetic-test".into(),
            service_auth: service,
        },
        None,
    )
    .unwrap()
}

pub fn service_credential() -> AuthRequest {
    AuthRequest::ApplicationCredential {
        id: Some("svc-ac".into()),
        name: None,
        user: None,
        secret: Secret::new("svc-secret"),
    }
}

/// An issued token: 201 with `X-Subject-Token` and a body expiring in `secs`.
fn issued(token: &str, secs: u64) -> Answer {
    let mut body = alice_token();
    body["token"]["expires_at"] = json!(in_secs(secs));
    Answer::json(201, body).header("x-subject-token", token)
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_validation_sends_the_token_as_caller_and_subject_with_access_rules() {
    let ks = FakeKeystone::start().await;
    script_alice(&ks);
    let c = client(&ks, SECOND, None);
    let t = token("self");
    let body = c.validate_token(&Secret::new(&t)).await.unwrap();
    assert_eq!(body.user.name, "alice");
    let seen = ks.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let r = &seen[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", VALIDATE));
    assert_eq!(r.query, "nocatalog");
    assert_eq!(r.header("x-auth-token"), Some(t.as_str()));
    assert_eq!(r.header("x-subject-token"), Some(t.as_str()));
    assert_eq!(r.header("openstack-identity-access-rules"), Some("1.0"));
    assert_eq!(r.header("user-agent"), Some("hermetic-test"));
}

#[tokio::test]
async fn server_errors_are_unavailable_and_refusals_are_answers() {
    let ks = FakeKeystone::start().await;
    let c = client(&ks, SECOND, None);
    let subject = Secret::new(token("classify"));
    for status in [500, 502, 503, 504] {
        // A long message: what reaches the answer is bounded.
        ks.on(
            Method::GET,
            VALIDATE,
            vec![Answer::error(status, &"x".repeat(10_000))],
        );
        let e = c.validate_token(&subject).await.unwrap_err();
        assert!(e.is_unavailable(), "{status}: {e:?}");
        assert_eq!(e.outcome(), "server_error", "{status}");
        match &e {
            KeystoneError::Status {
                status: s, message, ..
            } => {
                assert_eq!(*s, status);
                assert!(message.len() <= 200, "{} bytes", message.len());
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    // A 5xx is not "Keystone answered" for readiness.
    assert!(c.last_answer().is_none());
    for status in [401, 404] {
        ks.on(
            Method::GET,
            VALIDATE,
            vec![Answer::error(
                status,
                "The request you have made requires authentication.",
            )],
        );
        let e = c.validate_token(&subject).await.unwrap_err();
        assert!(
            matches!(e, KeystoneError::InvalidToken { status: s } if s == status),
            "{status}: {e:?}"
        );
        assert!(!e.is_unavailable());
    }
    assert!(c.last_answer().is_some());
    // 403: the caller may not validate; that decides nothing about the token.
    ks.on(Method::GET, VALIDATE, vec![Answer::error(403, "forbidden")]);
    assert!(
        c.validate_token(&subject)
            .await
            .unwrap_err()
            .is_unavailable()
    );
}

#[tokio::test]
async fn an_unreachable_keystone_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = KeystoneClient::new(
        &ClientSettings {
            url: normalize_url(&format!("http://127.0.0.1:{port}")).unwrap(),
            ca_file: None,
            client_identity: None,
            timeout: SECOND,
            connect_timeout: SECOND,
            user_agent: "t".into(),
            service_auth: None,
        },
        None,
    )
    .unwrap();
    let e = c
        .validate_token(&Secret::new(token("closed")))
        .await
        .unwrap_err();
    assert!(matches!(e, KeystoneError::Unreachable { .. }), "{e:?}");
    assert!(e.is_unavailable());
}

#[tokio::test]
async fn a_hanging_keystone_is_bounded_by_the_timeout() {
    let ks = FakeKeystone::start().await;
    ks.on(Method::GET, VALIDATE, vec![Answer::hang()]);
    let timeout = Duration::from_millis(300);
    let c = client(&ks, timeout, None);
    let started = Instant::now();
    let e = tokio::time::timeout(
        Duration::from_secs(10),
        c.validate_token(&Secret::new(token("hang"))),
    )
    .await
    .expect("the client's own timeout must end the call")
    .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(e, KeystoneError::Timeout { timeout: t, .. } if t == timeout),
        "{e:?}"
    );
    assert!(e.is_unavailable());
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(ks.count(Method::GET, VALIDATE), 1);
    // A slow answer (headers late) is bounded the same way.
    ks.on(
        Method::GET,
        VALIDATE,
        vec![Answer::json(200, alice_token()).delayed(Duration::from_secs(5))],
    );
    let e = tokio::time::timeout(
        Duration::from_secs(10),
        c.validate_token(&Secret::new(token("slow"))),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(e, KeystoneError::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn a_refused_service_token_is_renewed_once_and_the_validation_retried() {
    let ks = FakeKeystone::start().await;
    ks.on(
        Method::POST,
        VALIDATE,
        vec![issued("svc-token-1", 3600), issued("svc-token-2", 3600)],
    );
    ks.on(
        Method::GET,
        VALIDATE,
        vec![
            Answer::error(401, "token revoked"),
            Answer::json(200, alice_token()),
        ],
    );
    let c = client(&ks, SECOND, Some(service_credential()));
    let subject = token("subject");
    let body = c.validate_token(&Secret::new(&subject)).await.unwrap();
    assert_eq!(body.user.id, "u-alice");
    let seen = ks.seen();
    let calls: Vec<(&str, Option<&str>)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.header("x-auth-token")))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", None),
            ("GET", Some("svc-token-1")),
            ("POST", None),
            ("GET", Some("svc-token-2")),
        ]
    );
    for s in seen.iter().filter(|s| s.method == Method::GET) {
        assert_eq!(s.header("x-subject-token"), Some(subject.as_str()));
    }
    // The service identity's credential is what is POSTed, and the subject never is.
    let post: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        post["auth"]["identity"]["application_credential"]["id"],
        "svc-ac"
    );
    assert!(!String::from_utf8_lossy(&seen[0].body).contains(&subject));
    // The renewed token is cached: the next validation issues nothing.
    c.validate_token(&Secret::new(token("other")))
        .await
        .unwrap();
    assert_eq!(ks.count(Method::POST, VALIDATE), 2);
    assert_eq!(ks.count(Method::GET, VALIDATE), 3);
}

#[tokio::test]
async fn a_service_token_refused_twice_is_an_error_not_a_refusal_of_the_subject() {
    let ks = FakeKeystone::start().await;
    ks.on(Method::POST, VALIDATE, vec![issued("svc", 3600)]);
    ks.on(Method::GET, VALIDATE, vec![Answer::error(401, "no")]);
    let c = client(&ks, SECOND, Some(service_credential()));
    let e = c
        .validate_token(&Secret::new(token("s")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            KeystoneError::Status {
                status: 401,
                call: "validate token",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_unavailable(), "{e:?}");
    // Bounded: two validations, two issues, no loop.
    assert_eq!(ks.count(Method::GET, VALIDATE), 2);
    assert_eq!(ks.count(Method::POST, VALIDATE), 2);
}

#[tokio::test]
async fn a_service_identity_keystone_refuses_is_an_error_and_no_subject_is_sent() {
    let ks = FakeKeystone::start().await;
    ks.on(
        Method::POST,
        VALIDATE,
        vec![Answer::error(401, "bad service secret")],
    );
    let c = client(&ks, SECOND, Some(service_credential()));
    let e = c
        .validate_token(&Secret::new(token("s")))
        .await
        .unwrap_err();
    // Not `Unauthorized`: that would be cached as a refusal of the user's token.
    assert!(
        matches!(
            e,
            KeystoneError::Status {
                status: 401,
                call: "service identity authentication",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_unavailable());
    assert_eq!(ks.count(Method::GET, VALIDATE), 0);
}

#[tokio::test]
async fn a_service_token_near_its_expiry_is_renewed_before_use() {
    let ks = FakeKeystone::start().await;
    // Expires in 60 s, inside the 120 s renewal margin: renewed for every validation.
    ks.on(
        Method::POST,
        VALIDATE,
        vec![issued("short-1", 60), issued("short-2", 60)],
    );
    ks.on(
        Method::GET,
        VALIDATE,
        vec![Answer::json(200, alice_token())],
    );
    let c = client(&ks, SECOND, Some(service_credential()));
    for tag in ["a", "b"] {
        c.validate_token(&Secret::new(token(tag))).await.unwrap();
    }
    let callers: Vec<_> = ks
        .seen()
        .iter()
        .filter(|s| s.method == Method::GET)
        .map(|s| s.header("x-auth-token").unwrap_or("").to_string())
        .collect();
    assert_eq!(callers, ["short-1", "short-2"]);
}

#[tokio::test]
async fn an_issued_token_without_its_header_or_body_is_a_protocol_error() {
    let ks = FakeKeystone::start().await;
    let c = client(&ks, SECOND, None);
    let cred = service_credential();
    ks.on(
        Method::POST,
        VALIDATE,
        vec![Answer::json(201, alice_token())],
    );
    let e = c.issue_token(&cred).await.unwrap_err();
    assert!(
        matches!(&e, KeystoneError::Protocol { detail, .. } if detail.contains("X-Subject-Token")),
        "{e:?}"
    );
    ks.on(
        Method::POST,
        VALIDATE,
        vec![Answer::raw(201, "{\"token\": 5}").header("x-subject-token", "t")],
    );
    assert!(matches!(
        c.issue_token(&cred).await.unwrap_err(),
        KeystoneError::Protocol { .. }
    ));
    // 401 and 404 refuse the credentials; 5xx does not.
    ks.on(
        Method::POST,
        VALIDATE,
        vec![Answer::error(404, "no such credential")],
    );
    let e = c.issue_token(&cred).await.unwrap_err();
    assert!(
        matches!(e, KeystoneError::Unauthorized { status: 404, .. }),
        "{e:?}"
    );
    ks.on(Method::POST, VALIDATE, vec![Answer::error(503, "down")]);
    assert!(c.issue_token(&cred).await.unwrap_err().is_unavailable());
}

#[tokio::test]
async fn group_pages_are_followed_with_the_same_caller() {
    let ks = FakeKeystone::start().await;
    let path = "/v3/users/u-alice/groups";
    let next = format!("{}/users/u-alice/groups?marker=g-b", ks.url());
    ks.on(
        Method::GET,
        path,
        vec![
            Answer::json(200, groups(&["a", "b"], Some(&next))),
            Answer::json(200, groups(&["c"], None)),
        ],
    );
    let c = client(&ks, SECOND, None);
    let t = token("pages");
    let names = c
        .user_groups(&Secret::new(&t), "u-alice", false)
        .await
        .unwrap();
    assert_eq!(names, ["a", "b", "c"]);
    let seen = ks.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].query, "");
    assert_eq!(seen[1].query, "marker=g-b");
    assert!(
        seen.iter()
            .all(|s| s.header("x-auth-token") == Some(t.as_str()))
    );
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_and_gets_no_token() {
    let ks = FakeKeystone::start().await;
    let elsewhere = FakeKeystone::start().await;
    script_alice(&elsewhere);
    let path = "/v3/users/u-alice/groups";
    let port = ks.addr.port();
    let c = client(&ks, SECOND, None);
    for foreign in [
        format!("{}/users/u-alice/groups?page=2", elsewhere.url()), // another port
        format!("https://127.0.0.1:{port}/v3/users/u-alice/groups?page=2"), // another scheme
        format!("http://localhost:{port}/v3/users/u-alice/groups?page=2"), // another host name
        "not a url".to_string(),
    ] {
        ks.on(
            Method::GET,
            path,
            vec![Answer::json(200, groups(&["a"], Some(&foreign)))],
        );
        let before = ks.count(Method::GET, path);
        let e = c
            .user_groups(&Secret::new(token("foreign")), "u-alice", false)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, KeystoneError::Protocol { .. }),
            "{foreign}: {e:?}"
        );
        assert!(e.is_unavailable());
        assert_eq!(ks.count(Method::GET, path), before + 1, "{foreign}");
    }
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
}

#[tokio::test]
async fn a_next_link_loop_is_bounded() {
    let ks = FakeKeystone::start().await;
    let path = "/v3/users/u-alice/groups";
    let again = format!("{}/users/u-alice/groups", ks.url());
    ks.on(
        Method::GET,
        path,
        vec![Answer::json(200, groups(&["a"], Some(&again)))],
    );
    let c = client(&ks, SECOND, None);
    let e = c
        .user_groups(&Secret::new(token("loop")), "u-alice", false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more than 50 pages"), "{e}");
    assert_eq!(ks.count(Method::GET, path), 50);
}

#[tokio::test]
async fn malformed_json_from_keystone_is_a_protocol_error() {
    let ks = FakeKeystone::start().await;
    let c = client(&ks, SECOND, None);
    let subject = Secret::new(token("json"));
    for body in [
        &b"{not json"[..],
        b"",
        b"[]",
        b"{\"token\": {}}",
        b"{\"token\": {\"user\": {\"id\": 5}, \"expires_at\": \"x\"}}",
        b"<html>502 Bad Gateway</html>",
        &[0xff, 0xfe, 0x00][..],
    ] {
        ks.on(Method::GET, VALIDATE, vec![Answer::raw(200, body.to_vec())]);
        let e = c.validate_token(&subject).await.unwrap_err();
        assert!(
            matches!(e, KeystoneError::Protocol { .. }),
            "{:?}: {e:?}",
            String::from_utf8_lossy(body)
        );
        assert!(e.is_unavailable());
    }
    let path = "/v3/users/u-alice/groups";
    for body in ["{\"groups\": 5}", "{\"groups\": [{\"id\": 1}]}", "nope"] {
        ks.on(Method::GET, path, vec![Answer::raw(200, body)]);
        let e = c.user_groups(&subject, "u-alice", false).await.unwrap_err();
        assert!(matches!(e, KeystoneError::Protocol { .. }), "{body}: {e:?}");
    }
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let ks = FakeKeystone::start().await;
    let c = client(&ks, Duration::from_secs(10), None);
    // A valid token envelope padded past the 4 MiB bound: refused although it would parse.
    let mut big = serde_json::to_vec(&alice_token()).unwrap();
    big.pop();
    big.extend(std::iter::repeat_n(b' ', 4 * 1024 * 1024));
    big.push(b'}');
    ks.on(Method::GET, VALIDATE, vec![Answer::raw(200, big)]);
    let e = c
        .validate_token(&Secret::new(token("big")))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, KeystoneError::Protocol { detail, .. } if detail.contains("larger than")),
        "{e:?}"
    );
    // The same envelope under the bound is accepted.
    let mut fits = serde_json::to_vec(&alice_token()).unwrap();
    fits.pop();
    fits.extend(std::iter::repeat_n(b' ', 3 * 1024 * 1024));
    fits.push(b'}');
    ks.on(Method::GET, VALIDATE, vec![Answer::raw(200, fits)]);
    c.validate_token(&Secret::new(token("fits"))).await.unwrap();
}

#[tokio::test]
async fn the_probe_reads_the_version_document_without_credentials() {
    let ks = FakeKeystone::start().await;
    ks.on(
        Method::GET,
        "/v3",
        vec![
            Answer::error(503, "down"),
            Answer::json(200, json!({"version": {"id": "v3.14"}})),
        ],
    );
    let c = client(&ks, SECOND, None);
    assert!(c.probe().await.unwrap_err().is_unavailable());
    c.probe().await.unwrap();
    assert!(ks.seen().iter().all(|s| s.header("x-auth-token").is_none()));
}
