//! Settings of the plugin: flags, then the openstack client's `OS_*` environment, then the cloud
//! of `clouds.yaml`/`secure.yaml` named by `OS_CLOUD`, merged into one typed, validated
//! [`Plan`]. Pure: the caller reads flags, environment and files and hands them over as
//! [`Layer`]s.
//!
//! Settings that belong together are decided as a group by the first layer that sets any of
//! them: the user (id or name), the project (id or name), the application credential (id or
//! name), the user's domain and the project's domain (id or name, with the `--domain-*`
//! defaults of the same layer). So `--project-name` beats `OS_PROJECT_ID`, never the reverse.
//!
//! Each setting is one row of one table (`fields!`): its flag, its `OS_*` variable, its key in
//! a cloud, whether it is a secret and the words for it; tests check the table against the
//! flags of [`super::cli`] and [`Layer::from_env`].
//!
//! Which flow is used is decided the same way: the first layer that names a type
//! (`--auth-type`/`OS_AUTH_TYPE`/`auth_type`: `v3applicationcredential`, `password`, `token`) or
//! holds a credential decides it; without a type, an application-credential setting picks the
//! application credential, a token the token flow, a user or a password the password flow.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use reqwest::Url;
use sha2::{Digest, Sha256};

use kk_core::keystone::{AuthRequest, Scope, UserRef, normalize_url};
use kk_core::secret::Secret;

/// Declares [`Field`] and its row of the table `FIELDS` together, one line per setting: its flag, its
/// environment variable (and an older alias), its place in a cloud of `clouds.yaml`, whether it
/// is a secret, and the words for it in messages and prompts.
macro_rules! fields {
    ($($field:ident: $flag:literal, $var:literal $(or $alias:literal)?, $cloud:literal, $kind:ident, $describe:literal;)+) => {
        /// One setting, with its flag, its environment variable and its key in `clouds.yaml`
        /// (one row of the table of `settings.rs`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Field {
            $(
                #[doc = concat!("The ", $describe, ": `", $flag, "`, `", $var, "`, `", $cloud, "` in a cloud.")]
                $field,
            )+
        }

        impl Field {
            /// Every field, in the order of the table.
            pub const ALL: [Field; FIELDS.len()] = [$(Field::$field),+];
        }

        /// The settings, one row per [`Field`], in its order.
        const FIELDS: [FieldInfo; [$(stringify!($field)),+].len()] = [$(
            FieldInfo {
                flag: $flag,
                var: $var,
                alias: fields!(@alias $($alias)?),
                cloud: $cloud,
                secret: fields!(@kind $kind),
                describe: $describe,
            },
        )+];
    };
    (@alias) => { None };
    (@alias $alias:literal) => { Some($alias) };
    (@kind plain) => { false };
    (@kind secret) => { true };
}

fields! {
    // field            flag                               variable [or alias]                        in a cloud                              kind    words
    AuthUrl:            "--keystone-url",                  "OS_AUTH_URL",                             "auth.auth_url",                        plain,  "Keystone URL";
    AuthType:           "--auth-type",                     "OS_AUTH_TYPE",                            "auth_type",                            plain,  "authentication type";
    UserName:           "--user-name",                     "OS_USERNAME",                             "auth.username",                        plain,  "user name";
    UserId:             "--user-id",                       "OS_USER_ID",                              "auth.user_id",                         plain,  "user id";
    UserDomainName:     "--user-domain-name",              "OS_USER_DOMAIN_NAME",                     "auth.user_domain_name",                plain,  "user domain name";
    UserDomainId:       "--user-domain-id",                "OS_USER_DOMAIN_ID",                       "auth.user_domain_id",                  plain,  "user domain id";
    ProjectName:        "--project-name",                  "OS_PROJECT_NAME" or "OS_TENANT_NAME",     "auth.project_name",                    plain,  "project name";
    ProjectId:          "--project-id",                    "OS_PROJECT_ID" or "OS_TENANT_ID",         "auth.project_id",                      plain,  "project id";
    ProjectDomainName:  "--project-domain-name",           "OS_PROJECT_DOMAIN_NAME",                  "auth.project_domain_name",             plain,  "project domain name";
    ProjectDomainId:    "--project-domain-id",             "OS_PROJECT_DOMAIN_ID",                    "auth.project_domain_id",               plain,  "project domain id";
    DomainName:         "--domain-name",                   "OS_DOMAIN_NAME",                          "auth.domain_name",                     plain,  "domain name";
    DomainId:           "--domain-id",                     "OS_DOMAIN_ID",                            "auth.domain_id",                       plain,  "domain id";
    DefaultDomain:      "--default-domain",                "OS_DEFAULT_DOMAIN",                       "auth.default_domain",                  plain,  "default domain id";
    Password:           "--password",                      "OS_PASSWORD",                             "auth.password",                        secret, "password";
    Token:              "--token",                         "OS_TOKEN" or "OS_AUTH_TOKEN",             "auth.token",                           secret, "Keystone token";
    AppCredId:          "--application-credential-id",     "OS_APPLICATION_CREDENTIAL_ID",            "auth.application_credential_id",       plain,  "application credential id";
    AppCredName:        "--application-credential-name",   "OS_APPLICATION_CREDENTIAL_NAME",          "auth.application_credential_name",     plain,  "application credential name";
    AppCredSecret:      "--application-credential-secret", "OS_APPLICATION_CREDENTIAL_SECRET",        "auth.application_credential_secret",   secret, "application credential secret";
    CaCert:             "--cacert",                        "OS_CACERT",                               "cacert",                               plain,  "Keystone CA file";
    Cert:               "--cert",                          "OS_CERT",                                 "cert",                                 plain,  "client certificate file";
    Key:                "--key",                           "OS_KEY",                                  "key",                                  plain,  "client key file";
}

/// One row of the settings table.
#[derive(Debug)]
struct FieldInfo {
    /// The command-line flag.
    flag: &'static str,
    /// The openstack client's environment variable.
    var: &'static str,
    /// Another variable read when `var` is unset (`OS_AUTH_TOKEN`, older than `OS_TOKEN`).
    alias: Option<&'static str>,
    /// Its place in a cloud of `clouds.yaml`: `auth.KEY`, or `KEY` outside `auth:`.
    cloud: &'static str,
    /// A secret: never printed, prompted without echo, not trimmed.
    secret: bool,
    /// Words for messages and prompts.
    describe: &'static str,
}

