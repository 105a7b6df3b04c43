//! TokenReview against the real Keystone: every kind of token, every field of the answer.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn sorted(v: &Value) -> Vec<String> {
    let mut s = strings(v);
    s.sort();
    s
}

/// Checks every field of an authenticated answer for alice@k8s on team-a.
fn assert_alice(status: &Value, roles: &[&str], keystone_groups: &[&str]) {
    assert_eq!(status["authenticated"], true, "{status}");
    assert!(status.get("error").is_none(), "{status}");
    let user = &status["user"];
    assert_eq!(user["username"], "alice");
    assert_eq!(user["uid"], env("KS_ALICE_ID"));
    let groups = strings(&user["groups"]);
    let (last, rest) = groups.split_last().unwrap();
    assert_eq!(
        *last,
        env("KS_PROJECT_ID"),
        "the project id comes last, as in the Go reference"
    );
    let mut rest = rest.to_vec();
    rest.sort();
    assert_eq!(rest, keystone_groups);
    let extra = user["extra"].as_object().unwrap();
    assert_eq!(
        extra.len(),
        5,
        "exactly the five keys of the reference: {extra:?}"
    );
    assert_eq!(
        strings(&extra["alpha.kubernetes.io/identity/project/id"]),
        [env("KS_PROJECT_ID")]
    );
    assert_eq!(
        strings(&extra["alpha.kubernetes.io/identity/project/name"]),
        ["team-a"]
    );
    assert_eq!(
        strings(&extra["alpha.kubernetes.io/identity/user/domain/id"]),
        [env("KS_DOMAIN_ID")]
    );
    assert_eq!(
        strings(&extra["alpha.kubernetes.io/identity/user/domain/name"]),
        ["k8s"]
    );
    let mut want: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(sorted(&extra["alpha.kubernetes.io/identity/roles"]), want);
}

const ALL_ROLES: [&str; 4] = ["k8s-editor", "k8s-viewer", "member", "reader"];
const ACCESS_RULES: &str = "alpha.kubernetes.io/identity/access-rules";

/// Checks that the answer carries kubectl-rules' one rule, and removes it (for [`assert_alice`]).
fn without_rules(mut status: Value) -> Value {
    let extra = status["user"]["extra"].as_object_mut().unwrap();
    let rules = extra.remove(ACCESS_RULES);
    assert_eq!(
        rules,
        Some(json!(["GET /api/v1/namespaces/*/pods"])),
        "{status}"
    );
    status
}
const GROUPS: [&str; 2] = ["k8s-admins", "team-a-devs"];

#[tokio::test]
async fn password_token_in_v1_and_v1beta1() {
    let _ks = KEYSTONE.read().await;
    let svc = Service::start(Options::default()).await;
    let token = Keystone::get().alice().await;
    assert_alice(&svc.token_review("v1", &token).await, &ALL_ROLES, &GROUPS);
    assert_alice(
        &svc.token_review("v1beta1", &token).await,
        &ALL_ROLES,
        &GROUPS,
    );
}

#[tokio::test]
async fn application_credential_by_id_and_by_name() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let svc = Service::start(Options::default()).await;
    let by_id = ks
        .app_cred_token(&env("KS_AC_KUBECTL_ID"), &env("KS_AC_KUBECTL_SECRET"))
        .await
        .unwrap();
    assert_alice(&svc.token_review("v1", &by_id).await, &ALL_ROLES, &GROUPS);
    let (by_name, _) = ks
        .auth(json!({"auth":{"identity":{"methods":["application_credential"],"application_credential":{
            "name":"kubectl","user":{"id": env("KS_ALICE_ID")},"secret": env("KS_AC_KUBECTL_SECRET")}}}}))
        .await
        .unwrap();
    assert_alice(&svc.token_review("v1", &by_name).await, &ALL_ROLES, &GROUPS);
    let (by_user_name, _) = ks
        .auth(json!({"auth":{"identity":{"methods":["application_credential"],"application_credential":{
            "name":"kubectl","user":{"name":"alice","domain":{"name":"k8s"}},"secret": env("KS_AC_KUBECTL_SECRET")}}}}))
        .await
        .unwrap();
    assert_alice(
        &svc.token_review("v1beta1", &by_user_name).await,
        &ALL_ROLES,
        &GROUPS,
    );
}

