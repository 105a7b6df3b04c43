//! The worker against an in-memory API server and Keystone, with tokio's clock paused: the
//! back-off and resync timings are exact, and nothing here sleeps for real.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::api::{Cluster, Directory, KnownProject};
use crate::plan::{MANAGED_BY, MANAGED_BY_LABEL};
use kk_core::keystone::KeystoneError;
use kk_kube::types::RoleBinding;
use kk_policy::sync_config::SyncConfig;

#[derive(Default)]
struct FakeState {
    namespaces: BTreeMap<String, Namespace>,
    bindings: BTreeMap<(String, String), RoleBinding>,
    cluster_roles: BTreeSet<String>,
    version: u64,
    /// Errors to answer the next calls with (any call), in order.
    failures: VecDeque<KubeError>,
    /// Conflicts to answer the next creates of a binding with.
    conflicts: usize,
    /// Every call: (when, what).
    calls: Vec<(Instant, String)>,
}

#[derive(Clone, Default)]
struct FakeCluster(Arc<Mutex<FakeState>>);

impl FakeCluster {
    fn call(&self, what: String) -> Result<(), KubeError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push((Instant::now(), what));
        match s.failures.pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    fn stored<T: Clone>(
        &self,
        mut obj: T,
        meta: impl Fn(&mut T) -> &mut kk_kube::types::ObjectMeta,
    ) -> T {
        let mut s = self.0.lock().unwrap();
        s.version += 1;
        meta(&mut obj).resource_version = Some(s.version.to_string());
        obj
    }
    fn calls(&self, prefix: &str) -> Vec<Instant> {
        self.0
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(_, w)| w.starts_with(prefix))
            .map(|(t, _)| *t)
            .collect()
    }
    fn binding_names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .bindings
            .keys()
            .map(|(ns, n)| format!("{ns}/{n}"))
            .collect()
    }
}

fn server_error() -> KubeError {
    KubeError::Server {
        call: "x".into(),
        status: 503,
        message: "etcd is slow".into(),
    }
}

impl Cluster for FakeCluster {
    async fn version(&self) -> Result<String, KubeError> {
        self.call("version".into()).map(|()| "v1.36.0".into())
    }
    async fn get_namespace(&self, name: &str) -> Result<Option<Namespace>, KubeError> {
        self.call(format!("get ns {name}"))?;
        Ok(self.0.lock().unwrap().namespaces.get(name).cloned())
    }
    async fn managed_namespaces(&self) -> Result<Vec<Namespace>, KubeError> {
        self.call("list managed".into())?;
        Ok(self
            .0
            .lock()
            .unwrap()
            .namespaces
            .values()
            .filter(|n| is_managed(&n.metadata))
            .cloned()
            .collect())
    }
    async fn bindings(&self, namespace: &str) -> Result<Vec<RoleBinding>, KubeError> {
        self.call(format!("list bindings {namespace}"))?;
        Ok(self
            .0
            .lock()
            .unwrap()
            .bindings
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, b)| b.clone())
            .collect())
    }
    async fn cluster_roles(&self) -> Result<BTreeSet<String>, KubeError> {
        self.call("list clusterroles".into())?;
        Ok(self.0.lock().unwrap().cluster_roles.clone())
    }
    async fn create_namespace(&self, ns: &Namespace) -> Result<Namespace, KubeError> {
        self.call(format!("create ns {}", ns.metadata.name))?;
        let ns = self.stored(ns.clone(), |n| &mut n.metadata);
        self.0
            .lock()
            .unwrap()
            .namespaces
            .insert(ns.metadata.name.clone(), ns.clone());
        Ok(ns)
    }
    async fn update_namespace(&self, ns: &Namespace) -> Result<Namespace, KubeError> {
        self.call(format!("update ns {}", ns.metadata.name))?;
        let ns = self.stored(ns.clone(), |n| &mut n.metadata);
        self.0
            .lock()
            .unwrap()
            .namespaces
            .insert(ns.metadata.name.clone(), ns.clone());
        Ok(ns)
    }
    async fn create_binding(
        &self,
        namespace: &str,
        b: &RoleBinding,
    ) -> Result<RoleBinding, KubeError> {
        self.call(format!("create binding {namespace}/{}", b.metadata.name))?;
        {
            let mut s = self.0.lock().unwrap();
            if s.conflicts > 0 {
                s.conflicts -= 1;
                // Someone else made it meanwhile (another replica of the service).
                let mut theirs = b.clone();
                theirs.metadata.resource_version = Some("999".into());
                s.bindings
                    .insert((namespace.into(), b.metadata.name.clone()), theirs);
                return Err(KubeError::Conflict {
                    call: "create".into(),
                    reason: "AlreadyExists".into(),
                    message: "already exists".into(),
                });
            }
        }
        let b = self.stored(b.clone(), |b| &mut b.metadata);
        self.0
            .lock()
            .unwrap()
            .bindings
            .insert((namespace.into(), b.metadata.name.clone()), b.clone());
        Ok(b)
    }
    async fn update_binding(
        &self,
        namespace: &str,
        b: &RoleBinding,
    ) -> Result<RoleBinding, KubeError> {
        self.call(format!("update binding {namespace}/{}", b.metadata.name))?;
        let b = self.stored(b.clone(), |b| &mut b.metadata);
        self.0
            .lock()
            .unwrap()
            .bindings
            .insert((namespace.into(), b.metadata.name.clone()), b.clone());
        Ok(b)
    }
    async fn delete_binding(
        &self,
        namespace: &str,
        name: &str,
        _: Option<&str>,
    ) -> Result<(), KubeError> {
        self.call(format!("delete binding {namespace}/{name}"))?;
        self.0
            .lock()
            .unwrap()
            .bindings
            .remove(&(namespace.to_string(), name.to_string()));
        Ok(())
    }
}

