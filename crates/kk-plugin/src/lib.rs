//! kk-plugin: `kubectl-keystone-auth` (binary `src/main.rs`): the kubectl exec credential plugin and the kubeconfig generator.
//!
//! | module | concern |
//! |---|---|
//! | [`cli`] | flags (clap) |
//! | [`settings`] | flags > `OS_*` > clouds.yaml → a typed [`settings::Plan`] (pure) |
//! | [`clouds`] | finding and reading `clouds.yaml` / `secure.yaml` |
//! | [`exec`] | `KUBERNETES_EXEC_INFO` in, `ExecCredential` out (pure) |
//! | [`cache`] | the on-disk token cache, its `flock`, and remembered refusals |
//! | [`kubeconfig`] | kubeconfig generation and merging (pure) |
//! | [`prompt`] | asking on the terminal |
//!
//! This file holds the flows that tie them to Keystone and the file system:
//! [`exec_credential`] (with the memory of Keystone's refusals), [`kubeconfig`] and
//! [`clear_cache`].

pub mod cache;
pub mod cli;
pub mod clouds;
pub mod exec;
pub mod kubeconfig;
pub mod prompt;
pub mod settings;

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use tracing::{debug, info, warn};

use cli::{CredentialArgs, KubeconfigArgs};
use kk_core::keystone::types::Token;
use kk_core::keystone::{
    ClientSettings, KeystoneClient, KeystoneError, NewApplicationCredential, Scope, UserRef,
};
use kk_core::kubeconfig::{Config, InteractiveMode};
use kk_core::secret::Secret;
use kk_core::timefmt::parse_rfc3339;
use settings::{Field, Layer, Method, Origin, Plan, SettingsError};

/// Most questions asked on the terminal in one run.
const MAX_PROMPTS: usize = 6;

/// What the process sees: its environment, working directory and terminal.
pub struct Process<'a> {
    /// Environment lookup.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Working directory (for `./clouds.yaml`).
    pub cwd: Option<PathBuf>,
    /// Whether stdin is a terminal.
    pub stdin_is_terminal: bool,
}

