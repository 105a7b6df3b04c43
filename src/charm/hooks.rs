//! One function per hook. Every hook is a reconcile: it compares what should be with what is
//! and changes only the difference, so running it twice changes nothing the second time.
//!
//! * `install`, `config-changed`, `upgrade-charm`, `start`, `update-status`, `leader-*` and
//!   the `kubernetes-master-relation-{created,joined,changed,departed}` hooks: [`reconcile`].
//! * `kubernetes-master-relation-broken`: [`relation_broken`] (kube-apiserver options back).
//! * `stop`: [`stop`]; `remove`: [`remove`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::hook_tools::{HookTools, Level, Status};
use super::host::{self, Access};
use super::options::{self, BinarySource, OptionError, Settings};
use super::pki;
use super::render::{self, APISERVER_SNAP, APISERVER_UNIT, Paths, SERVICE_UNIT, SERVICE_USER};
use super::snap::{self, SnapClient, Style};
use crate::secret::Secret;

/// Our endpoint towards the principal (metadata.yaml).
pub const ENDPOINT: &str = "kubernetes-master";

/// Everything a hook needs.
pub struct Ctx<'a> {
    /// Juju's hook tools.
    pub tools: &'a dyn HookTools,
    /// Where the charm writes.
    pub paths: Paths,
    /// The charm directory (holds `bin/k8s-keystone-auth`).
    pub charm_dir: PathBuf,
    /// The event (`config-changed`).
    pub event: String,
    /// How long to wait for the service's /healthz after a (re)start.
    pub health_timeout: Duration,
}

/// What the charm remembers between hooks (`/var/lib/kubernetes-keystone/state.json`).
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct State {
    /// kube-apiserver options as they were before the charm set them (`None` = unset).
    #[serde(default)]
    original: BTreeMap<String, Option<String>>,
    /// The options the charm set last.
    #[serde(default)]
    applied: BTreeMap<String, String>,
    /// Where the installed binary came from and its SHA-256.
    #[serde(default)]
    binary_source: Option<String>,
    #[serde(default)]
    binary_sha256: Option<String>,
    /// Names the charm-made server certificate covers (`None`: the certificate came from the
    /// options or was not made yet).
    #[serde(default)]
    charm_cert_sans: Option<Vec<String>>,
    /// A downloaded binary not installed yet (refused by `--check-config`), kept in the state
    /// directory so later hooks do not fetch it again.
    #[serde(default)]
    download: Option<Download>,
    /// Where the charm wrote kube-apiserver's options (per flag or in `args`).
    #[serde(default)]
    style: Option<Style>,
    /// The inputs `--check-config` refused last (binary, unit, files) and its message.
    #[serde(default)]
    refused: Option<Refused>,
}

/// A refusal by `--check-config`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Refused {
    /// SHA-256 over everything the check saw.
    digest: String,
    message: String,
}

