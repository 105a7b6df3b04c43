//! What can be asked of Keystone: the credentials of `POST /v3/auth/tokens` ([`AuthRequest`])
//! and a new application credential ([`NewApplicationCredential`]), and the one way each becomes
//! its JSON body (the typed bodies of [`super::types`]).

use super::types::{
    AppCredIdentity, Auth, AuthBody, DomainBody, Identity, NewApplicationCredentialBody,
    NewApplicationCredentialPart, PasswordUser, ProjectBody, RoleName, ScopeBody, UserBody,
};
use crate::secret::Secret;

/// A user, by id or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// By id.
    Id(String),
    /// By name, in the domain given by id or name.
    Name {
        /// User name.
        name: String,
        /// Domain id (preferred) ...
        domain_id: Option<String>,
        /// ... or domain name.
        domain_name: Option<String>,
    },
}

/// What a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A project by id.
    ProjectId(String),
    /// A project by name within a domain (by id or by name).
    ProjectName {
        /// Project name.
        name: String,
        /// Domain id (preferred) ...
        domain_id: Option<String>,
        /// ... or domain name.
        domain_name: Option<String>,
    },
    /// No explicit scope (Keystone uses the user's default project, if any).
    Unscoped,
}

/// Credentials for `POST /v3/auth/tokens`.
///
/// `S` is the type of the secret of the application credential and password flows: a
/// [`Secret`] in a request that can be sent; the kubectl plugin resolves its settings into an
/// `AuthRequest<Option<Secret>>` first, the secret being asked for last (see
/// [`AuthRequest::try_map_secret`]). The token of the token flow is always there: it is the
/// identity itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest<S = Secret> {
    /// An application credential, by id, or by name plus its user.
    ApplicationCredential {
        /// Credential id (enough on its own with the secret).
        id: Option<String>,
        /// Credential name (needs `user`).
        name: Option<String>,
        /// The owner, when the credential is named.
        user: Option<UserRef>,
        /// The secret.
        secret: S,
    },
    /// User name or id and password.
    Password {
        /// Who.
        user: UserRef,
        /// Password.
        password: S,
        /// Scope asked for.
        scope: Scope,
    },
    /// An existing token (for example a federated user's session token), rescoped.
    Token {
        /// The token.
        token: Secret,
        /// Scope asked for.
        scope: Scope,
    },
}

impl<S> AuthRequest<S> {
    /// The same request with the secret of the application credential or password flow turned
    /// into `f`'s `Ok` (the token flow has no such secret: `f` is not called); `f`'s `Err`
    /// stops it.
    pub fn try_map_secret<T, E>(
        self,
        f: impl FnOnce(S) -> Result<T, E>,
    ) -> Result<AuthRequest<T>, E> {
        Ok(match self {
            AuthRequest::ApplicationCredential {
                id,
                name,
                user,
                secret,
            } => AuthRequest::ApplicationCredential {
                id,
                name,
                user,
                secret: f(secret)?,
            },
            AuthRequest::Password {
                user,
                password,
                scope,
            } => AuthRequest::Password {
                user,
                password: f(password)?,
                scope,
            },
            AuthRequest::Token { token, scope } => AuthRequest::Token { token, scope },
        })
    }
}

/// `{"id": ..}`, else `{"name": ..}`, else the default domain, `{"id": "default"}`.
fn domain<'a>(id: &'a Option<String>, name: &'a Option<String>) -> DomainBody<'a> {
    match (id, name) {
        (Some(id), _) => DomainBody::Id { id },
        (None, Some(name)) => DomainBody::Name { name },
        (None, None) => DomainBody::Id { id: "default" },
    }
}

impl UserRef {
    fn to_body(&self) -> UserBody<'_> {
        match self {
            UserRef::Id(id) => UserBody::Id { id },
            UserRef::Name {
                name,
                domain_id,
                domain_name,
            } => UserBody::Name {
                domain: domain(domain_id, domain_name),
                name,
            },
        }
    }
}

