//! kk-webhook: the `k8s-keystone-auth` service (binary `src/main.rs`): configuration, the
//! token cache, the identity mapping, state, start-up, the TLS accept loop and reloading.
//!
//! | module | concern |
//! |---|---|
//! | [`config`] | command line + TOML file → validated, typed [`config::Config`] |
//! | [`identity`] | pure mapping of a validated Keystone token to a Kubernetes user |
//! | [`cache`] | the TTL token cache with single flight |
//! | [`filters`], [`handlers`], [`authn`] | routes, their handlers, token reviews |
//! | [`tls`], [`reload`] | TLS serving, certificate and policy reloading |
//! | [`configmaps`] | the policy and sync config from ConfigMaps in kube-system, watched |
//! | [`State::sync`] | the namespace sync (crate `kk-sync`), fed by successful TokenReviews |
//!
//! Layout (after warp's `examples/todos.rs`): [`filters`] composes the routes, [`handlers`]
//! answers them, [`authn`] reviews tokens; [`tls`] and [`reload`] keep certificates and the
//! policy current while serving.

pub mod authn;
pub mod cache;
pub mod config;
pub mod configmaps;
pub mod filters;
pub mod handlers;
pub mod identity;
pub mod reload;
pub mod tls;

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tracing::{error, info, warn};

use crate::config::Config;
use authn::{Authenticator, RoleMappings};
use kk_core::keystone::{ClientSettings, KeystoneClient};
use kk_core::metrics::Metrics;
use kk_policy::Policy;
use tls::ReloadableTls;

/// Connections over `server.max_connections` answered at once with HTTP 503; more are closed
/// at accept.
const OVER_LIMIT_ANSWERS: usize = 64;
/// Time allowed for a TLS handshake; also all an over-the-limit connection gets (handshake,
/// request head and its 503 answer).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `Retry-After` of the 503 answer over the connection limit, in seconds.
const OVER_LIMIT_RETRY_AFTER: &str = "1";
/// Time allowed to receive a request's headers. hyper also counts the idle time of a kept-alive
/// connection against it, so it must outlast the idle timeout of kube-apiserver's webhook client
/// (Go's 90 s): the client must close idle connections first. A server that closes them first
/// (this was 10 s) races the apiserver's next POST on that connection, which Go does not retry,
/// and the user's request fails with 401.
const HEADER_TIMEOUT: Duration = Duration::from_secs(120);
/// Time given to open connections to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The namespace sync's worker, as the service runs it.
pub type SyncWorker = kk_sync::Worker<kk_kube::KubeClient, kk_sync::api::KeystoneDirectory>;

/// Everything the handlers share.
pub struct State {
    /// Token reviews.
    pub authenticator: Authenticator,
    policy: RwLock<Arc<Policy>>,
    /// `policy.strict`, for reloads.
    policy_strict: bool,
    /// `sync.strict`, for reloads.
    sync_strict: bool,
    /// The role mappings in force (shared with the authenticator and the sync's user names).
    role_mappings: RoleMappings,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The namespace sync, when the sync config has `data-types-to-sync` (or comes from a
    /// ConfigMap, whose updates may turn it on).
    pub sync: Option<kk_sync::SyncHandle>,
    /// Its worker until [`run`] starts it.
    sync_worker: Mutex<Option<SyncWorker>>,
    /// The ConfigMap watches' health (`/healthz/configmaps`).
    pub configmaps: Vec<Arc<configmaps::WatchStatus>>,
    /// The ConfigMaps read at start-up, until [`run`] starts their watches.
    configmap_watches: Mutex<Vec<(kk_kube::KubeClient, configmaps::Fetched)>>,
    /// `server.max_connections`, for [`serve`].
    max_connections: usize,
}

/// Where the policy or the sync config comes from, for messages.
enum Origin<'a> {
    File(&'a Path),
    ConfigMap(&'a configmaps::Source),
}

impl std::fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::ConfigMap(s) => write!(f, "in {}", s.shown()),
        }
    }
}

