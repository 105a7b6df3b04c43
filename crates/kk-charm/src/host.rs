//! The machine: files (written only when their bytes differ, atomically, with their mode and
//! group), `systemctl`, the system user (run through [`super::run::Cmd`]). Every path comes
//! from [`super::render::Paths`], so everything is under the root the caller chose.

use anyhow::{Context, Result};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::run::Cmd;

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

/// `systemctl ARGS...`, which must succeed.
pub fn systemctl(args: &[&str]) -> Result<()> {
    Cmd::new("systemctl").args(args).run()?;
    Ok(())
}

/// Whether a unit is active (`systemctl is-active --quiet`).
pub fn is_active(unit: &str) -> Result<bool> {
    Ok(Cmd::new("systemctl")
        .args(["is-active", "--quiet", unit])
        .output()?
        .success())
}

/// Whether a unit is enabled (`systemctl is-enabled --quiet`).
pub fn is_enabled(unit: &str) -> Result<bool> {
    Ok(Cmd::new("systemctl")
        .args(["is-enabled", "--quiet", unit])
        .output()?
        .success())
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
    Cmd::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ])
        .run()?;
    Ok(())
}

/// Removes the system user `name`.
pub fn remove_user(name: &str) -> Result<()> {
    Cmd::new("userdel").arg(name).run()?;
    Ok(())
}

/// The gid of the system user `name`; `None` when there is none.
pub fn user_gid(name: &str) -> Result<Option<u32>> {
    // getent exits with 2 when the key is not in the database.
    let out = match Cmd::new("getent").args(["passwd", name]).run() {
        Ok(out) => out,
        Err(e) if e.code() == Some(2) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let line = out.stdout_lossy();
    let gid = line
        .trim()
        .split(':')
        .nth(3)
        .and_then(|g| g.parse().ok())
        .with_context(|| format!("getent passwd {name} printed {:?}", line.trim()))?;
    Ok(Some(gid))
}

/// Whether the system user exists.
pub fn user_exists(name: &str) -> Result<bool> {
    Ok(user_gid(name)?.is_some())
}