impl Field {
    fn info(self) -> &'static FieldInfo {
        &FIELDS[self as usize]
    }

    /// The command-line flag.
    pub fn flag(self) -> &'static str {
        self.info().flag
    }

    /// The openstack client's environment variable.
    pub fn var(self) -> &'static str {
        self.info().var
    }

    /// Another variable read when [`Field::var`] is unset, if any.
    pub fn alias(self) -> Option<&'static str> {
        self.info().alias
    }

    /// Its place in a cloud of `clouds.yaml`, as written in messages: `auth.password`, `cacert`.
    pub fn cloud_path(self) -> &'static str {
        self.info().cloud
    }

    /// Its key in a cloud of `clouds.yaml` (under `auth:` unless [`Field::in_auth`] is false).
    pub fn cloud_key(self) -> &'static str {
        let path = self.cloud_path();
        path.strip_prefix("auth.").unwrap_or(path)
    }

    /// Whether the `clouds.yaml` key lives under `auth:`.
    pub fn in_auth(self) -> bool {
        self.cloud_path().starts_with("auth.")
    }

    /// Whether the value is a secret (never printed, prompted without echo).
    pub fn is_secret(self) -> bool {
        self.info().secret
    }

    /// Words for messages and prompts.
    pub fn describe(self) -> &'static str {
        self.info().describe
    }
}

/// Where a layer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The command line.
    Flags,
    /// The `OS_*` environment variables.
    Environment,
    /// A cloud of `clouds.yaml` (and `secure.yaml`).
    Cloud {
        /// The cloud's name.
        name: String,
        /// The file it was read from.
        file: PathBuf,
    },
    /// Typed on the terminal.
    Prompt,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flags => f.write_str("the command line"),
            Origin::Environment => f.write_str("the environment"),
            Origin::Cloud { name, file } => write!(f, "cloud {name:?} of {}", file.display()),
            Origin::Prompt => f.write_str("the terminal"),
        }
    }
}

/// Settings from one source. Every value is kept as a [`Secret`] so that a `Debug` of a layer
/// never shows a password; empty values count as unset.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Where the values come from.
    pub origin: Origin,
    values: BTreeMap<Field, Secret>,
}

impl Layer {
    /// An empty layer.
    pub fn new(origin: Origin) -> Self {
        Self {
            origin,
            values: BTreeMap::new(),
        }
    }

    /// Sets a field; empty or blank values are ignored.
    pub fn set(&mut self, field: Field, value: impl Into<String>) {
        let value: String = value.into();
        let value = if field.is_secret() {
            value
        } else {
            value.trim().to_string()
        };
        if !value.is_empty() {
            self.values.insert(field, Secret::new(value));
        }
    }

    /// Sets a field if `value` is `Some`.
    pub fn set_opt(&mut self, field: Field, value: Option<impl Into<String>>) {
        if let Some(v) = value {
            self.set(field, v);
        }
    }

    /// The value of a field.
    pub fn get(&self, field: Field) -> Option<&Secret> {
        self.values.get(&field)
    }

    /// The environment layer: each field's `OS_*` variable, else its alias (`OS_AUTH_TOKEN`).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut layer = Self::new(Origin::Environment);
        for f in Field::ALL {
            layer.set_opt(f, env(f.var()));
            if let Some(alias) = f.alias()
                && layer.get(f).is_none()
            {
                layer.set_opt(f, env(alias));
            }
        }
        layer
    }

    fn has_any(&self, fields: &[Field]) -> bool {
        fields.iter().any(|f| self.values.contains_key(f))
    }
}

/// The three flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// `v3applicationcredential`
    ApplicationCredential,
    /// `password`
    Password,
    /// `token`
    Token,
}

impl AuthType {
    /// The name the openstack client uses (`OS_AUTH_TYPE`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::ApplicationCredential => "v3applicationcredential",
            AuthType::Password => "password",
            AuthType::Token => "token",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "v3applicationcredential" | "applicationcredential" | "application_credential" => {
                Some(AuthType::ApplicationCredential)
            }
            "password" | "v3password" => Some(AuthType::Password),
            "token" | "v3token" => Some(AuthType::Token),
            _ => None,
        }
    }
}

/// What is wrong with the settings. Errors name the flag and the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A required setting has no value in any layer.
    #[error("{}", missing_message(.field, .alternative))]
    Missing {
        /// What is missing (the one that would be prompted for).
        field: Field,
        /// Another setting that would do instead (a user id instead of a user name).
        alternative: Option<Field>,
    },
    /// A value is not valid.
    #[error("invalid {} {value:?} (from {origin}, {} / {}): {reason}", .field.describe(), .field.flag(), .field.var())]
    Invalid {
        /// Which setting.
        field: Field,
        /// The value (never a secret's).
        value: String,
        /// Where it came from.
        origin: String,
        /// Why.
        reason: String,
    },
}

fn missing_message(field: &Field, alternative: &Option<Field>) -> String {
    let mut s = format!(
        "no {}: give {} or set {}",
        field.describe(),
        field.flag(),
        field.var()
    );
    if let Some(a) = alternative {
        s.push_str(&format!(
            " (or the {}: {} or {})",
            a.describe(),
            a.flag(),
            a.var()
        ));
    }
    s.push_str(&format!(
        ", or put {} in the cloud named by OS_CLOUD in clouds.yaml",
        field.cloud_path()
    ));
    s
}

/// TLS files for talking to Keystone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA bundle.
    pub cacert: Option<PathBuf>,
    /// Client certificate and key.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// The flow with its settings: Keystone's request, whose secret (password, application
/// credential secret) may still be missing: it is asked for last, after the token cache had its
/// chance ([`Plan::set_secret`], [`Plan::auth_request`]).
pub type Method = AuthRequest<Option<Secret>>;

/// Everything needed to get a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The Keystone v3 base URL.
    pub url: Url,
    /// TLS files.
    pub tls: TlsFiles,
    /// The flow.
    pub method: Method,
}

