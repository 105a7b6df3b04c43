//! kk-core: what every kubernetes-keystone binary shares (the service `k8s-keystone-auth`, the
//! kubectl plugin `kubectl-keystone-auth` and the charm's hook `kubernetes-keystone-hook`).
//!
//! No server, no TOML, no certificate minting: the plugin compiles this crate and its own.
//!
//! | module | concern |
//! |---|---|
//! | [`appcred_token`] | the application-credential bearer token (`kkac1_...`): format, parsing |
//! | [`keystone`] | the Keystone v3 HTTP client and its JSON types |
//! | [`goflags`] | command-line compatibility with the Go reference (`--a_b` is `--a-b`, `-v N`) |
//! | [`hex`] | lower-case hexadecimal, the one encoder |
//! | [`k8s`] | hand-written Kubernetes wire types (TokenReview, SubjectAccessReview), v1 and v1beta1 |
//! | [`exec_credential`] | the exec credential plugin's `ExecCredential`, v1 and v1beta1, in and out |
//! | [`kubeconfig`] | the kubeconfig, typed (the plugin's, the webhook's), unknown keys kept |
//! | [`metrics`] | Prometheus counters and histograms, rendered by hand |
//! | [`telemetry`] | logging to stderr (`tracing`) |
//! | [`tls`] | the one rustls crypto provider (installed by each binary's `main`), PEM loading |
//! | [`urls`] | URL helpers: redaction for messages, loopback check |
//! | [`secret`] | a string type that never prints its value |
//! | [`timefmt`] | RFC 3339 timestamps without a date-time crate |
//!
//! and [`error_chain`], [`parse_duration`], [`VERSION`].

#![forbid(unsafe_code)]

use std::time::Duration;

pub mod appcred_token;
pub mod exec_credential;
pub mod fsutil;
pub mod goflags;
pub mod hex;
pub mod k8s;
pub mod keystone;
pub mod kubeconfig;
pub mod metrics;
pub mod secret;
pub mod telemetry;
pub mod timefmt;
pub mod tls;
pub mod urls;

/// An error and its causes on one line: `error: cause: cause` (what `anyhow`'s `{:#}` prints,
/// for any `std::error::Error`).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    // Bounded: error chains are short, but a cycle must not hang the process.
    for _ in 0..16 {
        let Some(cause) = source else { break };
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Parses `500ms`, `5s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like \"500ms\", \"5s\", \"2m\" or \"1h\""))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "{s:?} is not a duration like \"500ms\", \"5s\", \"2m\" or \"1h\""
            ));
        }
    };
    Ok(d)
}

/// The version of this build, as reported by `--version`, `/metrics` and the charm.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
