//! Configuration of `k8s-keystone-auth`: command line ([`cli`]) and TOML file ([`file`]) are
//! merged (flags and their environment variables win over the file, the file over defaults)
//! and validated into one typed [`Config`]. Validation is pure: it reads no file but the
//! config file itself (certificates and policy are loaded when the service is built), and
//! every error names where the bad value came from: the flag, the variable, or the file, line
//! and key.

pub mod cli;
pub mod file;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use kk_core::parse_duration;

use reqwest::Url;
use toml::Spanned;

use crate::identity::UsernameFormat;
use cli::ServerArgs;
use file::FileConfig;
use kk_core::keystone::{AuthRequest, Scope, UserRef, normalize_url};

/// Default listen address (as the Go reference).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8443";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// Serving limits (`[server]`).
    pub server: ServerConfig,
    /// Serving TLS; `None` only with `insecure_http`.
    pub tls: Option<TlsConfig>,
    /// Keystone.
    pub keystone: KeystoneConfig,
    /// Token review settings.
    pub username_format: UsernameFormat,
    /// Tokens longer than this are refused without asking Keystone.
    pub max_token_length: usize,
    /// Cache settings.
    pub cache: CacheConfig,
    /// Application credentials as bearer tokens.
    pub appcred_tokens: AppCredTokensConfig,
    /// Policy file, if any.
    pub policy_file: Option<PathBuf>,
    /// Policy ConfigMap in kube-system (data key `policies`), if any; never with a policy file.
    pub policy_configmap: Option<String>,
    /// How often the policy file is checked.
    pub policy_reload_interval: Duration,
    /// `policy.strict`: refuse policy rules Go skips instead of loading them.
    pub policy_strict: bool,
    /// Sync config file, if any (its role mappings apply to every authenticated user).
    pub sync_config_file: Option<PathBuf>,
    /// Sync config ConfigMap in kube-system (data key `syncConfig`), if any; never with a sync
    /// config file.
    pub sync_configmap: Option<String>,
    /// `sync.strict`: refuse sync config leniencies Go accepts.
    pub sync_strict: bool,
    /// How the namespace sync runs (when the sync config file asks for it).
    pub sync: SyncOptions,
    /// How the Kubernetes API is reached (by the namespace sync and the ConfigMap watches).
    pub kubernetes: KubernetesConfig,
    /// Log filter.
    pub log_level: String,
    /// Warnings to log once logging is up (deprecated or ignored settings).
    pub warnings: Vec<String>,
}

/// Serving limits (`[server]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Most connections served at once; more get HTTP 503 and are closed.
    pub max_connections: usize,
    /// Runtime worker threads; `None`: one per CPU core (or `TOKIO_WORKER_THREADS`).
    pub worker_threads: Option<usize>,
}

/// Largest `server.max_connections` accepted.
pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;
/// Largest `server.worker_threads` accepted.
pub const MAX_WORKER_THREADS: usize = 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 16384,
            worker_threads: None,
        }
    }
}

/// Serving TLS settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Private key (PEM).
    pub key_file: PathBuf,
    /// CA for client certificates.
    pub client_ca_file: Option<PathBuf>,
    /// How often the files are checked for changes.
    pub reload_interval: Duration,
}

/// Keystone settings.
#[derive(Debug, Clone)]
pub struct KeystoneConfig {
    /// v3 base URL.
    pub url: Url,
    /// CA bundle.
    pub ca_file: Option<PathBuf>,
    /// Request limit.
    pub timeout: Duration,
    /// Connect limit.
    pub connect_timeout: Duration,
    /// Service type that access rules must name.
    pub service_type: String,
    /// Full User-Agent.
    pub user_agent: String,
    /// Optional service identity.
    pub service_auth: Option<AuthRequest>,
}

/// The namespace sync's settings (`[sync]` besides the file).
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Time between full resyncs.
    pub resync_interval: Duration,
    /// Most projects waiting.
    pub queue_capacity: usize,
    /// Most Kubernetes requests per second.
    pub requests_per_second: u32,
    /// Namespaces for every Keystone project.
    pub all_projects: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(600),
            queue_capacity: 1024,
            requests_per_second: 20,
            all_projects: false,
        }
    }
}