impl State {
    /// Builds the state from a validated config: Keystone client, cache, first policy load.
    /// A config with a policy or sync ConfigMap needs [`State::load`] (which reads them).
    pub fn build(config: &Config, metrics: Arc<Metrics>) -> Result<Self> {
        if config.policy_configmap.is_some() || config.sync_configmap.is_some() {
            anyhow::bail!("a ConfigMap source is read by State::load, not State::build");
        }
        Self::assemble(config, metrics, None, Vec::new())
    }

    /// [`State::build`], after reading the policy and sync ConfigMaps (they must exist, hold
    /// their key and parse).
    pub async fn load(config: &Config, metrics: Arc<Metrics>) -> Result<Self> {
        let sources: Vec<configmaps::Source> = [
            (configmaps::Content::Policy, &config.policy_configmap),
            (configmaps::Content::SyncConfig, &config.sync_configmap),
        ]
        .into_iter()
        .filter_map(|(content, name)| {
            name.clone()
                .map(|name| configmaps::Source { content, name })
        })
        .collect();
        if sources.is_empty() {
            return Self::build(config, metrics);
        }
        let client = kube_client(config, &|| {
            let flags: Vec<String> = sources
                .iter()
                .map(|s| format!("{} {}", s.content.flag(), s.name))
                .collect();
            format!("{} reads the Kubernetes API", flags.join(" and "))
        })?;
        let mut fetched = Vec::new();
        for source in sources {
            fetched.push(configmaps::fetch(&client, source).await?);
        }
        Self::assemble(config, metrics, Some(client), fetched)
    }

