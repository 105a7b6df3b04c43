//! The machine the charm runs on, behind one trait: files, `systemctl`, `snap`, the system
//! user, the service binary (`--version`, `--check-config`), downloads, /healthz, key
//! material and Juju's hook tools. [`observe`](super::observe) reads through it and
//! [`apply`](super::apply) changes through it; [`RealMachine`] is the real one.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sha2::Digest;

use super::hook_tools::HookTools;
use super::host::{self, Access};
use super::pki;
use super::run::Cmd;
use super::snap::SnapClient;
use kk_core::secret::Secret;

/// What `stat` says about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Length in bytes.
    pub len: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Permission bits.
    pub mode: u32,
    /// Owning group.
    pub gid: u32,
    /// A directory.
    pub dir: bool,
}

/// Everything the charm reads from and does to the machine.
pub trait Machine {
    /// Juju's hook tools.
    fn tools(&self) -> &dyn HookTools;

    /// A file's bytes; `None` when it does not exist.
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>>;
    /// A file's (or directory's) metadata, following links; `None` when it does not exist.
    fn stat(&self, path: &Path) -> Result<Option<Meta>>;
    /// SHA-256 (hex) of a file, read in chunks.
    fn sha256(&self, path: &Path) -> Result<String>;
    /// Writes a file atomically (temporary file, fsync, rename) with `access`; `gid` for
    /// [`Access::Service`].
    fn write(&self, path: &Path, content: &[u8], access: Access, gid: Option<u32>) -> Result<()>;
    /// Sets a file's mode and (if given) group.
    fn set_meta(&self, path: &Path, mode: u32, gid: Option<u32>) -> Result<()>;
    /// Copies an executable atomically, keeping the source's mtime.
    fn install(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes a file; whether it existed.
    fn remove_file(&self, path: &Path) -> Result<bool>;
    /// Removes a directory tree; whether it existed.
    fn remove_dir(&self, path: &Path) -> Result<bool>;
    /// Creates a directory (and parents); with `mode`, sets it and (if given) the group.
    fn ensure_dir(&self, path: &Path, mode: Option<u32>, gid: Option<u32>) -> Result<()>;

    /// `systemctl ARGS...`, which must succeed.
    fn systemctl(&self, args: &[&str]) -> Result<()>;
    /// `systemctl is-active --quiet UNIT`.
    fn is_active(&self, unit: &str) -> Result<bool>;
    /// `systemctl is-enabled --quiet UNIT`.
    fn is_enabled(&self, unit: &str) -> Result<bool>;

    /// The gid of a system user; `None` when there is no such user.
    fn user_gid(&self, name: &str) -> Result<Option<u32>>;
    /// Creates the system user (own group, no home, no shell).
    fn add_user(&self, name: &str) -> Result<()>;
    /// Removes the system user.
    fn remove_user(&self, name: &str) -> Result<()>;

    /// A snap's whole configuration; `None` when the snap is not installed.
    fn snap_config(&self, snap: &str) -> Result<Option<BTreeMap<String, Value>>>;
    /// `snap set` / `snap unset`.
    fn snap_apply(&self, snap: &str, changes: &BTreeMap<String, Option<String>>) -> Result<()>;

    /// `BINARY --version` → `0.1.0`; `None` when it is not k8s-keystone-auth.
    fn version(&self, binary: &Path) -> Option<String>;
    /// `BINARY --check-config --config CONFIG`; the error is the last line it printed.
    fn check_config(&self, binary: &Path, config: &Path) -> Result<()>;
    /// Downloads `url` into `dest` (mode 0755); its SHA-256.
    fn download(&self, url: &url::Url, dest: &Path) -> Result<String>;
    /// Polls `url` over HTTPS verified with `ca` until it answers 200 or `timeout` passes.
    fn wait_healthy(&self, url: &str, ca: &str, timeout: Duration) -> Result<()>;

    /// A new CA: (certificate PEM, key PEM).
    fn new_ca(&self) -> Result<(String, Secret)>;
    /// A server certificate signed by the CA key, covering 127.0.0.1, localhost and `sans`.
    fn server_cert(&self, ca_key: &Secret, sans: &[String]) -> Result<(String, Secret)>;
}

/// The machine the hook runs on.
pub struct RealMachine<'a> {
    /// Juju's hook tools.
    pub tools: &'a dyn HookTools,
}

/// How long `k8s-keystone-auth --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `k8s-keystone-auth --check-config` may take (it reads files, it calls nobody).
const CHECK_CONFIG_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest download accepted.
const MAX_DOWNLOAD: usize = 512 * 1024 * 1024;

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

/// A temporary file next to `path`.
fn tmp_for(path: &Path) -> Result<std::path::PathBuf> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    Ok(dir.join(format!(".{}.tmp", name.to_string_lossy())))
}

