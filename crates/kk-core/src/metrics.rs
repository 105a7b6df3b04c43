//! Prometheus metrics, kept in atomics and rendered in the text exposition format by hand.
//!
//! One [`Metrics`] value is shared (in an `Arc`) by the Keystone client, the token cache and the
//! webhook handlers; `/metrics` renders it. Label values are a closed set of `&'static str`, so
//! an attacker cannot grow the label space.
//!
//! Counting takes no lock and allocates nothing once a series exists: series live in a fixed
//! table of slots, found by a hash of the counter and its labels (open addressing); a slot's
//! key is set once ([`OnceLock`]) and its value is an atomic. The review latency histogram is a
//! few atomics per kind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Label pairs of a series.
type Labels = [(&'static str, &'static str)];

/// A counter series: metric name and label pairs.
type SeriesKey = (Counter, Vec<(&'static str, &'static str)>);

/// Upper bounds (seconds) of the review latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counter series the table holds: far more than the closed label sets make (about 100).
const SERIES_SLOTS: usize = 1024;

/// Review kinds the histogram holds.
const HISTOGRAM_SLOTS: usize = 4;

struct Series {
    key: OnceLock<SeriesKey>,
    value: AtomicU64,
}

/// One kind's latency histogram: per-bucket counts (not cumulative; the last one is +Inf),
/// the sum in nanoseconds, and the count.
struct Histogram {
    kind: OnceLock<&'static str>,
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            kind: OnceLock::new(),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

/// All metrics of the service.
pub struct Metrics {
    series: Box<[Series]>,
    /// Increments that found no free slot (never expected; rendered so it would show).
    series_overflow: AtomicU64,
    histograms: [Histogram; HISTOGRAM_SLOTS],
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

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            series: (0..SERIES_SLOTS)
                .map(|_| Series {
                    key: OnceLock::new(),
                    value: AtomicU64::new(0),
                })
                .collect(),
            series_overflow: AtomicU64::new(0),
            histograms: std::array::from_fn(|_| Histogram::default()),
            cache_entries: AtomicU64::new(0),
            policy_rules: AtomicU64::new(0),
            policy_skipped_rules: AtomicU64::new(0),
            sync_queue_length: AtomicU64::new(0),
            sync_last_full_resync: AtomicU64::new(0),
        }
    }
}

/// FNV-1a over the counter and its labels: where a series' probe starts.
fn slot_of(counter: Counter, labels: &Labels) -> usize {
    // Eight bytes at a time (every review counts two or three series: this is on its path).
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (counter as u64).wrapping_add(1).wrapping_mul(K);
    let mut eat = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        let mut word = [0u8; 8];
        let rest = chunks.remainder();
        word[..rest.len()].copy_from_slice(rest);
        // The length ends each string, so ("ab","c") and ("a","bc") differ.
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        h = (h.rotate_left(5) ^ bytes.len() as u64).wrapping_mul(K);
    };
    for (k, v) in labels {
        eat(k.as_bytes());
        eat(v.as_bytes());
    }
    ((h ^ (h >> 29)) % SERIES_SLOTS as u64) as usize
}

fn same_series(key: &SeriesKey, counter: Counter, labels: &Labels) -> bool {
    key.0 == counter && key.1.as_slice() == labels
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
    LogLinesDropped,
    SeriesDropped,
    BuildInfo,
}