/// The Kubernetes API.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// kubeconfig file; `None`: in-cluster config, if in a pod.
    pub kubeconfig: Option<PathBuf>,
    /// Limit for one request.
    pub timeout: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// How to give the service a Kubernetes API, for messages: the flag, its variable, the file key.
pub fn kubeconfig_hint() -> String {
    format!(
        "{} or `kubernetes.kubeconfig` in the config file, or run it in a pod (in-cluster config: KUBERNETES_SERVICE_HOST and the ServiceAccount token)",
        Arg::Kubeconfig.flag_and_env()
    )
}

/// Cache settings.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Most entries.
    pub max_entries: usize,
    /// Positive TTL (also bounded by the token's expiry).
    pub ttl: Duration,
    /// Negative TTL.
    pub negative_ttl: Duration,
    /// Serve cached valid tokens while Keystone is down.
    pub serve_stale: bool,
}

/// `[application_credential_tokens]`: application credentials sent as bearer tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredTokensConfig {
    /// Whether they are exchanged at Keystone (else refused without a Keystone call).
    pub enabled: bool,
    /// Failures for one credential id within `failure_window` that start refusing it.
    pub max_failures: u32,
    /// The window, from the first failure.
    pub failure_window: Duration,
}

impl Default for AppCredTokensConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_failures: 5,
            failure_window: Duration::from_secs(300),
        }
    }
}

/// A configuration error; the message names the flag, variable or file key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown/mistyped keys.
    #[error("invalid config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line, column and key.
        message: String,
    },
    /// A value is wrong.
    #[error("{origin}: {message}")]
    Invalid {
        /// Where the value came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A required setting is missing.
    #[error("{0}")]
    Missing(String),
}

/// Where a setting came from, for error messages.
#[derive(Debug, Clone)]
enum Origin<'a> {
    Flag(&'static str),
    Env(&'static str),
    File {
        path: &'a Path,
        key: &'static str,
        line: usize,
    },
    Default,
}

impl std::fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "invalid {flag}"),
            Origin::Env(var) => write!(f, "invalid environment variable {var}"),
            Origin::File { path, key, line } => {
                write!(f, "invalid `{key}` in {} line {line}", path.display())
            }
            Origin::Default => write!(f, "invalid default"),
        }
    }
}

/// The command-line arguments that [`validate`] names in its messages. Their `--long` flag and
/// environment variable are read from clap's definition ([`ServerArgs`]), so a renamed flag
/// renames it in every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    Listen,
    TlsCertFile,
    TlsPrivateKeyFile,
    ClientCaFile,
    KeystoneUrl,
    KeystoneCaFile,
    KeystonePolicyFile,
    SyncConfigFile,
    UsernameFormat,
    InsecureHttp,
    PolicyConfigmapName,
    SyncConfigmapName,
    Kubeconfig,
}

impl Arg {
    /// Every variant (the tests check that each is declared to clap).
    #[cfg(test)]
    const ALL: [Arg; 13] = [
        Arg::Listen,
        Arg::TlsCertFile,
        Arg::TlsPrivateKeyFile,
        Arg::ClientCaFile,
        Arg::KeystoneUrl,
        Arg::KeystoneCaFile,
        Arg::KeystonePolicyFile,
        Arg::SyncConfigFile,
        Arg::UsernameFormat,
        Arg::InsecureHttp,
        Arg::PolicyConfigmapName,
        Arg::SyncConfigmapName,
        Arg::Kubeconfig,
    ];

    /// The clap id: the field of [`ServerArgs`].
    fn id(self) -> &'static str {
        match self {
            Arg::Listen => "listen",
            Arg::TlsCertFile => "tls_cert_file",
            Arg::TlsPrivateKeyFile => "tls_private_key_file",
            Arg::ClientCaFile => "client_ca_file",
            Arg::KeystoneUrl => "keystone_url",
            Arg::KeystoneCaFile => "keystone_ca_file",
            Arg::KeystonePolicyFile => "keystone_policy_file",
            Arg::SyncConfigFile => "sync_config_file",
            Arg::UsernameFormat => "username_format",
            Arg::InsecureHttp => "insecure_http",
            Arg::PolicyConfigmapName => "policy_configmap_name",
            Arg::SyncConfigmapName => "sync_configmap_name",
            Arg::Kubeconfig => "kubeconfig",
        }
    }

    fn declared(self) -> Option<&'static Declared> {
        declared_args().get(self.id())
    }

    /// `--long`, as clap declares it (the clap id if clap does not know it, which a test
    /// rules out).
    fn flag(self) -> &'static str {
        self.declared()
            .and_then(|d| d.flag.as_deref())
            .unwrap_or(self.id())
    }

    /// Its environment variable, if clap declares one.
    fn env(self) -> Option<&'static str> {
        self.declared().and_then(|d| d.env.as_deref())
    }

    /// `--flag, VARIABLE` (or `--flag` alone), for "set ..." messages.
    fn flag_and_env(self) -> String {
        match self.env() {
            Some(var) => format!("{}, {var}", self.flag()),
            None => self.flag().to_string(),
        }
    }
}

