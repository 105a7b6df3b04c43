//! The TOML configuration file, as written by the operator: strict (unknown keys are errors),
//! every value that needs a semantic check kept with its position so errors give the line.
//! Each field's doc comment is its documentation (see docs/configuration.md).

use serde::Deserialize;
use toml::Spanned;

use kk_core::secret::Secret;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address and port to serve on (`0.0.0.0:8443`).
    pub listen: Option<Spanned<String>>,
    /// Log filter (`info`, `debug`, or a tracing directive).
    pub log_level: Option<Spanned<String>>,
    /// Serve plain HTTP (tests only).
    pub insecure_http: Option<bool>,
    /// Serving limits.
    #[serde(default)]
    pub server: ServerSection,
    /// Serving TLS.
    #[serde(default)]
    pub tls: TlsSection,
    /// Keystone.
    #[serde(default)]
    pub keystone: KeystoneSection,
    /// Token review behaviour.
    #[serde(default)]
    pub authentication: AuthenticationSection,
    /// The token cache.
    #[serde(default)]
    pub cache: CacheSection,
    /// Application credentials sent as bearer tokens (`kkac1_...`), off by default.
    #[serde(default)]
    pub application_credential_tokens: AppCredTokensSection,
    /// The authorization policy.
    #[serde(default)]
    pub policy: PolicySection,
    /// The sync configuration.
    #[serde(default)]
    pub sync: SyncSection,
    /// The Kubernetes API (used by the namespace sync).
    #[serde(default)]
    pub kubernetes: KubernetesSection,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Most connections served at once; a connection over the limit gets HTTP 503 with
    /// `Retry-After` and is closed (`16384`).
    pub max_connections: Option<Spanned<i64>>,
    /// Threads of the async runtime that serve requests (`0`: one per CPU core).
    pub worker_threads: Option<Spanned<i64>>,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Serving certificate (PEM).
    pub cert_file: Option<Spanned<String>>,
    /// Serving private key (PEM).
    pub private_key_file: Option<Spanned<String>>,
    /// CA for client certificates; when set, clients must present one.
    pub client_ca_file: Option<Spanned<String>>,
    /// How often the certificate files are checked for changes (`10s`).
    pub reload_interval: Option<Spanned<String>>,
}

/// `[keystone]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoneSection {
    /// Keystone URL, with or without `/v3`.
    pub url: Option<Spanned<String>>,
    /// CA bundle for Keystone's certificate.
    pub ca_file: Option<Spanned<String>>,
    /// Limit for one Keystone request (`5s`).
    pub timeout: Option<Spanned<String>>,
    /// Limit for connecting to Keystone (`2s`).
    pub connect_timeout: Option<Spanned<String>>,
    /// Service type that an application credential's access rules must name (`k8s`).
    pub service_type: Option<Spanned<String>>,
    /// Extra User-Agent strings.
    pub user_agent: Option<Vec<String>>,
    /// Optional service identity used to validate tokens and list groups.
    pub service_identity: Option<Spanned<ServiceIdentitySection>>,
}

/// `[keystone.service_identity]`: an application credential (id + secret) or a user.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceIdentitySection {
    /// Application credential id.
    pub application_credential_id: Option<String>,
    /// Application credential secret.
    pub application_credential_secret: Option<Secret>,
    /// User name (with `user_domain_name` or `user_domain_id`).
    pub user_name: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// User's domain name.
    pub user_domain_name: Option<String>,
    /// User's domain id.
    pub user_domain_id: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Project id to scope to.
    pub project_id: Option<String>,
    /// Project name to scope to (with a project domain).
    pub project_name: Option<String>,
    /// Project's domain name.
    pub project_domain_name: Option<String>,
    /// Project's domain id.
    pub project_domain_id: Option<String>,
}

/// `[authentication]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationSection {
    /// `name` (Go reference), `name@domain` or `id`.
    pub username_format: Option<Spanned<String>>,
    /// Longer tokens are refused without asking Keystone (`4096`).
    pub max_token_length: Option<Spanned<i64>>,
}

/// `[cache]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// Most tokens kept (`10000`).
    pub max_entries: Option<Spanned<i64>>,
    /// How long a valid token's answer is reused, never past the token's expiry (`60s`).
    pub ttl: Option<Spanned<String>>,
    /// How long a refused token's answer is reused (`10s`).
    pub negative_ttl: Option<Spanned<String>>,
    /// Keep answering from cached valid tokens while Keystone is unreachable, never past the
    /// token's own expiry (`false`).
    pub serve_stale_while_keystone_down: Option<bool>,
}

/// `[application_credential_tokens]`: bearer tokens carrying an application credential's id
/// and secret (`kkac1_...`, docs/bearer-tokens.md), exchanged at Keystone for a token.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCredTokensSection {
    /// Accept them (`false`: they are refused without asking Keystone, with a log line).
    pub enabled: Option<bool>,
    /// Failed secrets for one credential id within `failure_window` after which further
    /// attempts with a secret not in the cache are refused without asking Keystone until the
    /// window ends (`5`).
    pub max_failures: Option<Spanned<i64>>,
    /// The window of `max_failures`, from the first failure (`5m`).
    pub failure_window: Option<Spanned<String>>,
}

/// `[policy]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Policy file (JSON).
    pub file: Option<Spanned<String>>,
    /// How often the file is checked for changes (`2s`).
    pub reload_interval: Option<Spanned<String>>,
    /// Refuse a policy with a rule part Go skips at every request (a `nonresource` without
    /// `path`) instead of loading it as never allowing anything (`false`, as Go).
    pub strict: Option<bool>,
}

/// `[sync]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// Sync configuration file (YAML).
    pub file: Option<Spanned<String>>,
    /// Refuse what Go accepts with a warning (unknown keys, an empty `namespace-format`, a
    /// role mapping without `keystone-role`) (`false`, as Go).
    pub strict: Option<bool>,
    /// Time between full resyncs of namespaces and RoleBindings, also run at start-up (`10m`).
    pub resync_interval: Option<Spanned<String>>,
    /// Most projects waiting for sync; TokenReviews of further projects are not synced until
    /// the queue drains or the next resync (`1024`).
    pub queue_capacity: Option<Spanned<i64>>,
    /// Most Kubernetes API requests per second made by the sync (`20`).
    pub requests_per_second: Option<Spanned<i64>>,
    /// Make namespaces for every Keystone project at each full resync, not only for projects
    /// a user authenticated to (needs `[keystone.service_identity]`) (`false`).
    pub all_projects: Option<bool>,
}

/// `[kubernetes]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSection {
    /// kubeconfig file for the API server (`--kubeconfig` wins); without one, the pod's
    /// ServiceAccount (in-cluster config).
    pub kubeconfig: Option<Spanned<String>>,
    /// Limit for one Kubernetes API request (`10s`).
    pub timeout: Option<Spanned<String>>,
}
