//! Keystone JSON, both ways: the answers read (lenient: unknown fields are ignored and missing
//! optional parts are `None`) and the request bodies sent ([`AuthBody`],
//! [`NewApplicationCredentialBody`]).
//!
//! The request bodies borrow from the request they are made of ([`super::AuthRequest::to_body`],
//! [`super::NewApplicationCredential::to_body`]) and can only be made there, so a body is always
//! one Keystone documents: `methods` names the one identity part present, a domain is given by
//! id or by name. Their members are declared in alphabetical order, the order in which these
//! bodies have always been sent. Secrets are serialized from [`Secret`] (only here are they put
//! into a body) and stay redacted in `Debug`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::Secret;

/// `{"token": {...}}` as returned by token validation and issue.
#[derive(Debug, Deserialize)]
pub struct TokenEnvelope {
    /// The token body.
    pub token: Token,
}

/// The body of a Keystone token.
#[derive(Debug, Clone, Deserialize)]
pub struct Token {
    /// The user the token belongs to.
    pub user: TokenUser,
    /// The project scope; absent for unscoped, domain- and system-scoped tokens.
    #[serde(default)]
    pub project: Option<TokenProject>,
    /// Roles on the scope.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub roles: Vec<NamedRef>,
    /// When the token stops being valid (RFC 3339).
    pub expires_at: String,
    /// Authentication methods (`password`, `application_credential`, `token`, ...).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub methods: Vec<String>,
    /// Present for tokens issued from an application credential.
    #[serde(default)]
    pub application_credential: Option<TokenAppCred>,
    /// Present for trust-scoped tokens (`OS-TRUST:trust`), whose roles are the trust's.
    #[serde(default, rename = "OS-TRUST:trust")]
    pub trust: Option<serde::de::IgnoredAny>,
}

/// `token.user`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenUser {
    /// User id.
    pub id: String,
    /// User name.
    #[serde(default)]
    pub name: String,
    /// The user's domain.
    #[serde(default)]
    pub domain: DomainRef,
}

/// `token.project`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenProject {
    /// Project id.
    pub id: String,
    /// Project name.
    #[serde(default)]
    pub name: String,
    /// The project's domain.
    #[serde(default)]
    pub domain: DomainRef,
}

/// A domain reference.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct DomainRef {
    /// Domain id.
    #[serde(default)]
    pub id: String,
    /// Domain name.
    #[serde(default)]
    pub name: String,
}

/// A role reference (`{"id", "name"}`).
#[derive(Debug, Clone, Deserialize)]
pub struct NamedRef {
    /// Id.
    #[serde(default)]
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
}

/// `token.application_credential`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenAppCred {
    /// Application credential id.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Restricted credentials cannot create other credentials.
    #[serde(default)]
    pub restricted: bool,
    /// Access rules; empty means "no rules" (any API).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub access_rules: Vec<AccessRule>,
}

/// One access rule of an application credential.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessRule {
    /// Service type the rule applies to, e.g. `k8s`.
    #[serde(default)]
    pub service: String,
    /// HTTP method.
    #[serde(default)]
    pub method: String,
    /// Path glob.
    #[serde(default)]
    pub path: String,
}

/// `GET /v3/users/{id}/groups`.
#[derive(Debug, Deserialize)]
pub struct GroupsPage {
    /// The groups on this page.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub groups: Vec<NamedRef>,
    /// Pagination links.
    #[serde(default)]
    pub links: Links,
}

/// `GET /v3/projects`.
#[derive(Debug, Deserialize)]
pub struct ProjectsPage {
    /// The projects on this page.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub projects: Vec<ProjectEntry>,
    /// Pagination links.
    #[serde(default)]
    pub links: Links,
    /// Set when Keystone cut the list at its `list_limit`.
    #[serde(default)]
    pub truncated: bool,
}

/// One entry of `GET /v3/projects`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ProjectEntry {
    /// Project id.
    pub id: String,
    /// Project name.
    #[serde(default)]
    pub name: String,
    /// The project's domain id.
    #[serde(default)]
    pub domain_id: String,
    /// Whether tokens can be scoped to it.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// `GET /v3/role_assignments?...&include_names`.
