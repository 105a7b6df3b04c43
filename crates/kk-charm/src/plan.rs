//! The decisions, pure: what the machine looks like ([`Observed`], from
//! [`observe`](super::observe)) and the validated options go in, the [`Action`]s that make
//! the machine what it should be come out; [`apply`](super::apply) carries them out. Nothing
//! here reads or writes anything, so every decision is unit-tested in milliseconds.
//!
//! The outcome of a few steps is only known on the machine (`--check-config`, /healthz): they
//! are [`Action::Gate`]s carrying what to do when they fail (block, put kube-apiserver's
//! options back), so that branch is planned here too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;

use super::hook_tools::{Level, Status};
use super::host::Access;
use super::machine::Meta;
use super::options::{OptionError, Settings};
use super::render::{self, APISERVER_UNIT, Paths, SERVICE_UNIT};
use super::snap::{self, Style};
use super::state::{Stamp, State};
use kk_core::secret::Secret;

/// Our endpoint towards the principal (metadata.yaml).
pub const ENDPOINT: &str = "kubernetes-master";

/// A snap's whole configuration.
pub type SnapConfig = BTreeMap<String, Value>;

/// File content; `Debug` shows only the length (a file may hold a key).
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// One change to the machine, or a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the system user `k8s-keystone-auth`.
    AddUser,
    /// Remove the system user.
    RemoveUser,
    /// Create a directory; with a mode, set it (and the service's group with `group`).
    EnsureDir {
        /// The directory.
        path: PathBuf,
        /// Its mode; `None`: only create it.
        mode: Option<u32>,
        /// Owned by the service's group.
        group: bool,
    },
    /// Write a file (atomically) with `access` (the service's group for [`Access::Service`]).
    Write {
        /// The file.
        path: PathBuf,
        /// Its content.
        content: Bytes,
        /// Mode and group.
        access: Access,
    },
    /// Correct a file's mode and group (its content is right).
    SetMeta {
        /// The file.
        path: PathBuf,
        /// Mode and group.
        access: Access,
    },
    /// Remove a file.
    Remove(PathBuf),
    /// Remove a directory tree.
    RemoveDir(PathBuf),
    /// Install the service binary: copied from `from` (keeping its mtime) to `to`.
    Install {
        /// The new binary (the charm's, or the download in the state directory).
        from: PathBuf,
        /// The installed binary.
        to: PathBuf,
    },
    /// `systemctl ARGS...`.
    Systemctl(Vec<&'static str>),
    /// `snap set` (`Some`) / `snap unset` (`None`) options of kube-apiserver's snap.
    Snap(BTreeMap<String, Option<String>>),
    /// `status-set`.
    Status(Status, String),
    /// `juju-log`.
    Log(Level, String),
    /// `application-version-set` with what the binary's `--version` says.
    ReportVersion(PathBuf),
    /// Write the state file.
    SaveState(State),
    /// Run a check; when it fails, carry out `on_fail` and stop.
    Gate {
        /// What is checked.
        check: Check,
        /// What follows a failure.
        on_fail: OnFail,
    },
}

/// A check only the machine can answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// The would-be files written to `staging`, then `BINARY --check-config --config CONFIG`.
    Config {
        /// The binary that would run.
        binary: PathBuf,
        /// The staging directory (made afresh and removed afterwards).
        staging: PathBuf,
        /// Files in the staging directory (`config.toml` last).
        files: Vec<(PathBuf, Bytes)>,
        /// The staged config.toml.
        config: PathBuf,
    },
    /// `url` answers 200 over HTTPS verified with `ca`, within `timeout`.
    Healthy {
        /// The /healthz URL.
        url: String,
        /// The CA the kubeconfigs pin.
        ca: String,
        /// How long to wait.
        timeout: Duration,
    },
}

/// What a failed [`Action::Gate`] leads to: `then` first, then the unit is `blocked` with
/// `{head}{error}{tail}` (logged as an error), the state saved.
#[derive(Debug, Clone, PartialEq)]
pub struct OnFail {
    /// The message before the error.
    pub head: String,
    /// The message after the error.
    pub tail: String,
    /// Actions run first (kube-apiserver's options put back).
    pub then: Vec<Action>,
    /// The state to save.
    pub state: State,
    /// Record the refusal in the state under this digest (`--check-config`).
    pub refusal: Option<String>,
}

