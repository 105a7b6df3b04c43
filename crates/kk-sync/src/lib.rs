//! kk-sync: Keystone projects become namespaces and role assignments RoleBindings (the sync
//! file's `data-types-to-sync`), off the request path.
//!
//! | module | concern |
//! |---|---|
//! | [`plan`] | the pure planner: project, holders, rules, observed objects → operations |
//! | [`worker`] | the queue the TokenReviews feed (never blocking), the worker, back-off, the full resync, health |
//! | [`api`] | what the worker asks of Kubernetes ([`api::Cluster`], on [`kk_kube::KubeClient`]) and Keystone ([`api::Directory`]) |
//!
//! See docs/sync.md.

#![forbid(unsafe_code)]

pub mod api;
pub mod plan;
pub mod worker;

pub use worker::{Health, Observation, Settings, SyncHandle, Worker};
