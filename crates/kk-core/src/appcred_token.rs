//! The application-credential bearer token: an application credential (id and secret) in one
//! string that any client can send as `Authorization: Bearer <token>` (no kubectl plugin), and
//! that `k8s-keystone-auth` exchanges for a Keystone token when the operator enables it.
//!
//! ```text
//! kkac1_<base64url(id)>.<base64url(secret)>
//! ```
//!
//! * `kkac1_`: a fixed prefix: `kkac` (kubernetes-keystone application credential) and the
//!   format's version `1`. A Keystone fernet token starts with `gAAAA`, a JWT (a Keystone JWS
//!   token, a ServiceAccount token) with `eyJ` and has three dot-separated parts: neither can
//!   start with `kkac`.
//! * the id and the secret, each base64url without padding (RFC 4648 §5: `A-Z a-z 0-9 - _`),
//!   separated by one `.`, which base64url never contains. Any id and secret fit, whatever
//!   their characters.
//! * every character is one of RFC 6750's `b64token`, so the token goes into an
//!   `Authorization` header, a kubeconfig's `token:` or an environment variable unquoted.
//!
//! The token is a secret as a whole: it is kept in a [`Secret`], and [`AppCredToken`]'s
//! `Debug` shows only the id.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secret::Secret;

/// What every token of this form starts with (`kkac`), before the version.
pub const FAMILY: &str = "kkac";
/// The prefix of the current version.
pub const PREFIX: &str = "kkac1_";
/// Longest id or secret accepted when parsing (Keystone's ids are 32 hex characters; its
/// generated secrets 86 characters).
pub const MAX_PART: usize = 1024;

/// An application credential carried as a bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct AppCredToken {
    /// The credential's id (not a secret).
    pub id: String,
    /// The credential's secret.
    pub secret: Secret,
}

impl std::fmt::Debug for AppCredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredToken")
            .field("id", &self.id)
            .field("secret", &self.secret)
            .finish()
    }
}

/// Why a string of the `kkac` family is not a usable token (no part of the string is shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Another version than this build knows.
    #[error(
        "unsupported version of the application credential token (this build reads {PREFIX}...)"
    )]
    UnsupportedVersion,
    /// Not `<id>.<secret>` in base64url after the prefix, or a part empty, too long or not UTF-8.
    #[error(
        "malformed application credential token (expected {PREFIX}<base64url id>.<base64url secret>)"
    )]
    Malformed,
}

/// Whether `token` claims to be of this family (any version): such tokens are never Keystone
/// tokens, so they are never sent to Keystone as one.
pub fn is_appcred_token(token: &str) -> bool {
    token.starts_with(FAMILY)
}

impl AppCredToken {
    /// A token for a credential.
    pub fn new(id: impl Into<String>, secret: Secret) -> Self {
        Self {
            id: id.into(),
            secret,
        }
    }

    /// The bearer token (a secret).
    pub fn encode(&self) -> Secret {
        Secret::new(format!(
            "{PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(self.id.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.secret.expose().as_bytes())
        ))
    }

    /// Reads a bearer token. `Ok(None)`: not of this family (a Keystone token, a JWT, ...).
    pub fn parse(token: &str) -> Result<Option<Self>, ParseError> {
        if !is_appcred_token(token) {
            return Ok(None);
        }
        let Some(rest) = token.strip_prefix(PREFIX) else {
            return Err(ParseError::UnsupportedVersion);
        };
        let (id, secret) = rest.split_once('.').ok_or(ParseError::Malformed)?;
        let part = |p: &str| -> Result<String, ParseError> {
            if p.is_empty() || p.len() > MAX_PART * 4 / 3 + 4 {
                return Err(ParseError::Malformed);
            }
            let bytes = URL_SAFE_NO_PAD
                .decode(p)
                .map_err(|_| ParseError::Malformed)?;
            String::from_utf8(bytes).map_err(|_| ParseError::Malformed)
        };
        let id = part(id)?;
        let secret = Secret::new(part(secret)?);
        if id.len() > MAX_PART || secret.len() > MAX_PART {
            return Err(ParseError::Malformed);
        }
        Ok(Some(Self { id, secret }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_round_trips() {
        let t = AppCredToken::new("4f2c", Secret::new("s3cr:et"));
        let bearer = t.encode();
        assert_eq!(bearer.expose(), "kkac1_NGYyYw.czNjcjpldA");
        assert_eq!(AppCredToken::parse(bearer.expose()), Ok(Some(t)));
    }

    #[test]
    fn keystone_tokens_and_jwts_are_not_of_the_family() {
        for other in [
            "gAAAAABpK0M3ZK8n7qfh0r0R0kRk0Zb4cXc-ZKJx8wWnZ2U5Nnw_bl0aB2vYkZ3mWQ==",
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
            "abcdef.0123456789abcdef",
            "",
        ] {
            assert_eq!(AppCredToken::parse(other), Ok(None), "{other}");
        }
    }

    #[test]
    fn bad_tokens_of_the_family_are_errors_that_show_nothing() {
        assert_eq!(
            AppCredToken::parse("kkac2_aWQ.c2Vj"),
            Err(ParseError::UnsupportedVersion)
        );
        for bad in [
            "kkac1_",
            "kkac1_aWQ",
            "kkac1_aWQ.",
            "kkac1_.c2Vj",
            "kkac1_aWQ.c2Vj.eA",
            "kkac1_aWQ=.c2Vj",
            "kkac1_a+Q.c2Vj",
            "kkac1_aWQ.__8",
        ] {
            let e = AppCredToken::parse(bad).unwrap_err();
            assert_eq!(e, ParseError::Malformed, "{bad}");
            assert!(!e.to_string().contains("c2Vj"));
        }
        let long = format!(
            "kkac1_aWQ.{}",
            URL_SAFE_NO_PAD.encode("x".repeat(MAX_PART + 1))
        );
        assert_eq!(AppCredToken::parse(&long), Err(ParseError::Malformed));
    }

    #[test]
    fn debug_shows_the_id_only() {
        let t = AppCredToken::new("id-1", Secret::new("topsecret"));
        let shown = format!("{t:?}");
        assert!(
            shown.contains("id-1") && !shown.contains("topsecret"),
            "{shown}"
        );
        assert_eq!(format!("{}", t.encode()), "<redacted>");
    }

    proptest::proptest! {
        #[test]
        fn any_credential_round_trips_in_header_safe_characters(
            id in "\\PC{1,80}",
            secret in "\\PC{1,200}",
        ) {
            let t = AppCredToken::new(id, Secret::new(secret));
            let bearer = t.encode();
            let s = bearer.expose();
            proptest::prop_assert!(s.starts_with(PREFIX));
            proptest::prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
            proptest::prop_assert_eq!(s.matches('.').count(), 1);
            proptest::prop_assert_eq!(AppCredToken::parse(s), Ok(Some(t)));
        }

        #[test]
        fn parsing_never_panics(s in "kkac.{0,300}") {
            let _ = AppCredToken::parse(&s);
        }
    }
}
