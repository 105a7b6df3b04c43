//! The worker: off the request path, one project at a time, rate-limited, retried with
//! exponential back-off, and a periodic full resync.
//!
//! * [`SyncHandle::observe`] is what a successful TokenReview calls: it takes a lock for a few
//!   map operations and returns. It never waits and never fails. Observations are merged per
//!   project (one entry per project, the latest per user); an observation identical to one
//!   synced successfully less than [`RECENT`] ago is dropped as done; a new project when
//!   [`Settings::queue_capacity`] projects are waiting is dropped and counted
//!   (`k8s_keystone_auth_sync_dropped_total{reason="queue_full"}`).
//! * The worker takes the next project, reads its namespace, the namespace's RoleBindings and
//!   the ClusterRoles (cached [`CLUSTER_ROLES_TTL`]), plans ([`crate::plan`]) and applies the
//!   plan, every request spaced by [`Settings::requests_per_second`]. A 409 (a concurrent
//!   change, a stale `resourceVersion`, an object created meanwhile) or a 404 (a namespace
//!   deleted meanwhile) makes it read again and plan again at once (at most
//!   [`CONFLICT_RETRIES`] times). Any other failure puts the project back after
//!   [`backoff`] (1 s, 2 s, 4 s, ... at most 5 min, at least the server's `Retry-After`); after
//!   [`MAX_ATTEMPTS`] it is dropped (`reason="retries_exhausted"`) until it is observed again
//!   or the next resync.
//! * The full resync, at start-up and every [`Settings::resync_interval`]: with a
//!   [`Directory`] (a Keystone service identity), every namespace labelled as this service's
//!   is checked against Keystone's project list: a live project's namespace gets the
//!   project's role assignments (users with their effective roles, groups with theirs), so a
//!   role removed in Keystone loses its binding; the namespace of a project that was deleted,
//!   disabled, blacklisted or renamed out of it loses every binding of this service (the
//!   namespace stays). Projects seen in TokenReviews since start (and every project with
//!   [`Settings::all_projects`]) are synced the same way. Without a directory, the projects
//!   seen since start are synced again from their users' last TokenReviews (drift repaired;
//!   a role removal applies at the user's next login).
//! * [`SyncHandle::set_rules`] (a reloaded sync config) hands the worker new rules: it uses them
//!   from its next item on and starts a full resync at once. Rules with nothing to sync (no
//!   `data-types-to-sync`) pause it: waiting work is dropped and observations are ignored until
//!   rules with something to sync come.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use kk_core::metrics::{Counter, Metrics};
use kk_kube::KubeError;
use kk_kube::types::Namespace;

use crate::api::{Cluster, Directory};
use crate::plan::{
    ANN_PROJECT_ID, Authority, Holder, Note, Observed, Op, Project, Rules, StoredObject,
    SubjectKind, is_managed, namespace_name, plan, plan_orphan,
};

/// An observation identical to one synced this recently is not synced again.
pub const RECENT: Duration = Duration::from_secs(60);
/// How long the list of ClusterRoles is reused.
pub const CLUSTER_ROLES_TTL: Duration = Duration::from_secs(30);
/// Reads and plans again after a conflict at most this often, then backs off.
pub const CONFLICT_RETRIES: usize = 3;
/// Attempts of one project before it is dropped.
pub const MAX_ATTEMPTS: u32 = 10;
/// First retry delay.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// When a full resync could not even start, it is tried again this soon (or at the interval,
/// if that is shorter).
pub const RESYNC_RETRY: Duration = Duration::from_secs(30);
/// Most projects remembered from TokenReviews, and users per project.
const MAX_KNOWN_PROJECTS: usize = 10_000;
const MAX_KNOWN_USERS: usize = 1_000;

/// The delay before attempt `attempt + 1` (`attempt` ≥ 1 failures so far).
pub fn backoff(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

/// How the sync behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// From the sync config.
    pub rules: Rules,
    /// Time between full resyncs.
    pub resync_interval: Duration,
    /// Most projects waiting (observations of new projects beyond it are dropped).
    pub queue_capacity: usize,
    /// Most Kubernetes requests per second.
    pub requests_per_second: u32,
    /// The full resync syncs every Keystone project, not only those seen (needs a directory).
    pub all_projects: bool,
}

