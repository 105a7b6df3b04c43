//! The on-disk token cache, so that every `kubectl` run does not cost a Keystone token.
//!
//! * Directory `$XDG_CACHE_HOME/kubectl-keystone-auth` (else `~/.cache/kubectl-keystone-auth`),
//!   created 0700; a directory owned by someone else is not used; one open to others is
//!   tightened to 0700 with a warning.
//! * One file per Keystone URL and identity: `<sha256(url, identity)>.json`, mode 0600, written
//!   through a temporary file and a rename. The identity never holds a secret (see
//!   [`super::settings::Plan::identity`]); the file holds the token, which is why it is 0600.
//! * `<same>.lock` serializes parallel runs (kubectl, helm and k9s at once) with `flock`: the
//!   first run asks Keystone, the others wait for the lock and find its token.
//! * A file that is not a regular file, not owned by the user, readable or writable by others,
//!   unreadable, corrupt or for another URL/identity is ignored (with a warning) and replaced.
//! * `<sha256(url, flow, identifiers, secret)>.refused` remembers that Keystone refused a
//!   credential (see [`Refusal`]): kubectl re-runs the plugin on every retry, and a wrong
//!   password must not cost one failed attempt per run. The name is a hash that includes the
//!   secret, so a corrected secret gets another name and is tried at once; the file holds no
//!   secret and no token. Same directory, modes, checks and atomic writes as token files.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg, OFlag};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use kk_core::secret::Secret;
use kk_core::timefmt::{format_rfc3339, parse_rfc3339};

/// Name of the directory under the user's cache directory.
pub const DIR_NAME: &str = "kubectl-keystone-auth";
/// Largest cache file read.
const MAX_FILE: u64 = 64 * 1024;
/// How often a waiting run retries the lock.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// A token read from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedToken {
    /// The Keystone token.
    pub token: Secret,
    /// Its `expires_at`.
    pub expires_at: SystemTime,
}

/// Keystone's refusal of one credential, as remembered on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// When Keystone refused it.
    pub refused_at: SystemTime,
    /// Keystone's HTTP status (401, 404).
    pub status: u16,
    /// Keystone's message (it never holds the secret).
    pub message: String,
}

#[derive(Serialize, Deserialize)]
struct RefusalFileV1 {
    version: u32,
    keystone_url: String,
    identity: String,
    status: u16,
    message: String,
    refused_at: String,
}

/// Largest Keystone message kept in a refusal file.
const MAX_MESSAGE: usize = 1024;

#[derive(Serialize, Deserialize)]
struct FileV1 {
    version: u32,
    keystone_url: String,
    identity: String,
    token: String,
    expires_at: String,
}

/// Whether a token expiring at `expires` may still be handed out at `now`.
pub fn is_fresh(expires: SystemTime, now: SystemTime, margin: Duration) -> bool {
    now.checked_add(margin).is_some_and(|limit| expires > limit)
}

/// The user's home directory: `$HOME` when it is absolute, else the home directory of the
/// password database's entry for the real user id; `None` when neither is usable.
pub fn home_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
                .filter(|p| p.is_absolute())
        })
}

/// The cache directory: `$XDG_CACHE_HOME/kubectl-keystone-auth`, else
/// `<home>/.cache/kubectl-keystone-auth` (see [`home_dir`]); `None` when there is no home.
pub fn default_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home_dir(env).map(|h| h.join(".cache")))?;
    Some(base.join(DIR_NAME))
}

/// The file name stem for a Keystone URL and an identity.
pub fn key(url: &str, identity: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"kubectl-keystone-auth cache v1\n");
    h.update(url.as_bytes());
    h.update(b"\n");
    h.update(identity.as_bytes());
    kk_core::hex::encode(&h.finalize())
}

/// How long ago a refusal was, and how long it is still remembered with `ttl`; `None` once
/// it is forgotten (or `ttl` is zero). A refusal dated in the future (the clock was set back)
/// is not trusted. Pure.
pub fn refusal_remaining(
    refused_at: SystemTime,
    now: SystemTime,
    ttl: Duration,
) -> Option<(Duration, Duration)> {
    let age = now.duration_since(refused_at).ok()?;
    let left = ttl.checked_sub(age).filter(|d| !d.is_zero())?;
    Some((age, left))
}

