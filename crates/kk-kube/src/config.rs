//! Where the API server is and how to prove who we are: from a kubeconfig file
//! ([`ClusterConfig::from_kubeconfig`], read with the typed [`kk_core::kubeconfig::Config`]) or
//! from the pod this runs in ([`ClusterConfig::in_cluster`]).
//!
//! From a kubeconfig, the current context's cluster and user (the only context when
//! `current-context` is empty and there is one) give:
//!
//! * `server`, which must be `https://`;
//! * `certificate-authority-data` (base64 of PEM) or else `certificate-authority` (a file), else
//!   the platform's roots;
//! * `client-certificate(-data)` + `client-key(-data)`, both or neither;
//! * `tokenFile` (re-read when it changes) or else `token`.
//!
//! Relative file names are relative to the kubeconfig's directory, as client-go reads them.
//! What this client cannot do is refused with the file and the entry named, never ignored:
//! `exec` and `auth-provider` users (a credential plugin: give the service a ServiceAccount
//! token or a client certificate instead), basic authentication, impersonation (`as`...),
//! `insecure-skip-tls-verify`, `tls-server-name` and `proxy-url`.
//!
//! In a pod: `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`, the ServiceAccount's
//! `ca.crt` and `token` in `/var/run/secrets/kubernetes.io/serviceaccount/`; the token is
//! re-read when the kubelet rotates it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use url::Url;

use kk_core::kubeconfig::{AuthInfo, Cluster};
use kk_core::secret::Secret;

/// Where the in-cluster ServiceAccount credential is mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Everything needed to talk to one API server. `Debug` shows no credential.
pub struct ClusterConfig {
    /// `https://host:port`.
    pub server: Url,
    /// Where this came from, for messages: `kubeconfig FILE (context C, user U)` or
    /// `in-cluster ServiceAccount`.
    pub origin: String,
    /// The CA certificates to trust (`None`: the platform's roots).
    pub ca: Option<Vec<CertificateDer<'static>>>,
    /// A client certificate chain and key.
    pub identity: Option<kk_core::tls::ClientIdentity>,
    /// A bearer token.
    pub credential: Credential,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("server", &self.server.as_str())
            .field("origin", &self.origin)
            .field("ca_certificates", &self.ca.as_ref().map(Vec::len))
            .field("client_certificate", &self.identity.is_some())
            .field("credential", &self.credential)
            .finish()
    }
}

/// The bearer token, if any.
#[derive(Debug, Clone)]
pub enum Credential {
    /// None (a client certificate alone).
    None,
    /// A fixed token (`Debug` redacts it).
    Token(Secret),
    /// A file holding the token, re-read when it changes (ServiceAccount tokens rotate).
    TokenFile(PathBuf),
}

/// Why a cluster configuration cannot be used. Each names the file and the entry.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {what} {}", path.display())]
    Read {
        /// What the file is (`kubeconfig`, `CA file`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig is not valid YAML or not a kubeconfig.
    #[error("kubeconfig {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The YAML error, with line and column.
        message: String,
    },
    /// Something in it this client does not support, or that is wrong.
    #[error("kubeconfig {}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What and where (`user "admin": exec credential plugins are not supported ...`).
        message: String,
    },
    /// The in-cluster environment is incomplete.
    #[error("in-cluster configuration: {0}")]
    InCluster(String),
}