impl Plan {
    /// The flow's name.
    pub fn auth_type(&self) -> AuthType {
        match self.method {
            Method::ApplicationCredential { .. } => AuthType::ApplicationCredential,
            Method::Password { .. } => AuthType::Password,
            Method::Token { .. } => AuthType::Token,
        }
    }

    /// Who this is, without any secret: the cache key is a hash of this and the URL. For the
    /// token flow the identity is the SHA-256 of the token (the token itself never).
    pub fn identity(&self) -> String {
        fn user(u: &UserRef) -> String {
            match u {
                UserRef::Id(id) => format!("user_id={id}"),
                UserRef::Name {
                    name,
                    domain_id,
                    domain_name,
                } => format!(
                    "user_name={name} user_domain_id={} user_domain_name={}",
                    domain_id.as_deref().unwrap_or(""),
                    domain_name.as_deref().unwrap_or("")
                ),
            }
        }
        fn scope(s: &Scope) -> String {
            match s {
                Scope::ProjectId(id) => format!("project_id={id}"),
                Scope::ProjectName {
                    name,
                    domain_id,
                    domain_name,
                } => format!(
                    "project_name={name} project_domain_id={} project_domain_name={}",
                    domain_id.as_deref().unwrap_or(""),
                    domain_name.as_deref().unwrap_or("")
                ),
                Scope::Unscoped => "unscoped".into(),
            }
        }
        match &self.method {
            Method::ApplicationCredential {
                id, name, user: u, ..
            } => match (id, name, u) {
                (Some(id), _, _) => format!("application_credential id={id}"),
                (None, Some(name), Some(u)) => {
                    format!("application_credential name={name} {}", user(u))
                }
                _ => "application_credential".into(),
            },
            Method::Password {
                user: u, scope: s, ..
            } => {
                format!("password {} {}", user(u), scope(s))
            }
            Method::Token { token, scope: s } => {
                let digest = Sha256::digest(token.expose().as_bytes());
                let hex = kk_core::hex::encode(&digest);
                format!("token sha256={hex} {}", scope(s))
            }
        }
    }

    /// The name of this credential's refusal file (see [`super::cache::Refusal`]): a SHA-256
    /// of the whole credential input, the URL, the flow, every user, domain, project and
    /// credential identifier and the secret, so that a corrected secret is another credential.
    /// Each field is length-prefixed, so no two different inputs hash the same bytes. `None`
    /// while the secret is still missing.
    pub fn refusal_key(&self) -> Option<String> {
        fn put(h: &mut Sha256, label: &str, value: Option<&str>) {
            h.update(label.as_bytes());
            match value {
                Some(v) => {
                    h.update(b"=");
                    h.update((v.len() as u64).to_be_bytes());
                    h.update(v.as_bytes());
                }
                None => h.update(b"-"),
            }
            h.update(b"\n");
        }
        fn user(h: &mut Sha256, u: Option<&UserRef>) {
            match u {
                None => put(h, "user", None),
                Some(UserRef::Id(id)) => put(h, "user_id", Some(id)),
                Some(UserRef::Name {
                    name,
                    domain_id,
                    domain_name,
                }) => {
                    put(h, "user_name", Some(name));
                    put(h, "user_domain_id", domain_id.as_deref());
                    put(h, "user_domain_name", domain_name.as_deref());
                }
            }
        }
        fn scope(h: &mut Sha256, s: &Scope) {
            match s {
                Scope::ProjectId(id) => put(h, "project_id", Some(id)),
                Scope::ProjectName {
                    name,
                    domain_id,
                    domain_name,
                } => {
                    put(h, "project_name", Some(name));
                    put(h, "project_domain_id", domain_id.as_deref());
                    put(h, "project_domain_name", domain_name.as_deref());
                }
                Scope::Unscoped => put(h, "unscoped", None),
            }
        }
        let mut h = Sha256::new();
        h.update(b"kubectl-keystone-auth refusal v1\n");
        put(&mut h, "url", Some(self.url.as_str()));
        put(&mut h, "flow", Some(self.auth_type().as_str()));
        match &self.method {
            Method::ApplicationCredential {
                id,
                name,
                user: u,
                secret,
            } => {
                put(&mut h, "application_credential_id", id.as_deref());
                put(&mut h, "application_credential_name", name.as_deref());
                user(&mut h, u.as_ref());
                put(&mut h, "secret", Some(secret.as_ref()?.expose()));
            }
            Method::Password {
                user: u,
                password,
                scope: s,
            } => {
                user(&mut h, Some(u));
                scope(&mut h, s);
                put(&mut h, "password", Some(password.as_ref()?.expose()));
            }
            Method::Token { token, scope: s } => {
                scope(&mut h, s);
                put(&mut h, "token", Some(token.expose()));
            }
        }
        Some(kk_core::hex::encode(&h.finalize()))
    }

    /// The secret this flow still needs, if any.
    pub fn missing_secret(&self) -> Option<Field> {
        match &self.method {
            Method::ApplicationCredential { secret: None, .. } => Some(Field::AppCredSecret),
            Method::Password { password: None, .. } => Some(Field::Password),
            _ => None,
        }
    }

    /// Fills the missing secret (typed on the terminal).
    pub fn set_secret(&mut self, value: Secret) {
        match &mut self.method {
            Method::ApplicationCredential { secret, .. } => *secret = Some(value),
            Method::Password { password, .. } => *password = Some(value),
            Method::Token { .. } => {}
        }
    }

    /// The request for `POST /v3/auth/tokens`; `Err` names the missing secret.
    pub fn auth_request(&self) -> Result<AuthRequest, SettingsError> {
        let field = match self.method {
            Method::Password { .. } => Field::Password,
            _ => Field::AppCredSecret,
        };
        self.method.clone().try_map_secret(|secret| {
            secret.ok_or(SettingsError::Missing {
                field,
                alternative: None,
            })
        })
    }
}

/// The layers, highest priority first.
pub struct Layers<'a>(pub &'a [Layer]);

