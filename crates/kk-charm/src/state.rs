//! What the charm remembers between hooks (`/var/lib/kubernetes-keystone/state.json`): the
//! kube-apiserver options it replaced and set, where it wrote them, the installed binary's
//! identity, the refusal `--check-config` gave last. Plain data: reading and writing the file
//! goes through [`super::machine::Machine`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::snap::Style;

/// The charm's state.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// kube-apiserver options as they were before the charm set them (`None` = unset).
    #[serde(default)]
    pub original: BTreeMap<String, Option<String>>,
    /// The options the charm set last.
    #[serde(default)]
    pub applied: BTreeMap<String, String>,
    /// Where the installed binary came from (`charm` or the download URL).
    #[serde(default)]
    pub binary_source: Option<String>,
    /// SHA-256 of a downloaded installed binary.
    #[serde(default)]
    pub binary_sha256: Option<String>,
    /// Length, mtime and SHA-256 of the installed binary, as the charm installed it.
    #[serde(default)]
    pub installed: Option<Stamp>,
    /// Length, mtime and SHA-256 of the charm's `bin/k8s-keystone-auth` when it was last
    /// hashed: while its length and mtime stay the same it is not read again.
    #[serde(default)]
    pub shipped: Option<Stamp>,
    /// Names the charm-made server certificate covers (`None`: the certificate came from the
    /// options or was not made yet).
    #[serde(default)]
    pub charm_cert_sans: Option<Vec<String>>,
    /// A downloaded binary not installed yet (refused by `--check-config`), kept in the state
    /// directory so later hooks do not fetch it again.
    #[serde(default)]
    pub download: Option<Download>,
    /// Where the charm wrote kube-apiserver's options (per flag or in `args`).
    #[serde(default)]
    pub style: Option<Style>,
    /// The inputs `--check-config` refused last (binary, unit, files) and its message.
    #[serde(default)]
    pub refused: Option<Refused>,
}

/// A file's identity without reading it: length and mtime, with the SHA-256 computed when
/// they were recorded.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stamp {
    /// Length in bytes.
    pub len: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// A refusal by `--check-config`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refused {
    /// SHA-256 over everything the check saw.
    pub digest: String,
    /// What the status said.
    pub message: String,
}

/// A downloaded binary waiting in the state directory.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Download {
    /// The URL.
    pub source: String,
    /// Its SHA-256.
    pub sha256: String,
}

impl State {
    /// Parses the state file.
    pub fn parse(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    /// The state file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A map with string keys and plain values always serializes.
        serde_json::to_string_pretty(self)
            .unwrap_or_default()
            .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_state_files_still_load() {
        let s = State::parse(
            r#"{"original":{"authorization-mode":"Node,RBAC"},"binary_source":"charm"}"#,
        )
        .unwrap();
        assert_eq!(s.binary_source.as_deref(), Some("charm"));
        assert!(s.installed.is_none());
        assert_eq!(
            State::parse(std::str::from_utf8(&s.to_bytes()).unwrap()).unwrap(),
            s
        );
    }
}