impl ClusterConfig {
    /// Reads a kubeconfig file.
    pub fn from_kubeconfig(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            what: "kubeconfig",
            path: path.to_path_buf(),
            source,
        })?;
        let parsed: kk_core::kubeconfig::Config =
            serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::from_parsed(&parsed, path, dir)
    }

    fn from_parsed(
        parsed: &kk_core::kubeconfig::Config,
        path: &Path,
        dir: &Path,
    ) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let context_name = if parsed.current_context.is_empty() {
            match parsed.contexts.as_slice() {
                [only] => only.name.clone(),
                [] => return Err(invalid("has no context".into())),
                _ => {
                    return Err(invalid(
                        "has several contexts and no current-context".into(),
                    ));
                }
            }
        } else {
            parsed.current_context.clone()
        };
        let context = &parsed
            .contexts
            .iter()
            .find(|c| c.name == context_name)
            .ok_or_else(|| invalid(format!("current-context {context_name:?} is not a context")))?
            .context;
        let cluster = &parsed
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .ok_or_else(|| {
                invalid(format!(
                    "context {context_name:?} names cluster {:?}, which is not there",
                    context.cluster
                ))
            })?
            .cluster;
        let default_user = AuthInfo::default();
        let user = if context.user.is_empty() {
            &default_user
        } else {
            &parsed
                .users
                .iter()
                .find(|u| u.name == context.user)
                .ok_or_else(|| {
                    invalid(format!(
                        "context {context_name:?} names user {:?}, which is not there",
                        context.user
                    ))
                })?
                .user
        };
        let server = server_url(cluster)
            .map_err(|m| invalid(format!("cluster {:?}: {m}", context.cluster.as_str())))?;
        let ca = cluster_ca(cluster, dir).map_err(|e| match e {
            Problem::Config(m) => invalid(format!("cluster {:?}: {m}", context.cluster)),
            Problem::Read(e) => e,
        })?;
        let (identity, credential) = user_credential(user, dir).map_err(|e| match e {
            Problem::Config(m) => invalid(format!("user {:?}: {m}", context.user)),
            Problem::Read(e) => e,
        })?;
        Ok(Self {
            server,
            origin: format!(
                "kubeconfig {} (context {context_name:?}, user {:?})",
                path.display(),
                context.user
            ),
            ca,
            identity,
            credential,
        })
    }

    /// The configuration of the pod this runs in, or `None` when not in a pod
    /// (`KUBERNETES_SERVICE_HOST` unset).
    pub fn in_cluster() -> Result<Option<Self>, ConfigError> {
        let Ok(host) = std::env::var("KUBERNETES_SERVICE_HOST") else {
            return Ok(None);
        };
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
        Self::in_cluster_from(&host, &port, Path::new(SERVICE_ACCOUNT_DIR)).map(Some)
    }

    /// [`ClusterConfig::in_cluster`] from explicit values (the ServiceAccount files in `dir`).
    pub fn in_cluster_from(host: &str, port: &str, dir: &Path) -> Result<Self, ConfigError> {
        let (host, port) = (host.trim(), port.trim());
        if host.is_empty() || port.is_empty() {
            return Err(ConfigError::InCluster(
                "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set".into(),
            ));
        }
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let server = Url::parse(&format!("https://{host}:{port}")).map_err(|e| {
            ConfigError::InCluster(format!(
                "KUBERNETES_SERVICE_HOST/PORT {host}:{port} do not make a URL: {e}"
            ))
        })?;
        let ca_file = dir.join("ca.crt");
        let ca = read_certs(&ca_file, "ServiceAccount CA file")?;
        let token = dir.join("token");
        // Read once now so that a missing token is a start-up error.
        read_token_file(&token).map_err(|e| ConfigError::Read {
            what: "ServiceAccount token file",
            path: token.clone(),
            source: e,
        })?;
        Ok(Self {
            server,
            origin: "in-cluster ServiceAccount".into(),
            ca: Some(ca),
            identity: None,
            credential: Credential::TokenFile(token),
        })
    }
}

enum Problem {
    Config(String),
    Read(ConfigError),
}

impl From<ConfigError> for Problem {
    fn from(e: ConfigError) -> Self {
        Problem::Read(e)
    }
}

fn server_url(cluster: &Cluster) -> Result<Url, String> {
    if cluster.insecure_skip_tls_verify == Some(true) {
        return Err("insecure-skip-tls-verify is not supported: give the API server's CA with certificate-authority or certificate-authority-data".into());
    }
    if cluster.tls_server_name.is_some() {
        return Err("tls-server-name is not supported".into());
    }
    if cluster.proxy_url.is_some() {
        return Err("proxy-url is not supported".into());
    }
    if let Some(key) = cluster.unknown.0.keys().next() {
        return Err(format!("{key:?} is not supported"));
    }
    let shown = kk_core::urls::redact_url(&cluster.server);
    if cluster.server.trim().is_empty() {
        return Err("server is empty".into());
    }
    let url = Url::parse(cluster.server.trim())
        .map_err(|e| format!("server {shown:?} is not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!("server {shown:?} must be https://"));
    }
    if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "server {shown:?} must not carry a query or user information"
        ));
    }
    Ok(url)
}

