//! Watching **one named object** (a ConfigMap the service reads its policy from): a list with
//! `fieldSelector=metadata.name=<name>` gives the object (or its absence) and a
//! `resourceVersion`; a watch from there streams newline-delimited JSON events
//! (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`), each line at most [`MAX_LINE`] bytes.
//!
//! * The server ends a watch after its `timeoutSeconds` ([`WatchSettings::timeout`]): the watch
//!   is opened again from the last `resourceVersion` seen (bookmarks keep it fresh).
//! * A 410 (`Expired`: the version is too old, as an HTTP status or an `ERROR` event) lists
//!   again.
//! * Any other failure reports [`Update::Broken`] and lists again after a capped exponential
//!   back-off ([`backoff`]: 1 s, 2 s, 4 s, ... at most [`WatchSettings::max_backoff`], at least
//!   the server's `Retry-After`); a watch the server ends at once counts as a failure, so
//!   nothing loops busily.
//! * [`Update::Present`] and [`Update::Absent`] are reported when the object changes (a new
//!   `resourceVersion`, a delete, a re-creation), never twice for the same version.
//!
//! [`Tracker`] is the pure state (tested without a server); [`ObjectWatch`] drives it with a
//! [`KubeClient`].

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::{KubeClient, WatchStream};
use crate::error::KubeError;
use crate::types::{RawWatchEvent, Resource, Status};

/// Longest watch event line read (a ConfigMap holds at most 1 MiB).
pub const MAX_LINE: usize = 4 * 1024 * 1024;
/// A watch that ends sooner than this after it was opened, without an event, counts as a
/// failure (so a server that closes watches at once is not asked again at once).
pub const MIN_WATCH: Duration = Duration::from_secs(1);

/// How a watch behaves.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// `timeoutSeconds` of one watch request (the server ends it then; it is opened again).
    pub timeout: Duration,
    /// First retry delay after a failure.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// The delay after `failures` (≥ 1) failures in a row: `min`, doubled each time, at most `max`.
pub fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    min.saturating_mul(factor).min(max)
}

/// Splits a byte stream into lines, refusing a line longer than its limit.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Where the next line starts in `buf`.
    start: usize,
    /// Bytes of the line not ended yet.
    partial: usize,
    max: usize,
}

impl LineBuffer {
    /// A buffer for lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            partial: 0,
            max,
        }
    }

    /// Adds a chunk; `Err(max)` when a line is longer than `max` (the buffer is emptied).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        for piece in chunk.split_inclusive(|b| *b == b'\n') {
            let ends = piece.last() == Some(&b'\n');
            let len = piece.len() - usize::from(ends);
            self.partial += len;
            if self.partial > self.max {
                self.buf.clear();
                self.partial = 0;
                return Err(self.max);
            }
            if ends {
                self.partial = 0;
            }
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// The next complete non-empty line (without its newline), if one is buffered.
    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let rest = &self.buf[self.start..];
            let end = rest.iter().position(|b| *b == b'\n')?;
            let line = rest[..end].to_vec();
            self.start += end + 1;
            let trimmed = line.trim_ascii();
            if !trimmed.is_empty() {
                return Some(trimmed.to_vec());
            }
        }
    }

    /// At the end of the stream: the last line if it had no newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = self.buf[self.start..].trim_ascii().to_vec();
        self.buf.clear();
        self.start = 0;
        self.partial = 0;
        (!rest.is_empty()).then_some(rest)
    }
}

/// One event of a watch stream, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<R> {
    /// The object was created (or is there when the watch starts).
    Added(R),
    /// The object changed.
    Modified(R),
    /// The object was deleted (its last state).
    Deleted(R),
    /// No change; the stream is at this `resourceVersion`.
    Bookmark(String),
    /// The server ended the watch with this status (410 `Expired`: list again).
    Error(Status),
}

