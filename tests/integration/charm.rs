//! The Juju charm end to end: the real hook executable (`bin/kubernetes-keystone-hook`, run
//! through the charm's real `dispatch`) in temporary charm directories, with Juju's hook
//! environment and the stand-ins of tests/charm/fake-bin on PATH for the hook tools, `snap`,
//! `systemctl` and the user tools (served by this process: tests/charm/stand_ins.rs). Every
//! unit writes under its own root (`KUBERNETES_KEYSTONE_ROOT`); the stand-in `systemctl start`
//! really runs the service as the rendered unit's ExecStart says. The charm ships a stripped
//! copy of the debug service binary (made once, see [`CHARM_SERVICE_BIN`]): the hooks copy and
//! hash 20 MB rather than 130.
//!
//! Only a few whole runs are here (deploy → configure → remove for both snap styles, bad
//! options, the principal overwriting options, the packed archive, a real kube-apiserver);
//! every other scenario is a unit test of the charm's plan on an in-memory machine
//! (src/charm/scenarios.rs).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::support::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
static HOOK_BIN: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::bins::bin("kubernetes-keystone-hook"));
static SERVICE_BIN: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::bins::bin("k8s-keystone-auth"));
/// The service binary the test charms ship: a stripped copy of [`SERVICE_BIN`] (see
/// [`stripped_copy`]).
static CHARM_SERVICE_BIN: std::sync::LazyLock<PathBuf> =
    std::sync::LazyLock::new(|| stripped_copy(Path::new(SERVICE_BIN.as_str())));
/// The hook executable the packed archive holds: a stripped copy of [`HOOK_BIN`].
static ARCHIVE_HOOK_BIN: std::sync::LazyLock<PathBuf> =
    std::sync::LazyLock::new(|| stripped_copy(Path::new(HOOK_BIN.as_str())));

#[path = "../charm/stand_ins.rs"]
mod stand_ins;

/// A stripped copy of a debug binary (a sixth of its size), made once per build of it and kept
/// next to it in `charm-test/`; the binary itself when `strip` fails.
fn stripped_copy(bin: &Path) -> PathBuf {
    let meta = std::fs::metadata(bin).unwrap();
    let dir = bin.parent().unwrap().join("charm-test");
    std::fs::create_dir_all(&dir).unwrap();
    let base = bin.file_name().unwrap().to_string_lossy().into_owned();
    let name = format!(
        "{base}-{}-{}.{}",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    let out = dir.join(&name);
    if out.is_file() {
        return out;
    }
    // Copies of earlier builds go. Another test process may be making this one: each writes
    // its own temporary file, and the rename is atomic.
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        if f.starts_with(&format!("{base}-")) && f != name {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let st = Command::new("strip")
        .arg("-o")
        .arg(&tmp)
        .arg(bin)
        .stdin(Stdio::null())
        .status();
    if !st.is_ok_and(|s| s.success()) {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("strip {} failed: using it as it is", bin.display());
        return bin.to_path_buf();
    }
    std::fs::rename(&tmp, &out).unwrap();
    out
}

const ENDPOINT: &str = "kubernetes-master";

/// The flags the charm manages on kube-apiserver.
const AUTHN_FILE: &str = "authentication-token-webhook-config-file";
const AUTHN_VERSION: &str = "authentication-token-webhook-version";
const AUTHN_CACHE_TTL: &str = "authentication-token-webhook-cache-ttl";
const AUTHZ_FILE: &str = "authorization-webhook-config-file";
const AUTHZ_VERSION: &str = "authorization-webhook-version";
const MODE: &str = "authorization-mode";

/// The principal's kube-apiserver snap: one option per flag, or Charmed Kubernetes' `args`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SnapStyle {
    PerFlag,
    Args,
}

const PRINCIPAL_ARGS: &str = r#"--advertise-address="10.0.0.5" --authorization-mode="Node,RBAC" --etcd-servers="https://10.0.0.7:2379" --anonymous-auth="false" --feature-gates="A=true,B=false""#;

fn principal_snap_config(style: SnapStyle) -> Value {
    match style {
        SnapStyle::PerFlag => {
            json!({"authorization-mode": "Node,RBAC", "advertise-address": "10.0.0.5",
                                     "etcd-servers": "https://10.0.0.7:2379", "v": 2})
        }
        SnapStyle::Args => json!({ "args": PRINCIPAL_ARGS }),
    }
}

fn keystone_url() -> String {
    std::env::var("KS_URL").unwrap_or_else(|_| "http://127.0.0.1:9/v3".into())
}

/// The declared options with their defaults, as `config-get --all` sees them.
fn declared_options() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(Path::new(REPO).join("config.yaml")).unwrap();
    let y: Value = serde_yaml_ng::from_str(&text).unwrap();
    y["options"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.get("default").cloned().unwrap_or(Value::Null)))
        .collect()
}

/// One kubernetes-keystone unit beside one kubernetes-master unit, with its own charm
/// directory, root and stand-in state.
struct Unit {
    _dir: tempfile::TempDir,
    n: usize,
    charm: PathBuf,
    root: PathBuf,
    state: PathBuf,
    relation_id: u32,
    /// Seconds the hook waits for /healthz.
    health_timeout: u32,
}

struct HookRun {
    code: i32,
    stderr: String,
}

