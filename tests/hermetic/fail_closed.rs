//! Fail closed, as properties over inputs, Keystone faults and configurations (proptest,
//! bounded case counts):
//!
//! * TokenReview: a few steps, each a token (random, Fernet-like, `kkac1_`, JWT-like) and what
//!   the fake Keystone does to every request of that step (answers the real user, 5xx,
//!   garbage, wrong types, 401/404, hangs past the timeout), with the cache on or off, stale
//!   serving on or off, application-credential tokens on or off: `authenticated: true` only as
//!   the fake's real user, and only for a token the fake validated (or exchanged) as that user
//!   in this step or an earlier one.
//! * SubjectAccessReview: random policies (both formats, `*`, `!x` and lists) and random
//!   attributes for users, groups and extras that imitate Keystone's: `allowed: true` only for
//!   an identity this service would have authenticated (exactly one non-empty Keystone project
//!   id in `extra`, no `authentication.kubernetes.io/credential-id`), never with `denied`.

use std::collections::HashSet;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use warp::http::Method;

use crate::fake::*;
use crate::support::*;

const GROUPS: &str = "/v3/users/u-alice/groups";
const PROJECT_ID: &str = "alpha.kubernetes.io/identity/project/id";
const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// What the fake Keystone does to every request of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Answers as Keystone does for the real user alice.
    Real,
    Status5xx(u16),
    Garbage,
    WrongTypes,
    Refused(u16),
    /// Past the service's timeout.
    Hang,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => Just(Fault::Real),
        1 => prop::sample::select(vec![500u16, 502, 503]).prop_map(Fault::Status5xx),
        1 => Just(Fault::Garbage),
        1 => Just(Fault::WrongTypes),
        1 => prop::sample::select(vec![401u16, 404]).prop_map(Fault::Refused),
        1 => Just(Fault::Hang),
    ]
}

fn script(ks: &FakeKeystone, fault: Fault) {
    let answer = |real: Answer| match fault {
        Fault::Real => real,
        Fault::Status5xx(code) => Answer::error(code, "down"),
        Fault::Garbage => Answer::raw(200, "{\"token\": {\"user\": [not json"),
        Fault::WrongTypes => Answer::json(
            200,
            json!({"token": {"user": "alice", "project": 5, "roles": {"name": "admin"}, "expires_at": true}}),
        ),
        Fault::Refused(code) => Answer::error(code, "Could not find token"),
        Fault::Hang => Answer::hang(),
    };
    ks.on(
        Method::GET,
        VALIDATE,
        vec![answer(Answer::json(200, alice_token()))],
    );
    ks.on(
        Method::GET,
        GROUPS,
        vec![answer(Answer::json(200, groups(&["devs"], None)))],
    );
    let mut issued = alice_token();
    issued["token"]["methods"] = json!(["application_credential"]);
    issued["token"]["application_credential"] =
        json!({"id": "ac-1", "name": "kubectl", "restricted": false});
    ks.on(
        Method::POST,
        VALIDATE,
        vec![answer(
            Answer::json(201, issued).header("x-subject-token", &token("issued")),
        )],
    );
}

/// Tokens: random text, Fernet-like, `kkac1_` (well formed or not), JWT-like.
fn bearer() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,80}",
        "[A-Za-z0-9_-]{20,120}".prop_map(|s| format!("gAAAAAB{s}")),
        ("[a-f0-9]{8,32}", "[A-Za-z0-9]{4,40}").prop_map(|(id, secret)| {
            kk_core::appcred_token::AppCredToken::new(id, kk_core::secret::Secret::new(secret))
                .encode()
                .expose()
                .to_string()
        }),
        "[A-Za-z0-9_-]{0,60}".prop_map(|s| format!("kkac1_{s}")),
        "[A-Za-z0-9_-]{10,40}".prop_map(|s| format!("eyJhbGciOiJSUzI1NiJ9.{s}.{s}")),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    cache: bool,
    serve_stale: bool,
    appcred: bool,
}

