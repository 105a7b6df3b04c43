//! From a validated Keystone token to a Kubernetes user: pure functions, no I/O.
//!
//! The mapping is the Go reference's: username = Keystone user name, uid = user id, groups =
//! the user's Keystone group names followed by the project id, and five `extra` keys (project
//! id and name, roles, user domain id and name), each an array. [`UsernameFormat`] optionally
//! makes names unique across domains. A token of an application credential with access rules
//! also gets its rules for the configured service type under
//! [`extra_keys::ACCESS_RULES`], which authorization enforces.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use kk_core::k8s::{UserInfo, extra_keys};
use kk_core::keystone::types::Token;
use kk_core::timefmt::parse_rfc3339;
use kk_policy::sync_config::RoleMapping;

/// How the Kubernetes user name is built from the Keystone user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum UsernameFormat {
    /// The Keystone user name, as the Go reference does (`alice`). Two domains may collide.
    #[default]
    #[serde(rename = "name")]
    Name,
    /// `name@domain` with the user's domain name (`alice@k8s`): unique across domains.
    #[serde(rename = "name@domain")]
    NameAtDomain,
    /// The Keystone user id: unique, stable across renames, hard to read.
    #[serde(rename = "id")]
    Id,
}

impl UsernameFormat {
    /// The Kubernetes user name of a Keystone user, before role mappings.
    pub fn user_name(self, id: &str, name: &str, domain_name: &str) -> String {
        match self {
            UsernameFormat::Name => name.to_string(),
            UsernameFormat::NameAtDomain => format!("{name}@{domain_name}"),
            UsernameFormat::Id => id.to_string(),
        }
    }
}

/// The Kubernetes user name the TokenReview answers for a Keystone user holding `roles`: the
/// format, then the role mappings' `username` (as [`user_info`]). The namespace sync names
/// the subjects of users' RoleBindings with it.
pub fn kubernetes_user_name(
    format: UsernameFormat,
    (id, name, domain_name): (&str, &str, &str),
    roles: &[String],
    role_mappings: &[RoleMapping],
) -> String {
    let mut username = format.user_name(id, name, domain_name);
    let mut groups = Vec::new();
    kk_policy::sync_config::apply_role_mappings(role_mappings, roles, &mut username, &mut groups);
    username
}

impl std::str::FromStr for UsernameFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "name" => Ok(Self::Name),
            "name@domain" => Ok(Self::NameAtDomain),
            "id" => Ok(Self::Id),
            other => Err(format!(
                "unknown username format {other:?}, expected \"name\", \"name@domain\" or \"id\""
            )),
        }
    }
}

/// What the webhook keeps of a validated token (cached; never holds the token itself): who it
/// speaks for. Everything but the token's expiry, so the cached entries of many tokens of one
/// user, project, roles and credential share one `Arc<Identity>` (the authenticator interns
/// them); the expiry is kept per token, beside it ([`token_expiry`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Keystone user id.
    pub user_id: String,
    /// Keystone user name.
    pub user_name: String,
    /// The user's domain id.
    pub user_domain_id: String,
    /// The user's domain name.
    pub user_domain_name: String,
    /// Project id of the token's scope.
    pub project_id: String,
    /// Project name of the token's scope.
    pub project_name: String,
    /// The project's domain id.
    pub project_domain_id: String,
    /// Whether the token's roles are all its user's roles on the project: not a token of an
    /// application credential or a trust, which may carry fewer (the namespace sync deletes
    /// a user's RoleBindings only on the word of such a complete token).
    pub roles_complete: bool,
    /// Role names on the token.
    pub roles: Vec<String>,
    /// Keystone group names of the user.
    pub groups: Vec<String>,
    /// The application credential the token came from, if any.
    pub application_credential_id: Option<String>,
    /// That credential's access rules for the configured service type, in Keystone's order;
    /// empty when the token is not from a credential with access rules.
    pub access_rules: Vec<AccessRule>,
}

/// One access rule of an application credential, for this service's type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessRule {
    /// HTTP method as Keystone stores it (`GET`, `POST`, ...).
    pub method: String,
    /// Path pattern (`/api/v1/namespaces/*/pods`).
    pub path: String,
}

