//! Carries out a [`plan`](super::plan) on a [`Machine`], in order. A failed
//! [`Action::Gate`] runs its failure branch (block, put kube-apiserver's options back, save
//! the state) and ends the hook without an error; any other failure is the hook's error.

use std::cell::Cell;

use anyhow::{Context, Result};

use super::hook_tools::{Level, Status};
use super::host::Access;
use super::machine::Machine;
use super::plan::{Action, Check, OnFail};
use super::render::{APISERVER_SNAP, Paths, SERVICE_USER};
use super::state::{Refused, State};

/// Whether the plan ran to its end (`false`: a gate failed and the unit is blocked).
pub fn apply(m: &dyn Machine, paths: &Paths, actions: &[Action]) -> Result<bool> {
    let gid = Cell::new(None);
    let group = || -> Result<u32> {
        if let Some(g) = gid.get() {
            return Ok(g);
        }
        let g = m
            .user_gid(SERVICE_USER)?
            .with_context(|| format!("the user {SERVICE_USER} does not exist"))?;
        gid.set(Some(g));
        Ok(g)
    };
    for a in actions {
        match a {
            Action::AddUser => {
                m.add_user(SERVICE_USER)?;
                group()?;
            }
            Action::RemoveUser => m.remove_user(SERVICE_USER)?,
            Action::EnsureDir {
                path,
                mode,
                group: g,
            } => {
                let gid = if *g { Some(group()?) } else { None };
                m.ensure_dir(path, *mode, gid)?;
            }
            Action::Write {
                path,
                content,
                access,
            } => {
                let gid = service_gid(*access, &group)?;
                m.write(path, &content.0, *access, gid)?;
            }
            Action::SetMeta { path, access } => {
                let gid = service_gid(*access, &group)?;
                m.set_meta(path, access.mode(), gid)?;
            }
            Action::Remove(path) => {
                m.remove_file(path)?;
            }
            Action::RemoveDir(path) => {
                m.remove_dir(path)?;
            }
            Action::Install { from, to } => m.install(from, to)?,
            Action::Systemctl(args) => m.systemctl(args)?,
            Action::Snap(changes) => m.snap_apply(APISERVER_SNAP, changes)?,
            Action::Status(s, msg) => m.tools().status(*s, msg)?,
            Action::Log(l, msg) => m.tools().log(*l, msg),
            Action::ReportVersion(binary) => {
                if let Some(v) = m.version(binary) {
                    m.tools().application_version(&v)?;
                }
            }
            Action::SaveState(state) => save_state(m, paths, state)?,
            Action::Gate { check, on_fail } => {
                if let Err(e) = run_check(m, check) {
                    fail(m, paths, on_fail, &e)?;
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

fn service_gid(access: Access, group: &dyn Fn() -> Result<u32>) -> Result<Option<u32>> {
    Ok(if access == Access::Service {
        Some(group()?)
    } else {
        None
    })
}

/// Writes the state file unless it holds exactly that already.
fn save_state(m: &dyn Machine, paths: &Paths, state: &State) -> Result<()> {
    let bytes = state.to_bytes();
    if m.read(&paths.state_file())?.as_deref() == Some(bytes.as_slice()) {
        return Ok(());
    }
    m.ensure_dir(&paths.state_dir(), Some(0o700), None)?;
    m.write(&paths.state_file(), &bytes, Access::RootOnly, None)
}

fn run_check(m: &dyn Machine, check: &Check) -> Result<()> {
    match check {
        Check::Config {
            binary,
            staging,
            files,
            config,
        } => {
            m.remove_dir(staging)?;
            m.ensure_dir(staging, Some(0o700), None)?;
            let result = files
                .iter()
                .try_for_each(|(p, c)| m.write(p, &c.0, Access::RootOnly, None))
                .and_then(|()| m.check_config(binary, config));
            m.remove_dir(staging)?;
            result
        }
        Check::Healthy { url, ca, timeout } => m.wait_healthy(url, ca, *timeout),
    }
}

fn fail(m: &dyn Machine, paths: &Paths, on_fail: &OnFail, e: &anyhow::Error) -> Result<()> {
    let msg = format!("{}{e:#}{}", on_fail.head, on_fail.tail);
    apply(m, paths, &on_fail.then)?;
    m.tools().log(Level::Error, &msg);
    let mut state = on_fail.state.clone();
    if let Some(digest) = &on_fail.refusal {
        // Saved, so later hooks neither download nor issue certificates again.
        state.refused = Some(Refused {
            digest: digest.clone(),
            message: msg.clone(),
        });
    }
    save_state(m, paths, &state)?;
    m.tools().status(Status::Blocked, &msg)
}
