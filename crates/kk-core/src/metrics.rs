//! Prometheus metrics, kept in atomics and rendered in the text exposition format by hand.
//!
//! One [`Metrics`] value is shared (in an `Arc`) by the Keystone client, the token cache and the
//! webhook handlers; `/metrics` renders it. Label values are a closed set of `&'static str`, so
//! an attacker cannot grow the label space.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A counter series: metric name and label pairs.
type SeriesKey = (Counter, Vec<(&'static str, &'static str)>);

/// Upper bounds (seconds) of the review latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// All metrics of the service.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<SeriesKey, u64>>,
    histograms: Mutex<BTreeMap<&'static str, Histogram>>,
    /// Current number of entries in the token cache.
    pub cache_entries: AtomicU64,
    /// Current number of rules in the loaded policy.
    pub policy_rules: AtomicU64,
    /// Rule parts of the loaded policy that never allow anything because Go skips them at
    /// every request (a `nonresource` without `path`).
    pub policy_skipped_rules: AtomicU64,
    /// Projects waiting for the namespace sync.
    pub sync_queue_length: AtomicU64,
    /// When the last full resync of the namespace sync finished (Unix seconds; 0: never).
    pub sync_last_full_resync: AtomicU64,
}

/// Every counter of the service: the only place their names are written, so a misspelt
/// name cannot silently vanish from `/metrics` (call sites name a variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    /// Reviews answered, by kind and result.
    Reviews,
    /// Token cache lookups, by where the answer came from.
    TokenCacheRequests,
    /// Tokens refused without asking Keystone, by reason.
    TokensPrefiltered,
    /// Requests to Keystone, by call and outcome.
    KeystoneRequests,
    /// Application-credential bearer tokens (`kkac1_...`) reviewed past the cache, by result.
    AppCredTokens,
    /// Policy loads, by source (file, configmap) and result.
    PolicyReloads,
    /// Sync config loads, by source (file, configmap) and result.
    SyncConfigReloads,
    /// TLS certificate reloads, by result.
    TlsReloads,
    /// HTTP requests refused before review, by reason.
    HttpRequestsRejected,
    /// Namespaces and RoleBindings the sync created, updated or deleted, by kind and action.
    SyncObjects,
    /// Failed sync attempts, by reason.
    SyncErrors,
    /// Sync work dropped, by reason (queue full, retries exhausted).
    SyncDropped,
    /// Things the sync left alone, by reason (not its namespace, missing ClusterRole, ...).
    SyncSkipped,
    /// Full resyncs, by result.
    SyncFullResyncs,
}

impl Counter {
    /// The Prometheus name.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Reviews => "k8s_keystone_auth_reviews_total",
            Counter::TokenCacheRequests => "k8s_keystone_auth_token_cache_requests_total",
            Counter::TokensPrefiltered => "k8s_keystone_auth_tokens_prefiltered_total",
            Counter::KeystoneRequests => "k8s_keystone_auth_keystone_requests_total",
            Counter::AppCredTokens => "k8s_keystone_auth_application_credential_tokens_total",
            Counter::PolicyReloads => "k8s_keystone_auth_policy_reloads_total",
            Counter::SyncConfigReloads => "k8s_keystone_auth_sync_config_reloads_total",
            Counter::TlsReloads => "k8s_keystone_auth_tls_reloads_total",
            Counter::HttpRequestsRejected => "k8s_keystone_auth_http_requests_rejected_total",
            Counter::SyncObjects => "k8s_keystone_auth_sync_objects_total",
            Counter::SyncErrors => "k8s_keystone_auth_sync_errors_total",
            Counter::SyncDropped => "k8s_keystone_auth_sync_dropped_total",
            Counter::SyncSkipped => "k8s_keystone_auth_sync_skipped_total",
            Counter::SyncFullResyncs => "k8s_keystone_auth_sync_full_resyncs_total",
        }
    }

    const fn help(self) -> &'static str {
        match self {
            Counter::Reviews => "Reviews answered, by kind and result.",
            Counter::TokenCacheRequests => {
                "Token cache lookups, one per review past the prefilter, by where the answer came from (hit, miss, coalesced, stale)."
            }
            Counter::TokensPrefiltered => "Tokens refused without asking Keystone, by reason.",
            Counter::KeystoneRequests => "Requests to Keystone, by call and outcome.",
            Counter::AppCredTokens => {
                "Application-credential bearer tokens (kkac1_...) not answered from the cache, by result (exchanged, refused, throttled: refused without asking Keystone after too many failed secrets, unavailable, disabled, malformed)."
            }
            Counter::PolicyReloads => {
                "Policy loads (start-up and reloads), by source (file, configmap) and result; a failure keeps the policy in force."
            }
            Counter::SyncConfigReloads => {
                "Sync config loads (start-up and ConfigMap updates), by source (file, configmap) and result; a failure keeps the sync config in force."
            }
            Counter::TlsReloads => "TLS certificate reloads, by result.",
            Counter::HttpRequestsRejected => "HTTP requests refused before review, by reason.",
            Counter::SyncObjects => {
                "Namespaces and RoleBindings the sync created, updated or deleted, by kind and action."
            }
            Counter::SyncErrors => "Failed sync attempts (Kubernetes or Keystone), by reason.",
            Counter::SyncDropped => {
                "Sync work dropped, by reason (queue_full: the queue was full; retries_exhausted)."
            }
            Counter::SyncSkipped => {
                "Objects the sync left alone, by reason (namespace_not_managed, cluster_role_missing, ...)."
            }
            Counter::SyncFullResyncs => "Full resyncs, by result.",
        }
    }
}