/// What clap declares for one argument.
#[derive(Debug)]
struct Declared {
    flag: Option<String>,
    env: Option<String>,
}

/// Every argument of [`ServerArgs`] by clap id, read from clap once.
fn declared_args() -> &'static HashMap<String, Declared> {
    static DECLARED: OnceLock<HashMap<String, Declared>> = OnceLock::new();
    DECLARED.get_or_init(|| {
        use clap::CommandFactory;
        ServerArgs::command()
            .get_arguments()
            .map(|a| {
                let declared = Declared {
                    flag: a.get_long().map(|l| format!("--{l}")),
                    env: a.get_env().and_then(|e| e.to_str()).map(str::to_string),
                };
                (a.get_id().as_str().to_string(), declared)
            })
            .collect()
    })
}

/// The raw inputs: parsed arguments, which of them came from the environment, and the
/// config file's path and text.
pub struct Inputs<'a> {
    /// The parsed command line.
    pub args: &'a ServerArgs,
    /// Whether the argument with this clap id came from its environment variable.
    pub from_env: &'a dyn Fn(&str) -> bool,
    /// The config file, if one was given: its path and contents.
    pub file: Option<(&'a Path, &'a str)>,
}

struct Ctx<'a> {
    inputs: &'a Inputs<'a>,
    file_path: &'a Path,
    file_text: &'a str,
}

impl<'a> Ctx<'a> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        self.file_text
            .get(..span.start)
            .map(|s| s.matches('\n').count() + 1)
            .unwrap_or(0)
    }

    fn file_origin<T>(&self, key: &'static str, s: &Spanned<T>) -> Origin<'a> {
        Origin::File {
            path: self.file_path,
            key,
            line: self.line(s.span()),
        }
    }

    /// The flag's value with its origin, else the file's, else `None`.
    fn pick<T: Clone>(
        &self,
        flag_value: Option<&T>,
        arg: Arg,
        file_value: Option<&Spanned<T>>,
        key: &'static str,
    ) -> Option<(T, Origin<'a>)> {
        if let Some(v) = flag_value {
            let origin = match arg.env() {
                Some(var) if (self.inputs.from_env)(arg.id()) => Origin::Env(var),
                _ => Origin::Flag(arg.flag()),
            };
            return Some((v.clone(), origin));
        }
        file_value.map(|s| (s.get_ref().clone(), self.file_origin(key, s)))
    }
}

fn invalid(origin: &Origin<'_>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        message: message.into(),
    }
}

fn duration(
    ctx: &Ctx<'_>,
    value: Option<&Spanned<String>>,
    key: &'static str,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    let origin = ctx.file_origin(key, v);
    let d = parse_duration(v.get_ref()).map_err(|m| invalid(&origin, m))?;
    if d < min || d > max {
        return Err(invalid(
            &origin,
            format!("{:?} must be between {min:?} and {max:?}", v.get_ref()),
        ));
    }
    Ok(d)
}

/// Where a setting came from, without "invalid" (`--keystone-policy-file`,
/// `` `policy.file` in /etc/k.toml line 3 ``).
fn describe(origin: &Origin<'_>) -> String {
    match origin {
        Origin::Flag(flag) => (*flag).to_string(),
        Origin::Env(var) => format!("environment variable {var}"),
        Origin::File { path, key, line } => {
            format!("`{key}` in {} line {line}", path.display())
        }
        Origin::Default => "default".into(),
    }
}

/// The namespace of the ConfigMaps the policy and the sync config are read from (as Go).
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";