/// Parses one line of a watch stream.
pub fn parse_event<R: Resource>(line: &[u8]) -> Result<WatchEvent<R>, String> {
    let raw: RawWatchEvent =
        serde_json::from_slice(line).map_err(|e| format!("not a watch event: {e}"))?;
    let object = |v: serde_json::Value| {
        serde_json::from_value::<R>(v)
            .map_err(|e| format!("{} event: not a {}: {e}", raw.event_type, R::KIND))
    };
    match raw.event_type.as_str() {
        "ADDED" => Ok(WatchEvent::Added(object(raw.object.clone())?)),
        "MODIFIED" => Ok(WatchEvent::Modified(object(raw.object.clone())?)),
        "DELETED" => Ok(WatchEvent::Deleted(object(raw.object.clone())?)),
        "BOOKMARK" => raw.object["metadata"]["resourceVersion"]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(|v| WatchEvent::Bookmark(v.to_string()))
            .ok_or_else(|| "BOOKMARK event without metadata.resourceVersion".to_string()),
        "ERROR" => serde_json::from_value::<Status>(raw.object.clone())
            .map(WatchEvent::Error)
            .map_err(|e| format!("ERROR event: not a Status: {e}")),
        other => Err(format!("unknown watch event type {other:?}")),
    }
}

/// What the watch of an object reports.
#[derive(Debug)]
pub enum Update<R> {
    /// The object, first seen or at a new version.
    Present(R),
    /// It does not exist (first seen so, or deleted).
    Absent,
    /// The watch failed; it lists again after `retry_in`. What was reported last still stands.
    Broken {
        /// Why.
        error: KubeError,
        /// When it tries again.
        retry_in: Duration,
    },
    /// The watch works again after [`Update::Broken`] (a list succeeded).
    Recovered,
}

/// What the tracker last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    Nothing,
    Absent,
    Present(Option<String>),
}

/// What to do after an event.
#[derive(Debug)]
pub enum Step<R> {
    /// Report this.
    Report(Update<R>),
    /// Nothing to report.
    Nothing,
    /// The version is gone (410): list again, now.
    Relist,
    /// The stream said something wrong: fail (back off, list again).
    Fail(String),
}

/// The pure state of the watch of the object `name`: where to watch from, and what was
/// reported last.
#[derive(Debug)]
pub struct Tracker<R> {
    name: String,
    resource_version: Option<String>,
    known: Known,
    _kind: PhantomData<fn() -> R>,
}

impl<R: Resource> Tracker<R> {
    /// Nothing known yet: list first.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            resource_version: None,
            known: Known::Nothing,
            _kind: PhantomData,
        }
    }

    /// Where to watch from; `None`: list (again) first.
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// Forgets where to watch from (after a failure: list again).
    pub fn relist(&mut self) {
        self.resource_version = None;
    }

    /// A list answered: the object (if it is there) and the list's version.
    pub fn listed(&mut self, object: Option<R>, list_version: String) -> Option<Update<R>> {
        self.resource_version = Some(list_version);
        match object.filter(|o| o.metadata().name == self.name) {
            Some(o) => self.present(o),
            None => self.absent(),
        }
    }

    fn present(&mut self, o: R) -> Option<Update<R>> {
        let version = o.metadata().resource_version.clone();
        if let Some(v) = &version {
            self.resource_version = Some(v.clone());
        }
        let now = Known::Present(version);
        if self.known == now && !matches!(now, Known::Present(None)) {
            return None;
        }
        self.known = now;
        Some(Update::Present(o))
    }

    fn absent(&mut self) -> Option<Update<R>> {
        if self.known == Known::Absent {
            return None;
        }
        self.known = Known::Absent;
        Some(Update::Absent)
    }

    /// An event of the watch stream.
    pub fn event(&mut self, event: WatchEvent<R>) -> Step<R> {
        match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                if o.metadata().name != self.name {
                    return Step::Nothing;
                }
                self.present(o).map_or(Step::Nothing, Step::Report)
            }
            WatchEvent::Deleted(o) => {
                if o.metadata().name != self.name {
                    return Step::Nothing;
                }
                if let Some(v) = &o.metadata().resource_version {
                    self.resource_version = Some(v.clone());
                }
                self.absent().map_or(Step::Nothing, Step::Report)
            }
            WatchEvent::Bookmark(v) => {
                self.resource_version = Some(v);
                Step::Nothing
            }
            WatchEvent::Error(s)
                if s.code == 410 || s.reason == "Expired" || s.reason == "Gone" =>
            {
                self.resource_version = None;
                Step::Relist
            }
            WatchEvent::Error(s) => Step::Fail(format!(
                "the watch ended with an error (HTTP {}, {}): {}",
                s.code, s.reason, s.message
            )),
        }
    }
}