impl Unit {
    fn new(n: usize, style: SnapStyle, config: Value) -> Unit {
        let dir = tempfile::tempdir().unwrap();
        let charm = dir.path().join("charm");
        let root = dir.path().join("root");
        let state = dir.path().join("state");
        for d in [
            &charm,
            &root,
            &state,
            &charm.join("hooks"),
            &charm.join("bin"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        for f in ["dispatch", "metadata.yaml", "config.yaml"] {
            std::fs::copy(Path::new(REPO).join(f), charm.join(f)).unwrap();
        }
        for e in std::fs::read_dir(Path::new(REPO).join("hooks")).unwrap() {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path()).unwrap();
            std::os::unix::fs::symlink(target, charm.join("hooks").join(e.file_name())).unwrap();
        }
        std::os::unix::fs::symlink(
            HOOK_BIN.as_str(),
            charm.join("bin/kubernetes-keystone-hook"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            CHARM_SERVICE_BIN.as_path(),
            charm.join("bin/k8s-keystone-auth"),
        )
        .unwrap();
        let mut options = declared_options();
        options.insert("keystone-url".into(), json!(keystone_url()));
        for (k, v) in config.as_object().unwrap() {
            assert!(options.contains_key(k), "undeclared option {k}");
            options.insert(k.clone(), v.clone());
        }
        let relation_id = 3 + n as u32;
        let unit = Unit {
            _dir: dir,
            n,
            charm,
            root,
            state,
            relation_id,
            health_timeout: 20,
        };
        unit.save(
            "juju.json",
            &json!({"config": options,
                    "relations": {ENDPOINT: {relation_id.to_string(): [unit.principal()]}}}),
        );
        unit.save(
            "snap.json",
            &json!({"installed": {"kube-apiserver": {"config": principal_snap_config(style)}}}),
        );
        unit.save(
            "systemd.json",
            &json!({"units": {"snap.kube-apiserver.daemon": {"active": true, "enabled": true}}}),
        );
        unit
    }

    fn principal(&self) -> String {
        format!("kubernetes-master/{}", self.n)
    }

    fn load(&self, name: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.state.join(name)).unwrap()).unwrap()
    }

    fn save(&self, name: &str, v: &Value) {
        std::fs::write(
            self.state.join(name),
            serde_json::to_string_pretty(v).unwrap(),
        )
        .unwrap();
    }

    /// `juju config kubernetes-keystone k=v ...`
    fn set_config(&self, changes: Value) {
        let mut j = self.load("juju.json");
        for (k, v) in changes.as_object().unwrap() {
            assert!(j["config"].get(k).is_some(), "undeclared option {k}");
            j["config"][k] = v.clone();
        }
        self.save("juju.json", &j);
    }

    fn remove_relation(&self) {
        let mut j = self.load("juju.json");
        j["relations"] = json!({});
        self.save("juju.json", &j);
    }

    fn env(&self, cmd: &mut Command, event: &str) {
        let fake_bin = Path::new(REPO).join("tests/charm/fake-bin");
        cmd.env_clear()
            .current_dir(&self.charm)
            .env("PATH", format!("{}:/usr/bin:/bin", fake_bin.display()))
            .env("FAKE_ADDR", stand_ins::ADDR.as_str())
            .env("FAKE_STATE", &self.state)
            .env("KUBERNETES_KEYSTONE_ROOT", &self.root)
            .env(
                "KUBERNETES_KEYSTONE_HEALTH_TIMEOUT",
                self.health_timeout.to_string(),
            )
            .env("JUJU_HOOK_NAME", event)
            .env("JUJU_UNIT_NAME", format!("kubernetes-keystone/{}", self.n))
            .env("JUJU_PRINCIPAL_UNIT", self.principal())
            .env("JUJU_CHARM_DIR", &self.charm)
            .env("CHARM_DIR", &self.charm)
            .env("JUJU_MODEL_NAME", "k8s")
            .env("JUJU_VERSION", "3.6.4")
            .env(
                "JUJU_CONTEXT_ID",
                format!("kubernetes-keystone/{}-{event}-1", self.n),
            )
            .env("JUJU_CHARM_HTTP_PROXY", "")
            .env("JUJU_CHARM_HTTPS_PROXY", "")
            .env("JUJU_CHARM_NO_PROXY", "");
        if let Some(kind) = event.strip_prefix(&format!("{ENDPOINT}-relation-")) {
            cmd.env("JUJU_RELATION", ENDPOINT)
                .env(
                    "JUJU_RELATION_ID",
                    format!("{ENDPOINT}:{}", self.relation_id),
                )
                .env("JUJU_REMOTE_APP", "kubernetes-master")
                .env(
                    "JUJU_REMOTE_UNIT",
                    if kind == "broken" {
                        String::new()
                    } else {
                        self.principal()
                    },
                );
            if kind == "departed" {
                cmd.env("JUJU_DEPARTING_UNIT", self.principal());
            }
        }
    }

    /// Runs a hook as Juju >= 2.8 does: `dispatch` with JUJU_DISPATCH_PATH.
    fn hook(&self, event: &str) -> HookRun {
        let mut cmd = Command::new(self.charm.join("dispatch"));
        self.env(&mut cmd, event);
        cmd.env("JUJU_DISPATCH_PATH", format!("hooks/{event}"));
        self.finish(event, cmd)
    }

