//! TLS plumbing shared by every binary: the one crypto provider and PEM file loading.
//!
//! rustls panics at start-up when two crypto providers are compiled in and none is installed,
//! so every crate uses `ring` (reqwest with `rustls-no-provider`, tokio-rustls and rustls
//! with the `ring` feature). Library code never installs it: rustls configs built here and in
//! the other crates name [`provider`] explicitly, and each binary's `main` (and test support)
//! calls [`install_crypto_provider`] once, before any reqwest client is built (reqwest without
//! its own provider uses the process default).

use anyhow::{Context, Result, bail};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// The crypto provider every rustls config of the project is built with (`ring`).
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs `ring` as the process-wide rustls crypto provider, which reqwest uses. For the
/// binaries' `main` and tests only, never library code. Idempotent.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed (by an earlier call).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads every certificate of a PEM file; the error names the file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read certificate file {}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid PEM in certificate file {}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate found in {}", path.display());
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file; the error names the file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read private key file {}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .with_context(|| format!("no valid private key found in {}", path.display()))
}
