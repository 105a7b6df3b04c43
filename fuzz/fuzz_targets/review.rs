//! TokenReview and SubjectAccessReview bodies, decoded as the service's handler decodes them
//! (`kk_webhook::handlers::decode`, for each route), then a decoded SubjectAccessReview
//! evaluated against a policy that grants everything to every Keystone user.
//!
//! Properties: `/authenticate` and `/authorize` accept exactly what `/webhook` accepts of
//! their kind; an accepted review has a known kind and version; the answer's type meta
//! round-trips; the token never shows in `Debug`; only a Keystone identity is ever allowed,
//! and never past its access rules.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use kk_core::k8s::{self, TokenReviewResponse, TokenReviewStatus};
use kk_policy::{Policy, access_rules};
use kk_webhook::handlers::{Expect, Review, decode, policy_request};
use libfuzzer_sys::fuzz_target;

fn allow_all() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::parse(
            r#"[{"resource_permissions": {"*/*": ["*"]}, "nonresource_permissions": {"/healthz": ["get"]}},
                {"resource": {"verbs": ["*"], "resources": ["*"], "version": "*", "namespace": "*"},
                 "nonresource": {"verbs": ["*"], "path": "*"}, "match": [{"type": "user", "values": ["*"]}]}]"#,
        )
        .unwrap()
        .policy
    })
}

fuzz_target!(|body: &[u8]| {
    let any = decode(Expect::Any, body);
    let authenticate = decode(Expect::TokenReview, body);
    let authorize = decode(Expect::SubjectAccessReview, body);
    match any {
        Err(_) => {
            assert!(authenticate.is_err() && authorize.is_err());
        }
        Ok(Review::TokenReview(req)) => {
            assert!(matches!(authenticate, Ok(Review::TokenReview(_))));
            assert!(authorize.is_err());
            assert_eq!(req.type_meta.kind, "TokenReview");
            assert!(
                [k8s::AUTHENTICATION_V1, k8s::AUTHENTICATION_V1BETA1]
                    .contains(&req.type_meta.api_version.as_str())
            );
            let token = req.spec.token.expose();
            let elsewhere = req.spec.audiences.iter().any(|a| a.contains(token))
                || format!("{:?}", req.type_meta).contains(token);
            if token.len() > 12 && !elsewhere {
                assert!(!format!("{req:?}").contains(token), "the token is in Debug");
            }
            let answer = TokenReviewResponse {
                type_meta: req.type_meta.clone(),
                status: TokenReviewStatus::default(),
            };
            let text = serde_json::to_vec(&answer).unwrap();
            let back: TokenReviewResponse = serde_json::from_slice(&text).unwrap();
            assert_eq!(back, answer);
        }
        Ok(Review::SubjectAccessReview(req)) => {
            assert!(matches!(authorize, Ok(Review::SubjectAccessReview(_))));
            assert!(authenticate.is_err());
            assert_eq!(req.type_meta.kind, "SubjectAccessReview");
            assert!(
                [k8s::AUTHORIZATION_V1, k8s::AUTHORIZATION_V1BETA1]
                    .contains(&req.type_meta.api_version.as_str())
            );
            let request = policy_request(&req.spec).expect("decode checked the attributes");
            let decision = allow_all().evaluate(&request);
            let keystone = req
                .spec
                .extra
                .as_ref()
                .is_some_and(kk_policy::is_keystone_identity);
            if !keystone {
                assert!(!decision.allowed && !decision.denied, "{decision:?}");
            }
            assert!(!(decision.allowed && decision.denied));
            if let Some(rules) = req
                .spec
                .extra
                .as_ref()
                .and_then(|e| e.get(k8s::extra_keys::ACCESS_RULES))
                && decision.allowed
            {
                let http = access_rules::http_request(&request.attributes);
                assert!(access_rules::allows(rules, &http), "past the access rules");
            }
            assert!(!Policy::empty().evaluate(&request).allowed);
        }
    }
});