    /// Runs a hook as older Juju does: `hooks/<event>`, no JUJU_DISPATCH_PATH.
    fn hook_via_link(&self, event: &str) -> HookRun {
        let mut cmd = Command::new(format!("hooks/{event}"));
        self.env(&mut cmd, event);
        self.finish(event, cmd)
    }

    fn finish(&self, event: &str, mut cmd: Command) -> HookRun {
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        std::fs::write(
            log_dir().join(format!(
                "charm-{}-{}-{event}.err",
                std::process::id(),
                self.n
            )),
            &stderr,
        )
        .unwrap();
        HookRun {
            code: out.status.code().unwrap_or(-1),
            stderr,
        }
    }

    /// Runs a hook that must succeed.
    fn ok(&self, event: &str) {
        let r = self.hook(event);
        assert_eq!(
            r.code,
            0,
            "{event} failed:\n{}\nlog: {:?}",
            r.stderr,
            self.juju_log()
        );
    }

    fn lines(&self, name: &str) -> Vec<Value> {
        std::fs::read_to_string(self.state.join(name))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn calls(&self) -> Vec<Value> {
        self.lines("calls.jsonl")
    }

    fn juju_log(&self) -> Vec<String> {
        self.lines("juju-log.jsonl")
            .into_iter()
            .map(|v| {
                format!(
                    "{} {}",
                    v["level"].as_str().unwrap(),
                    v["message"].as_str().unwrap()
                )
            })
            .collect()
    }

    fn statuses(&self) -> Vec<(String, String)> {
        self.lines("status.jsonl")
            .into_iter()
            .map(|v| {
                (
                    v["status"].as_str().unwrap().to_string(),
                    v["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn status(&self) -> (String, String) {
        self.statuses().last().cloned().expect("no status was set")
    }

    fn snap_config(&self) -> Value {
        self.load("snap.json")["installed"]["kube-apiserver"]["config"].clone()
    }

    fn set_snap_config(&self, config: Value) {
        let mut s = self.load("snap.json");
        s["installed"]["kube-apiserver"]["config"] = config;
        self.save("snap.json", &s);
    }

    /// The value kube-apiserver would get for a flag.
    fn flag(&self, style: SnapStyle, key: &str) -> Option<String> {
        let c = self.snap_config();
        match style {
            SnapStyle::PerFlag => c
                .get(key)
                .map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string())),
            SnapStyle::Args => kk_charm::snap::args_get(c["args"].as_str().unwrap(), key),
        }
    }

    fn systemd_unit(&self, name: &str) -> Value {
        self.load("systemd.json")["units"][name].clone()
    }

    fn apiserver_restarts(&self) -> u64 {
        self.systemd_unit("snap.kube-apiserver.daemon")["restarts"]
            .as_u64()
            .unwrap_or(0)
    }

    fn service_pid(&self) -> Option<u64> {
        self.systemd_unit("k8s-keystone-auth.service")["pid"].as_u64()
    }

    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    fn conf(&self, name: &str) -> PathBuf {
        self.path("/etc/kubernetes-keystone").join(name)
    }

    /// Every file under the root: (inode, mtime, size, mode) — a rewrite changes the inode.
    fn snapshot(&self) -> BTreeMap<PathBuf, (u64, i64, i64, u64, u32)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    stack.push(p.clone());
                }
                out.insert(p, (m.ino(), m.mtime(), m.mtime_nsec(), m.size(), m.mode()));
            }
        }
        out
    }

    fn mode(&self, p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// The webhook kubeconfig's server and pinned CA.
    fn kubeconfig(&self, name: &str) -> (String, String) {
        let y: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(self.conf(name)).unwrap()).unwrap();
        let cluster = &y["clusters"][0]["cluster"];
        assert!(cluster.get("insecure-skip-tls-verify").is_none());
        let ca = base64::engine::general_purpose::STANDARD
            .decode(cluster["certificate-authority-data"].as_str().unwrap())
            .unwrap();
        (
            cluster["server"].as_str().unwrap().to_string(),
            String::from_utf8(ca).unwrap(),
        )
    }

    fn stop_service(&self) {
        if let Some(pid) = self.service_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        self.stop_service();
    }
}

/// Runs `event` once more and checks it changed nothing: no file written, no restart, no
/// snap option set, no maintenance status.
fn assert_idempotent(u: &Unit, event: &str) {
    let before = u.snapshot();
    let calls = u.calls().len();
    let statuses = u.statuses().len();
    let snap = u.snap_config();
    u.ok(event);
    assert_eq!(u.snapshot(), before, "{event} run again rewrote files");
    assert_eq!(
        u.snap_config(),
        snap,
        "{event} run again changed snap options"
    );
    let new_calls: Vec<Value> = u.calls()[calls..].to_vec();
    for c in &new_calls {
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let tool = c["tool"].as_str().unwrap();
        let changes = match tool {
            "systemctl" => !matches!(args.first(), Some(&"is-active") | Some(&"is-enabled")),
            "snap" => !matches!(args.first(), Some(&"get") | Some(&"list")),
            "useradd" | "userdel" => true,
            _ => false,
        };
        assert!(!changes, "{event} run again called {tool} {args:?}");
    }
    assert!(
        u.statuses()[statuses..]
            .iter()
            .all(|(s, _)| s != "maintenance"),
        "{event} run again did work: {:?}",
        &u.statuses()[statuses..]
    );
}