#[derive(Debug, Deserialize)]
pub struct RoleAssignmentsPage {
    /// The assignments on this page.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub role_assignments: Vec<RoleAssignment>,
    /// Pagination links.
    #[serde(default)]
    pub links: Links,
    /// Set when Keystone cut the list at its `list_limit`.
    #[serde(default)]
    pub truncated: bool,
}

/// One role assignment: a role, held by a user or a group (`include_names` adds the names).
#[derive(Debug, Clone, Deserialize)]
pub struct RoleAssignment {
    /// The role.
    pub role: NamedRef,
    /// The user holding it (with `effective`, also users holding it through a group).
    #[serde(default)]
    pub user: Option<AssignmentActor>,
    /// The group holding it (never with `effective`).
    #[serde(default)]
    pub group: Option<AssignmentActor>,
}

/// The user or group of a [`RoleAssignment`].
#[derive(Debug, Clone, Deserialize)]
pub struct AssignmentActor {
    /// Id.
    pub id: String,
    /// Name (with `include_names`).
    #[serde(default)]
    pub name: String,
    /// Its domain (with `include_names`).
    #[serde(default)]
    pub domain: DomainRef,
}

/// `links` of a list answer.
#[derive(Debug, Deserialize, Default)]
pub struct Links {
    /// The next page, if any.
    #[serde(default)]
    pub next: Option<String>,
}

/// `{"application_credential": {...}}`, the answer to a creation.
#[derive(Debug, Deserialize)]
pub struct CreatedEnvelope {
    /// The new credential.
    pub application_credential: CreatedApplicationCredential,
}

/// A newly created application credential.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedApplicationCredential {
    /// Its id.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// The project its tokens are scoped to.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Expiry, if any.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The secret (returned only in this answer).
    pub secret: crate::secret::Secret,
    /// The roles it carries.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub roles: Vec<NamedRef>,
}

/// `{"error": {"code", "message", "title"}}`.
#[derive(Debug, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The body of a Keystone error.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    /// Human message.
    #[serde(default)]
    pub message: String,
}

/// The body of `POST /v3/auth/tokens`: `{"auth": {"identity": {..}, "scope": {..}}}`.
#[derive(Debug, Serialize)]
pub struct AuthBody<'a> {
    pub(super) auth: Auth<'a>,
}

/// `auth`.
#[derive(Debug, Serialize)]
pub struct Auth<'a> {
    pub(super) identity: Identity<'a>,
    /// Absent: Keystone scopes the token as the credential implies (an application credential
    /// to its project, a user to their default project, if any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) scope: Option<ScopeBody<'a>>,
}

/// `auth.identity`: `methods` and the one part it names (made only by the constructors below,
/// which keep the two in step).
#[derive(Debug, Serialize)]
pub struct Identity<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    application_credential: Option<AppCredIdentity<'a>>,
    methods: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<PasswordIdentity<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<TokenIdentity<'a>>,
}

impl<'a> Identity<'a> {
    /// `{"application_credential": {..}, "methods": ["application_credential"]}`.
    pub(super) fn application_credential(part: AppCredIdentity<'a>) -> Self {
        Self {
            application_credential: Some(part),
            methods: ["application_credential"],
            password: None,
            token: None,
        }
    }

    /// `{"methods": ["password"], "password": {"user": {..}}}`.
    pub(super) fn password(user: PasswordUser<'a>) -> Self {
        Self {
            application_credential: None,
            methods: ["password"],
            password: Some(PasswordIdentity { user }),
            token: None,
        }
    }

    /// `{"methods": ["token"], "token": {"id": ..}}`.
    pub(super) fn token(id: &'a Secret) -> Self {
        Self {
            application_credential: None,
            methods: ["token"],
            password: None,
            token: Some(TokenIdentity { id }),
        }
    }
}

/// `auth.identity.application_credential`: by id, or by name and user; and the secret.
#[derive(Debug, Serialize)]
pub struct AppCredIdentity<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<&'a str>,
    #[serde(serialize_with = "expose")]
    pub(super) secret: &'a Secret,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) user: Option<UserBody<'a>>,
}

/// `auth.identity.password`.
#[derive(Debug, Serialize)]
pub struct PasswordIdentity<'a> {
    user: PasswordUser<'a>,
}

