//! The kubeconfig (`apiVersion: v1`, `kind: Config`), typed: what kubectl reads, what
//! kube-apiserver's `--authentication-token-webhook-config-file` and
//! `--authorization-webhook-config-file` read, with the key names of client-go's
//! `tools/clientcmd/api/v1`.
//!
//! * Absent fields stay absent when written (`skip_serializing_if`).
//! * Every level has a catch-all ([`Unknown`]): keys this model does not name (`auth-provider`,
//!   `as`, fields of future kubectl versions) are read and written back as they were, so a
//!   read-modify-write of someone's kubeconfig keeps them.
//! * `null` lists and strings read as empty, as client-go does.
//! * Credentials (`token`, `password`, `client-key-data`, exec `env` values) are [`Secret`]s,
//!   and `Debug` shows only the names of unknown keys and of extensions: `{:?}` of a kubeconfig
//!   never prints a credential.
//!
//! No YAML library here (kk-core has none): the plugin and the charm read and write the text
//! with `serde_yaml_ng`; JSON (what `kubectl config view -o json` prints) reads as well.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::secret::Secret;

/// `v1`
pub const API_VERSION: &str = "v1";
/// `Config`
pub const KIND: &str = "Config";

/// Keys a level of the model does not name, kept as they were read. `Debug` shows their names
/// only (an unknown key of a user may hold a credential).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Unknown(pub BTreeMap<String, serde_json::Value>);

impl fmt::Debug for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Unknown {
    /// No unknown key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A value this model keeps without looking into it (an extension, an exec cluster `config`).
/// `Debug` does not show it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Opaque(pub serde_json::Value);

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<opaque>")
    }
}

/// A kubeconfig.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Config {
    /// [`API_VERSION`].
    #[serde(
        rename = "apiVersion",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// [`KIND`].
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// `preferences`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<Preferences>,
    /// `clusters`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub clusters: Vec<NamedCluster>,
    /// `users`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<NamedUser>,
    /// `contexts`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub contexts: Vec<NamedContext>,
    /// `current-context`.
    #[serde(
        rename = "current-context",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub current_context: String,
    /// `extensions`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extensions: Vec<NamedExtension>,
    /// Everything else.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `preferences`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Preferences {
    /// `colors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colors: Option<bool>,
    /// `extensions`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extensions: Vec<NamedExtension>,
    /// Everything else.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// An entry of `clusters`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NamedCluster {
    /// Its name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The cluster.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster: Cluster,
    /// Everything else.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A cluster: where the API server is and how to trust it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cluster {
    /// `https://host:port`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub server: String,
    /// `tls-server-name`.
    #[serde(
        rename = "tls-server-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_server_name: Option<String>,
    /// `insecure-skip-tls-verify`.
    #[serde(
        rename = "insecure-skip-tls-verify",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_skip_tls_verify: Option<bool>,
    /// `certificate-authority`: a file.
    #[serde(
        rename = "certificate-authority",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority: Option<String>,
    /// `certificate-authority-data`: base64 of the PEM.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
    /// `proxy-url`.
    #[serde(rename = "proxy-url", default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    /// `disable-compression`.
    #[serde(
        rename = "disable-compression",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_compression: Option<bool>,
    /// `extensions`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extensions: Vec<NamedExtension>,
    /// Everything else.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// An entry of `users`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NamedUser {
    /// Its name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The credential.
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: AuthInfo,
    /// Everything else.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A user's credential (`AuthInfo` in client-go). Empty (`{}`): none, as kube-apiserver's