/// Why a token that Keystone accepted is still refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Unscoped, domain- or system-scoped token.
    #[error(
        "the token has no project scope; use a project-scoped token or an application credential"
    )]
    NoProjectScope,
    /// An application credential whose access rules do not name the Kubernetes service type.
    #[error("the application credential's access rules do not allow service type {0:?}")]
    AccessRulesExcludeService(String),
}

/// Checks a validated token against this service's rules and keeps what the answer needs.
/// `groups` are filled in later.
pub fn identity_from_token(token: &Token, service_type: &str) -> Result<Identity, Refusal> {
    let project = token.project.as_ref().ok_or(Refusal::NoProjectScope)?;
    if let Some(ac) = &token.application_credential
        && !ac.access_rules.is_empty()
        && !ac.access_rules.iter().any(|r| r.service == service_type)
    {
        return Err(Refusal::AccessRulesExcludeService(service_type.to_string()));
    }
    Ok(Identity {
        user_id: token.user.id.clone(),
        user_name: token.user.name.clone(),
        user_domain_id: token.user.domain.id.clone(),
        user_domain_name: token.user.domain.name.clone(),
        project_id: project.id.clone(),
        project_name: project.name.clone(),
        project_domain_id: project.domain.id.clone(),
        roles_complete: token.application_credential.is_none() && token.trust.is_none(),
        roles: token.roles.iter().map(|r| r.name.clone()).collect(),
        groups: Vec::new(),
        application_credential_id: token.application_credential.as_ref().map(|a| a.id.clone()),
        access_rules: token
            .application_credential
            .iter()
            .flat_map(|ac| &ac.access_rules)
            .filter(|r| r.service == service_type)
            .map(|r| AccessRule {
                method: r.method.clone(),
                path: r.path.clone(),
            })
            .collect(),
    })
}

/// When a token Keystone just validated expires. Keystone said it is valid, by its own clock:
/// an expiry that our clock already passed (skew) or cannot read is `now`, which only means
/// the answer is not cached.
pub fn token_expiry(token: &Token, now: SystemTime) -> SystemTime {
    parse_rfc3339(&token.expires_at).unwrap_or(now).max(now)
}

/// Whether the token came from an application credential with access rules (such tokens may
/// not call other Keystone APIs, so their groups cannot be listed with the token itself).
pub fn has_access_rules(token: &Token) -> bool {
    token
        .application_credential
        .as_ref()
        .is_some_and(|a| !a.access_rules.is_empty())
}

/// The Kubernetes user for an identity, exactly as the Go reference builds it, role mappings
/// (the sync config's `role-mappings`) applied last as Go's `syncRoles` does.
pub fn user_info(id: &Identity, format: UsernameFormat, role_mappings: &[RoleMapping]) -> UserInfo {
    let mut username = format.user_name(&id.user_id, &id.user_name, &id.user_domain_name);
    let mut groups = id.groups.clone();
    groups.push(id.project_id.clone());
    kk_policy::sync_config::apply_role_mappings(
        role_mappings,
        &id.roles,
        &mut username,
        &mut groups,
    );
    let mut extra = BTreeMap::new();
    extra.insert(
        extra_keys::PROJECT_ID.to_string(),
        vec![id.project_id.clone()],
    );
    extra.insert(
        extra_keys::PROJECT_NAME.to_string(),
        vec![id.project_name.clone()],
    );
    extra.insert(extra_keys::ROLES.to_string(), id.roles.clone());
    extra.insert(
        extra_keys::USER_DOMAIN_ID.to_string(),
        vec![id.user_domain_id.clone()],
    );
    extra.insert(
        extra_keys::USER_DOMAIN_NAME.to_string(),
        vec![id.user_domain_name.clone()],
    );
    if !id.access_rules.is_empty() {
        extra.insert(
            extra_keys::ACCESS_RULES.to_string(),
            id.access_rules
                .iter()
                .map(|r| extra_keys::access_rule_value(&r.method, &r.path))
                .collect(),
        );
    }
    UserInfo {
        username,
        uid: id.user_id.clone(),
        groups,
        extra,
    }
}

/// Why a token was refused without asking Keystone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefiltered {
    /// Empty token.
    Empty,
    /// Longer than the configured maximum.
    TooLong,
    /// Characters no Keystone token has.
    BadCharacters,
    /// A JWT that is not a Keystone JWS token (e.g. a ServiceAccount token).
    ForeignJwt,
}