/// SHA-256 over the binary that would run, the unit and every rendered file.
fn check_digest(
    paths: &Paths,
    new_binary: Option<&NewBinary>,
    unit: &str,
    files: &[File],
) -> String {
    let mut h = sha2::Sha256::new();
    let installed;
    let binary: &[u8] = match new_binary {
        Some(b) => &b.bytes,
        None => {
            installed = std::fs::read(paths.binary()).unwrap_or_default();
            &installed
        }
    };
    for part in [binary, unit.as_bytes()] {
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
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A downloaded binary waiting in the state directory.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Download {
    source: String,
    sha256: String,
}

impl State {
    fn load(paths: &Paths) -> Result<Self> {
        match std::fs::read_to_string(paths.state_file()) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("invalid state file {}", paths.state_file().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => {
                Err(e).with_context(|| format!("cannot read {}", paths.state_file().display()))
            }
        }
    }

    fn save(&self, paths: &Paths) -> Result<()> {
        host::ensure_dir(&paths.state_dir(), 0o700, None)?;
        let text = serde_json::to_string_pretty(self).context("cannot serialize the state")?;
        host::write_if_changed(&paths.state_file(), text.as_bytes(), Access::RootOnly, None)?;
        Ok(())
    }
}

/// Runs the hook for `ctx.event`.
pub fn run(ctx: &Ctx<'_>) -> Result<()> {
    match ctx.event.as_str() {
        "install"
        | "config-changed"
        | "upgrade-charm"
        | "start"
        | "update-status"
        | "leader-elected"
        | "leader-settings-changed" => reconcile(ctx),
        e if e.starts_with(&format!("{ENDPOINT}-relation-")) => {
            if e.ends_with("-broken") {
                relation_broken(ctx)
            } else {
                reconcile(ctx)
            }
        }
        "stop" => stop(ctx),
        "remove" => remove(ctx),
        other => {
            ctx.tools.log(
                Level::Debug,
                &format!("no handler for event {other:?}; nothing to do"),
            );
            Ok(())
        }
    }
}

fn blocked_message(errors: &[OptionError]) -> String {
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

/// A file the charm renders.
struct File {
    name: &'static str,
    content: Option<Vec<u8>>,
    access: Access,
    /// The service must restart when it changes (the others are reloaded by the service).
    restart: bool,
}

/// The config-changed of every hook: validate, install, render, restart what changed, point
/// kube-apiserver at the webhook once it answers, report.
pub fn reconcile(ctx: &Ctx<'_>) -> Result<()> {
    let tools = ctx.tools;
    let paths = &ctx.paths;
    let settings = match options::validate(&tools.config()?) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                tools.log(Level::Warning, &format!("bad option {e}"));
            }
            tools.status(Status::Blocked, &blocked_message(&errors))?;
            return Ok(());
        }
    };
    let related = !tools.relation_ids(ENDPOINT)?.is_empty();
    let mut state = State::load(paths)?;

    let gid = host::ensure_user(SERVICE_USER)?;
    host::ensure_dir(&paths.conf_dir(), 0o750, Some(gid))?;
    host::ensure_dir(&paths.bin_dir(), 0o755, None)?;
    host::ensure_dir(&paths.state_dir(), 0o700, None)?;
    if let Some(dir) = paths.unit_file().parent()
        && !dir.is_dir()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }

    // A new binary is only staged here: it replaces the installed one once it accepted the
    // rendered config (`--check-config`), so a binary the service refuses is never installed.
    let new_binary = match stage_binary(ctx, &settings, &mut state) {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("k8s-keystone-auth-url: cannot install the binary: {e:#}");
            tools.log(Level::Error, &msg);
            tools.status(Status::Blocked, &msg)?;
            state.save(paths)?;
            return Ok(());
        }
    };
    let bin_changed = new_binary.is_some();

    let (tls_cert, tls_key, pinned_ca) = tls_material(ctx, &settings, &mut state)?;
    let files = vec![
        File {
            name: "tls.crt",
            content: Some(tls_cert.into_bytes()),
            access: Access::Public,
            restart: false,
        },
        File {
            name: "tls.key",
            content: Some(tls_key.expose().as_bytes().to_vec()),
            access: Access::Service,
            restart: false,
        },
        File {
            name: "ca.crt",
            content: Some(pinned_ca.clone().into_bytes()),
            access: Access::Public,
            restart: false,
        },
        File {
            name: "keystone-ca.crt",
            content: settings.keystone_ca.clone().map(String::into_bytes),
            access: Access::Public,
            restart: true,
        },
        File {
            name: "policy.json",
            content: Some(settings.policy.clone().into_bytes()),
            access: Access::Service,
            restart: false,
        },
        File {
            name: "sync.yaml",
            content: settings.sync_config.clone().map(String::into_bytes),
            access: Access::Service,
            restart: true,
        },
        File {
            name: "config.toml",
            content: Some(render::service_config(&settings, &paths.conf_dir()).into_bytes()),
            access: Access::Service,
            restart: true,
        },
    ];
    let unit = render::unit_file(paths);

    let differs = bin_changed
        || std::fs::read(paths.unit_file()).ok().as_deref() != Some(unit.as_bytes())
        || files
            .iter()
            .any(|f| std::fs::read(paths.conf(f.name)).ok() != f.content);
    if differs {
        // The same inputs were refused before: the same answer, without running the check
        // (and writing its staging files) again.
        let digest = check_digest(paths, new_binary.as_ref(), &unit, &files);
        let refused = match &state.refused {
            Some(r) if r.digest == digest => Some(r.message.clone()),
            _ => match check_config(
                ctx,
                &settings,
                &files,
                new_binary.as_ref().map(|b| b.bytes.as_slice()),
            ) {
                Ok(()) => None,
                Err(e) => {
                    let what = if bin_changed {
                        "the new k8s-keystone-auth binary (not installed; the installed one is kept)"
                    } else {
                        "k8s-keystone-auth"
                    };
                    let msg = format!("{what} --check-config refused the options: {e:#}");
                    tools.log(Level::Error, &msg);
                    Some(msg)
                }
            },
        };
        if let Some(msg) = refused {
            // Saved, so later hooks neither download nor issue certificates again.
            state.refused = Some(Refused {
                digest,
                message: msg.clone(),
            });
            state.save(paths)?;
            tools.status(Status::Blocked, &msg)?;
            return Ok(());
        }
        state.refused = None;
    }
    if let Some(b) = &new_binary {
        host::write_if_changed(&paths.binary(), &b.bytes, Access::Executable, None)?;
        state.binary_source = Some(b.source.clone());
        state.binary_sha256 = b.sha256.clone();
        host::remove_file(&download_cache(paths))?;
        state.download = None;
        tools.log(
            Level::Info,
            &format!("installed {}", paths.binary().display()),
        );
    }

    let mut restart = bin_changed;
    let mut changed = Vec::new();
    for f in &files {
        let path = paths.conf(f.name);
        let c = match &f.content {
            Some(content) => host::write_if_changed(&path, content, f.access, Some(gid))?,
            None => host::remove_file(&path)?,
        };
        if c {
            changed.push(f.name);
            restart |= f.restart;
        }
    }
    let unit_changed =
        host::write_if_changed(&paths.unit_file(), unit.as_bytes(), Access::Public, None)?;
    if unit_changed {
        changed.push(SERVICE_UNIT);
        restart = true;
        host::systemctl(&["daemon-reload"])?;
    }
    if !changed.is_empty() {
        tools.log(Level::Info, &format!("wrote {}", changed.join(", ")));
    }
    if !host::is_enabled(SERVICE_UNIT)? {
        host::systemctl(&["enable", SERVICE_UNIT])?;
    }
    let active = host::is_active(SERVICE_UNIT)?;
    if restart || !active {
        let verb = if active { "restarting" } else { "starting" };
        tools.status(Status::Maintenance, &format!("{verb} k8s-keystone-auth"))?;
        tools.log(Level::Info, &format!("{verb} {SERVICE_UNIT}"));
        host::systemctl(&[if active { "restart" } else { "start" }, SERVICE_UNIT])?;
    }
    let health = format!("https://127.0.0.1:{}/healthz", settings.port);
    if let Err(e) = wait_healthy(&health, &pinned_ca, ctx.health_timeout) {
        // kube-apiserver must not rely on a webhook that does not answer: options the charm
        // set earlier go back until it does.
        let subject = format!("k8s-keystone-auth does not answer {health}");
        return block_unanswered(ctx, &mut state, &subject, &e, true);
    }
    if let Some(v) = service_version(&paths.binary()) {
        tools.application_version(&v)?;
    }

    if !related {
        state.save(paths)?;
        tools.status(
            Status::Waiting,
            &format!(
                "k8s-keystone-auth ready on port {}; waiting for the {ENDPOINT} relation",
                settings.port
            ),
        )?;
        return Ok(());
    }
    let snaps = SnapClient;
    let Some(config) = snaps.get_all(APISERVER_SNAP)? else {
        state.save(paths)?;
        tools.status(Status::Waiting, "waiting for the kube-apiserver snap")?;
        return Ok(());
    };

    // kube-apiserver is only pointed at webhook servers that answer, checked with the CA the
    // kubeconfigs pin.
    let mut servers = Vec::new();
    if settings.authentication_webhook {
        servers.push((
            "authn-server-url",
            render::authn_server(&settings),
            paths.authn_kubeconfig(),
        ));
    }
    if settings.authz_webhook() {
        servers.push((
            "authz-server-url",
            render::authz_server(&settings),
            paths.authz_kubeconfig(),
        ));
    }
    let timeout = ctx.health_timeout.min(Duration::from_secs(10));
    for (option, server, kubeconfig) in &servers {
        let Some(health) = health_url(server) else {
            continue;
        };
        if let Err(e) = wait_healthy(&health, &pinned_ca, timeout) {
            // The kubeconfig kube-apiserver reads already names this server: take the charm's
            // options back. Otherwise kube-apiserver is left as it is.
            let rendered = render::webhook_kubeconfig(server, &pinned_ca);
            let in_use = !state.applied.is_empty()
                && std::fs::read(kubeconfig).ok().as_deref() == Some(rendered.as_bytes());
            let subject = format!("{option}: {health} does not answer");
            return block_unanswered(ctx, &mut state, &subject, &e, in_use);
        }
    }

    let mut desired = BTreeMap::new();
    let mut kube_changed;
    if settings.authentication_webhook {
        let authn = render::webhook_kubeconfig(&render::authn_server(&settings), &pinned_ca);
        kube_changed = host::write_if_changed(
            &paths.authn_kubeconfig(),
            authn.as_bytes(),
            Access::RootOnly,
            None,
        )?;
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
            settings.apiserver_authn_cache_ttl.clone(),
        );
    } else {
        // Charmed Kubernetes >= 1.19: its own auth-webhook keeps the authentication flag and
        // forwards to this service through `authn-webhook-endpoint`.
        kube_changed = host::remove_file(&paths.authn_kubeconfig())?;
    }
    desired.insert(
        "authorization-mode".to_string(),
        settings.authorization_mode.clone(),
    );
    if settings.authz_webhook() {
        let authz = render::webhook_kubeconfig(&render::authz_server(&settings), &pinned_ca);
        kube_changed |= host::write_if_changed(
            &paths.authz_kubeconfig(),
            authz.as_bytes(),
            Access::RootOnly,
            None,
        )?;
        desired.insert(
            "authorization-webhook-config-file".to_string(),
            paths.authz_kubeconfig().display().to_string(),
        );
        desired.insert(
            "authorization-webhook-version".to_string(),
            "v1".to_string(),
        );
    } else {
        kube_changed |= host::remove_file(&paths.authz_kubeconfig())?;
    }
    if kube_changed {
        tools.log(Level::Info, "wrote the webhook kubeconfigs");
    }

    let outcome = apply_apiserver(ctx, &mut state, &config, desired, kube_changed)?;
    state.save(paths)?;
    let mut msg = format!(
        "ready: kube-apiserver uses the webhook on port {} (authorization-mode {}{})",
        settings.port,
        settings.authorization_mode,
        if settings.authentication_webhook {
            ""
        } else {
            "; authentication left to the principal"
        }
    );
    if !outcome.drifted.is_empty() {
        msg.push_str(&format!(
            "; restored kube-apiserver options the principal overwrote: {}",
            outcome.drifted.join(", ")
        ));
        tools.log(
            Level::Warning,
            &format!(
                "kube-apiserver options were overwritten (by the principal?) and are restored: {}",
                outcome.drifted.join(", ")
            ),
        );
    }
    tools.status(Status::Active, &msg)?;
    Ok(())
}

