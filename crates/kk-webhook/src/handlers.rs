//! Request handlers: each turns a request body into a reply and never fails (errors become
//! HTTP answers here and only here).
//!
//! What the apiserver gets:
//! * a review it sent correctly: HTTP 200 with the verdict, in the request's `apiVersion`;
//! * a body that is not a review of the right kind and version: HTTP 400 with a `Status` that
//!   says what is wrong (the apiserver never sends such bodies; people with curl do).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tracing::{debug, info};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use super::State;
use kk_core::k8s::{
    self, SubjectAccessReviewRequest, SubjectAccessReviewResponse, SubjectAccessReviewStatus,
    TokenReviewAnswer, TokenReviewRequest, TypeMeta,
};
use kk_policy::{Attributes, Request};

/// Which review a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `/webhook`: either, by `kind`.
    Any,
    /// `/authenticate`.
    TokenReview,
    /// `/authorize`.
    SubjectAccessReview,
}

/// A Kubernetes `Status` error body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody<'a> {
    kind: &'static str,
    api_version: &'static str,
    status: &'static str,
    message: &'a str,
    reason: &'static str,
    code: u16,
}

/// An error reply with a Kubernetes `Status` body.
pub fn status_reply(code: StatusCode, message: &str) -> Response {
    let reason = match code {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::REQUEST_TIMEOUT => "Timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        _ => "InternalError",
    };
    let body = StatusBody {
        kind: "Status",
        api_version: "v1",
        status: "Failure",
        message,
        reason,
        code: code.as_u16(),
    };
    warp::reply::with_status(warp::reply::json(&body), code).into_response()
}

/// HTTP 200 with a JSON body.
fn json_reply(body: Vec<u8>) -> Response {
    let mut reply = Response::new(body.into());
    reply.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    reply
}

fn bad_request(state: &State, message: &str) -> Response {
    state.metrics.inc(
        kk_core::metrics::Counter::HttpRequestsRejected,
        &[("reason", "bad_request")],
    );
    debug!(%message, "bad request");
    status_reply(StatusCode::BAD_REQUEST, message)
}

/// Checks `kind` and `apiVersion` and says precisely what is wrong.
fn check_type(meta: &TypeMeta, expect: Expect) -> Result<&'static str, String> {
    let kind = match (meta.kind.as_str(), expect) {
        ("TokenReview", Expect::Any | Expect::TokenReview) => "TokenReview",
        ("SubjectAccessReview", Expect::Any | Expect::SubjectAccessReview) => "SubjectAccessReview",
        ("", _) => return Err("`kind` is missing".into()),
        (other, Expect::Any) => {
            return Err(format!(
                "unknown kind {other:?}: expected TokenReview or SubjectAccessReview"
            ));
        }
        (other, Expect::TokenReview) => {
            return Err(format!(
                "kind {other:?} sent to /authenticate, which takes TokenReview"
            ));
        }
        (other, Expect::SubjectAccessReview) => {
            return Err(format!(
                "kind {other:?} sent to /authorize, which takes SubjectAccessReview"
            ));
        }
    };
    let ok: &[&str] = if kind == "TokenReview" {
        &[k8s::AUTHENTICATION_V1, k8s::AUTHENTICATION_V1BETA1]
    } else {
        &[k8s::AUTHORIZATION_V1, k8s::AUTHORIZATION_V1BETA1]
    };
    if meta.api_version.is_empty() {
        return Err("`apiVersion` is missing".into());
    }
    if !ok.contains(&meta.api_version.as_str()) {
        return Err(format!(
            "unknown apiVersion {:?} for {kind}: expected {} or {}",
            meta.api_version, ok[0], ok[1]
        ));
    }
    Ok(kind)
}

/// A review body as the handlers decode it (see [`decode`]).
#[derive(Debug)]
pub enum Review {
    /// A TokenReview of a known version.
    TokenReview(TokenReviewRequest),
    /// A SubjectAccessReview of a known version, with resource or non-resource attributes.
    SubjectAccessReview(Box<SubjectAccessReviewRequest>),
}

const NO_ATTRIBUTES: &str = "invalid SubjectAccessReview: spec.resourceAttributes or spec.nonResourceAttributes is required";

