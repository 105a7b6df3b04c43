//! Serving TLS: a rustls server config built from the certificate, key and optional client CA
//! files, swapped in place when the files change (the charm and cert-manager rewrite them).
//! Each new connection takes the config in force when it is accepted.

use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;

use crate::config::TlsConfig;
use kk_core::tls::{load_certs, load_private_key, provider};

/// Builds a server config from the files. Errors name the file at fault.
pub fn build_server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>> {
    let certs = load_certs(&tls.cert_file)?;
    let key = load_private_key(&tls.key_file)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("the crypto provider supports no TLS version")?;
    let builder = match &tls.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("invalid CA certificate in {}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .with_context(|| format!("cannot use client CA file {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "certificate {} and key {} do not form a usable pair",
            tls.cert_file.display(),
            tls.key_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server config in force, replaceable while serving.
pub struct ReloadableTls {
    files: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadableTls {
    /// Loads the files once; fails if they are unusable.
    pub fn new(files: TlsConfig) -> Result<Self> {
        let current = build_server_config(&files)?;
        Ok(Self {
            files,
            current: RwLock::new(current),
        })
    }

    /// The files watched.
    pub fn files(&self) -> &TlsConfig {
        &self.files
    }

    /// The config for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the files; on error the config in force stays.
    pub fn reload(&self) -> Result<()> {
        let new = build_server_config(&self.files)?;
        match self.current.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        Ok(())
    }
}
