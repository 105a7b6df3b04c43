//! SubjectAccessReview: the user from a real TokenReview, evaluated against policy files of
//! both formats, in v1 and v1beta1; policy reloading.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

const POLICY: &str = r#"[
  {
    "users": {"roles": ["k8s-viewer"], "projects": ["team-a"]},
    "resource_permissions": {"*/pods": ["get", "list", "watch"], "!kube-system/['configmaps', 'services']": ["get"]},
    "nonresource_permissions": {"/version": ["get"]}
  },
  {
    "resource": {"verbs": ["create"], "resources": ["pods/exec"], "version": "*", "namespace": "utility"},
    "match": [{"type": "role", "values": ["k8s-editor"]}, {"type": "group", "values": ["k8s-admins"]}]
  },
  {
    "nonresource": {"verbs": ["get"], "path": "/api/*"},
    "match": [{"type": "project", "values": ["team-a"]}]
  }
]"#;

async fn alice_user(svc: &Service) -> Value {
    let token = Keystone::get().alice().await;
    let status = svc.token_review("v1", &token).await;
    status["user"].clone()
}

async fn decide(svc: &Service, version: &str, user: &Value, attrs: Value) -> Value {
    let (code, answer) = svc.post("/webhook", &sar(version, user, attrs)).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        answer["apiVersion"],
        format!("authorization.k8s.io/{version}")
    );
    assert_eq!(answer["kind"], "SubjectAccessReview");
    let status = answer["status"].clone();
    assert!(
        status.get("denied").is_none(),
        "never an explicit deny: RBAC still decides ({status})"
    );
    status
}

fn res(verb: &str, ns: &str, resource: &str, sub: &str) -> Value {
    json!({"resourceAttributes": {"verb": verb, "namespace": ns, "group": "", "version": "v1", "resource": resource, "subresource": sub, "name": "x"}})
}

fn nonres(verb: &str, path: &str) -> Value {
    json!({"nonResourceAttributes": {"verb": verb, "path": path}})
}

#[tokio::test]
async fn a_keystone_user_is_authorized_by_both_policy_formats_in_both_versions() {
    let _ks = KEYSTONE.read().await;
    let svc = Service::start(Options {
        policy: Some(POLICY.into()),
        ..Default::default()
    })
    .await;
    let user = alice_user(&svc).await;
    for v in ["v1", "v1beta1"] {
        let s = decide(&svc, v, &user, res("list", "default", "pods", "")).await;
        assert_eq!(s["allowed"], true, "{s}");
        assert!(
            s["reason"].as_str().unwrap().contains("rule 0"),
            "the reason names the rule: {s}"
        );
        // v2 ignores sub-resources: a grant on pods covers pods/log.
        assert_eq!(
            decide(&svc, v, &user, res("get", "default", "pods", "log")).await["allowed"],
            true
        );
        // Not granted: RBAC decides (allowed false, no denied).
        assert_eq!(
            decide(&svc, v, &user, res("delete", "default", "pods", "")).await["allowed"],
            false
        );
        assert_eq!(
            decide(&svc, v, &user, res("get", "kube-system", "configmaps", "")).await["allowed"],
            false
        );
        assert_eq!(
            decide(&svc, v, &user, res("get", "default", "configmaps", "")).await["allowed"],
            true
        );
        // Cluster-scoped requests only match the `*` namespace entries.
        assert_eq!(
            decide(&svc, v, &user, res("get", "", "configmaps", "")).await["allowed"],
            false
        );
        // v1 rule: role AND group must match.
        let exec = decide(&svc, v, &user, res("create", "utility", "pods", "exec")).await;
        assert_eq!(exec["allowed"], true);
        assert!(
            exec["reason"].as_str().unwrap().contains("rule 1"),
            "{exec}"
        );
        assert_eq!(
            decide(&svc, v, &user, res("create", "other", "pods", "exec")).await["allowed"],
            false
        );
        // Non-resource paths: v2 exact, v1 trailing-* prefix.
        assert_eq!(
            decide(&svc, v, &user, nonres("get", "/version")).await["allowed"],
            true
        );
        assert_eq!(
            decide(&svc, v, &user, nonres("get", "/api/v1")).await["allowed"],
            true
        );
        assert_eq!(
            decide(&svc, v, &user, nonres("get", "/healthz")).await["allowed"],
            false
        );
    }
}

