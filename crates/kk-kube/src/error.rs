//! [`KubeError`]: what went wrong talking to kube-apiserver, classified so that callers can
//! branch (a 404 is an answer, a 409 means "read again", a 429 or 5xx means "later").
//!
//! No variant holds a credential: messages are the API's `Status.message` (which never echoes
//! the bearer token) or this client's own words, and URLs carry no query.

use std::time::Duration;

/// An error from a Kubernetes API call. `call` says what was being done
/// (`create rolebinding team-a/u1_member`).
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// 404: the object (or its namespace) does not exist.
    #[error("{call}: not found (HTTP 404): {message}")]
    NotFound {
        /// What was being done.
        call: String,
        /// The API's message.
        message: String,
    },
    /// 409: `AlreadyExists` on a create, `Conflict` on an update or a delete with a stale
    /// `resourceVersion`. Read the object again and decide again.
    #[error("{call}: conflict (HTTP 409, {reason}): {message}")]
    Conflict {
        /// What was being done.
        call: String,
        /// `AlreadyExists` or `Conflict`.
        reason: String,
        /// The API's message.
        message: String,
    },
    /// 429: the API server is shedding load.
    #[error("{call}: too many requests (HTTP 429): {message}")]
    TooManyRequests {
        /// What was being done.
        call: String,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
        /// The API's message.
        message: String,
    },
    /// 401: the credential is not accepted (expired token, unknown certificate).
    #[error(
        "{call}: unauthorized (HTTP 401): the API server does not accept this service's credential"
    )]
    Unauthorized {
        /// What was being done.
        call: String,
    },
    /// 403: RBAC refuses it (the service's ClusterRole lacks a verb, or `bind`).
    #[error("{call}: forbidden (HTTP 403): {message}")]
    Forbidden {
        /// What was being done.
        call: String,
        /// The API's message (names the verb, resource and user).
        message: String,
    },
    /// 400 or 422: the object is not valid.
    #[error("{call}: invalid (HTTP {status}): {message}")]
    Invalid {
        /// What was being done.
        call: String,
        /// 400 or 422.
        status: u16,
        /// The API's message.
        message: String,
    },
    /// 5xx.
    #[error("{call}: server error (HTTP {status}): {message}")]
    Server {
        /// What was being done.
        call: String,
        /// The status.
        status: u16,
        /// The API's message.
        message: String,
    },
    /// Any other status.
    #[error("{call}: unexpected HTTP {status}: {message}")]
    Status {
        /// What was being done.
        call: String,
        /// The status.
        status: u16,
        /// The API's message.
        message: String,
    },
    /// No answer within the limit.
    #[error("{call}: no answer from {url} within {timeout:?}")]
    Timeout {
        /// What was being done.
        call: String,
        /// The URL (no query).
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// Connection refused, TLS failure, DNS.
    #[error("{call}: cannot reach {url}")]
    Unreachable {
        /// What was being done.
        call: String,
        /// The URL (no query).
        url: String,
        /// The transport error (without its URL).
        #[source]
        source: reqwest::Error,
    },
    /// The answer could not be read or understood.
    #[error("{call}: unexpected answer: {detail}")]
    Protocol {
        /// What was being done.
        call: String,
        /// What was wrong.
        detail: String,
    },
    /// The credential could not be read (a token file that went away).
    #[error("cannot read the Kubernetes credential: {0}")]
    Credential(String),
}

impl KubeError {
    /// Whether trying the same call again later may succeed (429, 5xx, timeouts, transport
    /// errors, 401 after a token rotation, 409).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, KubeError::Invalid { .. } | KubeError::NotFound { .. })
    }

    /// Whether this is a 409.
    pub fn is_conflict(&self) -> bool {
        matches!(self, KubeError::Conflict { .. })
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, KubeError::NotFound { .. })
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            KubeError::TooManyRequests { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short label for metrics (a closed set).
    pub fn label(&self) -> &'static str {
        match self {
            KubeError::NotFound { .. } => "not_found",
            KubeError::Conflict { .. } => "conflict",
            KubeError::TooManyRequests { .. } => "too_many_requests",
            KubeError::Unauthorized { .. } => "unauthorized",
            KubeError::Forbidden { .. } => "forbidden",
            KubeError::Invalid { .. } => "invalid",
            KubeError::Server { .. } => "server_error",
            KubeError::Status { .. } => "unexpected_status",
            KubeError::Timeout { .. } => "timeout",
            KubeError::Unreachable { .. } => "unreachable",
            KubeError::Protocol { .. } => "protocol_error",
            KubeError::Credential(_) => "credential",
        }
    }

    /// The error for an answer with status `status` and `message` (from its `Status` body).
    pub(crate) fn from_status(
        call: String,
        status: u16,
        reason: String,
        message: String,
        retry_after: Option<Duration>,
    ) -> Self {
        match status {
            404 => KubeError::NotFound { call, message },
            409 => KubeError::Conflict {
                call,
                reason,
                message,
            },
            429 => KubeError::TooManyRequests {
                call,
                retry_after,
                message,
            },
            401 => KubeError::Unauthorized { call },
            403 => KubeError::Forbidden { call, message },
            400 | 422 => KubeError::Invalid {
                call,
                status,
                message,
            },
            500..=599 => KubeError::Server {
                call,
                status,
                message,
            },
            _ => KubeError::Status {
                call,
                status,
                message,
            },
        }
    }
}