/// The documented sequence after `juju deploy` + `juju add-relation`.
const DEPLOY: [&str; 7] = [
    "install",
    "leader-elected",
    "config-changed",
    "start",
    "kubernetes-master-relation-created",
    "kubernetes-master-relation-joined",
    "kubernetes-master-relation-changed",
];

fn deploy(u: &Unit) {
    for e in DEPLOY {
        u.ok(e);
    }
}

fn healthz_through_kubeconfig(u: &Unit, name: &str) -> String {
    let (server, ca) = u.kubeconfig(name);
    let url = reqwest::Url::parse(&server)
        .unwrap()
        .join("/healthz")
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = http_client(Some(&ca))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        c.get(url).send().await.unwrap().text().await.unwrap()
    })
}

fn the_whole_life(style: SnapStyle) {
    let port = free_port();
    let u = Unit::new(0, style, json!({"port": port}));
    let original = u.snap_config();

    // --- juju deploy + juju add-relation
    deploy(&u);
    let (s, m) = u.status();
    assert_eq!(s, "active", "{m}");
    assert!(
        m.contains(&format!("port {port}")) && m.contains("Node,RBAC,Webhook"),
        "{m}"
    );
    assert_eq!(u.load("juju.json")["version"], kk_core::VERSION);
    // Files, with tight modes.
    let conf_dir = u.path("/etc/kubernetes-keystone");
    assert_eq!(u.mode(&conf_dir), 0o750);
    for (f, mode) in [
        ("config.toml", 0o640),
        ("tls.key", 0o640),
        ("policy.json", 0o640),
        ("tls.crt", 0o644),
        ("ca.crt", 0o644),
        ("authn-webhook.kubeconfig", 0o600),
        ("authz-webhook.kubeconfig", 0o600),
    ] {
        assert_eq!(u.mode(&u.conf(f)), mode, "{f}");
    }
    assert!(!u.conf("sync.yaml").exists() && !u.conf("keystone-ca.crt").exists());
    assert_eq!(u.mode(&u.path("/var/lib/kubernetes-keystone")), 0o700);
    assert_eq!(
        u.mode(&u.path("/opt/kubernetes-keystone/bin/k8s-keystone-auth")),
        0o755
    );
    assert_eq!(
        std::fs::read(u.path("/opt/kubernetes-keystone/bin/k8s-keystone-auth")).unwrap(),
        std::fs::read(CHARM_SERVICE_BIN.as_path()).unwrap()
    );
    let config = std::fs::read_to_string(u.conf("config.toml")).unwrap();
    assert!(
        config.contains(&format!("listen = \"127.0.0.1:{port}\"")),
        "{config}"
    );
    assert!(
        config.contains(&format!("url = \"{}\"", keystone_url())),
        "{config}"
    );
    let unit_file =
        std::fs::read_to_string(u.path("/etc/systemd/system/k8s-keystone-auth.service")).unwrap();
    for h in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "User=k8s-keystone-auth",
        "PrivateTmp=yes",
    ] {
        assert!(unit_file.contains(h), "{h}");
    }
    // The policy is the charm's default.
    assert_eq!(
        std::fs::read_to_string(u.conf("policy.json")).unwrap(),
        std::fs::read_to_string(Path::new(REPO).join("charm/default-policy.json")).unwrap()
    );
    // The service runs, enabled, started once; kube-apiserver restarted once.
    let svc = u.systemd_unit("k8s-keystone-auth.service");
    assert_eq!(svc["enabled"], true);
    assert_eq!(svc["starts"], 1, "{svc}");
    assert!(u.service_pid().is_some());
    assert_eq!(u.apiserver_restarts(), 1);
    assert_eq!(u.load("users.json"), json!(["k8s-keystone-auth"]));
    // kube-apiserver's options.
    let authn_kc = u.conf("authn-webhook.kubeconfig").display().to_string();
    let authz_kc = u.conf("authz-webhook.kubeconfig").display().to_string();
    assert_eq!(u.flag(style, AUTHN_FILE), Some(authn_kc.clone()));
    assert_eq!(u.flag(style, AUTHN_VERSION).as_deref(), Some("v1"));
    assert_eq!(u.flag(style, AUTHN_CACHE_TTL).as_deref(), Some("30s"));
    assert_eq!(u.flag(style, AUTHZ_FILE), Some(authz_kc.clone()));
    assert_eq!(u.flag(style, AUTHZ_VERSION).as_deref(), Some("v1"));
    assert_eq!(u.flag(style, MODE).as_deref(), Some("Node,RBAC,Webhook"));
    match style {
        SnapStyle::Args => {
            // Every other flag kept, as written, in its place; no per-flag option appeared.
            let args = u.snap_config()["args"].as_str().unwrap().to_string();
            assert!(args.starts_with(r#"--advertise-address="10.0.0.5" --authorization-mode="Node,RBAC,Webhook" --etcd-servers="https://10.0.0.7:2379" --anonymous-auth="false" --feature-gates="A=true,B=false" "#), "{args}");
            assert_eq!(u.snap_config().as_object().unwrap().len(), 1);
        }
        SnapStyle::PerFlag => {
            assert_eq!(u.snap_config()["etcd-servers"], "https://10.0.0.7:2379");
            assert_eq!(u.snap_config()["v"], 2);
            assert!(u.snap_config().get("args").is_none());
        }
    }
    // The webhook kubeconfigs point at this unit's service with its CA pinned, and it answers.
    let (server, ca) = u.kubeconfig("authn-webhook.kubeconfig");
    assert_eq!(server, format!("https://127.0.0.1:{port}/authenticate"));
    assert_eq!(ca, std::fs::read_to_string(u.conf("ca.crt")).unwrap());
    assert_eq!(
        u.kubeconfig("authz-webhook.kubeconfig").0,
        format!("https://127.0.0.1:{port}/authorize")
    );
    assert_eq!(
        healthz_through_kubeconfig(&u, "authn-webhook.kubeconfig"),
        "ok\n"
    );
    // What happened is in juju-log.
    let log = u.juju_log().join("\n");
    for needle in [
        "created the charm's CA",
        "wrote ",
        "starting k8s-keystone-auth.service",
        "kube-apiserver options",
        "restarted snap.kube-apiserver.daemon",
    ] {
        assert!(log.contains(needle), "{needle} not in\n{log}");
    }

    // --- every hook twice: the second run changes nothing
    for e in DEPLOY.iter().chain(
        [
            "update-status",
            "upgrade-charm",
            "kubernetes-master-relation-departed",
        ]
        .iter(),
    ) {
        assert_idempotent(&u, e);
    }
    // Old Juju: hooks/<event> without JUJU_DISPATCH_PATH runs the same code.
    let calls = u.calls().len();
    let r = u.hook_via_link("config-changed");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(u.calls()[calls..].iter().any(|c| c["tool"] == "config-get"));
    assert_eq!(u.status().0, "active");

    // --- juju config log-level=debug: the service restarts, kube-apiserver does not
    let pid = u.service_pid();
    u.set_config(json!({"log-level": "debug"}));
    u.ok("config-changed");
    assert!(
        std::fs::read_to_string(u.conf("config.toml"))
            .unwrap()
            .contains("log_level = \"debug\"")
    );
    assert_ne!(u.service_pid(), pid);
    assert_eq!(u.systemd_unit("k8s-keystone-auth.service")["restarts"], 1);
    assert_eq!(u.apiserver_restarts(), 1);
    assert_eq!(u.status().0, "active");
    assert_idempotent(&u, "config-changed");

    // --- juju config policy=...: the service reloads the file itself, nothing restarts
    let pid = u.service_pid();
    let policy =
        std::fs::read_to_string(Path::new(REPO).join("deploy/policy-example.json")).unwrap();
    u.set_config(json!({"policy": policy}));
    u.ok("config-changed");
    assert_eq!(
        std::fs::read_to_string(u.conf("policy.json")).unwrap(),
        policy.trim()
    );
    assert_eq!(u.service_pid(), pid);
    assert_eq!(u.apiserver_restarts(), 1);
    assert_idempotent(&u, "config-changed");

    // --- juju config authorization-mode=Node,RBAC: the authorization webhook goes
    u.set_config(json!({"authorization-mode": "Node,RBAC"}));
    u.ok("config-changed");
    assert_eq!(u.flag(style, MODE).as_deref(), Some("Node,RBAC"));
    assert_eq!(u.flag(style, AUTHZ_FILE), None);
    assert_eq!(u.flag(style, AUTHZ_VERSION), None);
    assert_eq!(u.flag(style, AUTHN_FILE), Some(authn_kc.clone()));
    assert!(!u.conf("authz-webhook.kubeconfig").exists());
    assert_eq!(u.apiserver_restarts(), 2);
    assert_eq!(u.service_pid(), pid);
    assert_idempotent(&u, "config-changed");
    u.set_config(json!({"authorization-mode": "Node,RBAC,Webhook"}));
    u.ok("config-changed");
    assert_eq!(u.flag(style, AUTHZ_FILE), Some(authz_kc.clone()));
    assert_eq!(u.apiserver_restarts(), 3);

    // --- juju config port=...: service restarts on the new port, kubeconfigs follow,
    //     kube-apiserver restarts (it reads the kubeconfigs at start)
    let port2 = free_port();
    u.set_config(json!({"port": port2}));
    u.ok("config-changed");
    assert_eq!(
        u.kubeconfig("authn-webhook.kubeconfig").0,
        format!("https://127.0.0.1:{port2}/authenticate")
    );
    assert_eq!(
        healthz_through_kubeconfig(&u, "authz-webhook.kubeconfig"),
        "ok\n"
    );
    assert_eq!(u.apiserver_restarts(), 4);
    assert_idempotent(&u, "update-status");

    // --- juju remove-relation / remove-application
    u.ok("kubernetes-master-relation-departed");
    u.remove_relation();
    u.ok("kubernetes-master-relation-broken");
    assert_eq!(
        u.snap_config(),
        original,
        "options not restored on relation-broken"
    );
    assert_eq!(u.apiserver_restarts(), 5);
    assert_eq!(u.status().0, "waiting");
    assert_idempotent(&u, "kubernetes-master-relation-broken");
    // juju-log failing: the message goes to stderr instead; stop says what it did.
    let mut j = u.load("juju.json");
    j["juju_log_fails"] = json!(true);
    u.save("juju.json", &j);
    let r = u.hook("stop");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("INFO stopped k8s-keystone-auth.service"),
        "{}",
        r.stderr
    );
    assert_eq!(
        u.status(),
        ("maintenance".to_string(), "stopped".to_string())
    );
    j["juju_log_fails"] = json!(false);
    u.save("juju.json", &j);
    assert!(u.service_pid().is_none());
    assert_eq!(
        u.systemd_unit("k8s-keystone-auth.service")["enabled"],
        false
    );
    assert_idempotent(&u, "stop");
    u.ok("remove");
    assert_eq!(u.snap_config(), original);
    assert_eq!(u.apiserver_restarts(), 5);
    let left: Vec<_> = u
        .snapshot()
        .into_keys()
        .filter(|p| !std::fs::symlink_metadata(p).unwrap().is_dir())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    for d in [
        "/etc/kubernetes-keystone",
        "/opt/kubernetes-keystone",
        "/var/lib/kubernetes-keystone",
    ] {
        assert!(!u.path(d).exists(), "{d}");
    }
    assert_eq!(u.load("users.json"), json!([]));
    assert_eq!(u.status().0, "maintenance");
    assert_idempotent(&u, "remove");
}