/// What a TokenReview showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The token's project.
    pub project: Project,
    /// The Keystone user id.
    pub user_id: String,
    /// The name Kubernetes got for the user (the TokenReview's `username`).
    pub user_name: String,
    /// The token's roles.
    pub roles: Vec<String>,
    /// Whether the token carries all the user's roles on the project (not an application
    /// credential or trust): see [`Authority::Token`].
    pub complete: bool,
}

impl Observation {
    fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }

    fn holder(&self) -> Holder {
        Holder {
            kind: SubjectKind::User,
            id: self.user_id.clone(),
            name: self.user_name.clone(),
            roles: self.roles.iter().cloned().collect(),
        }
    }
}

impl Hash for Observation {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.project.hash(h);
        self.user_id.hash(h);
        self.user_name.hash(h);
        let mut roles = self.roles.clone();
        roles.sort();
        roles.hash(h);
        self.complete.hash(h);
    }
}

/// The health of the sync, for `/healthz/sync`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Health {
    /// Whether something failed and nothing succeeded since (or the last full resync failed).
    pub failing: bool,
    /// The last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<String>,
    /// When a project was last synced successfully (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    /// When the last full resync finished (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_full_resync_at: Option<String>,
    /// `success`, `partial` (some projects failed) or `failure` (it could not list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_full_resync_result: Option<&'static str>,
    /// Projects waiting.
    pub queue_length: usize,
    /// Whether full resyncs use Keystone's role assignments (a service identity).
    pub keystone_assignments: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Project(String),
    Orphan(String),
}

#[derive(Debug, Clone)]
struct Pending {
    project: Option<Project>,
    tokens: BTreeMap<String, Observation>,
    /// Sync from Keystone's assignments (a full resync item).
    full: bool,
    /// Part of the full resync in progress.
    resync: bool,
    attempts: u32,
    not_before: Option<Instant>,
}

#[derive(Default)]
struct Queue {
    /// Token observations, first.
    ready: VecDeque<Key>,
    /// Resync items, when no token observation waits.
    ready_resync: VecDeque<Key>,
    pending: HashMap<Key, Pending>,
    recent: HashMap<(String, String), (u64, Instant)>,
}

struct ResyncRun {
    outstanding: HashSet<Key>,
    failed: bool,
}

#[derive(Default)]
struct Status {
    consecutive_failures: u64,
    last_error: Option<(String, SystemTime)>,
    last_success: Option<SystemTime>,
    last_resync: Option<(SystemTime, &'static str)>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    /// New rules for the worker to take ([`SyncHandle::set_rules`]).
    new_rules: Mutex<Option<Rules>>,
    /// Whether the rules in force (or about to be) sync anything.
    enabled: std::sync::atomic::AtomicBool,
    metrics: Arc<Metrics>,
    capacity: usize,
    status: Mutex<Status>,
    keystone_assignments: bool,
}

impl Shared {
    fn update_gauge(&self, q: &Queue) {
        self.metrics
            .sync_queue_length
            .store(q.pending.len() as u64, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The request path's side of the sync. Cheap to clone.
#[derive(Clone)]
pub struct SyncHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHandle").finish_non_exhaustive()
    }
}

impl SyncHandle {
    /// Schedules the observation's project for sync. Never waits, never fails. Ignored while
    /// the rules sync nothing.
    pub fn observe(&self, obs: Observation) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let mut q = lock(&self.shared.queue);
        let recent_key = (obs.project.id.clone(), obs.user_id.clone());
        let fp = obs.fingerprint();
        if q.recent
            .get(&recent_key)
            .is_some_and(|(f, at)| *f == fp && now.duration_since(*at) < RECENT)
        {
            return;
        }
        let key = Key::Project(obs.project.id.clone());
        let is_new = !q.pending.contains_key(&key);
        if is_new && q.pending.len() >= self.shared.capacity {
            drop(q);
            self.shared
                .metrics
                .inc(Counter::SyncDropped, &[("reason", "queue_full")]);
            return;
        }
        let entry = q.pending.entry(key.clone()).or_insert_with(|| Pending {
            project: None,
            tokens: BTreeMap::new(),
            full: false,
            resync: false,
            attempts: 0,
            not_before: None,
        });
        entry.project = Some(obs.project.clone());
        if entry.tokens.len() < MAX_KNOWN_USERS || entry.tokens.contains_key(&obs.user_id) {
            entry.tokens.insert(obs.user_id.clone(), obs);
        }
        if is_new {
            q.ready.push_back(key);
        }
        self.shared.update_gauge(&q);
        drop(q);
        self.shared.wake.notify_one();
    }

