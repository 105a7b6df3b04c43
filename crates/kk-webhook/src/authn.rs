//! Authentication: from a bearer token to a TokenReview status, through the prefilter, the
//! cache and Keystone.
//!
//! | Keystone says | answer | cached |
//! |---|---|---|
//! | token valid, project-scoped, rules allow `k8s` | `authenticated: true` + user | min(TTL, token expiry) |
//! | 404/401 (unknown, expired, revoked, deleted credential, disabled user) | `authenticated: false` | negative TTL |
//! | valid but unscoped, or rules exclude `k8s` | `authenticated: false` + reason | negative TTL |
//! | unreachable, timeout, 5xx | `authenticated: false` + `error` | no (optionally a stale valid answer) |
//!
//! An application-credential bearer token (`kkac1_...`, [`kk_core::appcred_token`]) is, when
//! `[application_credential_tokens]` enables it, exchanged for a Keystone token
//! (`POST /v3/auth/tokens`, whose answer describes the token) and then treated as that token,
//! cached under the SHA-256 of the whole bearer token. Failed secrets are counted per
//! credential id ([`Throttle`]); disabled, such tokens are refused without asking Keystone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use crate::cache::{CacheStatus, Key, Lifetime, TokenCache};
use crate::config::{AppCredTokensConfig, CacheConfig};
use crate::identity::{
    Identity, Prefiltered, UsernameFormat, has_access_rules, identity_from_token, prefilter,
    token_expiry, user_info,
};
use kk_core::appcred_token::AppCredToken;
use kk_core::k8s::RenderedUser;
use kk_core::keystone::types::Token;
use kk_core::keystone::{AuthRequest, KeystoneClient, KeystoneError};
use kk_core::metrics::Metrics;
use kk_core::secret::Secret;
use kk_policy::sync_config::RoleMapping;

/// An authenticated identity with its Kubernetes user rendered once: a cache hit answers
/// with these bytes instead of building and serializing the user again.
#[derive(Debug)]
pub struct Known {
    /// Who.
    pub identity: Identity,
    /// Its user (`status.user`), rendered with the role mappings of [`Known::generation`].
    pub user: Arc<RenderedUser>,
    /// The [`RoleMappings::generation`] `user` was rendered with.
    generation: u64,
}

impl Known {
    /// `identity` with its user rendered with `mappings`, as a service that never reloaded its
    /// role mappings makes it (for benchmarks; the service interns them).
    pub fn new(identity: Identity, format: UsernameFormat, mappings: &[RoleMapping]) -> Self {
        let user = Arc::new(RenderedUser::new(&user_info(&identity, format, mappings)));
        Self {
            identity,
            user,
            generation: 0,
        }
    }
}

/// The interner's entry: a [`Known`] found by its identity.
struct Shared(Arc<Known>);

impl std::borrow::Borrow<Identity> for Shared {
    fn borrow(&self) -> &Identity {
        &self.0.identity
    }
}

impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        self.0.identity == other.0.identity
    }
}

impl Eq for Shared {}

impl std::hash::Hash for Shared {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.identity.hash(state);
    }
}

/// One shared `Arc` per distinct [`Identity`]: a user's many cached tokens (each kubectl
/// process, each hour) then cost the cache a few words each instead of a copy of every name,
/// role and group, and the user is rendered once per identity. Identities no token refers to
/// any more are pruned as the set grows, so it stays within about twice the live ones.
#[derive(Default)]
struct Interner {
    set: std::sync::Mutex<InternSet>,
}

#[derive(Default)]
struct InternSet {
    live: std::collections::HashSet<Shared>,
    /// Prune when `live` reaches this size.
    prune_at: usize,
}