#[tokio::test]
async fn users_without_keystone_extra_and_other_projects_get_no_opinion() {
    let _ks = KEYSTONE.read().await;
    let svc = Service::start(Options {
        policy: Some(POLICY.into()),
        ..Default::default()
    })
    .await;
    let system = json!({"username": "system:kube-controller-manager", "uid": "", "groups": ["system:authenticated"], "extra": null});
    let mut body = sar("v1", &system, res("list", "default", "pods", ""));
    body["spec"].as_object_mut().unwrap().remove("extra");
    let (code, answer) = svc.post("/authorize", &body).await;
    assert_eq!(code, 200);
    assert_eq!(answer["status"]["allowed"], false);
    // A Keystone user of another project (alice@Default on project `other`).
    let t = Keystone::get()
        .password_token(
            "alice",
            "Default",
            &env("KS_ALICE_PASSWORD"),
            Some(("other", "Default")),
        )
        .await;
    let other = svc.token_review("v1", &t).await["user"].clone();
    assert_eq!(
        decide(&svc, "v1", &other, res("list", "default", "pods", "")).await["allowed"],
        false
    );
    assert_eq!(
        decide(&svc, "v1", &other, nonres("get", "/api")).await["allowed"],
        false
    );
}

#[tokio::test]
async fn no_policy_file_means_no_opinion() {
    let _ks = KEYSTONE.read().await;
    let svc = Service::start(Options::default()).await;
    let user = alice_user(&svc).await;
    assert_eq!(
        decide(&svc, "v1", &user, res("list", "default", "pods", "")).await["allowed"],
        false
    );
}