fn setup() -> impl Strategy<Value = Setup> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(cache, serve_stale, appcred)| Setup {
        cache,
        serve_stale,
        appcred,
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whether the fake was asked about `token` (validated with it, or exchanged it) since `from`.
fn asked_about(ks: &FakeKeystone, from: usize, token: &str) -> bool {
    let appcred = kk_core::appcred_token::AppCredToken::parse(token)
        .ok()
        .flatten();
    ks.seen().iter().skip(from).any(|s| {
        (s.method == Method::GET
            && s.path == VALIDATE
            && s.header("x-subject-token") == Some(token))
            || appcred.as_ref().is_some_and(|c| {
                s.method == Method::POST
                    && s.path == VALIDATE
                    && String::from_utf8_lossy(&s.body).contains(c.secret.expose())
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn token_reviews_fail_closed(
        setup in setup(),
        pool in prop::collection::vec(bearer(), 1..4),
        steps in prop::collection::vec((any::<prop::sample::Index>(), fault()), 1..5),
    ) {
        runtime().block_on(async {
            let ks = FakeKeystone::start().await;
            let mut s = Settings::new(ks.url());
            s.timeout = Duration::from_millis(150);
            s.ttl = if setup.cache { Duration::from_secs(60) } else { Duration::ZERO };
            s.serve_stale = setup.serve_stale;
            s.appcred_tokens.enabled = setup.appcred;
            let svc = Svc::new(s);
            // Tokens the fake validated as alice, in a step where it answered as Keystone does.
            let mut validated: HashSet<String> = HashSet::new();
            for (index, fault) in steps {
                let token = index.get(&pool).clone();
                script(&ks, fault);
                let from = ks.seen().len();
                let (code, answer) = svc.post("/webhook", &token_review("v1", &token)).await;
                prop_assert_eq!(code, 200, "{}", answer);
                let status = &answer["status"];
                if fault == Fault::Real && asked_about(&ks, from, &token) {
                    validated.insert(token.clone());
                }
                if status["authenticated"] == true {
                    prop_assert!(
                        validated.contains(&token),
                        "authenticated without the fake validating it ({:?}, {:?}): {}",
                        setup, fault, answer
                    );
                    prop_assert_eq!(&status["user"]["username"], "alice");
                    prop_assert_eq!(&status["user"]["uid"], "u-alice");
                    prop_assert!(status.get("error").is_none(), "{}", answer);
                } else {
                    prop_assert_eq!(&status["authenticated"], false, "{}", answer);
                    prop_assert!(status.get("user").is_none(), "{}", answer);
                }
                // Faults the service cannot read are never a "yes" in this step, unless cached.
                if !matches!(fault, Fault::Real) && status["authenticated"] == true {
                    prop_assert!(setup.cache || setup.serve_stale, "{:?} {:?}", setup, fault);
                }
            }
            Ok(())
        })?;
    }
}

/// Names, groups, projects and roles that imitate Keystone's (and the fake's alice).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "alice",
            "bob",
            "admin",
            "system:admin",
            "system:serviceaccount:kube-system:default",
            "u-alice",
            "devs",
            "team-a",
            "p-team-a",
            "member",
            "k8s-viewer",
            "k8s-admin",
            "system:masters",
            "",
        ])
        .prop_map(str::to_string),
        "[a-z:-]{1,12}",
    ]
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(name(), 0..4)
}

/// A value in a policy: a name, `*`, `!name` or a list.
fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        name(),
        Just("*".to_string()),
        name().prop_map(|n| format!("!{n}")),
        (name(), name()).prop_map(|(a, b)| format!("['{a}', '{b}']")),
        (name(), name()).prop_map(|(a, b)| format!("!['{a}', '{b}']")),
    ]
}

fn verb() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "get", "list", "watch", "create", "delete", "*", "update",
    ])
    .prop_map(str::to_string)
}

/// One rule, in either format.
fn rule() -> impl Strategy<Value = Value> {
    let users = (
        prop::option::of(names()),
        prop::option::of(names()),
        prop::option::of(names()),
    )
        .prop_map(|(roles, projects, groups)| {
            let mut u = serde_json::Map::new();
            if let Some(r) = roles {
                u.insert("roles".into(), json!(r));
            }
            if let Some(p) = projects {
                u.insert("projects".into(), json!(p));
            }
            if let Some(g) = groups {
                u.insert("groups".into(), json!(g));
            }
            Value::Object(u)
        });
    let new_format = (
        prop::option::of(users),
        pattern(),
        pattern(),
        prop::collection::vec(verb(), 1..3),
        prop::bool::ANY,
    )
        .prop_map(|(users, ns, res, verbs, nonresource)| {
            let mut r = json!({"resource_permissions": {format!("{ns}/{res}"): verbs}});
            if let Some(u) = users {
                r["users"] = u;
            }
            if nonresource {
                r["nonresource_permissions"] = json!({"/healthz": ["get"], "*": ["*"]});
            }
            r
        });
    let old_format = (
        prop::sample::select(vec!["user", "group", "project", "role", "bogus"]),
        names(),
        prop::bool::ANY,
    )
        .prop_map(|(kind, values, resource)| {
            let mut r = json!({"match": [{"type": kind, "values": values}]});
            if resource {
                r["resource"] =
                    json!({"verbs": ["*"], "resources": ["*"], "version": "*", "namespace": "*"});
            } else {
                r["nonresource"] = json!({"verbs": ["*"], "path": "*"});
            }
            r
        });
    // A rule granting everything (to Keystone identities), so that allowed answers are common.
    let everything = Just(
        json!({"resource_permissions": {"*/*": ["*"]}, "nonresource_permissions": {"*": ["*"]}}),
    );
    prop_oneof![2 => new_format, 2 => old_format, 1 => everything]
}