    /// Replaces the rules (a reloaded sync config): the worker takes them before its next item
    /// and, when they differ, starts a full resync at once. Never waits.
    pub fn set_rules(&self, rules: Rules) {
        self.shared
            .enabled
            .store(rules.enabled(), Ordering::Relaxed);
        *lock(&self.shared.new_rules) = Some(rules);
        self.shared.wake.notify_one();
    }

    /// Whether the rules sync anything (`data-types-to-sync` is not empty).
    pub fn enabled(&self) -> bool {
        self.shared.enabled.load(Ordering::Relaxed)
    }

    /// The sync's health.
    pub fn health(&self) -> Health {
        let queue_length = lock(&self.shared.queue).pending.len();
        let s = lock(&self.shared.status);
        let ts = |t: &SystemTime| kk_core::timefmt::format_rfc3339(*t);
        Health {
            failing: s.consecutive_failures > 0
                || s.last_resync.is_some_and(|(_, r)| r == "failure"),
            last_error: s.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at: s.last_error.as_ref().map(|(_, t)| ts(t)),
            last_success_at: s.last_success.as_ref().map(ts),
            last_full_resync_at: s.last_resync.as_ref().map(|(t, _)| ts(t)),
            last_full_resync_result: s.last_resync.map(|(_, r)| r),
            queue_length,
            keystone_assignments: self.shared.keystone_assignments,
        }
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum Failure {
    Kube(KubeError),
    Keystone(kk_core::keystone::KeystoneError),
}

impl Failure {
    fn label(&self) -> &'static str {
        match self {
            Failure::Kube(e) => e.label(),
            Failure::Keystone(_) => "keystone",
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Kube(e) => e.retry_after(),
            Failure::Keystone(_) => None,
        }
    }
    fn restarts(&self) -> bool {
        matches!(self, Failure::Kube(e) if e.is_conflict() || e.is_not_found())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Kube(e) => write!(f, "{}", kk_core::error_chain(e)),
            Failure::Keystone(e) => write!(f, "Keystone: {}", kk_core::error_chain(e)),
        }
    }
}

impl From<KubeError> for Failure {
    fn from(e: KubeError) -> Self {
        Failure::Kube(e)
    }
}

/// Spaces requests by `interval`.
struct Limiter {
    interval: Duration,
    next: Instant,
}

impl Limiter {
    async fn wait(&mut self) {
        let now = Instant::now();
        let at = self.next.max(now);
        self.next = at + self.interval;
        if at > now {
            tokio::time::sleep_until(at).await;
        }
    }
}

/// The worker (run it with [`Worker::run`]).
pub struct Worker<C: Cluster, D: Directory> {
    shared: Arc<Shared>,
    settings: Settings,
    cluster: C,
    directory: Option<D>,
    limiter: Limiter,
    cluster_roles: Option<(BTreeSet<String>, Instant)>,
    known: BTreeMap<String, (Project, BTreeMap<String, Observation>)>,
    noted: HashSet<(String, Note)>,
    resync: Option<ResyncRun>,
    next_resync: Instant,
}

/// A handle for the request path and the worker that serves it.
pub fn new<C: Cluster, D: Directory>(
    settings: Settings,
    cluster: C,
    directory: Option<D>,
    metrics: Arc<Metrics>,
) -> (SyncHandle, Worker<C, D>) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        wake: Notify::new(),
        new_rules: Mutex::new(None),
        enabled: std::sync::atomic::AtomicBool::new(settings.rules.enabled()),
        metrics,
        capacity: settings.queue_capacity.max(1),
        status: Mutex::new(Status::default()),
        keystone_assignments: directory.is_some(),
    });
    let rps = settings.requests_per_second.max(1);
    let worker = Worker {
        shared: shared.clone(),
        limiter: Limiter {
            interval: Duration::from_secs(1) / rps,
            next: Instant::now(),
        },
        settings,
        cluster,
        directory,
        cluster_roles: None,
        known: BTreeMap::new(),
        noted: HashSet::new(),
        resync: None,
        next_resync: Instant::now(),
    };
    (SyncHandle { shared }, worker)
}