#[tokio::test]
async fn role_restricted_credential_carries_only_its_roles() {
    let _ks = KEYSTONE.read().await;
    let svc = Service::start(Options::default()).await;
    let t = Keystone::get()
        .app_cred_token(&env("KS_AC_KUBECTL_RO_ID"), &env("KS_AC_KUBECTL_RO_SECRET"))
        .await
        .unwrap();
    assert_alice(&svc.token_review("v1", &t).await, &["k8s-viewer"], &GROUPS);
}

#[tokio::test]
async fn access_rules_must_name_the_kubernetes_service_type() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let svc = Service::start(Options::default()).await;
    // Rules on service type k8s: accepted, and the answer carries them for authorization.
    // Such a token may not list groups (and there is no service identity), so it has none.
    let k8s = ks
        .app_cred_token(
            &env("KS_AC_KUBECTL_RULES_ID"),
            &env("KS_AC_KUBECTL_RULES_SECRET"),
        )
        .await
        .unwrap();
    assert_alice(
        &without_rules(svc.token_review("v1", &k8s).await),
        &ALL_ROLES,
        &[],
    );
    // Rules on compute only: refused, and as a definite answer (no error).
    let compute = ks
        .app_cred_token(
            &env("KS_AC_KUBECTL_RULES_OTHER_ID"),
            &env("KS_AC_KUBECTL_RULES_OTHER_SECRET"),
        )
        .await
        .unwrap();
    let status = svc.token_review("v1", &compute).await;
    assert_eq!(status, json!({"authenticated": false}));
    svc.wait_log("access rules do not allow service type \"k8s\"")
        .await;
    // The service type is configurable.
    let svc2 = Service::start(Options {
        toml: "service_type = \"compute\"\n".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        svc2.token_review("v1", &compute).await["authenticated"],
        true
    );
    assert_eq!(svc2.token_review("v1", &k8s).await["authenticated"], false);
}

fn service_identity(user: &str, password: &str, project: &str) -> String {
    format!(
        "[keystone.service_identity]\nuser_name = \"{user}\"\nuser_domain_id = \"default\"\npassword = \"{password}\"\nproject_name = \"{project}\"\nproject_domain_id = \"default\"\n"
    )
}