/// One family of `/metrics`, in the order they are rendered.
#[derive(Debug, Clone, Copy)]
enum Family {
    Counter(Counter),
    ReviewDuration,
    CacheEntries,
    PolicyRules,
    PolicySkippedRules,
    SyncQueueLength,
    SyncLastFullResync,
    BuildInfo,
}

const FAMILIES: [Family; 21] = [
    Family::Counter(Counter::Reviews),
    Family::ReviewDuration,
    Family::Counter(Counter::TokenCacheRequests),
    Family::CacheEntries,
    Family::Counter(Counter::TokensPrefiltered),
    Family::Counter(Counter::KeystoneRequests),
    Family::Counter(Counter::AppCredTokens),
    Family::Counter(Counter::PolicyReloads),
    Family::PolicyRules,
    Family::PolicySkippedRules,
    Family::Counter(Counter::SyncConfigReloads),
    Family::Counter(Counter::TlsReloads),
    Family::Counter(Counter::HttpRequestsRejected),
    Family::Counter(Counter::SyncObjects),
    Family::Counter(Counter::SyncErrors),
    Family::Counter(Counter::SyncDropped),
    Family::Counter(Counter::SyncSkipped),
    Family::Counter(Counter::SyncFullResyncs),
    Family::SyncQueueLength,
    Family::SyncLastFullResync,
    Family::BuildInfo,
];

impl Family {
    /// (name, type, help)
    const fn describe(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Family::Counter(c) => (c.name(), "counter", c.help()),
            Family::ReviewDuration => (
                "k8s_keystone_auth_review_duration_seconds",
                "histogram",
                "Time to answer a review, by kind.",
            ),
            Family::CacheEntries => (
                "k8s_keystone_auth_token_cache_entries",
                "gauge",
                "Entries in the token cache.",
            ),
            Family::PolicyRules => (
                "k8s_keystone_auth_policy_rules",
                "gauge",
                "Rules in the policy in force.",
            ),
            Family::PolicySkippedRules => (
                "k8s_keystone_auth_policy_skipped_rules",
                "gauge",
                "Rule parts of the policy in force that never allow anything because Go skips them (a nonresource without path); policy.strict refuses them.",
            ),
            Family::SyncQueueLength => (
                "k8s_keystone_auth_sync_queue_length",
                "gauge",
                "Projects waiting for the namespace sync.",
            ),
            Family::SyncLastFullResync => (
                "k8s_keystone_auth_sync_last_full_resync_timestamp_seconds",
                "gauge",
                "When the last full resync finished (Unix time; 0: never).",
            ),
            Family::BuildInfo => (
                "k8s_keystone_auth_build_info",
                "gauge",
                "Build information.",
            ),
        }
    }
}