/// Decodes a request body into the review `expect` allows: `Err` is the message of the HTTP 400
/// answer. Pure (the fuzz target `review` calls it as the handler does).
///
/// A correct review is read in one pass, as the kind its route (or, on `/webhook`, its body)
/// names; anything else goes the way that names exactly what is wrong ([`decode_checked`]:
/// `apiVersion` and `kind` first, then the whole review). Both give the same result, which a
/// test checks.
pub fn decode(expect: Expect, body: &[u8]) -> Result<Review, String> {
    if is_object(body)
        && let Some(review) = decode_one_pass(expect, body)
    {
        return Ok(review);
    }
    decode_checked(expect, body)
}

/// serde reads a struct from a JSON array too; a review is always an object.
fn is_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// A review of the expected kind and a known version in one pass, or `None`.
fn decode_one_pass(expect: Expect, body: &[u8]) -> Option<Review> {
    let sar = match expect {
        Expect::TokenReview => false,
        Expect::SubjectAccessReview => true,
        Expect::Any => {
            let kind: &[u8] = b"\"SubjectAccessReview\"";
            body.windows(kind.len()).any(|w| w == kind)
        }
    };
    if sar {
        let req: SubjectAccessReviewRequest = serde_json::from_slice(body).ok()?;
        if check_type(&req.type_meta, expect).ok()? != "SubjectAccessReview" {
            return None;
        }
        policy_request(&req.spec)?;
        Some(Review::SubjectAccessReview(Box::new(req)))
    } else {
        let req: TokenReviewRequest = serde_json::from_slice(body).ok()?;
        if check_type(&req.type_meta, expect).ok()? != "TokenReview" {
            return None;
        }
        Some(Review::TokenReview(req))
    }
}

/// [`decode`] in two passes, with the precise error: `apiVersion` and `kind`, then the review.
fn decode_checked(expect: Expect, body: &[u8]) -> Result<Review, String> {
    if !is_object(body) {
        return Err("request body is not a JSON object".into());
    }
    let meta: TypeMeta = serde_json::from_slice(body)
        .map_err(|e| format!("request body is not a JSON object: {e}"))?;
    if check_type(&meta, expect)? == "TokenReview" {
        serde_json::from_slice(body)
            .map(Review::TokenReview)
            .map_err(|e| format!("invalid TokenReview: {e}"))
    } else {
        let req: SubjectAccessReviewRequest = serde_json::from_slice(body)
            .map_err(|e| format!("invalid SubjectAccessReview: {e}"))?;
        if policy_request(&req.spec).is_none() {
            return Err(NO_ATTRIBUTES.into());
        }
        Ok(Review::SubjectAccessReview(Box::new(req)))
    }
}

/// What the policy is asked about a SubjectAccessReview; `None` without resource and
/// non-resource attributes (resource attributes win when both are sent).
pub fn policy_request(spec: &k8s::SubjectAccessReviewSpec) -> Option<Request<'_>> {
    let attributes = match (&spec.resource_attributes, &spec.non_resource_attributes) {
        (Some(r), _) => Attributes::Resource {
            verb: &r.verb,
            namespace: &r.namespace,
            group: &r.group,
            version: &r.version,
            resource: &r.resource,
            subresource: &r.subresource,
            name: &r.name,
        },
        (None, Some(n)) => Attributes::NonResource {
            verb: &n.verb,
            path: &n.path,
        },
        (None, None) => return None,
    };
    Some(Request {
        user: &spec.user,
        uid: &spec.uid,
        groups: spec.all_groups(),
        extra: spec.extra.as_ref(),
        attributes,
    })
}

/// `POST /webhook`, `/authenticate`, `/authorize`.
pub async fn review(
    expect: Expect,
    body: Bytes,
    state: Arc<State>,
) -> Result<Response, std::convert::Infallible> {
    let started = Instant::now();
    let reply = match decode(expect, &body) {
        Ok(Review::TokenReview(req)) => token_review(req, &state, started).await,
        Ok(Review::SubjectAccessReview(req)) => subject_access_review(*req, &state, started),
        Err(message) => bad_request(&state, &message),
    };
    Ok(reply)
}