fn resolve(dir: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn decode_data(what: &str, data: &str) -> Result<Vec<u8>, Problem> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| Problem::Config(format!("{what} is not base64: {e}")))
}

fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = std::fs::read(path).map_err(|source| ConfigError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let certs = kk_core::tls::parse_certs(&pem).unwrap_or_default();
    if certs.is_empty() {
        return Err(ConfigError::InCluster(format!(
            "{what} {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn cluster_ca(
    cluster: &Cluster,
    dir: &Path,
) -> Result<Option<Vec<CertificateDer<'static>>>, Problem> {
    let (pem, what) = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => (
            decode_data("certificate-authority-data", data)?,
            "certificate-authority-data".to_string(),
        ),
        (None, Some(file)) => {
            let path = resolve(dir, file);
            let pem = std::fs::read(&path).map_err(|source| ConfigError::Read {
                what: "certificate-authority file",
                path: path.clone(),
                source,
            })?;
            (pem, format!("certificate-authority {}", path.display()))
        }
        (None, None) => return Ok(None),
    };
    let certs = kk_core::tls::parse_certs(&pem).unwrap_or_default();
    if certs.is_empty() {
        return Err(Problem::Config(format!("{what} holds no PEM certificate")));
    }
    Ok(Some(certs))
}

type UserCredential = (Option<kk_core::tls::ClientIdentity>, Credential);

fn user_credential(user: &AuthInfo, dir: &Path) -> Result<UserCredential, Problem> {
    if user.exec.is_some() {
        return Err(Problem::Config(
            "exec credential plugins are not supported here; give the service a ServiceAccount token (token or tokenFile) or a client certificate".into(),
        ));
    }
    if user.unknown.0.contains_key("auth-provider") {
        return Err(Problem::Config(
            "auth-provider is not supported here; give the service a ServiceAccount token (token or tokenFile) or a client certificate".into(),
        ));
    }
    if user.username.is_some() || user.password.is_some() {
        return Err(Problem::Config(
            "basic authentication (username/password) is not supported".into(),
        ));
    }
    if let Some(key) = user.unknown.0.keys().next() {
        return Err(Problem::Config(format!("{key:?} is not supported")));
    }
    let cert = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(d), _) => Some((
            decode_data("client-certificate-data", d)?,
            "client-certificate-data".to_string(),
        )),
        (None, Some(f)) => {
            let path = resolve(dir, f);
            let pem = std::fs::read(&path).map_err(|source| ConfigError::Read {
                what: "client-certificate file",
                path: path.clone(),
                source,
            })?;
            Some((pem, format!("client-certificate {}", path.display())))
        }
        (None, None) => None,
    };
    let key = match (&user.client_key_data, &user.client_key) {
        (Some(d), _) => Some(decode_data("client-key-data", d.expose())?),
        (None, Some(f)) => {
            let path = resolve(dir, f);
            Some(std::fs::read(&path).map_err(|source| ConfigError::Read {
                what: "client-key file",
                path: path.clone(),
                source,
            })?)
        }
        (None, None) => None,
    };
    let identity = match (cert, key) {
        (None, None) => None,
        (Some((pem, what)), Some(key)) => {
            let chain = kk_core::tls::parse_certs(&pem).unwrap_or_default();
            if chain.is_empty() {
                return Err(Problem::Config(format!("{what} holds no PEM certificate")));
            }
            let key = PrivateKeyDer::from_pem_slice(&key)
                .map_err(|_| Problem::Config("the client key holds no PEM private key".into()))?;
            Some(kk_core::tls::ClientIdentity { chain, key })
        }
        (Some(_), None) => {
            return Err(Problem::Config(
                "has a client certificate but no client-key or client-key-data".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(Problem::Config(
                "has a client key but no client-certificate or client-certificate-data".into(),
            ));
        }
    };
    let credential = match (&user.token_file, &user.token) {
        (Some(f), _) => {
            let path = resolve(dir, f);
            read_token_file(&path).map_err(|source| ConfigError::Read {
                what: "tokenFile",
                path: path.clone(),
                source,
            })?;
            Credential::TokenFile(path)
        }
        (None, Some(t)) if !t.is_empty() => Credential::Token(t.clone()),
        _ => Credential::None,
    };
    if identity.is_none() && matches!(credential, Credential::None) {
        return Err(Problem::Config(
            "has no credential: set token, tokenFile, or a client certificate and key".into(),
        ));
    }
    Ok((identity, credential))
}

/// Reads a token file: its trimmed contents, which must not be empty.
pub(crate) fn read_token_file(path: &Path) -> std::io::Result<Secret> {
    let text = std::fs::read_to_string(path)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is empty",
        ));
    }
    Ok(Secret::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let ckey = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".into()])
            .unwrap()
            .self_signed(&ckey)
            .unwrap();
        Files {
            dir,
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: ckey.serialize_pem(),
        }
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn write(f: &Files, name: &str, yaml: &str) -> PathBuf {
        let p = f.dir.path().join(name);
        std::fs::write(&p, yaml).unwrap();
        p
    }

    fn kubeconfig(cluster: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\nclusters:\n- name: k\n  cluster:\n{cluster}\nusers:\n- name: u\n  user:\n{user}\n"
        )
    }

    #[test]
    fn embedded_data_and_relative_files_and_token_files() {
        let f = files();
        let embedded = kubeconfig(
            &format!(
                "    server: https://127.0.0.1:6443\n    certificate-authority-data: {}",
                b64(&f.ca_pem)
            ),
            &format!(
                "    client-certificate-data: {}\n    client-key-data: {}",
                b64(&f.cert_pem),
                b64(&f.key_pem)
            ),
        );
        let c = ClusterConfig::from_kubeconfig(&write(&f, "a.yaml", &embedded)).unwrap();
        assert_eq!(c.server.as_str(), "https://127.0.0.1:6443/");
        assert_eq!(c.ca.as_ref().map(Vec::len), Some(1));
        assert!(c.identity.is_some());
        assert!(matches!(c.credential, Credential::None));
        assert!(
            c.origin.contains("a.yaml") && c.origin.contains("\"u\""),
            "{}",
            c.origin
        );

        std::fs::create_dir(f.dir.path().join("sub")).unwrap();
        std::fs::write(f.dir.path().join("sub/ca.crt"), &f.ca_pem).unwrap();
        std::fs::write(f.dir.path().join("sub/token"), "sa-token-value\n").unwrap();
        let files = kubeconfig(
            "    server: https://api.example:6443\n    certificate-authority: ca.crt",
            "    tokenFile: token\n    token: static-ignored",
        );
        let c = ClusterConfig::from_kubeconfig(&write(&f, "sub/b.yaml", &files)).unwrap();
        assert!(c.ca.is_some());
        match &c.credential {
            Credential::TokenFile(p) => assert_eq!(p, &f.dir.path().join("sub/token")),
            other => panic!("{other:?}"),
        }
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("sa-token-value") && !shown.contains("static-ignored"),
            "{shown}"
        );

        let token = kubeconfig(
            "    server: https://api.example:6443",
            "    token: the-token",
        );
        let c = ClusterConfig::from_kubeconfig(&write(&f, "c.yaml", &token)).unwrap();
        assert!(c.ca.is_none(), "no CA given: the platform's roots");
        assert!(matches!(&c.credential, Credential::Token(t) if t.expose() == "the-token"));
        assert!(!format!("{c:?}").contains("the-token"));
    }

    #[test]
    fn what_this_client_cannot_do_is_refused_naming_the_file_and_the_entry() {
        let f = files();
        let server = "    server: https://127.0.0.1:6443";
        for (name, cluster, user, needle) in [
            (
                "exec",
                server,
                "    exec: {apiVersion: client.authentication.k8s.io/v1, command: kubectl-keystone-auth}",
                "user \"u\": exec credential plugins are not supported",
            ),
            (
                "authprovider",
                server,
                "    auth-provider: {name: oidc}",
                "user \"u\": auth-provider is not supported",
            ),
            (
                "basic",
                server,
                "    username: a\n    password: b",
                "basic authentication",
            ),
            (
                "as",
                server,
                "    token: t\n    as: bob",
                "user \"u\": \"as\" is not supported",
            ),
            (
                "insecure",
                "    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true",
                "    token: t",
                "cluster \"k\": insecure-skip-tls-verify is not supported",
            ),
            (
                "http",
                "    server: http://127.0.0.1:8080",
                "    token: t",
                "must be https://",
            ),
            (
                "noserver",
                "    certificate-authority-data: eA==",
                "    token: t",
                "server is empty",
            ),
            ("nocred", server, "    {}", "has no credential"),
            (
                "halfcert",
                server,
                "    client-certificate-data: eA==",
                "no client-key",
            ),
            (
                "badb64",
                "    server: https://127.0.0.1:6443\n    certificate-authority-data: '%%%'",
                "    token: t",
                "certificate-authority-data is not base64",
            ),
            (
                "notpem",
                "    server: https://127.0.0.1:6443\n    certificate-authority-data: eA==",
                "    token: t",
                "holds no PEM certificate",
            ),
        ] {
            let path = write(&f, &format!("{name}.yaml"), &kubeconfig(cluster, user));
            let e = ClusterConfig::from_kubeconfig(&path)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{name}: {e}");
            assert!(
                e.contains(&format!("{name}.yaml")),
                "{name}: the file is named: {e}"
            );
            assert!(
                !e.contains("kubectl-keystone-auth") || name == "exec",
                "{e}"
            );
        }
        let missing = ClusterConfig::from_kubeconfig(&f.dir.path().join("nope.yaml")).unwrap_err();
        assert!(
            missing.to_string().contains("cannot read kubeconfig"),
            "{missing}"
        );
        let path = write(&f, "ctx.yaml", "current-context: x\ncontexts: []\n");
        let e = ClusterConfig::from_kubeconfig(&path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("current-context \"x\" is not a context"), "{e}");
        let path = write(&f, "yaml.yaml", "clusters: 3\n");
        assert!(matches!(
            ClusterConfig::from_kubeconfig(&path).unwrap_err(),
            ConfigError::Parse { .. }
        ));
        // No current-context and one context: that one.
        let one = kubeconfig(server, "    token: t").replace("current-context: c\n", "");
        assert!(ClusterConfig::from_kubeconfig(&write(&f, "one.yaml", &one)).is_ok());
    }

    #[test]
    fn in_cluster_reads_the_service_account_files() {
        let f = files();
        let dir = f.dir.path();
        let e = ClusterConfig::in_cluster_from("10.0.0.1", "", dir).unwrap_err();
        assert!(e.to_string().contains("KUBERNETES_SERVICE_PORT"), "{e}");
        let e = ClusterConfig::in_cluster_from("10.0.0.1", "443", dir).unwrap_err();
        assert!(e.to_string().contains("ca.crt"), "{e}");
        std::fs::write(dir.join("ca.crt"), &f.ca_pem).unwrap();
        let e = ClusterConfig::in_cluster_from("10.0.0.1", "443", dir).unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
        std::fs::write(dir.join("token"), "  \n").unwrap();
        assert!(
            ClusterConfig::in_cluster_from("10.0.0.1", "443", dir).is_err(),
            "an empty token"
        );
        std::fs::write(dir.join("token"), "eyJ.sa.token\n").unwrap();
        let c = ClusterConfig::in_cluster_from("10.0.0.1", "443", dir).unwrap();
        assert_eq!(c.server.as_str(), "https://10.0.0.1/");
        assert!(matches!(c.credential, Credential::TokenFile(_)));
        let c = ClusterConfig::in_cluster_from("fd00::1", "6443", dir).unwrap();
        assert_eq!(c.server.as_str(), "https://[fd00::1]:6443/");
    }
}
