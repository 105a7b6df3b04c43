//! The charm's options (config.yaml) as `config-get --all --format=json` gives them, validated
//! into [`Settings`]. Pure: nothing is read from disk or the network. Every error names the
//! option, so the unit can be `blocked` with a message the operator can act on.

use std::collections::BTreeMap;

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use url::Url;

use kk_core::secret::Secret;

/// The policy installed when the `policy` option is empty (charm/default-policy.json).
pub const DEFAULT_POLICY: &str = include_str!("../../../charm/default-policy.json");

/// Where the service binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinarySource {
    /// `bin/k8s-keystone-auth` in the charm directory.
    Shipped,
    /// Downloaded, with an optional (required for http://) SHA-256 in lower-case hex.
    Download {
        /// The URL.
        url: Url,
        /// Expected SHA-256.
        sha256: Option<String>,
    },
}

/// Operator-supplied serving TLS.
#[derive(Debug, Clone)]
pub struct UserTls {
    /// Certificate chain (PEM).
    pub cert: String,
    /// Private key (PEM).
    pub key: Secret,
    /// CA that signed `cert` (PEM), pinned in the kubeconfigs.
    pub ca: String,
}

/// Validated options.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Keystone v3 base URL.
    pub keystone_url: String,
    /// Service binary source.
    pub binary: BinarySource,
    /// Authentication webhook URL; `None` = the local service.
    pub authn_url: Option<Url>,
    /// Authorization webhook URL; `None` = the local service.
    pub authz_url: Option<Url>,
    /// Local HTTPS port.
    pub port: u16,
    /// Keystone CA bundle (PEM).
    pub keystone_ca: Option<String>,
    /// Policy JSON (the default policy when the option is empty).
    pub policy: String,
    /// Sync config YAML.
    pub sync_config: Option<String>,
    /// kube-apiserver `--authorization-mode`.
    pub authorization_mode: String,
    /// Whether the charm sets kube-apiserver's authentication webhook options (off on Charmed
    /// Kubernetes >= 1.19, whose own auth-webhook must keep them).
    pub authentication_webhook: bool,
    /// Serving TLS from the options; `None` = the charm's own CA and certificate.
    pub tls: Option<UserTls>,
    /// Positive cache TTL, as written (`60s`).
    pub cache_ttl: String,
    /// Negative cache TTL, as written (`10s`).
    pub cache_negative_ttl: String,
    /// kube-apiserver `--authentication-token-webhook-cache-ttl`, as written (`30s`).
    pub apiserver_authn_cache_ttl: String,
    /// Service log level.
    pub log_level: String,
}

impl Settings {
    /// Whether kube-apiserver's authorization webhook is used (`Webhook` in the mode).
    pub fn authz_webhook(&self) -> bool {
        self.authorization_mode.split(',').any(|m| m == "Webhook")
    }

    /// Whether the local service must listen on all addresses (a server URL names a host that
    /// is not a loopback address).
    pub fn listen_all(&self) -> bool {
        [&self.authn_url, &self.authz_url]
            .into_iter()
            .flatten()
            .any(|u| !kk_core::urls::is_loopback(u))
    }

    /// Extra DNS names / IPs the charm-made server certificate must cover.
    pub fn extra_sans(&self) -> Vec<String> {
        let mut v: Vec<String> = [&self.authn_url, &self.authz_url]
            .into_iter()
            .flatten()
            .filter_map(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
            .filter(|h| h != "127.0.0.1" && h != "localhost")
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A bad option: the option's name and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    /// The option (`keystone-url`).
    pub option: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.option, self.message)
    }
}

struct Opts<'a> {
    map: &'a BTreeMap<String, Value>,
    errors: Vec<OptionError>,
}

