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
//! | [`State::sync`] | the namespace sync (crate `kk-sync`), fed by successful TokenReviews |
//!
//! Layout (after warp's `examples/todos.rs`): [`filters`] composes the routes, [`handlers`]
//! answers them, [`authn`] reviews tokens; [`tls`] and [`reload`] keep certificates and the
//! policy current while serving.

pub mod authn;
pub mod cache;
pub mod config;
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
use authn::Authenticator;
use kk_core::keystone::{ClientSettings, KeystoneClient};
use kk_core::metrics::Metrics;
use kk_policy::Policy;
use tls::ReloadableTls;

/// Most connections served at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 4096;
/// Time allowed for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
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
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The namespace sync, when the sync config has `data-types-to-sync`.
    pub sync: Option<kk_sync::SyncHandle>,
    /// Its worker until [`run`] starts it.
    sync_worker: Mutex<Option<SyncWorker>>,
}

impl State {
    /// Builds the state from a validated config: Keystone client, cache, first policy load.
    pub fn build(config: &Config, metrics: Arc<Metrics>) -> Result<Self> {
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
        let policy = match &config.policy_file {
            Some(path) => {
                let p = load_policy(path, config.policy_strict, &metrics)?;
                metrics.inc(
                    kk_core::metrics::Counter::PolicyReloads,
                    &[("result", "success")],
                );
                p
            }
            None => Policy::empty(),
        };
        metrics
            .policy_rules
            .store(policy.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let sync_config = match &config.sync_config_file {
            Some(path) => Some((path, load_sync_config(path, config.sync_strict)?)),
            None => None,
        };
        let role_mappings = sync_config
            .as_ref()
            .map(|(_, c)| c.role_mappings.clone())
            .unwrap_or_default();
        let (sync, sync_worker) = match &sync_config {
            Some((path, sc)) => build_sync(config, path, sc, &keystone, metrics.clone())?,
            None => {
                if config.kubernetes.kubeconfig.is_some() {
                    info!(
                        "the kubeconfig is not used: without a sync config file there is nothing to sync"
                    );
                }
                (None, None)
            }
        };
        Ok(Self {
            authenticator: Authenticator::new(
                keystone,
                config.cache.clone(),
                config.keystone.service_type.clone(),
                config.username_format,
                config.max_token_length,
                role_mappings,
                metrics.clone(),
            ),
            policy: RwLock::new(Arc::new(policy)),
            policy_strict: config.policy_strict,
            metrics,
            sync,
            sync_worker: Mutex::new(sync_worker),
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
        match load_policy(path, self.policy_strict, &self.metrics) {
            Ok(p) => {
                info!(file = %path.display(), rules = p.len(), "policy reloaded");
                self.metrics
                    .policy_rules
                    .store(p.len() as u64, std::sync::atomic::Ordering::Relaxed);
                self.metrics.inc(
                    kk_core::metrics::Counter::PolicyReloads,
                    &[("result", "success")],
                );
                match self.policy.write() {
                    Ok(mut g) => *g = Arc::new(p),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(p),
                }
            }
            Err(e) => {
                error!(
                    error = format!("{e:#}"),
                    "policy file rejected; keeping the policy in force"
                );
                self.metrics.inc(
                    kk_core::metrics::Counter::PolicyReloads,
                    &[("result", "failure")],
                );
            }
        }
    }
}

/// Reads and parses a policy file; logs its warnings and counts the rule parts Go skips (in
/// `metrics.policy_skipped_rules`; strict mode refuses them). Errors name the file.
pub fn load_policy(path: &Path, strict: bool, metrics: &Metrics) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    let mut parsed =
        Policy::parse(&text).with_context(|| format!("invalid policy file {}", path.display()))?;
    if strict {
        parsed = parsed.strict().with_context(|| {
            format!(
                "invalid policy file {} (policy.strict is on; turn it off to load such rules as Go does)",
                path.display()
            )
        })?;
    }
    for w in &parsed.warnings {
        warn!(file = %path.display(), "policy: {w}");
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
    use kk_policy::sync_config;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read sync config file {}", path.display()))?;
    let invalid = || format!("invalid sync config file {}", path.display());
    let config = if strict {
        sync_config::parse_strict(&text)
            .map_err(|m| anyhow::anyhow!(m))
            .with_context(invalid)?
    } else {
        let parsed = sync_config::parse(&text)
            .map_err(|m| anyhow::anyhow!(m))
            .with_context(invalid)?;
        for w in &parsed.warnings {
            warn!(file = %path.display(), "sync config: {w}");
        }
        parsed.config
    };
    info!(
        file = %path.display(),
        role_mappings = config.role_mappings.len(),
        data_types_to_sync = ?config.data_types_to_sync,
        "sync config loaded (role mappings apply to every authenticated user)"
    );
    Ok(config)
}

/// The namespace sync of a sync config, when it has `data-types-to-sync`: its Kubernetes
/// client (the kubeconfig, else in-cluster config, else an error naming the flag) and, with a
/// service identity, Keystone's project and role assignment lists for the full resync.
fn build_sync(
    config: &Config,
    path: &Path,
    sync_config: &kk_policy::sync_config::SyncConfig,
    keystone: &KeystoneClient,
    metrics: Arc<Metrics>,
) -> Result<(Option<kk_sync::SyncHandle>, Option<SyncWorker>)> {
    let rules = kk_sync::plan::Rules::from_config(sync_config);
    if !rules.enabled() {
        if config.kubernetes.kubeconfig.is_some() {
            info!(file = %path.display(), "the kubeconfig is not used: the sync config has no data-types-to-sync");
        }
        return Ok((None, None));
    }
    let needs = || {
        format!(
            "the sync config file {} sets data-types-to-sync {:?}, which needs the Kubernetes API",
            path.display(),
            sync_config.data_types_to_sync
        )
    };
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
    let origin = cluster.origin.clone();
    let server = cluster.server.to_string();
    let client = kk_kube::KubeClient::new(
        cluster,
        &kk_kube::ClientSettings {
            timeout: config.kubernetes.timeout,
            connect_timeout: config.kubernetes.timeout.min(Duration::from_secs(5)),
            user_agent: config.keystone.user_agent.clone(),
        },
    )
    .with_context(needs)?;
    let directory = keystone.has_service_identity().then(|| {
        let format = config.username_format;
        let mappings = sync_config.role_mappings.clone();
        kk_sync::api::KeystoneDirectory {
            client: keystone.clone(),
            namer: Arc::new(move |u: kk_sync::api::KeystoneUser<'_>, roles: &[String]| {
                identity::kubernetes_user_name(
                    format,
                    (u.id, u.name, u.domain_name),
                    roles,
                    &mappings,
                )
            }),
        }
    });
    info!(
        kubernetes = %server,
        config = %origin,
        namespaces = rules.namespaces,
        role_bindings = rules.bindings,
        resync_interval = ?config.sync.resync_interval,
        keystone_assignments = directory.is_some(),
        "namespace sync on{}",
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
    let state = Arc::new(State::build(&config, metrics.clone())?);
    let tls = match &config.tls {
        Some(t) => Some(Arc::new(ReloadableTls::new(t.clone())?)),
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let force_reload = Arc::new(Notify::new());
    let mut background = Vec::new();
    if let Some(path) = config.policy_file.clone() {
        let st = state.clone();
        let force = force_reload.clone();
        background.push(tokio::spawn(async move {
            reload::watch(
                vec![path.clone()],
                config.policy_reload_interval,
                force,
                || st.reload_policy(&path),
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
    let result = serve(listener, state, tls, shutdown).await;
    for task in background {
        task.abort();
    }
    result
}

async fn sighup(force: Arc<Notify>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        info!("SIGHUP: reloading policy and certificates");
        force.notify_waiters();
    }
}

/// The accept loop: TLS (when configured), HTTP/1.1 and HTTP/2, bounded handshakes and
/// header reads, at most [`MAX_CONNECTIONS`] at once, graceful shutdown.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<Arc<ReloadableTls>>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let routes = filters::routes(state.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(warp::service(routes.clone()));
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