struct Applied {
    drifted: Vec<String>,
}

/// Sets kube-apiserver's options to `desired`, remembering the values they replace, putting
/// back options the charm no longer sets, and restarting kube-apiserver only when something
/// changed (an option, or a kubeconfig it reads: `kube_changed`).
fn apply_apiserver(
    ctx: &Ctx<'_>,
    state: &mut State,
    config: &BTreeMap<String, serde_json::Value>,
    desired: BTreeMap<String, String>,
    kube_changed: bool,
) -> Result<Applied> {
    let style = snap::detect_style(config);
    let mut cleaned = false;
    if let Some(old) = state.style
        && old != style
    {
        // The principal switched styles (a snap without configuration reads as per-flag, then
        // Charmed Kubernetes writes `args`): take the charm's options out of the old style and
        // start afresh in the new one.
        cleaned = clean_style(ctx, state, old, config)?;
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
        write_options(style, config, &changes)?;
        ctx.tools.log(
            Level::Info,
            &format!(
                "kube-apiserver options ({}): {}",
                style_name(style),
                changes
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("<unset>")))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
    }
    state.applied = desired;
    if restart {
        ctx.tools
            .status(Status::Maintenance, "restarting kube-apiserver")?;
        host::systemctl(&["restart", APISERVER_UNIT])?;
        ctx.tools
            .log(Level::Info, &format!("restarted {APISERVER_UNIT}"));
    }
    Ok(Applied { drifted })
}