#[tokio::test]
async fn access_rule_credentials_get_groups_only_through_a_service_identity() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let rules_token = || async {
        ks.app_cred_token(
            &env("KS_AC_KUBECTL_RULES_ID"),
            &env("KS_AC_KUBECTL_RULES_SECRET"),
        )
        .await
        .unwrap()
    };
    let skipped = "such tokens get no Keystone groups";
    // Without a service identity: no groups, said once (info), and only for such tokens.
    let svc = Service::start(Options::default()).await;
    let alice = ks.alice().await;
    assert_alice(&svc.token_review("v1", &alice).await, &ALL_ROLES, &GROUPS);
    assert!(!svc.log_text().await.contains(skipped));
    for _ in 0..2 {
        let t = rules_token().await;
        assert_alice(
            &without_rules(svc.token_review("v1", &t).await),
            &ALL_ROLES,
            &[],
        );
    }
    let log = svc.log_text().await;
    assert_eq!(log.matches(skipped).count(), 1, "{log}");
    assert!(
        log.contains("no [keystone.service_identity] is configured"),
        "{log}"
    );
    // A service identity that may list users' groups (here Keystone's admin): the groups come.
    let admin = Service::start(Options {
        toml: service_identity("admin", &env("KS_ADMIN_PASSWORD"), "admin"),
        ..Default::default()
    })
    .await;
    let t = rules_token().await;
    assert_alice(
        &without_rules(admin.token_review("v1", &t).await),
        &ALL_ROLES,
        &GROUPS,
    );
    assert!(!admin.log_text().await.contains(skipped));
    // A service identity Keystone does not let list groups (k8s-webhook has only `service`):
    // no groups, and a warning that says why.
    let hook = Service::start(Options {
        toml: service_identity(
            &env("KS_WEBHOOK_USER"),
            &env("KS_WEBHOOK_PASSWORD"),
            &env("KS_WEBHOOK_PROJECT"),
        ),
        ..Default::default()
    })
    .await;
    let t = rules_token().await;
    assert_alice(
        &without_rules(hook.token_review("v1", &t).await),
        &ALL_ROLES,
        &[],
    );
    let log = hook.log_text().await;
    assert!(
        log.contains("the service identity may not list users' groups"),
        "{log}"
    );
    assert_eq!(log.matches(skipped).count(), 1, "{log}");
    for log in [
        svc.log_text().await,
        admin.log_text().await,
        hook.log_text().await,
    ] {
        assert!(
            !log.contains(&env("KS_ADMIN_PASSWORD")) && !log.contains(&env("KS_WEBHOOK_PASSWORD"))
        );
    }
}

#[tokio::test]
async fn unscoped_token_is_refused_with_a_reason() {
    let _ks = KEYSTONE.read().await;
    let svc = Service::start(Options::default()).await;
    let bob = Keystone::get()
        .password_token("bob", "k8s", &env("KS_BOB_PASSWORD"), None)
        .await;
    assert_eq!(
        svc.token_review("v1", &bob).await,
        json!({"authenticated": false})
    );
    let log = svc.log_text().await;
    assert!(log.contains("no project scope"), "{log}");
}

#[tokio::test]
async fn revoked_token_is_refused() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let svc = Service::start(Options::default()).await;
    let t = ks.alice().await;
    let admin = ks.admin().await;
    ks.revoke(&admin, &t).await;
    assert_eq!(
        svc.token_review("v1", &t).await,
        json!({"authenticated": false})
    );
}

#[tokio::test]
async fn deleted_credential_is_refused() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let svc = Service::start(Options::default()).await;
    let name = format!("deleted-{}", free_port());
    let (id, secret) = ks.create_alice_app_cred(&name, json!({})).await;
    let t = ks.app_cred_token(&id, &secret).await.unwrap();
    ks.delete_alice_app_cred(&id).await;
    assert_eq!(
        svc.token_review("v1", &t).await,
        json!({"authenticated": false})
    );
}

