//! kk-kube: the few Kubernetes API calls this project makes, hand-written on reqwest (one
//! concern: talking to kube-apiserver).
//!
//! | module | concern |
//! |---|---|
//! | [`config`] | where the API is and the credential: a kubeconfig file (typed with [`kk_core::kubeconfig`]) or the pod's ServiceAccount |
//! | [`client`] | [`KubeClient`]: get, create, list (label selector, every page; one object by name), watch one object, update, delete; `/version` |
//! | [`types`] | `Namespace`, `RoleBinding`, `ClusterRole`, `ConfigMap`, `ObjectMeta`, `List`, `Status`, `DeleteOptions`, watch events |
//! | [`watch`] | [`watch::ObjectWatch`]: one named object, list then watch, relist on 410, capped back-off |
//! | [`error`] | [`KubeError`]: 404, 409, 429, 5xx, timeouts... classified |
//!
//! Why not `kube` + `k8s-openapi`: this project reads and writes three kinds with five verbs;
//! those crates type every kind of every API group and bring a runtime around them. Measured on
//! 2 cores (clean `cargo build -p kk-webhook`, debug): before the sync 203 crates in
//! `cargo tree -p kk-webhook -e normal`, 70 s; with kk-kube and kk-sync 208 lines (these two
//! crates, no other new crate), 69 s; the same baseline plus `kube` 5 (`client`, `rustls-tls`) and
//! `k8s-openapi` 0.29 adds 43 crates (syn 2, derive_more, pest, jiff, tower-http, ...) and took
//! 101 s (CPU 3 min 9 s instead of 2 min 3 s).

#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod error;
pub mod types;
pub mod watch;

pub use client::{ClientSettings, KubeClient};
pub use config::{ClusterConfig, ConfigError, Credential};
pub use error::KubeError;