async fn token_review(req: TokenReviewRequest, state: &State, started: Instant) -> Response {
    let review = state.authenticator.review(&req.spec.token).await;
    if let (Some(sync), Some(known), Some(user)) = (&state.sync, &review.identity, &review.user) {
        let id = &known.identity;
        // Never waits (a few map operations under a lock) and never fails.
        sync.observe(kk_sync::Observation {
            project: kk_sync::plan::Project {
                id: id.project_id.clone(),
                name: id.project_name.clone(),
                domain_id: id.project_domain_id.clone(),
            },
            user_id: id.user_id.clone(),
            user_name: user.username().to_string(),
            roles: id.roles.clone(),
            complete: id.roles_complete,
        });
    }
    let elapsed = started.elapsed();
    state.metrics.inc(
        kk_core::metrics::Counter::Reviews,
        &[("kind", "TokenReview"), ("result", review.result)],
    );
    state.metrics.observe_review("TokenReview", elapsed);
    let user = review.user.as_ref().map(|u| u.username()).unwrap_or("");
    info!(
        kind = "TokenReview",
        api_version = %req.type_meta.api_version,
        user,
        result = review.result,
        reason = %review.reason,
        latency_ms = ms(elapsed),
        cache = review.source,
        "review"
    );
    let answer = TokenReviewAnswer {
        api_version: &req.type_meta.api_version,
        user: review.user.as_deref(),
        error: review.error.as_deref(),
    };
    json_reply(answer.to_json())
}

fn subject_access_review(
    req: SubjectAccessReviewRequest,
    state: &State,
    started: Instant,
) -> Response {
    let spec = &req.spec;
    let policy = state.policy();
    let Some(request) = policy_request(spec) else {
        // decode() refuses such a review already.
        return bad_request(state, NO_ATTRIBUTES);
    };
    let decision = policy.evaluate(&request);
    let elapsed = started.elapsed();
    let result = if decision.allowed {
        "allowed"
    } else if decision.denied {
        "denied"
    } else {
        "no_opinion"
    };
    state.metrics.inc(
        kk_core::metrics::Counter::Reviews,
        &[("kind", "SubjectAccessReview"), ("result", result)],
    );
    state.metrics.observe_review("SubjectAccessReview", elapsed);
    // Formatted only when the log line is emitted (most SARs are logged at debug level).
    let what = RequestLine(spec);
    // Requests of users that are not from Keystone (system components) are the bulk of the
    // traffic and never match; keep them out of the info log.
    if spec
        .extra
        .as_ref()
        .is_some_and(kk_policy::is_keystone_identity)
    {
        info!(kind = "SubjectAccessReview", user = %spec.user, request = %what, result, reason = %decision.reason, latency_ms = ms(elapsed), "review");
    } else {
        debug!(kind = "SubjectAccessReview", user = %spec.user, request = %what, result, reason = %decision.reason, latency_ms = ms(elapsed), "review");
    }
    let answer = SubjectAccessReviewResponse {
        type_meta: req.type_meta,
        status: SubjectAccessReviewStatus {
            allowed: decision.allowed,
            denied: decision.denied,
            reason: decision.reason,
            evaluation_error: String::new(),
        },
    };
    match serde_json::to_vec(&answer) {
        Ok(body) => json_reply(body),
        Err(e) => status_reply(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `verb namespace/resource[/subresource]` or `verb path`, for the decision log.
struct RequestLine<'a>(&'a k8s::SubjectAccessReviewSpec);

impl std::fmt::Display for RequestLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.0.resource_attributes, &self.0.non_resource_attributes) {
            (Some(r), _) if r.subresource.is_empty() => {
                write!(f, "{} {}/{}", r.verb, r.namespace, r.resource)
            }
            (Some(r), _) => write!(
                f,
                "{} {}/{}/{}",
                r.verb, r.namespace, r.resource, r.subresource
            ),
            (None, Some(n)) => write!(f, "{} {}", n.verb, n.path),
            (None, None) => Ok(()),
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `GET /healthz`: the process serves requests.
pub async fn healthz() -> Result<Response, std::convert::Infallible> {
    Ok(warp::reply::with_header("ok\n", "content-type", "text/plain").into_response())
}

/// `GET /healthz/sync`: the namespace sync's health, as JSON: `{"sync": "off"}` (also while a
/// sync config from a ConfigMap syncs nothing), or
/// `{"sync": "ok" | "failing", ...}` with the last error, the last success and the last full
/// resync; HTTP 503 while failing. Authentication (and `/healthz`, `/readyz`) never depend on
/// it.
pub async fn healthz_sync(state: Arc<State>) -> Result<Response, std::convert::Infallible> {
    let Some(sync) = state.sync.as_ref().filter(|s| s.enabled()) else {
        return Ok(warp::reply::json(&serde_json::json!({"sync": "off"})).into_response());
    };
    let health = sync.health();
    let mut body = serde_json::to_value(&health).unwrap_or_default();
    if let Some(o) = body.as_object_mut() {
        o.insert(
            "sync".into(),
            if health.failing { "failing" } else { "ok" }.into(),
        );
    }
    let code = if health.failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), code).into_response())
}