/// A file as it is on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileObs {
    /// Its bytes.
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Owning group.
    pub gid: u32,
}

/// The binary the options ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Where it is now (the charm's `bin/`, or the download in the state directory).
    pub path: PathBuf,
    /// `charm` or the download URL.
    pub source: String,
    /// Its length, mtime and SHA-256.
    pub stamp: Stamp,
    /// It is the download waiting in the state directory.
    pub downloaded: bool,
}

/// Key material, kept or just made (not written yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// Certificate PEM.
    pub cert: String,
    /// Key PEM.
    pub key: Secret,
    /// Made by this hook (to be written).
    pub new: bool,
}

/// The charm's own CA and server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharmTls {
    /// The CA.
    pub ca: Material,
    /// The server certificate, signed by the CA, covering `Settings::extra_sans`.
    pub server: Material,
}

/// The machine as [`observe`](super::observe) found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Where the charm writes.
    pub paths: Paths,
    /// How long to wait for the service's /healthz.
    pub health_timeout: Duration,
    /// The relation to the principal exists.
    pub related: bool,
    /// The state file as it is (`None`: none).
    pub saved: Option<State>,
    /// The state to work from (the saved one, with what observing found: a download kept,
    /// the charm binary's stamp).
    pub state: State,
    /// The service user's gid (`None`: no such user).
    pub user_gid: Option<u32>,
    /// Directories and files the charm manages (`None`: missing).
    pub meta: BTreeMap<PathBuf, Option<Meta>>,
    /// Files the charm renders (`None`: missing).
    pub files: BTreeMap<PathBuf, Option<FileObs>>,
    /// The binary the options ask for (`Ok(None)`: the installed one is it; `Err`: it cannot
    /// be had, with why).
    pub wanted: Result<Option<Candidate>, String>,
    /// The installed binary's stamp (`None`: not installed).
    pub installed: Option<Stamp>,
    /// The charm's CA and certificate (`None` with TLS from the options).
    pub tls: Option<CharmTls>,
    /// The service unit is enabled.
    pub enabled: bool,
    /// The service is running.
    pub active: bool,
    /// kube-apiserver's snap configuration (`None`: the snap is not installed).
    pub snap: Option<SnapConfig>,
}

impl Observed {
    fn file(&self, path: &PathBuf) -> Option<&FileObs> {
        self.files.get(path).and_then(Option::as_ref)
    }

    fn exists(&self, path: &PathBuf) -> bool {
        self.meta.get(path).is_some_and(Option::is_some)
    }
}