async fn wait_for(svc: &Service, user: &Value, attrs: &Value, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = decide(svc, "v1", user, attrs.clone()).await;
        if s["allowed"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "policy change not applied in time: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn policy_file_reloads_good_versions_and_ignores_bad_ones() {
    let _ks = KEYSTONE.read().await;
    let svc = Service::start(Options {
        policy: Some(POLICY.into()),
        ..Default::default()
    })
    .await;
    let user = alice_user(&svc).await;
    let path = svc.dir.path().join("policy.json");
    let deploy = res("create", "default", "deployments", "");
    assert_eq!(
        decide(&svc, "v1", &user, deploy.clone()).await["allowed"],
        false
    );
    // A valid new policy takes effect.
    write_atomic(
        &path,
        r#"[{"users": {"roles": ["member"], "projects": ["team-a"]}, "resource_permissions": {"default/deployments": ["create"]}}]"#,
    );
    wait_for(&svc, &user, &deploy, true).await;
    assert_eq!(
        decide(&svc, "v1", &user, res("list", "default", "pods", "")).await["allowed"],
        false,
        "old rules are gone"
    );
    assert_eq!(svc.metric("k8s_keystone_auth_policy_rules").await, 1);
    // An invalid one is logged, counted and ignored: the last good policy stays.
    let failures_before = svc
        .metric("k8s_keystone_auth_policy_reloads_total{source=\"file\",result=\"failure\"}")
        .await;
    write_atomic(
        &path,
        r#"[{"resource": {"verbs": ["get"], "resources": ["pods"]}}"#,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while svc
        .metric("k8s_keystone_auth_policy_reloads_total{source=\"file\",result=\"failure\"}")
        .await
        == failures_before
    {
        assert!(Instant::now() < deadline, "bad policy not noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        decide(&svc, "v1", &user, deploy.clone()).await["allowed"],
        true
    );
    svc.wait_log("policy file rejected").await;
    // A missing file is also a failure, never an empty policy: once the reload has been tried
    // (counted), the last good policy is still in force.
    let failures_before = svc
        .metric("k8s_keystone_auth_policy_reloads_total{source=\"file\",result=\"failure\"}")
        .await;
    std::fs::remove_file(&path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while svc
        .metric("k8s_keystone_auth_policy_reloads_total{source=\"file\",result=\"failure\"}")
        .await
        == failures_before
    {
        assert!(
            Instant::now() < deadline,
            "missing policy file not noticed; log:\n{}",
            svc.log_now()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    svc.wait_log("cannot read policy file").await;
    assert_eq!(
        decide(&svc, "v1", &user, deploy.clone()).await["allowed"],
        true
    );
    // Restoring a valid file takes effect again.
    write_atomic(&path, POLICY);
    wait_for(&svc, &user, &deploy, false).await;
}

#[tokio::test]
async fn invalid_policy_at_start_up_stops_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("x");
    pki.write_server(dir.path());
    std::fs::write(
        dir.path().join("policy.json"),
        r#"[{"resource": {"verbs": ["get"]}}]"#,
    )
    .unwrap();
    let out = std::process::Command::new(crate::bins::bin("k8s-keystone-auth"))
        .args([
            "--keystone-url",
            "http://127.0.0.1:1/v3",
            "--listen",
            "127.0.0.1:0",
            "--check-config",
        ])
        .arg("--tls-cert-file")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-private-key-file")
        .arg(dir.path().join("tls.key"))
        .arg("--keystone-policy-file")
        .arg(dir.path().join("policy.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid policy file")
            && err.contains("policy.json")
            && err.contains("rule 0"),
        "{err}"
    );
}

/// A policy that grants alice (member on team-a) everything: only access rules can limit her.
const GRANT_ALL: &str = r#"[{"users": {"roles": ["member"], "projects": ["team-a"]},
  "resource_permissions": {"*/*": ["*"]}, "nonresource_permissions": {"/version": ["get"]}}]"#;

const ACCESS_RULES: &str = "alpha.kubernetes.io/identity/access-rules";

/// Any answer, explicit denies included.
async fn answer(svc: &Service, version: &str, user: &Value, attrs: Value) -> Value {
    let (code, answer) = svc.post("/webhook", &sar(version, user, attrs)).await;
    assert_eq!(code, 200, "{answer}");
    answer["status"].clone()
}

fn request(verb: &str, ns: &str, group: &str, resource: &str, sub: &str, name: &str) -> Value {
    json!({"resourceAttributes": {"verb": verb, "namespace": ns, "group": group, "version": "v1", "resource": resource, "subresource": sub, "name": name}})
}

#[tokio::test]
async fn application_credential_access_rules_are_enforced() {
    let _ks = KEYSTONE.read().await;
    let ks = Keystone::get();
    let svc = Service::start(Options {
        policy: Some(GRANT_ALL.into()),
        ..Default::default()
    })
    .await;
    // kubectl-rules: the one rule `k8s GET /api/v1/namespaces/*/pods`.
    let token = ks
        .app_cred_token(
            &env("KS_AC_KUBECTL_RULES_ID"),
            &env("KS_AC_KUBECTL_RULES_SECRET"),
        )
        .await
        .unwrap();
    let status = svc.token_review("v1", &token).await;
    assert_eq!(status["authenticated"], true, "{status}");
    let user = status["user"].clone();
    assert_eq!(
        user["extra"][ACCESS_RULES],
        json!(["GET /api/v1/namespaces/*/pods"]),
        "{user}"
    );
    // A cached answer (another review of the same token) carries them too.
    let hits = svc
        .metric("k8s_keystone_auth_token_cache_requests_total{result=\"hit\"}")
        .await;
    assert_eq!(svc.token_review("v1beta1", &token).await["user"], user);
    assert_eq!(
        svc.metric("k8s_keystone_auth_token_cache_requests_total{result=\"hit\"}")
            .await,
        hits + 1
    );
    for v in ["v1", "v1beta1"] {
        // Inside the rules: the policy decides (and grants).
        for attrs in [
            request("list", "x", "", "pods", "", ""),
            request("watch", "x", "", "pods", "", ""),
        ] {
            let s = answer(&svc, v, &user, attrs).await;
            assert_eq!(s["allowed"], true, "{s}");
            assert!(s.get("denied").is_none(), "{s}");
        }
        // Outside: an explicit deny naming method and path, although the policy grants it.
        let s = answer(
            &svc,
            v,
            &user,
            request("create", "x", "apps", "deployments", "", ""),
        )
        .await;
        assert_eq!(
            s,
            json!({"allowed": false, "denied": true, "reason": "POST /apis/apps/v1/namespaces/x/deployments: the application credential's access rules do not allow it"})
        );
        for attrs in [
            request("get", "x", "", "pods", "log", "web-0"),
            request("get", "x", "", "pods", "", "web-0"),
            request("list", "", "", "pods", "", ""),
            request("delete", "x", "", "pods", "", "web-0"),
            request("impersonate", "", "", "users", "", "bob"),
            json!({"nonResourceAttributes": {"verb": "get", "path": "/version"}}),
        ] {
            let s = answer(&svc, v, &user, attrs.clone()).await;
            assert_eq!(
                (&s["allowed"], &s["denied"]),
                (&json!(false), &json!(true)),
                "{attrs}: {s}"
            );
            assert!(
                s["reason"]
                    .as_str()
                    .unwrap()
                    .ends_with("the application credential's access rules do not allow it"),
                "{s}"
            );
        }
    }
    let log = answer(
        &svc,
        "v1",
        &user,
        request("get", "x", "", "pods", "log", "web-0"),
    )
    .await;
    assert_eq!(
        log["reason"],
        "GET /api/v1/namespaces/x/pods/web-0/log: the application credential's access rules do not allow it"
    );
    // The same user with a password token has no rules: the policy alone decides.
    let alice = svc.token_review("v1", &ks.alice().await).await["user"].clone();
    assert!(alice["extra"].get(ACCESS_RULES).is_none(), "{alice}");
    let s = answer(
        &svc,
        "v1",
        &alice,
        request("create", "x", "apps", "deployments", "", ""),
    )
    .await;
    assert_eq!(s["allowed"], true, "{s}");
    assert!(
        svc.metric(
            "k8s_keystone_auth_reviews_total{kind=\"SubjectAccessReview\",result=\"denied\"}"
        )
        .await
            == 15
    );
    // Denies are logged at info.
    svc.wait_log("result=\"denied\" reason=POST /apis/apps/v1/namespaces/x/deployments")
        .await;
}