/// webhook kubeconfigs without a client certificate have.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AuthInfo {
    /// `client-certificate`: a file.
    #[serde(
        rename = "client-certificate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate: Option<String>,
    /// `client-certificate-data`: base64 of the PEM.
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<String>,
    /// `client-key`: a file.
    #[serde(
        rename = "client-key",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key: Option<String>,
    /// `client-key-data`: base64 of the PEM key.
    #[serde(
        rename = "client-key-data",
        default,
        with = "serde_secret::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key_data: Option<Secret>,
    /// `token`: a bearer token.
    #[serde(
        default,
        with = "serde_secret::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub token: Option<Secret>,
    /// `tokenFile`.
    #[serde(rename = "tokenFile", default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// `username` (basic authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `password` (basic authentication).
    #[serde(
        default,
        with = "serde_secret::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<Secret>,
    /// `exec`: a credential plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecConfig>,
    /// `extensions`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extensions: Vec<NamedExtension>,
    /// Everything else (`auth-provider`, `as`, ...).
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `exec`: the command kubectl runs for a credential (see [`crate::exec_credential`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecConfig {
    /// The `ExecCredential` version kubectl speaks with the command
    /// ([`crate::exec_credential::V1`] or `V1BETA1`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub api_version: String,
    /// A name on PATH or a path.
    #[serde(default, deserialize_with = "null_as_default")]
    pub command: String,
    /// Its arguments.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<String>,
    /// Its environment, added to kubectl's.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<ExecEnvVar>,
    /// When kubectl lets the command use the terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive_mode: Option<InteractiveMode>,
    /// Whether kubectl passes the cluster in `KUBERNETES_EXEC_INFO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provide_cluster_info: Option<bool>,
    /// What kubectl prints when the command is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_hint: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A variable of [`ExecConfig::env`]. Its value is a [`Secret`]: it may be one (an application
/// credential's secret).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExecEnvVar {
    /// The variable.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Its value.
    #[serde(default, with = "serde_secret")]
    pub value: Secret,
}

/// `interactiveMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InteractiveMode {
    /// The command never uses the terminal.
    Never,
    /// It may, when kubectl has one.
    IfAvailable,
    /// It must: kubectl fails without a terminal.
    Always,
}

/// An entry of `contexts`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NamedContext {
    /// Its name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The context.
    #[serde(default, deserialize_with = "null_as_default")]
    pub context: Context,
    /// Everything else.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A context: a cluster, a user and a namespace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Context {
    /// A [`NamedCluster::name`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster: String,
    /// A [`NamedUser::name`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: String,
    /// `namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `extensions`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extensions: Vec<NamedExtension>,
    /// Everything else.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// An entry of `extensions`: a name and any value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedExtension {
    /// Its name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Its value, as it is.
    pub extension: Opaque,
}

impl Config {
    /// A kubeconfig of one cluster, one user and one context using them, which is current.
    pub fn single(cluster: NamedCluster, user: NamedUser, context: NamedContext) -> Self {
        Self {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            current_context: context.name.clone(),
            clusters: vec![cluster],
            users: vec![user],
            contexts: vec![context],
            ..Default::default()
        }
    }

    /// The current context, its cluster and its user, when they all exist.
    pub fn current(&self) -> Option<(&Context, &Cluster, &AuthInfo)> {
        let context = &self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)?
            .context;
        let cluster = &self
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)?
            .cluster;
        let user = &self.users.iter().find(|u| u.name == context.user)?.user;
        Some((context, cluster, user))
    }
}

/// `null` read as the default, as client-go reads it.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `#[serde(with = "serde_secret")]`: a [`Secret`] written as its value. Only for the wire
/// formats of this crate, whose whole point is to carry the secret to kubectl.
pub(crate) mod serde_secret {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::secret::Secret;

    pub fn serialize<S: Serializer>(v: &Secret, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        Ok(Option::<Secret>::deserialize(d)?.unwrap_or_default())
    }