/// The watch of one object with a client: call [`ObjectWatch::next`] in a loop.
pub struct ObjectWatch<R: Resource> {
    client: KubeClient,
    namespace: Option<String>,
    name: String,
    settings: WatchSettings,
    tracker: Tracker<R>,
    reports: VecDeque<Update<R>>,
    stream: Option<(WatchStream, Instant, usize)>,
    failures: u32,
    broken: bool,
    wait: Option<Duration>,
}

impl<R: Resource> std::fmt::Debug for ObjectWatch<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWatch")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<R: Resource> ObjectWatch<R> {
    /// A watch of `namespace/name`. `first`, when given, is a list answer already read (the
    /// object and the list's version, from [`KubeClient::list_named`]): the watch starts from
    /// it and does not report it again.
    pub fn new(
        client: KubeClient,
        namespace: Option<&str>,
        name: &str,
        settings: WatchSettings,
        first: Option<(Option<R>, String)>,
    ) -> Self {
        let mut tracker = Tracker::new(name);
        if let Some((object, version)) = first {
            tracker.listed(object, version);
        }
        Self {
            client,
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            settings,
            tracker,
            reports: VecDeque::new(),
            stream: None,
            failures: 0,
            broken: false,
            wait: None,
        }
    }

    fn fail(&mut self, error: KubeError) {
        self.failures = self.failures.saturating_add(1);
        let delay = backoff(
            self.failures,
            self.settings.min_backoff,
            self.settings.max_backoff,
        )
        .max(error.retry_after().unwrap_or_default());
        self.stream = None;
        self.tracker.relist();
        self.broken = true;
        self.wait = Some(delay);
        self.reports.push_back(Update::Broken {
            error,
            retry_in: delay,
        });
    }

    fn protocol(&self, detail: String) -> KubeError {
        KubeError::Protocol {
            call: format!(
                "watch {} {}{}",
                R::KIND.to_ascii_lowercase(),
                self.namespace
                    .as_deref()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default(),
                self.name
            ),
            detail,
        }
    }

    /// The next report: waits as long as nothing changes (runs for ever; drop it to stop).
    pub async fn next(&mut self) -> Update<R> {
        loop {
            if let Some(r) = self.reports.pop_front() {
                return r;
            }
            if let Some(d) = self.wait.take() {
                tokio::time::sleep(d).await;
            }
            let ns = self.namespace.clone();
            let Some(version) = self.tracker.resource_version().map(str::to_string) else {
                match self.client.list_named::<R>(ns.as_deref(), &self.name).await {
                    Ok((object, version)) => {
                        if std::mem::take(&mut self.broken) {
                            self.reports.push_back(Update::Recovered);
                        }
                        self.reports.extend(self.tracker.listed(object, version));
                    }
                    Err(e) => self.fail(e),
                }
                continue;
            };
            let Some((stream, opened, events)) = self.stream.as_mut() else {
                match self
                    .client
                    .watch_named::<R>(ns.as_deref(), &self.name, &version, self.settings.timeout)
                    .await
                {
                    Ok(s) => self.stream = Some((s, Instant::now(), 0)),
                    Err(KubeError::Status { status: 410, .. }) => {
                        self.tracker.relist();
                    }
                    Err(e) => self.fail(e),
                }
                continue;
            };
            match stream.next_line().await {
                Ok(Some(line)) => {
                    *events += 1;
                    let step = match parse_event::<R>(&line) {
                        Ok(event) => self.tracker.event(event),
                        Err(why) => Step::Fail(why),
                    };
                    match step {
                        Step::Report(u) => {
                            self.failures = 0;
                            self.reports.push_back(u);
                        }
                        Step::Nothing => self.failures = 0,
                        Step::Relist => self.stream = None,
                        Step::Fail(why) => {
                            let e = self.protocol(why);
                            self.fail(e);
                        }
                    }
                }
                Ok(None) => {
                    let quick = opened.elapsed() < MIN_WATCH && *events == 0;
                    self.stream = None;
                    if quick {
                        let e = self.protocol("the server ended the watch at once".into());
                        self.fail(e);
                    }
                }
                Err(e) => self.fail(e),
            }
        }
    }
}

#[cfg(test)]
mod tests;
