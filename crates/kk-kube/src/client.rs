//! [`KubeClient`]: get, create, list (with a label selector), update and delete of the kinds in
//! [`crate::types`], over HTTPS with reqwest.
//!
//! ```text
//! GET    /api/v1/namespaces/{name}
//! POST   /api/v1/namespaces
//! PUT    /api/v1/namespaces/{name}                                   (metadata.resourceVersion sent)
//! GET    /apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings?labelSelector=..&limit=500
//! DELETE /apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/{name}   {preconditions}
//! GET    /api/v1/namespaces/{ns}/configmaps?fieldSelector=metadata.name%3D{name}        (list_named)
//! GET    /api/v1/namespaces/{ns}/configmaps?watch=true&fieldSelector=..&resourceVersion=..  (watch_named)
//! GET    /version
//! ```
//!
//! Every request is bounded (`timeout`, `connect_timeout`; a watch: its `timeoutSeconds` plus
//! [`WATCH_SLACK`]), answers are read up to [`MAX_BODY`] (a watch event up to
//! [`crate::watch::MAX_LINE`]), lists follow `continue` for at most [`MAX_PAGES`] pages, and errors are
//! classified ([`KubeError`]). The bearer token is sent in the `Authorization` header and
//! nowhere else: it is in no URL, no error and no log line.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::{ClusterConfig, Credential, read_token_file};
use crate::error::KubeError;
use crate::types::{DeleteOptions, List, Resource, Status, Version};
use kk_core::secret::Secret;

/// Largest answer read.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// Most pages followed by one list.
pub const MAX_PAGES: usize = 100;
/// Items asked for per page.
const PAGE_SIZE: u32 = 500;
/// How often a token file is checked for a new token at most.
const TOKEN_RECHECK: Duration = Duration::from_secs(1);
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// How much longer than its `timeoutSeconds` a watch request may last before it is cut.
pub const WATCH_SLACK: Duration = Duration::from_secs(30);

/// Limits and identification of the client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Limit for a whole request.
    pub timeout: Duration,
    /// Limit for connecting.
    pub connect_timeout: Duration,
    /// `User-Agent`.
    pub user_agent: String,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            user_agent: format!("k8s-keystone-auth/{}", kk_core::VERSION),
        }
    }
}

/// A Kubernetes API client. Cheap to clone.
#[derive(Clone)]
pub struct KubeClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    server: Url,
    origin: String,
    timeout: Duration,
    token: TokenSource,
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClient")
            .field("server", &self.inner.server.as_str())
            .field("origin", &self.inner.origin)
            .finish()
    }
}

enum TokenSource {
    None,
    Fixed(Secret),
    File {
        path: PathBuf,
        cached: Mutex<Option<CachedToken>>,
    },
}

struct CachedToken {
    token: Secret,
    modified: Option<SystemTime>,
    len: u64,
    checked: Instant,
}

impl TokenSource {
    /// The token to send now: a token file is re-read when its modification time or size
    /// changed (checked at most every [`TOKEN_RECHECK`]).
    fn current(&self) -> Result<Option<Secret>, KubeError> {
        match self {
            TokenSource::None => Ok(None),
            TokenSource::Fixed(t) => Ok(Some(t.clone())),
            TokenSource::File { path, cached } => {
                let mut guard = cached.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(c) = guard.as_mut() {
                    if c.checked.elapsed() < TOKEN_RECHECK {
                        return Ok(Some(c.token.clone()));
                    }
                    if let Ok(meta) = std::fs::metadata(path)
                        && meta.modified().ok() == c.modified
                        && meta.len() == c.len
                    {
                        c.checked = Instant::now();
                        return Ok(Some(c.token.clone()));
                    }
                }
                let meta = std::fs::metadata(path).ok();
                let token = read_token_file(path).map_err(|e| {
                    KubeError::Credential(format!("token file {}: {e}", path.display()))
                })?;
                if guard.is_some() {
                    tracing::info!(file = %path.display(), "Kubernetes token file changed: using the new token");
                }
                *guard = Some(CachedToken {
                    token: token.clone(),
                    modified: meta.as_ref().and_then(|m| m.modified().ok()),
                    len: meta.map(|m| m.len()).unwrap_or(0),
                    checked: Instant::now(),
                });
                Ok(Some(token))
            }
        }
    }

