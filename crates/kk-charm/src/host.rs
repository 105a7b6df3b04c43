//! The machine: files (written only when their bytes differ, atomically, with their mode and
//! group), `systemctl`, the system user. Every path comes from [`super::render::Paths`], so
//! everything is under the root the caller chose.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// How a file is owned: by root, readable by root only or also by the service's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// root only (0600).
    RootOnly,
    /// root, readable by the service's group (0640).
    Service,
    /// readable by everyone (0644).
    Public,
    /// executable by everyone (0755).
    Executable,
}

impl Access {
    /// The permission bits.
    pub fn mode(self) -> u32 {
        match self {
            Access::RootOnly => 0o600,
            Access::Service => 0o640,
            Access::Public => 0o644,
            Access::Executable => 0o755,
        }
    }
}

/// Writes `content` to `path` unless the file already holds exactly that (then only its mode
/// and group are corrected). Returns whether the content changed.
pub fn write_if_changed(
    path: &Path,
    content: &[u8],
    access: Access,
    gid: Option<u32>,
) -> Result<bool> {
    let gid = if access == Access::Service { gid } else { None };
    if let Ok(existing) = std::fs::read(path)
        && existing == content
    {
        fix_metadata(path, access.mode(), gid)?;
        return Ok(false);
    }
    write(path, content, access, gid)?;
    Ok(true)
}

/// Writes `content` to `path` through a temporary file in the same directory, fsync and a
/// rename, so a reader never sees half a file; `gid` only for [`Access::Service`].
pub fn write(path: &Path, content: &[u8], access: Access, gid: Option<u32>) -> Result<()> {
    let gid = if access == Access::Service { gid } else { None };
    kk_core::fsutil::write_atomic(path, content, access.mode(), |tmp| {
        fix_metadata(tmp, access.mode(), gid)
    })
}

/// Sets `mode` and, if given, group `gid` on `path` where they differ.
pub fn fix_metadata(path: &Path, mode: u32, gid: Option<u32>) -> Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    if meta.mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot chmod {}", path.display()))?;
    }
    if let Some(gid) = gid
        && meta.gid() != gid
    {
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("cannot chgrp {}", path.display()))?;
    }
    Ok(())
}

/// Creates a directory (and parents) with `mode` and, if given, group `gid`.
pub fn ensure_dir(path: &Path, mode: u32, gid: Option<u32>) -> Result<()> {
    if !path.is_dir() {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
    }
    fix_metadata(path, mode, gid)
}

/// Removes a file if it exists; returns whether it did.
pub fn remove_file(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Removes a directory tree if it exists; returns whether it did.
pub fn remove_dir(path: &Path) -> Result<bool> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// The result of a command: exit code and output.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs a command, capturing its output.
pub fn run(program: &str, args: &[&str]) -> Result<Outcome> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    Ok(Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs a command that must succeed.
pub fn run_ok(program: &str, args: &[&str]) -> Result<Outcome> {
    let o = run(program, args)?;
    if o.code != 0 {
        bail!(
            "{program} {} failed (exit {}): {}",
            args.join(" "),
            o.code,
            o.stderr.trim()
        );
    }
    Ok(o)
}

/// `systemctl ARGS...`, which must succeed.
pub fn systemctl(args: &[&str]) -> Result<()> {
    run_ok("systemctl", args).map(drop)
}

/// Whether a unit is active (`systemctl is-active --quiet`).
pub fn is_active(unit: &str) -> Result<bool> {
    Ok(run("systemctl", &["is-active", "--quiet", unit])?.code == 0)
}

/// Whether a unit is enabled (`systemctl is-enabled --quiet`).
pub fn is_enabled(unit: &str) -> Result<bool> {
    Ok(run("systemctl", &["is-enabled", "--quiet", unit])?.code == 0)
}

/// The gid of the system user `name`, creating the user (system account, own group, no home,
/// no shell) if needed.
pub fn ensure_user(name: &str) -> Result<u32> {
    if let Some(gid) = user_gid(name)? {
        return Ok(gid);
    }
    add_user(name)?;
    user_gid(name)?.with_context(|| format!("user {name} still missing after useradd"))
}

/// Creates the system user `name` (system account, own group, no home, no shell).
pub fn add_user(name: &str) -> Result<()> {
    run_ok(
        "useradd",
        &[
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
    )
    .map(drop)
}

/// The gid of the system user `name`; `None` when there is none.
pub fn user_gid(name: &str) -> Result<Option<u32>> {
    let o = run("getent", &["passwd", name])?;
    match o.code {
        0 => {
            let gid = o
                .stdout
                .trim()
                .split(':')
                .nth(3)
                .and_then(|g| g.parse().ok())
                .with_context(|| format!("getent passwd {name} printed {:?}", o.stdout.trim()))?;
            Ok(Some(gid))
        }
        2 => Ok(None),
        c => bail!(
            "getent passwd {name} failed (exit {c}): {}",
            o.stderr.trim()
        ),
    }
}

/// Whether the system user exists.
pub fn user_exists(name: &str) -> Result<bool> {
    Ok(user_gid(name)?.is_some())
}