#[tokio::test]
async fn disabled_user_is_refused() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let admin = ks.admin().await;
    let name = format!("carol-{}", free_port());
    let uid = ks.create_member(&admin, &name, "CarolPass123").await;
    let t = ks
        .password_token(&name, "k8s", "CarolPass123", Some(("team-a", "k8s")))
        .await;
    let svc = Service::start(Options {
        toml: "[cache]\nttl = \"0s\"\n".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        svc.token_review("v1", &t).await["user"]["username"],
        name.as_str()
    );
    let (s, _) = ks
        .call(
            reqwest::Method::PATCH,
            &format!("/users/{uid}"),
            &admin,
            Some(json!({"user":{"enabled":false}})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        svc.token_review("v1", &t).await,
        json!({"authenticated": false})
    );
    let (s, _) = ks
        .call(
            reqwest::Method::DELETE,
            &format!("/users/{uid}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn expired_credential_and_cache_bounded_by_expiry() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    // Keystone caps the token's expiry at the credential's; the cache must not outlive it even
    // with a TTL far longer.
    let svc = Service::start(Options {
        toml: "[cache]\nttl = \"1h\"\n".into(),
        ..Default::default()
    })
    .await;
    let expires = std::time::SystemTime::now() + Duration::from_secs(4);
    let name = format!("expiring-{}", free_port());
    let stamp = kk_core::timefmt::format_rfc3339(expires);
    let (id, secret) = ks
        .create_alice_app_cred(&name, json!({"expires_at": stamp}))
        .await;
    let t = ks.app_cred_token(&id, &secret).await.unwrap();
    assert_eq!(svc.token_review("v1", &t).await["authenticated"], true);
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::time::SystemTime::now() < expires + Duration::from_secs(1)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        svc.token_review("v1", &t).await,
        json!({"authenticated": false}),
        "cached past the token's expiry"
    );
    assert_eq!(
        ks.app_cred_token(&id, &secret).await,
        Err(401),
        "Keystone refuses the expired credential"
    );
    ks.delete_alice_app_cred(&id).await;
}

#[tokio::test]
async fn concurrent_tokens_of_different_users_never_mix() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let svc = std::sync::Arc::new(
        Service::start(Options {
            toml: "[cache]\nttl = \"0s\"\n".into(),
            ..Default::default()
        })
        .await,
    );
    let alice = ks.alice().await;
    let bob = ks
        .password_token(
            "bob",
            "k8s",
            &env("KS_BOB_PASSWORD"),
            Some(("team-a", "k8s")),
        )
        .await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (svc, token, want) = if i % 2 == 0 {
            (svc.clone(), alice.clone(), "alice")
        } else {
            (svc.clone(), bob.clone(), "bob")
        };
        tasks.push(tokio::spawn(async move {
            (want, svc.token_review("v1", &token).await)
        }));
    }
    for t in tasks {
        let (want, status) = t.await.unwrap();
        assert_eq!(status["user"]["username"], want, "{status}");
    }
}

#[tokio::test]
async fn username_format_keeps_domains_apart() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let svc = Service::start(Options {
        args: vec!["--username-format".into(), "name@domain".into()],
        ..Default::default()
    })
    .await;
    let k8s_alice = ks.alice().await;
    let default_alice = ks
        .password_token(
            "alice",
            "Default",
            &env("KS_ALICE_PASSWORD"),
            Some(("other", "Default")),
        )
        .await;
    let a = svc.token_review("v1", &k8s_alice).await;
    let b = svc.token_review("v1", &default_alice).await;
    assert_eq!(a["user"]["username"], "alice@k8s");
    assert_eq!(b["user"]["username"], "alice@Default");
    assert_ne!(a["user"]["uid"], b["user"]["uid"]);
    let ids = Service::start(Options {
        toml: "[authentication]\nusername_format = \"id\"\n".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        ids.token_review("v1", &k8s_alice).await["user"]["username"],
        env("KS_ALICE_ID")
    );
}

#[tokio::test]
async fn service_identity_validates_and_groups_fall_back_to_the_token() {
    let _ks = KEYSTONE.read().await;
    let toml = format!(
        "[keystone.service_identity]\nuser_name = \"{}\"\nuser_domain_id = \"default\"\npassword = \"{}\"\nproject_name = \"{}\"\nproject_domain_id = \"default\"\n",
        env("KS_WEBHOOK_USER"),
        env("KS_WEBHOOK_PASSWORD"),
        env("KS_WEBHOOK_PROJECT")
    );
    let svc = Service::start(Options {
        toml,
        ..Default::default()
    })
    .await;
    let t = Keystone::get().alice().await;
    assert_alice(&svc.token_review("v1", &t).await, &ALL_ROLES, &GROUPS);
    assert!(!svc.log_text().await.contains(&env("KS_WEBHOOK_PASSWORD")));
}