/// A ConfigMap name from its flag (or variable): a DNS-1123 subdomain, as the API requires.
fn configmap_name(ctx: &Ctx<'_>, arg: Arg) -> Result<Option<String>, ConfigError> {
    let value = match arg {
        Arg::PolicyConfigmapName => ctx.inputs.args.policy_configmap_name.as_ref(),
        _ => ctx.inputs.args.sync_configmap_name.as_ref(),
    };
    let Some((name, origin)) = ctx.pick(value, arg, None, "") else {
        return Ok(None);
    };
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            label.starts_with(ok_char)
                && label.ends_with(ok_char)
                && label.chars().all(|c| ok_char(c) || c == '-')
        });
    if !valid {
        return Err(invalid(
            &origin,
            format!(
                "{name:?} is not a ConfigMap name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253)"
            ),
        ));
    }
    Ok(Some(name))
}

fn path(value: &str, origin: &Origin<'_>) -> Result<PathBuf, ConfigError> {
    if value.trim().is_empty() {
        return Err(invalid(origin, "is empty"));
    }
    Ok(PathBuf::from(value))
}

/// Reads the config file named in `args` (if any) and validates everything.
pub fn load(args: &ServerArgs, from_env: &dyn Fn(&str) -> bool) -> Result<Config, ConfigError> {
    let config_path = args.config.as_deref().map(Path::new);
    let text = match config_path {
        Some(p) => Some(
            std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_path_buf(),
                source,
            })?,
        ),
        None => None,
    };
    let inputs = Inputs {
        args,
        from_env,
        file: config_path.zip(text.as_deref()),
    };
    validate(&inputs)
}

