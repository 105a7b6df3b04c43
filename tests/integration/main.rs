//! Integration tests: the real `k8s-keystone-auth` binary against the real Keystone that
//! `tests/run` starts (see tests/keystone/).
//!
//! * `apiserver`, `plugin` and `charm` go through **real kube-apiservers** (tests/k8s/): the
//!   test bed's two (webhook API v1 and v1beta1) or one of a test's own, with real `kubectl`
//!   and the real `kubectl-keystone-auth`; `helm` also runs real Helm as Keystone tenants with
//!   the RBAC bundle of deploy/rbac/.
//! * `sync` (the namespace sync) runs kube-apiservers of its own whose authentication webhook is
//!   the service under test, with the sync's rights from deploy/kubernetes.
//! * `configmap` (the policy and sync config from ConfigMaps) reads and watches ConfigMaps of a
//!   real kube-apiserver with a ServiceAccount holding the shipped Role's rights; its policy
//!   decides `kubectl auth can-i` through an apiserver whose webhooks are the service.
//! * `bearer`: application-credential bearer tokens (`kkac1_...`) with real kubectl (a
//!   kubeconfig with only `token:`), curl and the Python `kubernetes` client through an apiserver
//!   of its own whose webhook has them enabled; refused by the bed's service, where they are off.
//! * `authn`, `authz` and `service` POST TokenReview and SubjectAccessReview bodies themselves,
//!   byte for byte as kube-apiserver does, for what a real apiserver cannot be made to send
//!   (malformed bodies, wrong versions, huge requests, a Keystone that hangs).
//!
//! * `faults`: Keystone stopped, hanging, slow and restarted behind a fault-injecting TCP proxy
//!   while concurrent reviews run: every review within `keystone.timeout` + a margin, `/readyz`
//!   false and back, cached tokens as the cache is configured, every answer right afterwards.
//!
//! Run them with `tests/run` (which starts Keystone and the test bed and exports the `KS_*`,
//! `BED_*` and `K8S_*` variables); `cargo test --test integration` alone fails fast with that
//! advice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../bins.rs"]
mod bins;
mod support;

mod apiserver;
mod authn;
mod authz;
mod bearer;
mod charm;
mod configmap;
mod differential;
mod faults;
mod helm;
mod manifests;
mod plugin;
mod sandbox;
mod service;
mod sync;
