//! The HTTP side of the Keystone client.
//!
//! Requests sent (base URL `https://keystone:5000/v3`):
//!
//! ```text
//! GET  /v3/auth/tokens?nocatalog          X-Auth-Token: <caller>  X-Subject-Token: <token>
//!                                         OpenStack-Identity-Access-Rules: 1.0
//! GET  /v3/users/{user_id}/groups         X-Auth-Token: <caller>
//! GET  /v3/projects                       X-Auth-Token: <service identity>
//! GET  /v3/role_assignments?scope.project.id=P&include_names[&effective]
//!                                         X-Auth-Token: <service identity>
//! POST /v3/auth/tokens?nocatalog          {"auth":{"identity":{"methods":["application_credential"],
//!                                           "application_credential":{"id":"..","secret":".."}}}}
//! ```
//!
//! The caller of a validation is the token itself (Keystone lets a token validate itself and
//! list its own user's groups), or, when configured, a service identity's token, renewed before
//! it expires and once more when Keystone says it is no longer valid.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::error::KeystoneError;
use super::request::{AuthRequest, NewApplicationCredential};
use super::types::{
    CreatedApplicationCredential, CreatedEnvelope, ErrorEnvelope, GroupsPage, ProjectEntry,
    ProjectsPage, RoleAssignment, RoleAssignmentsPage, Token, TokenEnvelope,
};
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::timefmt::parse_rfc3339;

/// Largest Keystone answer read (tokens are fetched with `?nocatalog`, so they are small).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Most pages of groups followed for one user.
const MAX_GROUP_PAGES: usize = 50;
/// Most pages of projects or role assignments followed for one listing.
const MAX_LIST_PAGES: usize = 100;
/// A service token is renewed this long before it expires.
const SERVICE_TOKEN_MARGIN: Duration = Duration::from_secs(120);
/// A listing page split up: its items, its `next` link, whether Keystone truncated it.
type Page<T> = (Vec<T>, Option<String>, bool);
/// The body of a request that has none.
const NO_BODY: Option<&()> = None;

/// How to reach Keystone.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The v3 base URL, as returned by [`normalize_url`].
    pub url: Url,
    /// CA bundle (PEM) that signs Keystone's certificate; `None` means the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) presented to Keystone, if it asks for one.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Limit for a whole request, connection included.
    pub timeout: Duration,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// `User-Agent` header.
    pub user_agent: String,
    /// A service identity used as the caller of validations; `None`: tokens validate themselves.
    pub service_auth: Option<AuthRequest>,
}

/// Settings of the optional service identity (validations made with its token).
#[derive(Debug)]
pub struct ServiceAuth {
    request: AuthRequest,
    cached: Mutex<Option<(Secret, SystemTime)>>,
}

/// A Keystone v3 client. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct KeystoneClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
    service: Option<ServiceAuth>,
    metrics: Option<Arc<Metrics>>,
    last_answer: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for KeystoneClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneClient")
            .field("base", &self.inner.base.as_str())
            .finish()
    }
}

/// Turns what a user writes (`https://ks:5000`, `https://ks:5000/v3/`, `https://h/identity`)
/// into the v3 base URL without a trailing slash (`https://ks:5000/v3`).
pub fn normalize_url(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    let shown = crate::urls::redact_url(raw);
    if raw.is_empty() {
        return Err("is empty".into());
    }
    let mut url = Url::parse(raw).map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{shown:?} must start with https:// or http://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        // The query may carry a secret: do not echo it.
        return Err("must not have a query or fragment".into());
    }
    let mut path = url.path().trim_end_matches('/').to_string();
    if let Some(stripped) = path.strip_suffix("/v2.0") {
        path = stripped.to_string();
    }
    if !path.ends_with("/v3") {
        path.push_str("/v3");
    }
    url.set_path(&path);
    Ok(url)
}