/// Reads a refusal file's content; `Err` says why it cannot be used. Pure.
pub fn parse_refusal(bytes: &[u8], url: &str, identity: &str) -> Result<Refusal, String> {
    let f: RefusalFileV1 =
        serde_json::from_slice(bytes).map_err(|e| format!("is corrupt ({e})"))?;
    if f.version != 1 {
        return Err(format!("has unknown version {}", f.version));
    }
    if f.keystone_url != url || f.identity != identity {
        return Err("belongs to another Keystone URL or identity".into());
    }
    let refused_at = parse_rfc3339(&f.refused_at).map_err(|e| format!("is corrupt ({e})"))?;
    Ok(Refusal {
        refused_at,
        status: f.status,
        message: f.message,
    })
}

/// Why a file's metadata makes it unusable, if it does.
pub fn metadata_problem(is_file: bool, uid: u32, mode: u32, euid: u32) -> Option<String> {
    if !is_file {
        return Some("is not a regular file".into());
    }
    if uid != euid {
        return Some(format!("is owned by uid {uid}, not by you (uid {euid})"));
    }
    if mode & 0o077 != 0 {
        return Some(format!(
            "is open to other users (mode {:04o}, want 0600)",
            mode & 0o7777
        ));
    }
    None
}

/// Reads a cache file's content; `Err` says why it cannot be used. Pure.
pub fn parse_entry(bytes: &[u8], url: &str, identity: &str) -> Result<CachedToken, String> {
    let f: FileV1 = serde_json::from_slice(bytes).map_err(|e| format!("is corrupt ({e})"))?;
    if f.version != 1 {
        return Err(format!("has unknown version {}", f.version));
    }
    if f.keystone_url != url || f.identity != identity {
        return Err("belongs to another Keystone URL or identity".into());
    }
    if f.token.is_empty() || f.token.len() > 16 * 1024 {
        return Err("holds no usable token".into());
    }
    let expires_at = parse_rfc3339(&f.expires_at).map_err(|e| format!("is corrupt ({e})"))?;
    Ok(CachedToken {
        token: Secret::new(f.token),
        expires_at,
    })
}

/// Whether a file name stem is one of [`key`]'s (64 hex digits).
fn is_key(stem: &str) -> bool {
    stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The bytes of one of our files, or `None` (with a warning) when it is missing or cannot be
/// trusted: not a regular file (a symbolic link is never followed), not ours, open to others,
/// too large or unreadable.
fn read_private(path: &Path) -> Option<Vec<u8>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NOFOLLOW.bits() | OFlag::O_NONBLOCK.bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(
                "ignoring cache file {}: cannot open it ({e}); it will be replaced",
                path.display()
            );
            return None;
        }
    };
    let problem = match file.metadata() {
        Ok(m) => metadata_problem(m.is_file(), m.uid(), m.mode(), euid())
            .or_else(|| (m.len() > MAX_FILE).then(|| "is too large".to_string())),
        Err(e) => Some(format!("cannot be read ({e})")),
    };
    if let Some(p) = problem {
        warn!(
            "ignoring cache file {}: it {p}; it will be replaced",
            path.display()
        );
        return None;
    }
    let mut bytes = Vec::new();
    if let Err(e) = file.take(MAX_FILE).read_to_end(&mut bytes) {
        warn!(
            "ignoring cache file {}: cannot read it ({e}); it will be replaced",
            path.display()
        );
        return None;
    }
    Some(bytes)
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// A usable cache directory.
#[derive(Debug, Clone)]
pub struct TokenCache {
    dir: PathBuf,
}

/// The held lock of one cache entry; released when dropped.
pub struct EntryLock {
    _lock: Option<Flock<File>>,
}

