//! Routes: paths, methods and the body limit, composed with warp; the work is in [`handlers`].
//! [`Front`] is what each connection serves: the three review routes (nearly every request)
//! straight to their handler, everything else through warp's [`routes`].
//!
//! | route | answer |
//! |---|---|
//! | `POST /webhook` | TokenReview or SubjectAccessReview, by `kind` (the Go reference's one route) |
//! | `POST /authenticate` | TokenReview only |
//! | `POST /authorize` | SubjectAccessReview only |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /healthz/sync` | the namespace sync's health (JSON); 503 while it fails |
//! | `GET /healthz/configmaps` | the policy and sync ConfigMap watches (JSON); 503 while one is broken or its ConfigMap is not in force |
//! | `GET /readyz` | 200 when Keystone answered recently or answers now, else 503 |
//! | `GET /metrics` | Prometheus text |

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::State;
use super::handlers::{self, Expect, status_reply};

/// Largest request body accepted (1 MiB); larger ones get 413.
pub const MAX_BODY: u64 = 1024 * 1024;
/// Time allowed to receive a whole body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct TooLarge;
impl warp::reject::Reject for TooLarge {}

#[derive(Debug)]
struct BodyTimeout;
impl warp::reject::Reject for BodyTimeout {}

#[derive(Debug)]
struct BodyError(String);
impl warp::reject::Reject for BodyError {}

/// The body, at most [`MAX_BODY`] bytes, with or without a Content-Length.
fn limited_body() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(|len: Option<u64>| async move {
            match len {
                Some(n) if n > MAX_BODY => Err(warp::reject::custom(TooLarge)),
                _ => Ok(()),
            }
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(collect_body)
}

async fn collect_body<S, B, E>(stream: S) -> Result<Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, E>>,
    B: Buf,
    E: std::fmt::Display,
{
    let collect = async move {
        let mut stream = std::pin::pin!(stream);
        let mut body = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let mut chunk = chunk.map_err(|e| warp::reject::custom(BodyError(e.to_string())))?;
            if body.len() as u64 + chunk.remaining() as u64 > MAX_BODY {
                return Err(warp::reject::custom(TooLarge));
            }
            while chunk.has_remaining() {
                let part = chunk.chunk();
                let n = part.len();
                body.extend_from_slice(part);
                chunk.advance(n);
            }
        }
        Ok(body.freeze())
    };
    // A small body has usually arrived with the headers: then no timer is set up.
    let mut collect = std::pin::pin!(collect);
    if let Some(done) = (&mut collect).now_or_never() {
        return done;
    }
    match tokio::time::timeout(BODY_TIMEOUT, collect).await {
        Ok(r) => r,
        Err(_) => Err(warp::reject::custom(BodyTimeout)),
    }
}

/// The HTTP service of a connection: `POST /webhook`, `/authenticate` and `/authorize` go
/// straight to [`handlers::review`], without warp's filter chain (a cached review is a few
/// microseconds: the chain was a tenth of it); every other request, and other spellings of
/// those paths (`/webhook/`), go through `routes` (warp's [`routes`]). Both use the same body
/// limit, timeout, rejection answers and handlers.
#[derive(Clone)]
pub struct Front<R> {
    state: Arc<State>,
    routes: R,
}

impl<R> Front<R> {
    /// `routes` is `warp::service(routes(state))`.
    pub fn new(state: Arc<State>, routes: R) -> Self {
        Self { state, routes }
    }
}

type Answer = std::pin::Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<R, B> hyper::service::Service<warp::http::Request<B>> for Front<R>
where
    R: tower_service::Service<warp::http::Request<B>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    R::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    /// Takes `&self` (hyper's service trait): a review clones only the state's `Arc`, where a
    /// tower service would be cloned whole for each request (warp's filter tree and the
    /// `Arc`s it holds).
    fn call(&self, req: warp::http::Request<B>) -> Answer {
        let expect = match (req.method(), req.uri().path()) {
            (&warp::http::Method::POST, "/webhook") => Expect::Any,
            (&warp::http::Method::POST, "/authenticate") => Expect::TokenReview,
            (&warp::http::Method::POST, "/authorize") => Expect::SubjectAccessReview,
            _ => {
                let mut routes = self.routes.clone();
                return Box::pin(async move { routes.call(req).await });
            }
        };
        let state = self.state.clone();
        Box::pin(async move {
            let length = req
                .headers()
                .get(warp::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if length.is_some_and(|n| n > MAX_BODY) {
                return handle_rejection(warp::reject::custom(TooLarge), state).await;
            }
            let stream = http_body_util::BodyDataStream::new(req.into_body());
            match collect_body(stream).await {
                Ok(body) => handlers::review(expect, body, state).await,
                Err(r) => handle_rejection(r, state).await,
            }
        })
    }
}

fn with_state(
    state: Arc<State>,
) -> impl Filter<Extract = (Arc<State>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

fn review_route(
    name: &'static str,
    expect: Expect,
    state: Arc<State>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path(name)
        .and(warp::path::end())
        .and(warp::post())
        .and(limited_body())
        .and(with_state(state))
        .and_then(move |body, state| handlers::review(expect, body, state))
}

/// Every route, with rejections turned into Kubernetes `Status` answers.
pub fn routes(state: Arc<State>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let get = |name: &'static str| warp::path(name).and(warp::path::end()).and(warp::get());
    let healthz = get("healthz").and_then(handlers::healthz);
    let healthz_sync = warp::path!("healthz" / "sync")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and_then(handlers::healthz_sync);
    let healthz_configmaps = warp::path!("healthz" / "configmaps")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and_then(handlers::healthz_configmaps);
    let readyz = get("readyz")
        .and(with_state(state.clone()))
        .and_then(handlers::readyz);
    let metrics = get("metrics")
        .and(with_state(state.clone()))
        .and_then(handlers::metrics);
    let rejections = state.clone();
    review_route("webhook", Expect::Any, state.clone())
        .or(review_route(
            "authenticate",
            Expect::TokenReview,
            state.clone(),
        ))
        .unify()
        .or(review_route(
            "authorize",
            Expect::SubjectAccessReview,
            state,
        ))
        .unify()
        .or(healthz)
        .unify()
        .or(healthz_sync)
        .unify()
        .or(healthz_configmaps)
        .unify()
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .recover(move |r| handle_rejection(r, rejections.clone()))
        .unify()
}

async fn handle_rejection(r: Rejection, state: Arc<State>) -> Result<Response, Infallible> {
    let (code, message, label) = if r.find::<TooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {MAX_BODY} bytes"),
            "too_large",
        )
    } else if r.find::<BodyTimeout>().is_some() {
        (
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time".to_string(),
            "body_timeout",
        )
    } else if let Some(BodyError(e)) = r.find::<BodyError>() {
        (
            StatusCode::BAD_REQUEST,
            format!("cannot read request body: {e}"),
            "body_error",
        )
    } else if r.is_not_found() {
        (StatusCode::NOT_FOUND, "not found: the routes are POST /webhook, /authenticate, /authorize and GET /healthz, /healthz/sync, /healthz/configmaps, /readyz, /metrics".to_string(), "not_found")
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: reviews are POSTed, health and metrics are read with GET"
                .to_string(),
            "method",
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            format!("bad request: {r:?}"),
            "other",
        )
    };
    state.metrics.inc(
        kk_core::metrics::Counter::HttpRequestsRejected,
        &[("reason", label)],
    );
    Ok(status_reply(code, &message))
}