/// Keystone's projects, the holders per project, and when the projects were listed.
type KeystoneState = (
    Vec<KnownProject>,
    BTreeMap<String, Vec<Holder>>,
    Vec<Instant>,
);

#[derive(Clone, Default)]
struct FakeKeystone(Arc<Mutex<KeystoneState>>);

impl Directory for FakeKeystone {
    async fn projects(&self) -> Result<Vec<KnownProject>, KeystoneError> {
        let mut s = self.0.lock().unwrap();
        s.2.push(Instant::now());
        Ok(s.0.clone())
    }
    async fn holders(&self, project: &Project) -> Result<Vec<Holder>, KeystoneError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .1
            .get(&project.id)
            .cloned()
            .unwrap_or_default())
    }
}

fn settings(resync: Duration) -> Settings {
    Settings {
        rules: Rules::from_config(&SyncConfig {
            data_types_to_sync: vec!["projects".into(), "role_assignments".into()],
            namespace_format: "%i".into(),
            projects_blacklist: vec![],
            projects_name_blacklist: vec!["blocked".into()],
            role_mappings: vec![],
        }),
        resync_interval: resync,
        queue_capacity: 2,
        requests_per_second: 1000,
        all_projects: false,
    }
}

fn project(id: &str) -> Project {
    Project {
        id: id.into(),
        name: format!("name-{id}"),
        domain_id: "default".into(),
    }
}

fn obs(p: &str, user: &str, roles: &[&str]) -> Observation {
    Observation {
        project: project(p),
        user_id: user.into(),
        user_name: format!("name-{user}"),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        complete: true,
    }
}

