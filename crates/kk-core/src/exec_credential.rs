//! `ExecCredential` (`client.authentication.k8s.io/v1` and `v1beta1`), the exec credential
//! plugin's wire format both ways: what kubectl passes in `KUBERNETES_EXEC_INFO` (a `spec`) and
//! what the plugin prints on stdout (a `status`). One type for both, with the key names of
//! client-go's `pkg/apis/clientauthentication/v1`.
//!
//! Lenient on input (unknown fields are ignored, every field may be missing); on output absent
//! fields are left out, so an answer is exactly the JSON of the Kubernetes documentation:
//!
//! ```json
//! {"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"...","expirationTimestamp":"2026-11-28T16:09:51Z"}}
//! ```
//!
//! The token (and a client key) are [`Secret`]s: serialized, never shown by `Debug`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::kubeconfig::{Opaque, null_as_default, serde_secret};
use crate::secret::Secret;

/// `client.authentication.k8s.io/v1`
pub const V1: &str = "client.authentication.k8s.io/v1";
/// `client.authentication.k8s.io/v1beta1`
pub const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";
/// `ExecCredential`
pub const KIND: &str = "ExecCredential";

/// The versions spoken here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `client.authentication.k8s.io/v1` (kubectl 1.22 and later with a `v1` exec section).
    V1,
    /// `client.authentication.k8s.io/v1beta1`.
    V1beta1,
}

impl Version {
    /// The `apiVersion` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => V1,
            Version::V1beta1 => V1BETA1,
        }
    }
}

/// An `apiVersion` that is neither [`V1`] nor [`V1BETA1`] (at most 100 characters of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported ExecCredential apiVersion {0:?}")]
pub struct UnsupportedVersion(pub String);

/// An `ExecCredential` of either version (they have the same fields).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredential {
    /// [`V1`] or [`V1BETA1`]; empty when kubectl sent none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub api_version: String,
    /// [`KIND`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub kind: String,
    /// What kubectl tells the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ExecCredentialSpec>,
    /// What the plugin answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ExecCredentialStatus>,
}

/// `spec`: set by kubectl.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExecCredentialSpec {
    /// Whether the plugin may use the terminal (`None`: kubectl before 1.22 did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    /// The cluster, when the kubeconfig's exec section has `provideClusterInfo: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
}

/// `spec.cluster`: the kubeconfig's cluster as kubectl passes it (key names of the kubeconfig).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cluster {
    /// `https://host:port`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub server: String,
    /// `tls-server-name`.
    #[serde(
        rename = "tls-server-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_server_name: Option<String>,
    /// `insecure-skip-tls-verify`.
    #[serde(
        rename = "insecure-skip-tls-verify",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_skip_tls_verify: Option<bool>,
    /// `certificate-authority-data`: base64 of the PEM.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
    /// `proxy-url`.
    #[serde(rename = "proxy-url", default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    /// `disable-compression`.
    #[serde(
        rename = "disable-compression",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_compression: Option<bool>,
    /// `config`: the cluster's `client.authentication.k8s.io/exec` extension, as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Opaque>,
}

/// `status`: set by the plugin.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredentialStatus {
    /// The bearer token kubectl sends.
    #[serde(
        default,
        with = "serde_secret::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub token: Option<Secret>,
    /// When kubectl must ask again (RFC 3339, whole seconds, UTC on output).
    #[serde(
        default,
        with = "rfc3339_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration_timestamp: Option<SystemTime>,
    /// A client certificate (PEM), with `client_key_data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    /// Its key (PEM).
    #[serde(
        default,
        with = "serde_secret::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key_data: Option<Secret>,
}

impl ExecCredential {
    /// The answer: `token`, valid until `expires`, in `version`.
    pub fn answer(version: Version, token: Secret, expires: SystemTime) -> Self {
        Self {
            api_version: version.as_str().to_string(),
            kind: KIND.to_string(),
            spec: None,
            status: Some(ExecCredentialStatus {
                token: Some(token),
                expiration_timestamp: Some(expires),
                ..Default::default()
            }),
        }
    }

    /// The version to answer in: this one's `apiVersion`, [`Version::V1beta1`] when it has
    /// none (kubectl before 1.22, other clients).
    pub fn version(&self) -> Result<Version, UnsupportedVersion> {
        match self.api_version.as_str() {
            V1 => Ok(Version::V1),
            V1BETA1 | "" => Ok(Version::V1beta1),
            other => Err(UnsupportedVersion(other.chars().take(100).collect())),
        }
    }