#[test]
fn charm_deploy_configure_remove_with_per_flag_snap_options() {
    the_whole_life(SnapStyle::PerFlag);
}

#[test]
fn charm_deploy_configure_remove_with_the_args_snap_option() {
    the_whole_life(SnapStyle::Args);
}

#[test]
fn charm_bad_options_block_naming_the_option_and_write_nothing() {
    // Missing keystone-url from the start: blocked, nothing written anywhere.
    let u = Unit::new(0, SnapStyle::Args, json!({"keystone-url": ""}));
    u.ok("install");
    let (s, m) = u.status();
    assert_eq!(s, "blocked");
    assert!(m.contains("keystone-url"), "{m}");
    assert!(u.snapshot().is_empty(), "{:?}", u.snapshot());
    u.ok("config-changed");
    assert_eq!(u.status().0, "blocked");

    // A good configuration, then bad ones: blocked naming the option, nothing changed.
    let port = free_port();
    u.set_config(json!({"keystone-url": keystone_url(), "port": port}));
    deploy(&u);
    assert_eq!(u.status().0, "active");
    let good = u.snapshot();
    let snap = u.snap_config();
    let pid = u.service_pid();
    let garbage_pem =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    // One case per kind of check (the full table is a unit test of the plan).
    let cases = [
        (json!({"keystone-url": ""}), "keystone-url"),
        (json!({"policy": "[{\"users\": "}), "policy"),
        (json!({"keystone-ca": garbage_pem}), "keystone-ca"),
        (
            json!({"k8s-keystone-auth-url": "http://127.0.0.1:9/k8s-keystone-auth"}),
            "k8s-keystone-auth-url",
        ),
        (json!({"port": 80}), "port"),
    ];
    let defaults = declared_options();
    for (bad, option) in cases {
        u.set_config(bad.clone());
        let calls = u.calls().len();
        u.ok("config-changed");
        let (s, m) = u.status();
        assert_eq!(s, "blocked", "{bad}: {m}");
        assert!(
            m.starts_with(&format!("bad option {option}: ")),
            "{bad}: {m}"
        );
        assert_eq!(u.snapshot(), good, "{bad} changed files");
        assert_eq!(u.snap_config(), snap, "{bad} changed kube-apiserver");
        assert_eq!(u.service_pid(), pid);
        let acted: Vec<_> = u.calls()[calls..]
            .iter()
            .filter(|c| ["snap", "systemctl", "useradd"].contains(&c["tool"].as_str().unwrap()))
            .cloned()
            .collect();
        assert!(acted.is_empty(), "{bad}: {acted:?}");
        assert!(u.juju_log().last().unwrap().contains(option));
        // update-status keeps saying so.
        u.ok("update-status");
        assert_eq!(u.status().0, "blocked");
        // Put it back.
        let restore: serde_json::Map<String, Value> = bad
            .as_object()
            .unwrap()
            .keys()
            .map(|k| {
                let v = match k.as_str() {
                    "keystone-url" => json!(keystone_url()),
                    "port" => json!(port),
                    _ => defaults[k].clone(),
                };
                (k.clone(), v)
            })
            .collect();
        u.set_config(Value::Object(restore));
        u.ok("config-changed");
        assert_eq!(u.status().0, "active", "{bad}");
        assert_eq!(u.snapshot(), good, "restoring {bad} changed files");
    }
    // Several bad options: the first is named, the others counted.
    u.set_config(json!({"keystone-url": "", "policy": "{"}));
    u.ok("config-changed");
    let m = u.status().1;
    assert!(
        m.starts_with("bad option keystone-url: ") && m.ends_with("(and 1 more: policy)"),
        "{m}"
    );
    // config-get printing something that is not JSON (holding a key): the hook fails without
    // showing it.
    let secret = "KeyMaterialNotJson";
    let mut j = u.load("juju.json");
    j["config_raw"] = json!(format!(
        "{{\"tls-key\": \"-----BEGIN PRIVATE KEY-----\n{secret}"
    ));
    u.save("juju.json", &j);
    let r = u.hook("config-changed");
    assert_ne!(r.code, 0);
    assert!(
        u.juju_log()
            .iter()
            .any(|l| l.starts_with("ERROR ") && l.contains("invalid JSON")),
        "{:?}",
        u.juju_log()
    );
    let recorded: String = ["status.jsonl", "juju-log.jsonl"]
        .iter()
        .map(|f| std::fs::read_to_string(u.state.join(f)).unwrap_or_default())
        .collect();
    assert!(!recorded.contains(secret) && !r.stderr.contains(secret));
}