    fn assemble(
        config: &Config,
        metrics: Arc<Metrics>,
        kube: Option<kk_kube::KubeClient>,
        fetched: Vec<configmaps::Fetched>,
    ) -> Result<Self> {
        let keystone = KeystoneClient::new(
            &ClientSettings {
                url: config.keystone.url.clone(),
                ca_file: config.keystone.ca_file.clone(),
                client_identity: None,
                timeout: config.keystone.timeout,
                connect_timeout: config.keystone.connect_timeout,
                user_agent: config.keystone.user_agent.clone(),
                service_auth: config.keystone.service_auth.clone(),
            },
            Some(metrics.clone()),
        )?;
        let from_configmap = |content| fetched.iter().find(|f| f.source.content == content);
        let startup =
            |source: &configmaps::Source| format!("{} {}", source.content.flag(), source.name);
        let policy = match (
            &config.policy_file,
            from_configmap(configmaps::Content::Policy),
        ) {
            (Some(path), _) => Some((load_policy(path, config.policy_strict, &metrics)?, "file")),
            (None, Some(f)) => {
                let text = f
                    .source
                    .text(&f.configmap)
                    .with_context(|| startup(&f.source))?;
                let p = parse_policy(
                    text,
                    &Origin::ConfigMap(&f.source),
                    config.policy_strict,
                    &metrics,
                )
                .with_context(|| startup(&f.source))?;
                info!(configmap = %f.source.shown(), rules = p.len(), "policy loaded");
                Some((p, "configmap"))
            }
            (None, None) => None,
        };
        let policy = match policy {
            Some((p, source)) => {
                metrics.inc(
                    kk_core::metrics::Counter::PolicyReloads,
                    &[("source", source), ("result", "success")],
                );
                p
            }
            None => Policy::empty(),
        };
        metrics
            .policy_rules
            .store(policy.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let sync_config = match (
            &config.sync_config_file,
            from_configmap(configmaps::Content::SyncConfig),
        ) {
            (Some(path), _) => Some((
                load_sync_config(path, config.sync_strict)?,
                Origin::File(path),
            )),
            (None, Some(f)) => {
                let text = f
                    .source
                    .text(&f.configmap)
                    .with_context(|| startup(&f.source))?;
                let c = parse_sync_config(text, &Origin::ConfigMap(&f.source), config.sync_strict)
                    .with_context(|| startup(&f.source))?;
                Some((c, Origin::ConfigMap(&f.source)))
            }
            (None, None) => None,
        };
        if let Some((_, origin)) = &sync_config {
            let source = match origin {
                Origin::File(_) => "file",
                Origin::ConfigMap(_) => "configmap",
            };
            metrics.inc(
                kk_core::metrics::Counter::SyncConfigReloads,
                &[("source", source), ("result", "success")],
            );
        }
        let role_mappings = RoleMappings::new(
            sync_config
                .as_ref()
                .map(|(c, _)| c.role_mappings.clone())
                .unwrap_or_default(),
        );
        let (sync, sync_worker) = match &sync_config {
            Some((sc, origin)) => {
                // A sync ConfigMap's updates may turn the sync on: its worker always exists.
                let always = match origin {
                    Origin::ConfigMap(_) => kube.clone(),
                    Origin::File(_) => None,
                };
                build_sync(
                    config,
                    origin,
                    sc,
                    &keystone,
                    &role_mappings,
                    always,
                    metrics.clone(),
                )?
            }
            None => {
                if config.kubernetes.kubeconfig.is_some() && kube.is_none() {
                    info!(
                        "the kubeconfig is not used: without a sync config file there is nothing to sync"
                    );
                }
                (None, None)
            }
        };
        let statuses: Vec<Arc<configmaps::WatchStatus>> = fetched
            .iter()
            .map(|f| {
                Arc::new(configmaps::WatchStatus::new(
                    f.source.clone(),
                    f.configmap.metadata.resource_version.clone(),
                ))
            })
            .collect();
        let watches = match kube {
            Some(client) => fetched.into_iter().map(|f| (client.clone(), f)).collect(),
            None => Vec::new(),
        };
        Ok(Self {
            authenticator: Authenticator::new(
                keystone,
                config.cache.clone(),
                config.keystone.service_type.clone(),
                config.username_format,
                config.max_token_length,
                role_mappings.clone(),
                metrics.clone(),
            )
            .with_appcred_tokens(config.appcred_tokens.clone()),
            policy: RwLock::new(Arc::new(policy)),
            policy_strict: config.policy_strict,
            sync_strict: config.sync_strict,
            role_mappings,
            metrics,
            sync,
            sync_worker: Mutex::new(sync_worker),
            configmaps: statuses,
            configmap_watches: Mutex::new(watches),
            max_connections: config.server.max_connections,
        })
    }

    /// The sync's worker, once (for [`run`] to start it, or `--check-config` to probe).
    pub fn take_sync_worker(&self) -> Option<SyncWorker> {
        self.sync_worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads the policy file; an invalid file leaves the policy in force.
    pub fn reload_policy(&self, path: &Path) {
        let result = load_policy(path, self.policy_strict, &self.metrics);
        // Logged and counted inside.
        let _ = self.policy_loaded(result, &Origin::File(path));
    }

    /// Re-reads the sync config file; an invalid or missing file leaves the sync config in
    /// force (its role mappings and sync rules).
    pub fn reload_sync_config(&self, path: &Path) {
        let result = load_sync_config(path, self.sync_strict);
        if let Err(e) = &result {
            error!(
                error = format!("{e:#}"),
                "sync config file rejected; keeping the sync config in force"
            );
        }
        // Counted inside.
        let _ = self.sync_config_loaded(result, &Origin::File(path));
    }

    /// A policy read (from the file or a ConfigMap): put in force, or rejected keeping the
    /// policy in force; logged and counted in `policy_reloads_total{source, result}`.
    fn policy_loaded(&self, result: Result<Policy>, origin: &Origin<'_>) -> Result<()> {
        let source = match origin {
            Origin::File(_) => "file",
            Origin::ConfigMap(_) => "configmap",
        };
        match result {
            Ok(p) => {
                info!(source = %origin, rules = p.len(), "policy reloaded");
                self.metrics
                    .policy_rules
                    .store(p.len() as u64, std::sync::atomic::Ordering::Relaxed);
                self.metrics.inc(
                    kk_core::metrics::Counter::PolicyReloads,
                    &[("source", source), ("result", "success")],
                );
                match self.policy.write() {
                    Ok(mut g) => *g = Arc::new(p),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(p),
                }
                Ok(())
            }
            Err(e) => {
                if let Origin::File(_) = origin {
                    error!(
                        error = format!("{e:#}"),
                        "policy file rejected; keeping the policy in force"
                    );
                }
                self.metrics.inc(
                    kk_core::metrics::Counter::PolicyReloads,
                    &[("source", source), ("result", "failure")],
                );
                Err(e)
            }
        }
    }

    /// A sync config read (from its file or its ConfigMap): its role mappings and sync rules put in
    /// force, or rejected keeping the sync config in force; counted in
    /// `sync_config_reloads_total{source, result}`.
    fn sync_config_loaded(
        &self,
        result: Result<kk_policy::sync_config::SyncConfig>,
        origin: &Origin<'_>,
    ) -> Result<()> {
        let source = match origin {
            Origin::File(_) => "file",
            Origin::ConfigMap(_) => "configmap",
        };
        let outcome = |r: &'static str| {
            self.metrics.inc(
                kk_core::metrics::Counter::SyncConfigReloads,
                &[("source", source), ("result", r)],
            );
        };
        match result {
            Ok(c) => {
                self.role_mappings.set(c.role_mappings.clone());
                match &self.sync {
                    Some(sync) => sync.set_rules(kk_sync::plan::Rules::from_config(&c)),
                    None if !c.data_types_to_sync.is_empty() => warn!(
                        source = %origin,
                        "the sync config now sets data-types-to-sync, but the namespace sync was not started with this process: restart it to sync"
                    ),
                    None => {}
                }
                info!(source = %origin, role_mappings = c.role_mappings.len(), data_types_to_sync = ?c.data_types_to_sync, "sync config reloaded");
                outcome("success");
                Ok(())
            }
            Err(e) => {
                outcome("failure");
                Err(e)
            }
        }
    }

    /// Starts the watches of the ConfigMaps read at start-up (once).
    fn spawn_configmap_watches(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let watches = std::mem::take(
            &mut *self
                .configmap_watches
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        watches
            .into_iter()
            .filter_map(|(client, fetched)| {
                let status = self
                    .configmaps
                    .iter()
                    .find(|s| s.source == fetched.source)?
                    .clone();
                let target: Arc<dyn configmaps::Apply> = Arc::new(ApplyTo(self.clone()));
                Some(tokio::spawn(configmaps::watch(
                    client,
                    fetched,
                    kk_kube::watch::WatchSettings::default(),
                    status,
                    target,
                )))
            })
            .collect()
    }
}

/// The state, as what a ConfigMap watch applies its updates to.
struct ApplyTo(Arc<State>);

impl configmaps::Apply for ApplyTo {
    fn apply(&self, source: &configmaps::Source, text: &str) -> Result<()> {
        let origin = Origin::ConfigMap(source);
        match source.content {
            configmaps::Content::Policy => {
                let parsed = parse_policy(text, &origin, self.0.policy_strict, &self.0.metrics);
                self.0.policy_loaded(parsed, &origin)
            }
            configmaps::Content::SyncConfig => {
                let parsed = parse_sync_config(text, &origin, self.0.sync_strict);
                self.0.sync_config_loaded(parsed, &origin)
            }
        }
    }

    fn refused(&self, source: &configmaps::Source) {
        let counter = match source.content {
            configmaps::Content::Policy => kk_core::metrics::Counter::PolicyReloads,
            configmaps::Content::SyncConfig => kk_core::metrics::Counter::SyncConfigReloads,
        };
        self.0
            .metrics
            .inc(counter, &[("source", "configmap"), ("result", "failure")]);
    }
}

/// Reads and parses a policy file; logs its warnings and counts the rule parts Go skips (in
/// `metrics.policy_skipped_rules`; strict mode refuses them). Errors name the file.
pub fn load_policy(path: &Path, strict: bool, metrics: &Metrics) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    parse_policy(&text, &Origin::File(path), strict, metrics)
}

/// Parses a policy (from a file or a ConfigMap, as `origin` says); the rest as [`load_policy`].
fn parse_policy(
    text: &str,
    origin: &Origin<'_>,
    strict: bool,
    metrics: &Metrics,
) -> Result<Policy> {
    let mut parsed = Policy::parse(text).with_context(|| format!("invalid policy {origin}"))?;
    if strict {
        parsed = parsed.strict().with_context(|| {
            format!(
                "invalid policy {origin} (policy.strict is on; turn it off to load such rules as Go does)"
            )
        })?;
    }
    for w in &parsed.warnings {
        warn!(source = %origin, "policy: {w}");
    }
    metrics.policy_skipped_rules.store(
        parsed.skipped.len() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(parsed.policy)
}

/// Reads and validates the sync config file; logs its warnings (strict mode refuses what they
/// name). Errors name the file.
pub fn load_sync_config(path: &Path, strict: bool) -> Result<kk_policy::sync_config::SyncConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read sync config file {}", path.display()))?;
    parse_sync_config(&text, &Origin::File(path), strict)
}

/// Validates a sync config (from a file or a ConfigMap); the rest as [`load_sync_config`].
fn parse_sync_config(
    text: &str,
    origin: &Origin<'_>,
    strict: bool,
) -> Result<kk_policy::sync_config::SyncConfig> {
    use kk_policy::sync_config;
    let invalid = || format!("invalid sync config {origin}");
    let config = if strict {
        sync_config::parse_strict(text)
            .map_err(|m| anyhow::anyhow!(m))
            .with_context(invalid)?
    } else {
        let parsed = sync_config::parse(text)
            .map_err(|m| anyhow::anyhow!(m))
            .with_context(invalid)?;
        for w in &parsed.warnings {
            warn!(source = %origin, "sync config: {w}");
        }
        parsed.config
    };
    info!(
        source = %origin,
        role_mappings = config.role_mappings.len(),
        data_types_to_sync = ?config.data_types_to_sync,
        "sync config loaded (role mappings apply to every authenticated user)"
    );
    Ok(config)
}

/// The Kubernetes API client: the kubeconfig, else in-cluster config, else an error naming
/// the flag; `needs` says what needs it.
fn kube_client(config: &Config, needs: &dyn Fn() -> String) -> Result<kk_kube::KubeClient> {
    let cluster = match &config.kubernetes.kubeconfig {
        Some(kc) => kk_kube::ClusterConfig::from_kubeconfig(kc)
            .with_context(|| format!("{}: the kubeconfig cannot be used", needs()))?,
        None => match kk_kube::ClusterConfig::in_cluster() {
            Ok(Some(c)) => c,
            Ok(None) => anyhow::bail!("{}: set {}", needs(), config::kubeconfig_hint()),
            Err(e) => {
                return Err(anyhow::Error::new(e)).with_context(|| {
                    format!(
                        "{}: no kubeconfig is set ({}) and",
                        needs(),
                        config::kubeconfig_hint()
                    )
                });
            }
        },
    };
    kk_kube::KubeClient::new(
        cluster,
        &kk_kube::ClientSettings {
            timeout: config.kubernetes.timeout,
            connect_timeout: config.kubernetes.timeout.min(Duration::from_secs(5)),
            user_agent: config.keystone.user_agent.clone(),
        },
    )
    .with_context(needs)
}

/// The namespace sync of a sync config, when it has `data-types-to-sync` (or `client` is
/// given: a sync config from a ConfigMap, whose updates may turn it on): its Kubernetes client
/// (`client`, else the kubeconfig, else in-cluster config, else an error naming the flag) and,
/// with a service identity, Keystone's project and role assignment lists for the full resync.
fn build_sync(
    config: &Config,
    origin: &Origin<'_>,
    sync_config: &kk_policy::sync_config::SyncConfig,
    keystone: &KeystoneClient,
    role_mappings: &RoleMappings,
    client: Option<kk_kube::KubeClient>,
    metrics: Arc<Metrics>,
) -> Result<(Option<kk_sync::SyncHandle>, Option<SyncWorker>)> {
    let rules = kk_sync::plan::Rules::from_config(sync_config);
    if !rules.enabled() && client.is_none() {
        if config.kubernetes.kubeconfig.is_some() {
            info!(source = %origin, "the kubeconfig is not used: the sync config has no data-types-to-sync");
        }
        return Ok((None, None));
    }
    let client = match client {
        Some(c) => c,
        None => kube_client(config, &|| {
            format!(
                "the sync config {origin} sets data-types-to-sync {:?}, which needs the Kubernetes API",
                sync_config.data_types_to_sync
            )
        })?,
    };
    let origin_shown = client.origin().to_string();
    let server = client.server().to_string();
    let directory = keystone.has_service_identity().then(|| {
        let format = config.username_format;
        let mappings = role_mappings.clone();
        kk_sync::api::KeystoneDirectory {
            client: keystone.clone(),
            namer: Arc::new(move |u: kk_sync::api::KeystoneUser<'_>, roles: &[String]| {
                identity::kubernetes_user_name(
                    format,
                    (u.id, u.name, u.domain_name),
                    roles,
                    &mappings.current(),
                )
            }),
        }
    });
    info!(
        kubernetes = %server,
        config = %origin_shown,
        namespaces = rules.namespaces,
        role_bindings = rules.bindings,
        resync_interval = ?config.sync.resync_interval,
        keystone_assignments = directory.is_some(),
        "namespace sync {}{}",
        if rules.enabled() { "on" } else { "ready (off until the sync config sets data-types-to-sync)" },
        if directory.is_some() {
            ""
        } else {
            " (no [keystone.service_identity]: only the projects of users who authenticate are synced, and a role removed in Keystone is removed from Kubernetes at the user's next login)"
        }
    );
    let (handle, worker) = kk_sync::worker::new(
        kk_sync::Settings {
            rules,
            resync_interval: config.sync.resync_interval,
            queue_capacity: config.sync.queue_capacity,
            requests_per_second: config.sync.requests_per_second,
            all_projects: config.sync.all_projects,
        },
        client,
        directory,
        metrics,
    );
    Ok((Some(handle), Some(worker)))
}

