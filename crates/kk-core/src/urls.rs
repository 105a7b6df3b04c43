//! URL helpers shared by the service, the plugin and the charm.

use reqwest::Url;

/// The URL as it may appear in a message: no user info, no query, no fragment (they may hold
/// a password or a token). Works on text that is not a URL at all, too.
pub fn redact_url(raw: &str) -> String {
    let raw = raw.trim();
    let (head, cut) = match raw.find(['?', '#']) {
        Some(i) => (&raw[..i], true),
        None => (raw, false),
    };
    let (scheme, rest) = match head.find("://") {
        Some(i) => (&head[..i + 3], &head[i + 3..]),
        None => ("", head),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(i) => format!("<redacted>@{}", &authority[i + 1..]),
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}{authority}{path}");
    if cut {
        out.push_str("?<redacted>");
    }
    out
}

/// Whether a URL names this machine (127.0.0.0/8, ::1 or `localhost`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for (u, want) in [
            ("https://127.0.0.1:8443/x", true),
            ("https://127.3.2.1/", true),
            ("https://[::1]:8443/", true),
            ("http://localhost/", true),
            ("https://10.0.0.1/", false),
            ("https://keystone.example/", false),
        ] {
            assert_eq!(is_loopback(&Url::parse(u).unwrap()), want, "{u}");
        }
    }
}
