//! Pure render functions: the paths the charm writes, the systemd unit, the service's TOML
//! config and the webhook kubeconfigs. Same input, same bytes: that is what makes the hooks
//! idempotent (a file is only written when its rendering differs from what is on disk).

use std::path::{Path, PathBuf};

use base64::Engine;

use super::options::Settings;

/// The systemd unit template (charm/k8s-keystone-auth.service).
pub const UNIT_TEMPLATE: &str = include_str!("../../../charm/k8s-keystone-auth.service");

/// The system user (and group) the service runs as.
pub const SERVICE_USER: &str = "k8s-keystone-auth";
/// The systemd unit name.
pub const SERVICE_UNIT: &str = "k8s-keystone-auth.service";
/// kube-apiserver's snap.
pub const APISERVER_SNAP: &str = "kube-apiserver";
/// kube-apiserver's systemd unit (what Charmed Kubernetes restarts).
pub const APISERVER_UNIT: &str = "snap.kube-apiserver.daemon";

/// Every path the charm writes, under one root (`KUBERNETES_KEYSTONE_ROOT`, default `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The root everything is under.
    pub root: PathBuf,
}

impl Paths {
    /// Paths under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn at(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// `/etc/kubernetes-keystone`: config, certificates, policy, kubeconfigs.
    pub fn conf_dir(&self) -> PathBuf {
        self.at("/etc/kubernetes-keystone")
    }
    /// A file in the config directory.
    pub fn conf(&self, name: &str) -> PathBuf {
        self.conf_dir().join(name)
    }
    /// The service's config file.
    pub fn config_toml(&self) -> PathBuf {
        self.conf("config.toml")
    }
    /// The authentication webhook kubeconfig given to kube-apiserver.
    pub fn authn_kubeconfig(&self) -> PathBuf {
        self.conf("authn-webhook.kubeconfig")
    }
    /// The authorization webhook kubeconfig given to kube-apiserver.
    pub fn authz_kubeconfig(&self) -> PathBuf {
        self.conf("authz-webhook.kubeconfig")
    }
    /// `/opt/kubernetes-keystone/bin`.
    pub fn bin_dir(&self) -> PathBuf {
        self.at("/opt/kubernetes-keystone/bin")
    }
    /// The installed service binary.
    pub fn binary(&self) -> PathBuf {
        self.bin_dir().join("k8s-keystone-auth")
    }
    /// The systemd unit file.
    pub fn unit_file(&self) -> PathBuf {
        self.at("/etc/systemd/system").join(SERVICE_UNIT)
    }
    /// `/var/lib/kubernetes-keystone`: the charm's own state (0700).
    pub fn state_dir(&self) -> PathBuf {
        self.at("/var/lib/kubernetes-keystone")
    }
    /// The charm's state file (original kube-apiserver options, installed binary, ...).
    pub fn state_file(&self) -> PathBuf {
        self.state_dir().join("state.json")
    }
}

/// The systemd unit for the service.
pub fn unit_file(paths: &Paths) -> String {
    UNIT_TEMPLATE
        .replace("{{binary}}", &paths.binary().display().to_string())
        .replace("{{config}}", &paths.config_toml().display().to_string())
        .replace("{{user}}", SERVICE_USER)
        .replace("{{conf_dir}}", &paths.conf_dir().display().to_string())
}

/// A TOML basic string literal (`"..."`, TOML 1.0 §String): backslash and quote escaped,
/// control characters as `\b \t \n \f \r` or `\uXXXX`. Written by hand so that the hook
/// does not compile a TOML library for one function; tested against the `toml` parser.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn qp(p: &Path) -> String {
    q(&p.display().to_string())
}

/// The address the local service listens on.
pub fn listen_addr(s: &Settings) -> String {
    if s.listen_all() {
        format!("0.0.0.0:{}", s.port)
    } else {
        format!("127.0.0.1:{}", s.port)
    }
}

/// The service's TOML config (docs/configuration.md), with its files in `dir`.
pub fn service_config(s: &Settings, dir: &Path) -> String {
    let mut t = String::from(
        "# Rendered by the kubernetes-keystone charm from its options; changes are overwritten.\n",
    );
    t.push_str(&format!("listen = {}\n", q(&listen_addr(s))));
    t.push_str(&format!("log_level = {}\n\n", q(&s.log_level)));
    t.push_str("[tls]\n");
    t.push_str(&format!("cert_file = {}\n", qp(&dir.join("tls.crt"))));
    t.push_str(&format!(
        "private_key_file = {}\n\n",
        qp(&dir.join("tls.key"))
    ));
    t.push_str("[keystone]\n");
    t.push_str(&format!("url = {}\n", q(&s.keystone_url)));
    if s.keystone_ca.is_some() {
        t.push_str(&format!("ca_file = {}\n", qp(&dir.join("keystone-ca.crt"))));
    }
    t.push_str("\n[cache]\n");
    t.push_str(&format!("ttl = {}\n", q(&s.cache_ttl)));
    t.push_str(&format!("negative_ttl = {}\n\n", q(&s.cache_negative_ttl)));
    t.push_str("[policy]\n");
    t.push_str(&format!("file = {}\n", qp(&dir.join("policy.json"))));
    if s.sync_config.is_some() {
        t.push_str("\n[sync]\n");
        t.push_str(&format!("file = {}\n", qp(&dir.join("sync.yaml"))));
    }
    t
}