#[tokio::test]
async fn garbage_and_service_account_tokens_never_reach_keystone() {
    let _ks = KEYSTONE.write().await;
    let svc = Service::start(Options::default()).await;
    let before = Keystone::access_log_settled().await;
    // A ServiceAccount token as kube-apiserver issues them (RS256 JWT).
    let sa = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwia3ViZXJuZXRlcy5pby9zZXJ2aWNlYWNjb3VudC9uYW1lc3BhY2UiOiJkZWZhdWx0Iiwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50OmRlZmF1bHQ6ZGVmYXVsdCJ9.c2lnbmF0dXJl";
    for token in [sa, "", "not a token", "ümlaut", &"A".repeat(10_000)] {
        for version in ["v1", "v1beta1"] {
            assert_eq!(
                svc.token_review(version, token).await,
                json!({"authenticated": false}),
                "{token:.30}"
            );
        }
    }
    assert_eq!(
        Keystone::access_log_count_settled(before, "/v3/auth/tokens").await,
        0,
        "prefiltered tokens must not reach Keystone"
    );
    assert_eq!(
        svc.metric("k8s_keystone_auth_tokens_prefiltered_total{reason=\"foreign_jwt\"}")
            .await,
        2
    );
    // A token that looks like a Fernet token but is not: one Keystone call, then cached.
    let fake = "gAAAAABpKwZZnotarealtokenbutlooksalotlikeonexxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    assert_eq!(
        svc.token_review("v1", fake).await,
        json!({"authenticated": false})
    );
    assert_eq!(
        svc.token_review("v1", fake).await,
        json!({"authenticated": false})
    );
    assert_eq!(
        Keystone::access_log_count_settled(before, VALIDATE).await,
        1,
        "negative answers are cached"
    );
}

#[tokio::test]
async fn cache_hits_and_single_flight_are_visible_in_keystones_log() {
    let _ks = KEYSTONE.write().await;
    let ks = Keystone::get();
    let svc = std::sync::Arc::new(Service::start(Options::default()).await);
    let token = ks.alice().await;
    let before = Keystone::access_log_settled().await;
    // 8 concurrent reviews of one new token: one validation.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (svc, token) = (svc.clone(), token.clone());
        tasks.push(tokio::spawn(
            async move { svc.token_review("v1", &token).await },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap()["authenticated"], true);
    }
    assert_eq!(
        Keystone::access_log_count_settled(before, VALIDATE).await,
        1,
        "single flight"
    );
    // Then 20 more: all from the cache.
    for _ in 0..20 {
        assert_eq!(
            svc.token_review("v1beta1", &token).await["authenticated"],
            true
        );
    }
    assert_eq!(
        Keystone::access_log_count_settled(before, VALIDATE).await,
        1,
        "cache hits"
    );
    assert_eq!(
        Keystone::access_log_count_settled(before, "/groups").await,
        1
    );
    // Of the 7 concurrent reviews that did not validate, those that arrived after the first
    // finished count as hits, the others as coalesced: the split depends on timing.
    let hits = svc
        .metric("k8s_keystone_auth_token_cache_requests_total{result=\"hit\"}")
        .await;
    let coalesced = svc
        .metric("k8s_keystone_auth_token_cache_requests_total{result=\"coalesced\"}")
        .await;
    assert_eq!(hits + coalesced, 27, "hits {hits}, coalesced {coalesced}");
    assert!(hits >= 20, "hits {hits}");
    assert_eq!(
        svc.metric(
            "k8s_keystone_auth_keystone_requests_total{call=\"validate token\",outcome=\"ok\"}"
        )
        .await,
        1
    );
}