/// Merges and validates the inputs. Pure: reads no file.
pub fn validate(inputs: &Inputs<'_>) -> Result<Config, ConfigError> {
    let (file_path, file_text) = inputs.file.unwrap_or((Path::new("<none>"), ""));
    let file: FileConfig = if inputs.file.is_some() {
        toml::from_str(file_text).map_err(|e| ConfigError::Parse {
            path: file_path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?
    } else {
        FileConfig::default()
    };
    let ctx = Ctx {
        inputs,
        file_path,
        file_text,
    };
    let args = inputs.args;
    let mut warnings = Vec::new();

    // listen
    let listen = match ctx.pick(
        args.listen.as_ref(),
        Arg::Listen,
        file.listen.as_ref(),
        "listen",
    ) {
        Some((v, origin)) => v.parse::<SocketAddr>().map_err(|_| {
            invalid(
                &origin,
                format!("{v:?} is not an address:port such as 0.0.0.0:8443"),
            )
        })?,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|_| invalid(&Origin::Default, "listen"))?,
    };

    // server
    let bounded = |key: &'static str, v: &Spanned<i64>, low: usize, high: usize| {
        usize::try_from(*v.get_ref())
            .ok()
            .filter(|n| (low..=high).contains(n))
            .ok_or_else(|| {
                invalid(
                    &ctx.file_origin(key, v),
                    format!("must be between {low} and {high}"),
                )
            })
    };
    let server = ServerConfig {
        max_connections: match &file.server.max_connections {
            Some(v) => bounded("server.max_connections", v, 1, MAX_CONNECTIONS_LIMIT)?,
            None => ServerConfig::default().max_connections,
        },
        worker_threads: match &file.server.worker_threads {
            Some(v) => {
                Some(bounded("server.worker_threads", v, 0, MAX_WORKER_THREADS)?).filter(|&n| n > 0)
            }
            None => None,
        },
    };

    // TLS
    let insecure_http = args.insecure_http || file.insecure_http.unwrap_or(false);
    let cert = ctx.pick(
        args.tls_cert_file.as_ref(),
        Arg::TlsCertFile,
        file.tls.cert_file.as_ref(),
        "tls.cert_file",
    );
    let key = ctx.pick(
        args.tls_private_key_file.as_ref(),
        Arg::TlsPrivateKeyFile,
        file.tls.private_key_file.as_ref(),
        "tls.private_key_file",
    );
    let client_ca = ctx.pick(
        args.client_ca_file.as_ref(),
        Arg::ClientCaFile,
        file.tls.client_ca_file.as_ref(),
        "tls.client_ca_file",
    );
    let reload_interval = duration(
        &ctx,
        file.tls.reload_interval.as_ref(),
        "tls.reload_interval",
        Duration::from_secs(10),
        Duration::from_millis(100),
        Duration::from_secs(3600),
    )?;
    let tls = match (cert, key) {
        (Some((c, co)), Some((k, ko))) => Some(TlsConfig {
            cert_file: path(&c, &co)?,
            key_file: path(&k, &ko)?,
            client_ca_file: client_ca.map(|(v, o)| path(&v, &o)).transpose()?,
            reload_interval,
        }),
        (None, None) if insecure_http => {
            if client_ca.is_some() {
                return Err(ConfigError::Missing(format!(
                    "{} needs TLS: drop {} and set {} and {}",
                    Arg::ClientCaFile.flag(),
                    Arg::InsecureHttp.flag(),
                    Arg::TlsCertFile.flag(),
                    Arg::TlsPrivateKeyFile.flag()
                )));
            }
            None
        }
        (None, _) => {
            return Err(ConfigError::Missing(format!(
                "no serving certificate: set {} or `tls.cert_file` in the config file (or {} for local tests)",
                Arg::TlsCertFile.flag_and_env(),
                Arg::InsecureHttp.flag()
            )));
        }
        (_, None) => {
            return Err(ConfigError::Missing(format!(
                "no serving private key: set {} or `tls.private_key_file` in the config file",
                Arg::TlsPrivateKeyFile.flag_and_env()
            )));
        }
    };
    if insecure_http && tls.is_some() {
        warnings.push(format!(
            "{} is set: the TLS certificate is ignored and tokens travel in the clear",
            Arg::InsecureHttp.flag()
        ));
    }
    let tls = if insecure_http { None } else { tls };

    // Keystone
    let ks = &file.keystone;
    let (url_raw, url_origin) = ctx
        .pick(
            args.keystone_url.as_ref(),
            Arg::KeystoneUrl,
            ks.url.as_ref(),
            "keystone.url",
        )
        .ok_or_else(|| {
            ConfigError::Missing(format!(
                "no Keystone URL: set {} or `keystone.url` in the config file",
                Arg::KeystoneUrl.flag_and_env()
            ))
        })?;
    let url = normalize_url(&url_raw).map_err(|m| invalid(&url_origin, m))?;
    if url.scheme() == "http" && !kk_core::urls::is_loopback(&url) {
        warnings.push(format!(
            "Keystone URL {url} is plain http: tokens travel in the clear"
        ));
    }
    let ca_file = ctx
        .pick(
            args.keystone_ca_file.as_ref(),
            Arg::KeystoneCaFile,
            ks.ca_file.as_ref(),
            "keystone.ca_file",
        )
        .map(|(v, o)| path(&v, &o))
        .transpose()?;
    let timeout = duration(
        &ctx,
        ks.timeout.as_ref(),
        "keystone.timeout",
        Duration::from_secs(5),
        Duration::from_millis(100),
        Duration::from_secs(120),
    )?;
    let connect_timeout = duration(
        &ctx,
        ks.connect_timeout.as_ref(),
        "keystone.connect_timeout",
        Duration::from_secs(2),
        Duration::from_millis(100),
        Duration::from_secs(60),
    )?;
    let service_type = match &ks.service_type {
        Some(s) if s.get_ref().trim().is_empty() => {
            return Err(invalid(
                &ctx.file_origin("keystone.service_type", s),
                "is empty",
            ));
        }
        Some(s) => s.get_ref().clone(),
        None => "k8s".to_string(),
    };
    let mut ua: Vec<String> = args.user_agent.clone();
    ua.extend(ks.user_agent.clone().unwrap_or_default());
    ua.push(format!("k8s-keystone-auth/{}", kk_core::VERSION));
    let service_auth = match &ks.service_identity {
        None => None,
        Some(s) => Some(
            service_identity(s.get_ref())
                .map_err(|m| invalid(&ctx.file_origin("keystone.service_identity", s), m))?,
        ),
    };

    // authentication
    let username_format = match ctx.pick(
        args.username_format.as_ref(),
        Arg::UsernameFormat,
        file.authentication.username_format.as_ref(),
        "authentication.username_format",
    ) {
        Some((v, origin)) => v.parse().map_err(|m: String| invalid(&origin, m))?,
        None => UsernameFormat::Name,
    };
    let max_token_length = match &file.authentication.max_token_length {
        Some(v) => usize::try_from(*v.get_ref())
            .ok()
            .filter(|n| (64..=1 << 20).contains(n))
            .ok_or_else(|| {
                invalid(
                    &ctx.file_origin("authentication.max_token_length", v),
                    "must be between 64 and 1048576",
                )
            })?,
        None => 4096,
    };

    // cache
    let c = &file.cache;
    let max_entries = match &c.max_entries {
        Some(v) => usize::try_from(*v.get_ref())
            .ok()
            .filter(|n| (1..=10_000_000).contains(n))
            .ok_or_else(|| {
                invalid(
                    &ctx.file_origin("cache.max_entries", v),
                    "must be between 1 and 10000000",
                )
            })?,
        None => 10_000,
    };
    let cache = CacheConfig {
        max_entries,
        ttl: duration(
            &ctx,
            c.ttl.as_ref(),
            "cache.ttl",
            Duration::from_secs(60),
            Duration::ZERO,
            Duration::from_secs(24 * 3600),
        )?,
        negative_ttl: duration(
            &ctx,
            c.negative_ttl.as_ref(),
            "cache.negative_ttl",
            Duration::from_secs(10),
            Duration::ZERO,
            Duration::from_secs(3600),
        )?,
        serve_stale: c.serve_stale_while_keystone_down.unwrap_or(false),
    };

    // application credentials as bearer tokens
    let a = &file.application_credential_tokens;
    let defaults = AppCredTokensConfig::default();
    let appcred_tokens = AppCredTokensConfig {
        enabled: a.enabled.unwrap_or(false),
        max_failures: match &a.max_failures {
            Some(v) => u32::try_from(*v.get_ref())
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    invalid(
                        &ctx.file_origin("application_credential_tokens.max_failures", v),
                        "must be between 1 and 1000",
                    )
                })?,
            None => defaults.max_failures,
        },
        failure_window: duration(
            &ctx,
            a.failure_window.as_ref(),
            "application_credential_tokens.failure_window",
            defaults.failure_window,
            Duration::from_secs(1),
            Duration::from_secs(24 * 3600),
        )?,
    };

    // policy and sync
    let policy_pick = ctx.pick(
        args.keystone_policy_file.as_ref(),
        Arg::KeystonePolicyFile,
        file.policy.file.as_ref(),
        "policy.file",
    );
    let policy_file = policy_pick.as_ref().map(|(v, o)| path(v, o)).transpose()?;
    let policy_configmap = configmap_name(&ctx, Arg::PolicyConfigmapName)?;
    if let (Some((_, file_origin)), Some(_)) = (&policy_pick, &policy_configmap) {
        return Err(ConfigError::Invalid {
            origin: describe(file_origin),
            message: format!(
                "{} is also set: the policy comes from one source, a file or a ConfigMap; drop one",
                Arg::PolicyConfigmapName.flag()
            ),
        });
    }
    if policy_file.is_none() && policy_configmap.is_none() {
        warnings.push(
            "no policy file: only authentication will work; use RBAC for authorization".into(),
        );
    }
    let policy_reload_interval = duration(
        &ctx,
        file.policy.reload_interval.as_ref(),
        "policy.reload_interval",
        Duration::from_secs(2),
        Duration::from_millis(100),
        Duration::from_secs(3600),
    )?;
    let sync_pick = ctx.pick(
        args.sync_config_file.as_ref(),
        Arg::SyncConfigFile,
        file.sync.file.as_ref(),
        "sync.file",
    );
    let sync_config_file = sync_pick.as_ref().map(|(v, o)| path(v, o)).transpose()?;
    let sync_configmap = configmap_name(&ctx, Arg::SyncConfigmapName)?;
    if let (Some((_, file_origin)), Some(_)) = (&sync_pick, &sync_configmap) {
        return Err(ConfigError::Invalid {
            origin: describe(file_origin),
            message: format!(
                "{} is also set: the sync config comes from one source, a file or a ConfigMap; drop one",
                Arg::SyncConfigmapName.flag()
            ),
        });
    }

    let sync = SyncOptions {
        resync_interval: duration(
            &ctx,
            file.sync.resync_interval.as_ref(),
            "sync.resync_interval",
            Duration::from_secs(600),
            Duration::from_secs(1),
            Duration::from_secs(24 * 3600),
        )?,
        queue_capacity: match &file.sync.queue_capacity {
            Some(v) => usize::try_from(*v.get_ref())
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    invalid(
                        &ctx.file_origin("sync.queue_capacity", v),
                        "must be between 1 and 1000000",
                    )
                })?,
            None => 1024,
        },
        requests_per_second: match &file.sync.requests_per_second {
            Some(v) => u32::try_from(*v.get_ref())
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    invalid(
                        &ctx.file_origin("sync.requests_per_second", v),
                        "must be between 1 and 1000",
                    )
                })?,
            None => 20,
        },
        all_projects: file.sync.all_projects.unwrap_or(false),
    };
    let kubernetes = KubernetesConfig {
        kubeconfig: ctx
            .pick(
                args.kubeconfig.as_ref(),
                Arg::Kubeconfig,
                file.kubernetes.kubeconfig.as_ref(),
                "kubernetes.kubeconfig",
            )
            .map(|(v, o)| path(&v, &o))
            .transpose()?,
        timeout: duration(
            &ctx,
            file.kubernetes.timeout.as_ref(),
            "kubernetes.timeout",
            Duration::from_secs(10),
            Duration::from_millis(100),
            Duration::from_secs(120),
        )?,
    };

    // logging
    if args.vmodule.is_some() {
        warnings.push("--vmodule is accepted for compatibility and ignored (use --log-level with a tracing directive, e.g. kk_webhook=debug)".into());
    }
    let log_level = match (&args.log_level, args.verbosity, &file.log_level) {
        (Some(l), _, _) => l.clone(),
        (None, Some(v), _) => kk_core::goflags::verbosity_level(v).to_string(),
        (None, None, Some(l)) => l.get_ref().clone(),
        (None, None, None) => "info".to_string(),
    };
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        return Err(ConfigError::Invalid {
            origin: "log level".into(),
            message: format!("{log_level:?} is not a log level or filter directive"),
        });
    }

    Ok(Config {
        listen,
        server,
        tls,
        keystone: KeystoneConfig {
            url,
            ca_file,
            timeout,
            connect_timeout,
            service_type,
            user_agent: ua.join(" "),
            service_auth,
        },
        username_format,
        max_token_length,
        cache,
        appcred_tokens,
        policy_file,
        policy_configmap,
        policy_reload_interval,
        policy_strict: file.policy.strict.unwrap_or(false),
        sync_config_file,
        sync_configmap,
        sync_strict: file.sync.strict.unwrap_or(false),
        sync,
        kubernetes,
        log_level,
        warnings,
    })
}

