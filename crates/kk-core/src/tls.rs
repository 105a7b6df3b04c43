//! TLS plumbing shared by every binary: the one crypto provider, PEM file loading, and the one
//! rustls client configuration every HTTPS client of the project is built from.
//!
//! rustls panics at start-up when two crypto providers are compiled in and none is installed,
//! so every crate uses `ring` (reqwest with `rustls-no-provider`, tokio-rustls and rustls
//! with the `ring` feature). Nothing installs a process-wide provider: every rustls config
//! names [`provider`] explicitly, and reqwest clients are built with [`http_client`], which
//! hands reqwest a prebuilt [`client_config`] (reqwest's own TLS set-up would need a process
//! default; clippy.toml forbids building a reqwest client any other way).
//!
//! What a client trusts ([`client_config`]):
//! * without a CA file, the platform's roots, through the same `rustls-platform-verifier`
//!   that reqwest itself uses;
//! * with a CA file, only its certificates: a chain up to one of them, or the very certificate
//!   of the file itself. The latter accepts a Keystone whose self-signed certificate is a CA
//!   (`openssl req -x509` makes such certificates: CA:TRUE), which webpki alone refuses as an
//!   end entity (`CaUsedAsEndEntity`), and a pinned leaf whose issuer is not in the file, as
//!   the Go reference does. Such a certificate must still be within its validity period, name
//!   the host, and sign the handshake.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// The crypto provider every rustls config of the project is built with (`ring`).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file; the error names the file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read certificate file {}", path.display()))?;
    let certs = parse_certs(&bytes)
        .with_context(|| format!("invalid PEM in certificate file {}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate found in {}", path.display());
    }
    Ok(certs)
}

/// Every certificate of PEM text (none is not an error here).
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    Ok(CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>()?)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file; the error names the file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read private key file {}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .with_context(|| format!("no valid private key found in {}", path.display()))
}

/// A client certificate chain and its key, presented when the server asks for one.
#[derive(Debug)]
pub struct ClientIdentity {
    /// The certificate first, then its intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The certificate's private key.
    pub key: PrivateKeyDer<'static>,
}

/// The rustls configuration of an HTTPS client, with [`provider`] and TLS 1.2 and 1.3.
///
/// `ca`: `None` trusts the platform's roots (as reqwest does by default); `Some` trusts only
/// these certificates (a CA file's), see the module documentation. `identity` is presented
/// to servers that ask for a client certificate. ALPN is left empty: [`http_client`] sets it.
pub fn client_config(
    ca: Option<&[CertificateDer<'static>]>,
    identity: Option<ClientIdentity>,
) -> Result<rustls::ClientConfig> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("the crypto provider supports no TLS version")?
        .dangerous();
    let verifier: Arc<dyn ServerCertVerifier> = match ca {
        None => Arc::new(
            rustls_platform_verifier::Verifier::new(provider)
                .context("cannot load the platform's root certificates")?,
        ),
        Some(certs) => Arc::new(CaFileVerifier::new(certs, provider)?),
    };
    let builder = builder.with_custom_certificate_verifier(verifier);
    Ok(match identity {
        None => builder.with_no_client_auth(),
        Some(ClientIdentity { chain, key }) => builder
            .with_client_auth_cert(chain, key)
            .context("the client certificate and key are not usable together")?,
    })
}

/// A reqwest client builder whose HTTPS uses `config` (from [`client_config`]). The only way
/// the project builds reqwest clients: reqwest's own TLS set-up would need a process-wide
/// crypto provider.
#[allow(clippy::disallowed_methods)]
pub fn http_client(mut config: rustls::ClientConfig) -> reqwest::ClientBuilder {
    // What reqwest offers itself (without its `http2` feature it speaks only HTTP/1.1), and
    // which it does not set on a preconfigured config.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder().tls_backend_preconfigured(config)
}

/// Verifies a server against a CA file: a chain to one of its certificates (webpki), or,
/// when that fails only because the certificate is a CA or has no known issuer, the
/// certificate itself being one of the file's, valid now and for the host.
#[derive(Debug)]
struct CaFileVerifier {
    chain: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl CaFileVerifier {
    fn new(
        certs: &[CertificateDer<'static>],
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert.clone()).context("invalid CA certificate")?;
        }
        let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .context("cannot use the CA certificates")?;
        Ok(Self {
            chain,
            pinned: certs.to_vec(),
        })
    }
}

/// Whether a chain error leaves room for the exact certificate of the CA file: webpki refuses
/// a CA certificate as an end entity, and a leaf whose issuer is not in the file.
fn pin_may_stand_in(err: &rustls::Error) -> bool {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => true,
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let err = match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        if !pin_may_stand_in(&err) || !self.pinned.iter().any(|p| p[..] == end_entity[..]) {
            return Err(err);
        }
        check_validity(end_entity, now)?;
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.chain.root_hint_subjects()
    }
}

/// Refuses a certificate outside its validity period (notBefore..=notAfter, as webpki).
fn check_validity(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let (not_before, not_after) = validity(cert).ok_or(rustls::Error::InvalidCertificate(
        CertificateError::BadEncoding,
    ))?;
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let at = |secs: i64| {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(secs).unwrap_or(0),
        ))
    };
    if now_secs < not_before {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before: at(not_before),
        }
        .into());
    }
    if now_secs > not_after {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after: at(not_after),
        }
        .into());
    }
    Ok(())
}

