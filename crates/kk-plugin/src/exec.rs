//! The exec credential contract: `KUBERNETES_EXEC_INFO` in, an `ExecCredential` of the same
//! `apiVersion` out (`client.authentication.k8s.io/v1` or `v1beta1`; `v1beta1` when kubectl
//! passes no exec info, as kubectl before 1.22 and other clients do). Both ways through the one
//! typed `ExecCredential` of [`kk_core::exec_credential`].

use std::time::SystemTime;

use kk_core::exec_credential::ExecCredential;
use kk_core::secret::Secret;

pub use kk_core::exec_credential::{V1 as EXEC_V1, V1BETA1 as EXEC_V1BETA1, Version};

/// What kubectl told the plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecInfo {
    /// The `apiVersion` to answer in.
    pub api_version: Version,
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

/// Reads `KUBERNETES_EXEC_INFO` (`None` or blank: not run by kubectl) into the
/// [`ExecCredential`] model. Lenient: unknown fields and a missing `spec` are fine.
pub fn parse_exec_info(raw: Option<&str>) -> Result<ExecInfo, ExecInfoError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(ExecInfo {
            api_version: Version::V1beta1,
            interactive: None,
            server: None,
        });
    };
    let info: ExecCredential = serde_json::from_str(raw).map_err(|e| {
        // serde_json's message names the position, never the content.
        ExecInfoError::Malformed(e.to_string())
    })?;
    let version = info
        .version()
        .map_err(|e| ExecInfoError::UnsupportedVersion(e.0))?;
    let spec = info.spec.unwrap_or_default();
    Ok(ExecInfo {
        api_version: version,
        interactive: spec.interactive,
        server: spec.cluster.map(|c| c.server).filter(|s| !s.is_empty()),
    })
}

/// Whether the plugin may ask on the terminal: kubectl says so, or, with no word from kubectl,
/// stdin is a terminal.
pub fn may_prompt(info: &ExecInfo, stdin_is_terminal: bool) -> bool {
    info.interactive.unwrap_or(stdin_is_terminal)
}

/// The ExecCredential answer, one line of JSON.
pub fn exec_credential(
    version: Version,
    token: &Secret,
    expires: SystemTime,
) -> Result<String, serde_json::Error> {
    ExecCredential::answer(version, token.clone(), expires).to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn kubectl_shapes() {
        // kubectl 1.32 with provideClusterInfo (test-infra.md)
        let v1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"cluster":{"server":"https://127.0.0.1:16443","certificate-authority-data":"x","config":{"keystoneUrl":"http://127.0.0.1:5000/v3"}},"interactive":false}}"#;
        let i = parse_exec_info(Some(v1)).unwrap();
        assert_eq!(i.api_version, Version::V1);
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
        assert_eq!(i.api_version, Version::V1beta1);
        assert_eq!(i.interactive, None);
        assert!(may_prompt(&i, true) && !may_prompt(&i, false));
    }

    #[test]
    fn no_exec_info_means_v1beta1_and_terminal_decides() {
        for raw in [None, Some(""), Some("  ")] {
            let i = parse_exec_info(raw).unwrap();
            assert_eq!(i.api_version, Version::V1beta1);
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
        let out = exec_credential(Version::V1, &Secret::new("gAAAAAtok"), t).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["apiVersion"], EXEC_V1);
        assert_eq!(v["kind"], "ExecCredential");
        assert_eq!(v["status"]["token"], "gAAAAAtok");
        assert_eq!(v["status"]["expirationTimestamp"], "2026-11-28T16:09:51Z");
        assert!(!out.contains('\n'));
    }

    /// What kubectl sends in `KUBERNETES_EXEC_INFO` decides the answer's version, end to end
    /// through the plugin's two functions; what it writes reads back as it was written.
    #[test]
    fn the_version_of_the_exec_info_is_the_version_of_the_answer() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_882_191);
        for (raw, want) in [
            (
                Some(format!(r#"{{"apiVersion":"{EXEC_V1}","spec":{{}}}}"#)),
                EXEC_V1,
            ),
            (
                Some(format!(r#"{{"apiVersion":"{EXEC_V1BETA1}"}}"#)),
                EXEC_V1BETA1,
            ),
            (
                Some(r#"{"kind":"ExecCredential"}"#.to_string()),
                EXEC_V1BETA1,
            ),
            (None, EXEC_V1BETA1),
        ] {
            let info = parse_exec_info(raw.as_deref()).unwrap();
            let out = exec_credential(info.api_version, &Secret::new("gAAAAAtok"), t).unwrap();
            let back: ExecCredential = serde_json::from_str(&out).unwrap();
            assert_eq!(back.api_version, want, "{raw:?}");
            assert_eq!(
                back,
                ExecCredential::answer(info.api_version, Secret::new("gAAAAAtok"), t)
            );
            // And the answer is itself a valid exec info of the same version.
            assert_eq!(
                parse_exec_info(Some(&out)).unwrap().api_version,
                info.api_version
            );
        }
    }
}