/// An `extra` that may or may not be what this service's TokenReview answers set.
fn extra() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.8, prop::collection::vec(name(), 0..3)),
        prop::option::weighted(0.3, "(JTI|X509SHA256)=[a-f0-9]{1,8}"),
        prop::option::of(names()),
        prop::bool::ANY,
    )
        .prop_map(|(projects, credential, roles, rules)| {
            let mut e = serde_json::Map::new();
            if let Some(p) = projects {
                e.insert(PROJECT_ID.into(), json!(p));
            }
            if let Some(c) = credential {
                e.insert(CREDENTIAL_ID.into(), json!([c]));
            }
            if let Some(r) = roles {
                e.insert("alpha.kubernetes.io/identity/roles".into(), json!(r));
            }
            if rules {
                e.insert(
                    "alpha.kubernetes.io/identity/access-rules".into(),
                    json!(["GET /api/v1/namespaces/*/pods"]),
                );
            }
            Value::Object(e)
        })
}

fn attributes() -> impl Strategy<Value = Value> {
    prop_oneof![
        (verb(), name(), name(), prop::sample::select(vec!["", "apps", "rbac.authorization.k8s.io"]))
            .prop_map(|(verb, namespace, resource, group)| json!({"resourceAttributes": {
                "verb": verb, "namespace": namespace, "resource": resource, "group": group, "version": "v1"}})),
        (verb(), prop::sample::select(vec!["/healthz", "/api", "/version", "/metrics", "/"]))
            .prop_map(|(verb, path)| json!({"nonResourceAttributes": {"verb": verb, "path": path}})),
    ]
}

/// What this service's TokenReview answers always carry, and kube-apiserver never adds for
/// them: exactly one non-empty project id and no credential id.
fn is_own_identity(extra: &Value) -> bool {
    let one_project = extra[PROJECT_ID]
        .as_array()
        .is_some_and(|p| p.len() == 1 && p[0].as_str().is_some_and(|s| !s.is_empty()));
    one_project && extra.get(CREDENTIAL_ID).is_none()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn subject_access_reviews_allow_only_identities_this_service_authenticated(
        policy in prop::collection::vec(rule(), 1..5),
        user in name(),
        groups in names(),
        extra in prop::option::of(extra()),
        attrs in attributes(),
        version in prop::sample::select(vec!["v1", "v1beta1"]),
    ) {
        runtime().block_on(async {
            // Keystone is never asked by a SubjectAccessReview: a port nothing listens on.
            let mut s = Settings::new("http://127.0.0.1:9/v3".into());
            s.policy = Some(Value::Array(policy.clone()).to_string());
            let svc = Svc::new(s);
            let mut spec = json!({"user": user, "uid": format!("u-{user}")});
            spec[if version == "v1" { "groups" } else { "group" }] = json!(groups);
            if let Some(e) = &extra {
                spec["extra"] = e.clone();
            }
            for (k, v) in attrs.as_object().unwrap() {
                spec[k] = v.clone();
            }
            let review = json!({"apiVersion": format!("authorization.k8s.io/{version}"),
                "kind": "SubjectAccessReview", "spec": spec});
            let (code, answer) = svc.post("/webhook", &review).await;
            prop_assert_eq!(code, 200, "{}", answer);
            let status = &answer["status"];
            if status["allowed"] == true {
                let e = extra.clone().unwrap_or(Value::Null);
                prop_assert!(
                    is_own_identity(&e),
                    "allowed for an identity this service did not authenticate: {} (policy {})",
                    review, Value::Array(policy.clone())
                );
                prop_assert!(status.get("denied").is_none_or(|d| d == false), "{}", answer);
            }
            Ok(())
        })?;
    }
}