/// A valid answer is cached for the TTL, and only for it: the cached "yes" stands for a deleted
/// credential within the TTL, Keystone's "no" arrives after it. Deleting the credential may
/// take longer than the TTL (SQLite "database is locked" retries): then the "within the TTL"
/// half could not be checked, and the round is repeated with a new credential.
#[tokio::test]
async fn positive_answers_lag_keystone_by_at_most_the_ttl() {
    const TTL: Duration = Duration::from_secs(2);
    const HIT: &str = "k8s_keystone_auth_token_cache_requests_total{result=\"hit\"}";
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let svc = Service::start(Options {
        toml: "[cache]\nttl = \"2s\"\n".into(),
        ..Default::default()
    })
    .await;
    let mut rounds = 0;
    let (t, cached_by) = loop {
        rounds += 1;
        assert!(
            rounds <= 5,
            "deleting a credential always took longer than the TTL"
        );
        let name = format!("lag-{}", free_port());
        let (id, secret) = ks.create_alice_app_cred(&name, json!({})).await;
        let t = ks.app_cred_token(&id, &secret).await.unwrap();
        // The entry is fresh from when the service stored it, after `sent` and before
        // `answered`: until sent + TTL at least, and at most until answered + TTL.
        let sent = Instant::now();
        assert_eq!(svc.token_review("v1", &t).await["authenticated"], true);
        let answered = Instant::now();
        ks.delete_alice_app_cred(&id).await;
        // Keep a margin for the review's own travel time.
        if sent.elapsed() + Duration::from_millis(300) >= TTL {
            eprintln!(
                "round {rounds}: the deletion took {:?}, past the TTL; again",
                answered.elapsed()
            );
            continue;
        }
        // Within the TTL the cached answer stands, from the cache.
        let hits = svc.metric(HIT).await;
        assert_eq!(svc.token_review("v1", &t).await["authenticated"], true);
        assert_eq!(svc.metric(HIT).await, hits + 1, "answered from the cache");
        break (t, answered);
    };
    // After the TTL, Keystone's "no" arrives.
    tokio::time::sleep_until((cached_by + TTL + Duration::from_millis(200)).into()).await;
    assert_eq!(
        svc.token_review("v1", &t).await,
        json!({"authenticated": false})
    );
}

