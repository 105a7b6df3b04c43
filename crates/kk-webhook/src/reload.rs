//! Watching files by polling their metadata: simple, portable, and it sees Kubernetes'
//! ConfigMap and Secret volume updates (an atomic symlink swap) as well as in-place rewrites.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// What identifies a version of a file. Any change triggers a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<Option<(SystemTime, u64, u64)>>);

/// The fingerprint of a set of files (following symlinks); a missing file counts as `None`.
pub fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    Fingerprint(
        paths
            .iter()
            .map(|p| {
                std::fs::metadata(p).ok().map(|m| {
                    (
                        m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        m.len(),
                        m.ino(),
                    )
                })
            })
            .collect(),
    )
}

/// Calls `on_change` whenever the fingerprint of `paths` changes or `force` is notified
/// (SIGHUP), checking every `interval`. Runs until the task is dropped.
pub async fn watch(
    paths: Vec<PathBuf>,
    interval: Duration,
    force: std::sync::Arc<tokio::sync::Notify>,
    mut on_change: impl FnMut(),
) {
    let mut last = fingerprint(&paths);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = ticker.tick() => false,
            _ = force.notified() => true,
        };
        let now = fingerprint(&paths);
        if forced || now != last {
            // A writer may still be writing: wait a moment and take the settled version.
            tokio::time::sleep(Duration::from_millis(50)).await;
            last = fingerprint(&paths);
            on_change();
        }
    }
}

/// Shown in logs: the file names.
pub fn names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
