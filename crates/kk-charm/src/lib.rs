//! kk-charm: the Juju charm `kubernetes-keystone`: one executable for every hook
//! (`kubernetes-keystone-hook`, `src/main.rs`, run by the charm's `dispatch`).
//!
//! | module | concern |
//! |---|---|
//! | [`hook_tools`] | the Juju hook tools behind a trait (`config-get`, `status-set`, ...) |
//! | [`options`] | config.yaml options → validated [`options::Settings`] (pure) |
//! | [`render`] | paths, systemd unit, service config, webhook kubeconfigs (pure) |
//! | [`snap`] | kube-apiserver options: per-flag or the single `args` option |
//! | [`pki`] | the charm's own CA and server certificate |
//! | [`host`] | files, `systemctl`, the system user (the real machine's helpers) |
//! | [`run`] | runs external programs: bounded, errors that name the program and its status |
//! | [`state`] | what the charm remembers between hooks |
//! | [`machine`] | the machine behind one trait, and the real one |
//! | [`observe`] | the machine as it is → [`plan::Observed`] |
//! | [`plan`] | observed machine + options → actions (pure) |
//! | [`apply`] | carries the actions out |
//! | [`hooks`] | event → observe → plan → apply |
//!
//! Environment: Juju's (`JUJU_DISPATCH_PATH`, `JUJU_CHARM_DIR`/`CHARM_DIR`, ...) plus
//! `KUBERNETES_KEYSTONE_ROOT` (default `/`), the root every written path is under, and
//! `KUBERNETES_KEYSTONE_HEALTH_TIMEOUT` (seconds to wait for /healthz, default 30).

pub mod apply;
pub mod hook_tools;
pub mod hooks;
pub mod host;
pub mod machine;
pub mod observe;
pub mod options;
pub mod pki;
pub mod plan;
pub mod render;
pub mod run;
pub mod snap;
pub mod state;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod scenarios;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use hook_tools::{HookTools, JujuTools, Level};

/// The event from `JUJU_DISPATCH_PATH` (`hooks/config-changed` → `config-changed`), or else
/// from the name the executable was run as (a `hooks/<event>` link, old Juju).
pub fn event_name(dispatch_path: Option<&str>, argv0: &str) -> String {
    let source = dispatch_path
        .filter(|p| !p.trim().is_empty())
        .unwrap_or(argv0);
    Path::new(source)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs the hook the environment names; the process exit code.
pub fn main() -> ExitCode {
    kk_core::telemetry::init("info");
    let argv0 = std::env::args().next().unwrap_or_default();
    let event = event_name(std::env::var("JUJU_DISPATCH_PATH").ok().as_deref(), &argv0);
    let charm_dir = std::env::var_os("JUJU_CHARM_DIR")
        .or_else(|| std::env::var_os("CHARM_DIR"))
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    let root = std::env::var_os("KUBERNETES_KEYSTONE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let health_timeout = std::env::var("KUBERNETES_KEYSTONE_HEALTH_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(30)
        .min(600);
    let tools = JujuTools;
    let machine = machine::RealMachine { tools: &tools };
    let ctx = hooks::Ctx {
        env: observe::Env {
            paths: render::Paths::new(root),
            charm_dir,
            health_timeout: Duration::from_secs(health_timeout),
        },
        event: event.clone(),
    };
    tracing::debug!(event = %event, "kubernetes-keystone hook");
    match hooks::run(&machine, &ctx) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{event} hook failed: {e:#}");
            tools.log(Level::Error, &msg);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_from_dispatch_path_or_argv0() {
        assert_eq!(
            event_name(Some("hooks/config-changed"), "/charm/dispatch"),
            "config-changed"
        );
        assert_eq!(event_name(None, "/charm/hooks/install"), "install");
        assert_eq!(event_name(Some(""), "hooks/update-status"), "update-status");
        assert_eq!(event_name(Some("actions/do-it"), "x"), "do-it");
    }
}