impl Opts<'_> {
    fn err(&mut self, option: &'static str, message: impl Into<String>) {
        self.errors.push(OptionError {
            option,
            message: message.into(),
        });
    }

    /// A string option, trimmed; `null`/absent → "".
    fn string(&mut self, option: &'static str) -> String {
        match self.map.get(option) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.trim().to_string(),
            // The value is not echoed: it may be a secret (tls-key).
            Some(other) => {
                self.err(
                    option,
                    format!("expected a string, got {}", type_name(other)),
                );
                String::new()
            }
        }
    }
}

/// The JSON type of a value, for messages that must not show the value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Whether a URL-like value carries user info (`user:pass@`): parsed, or by its shape when it
/// does not parse.
fn has_user_info(raw: &str) -> bool {
    match Url::parse(raw) {
        Ok(u) => !u.username().is_empty() || u.password().is_some(),
        Err(_) => {
            let rest = raw.split_once("://").map_or(raw, |(_, r)| r);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            authority.contains('@')
        }
    }
}

/// Validates every option; all errors are returned, in config.yaml order.
pub fn validate(map: &BTreeMap<String, Value>) -> Result<Settings, Vec<OptionError>> {
    let mut o = Opts {
        map,
        errors: Vec::new(),
    };

    let keystone_url = {
        let raw = o.string("keystone-url");
        if raw.is_empty() {
            o.err("keystone-url", "is required (juju config kubernetes-keystone keystone-url=https://keystone:5000/v3)");
            String::new()
        } else {
            if has_user_info(&raw) {
                o.err("keystone-url", "must not carry a user name or password");
                String::new()
            } else {
                match kk_core::keystone::normalize_url(&raw) {
                    Ok(u) => u.to_string(),
                    Err(e) => {
                        o.err("keystone-url", e);
                        String::new()
                    }
                }
            }
        }
    };

    let sha = o.string("k8s-keystone-auth-sha256").to_ascii_lowercase();
    if !sha.is_empty() && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit())) {
        o.err("k8s-keystone-auth-sha256", "must be 64 hexadecimal digits");
    }
    let binary = {
        let raw = o.string("k8s-keystone-auth-url");
        if raw.is_empty() {
            BinarySource::Shipped
        } else if has_user_info(&raw) {
            // It would be shown in statuses and logs: refused, and never echoed.
            o.err(
                "k8s-keystone-auth-url",
                "must not carry a user name or password (it would appear in statuses and logs)",
            );
            BinarySource::Shipped
        } else {
            match Url::parse(&raw) {
                Ok(url) if url.scheme() == "https" => BinarySource::Download {
                    url,
                    sha256: (!sha.is_empty()).then(|| sha.clone()),
                },
                Ok(url) if url.scheme() == "http" => {
                    if sha.is_empty() {
                        o.err(
                            "k8s-keystone-auth-url",
                            "a plain http:// download needs k8s-keystone-auth-sha256",
                        );
                    }
                    BinarySource::Download {
                        url,
                        sha256: Some(sha.clone()),
                    }
                }
                Ok(url) => {
                    o.err(
                        "k8s-keystone-auth-url",
                        format!("scheme {:?} is not https:// or http://", url.scheme()),
                    );
                    BinarySource::Shipped
                }
                Err(e) => {
                    o.err("k8s-keystone-auth-url", format!("is not a URL: {e}"));
                    BinarySource::Shipped
                }
            }
        }
    };

    let authn_url = server_url(&mut o, "authn-server-url", "authenticate");
    let authz_url = server_url(&mut o, "authz-server-url", "authorize");

    let port = match map.get("port") {
        None | Some(Value::Null) => 8443,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(p) if (1024..=65535).contains(&p) => p as u16,
            _ => {
                o.err("port", format!("{n} is not a port between 1024 and 65535"));
                8443
            }
        },
        Some(other) => {
            o.err("port", format!("expected an integer, got {other}"));
            8443
        }
    };

    let keystone_ca = {
        let raw = o.string("keystone-ca");
        if raw.is_empty() {
            None
        } else {
            match pem_option(&raw).and_then(|pem| check_ca(&pem).map(|()| pem)) {
                Ok(pem) => Some(pem),
                Err(e) => {
                    o.err("keystone-ca", e);
                    None
                }
            }
        }
    };

    let policy = {
        let raw = o.string("policy");
        let text = if raw.is_empty() {
            DEFAULT_POLICY.to_string()
        } else {
            raw
        };
        if let Err(e) = kk_policy::Policy::parse(&text) {
            o.err("policy", e.to_string());
        }
        text
    };

    let sync_config = {
        let raw = o.string("sync-config");
        if raw.is_empty() {
            None
        } else {
            match kk_policy::sync_config::parse(&raw) {
                Err(e) => o.err("sync-config", e),
                // The service would need a Kubernetes credential of its own for that, which
                // this charm does not give it (docs/charm.md).
                Ok(p) if !p.config.data_types_to_sync.is_empty() => o.err(
                    "sync-config",
                    "data-types-to-sync needs a Kubernetes API credential for the service, which this charm does not give it: leave it empty (role-mappings still apply), or run the service with deploy/kubernetes (docs/sync.md)".to_string(),
                ),
                Ok(_) => {}
            }
            Some(raw)
        }
    };

    let authorization_mode = {
        let raw = match map.get("authorization-mode") {
            None | Some(Value::Null) => "Node,RBAC,Webhook".to_string(),
            Some(_) => o.string("authorization-mode"),
        };
        let known = [
            "Node",
            "RBAC",
            "Webhook",
            "ABAC",
            "AlwaysAllow",
            "AlwaysDeny",
        ];
        if raw.is_empty() {
            o.err("authorization-mode", "is empty");
        } else if let Some(bad) = raw.split(',').find(|m| !known.contains(m)) {
            o.err(
                "authorization-mode",
                format!("unknown mode {bad:?} (known: {})", known.join(", ")),
            );
        }
        raw
    };

    let authentication_webhook = match map.get("authentication-webhook") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            o.err(
                "authentication-webhook",
                format!("expected a boolean, got {}", type_name(other)),
            );
            true
        }
    };

    let tls = {
        let cert = o.string("tls-cert");
        let key = Secret::new(o.string("tls-key"));
        let ca = o.string("tls-ca");
        match (cert.is_empty(), key.is_empty()) {
            (true, true) => {
                if !ca.is_empty() {
                    o.err("tls-ca", "is set but tls-cert is not");
                }
                None
            }
            (false, true) => {
                o.err("tls-key", "tls-cert is set but tls-key is not");
                None
            }
            (true, false) => {
                o.err("tls-cert", "tls-key is set but tls-cert is not");
                None
            }
            (false, false) => user_tls(&mut o, &cert, &key, &ca),
        }
    };

    let cache_ttl = duration(&mut o, "cache-ttl", "60s");
    let cache_negative_ttl = duration(&mut o, "cache-negative-ttl", "10s");
    let apiserver_authn_cache_ttl = duration(&mut o, "apiserver-authn-cache-ttl", "30s");

    let log_level = {
        let raw = o.string("log-level").to_ascii_lowercase();
        let raw = if raw.is_empty() { "info".into() } else { raw };
        if !["error", "warn", "info", "debug", "trace"].contains(&raw.as_str()) {
            o.err(
                "log-level",
                format!("{raw:?} is not one of error, warn, info, debug, trace"),
            );
        }
        raw
    };

    if !o.errors.is_empty() {
        return Err(o.errors);
    }
    Ok(Settings {
        keystone_url,
        binary,
        authn_url,
        authz_url,
        port,
        keystone_ca,
        policy,
        sync_config,
        authorization_mode,
        authentication_webhook,
        tls,
        cache_ttl,
        cache_negative_ttl,
        apiserver_authn_cache_ttl,
        log_level,
    })
}