fn style_name(style: Style) -> &'static str {
    match style {
        Style::Args => "args option",
        Style::PerFlag => "one snap option per flag",
    }
}

fn write_options(
    style: Style,
    config: &BTreeMap<String, serde_json::Value>,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<()> {
    let snaps = SnapClient;
    match style {
        Style::PerFlag => snaps.apply(APISERVER_SNAP, changes),
        Style::Args => {
            let args = match config.get("args") {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            let merged = snap::args_merge(&args, changes);
            let mut one = BTreeMap::new();
            one.insert("args".to_string(), Some(merged));
            snaps.apply(APISERVER_SNAP, &one)
        }
    }
}

/// Puts kube-apiserver's options back as they were before the charm (options the principal
/// has rewritten since are left as the principal wants them). Returns whether anything changed.
fn restore_apiserver(ctx: &Ctx<'_>, state: &mut State) -> Result<bool> {
    if state.applied.is_empty() && state.original.is_empty() {
        return Ok(false);
    }
    let Some(config) = SnapClient.get_all(APISERVER_SNAP)? else {
        state.applied.clear();
        state.original.clear();
        state.style = None;
        return Ok(false);
    };
    // The options are where the charm wrote them, even if the principal switched styles since.
    let style = state.style.unwrap_or_else(|| snap::detect_style(&config));
    let changed = clean_style(ctx, state, style, &config)?;
    if changed {
        host::systemctl(&["restart", APISERVER_UNIT])?;
    }
    Ok(changed)
}

/// Puts back the options the charm set in `style` (those still holding the charm's value) and
/// forgets them. Returns whether a snap option changed; kube-apiserver is not restarted.
fn clean_style(
    ctx: &Ctx<'_>,
    state: &mut State,
    style: Style,
    config: &BTreeMap<String, serde_json::Value>,
) -> Result<bool> {
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
        return Ok(false);
    }
    write_options(style, config, &changes)?;
    ctx.tools.log(
        Level::Info,
        &format!(
            "restored kube-apiserver options ({}): {}",
            style_name(style),
            changes
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("<unset>")))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    Ok(true)
}

/// `kubernetes-master-relation-broken`: the principal is going; undo what the charm did to it.
pub fn relation_broken(ctx: &Ctx<'_>) -> Result<()> {
    let mut state = State::load(&ctx.paths)?;
    let restored = restore_apiserver(ctx, &mut state)?;
    if ctx.paths.state_dir().is_dir() {
        state.save(&ctx.paths)?;
    }
    let msg = if restored {
        "kubernetes-master relation removed: kube-apiserver options restored"
    } else {
        "waiting for the kubernetes-master relation"
    };
    ctx.tools.status(Status::Waiting, msg)?;
    Ok(())
}

/// `stop`: kube-apiserver options back, the service stopped and disabled.
pub fn stop(ctx: &Ctx<'_>) -> Result<()> {
    let mut state = State::load(&ctx.paths)?;
    let restored = restore_apiserver(ctx, &mut state)?;
    if ctx.paths.state_dir().is_dir() {
        state.save(&ctx.paths)?;
    }
    let stopped = stop_service(ctx)?;
    let msg = match (stopped, restored) {
        (true, true) => "stopped; kube-apiserver options restored",
        (true, false) => "stopped",
        (false, true) => "kube-apiserver options restored",
        (false, false) => return Ok(()),
    };
    ctx.tools.status(Status::Maintenance, msg)?;
    Ok(())
}

/// Stops and disables the service; returns whether it had to.
fn stop_service(ctx: &Ctx<'_>) -> Result<bool> {
    if !ctx.paths.unit_file().exists() {
        return Ok(false);
    }
    let mut did = false;
    if host::is_active(SERVICE_UNIT)? {
        host::systemctl(&["stop", SERVICE_UNIT])?;
        ctx.tools
            .log(Level::Info, &format!("stopped {SERVICE_UNIT}"));
        did = true;
    }
    if host::is_enabled(SERVICE_UNIT)? {
        host::systemctl(&["disable", SERVICE_UNIT])?;
        did = true;
    }
    Ok(did)
}

/// `remove`: as `stop`, then everything the charm wrote goes (unit, config, certificates,
/// binary, state, system user).
pub fn remove(ctx: &Ctx<'_>) -> Result<()> {
    let paths = &ctx.paths;
    let mut state = State::load(paths)?;
    let mut did = restore_apiserver(ctx, &mut state)?;
    did |= stop_service(ctx)?;
    let mut removed = Vec::new();
    if host::remove_file(&paths.unit_file())? {
        host::systemctl(&["daemon-reload"])?;
        removed.push(paths.unit_file());
    }
    let opt = paths.bin_dir().parent().map(Path::to_path_buf);
    for dir in [Some(paths.conf_dir()), opt, Some(paths.state_dir())]
        .into_iter()
        .flatten()
    {
        if host::remove_dir(&dir)? {
            removed.push(dir);
        }
    }
    if host::user_exists(SERVICE_USER)? {
        did = true;
        host::run_ok("userdel", &[SERVICE_USER])?;
        ctx.tools
            .log(Level::Info, &format!("removed the user {SERVICE_USER}"));
    }
    if !removed.is_empty() {
        ctx.tools.log(
            Level::Info,
            &format!(
                "removed {}",
                removed
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    if did || !removed.is_empty() {
        ctx.tools.status(Status::Maintenance, "removed")?;
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A binary that passed the first checks but is not installed yet.
struct NewBinary {
    bytes: Vec<u8>,
    /// `charm` or the download URL.
    source: String,
    /// SHA-256 of a downloaded binary.
    sha256: Option<String>,
}

/// Where a downloaded binary waits until it is installed (kept so a refused download is not
/// fetched again by every hook).
fn download_cache(paths: &Paths) -> PathBuf {
    paths.state_dir().join("k8s-keystone-auth.download")
}

/// The binary the options ask for, when it differs from the installed one (`None`: the
/// installed one is it). Nothing under /opt is touched.
fn stage_binary(ctx: &Ctx<'_>, s: &Settings, state: &mut State) -> Result<Option<NewBinary>> {
    let dest = ctx.paths.binary();
    let installed = std::fs::read(&dest).ok();
    let (bytes, source, sha) = match &s.binary {
        BinarySource::Shipped => {
            let src = ctx.charm_dir.join("bin/k8s-keystone-auth");
            let bytes = std::fs::read(&src)
                .with_context(|| format!("cannot read the shipped binary {}", src.display()))?;
            (bytes, "charm".to_string(), None)
        }
        BinarySource::Download { url, sha256 } => {
            let source = url.to_string();
            if state.binary_source.as_deref() == Some(source.as_str())
                && sha256
                    .as_ref()
                    .is_none_or(|w| state.binary_sha256.as_ref() == Some(w))
                && let Some(bytes) = &installed
                && state.binary_sha256.as_deref() == Some(sha256_hex(bytes).as_str())
            {
                return Ok(None);
            }
            let cache = download_cache(&ctx.paths);
            let cached = match &state.download {
                Some(d) if d.source == source && sha256.as_ref().is_none_or(|w| &d.sha256 == w) => {
                    std::fs::read(&cache)
                        .ok()
                        .filter(|b| sha256_hex(b) == d.sha256)
                }
                _ => None,
            };
            let bytes = match cached {
                Some(b) => b,
                None => {
                    ctx.tools
                        .status(Status::Maintenance, "downloading k8s-keystone-auth")?;
                    let bytes = download(url)?;
                    let got = sha256_hex(&bytes);
                    if let Some(want) = sha256
                        && &got != want
                    {
                        bail!("SHA-256 of {url} is {got}, k8s-keystone-auth-sha256 says {want}");
                    }
                    // Refuse something that is not our service before it goes further.
                    host::write_if_changed(&cache, &bytes, Access::Executable, None)?;
                    if service_version(&cache).is_none() {
                        host::remove_file(&cache)?;
                        state.download = None;
                        bail!("{url} is not a k8s-keystone-auth binary (`--version` failed)");
                    }
                    state.download = Some(Download {
                        source: source.clone(),
                        sha256: got,
                    });
                    bytes
                }
            };
            let sha = sha256_hex(&bytes);
            (bytes, source, Some(sha))
        }
    };
    if installed.as_deref() == Some(bytes.as_slice()) {
        state.binary_source = Some(source);
        state.binary_sha256 = sha;
        if state.download.take().is_some() {
            host::remove_file(&download_cache(&ctx.paths))?;
        }
        return Ok(None);
    }
    Ok(Some(NewBinary {
        bytes,
        source,
        sha256: sha,
    }))
}

/// Largest download accepted.
const MAX_DOWNLOAD: usize = 512 * 1024 * 1024;

fn download(url: &url::Url) -> Result<Vec<u8>> {
    crate::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
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
    })
}

/// `k8s-keystone-auth --version` → `0.1.0`.
fn service_version(binary: &Path) -> Option<String> {
    let out = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    if !out.status.success() || words.next() != Some("k8s-keystone-auth") {
        return None;
    }
    words.next().map(str::to_string)
}

/// The serving certificate, its key and the CA pinned in the kubeconfigs.
fn tls_material(
    ctx: &Ctx<'_>,
    s: &Settings,
    state: &mut State,
) -> Result<(String, Secret, String)> {
    if let Some(t) = &s.tls {
        state.charm_cert_sans = None;
        return Ok((t.cert.clone(), t.key.clone(), t.ca.clone()));
    }
    let paths = &ctx.paths;
    let ca_path = paths.state_dir().join("charm-ca.crt");
    let ca_key_path = paths.state_dir().join("charm-ca.key");
    let (ca, ca_key) = match (
        std::fs::read_to_string(&ca_path),
        std::fs::read_to_string(&ca_key_path),
    ) {
        (Ok(c), Ok(k)) => (c, Secret::new(k)),
        _ => {
            let (c, k) = pki::new_ca()?;
            host::write_if_changed(&ca_key_path, k.expose().as_bytes(), Access::RootOnly, None)?;
            host::write_if_changed(&ca_path, c.as_bytes(), Access::RootOnly, None)?;
            ctx.tools.log(Level::Info, "created the charm's CA");
            (c, k)
        }
    };
    let sans = s.extra_sans();
    let cert_path = paths.state_dir().join("charm-server.crt");
    let key_path = paths.state_dir().join("charm-server.key");
    if state.charm_cert_sans.as_ref() == Some(&sans)
        && let (Ok(c), Ok(k)) = (
            std::fs::read_to_string(&cert_path),
            std::fs::read_to_string(&key_path),
        )
    {
        return Ok((c, Secret::new(k), ca));
    }
    let (cert, key) = pki::server_cert(&ca_key, &sans)?;
    host::write_if_changed(&key_path, key.expose().as_bytes(), Access::RootOnly, None)?;
    host::write_if_changed(&cert_path, cert.as_bytes(), Access::RootOnly, None)?;
    state.charm_cert_sans = Some(sans);
    ctx.tools.log(
        Level::Info,
        "issued the server certificate from the charm's CA",
    );
    Ok((cert, key, ca))
}

/// Validates the would-be files with the service itself (`--check-config`) in a staging
/// directory, before anything is switched.
fn check_config(ctx: &Ctx<'_>, s: &Settings, files: &[File], binary: Option<&[u8]>) -> Result<()> {
    let staging = ctx.paths.state_dir().join("staging");
    host::remove_dir(&staging)?;
    host::ensure_dir(&staging, 0o700, None)?;
    let result = (|| {
        for f in files {
            if let Some(c) = &f.content
                && f.name != "config.toml"
            {
                host::write_if_changed(&staging.join(f.name), c, Access::RootOnly, None)?;
            }
        }
        let config = staging.join("config.toml");
        host::write_if_changed(
            &config,
            render::service_config(s, &staging).as_bytes(),
            Access::RootOnly,
            None,
        )?;
        let program = match binary {
            Some(bytes) => {
                let staged = staging.join("k8s-keystone-auth");
                host::write_if_changed(&staged, bytes, Access::Executable, None)?;
                staged
            }
            None => ctx.paths.binary(),
        };
        let out = Command::new(&program)
            .arg("--check-config")
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .env_remove("OS_AUTH_URL")
            .env_remove("K8S_KEYSTONE_AUTH_CONFIG")
            .output()
            .context("cannot run k8s-keystone-auth --check-config")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            bail!("{}", last.trim());
        }
        Ok(())
    })();
    host::remove_dir(&staging)?;
    result
}

/// `scheme://host:port/healthz` of a webhook server URL.
fn health_url(server: &str) -> Option<String> {
    let mut u = url::Url::parse(server).ok()?;
    u.set_path("/healthz");
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}

/// Polls `url` (the service's /healthz over HTTPS, verified with `ca`) until it answers 200 or
/// `timeout` passes.
/// Blocks the unit because a webhook does not answer; with `restore`, kube-apiserver's options
/// go back to what they were before the charm first (until the webhook answers again).
fn block_unanswered(
    ctx: &Ctx<'_>,
    state: &mut State,
    subject: &str,
    error: &anyhow::Error,
    restore: bool,
) -> Result<()> {
    let what = if restore && restore_apiserver(ctx, state)? {
        "kube-apiserver options restored until it does"
    } else {
        "kube-apiserver left unchanged"
    };
    let msg = format!("{subject} ({error:#}); {what}");
    ctx.tools.log(Level::Error, &msg);
    ctx.tools.status(Status::Blocked, &msg)?;
    state.save(&ctx.paths)
}

fn wait_healthy(url: &str, ca: &str, timeout: Duration) -> Result<()> {
    crate::tls::install_crypto_provider();
    let certs = reqwest::Certificate::from_pem_bundle(ca.as_bytes()).context("invalid CA PEM")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only(certs)
            .timeout(Duration::from_secs(2))
            .build()
            .context("cannot build the HTTP client")?;
        let deadline = Instant::now() + timeout;
        loop {
            let last = match client.get(url).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => format!("{e}"),
            };
            if Instant::now() >= deadline {
                bail!("{last}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}