impl Layers<'_> {
    /// The first value of a field, and where it came from.
    pub fn get(&self, field: Field) -> Option<(&Secret, &Origin)> {
        self.0
            .iter()
            .find_map(|l| l.get(field).map(|v| (v, &l.origin)))
    }

    fn text(&self, field: Field) -> Option<String> {
        self.get(field).map(|(v, _)| v.expose().to_string())
    }

    fn secret(&self, field: Field) -> Option<Secret> {
        self.get(field).map(|(v, _)| v.clone())
    }
}

const APP_CRED_FIELDS: [Field; 3] = [Field::AppCredId, Field::AppCredName, Field::AppCredSecret];

/// Settings that only make sense together: the first layer (flags, then environment, then the
/// cloud) that sets any member of a group decides the whole group, so that a lower layer's
/// member never mixes with or beats a higher layer's (`--project-name` beats `OS_PROJECT_ID`).
pub const USER_GROUP: [Field; 2] = [Field::UserId, Field::UserName];
/// The project (the scope).
pub const PROJECT_GROUP: [Field; 2] = [Field::ProjectId, Field::ProjectName];
/// The application credential (its secret is a field of its own).
pub const APP_CRED_GROUP: [Field; 2] = [Field::AppCredId, Field::AppCredName];
/// The user's domain (with the `--domain-*` defaults of the same layer).
pub const USER_DOMAIN_GROUP: [Field; 5] = [
    Field::UserDomainId,
    Field::UserDomainName,
    Field::DomainId,
    Field::DomainName,
    Field::DefaultDomain,
];
/// The project's domain (with the `--domain-*` defaults of the same layer).
pub const PROJECT_DOMAIN_GROUP: [Field; 5] = [
    Field::ProjectDomainId,
    Field::ProjectDomainName,
    Field::DomainId,
    Field::DomainName,
    Field::DefaultDomain,
];

/// A domain as (id, name): the specific setting, else `--domain-*`, else, when neither gives
/// an id or a name, `--default-domain` as the id (gophercloud's and osc-lib's rule).
fn domain_of(d: Option<&Layer>, id: Field, name: Field) -> (Option<String>, Option<String>) {
    let found_id = text_of(d, id).or_else(|| text_of(d, Field::DomainId));
    let found_name = text_of(d, name).or_else(|| text_of(d, Field::DomainName));
    match (found_id, found_name) {
        (None, None) => (text_of(d, Field::DefaultDomain), None),
        other => other,
    }
}
/// Settings that decide the flow: an explicit type, or a credential implying one.
const FLOW_FIELDS: [Field; 8] = [
    Field::AuthType,
    Field::UserId,
    Field::AppCredId,
    Field::AppCredName,
    Field::AppCredSecret,
    Field::Token,
    Field::Password,
    Field::UserName,
];

impl<'a> Layers<'a> {
    /// The first layer that sets any field of `group`.
    pub fn group(&self, group: &[Field]) -> Option<&'a Layer> {
        self.0.iter().find(|l| l.has_any(group))
    }
}

fn text_of(layer: Option<&Layer>, field: Field) -> Option<String> {
    layer
        .and_then(|l| l.get(field))
        .map(|v| v.expose().to_string())
}

/// Decides the flow and checks that every non-secret setting it needs is there.
pub fn resolve(layers: &[Layer]) -> Result<Plan, SettingsError> {
    let l = Layers(layers);
    let url_raw = l.get(Field::AuthUrl).ok_or(SettingsError::Missing {
        field: Field::AuthUrl,
        alternative: None,
    })?;
    // normalize_url's reasons quote only the redacted URL (no user info, query or fragment),
    // and so does the value shown here.
    let url = normalize_url(url_raw.0.expose()).map_err(|reason| SettingsError::Invalid {
        field: Field::AuthUrl,
        reason,
        value: kk_core::urls::redact_url(url_raw.0.expose().trim()),
        origin: url_raw.1.to_string(),
    })?;
    // The flow: the first layer that names a type or holds a credential decides it.
    let flow_layer = l.group(&FLOW_FIELDS);
    let auth_type = match flow_layer.and_then(|fl| fl.get(Field::AuthType).map(|v| (v, fl))) {
        Some((v, fl)) => AuthType::parse(v.expose()).ok_or_else(|| SettingsError::Invalid {
            field: Field::AuthType,
            value: v.expose().to_string(),
            origin: fl.origin.to_string(),
            reason: "must be v3applicationcredential, password or token".into(),
        })?,
        None => flow_layer.map(infer_one).unwrap_or(AuthType::Password),
    };
    let user_domain = || {
        domain_of(
            l.group(&USER_DOMAIN_GROUP),
            Field::UserDomainId,
            Field::UserDomainName,
        )
    };
    let user = || -> Option<UserRef> {
        let u = l.group(&USER_GROUP);
        if let Some(id) = text_of(u, Field::UserId) {
            return Some(UserRef::Id(id));
        }
        let name = text_of(u, Field::UserName)?;
        let (domain_id, domain_name) = user_domain();
        Some(UserRef::Name {
            name,
            domain_id,
            domain_name,
        })
    };
    let scope = || {
        let p = l.group(&PROJECT_GROUP);
        if let Some(id) = text_of(p, Field::ProjectId) {
            return Scope::ProjectId(id);
        }
        match text_of(p, Field::ProjectName) {
            Some(name) => {
                let (domain_id, domain_name) = domain_of(
                    l.group(&PROJECT_DOMAIN_GROUP),
                    Field::ProjectDomainId,
                    Field::ProjectDomainName,
                );
                Scope::ProjectName {
                    name,
                    domain_id,
                    domain_name,
                }
            }
            None => Scope::Unscoped,
        }
    };
    let method = match auth_type {
        AuthType::ApplicationCredential => {
            let ac = l.group(&APP_CRED_GROUP);
            let id = text_of(ac, Field::AppCredId);
            let name = text_of(ac, Field::AppCredName);
            let owner = if id.is_none() {
                if name.is_none() {
                    return Err(SettingsError::Missing {
                        field: Field::AppCredId,
                        alternative: Some(Field::AppCredName),
                    });
                }
                Some(user().ok_or(SettingsError::Missing {
                    field: Field::UserName,
                    alternative: Some(Field::UserId),
                })?)
            } else {
                None
            };
            Method::ApplicationCredential {
                id,
                name,
                user: owner,
                secret: l.secret(Field::AppCredSecret),
            }
        }
        AuthType::Password => Method::Password {
            user: user().ok_or(SettingsError::Missing {
                field: Field::UserName,
                alternative: Some(Field::UserId),
            })?,
            password: l.secret(Field::Password),
            scope: scope(),
        },
        AuthType::Token => Method::Token {
            token: l.secret(Field::Token).ok_or(SettingsError::Missing {
                field: Field::Token,
                alternative: None,
            })?,
            scope: scope(),
        },
    };
    let path = |f: Field| l.text(f).map(PathBuf::from);
    let client = match (path(Field::Cert), path(Field::Key)) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(SettingsError::Missing {
                field: Field::Key,
                alternative: None,
            });
        }
        (None, Some(_)) => {
            return Err(SettingsError::Missing {
                field: Field::Cert,
                alternative: None,
            });
        }
    };
    Ok(Plan {
        url,
        tls: TlsFiles {
            cacert: path(Field::CaCert),
            client,
        },
        method,
    })
}