/// A webhook URL kube-apiserver POSTs reviews to. It must name the service's endpoint
/// (`/<endpoint>` or `/webhook`, possibly behind a path prefix): kube-apiserver posts to the
/// URL as written, and `/` is not an endpoint. The raw value is never echoed (it could carry a
/// password).
fn server_url(o: &mut Opts<'_>, option: &'static str, endpoint: &str) -> Option<Url> {
    let raw = o.string(option);
    if raw.is_empty() {
        return None;
    }
    match Url::parse(&raw) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => {
            if u.query().is_some()
                || u.fragment().is_some()
                || !u.username().is_empty()
                || u.password().is_some()
            {
                o.err(
                    option,
                    "must not have a query, fragment, user name or password",
                );
                return None;
            }
            let last = u
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or("");
            if last != endpoint && last != "webhook" {
                let mut example = u.clone();
                example.set_path(&format!("/{endpoint}"));
                o.err(
                    option,
                    format!(
                        "the path must end in /{endpoint} or /webhook (kube-apiserver posts to the URL as written), e.g. {example}"
                    ),
                );
                return None;
            }
            Some(u)
        }
        Ok(_) => {
            o.err(
                option,
                "must be an https:// URL with a host (kube-apiserver sends tokens to it)",
            );
            None
        }
        Err(e) => {
            o.err(option, format!("is not a URL: {e}"));
            None
        }
    }
}