impl<C: Cluster, D: Directory> Worker<C, D> {
    /// `GET /version` of the API server (for `--check-config` and the start-up log).
    pub async fn probe(&self) -> Result<String, KubeError> {
        self.cluster.version().await
    }

    /// Runs until the task is dropped: a start-up probe and resync, then the queue and a
    /// resync every interval.
    pub async fn run(mut self) {
        match self.cluster.version().await {
            Ok(v) => info!(kubernetes = %v, "namespace sync: Kubernetes API answers"),
            Err(e) => {
                warn!(error = %kk_core::error_chain(&e), "namespace sync: the Kubernetes API does not answer yet; authentication is not affected, the sync retries")
            }
        }
        loop {
            self.take_new_rules();
            if !self.settings.rules.enabled() {
                // Paused: nothing to sync until new rules come.
                let wake = self.shared.wake.notified();
                if lock(&self.shared.new_rules).is_none() {
                    wake.await;
                }
                continue;
            }
            if Instant::now() >= self.next_resync {
                self.start_resync().await;
            }
            self.promote_due();
            if let Some((key, item)) = self.take_ready() {
                self.process(key, item).await;
                continue;
            }
            let next_retry = self.next_retry();
            let wake = self.shared.wake.notified();
            let until = next_retry
                .map(|r| r.min(self.next_resync))
                .unwrap_or(self.next_resync);
            tokio::select! {
                () = wake => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Takes rules given to [`SyncHandle::set_rules`]: different ones start a full resync now
    /// (the run in progress is abandoned); rules that sync nothing drop the waiting work.
    fn take_new_rules(&mut self) {
        let Some(rules) = lock(&self.shared.new_rules).take() else {
            return;
        };
        if rules == self.settings.rules {
            return;
        }
        info!(
            namespaces = rules.namespaces,
            role_bindings = rules.bindings,
            namespace_format = %rules.namespace_format,
            "namespace sync: new rules from the sync config{}",
            if rules.enabled() { "; full resync now" } else { ": nothing to sync, paused" }
        );
        self.settings.rules = rules;
        self.noted.clear();
        self.cluster_roles = None;
        self.resync = None;
        self.next_resync = Instant::now();
        if !self.settings.rules.enabled() {
            let mut q = lock(&self.shared.queue);
            q.pending.clear();
            q.ready.clear();
            q.ready_resync.clear();
            q.recent.clear();
            self.shared.update_gauge(&q);
        } else {
            // What was synced under the old rules is not done under the new ones.
            lock(&self.shared.queue).recent.clear();
        }
    }

    fn take_ready(&mut self) -> Option<(Key, Pending)> {
        let mut q = lock(&self.shared.queue);
        loop {
            let key = match q.ready.pop_front() {
                Some(k) => k,
                None => q.ready_resync.pop_front()?,
            };
            // A key may be in the queues twice, or for an entry now waiting for a retry:
            // only a ready entry is taken.
            if q.pending.get(&key).is_some_and(|p| p.not_before.is_some()) {
                continue;
            }
            if let Some(item) = q.pending.remove(&key) {
                self.shared.update_gauge(&q);
                return Some((key, item));
            }
        }
    }

    fn promote_due(&mut self) {
        let now = Instant::now();
        let mut q = lock(&self.shared.queue);
        let due: Vec<Key> = q
            .pending
            .iter()
            .filter(|(_, p)| p.not_before.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some(p) = q.pending.get_mut(&k) {
                p.not_before = None;
                if p.resync {
                    q.ready_resync.push_back(k);
                } else {
                    q.ready.push_back(k);
                }
            }
        }
    }

    fn next_retry(&self) -> Option<Instant> {
        lock(&self.shared.queue)
            .pending
            .values()
            .filter_map(|p| p.not_before)
            .min()
    }

    /// Puts an item back: merged with what arrived meanwhile, ready now or after `delay`.
    fn requeue(&self, key: Key, mut item: Pending, delay: Option<Duration>) {
        let mut q = lock(&self.shared.queue);
        if let Some(newer) = q.pending.remove(&key) {
            item.tokens.extend(newer.tokens);
            item.project = newer.project.or(item.project);
            item.full |= newer.full;
            item.resync |= newer.resync;
        }
        match delay {
            Some(d) => item.not_before = Some(Instant::now() + d),
            None => {
                item.not_before = None;
                if item.resync {
                    q.ready_resync.push_back(key.clone());
                } else {
                    q.ready.push_back(key.clone());
                }
            }
        }
        q.pending.insert(key, item);
        self.shared.update_gauge(&q);
        drop(q);
        self.shared.wake.notify_one();
    }

    async fn process(&mut self, key: Key, mut item: Pending) {
        let result = self.attempt(&key, &item).await;
        match result {
            Ok(()) => {
                {
                    let mut s = lock(&self.shared.status);
                    s.consecutive_failures = 0;
                    s.last_success = Some(SystemTime::now());
                }
                let now = Instant::now();
                let mut q = lock(&self.shared.queue);
                if q.recent.len() > 20_000 {
                    q.recent
                        .retain(|_, (_, at)| now.duration_since(*at) < RECENT);
                }
                for obs in item.tokens.values() {
                    q.recent.insert(
                        (obs.project.id.clone(), obs.user_id.clone()),
                        (obs.fingerprint(), now),
                    );
                }
                drop(q);
                self.remember(&item);
                self.resync_done(&key, false);
            }
            Err(failure) => {
                item.attempts += 1;
                let label = failure.label();
                self.shared
                    .metrics
                    .inc(Counter::SyncErrors, &[("reason", label)]);
                let message = failure.to_string();
                {
                    let mut s = lock(&self.shared.status);
                    s.consecutive_failures += 1;
                    s.last_error = Some((message.clone(), SystemTime::now()));
                }
                if let Some(run) = self.resync.as_mut()
                    && run.outstanding.contains(&key)
                {
                    run.failed = true;
                }
                if item.attempts >= MAX_ATTEMPTS {
                    warn!(target_key = ?key, attempts = item.attempts, error = %message, "namespace sync: giving up on this project until it is seen again or the next resync");
                    self.shared
                        .metrics
                        .inc(Counter::SyncDropped, &[("reason", "retries_exhausted")]);
                    self.resync_done(&key, true);
                    return;
                }
                let delay = backoff(item.attempts).max(failure.retry_after().unwrap_or_default());
                warn!(target_key = ?key, attempt = item.attempts, retry_in = ?delay, error = %message, "namespace sync failed; authentication is not affected");
                self.requeue(key, item, Some(delay));
            }
        }
    }

    fn remember(&mut self, item: &Pending) {
        let Some(project) = &item.project else { return };
        if item.tokens.is_empty() {
            return;
        }
        if !self.known.contains_key(&project.id) && self.known.len() >= MAX_KNOWN_PROJECTS {
            return;
        }
        let entry = self
            .known
            .entry(project.id.clone())
            .or_insert_with(|| (project.clone(), BTreeMap::new()));
        entry.0 = project.clone();
        for (uid, obs) in &item.tokens {
            if entry.1.len() < MAX_KNOWN_USERS || entry.1.contains_key(uid) {
                entry.1.insert(uid.clone(), obs.clone());
            }
        }
    }

    /// One attempt at an item, re-reading after conflicts.
    async fn attempt(&mut self, key: &Key, item: &Pending) -> Result<(), Failure> {
        let mut last = None;
        for _ in 0..CONFLICT_RETRIES {
            let result = match key {
                Key::Orphan(ns) => self.sync_orphan(ns).await,
                Key::Project(_) => self.sync_project(item).await,
            };
            match result {
                Err(f) if f.restarts() => {
                    debug!(error = %f, "namespace sync: changed meanwhile; reading again");
                    self.shared
                        .metrics
                        .inc(Counter::SyncErrors, &[("reason", f.label())]);
                    self.cluster_roles = None;
                    last = Some(f);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(Failure::Kube(KubeError::Protocol {
            call: "sync".into(),
            detail: "conflicts".into(),
        })))
    }

    async fn cluster_roles(&mut self) -> Result<BTreeSet<String>, Failure> {
        if let Some((roles, at)) = &self.cluster_roles
            && at.elapsed() < CLUSTER_ROLES_TTL
        {
            return Ok(roles.clone());
        }
        self.limiter.wait().await;
        let roles = self.cluster.cluster_roles().await?;
        self.cluster_roles = Some((roles.clone(), Instant::now()));
        Ok(roles)
    }

    async fn observe_namespace(&mut self, name: &str) -> Result<Observed, Failure> {
        self.limiter.wait().await;
        let namespace = self.cluster.get_namespace(name).await?;
        let mut observed = Observed {
            namespace,
            ..Default::default()
        };
        if observed
            .namespace
            .as_ref()
            .is_some_and(|ns| is_managed(&ns.metadata))
        {
            self.limiter.wait().await;
            observed.bindings = self.cluster.bindings(name).await?;
        }
        Ok(observed)
    }

    async fn sync_project(&mut self, item: &Pending) -> Result<(), Failure> {
        let Some(project) = item.project.clone() else {
            return Ok(());
        };
        let rules = self.settings.rules.clone();
        if rules.blacklisted(&project) && !item.full {
            // As Go: a blacklisted project is skipped (its namespace, if any, is cleaned by
            // the full resync).
            self.note(&project.id, Note::Blacklisted);
            return Ok(());
        }
        let name = match namespace_name(&rules.namespace_format, &project) {
            Ok(n) => n,
            Err(why) => {
                self.note(&project.id, Note::InvalidNamespaceName(why));
                return Ok(());
            }
        };
        let authorities: Vec<Authority> = match (&self.directory, item.full) {
            (Some(d), true) if rules.bindings => {
                let holders = d.holders(&project).await.map_err(Failure::Keystone)?;
                vec![Authority::Assignments(holders)]
            }
            _ => {
                let mut v: Vec<Authority> = item
                    .tokens
                    .values()
                    .map(|o| Authority::Token {
                        user: o.holder(),
                        complete: o.complete,
                    })
                    .collect();
                if v.is_empty() {
                    // Nobody to sync bindings for: the namespace alone (with `role_assignments`
                    // an empty list would delete every binding, so nothing then).
                    if rules.bindings {
                        return Ok(());
                    }
                    v.push(Authority::Assignments(Vec::new()));
                }
                v
            }
        };
        let mut observed = self.observe_namespace(&name).await?;
        if rules.bindings {
            observed.cluster_roles = self.cluster_roles().await?;
        }
        for authority in &authorities {
            let p = plan(&rules, &project, authority, &observed);
            for n in p.notes {
                self.note(&project.id, n);
            }
            self.execute(&project.id, &name, &p.ops, &mut observed)
                .await?;
        }
        Ok(())
    }

    async fn sync_orphan(&mut self, namespace: &str) -> Result<(), Failure> {
        let observed = self.observe_namespace(namespace).await?;
        let p = plan_orphan(&observed);
        if !p.ops.is_empty() {
            info!(
                namespace,
                bindings = p.ops.len(),
                "namespace sync: the namespace's project is gone from Keystone (deleted, disabled, blacklisted or renamed): deleting this service's RoleBindings; the namespace stays"
            );
        }
        let mut observed = observed;
        self.execute("", namespace, &p.ops, &mut observed).await
    }

    fn note(&mut self, project_id: &str, note: Note) {
        if self.noted.len() > 10_000 {
            self.noted.clear();
        }
        if !self.noted.insert((project_id.to_string(), note.clone())) {
            return;
        }
        self.shared
            .metrics
            .inc(Counter::SyncSkipped, &[("reason", note.reason())]);
        if note.is_warning() {
            warn!(project = project_id, "namespace sync: {note}");
        } else {
            info!(project = project_id, "namespace sync: {note}");
        }
    }

    async fn execute(
        &mut self,
        project_id: &str,
        namespace: &str,
        ops: &[Op],
        observed: &mut Observed,
    ) -> Result<(), Failure> {
        for op in ops {
            self.limiter.wait().await;
            let (kind, action, stored) = match op {
                Op::CreateNamespace(ns) => (
                    "namespace",
                    "created",
                    Some(StoredObject::Namespace(
                        self.cluster.create_namespace(ns).await?,
                    )),
                ),
                Op::UpdateNamespace(ns) => (
                    "namespace",
                    "updated",
                    Some(StoredObject::Namespace(
                        self.cluster.update_namespace(ns).await?,
                    )),
                ),
                Op::CreateBinding(b) => (
                    "rolebinding",
                    "created",
                    Some(StoredObject::Binding(
                        self.cluster.create_binding(namespace, b).await?,
                    )),
                ),
                Op::UpdateBinding(b) => (
                    "rolebinding",
                    "updated",
                    Some(StoredObject::Binding(
                        self.cluster.update_binding(namespace, b).await?,
                    )),
                ),
                Op::DeleteBinding {
                    name,
                    resource_version,
                } => {
                    match self
                        .cluster
                        .delete_binding(namespace, name, resource_version.as_deref())
                        .await
                    {
                        Ok(()) => {}
                        // Already gone: what was wanted.
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                    ("rolebinding", "deleted", None)
                }
            };
            self.shared
                .metrics
                .inc(Counter::SyncObjects, &[("kind", kind), ("action", action)]);
            let what = match op {
                Op::CreateNamespace(_) | Op::UpdateNamespace(_) => String::new(),
                Op::CreateBinding(b) | Op::UpdateBinding(b) => {
                    format!("{} -> ClusterRole {}", b.metadata.name, b.role_ref.name)
                }
                Op::DeleteBinding { name, .. } => name.clone(),
            };
            info!(project = project_id, namespace, kind, action, object = %what, "namespace sync");
            observed.apply(op, stored);
        }
        Ok(())
    }

    /// Marks a resync item done; finishes the run when it was the last.
    fn resync_done(&mut self, key: &Key, failed: bool) {
        let Some(run) = self.resync.as_mut() else {
            return;
        };
        if !run.outstanding.remove(key) {
            return;
        }
        run.failed |= failed;
        if run.outstanding.is_empty() {
            let result = if run.failed { "partial" } else { "success" };
            self.finish_resync(result);
        }
    }

    fn finish_resync(&mut self, result: &'static str) {
        self.resync = None;
        let now = SystemTime::now();
        lock(&self.shared.status).last_resync = Some((now, result));
        self.shared
            .metrics
            .inc(Counter::SyncFullResyncs, &[("result", result)]);
        if result != "failure" {
            let secs = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            self.shared
                .metrics
                .sync_last_full_resync
                .store(secs, Ordering::Relaxed);
        }
        info!(result, "namespace sync: full resync finished");
    }

    /// Lists what the full resync covers and queues it.
    async fn start_resync(&mut self) {
        self.next_resync = Instant::now() + self.settings.resync_interval;
        if self.resync.is_some() {
            debug!("namespace sync: the previous full resync is still running");
            return;
        }
        let items = match self.resync_items().await {
            Ok(items) => items,
            Err(f) => {
                warn!(error = %f, "namespace sync: full resync could not start; authentication is not affected");
                self.shared
                    .metrics
                    .inc(Counter::SyncErrors, &[("reason", f.label())]);
                {
                    let mut s = lock(&self.shared.status);
                    s.last_error = Some((f.to_string(), SystemTime::now()));
                }
                self.finish_resync("failure");
                self.next_resync = Instant::now() + RESYNC_RETRY.min(self.settings.resync_interval);
                return;
            }
        };
        if items.is_empty() {
            self.resync = Some(ResyncRun {
                outstanding: HashSet::new(),
                failed: false,
            });
            self.finish_resync("success");
            return;
        }
        let outstanding: HashSet<Key> = items.iter().map(|(k, _)| k.clone()).collect();
        self.resync = Some(ResyncRun {
            outstanding,
            failed: false,
        });
        let mut q = lock(&self.shared.queue);
        for (key, item) in items {
            match q.pending.get_mut(&key) {
                Some(existing) => {
                    existing.full |= item.full;
                    existing.resync = true;
                    for (k, v) in item.tokens {
                        existing.tokens.entry(k).or_insert(v);
                    }
                    if existing.project.is_none() {
                        existing.project = item.project;
                    }
                }
                None => {
                    q.ready_resync.push_back(key.clone());
                    q.pending.insert(key, item);
                }
            }
        }
        self.shared.update_gauge(&q);
    }

    async fn resync_items(&mut self) -> Result<Vec<(Key, Pending)>, Failure> {
        let item =
            |project: Option<Project>, tokens: BTreeMap<String, Observation>, full: bool| Pending {
                project,
                tokens,
                full,
                resync: true,
                attempts: 0,
                not_before: None,
            };
        let mut items: BTreeMap<Key, Pending> = BTreeMap::new();
        let rules = self.settings.rules.clone();
        let Some(directory) = &self.directory else {
            for (id, (project, tokens)) in &self.known {
                items.insert(
                    Key::Project(id.clone()),
                    item(Some(project.clone()), tokens.clone(), false),
                );
            }
            return Ok(items.into_iter().collect());
        };
        let projects = directory.projects().await.map_err(Failure::Keystone)?;
        self.limiter.wait().await;
        let managed: Vec<Namespace> = self.cluster.managed_namespaces().await?;
        let live: HashMap<&str, &Project> = projects
            .iter()
            .filter(|p| p.enabled && !rules.blacklisted(&p.project))
            .map(|p| (p.project.id.as_str(), &p.project))
            .collect();
        for ns in &managed {
            let Some(pid) = ns.metadata.annotations.get(ANN_PROJECT_ID) else {
                // Labelled by an operator without the annotation: its project is unknown
                // here; synced when one of its users logs in.
                continue;
            };
            match live.get(pid.as_str()) {
                Some(p)
                    if namespace_name(&rules.namespace_format, p).as_deref()
                        == Ok(ns.metadata.name.as_str()) =>
                {
                    items.insert(
                        Key::Project(p.id.clone()),
                        item(Some((*p).clone()), BTreeMap::new(), true),
                    );
                }
                _ => {
                    items.insert(
                        Key::Orphan(ns.metadata.name.clone()),
                        item(None, BTreeMap::new(), false),
                    );
                }
            }
        }
        // Projects seen since start (forgotten once gone from Keystone) and, optionally, all.
        self.known.retain(|id, _| live.contains_key(id.as_str()));
        for (id, (_, tokens)) in &self.known {
            if let Some(p) = live.get(id.as_str()) {
                items.insert(
                    Key::Project(id.clone()),
                    item(Some((*p).clone()), tokens.clone(), true),
                );
            }
        }
        if self.settings.all_projects {
            for p in live.values() {
                items
                    .entry(Key::Project(p.id.clone()))
                    .or_insert_with(|| item(Some((*p).clone()), BTreeMap::new(), true));
            }
        }
        Ok(items.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