    /// One line of JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// `metav1.Time`: written as `YYYY-MM-DDTHH:MM:SSZ`, read with any RFC 3339 offset.
mod rfc3339_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    use crate::timefmt::{format_rfc3339, parse_rfc3339};

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse_rfc3339(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// kubectl 1.32 with `provideClusterInfo: true` and a cluster extension.
    const KUBECTL_V1: &str = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"cluster":{"server":"https://127.0.0.1:16443","certificate-authority-data":"LS0tLS1CRUdJTg==","config":{"keystoneUrl":"http://127.0.0.1:5000/v3"}},"interactive":false}}"#;

    #[test]
    fn reads_what_kubectl_sends() {
        let c: ExecCredential = serde_json::from_str(KUBECTL_V1).unwrap();
        assert_eq!(c.version(), Ok(Version::V1));
        assert_eq!(c.kind, KIND);
        let spec = c.spec.as_ref().unwrap();
        assert_eq!(spec.interactive, Some(false));
        let cluster = spec.cluster.as_ref().unwrap();
        assert_eq!(cluster.server, "https://127.0.0.1:16443");
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some("LS0tLS1CRUdJTg==")
        );
        assert_eq!(
            cluster.config.as_ref().unwrap().0,
            json!({"keystoneUrl": "http://127.0.0.1:5000/v3"})
        );
        assert!(c.status.is_none());
        // And writes it back as it came (same JSON value).
        let back: Value = serde_json::from_str(&c.to_json().unwrap()).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(KUBECTL_V1).unwrap());
        // Lenient: nulls, unknown fields, no spec.
        let c: ExecCredential = serde_json::from_str(
            r#"{"apiVersion":null,"kind":"ExecCredential","spec":{"interactive":null,"future":1},"extra":{}}"#,
        )
        .unwrap();
        assert_eq!(c.version(), Ok(Version::V1beta1));
        assert_eq!(c.spec.unwrap().interactive, None);
    }

    #[test]
    fn the_version_passes_through() {
        for (input, version) in [
            (Some(V1), Version::V1),
            (Some(V1BETA1), Version::V1beta1),
            (None, Version::V1beta1),
        ] {
            let mut info = json!({"kind": "ExecCredential", "spec": {"interactive": false}});
            if let Some(v) = input {
                info["apiVersion"] = json!(v);
            }
            let info: ExecCredential = serde_json::from_value(info).unwrap();
            let answer = ExecCredential::answer(info.version().unwrap(), Secret::new("t"), at(0));
            let out: Value = serde_json::from_str(&answer.to_json().unwrap()).unwrap();
            assert_eq!(out["apiVersion"], version.as_str(), "{input:?}");
        }
        for unknown in [
            "client.authentication.k8s.io/v1alpha1",
            "v1",
            "x".repeat(300).as_str(),
        ] {
            let info: ExecCredential =
                serde_json::from_value(json!({"apiVersion": unknown})).unwrap();
            let e = info.version().unwrap_err();
            assert_eq!(e.0, unknown.chars().take(100).collect::<String>());
        }
    }

    /// The answer is exactly the ExecCredential of the Kubernetes documentation
    /// (Authenticating, client-go credential plugins: "a bearer token with an expiry"), whose
    /// `expirationTimestamp` is `2018-03-05T17:30:20-08:00`.
    #[test]
    fn the_answer_is_what_kubectl_documents() {
        let documented = r#"{
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": {
                "token": "my-bearer-token",
                "expirationTimestamp": "2018-03-05T17:30:20-08:00"
            }
        }"#;
        let expires = at(1_520_299_820); // 2018-03-06T01:30:20Z
        let ours = ExecCredential::answer(Version::V1, Secret::new("my-bearer-token"), expires);
        assert_eq!(
            ours.to_json().unwrap(),
            r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"my-bearer-token","expirationTimestamp":"2018-03-06T01:30:20Z"}}"#
        );
        assert_eq!(
            serde_json::from_str::<ExecCredential>(documented).unwrap(),
            ours
        );
    }

    #[test]
    fn what_is_written_reads_back() {
        for version in [Version::V1, Version::V1beta1] {
            let answer =
                ExecCredential::answer(version, Secret::new("gAAAAAtok"), at(1_795_882_191));
            let text = answer.to_json().unwrap();
            assert!(!text.contains('\n'));
            let back: ExecCredential = serde_json::from_str(&text).unwrap();
            assert_eq!(back, answer);
            assert_eq!(back.version(), Ok(version));
        }
        let full = ExecCredential {
            api_version: V1BETA1.into(),
            kind: KIND.into(),
            spec: Some(ExecCredentialSpec {
                interactive: Some(true),
                cluster: Some(Cluster {
                    server: "https://k:6443".into(),
                    tls_server_name: Some("k".into()),
                    insecure_skip_tls_verify: Some(false),
                    certificate_authority_data: Some("Q0E=".into()),
                    proxy_url: Some("http://proxy:3128".into()),
                    disable_compression: Some(true),
                    config: Some(Opaque(json!({"a": [1, 2]}))),
                }),
            }),
            status: Some(ExecCredentialStatus {
                token: Some(Secret::new("tok")),
                expiration_timestamp: Some(at(86_400)),
                client_certificate_data: Some("CERT".into()),
                client_key_data: Some(Secret::new("KEY")),
            }),
        };
        let back: ExecCredential = serde_json::from_str(&full.to_json().unwrap()).unwrap();
        assert_eq!(back, full);
    }

    #[test]
    fn debug_never_shows_the_token_or_the_key() {
        let mut c = ExecCredential::answer(Version::V1, Secret::new("gAAAAAsecret"), at(0));
        if let Some(s) = c.status.as_mut() {
            s.client_key_data = Some(Secret::new("PRIVATE KEY"));
        }
        let shown = format!("{c:?} {c:#?}");
        assert!(
            !shown.contains("gAAAAAsecret") && !shown.contains("PRIVATE KEY"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"));
        assert!(c.to_json().unwrap().contains("gAAAAAsecret"));
    }
}