/// Lets the paused runtime run until `done` holds (bounded in virtual time).
async fn until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not reached within an hour of virtual time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn observing_never_waits_merges_per_project_and_drops_beyond_capacity() {
    let metrics = Arc::new(Metrics::default());
    let (handle, _worker) = new::<FakeCluster, FakeKeystone>(
        settings(Duration::from_secs(600)),
        FakeCluster::default(),
        None,
        metrics.clone(),
    );
    // No worker runs: observing must not depend on it.
    handle.observe(obs("p1", "u1", &["member"]));
    handle.observe(obs("p1", "u2", &["member"]));
    handle.observe(obs("p1", "u1", &["reader"]));
    handle.observe(obs("p2", "u1", &["member"]));
    handle.observe(obs("p3", "u1", &["member"]));
    assert_eq!(handle.health().queue_length, 2);
    assert_eq!(
        metrics.get(Counter::SyncDropped, &[("reason", "queue_full")]),
        1
    );
    assert_eq!(metrics.sync_queue_length.load(Ordering::Relaxed), 2);
    let q = lock(&handle.shared.queue);
    let p1 = &q.pending[&Key::Project("p1".into())];
    assert_eq!(p1.tokens.len(), 2);
    assert_eq!(
        p1.tokens["u1"].roles,
        ["reader"],
        "the latest observation of a user wins"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_and_the_answer_never_waits() {
    let cluster = FakeCluster::default();
    cluster.0.lock().unwrap().cluster_roles = ["member".to_string()].into();
    let metrics = Arc::new(Metrics::default());
    let (handle, worker) = new::<_, FakeKeystone>(
        settings(Duration::from_secs(3600)),
        cluster.clone(),
        None,
        metrics.clone(),
    );
    tokio::spawn(worker.run());
    // Let the start-up probe and (empty) resync pass, then fail the next three reads.
    until(|| handle.health().last_full_resync_result.is_some()).await;
    cluster
        .0
        .lock()
        .unwrap()
        .failures
        .extend([server_error(), server_error(), server_error()]);
    let t0 = Instant::now();
    handle.observe(obs("p1", "u1", &["member"]));
    assert_eq!(Instant::now(), t0, "observe returns at once");
    until(|| cluster.binding_names() == ["p1/u1_member"]).await;
    let reads = cluster.calls("get ns p1");
    assert_eq!(reads.len(), 4, "three failures, then success");
    let gaps: Vec<Duration> = reads.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, want) in gaps.iter().zip([1, 2, 4]) {
        let want = Duration::from_secs(want);
        assert!(
            *gap >= want && *gap < want + Duration::from_millis(50),
            "{gaps:?}"
        );
    }
    assert_eq!(
        metrics.get(Counter::SyncErrors, &[("reason", "server_error")]),
        3
    );
    assert_eq!(
        metrics.get(
            Counter::SyncObjects,
            &[("kind", "rolebinding"), ("action", "created")]
        ),
        1
    );
    let h = handle.health();
    assert!(!h.failing, "a success after the failures: {h:?}");
    assert!(
        h.last_error
            .as_deref()
            .is_some_and(|e| e.contains("etcd is slow")),
        "{h:?}"
    );
    assert_eq!(backoff(1), Duration::from_secs(1));
    assert_eq!(backoff(9), Duration::from_secs(256));
    assert_eq!(backoff(10), BACKOFF_MAX);
    assert_eq!(backoff(100), BACKOFF_MAX);
}

#[tokio::test(start_paused = true)]
async fn a_failing_api_shows_in_health_until_it_recovers() {
    let cluster = FakeCluster::default();
    let (handle, worker) = new::<_, FakeKeystone>(
        settings(Duration::from_secs(3600)),
        cluster.clone(),
        None,
        Arc::new(Metrics::default()),
    );
    tokio::spawn(worker.run());
    until(|| handle.health().last_full_resync_result.is_some()).await;
    cluster
        .0
        .lock()
        .unwrap()
        .failures
        .extend((0..3).map(|_| server_error()));
    handle.observe(obs("p1", "u1", &[]));
    until(|| handle.health().failing).await;
    until(|| !handle.health().failing).await;
    assert!(cluster.0.lock().unwrap().namespaces.contains_key("p1"));
}

#[tokio::test(start_paused = true)]
async fn a_conflict_reads_again_at_once_without_backing_off() {
    let cluster = FakeCluster::default();
    {
        let mut s = cluster.0.lock().unwrap();
        s.cluster_roles = ["member".to_string()].into();
        s.conflicts = 1;
    }
    let metrics = Arc::new(Metrics::default());
    let (handle, worker) = new::<_, FakeKeystone>(
        settings(Duration::from_secs(3600)),
        cluster.clone(),
        None,
        metrics.clone(),
    );
    tokio::spawn(worker.run());
    until(|| handle.health().last_full_resync_result.is_some()).await;
    let t0 = Instant::now();
    handle.observe(obs("p1", "u1", &["member"]));
    until(|| cluster.calls("get ns p1").len() == 2 && handle.health().queue_length == 0).await;
    assert!(
        Instant::now() - t0 < Duration::from_millis(100),
        "no back-off after a 409"
    );
    assert_eq!(
        metrics.get(Counter::SyncErrors, &[("reason", "conflict")]),
        1
    );
    // The binding the other writer made is the one wanted: nothing more to do.
    assert_eq!(cluster.calls("create binding").len(), 1);
    assert!(!handle.health().failing);
}

#[tokio::test(start_paused = true)]
async fn the_full_resync_runs_at_start_and_every_interval_and_removes_what_keystone_took_back() {
    let cluster = FakeCluster::default();
    cluster.0.lock().unwrap().cluster_roles = ["member".to_string(), "reader".to_string()].into();
    let keystone = FakeKeystone::default();
    let alice = Holder {
        kind: SubjectKind::User,
        id: "u1".into(),
        name: "alice".into(),
        roles: ["member".to_string(), "reader".to_string()].into(),
    };
    let devs = Holder {
        kind: SubjectKind::Group,
        id: "g1".into(),
        name: "devs".into(),
        roles: ["reader".to_string()].into(),
    };
    {
        let mut k = keystone.0.lock().unwrap();
        k.0 = vec![
            KnownProject {
                project: project("p1"),
                enabled: true,
            },
            KnownProject {
                project: project("p2"),
                enabled: true,
            },
        ];
        k.1.insert("p1".into(), vec![alice.clone(), devs]);
        k.1.insert("p2".into(), vec![alice.clone()]);
    }
    // p2's namespace exists from an earlier run of the service; p1 is seen in a TokenReview.
    let mut meta = kk_kube::types::ObjectMeta::named("p2");
    meta.labels
        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    meta.annotations.insert(ANN_PROJECT_ID.into(), "p2".into());
    cluster
        .0
        .lock()
        .unwrap()
        .namespaces
        .insert("p2".into(), Namespace::new(meta));
    let metrics = Arc::new(Metrics::default());
    let interval = Duration::from_secs(600);
    let (handle, worker) = new(
        settings(interval),
        cluster.clone(),
        Some(keystone.clone()),
        metrics.clone(),
    );
    let t0 = Instant::now();
    tokio::spawn(worker.run());
    until(|| cluster.binding_names() == ["p2/u1_member", "p2/u1_reader"]).await;
    assert_eq!(keystone.0.lock().unwrap().2, [t0], "a resync at start-up");
    handle.observe(obs("p1", "u1", &["member"]));
    // The token says member; it is a password token (complete), but the resync's list says
    // member, reader and the group: the next resync makes the rest.
    until(|| cluster.binding_names().len() == 3).await;
    until(|| keystone.0.lock().unwrap().2.len() == 2).await;
    until(|| cluster.binding_names().len() == 5).await;
    assert_eq!(
        cluster.binding_names(),
        [
            "p1/group_g1_reader",
            "p1/u1_member",
            "p1/u1_reader",
            "p2/u1_member",
            "p2/u1_reader"
        ]
    );
    let times = keystone.0.lock().unwrap().2.clone();
    assert_eq!(times[1] - times[0], interval);
    // Keystone takes reader back from alice in p2 and deletes p1: at the next resync p2 loses
    // the binding and p1's namespace loses all of this service's, and stays.
    {
        let mut k = keystone.0.lock().unwrap();
        k.0.retain(|p| p.project.id == "p2");
        k.1.insert(
            "p2".into(),
            vec![Holder {
                roles: ["member".to_string()].into(),
                ..alice
            }],
        );
    }
    until(|| keystone.0.lock().unwrap().2.len() == 3).await;
    until(|| cluster.binding_names() == ["p2/u1_member"]).await;
    assert_eq!(keystone.0.lock().unwrap().2[2] - times[1], interval);
    assert!(
        cluster.0.lock().unwrap().namespaces.contains_key("p1"),
        "namespaces are never deleted"
    );
    until(|| handle.health().last_full_resync_result == Some("success")).await;
    assert!(metrics.sync_last_full_resync.load(Ordering::Relaxed) > 0);
    assert!(metrics.get(Counter::SyncFullResyncs, &[("result", "success")]) >= 3);
}

#[tokio::test(start_paused = true)]
async fn without_keystone_the_resync_repairs_from_the_last_tokens() {
    let cluster = FakeCluster::default();
    cluster.0.lock().unwrap().cluster_roles = ["member".to_string()].into();
    let interval = Duration::from_secs(600);
    let (handle, worker) = new::<_, FakeKeystone>(
        settings(interval),
        cluster.clone(),
        None,
        Arc::new(Metrics::default()),
    );
    tokio::spawn(worker.run());
    handle.observe(obs("p1", "u1", &["member"]));
    until(|| cluster.binding_names() == ["p1/u1_member"]).await;
    // Someone deletes the binding; the same token again within RECENT is not synced again...
    cluster.0.lock().unwrap().bindings.clear();
    handle.observe(obs("p1", "u1", &["member"]));
    assert_eq!(
        handle.health().queue_length,
        0,
        "an identical observation synced just now"
    );
    // ...but the resync puts it back.
    let t = Instant::now();
    until(|| cluster.binding_names() == ["p1/u1_member"]).await;
    assert!(Instant::now() - t <= interval);
    // A blacklisted project is never read.
    handle.observe(Observation {
        project: Project {
            name: "blocked".into(),
            ..project("p9")
        },
        ..obs("p9", "u1", &["member"])
    });
    until(|| handle.health().queue_length == 0).await;
    assert!(cluster.calls("get ns p9").is_empty());
}

#[tokio::test(start_paused = true)]
async fn new_rules_apply_at_once_and_rules_that_sync_nothing_pause_the_worker() {
    let cluster = FakeCluster::default();
    cluster.0.lock().unwrap().cluster_roles = ["member".to_string()].into();
    let interval = Duration::from_secs(3600);
    let (handle, worker) = new::<_, FakeKeystone>(
        settings(interval),
        cluster.clone(),
        None,
        Arc::new(Metrics::default()),
    );
    tokio::spawn(worker.run());
    handle.observe(obs("p1", "u1", &["member"]));
    until(|| cluster.binding_names() == ["p1/u1_member"]).await;
    // A new namespace format: the projects seen are synced again at once (not at the
    // interval), into the new namespace.
    let started = Instant::now();
    let mut rules = settings(interval).rules;
    rules.namespace_format = "t-%i".into();
    handle.set_rules(rules.clone());
    until(|| {
        cluster
            .binding_names()
            .contains(&"t-p1/u1_member".to_string())
    })
    .await;
    assert!(Instant::now() - started < Duration::from_secs(1));
    // Nothing to sync: observations are ignored, nothing is read.
    let mut off = rules.clone();
    off.namespaces = false;
    off.bindings = false;
    handle.set_rules(off);
    assert!(!handle.enabled());
    handle.observe(obs("p2", "u1", &["member"]));
    assert_eq!(handle.health().queue_length, 0);
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert!(cluster.calls("get ns p2").is_empty());
    assert!(cluster.calls("get ns t-p2").is_empty());
    // On again: observations are synced.
    handle.set_rules(rules);
    assert!(handle.enabled());
    handle.observe(obs("p2", "u1", &["member"]));
    until(|| {
        cluster
            .binding_names()
            .contains(&"t-p2/u1_member".to_string())
    })
    .await;
}