impl Prefiltered {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Prefiltered::Empty => "empty",
            Prefiltered::TooLong => "too_long",
            Prefiltered::BadCharacters => "bad_characters",
            Prefiltered::ForeignJwt => "foreign_jwt",
        }
    }

    /// The reason given to the apiserver (logged there at high verbosity).
    pub fn reason(self) -> &'static str {
        match self {
            Prefiltered::Empty => "empty token",
            Prefiltered::TooLong => "token too long to be a Keystone token",
            Prefiltered::BadCharacters => "not a Keystone token",
            Prefiltered::ForeignJwt => {
                "a JWT that is not a Keystone token (e.g. a ServiceAccount token)"
            }
        }
    }
}

/// A byte of a Fernet token: ASCII letters and digits, `-`, `_` and `=` (base64url and its
/// padding).
const fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=')
}

/// [`TOKEN_BYTES`]: a byte no token has.
const FOREIGN: u8 = 1;
/// [`TOKEN_BYTES`]: `.`, which only a JWT has.
const DOT: u8 = 2;

/// The class of each byte in a token: [`is_token_byte`]s are 0, `.` is [`DOT`], every other
/// byte [`FOREIGN`].
const TOKEN_BYTES: [u8; 256] = {
    let mut table = [FOREIGN; 256];
    let mut b = 0;
    while b < 256 {
        if is_token_byte(b as u8) {
            table[b] = 0;
        }
        b += 1;
    }
    table[b'.' as usize] = DOT;
    table
};