/// `auth.identity.password.user`: the user and the password.
#[derive(Debug, Serialize)]
pub struct PasswordUser<'a> {
    #[serde(flatten)]
    pub(super) user: UserBody<'a>,
    #[serde(serialize_with = "expose")]
    pub(super) password: &'a Secret,
}

/// `auth.identity.token`.
#[derive(Debug, Serialize)]
pub struct TokenIdentity<'a> {
    #[serde(serialize_with = "expose")]
    id: &'a Secret,
}

/// A user: `{"id": ..}` or `{"domain": {..}, "name": ..}`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum UserBody<'a> {
    /// By id.
    Id {
        /// User id.
        id: &'a str,
    },
    /// By name in a domain.
    Name {
        /// The user's domain.
        domain: DomainBody<'a>,
        /// User name.
        name: &'a str,
    },
}

/// A domain: `{"id": ..}` or `{"name": ..}`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum DomainBody<'a> {
    /// By id (`default` when none is given).
    Id {
        /// Domain id.
        id: &'a str,
    },
    /// By name.
    Name {
        /// Domain name.
        name: &'a str,
    },
}

/// `auth.scope`: a project.
#[derive(Debug, Serialize)]
pub struct ScopeBody<'a> {
    pub(super) project: ProjectBody<'a>,
}

/// A project: `{"id": ..}` or `{"domain": {..}, "name": ..}`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ProjectBody<'a> {
    /// By id.
    Id {
        /// Project id.
        id: &'a str,
    },
    /// By name in a domain.
    Name {
        /// The project's domain.
        domain: DomainBody<'a>,
        /// Project name.
        name: &'a str,
    },
}

/// The body of `POST /v3/users/{id}/application_credentials`: `{"application_credential":
/// {..}}` (no secret: Keystone generates it).
#[derive(Debug, Serialize)]
pub struct NewApplicationCredentialBody<'a> {
    pub(super) application_credential: NewApplicationCredentialPart<'a>,
}

/// `application_credential` of a creation.
#[derive(Debug, Serialize)]
pub struct NewApplicationCredentialPart<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<&'a str>,
    /// Absent: it never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) expires_at: Option<&'a str>,
    pub(super) name: &'a str,
    /// Absent: every role of the token creating it.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub(super) roles: Vec<RoleName<'a>>,
}

/// `{"name": ..}` of a role.
#[derive(Debug, Serialize)]
pub struct RoleName<'a> {
    pub(super) name: &'a str,
}

/// Serializes a secret's value: the one way a [`Secret`] gets into a request body.
fn expose<S: Serializer>(secret: &&Secret, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rules_token_reads() {
        let body = r#"{"token":{"methods":["application_credential"],"user":{"domain":{"id":"d1","name":"k8s"},"id":"u1","name":"alice","password_expires_at":null},
            "audit_ids":["x"],"expires_at":"2026-11-28T16:09:51.000000Z","issued_at":"2026-11-28T15:09:51.000000Z",
            "project":{"domain":{"id":"d1","name":"k8s"},"id":"p1","name":"team-a"},"is_domain":false,
            "roles":[{"id":"r1","name":"k8s-viewer"}],
            "application_credential":{"id":"ac1","name":"kubectl-rules2","restricted":true,"access_rules":[{"id":"a","service":"k8s","path":"/api/v1/namespaces/*/pods","method":"GET"}]}}}"#;
        let t: TokenEnvelope = serde_json::from_str(body).unwrap();
        let ac = t.token.application_credential.unwrap();
        assert_eq!(ac.access_rules[0].service, "k8s");
        assert_eq!(t.token.project.unwrap().name, "team-a");
    }

    #[test]
    fn unscoped_token_reads() {
        let body = r#"{"token":{"methods":["password"],"user":{"domain":{"id":"d","name":"k8s"},"id":"u","name":"bob"},"audit_ids":["x"],"expires_at":"2026-11-28T16:23:32.000000Z","issued_at":"2026-11-28T15:23:32.000000Z"}}"#;
        let t: TokenEnvelope = serde_json::from_str(body).unwrap();
        assert!(t.token.project.is_none());
        assert!(t.token.roles.is_empty());
    }
}
