//! What the machine looks like, read through [`Machine`] into [`Observed`] for
//! [`plan`](super::plan).
//!
//! Observing changes nothing the service or kube-apiserver use. It does acquire inputs the
//! plan cannot make itself: a binary to download is fetched into the state directory (and
//! checked against its SHA-256 and with `--version`), and key material that does not exist
//! yet (the charm's CA, a server certificate for new names) is made in memory; the plan
//! decides to write it.
//!
//! Binaries are known by a [`Stamp`] (length, mtime, SHA-256) kept in the state: a binary is
//! hashed only when its length or mtime differs from the recorded stamp (the charm's
//! `bin/k8s-keystone-auth` after an upgrade, an installed binary someone replaced), never read
//! otherwise. Installing keeps the source's mtime, so the installed binary's stamp is the
//! source's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::hook_tools::Status;
use super::machine::{Machine, Meta};
use super::options::{BinarySource, Settings};
use super::plan::{Candidate, CharmTls, ENDPOINT, FileObs, Material, Observed, download_cache};
use super::render::{APISERVER_SNAP, Paths, SERVICE_UNIT, SERVICE_USER};
use super::state::{Download, Stamp, State};
use kk_core::secret::Secret;

/// Where the hook runs.
#[derive(Debug, Clone)]
pub struct Env {
    /// Where the charm writes.
    pub paths: Paths,
    /// The charm directory (holds `bin/k8s-keystone-auth`).
    pub charm_dir: PathBuf,
    /// How long to wait for the service's /healthz after a (re)start.
    pub health_timeout: Duration,
}

/// The file names the charm renders into its config directory.
pub const CONF_FILES: [&str; 7] = [
    "tls.crt",
    "tls.key",
    "ca.crt",
    "keystone-ca.crt",
    "policy.json",
    "sync.yaml",
    "config.toml",
];

fn load_state(m: &dyn Machine, paths: &Paths) -> Result<Option<State>> {
    let path = paths.state_file();
    match m.read(&path)? {
        None => Ok(None),
        Some(bytes) => State::parse(&String::from_utf8_lossy(&bytes))
            .map(Some)
            .with_context(|| format!("invalid state file {}", path.display())),
    }
}

fn metas(
    m: &dyn Machine,
    paths: impl IntoIterator<Item = PathBuf>,
) -> Result<BTreeMap<PathBuf, Option<Meta>>> {
    paths
        .into_iter()
        .map(|p| Ok((p.clone(), m.stat(&p)?)))
        .collect()
}

fn managed_paths(paths: &Paths) -> Vec<PathBuf> {
    let mut v = vec![
        paths.conf_dir(),
        paths.bin_dir(),
        paths.state_dir(),
        paths.unit_file(),
    ];
    v.extend(paths.unit_file().parent().map(Path::to_path_buf));
    v.extend(paths.bin_dir().parent().map(Path::to_path_buf));
    v
}

/// A file's stamp: the recorded one while length and mtime match, else hashed now.
fn stamp(m: &dyn Machine, path: &Path, meta: Meta, known: Option<&Stamp>) -> Result<Stamp> {
    if let Some(k) = known
        && k.len == meta.len
        && k.mtime_ns == meta.mtime_ns
    {
        return Ok(k.clone());
    }
    Ok(Stamp {
        len: meta.len,
        mtime_ns: meta.mtime_ns,
        sha256: m.sha256(path)?,
    })
}

/// Everything the reconcile plans from.
pub fn reconcile(m: &dyn Machine, env: &Env, s: &Settings) -> Result<Observed> {
    let paths = &env.paths;
    let saved = load_state(m, paths)?;
    let mut state = saved.clone().unwrap_or_default();
    let related = !m.tools().relation_ids(ENDPOINT)?.is_empty();
    let user_gid = m.user_gid(SERVICE_USER)?;
    let meta = metas(m, managed_paths(paths))?;
    let mut files = BTreeMap::new();
    let mut wanted_files: Vec<PathBuf> = CONF_FILES.iter().map(|n| paths.conf(n)).collect();
    wanted_files.extend([
        paths.authn_kubeconfig(),
        paths.authz_kubeconfig(),
        paths.unit_file(),
    ]);
    for p in wanted_files {
        let f = match (m.read(&p)?, m.stat(&p)?) {
            (Some(content), Some(meta)) => Some(FileObs {
                content,
                mode: meta.mode,
                gid: meta.gid,
            }),
            _ => None,
        };
        files.insert(p, f);
    }

    let installed = match m.stat(&paths.binary())? {
        Some(meta) => Some(stamp(m, &paths.binary(), meta, state.installed.as_ref())?),
        None => None,
    };
    let wanted =
        wanted_binary(m, env, s, &mut state, installed.as_ref()).map_err(|e| format!("{e:#}"));
    let tls = match &s.tls {
        Some(_) => None,
        None => Some(charm_tls(m, paths, s, &state)?),
    };
    let snap = if related || !state.applied.is_empty() || !state.original.is_empty() {
        m.snap_config(APISERVER_SNAP)?
    } else {
        None
    };
    Ok(Observed {
        paths: paths.clone(),
        health_timeout: env.health_timeout,
        related,
        saved,
        state,
        user_gid,
        meta,
        files,
        wanted,
        installed,
        tls,
        enabled: m.is_enabled(SERVICE_UNIT)?,
        active: m.is_active(SERVICE_UNIT)?,
        snap,
    })
}