#[test]
fn charm_update_status_restores_options_the_principal_overwrote() {
    for style in [SnapStyle::PerFlag, SnapStyle::Args] {
        let u = Unit::new(0, style, json!({"port": free_port()}));
        deploy(&u);
        let restarts = u.apiserver_restarts();
        let ours = u.snap_config();
        // The principal reconfigures kube-apiserver: a new authorization mode of its own, and
        // (args style) the whole args string rewritten from its own flags only.
        match style {
            SnapStyle::PerFlag => {
                let mut c = u.snap_config();
                c[MODE] = json!("Node,RBAC,ABAC");
                c.as_object_mut().unwrap().remove(AUTHN_FILE);
                u.set_snap_config(c);
            }
            SnapStyle::Args => u.set_snap_config(json!({
                "args": PRINCIPAL_ARGS.replace("Node,RBAC", "Node,RBAC,ABAC")
            })),
        }
        u.ok("update-status");
        let (s, m) = u.status();
        assert_eq!(s, "active", "{m}");
        assert!(
            m.contains("restored kube-apiserver options the principal overwrote"),
            "{m}"
        );
        assert!(m.contains(AUTHN_FILE) && m.contains(MODE), "{m}");
        assert_eq!(u.snap_config(), ours, "{style:?}");
        assert_eq!(u.apiserver_restarts(), restarts + 1);
        assert!(
            u.juju_log()
                .iter()
                .any(|l| l.contains("WARNING") && l.contains("overwritten"))
        );
        // Next update-status: nothing to do, the message is back to normal.
        assert_idempotent(&u, "update-status");
        assert!(!u.status().1.contains("restored"));
        // Removal gives the principal its latest choice back, not the one from before.
        u.remove_relation();
        u.ok("kubernetes-master-relation-broken");
        assert_eq!(u.flag(style, MODE).as_deref(), Some("Node,RBAC,ABAC"));
        assert_eq!(u.flag(style, AUTHN_FILE), None);
        assert_eq!(u.flag(style, AUTHZ_FILE), None);
        if style == SnapStyle::Args {
            assert_eq!(
                u.snap_config()["args"],
                PRINCIPAL_ARGS.replace("Node,RBAC", "Node,RBAC,ABAC")
            );
        }
    }
}