/// The flow a layer implies when it names none.
fn infer_one(layer: &Layer) -> AuthType {
    if layer.has_any(&APP_CRED_FIELDS) {
        AuthType::ApplicationCredential
    } else if layer.has_any(&[Field::Token]) {
        AuthType::Token
    } else {
        AuthType::Password
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kk_core::urls::redact_url;

    fn layer(origin: Origin, pairs: &[(Field, &str)]) -> Layer {
        let mut l = Layer::new(origin);
        for (f, v) in pairs {
            l.set(*f, *v);
        }
        l
    }

    const URL: (Field, &str) = (Field::AuthUrl, "http://ks:5000");

    #[test]
    fn the_refusal_key_covers_every_credential_input_and_the_secret() {
        let key = |pairs: &[(Field, &str)]| {
            resolve(&[layer(Origin::Environment, pairs)])
                .unwrap()
                .refusal_key()
        };
        let pw = [
            URL,
            (Field::UserName, "alice"),
            (Field::UserDomainName, "k8s"),
            (Field::ProjectName, "team-a"),
            (Field::ProjectDomainName, "k8s"),
            (Field::Password, "wrong"),
        ];
        let base = key(&pw).unwrap();
        assert_eq!(base.len(), 64);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(key(&pw), Some(base.clone()), "stable for the same input");
        // Every input changes it: the secret above all, so a corrected password is tried.
        for (i, changed) in [
            (Field::AuthUrl, "http://other:5000"),
            (Field::UserName, "bob"),
            (Field::UserDomainName, "Default"),
            (Field::ProjectName, "team-b"),
            (Field::ProjectDomainName, "Default"),
            (Field::Password, "right"),
            (Field::Password, "wrong "),
        ]
        .iter()
        .enumerate()
        {
            let mut other = pw.to_vec();
            other.retain(|(f, _)| f != &changed.0);
            other.push(*changed);
            assert_ne!(key(&other), Some(base.clone()), "case {i}: {:?}", changed.0);
        }
        // The same user and password by id, or another flow with the same secret, differ.
        let by_id = [URL, (Field::UserId, "alice"), (Field::Password, "wrong")];
        assert_ne!(key(&by_id), Some(base.clone()));
        let ac = |secret| {
            key(&[
                URL,
                (Field::AppCredId, "ac1"),
                (Field::AppCredSecret, secret),
            ])
            .unwrap()
        };
        assert_eq!(ac("s1"), ac("s1"));
        assert_ne!(ac("s1"), ac("s2"));
        let tok = |t| key(&[URL, (Field::Token, t)]).unwrap();
        assert_ne!(tok("gAAAA1"), tok("gAAAA2"));
        // Length prefixes: moving bytes between fields changes the key.
        let split = |name, domain| {
            key(&[
                URL,
                (Field::UserName, name),
                (Field::UserDomainName, domain),
                (Field::Password, "p"),
            ])
        };
        assert_ne!(split("ab", "c"), split("a", "bc"));
        // No key while the secret is still to be asked for.
        let missing = resolve(&[layer(
            Origin::Environment,
            &[URL, (Field::UserName, "alice")],
        )])
        .unwrap();
        assert_eq!(missing.refusal_key(), None);
        // The key is not the token cache's key, and holds no secret.
        assert!(!base.contains("wrong"));
    }

    #[test]
    fn application_credential_by_id_and_secret_alone() {
        let flags = layer(
            Origin::Flags,
            &[
                URL,
                (Field::AppCredId, "ac1"),
                (Field::AppCredSecret, "s"),
                (Field::DomainName, "none"),
                (Field::UserName, "alice"),
            ],
        );
        let plan = resolve(&[flags]).unwrap();
        assert_eq!(plan.url.as_str(), "http://ks:5000/v3");
        assert_eq!(plan.identity(), "application_credential id=ac1");
        assert_eq!(
            plan.auth_request().unwrap(),
            AuthRequest::ApplicationCredential {
                id: Some("ac1".into()),
                name: None,
                user: None,
                secret: Secret::new("s")
            }
        );
    }

    #[test]
    fn application_credential_by_name_needs_a_user() {
        let l = layer(
            Origin::Environment,
            &[
                URL,
                (Field::AppCredName, "kubectl"),
                (Field::AppCredSecret, "s"),
            ],
        );
        let err = resolve(std::slice::from_ref(&l)).unwrap_err();
        assert_eq!(
            err,
            SettingsError::Missing {
                field: Field::UserName,
                alternative: Some(Field::UserId)
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("--user-name") && msg.contains("OS_USERNAME"),
            "{msg}"
        );
        assert!(
            msg.contains("--user-id") && msg.contains("OS_USER_ID"),
            "{msg}"
        );
        let mut with_user = l;
        with_user.set(Field::UserName, "alice");
        with_user.set(Field::UserDomainName, "k8s");
        with_user.set(Field::ProjectDomainName, "other");
        let plan = resolve(&[with_user]).unwrap();
        assert_eq!(
            plan.method,
            Method::ApplicationCredential {
                id: None,
                name: Some("kubectl".into()),
                user: Some(UserRef::Name {
                    name: "alice".into(),
                    domain_id: None,
                    domain_name: Some("k8s".into())
                }),
                secret: Some(Secret::new("s"))
            }
        );
    }

    fn cloud_origin() -> Origin {
        Origin::Cloud {
            name: "c".into(),
            file: "clouds.yaml".into(),
        }
    }

    /// Mixed layers: each group (user, project, application credential, user domain, project
    /// domain, flow) is decided by the first layer that sets any of its members.
    #[test]
    fn mixed_layer_precedence_table() {
        type Row = (
            &'static str,
            &'static [(Field, &'static str)],
            &'static [(Field, &'static str)],
            &'static [(Field, &'static str)],
            &'static str,
        );
        let table: &[Row] = &[
            (
                "--project-name beats OS_PROJECT_ID",
                &[(Field::ProjectName, "flag-p")],
                &[
                    (Field::ProjectId, "env-pid"),
                    (Field::UserId, "u"),
                    (Field::Password, "pw"),
                ],
                &[],
                "password user_id=u project_name=flag-p project_domain_id= project_domain_name=",
            ),
            (
                "--user-name beats OS_USER_ID",
                &[(Field::UserName, "alice"), (Field::UserDomainName, "k8s")],
                &[(Field::UserId, "env-uid"), (Field::Password, "pw")],
                &[],
                "password user_name=alice user_domain_id= user_domain_name=k8s unscoped",
            ),
            (
                "--application-credential-name beats OS_APPLICATION_CREDENTIAL_ID",
                &[
                    (Field::AppCredName, "kubectl"),
                    (Field::UserName, "alice"),
                    (Field::UserDomainName, "k8s"),
                ],
                &[(Field::AppCredId, "env-ac"), (Field::AppCredSecret, "s")],
                &[],
                "application_credential name=kubectl user_name=alice user_domain_id= user_domain_name=k8s",
            ),
            (
                "--user-domain-name beats OS_USER_DOMAIN_ID",
                &[(Field::UserDomainName, "flag-d")],
                &[
                    (Field::UserDomainId, "env-did"),
                    (Field::UserName, "alice"),
                    (Field::Password, "pw"),
                ],
                &[],
                "password user_name=alice user_domain_id= user_domain_name=flag-d unscoped",
            ),
            (
                "--domain-name beats OS_USER_DOMAIN_ID and OS_PROJECT_DOMAIN_ID",
                &[(Field::DomainName, "flag-d")],
                &[
                    (Field::UserDomainId, "env-udid"),
                    (Field::ProjectDomainId, "env-pdid"),
                    (Field::UserName, "alice"),
                    (Field::ProjectName, "p"),
                    (Field::Password, "pw"),
                ],
                &[],
                "password user_name=alice user_domain_id= user_domain_name=flag-d project_name=p project_domain_id= project_domain_name=flag-d",
            ),
            (
                "--project-domain-id beats OS_PROJECT_DOMAIN_NAME",
                &[(Field::ProjectDomainId, "flag-pdid")],
                &[
                    (Field::ProjectDomainName, "env-pd"),
                    (Field::UserId, "u"),
                    (Field::ProjectName, "p"),
                    (Field::Password, "pw"),
                ],
                &[],
                "password user_id=u project_name=p project_domain_id=flag-pdid project_domain_name=",
            ),
            (
                "application-credential flags beat OS_AUTH_TYPE=password",
                &[(Field::AppCredId, "flag-ac"), (Field::AppCredSecret, "s")],
                &[
                    (Field::AuthType, "password"),
                    (Field::UserName, "bob"),
                    (Field::Password, "pw"),
                ],
                &[],
                "application_credential id=flag-ac",
            ),
            (
                "--password beats OS_AUTH_TYPE=v3applicationcredential of the environment",
                &[(Field::UserName, "alice"), (Field::Password, "pw")],
                &[
                    (Field::AuthType, "v3applicationcredential"),
                    (Field::AppCredId, "env-ac"),
                ],
                &[],
                "password user_name=alice user_domain_id= user_domain_name= unscoped",
            ),
            (
                "OS_AUTH_TYPE of the environment beats the cloud's credential",
                &[],
                &[(Field::AuthType, "token"), (Field::Token, "t")],
                &[(Field::AppCredId, "cloud-ac"), (Field::AppCredSecret, "s")],
                "token",
            ),
            (
                "the environment's project beats the cloud's, the cloud fills the rest",
                &[],
                &[(Field::ProjectName, "env-p"), (Field::Password, "pw")],
                &[
                    (Field::ProjectId, "cloud-pid"),
                    (Field::UserName, "alice"),
                    (Field::UserDomainId, "cloud-ud"),
                    (Field::ProjectDomainName, "cloud-pd"),
                ],
                "password user_name=alice user_domain_id=cloud-ud user_domain_name= project_name=env-p project_domain_id= project_domain_name=cloud-pd",
            ),
            (
                "the application credential's secret is a field of its own",
                &[(Field::AppCredSecret, "flag-s")],
                &[
                    (Field::AppCredId, "env-ac"),
                    (Field::AppCredSecret, "env-s"),
                ],
                &[(Field::AppCredName, "cloud-n")],
                "application_credential id=env-ac",
            ),
        ];
        for &(what, flags, env, cloud, want) in table {
            let mut env_pairs = vec![URL];
            env_pairs.extend_from_slice(env);
            let layers = [
                layer(Origin::Flags, flags),
                layer(Origin::Environment, &env_pairs),
                layer(cloud_origin(), cloud),
            ];
            let plan = resolve(&layers).unwrap_or_else(|e| panic!("{what}: {e}"));
            if want == "token" {
                // The identity of the token flow is a hash: check the flow.
                assert_eq!(plan.auth_type(), AuthType::Token, "{what}");
            } else {
                assert_eq!(plan.identity(), want, "{what}");
            }
        }
        // The secret follows its own field: the flag's secret with the environment's id.
        let plan = resolve(&[
            layer(Origin::Flags, &[(Field::AppCredSecret, "flag-s")]),
            layer(Origin::Environment, &[URL, (Field::AppCredId, "ac")]),
        ])
        .unwrap();
        assert!(matches!(
            plan.auth_request().unwrap(),
            AuthRequest::ApplicationCredential { secret, .. } if secret == Secret::new("flag-s")
        ));
    }

    #[test]
    fn url_with_user_info_or_query_is_redacted_in_errors() {
        for raw in [
            "ftp://user:SEKRET@ks:5000",
            "http://user:SEKRET@ks:5000/v3",
            "http://ks:5000/v3?token=SEKRET",
            "http://ks:5000/v3#SEKRET",
            "user:SEKRET@ks",
            "http://user:SEKRET@",
        ] {
            let err = resolve(&[layer(
                Origin::Environment,
                &[(Field::AuthUrl, raw), (Field::AppCredId, "x")],
            )])
            .unwrap_err();
            let msg = err.to_string();
            assert!(!msg.contains("SEKRET"), "{raw}: {msg}");
            assert!(msg.contains("OS_AUTH_URL"), "{msg}");
        }
        assert_eq!(
            redact_url("https://a:b@ks.example:5000/v3?x=1"),
            "https://<redacted>@ks.example:5000/v3?<redacted>"
        );
        assert_eq!(redact_url("https://ks/v3"), "https://ks/v3");
    }

    #[test]
    fn flags_beat_environment_beat_cloud() {
        let flags = layer(Origin::Flags, &[(Field::ProjectName, "from-flag")]);
        let env = layer(
            Origin::Environment,
            &[
                (Field::ProjectName, "from-env"),
                (Field::UserName, "env-user"),
                (Field::Password, "pw-env"),
            ],
        );
        let cloud = layer(
            Origin::Cloud {
                name: "c".into(),
                file: "clouds.yaml".into(),
            },
            &[
                URL,
                (Field::UserName, "cloud-user"),
                (Field::UserDomainName, "k8s"),
                (Field::Password, "pw-cloud"),
            ],
        );
        let plan = resolve(&[flags, env, cloud]).unwrap();
        assert_eq!(
            plan.auth_request().unwrap(),
            AuthRequest::Password {
                user: UserRef::Name {
                    name: "env-user".into(),
                    domain_id: None,
                    domain_name: Some("k8s".into())
                },
                password: Secret::new("pw-env"),
                scope: Scope::ProjectName {
                    name: "from-flag".into(),
                    domain_id: None,
                    domain_name: None
                }
            }
        );
    }

    #[test]
    fn gophercloud_s_older_variables_and_default_domain() {
        // OS_TENANT_* are read when OS_PROJECT_* are unset; OS_DEFAULT_DOMAIN is the domain id
        // of whichever of user and project has no domain setting at all.
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let env = vars(&[
            ("OS_AUTH_URL", "https://ks/v3"),
            ("OS_USERNAME", "alice"),
            ("OS_PASSWORD", "pw"),
            ("OS_TENANT_NAME", "team-a"),
            ("OS_USER_DOMAIN_NAME", "users"),
            ("OS_DEFAULT_DOMAIN", "d-default"),
        ]);
        let AuthRequest::Password { user, scope, .. } = resolve(&[Layer::from_env(&env)])
            .unwrap()
            .auth_request()
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            user,
            UserRef::Name {
                name: "alice".into(),
                domain_id: None,
                domain_name: Some("users".into())
            }
        );
        assert_eq!(
            scope,
            Scope::ProjectName {
                name: "team-a".into(),
                domain_id: Some("d-default".into()),
                domain_name: None
            }
        );
        let env = vars(&[
            ("OS_AUTH_URL", "https://ks/v3"),
            ("OS_USER_ID", "u1"),
            ("OS_PASSWORD", "pw"),
            ("OS_TENANT_ID", "old"),
            ("OS_PROJECT_ID", "new"),
        ]);
        let AuthRequest::Password { scope, .. } = resolve(&[Layer::from_env(&env)])
            .unwrap()
            .auth_request()
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(scope, Scope::ProjectId("new".into()));
    }

    #[test]
    fn user_and_project_domains_are_separate_and_domain_name_is_the_default_for_both() {
        let l = layer(
            Origin::Environment,
            &[
                URL,
                (Field::UserName, "alice"),
                (Field::Password, "pw"),
                (Field::UserDomainName, "users"),
                (Field::ProjectName, "p"),
                (Field::ProjectDomainId, "pdid"),
                (Field::DomainName, "fallback"),
            ],
        );
        let AuthRequest::Password { user, scope, .. } =
            resolve(&[l]).unwrap().auth_request().unwrap()
        else {
            panic!()
        };
        assert_eq!(
            user,
            UserRef::Name {
                name: "alice".into(),
                domain_id: None,
                domain_name: Some("users".into())
            }
        );
        assert_eq!(
            scope,
            Scope::ProjectName {
                name: "p".into(),
                domain_id: Some("pdid".into()),
                domain_name: Some("fallback".into())
            }
        );
    }

    #[test]
    fn the_first_layer_that_names_a_credential_picks_the_flow() {
        // kubeconfig env carries the app credential; the user's openrc a password.
        let env = layer(
            Origin::Environment,
            &[
                URL,
                (Field::AppCredId, "ac"),
                (Field::AppCredSecret, "s"),
                (Field::UserName, "alice"),
                (Field::Password, "pw"),
            ],
        );
        assert_eq!(
            resolve(&[env]).unwrap().auth_type(),
            AuthType::ApplicationCredential
        );
        let flags = layer(Origin::Flags, &[(Field::Token, "tok")]);
        let env = layer(Origin::Environment, &[URL, (Field::AppCredId, "ac")]);
        assert_eq!(resolve(&[flags, env]).unwrap().auth_type(), AuthType::Token);
        let explicit = layer(
            Origin::Environment,
            &[
                URL,
                (Field::AuthType, "password"),
                (Field::AppCredId, "ac"),
                (Field::UserId, "u1"),
            ],
        );
        let plan = resolve(&[explicit]).unwrap();
        assert_eq!(plan.auth_type(), AuthType::Password);
        assert_eq!(plan.missing_secret(), Some(Field::Password));
    }

    #[test]
    fn missing_password_names_flag_and_variable() {
        let l = layer(Origin::Environment, &[URL, (Field::UserName, "alice")]);
        let plan = resolve(&[l]).unwrap();
        let err = plan.auth_request().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("--password") && msg.contains("OS_PASSWORD"),
            "{msg}"
        );
        assert!(msg.contains("auth.password"), "{msg}");
    }

    #[test]
    fn missing_url_and_bad_values() {
        let err = resolve(&[layer(Origin::Flags, &[(Field::AppCredId, "x")])]).unwrap_err();
        assert!(err.to_string().contains("--keystone-url"));
        assert!(err.to_string().contains("OS_AUTH_URL"));
        let err = resolve(&[layer(
            Origin::Environment,
            &[(Field::AuthUrl, "ftp://x"), (Field::AppCredId, "x")],
        )])
        .unwrap_err();
        assert!(matches!(
            err,
            SettingsError::Invalid {
                field: Field::AuthUrl,
                ..
            }
        ));
        assert!(err.to_string().contains("the environment"), "{err}");
        let err = resolve(&[layer(
            Origin::Environment,
            &[URL, (Field::AuthType, "v3oidc")],
        )])
        .unwrap_err();
        assert!(err.to_string().contains("OS_AUTH_TYPE"), "{err}");
        let err = resolve(&[layer(
            Origin::Flags,
            &[URL, (Field::AppCredId, "x"), (Field::Cert, "/c")],
        )])
        .unwrap_err();
        assert!(err.to_string().contains("--key"), "{err}");
    }

    #[test]
    fn token_identity_hashes_the_token_and_never_shows_it() {
        let l = layer(
            Origin::Environment,
            &[URL, (Field::Token, "gAAAAAsecret"), (Field::ProjectId, "p")],
        );
        let plan = resolve(&[l]).unwrap();
        let id = plan.identity();
        assert!(!id.contains("gAAAAAsecret"));
        assert!(
            id.starts_with("token sha256=") && id.ends_with("project_id=p"),
            "{id}"
        );
        assert!(!format!("{plan:?}").contains("gAAAAAsecret"));
    }

    /// The settings table and `Layer::from_env` cannot drift apart: every variable of the table
    /// is read into its field, an alias only when the variable is unset, and no other variable
    /// is read. The table's flags, variables and cloud keys are each unique.
    #[test]
    fn from_env_reads_every_variable_of_the_table_and_no_other() {
        let asked = std::cell::RefCell::new(Vec::<String>::new());
        let env = |k: &str| {
            asked.borrow_mut().push(k.to_string());
            Some(format!("v-{k}"))
        };
        let l = Layer::from_env(&env);
        for f in Field::ALL {
            assert_eq!(
                l.get(f).map(Secret::expose),
                Some(format!("v-{}", f.var()).as_str()),
                "{f:?}"
            );
        }
        let known: Vec<&str> = Field::ALL
            .iter()
            .flat_map(|f| std::iter::once(f.var()).chain(f.alias()))
            .collect();
        for k in asked.borrow().iter() {
            assert!(known.contains(&k.as_str()), "{k} is not in the table");
        }
        let aliased: Vec<Field> = Field::ALL
            .into_iter()
            .filter(|f| f.alias().is_some())
            .collect();
        assert_eq!(
            aliased,
            [Field::ProjectName, Field::ProjectId, Field::Token]
        );
        for f in aliased {
            let alias = f.alias().unwrap();
            let only_alias = |k: &str| (k == alias).then(|| "from-alias".to_string());
            assert_eq!(
                Layer::from_env(&only_alias).get(f).map(Secret::expose),
                Some("from-alias"),
                "{alias}"
            );
        }
        for column in [Field::flag, Field::var, Field::cloud_path, Field::describe] {
            let mut values: Vec<&str> = Field::ALL.into_iter().map(column).collect();
            values.sort_unstable();
            values.dedup();
            assert_eq!(values.len(), Field::ALL.len(), "{values:?}");
        }
    }

    /// The settings table of docs/kubectl-plugin.md has a row naming each setting's flag,
    /// variable and place in a cloud, as the table here does.
    #[test]
    fn the_documented_settings_are_the_table() {
        let doc = include_str!("../../../docs/kubectl-plugin.md");
        for f in Field::ALL {
            let cell = |s: &str| format!("`{s}`");
            assert!(
                doc.lines().any(|row| row.starts_with("| ")
                    && row.contains(&cell(f.flag()))
                    && row.contains(&cell(f.var()))
                    && row.contains(&cell(f.cloud_path()))),
                "docs/kubectl-plugin.md has no row with {}, {} and {}",
                f.flag(),
                f.var(),
                f.cloud_path()
            );
        }
    }

    #[test]
    fn a_missing_setting_names_its_place_in_a_cloud() {
        let err = resolve(&[layer(
            Origin::Flags,
            &[URL, (Field::AppCredId, "x"), (Field::Cert, "/c")],
        )])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--key") && err.contains("OS_KEY") && err.contains("put key in the cloud"),
            "{err}"
        );
        let err = resolve(&[layer(Origin::Flags, &[(Field::AppCredId, "x")])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("put auth.auth_url in the cloud"), "{err}");
        assert_eq!(Field::Key.cloud_key(), "key");
        assert!(!Field::Key.in_auth());
        assert_eq!(
            Field::AppCredSecret.cloud_key(),
            "application_credential_secret"
        );
        assert!(Field::AppCredSecret.in_auth() && Field::AppCredSecret.is_secret());
    }

    #[test]
    fn env_layer_reads_os_variables_and_ignores_empty_ones() {
        let env = |k: &str| match k {
            "OS_AUTH_URL" => Some("http://ks/v3".to_string()),
            "OS_APPLICATION_CREDENTIAL_ID" => Some("ac".into()),
            "OS_APPLICATION_CREDENTIAL_SECRET" => Some("s".into()),
            "OS_USERNAME" => Some("  ".into()),
            "OS_AUTH_TOKEN" => Some("t".into()),
            _ => None,
        };
        let l = Layer::from_env(&env);
        assert!(l.get(Field::UserName).is_none());
        assert_eq!(l.get(Field::Token).unwrap().expose(), "t");
        assert_eq!(
            resolve(&[l]).unwrap().auth_type(),
            AuthType::ApplicationCredential
        );
    }
}