impl TokenCache {
    /// Creates (0700) or checks the directory.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the cache directory {}", dir.display()))?;
        let meta = std::fs::symlink_metadata(dir)
            .with_context(|| format!("cannot read the cache directory {}", dir.display()))?;
        if !meta.is_dir() {
            bail!("cache directory {} is not a directory", dir.display());
        }
        if meta.uid() != euid() {
            bail!(
                "cache directory {} is owned by uid {}, not by you (uid {})",
                dir.display(),
                meta.uid(),
                euid()
            );
        }
        if meta.mode() & 0o077 != 0 {
            warn!(
                "cache directory {} was open to other users (mode {:04o}); setting it to 0700",
                dir.display(),
                meta.mode() & 0o7777
            );
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot set mode 0700 on {}", dir.display()))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// [`TokenCache::open`] for a directory that exists; `Ok(None)` when it does not (nothing
    /// is created).
    pub fn open_existing(dir: &Path) -> Result<Option<Self>> {
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => Self::open(dir).map(Some),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of an entry's token file.
    pub fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Takes the entry's lock, waiting at most `timeout` for another run to finish. If the lock
    /// file cannot be used the run goes on without it (with a warning).
    pub async fn lock(&self, key: &str, timeout: Duration) -> Result<EntryLock> {
        let path = self.dir.join(format!("{key}.lock"));
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(OFlag::O_NOFOLLOW.bits())
            .open(&path)
        {
            Ok(f) => f,
            Err(e) => {
                warn!(
                    "cannot open lock file {}: {e}; going on without it",
                    path.display()
                );
                return Ok(EntryLock { _lock: None });
            }
        };
        let attempts = (timeout.as_millis() / LOCK_POLL.as_millis()).max(1);
        let mut file = file;
        for attempt in 0..attempts {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    if attempt > 0 {
                        debug!("waited {:?} for the cache lock", LOCK_POLL * attempt as u32);
                    }
                    return Ok(EntryLock { _lock: Some(lock) });
                }
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                    file = f;
                    tokio::time::sleep(LOCK_POLL).await;
                }
                Err((_, e)) => {
                    warn!(
                        "cannot lock {}: {e}; going on without the lock",
                        path.display()
                    );
                    return Ok(EntryLock { _lock: None });
                }
            }
        }
        bail!(
            "another kubectl-keystone-auth held the cache lock {} for more than {timeout:?}",
            path.display()
        )
    }

    /// The cached token of an entry, if there is a usable one (fresh or not).
    pub fn read(&self, key: &str, url: &str, identity: &str) -> Option<CachedToken> {
        let path = self.entry_path(key);
        let bytes = read_private(&path)?;
        match parse_entry(&bytes, url, identity) {
            Ok(t) => Some(t),
            Err(p) => {
                warn!(
                    "ignoring cache file {}: it {p}; it will be replaced",
                    path.display()
                );
                None
            }
        }
    }

    /// The path of a credential's refusal file.
    pub fn refusal_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.refused"))
    }

    /// The remembered refusal of a credential (`key` from
    /// [`super::settings::Plan::refusal_key`]), if there is a usable one (recent or not).
    pub fn read_refusal(&self, key: &str, url: &str, identity: &str) -> Option<Refusal> {
        let path = self.refusal_path(key);
        let bytes = read_private(&path)?;
        match parse_refusal(&bytes, url, identity) {
            Ok(r) => Some(r),
            Err(p) => {
                warn!(
                    "ignoring refusal file {}: it {p}; it will be removed",
                    path.display()
                );
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Remembers that Keystone refused a credential (0600, atomically).
    pub fn write_refusal(
        &self,
        key: &str,
        url: &str,
        identity: &str,
        refusal: &Refusal,
    ) -> Result<()> {
        let mut message = refusal.message.clone();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let body = serde_json::to_vec(&RefusalFileV1 {
            version: 1,
            keystone_url: url.to_string(),
            identity: identity.to_string(),
            status: refusal.status,
            message,
            refused_at: format_rfc3339(refusal.refused_at),
        })
        .context("cannot encode the refusal")?;
        self.replace(&self.refusal_path(key), &body)
    }

    /// Forgets one credential's refusal.
    pub fn remove_refusal(&self, key: &str) {
        let path = self.refusal_path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => debug!("forgot the refusal {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!("cannot remove {}: {e}", path.display()),
        }
    }

    /// Forgets every refusal of this URL and identity (whatever secret was refused), e.g. once
    /// a corrected secret worked; returns how many went.
    pub fn forget_refusals(&self, url: &str, identity: &str) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.take(100_000).flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".refused").filter(|k| is_key(k)) else {
                continue;
            };
            let path = entry.path();
            let mine = read_private(&path)
                .is_some_and(|bytes| parse_refusal(&bytes, url, identity).is_ok());
            if mine {
                self.remove_refusal(key);
                removed += 1;
            }
        }
        removed
    }

    /// Stores a token (0600, atomically).
    pub fn write(
        &self,
        key: &str,
        url: &str,
        identity: &str,
        token: &Secret,
        expires_at: SystemTime,
    ) -> Result<()> {
        let body = serde_json::to_vec(&FileV1 {
            version: 1,
            keystone_url: url.to_string(),
            identity: identity.to_string(),
            token: token.expose().to_string(),
            expires_at: format_rfc3339(expires_at),
        })
        .context("cannot encode the cache entry")?;
        self.replace(&self.entry_path(key), &body)
    }

    /// Replaces `path` (a file of entry `key`) with `body`: mode 0600, through a temporary
    /// file and a rename, never following a symbolic link.
    fn replace(&self, path: &Path, body: &[u8]) -> Result<()> {
        kk_core::fsutil::write_atomic(path, body, 0o600, |_| Ok(()))
    }

    /// Removes every entry, refusal, lock and temporary file; returns how many files went.
    pub fn clear(&self) -> Result<usize> {
        let mut removed = 0;
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list {}", self.dir.display()))?;
        for entry in entries.take(100_000) {
            let entry = entry.with_context(|| format!("cannot list {}", self.dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // KEY.json, KEY.refused, KEY.lock, and the writer's temporary files .KEY.*.tmp.PID
            // (and KEY.tmp.PID of older versions).
            let key_then = |n: &str| {
                n.get(..64)
                    .filter(|k| is_key(k))
                    .and(n.get(64..))
                    .map(str::to_owned)
            };
            let ours = match (key_then(&name), name.strip_prefix('.').and_then(key_then)) {
                (Some(rest), _) => {
                    [".json", ".refused", ".lock"].contains(&rest.as_str())
                        || rest.starts_with(".tmp.")
                }
                (None, Some(rest)) => rest.contains(".tmp."),
                (None, None) => false,
            };
            if ours {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("cannot remove {}", entry.path().display()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn freshness_respects_the_margin() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let m = Duration::from_secs(60);
        assert!(is_fresh(now + Duration::from_secs(61), now, m));
        assert!(!is_fresh(now + Duration::from_secs(60), now, m));
        assert!(!is_fresh(now - Duration::from_secs(1), now, m));
    }

    #[test]
    fn directory_comes_from_xdg_or_home() {
        let env = |k: &str| match k {
            "XDG_CACHE_HOME" => Some("/c".to_string()),
            "HOME" => Some("/h".to_string()),
            _ => None,
        };
        assert_eq!(
            default_dir(&env).unwrap(),
            PathBuf::from("/c/kubectl-keystone-auth")
        );
        let env = |k: &str| match k {
            "XDG_CACHE_HOME" => Some("relative".to_string()),
            "HOME" => Some("/h".to_string()),
            _ => None,
        };
        assert_eq!(
            default_dir(&env).unwrap(),
            PathBuf::from("/h/.cache/kubectl-keystone-auth")
        );
        // HOME unset or relative: the password database's home directory.
        let passwd = nix::unistd::User::from_uid(nix::unistd::getuid())
            .unwrap()
            .map(|u| u.dir)
            .filter(|d| d.is_absolute())
            .map(|d| d.join(".cache").join(DIR_NAME));
        assert!(passwd.is_some(), "the test user has a home directory");
        assert_eq!(default_dir(&|_: &str| None), passwd);
        let relative = |k: &str| (k == "HOME").then(|| "relative/home".to_string());
        assert_eq!(default_dir(&relative), passwd);
        assert_eq!(
            home_dir(&relative),
            passwd
                .as_ref()
                .and_then(|p| p.parent())
                .and_then(|p| p.parent())
                .map(Path::to_path_buf)
        );
    }

    #[test]
    fn key_depends_on_url_and_identity_only() {
        let a = key("http://ks/v3", "application_credential id=1");
        assert_eq!(a.len(), 64);
        assert_ne!(a, key("http://ks/v3", "application_credential id=2"));
        assert_ne!(a, key("http://other/v3", "application_credential id=1"));
        assert_eq!(a, key("http://ks/v3", "application_credential id=1"));
    }

    #[test]
    fn metadata_checks() {
        assert!(metadata_problem(true, 1000, 0o100600, 1000).is_none());
        assert!(
            metadata_problem(true, 1000, 0o100644, 1000)
                .unwrap()
                .contains("0644")
        );
        assert!(
            metadata_problem(true, 0, 0o100600, 1000)
                .unwrap()
                .contains("uid 0")
        );
        assert!(metadata_problem(false, 1000, 0o600, 1000).is_some());
    }

    #[test]
    fn entries_round_trip_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(&dir.path().join("c")).unwrap();
        let mode = std::fs::metadata(cache.dir()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let k = key("u", "i");
        let exp = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        assert!(cache.read(&k, "u", "i").is_none());
        cache.write(&k, "u", "i", &Secret::new("tok"), exp).unwrap();
        let file_mode = std::fs::metadata(cache.entry_path(&k)).unwrap().mode() & 0o777;
        assert_eq!(file_mode, 0o600);
        let got = cache.read(&k, "u", "i").unwrap();
        assert_eq!(got.token.expose(), "tok");
        assert_eq!(got.expires_at, exp);
        // another identity under the same name (cannot happen by hash, but is checked)
        assert!(cache.read(&k, "u", "other").is_none());
        // too open
        std::fs::set_permissions(cache.entry_path(&k), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert!(cache.read(&k, "u", "i").is_none());
        // corrupt
        cache.write(&k, "u", "i", &Secret::new("tok"), exp).unwrap();
        std::fs::write(cache.entry_path(&k), b"{not json").unwrap();
        assert!(cache.read(&k, "u", "i").is_none());
        assert!(
            parse_entry(b"{not json", "u", "i")
                .unwrap_err()
                .contains("corrupt")
        );
        // a symlink is never followed
        std::fs::remove_file(cache.entry_path(&k)).unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"x").unwrap();
        std::os::unix::fs::symlink(&target, cache.entry_path(&k)).unwrap();
        assert!(cache.read(&k, "u", "i").is_none());
        cache
            .write(&k, "u", "i", &Secret::new("tok2"), exp)
            .unwrap();
        assert_eq!(cache.read(&k, "u", "i").unwrap().token.expose(), "tok2");
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
        assert_eq!(cache.clear().unwrap(), 1);
        assert!(cache.read(&k, "u", "i").is_none());
    }

    #[test]
    fn a_refusal_is_remembered_for_the_ttl_only() {
        let at = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ttl = Duration::from_secs(30);
        assert_eq!(
            refusal_remaining(at, at, ttl),
            Some((Duration::ZERO, ttl)),
            "just refused"
        );
        assert_eq!(
            refusal_remaining(at, at + Duration::from_secs(3), ttl),
            Some((Duration::from_secs(3), Duration::from_secs(27)))
        );
        assert_eq!(
            refusal_remaining(at, at + Duration::from_millis(29_999), ttl),
            Some((Duration::from_millis(29_999), Duration::from_millis(1)))
        );
        assert_eq!(refusal_remaining(at, at + ttl, ttl), None, "forgotten");
        assert_eq!(
            refusal_remaining(at, at + Duration::from_secs(3600), ttl),
            None
        );
        assert_eq!(refusal_remaining(at, at, Duration::ZERO), None, "0 is off");
        assert_eq!(
            refusal_remaining(at + Duration::from_secs(5), at, ttl),
            None,
            "a refusal from the future (clock set back) is not trusted"
        );
    }

    #[test]
    fn refusal_files_round_trip_and_bad_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            TokenCache::open_existing(&dir.path().join("c"))
                .unwrap()
                .is_none()
        );
        assert!(
            !dir.path().join("c").exists(),
            "open_existing creates nothing"
        );
        let cache = TokenCache::open(&dir.path().join("c")).unwrap();
        let k = "ab".repeat(32);
        let r = Refusal {
            refused_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            status: 401,
            message: "The request you have made requires authentication.".into(),
        };
        assert!(cache.read_refusal(&k, "u", "i").is_none());
        cache.write_refusal(&k, "u", "i", &r).unwrap();
        let path = cache.refusal_path(&k);
        assert_eq!(path.extension().unwrap(), "refused");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(cache.read_refusal(&k, "u", "i"), Some(r.clone()));
        // Not a token entry.
        assert!(cache.read(&k, "u", "i").is_none());
        // Another URL or identity under that name is not used.
        assert!(cache.read_refusal(&k, "u", "other").is_none());
        // Open to others: ignored.
        cache.write_refusal(&k, "u", "i", &r).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(cache.read_refusal(&k, "u", "i").is_none());
        // Corrupt: ignored and removed.
        std::fs::write(&path, b"{nope").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(cache.read_refusal(&k, "u", "i").is_none());
        assert!(!path.exists());
        // A symlink is never followed, and a write replaces the link, not its target.
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"x").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(cache.read_refusal(&k, "u", "i").is_none());
        cache.write_refusal(&k, "u", "i", &r).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
        assert_eq!(cache.read_refusal(&k, "u", "i"), Some(r.clone()));
        // A long message is cut.
        let long = Refusal {
            message: "é".repeat(2000),
            ..r.clone()
        };
        cache.write_refusal(&k, "u", "i", &long).unwrap();
        assert!(cache.read_refusal(&k, "u", "i").unwrap().message.len() <= MAX_MESSAGE);
        // A success forgets the identity's refusals (whatever the secret), not others'.
        let k2 = "cd".repeat(32);
        let k3 = "ef".repeat(32);
        cache.write_refusal(&k2, "u", "i", &r).unwrap();
        cache.write_refusal(&k3, "u", "someone else", &r).unwrap();
        assert_eq!(cache.forget_refusals("u", "i"), 2);
        assert!(cache.read_refusal(&k, "u", "i").is_none());
        assert!(cache.read_refusal(&k2, "u", "i").is_none());
        assert!(cache.read_refusal(&k3, "u", "someone else").is_some());
        cache.remove_refusal(&k3);
        assert!(!cache.refusal_path(&k3).exists());
        // clear-cache removes refusals with the tokens.
        cache.write_refusal(&k, "u", "i", &r).unwrap();
        cache
            .write(&k2, "u", "i", &Secret::new("tok"), r.refused_at)
            .unwrap();
        assert_eq!(cache.clear().unwrap(), 2);
        assert!(cache.read_refusal(&k, "u", "i").is_none());
        assert!(TokenCache::open_existing(cache.dir()).unwrap().is_some());
    }

    #[test]
    fn too_open_directory_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("c");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        TokenCache::open(&d).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
    }

    #[tokio::test]
    async fn the_lock_excludes_a_second_holder_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(dir.path()).unwrap();
        let held = cache.lock("k", Duration::from_secs(1)).await.unwrap();
        let err = cache.lock("k", Duration::from_millis(100)).await;
        assert!(err.is_err());
        drop(held);
        assert!(cache.lock("k", Duration::from_millis(100)).await.is_ok());
    }
}