    /// Forgets a cached file token (after a 401: the file may hold a newer one).
    fn forget(&self) {
        if let TokenSource::File { cached, .. } = self {
            *cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

impl KubeClient {
    /// A client for `config`.
    pub fn new(config: ClusterConfig, settings: &ClientSettings) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let tls = kk_core::tls::client_config(config.ca.as_deref(), config.identity).with_context(
            || {
                format!(
                    "cannot set up TLS for the Kubernetes API ({})",
                    config.origin
                )
            },
        )?;
        let http = kk_core::tls::http_client(tls)
            .user_agent(settings.user_agent.clone())
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the Kubernetes HTTP client")?;
        let token = match config.credential {
            Credential::None => TokenSource::None,
            Credential::Token(t) => TokenSource::Fixed(t),
            Credential::TokenFile(path) => TokenSource::File {
                path,
                cached: Mutex::new(None),
            },
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                server: config.server,
                origin: config.origin,
                timeout: settings.timeout,
                token,
            }),
        })
    }

    /// The API server's URL.
    pub fn server(&self) -> &Url {
        &self.inner.server
    }

    /// Where the configuration came from (for messages).
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.inner.server.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Path segments of a collection (`name` None) or an object.
    fn segments<'a, R: Resource>(ns: Option<&'a str>, name: Option<&'a str>) -> Vec<&'a str> {
        let mut s: Vec<&str> = match R::API_VERSION.split_once('/') {
            None => vec!["api", R::API_VERSION],
            Some((group, version)) => vec!["apis", group, version],
        };
        if R::NAMESPACED
            && let Some(ns) = ns
        {
            s.extend(["namespaces", ns]);
        }
        s.push(R::PLURAL);
        s.extend(name);
        s
    }

    fn what<R: Resource>(verb: &str, ns: Option<&str>, name: Option<&str>) -> String {
        let kind = R::KIND.to_ascii_lowercase();
        match (ns.filter(|_| R::NAMESPACED), name) {
            (Some(ns), Some(n)) => format!("{verb} {kind} {ns}/{n}"),
            (Some(ns), None) => format!("{verb} {kind}s in {ns}"),
            (None, Some(n)) => format!("{verb} {kind} {n}"),
            (None, None) => format!("{verb} {kind}s"),
        }
    }

    /// Sends one request (the bearer token, a JSON body, `timeout` instead of the client's
    /// when given) and returns the answer if its status is a success; any other status is read
    /// (bounded) and classified.
    async fn start<B: Serialize>(
        &self,
        call: &str,
        method: Method,
        url: Url,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, KubeError> {
        let shown = kk_core::urls::redact_url(url.as_str());
        let mut req = self
            .inner
            .http
            .request(method, url)
            .header("Accept", "application/json");
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(token) = self.inner.token.current()? {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| {
                        KubeError::Credential("the token is not a valid header value".into())
                    })?;
            value.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let limit = timeout.unwrap_or(self.inner.timeout);
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(call, &shown, limit, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let buf = self.read_body(call, &shown, limit, resp).await?;
        if status == StatusCode::UNAUTHORIZED {
            self.inner.token.forget();
        }
        let (reason, message) = match serde_json::from_slice::<Status>(&buf) {
            Ok(s) => (s.reason, s.message),
            Err(_) => (String::new(), String::from_utf8_lossy(&buf).into_owned()),
        };
        let message: String = message.chars().take(300).collect();
        Err(KubeError::from_status(
            call.to_string(),
            status.as_u16(),
            reason,
            message,
            retry_after,
        ))
    }

    fn transport_error(
        &self,
        call: &str,
        shown: &str,
        timeout: Duration,
        e: reqwest::Error,
    ) -> KubeError {
        if e.is_timeout() {
            KubeError::Timeout {
                call: call.to_string(),
                url: shown.to_string(),
                timeout,
            }
        } else {
            KubeError::Unreachable {
                call: call.to_string(),
                url: shown.to_string(),
                source: e.without_url(),
            }
        }
    }

    /// The whole answer, at most [`MAX_BODY`] bytes.
    async fn read_body(
        &self,
        call: &str,
        shown: &str,
        timeout: Duration,
        mut resp: reqwest::Response,
    ) -> Result<Vec<u8>, KubeError> {
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.transport_error(call, shown, timeout, e))?
        {
            if buf.len() + chunk.len() > MAX_BODY {
                return Err(KubeError::Protocol {
                    call: call.to_string(),
                    detail: format!("answer larger than {MAX_BODY} bytes"),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    /// One request: the bearer token, a JSON body, the answer read (bounded) and classified.
    async fn send<B: Serialize>(
        &self,
        call: &str,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<Vec<u8>, KubeError> {
        let shown = kk_core::urls::redact_url(url.as_str());
        let resp = self.start(call, method, url, body, None).await?;
        self.read_body(call, &shown, self.inner.timeout, resp).await
    }

    fn decode<T: DeserializeOwned>(call: &str, body: &[u8]) -> Result<T, KubeError> {
        serde_json::from_slice(body).map_err(|e| KubeError::Protocol {
            call: call.to_string(),
            detail: e.to_string(),
        })
    }

    /// `GET /version`: whether the API answers, and its version.
    pub async fn version(&self) -> Result<Version, KubeError> {
        let call = "get version";
        let body = self
            .send::<()>(call, Method::GET, self.url(&["version"], &[]), None)
            .await?;
        Self::decode(call, &body)
    }

    /// One object; `Ok(None)` when it does not exist.
    pub async fn get<R: Resource>(
        &self,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<R>, KubeError> {
        let call = Self::what::<R>("get", ns, Some(name));
        let url = self.url(&Self::segments::<R>(ns, Some(name)), &[]);
        match self.send::<()>(&call, Method::GET, url, None).await {
            Ok(body) => Self::decode(&call, &body).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every object of the collection (in `ns` for namespaced kinds), optionally only those
    /// matching `label_selector` (`app.kubernetes.io/managed-by=k8s-keystone-auth`), every page.
    pub async fn list<R: Resource>(
        &self,
        ns: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<R>, KubeError> {
        let call = Self::what::<R>("list", ns, None);
        Ok(self.list_selected(call, ns, label_selector, None).await?.0)
    }

    /// The object named `name` as a list (`fieldSelector=metadata.name=<name>`, which RBAC
    /// authorizes against `resourceNames`), with the list's `resourceVersion` to watch from
    /// ([`crate::watch`]); `None` when it does not exist.
    pub async fn list_named<R: Resource>(
        &self,
        ns: Option<&str>,
        name: &str,
    ) -> Result<(Option<R>, String), KubeError> {
        let selector = format!("metadata.name={name}");
        let call = Self::what::<R>("list", ns, Some(name));
        let (items, rv) = self
            .list_selected::<R>(call.clone(), ns, None, Some(&selector))
            .await?;
        let rv = rv
            .filter(|v| !v.is_empty())
            .ok_or_else(|| KubeError::Protocol {
                call,
                detail: "the list has no metadata.resourceVersion".into(),
            })?;
        Ok((items.into_iter().find(|o| o.metadata().name == name), rv))
    }

    /// Every page of a list; the items and the last page's `resourceVersion`.
    async fn list_selected<R: Resource>(
        &self,
        call: String,
        ns: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<(Vec<R>, Option<String>), KubeError> {
        let limit = PAGE_SIZE.to_string();
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("limit", limit.as_str())];
            if let Some(sel) = label_selector {
                query.push(("labelSelector", sel));
            }
            if let Some(sel) = field_selector {
                query.push(("fieldSelector", sel));
            }
            if let Some(c) = next.as_deref() {
                query.push(("continue", c));
            }
            let url = self.url(&Self::segments::<R>(ns, None), &query);
            let body = self.send::<()>(&call, Method::GET, url, None).await?;
            let page: List<R> = Self::decode(&call, &body)?;
            items.extend(page.items);
            match page.metadata.continue_token.filter(|c| !c.is_empty()) {
                None => return Ok((items, page.metadata.resource_version)),
                Some(c) => next = Some(c),
            }
        }
        Err(KubeError::Protocol {
            call,
            detail: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// Opens a watch of the object named `name` from `resource_version`
    /// (`?watch=true&fieldSelector=metadata.name=<name>&resourceVersion=..&allowWatchBookmarks=true&timeoutSeconds=..`):
    /// the stream of its events, which the server ends after `timeout`. The request may last
    /// `timeout` plus [`WATCH_SLACK`], no longer. A 410 (`Expired`) means: list again.
    pub async fn watch_named<R: Resource>(
        &self,
        ns: Option<&str>,
        name: &str,
        resource_version: &str,
        timeout: Duration,
    ) -> Result<WatchStream, KubeError> {
        let call = Self::what::<R>("watch", ns, Some(name));
        let selector = format!("metadata.name={name}");
        let seconds = timeout.as_secs().max(1).to_string();
        let query = [
            ("watch", "true"),
            ("fieldSelector", selector.as_str()),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", seconds.as_str()),
        ];
        let url = self.url(&Self::segments::<R>(ns, None), &query);
        let shown = kk_core::urls::redact_url(url.as_str());
        let limit = Duration::from_secs(timeout.as_secs().max(1)) + WATCH_SLACK;
        let resp = self
            .start::<()>(&call, Method::GET, url, None, Some(limit))
            .await?;
        Ok(WatchStream {
            client: self.clone(),
            call,
            shown,
            limit,
            resp,
            lines: crate::watch::LineBuffer::new(crate::watch::MAX_LINE),
        })
    }

    /// Creates `obj` (in `ns` for namespaced kinds); the object as stored.
    pub async fn create<R: Resource>(&self, ns: Option<&str>, obj: &R) -> Result<R, KubeError> {
        let call = Self::what::<R>("create", ns, Some(&obj.metadata().name));
        let url = self.url(&Self::segments::<R>(ns, None), &[]);
        let body = self.send(&call, Method::POST, url, Some(obj)).await?;
        Self::decode(&call, &body)
    }

    /// Replaces `obj` (its `metadata.resourceVersion` makes a concurrent change a 409); the
    /// object as stored.
    pub async fn update<R: Resource>(&self, ns: Option<&str>, obj: &R) -> Result<R, KubeError> {
        let name = obj.metadata().name.as_str();
        let call = Self::what::<R>("update", ns, Some(name));
        let url = self.url(&Self::segments::<R>(ns, Some(name)), &[]);
        let body = self.send(&call, Method::PUT, url, Some(obj)).await?;
        Self::decode(&call, &body)
    }

    /// Deletes an object, only if it is still at `resource_version` when one is given (else
    /// 409). A 404 is an error: the caller decides whether gone is fine.
    pub async fn delete<R: Resource>(
        &self,
        ns: Option<&str>,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<(), KubeError> {
        let call = Self::what::<R>("delete", ns, Some(name));
        let url = self.url(&Self::segments::<R>(ns, Some(name)), &[]);
        self.send(
            &call,
            Method::DELETE,
            url,
            Some(&DeleteOptions::at(resource_version)),
        )
        .await?;
        Ok(())
    }
}

/// The stream of a watch ([`KubeClient::watch_named`]): newline-delimited JSON events.
pub struct WatchStream {
    client: KubeClient,
    call: String,
    shown: String,
    limit: Duration,
    resp: reqwest::Response,
    lines: crate::watch::LineBuffer,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

impl WatchStream {
    /// The next line (one event), `Ok(None)` when the server ended the stream. A line longer
    /// than [`crate::watch::MAX_LINE`] is an error.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, KubeError> {
        loop {
            if let Some(line) = self.lines.next_line() {
                return Ok(Some(line));
            }
            let chunk = self.resp.chunk().await.map_err(|e| {
                self.client
                    .transport_error(&self.call, &self.shown, self.limit, e)
            })?;
            match chunk {
                Some(c) => self.lines.push(&c).map_err(|max| KubeError::Protocol {
                    call: self.call.clone(),
                    detail: format!("a watch event longer than {max} bytes"),
                })?,
                None => return Ok(self.lines.finish()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