impl Scope {
    fn to_body(&self) -> Option<ScopeBody<'_>> {
        let project = match self {
            Scope::ProjectId(id) => ProjectBody::Id { id },
            Scope::ProjectName {
                name,
                domain_id,
                domain_name,
            } => ProjectBody::Name {
                domain: domain(domain_id, domain_name),
                name,
            },
            Scope::Unscoped => return None,
        };
        Some(ScopeBody { project })
    }
}

impl AuthRequest {
    /// The JSON body of `POST /v3/auth/tokens`. This is the one place where secrets are put into
    /// a request body. An application credential with an id is sent by id alone.
    pub fn to_body(&self) -> AuthBody<'_> {
        let (identity, scope) = match self {
            AuthRequest::ApplicationCredential {
                id,
                name,
                user,
                secret,
            } => {
                let part = match id {
                    Some(id) => AppCredIdentity {
                        id: Some(id),
                        name: None,
                        secret,
                        user: None,
                    },
                    None => AppCredIdentity {
                        id: None,
                        name: name.as_deref(),
                        secret,
                        user: user.as_ref().map(UserRef::to_body),
                    },
                };
                (Identity::application_credential(part), None)
            }
            AuthRequest::Password {
                user,
                password,
                scope,
            } => (
                Identity::password(PasswordUser {
                    user: user.to_body(),
                    password,
                }),
                scope.to_body(),
            ),
            AuthRequest::Token { token, scope } => (Identity::token(token), scope.to_body()),
        };
        AuthBody {
            auth: Auth { identity, scope },
        }
    }
}

/// What `POST /v3/users/{id}/application_credentials` is asked to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewApplicationCredential {
    /// Name, unique per user.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Expiry (RFC 3339); `None`: never.
    pub expires_at: Option<String>,
    /// Role names, a subset of the token's roles; empty: all of them.
    pub roles: Vec<String>,
}