/// A TCP listener that accepts and never answers: a Keystone that hangs.
#[tokio::test]
async fn a_hanging_keystone_gives_a_bounded_error_answer() {
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v3", hole.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: the test makes a handful of connections.
        for _ in 0..16 {
            match hole.accept().await {
                Ok((s, _)) => held.push(s),
                Err(_) => break,
            }
        }
    });
    let svc = Service::start(Options {
        keystone_url: Some(url),
        toml: "timeout = \"1s\"\n".into(),
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let status = svc
        .token_review(
            "v1",
            "gAAAAABpKwZZhangingkeystonetokenxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status["authenticated"], false);
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1s"),
        "{status}"
    );
    assert!(took < Duration::from_secs(3), "answer took {took:?}");
    let (code, body) = svc.get("/readyz").await;
    assert_eq!(code, 503, "{body}");
    holder.abort();
}

/// Stops the real Keystone, checks the bounded error answer and the optional stale answers,
/// then starts it again and checks recovery.
#[tokio::test]
async fn keystone_stopped_then_started_again() {
    let _ks = KEYSTONE.write().await;
    let ks = Keystone::get();
    let plain = Service::start(Options::default()).await;
    let stale = Service::start(Options {
        toml: "[cache]\nttl = \"1s\"\nserve_stale_while_keystone_down = true\n".into(),
        ..Default::default()
    })
    .await;
    let token = ks.alice().await;
    let other = ks.alice().await;
    assert_eq!(
        stale.token_review("v1", &token).await["authenticated"],
        true
    );
    tokio::time::sleep(Duration::from_millis(1100)).await; // the stale service's entry is now stale

    let down = tokio::process::Command::new("bash")
        .arg(keystone_script("down.sh"))
        .status()
        .await
        .unwrap();
    assert!(down.success());
    {
        // Whatever happens below, Keystone is started again for the other tests.
        let _restart = RestartKeystone;
        let started = Instant::now();
        let status = plain.token_review("v1", &other).await;
        assert_eq!(status["authenticated"], false);
        let error = status["error"].as_str().unwrap();
        assert!(
            error.contains("Keystone unavailable") && error.contains("cannot reach Keystone"),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "bounded by the Keystone timeout"
        );
        let (code, body) = plain.get("/readyz").await;
        assert_eq!(code, 503, "{body}");
        // The opt-in: a cached valid token keeps working while Keystone is down...
        let s = stale.token_review("v1", &token).await;
        assert_eq!(s["authenticated"], true, "{s}");
        // ...but an unknown one gets the error answer.
        assert!(stale.token_review("v1", &other).await["error"].is_string());
        assert_eq!(
            stale
                .metric("k8s_keystone_auth_token_cache_requests_total{result=\"stale\"}")
                .await,
            1
        );
        // Each of its 3 reviews is counted once: the stale answer is not also a miss.
        let mut counted = Vec::new();
        for result in ["hit", "miss", "coalesced", "stale"] {
            let needle =
                format!("k8s_keystone_auth_token_cache_requests_total{{result=\"{result}\"}}");
            counted.push((result, stale.metric(&needle).await));
        }
        assert_eq!(
            counted,
            [("hit", 0), ("miss", 2), ("coalesced", 0), ("stale", 1)]
        );
    }
    // Errors were not cached: the same token now validates.
    assert_alice(&plain.token_review("v1", &other).await, &ALL_ROLES, &GROUPS);
    assert_eq!(plain.get("/readyz").await.0, 200);
}

/// The sync config file is watched like the policy file: a valid version's role mappings apply
/// to the next TokenReview, an invalid or missing one is logged, counted and ignored.
#[tokio::test]
async fn sync_config_file_reloads_good_versions_and_ignores_bad_ones() {
    let _ks = KEYSTONE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.yaml");
    let mapping = |group: &str| {
        format!("role-mappings:\n  - keystone-role: member\n    groups: [\"{group}\"]\n")
    };
    write_atomic(&path, &mapping("kk-reload-first"));
    let svc = Service::start(Options {
        args: vec![format!("--sync-config-file={}", path.display())],
        log_level: "info",
        ..Default::default()
    })
    .await;
    let ok = "k8s_keystone_auth_sync_config_reloads_total{source=\"file\",result=\"success\"}";
    let failed = "k8s_keystone_auth_sync_config_reloads_total{source=\"file\",result=\"failure\"}";
    assert_eq!(svc.metric(ok).await, 1, "the start-up load");
    let alice = Keystone::get().alice().await;
    let groups = async || -> Vec<String> {
        let status = svc.token_review("v1", &alice).await;
        assert_eq!(status["authenticated"], true, "{status}");
        serde_json::from_value(status["user"]["groups"].clone()).unwrap()
    };
    assert!(groups().await.contains(&"kk-reload-first".to_string()));
    let until = async |metric: &str, want: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while svc.metric(metric).await < want {
            assert!(Instant::now() < deadline, "{metric} never reached {want}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // A valid version: its mappings answer the next review (the token cache keeps the
    // identity, not the mapped groups).
    write_atomic(&path, &mapping("kk-reload-second"));
    until(ok, 2).await;
    let now = groups().await;
    assert!(now.contains(&"kk-reload-second".to_string()), "{now:?}");
    assert!(!now.contains(&"kk-reload-first".to_string()), "{now:?}");
    // Invalid (a data type Go does not know), then missing: counted, the mappings stay.
    write_atomic(&path, "data-types-to-sync: [flavors]\n");
    until(failed, 1).await;
    assert!(groups().await.contains(&"kk-reload-second".to_string()));
    std::fs::remove_file(&path).unwrap();
    until(failed, 2).await;
    assert!(groups().await.contains(&"kk-reload-second".to_string()));
    let log = svc
        .wait_log("sync config file rejected; keeping the sync config in force")
        .await;
    assert!(log.contains(&path.display().to_string()), "{log}");
    assert_eq!(svc.metric(ok).await, 2);
}