/// Builds everything, binds, and serves until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(State::load(&config, metrics.clone()).await?);
    let tls = match &config.tls {
        Some(t) => Some(Arc::new(ReloadableTls::new(t.clone())?)),
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let force_reload = Arc::new(Notify::new());
    let mut background = Vec::new();
    // The policy and sync config files, each re-read on change (and on SIGHUP).
    type Reload = fn(&State, &Path);
    let file_reloads: [(Option<std::path::PathBuf>, Reload); 2] = [
        (config.policy_file.clone(), State::reload_policy),
        (config.sync_config_file.clone(), State::reload_sync_config),
    ];
    for (path, reload) in file_reloads {
        let Some(path) = path else { continue };
        let st = state.clone();
        let force = force_reload.clone();
        background.push(tokio::spawn(async move {
            reload::watch(
                vec![path.clone()],
                config.policy_reload_interval,
                force,
                || reload(&st, &path),
            )
            .await;
        }));
    }
    if let Some(t) = tls.clone() {
        let files = t.files().clone();
        let mut paths = vec![files.cert_file.clone(), files.key_file.clone()];
        paths.extend(files.client_ca_file.clone());
        let force = force_reload.clone();
        let m = metrics.clone();
        background.push(tokio::spawn(async move {
            let shown = reload::names(&paths);
            reload::watch(paths, files.reload_interval, force, || match t.reload() {
                Ok(()) => {
                    info!(files = %shown, "TLS certificate reloaded");
                    m.inc(
                        kk_core::metrics::Counter::TlsReloads,
                        &[("result", "success")],
                    );
                }
                Err(e) => {
                    error!(
                        error = format!("{e:#}"),
                        "TLS files rejected; keeping the certificate in force"
                    );
                    m.inc(
                        kk_core::metrics::Counter::TlsReloads,
                        &[("result", "failure")],
                    );
                }
            })
            .await;
        }));
    }
    background.push(tokio::spawn(sighup(force_reload)));
    background.extend(state.spawn_configmap_watches());
    if let Some(worker) = state.take_sync_worker() {
        background.push(tokio::spawn(worker.run()));
    }
    info!(
        listen = %config.listen,
        tls = tls.is_some(),
        client_certificates = config.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some()),
        keystone = %config.keystone.url,
        policy_rules = state.policy().len(),
        version = kk_core::VERSION,
        "k8s-keystone-auth serving"
    );
    if let Some(files) = open_files_limit()
        && files < config.server.max_connections as u64 + 64
    {
        warn!(
            open_files_limit = files,
            max_connections = config.server.max_connections,
            "the open-file limit is below server.max_connections: connections past it fail at accept (raise LimitNOFILE or ulimit -n, or lower server.max_connections)"
        );
    }
    let result = serve(listener, state, tls, shutdown).await;
    for task in background {
        task.abort();
    }
    result
}