/// Refuses tokens that cannot be Keystone tokens, without any network call.
///
/// Fernet tokens (Keystone's default) are URL-safe base64 (`gAAAAA...`, about 180-250 chars).
/// Keystone's optional JWS provider issues JWTs whose payload carries `openstack_methods`;
/// any other JWT (a ServiceAccount token, an OIDC id token) is refused here. That stops the
/// load pattern where every invalid ServiceAccount token reached Keystone.
pub fn prefilter(token: &str, max_len: usize) -> Result<(), Prefiltered> {
    if token.is_empty() {
        return Err(Prefiltered::Empty);
    }
    if token.len() > max_len {
        return Err(Prefiltered::TooLong);
    }
    // The classes of all bytes or-ed together (a table lookup, no branch per byte): every
    // review's token passes here.
    let seen = token
        .bytes()
        .fold(0, |seen, b| seen | TOKEN_BYTES[usize::from(b)]);
    if seen & FOREIGN != 0 {
        return Err(Prefiltered::BadCharacters);
    }
    if seen & DOT != 0 {
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err(Prefiltered::BadCharacters);
        }
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1].trim_end_matches('='))
            .map_err(|_| Prefiltered::ForeignJwt)?;
        let claims: serde_json::Value =
            serde_json::from_slice(&payload).map_err(|_| Prefiltered::ForeignJwt)?;
        if claims.get("openstack_methods").is_none() {
            return Err(Prefiltered::ForeignJwt);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kk_core::keystone::types::TokenEnvelope;
    use std::time::{Duration, UNIX_EPOCH};

    fn token(json: &str) -> Token {
        serde_json::from_str::<TokenEnvelope>(json).unwrap().token
    }

    const ALICE: &str = r#"{"token":{"methods":["password"],"user":{"domain":{"id":"d1","name":"k8s"},"id":"u1","name":"alice"},
        "expires_at":"2026-11-28T16:08:40.000000Z","project":{"domain":{"id":"d1","name":"k8s"},"id":"p1","name":"team-a"},
        "roles":[{"id":"r1","name":"member"},{"id":"r2","name":"k8s-viewer"}]}}"#;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    #[test]
    fn maps_exactly_like_the_go_reference() {
        let mut id = identity_from_token(&token(ALICE), "k8s").unwrap();
        id.groups = vec!["k8s-admins".into(), "team-a-devs".into()];
        let u = user_info(&id, UsernameFormat::Name, &[]);
        assert_eq!(u.username, "alice");
        assert_eq!(u.uid, "u1");
        assert_eq!(u.groups, ["k8s-admins", "team-a-devs", "p1"]);
        let json = serde_json::to_value(&u.extra).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "alpha.kubernetes.io/identity/project/id": ["p1"],
                "alpha.kubernetes.io/identity/project/name": ["team-a"],
                "alpha.kubernetes.io/identity/roles": ["member", "k8s-viewer"],
                "alpha.kubernetes.io/identity/user/domain/id": ["d1"],
                "alpha.kubernetes.io/identity/user/domain/name": ["k8s"],
            })
        );
        assert_eq!(
            user_info(&id, UsernameFormat::NameAtDomain, &[]).username,
            "alice@k8s"
        );
        assert_eq!(user_info(&id, UsernameFormat::Id, &[]).username, "u1");
    }

    #[test]
    fn role_mappings_add_groups_after_the_project_and_may_rename() {
        let mut id = identity_from_token(&token(ALICE), "k8s").unwrap();
        id.groups = vec!["devs".into()];
        let maps = kk_policy::sync_config::parse(
            "role-mappings: [{keystone-role: member, groups: [mygroup]}, {keystone-role: k8s-viewer, username: viewer, groups: [v]}, {keystone-role: admin, groups: [no]}]",
        )
        .unwrap()
        .config
        .role_mappings;
        let u = user_info(&id, UsernameFormat::Name, &maps);
        assert_eq!(u.groups, ["devs", "p1", "mygroup", "v"]);
        assert_eq!(u.username, "viewer");
        assert_eq!(u.uid, "u1");
    }

    #[test]
    fn the_sync_knows_the_project_domain_and_whether_the_roles_are_all_the_user_s() {
        let id = identity_from_token(&token(ALICE), "k8s").unwrap();
        assert_eq!(id.project_domain_id, "d1");
        assert!(
            id.roles_complete,
            "a password token carries all the user's roles"
        );
        for extra in [
            r#""application_credential":{"id":"ac","restricted":true},"roles""#,
            r#""OS-TRUST:trust":{"id":"t1","impersonation":false},"roles""#,
        ] {
            let id =
                identity_from_token(&token(&ALICE.replace(r#""roles""#, extra)), "k8s").unwrap();
            assert!(!id.roles_complete, "{extra}");
        }
        // The sync names users as the TokenReview does.
        let maps =
            kk_policy::sync_config::parse("role-mappings: [{keystone-role: member, username: m}]")
                .unwrap()
                .config
                .role_mappings;
        let name =
            |f, roles: &[String]| kubernetes_user_name(f, ("u1", "alice", "k8s"), roles, &maps);
        assert_eq!(name(UsernameFormat::NameAtDomain, &[]), "alice@k8s");
        assert_eq!(name(UsernameFormat::Id, &["reader".into()]), "u1");
        assert_eq!(name(UsernameFormat::Name, &["member".into()]), "m");
    }

    #[test]
    fn unscoped_tokens_are_refused() {
        let t = token(
            r#"{"token":{"user":{"id":"u","name":"bob","domain":{"id":"d","name":"k8s"}},"expires_at":"2026-11-28T16:23:32.000000Z"}}"#,
        );
        assert_eq!(identity_from_token(&t, "k8s"), Err(Refusal::NoProjectScope));
    }

    #[test]
    fn access_rules_must_name_the_service_type() {
        let with = |service: &str| {
            token(&ALICE.replace(
                r#""roles""#,
                &format!(r#""application_credential":{{"id":"ac","access_rules":[{{"service":"{service}","method":"GET","path":"/x"}}]}},"roles""#),
            ))
        };
        assert!(identity_from_token(&with("k8s"), "k8s").is_ok());
        assert_eq!(
            identity_from_token(&with("compute"), "k8s"),
            Err(Refusal::AccessRulesExcludeService("k8s".into()))
        );
        assert!(identity_from_token(&with("kubernetes"), "kubernetes").is_ok());
    }

    #[test]
    fn access_rules_of_the_service_type_are_kept_and_answered() {
        let t = token(&ALICE.replace(
            r#""roles""#,
            r#""application_credential":{"id":"ac","access_rules":[
                {"service":"k8s","method":"GET","path":"/api/v1/namespaces/*/pods"},
                {"service":"compute","method":"GET","path":"/v2.1/servers"},
                {"service":"k8s","method":"POST","path":"/apis/apps/v1/namespaces/dev/deployments"}]},"roles""#,
        ));
        let id = identity_from_token(&t, "k8s").unwrap();
        assert_eq!(
            id.access_rules,
            [
                AccessRule {
                    method: "GET".into(),
                    path: "/api/v1/namespaces/*/pods".into()
                },
                AccessRule {
                    method: "POST".into(),
                    path: "/apis/apps/v1/namespaces/dev/deployments".into()
                }
            ]
        );
        let u = user_info(&id, UsernameFormat::Name, &[]);
        assert_eq!(
            u.extra["alpha.kubernetes.io/identity/access-rules"],
            [
                "GET /api/v1/namespaces/*/pods",
                "POST /apis/apps/v1/namespaces/dev/deployments"
            ]
        );
        // Every value reads back into the rule it came from.
        for (value, rule) in u.extra[extra_keys::ACCESS_RULES]
            .iter()
            .zip(&id.access_rules)
        {
            assert_eq!(
                extra_keys::parse_access_rule_value(value),
                Some((rule.method.as_str(), rule.path.as_str()))
            );
        }
        // Without rules (a password token, or a credential without rules) there is no key.
        let plain = identity_from_token(&token(ALICE), "k8s").unwrap();
        assert!(plain.access_rules.is_empty());
        assert!(
            !user_info(&plain, UsernameFormat::Name, &[])
                .extra
                .contains_key(extra_keys::ACCESS_RULES)
        );
    }

    #[test]
    fn keystone_decides_validity_and_our_clock_only_bounds_caching() {
        let late = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(token_expiry(&token(ALICE), late), late);
        let unreadable = token(&ALICE.replace("2026-11-28T16:08:40.000000Z", "soon"));
        assert!(identity_from_token(&unreadable, "k8s").is_ok());
        assert_eq!(token_expiry(&unreadable, now()), now());
    }

    #[test]
    fn prefilter_refuses_what_cannot_be_keystone() {
        let fernet = "gAAAAABpK0M3ZK8n7qfh0r0R0kRk0Zb4cXc-ZKJx8wWnZ2U5Nnw_bl0aB2vYkZ3mWQ==";
        assert_eq!(prefilter(fernet, 4096), Ok(()));
        assert_eq!(prefilter("", 4096), Err(Prefiltered::Empty));
        assert_eq!(
            prefilter(&"a".repeat(5000), 4096),
            Err(Prefiltered::TooLong)
        );
        assert_eq!(prefilter("abc def", 4096), Err(Prefiltered::BadCharacters));
        assert_eq!(prefilter("a.b", 4096), Err(Prefiltered::BadCharacters));
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let sa = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"iss":"kubernetes/serviceaccount","sub":"system:serviceaccount:default:x"}"#)
        );
        assert_eq!(prefilter(&sa, 4096), Err(Prefiltered::ForeignJwt));
        let jws = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"ES256"}"#),
            b64(r#"{"sub":"u1","openstack_methods":["password"]}"#)
        );
        assert_eq!(prefilter(&jws, 4096), Ok(()));
    }

    /// Every byte alone, and between token bytes: refused exactly when it is not one of
    /// `A-Za-z0-9-_=` (a `.` alone makes a malformed JWT).
    #[test]
    fn prefilter_classifies_every_byte() {
        for b in 0..=255u8 {
            let allowed = is_token_byte(b);
            let Ok(inner) = std::str::from_utf8(std::slice::from_ref(&b)) else {
                // Not ASCII: only ever part of a longer UTF-8 character.
                let token = format!("gAAAAA{}x", char::from(b));
                assert_eq!(
                    prefilter(&token, 4096),
                    Err(Prefiltered::BadCharacters),
                    "{b}"
                );
                continue;
            };
            let token = format!("gAAAAA{inner}x");
            let want = if allowed {
                Ok(())
            } else {
                Err(Prefiltered::BadCharacters)
            };
            assert_eq!(prefilter(&token, 4096), want, "byte {b}");
        }
    }

    proptest::proptest! {
        #[test]
        fn prefilter_never_panics(s in ".{0,300}") {
            let _ = prefilter(&s, 256);
        }

        /// Refused for its characters when a byte is neither a token byte nor `.`; accepted
        /// when every byte is a token byte (a `.` leads to the JWT checks).
        #[test]
        fn prefilter_refuses_exactly_the_foreign_bytes(s in "[A-Za-z0-9_=.\\- ~+/\u{e9}]{1,60}") {
            let got = prefilter(&s, 256);
            if s.bytes().any(|b| !is_token_byte(b) && b != b'.') {
                proptest::prop_assert_eq!(got, Err(Prefiltered::BadCharacters));
            } else if !s.contains('.') {
                proptest::prop_assert_eq!(got, Ok(()));
            }
        }
    }
}