impl Interner {
    /// The shared [`Known`] of `identity` rendered at role-mapping `generation` (called on a
    /// cache miss, next to a Keystone call); `render` makes its user when there is none yet, or
    /// only one of an older generation (which it then replaces).
    fn intern(
        &self,
        identity: Identity,
        generation: u64,
        render: impl FnOnce(&Identity) -> RenderedUser,
    ) -> Arc<Known> {
        let known = |identity: Identity| {
            let user = Arc::new(render(&identity));
            Arc::new(Known {
                identity,
                user,
                generation,
            })
        };
        let Ok(mut s) = self.set.lock() else {
            return known(identity);
        };
        if let Some(shared) = s.live.get(&identity)
            && shared.0.generation == generation
        {
            return shared.0.clone();
        }
        if s.live.len() >= s.prune_at {
            // Only the set holds these: no cached token refers to them.
            s.live.retain(|a| Arc::strong_count(&a.0) > 1);
            s.prune_at = (2 * s.live.len()).max(1024);
        }
        let shared = known(identity);
        s.live.replace(Shared(shared.clone()));
        shared
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.set.lock().map(|s| s.live.len()).unwrap_or(0)
    }
}

/// What the cache keeps for a token.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A valid token: whose (shared with the other tokens of that identity) and until when.
    Authenticated(Arc<Known>, SystemTime),
    /// A definite "no", with the reason given to the apiserver.
    Refused(Arc<str>),
    /// Keystone could not decide; never cached.
    Unavailable(Arc<str>),
}

/// The result of one review, with what the decision log line needs.
#[derive(Debug)]
pub struct Review {
    /// The user to answer, when authenticated.
    pub user: Option<Arc<RenderedUser>>,
    /// `status.error`: set when Keystone could not decide.
    pub error: Option<Arc<str>>,
    /// `authenticated`, `unauthenticated` or `error`.
    pub result: &'static str,
    /// Why (empty when authenticated).
    pub reason: String,
    /// Where the answer came from: `hit`, `miss`, `coalesced`, `prefilter`, `stale`.
    pub source: &'static str,
    /// The identity, when authenticated (for the namespace sync).
    pub identity: Option<Arc<Known>>,
}

/// Reviews tokens.
pub struct Authenticator {
    keystone: KeystoneClient,
    cache: TokenCache<Outcome>,
    cache_config: CacheConfig,
    service_type: String,
    username_format: UsernameFormat,
    max_token_length: usize,
    metrics: Arc<Metrics>,
    /// Whether skipping an access-rule credential's groups was logged (once per process).
    groups_skip_logged: AtomicBool,
    /// The sync config's role mappings, applied to every authenticated user (replaced when the
    /// sync config is reloaded).
    role_mappings: RoleMappings,
    /// Application credentials as bearer tokens.
    appcred: AppCredTokensConfig,
    /// Failed secrets per application credential id.
    throttle: Throttle,
    /// The identities of cached tokens, shared by all tokens of one identity.
    identities: Interner,
}

/// Most credential ids whose failures are tracked at once (expired windows are dropped first;
/// past this, a new id's failures are not tracked until room is made).
const THROTTLE_MAX_IDS: usize = 100_000;

/// The brute-force rule for application-credential bearer tokens: once `max_failures` secrets
/// of one credential id were refused by Keystone (or are being tried) within `window` of the
/// first failure, every further attempt for that id that the cache cannot answer is refused
/// without asking Keystone until the window ends. A correct token still cached keeps working.
#[derive(Debug)]
struct Throttle {
    max_failures: u32,
    window: Duration,
    ids: std::sync::Mutex<std::collections::HashMap<String, Attempts>>,
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    /// When the first failure of the window happened.
    since: tokio::time::Instant,
    /// Failures in the window.
    failures: u32,
    /// Exchanges under way.
    in_flight: u32,
}

/// What [`Throttle::begin`] decided.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    /// Ask Keystone.
    Go,
    /// Refuse without asking: this many failures in the window.
    Throttled,
}

