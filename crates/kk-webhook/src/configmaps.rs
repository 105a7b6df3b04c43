//! The policy and the sync config read from ConfigMaps in kube-system
//! (`--policy-configmap-name`, data key `policies`; `--sync-configmap-name`, data key
//! `syncConfig`), as the Go reference reads them, and watched ([`kk_kube::watch`]).
//!
//! * At start-up the ConfigMap must exist, hold its key, and parse, else start-up fails with a
//!   message naming the flag, `kube-system/<name>` and the key ([`fetch`]).
//! * A valid update applies at once, parsed exactly like the file (`policy.strict`,
//!   `sync.strict`, warnings, skipped rules).
//! * An invalid update, a missing key or a deleted ConfigMap keep what is in force (Go empties
//!   its policy then), logged and counted like a rejected file
//!   (`k8s_keystone_auth_policy_reloads_total{source="configmap",result="failure"}`,
//!   `k8s_keystone_auth_sync_config_reloads_total{...}`).
//! * [`WatchStatus`] feeds `GET /healthz/configmaps`: failing while a watch is broken or the
//!   ConfigMap as stored is not what is in force. Authentication never depends on it.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, Result};
use kk_kube::types::ConfigMap;
use kk_kube::watch::{ObjectWatch, Update, WatchSettings};
use kk_kube::{KubeClient, KubeError};
use tracing::{error, info, warn};

use crate::config::CONFIGMAP_NAMESPACE;

/// What a ConfigMap holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The policy (`--policy-configmap-name`, key `policies`).
    Policy,
    /// The sync config (`--sync-configmap-name`, key `syncConfig`).
    SyncConfig,
}

impl Content {
    /// The data key (as Go).
    pub const fn key(self) -> &'static str {
        match self {
            Content::Policy => "policies",
            Content::SyncConfig => "syncConfig",
        }
    }

    /// The flag that names the ConfigMap.
    pub const fn flag(self) -> &'static str {
        match self {
            Content::Policy => "--policy-configmap-name",
            Content::SyncConfig => "--sync-configmap-name",
        }
    }

    /// `policy`, `sync config`.
    pub const fn what(self) -> &'static str {
        match self {
            Content::Policy => "policy",
            Content::SyncConfig => "sync config",
        }
    }
}

/// One ConfigMap source: which content, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// What it holds.
    pub content: Content,
    /// The ConfigMap's name (in [`CONFIGMAP_NAMESPACE`]).
    pub name: String,
}

impl Source {
    /// `ConfigMap kube-system/<name>, data key `policies``, for messages.
    pub fn shown(&self) -> String {
        format!(
            "ConfigMap {CONFIGMAP_NAMESPACE}/{}, data key `{}`",
            self.name,
            self.content.key()
        )
    }

    /// The text under the key; an error naming the ConfigMap and key when it is missing.
    pub fn text<'a>(&self, cm: &'a ConfigMap) -> Result<&'a str> {
        cm.data
            .get(self.content.key())
            .map(String::as_str)
            .ok_or_else(|| {
                let keys: Vec<&str> = cm.data.keys().map(String::as_str).collect();
                anyhow::anyhow!(
                    "ConfigMap {CONFIGMAP_NAMESPACE}/{} has no data key `{}` (its keys: {})",
                    self.name,
                    self.content.key(),
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    }
                )
            })
    }
}

/// The first read, at start-up: the ConfigMap, and the list's version to watch from.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The source.
    pub source: Source,
    /// The ConfigMap as read.
    pub configmap: ConfigMap,
    /// The list's `resourceVersion`.
    pub list_version: String,
}