/// The URL kube-apiserver calls for authentication.
pub fn authn_server(s: &Settings) -> String {
    s.authn_url
        .as_ref()
        .map(|u| u.to_string())
        .unwrap_or_else(|| format!("https://127.0.0.1:{}/authenticate", s.port))
}

/// The URL kube-apiserver calls for authorization.
pub fn authz_server(s: &Settings) -> String {
    s.authz_url
        .as_ref()
        .map(|u| u.to_string())
        .unwrap_or_else(|| format!("https://127.0.0.1:{}/authorize", s.port))
}

/// The first line of the webhook kubeconfigs.
pub const KUBECONFIG_HEADER: &str =
    "# Rendered by the kubernetes-keystone charm for kube-apiserver; changes are overwritten.\n";

/// A webhook kubeconfig: one cluster `webhook` with the CA pinned as
/// `certificate-authority-data` (never `insecure-skip-tls-verify`), one user without
/// credentials, one context; the one kubeconfig model ([`kk_core::kubeconfig`]) as YAML, after
/// [`KUBECONFIG_HEADER`].
pub fn webhook_kubeconfig(server: &str, ca_pem: &str) -> Result<String, serde_yaml_ng::Error> {
    use kk_core::kubeconfig::{Cluster, Config, Context, NamedCluster, NamedContext, NamedUser};
    const NAME: &str = "webhook";
    let config = Config::single(
        NamedCluster {
            name: NAME.into(),
            cluster: Cluster {
                server: server.into(),
                certificate_authority_data: Some(
                    base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes()),
                ),
                ..Default::default()
            },
            ..Default::default()
        },
        NamedUser {
            name: NAME.into(),
            ..Default::default()
        },
        NamedContext {
            name: NAME.into(),
            context: Context {
                cluster: NAME.into(),
                user: NAME.into(),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    Ok(format!(
        "{KUBECONFIG_HEADER}{}",
        serde_yaml_ng::to_string(&config)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    proptest::proptest! {
        #[test]
        fn string_literals_read_back_as_written(s in proptest::prelude::any::<String>()) {
            let doc = format!("k = {}\n", q(&s));
            let parsed: toml::Table = toml::from_str(&doc).map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{doc:?}: {e}")))?;
            proptest::prop_assert_eq!(parsed["k"].as_str(), Some(s.as_str()));
        }
    }

    #[test]
    fn string_literals_escape_what_toml_requires() {
        assert_eq!(q("plain"), "\"plain\"");
        assert_eq!(q("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(q("\n\t\u{7f}"), "\"\\n\\t\\u007F\"");
    }

    fn settings() -> Settings {
        let map =
            serde_json::from_value(json!({"keystone-url": "https://ks:5000/v3", "port": 9443,
            "authorization-mode": "Node,RBAC,Webhook"}))
            .unwrap();
        super::super::options::validate(&map).unwrap()
    }

    #[test]
    fn kubeconfig_pins_the_ca_and_parses() {
        use kk_core::kubeconfig::{AuthInfo, Config};
        let server = "https://127.0.0.1:9443/authenticate";
        let k = webhook_kubeconfig(server, "PEM\n").unwrap();
        assert!(k.starts_with(KUBECONFIG_HEADER), "{k}");
        // Into the one model: its current context is the webhook, with the CA pinned.
        let c: Config = serde_yaml_ng::from_str(&k).unwrap();
        assert_eq!((c.api_version.as_str(), c.kind.as_str()), ("v1", "Config"));
        let (context, cluster, user) = c.current().unwrap();
        assert_eq!(
            (context.cluster.as_str(), context.user.as_str()),
            ("webhook", "webhook")
        );
        assert_eq!(cluster.server, server);
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some("UEVNCg==")
        );
        assert_eq!(cluster.insecure_skip_tls_verify, None);
        assert_eq!(cluster.certificate_authority, None);
        assert_eq!(user, &AuthInfo::default());
        assert!(c.unknown.is_empty() && cluster.unknown.is_empty());
        assert!(!k.contains("insecure"));
        // Plain YAML with kubeconfig's key names; a server needing quotes stays one string.
        let v: Value = serde_yaml_ng::from_str(&k).unwrap();
        assert_eq!(v["current-context"], "webhook");
        assert_eq!(v["users"][0], json!({"name": "webhook", "user": {}}));
        let odd = "https://h:1/a #b: 'c\"";
        let v: Value = serde_yaml_ng::from_str(&webhook_kubeconfig(odd, "").unwrap()).unwrap();
        assert_eq!(v["clusters"][0]["cluster"]["server"], odd);
        // Same input, same bytes.
        assert_eq!(webhook_kubeconfig(server, "PEM\n").unwrap(), k);
    }

    #[test]
    fn service_config_is_valid_toml_for_the_service() {
        let s = settings();
        let text = service_config(&s, Path::new("/etc/kubernetes-keystone"));
        let f: kk_webhook::config::file::FileConfig = toml::from_str(&text).unwrap();
        assert_eq!(f.listen.unwrap().into_inner(), "127.0.0.1:9443");
        assert_eq!(authn_server(&s), "https://127.0.0.1:9443/authenticate");
    }

    #[test]
    fn unit_file_runs_the_installed_binary_hardened() {
        let u = unit_file(&Paths::new("/"));
        assert!(u.contains(
            "ExecStart=/opt/kubernetes-keystone/bin/k8s-keystone-auth --config /etc/kubernetes-keystone/config.toml"
        ));
        for h in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "User=k8s-keystone-auth",
        ] {
            assert!(u.contains(h), "{h}");
        }
        assert!(!u.contains("{{"));
    }
}
