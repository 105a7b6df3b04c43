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
type SeriesKey = (&'static str, Vec<(&'static str, &'static str)>);

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
}

/// Counter names with their help text.
const HELP: &[(&str, &str, &str)] = &[
    (
        "k8s_keystone_auth_reviews_total",
        "counter",
        "Reviews answered, by kind and result.",
    ),
    (
        "k8s_keystone_auth_review_duration_seconds",
        "histogram",
        "Time to answer a review, by kind.",
    ),
    (
        "k8s_keystone_auth_token_cache_requests_total",
        "counter",
        "Token cache lookups, one per review past the prefilter, by where the answer came from (hit, miss, coalesced, stale).",
    ),
    (
        "k8s_keystone_auth_token_cache_entries",
        "gauge",
        "Entries in the token cache.",
    ),
    (
        "k8s_keystone_auth_tokens_prefiltered_total",
        "counter",
        "Tokens refused without asking Keystone, by reason.",
    ),
    (
        "k8s_keystone_auth_keystone_requests_total",
        "counter",
        "Requests to Keystone, by call and outcome.",
    ),
    (
        "k8s_keystone_auth_policy_reloads_total",
        "counter",
        "Policy file loads, by result.",
    ),
    (
        "k8s_keystone_auth_policy_rules",
        "gauge",
        "Rules in the policy in force.",
    ),
    (
        "k8s_keystone_auth_tls_reloads_total",
        "counter",
        "TLS certificate reloads, by result.",
    ),
    (
        "k8s_keystone_auth_http_requests_rejected_total",
        "counter",
        "HTTP requests refused before review, by reason.",
    ),
    (
        "k8s_keystone_auth_build_info",
        "gauge",
        "Build information.",
    ),
];

impl Metrics {
    /// Adds one to counter `name` with `labels`.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &'static str)]) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name, labels.to_vec())).or_insert(0) += 1;
        }
    }

    /// The value of a counter (for tests and the benchmarks).
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> u64 {
        self.counters
            .lock()
            .ok()
            .and_then(|c| c.get(&(name, labels.to_vec())).copied())
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
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            match *name {
                "k8s_keystone_auth_review_duration_seconds" => {
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
                "k8s_keystone_auth_token_cache_entries" => {
                    let _ = writeln!(out, "{name} {}", self.cache_entries.load(Ordering::Relaxed));
                }
                "k8s_keystone_auth_policy_rules" => {
                    let _ = writeln!(out, "{name} {}", self.policy_rules.load(Ordering::Relaxed));
                }
                "k8s_keystone_auth_build_info" => {
                    let _ = writeln!(out, "{name}{{version=\"{}\"}} 1", crate::VERSION);
                }
                _ => {
                    for ((n, labels), v) in counters.iter().filter(|((n, _), _)| n == name) {
                        let _ = writeln!(out, "{n}{} {v}", render_labels(labels));
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
            "k8s_keystone_auth_reviews_total",
            &[("kind", "TokenReview"), ("result", "authenticated")],
        );
        m.inc(
            "k8s_keystone_auth_reviews_total",
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
                "k8s_keystone_auth_reviews_total",
                &[("kind", "TokenReview"), ("result", "authenticated")]
            ),
            2
        );
    }
}