/// Reads the ConfigMap of `source` at start-up: it must exist and be readable. Errors name the
/// flag, the ConfigMap and, for a 403, the rights the service needs.
pub async fn fetch(client: &KubeClient, source: Source) -> Result<Fetched> {
    let ns = CONFIGMAP_NAMESPACE;
    let name = source.name.clone();
    let flag = source.content.flag();
    match client.list_named::<ConfigMap>(Some(ns), &name).await {
        Ok((Some(configmap), list_version)) => Ok(Fetched {
            source,
            configmap,
            list_version,
        }),
        Ok((None, _)) => anyhow::bail!(
            "{flag}: ConfigMap {ns}/{name} does not exist (the {} goes under its data key `{}`)",
            source.content.what(),
            source.content.key()
        ),
        Err(e @ KubeError::Forbidden { .. }) => Err(anyhow::Error::new(e)).with_context(|| {
            format!(
                "{flag}: cannot read ConfigMap {ns}/{name}: the service's Kubernetes identity ({}) needs get, list and watch on configmaps named {name} in {ns} (the Role of deploy/kubernetes/k8s-keystone-auth-configmaps.yaml)",
                client.origin()
            )
        }),
        Err(e) => Err(anyhow::Error::new(e))
            .with_context(|| format!("{flag}: cannot read ConfigMap {ns}/{name}")),
    }
}

/// The health of one watch, for `/healthz/configmaps`.
#[derive(Debug)]
pub struct WatchStatus {
    /// The source.
    pub source: Source,
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default)]
struct StatusInner {
    broken: Option<(String, SystemTime)>,
    rejected: Option<(String, SystemTime)>,
    applied: Option<(Option<String>, SystemTime)>,
}

/// What `/healthz/configmaps` shows of one watch.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WatchHealth {
    /// `kube-system/<name>`.
    pub configmap: String,
    /// The data key.
    pub key: &'static str,
    /// Whether the watch is broken or the ConfigMap as stored is not in force.
    pub failing: bool,
    /// The watch's error, while it is broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_error: Option<String>,
    /// Since when (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_error_at: Option<String>,
    /// Why the ConfigMap as stored is not in force (invalid, key missing, deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
    /// Since when (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_at: Option<String>,
    /// The `resourceVersion` of the content in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_resource_version: Option<String>,
    /// When it was applied (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WatchStatus {
    /// The status of a source whose content at `version` is in force.
    pub fn new(source: Source, version: Option<String>) -> Self {
        Self {
            source,
            inner: Mutex::new(StatusInner {
                applied: Some((version, SystemTime::now())),
                ..Default::default()
            }),
        }
    }

    fn applied(&self, version: Option<String>) {
        let mut s = lock(&self.inner);
        s.applied = Some((version, SystemTime::now()));
        s.rejected = None;
    }

    fn rejected(&self, why: String) {
        lock(&self.inner).rejected = Some((why, SystemTime::now()));
    }

    fn broken(&self, why: String) {
        let mut s = lock(&self.inner);
        if s.broken.is_none() {
            s.broken = Some((why, SystemTime::now()));
        } else if let Some(b) = s.broken.as_mut() {
            b.0 = why;
        }
    }

    fn recovered(&self) {
        lock(&self.inner).broken = None;
    }

    /// What `/healthz/configmaps` shows.
    pub fn health(&self) -> WatchHealth {
        let s = lock(&self.inner);
        let ts = |t: &SystemTime| kk_core::timefmt::format_rfc3339(*t);
        WatchHealth {
            configmap: format!("{CONFIGMAP_NAMESPACE}/{}", self.source.name),
            key: self.source.content.key(),
            failing: s.broken.is_some() || s.rejected.is_some(),
            watch_error: s.broken.as_ref().map(|(e, _)| e.clone()),
            watch_error_at: s.broken.as_ref().map(|(_, t)| ts(t)),
            rejected: s.rejected.as_ref().map(|(e, _)| e.clone()),
            rejected_at: s.rejected.as_ref().map(|(_, t)| ts(t)),
            applied_resource_version: s.applied.as_ref().and_then(|(v, _)| v.clone()),
            applied_at: s.applied.as_ref().map(|(_, t)| ts(t)),
        }
    }
}

/// What a watch does with the content of its ConfigMap.
pub trait Apply: Send + Sync + 'static {
    /// A new version of the ConfigMap's text: applied (`Ok`) or refused (`Err`: what is in
    /// force stays); counted either way.
    fn apply(&self, source: &Source, text: &str) -> Result<()>;
    /// The ConfigMap lacks its key, or is gone: count a failure (what is in force stays).
    fn refused(&self, source: &Source);
}

