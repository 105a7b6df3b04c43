//! kubernetes-keystone: Kubernetes authentication and authorization from OpenStack Keystone.
//!
//! The crate holds the library behind three executables:
//!
//! * `k8s-keystone-auth`, the HTTPS service that answers kube-apiserver's authentication
//!   webhook (TokenReview) and authorization webhook (SubjectAccessReview): [`webhook`];
//! * `kubectl-keystone-auth`, the kubectl exec credential plugin and kubeconfig generator:
//!   [`plugin`];
//! * `kubernetes-keystone-hook`, the Juju charm's hook executable: [`charm`].
//!
//! Where things live:
//!
//! | module | concern |
//! |---|---|
//! | [`charm`] | the Juju subordinate charm: hook tools, options, rendering, snap options, hooks |
//! | [`config`] | command line + TOML file → validated, typed [`config::Config`] |
//! | [`k8s`] | hand-written Kubernetes wire types (TokenReview, SubjectAccessReview), v1 and v1beta1 |
//! | [`keystone`] | the Keystone v3 HTTP client and its JSON types |
//! | [`identity`] | pure mapping of a validated Keystone token to a Kubernetes user |
//! | [`cache`] | the TTL token cache with single flight |
//! | [`policy`] | the authorization policy engine (both formats of the Go reference) |
//! | [`sync_config`] | the Go reference's sync config (parsed and validated only) |
//! | [`webhook`] | routes, handlers, TLS serving, metrics, reloading |
//! | [`plugin`] | the kubectl credential plugin: settings, token cache, ExecCredential, kubeconfig |
//! | [`metrics`] | Prometheus counters and histograms, rendered by hand |
//! | [`tls`] | the one rustls crypto provider, PEM loading |
//! | [`urls`] | URL helpers: redaction for messages, loopback check |
//! | [`secret`] | a string type that never prints its value |
//! | [`timefmt`] | RFC 3339 timestamps without a date-time crate |

#![forbid(unsafe_code)]

pub mod cache;
pub mod charm;
pub mod config;
pub mod hex;
pub mod identity;
pub mod k8s;
pub mod keystone;
pub mod metrics;
pub mod plugin;
pub mod policy;
pub mod secret;
pub mod sync_config;
pub mod telemetry;
pub mod timefmt;
pub mod tls;
pub mod urls;
pub mod webhook;

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

/// The version of this build, as reported by `--version`, `/metrics` and the charm.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