impl KeystoneClient {
    /// Builds a client. Reads the CA and client identity files named in `settings`.
    pub fn new(settings: &ClientSettings, metrics: Option<Arc<Metrics>>) -> anyhow::Result<Self> {
        use anyhow::Context;
        use rustls_pki_types::pem::PemObject;
        let ca = match &settings.ca_file {
            None => None,
            Some(ca) => {
                let pem = std::fs::read(ca)
                    .with_context(|| format!("cannot read Keystone CA file {}", ca.display()))?;
                let certs = crate::tls::parse_certs(&pem)
                    .with_context(|| format!("invalid PEM in Keystone CA file {}", ca.display()))?;
                if certs.is_empty() {
                    anyhow::bail!("no certificate found in Keystone CA file {}", ca.display());
                }
                Some(certs)
            }
        };
        let identity = match &settings.client_identity {
            None => None,
            Some((cert, key)) => {
                let invalid = || {
                    format!(
                        "invalid client certificate/key {} / {}",
                        cert.display(),
                        key.display()
                    )
                };
                let chain = std::fs::read(cert).with_context(|| {
                    format!("cannot read client certificate {}", cert.display())
                })?;
                let key = std::fs::read(key)
                    .with_context(|| format!("cannot read client key {}", key.display()))?;
                let chain = crate::tls::parse_certs(&chain).with_context(invalid)?;
                if chain.is_empty() {
                    anyhow::bail!("{}: no certificate", invalid());
                }
                let key =
                    rustls_pki_types::PrivateKeyDer::from_pem_slice(&key).with_context(invalid)?;
                Some(crate::tls::ClientIdentity { chain, key })
            }
        };
        let tls = crate::tls::client_config(ca.as_deref(), identity).with_context(|| {
            let mut what = "cannot set up TLS for Keystone".to_string();
            if let Some(ca) = &settings.ca_file {
                what.push_str(&format!(" with CA file {}", ca.display()));
            }
            if let Some((cert, key)) = &settings.client_identity {
                what.push_str(&format!(
                    " with client certificate/key {} / {}",
                    cert.display(),
                    key.display()
                ));
            }
            what
        })?;
        let builder = crate::tls::http_client(tls)
            .user_agent(settings.user_agent.clone())
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(32)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none());
        let http = builder
            .build()
            .context("cannot build the Keystone HTTP client")?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: settings.url.clone(),
                timeout: settings.timeout,
                service: settings.service_auth.clone().map(|request| ServiceAuth {
                    request,
                    cached: Mutex::new(None),
                }),
                metrics,
                last_answer: std::sync::Mutex::new(None),
            }),
        })
    }

    /// When Keystone last answered anything (even a refusal) short of a 5xx; `None` if never,
    /// or if a call failed since (unreachable, timed out, 5xx: see [`Self::forget_answer`]).
    pub fn last_answer(&self) -> Option<Instant> {
        self.inner.last_answer.lock().ok().and_then(|g| *g)
    }

    /// Forgets the last answer (a call found Keystone unavailable), so that readiness asks
    /// Keystone again instead of trusting an answer from before the failure.
    pub fn forget_answer(&self) {
        if let Ok(mut g) = self.inner.last_answer.lock() {
            *g = None;
        }
    }

    /// The limit of one request (`keystone.timeout`).
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn record(&self, call: &'static str, outcome: &'static str) {
        if let Some(m) = &self.inner.metrics {
            m.inc(
                crate::metrics::Counter::KeystoneRequests,
                &[("call", call), ("outcome", outcome)],
            );
        }
    }

    /// Sends one request (with a JSON body, one of [`super::types`]), maps transport failures,
    /// reads the answer (bounded).
    async fn send<B: Serialize>(
        &self,
        call: &'static str,
        method: Method,
        url: Url,
        headers: &[(&'static str, &str)],
        body: Option<&B>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), KeystoneError> {
        let shown = url.as_str().to_string();
        let mut req = self
            .inner
            .http
            .request(method, url)
            .header("Accept", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let map_err = |e: reqwest::Error| {
            if e.is_timeout() {
                KeystoneError::Timeout {
                    url: shown.clone(),
                    timeout: self.inner.timeout,
                }
            } else if e.is_builder() || e.is_request() && e.status().is_none() && !e.is_connect() {
                // e.g. a header value that is not valid: the token itself is malformed.
                KeystoneError::Protocol {
                    call,
                    detail: "request could not be built".into(),
                }
            } else {
                KeystoneError::Unreachable {
                    url: shown.clone(),
                    source: e.without_url(),
                }
            }
        };
        let result = async {
            let mut resp = req.send().await.map_err(map_err)?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let mut buf = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(map_err)? {
                if buf.len() + chunk.len() > MAX_BODY {
                    return Err(KeystoneError::Protocol {
                        call,
                        detail: format!("answer larger than {MAX_BODY} bytes"),
                    });
                }
                buf.extend_from_slice(&chunk);
            }
            Ok((status, headers, buf))
        }
        .await;
        match &result {
            Ok((status, _, _)) => {
                if let Ok(mut g) = self.inner.last_answer.lock() {
                    *g = (!status.is_server_error()).then(Instant::now);
                }
                let outcome = match status.as_u16() {
                    200..=299 => "ok",
                    401 => "401",
                    403 => "403",
                    404 => "404",
                    400..=499 => "4xx",
                    _ => "5xx",
                };
                self.record(call, outcome);
            }
            Err(e) => {
                if matches!(
                    e,
                    KeystoneError::Unreachable { .. } | KeystoneError::Timeout { .. }
                ) {
                    self.forget_answer();
                }
                self.record(call, e.outcome())
            }
        }
        result
    }

    fn error_message(body: &[u8]) -> String {
        let msg = serde_json::from_slice::<ErrorEnvelope>(body)
            .map(|e| e.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
        msg.chars().take(200).collect()
    }

    /// The caller token for validations: the service identity's, or the subject itself.
    async fn caller_token(&self, subject: &Secret) -> Result<Secret, KeystoneError> {
        let Some(service) = &self.inner.service else {
            return Ok(subject.clone());
        };
        let mut cached = service.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && SystemTime::now() + SERVICE_TOKEN_MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let (token, body) = self
            .issue_token(&service.request)
            .await
            .map_err(|e| match e {
                KeystoneError::Unauthorized { status, message } => KeystoneError::Status {
                    call: "service identity authentication",
                    status,
                    message,
                },
                other => other,
            })?;
        let expires = parse_rfc3339(&body.expires_at)
            .unwrap_or_else(|_| SystemTime::now() + Duration::from_secs(300));
        *cached = Some((token.clone(), expires));
        Ok(token)
    }

    async fn forget_service_token(&self) {
        if let Some(service) = &self.inner.service {
            *service.cached.lock().await = None;
        }
    }

    /// Validates `subject` with `GET /v3/auth/tokens?nocatalog`.
    ///
    /// `Err(InvalidToken)` means Keystone does not know the token (any more); every other error
    /// means Keystone could not be asked or gave an answer that decides nothing.
    pub async fn validate_token(&self, subject: &Secret) -> Result<Token, KeystoneError> {
        const CALL: &str = "validate token";
        let mut url = self.endpoint(&["auth", "tokens"]);
        url.set_query(Some("nocatalog"));
        // With a service identity, its token is renewed once when Keystone refuses it (it may
        // have been revoked or have expired early); a second refusal ends the attempt.
        let mut renewed = false;
        loop {
            let caller = self.caller_token(subject).await?;
            let (status, _, body) = self
                .send(
                    CALL,
                    Method::GET,
                    url.clone(),
                    &[
                        ("X-Auth-Token", caller.expose()),
                        ("X-Subject-Token", subject.expose()),
                        ("OpenStack-Identity-Access-Rules", "1.0"),
                    ],
                    NO_BODY,
                )
                .await?;
            match status.as_u16() {
                200 | 203 => {
                    return serde_json::from_slice::<TokenEnvelope>(&body)
                        .map(|e| e.token)
                        .map_err(|e| KeystoneError::Protocol {
                            call: CALL,
                            detail: e.to_string(),
                        });
                }
                404 => return Err(KeystoneError::InvalidToken { status: 404 }),
                401 if self.inner.service.is_none() => {
                    return Err(KeystoneError::InvalidToken { status: 401 });
                }
                401 if !renewed => {
                    self.forget_service_token().await;
                    renewed = true;
                }
                401 => {
                    return Err(KeystoneError::Status {
                        call: CALL,
                        status: 401,
                        message: format!(
                            "the service identity's token was refused twice: {}",
                            Self::error_message(&body)
                        ),
                    });
                }
                s => {
                    return Err(KeystoneError::Status {
                        call: CALL,
                        status: s,
                        message: Self::error_message(&body),
                    });
                }
            }
        }
    }

    /// Whether a service identity is configured.
    pub fn has_service_identity(&self) -> bool {
        self.inner.service.is_some()
    }

    /// Names of the groups of `user_id` (`GET /v3/users/{id}/groups`, every page), asked with the
    /// service identity's token (`as_service`) or with `subject` itself.
    pub async fn user_groups(
        &self,
        subject: &Secret,
        user_id: &str,
        as_service: bool,
    ) -> Result<Vec<String>, KeystoneError> {
        const CALL: &str = "list user groups";
        // Whether the caller is the service identity's token (not the subject's own).
        let by_service = as_service && self.inner.service.is_some();
        let caller = if by_service {
            self.caller_token(subject).await?
        } else {
            subject.clone()
        };
        let mut url = self.endpoint(&["users", user_id, "groups"]);
        let mut names = Vec::new();
        for _ in 0..MAX_GROUP_PAGES {
            let (status, _, body) = self
                .send(
                    CALL,
                    Method::GET,
                    url.clone(),
                    &[("X-Auth-Token", caller.expose())],
                    NO_BODY,
                )
                .await?;
            if status != StatusCode::OK {
                // Only a refused service token is renewed next time; a refusal of the subject
                // token says nothing about the service token.
                if status == StatusCode::UNAUTHORIZED && by_service {
                    self.forget_service_token().await;
                }
                return Err(KeystoneError::Status {
                    call: CALL,
                    status: status.as_u16(),
                    message: Self::error_message(&body),
                });
            }
            let page: GroupsPage =
                serde_json::from_slice(&body).map_err(|e| KeystoneError::Protocol {
                    call: CALL,
                    detail: e.to_string(),
                })?;
            names.extend(page.groups.into_iter().map(|g| g.name));
            match page.links.next.as_deref().map(Url::parse) {
                None => return Ok(names),
                Some(Ok(next)) if next.origin() == self.inner.base.origin() => url = next,
                Some(_) => {
                    // Never send a token to another origin than the configured Keystone.
                    return Err(KeystoneError::Protocol {
                        call: CALL,
                        detail: "next page link points elsewhere".into(),
                    });
                }
            }
        }
        Err(KeystoneError::Protocol {
            call: CALL,
            detail: format!("more than {MAX_GROUP_PAGES} pages of groups"),
        })
    }

    /// Every page of a listing made with the service identity's token (renewed once when
    /// Keystone refuses it). `parts` splits a page into its items, its `next` link and its
    /// `truncated` flag. Needs a service identity.
    async fn service_list<P, T>(
        &self,
        call: &'static str,
        mut url: Url,
        parts: fn(P) -> Page<T>,
    ) -> Result<Vec<T>, KeystoneError>
    where
        P: serde::de::DeserializeOwned,
    {
        if self.inner.service.is_none() {
            return Err(KeystoneError::Protocol {
                call,
                detail: "needs a service identity ([keystone.service_identity])".into(),
            });
        }
        let mut items = Vec::new();
        let mut renewed = false;
        let mut pages = 0;
        while pages < MAX_LIST_PAGES {
            let caller = self.caller_token(&Secret::default()).await?;
            let (status, _, body) = self
                .send(
                    call,
                    Method::GET,
                    url.clone(),
                    &[("X-Auth-Token", caller.expose())],
                    NO_BODY,
                )
                .await?;
            if status == StatusCode::UNAUTHORIZED && !renewed {
                self.forget_service_token().await;
                renewed = true;
                continue;
            }
            if status != StatusCode::OK {
                return Err(KeystoneError::Status {
                    call,
                    status: status.as_u16(),
                    message: Self::error_message(&body),
                });
            }
            pages += 1;
            let page: P = serde_json::from_slice(&body).map_err(|e| KeystoneError::Protocol {
                call,
                detail: e.to_string(),
            })?;
            let (page_items, next, truncated) = parts(page);
            if truncated {
                return Err(KeystoneError::Protocol {
                    call,
                    detail: "Keystone cut the list at its list_limit (truncated); raise [DEFAULT] list_limit or the identity section's".into(),
                });
            }
            items.extend(page_items);
            match next.as_deref().map(Url::parse) {
                None => return Ok(items),
                Some(Ok(next)) if next.origin() == self.inner.base.origin() => url = next,
                Some(_) => {
                    return Err(KeystoneError::Protocol {
                        call,
                        detail: "next page link points elsewhere".into(),
                    });
                }
            }
        }
        Err(KeystoneError::Protocol {
            call,
            detail: format!("more than {MAX_LIST_PAGES} pages"),
        })
    }

    /// Every project (`GET /v3/projects`), with the service identity's token.
    pub async fn list_projects(&self) -> Result<Vec<ProjectEntry>, KeystoneError> {
        self.service_list(
            "list projects",
            self.endpoint(&["projects"]),
            |p: ProjectsPage| (p.projects, p.links.next, p.truncated),
        )
        .await
    }

    /// The role assignments on one project, with names
    /// (`GET /v3/role_assignments?scope.project.id=P&include_names`, and `&effective` for the
    /// users' effective roles, group memberships and inherited roles expanded), with the
    /// service identity's token.
    pub async fn list_role_assignments(
        &self,
        project_id: &str,
        effective: bool,
    ) -> Result<Vec<RoleAssignment>, KeystoneError> {
        let mut url = self.endpoint(&["role_assignments"]);
        url.query_pairs_mut()
            .append_pair("scope.project.id", project_id)
            .append_key_only("include_names");
        if effective {
            url.query_pairs_mut().append_key_only("effective");
        }
        self.service_list("list role assignments", url, |p: RoleAssignmentsPage| {
            (p.role_assignments, p.links.next, p.truncated)
        })
        .await
    }

    /// `POST /v3/auth/tokens?nocatalog`: a new token and its body.
    pub async fn issue_token(&self, auth: &AuthRequest) -> Result<(Secret, Token), KeystoneError> {
        const CALL: &str = "issue token";
        let mut url = self.endpoint(&["auth", "tokens"]);
        url.set_query(Some("nocatalog"));
        let (status, headers, body) = self
            .send(CALL, Method::POST, url, &[], Some(&auth.to_body()))
            .await?;
        match status.as_u16() {
            200 | 201 => {
                let token = headers
                    .get("X-Subject-Token")
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                    .ok_or(KeystoneError::Protocol {
                        call: CALL,
                        detail: "no X-Subject-Token header".into(),
                    })?;
                let body = serde_json::from_slice::<TokenEnvelope>(&body).map_err(|e| {
                    KeystoneError::Protocol {
                        call: CALL,
                        detail: e.to_string(),
                    }
                })?;
                Ok((Secret::new(token), body.token))
            }
            401 | 404 => Err(KeystoneError::Unauthorized {
                status: status.as_u16(),
                message: Self::error_message(&body),
            }),
            s => Err(KeystoneError::Status {
                call: CALL,
                status: s,
                message: Self::error_message(&body),
            }),
        }
    }

    /// `POST /v3/users/{user_id}/application_credentials`, authenticated with `token` (a
    /// password or session token of that user; Keystone refuses tokens of restricted
    /// application credentials with 403). The answer holds the secret, shown only this once.
    pub async fn create_application_credential(
        &self,
        token: &Secret,
        user_id: &str,
        request: &NewApplicationCredential,
    ) -> Result<CreatedApplicationCredential, KeystoneError> {
        const CALL: &str = "create application credential";
        let url = self.endpoint(&["users", user_id, "application_credentials"]);
        let (status, _, body) = self
            .send(
                CALL,
                Method::POST,
                url,
                &[("X-Auth-Token", token.expose())],
                Some(&request.to_body()),
            )
            .await?;
        match status.as_u16() {
            201 | 200 => serde_json::from_slice::<CreatedEnvelope>(&body)
                .map(|e| e.application_credential)
                .map_err(|e| KeystoneError::Protocol {
                    call: CALL,
                    detail: e.to_string(),
                }),
            s => Err(KeystoneError::Status {
                call: CALL,
                status: s,
                message: Self::error_message(&body),
            }),
        }
    }

    /// `GET /v3` (no credentials): whether Keystone answers at all.
    pub async fn probe(&self) -> Result<(), KeystoneError> {
        let (status, _, body) = self
            .send(
                "version",
                Method::GET,
                self.inner.base.clone(),
                &[],
                NO_BODY,
            )
            .await?;
        if status.is_success() || status.is_redirection() {
            Ok(())
        } else {
            Err(KeystoneError::Status {
                call: "version",
                status: status.as_u16(),
                message: Self::error_message(&body),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_are_normalized_to_the_v3_base() {
        for (raw, want) in [
            ("https://ks:5000", "https://ks:5000/v3"),
            ("https://ks:5000/", "https://ks:5000/v3"),
            ("https://ks:5000/v3", "https://ks:5000/v3"),
            ("https://ks:5000/v3/", "https://ks:5000/v3"),
            ("http://127.0.0.1/identity", "http://127.0.0.1/identity/v3"),
            (
                "http://127.0.0.1/identity/v2.0",
                "http://127.0.0.1/identity/v3",
            ),
        ] {
            assert_eq!(normalize_url(raw).unwrap().as_str(), want, "{raw}");
        }
        for bad in [
            "",
            "ks:5000",
            "ftp://ks/v3",
            "https://u:p@ks/v3",
            "https://ks/v3?x=1",
            "not a url",
        ] {
            assert!(normalize_url(bad).is_err(), "{bad}");
        }
        let err = normalize_url("https://ks/v3?token=gAAAAAsecret").unwrap_err();
        assert!(!err.contains("gAAAAAsecret"), "{err}");
        let err = normalize_url("https://admin:hunter2@ks/v3").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        let err = normalize_url("admin:hunter2@ks:5000").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    /// A stand-in Keystone on 127.0.0.1: issues service tokens `svc-1`, `svc-2`, ... and
    /// answers validations and group listings with `validate` and `groups` (by caller token);
    /// records each request as `"METHOD path caller"`.
    struct StubKeystone {
        url: Url,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl StubKeystone {
        async fn start(validate: fn(&str) -> u16, groups: fn(&str) -> u16) -> Self {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = Url::parse(&format!("http://{}/v3", listener.local_addr().unwrap())).unwrap();
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let log = seen.clone();
            tokio::spawn(async move {
                let mut issued = 0;
                while let Ok((mut conn, _)) = listener.accept().await {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = conn.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "request cut short");
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                            })
                            .unwrap_or_default()
                    };
                    let length: usize = header("content-length").parse().unwrap_or(0);
                    while buf.len() < head_end + length {
                        let n = conn.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "body cut short");
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let mut words = head.split_whitespace();
                    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    let caller = header("x-auth-token");
                    log.lock()
                        .unwrap()
                        .push(format!("{method} {path} {caller}"));
                    let (status, extra, body) = if method == "POST" {
                        issued += 1;
                        (
                            201,
                            format!("X-Subject-Token: svc-{issued}\r\n"),
                            json!({"token": {"user": {"id": "svc"}, "expires_at": "2099-01-01T00:00:00Z"}}),
                        )
                    } else if path.starts_with("/v3/auth/tokens") {
                        let status = validate(&caller);
                        (
                            status,
                            String::new(),
                            json!({"error": {"message": "The request you have made requires authentication."}}),
                        )
                    } else {
                        match groups(&caller) {
                            200 => (
                                200,
                                String::new(),
                                json!({"groups": [{"name": "g"}], "links": {}}),
                            ),
                            s => (s, String::new(), json!({"error": {"message": "no"}})),
                        }
                    };
                    let body = body.to_string();
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                }
            });
            Self { url, seen }
        }

        fn client(&self) -> KeystoneClient {
            KeystoneClient::new(
                &ClientSettings {
                    url: self.url.clone(),
                    ca_file: None,
                    client_identity: None,
                    timeout: Duration::from_secs(5),
                    connect_timeout: Duration::from_secs(5),
                    user_agent: "test".into(),
                    service_auth: Some(AuthRequest::ApplicationCredential {
                        id: Some("svc-ac".into()),
                        name: None,
                        user: None,
                        secret: Secret::new("svc-secret"),
                    }),
                },
                None,
            )
            .unwrap()
        }

        fn seen(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }
    }

    #[tokio::test]
    async fn a_service_token_refused_twice_says_so() {
        let ks = StubKeystone::start(|_| 401, |_| 200).await;
        let err = ks
            .client()
            .validate_token(&Secret::new("subject"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KeystoneError::Status { status: 401, message, .. } if message.contains("refused twice")),
            "{err:?}"
        );
        assert!(err.is_unavailable(), "not a verdict on the subject token");
        assert_eq!(
            ks.seen(),
            [
                "POST /v3/auth/tokens?nocatalog ",
                "GET /v3/auth/tokens?nocatalog svc-1",
                "POST /v3/auth/tokens?nocatalog ",
                "GET /v3/auth/tokens?nocatalog svc-2",
            ],
            "renewed once, then given up"
        );
    }

    #[tokio::test]
    async fn a_401_to_the_subject_token_keeps_the_service_token() {
        // Groups: the service token may list them, the subject token may not.
        let ks = StubKeystone::start(
            |_| 200,
            |caller| if caller.starts_with("svc-") { 200 } else { 401 },
        )
        .await;
        let client = ks.client();
        let subject = Secret::new("subject");
        assert_eq!(
            client.user_groups(&subject, "u", true).await.unwrap(),
            ["g"]
        );
        let err = client.user_groups(&subject, "u", false).await.unwrap_err();
        assert!(
            matches!(err, KeystoneError::Status { status: 401, .. }),
            "{err:?}"
        );
        assert_eq!(
            client.user_groups(&subject, "u", true).await.unwrap(),
            ["g"]
        );
        assert_eq!(
            ks.seen(),
            [
                "POST /v3/auth/tokens?nocatalog ",
                "GET /v3/users/u/groups svc-1",
                "GET /v3/users/u/groups subject",
                "GET /v3/users/u/groups svc-1",
            ],
            "the service token was not dropped for the subject token's 401"
        );
    }
}