impl Throttle {
    fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            ids: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Attempts>> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before asking Keystone for `id`: counts the attempt in flight, unless throttled.
    fn begin(&self, id: &str) -> Admission {
        let now = tokio::time::Instant::now();
        let mut ids = self.lock();
        if let Some(a) = ids.get_mut(id) {
            if a.failures > 0 && now >= a.since + self.window {
                a.failures = 0;
            }
            if a.failures + a.in_flight >= self.max_failures {
                return Admission::Throttled;
            }
            a.in_flight += 1;
            return Admission::Go;
        }
        if ids.len() >= THROTTLE_MAX_IDS {
            let window = self.window;
            ids.retain(|_, a| a.in_flight > 0 || (a.failures > 0 && now < a.since + window));
        }
        if ids.len() < THROTTLE_MAX_IDS {
            ids.insert(
                id.to_string(),
                Attempts {
                    since: now,
                    failures: 0,
                    in_flight: 1,
                },
            );
        }
        Admission::Go
    }

    /// After Keystone answered for `id`: `failed` when it refused the secret. Returns whether
    /// this failure reached the limit (to log it once per window).
    fn end(&self, id: &str, failed: bool) -> bool {
        let now = tokio::time::Instant::now();
        let mut ids = self.lock();
        let Some(a) = ids.get_mut(id) else {
            return false;
        };
        a.in_flight = a.in_flight.saturating_sub(1);
        if failed {
            if a.failures == 0 || now >= a.since + self.window {
                a.since = now;
                a.failures = 0;
            }
            a.failures += 1;
            return a.failures == self.max_failures;
        }
        if a.failures == 0 && a.in_flight == 0 {
            ids.remove(id);
        }
        false
    }
}

/// Ends an attempt of [`Throttle::begin`] even when the exchange is cancelled.
struct AttemptGuard<'a> {
    throttle: &'a Throttle,
    id: &'a str,
    done: bool,
}

impl AttemptGuard<'_> {
    fn finish(mut self, failed: bool) -> bool {
        self.done = true;
        self.throttle.end(self.id, failed)
    }
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.throttle.end(self.id, false);
        }
    }
}

/// `message` with every occurrence of the secrets replaced (Keystone's error messages are
/// passed on, and must never carry a credential's secret).
fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut m = message.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        m = m.replace(s, "<redacted>");
    }
    m
}

/// The role mappings in force, shared by the token reviews and the namespace sync's naming of
/// users, replaced as a whole when the sync config is reloaded.
#[derive(Debug, Clone, Default)]
pub struct RoleMappings(Arc<MappingsInner>);

#[derive(Debug, Default)]
struct MappingsInner {
    list: std::sync::RwLock<Arc<Vec<RoleMapping>>>,
    /// Counts replacements (read without the lock, by every cache hit).
    generation: std::sync::atomic::AtomicU64,
}

impl RoleMappings {
    /// Mappings to start with.
    pub fn new(mappings: Vec<RoleMapping>) -> Self {
        Self(Arc::new(MappingsInner {
            list: std::sync::RwLock::new(Arc::new(mappings)),
            generation: Default::default(),
        }))
    }

    /// The mappings in force.
    pub fn current(&self) -> Arc<Vec<RoleMapping>> {
        match self.0.list.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// How many times they were replaced: read before [`RoleMappings::current`], it is never
    /// newer than the mappings that call returns.
    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }

    /// Replaces them.
    pub fn set(&self, mappings: Vec<RoleMapping>) {
        let new = Arc::new(mappings);
        match self.0.list.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
        self.0.generation.fetch_add(1, Ordering::Release);
    }
}

