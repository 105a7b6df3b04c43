//! The charm's own CA and server certificate (when `tls-cert` is empty): made once with rcgen
//! (ring) and kept; the server certificate is re-issued from the kept CA key only when the
//! names it must cover change.

use anyhow::{Context, Result};

use kk_core::secret::Secret;

/// Common name of the charm's CA.
const CA_NAME: &str = "kubernetes-keystone charm CA";

fn ca_params() -> Result<rcgen::CertificateParams> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .context("cannot build CA parameters")?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CA_NAME);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    Ok(params)
}

/// A new CA: (certificate PEM, key PEM).
pub fn new_ca() -> Result<(String, Secret)> {
    let key = rcgen::KeyPair::generate().context("cannot generate the CA key")?;
    let cert = ca_params()?
        .self_signed(&key)
        .context("cannot self-sign the CA")?;
    Ok((cert.pem(), Secret::new(key.serialize_pem())))
}

/// A server certificate for 127.0.0.1, localhost and `extra` names/addresses, signed by the CA
/// whose key is `ca_key_pem`: (certificate PEM, key PEM).
pub fn server_cert(ca_key_pem: &Secret, extra: &[String]) -> Result<(String, Secret)> {
    let ca_key =
        rcgen::KeyPair::from_pem(ca_key_pem.expose()).context("the kept CA key is not valid")?;
    // The issuer is identified by its name and key (the key identifier comes from the key), so
    // the kept CA certificate need not be parsed.
    let issuer = rcgen::Issuer::new(ca_params()?, ca_key);
    let mut names = vec!["localhost".to_string()];
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .context("cannot build server certificate parameters")?;
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        )));
    names.extend(extra.iter().cloned());
    for n in names {
        let san = match n.parse::<std::net::IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(
                n.clone()
                    .try_into()
                    .with_context(|| format!("{n:?} is not a DNS name"))?,
            ),
        };
        params.subject_alt_names.push(san);
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "k8s-keystone-auth");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    let key = rcgen::KeyPair::generate().context("cannot generate the server key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot sign the server certificate")?;
    Ok((cert.pem(), Secret::new(key.serialize_pem())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_certificate_verifies_against_the_kept_ca() {
        let (ca, ca_key) = new_ca().unwrap();
        let (cert, _key) =
            server_cert(&ca_key, &["10.0.0.5".into(), "k8s.example".into()]).unwrap();
        use rustls::client::danger::ServerCertVerifier;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            kk_core::tls::provider(),
        )
        .build()
        .unwrap();
        let leaf = rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        for name in ["127.0.0.1", "localhost", "10.0.0.5", "k8s.example"] {
            verifier
                .verify_server_cert(
                    &leaf,
                    &[],
                    &rustls_pki_types::ServerName::try_from(name).unwrap(),
                    &[],
                    rustls_pki_types::UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
