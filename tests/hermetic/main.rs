//! The hermetic tier: no Keystone, no network beyond 127.0.0.1, no environment from tests/run.
//! `cargo test --test hermetic` runs it in seconds on any machine.
//!
//! * `fake`: an in-process fake Keystone (warp on 127.0.0.1:0), scripted per request: status,
//!   headers (`X-Subject-Token`), body, delay or hang; it records what it was sent.
//! * `client`: the public `KeystoneClient` against it: 5xx vs 401/404, timeouts, the service
//!   identity's token refused and renewed, paged groups and foreign `next` links, malformed
//!   and oversized answers.
//! * `authn`: TokenReviews through the service's routes and authenticator: error answers not
//!   cached, refusals cached, stale serving, single flight, the subject never the caller.
//! * `routes`: `warp::test` for routes, methods, body limits and `Status` bodies, plus the real
//!   accept loop (`webhook::serve`, plain HTTP) for chunked bodies and `?timeout=30s`.
//! * `connections`: 10,000 concurrent keep-alive connections held by the real binary, each
//!   answering TokenReviews, its memory growth bounded; a connection over `[server]
//!   max_connections` answered HTTP 503 (`Retry-After`, `Connection: close`, a `Status`).
//! * `fail_closed`: proptest properties over tokens, Keystone faults and configurations (cache,
//!   stale serving, application-credential tokens), and over random policies and identities
//!   imitating Keystone's: never `authenticated: true` unless the fake validated that token as
//!   its real user, never `allowed: true` for an identity this service did not authenticate.
//! * `faults`: a review's whole Keystone round bounded by `keystone.timeout`; `/readyz` false
//!   at the first failure after an answer, and true again once Keystone answers.
//! * `bearer`: application-credential bearer tokens (`kkac1_...`): off by default with no
//!   Keystone call, exchanged with `POST /v3/auth/tokens`, cached, single flight over 1,000
//!   concurrent reviews, failed secrets throttled per credential id, secrets never in answers.
//! * `bad_input`: malformed, truncated, 10,000 levels deep, huge, wrong-type and wrong-version
//!   review bodies (a 4xx `Status`, nothing read past the limit), and odd Keystone answers
//!   (wrong types, missing fields, 100 MB, a slow drip: uncached errors within the timeout).
//! * `binary`: the real `k8s-keystone-auth` pointed at the fake with `[keystone] url`.
//! * `tls`: what the project's HTTPS clients trust (kk_core::tls) against a tokio-rustls server:
//!   a CA file's chain, or exactly a pinned self-signed certificate, valid and for the host; the
//!   platform's roots without one; and the real `kubectl-keystone-auth --cacert` against the
//!   fake behind a self-signed certificate.
//!
//! The contract with the real Keystone stays in tests/integration (run by tests/run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../bins.rs"]
mod bins;
mod fake;
mod support;

mod authn;
mod bad_input;
mod bearer;
mod binary;
mod client;
mod connections;
mod fail_closed;
mod faults;
mod routes;
mod tls;