impl NewApplicationCredential {
    /// The JSON body (no secret: Keystone generates it).
    pub fn to_body(&self) -> NewApplicationCredentialBody<'_> {
        NewApplicationCredentialBody {
            application_credential: NewApplicationCredentialPart {
                description: self.description.as_deref(),
                expires_at: self.expires_at.as_deref(),
                name: &self.name,
                roles: self.roles.iter().map(|name| RoleName { name }).collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `POST /v3/auth/tokens` bodies of every flow, byte for byte, as Keystone's API reference
    /// documents them ("Authenticating with an Application Credential", "Password
    /// authentication with scoped authorization", "Token authentication with unscoped
    /// authorization", ...). Members are in alphabetical order, which is how these bodies have
    /// always been sent.
    fn auth_goldens() -> Vec<(&'static str, AuthRequest, &'static str)> {
        let name = |name: &str, domain_id: Option<&str>, domain_name: Option<&str>| UserRef::Name {
            name: name.into(),
            domain_id: domain_id.map(Into::into),
            domain_name: domain_name.map(Into::into),
        };
        let project =
            |name: &str, domain_id: Option<&str>, domain_name: Option<&str>| Scope::ProjectName {
                name: name.into(),
                domain_id: domain_id.map(Into::into),
                domain_name: domain_name.map(Into::into),
            };
        let pw = || Secret::new("pw-SEKRET");
        let ac_secret = || Secret::new("ac-SEKRET");
        let token = || Secret::new("gAAAAA-SEKRET");
        vec![
            (
                "password, user by id, unscoped",
                AuthRequest::Password {
                    user: UserRef::Id("u1".into()),
                    password: pw(),
                    scope: Scope::Unscoped,
                },
                r#"{"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"u1","password":"pw-SEKRET"}}}}}"#,
            ),
            (
                "password, user by name in a domain by name, project by id",
                AuthRequest::Password {
                    user: name("alice", None, Some("k8s")),
                    password: pw(),
                    scope: Scope::ProjectId("p1".into()),
                },
                r#"{"auth":{"identity":{"methods":["password"],"password":{"user":{"domain":{"name":"k8s"},"name":"alice","password":"pw-SEKRET"}}},"scope":{"project":{"id":"p1"}}}}"#,
            ),
            (
                "password, user by name in a domain by id, project by name in a domain by name",
                AuthRequest::Password {
                    user: name("alice", Some("d1"), None),
                    password: pw(),
                    scope: project("team-a", None, Some("k8s")),
                },
                r#"{"auth":{"identity":{"methods":["password"],"password":{"user":{"domain":{"id":"d1"},"name":"alice","password":"pw-SEKRET"}}},"scope":{"project":{"domain":{"name":"k8s"},"name":"team-a"}}}}"#,
            ),
            (
                "password, no domains: the default domain for the user and the project",
                AuthRequest::Password {
                    user: name("alice", None, None),
                    password: pw(),
                    scope: project("team-a", None, None),
                },
                r#"{"auth":{"identity":{"methods":["password"],"password":{"user":{"domain":{"id":"default"},"name":"alice","password":"pw-SEKRET"}}},"scope":{"project":{"domain":{"id":"default"},"name":"team-a"}}}}"#,
            ),
            (
                "password, a domain id wins over a domain name",
                AuthRequest::Password {
                    user: name("alice", Some("d1"), Some("k8s")),
                    password: pw(),
                    scope: project("team-a", Some("d2"), Some("other")),
                },
                r#"{"auth":{"identity":{"methods":["password"],"password":{"user":{"domain":{"id":"d1"},"name":"alice","password":"pw-SEKRET"}}},"scope":{"project":{"domain":{"id":"d2"},"name":"team-a"}}}}"#,
            ),
            (
                "token, unscoped",
                AuthRequest::Token {
                    token: token(),
                    scope: Scope::Unscoped,
                },
                r#"{"auth":{"identity":{"methods":["token"],"token":{"id":"gAAAAA-SEKRET"}}}}"#,
            ),
            (
                "token, project by id",
                AuthRequest::Token {
                    token: token(),
                    scope: Scope::ProjectId("p1".into()),
                },
                r#"{"auth":{"identity":{"methods":["token"],"token":{"id":"gAAAAA-SEKRET"}},"scope":{"project":{"id":"p1"}}}}"#,
            ),
            (
                "token, project by name in a domain by id",
                AuthRequest::Token {
                    token: token(),
                    scope: project("team-a", Some("d1"), None),
                },
                r#"{"auth":{"identity":{"methods":["token"],"token":{"id":"gAAAAA-SEKRET"}},"scope":{"project":{"domain":{"id":"d1"},"name":"team-a"}}}}"#,
            ),
            (
                "application credential by id",
                AuthRequest::ApplicationCredential {
                    id: Some("ac1".into()),
                    name: None,
                    user: None,
                    secret: ac_secret(),
                },
                r#"{"auth":{"identity":{"application_credential":{"id":"ac1","secret":"ac-SEKRET"},"methods":["application_credential"]}}}"#,
            ),
            (
                "application credential by id: a name and user given too are left out",
                AuthRequest::ApplicationCredential {
                    id: Some("ac1".into()),
                    name: Some("kubectl".into()),
                    user: Some(UserRef::Id("u1".into())),
                    secret: ac_secret(),
                },
                r#"{"auth":{"identity":{"application_credential":{"id":"ac1","secret":"ac-SEKRET"},"methods":["application_credential"]}}}"#,
            ),
            (
                "application credential by name, user by name in a domain by name",
                AuthRequest::ApplicationCredential {
                    id: None,
                    name: Some("kubectl".into()),
                    user: Some(name("alice", None, Some("k8s"))),
                    secret: ac_secret(),
                },
                r#"{"auth":{"identity":{"application_credential":{"name":"kubectl","secret":"ac-SEKRET","user":{"domain":{"name":"k8s"},"name":"alice"}},"methods":["application_credential"]}}}"#,
            ),
            (
                "application credential by name, user by id",
                AuthRequest::ApplicationCredential {
                    id: None,
                    name: Some("kubectl".into()),
                    user: Some(UserRef::Id("u1".into())),
                    secret: ac_secret(),
                },
                r#"{"auth":{"identity":{"application_credential":{"name":"kubectl","secret":"ac-SEKRET","user":{"id":"u1"}},"methods":["application_credential"]}}}"#,
            ),
            (
                "application credential by name, user by name in the default domain",
                AuthRequest::ApplicationCredential {
                    id: None,
                    name: Some("kubectl".into()),
                    user: Some(name("alice", None, None)),
                    secret: ac_secret(),
                },
                r#"{"auth":{"identity":{"application_credential":{"name":"kubectl","secret":"ac-SEKRET","user":{"domain":{"id":"default"},"name":"alice"}},"methods":["application_credential"]}}}"#,
            ),
        ]
    }

    #[test]
    fn auth_bodies_are_the_golden_json() {
        for (what, request, golden) in auth_goldens() {
            let body = serde_json::to_string(&request.to_body()).unwrap();
            assert_eq!(body, golden, "{what}");
        }
    }

    #[test]
    fn new_application_credential_bodies_are_the_golden_json() {
        for (what, request, golden) in [
            (
                "name only",
                NewApplicationCredential {
                    name: "kubectl".into(),
                    ..Default::default()
                },
                r#"{"application_credential":{"name":"kubectl"}}"#,
            ),
            (
                "everything",
                NewApplicationCredential {
                    name: "kubectl".into(),
                    description: Some("kubectl access to https://k8s:6443".into()),
                    expires_at: Some("2027-06-30T00:00:00Z".into()),
                    roles: vec!["k8s-viewer".into(), "member".into()],
                },
                r#"{"application_credential":{"description":"kubectl access to https://k8s:6443","expires_at":"2027-06-30T00:00:00Z","name":"kubectl","roles":[{"name":"k8s-viewer"},{"name":"member"}]}}"#,
            ),
            (
                "an expiry, no description",
                NewApplicationCredential {
                    name: "k".into(),
                    expires_at: Some("2027-06-30T00:00:00Z".into()),
                    ..Default::default()
                },
                r#"{"application_credential":{"expires_at":"2027-06-30T00:00:00Z","name":"k"}}"#,
            ),
        ] {
            let body = serde_json::to_string(&request.to_body()).unwrap();
            assert_eq!(body, golden, "{what}");
        }
    }

    #[test]
    fn debug_of_requests_and_bodies_never_shows_a_secret() {
        for (what, request, golden) in auth_goldens() {
            let body = request.to_body();
            for shown in [
                format!("{request:?}"),
                format!("{body:?}"),
                format!("{body:#?}"),
            ] {
                assert!(!shown.contains("SEKRET"), "{what}: {shown}");
                assert!(shown.contains("<redacted>"), "{what}: {shown}");
            }
            assert!(golden.contains("SEKRET"), "{what}: the body does carry it");
        }
        let pending: AuthRequest<Option<Secret>> = AuthRequest::Password {
            user: UserRef::Id("u1".into()),
            password: Some(Secret::new("pw-SEKRET")),
            scope: Scope::Unscoped,
        };
        assert!(!format!("{pending:?}").contains("SEKRET"));
    }

    #[test]
    fn the_secret_is_mapped_in_the_two_flows_that_have_one() {
        type Pending = AuthRequest<Option<Secret>>;
        let missing = |r: Pending| r.try_map_secret(|s| s.ok_or("missing"));
        let ac = Pending::ApplicationCredential {
            id: Some("ac1".into()),
            name: None,
            user: None,
            secret: Some(Secret::new("s")),
        };
        assert_eq!(
            missing(ac),
            Ok(AuthRequest::ApplicationCredential {
                id: Some("ac1".into()),
                name: None,
                user: None,
                secret: Secret::new("s"),
            })
        );
        let pw = Pending::Password {
            user: UserRef::Id("u1".into()),
            password: None,
            scope: Scope::ProjectId("p".into()),
        };
        assert_eq!(missing(pw), Err("missing"));
        let token = Pending::Token {
            token: Secret::new("t"),
            scope: Scope::Unscoped,
        };
        assert_eq!(
            token.try_map_secret(|_: Option<Secret>| -> Result<Secret, ()> {
                panic!("the token flow has no other secret")
            }),
            Ok(AuthRequest::Token {
                token: Secret::new("t"),
                scope: Scope::Unscoped,
            })
        );
    }
}
