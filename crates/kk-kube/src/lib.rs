//! kk-kube: the few Kubernetes API calls this project makes, hand-written on reqwest (one
//! concern: talking to kube-apiserver).
//!
//! | module | concern |
//! |---|---|
//! | [`config`] | where the API is and the credential: a kubeconfig file (typed with [`kk_core::kubeconfig`]) or the pod's ServiceAccount |
//! | [`client`] | [`KubeClient`]: get, create, list (label selector, every page), update, delete; `/version` |
//! | [`types`] | `Namespace`, `RoleBinding`, `ClusterRole`, `ObjectMeta`, `List`, `Status`, `DeleteOptions` |
//! | [`error`] | [`KubeError`]: 404, 409, 429, 5xx, timeouts... classified |
//!
//! Why not `kube` + `k8s-openapi`: this project reads and writes three kinds; those crates
//! generate every kind of every API group and a runtime around them (see the crate's commit
//! message and README.md for the compile-time figures).

#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod error;
pub mod types;

pub use client::{ClientSettings, KubeClient};
pub use config::{ClusterConfig, ConfigError, Credential};
pub use error::KubeError;