/// `GET /healthz/configmaps`: the policy and sync ConfigMap watches, as JSON:
/// `{"configmaps": "off"}`, or `{"configmaps": "ok" | "failing", "watches": [...]}` with, per
/// ConfigMap, the watch's error while it is broken, why the ConfigMap as stored is not in force
/// (rejected, deleted) and the version in force; HTTP 503 while one is failing. Authentication
/// (and `/healthz`, `/readyz`) never depend on it: the last good content stays in force.
pub async fn healthz_configmaps(state: Arc<State>) -> Result<Response, std::convert::Infallible> {
    if state.configmaps.is_empty() {
        return Ok(warp::reply::json(&serde_json::json!({"configmaps": "off"})).into_response());
    }
    let watches: Vec<_> = state.configmaps.iter().map(|w| w.health()).collect();
    let failing = watches.iter().any(|w| w.failing);
    let body = serde_json::json!({
        "configmaps": if failing { "failing" } else { "ok" },
        "watches": watches,
    });
    let code = if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), code).into_response())
}

/// How recent a Keystone answer must be for `/readyz` to skip its own probe.
const READY_WINDOW: Duration = Duration::from_secs(30);

/// `GET /readyz`: Keystone answered recently, or answers a probe now.
pub async fn readyz(state: Arc<State>) -> Result<Response, std::convert::Infallible> {
    let keystone = state.authenticator.keystone();
    let recent = keystone
        .last_answer()
        .is_some_and(|t| t.elapsed() < READY_WINDOW);
    if recent {
        return Ok(warp::reply::with_header("ok\n", "content-type", "text/plain").into_response());
    }
    match keystone.probe().await {
        Ok(()) => {
            Ok(warp::reply::with_header("ok\n", "content-type", "text/plain").into_response())
        }
        Err(e) => {
            let msg = format!("not ready: {}\n", kk_core::error_chain(&e));
            Ok(warp::reply::with_status(
                warp::reply::with_header(msg, "content-type", "text/plain"),
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .into_response())
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: Arc<State>) -> Result<Response, std::convert::Infallible> {
    Ok(warp::reply::with_header(
        state.metrics.render(),
        "content-type",
        "text/plain; version=0.0.4",
    )
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass decode answers exactly as the checked one, for the fuzz seeds and their
    /// variations, on every route.
    #[test]
    fn one_pass_decode_equals_the_checked_decode() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/review");
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let body = std::fs::read(entry.unwrap().path()).unwrap();
            let text = String::from_utf8(body.clone()).unwrap();
            bodies.push(body);
            // Kinds swapped, versions crossed, the kind moved after the spec, fields dropped.
            for (from, to) in [
                ("SubjectAccessReview", "TokenReview"),
                ("TokenReview", "SubjectAccessReview"),
                ("authorization.k8s.io", "authentication.k8s.io"),
                ("authentication.k8s.io", "authorization.k8s.io"),
                ("\"token\"", "\"tokens\""),
                ("\"resourceAttributes\"", "\"other\""),
                ("\"kind\"", "\"kinds\""),
                ("v1beta1", "v2"),
            ] {
                bodies.push(text.replace(from, to).into_bytes());
            }
            if let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(&text) {
                if let Some(kind) = map.remove("kind") {
                    map.insert("kind".into(), kind);
                }
                bodies.push(serde_json::to_vec(&map).unwrap());
            }
        }
        assert!(bodies.len() > 50, "{}", bodies.len());
        let mut fast = 0;
        for body in &bodies {
            for expect in [
                Expect::Any,
                Expect::TokenReview,
                Expect::SubjectAccessReview,
            ] {
                let one = format!("{:?}", decode(expect, body));
                let checked = format!("{:?}", decode_checked(expect, body));
                assert_eq!(one, checked, "{expect:?} {}", String::from_utf8_lossy(body));
                fast += usize::from(decode_one_pass(expect, body).is_some());
            }
        }
        // The one pass does read the correct reviews.
        assert!(fast >= 10, "{fast}");
    }

    fn meta(v: &str, k: &str) -> TypeMeta {
        TypeMeta {
            api_version: v.into(),
            kind: k.into(),
        }
    }

    #[test]
    fn kinds_and_versions_are_checked_in_pairs() {
        assert_eq!(
            check_type(&meta(k8s::AUTHENTICATION_V1, "TokenReview"), Expect::Any),
            Ok("TokenReview")
        );
        assert_eq!(
            check_type(
                &meta(k8s::AUTHENTICATION_V1BETA1, "TokenReview"),
                Expect::TokenReview
            ),
            Ok("TokenReview")
        );
        assert_eq!(
            check_type(
                &meta(k8s::AUTHORIZATION_V1, "SubjectAccessReview"),
                Expect::Any
            ),
            Ok("SubjectAccessReview")
        );
        let e = check_type(&meta(k8s::AUTHORIZATION_V1, "TokenReview"), Expect::Any).unwrap_err();
        assert!(
            e.contains("unknown apiVersion \"authorization.k8s.io/v1\" for TokenReview"),
            "{e}"
        );
        let e = check_type(
            &meta("authentication.k8s.io/v2", "TokenReview"),
            Expect::Any,
        )
        .unwrap_err();
        assert!(
            e.contains("expected authentication.k8s.io/v1 or authentication.k8s.io/v1beta1"),
            "{e}"
        );
        assert!(
            check_type(
                &meta(k8s::AUTHENTICATION_V1, "TokenReview"),
                Expect::SubjectAccessReview
            )
            .unwrap_err()
            .contains("/authorize")
        );
        assert!(
            check_type(&meta(k8s::AUTHENTICATION_V1, "Pod"), Expect::Any)
                .unwrap_err()
                .contains("unknown kind \"Pod\"")
        );
        assert_eq!(
            check_type(&meta("", ""), Expect::Any).unwrap_err(),
            "`kind` is missing"
        );
    }

    #[test]
    fn request_lines_name_verb_and_target() {
        let mut spec = k8s::SubjectAccessReviewSpec::default();
        assert_eq!(RequestLine(&spec).to_string(), "");
        spec.non_resource_attributes = Some(k8s::NonResourceAttributes {
            path: "/api".into(),
            verb: "get".into(),
        });
        assert_eq!(RequestLine(&spec).to_string(), "get /api");
        spec.resource_attributes = Some(k8s::ResourceAttributes {
            verb: "create".into(),
            namespace: "default".into(),
            resource: "pods".into(),
            ..Default::default()
        });
        assert_eq!(RequestLine(&spec).to_string(), "create default/pods");
        if let Some(r) = spec.resource_attributes.as_mut() {
            r.subresource = "exec".into();
        }
        assert_eq!(RequestLine(&spec).to_string(), "create default/pods/exec");
    }

    /// A state with a policy that grants everything to every Keystone user; Keystone is never
    /// asked by a SubjectAccessReview.
    fn state_allowing_everything(dir: &std::path::Path) -> Arc<State> {
        let policy = dir.join("policy.json");
        std::fs::write(
            &policy,
            r#"[{"resource_permissions": {"*/*": ["*"]}, "nonresource_permissions": {"/healthz": ["get"]}}]"#,
        )
        .unwrap();
        let config = crate::config::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            server: Default::default(),
            tls: None,
            keystone: crate::config::KeystoneConfig {
                url: "http://127.0.0.1:1/v3".parse().unwrap(),
                ca_file: None,
                timeout: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(1),
                service_type: "k8s".into(),
                user_agent: "test".into(),
                service_auth: None,
            },
            username_format: Default::default(),
            max_token_length: 4096,
            cache: crate::config::CacheConfig {
                max_entries: 10,
                ttl: Duration::from_secs(60),
                negative_ttl: Duration::from_secs(10),
                serve_stale: false,
            },
            appcred_tokens: Default::default(),
            policy_file: Some(policy),
            policy_configmap: None,
            policy_reload_interval: Duration::from_secs(2),
            policy_strict: false,
            sync_strict: false,
            sync_config_file: None,
            sync_configmap: None,
            sync: Default::default(),
            kubernetes: Default::default(),
            log_level: "info".into(),
            warnings: vec![],
        };
        let metrics = Arc::new(kk_core::metrics::Metrics::default());
        Arc::new(State::build(&config, metrics).unwrap())
    }

    async fn authorize(
        state: &Arc<State>,
        extra: serde_json::Value,
        attributes: serde_json::Value,
    ) -> serde_json::Value {
        let mut spec =
            serde_json::json!({"user": "alice", "uid": "u1", "groups": ["p1"], "extra": extra});
        for (k, v) in attributes.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let body = serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
        let reply = warp::test::request()
            .method("POST")
            .path("/authorize")
            .json(&body)
            .reply(&super::super::filters::routes(state.clone()))
            .await;
        assert_eq!(reply.status(), 200);
        serde_json::from_slice(reply.body()).unwrap()
    }

    #[tokio::test]
    async fn configmap_health_is_off_without_a_configmap() {
        let dir = tempfile::tempdir().unwrap();
        let res = warp::test::request()
            .path("/healthz/configmaps")
            .reply(&super::super::filters::routes(state_allowing_everything(
                dir.path(),
            )))
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(res.body()).unwrap(),
            serde_json::json!({"configmaps": "off"})
        );
    }

    #[tokio::test]
    async fn sync_health_is_off_without_a_sync_config() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_allowing_everything(dir.path());
        let reply = warp::test::request()
            .path("/healthz/sync")
            .reply(&super::super::filters::routes(state.clone()))
            .await;
        assert_eq!(reply.status(), 200);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(reply.body()).unwrap(),
            serde_json::json!({"sync": "off"})
        );
    }

    #[tokio::test]
    async fn access_rules_outside_are_an_explicit_deny_on_the_wire() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_allowing_everything(dir.path());
        let restricted = serde_json::json!({
            k8s::extra_keys::PROJECT_ID: ["p1"],
            k8s::extra_keys::ACCESS_RULES: ["GET /api/v1/namespaces/*/pods"],
        });
        let pods = serde_json::json!({"resourceAttributes": {"verb": "list", "namespace": "x", "version": "v1", "resource": "pods"}});
        let deploy = serde_json::json!({"resourceAttributes": {"verb": "create", "namespace": "x", "group": "apps", "version": "v1", "resource": "deployments"}});
        let log = serde_json::json!({"resourceAttributes": {"verb": "get", "namespace": "x", "version": "v1", "resource": "pods", "subresource": "log", "name": "web-0"}});
        let ok = authorize(&state, restricted.clone(), pods.clone()).await;
        assert_eq!(ok["status"]["allowed"], true, "{ok}");
        assert!(ok["status"].get("denied").is_none(), "{ok}");
        let no = authorize(&state, restricted.clone(), deploy.clone()).await;
        assert_eq!(
            no["status"],
            serde_json::json!({"allowed": false, "denied": true,
                "reason": "POST /apis/apps/v1/namespaces/x/deployments: the application credential's access rules do not allow it"}),
        );
        let no = authorize(&state, restricted.clone(), log).await;
        assert_eq!(no["status"]["denied"], true, "{no}");
        assert!(
            no["status"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("GET /api/v1/namespaces/x/pods/web-0/log: "),
            "{no}"
        );
        // Without the key the same user is not restricted; without a Keystone identity the
        // key changes nothing.
        let free = authorize(
            &state,
            serde_json::json!({k8s::extra_keys::PROJECT_ID: ["p1"]}),
            deploy.clone(),
        )
        .await;
        assert_eq!(free["status"]["allowed"], true, "{free}");
        let sa = authorize(
            &state,
            serde_json::json!({k8s::extra_keys::CREDENTIAL_ID: ["JTI=1"], k8s::extra_keys::ACCESS_RULES: ["GET /x"]}),
            deploy,
        )
        .await;
        assert_eq!(
            sa["status"],
            serde_json::json!({"allowed": false, "reason": "not a Keystone identity"})
        );
        let text = state.metrics.render();
        assert!(
            text.contains(
                r#"k8s_keystone_auth_reviews_total{kind="SubjectAccessReview",result="denied"} 2"#
            ),
            "{text}"
        );
    }
}
