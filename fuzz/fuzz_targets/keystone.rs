//! Keystone's answers as the client deserializes them (`kk_core::keystone::types`: token
//! validation, group pages, project and role-assignment pages, a new application credential,
//! the error envelope), and a decoded token taken through the service's mapping
//! (`kk_webhook::identity`: token → identity → Kubernetes user).
//!
//! Properties: a token restricted by access rules never maps to an unrestricted user (its
//! rules for the service are in `extra`, or it is refused); the user's `extra` carries the
//! token's one project id and its groups end with it; a credential's secret is redacted in
//! `Debug`.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use kk_core::k8s::extra_keys;
use kk_core::keystone::types::{
    CreatedEnvelope, ErrorEnvelope, GroupsPage, ProjectsPage, RoleAssignmentsPage, TokenEnvelope,
};
use kk_webhook::identity::{UsernameFormat, identity_from_token, token_expiry, user_info};
use libfuzzer_sys::fuzz_target;

const SERVICE: &str = "k8s";

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<GroupsPage>(data);
    let _ = serde_json::from_slice::<ProjectsPage>(data);
    let _ = serde_json::from_slice::<RoleAssignmentsPage>(data);
    let _ = serde_json::from_slice::<ErrorEnvelope>(data);
    if let Ok(created) = serde_json::from_slice::<CreatedEnvelope>(data) {
        let shown = format!("{created:?}");
        assert!(shown.contains("secret: <redacted>"), "{shown}");
    }
    let Ok(envelope) = serde_json::from_slice::<TokenEnvelope>(data) else {
        return;
    };
    let token = envelope.token;
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let Ok(mut id) = identity_from_token(&token, SERVICE) else {
        return;
    };
    let project = token
        .project
        .as_ref()
        .expect("an identity has a project scope");
    assert_eq!(id.project_id, project.id);
    assert!(token_expiry(&token, now) >= now);
    let restricted = token
        .application_credential
        .as_ref()
        .is_some_and(|a| !a.access_rules.is_empty());
    assert_eq!(restricted, !id.access_rules.is_empty());
    assert!(!id.roles_complete || token.application_credential.is_none());
    id.groups = vec!["devs".into()];
    for format in [
        UsernameFormat::Name,
        UsernameFormat::NameAtDomain,
        UsernameFormat::Id,
    ] {
        let user = user_info(&id, format, &[]);
        assert_eq!(user.extra[extra_keys::PROJECT_ID], [project.id.clone()]);
        assert_eq!(user.groups.last(), Some(&project.id));
        assert_eq!(user.uid, token.user.id);
        match user.extra.get(extra_keys::ACCESS_RULES) {
            Some(rules) => {
                assert!(restricted);
                assert_eq!(rules.len(), id.access_rules.len());
            }
            None => assert!(!restricted, "a restricted token became unrestricted"),
        }
    }
});