fn duration(o: &mut Opts<'_>, option: &'static str, default: &str) -> String {
    let raw = o.string(option);
    let raw = if raw.is_empty() {
        default.to_string()
    } else {
        raw
    };
    match kk_core::parse_duration(&raw) {
        Ok(d) if d.as_secs() <= 3600 => {}
        Ok(_) => o.err(option, format!("{raw:?} is longer than 1h")),
        Err(e) => o.err(option, e),
    }
    raw
}

/// Accepts PEM text or base64 of PEM text (as Charmed Kubernetes' options do).
pub fn pem_option(raw: &str) -> Result<String, String> {
    if raw.contains("-----BEGIN") {
        return Ok(format!("{}\n", raw.trim()));
    }
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| "is neither PEM nor base64 of PEM".to_string())?;
    let text =
        String::from_utf8(bytes).map_err(|_| "base64 does not decode to PEM text".to_string())?;
    if !text.contains("-----BEGIN") {
        return Err("base64 does not decode to PEM".into());
    }
    Ok(format!("{}\n", text.trim()))
}

/// At least one certificate, each one parseable as an X.509 trust anchor.
pub fn check_ca(pem: &str) -> Result<(), String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, c) in certs.into_iter().enumerate() {
        roots
            .add(c)
            .map_err(|e| format!("certificate {} is not valid X.509: {e}", i + 1))?;
    }
    Ok(())
}

