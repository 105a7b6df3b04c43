//! Integration tests: the real `k8s-keystone-auth` binary against the real Keystone that
//! `tests/run` starts (see tests/keystone/). The tests play kube-apiserver: they POST
//! TokenReview and SubjectAccessReview bodies over HTTPS, exactly as the apiserver does.
//!
//! `plugin` runs the real `kubectl-keystone-auth` and the real `kubectl` against an HTTPS
//! stand-in for kube-apiserver that asks the real `k8s-keystone-auth`.
//!
//! Run them with `tests/run` (which starts and seeds Keystone and exports the `KS_*`
//! variables); `cargo test --test integration` alone fails fast with that advice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod apiserver;
mod authn;
mod authz;
mod charm;
mod manifests;
mod plugin;
mod service;