#[test]
fn charm_archive_has_every_file_with_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kubernetes-keystone.charm");
    // A small stand-in for the service binary: packing 138 MB of debug build proves nothing more.
    let service_bin = dir.path().join("k8s-keystone-auth");
    std::fs::write(&service_bin, "#!/bin/sh\necho k8s-keystone-auth 0.0.0\n").unwrap();
    std::fs::set_permissions(&service_bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let status = Command::new("bash")
        .arg(Path::new(REPO).join("charm/build.sh"))
        .arg(&out)
        .env("HOOK_BIN", ARCHIVE_HOOK_BIN.as_path())
        .env("SERVICE_BIN", &service_bin)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let listing = Command::new("python3")
        .arg("-c")
        .arg("import json, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nprint(json.dumps({i.filename: [i.external_attr >> 16, z.read(i).decode('latin-1') if (i.external_attr >> 16) & 0o170000 == 0o120000 else i.file_size] for i in z.infolist()}))")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let entries: BTreeMap<String, (u32, Value)> = serde_json::from_slice(&listing.stdout).unwrap();
    let regular = |name: &str, mode: u32| {
        let (m, _) = entries
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing: {entries:?}"));
        assert_eq!(*m, 0o100000 | mode, "{name}: {m:o}");
    };
    regular("dispatch", 0o755);
    regular("bin/kubernetes-keystone-hook", 0o755);
    regular("bin/k8s-keystone-auth", 0o755);
    for f in ["metadata.yaml", "config.yaml", "manifest.yaml", "README.md"] {
        regular(f, 0o644);
    }
    assert_eq!(
        entries["bin/k8s-keystone-auth"].1,
        json!(std::fs::metadata(&service_bin).unwrap().len())
    );
    // hooks/<event> for older Juju: links to dispatch, one per event the charm handles.
    let metadata: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(Path::new(REPO).join("metadata.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(metadata["name"], "kubernetes-keystone");
    assert_eq!(metadata["subordinate"], true);
    let requires = metadata["requires"].as_object().unwrap();
    assert_eq!(requires.len(), 1);
    assert_eq!(
        requires[ENDPOINT],
        json!({"interface": "juju-info", "scope": "container"})
    );
    let mut events: Vec<String> = [
        "install",
        "config-changed",
        "start",
        "stop",
        "remove",
        "upgrade-charm",
        "update-status",
        "leader-elected",
        "leader-settings-changed",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for k in ["created", "joined", "changed", "departed", "broken"] {
        events.push(format!("{ENDPOINT}-relation-{k}"));
    }
    for e in &events {
        let (m, target) = entries
            .get(&format!("hooks/{e}"))
            .unwrap_or_else(|| panic!("hooks/{e} missing"));
        assert_eq!(m & 0o170000, 0o120000, "hooks/{e} is not a link");
        assert_eq!(target, "../dispatch");
    }
    assert_eq!(
        entries.len(),
        7 + events.len(),
        "unexpected entries: {:?}",
        entries.keys()
    );
    // Every option has a type and a description; types are Juju's.
    let config: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(Path::new(REPO).join("config.yaml")).unwrap(),
    )
    .unwrap();
    for (name, o) in config["options"].as_object().unwrap() {
        assert!(
            ["string", "int", "boolean", "float"].contains(&o["type"].as_str().unwrap()),
            "{name}"
        );
        assert!(
            o["description"].as_str().is_some_and(|d| d.len() > 10),
            "{name}"
        );
    }
    // The unpacked archive runs: dispatch finds the hook executable, which reports an
    // unknown event as nothing to do.
    let unpacked = dir.path().join("unpacked");
    let st = Command::new("python3")
        .arg("-c")
        .arg("import os, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist():\n  p = os.path.join(sys.argv[2], i.filename); os.makedirs(os.path.dirname(p), exist_ok=True)\n  mode = i.external_attr >> 16\n  if mode & 0o170000 == 0o120000: os.symlink(z.read(i).decode(), p)\n  else:\n    open(p, 'wb').write(z.read(i)); os.chmod(p, mode & 0o7777)")
        .arg(&out)
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(st.success());
    let u = Unit::new(0, SnapStyle::Args, json!({}));
    let mut cmd = Command::new(unpacked.join("dispatch"));
    u.env(&mut cmd, "collect-metrics");
    let out = cmd
        .current_dir(&unpacked)
        .env("JUJU_CHARM_DIR", &unpacked)
        .env("JUJU_DISPATCH_PATH", "hooks/collect-metrics")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        u.juju_log()
            .iter()
            .any(|l| l.contains("no handler for event \"collect-metrics\"")),
        "{:?}",
        u.juju_log()
    );
}

/// The webhook kubeconfigs the hook executable renders (CA pinned) are the files a real
/// kube-apiserver is started with (and the webhook API version the charm set on the snap), and
/// real kubectl requests go through them to the service the charm runs and to Keystone.
#[test]
fn charm_kubeconfigs_drive_a_real_kube_apiserver() {
    let policy = std::fs::read_to_string(Path::new(REPO).join("tests/k8s/policy.json")).unwrap();
    let port = free_port();
    let u = Unit::new(0, SnapStyle::Args, json!({"port": port, "policy": policy}));
    deploy(&u);
    let (s, m) = u.status();
    assert_eq!(s, "active", "{m}");
    let version = u.flag(SnapStyle::Args, AUTHN_VERSION).unwrap();
    assert_eq!(
        u.flag(SnapStyle::Args, AUTHZ_VERSION),
        Some(version.clone())
    );
    assert_eq!(
        u.flag(SnapStyle::Args, MODE).as_deref(),
        Some("Node,RBAC,Webhook")
    );
    let authn = u.conf("authn-webhook.kubeconfig");
    let authz = u.conf("authz-webhook.kubeconfig");
    assert_eq!(
        u.flag(SnapStyle::Args, AUTHN_FILE).as_deref(),
        authn.to_str()
    );
    // Every flag the charm set on the snap goes to the real apiserver (up.sh sets the mode).
    let ttl = u.flag(SnapStyle::Args, AUTHN_CACHE_TTL).unwrap();
    let api = crate::apiserver::OwnApiserver::start(
        &authn,
        &authz,
        &version,
        &format!("--{AUTHN_CACHE_TTL}={ttl}"),
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let _ks = KEYSTONE.read().await;
        let ks = Keystone::get();
        let token = ks
            .app_cred_token(&env("KS_AC_KUBECTL_RO_ID"), &env("KS_AC_KUBECTL_RO_SECRET"))
            .await
            .unwrap();
        let sb = crate::sandbox::Sandbox::new();
        let who = api
            .with_token(
                &sb,
                &token,
                &[
                    "auth",
                    "whoami",
                    "-o",
                    "jsonpath={.status.userInfo.username}",
                ],
            )
            .await;
        assert_eq!(who.code, Some(0), "{}", who.stderr);
        assert_eq!(who.stdout.trim(), "alice");
        // The authorization kubeconfig: the policy's rule 0 through the charm's service.
        let yes = api
            .with_token(
                &sb,
                &token,
                &["auth", "can-i", "list", "pods", "-n", "team-a"],
            )
            .await;
        assert_eq!(yes.stdout.trim(), "yes", "{}", yes.stderr);
        let no = api
            .with_token(
                &sb,
                &token,
                &["auth", "can-i", "delete", "pods", "-n", "team-a"],
            )
            .await;
        // kube-apiserver passes the webhook's reason on.
        assert_eq!(
            no.stdout.trim(),
            "no - no policy rule matched",
            "{}",
            no.stderr
        );
        let refused = api
            .with_token(
                &sb,
                &format!("gAAAAA{}", "y".repeat(180)),
                &["get", "--raw", "/api"],
            )
            .await;
        assert_ne!(refused.code, Some(0));
    });
}