/// Watches the ConfigMap of `first` until the task is dropped, applying each new version.
pub async fn watch(
    client: KubeClient,
    first: Fetched,
    settings: WatchSettings,
    status: Arc<WatchStatus>,
    target: Arc<dyn Apply>,
) {
    let source = first.source.clone();
    let shown = source.shown();
    let mut w = ObjectWatch::<ConfigMap>::new(
        client,
        Some(CONFIGMAP_NAMESPACE),
        &source.name,
        settings,
        Some((Some(first.configmap), first.list_version)),
    );
    loop {
        match w.next().await {
            Update::Present(cm) => {
                let version = cm.metadata.resource_version.clone();
                let result = match source.text(&cm) {
                    Ok(text) => target.apply(&source, text),
                    Err(e) => {
                        target.refused(&source);
                        Err(e)
                    }
                };
                match result {
                    Ok(()) => status.applied(version),
                    Err(e) => {
                        let why = kk_core::error_chain(&*e);
                        error!(
                            configmap = %shown,
                            resource_version = version.as_deref().unwrap_or(""),
                            error = %why,
                            "{} ConfigMap update rejected; keeping the {} in force",
                            source.content.what(),
                            source.content.what()
                        );
                        status.rejected(why);
                    }
                }
            }
            Update::Absent => {
                warn!(
                    configmap = %shown,
                    "{} ConfigMap deleted; keeping the {} in force (create it again to change it)",
                    source.content.what(),
                    source.content.what()
                );
                target.refused(&source);
                status.rejected(format!(
                    "ConfigMap {CONFIGMAP_NAMESPACE}/{} was deleted",
                    source.name
                ));
            }
            Update::Broken { error, retry_in } => {
                let why = kk_core::error_chain(&error);
                let hint = if matches!(error, KubeError::Forbidden { .. }) {
                    format!(
                        " (the service needs get, list and watch on configmaps named {} in {CONFIGMAP_NAMESPACE})",
                        source.name
                    )
                } else {
                    String::new()
                };
                error!(
                    configmap = %shown,
                    retry_in = ?retry_in,
                    error = %why,
                    "{} ConfigMap watch failed{hint}; keeping the {} in force, authentication is not affected",
                    source.content.what(),
                    source.content.what()
                );
                status.broken(format!("{why}{hint}"));
            }
            Update::Recovered => {
                info!(configmap = %shown, "{} ConfigMap watch works again", source.content.what());
                status.recovered();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn messages_name_the_configmap_and_the_key() {
        let s = Source {
            content: Content::Policy,
            name: "k8s-auth-policy".into(),
        };
        assert_eq!(
            s.shown(),
            "ConfigMap kube-system/k8s-auth-policy, data key `policies`"
        );
        let cm = ConfigMap::new(
            kk_kube::types::ObjectMeta::named("k8s-auth-policy"),
            BTreeMap::from([("policy.json".to_string(), "[]".to_string())]),
        );
        assert_eq!(
            s.text(&cm).unwrap_err().to_string(),
            "ConfigMap kube-system/k8s-auth-policy has no data key `policies` (its keys: policy.json)"
        );
        let sync = Source {
            content: Content::SyncConfig,
            name: "s".into(),
        };
        assert!(
            sync.text(&ConfigMap::new(Default::default(), BTreeMap::new()))
                .unwrap_err()
                .to_string()
                .ends_with("no data key `syncConfig` (its keys: none)")
        );
    }

    #[test]
    fn health_fails_while_broken_or_rejected_and_recovers() {
        let st = WatchStatus::new(
            Source {
                content: Content::SyncConfig,
                name: "s".into(),
            },
            Some("5".into()),
        );
        let h = st.health();
        assert!(!h.failing);
        assert_eq!(h.applied_resource_version.as_deref(), Some("5"));
        assert_eq!(
            (h.configmap.as_str(), h.key),
            ("kube-system/s", "syncConfig")
        );
        st.broken("HTTP 403".into());
        st.broken("HTTP 500".into());
        let h = st.health();
        assert!(h.failing);
        assert_eq!(h.watch_error.as_deref(), Some("HTTP 500"));
        st.recovered();
        assert!(!st.health().failing);
        st.rejected("invalid".into());
        assert!(st.health().failing);
        st.applied(Some("9".into()));
        let h = st.health();
        assert!(!h.failing && h.rejected.is_none());
        assert_eq!(h.applied_resource_version.as_deref(), Some("9"));
    }
}
