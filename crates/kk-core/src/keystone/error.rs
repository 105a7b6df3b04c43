//! [`KeystoneError`]: what went wrong talking to Keystone, typed so callers can branch.

use std::time::Duration;

/// An error from a Keystone call.
#[derive(Debug, thiserror::Error)]
pub enum KeystoneError {
    /// Keystone says the subject token is not valid (unknown, expired, revoked, its credential
    /// or user deleted or disabled). This is an answer, not a failure.
    #[error("Keystone does not accept the token (HTTP {status})")]
    InvalidToken {
        /// 404 or 401.
        status: u16,
    },
    /// Keystone refused the credentials offered to `POST /v3/auth/tokens`.
    #[error("Keystone refused the credentials (HTTP {status}): {message}")]
    Unauthorized {
        /// 401 or 404 (unknown application credential).
        status: u16,
        /// Keystone's message.
        message: String,
    },
    /// Keystone could not be reached (connection refused, DNS, TLS).
    #[error("cannot reach Keystone at {url}")]
    Unreachable {
        /// The URL that was called (never carries a secret).
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Keystone did not answer in time.
    #[error("Keystone at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The URL that was called.
        url: String,
        /// The configured limit.
        timeout: Duration,
    },
    /// Keystone answered with a status this call does not expect (5xx, 403, ...).
    #[error("Keystone answered HTTP {status} to {call}: {message}")]
    Status {
        /// What was being done.
        call: &'static str,
        /// HTTP status.
        status: u16,
        /// Keystone's message (never a token).
        message: String,
    },
    /// Keystone's answer could not be understood.
    #[error("unexpected answer from Keystone to {call}: {detail}")]
    Protocol {
        /// What was being done.
        call: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl KeystoneError {
    /// Whether this is "Keystone could not decide" (unreachable, slow, 5xx, misconfigured),
    /// as opposed to a definite "no".
    pub fn is_unavailable(&self) -> bool {
        !matches!(
            self,
            KeystoneError::InvalidToken { .. } | KeystoneError::Unauthorized { .. }
        )
    }

    /// A short label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            KeystoneError::InvalidToken { .. } => "rejected",
            KeystoneError::Unauthorized { .. } => "unauthorized",
            KeystoneError::Unreachable { .. } => "unreachable",
            KeystoneError::Timeout { .. } => "timeout",
            KeystoneError::Status { status, .. } if *status >= 500 => "server_error",
            KeystoneError::Status { .. } => "unexpected_status",
            KeystoneError::Protocol { .. } => "protocol_error",
        }
    }
}