const FAMILIES: [Family; 23] = [
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
    Family::LogLinesDropped,
    Family::SeriesDropped,
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
            Family::LogLinesDropped => (
                "k8s_keystone_auth_log_lines_dropped_total",
                "counter",
                "Log lines dropped because stderr did not keep up (the log writer's queue was full).",
            ),
            Family::SeriesDropped => (
                "k8s_keystone_auth_metrics_series_dropped_total",
                "counter",
                "Counter increments lost because the metrics table had no free slot (expected 0).",
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
    /// The slot of a series, claimed for it when `create` and it has none yet.
    fn series(&self, counter: Counter, labels: &Labels, create: bool) -> Option<&Series> {
        let start = slot_of(counter, labels);
        for i in 0..SERIES_SLOTS {
            let slot = &self.series[(start + i) % SERIES_SLOTS];
            match slot.key.get() {
                Some(key) if same_series(key, counter, labels) => return Some(slot),
                Some(_) => continue,
                None if !create => return None,
                None => {
                    // Another thread may claim the slot first, for this series or another.
                    let key = slot.key.get_or_init(|| (counter, labels.to_vec()));
                    if same_series(key, counter, labels) {
                        return Some(slot);
                    }
                }
            }
        }
        None
    }

    /// Adds one to `counter` with `labels`.
    pub fn inc(&self, counter: Counter, labels: &[(&'static str, &'static str)]) {
        match self.series(counter, labels, true) {
            Some(s) => s.value.fetch_add(1, Ordering::Relaxed),
            None => self.series_overflow.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// The value of a counter (for tests and the benchmarks).
    pub fn get(&self, counter: Counter, labels: &[(&'static str, &'static str)]) -> u64 {
        self.series(counter, labels, false)
            .map_or(0, |s| s.value.load(Ordering::Relaxed))
    }

    /// Records one review latency for `kind`.
    pub fn observe_review(&self, kind: &'static str, elapsed: Duration) {
        let Some(h) = self.histograms.iter().find(|h| {
            // The first free slot is claimed for `kind` (kinds are a closed set of two).
            *h.kind.get_or_init(|| kind) == kind
        }) else {
            return;
        };
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(BUCKETS.len());
        h.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        h.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        h.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders everything in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: BTreeMap<&SeriesKey, u64> = self
            .series
            .iter()
            .filter_map(|s| Some((s.key.get()?, s.value.load(Ordering::Relaxed))))
            .collect();
        let mut histograms: Vec<&Histogram> = self
            .histograms
            .iter()
            .filter(|h| h.kind.get().is_some())
            .collect();
        histograms.sort_by_key(|h| h.kind.get().copied());
        for family in FAMILIES {
            let (name, kind, help) = family.describe();
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            match family {
                Family::ReviewDuration => {
                    for h in &histograms {
                        let k = h.kind.get().copied().unwrap_or_default();
                        // Read the count first: the buckets, read after, are never fewer
                        // (each observation adds its bucket before the count).
                        let count = h.count.load(Ordering::Relaxed);
                        let mut cumulative = 0;
                        for (i, le) in BUCKETS.iter().enumerate() {
                            cumulative += h.counts[i].load(Ordering::Relaxed);
                            let _ = writeln!(
                                out,
                                "{name}_bucket{{kind=\"{k}\",le=\"{le}\"}} {}",
                                cumulative.min(count)
                            );
                        }
                        let _ = writeln!(out, "{name}_bucket{{kind=\"{k}\",le=\"+Inf\"}} {count}");
                        let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                        let _ = writeln!(out, "{name}_sum{{kind=\"{k}\"}} {sum}");
                        let _ = writeln!(out, "{name}_count{{kind=\"{k}\"}} {count}");
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
                Family::LogLinesDropped => {
                    let _ = writeln!(out, "{name} {}", crate::telemetry::dropped_lines());
                }
                Family::SeriesDropped => {
                    let v = self.series_overflow.load(Ordering::Relaxed);
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
    fn concurrent_increments_are_all_counted_and_series_kept_apart() {
        let m = std::sync::Arc::new(Metrics::default());
        let results = ["a", "b", "c", "d"];
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        m.inc(
                            Counter::Reviews,
                            &[("kind", "TokenReview"), ("result", results[i % 4])],
                        );
                        m.inc(
                            Counter::KeystoneRequests,
                            &[("call", "validate"), ("result", results[t])],
                        );
                        m.observe_review("TokenReview", Duration::from_micros(i as u64 % 2_000));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for r in results {
            assert_eq!(
                m.get(Counter::Reviews, &[("kind", "TokenReview"), ("result", r)]),
                10_000
            );
            assert_eq!(
                m.get(
                    Counter::KeystoneRequests,
                    &[("call", "validate"), ("result", r)]
                ),
                10_000
            );
        }
        // Same labels, another counter; and label order matters as written.
        assert_eq!(
            m.get(
                Counter::SyncErrors,
                &[("kind", "TokenReview"), ("result", "a")]
            ),
            0
        );
        assert_eq!(
            m.get(
                Counter::Reviews,
                &[("result", "a"), ("kind", "TokenReview")]
            ),
            0
        );
        let text = m.render();
        assert!(
            text.contains(
                "k8s_keystone_auth_review_duration_seconds_count{kind=\"TokenReview\"} 40000"
            ),
            "{text}"
        );
        // 0..2000 µs: half the observations are at most 1 ms, all at most 2.5 ms.
        assert!(text.contains("k8s_keystone_auth_review_duration_seconds_bucket{kind=\"TokenReview\",le=\"0.001\"} 20020"), "{text}");
        assert!(text.contains("k8s_keystone_auth_review_duration_seconds_bucket{kind=\"TokenReview\",le=\"0.0025\"} 40000"), "{text}");
        assert!(
            text.contains("k8s_keystone_auth_metrics_series_dropped_total 0"),
            "{text}"
        );
    }

    #[test]
    fn a_full_table_counts_what_it_cannot_keep() {
        let m = Metrics::default();
        let names: Vec<&'static str> = (0..SERIES_SLOTS + 5)
            .map(|i| &*Box::leak(format!("v{i}").into_boxed_str()))
            .collect();
        for n in &names {
            m.inc(Counter::SyncSkipped, &[("reason", n)]);
        }
        assert_eq!(m.get(Counter::SyncSkipped, &[("reason", names[0])]), 1);
        assert_eq!(
            m.get(Counter::SyncSkipped, &[("reason", names[SERIES_SLOTS - 1])]),
            1
        );
        assert!(
            m.render()
                .contains("k8s_keystone_auth_metrics_series_dropped_total 5")
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