/// The process's soft open-file limit (Linux `/proc/self/limits`), if known.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

async fn sighup(force: Arc<Notify>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        info!("SIGHUP: reloading the policy, the sync config and the certificates");
        force.notify_waiters();
    }
}

/// The accept loop: TLS (when configured), HTTP/1.1 and HTTP/2, bounded handshakes and
/// header reads, at most `server.max_connections` at once, graceful shutdown. A connection
/// over the limit gets HTTP 503 (`Retry-After`, a Kubernetes `Status`) and is closed, within
/// [`HANDSHAKE_TIMEOUT`]; at most [`OVER_LIMIT_ANSWERS`] such answers at once, and past those
/// it is closed at accept. Both are counted in
/// `http_requests_rejected_total{reason="too_many_connections"}`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<Arc<ReloadableTls>>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let front = Arc::new(filters::Front::new(
        state.clone(),
        warp::service(filters::routes(state.clone())),
    ));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(state.max_connections));
    let over_limit = Arc::new(Semaphore::new(OVER_LIMIT_ANSWERS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            state.metrics.inc(
                kk_core::metrics::Counter::HttpRequestsRejected,
                &[("reason", "too_many_connections")],
            );
            match over_limit.clone().try_acquire_owned() {
                Ok(answering) => {
                    let tls = tls
                        .as_ref()
                        .map(|t| tokio_rustls::TlsAcceptor::from(t.current()));
                    tokio::spawn(answer_over_limit(
                        tcp,
                        peer,
                        tls,
                        state.max_connections,
                        answering,
                    ));
                }
                Err(_) => {
                    tracing::debug!(%peer, "too many connections, and too many being refused: closed");
                    drop(tcp);
                }
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service = front.clone();
        let watcher = graceful.watcher();
        let tls = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.current()));
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let conn = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .into_owned();
                            watcher.watch(conn).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
                None => {
                    let conn = builder
                        .serve_connection(TokioIo::new(tcp), service)
                        .into_owned();
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    info!("shutting down: finishing open requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => warn!("open connections did not finish in {SHUTDOWN_GRACE:?}"),
    }
    Ok(())
}

/// Answers a connection over the limit: its TLS handshake, one request, HTTP 503 with
/// `Retry-After` and a Kubernetes `Status`, then closed (HTTP/1.1 `Connection: close`, HTTP/2
/// GOAWAY); all of it within [`HANDSHAKE_TIMEOUT`]. `_answering` is its place in the
/// over-the-limit budget.
async fn answer_over_limit(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max_connections: usize,
    _answering: tokio::sync::OwnedSemaphorePermit,
) {
    use warp::Filter;
    let _ = tcp.set_nodelay(true);
    let answered = Arc::new(Notify::new());
    let signal = answered.clone();
    let route = warp::any().map(move || {
        signal.notify_one();
        over_limit_reply(max_connections)
    });
    let service = TowerToHyperService::new(warp::service(route));
    let work = async move {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .keep_alive(false)
            .header_read_timeout(HANDSHAKE_TIMEOUT);
        builder.http2().timer(TokioTimer::new());
        let io: Box<dyn Io> = match tls {
            Some(acceptor) => Box::new(acceptor.accept(tcp).await?),
            None => Box::new(tcp),
        };
        let conn = builder.serve_connection(TokioIo::new(io), service);
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => return result,
            () = answered.notified() => conn.as_mut().graceful_shutdown(),
        }
        conn.await
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, work).await {
        Ok(Ok(())) => tracing::debug!(%peer, "too many connections: answered 503"),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "too many connections: the 503 answer failed")
        }
        Err(_) => tracing::debug!(%peer, "too many connections: the 503 answer timed out"),
    }
}

/// A stream the server can speak HTTP on (plain TCP or TLS).
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// The answer over the connection limit: HTTP 503, `Retry-After`, a Kubernetes `Status`.
fn over_limit_reply(max_connections: usize) -> warp::reply::Response {
    use warp::Reply;
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("too many connections (server.max_connections = {max_connections}); retry later"),
        "reason": "ServiceUnavailable",
        "code": 503,
    });
    let reply = warp::reply::with_status(
        warp::reply::json(&body),
        warp::http::StatusCode::SERVICE_UNAVAILABLE,
    );
    warp::reply::with_header(reply, "retry-after", OVER_LIMIT_RETRY_AFTER).into_response()
}