/// What `stop`, `remove` and `relation-broken` plan from.
pub fn teardown(m: &dyn Machine, env: &Env) -> Result<Observed> {
    let paths = &env.paths;
    let saved = load_state(m, paths)?;
    let state = saved.clone().unwrap_or_default();
    let meta = metas(m, managed_paths(paths))?;
    let unit = meta.get(&paths.unit_file()).is_some_and(Option::is_some);
    let snap = if !state.applied.is_empty() || !state.original.is_empty() {
        m.snap_config(APISERVER_SNAP)?
    } else {
        None
    };
    Ok(Observed {
        paths: paths.clone(),
        health_timeout: env.health_timeout,
        related: false,
        saved,
        state,
        user_gid: m.user_gid(SERVICE_USER)?,
        meta,
        files: BTreeMap::new(),
        wanted: Ok(None),
        installed: None,
        tls: None,
        enabled: unit && m.is_enabled(SERVICE_UNIT)?,
        active: unit && m.is_active(SERVICE_UNIT)?,
        snap,
    })
}

/// The binary the options ask for (`None`: a download that is installed already). A download
/// happens here, into the state directory, only when neither the installed binary nor a kept
/// download is it.
fn wanted_binary(
    m: &dyn Machine,
    env: &Env,
    s: &Settings,
    state: &mut State,
    installed: Option<&Stamp>,
) -> Result<Option<Candidate>> {
    match &s.binary {
        BinarySource::Shipped => {
            let src = env.charm_dir.join("bin/k8s-keystone-auth");
            let meta = m
                .stat(&src)
                .and_then(|x| x.context("no such file"))
                .with_context(|| format!("cannot read the shipped binary {}", src.display()))?;
            let st = stamp(m, &src, meta, state.shipped.as_ref())?;
            state.shipped = Some(st.clone());
            Ok(Some(Candidate {
                path: src,
                source: "charm".into(),
                stamp: st,
                downloaded: false,
            }))
        }
        BinarySource::Download { url, sha256 } => {
            let source = url.to_string();
            if state.binary_source.as_deref() == Some(source.as_str())
                && sha256
                    .as_ref()
                    .is_none_or(|w| state.binary_sha256.as_ref() == Some(w))
                && installed.is_some_and(|i| state.binary_sha256.as_ref() == Some(&i.sha256))
            {
                return Ok(None);
            }
            let cache = download_cache(&env.paths);
            if let Some(d) = &state.download
                && d.source == source
                && sha256.as_ref().is_none_or(|w| &d.sha256 == w)
                && let Some(meta) = m.stat(&cache)?
            {
                let st = stamp(m, &cache, meta, None)?;
                if st.sha256 == d.sha256 {
                    return Ok(Some(Candidate {
                        path: cache,
                        source,
                        stamp: st,
                        downloaded: true,
                    }));
                }
            }
            m.tools()
                .status(Status::Maintenance, "downloading k8s-keystone-auth")?;
            m.ensure_dir(&env.paths.state_dir(), Some(0o700), None)?;
            let got = m.download(url, &cache)?;
            if let Some(want) = sha256
                && &got != want
            {
                m.remove_file(&cache)?;
                state.download = None;
                anyhow::bail!("SHA-256 of {url} is {got}, k8s-keystone-auth-sha256 says {want}");
            }
            // Refuse something that is not our service before it goes further.
            if m.version(&cache).is_none() {
                m.remove_file(&cache)?;
                state.download = None;
                anyhow::bail!("{url} is not a k8s-keystone-auth binary (`--version` failed)");
            }
            state.download = Some(Download {
                source: source.clone(),
                sha256: got.clone(),
            });
            let meta = m
                .stat(&cache)?
                .with_context(|| format!("{} vanished", cache.display()))?;
            Ok(Some(Candidate {
                path: cache,
                source,
                stamp: Stamp {
                    len: meta.len,
                    mtime_ns: meta.mtime_ns,
                    sha256: got,
                },
                downloaded: true,
            }))
        }
    }
}

/// The charm's CA and server certificate: the kept ones, or new ones (in memory) where none
/// is kept or the kept certificate does not cover the names the options need.
fn charm_tls(m: &dyn Machine, paths: &Paths, s: &Settings, state: &State) -> Result<CharmTls> {
    let dir = paths.state_dir();
    let text = |name: &str| -> Result<Option<String>> {
        Ok(m.read(&dir.join(name))?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    };
    let ca = match (text("charm-ca.crt")?, text("charm-ca.key")?) {
        (Some(cert), Some(key)) => Material {
            cert,
            key: Secret::new(key),
            new: false,
        },
        _ => {
            let (cert, key) = m.new_ca()?;
            Material {
                cert,
                key,
                new: true,
            }
        }
    };
    let sans = s.extra_sans();
    let kept = match (text("charm-server.crt")?, text("charm-server.key")?) {
        (Some(cert), Some(key)) if !ca.new && state.charm_cert_sans.as_ref() == Some(&sans) => {
            Some(Material {
                cert,
                key: Secret::new(key),
                new: false,
            })
        }
        _ => None,
    };
    let server = match kept {
        Some(k) => k,
        None => {
            let (cert, key) = m.server_cert(&ca.key, &sans)?;
            Material {
                cert,
                key,
                new: true,
            }
        }
    };
    Ok(CharmTls { ca, server })
}