impl Metrics {
    /// Adds one to `counter` with `labels`.
    pub fn inc(&self, counter: Counter, labels: &[(&'static str, &'static str)]) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((counter, labels.to_vec())).or_insert(0) += 1;
        }
    }

    /// The value of a counter (for tests and the benchmarks).
    pub fn get(&self, counter: Counter, labels: &[(&'static str, &'static str)]) -> u64 {
        self.counters
            .lock()
            .ok()
            .and_then(|c| c.get(&(counter, labels.to_vec())).copied())
            .unwrap_or(0)
    }

    /// Records one review latency for `kind`.
    pub fn observe_review(&self, kind: &'static str, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Ok(mut h) = self.histograms.lock() {
            let h = h.entry(kind).or_default();
            for (i, le) in BUCKETS.iter().enumerate() {
                if secs <= *le {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        }
    }

    /// Renders everything in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        for family in FAMILIES {
            let (name, kind, help) = family.describe();
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            match family {
                Family::ReviewDuration => {
                    if let Ok(hs) = self.histograms.lock() {
                        for (k, h) in hs.iter() {
                            for (i, le) in BUCKETS.iter().enumerate() {
                                let _ = writeln!(
                                    out,
                                    "{name}_bucket{{kind=\"{k}\",le=\"{le}\"}} {}",
                                    h.counts[i]
                                );
                            }
                            let _ = writeln!(
                                out,
                                "{name}_bucket{{kind=\"{k}\",le=\"+Inf\"}} {}",
                                h.count
                            );
                            let _ = writeln!(out, "{name}_sum{{kind=\"{k}\"}} {}", h.sum);
                            let _ = writeln!(out, "{name}_count{{kind=\"{k}\"}} {}", h.count);
                        }
                    }
                }
                Family::CacheEntries => {
                    let _ = writeln!(out, "{name} {}", self.cache_entries.load(Ordering::Relaxed));
                }
                Family::PolicyRules => {
                    let _ = writeln!(out, "{name} {}", self.policy_rules.load(Ordering::Relaxed));
                }
                Family::PolicySkippedRules => {
                    let v = self.policy_skipped_rules.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{name} {v}");
                }
                Family::SyncQueueLength => {
                    let v = self.sync_queue_length.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{name} {v}");
                }
                Family::SyncLastFullResync => {
                    let v = self.sync_last_full_resync.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{name} {v}");
                }
                Family::BuildInfo => {
                    let _ = writeln!(out, "{name}{{version=\"{}\"}} 1", crate::VERSION);
                }
                Family::Counter(counter) => {
                    for ((_, labels), v) in counters.iter().filter(|((c, _), _)| *c == counter) {
                        let _ = writeln!(out, "{name}{} {v}", render_labels(labels));
                    }
                }
            }
        }
        out
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.inc(
            Counter::Reviews,
            &[("kind", "TokenReview"), ("result", "authenticated")],
        );
        m.inc(
            Counter::Reviews,
            &[("kind", "TokenReview"), ("result", "authenticated")],
        );
        m.observe_review("TokenReview", Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains(
                "k8s_keystone_auth_reviews_total{kind=\"TokenReview\",result=\"authenticated\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "k8s_keystone_auth_review_duration_seconds_bucket{kind=\"TokenReview\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains(
            "k8s_keystone_auth_review_duration_seconds_bucket{kind=\"TokenReview\",le=\"0.005\"} 1"
        ));
        assert!(
            text.contains(
                "k8s_keystone_auth_review_duration_seconds_count{kind=\"TokenReview\"} 1"
            )
        );
        assert_eq!(
            m.get(
                Counter::Reviews,
                &[("kind", "TokenReview"), ("result", "authenticated")]
            ),
            2
        );
    }

    #[test]
    fn every_family_is_described_once_and_every_counter_is_rendered() {
        let names: Vec<&str> = FAMILIES.iter().map(|f| f.describe().0).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            names.len(),
            "a family is listed twice: {names:?}"
        );
        for counter in [
            Counter::Reviews,
            Counter::TokenCacheRequests,
            Counter::TokensPrefiltered,
            Counter::KeystoneRequests,
            Counter::PolicyReloads,
            Counter::SyncConfigReloads,
            Counter::TlsReloads,
            Counter::HttpRequestsRejected,
            Counter::SyncObjects,
            Counter::SyncErrors,
            Counter::SyncDropped,
            Counter::SyncSkipped,
            Counter::SyncFullResyncs,
        ] {
            let m = Metrics::default();
            m.inc(counter, &[("result", "x")]);
            let text = m.render();
            assert!(
                text.contains(&format!("# TYPE {} counter", counter.name()))
                    && text.contains(&format!("{}{{result=\"x\"}} 1", counter.name())),
                "{counter:?} is not rendered:\n{text}"
            );
        }
    }
}