/// Flags, environment and the cloud of clouds.yaml, highest first.
///
/// A cloud named by `OS_CLOUD` (not by `--os-cloud`) that cannot be loaded, or that names a TLS
/// file that does not exist, is skipped with a warning when the flags and the environment
/// already make a complete credential: a stray `OS_CLOUD` in the shell must not break a
/// kubeconfig that carries everything itself.
pub fn layers(args: &CredentialArgs, ctx: &Process<'_>) -> Result<Vec<Layer>> {
    let mut out = vec![args.layer(), Layer::from_env(ctx.env)];
    let flag = args.os_cloud.clone().filter(|s| !s.is_empty());
    let from_flag = flag.is_some();
    let cloud = flag.or_else(|| (ctx.env)("OS_CLOUD").filter(|s| !s.is_empty()));
    let Some(name) = cloud else {
        return Ok(out);
    };
    let loaded =
        clouds::load(&name, ctx.env, ctx.cwd.clone()).and_then(|layer| {
            match missing_file(&layer) {
                Some((field, path)) => Err(anyhow::anyhow!(
                    "cloud {name:?}: its {} {} does not exist",
                    field.describe(),
                    path.display()
                )),
                None => Ok(layer),
            }
        });
    match loaded {
        Ok(layer) => out.push(layer),
        Err(e) if !from_flag && complete(&out) => {
            warn!(
                "ignoring OS_CLOUD={name:?}: {e:#}; the flags and the environment hold a complete credential"
            );
        }
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// A TLS file named by a layer that does not exist.
fn missing_file(layer: &Layer) -> Option<(Field, PathBuf)> {
    [Field::CaCert, Field::Cert, Field::Key]
        .into_iter()
        .filter_map(|f| layer.get(f).map(|v| (f, PathBuf::from(v.expose()))))
        .find(|(_, p)| !p.exists())
}

/// Whether these layers resolve to a plan with nothing missing.
fn complete(layers: &[Layer]) -> bool {
    settings::resolve(layers).is_ok_and(|plan| plan.missing_secret().is_none())
}

const NOT_INTERACTIVE: &str = "(not asking on the terminal: kubectl runs this plugin non-interactively; set interactiveMode: IfAvailable in the kubeconfig to allow it)";

/// Resolves the settings, asking on the terminal for what is missing when allowed.
pub fn resolve(layers: &mut Vec<Layer>, interactive: bool) -> Result<Plan> {
    for _ in 0..MAX_PROMPTS {
        match settings::resolve(layers) {
            Ok(plan) => return Ok(plan),
            Err(SettingsError::Missing { field, .. }) if interactive => {
                let value = if field.is_secret() {
                    prompt::ask_secret(&format!("Keystone {}", field.describe()))?
                } else {
                    Secret::new(prompt::ask(&format!("Keystone {}", field.describe()))?)
                };
                if value.is_empty() {
                    bail!("no {} given", field.describe());
                }
                prompt_layer(layers).set(field, value.expose());
            }
            // A missing URL is not something to type on a terminal: no interactiveMode hint.
            Err(
                e @ SettingsError::Missing {
                    field: Field::AuthUrl,
                    ..
                },
            ) => return Err(e.into()),
            Err(e @ SettingsError::Missing { .. }) => {
                return Err(anyhow::anyhow!("{e} {NOT_INTERACTIVE}"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("too many missing settings")
}

fn prompt_layer(layers: &mut Vec<Layer>) -> &mut Layer {
    if layers.last().is_none_or(|l| l.origin != Origin::Prompt) {
        layers.push(Layer::new(Origin::Prompt));
    }
    let last = layers.len() - 1;
    &mut layers[last]
}

/// Fills the plan's missing secret (password, application credential secret).
fn complete_secret(plan: &mut Plan, interactive: bool) -> Result<()> {
    if let Some(field) = plan.missing_secret() {
        if !interactive {
            let e = SettingsError::Missing {
                field,
                alternative: None,
            };
            bail!("{e} {NOT_INTERACTIVE}");
        }
        let v = prompt::ask_secret(&format!("Keystone {}", field.describe()))?;
        if v.is_empty() {
            bail!("no {} given", field.describe());
        }
        plan.set_secret(v);
    }
    Ok(())
}

fn client(plan: &Plan) -> Result<KeystoneClient> {
    KeystoneClient::new(
        &ClientSettings {
            url: plan.url.clone(),
            ca_file: plan.tls.cacert.clone(),
            client_identity: plan.tls.client.clone(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            user_agent: format!("kubectl-keystone-auth/{}", kk_core::VERSION),
            service_auth: None,
        },
        None,
    )
}

/// What Keystone refused, for a message.
fn refused_what(auth: settings::AuthType) -> &'static str {
    match auth {
        settings::AuthType::ApplicationCredential => "application credential",
        settings::AuthType::Password => "user name and password",
        settings::AuthType::Token => "token",
    }
}

/// What a refusal means in this flow, and what to check.
fn refused_hint(auth: settings::AuthType) -> &'static str {
    match auth {
        settings::AuthType::Password => {
            "check the user name, the password and the user's domain; the account may also be locked (after too many failed attempts) or disabled"
        }
        settings::AuthType::ApplicationCredential => {
            "check its id (or its name and user) and its secret, and whether it was deleted or has expired"
        }
        settings::AuthType::Token => {
            "it has expired or was revoked; get a new one (e.g. with `openstack token issue`)"
        }
    }
}

/// The message for Keystone's refusal of the plan's credential, fitting its flow; `ago` says
/// when, for a remembered refusal. The URL is shown redacted.
fn refused_message(
    auth: settings::AuthType,
    url: &str,
    status: u16,
    message: &str,
    ago: Option<Duration>,
) -> String {
    let http = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    };
    let ago = ago
        .map(|a| format!(" {} s ago", a.as_secs()))
        .unwrap_or_default();
    format!(
        "Keystone at {} refused the {}{ago} ({http}): {}",
        kk_core::urls::redact_url(url),
        refused_what(auth),
        refused_hint(auth)
    )
}

/// The message of a run that does not ask Keystone because it refused this very credential
/// `age` ago, and remembers it for `left` more.
fn remembered_message(
    auth: settings::AuthType,
    url: &str,
    refusal: &cache::Refusal,
    age: Duration,
    left: Duration,
) -> String {
    let secret = match auth {
        settings::AuthType::Password => "password",
        settings::AuthType::ApplicationCredential => "secret",
        settings::AuthType::Token => "token",
    };
    format!(
        "{}. Not asking Keystone again with this same credential for the next {} s, so that one kubectl command (which runs this plugin again on each of its retries) makes at most one attempt and cannot trigger Keystone's account lockout. To retry at once: fix the credential (a changed {secret} is tried at once), or run `kubectl-keystone-auth clear-cache`, or give --refusal-ttl 0 (or set {REFUSAL_TTL_VAR}=0)",
        refused_message(auth, url, refusal.status, &refusal.message, Some(age)),
        secs_up(left),
    )
}

/// Whole seconds, rounded up: never "for the next 0 s".
fn secs_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Keystone's definite "no" to the credential (401, or 404 for an unknown application
/// credential or token): its status and message. Network errors, timeouts, 5xx and other
/// answers decide nothing about the credential and are `None`.
fn definite_refusal(e: &KeystoneError) -> Option<(u16, String)> {
    match e {
        KeystoneError::Unauthorized { status, message } => Some((*status, message.clone())),
        KeystoneError::InvalidToken { status } => Some((*status, String::new())),
        _ => None,
    }
}

fn refused(plan: &Plan, e: KeystoneError) -> anyhow::Error {
    match definite_refusal(&e) {
        Some((status, message)) => anyhow::anyhow!(refused_message(
            plan.auth_type(),
            plan.url.as_str(),
            status,
            &message,
            None
        )),
        None => anyhow::Error::new(e),
    }
}

/// Asks Keystone for a token for the plan: `POST /v3/auth/tokens`, or, for an unscoped token
/// flow, the token itself after validating it (which tells its expiry). The outer `Err` is a
/// local problem (TLS files, a missing secret), the inner one Keystone's answer.
async fn ask_keystone(plan: &Plan) -> Result<Result<(Secret, Token), KeystoneError>> {
    let ks = client(plan)?;
    Ok(match &plan.method {
        Method::Token {
            token,
            scope: Scope::Unscoped,
        } => ks
            .validate_token(token)
            .await
            .map(|body| (token.clone(), body)),
        _ => {
            let req = plan.auth_request()?;
            ks.issue_token(&req).await
        }
    })
}

/// [`ask_keystone`], with a refusal turned into its message.
async fn fetch(plan: &Plan) -> Result<(Secret, Token)> {
    ask_keystone(plan).await?.map_err(|e| refused(plan, e))
}

/// Variable of `--refusal-ttl`.
pub const REFUSAL_TTL_VAR: &str = "OS_REFUSAL_TTL";
/// Default of `--refusal-ttl`.
pub const DEFAULT_REFUSAL_TTL: Duration = Duration::from_secs(30);
/// Longest `--refusal-ttl`.
const MAX_REFUSAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// A refusal TTL: a duration, or `0` to turn the memory off; at most 24 h. The error says what
/// is wrong with the value (the caller names where it came from).
pub fn parse_refusal_ttl(value: &str) -> Result<Duration, String> {
    let ttl = if value.trim() == "0" {
        Duration::ZERO
    } else {
        kk_core::parse_duration(value)
            .map_err(|e| format!("{e}, or 0 to turn the refusal memory off"))?
    };
    if ttl > MAX_REFUSAL_TTL {
        return Err(format!("{value:?} is longer than the most allowed, 24h"));
    }
    Ok(ttl)
}

/// How long a refusal is remembered: `--refusal-ttl`, else `OS_REFUSAL_TTL`, else 30 s; `0`
/// turns the memory off. An empty value counts as unset. (clap has already checked the flag;
/// the variable is checked here, before anything is looked up.)
pub fn refusal_ttl(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Duration> {
    let (value, source) = match flag.filter(|v| !v.trim().is_empty()) {
        Some(v) => (v.to_string(), "--refusal-ttl".to_string()),
        None => match env(REFUSAL_TTL_VAR).filter(|v| !v.trim().is_empty()) {
            Some(v) => (
                v,
                format!("{REFUSAL_TTL_VAR} (the variable of --refusal-ttl)"),
            ),
            None => return Ok(DEFAULT_REFUSAL_TTL),
        },
    };
    parse_refusal_ttl(&value).map_err(|e| anyhow::anyhow!("{source}: {e}"))
}

/// The memory of Keystone's refusals of one credential: a file in the token cache's directory,
/// named by [`Plan::refusal_key`] (a hash that includes the secret). It is kept with
/// `--no-cache` too (it holds neither a token nor a secret); the directory is created only to
/// remember a refusal.
struct RefusalMemory {
    dir: PathBuf,
    key: String,
    url: String,
    identity: String,
    ttl: Duration,
}

impl RefusalMemory {
    /// The cache directory when `cache` is `None` (`--no-cache`, or it could not be locked).
    fn store(&self, cache: Option<&cache::TokenCache>, create: bool) -> Option<cache::TokenCache> {
        if let Some(c) = cache {
            return Some(c.clone());
        }
        let opened = if create {
            cache::TokenCache::open(&self.dir).map(Some)
        } else {
            cache::TokenCache::open_existing(&self.dir)
        };
        opened.unwrap_or_else(|e| {
            warn!("refusals are not remembered: {e:#}");
            None
        })
    }

    /// `Err` with the message to show when Keystone refused this credential less than the TTL
    /// ago; a refusal that is older is forgotten.
    fn check(&self, cache: Option<&cache::TokenCache>, auth: settings::AuthType) -> Result<()> {
        let Some(store) = self.store(cache, false) else {
            return Ok(());
        };
        let Some(refusal) = store.read_refusal(&self.key, &self.url, &self.identity) else {
            return Ok(());
        };
        match cache::refusal_remaining(refusal.refused_at, SystemTime::now(), self.ttl) {
            Some((age, left)) => {
                debug!(
                    age_s = age.as_secs(),
                    left_s = left.as_secs(),
                    "Keystone refused this credential recently; not asking again"
                );
                Err(anyhow::anyhow!(remembered_message(
                    auth, &self.url, &refusal, age, left
                )))
            }
            None => {
                store.remove_refusal(&self.key);
                Ok(())
            }
        }
    }

    /// Remembers Keystone's refusal; whether it was written.
    fn remember(&self, cache: Option<&cache::TokenCache>, status: u16, message: &str) -> bool {
        let Some(store) = self.store(cache, true) else {
            return false;
        };
        let refusal = cache::Refusal {
            refused_at: SystemTime::now(),
            status,
            message: message.to_string(),
        };
        match store.write_refusal(&self.key, &self.url, &self.identity, &refusal) {
            Ok(()) => true,
            Err(e) => {
                warn!("could not remember Keystone's refusal: {e:#}");
                false
            }
        }
    }

    /// Forgets every refusal of this URL and identity once a credential of it worked.
    fn forget(&self, cache: Option<&cache::TokenCache>) {
        if let Some(store) = self.store(cache, false) {
            let n = store.forget_refusals(&self.url, &self.identity);
            if n > 0 {
                debug!(n, "forgot earlier refusals of this identity");
            }
        }
    }
}

fn expiry(body: &Token) -> Result<SystemTime> {
    parse_rfc3339(&body.expires_at).context("Keystone's token has an unreadable expires_at")
}

/// The exec plugin: returns the ExecCredential JSON to print.
pub async fn exec_credential(args: &CredentialArgs, ctx: &Process<'_>) -> Result<String> {
    // Every duration is known to be valid before anything is looked up: the flags were parsed
    // by clap, the variable is parsed here.
    let refusal_ttl = refusal_ttl(args.refusal_ttl.as_deref(), ctx.env)?;
    let margin = args.refresh_margin;
    let info = exec::parse_exec_info((ctx.env)("KUBERNETES_EXEC_INFO").as_deref())?;
    let interactive = exec::may_prompt(&info, ctx.stdin_is_terminal);
    let mut layers = layers(args, ctx)?;
    let mut plan = resolve(&mut layers, interactive)?;
    let identity = plan.identity();
    let url = plan.url.to_string();
    debug!(keystone = %url, %identity, interactive, "settings resolved");

    let cache_dir = cache::default_dir(ctx.env);
    let cache = if args.no_cache {
        None
    } else {
        match &cache_dir {
            None => {
                warn!(
                    "no cache directory: XDG_CACHE_HOME and HOME are unset or not absolute, and the password database has no home directory for you; tokens are not cached"
                );
                None
            }
            Some(dir) => match cache::TokenCache::open(dir) {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!("tokens are not cached: {e:#}");
                    None
                }
            },
        }
    };
    let key = cache::key(&url, &identity);
    let fresh = |c: &cache::TokenCache| {
        c.read(&key, &url, &identity)
            .filter(|hit| cache::is_fresh(hit.expires_at, SystemTime::now(), margin))
    };
    // A fresh token needs no lock: cache files are replaced atomically.
    if let Some(hit) = cache.as_ref().and_then(fresh) {
        debug!("using the cached token");
        return Ok(exec::exec_credential(
            info.api_version,
            &hit.token,
            hit.expires_at,
        )?);
    }
    // Ask for a missing secret before taking the lock: parallel runs must not wait for a
    // password being typed.
    complete_secret(&mut plan, interactive)?;
    let auth = plan.auth_type();
    // A credential Keystone just refused is not tried again: kubectl runs this plugin on each of
    // its retries, and every failed password attempt counts towards Keystone's lockout.
    let memory = match (&cache_dir, plan.refusal_key()) {
        (Some(dir), Some(key)) if !refusal_ttl.is_zero() => Some(RefusalMemory {
            dir: dir.clone(),
            key,
            url: url.clone(),
            identity: identity.clone(),
            ttl: refusal_ttl,
        }),
        _ => None,
    };
    if let Some(m) = &memory {
        m.check(cache.as_ref(), auth)?;
    }
    let (cache, _lock) = match cache {
        Some(c) => match c.lock(&key, args.lock_timeout).await {
            Ok(lock) => (Some(c), Some(lock)),
            Err(e) => {
                warn!("{e:#}; going on without the token cache");
                (None, None)
            }
        },
        None => (None, None),
    };
    // Another run may have renewed the token while this one waited for the lock.
    if let Some(hit) = cache.as_ref().and_then(fresh) {
        debug!("using the token another run just cached");
        return Ok(exec::exec_credential(
            info.api_version,
            &hit.token,
            hit.expires_at,
        )?);
    }
    // ... or another run may have been refused while this one waited.
    if let Some(m) = &memory {
        m.check(cache.as_ref(), auth)?;
    }
    let (token, body) = match ask_keystone(&plan).await? {
        Ok(got) => got,
        Err(e) => {
            let Some((status, message)) = definite_refusal(&e) else {
                return Err(anyhow::Error::new(e));
            };
            let text = refused_message(auth, &url, status, &message, None);
            let remembered = memory
                .as_ref()
                .is_some_and(|m| m.remember(cache.as_ref(), status, &message));
            if remembered {
                bail!(
                    "{text} (this credential is not tried again for {} s: see --refusal-ttl)",
                    secs_up(refusal_ttl)
                );
            }
            bail!("{text}");
        }
    };
    if let Some(m) = &memory {
        m.forget(cache.as_ref());
    }
    let expires = expiry(&body)?;
    info!(user = %body.user.name, "got a Keystone token");
    if let Some(c) = &cache
        && let Err(e) = c.write(&key, &url, &identity, &token, expires)
    {
        warn!("could not cache the token: {e:#}");
    }
    Ok(exec::exec_credential(info.api_version, &token, expires)?)
}

/// `clear-cache`: returns the directory and how many files were removed.
pub fn clear_cache(ctx: &Process<'_>) -> Result<(PathBuf, usize)> {
    let dir = cache::default_dir(ctx.env).context(
        "there is no cache directory: XDG_CACHE_HOME and HOME are unset or not absolute, and the password database has no home directory for you",
    )?;
    if !dir.exists() {
        return Ok((dir, 0));
    }
    let c = cache::TokenCache::open(&dir)?;
    let n = c.clear()?;
    Ok((dir, n))
}

/// Where the kubeconfig went.
pub enum Written {
    /// To be printed on stdout.
    Stdout(String),
    /// Written to this file.
    File(PathBuf),
}

fn abs(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

fn tls_env(plan: &Plan, env: &mut Vec<(String, Secret)>) {
    if let Some(ca) = &plan.tls.cacert {
        env.push((Field::CaCert.var().into(), Secret::new(abs(ca))));
    }
    if let Some((c, k)) = &plan.tls.client {
        env.push((Field::Cert.var().into(), Secret::new(abs(c))));
        env.push((Field::Key.var().into(), Secret::new(abs(k))));
    }
}

fn user_env(user: &UserRef, env: &mut Vec<(String, Secret)>) {
    match user {
        UserRef::Id(id) => env.push((Field::UserId.var().into(), Secret::new(id))),
        UserRef::Name {
            name,
            domain_id,
            domain_name,
        } => {
            env.push((Field::UserName.var().into(), Secret::new(name)));
            if let Some(d) = domain_id {
                env.push((Field::UserDomainId.var().into(), Secret::new(d)));
            }
            if let Some(d) = domain_name {
                env.push((Field::UserDomainName.var().into(), Secret::new(d)));
            }
        }
    }
}

fn scope_env(scope: &Scope, env: &mut Vec<(String, Secret)>) {
    match scope {
        Scope::ProjectId(id) => env.push((Field::ProjectId.var().into(), Secret::new(id))),
        Scope::ProjectName {
            name,
            domain_id,
            domain_name,
        } => {
            env.push((Field::ProjectName.var().into(), Secret::new(name)));
            if let Some(d) = domain_id {
                env.push((Field::ProjectDomainId.var().into(), Secret::new(d)));
            }
            if let Some(d) = domain_name {
                env.push((Field::ProjectDomainName.var().into(), Secret::new(d)));
            }
        }
        Scope::Unscoped => {}
    }
}

/// Mints an application credential with the plan's password or token; returns the kubeconfig
/// environment for it.
async fn mint(
    plan: &mut Plan,
    interactive: bool,
    request: NewApplicationCredential,
) -> Result<Vec<(String, Secret)>> {
    complete_secret(plan, interactive)?;
    let (token, body) = fetch(plan).await?;
    let ks = client(plan)?;
    let created = match ks
        .create_application_credential(&token, &body.user.id, &request)
        .await
    {
        Ok(c) => c,
        Err(KeystoneError::Status {
            status: 403,
            message,
            ..
        }) if body.application_credential.is_some() => {
            let ac = body
                .application_credential
                .as_ref()
                .map(|a| a.name.clone())
                .unwrap_or_default();
            bail!(
                "Keystone refused to create application credential {:?} (HTTP 403: {message}): the token comes from application credential {ac:?}, and Keystone does not let tokens of a restricted application credential create others. Authenticate with your password (OS_PASSWORD) or a session token (OS_TOKEN, e.g. from `openstack token issue` after an SSO login) instead",
                request.name
            );
        }
        Err(KeystoneError::Status {
            status: 409,
            message,
            ..
        }) => bail!(
            "Keystone refused to create application credential {:?} (HTTP 409: {message}): you already have one with that name; choose another name or delete the old one",
            request.name
        ),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot create application credential {:?}",
                request.name
            )));
        }
    };
    eprintln!(
        "kubectl-keystone-auth: created application credential {:?} (id {}) for user {} in project {}{}",
        created.name,
        created.id,
        body.user.name,
        body.project
            .as_ref()
            .map(|p| p.name.as_str())
            .unwrap_or("?"),
        created
            .expires_at
            .as_deref()
            .map(|e| format!(", expiring {e}"))
            .unwrap_or_default()
    );
    let mut env = vec![
        (Field::AuthUrl.var().into(), Secret::new(plan.url.as_str())),
        (
            Field::AuthType.var().into(),
            Secret::new(settings::AuthType::ApplicationCredential.as_str()),
        ),
        (Field::AppCredId.var().into(), Secret::new(created.id)),
        (Field::AppCredSecret.var().into(), created.secret),
    ];
    tls_env(plan, &mut env);
    Ok(env)
}

/// Adds every `OS_*` variable of the settings that `env` does not set, with an empty value, and
/// an empty `OS_CLOUD`: kubectl passes its own environment to the plugin, and a variable of the
/// user's shell (an openrc's `OS_USER_ID`, a stray `OS_CLOUD`) must not mix with the
/// kubeconfig's credential. Only the password of the password flow is left to the shell.
fn blank_unused(env: &mut Vec<(String, Secret)>) {
    let keep_password = env.iter().any(|(k, v)| {
        k == Field::AuthType.var() && v.expose() == settings::AuthType::Password.as_str()
    });
    let mut blank: Vec<&str> = Field::ALL
        .iter()
        .filter(|f| !(keep_password && **f == Field::Password))
        .map(|f| f.var())
        .collect();
    blank.extend(Field::ALL.iter().filter_map(|f| f.alias()));
    blank.push("OS_CLOUD");
    for var in blank {
        if !env.iter().any(|(k, _)| k == var) {
            env.push((var.to_string(), Secret::new("")));
        }
    }
}

/// The application-credential bearer token (`kkac1_...`) of the credential the kubeconfig's
/// `exec` would carry in `env`.
fn bearer_token(env: &[(String, Secret)]) -> Result<Secret> {
    let get = |f: Field| {
        env.iter()
            .find(|(k, v)| k == f.var() && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let Some(id) = get(Field::AppCredId) else {
        bail!(
            "--bearer-token needs the application credential's id (--application-credential-id): a bearer token carries the id and the secret, not a name and a user"
        );
    };
    let Some(secret) = get(Field::AppCredSecret) else {
        bail!("--bearer-token needs the application credential's secret");
    };
    eprintln!(
        "kubectl-keystone-auth: the kubeconfig holds the application credential as a bearer token: the cluster's k8s-keystone-auth must enable [application_credential_tokens], and the secret travels in every request (docs/bearer-tokens.md)"
    );
    Ok(kk_core::appcred_token::AppCredToken::new(id.expose(), secret).encode())
}

/// The `kubeconfig` subcommand.
pub async fn kubeconfig(
    cred: &CredentialArgs,
    args: &KubeconfigArgs,
    ctx: &Process<'_>,
) -> Result<Written> {
    let server = url::Url::parse(&args.server).context("--server is not a URL")?;
    if server.scheme() != "https" {
        bail!("--server must be an https:// URL: kubectl sends no credentials over plain http");
    }
    let ca_pem = match &args.certificate_authority {
        Some(p) => {
            let pem = std::fs::read(p)
                .with_context(|| format!("cannot read --certificate-authority {}", p.display()))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                bail!(
                    "--certificate-authority {} holds no PEM certificate",
                    p.display()
                );
            }
            Some(pem)
        }
        None => None,
    };
    let interactive = ctx.stdin_is_terminal;
    let mut layers = layers(cred, ctx)?;
    let mut plan = resolve(&mut layers, interactive)?;
    if args.bearer_token
        && args.create_application_credential.is_none()
        && plan.auth_type() != settings::AuthType::ApplicationCredential
    {
        bail!(
            "--bearer-token writes an application credential as the kubeconfig's token, and the credential given is a {}: give an application credential (--application-credential-id and --application-credential-secret) or add --create-application-credential NAME",
            plan.auth_type().as_str()
        );
    }
    let (mut env, interactive_mode) = match &args.create_application_credential {
        Some(name) => {
            if let Some(e) = &args.expires_at {
                parse_rfc3339(e).map_err(|_| {
                    anyhow::anyhow!(
                        "--expires-at {e:?} is not an RFC 3339 time like 2027-06-30T00:00:00Z"
                    )
                })?;
            }
            let request = NewApplicationCredential {
                name: name.clone(),
                description: args
                    .description
                    .clone()
                    .or_else(|| Some(format!("kubectl access to {}", args.server))),
                expires_at: args.expires_at.clone(),
                roles: args.roles.clone(),
            };
            (
                mint(&mut plan, interactive, request).await?,
                InteractiveMode::Never,
            )
        }
        None => {
            let mut env = vec![
                (
                    Field::AuthUrl.var().to_string(),
                    Secret::new(plan.url.as_str()),
                ),
                (
                    Field::AuthType.var().to_string(),
                    Secret::new(plan.auth_type().as_str()),
                ),
            ];
            if plan.auth_type() == settings::AuthType::ApplicationCredential {
                complete_secret(&mut plan, interactive)?;
            }
            let mode = match &plan.method {
                Method::ApplicationCredential { id, name, user, .. } => {
                    if let Some(id) = id {
                        env.push((Field::AppCredId.var().into(), Secret::new(id)));
                    } else {
                        if let Some(n) = name {
                            env.push((Field::AppCredName.var().into(), Secret::new(n)));
                        }
                        if let Some(u) = user {
                            user_env(u, &mut env);
                        }
                    }
                    if let Ok(kk_core::keystone::AuthRequest::ApplicationCredential {
                        secret,
                        ..
                    }) = plan.auth_request()
                    {
                        env.push((Field::AppCredSecret.var().into(), secret));
                    }
                    if !args.no_verify {
                        let (_, body) = fetch(&plan).await.context(
                            "the application credential does not work (--no-verify skips this check)",
                        )?;
                        eprintln!(
                            "kubectl-keystone-auth: application credential checked: user {} in project {}",
                            body.user.name,
                            body.project
                                .as_ref()
                                .map(|p| p.name.as_str())
                                .unwrap_or("?")
                        );
                    }
                    InteractiveMode::Never
                }
                Method::Password { user, scope, .. } => {
                    eprintln!(
                        "kubectl-keystone-auth: the kubeconfig holds no password: kubectl will ask for it when a token is needed (or set OS_PASSWORD). Consider --create-application-credential NAME instead."
                    );
                    user_env(user, &mut env);
                    scope_env(scope, &mut env);
                    InteractiveMode::IfAvailable
                }
                Method::Token { .. } => bail!(
                    "a Keystone token expires, so it cannot go into a kubeconfig: add --create-application-credential NAME to mint an application credential with it"
                ),
            };
            tls_env(&plan, &mut env);
            (env, mode)
        }
    };
    let token = if args.bearer_token {
        Some(bearer_token(&env)?)
    } else {
        None
    };
    blank_unused(&mut env);
    let cluster = args
        .cluster_name
        .clone()
        .unwrap_or_else(|| default_cluster_name(&server));
    let user = args
        .kube_user
        .clone()
        .unwrap_or_else(|| format!("keystone@{cluster}"));
    let context = args.context_name.clone().unwrap_or_else(|| {
        format!(
            "{}@{cluster}",
            args.kube_user.as_deref().unwrap_or("keystone")
        )
    });
    let spec = kubeconfig::Spec {
        server: args.server.clone(),
        ca_pem,
        cluster,
        context,
        user,
        namespace: args.namespace.clone(),
        command: args.command.clone(),
        args: vec![],
        env,
        interactive_mode,
        token,
    };
    let generated = kubeconfig::generate(&spec);
    if let Some(path) = &args.output {
        write_private(path, &kubeconfig::render(&generated)?, args.force)?;
        return Ok(Written::File(path.clone()));
    }
    if let Some(path) = &args.merge {
        let path = if path.is_empty() {
            default_kubeconfig(ctx)?
        } else {
            PathBuf::from(path)
        };
        merge_into(&path, &generated, args.force)?;
        return Ok(Written::File(path));
    }
    Ok(Written::Stdout(kubeconfig::render(&generated)?))
}

/// The default cluster entry name: the server's host, with its port when the URL names one
/// (`kubernetes`, kubeadm's name, would collide with entries of other tools).
fn default_cluster_name(server: &url::Url) -> String {
    let host = server.host_str().unwrap_or("kubernetes");
    match server.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The kubeconfig kubectl uses: the first file of `$KUBECONFIG`, else `~/.kube/config`.
fn default_kubeconfig(ctx: &Process<'_>) -> Result<PathBuf> {
    if let Some(first) = (ctx.env)("KUBECONFIG")
        .as_deref()
        .and_then(|k| k.split(':').find(|s| !s.is_empty()).map(PathBuf::from))
    {
        return Ok(first);
    }
    let home = cache::home_dir(ctx.env).context(
        "HOME is unset or not absolute and the password database has no home directory for you: give the kubeconfig to merge into as --merge FILE",
    )?;
    Ok(home.join(".kube").join("config"))
}

/// Writes a new file with mode 0600 (refusing to overwrite unless `force`).
fn write_private(path: &Path, text: &str, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!(
            "{} exists: add --force to overwrite it, or use --merge",
            path.display()
        );
    }
    replace_file(path, text, 0o600)
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename.
fn replace_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    kk_core::fsutil::write_atomic(path, text.as_bytes(), mode, |_| Ok(()))
}

/// `path` with its symbolic links followed: the canonical path of an existing file, or, for a
/// link to a file that does not exist yet, the path the link points to.
fn resolve_links(path: &Path) -> Result<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Ok(p);
    }
    let mut p = path.to_path_buf();
    // At most 40 links, as the kernel allows.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p)
                    .with_context(|| format!("cannot read the link {}", p.display()))?;
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(p),
        }
    }
    bail!("{}: too many levels of symbolic links", path.display())
}