    /// The same for `Option<Secret>`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(v: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => s.serialize_str(v.expose()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
            Option::<Secret>::deserialize(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A kubeconfig as kubectl, kubeadm and cloud tools leave it: an `auth-provider` user, an
    /// `as` impersonation, a future field at each level, extensions, `null` lists.
    fn real_looking() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {"colors": true, "future-pref": "x"},
            "clusters": [
                {"name": "prod", "cluster": {
                    "server": "https://prod.example:6443",
                    "certificate-authority-data": "LS0tLS1CRUdJTiBDRVJU",
                    "tls-server-name": "api.prod",
                    "future-cluster-field": {"nested": [1, 2.5, null, true]},
                    "extensions": [{"name": "vendor", "extension": {"region": "eu", "n": 3}}]
                }, "future-entry-field": 7},
                {"name": "insecure", "cluster": {"server": "https://10.0.0.1:6443", "insecure-skip-tls-verify": true}}
            ],
            "users": [
                {"name": "admin", "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}},
                {"name": "oidc", "user": {"auth-provider": {"name": "oidc", "config": {"id-token": "eyJ.secret.jwt", "idp-issuer-url": "https://idp"}}}},
                {"name": "impersonator", "user": {"token": "static-token", "as": "bob", "as-groups": ["devs"]}},
                {"name": "keystone", "user": {"exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": "kubectl-keystone-auth",
                    "args": ["--log-level", "debug"],
                    "env": [{"name": "OS_APPLICATION_CREDENTIAL_SECRET", "value": "ac-secret"}],
                    "interactiveMode": "Never",
                    "provideClusterInfo": false,
                    "installHint": "install it",
                    "future-exec-field": "y"
                }}}
            ],
            "contexts": [
                {"name": "prod", "context": {"cluster": "prod", "user": "admin", "namespace": "ops", "future-context-field": 1}}
            ],
            "current-context": "prod",
            "extensions": [{"name": "tool", "extension": {"k": "v"}}],
            "future-top-level": {"a": "b"}
        })
    }

    #[test]
    fn a_real_looking_kubeconfig_round_trips_with_its_unknown_keys() {
        let original = real_looking();
        let c: Config = serde_json::from_value(original.clone()).unwrap();
        assert_eq!(c.clusters.len(), 2);
        assert_eq!(c.users[0].user.client_key_data, Some(Secret::new("S0VZ")));
        assert_eq!(c.users[2].user.token, Some(Secret::new("static-token")));
        let exec = c.users[3].user.exec.as_ref().unwrap();
        assert_eq!(exec.interactive_mode, Some(InteractiveMode::Never));
        assert_eq!(exec.env[0].value.expose(), "ac-secret");
        assert!(c.users[1].user.unknown.0.contains_key("auth-provider"));
        assert!(c.unknown.0.contains_key("future-top-level"));
        // Written back: the same document, key for key.
        assert_eq!(serde_json::to_value(&c).unwrap(), original);
        // A modification keeps the rest.
        let mut c = c;
        c.current_context = "other".into();
        let mut expected = original;
        expected["current-context"] = json!("other");
        assert_eq!(serde_json::to_value(&c).unwrap(), expected);
    }

    #[test]
    fn nulls_and_missing_fields_read_as_empty() {
        let c: Config = serde_json::from_value(json!({
            "clusters": null, "users": [{"name": "u", "user": null}],
            "contexts": [{"name": "c"}], "current-context": null
        }))
        .unwrap();
        assert!(c.clusters.is_empty());
        assert_eq!(c.users[0].user, AuthInfo::default());
        assert_eq!(c.contexts[0].context, Context::default());
        assert_eq!(c.current_context, "");
        // An empty user is written as `{}`, absent fields left out.
        let out = serde_json::to_value(&c).unwrap();
        assert_eq!(out["users"][0], json!({"name": "u", "user": {}}));
        assert!(out.get("current-context").is_none() && out.get("apiVersion").is_none());
        // Wrong types are refused, not guessed.
        assert!(serde_json::from_value::<Config>(json!({"users": 3})).is_err());
        assert!(serde_json::from_value::<Config>(json!([1])).is_err());
        assert!(
            serde_json::from_value::<Config>(json!({"users": [{"name": "u", "user": {"exec": {"interactiveMode": "Sometimes"}}}]}))
                .is_err()
        );
    }

    #[test]
    fn single_and_current() {
        let c = Config::single(
            NamedCluster {
                name: "k".into(),
                cluster: Cluster {
                    server: "https://k:6443".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
            NamedUser {
                name: "u".into(),
                ..Default::default()
            },
            NamedContext {
                name: "c".into(),
                context: Context {
                    cluster: "k".into(),
                    user: "u".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "k", "cluster": {"server": "https://k:6443"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "current-context": "c"})
        );
        let (_, cluster, user) = c.current().unwrap();
        assert_eq!(cluster.server, "https://k:6443");
        assert_eq!(user, &AuthInfo::default());
    }

    #[test]
    fn debug_never_shows_a_credential() {
        let c: Config = serde_json::from_value(real_looking()).unwrap();
        let shown = format!("{c:?} {c:#?}");
        for secret in [
            "S0VZ",
            "static-token",
            "ac-secret",
            "eyJ.secret.jwt",
            "\"eu\"",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // What is shown: names, servers, the unknown keys' names.
        for shown_part in [
            "prod.example",
            "auth-provider",
            "OS_APPLICATION_CREDENTIAL_SECRET",
            "vendor",
        ] {
            assert!(shown.contains(shown_part), "{shown_part} not in {shown}");
        }
    }
}