/// A DER element: its tag, its contents, and what follows it.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    let (value, rest) = rest.split_at_checked(len)?;
    Some((tag, value, rest))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0; // [0] EXPLICIT
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// `notBefore` and `notAfter` of a DER certificate (RFC 5280 4.1), in seconds since the epoch.
fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let (SEQUENCE, certificate, _) = der_next(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = der_next(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = der_next(rest)?;
    if tag == VERSION {
        rest = after;
    }
    // serialNumber, signature (AlgorithmIdentifier), issuer (Name), validity.
    for expected in [INTEGER, SEQUENCE, SEQUENCE] {
        let (tag, _, after) = der_next(rest)?;
        if tag != expected {
            return None;
        }
        rest = after;
    }
    let (SEQUENCE, validity, _) = der_next(rest)? else {
        return None;
    };
    let (tag, not_before, rest) = der_next(validity)?;
    let not_before = der_time(tag, not_before)?;
    let (tag, not_after, _) = der_next(rest)?;
    Some((not_before, der_time(tag, not_after)?))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), the only
/// forms RFC 5280 allows, in seconds since the epoch.
fn der_time(tag: u8, value: &[u8]) -> Option<i64> {
    let digits = value.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        digits
            .get(range)?
            .iter()
            .try_fold(0i64, |acc, d| Some(acc * 10 + i64::from(d - b'0')))
    };
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = num(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (GENERALIZED_TIME, 14) => (num(0..4)?, 4),
        _ => return None,
    };
    let field = |i: usize| num(rest + 2 * i..rest + 2 * i + 2);
    let (month, day, hour, minute, second) =
        (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = crate::timefmt::days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_times_of_both_forms() {
        assert_eq!(der_time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(der_time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(der_time(UTC_TIME, b"500101000000Z"), Some(-631_152_000));
        assert_eq!(
            der_time(GENERALIZED_TIME, b"20500101000000Z"),
            Some(2_524_608_000)
        );
        assert_eq!(der_time(GENERALIZED_TIME, b"19691231235959Z"), Some(-1));
        for bad in [
            &b"700101000000"[..],
            b"7001010000Z",
            b"701301000000Z",
            b"700100000000Z",
            b"70010100000+Z",
            b"700101240000Z",
        ] {
            assert_eq!(der_time(UTC_TIME, bad), None, "{bad:?}");
        }
        assert_eq!(der_time(GENERALIZED_TIME, b"700101000000Z"), None);
        assert_eq!(der_time(0x13, b"700101000000Z"), None);
    }

    fn cert(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&key).unwrap().der().clone()
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs))
    }

    #[test]
    fn validity_of_a_certificate() {
        // 2020-01-01 (UTCTime) to 2060-01-01 (GeneralizedTime).
        let c = cert((2020, 1, 1), (2060, 1, 1));
        assert_eq!(validity(&c), Some((1_577_836_800, 2_840_140_800)));
        assert!(check_validity(&c, at(1_577_836_800)).is_ok());
        assert!(check_validity(&c, at(2_840_140_800)).is_ok());
        let early = check_validity(&c, at(1_577_836_799)).unwrap_err();
        assert!(
            matches!(
                early,
                rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { .. })
            ),
            "{early:?}"
        );
        let late = check_validity(&c, at(2_840_140_801)).unwrap_err();
        assert!(
            matches!(
                late,
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            ),
            "{late:?}"
        );
        // Before 1970 (rcgen's default notBefore is 1975; a CA from 1960 is still readable).
        let old = cert((1960, 1, 1), (1969, 12, 31));
        assert_eq!(validity(&old), Some((-315_619_200, -86_400)));
        assert!(check_validity(&old, at(0)).is_err());
        // Not a certificate.
        assert_eq!(validity(&c[..c.len() / 2]), None);
        assert_eq!(validity(b"\x30\x00"), None);
    }

    #[test]
    fn der_lengths() {
        assert_eq!(
            der_next(&[0x04, 0x02, 1, 2, 9]),
            Some((0x04, &[1u8, 2][..], &[9u8][..]))
        );
        let mut long = vec![0x04, 0x81, 200];
        long.extend([7u8; 200]);
        assert_eq!(
            der_next(&long).map(|(_, v, r)| (v.len(), r.len())),
            Some((200, 0))
        );
        assert_eq!(der_next(&[0x04, 0x03, 1, 2]), None);
        assert_eq!(der_next(&[0x04, 0x80]), None);
        assert_eq!(der_next(&[0x04]), None);
    }

    #[test]
    fn pin_stands_in_only_for_a_ca_as_end_entity_or_an_unknown_issuer() {
        let other = |e: webpki::Error| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(e),
            )))
        };
        assert!(pin_may_stand_in(&other(webpki::Error::CaUsedAsEndEntity)));
        assert!(pin_may_stand_in(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
        )));
        assert!(!pin_may_stand_in(&other(webpki::Error::EndEntityUsedAsCa)));
        for refused in [
            CertificateError::Expired,
            CertificateError::NotValidYet,
            CertificateError::NotValidForName,
            CertificateError::BadSignature,
            CertificateError::InvalidPurpose,
        ] {
            assert!(!pin_may_stand_in(&rustls::Error::InvalidCertificate(
                refused
            )));
        }
    }
}
