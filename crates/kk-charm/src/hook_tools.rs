//! The Juju hook tools the charm uses, behind a trait: `config-get`, `relation-ids`,
//! `status-set`, `juju-log`, `application-version-set`.
//!
//! The real implementation ([`JujuTools`]) runs the tools found on `PATH` (Juju puts them there
//! for every hook), always with `--format=json` where they print, and `--` before free text.
//! Contracts: docs/charm.md and the shared Juju reference (config-get prints `null` for an
//! unset key, relation ids are `name:N`, exit code 2 for usage errors and 1 for runtime errors).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use super::run::Cmd;

/// The four statuses a charm may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The charm is doing work.
    Maintenance,
    /// Needs a human (bad or missing option).
    Blocked,
    /// Waiting for something else in the model.
    Waiting,
    /// Running.
    Active,
}

impl Status {
    /// The word `status-set` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Maintenance => "maintenance",
            Status::Blocked => "blocked",
            Status::Waiting => "waiting",
            Status::Active => "active",
        }
    }
}

/// Log levels of `juju-log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// DEBUG
    Debug,
    /// INFO
    Info,
    /// WARNING
    Warning,
    /// ERROR
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// What the charm asks of Juju.
pub trait HookTools {
    /// Every declared option (`config-get --all --format=json`); unset options are `null`.
    fn config(&self) -> Result<BTreeMap<String, Value>>;
    /// Ids (`name:N`) of the relations on an endpoint.
    fn relation_ids(&self, endpoint: &str) -> Result<Vec<String>>;
    /// Sets the unit's status.
    fn status(&self, status: Status, message: &str) -> Result<()>;
    /// Logs to the unit's log.
    fn log(&self, level: Level, message: &str);
    /// Sets the version shown by `juju status`.
    fn application_version(&self, version: &str) -> Result<()>;
}

/// The hook tools Juju puts on `PATH`.
#[derive(Debug, Default)]
pub struct JujuTools;

/// How long a hook tool may take (each is one call to the unit agent).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

fn run(cmd: Cmd) -> Result<String> {
    let tool = cmd.describe();
    let out = cmd.timeout(TOOL_TIMEOUT).run()?;
    String::from_utf8(out.stdout).with_context(|| format!("{tool} printed invalid UTF-8"))
}

fn json<T: serde::de::DeserializeOwned>(tool: &str, text: &str) -> Result<T> {
    // The output is not echoed: config-get's holds option values (tls-key).
    serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{tool} printed invalid JSON ({} bytes; {e})", text.len()))
}

impl HookTools for JujuTools {
    fn config(&self) -> Result<BTreeMap<String, Value>> {
        let text = run(Cmd::new("config-get").args(["--all", "--format=json"]))?;
        json("config-get", &text)
    }

    fn relation_ids(&self, endpoint: &str) -> Result<Vec<String>> {
        let text = run(Cmd::new("relation-ids").args(["--format=json", endpoint]))?;
        let v: Option<Vec<String>> = json("relation-ids", &text)?;
        Ok(v.unwrap_or_default())
    }

    fn status(&self, status: Status, message: &str) -> Result<()> {
        run(Cmd::new("status-set")
            .args(["--", status.as_str()])
            .hidden_arg(message))
        .map(drop)
    }

    fn log(&self, level: Level, message: &str) {
        // To juju-log only, so the unit log shows each message once. juju-log missing or
        // failing must not fail the hook: the message then goes to stderr (which Juju also logs).
        let cmd = Cmd::new("juju-log")
            .args(["--log-level", level.as_str(), "--"])
            .hidden_arg(message);
        if let Err(e) = run(cmd) {
            eprintln!("{} {message}", level.as_str());
            eprintln!("WARNING juju-log: {e:#}");
        }
    }

    fn application_version(&self, version: &str) -> Result<()> {
        run(Cmd::new("application-version-set").args(["--", version])).map(drop)
    }
}
