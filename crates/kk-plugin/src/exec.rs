//! The exec credential contract: `KUBERNETES_EXEC_INFO` in, an `ExecCredential` of the same
//! `apiVersion` out (`client.authentication.k8s.io/v1` or `v1beta1`; `v1beta1` when kubectl
//! passes no exec info, as kubectl before 1.22 and other clients do).

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Value, json};

use kk_core::secret::Secret;
use kk_core::timefmt::format_rfc3339;

/// `client.authentication.k8s.io/v1`
pub const EXEC_V1: &str = "client.authentication.k8s.io/v1";
/// `client.authentication.k8s.io/v1beta1`
pub const EXEC_V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

/// What kubectl told the plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecInfo {
    /// The `apiVersion` to answer in.
    pub api_version: &'static str,
    /// `spec.interactive`: `None` when there was no exec info (or an old one without the field).
    pub interactive: Option<bool>,
    /// `spec.cluster.server`, when `provideClusterInfo` is on.
    pub server: Option<String>,
}

/// `KUBERNETES_EXEC_INFO` could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecInfoError {
    /// Not JSON or not an object.
    #[error("KUBERNETES_EXEC_INFO is not a valid ExecCredential: {0}")]
    Malformed(String),
    /// An apiVersion this plugin does not speak.
    #[error(
        "KUBERNETES_EXEC_INFO asks for apiVersion {0:?}; this plugin answers {EXEC_V1} and {EXEC_V1BETA1} (set apiVersion in the kubeconfig's exec section to one of them)"
    )]
    UnsupportedVersion(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInfo {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    spec: Option<RawSpec>,
}

#[derive(Deserialize)]
struct RawSpec {
    #[serde(default)]
    interactive: Option<bool>,
    #[serde(default)]
    cluster: Option<RawCluster>,
}

#[derive(Deserialize)]
struct RawCluster {
    #[serde(default)]
    server: Option<String>,
}

/// Reads `KUBERNETES_EXEC_INFO` (`None` or blank: not run by kubectl). Lenient: unknown fields
/// and a missing `spec` are fine.
pub fn parse_exec_info(raw: Option<&str>) -> Result<ExecInfo, ExecInfoError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(ExecInfo {
            api_version: EXEC_V1BETA1,
            interactive: None,
            server: None,
        });
    };
    let info: RawInfo = serde_json::from_str(raw).map_err(|e| {
        // serde_json's message names the position, never the content.
        ExecInfoError::Malformed(e.to_string())
    })?;
    let api_version = match info.api_version.as_deref() {
        Some(EXEC_V1) => EXEC_V1,
        Some(EXEC_V1BETA1) | None => EXEC_V1BETA1,
        Some(other) => {
            return Err(ExecInfoError::UnsupportedVersion(
                other.chars().take(100).collect(),
            ));
        }
    };
    let spec = info.spec;
    Ok(ExecInfo {
        api_version,
        interactive: spec.as_ref().and_then(|s| s.interactive),
        server: spec.and_then(|s| s.cluster).and_then(|c| c.server),
    })
}

/// Whether the plugin may ask on the terminal: kubectl says so, or, with no word from kubectl,
/// stdin is a terminal.
pub fn may_prompt(info: &ExecInfo, stdin_is_terminal: bool) -> bool {
    info.interactive.unwrap_or(stdin_is_terminal)
}

/// The ExecCredential answer, one line of JSON.
pub fn exec_credential(api_version: &str, token: &Secret, expires: SystemTime) -> String {
    let v: Value = json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": {},
        "status": {
            "token": token.expose(),
            "expirationTimestamp": format_rfc3339(expires),
        }
    });
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn kubectl_shapes() {
        // kubectl 1.32 with provideClusterInfo (test-infra.md)
        let v1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"cluster":{"server":"https://127.0.0.1:16443","certificate-authority-data":"x","config":{"keystoneUrl":"http://127.0.0.1:5000/v3"}},"interactive":false}}"#;
        let i = parse_exec_info(Some(v1)).unwrap();
        assert_eq!(i.api_version, EXEC_V1);
        assert_eq!(i.interactive, Some(false));
        assert_eq!(i.server.as_deref(), Some("https://127.0.0.1:16443"));
        assert!(!may_prompt(&i, true));
        // without cluster info
        let i = parse_exec_info(Some(
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}"#,
        ))
        .unwrap();
        assert!(may_prompt(&i, false));
        // kubectl 1.20 v1beta1: no interactive field
        let i = parse_exec_info(Some(
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"cluster":{"server":"https://x"}}}"#,
        ))
        .unwrap();
        assert_eq!(i.api_version, EXEC_V1BETA1);
        assert_eq!(i.interactive, None);
        assert!(may_prompt(&i, true) && !may_prompt(&i, false));
    }

    #[test]
    fn no_exec_info_means_v1beta1_and_terminal_decides() {
        for raw in [None, Some(""), Some("  ")] {
            let i = parse_exec_info(raw).unwrap();
            assert_eq!(i.api_version, EXEC_V1BETA1);
            assert!(may_prompt(&i, true));
            assert!(!may_prompt(&i, false));
        }
    }

    #[test]
    fn bad_exec_info() {
        assert!(matches!(
            parse_exec_info(Some("{")),
            Err(ExecInfoError::Malformed(_))
        ));
        let e = parse_exec_info(Some(
            r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("v1alpha1"));
    }

    #[test]
    fn answer_carries_version_token_and_expiry() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_882_191);
        let out = exec_credential(EXEC_V1, &Secret::new("gAAAAAtok"), t);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["apiVersion"], EXEC_V1);
        assert_eq!(v["kind"], "ExecCredential");
        assert_eq!(v["status"]["token"], "gAAAAAtok");
        assert_eq!(v["status"]["expirationTimestamp"], "2026-11-28T16:09:51Z");
        assert!(!out.contains('\n'));
    }
}