impl Authenticator {
    /// Builds an authenticator.
    pub fn new(
        keystone: KeystoneClient,
        cache_config: CacheConfig,
        service_type: String,
        username_format: UsernameFormat,
        max_token_length: usize,
        role_mappings: RoleMappings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cache: TokenCache::new(cache_config.max_entries, Some(metrics.clone())),
            keystone,
            cache_config,
            service_type,
            username_format,
            max_token_length,
            role_mappings,
            metrics,
            groups_skip_logged: AtomicBool::new(false),
            appcred: AppCredTokensConfig::default(),
            throttle: Throttle::new(
                AppCredTokensConfig::default().max_failures,
                AppCredTokensConfig::default().failure_window,
            ),
            identities: Interner::default(),
        }
    }

    /// Sets how application-credential bearer tokens are handled (default: refused).
    pub fn with_appcred_tokens(mut self, config: AppCredTokensConfig) -> Self {
        self.throttle = Throttle::new(config.max_failures, config.failure_window);
        self.appcred = config;
        self
    }

    /// The Keystone client (for readiness checks).
    pub fn keystone(&self) -> &KeystoneClient {
        &self.keystone
    }

    /// Reviews one token.
    pub async fn review(&self, token: &Secret) -> Review {
        if kk_core::appcred_token::is_appcred_token(token.expose()) {
            return self.review_appcred(token).await;
        }
        if let Err(why) = prefilter(token.expose(), self.max_token_length) {
            self.metrics.inc(
                kk_core::metrics::Counter::TokensPrefiltered,
                &[("reason", why.as_str())],
            );
            return Review {
                user: None,
                error: None,
                result: "unauthenticated",
                reason: why.reason().to_string(),
                source: "prefilter",
                identity: None,
            };
        }
        self.cached(
            token,
            |stale| async move { self.validate(token, stale).await },
        )
        .await
    }

    /// A review refused before the cache (the prefilter, a disabled or malformed
    /// application-credential token).
    fn refused_early(reason: String, source: &'static str) -> Review {
        Review {
            user: None,
            error: None,
            result: "unauthenticated",
            reason,
            source,
            identity: None,
        }
    }

    /// Reviews an application-credential bearer token.
    async fn review_appcred(&self, token: &Secret) -> Review {
        let count = |result: &'static str| {
            self.metrics.inc(
                kk_core::metrics::Counter::AppCredTokens,
                &[("result", result)],
            );
        };
        if !self.appcred.enabled {
            count("disabled");
            info!(
                "refused an application-credential bearer token (kkac...) without asking Keystone: they are disabled; to accept them set `enabled = true` in the [application_credential_tokens] section of the config file (docs/bearer-tokens.md)"
            );
            return Self::refused_early(
                "application credential bearer tokens are not enabled in k8s-keystone-auth".into(),
                "disabled",
            );
        }
        if token.len() > self.max_token_length {
            count("malformed");
            return Self::refused_early(Prefiltered::TooLong.reason().to_string(), "prefilter");
        }
        let credential = match AppCredToken::parse(token.expose()) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Self::refused_early(
                    "not an application credential token".into(),
                    "prefilter",
                );
            }
            Err(e) => {
                count("malformed");
                return Self::refused_early(e.to_string(), "prefilter");
            }
        };
        let credential = &credential;
        self.cached(token, |stale| async move {
            let (outcome, lifetime, result) = self.exchange(token, credential, stale).await;
            count(result);
            (outcome, lifetime)
        })
        .await
    }

    /// The answer for `token` from the cache, or from `compute` (single flight).
    async fn cached<F, Fut>(&self, token: &Secret, compute: F) -> Review
    where
        F: FnOnce(Option<Outcome>) -> Fut,
        Fut: std::future::Future<Output = (Outcome, Option<Lifetime>)>,
    {
        let stale_flag = AtomicBool::new(false);
        let flag = &stale_flag;
        // One Keystone round (service token, validation or exchange, groups) gets
        // `keystone.timeout` in all, not each of its requests: no review waits longer.
        let deadline = self.keystone.timeout();
        let (outcome, cache_status) = self
            .cache
            .get_or_compute(Key::of(token), move |stale| async move {
                let fallback = stale.clone();
                let (outcome, lifetime) = match tokio::time::timeout(deadline, compute(stale)).await
                {
                    Ok(answer) => answer,
                    Err(_) => {
                        self.keystone.forget_answer();
                        self.unavailable(
                            format!("Keystone did not answer within {deadline:?} (keystone.timeout, for the whole review)"),
                            &fallback,
                        )
                    }
                };
                if lifetime.is_none() && matches!(outcome, Outcome::Authenticated(..)) {
                    flag.store(true, Ordering::Relaxed);
                }
                (outcome, lifetime)
            })
            .await;
        let served_stale = stale_flag.load(Ordering::Relaxed);
        // A refresh ahead that failed answers from the still-fresh entry: a hit, not stale.
        let source = if served_stale && cache_status != CacheStatus::Hit {
            "stale"
        } else {
            cache_status.as_str()
        };
        // Counted once per review, by where the answer came from.
        self.metrics.inc(
            kk_core::metrics::Counter::TokenCacheRequests,
            &[("result", source)],
        );
        match outcome {
            Outcome::Authenticated(known, _) => Review {
                user: Some(self.user_of(&known)),
                error: None,
                result: "authenticated",
                reason: String::new(),
                source,
                identity: Some(known),
            },
            Outcome::Refused(reason) => Review {
                user: None,
                error: None,
                result: "unauthenticated",
                reason: reason.to_string(),
                source,
                identity: None,
            },
            Outcome::Unavailable(reason) => Review {
                user: None,
                error: Some(reason.clone()),
                result: "error",
                reason: reason.to_string(),
                source,
                identity: None,
            },
        }
    }

    /// The user of `known` under the role mappings in force: rendered at its interning, or
    /// again when the mappings were reloaded since (until the token's next validation).
    fn user_of(&self, known: &Known) -> Arc<RenderedUser> {
        if known.generation == self.role_mappings.generation() {
            return known.user.clone();
        }
        Arc::new(self.render(&known.identity, &self.role_mappings.current()))
    }

    fn render(&self, identity: &Identity, mappings: &[RoleMapping]) -> RenderedUser {
        RenderedUser::new(&user_info(identity, self.username_format, mappings))
    }

    /// The shared [`Known`] of `identity`, rendered with the role mappings in force.
    fn intern(&self, identity: Identity) -> Arc<Known> {
        // The generation first, then the mappings: a reload in between makes the entry look
        // older than it is (rendered again), never newer.
        let generation = self.role_mappings.generation();
        let mappings = self.role_mappings.current();
        self.identities
            .intern(identity, generation, |id| self.render(id, &mappings))
    }

    fn negative(&self) -> Option<Lifetime> {
        Some(Lifetime {
            fresh: self.cache_config.negative_ttl,
            usable: self.cache_config.negative_ttl,
        })
    }

    /// What answers when Keystone could not decide: an error, or (optionally) the stale
    /// valid answer.
    fn unavailable(&self, message: String, stale: &Option<Outcome>) -> (Outcome, Option<Lifetime>) {
        if self.cache_config.serve_stale
            && let Some(Outcome::Authenticated(id, expires_at)) = stale
            && *expires_at > SystemTime::now()
        {
            warn!(error = %message, user = %id.identity.user_name, "Keystone unavailable; answering from the cache");
            return (Outcome::Authenticated(id.clone(), *expires_at), None);
        }
        (
            Outcome::Unavailable(format!("Keystone unavailable: {message}").into()),
            None,
        )
    }

    /// One Keystone round: validate, check, fetch groups.
    async fn validate(
        &self,
        token: &Secret,
        stale: Option<Outcome>,
    ) -> (Outcome, Option<Lifetime>) {
        let body = match self.keystone.validate_token(token).await {
            Ok(body) => body,
            Err(e) if e.is_unavailable() => {
                return self.unavailable(kk_core::error_chain(&e), &stale);
            }
            Err(e) => {
                debug!(error = %e, "token refused by Keystone");
                return (
                    Outcome::Refused("token not accepted by Keystone".into()),
                    self.negative(),
                );
            }
        };
        self.accept(token, &body, &stale, &[]).await
    }

    /// Exchanges an application credential for a Keystone token
    /// (`POST /v3/auth/tokens`, method `application_credential`), then checks that token like
    /// any other. Returns the metric's result too.
    async fn exchange(
        &self,
        bearer: &Secret,
        credential: &AppCredToken,
        stale: Option<Outcome>,
    ) -> (Outcome, Option<Lifetime>, &'static str) {
        let id = credential.id.as_str();
        if self.throttle.begin(id) == Admission::Throttled {
            debug!(
                application_credential_id = %id,
                "application credential throttled after too many failed secrets; not asking Keystone"
            );
            // Not cached: the window's end, not the cache, decides when it is tried again.
            return (
                Outcome::Refused(
                    "too many failed attempts for this application credential; try again later"
                        .into(),
                ),
                None,
                "throttled",
            );
        }
        let attempt = AttemptGuard {
            throttle: &self.throttle,
            id,
            done: false,
        };
        let request = AuthRequest::ApplicationCredential {
            id: Some(credential.id.clone()),
            name: None,
            user: None,
            secret: credential.secret.clone(),
        };
        let secrets = [credential.secret.expose(), bearer.expose()];
        match self.keystone.issue_token(&request).await {
            Ok((token, body)) => {
                attempt.finish(false);
                let (outcome, lifetime) = self.accept(&token, &body, &stale, &secrets).await;
                (outcome, lifetime, "exchanged")
            }
            Err(e) if e.is_unavailable() => {
                drop(attempt);
                let message = scrub(&kk_core::error_chain(&e), &secrets);
                let (outcome, lifetime) = self.unavailable(message, &stale);
                (outcome, lifetime, "unavailable")
            }
            Err(e) => {
                let message = scrub(&e.to_string(), &secrets);
                if attempt.finish(true) {
                    warn!(
                        application_credential_id = %id,
                        max_failures = self.throttle.max_failures,
                        window = ?self.throttle.window,
                        "too many failed secrets for this application credential: further attempts with secrets not in the cache are refused without asking Keystone until the window ends"
                    );
                } else {
                    info!(application_credential_id = %id, error = %message, "application credential bearer token refused by Keystone");
                }
                (
                    Outcome::Refused("application credential not accepted by Keystone".into()),
                    self.negative(),
                    "refused",
                )
            }
        }
    }

    /// A token Keystone described (`body`): the service's checks, the user's groups (listed
    /// with `token`), the cache lifetime. `secrets` are scrubbed from error messages.
    async fn accept(
        &self,
        token: &Secret,
        body: &Token,
        stale: &Option<Outcome>,
        secrets: &[&str],
    ) -> (Outcome, Option<Lifetime>) {
        let now = SystemTime::now();
        let mut identity = match identity_from_token(body, &self.service_type) {
            Ok(id) => id,
            Err(refusal) => {
                return (
                    Outcome::Refused(refusal.to_string().into()),
                    self.negative(),
                );
            }
        };
        match self
            .groups(token, &identity.user_id, has_access_rules(body))
            .await
        {
            Ok(groups) => identity.groups = groups,
            Err(e) => return self.unavailable(scrub(&kk_core::error_chain(&e), secrets), stale),
        }
        let expires_at = token_expiry(body, now);
        let left = expires_at.duration_since(now).unwrap_or(Duration::ZERO);
        let fresh = self.cache_config.ttl.min(left);
        let usable = if self.cache_config.serve_stale {
            left
        } else {
            fresh
        };
        (
            Outcome::Authenticated(self.intern(identity), expires_at),
            Some(Lifetime { fresh, usable }),
        )
    }

    /// The user's group names. Listing them may be refused (a credential with access rules
    /// may only call what its rules name, so Keystone refuses its token that call): then the
    /// user has no Keystone groups, which can only give fewer permissions, never more. With a
    /// service identity that may list users' groups, such a credential gets its groups too.
    async fn groups(
        &self,
        token: &Secret,
        user_id: &str,
        access_rules: bool,
    ) -> Result<Vec<String>, KeystoneError> {
        let refused = |e: &KeystoneError| {
            matches!(
                e,
                KeystoneError::Status {
                    status: 401 | 403 | 404,
                    ..
                }
            )
        };
        let mut service_refused = false;
        if self.keystone.has_service_identity() {
            match self.keystone.user_groups(token, user_id, true).await {
                Ok(g) => return Ok(g),
                Err(e) if refused(&e) => {
                    service_refused = true;
                    debug!(error = %e, "service identity may not list groups; trying the token itself")
                }
                Err(e) => return Err(e),
            }
        }
        if access_rules {
            debug!(
                "application credential with access rules: its groups cannot be listed with its own token"
            );
            if !self.groups_skip_logged.swap(true, Ordering::Relaxed) {
                if service_refused {
                    warn!(
                        "the service identity may not list users' groups, and an application credential with access rules cannot list its own: such tokens get no Keystone groups, so group RoleBindings and group policy rules do not apply to them (logged once)"
                    );
                } else {
                    info!(
                        "an application credential with access rules cannot list its user's groups and no [keystone.service_identity] is configured: such tokens get no Keystone groups, so group RoleBindings and group policy rules do not apply to them (logged once)"
                    );
                }
            }
            return Ok(Vec::new());
        }
        match self.keystone.user_groups(token, user_id, false).await {
            Ok(g) => Ok(g),
            Err(e) if refused(&e) => {
                warn!(error = %e, "cannot list the user's groups; answering without Keystone groups");
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod interner_tests {
    use super::*;

    fn identity(user: &str) -> Identity {
        Identity {
            user_id: format!("{user}-id"),
            user_name: user.into(),
            user_domain_id: "default".into(),
            user_domain_name: "Default".into(),
            project_id: "p1".into(),
            project_name: "team-a".into(),
            project_domain_id: "default".into(),
            roles_complete: true,
            roles: vec!["member".into()],
            groups: vec!["devs".into()],
            application_credential_id: None,
            access_rules: Vec::new(),
        }
    }

    fn render(id: &Identity) -> RenderedUser {
        RenderedUser::new(&user_info(id, UsernameFormat::Name, &[]))
    }

    #[test]
    fn equal_identities_share_one_arc_and_unreferenced_ones_are_pruned() {
        let interner = Interner::default();
        let a1 = interner.intern(identity("alice"), 0, render);
        let a2 = interner.intern(identity("alice"), 0, |_| unreachable!("rendered twice"));
        assert!(Arc::ptr_eq(&a1, &a2));
        let mut other = identity("alice");
        other.roles.push("reader".into());
        let b = interner.intern(other, 0, render);
        assert!(!Arc::ptr_eq(&a1, &b));
        assert_eq!(interner.len(), 2);
        drop(b);
        // Fill past the first prune point with identities nobody keeps.
        for i in 0..2_000 {
            drop(interner.intern(identity(&format!("u{i}")), 0, render));
        }
        assert!(interner.len() <= 1_024, "{}", interner.len());
        // A kept identity survives pruning and is still the shared one.
        assert!(Arc::ptr_eq(
            &a1,
            &interner.intern(identity("alice"), 0, render)
        ));
    }

    /// After a role-mapping reload the identity is rendered again, and the new rendering
    /// replaces the old one for the tokens validated afterwards.
    #[test]
    fn a_newer_generation_renders_again_and_replaces_the_shared_entry() {
        let interner = Interner::default();
        let old = interner.intern(identity("alice"), 0, render);
        let renamed = |_: &Identity| {
            RenderedUser::new(&kk_core::k8s::UserInfo {
                username: "renamed".into(),
                ..Default::default()
            })
        };
        let new = interner.intern(identity("alice"), 1, renamed);
        assert!(!Arc::ptr_eq(&old, &new));
        assert_eq!(old.user.username(), "alice");
        assert_eq!(new.user.username(), "renamed");
        assert_eq!(interner.len(), 1);
        let again = interner.intern(identity("alice"), 1, |_| unreachable!("rendered twice"));
        assert!(Arc::ptr_eq(&new, &again));
    }
}