/// The message for bad options: the first one named, the others counted.
pub fn blocked_message(errors: &[OptionError]) -> String {
    let mut m = match errors.first() {
        Some(e) => format!("bad option {e}"),
        None => "bad options".into(),
    };
    if m.len() > 200 {
        m.truncate(m.char_indices().nth(197).map_or(m.len(), |(i, _)| i));
        m.push_str("...");
    }
    if errors.len() > 1 {
        m.push_str(&format!(
            " (and {} more: {})",
            errors.len() - 1,
            errors[1..]
                .iter()
                .map(|e| e.option)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    m
}

/// Bad options: log each, `blocked` naming the first; nothing else.
pub fn bad_options(errors: &[OptionError]) -> Vec<Action> {
    let mut a: Vec<Action> = errors
        .iter()
        .map(|e| Action::Log(Level::Warning, format!("bad option {e}")))
        .collect();
    a.push(Action::Status(Status::Blocked, blocked_message(errors)));
    a
}

/// A file the charm renders into its config directory.
struct File {
    name: &'static str,
    content: Option<Vec<u8>>,
    access: Access,
    /// The service must restart when it changes (the others are reloaded by the service).
    restart: bool,
}

fn rendered_files(s: &Settings, paths: &Paths, cert: &str, key: &Secret, ca: &str) -> Vec<File> {
    vec![
        File {
            name: "tls.crt",
            content: Some(cert.as_bytes().to_vec()),
            access: Access::Public,
            restart: false,
        },
        File {
            name: "tls.key",
            content: Some(key.expose().as_bytes().to_vec()),
            access: Access::Service,
            restart: false,
        },
        File {
            name: "ca.crt",
            content: Some(ca.as_bytes().to_vec()),
            access: Access::Public,
            restart: false,
        },
        File {
            name: "keystone-ca.crt",
            content: s.keystone_ca.clone().map(String::into_bytes),
            access: Access::Public,
            restart: true,
        },
        File {
            name: "policy.json",
            content: Some(s.policy.clone().into_bytes()),
            access: Access::Service,
            restart: false,
        },
        File {
            name: "sync.yaml",
            content: s.sync_config.clone().map(String::into_bytes),
            access: Access::Service,
            restart: true,
        },
        File {
            name: "config.toml",
            content: Some(render::service_config(s, &paths.conf_dir()).into_bytes()),
            access: Access::Service,
            restart: true,
        },
    ]
}

/// SHA-256 over the binary that would run (its SHA-256), the unit and every rendered file.
fn check_digest(binary_sha: &str, unit: &str, files: &[File]) -> String {
    let mut h = sha2::Sha256::new();
    for part in [binary_sha.as_bytes(), unit.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    for f in files {
        h.update(f.name.as_bytes());
        match &f.content {
            Some(c) => {
                h.update([1]);
                h.update((c.len() as u64).to_le_bytes());
                h.update(c);
            }
            None => h.update([0]),
        }
    }
    kk_core::hex::encode(&h.finalize())
}

/// The actions that write `content` to `path` with `access` where the machine differs:
/// whether the content changed.
fn put(o: &Observed, a: &mut Vec<Action>, path: PathBuf, content: &[u8], access: Access) -> bool {
    match o.file(&path) {
        Some(f) if f.content == content => {
            let gid_wrong = access == Access::Service && o.user_gid != Some(f.gid);
            if f.mode != access.mode() || gid_wrong {
                a.push(Action::SetMeta { path, access });
            }
            false
        }
        _ => {
            a.push(Action::Write {
                path,
                content: Bytes(content.to_vec()),
                access,
            });
            true
        }
    }
}

/// Removes `path` if it exists: whether it did.
fn drop_file(o: &Observed, a: &mut Vec<Action>, path: PathBuf) -> bool {
    if o.file(&path).is_some() {
        a.push(Action::Remove(path));
        true
    } else {
        false
    }
}

fn dir(o: &Observed, a: &mut Vec<Action>, path: PathBuf, mode: Option<u32>, group: bool) {
    let ok = match (o.meta.get(&path).and_then(Option::as_ref), mode) {
        (Some(m), None) => m.dir,
        (Some(m), Some(mode)) => m.dir && m.mode == mode && (!group || o.user_gid == Some(m.gid)),
        (None, _) => false,
    };
    if !ok {
        a.push(Action::EnsureDir { path, mode, group });
    }
}

/// Ends a plan: the state saved if it changed, then the status.
fn finish(o: &Observed, a: &mut Vec<Action>, state: State, status: Status, msg: String) {
    save(o, a, state);
    a.push(Action::Status(status, msg));
}

fn save(o: &Observed, a: &mut Vec<Action>, state: State) {
    if o.saved.as_ref() != Some(&state) {
        a.push(Action::SaveState(state));
    }
}

/// The reconcile of every hook but `stop`, `remove` and `relation-broken`: install, render,
/// restart what changed, point kube-apiserver at the webhook once it answers, report.
pub fn reconcile(o: &Observed, s: &Settings) -> Vec<Action> {
    let paths = &o.paths;
    let mut a = Vec::new();
    let mut state = o.state.clone();

    if o.user_gid.is_none() {
        a.push(Action::AddUser);
    }
    dir(o, &mut a, paths.conf_dir(), Some(0o750), true);
    dir(o, &mut a, paths.bin_dir(), Some(0o755), false);
    dir(o, &mut a, paths.state_dir(), Some(0o700), false);
    if let Some(unit_dir) = paths.unit_file().parent() {
        dir(o, &mut a, unit_dir.to_path_buf(), None, false);
    }

    // A new binary is only staged: it replaces the installed one once it accepted the
    // rendered config (`--check-config`), so a binary the service refuses is never installed.
    let wanted = match &o.wanted {
        Ok(w) => w,
        Err(e) => {
            let msg = format!("k8s-keystone-auth-url: cannot install the binary: {e}");
            a.push(Action::Log(Level::Error, msg.clone()));
            finish(o, &mut a, state, Status::Blocked, msg);
            return a;
        }
    };
    let installed_sha = o.installed.as_ref().map(|i| i.sha256.clone());
    state.installed = o.installed.clone();
    let new_binary = match wanted {
        Some(c)
            if o.installed
                .as_ref()
                .is_some_and(|i| i.sha256 == c.stamp.sha256 && i.len == c.stamp.len) =>
        {
            // Already installed: remember where it came from.
            state.binary_source = Some(c.source.clone());
            state.binary_sha256 = (c.source != "charm").then(|| c.stamp.sha256.clone());
            if state.download.take().is_some() {
                a.push(Action::Remove(download_cache(paths)));
            }
            None
        }
        Some(c) => Some(c),
        None => None,
    };

    let (cert, key, ca) = match (&s.tls, &o.tls) {
        (Some(t), _) => {
            state.charm_cert_sans = None;
            (t.cert.clone(), t.key.clone(), t.ca.clone())
        }
        (None, Some(t)) => {
            let dir = paths.state_dir();
            if t.ca.new {
                a.push(Action::Write {
                    path: dir.join("charm-ca.key"),
                    content: Bytes(t.ca.key.expose().as_bytes().to_vec()),
                    access: Access::RootOnly,
                });
                a.push(Action::Write {
                    path: dir.join("charm-ca.crt"),
                    content: Bytes(t.ca.cert.as_bytes().to_vec()),
                    access: Access::RootOnly,
                });
                a.push(Action::Log(Level::Info, "created the charm's CA".into()));
            }
            if t.server.new {
                a.push(Action::Write {
                    path: dir.join("charm-server.key"),
                    content: Bytes(t.server.key.expose().as_bytes().to_vec()),
                    access: Access::RootOnly,
                });
                a.push(Action::Write {
                    path: dir.join("charm-server.crt"),
                    content: Bytes(t.server.cert.as_bytes().to_vec()),
                    access: Access::RootOnly,
                });
                state.charm_cert_sans = Some(s.extra_sans());
                a.push(Action::Log(
                    Level::Info,
                    "issued the server certificate from the charm's CA".into(),
                ));
            }
            (
                t.server.cert.clone(),
                t.server.key.clone(),
                t.ca.cert.clone(),
            )
        }
        (None, None) => {
            let msg = "no TLS material was observed".to_string();
            a.push(Action::Log(Level::Error, msg.clone()));
            finish(o, &mut a, state, Status::Blocked, msg);
            return a;
        }
    };
    let files = rendered_files(s, paths, &cert, &key, &ca);
    let unit = render::unit_file(paths);

    let unit_differs =
        o.file(&paths.unit_file()).map(|f| f.content.as_slice()) != Some(unit.as_bytes());
    let differs = new_binary.is_some()
        || unit_differs
        || files
            .iter()
            .any(|f| o.file(&paths.conf(f.name)).map(|x| &x.content) != f.content.as_ref());
    if differs {
        let sha = new_binary
            .map(|c| c.stamp.sha256.clone())
            .or(installed_sha)
            .unwrap_or_default();
        let digest = check_digest(&sha, &unit, &files);
        if let Some(r) = &state.refused
            && r.digest == digest
        {
            // The same inputs were refused before: the same answer, without running the check
            // (and writing its staging files) again.
            let msg = r.message.clone();
            finish(o, &mut a, state, Status::Blocked, msg);
            return a;
        }
        let staging = paths.state_dir().join("staging");
        let mut staged: Vec<(PathBuf, Bytes)> = files
            .iter()
            .filter(|f| f.name != "config.toml")
            .filter_map(|f| {
                f.content
                    .as_ref()
                    .map(|c| (staging.join(f.name), Bytes(c.clone())))
            })
            .collect();
        let config = staging.join("config.toml");
        staged.push((
            config.clone(),
            Bytes(render::service_config(s, &staging).into_bytes()),
        ));
        let what = if new_binary.is_some() {
            "the new k8s-keystone-auth binary (not installed; the installed one is kept)"
        } else {
            "k8s-keystone-auth"
        };
        a.push(Action::Gate {
            check: Check::Config {
                binary: new_binary
                    .map(|c| c.path.clone())
                    .unwrap_or_else(|| paths.binary()),
                staging,
                files: staged,
                config,
            },
            on_fail: OnFail {
                head: format!("{what} --check-config refused the options: "),
                tail: String::new(),
                then: Vec::new(),
                state: state.clone(),
                refusal: Some(digest),
            },
        });
        state.refused = None;
    }
    let mut restart = false;
    if let Some(c) = new_binary {
        a.push(Action::Install {
            from: c.path.clone(),
            to: paths.binary(),
        });
        state.binary_source = Some(c.source.clone());
        state.binary_sha256 = (c.source != "charm").then(|| c.stamp.sha256.clone());
        state.installed = Some(c.stamp.clone());
        if state.download.take().is_some() || c.downloaded {
            a.push(Action::Remove(download_cache(paths)));
        }
        a.push(Action::Log(
            Level::Info,
            format!("installed {}", paths.binary().display()),
        ));
        restart = true;
    }

    let mut changed = Vec::new();
    for f in &files {
        let path = paths.conf(f.name);
        let c = match &f.content {
            Some(content) => put(o, &mut a, path, content, f.access),
            None => drop_file(o, &mut a, path),
        };
        if c {
            changed.push(f.name);
            restart |= f.restart;
        }
    }
    if put(
        o,
        &mut a,
        paths.unit_file(),
        unit.as_bytes(),
        Access::Public,
    ) {
        changed.push(SERVICE_UNIT);
        restart = true;
        a.push(Action::Systemctl(vec!["daemon-reload"]));
    }
    if !changed.is_empty() {
        a.push(Action::Log(
            Level::Info,
            format!("wrote {}", changed.join(", ")),
        ));
    }
    if !o.enabled {
        a.push(Action::Systemctl(vec!["enable", SERVICE_UNIT]));
    }
    if restart || !o.active {
        let verb = if o.active { "restarting" } else { "starting" };
        a.push(Action::Status(
            Status::Maintenance,
            format!("{verb} k8s-keystone-auth"),
        ));
        a.push(Action::Log(Level::Info, format!("{verb} {SERVICE_UNIT}")));
        a.push(Action::Systemctl(vec![
            if o.active { "restart" } else { "start" },
            SERVICE_UNIT,
        ]));
    }
    let health = format!("https://127.0.0.1:{}/healthz", s.port);
    // kube-apiserver must not rely on a webhook that does not answer: options the charm set
    // earlier go back until it does.
    a.push(Action::Gate {
        check: Check::Healthy {
            url: health.clone(),
            ca: ca.clone(),
            timeout: o.health_timeout,
        },
        on_fail: unanswered(
            o,
            &state,
            format!("k8s-keystone-auth does not answer {health}"),
            true,
        ),
    });
    a.push(Action::ReportVersion(paths.binary()));

    if !o.related {
        let msg = format!(
            "k8s-keystone-auth ready on port {}; waiting for the {ENDPOINT} relation",
            s.port
        );
        finish(o, &mut a, state, Status::Waiting, msg);
        return a;
    }
    let Some(config) = &o.snap else {
        let msg = "waiting for the kube-apiserver snap".to_string();
        finish(o, &mut a, state, Status::Waiting, msg);
        return a;
    };

    // The webhook kubeconfigs, rendered once: compared with the files on disk, then written.
    let (authn_kc, authz_kc) = match (
        render::webhook_kubeconfig(&render::authn_server(s), &ca),
        render::webhook_kubeconfig(&render::authz_server(s), &ca),
    ) {
        (Ok(authn), Ok(authz)) => (authn, authz),
        (Err(e), _) | (_, Err(e)) => {
            let msg = format!("cannot render the webhook kubeconfigs: {e}");
            a.push(Action::Log(Level::Error, msg.clone()));
            finish(o, &mut a, state, Status::Blocked, msg);
            return a;
        }
    };
    // kube-apiserver is only pointed at webhook servers that answer, checked with the CA the
    // kubeconfigs pin.
    let mut servers = Vec::new();
    if s.authentication_webhook {
        servers.push((
            "authn-server-url",
            render::authn_server(s),
            paths.authn_kubeconfig(),
            &authn_kc,
        ));
    }
    if s.authz_webhook() {
        servers.push((
            "authz-server-url",
            render::authz_server(s),
            paths.authz_kubeconfig(),
            &authz_kc,
        ));
    }
    let timeout = o.health_timeout.min(Duration::from_secs(10));
    for (option, server, kubeconfig, rendered) in &servers {
        let Some(health) = health_url(server) else {
            continue;
        };
        // The kubeconfig kube-apiserver reads already names this server: take the charm's
        // options back. Otherwise kube-apiserver is left as it is.
        let in_use = !state.applied.is_empty()
            && o.file(kubeconfig).map(|f| f.content.as_slice()) == Some(rendered.as_bytes());
        a.push(Action::Gate {
            check: Check::Healthy {
                url: health.clone(),
                ca: ca.clone(),
                timeout,
            },
            on_fail: unanswered(
                o,
                &state,
                format!("{option}: {health} does not answer"),
                in_use,
            ),
        });
    }

    let mut desired = BTreeMap::new();
    let mut kube_changed;
    if s.authentication_webhook {
        kube_changed = put(
            o,
            &mut a,
            paths.authn_kubeconfig(),
            authn_kc.as_bytes(),
            Access::RootOnly,
        );
        desired.insert(
            "authentication-token-webhook-config-file".to_string(),
            paths.authn_kubeconfig().display().to_string(),
        );
        desired.insert(
            "authentication-token-webhook-version".to_string(),
            "v1".to_string(),
        );
        // Set deliberately: kube-apiserver's default (2m) is most of how long a deleted
        // credential keeps working (docs/kube-apiserver.md).
        desired.insert(
            "authentication-token-webhook-cache-ttl".to_string(),
            s.apiserver_authn_cache_ttl.clone(),
        );
    } else {
        // Charmed Kubernetes >= 1.19: its own auth-webhook keeps the authentication flag and
        // forwards to this service through `authn-webhook-endpoint`.
        kube_changed = drop_file(o, &mut a, paths.authn_kubeconfig());
    }
    desired.insert(
        "authorization-mode".to_string(),
        s.authorization_mode.clone(),
    );
    if s.authz_webhook() {
        kube_changed |= put(
            o,
            &mut a,
            paths.authz_kubeconfig(),
            authz_kc.as_bytes(),
            Access::RootOnly,
        );
        desired.insert(
            "authorization-webhook-config-file".to_string(),
            paths.authz_kubeconfig().display().to_string(),
        );
        desired.insert(
            "authorization-webhook-version".to_string(),
            "v1".to_string(),
        );
    } else {
        kube_changed |= drop_file(o, &mut a, paths.authz_kubeconfig());
    }
    if kube_changed {
        a.push(Action::Log(
            Level::Info,
            "wrote the webhook kubeconfigs".into(),
        ));
    }

    let drifted = apiserver(&mut a, &mut state, config, desired, kube_changed);
    let mut msg = format!(
        "ready: kube-apiserver uses the webhook on port {} (authorization-mode {}{})",
        s.port,
        s.authorization_mode,
        if s.authentication_webhook {
            ""
        } else {
            "; authentication left to the principal"
        }
    );
    if !drifted.is_empty() {
        msg.push_str(&format!(
            "; restored kube-apiserver options the principal overwrote: {}",
            drifted.join(", ")
        ));
        a.push(Action::Log(
            Level::Warning,
            format!(
                "kube-apiserver options were overwritten (by the principal?) and are restored: {}",
                drifted.join(", ")
            ),
        ));
    }
    finish(o, &mut a, state, Status::Active, msg);
    a
}

/// Where a downloaded binary waits until it is installed (kept so a refused download is not
/// fetched again by every hook).
pub fn download_cache(paths: &Paths) -> PathBuf {
    paths.state_dir().join("k8s-keystone-auth.download")
}

/// `scheme://host:port/healthz` of a webhook server URL.
fn health_url(server: &str) -> Option<String> {
    let mut u = url::Url::parse(server).ok()?;
    u.set_path("/healthz");
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}

/// A webhook does not answer: blocked; with `restore`, kube-apiserver's options go back to
/// what they were before the charm (until the webhook answers again).
fn unanswered(o: &Observed, state: &State, subject: String, restore: bool) -> OnFail {
    let mut state = state.clone();
    let mut then = Vec::new();
    let restored = restore && restore_apiserver(&mut then, &mut state, o.snap.as_ref());
    let what = if restored {
        "kube-apiserver options restored until it does"
    } else {
        "kube-apiserver left unchanged"
    };
    OnFail {
        head: format!("{subject} ("),
        tail: format!("); {what}"),
        then,
        state,
        refusal: None,
    }
}

/// Sets kube-apiserver's options to `desired`, remembering the values they replace, putting
/// back options the charm no longer sets, and restarting kube-apiserver only when something
/// changed (an option, or a kubeconfig it reads: `kube_changed`). Returns the options the
/// principal had overwritten.
fn apiserver(
    a: &mut Vec<Action>,
    state: &mut State,
    config: &SnapConfig,
    desired: BTreeMap<String, String>,
    kube_changed: bool,
) -> Vec<String> {
    let style = snap::detect_style(config);
    let mut cleaned = false;
    if let Some(old) = state.style
        && old != style
    {
        // The principal switched styles (a snap without configuration reads as per-flag, then
        // Charmed Kubernetes writes `args`): take the charm's options out of the old style and
        // start afresh in the new one.
        cleaned = clean_style(a, state, old, config);
    }
    state.style = Some(style);
    let keys: BTreeSet<String> = desired
        .keys()
        .chain(state.original.keys())
        .chain(state.applied.keys())
        .cloned()
        .collect();
    let current = snap::current_values(style, config, keys.iter().cloned());
    let cur = |k: &str| current.get(k).cloned().flatten();
    // Options the charm set that now hold something else: the principal rewrote them. Its
    // value is what to restore later; the charm's value is put back now.
    let drifted: Vec<String> = state
        .applied
        .iter()
        .filter(|(k, v)| cur(k).as_deref() != Some(v.as_str()))
        .map(|(k, _)| k.clone())
        .collect();
    for k in &drifted {
        state.original.insert(k.clone(), cur(k));
    }
    for k in desired.keys() {
        if !state.original.contains_key(k) {
            state.original.insert(k.clone(), cur(k));
        }
    }
    let mut target: BTreeMap<String, Option<String>> = desired
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    for (k, original) in &state.original {
        if !desired.contains_key(k) && state.applied.contains_key(k) && !drifted.contains(k) {
            target.insert(k.clone(), original.clone());
        }
    }
    let changes: BTreeMap<String, Option<String>> =
        target.into_iter().filter(|(k, v)| &cur(k) != v).collect();
    state.original.retain(|k, _| desired.contains_key(k));
    let restart = cleaned || !changes.is_empty() || (kube_changed && !state.applied.is_empty());
    if !changes.is_empty() {
        a.push(write_options(style, config, &changes));
        a.push(Action::Log(
            Level::Info,
            format!(
                "kube-apiserver options ({}): {}",
                style_name(style),
                describe(&changes)
            ),
        ));
    }
    state.applied = desired;
    if restart {
        a.push(Action::Status(
            Status::Maintenance,
            "restarting kube-apiserver".into(),
        ));
        a.push(Action::Systemctl(vec!["restart", APISERVER_UNIT]));
        a.push(Action::Log(
            Level::Info,
            format!("restarted {APISERVER_UNIT}"),
        ));
    }
    drifted
}

fn describe(changes: &BTreeMap<String, Option<String>>) -> String {
    changes
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("<unset>")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn style_name(style: Style) -> &'static str {
    match style {
        Style::Args => "args option",
        Style::PerFlag => "one snap option per flag",
    }
}

/// The snap change that writes `changes` in `style` (into `args`, keeping every other flag).
fn write_options(
    style: Style,
    config: &SnapConfig,
    changes: &BTreeMap<String, Option<String>>,
) -> Action {
    match style {
        Style::PerFlag => Action::Snap(changes.clone()),
        Style::Args => {
            let args = match config.get("args") {
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            let merged = snap::args_merge(&args, changes);
            Action::Snap(BTreeMap::from([("args".to_string(), Some(merged))]))
        }
    }
}

/// Puts kube-apiserver's options back as they were before the charm (options the principal
/// has rewritten since are left as the principal wants them), restarting it if anything
/// changed. Returns whether anything changed.
fn restore_apiserver(a: &mut Vec<Action>, state: &mut State, config: Option<&SnapConfig>) -> bool {
    if state.applied.is_empty() && state.original.is_empty() {
        return false;
    }
    let Some(config) = config else {
        state.applied.clear();
        state.original.clear();
        state.style = None;
        return false;
    };
    // The options are where the charm wrote them, even if the principal switched styles since.
    let style = state.style.unwrap_or_else(|| snap::detect_style(config));
    let changed = clean_style(a, state, style, config);
    if changed {
        a.push(Action::Systemctl(vec!["restart", APISERVER_UNIT]));
    }
    changed
}

/// Puts back the options the charm set in `style` (those still holding the charm's value) and
/// forgets them. Returns whether a snap option changed; kube-apiserver is not restarted.
fn clean_style(a: &mut Vec<Action>, state: &mut State, style: Style, config: &SnapConfig) -> bool {
    let current = snap::current_values(style, config, state.applied.keys().cloned());
    let changes: BTreeMap<String, Option<String>> = state
        .applied
        .iter()
        .filter(|(k, v)| current.get(*k).cloned().flatten().as_deref() == Some(v.as_str()))
        .map(|(k, _)| (k.clone(), state.original.get(k).cloned().flatten()))
        .filter(|(k, v)| &current.get(k).cloned().flatten() != v)
        .collect();
    state.applied.clear();
    state.original.clear();
    state.style = None;
    if changes.is_empty() {
        return false;
    }
    a.push(write_options(style, config, &changes));
    a.push(Action::Log(
        Level::Info,
        format!(
            "restored kube-apiserver options ({}): {}",
            style_name(style),
            describe(&changes)
        ),
    ));
    true
}

/// `kubernetes-master-relation-broken`: the principal is going; undo what the charm did to it.
pub fn relation_broken(o: &Observed) -> Vec<Action> {
    let mut a = Vec::new();
    let mut state = o.state.clone();
    let restored = restore_apiserver(&mut a, &mut state, o.snap.as_ref());
    if o.exists(&o.paths.state_dir()) {
        save(o, &mut a, state);
    }
    let msg = if restored {
        "kubernetes-master relation removed: kube-apiserver options restored"
    } else {
        "waiting for the kubernetes-master relation"
    };
    a.push(Action::Status(Status::Waiting, msg.into()));
    a
}

/// Stops and disables the service: whether it had to.
fn stop_service(o: &Observed, a: &mut Vec<Action>) -> bool {
    if !o.exists(&o.paths.unit_file()) {
        return false;
    }
    let mut did = false;
    if o.active {
        a.push(Action::Systemctl(vec!["stop", SERVICE_UNIT]));
        a.push(Action::Log(Level::Info, format!("stopped {SERVICE_UNIT}")));
        did = true;
    }
    if o.enabled {
        a.push(Action::Systemctl(vec!["disable", SERVICE_UNIT]));
        did = true;
    }
    did
}

/// `stop`: kube-apiserver options back, the service stopped and disabled.
pub fn stop(o: &Observed) -> Vec<Action> {
    let mut a = Vec::new();
    let mut state = o.state.clone();
    let restored = restore_apiserver(&mut a, &mut state, o.snap.as_ref());
    if o.exists(&o.paths.state_dir()) {
        save(o, &mut a, state);
    }
    let stopped = stop_service(o, &mut a);
    let msg = match (stopped, restored) {
        (true, true) => "stopped; kube-apiserver options restored",
        (true, false) => "stopped",
        (false, true) => "kube-apiserver options restored",
        (false, false) => return a,
    };
    a.push(Action::Status(Status::Maintenance, msg.into()));
    a
}

/// `remove`: as `stop`, then everything the charm wrote goes (unit, config, certificates,
/// binary, state, system user).
pub fn remove(o: &Observed) -> Vec<Action> {
    let paths = &o.paths;
    let mut a = Vec::new();
    let mut state = o.state.clone();
    let mut did = restore_apiserver(&mut a, &mut state, o.snap.as_ref());
    did |= stop_service(o, &mut a);
    let mut removed = Vec::new();
    if o.exists(&paths.unit_file()) {
        a.push(Action::Remove(paths.unit_file()));
        a.push(Action::Systemctl(vec!["daemon-reload"]));
        removed.push(paths.unit_file());
    }
    let opt = paths.bin_dir().parent().map(std::path::Path::to_path_buf);
    for d in [Some(paths.conf_dir()), opt, Some(paths.state_dir())]
        .into_iter()
        .flatten()
    {
        if o.exists(&d) {
            a.push(Action::RemoveDir(d.clone()));
            removed.push(d);
        }
    }
    if o.user_gid.is_some() {
        did = true;
        a.push(Action::RemoveUser);
        a.push(Action::Log(
            Level::Info,
            format!("removed the user {}", render::SERVICE_USER),
        ));
    }
    if !removed.is_empty() {
        a.push(Action::Log(
            Level::Info,
            format!(
                "removed {}",
                removed
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if did || !removed.is_empty() {
        a.push(Action::Status(Status::Maintenance, "removed".into()));
    }
    a
}

/// Whether an action changes the machine (everything but reports and checks).
pub fn changes_machine(a: &Action) -> bool {
    !matches!(
        a,
        Action::Status(..) | Action::Log(..) | Action::ReportVersion(_) | Action::Gate { .. }
    )
}
