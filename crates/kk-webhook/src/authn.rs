//! Authentication: from a bearer token to a TokenReview status, through the prefilter, the
//! cache and Keystone.
//!
//! | Keystone says | answer | cached |
//! |---|---|---|
//! | token valid, project-scoped, rules allow `k8s` | `authenticated: true` + user | min(TTL, token expiry) |
//! | 404/401 (unknown, expired, revoked, deleted credential, disabled user) | `authenticated: false` | negative TTL |
//! | valid but unscoped, or rules exclude `k8s` | `authenticated: false` + reason | negative TTL |
//! | unreachable, timeout, 5xx | `authenticated: false` + `error` | no (optionally a stale valid answer) |

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use crate::cache::{Key, Lifetime, TokenCache};
use crate::config::CacheConfig;
use crate::identity::{
    Identity, UsernameFormat, has_access_rules, identity_from_token, prefilter, user_info,
};
use kk_core::k8s::TokenReviewStatus;
use kk_core::keystone::{KeystoneClient, KeystoneError};
use kk_core::metrics::Metrics;
use kk_core::secret::Secret;
use kk_policy::sync_config::RoleMapping;

/// What the cache keeps for a token.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A valid token's identity.
    Authenticated(Arc<Identity>),
    /// A definite "no", with the reason given to the apiserver.
    Refused(Arc<str>),
    /// Keystone could not decide; never cached.
    Unavailable(Arc<str>),
}

/// The result of one review, with what the decision log line needs.
#[derive(Debug)]
pub struct Review {
    /// The status to answer.
    pub status: TokenReviewStatus,
    /// `authenticated`, `unauthenticated` or `error`.
    pub result: &'static str,
    /// Why (empty when authenticated).
    pub reason: String,
    /// Where the answer came from: `hit`, `miss`, `coalesced`, `prefilter`, `stale`.
    pub source: &'static str,
    /// The identity, when authenticated (for the namespace sync).
    pub identity: Option<Arc<Identity>>,
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
}

/// The role mappings in force, shared by the token reviews and the namespace sync's naming of
/// users, replaced as a whole when the sync config is reloaded.
#[derive(Debug, Clone, Default)]
pub struct RoleMappings(Arc<std::sync::RwLock<Arc<Vec<RoleMapping>>>>);

impl RoleMappings {
    /// Mappings to start with.
    pub fn new(mappings: Vec<RoleMapping>) -> Self {
        Self(Arc::new(std::sync::RwLock::new(Arc::new(mappings))))
    }

    /// The mappings in force.
    pub fn current(&self) -> Arc<Vec<RoleMapping>> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces them.
    pub fn set(&self, mappings: Vec<RoleMapping>) {
        let new = Arc::new(mappings);
        match self.0.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
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
        }
    }

    /// The Keystone client (for readiness checks).
    pub fn keystone(&self) -> &KeystoneClient {
        &self.keystone
    }

    /// Reviews one token.
    pub async fn review(&self, token: &Secret) -> Review {
        if let Err(why) = prefilter(token.expose(), self.max_token_length) {
            self.metrics.inc(
                kk_core::metrics::Counter::TokensPrefiltered,
                &[("reason", why.as_str())],
            );
            return Review {
                status: TokenReviewStatus {
                    authenticated: false,
                    user: None,
                    error: None,
                },
                result: "unauthenticated",
                reason: why.reason().to_string(),
                source: "prefilter",
                identity: None,
            };
        }
        let stale_flag = AtomicBool::new(false);
        let flag = &stale_flag;
        let (outcome, cache_status) = self
            .cache
            .get_or_compute(Key::of(token), move |stale| async move {
                let (outcome, lifetime) = self.validate(token, stale).await;
                if lifetime.is_none() && matches!(outcome, Outcome::Authenticated(_)) {
                    flag.store(true, Ordering::Relaxed);
                }
                (outcome, lifetime)
            })
            .await;
        let served_stale = stale_flag.load(Ordering::Relaxed);
        let source = if served_stale {
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
            Outcome::Authenticated(id) => Review {
                status: TokenReviewStatus {
                    authenticated: true,
                    user: Some(user_info(
                        &id,
                        self.username_format,
                        &self.role_mappings.current(),
                    )),
                    error: None,
                },
                result: "authenticated",
                reason: String::new(),
                source,
                identity: Some(id),
            },
            Outcome::Refused(reason) => Review {
                status: TokenReviewStatus {
                    authenticated: false,
                    user: None,
                    error: None,
                },
                result: "unauthenticated",
                reason: reason.to_string(),
                source,
                identity: None,
            },
            Outcome::Unavailable(reason) => Review {
                status: TokenReviewStatus {
                    authenticated: false,
                    user: None,
                    error: Some(reason.to_string()),
                },
                result: "error",
                reason: reason.to_string(),
                source,
                identity: None,
            },
        }
    }

    fn negative(&self) -> Option<Lifetime> {
        Some(Lifetime {
            fresh: self.cache_config.negative_ttl,
            usable: self.cache_config.negative_ttl,
        })
    }

    /// One Keystone round: validate, check, fetch groups.
    async fn validate(
        &self,
        token: &Secret,
        stale: Option<Outcome>,
    ) -> (Outcome, Option<Lifetime>) {
        let unavailable = |e: &KeystoneError| -> (Outcome, Option<Lifetime>) {
            let message = kk_core::error_chain(e);
            if self.cache_config.serve_stale
                && let Some(Outcome::Authenticated(id)) = &stale
                && id.expires_at > SystemTime::now()
            {
                warn!(error = %message, user = %id.user_name, "Keystone unavailable; answering from the cache");
                return (Outcome::Authenticated(id.clone()), None);
            }
            (
                Outcome::Unavailable(format!("Keystone unavailable: {message}").into()),
                None,
            )
        };
        let body = match self.keystone.validate_token(token).await {
            Ok(body) => body,
            Err(e) if e.is_unavailable() => return unavailable(&e),
            Err(e) => {
                debug!(error = %e, "token refused by Keystone");
                return (
                    Outcome::Refused("token not accepted by Keystone".into()),
                    self.negative(),
                );
            }
        };
        let now = SystemTime::now();
        let mut identity = match identity_from_token(&body, &self.service_type, now) {
            Ok(id) => id,
            Err(refusal) => {
                return (
                    Outcome::Refused(refusal.to_string().into()),
                    self.negative(),
                );
            }
        };
        match self
            .groups(token, &identity.user_id, has_access_rules(&body))
            .await
        {
            Ok(groups) => identity.groups = groups,
            Err(e) => return unavailable(&e),
        }
        let left = identity
            .expires_at
            .duration_since(now)
            .unwrap_or(Duration::ZERO);
        let fresh = self.cache_config.ttl.min(left);
        let usable = if self.cache_config.serve_stale {
            left
        } else {
            fresh
        };
        (
            Outcome::Authenticated(Arc::new(identity)),
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