fn service_identity(s: &file::ServiceIdentitySection) -> Result<AuthRequest, String> {
    if let Some(id) = &s.application_credential_id {
        let secret = s
            .application_credential_secret
            .clone()
            .ok_or("`application_credential_secret` is missing")?;
        return Ok(AuthRequest::ApplicationCredential {
            id: Some(id.clone()),
            name: None,
            user: None,
            secret,
        });
    }
    let password = s.password.clone().ok_or("set `application_credential_id` + `application_credential_secret`, or a user with `password`")?;
    let user = match (&s.user_id, &s.user_name) {
        (Some(id), _) => UserRef::Id(id.clone()),
        (None, Some(name)) => {
            if s.user_domain_id.is_none() && s.user_domain_name.is_none() {
                return Err("`user_name` needs `user_domain_name` or `user_domain_id`".into());
            }
            UserRef::Name {
                name: name.clone(),
                domain_id: s.user_domain_id.clone(),
                domain_name: s.user_domain_name.clone(),
            }
        }
        (None, None) => return Err("`user_id` or `user_name` is missing".into()),
    };
    let scope = match (&s.project_id, &s.project_name) {
        (Some(id), _) => Scope::ProjectId(id.clone()),
        (None, Some(name)) => {
            if s.project_domain_id.is_none() && s.project_domain_name.is_none() {
                return Err(
                    "`project_name` needs `project_domain_name` or `project_domain_id`".into(),
                );
            }
            Scope::ProjectName {
                name: name.clone(),
                domain_id: s.project_domain_id.clone(),
                domain_name: s.project_domain_name.clone(),
            }
        }
        (None, None) => Scope::Unscoped,
    };
    Ok(AuthRequest::Password {
        user,
        password,
        scope,
    })
}

#[cfg(test)]
mod tests;