/// Merges into an existing kubeconfig (created 0600 if missing; an existing file keeps its
/// mode, tightened to drop access by others since it now holds a credential).
fn merge_into(path: &Path, generated: &Config, force: bool) -> Result<()> {
    // A symlinked kubeconfig (dotfiles) stays a link: the file it points to is replaced.
    let resolved = resolve_links(path)?;
    let path = resolved.as_path();
    let (existing, mode) = match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)
                .map(|m| m.mode() & 0o700)
                .unwrap_or(0o600);
            (
                kubeconfig::parse(&text)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                mode.max(0o600),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Config::default(), 0o600),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let merged = kubeconfig::merge(existing, generated, force)
        .with_context(|| format!("cannot merge into {}", path.display()))?;
    replace_file(path, &kubeconfig::render(&merged)?, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    use settings::AuthType;

    #[test]
    fn the_refusal_message_fits_the_flow() {
        let url = "https://ks.example:5000/v3";
        let pw = refused_message(
            AuthType::Password,
            url,
            401,
            "requires authentication",
            None,
        );
        assert!(
            pw.starts_with(
                "Keystone at https://ks.example:5000/v3 refused the user name and password (HTTP 401: requires authentication): "
            ),
            "{pw}"
        );
        for want in ["user name", "password", "domain", "locked", "disabled"] {
            assert!(pw.contains(want), "{want}: {pw}");
        }
        assert!(!pw.contains("application credential"), "{pw}");
        let ac = refused_message(AuthType::ApplicationCredential, url, 404, "", None);
        assert!(
            ac.contains("refused the application credential (HTTP 404)"),
            "{ac}"
        );
        for want in ["id", "secret", "deleted", "expired"] {
            assert!(ac.contains(want), "{want}: {ac}");
        }
        assert!(!ac.contains("locked"), "{ac}");
        let tok = refused_message(AuthType::Token, url, 404, "", None);
        assert!(tok.contains("refused the token"), "{tok}");
        assert!(tok.contains("expired or was revoked"), "{tok}");
        assert!(!tok.contains("application credential") && !tok.contains("password"));
        // The URL is shown redacted.
        let shown = refused_message(AuthType::Password, "https://u:pw@ks/v3?t=x", 401, "", None);
        assert!(!shown.contains("pw@") && !shown.contains("t=x"), "{shown}");
        assert!(shown.contains("https://<redacted>@ks/v3"), "{shown}");
    }

    #[test]
    fn the_remembered_refusal_says_when_for_how_long_and_how_to_retry() {
        let r = cache::Refusal {
            refused_at: SystemTime::UNIX_EPOCH,
            status: 401,
            message: "requires authentication".into(),
        };
        let m = remembered_message(
            AuthType::Password,
            "http://ks/v3",
            &r,
            Duration::from_millis(3_400),
            Duration::from_millis(26_600),
        );
        for want in [
            "Keystone at http://ks/v3 refused the user name and password 3 s ago (HTTP 401: requires authentication)",
            "locked",
            "for the next 27 s",
            "at most one attempt",
            "lockout",
            "a changed password is tried at once",
            "kubectl-keystone-auth clear-cache",
            "--refusal-ttl 0",
            "OS_REFUSAL_TTL=0",
        ] {
            assert!(m.contains(want), "{want}: {m}");
        }
        let m = remembered_message(
            AuthType::ApplicationCredential,
            "http://ks/v3",
            &r,
            Duration::ZERO,
            Duration::from_millis(1),
        );
        assert!(m.contains("for the next 1 s"), "never 0 s: {m}");
        assert!(m.contains("a changed secret is tried at once"), "{m}");
        assert!(m.contains("deleted or has expired"), "{m}");
    }

    #[test]
    fn only_a_definite_no_is_remembered() {
        let no = KeystoneError::Unauthorized {
            status: 401,
            message: "m".into(),
        };
        assert_eq!(definite_refusal(&no), Some((401, "m".into())));
        let gone = KeystoneError::InvalidToken { status: 404 };
        assert_eq!(definite_refusal(&gone), Some((404, String::new())));
        for not in [
            KeystoneError::Status {
                call: "issue token",
                status: 503,
                message: "down".into(),
            },
            KeystoneError::Status {
                call: "issue token",
                status: 500,
                message: String::new(),
            },
            KeystoneError::Timeout {
                url: "http://ks/v3".into(),
                timeout: Duration::from_secs(30),
            },
            KeystoneError::Protocol {
                call: "issue token",
                detail: "garbage".into(),
            },
        ] {
            assert_eq!(definite_refusal(&not), None, "{not:?}");
        }
    }

    #[test]
    fn the_refusal_ttl_comes_from_the_flag_then_the_variable() {
        let none = |_: &str| None;
        assert_eq!(refusal_ttl(None, &none).unwrap(), Duration::from_secs(30));
        let env = |k: &str| (k == "OS_REFUSAL_TTL").then(|| "2m".to_string());
        assert_eq!(refusal_ttl(None, &env).unwrap(), Duration::from_secs(120));
        assert_eq!(
            refusal_ttl(Some("5s"), &env).unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            refusal_ttl(Some(""), &env).unwrap(),
            Duration::from_secs(120)
        );
        assert_eq!(refusal_ttl(Some("0"), &env).unwrap(), Duration::ZERO);
        assert_eq!(refusal_ttl(Some("0s"), &none).unwrap(), Duration::ZERO);
        let empty = |_: &str| Some(String::new());
        assert_eq!(refusal_ttl(None, &empty).unwrap(), Duration::from_secs(30));
        let err = refusal_ttl(Some("soon"), &none).unwrap_err().to_string();
        assert!(
            err.contains("--refusal-ttl") && err.contains("soon"),
            "{err}"
        );
        let bad = |_: &str| Some("x".to_string());
        let err = refusal_ttl(None, &bad).unwrap_err().to_string();
        assert!(
            err.contains("OS_REFUSAL_TTL") && err.contains("--refusal-ttl"),
            "{err}"
        );
        let err = refusal_ttl(Some("25h"), &none).unwrap_err().to_string();
        assert!(
            err.contains("--refusal-ttl") && err.contains("24h"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_url_has_no_interactive_mode_hint_a_missing_user_has() {
        let mut env = Layer::new(Origin::Environment);
        env.set(Field::AppCredId, "ac");
        let err = resolve(&mut vec![env], false).unwrap_err().to_string();
        assert!(err.contains("OS_AUTH_URL"), "{err}");
        assert!(!err.contains("interactiveMode"), "{err}");
        let mut env = Layer::new(Origin::Environment);
        env.set(Field::AuthUrl, "http://127.0.0.1:5000");
        env.set(Field::AppCredName, "kubectl");
        let err = resolve(&mut vec![env], false).unwrap_err().to_string();
        assert!(err.contains("interactiveMode: IfAvailable"), "{err}");
    }
}