fn user_tls(o: &mut Opts<'_>, cert: &str, key: &Secret, ca: &str) -> Option<UserTls> {
    let cert_pem = match pem_option(cert) {
        Ok(p) => p,
        Err(e) => {
            o.err("tls-cert", e);
            return None;
        }
    };
    let key_pem = match pem_option(key.expose()) {
        Ok(p) => Secret::new(p),
        Err(e) => {
            o.err("tls-key", e);
            return None;
        }
    };
    let certs: Vec<CertificateDer<'static>> =
        match CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>() {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => {
                o.err("tls-cert", "no certificate in the PEM");
                return None;
            }
            Err(e) => {
                o.err("tls-cert", format!("invalid PEM: {e}"));
                return None;
            }
        };
    let Ok(der_key) = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes()) else {
        // Never echo the key or the parser's view of it.
        o.err("tls-key", "no valid private key in the PEM");
        return None;
    };
    let Ok(builder) = rustls::ServerConfig::builder_with_provider(kk_core::tls::provider())
        .with_safe_default_protocol_versions()
    else {
        o.err("tls-cert", "the crypto provider supports no TLS version");
        return None;
    };
    if let Err(e) = builder
        .with_no_client_auth()
        .with_single_cert(certs, der_key)
    {
        o.err("tls-key", format!("does not fit tls-cert: {e}"));
        return None;
    }
    if ca.is_empty() {
        o.err(
            "tls-ca",
            "is required with tls-cert (it is pinned in the webhook kubeconfigs)",
        );
        return None;
    }
    match pem_option(ca).and_then(|p| check_ca(&p).map(|()| p)) {
        Ok(ca) => Some(UserTls {
            cert: cert_pem,
            key: key_pem,
            ca,
        }),
        Err(e) => {
            o.err("tls-ca", e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_with_a_keystone_url_are_valid() {
        let s = validate(&opts(json!({"keystone-url": "https://ks:5000", "port": 8443, "authorization-mode": "Node,RBAC,Webhook"}))).unwrap();
        assert_eq!(s.keystone_url, "https://ks:5000/v3");
        assert_eq!(s.binary, BinarySource::Shipped);
        assert!(s.authz_webhook());
        assert!(!s.listen_all());
        assert_eq!(s.policy, DEFAULT_POLICY);
    }

    #[test]
    fn every_error_names_its_option() {
        let errs = validate(&opts(json!({
            "keystone-url": null, "k8s-keystone-auth-url": "http://example.com/bin",
            "authn-server-url": "http://x", "port": 80, "policy": "[{", "keystone-ca": "nope",
            "authorization-mode": "RBAC,Magic", "cache-ttl": "5 parsecs", "log-level": "loud",
            "tls-cert": "x"
        })))
        .unwrap_err();
        let names: Vec<_> = errs.iter().map(|e| e.option).collect();
        assert_eq!(
            names,
            [
                "keystone-url",
                "k8s-keystone-auth-url",
                "authn-server-url",
                "port",
                "keystone-ca",
                "policy",
                "authorization-mode",
                "tls-key",
                "cache-ttl",
                "log-level"
            ]
        );
    }

    #[test]
    fn http_download_needs_a_checksum_and_https_does_not() {
        let sha = "ab".repeat(32);
        let s = validate(&opts(json!({"keystone-url": "https://ks/v3", "k8s-keystone-auth-url": "http://h/b", "k8s-keystone-auth-sha256": sha}))).unwrap();
        assert!(matches!(
            s.binary,
            BinarySource::Download {
                sha256: Some(_),
                ..
            }
        ));
        let s = validate(&opts(
            json!({"keystone-url": "https://ks/v3", "k8s-keystone-auth-url": "https://h/b"}),
        ))
        .unwrap();
        assert!(matches!(
            s.binary,
            BinarySource::Download { sha256: None, .. }
        ));
    }

    #[test]
    fn secrets_in_options_are_refused_and_never_echoed() {
        let errs = validate(&opts(json!({
            "keystone-url": "ftp://u:Pw0rdKs@ks/v3",
            "k8s-keystone-auth-url": "https://admin:Pw0rdDl@127.0.0.1/bin",
            "authn-server-url": "https://a:Pw0rdAn@127.0.0.1/authenticate",
            "authz-server-url": "http://a:Pw0rdAz@127.0.0.1/authorize",
            "tls-cert": "x", "tls-key": 1234567890123_i64
        })))
        .unwrap_err();
        let text = format!("{errs:?}");
        for secret in ["Pw0rd", "1234567890123"] {
            assert!(!text.contains(secret), "{text}");
        }
        let names: Vec<_> = errs.iter().map(|e| e.option).collect();
        for o in [
            "keystone-url",
            "k8s-keystone-auth-url",
            "authn-server-url",
            "authz-server-url",
            "tls-key",
        ] {
            assert!(names.contains(&o), "{o}: {text}");
        }
        // Unparseable, still with user info.
        let errs = validate(&opts(json!({"keystone-url": "https://ks/v3",
            "k8s-keystone-auth-url": "https://admin:Pw0rd[@127.0.0.1/bin"})))
        .unwrap_err();
        assert!(!format!("{errs:?}").contains("Pw0rd"), "{errs:?}");
    }

    #[test]
    fn pem_or_base64() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(pem_option(pem).unwrap(), pem_option(&b64).unwrap());
        assert!(pem_option("not base64 !!").is_err());
    }
}