impl Machine for RealMachine<'_> {
    fn tools(&self) -> &dyn HookTools {
        self.tools
    }

    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn stat(&self, path: &Path) -> Result<Option<Meta>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(Meta {
                len: m.len(),
                mtime_ns: mtime_ns(&m),
                mode: m.mode() & 0o7777,
                gid: m.gid(),
                dir: m.is_dir(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot stat {}", path.display())),
        }
    }

    fn sha256(&self, path: &Path) -> Result<String> {
        let mut f =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut h = sha2::Sha256::new();
        std::io::copy(&mut f, &mut h).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(kk_core::hex::encode(&h.finalize()))
    }

    fn write(&self, path: &Path, content: &[u8], access: Access, gid: Option<u32>) -> Result<()> {
        host::write(path, content, access, gid)
    }

    fn set_meta(&self, path: &Path, mode: u32, gid: Option<u32>) -> Result<()> {
        host::fix_metadata(path, mode, gid)
    }

    fn install(&self, from: &Path, to: &Path) -> Result<()> {
        let tmp = tmp_for(to)?;
        let mut src =
            std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
        let mtime = src
            .metadata()
            .and_then(|m| m.modified())
            .with_context(|| format!("cannot stat {}", from.display()))?;
        {
            let mut dst = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            std::io::copy(&mut src, &mut dst)
                .and_then(|_| dst.flush())
                .and_then(|()| dst.set_modified(mtime))
                .and_then(|()| dst.sync_all())
                .with_context(|| format!("cannot write {}", tmp.display()))?;
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot chmod {}", tmp.display()))?;
        std::fs::rename(&tmp, to)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), to.display()))
    }

    fn remove_file(&self, path: &Path) -> Result<bool> {
        host::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> Result<bool> {
        host::remove_dir(path)
    }

    fn ensure_dir(&self, path: &Path, mode: Option<u32>, gid: Option<u32>) -> Result<()> {
        match mode {
            Some(mode) => host::ensure_dir(path, mode, gid),
            None if path.is_dir() => Ok(()),
            None => std::fs::create_dir_all(path)
                .with_context(|| format!("cannot create {}", path.display())),
        }
    }

    fn systemctl(&self, args: &[&str]) -> Result<()> {
        host::systemctl(args)
    }

    fn is_active(&self, unit: &str) -> Result<bool> {
        host::is_active(unit)
    }

    fn is_enabled(&self, unit: &str) -> Result<bool> {
        host::is_enabled(unit)
    }

    fn user_gid(&self, name: &str) -> Result<Option<u32>> {
        host::user_gid(name)
    }

    fn add_user(&self, name: &str) -> Result<()> {
        host::add_user(name)
    }

    fn remove_user(&self, name: &str) -> Result<()> {
        host::remove_user(name)
    }

    fn snap_config(&self, snap: &str) -> Result<Option<BTreeMap<String, Value>>> {
        SnapClient.get_all(snap)
    }

    fn snap_apply(&self, snap: &str, changes: &BTreeMap<String, Option<String>>) -> Result<()> {
        SnapClient.apply(snap, changes)
    }

    fn version(&self, binary: &Path) -> Option<String> {
        let out = match Cmd::new(binary)
            .arg("--version")
            .timeout(VERSION_TIMEOUT)
            .run()
        {
            Ok(out) => out,
            Err(e) => {
                tracing::debug!("{e}");
                return None;
            }
        };
        let text = out.stdout_lossy();
        let mut words = text.split_whitespace();
        if words.next() != Some("k8s-keystone-auth") {
            return None;
        }
        words.next().map(str::to_string)
    }

    fn check_config(&self, binary: &Path, config: &Path) -> Result<()> {
        let out = Cmd::new(binary)
            .args(["--check-config", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .env_remove("OS_AUTH_URL")
            .env_remove("K8S_KEYSTONE_AUTH_CONFIG")
            .timeout(CHECK_CONFIG_TIMEOUT)
            .output()?;
        if !out.success() {
            // The service prints what is wrong last (after its log lines).
            let last = out
                .stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            bail!("{}", last.trim());
        }
        Ok(())
    }

    fn download(&self, url: &url::Url, dest: &Path) -> Result<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a runtime")?;
        let body = rt.block_on(async {
            let tls = kk_core::tls::client_config(None, None)?;
            let client = kk_core::tls::http_client(tls)
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(600))
                .build()
                .context("cannot build the HTTP client")?;
            let mut resp = client
                .get(url.clone())
                .send()
                .await
                .with_context(|| format!("cannot download {url}"))?;
            if !resp.status().is_success() {
                bail!("{url} answered {}", resp.status());
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .with_context(|| format!("reading {url}"))?
            {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_DOWNLOAD {
                    bail!("{url} is larger than {MAX_DOWNLOAD} bytes");
                }
            }
            Ok(body)
        })?;
        let sha = kk_core::hex::encode(&sha2::Sha256::digest(&body));
        host::write(dest, &body, Access::Executable, None)?;
        Ok(sha)
    }

    fn wait_healthy(&self, url: &str, ca: &str, timeout: Duration) -> Result<()> {
        let certs = kk_core::tls::parse_certs(ca.as_bytes()).context("invalid CA PEM")?;
        if certs.is_empty() {
            bail!("no certificate in the CA PEM");
        }
        let tls = kk_core::tls::client_config(Some(&certs), None)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a runtime")?;
        rt.block_on(async {
            let client = kk_core::tls::http_client(tls)
                .timeout(Duration::from_secs(2))
                .build()
                .context("cannot build the HTTP client")?;
            let deadline = Instant::now() + timeout;
            // A service just (re)started listens within a fraction of a second: look again
            // soon, then less often.
            let mut pause = Duration::from_millis(10);
            loop {
                let last = match client.get(url).send().await {
                    Ok(r) if r.status().is_success() => return Ok(()),
                    Ok(r) => format!("HTTP {}", r.status()),
                    Err(e) => format!("{e}"),
                };
                if Instant::now() >= deadline {
                    bail!("{last}");
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        })
    }

    fn new_ca(&self) -> Result<(String, Secret)> {
        pki::new_ca()
    }

    fn server_cert(&self, ca_key: &Secret, sans: &[String]) -> Result<(String, Secret)> {
        pki::server_cert(ca_key, sans)
    }
}
