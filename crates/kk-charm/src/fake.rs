//! An in-memory [`Machine`] for the unit tests: files, units, the user, kube-apiserver's snap
//! and Juju's hook tools, with every changing call recorded.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use sha2::Digest;

use super::hook_tools::{HookTools, Level, Status};
use super::host::Access;
use super::machine::{Machine, Meta};
use super::plan::SnapConfig;
use super::render::{APISERVER_UNIT, SERVICE_UNIT};
use kk_core::secret::Secret;

#[derive(Debug, Clone)]
pub struct FakeFile {
    pub content: Vec<u8>,
    pub mode: u32,
    pub gid: u32,
    pub mtime_ns: i128,
}

#[derive(Debug, Clone, Default)]
pub struct FakeUnit {
    pub active: bool,
    pub enabled: bool,
    pub starts: u32,
    pub restarts: u32,
}

/// The machine.
pub struct Fake {
    pub files: RefCell<BTreeMap<PathBuf, FakeFile>>,
    pub dirs: RefCell<BTreeMap<PathBuf, (u32, u32)>>,
    pub units: RefCell<BTreeMap<String, FakeUnit>>,
    pub gid: Cell<Option<u32>>,
    pub snap: RefCell<Option<SnapConfig>>,
    pub config: RefCell<BTreeMap<String, Value>>,
    pub related: Cell<bool>,
    pub statuses: RefCell<Vec<(Status, String)>>,
    pub logs: RefCell<Vec<(Level, String)>>,
    /// Every call that changes something.
    pub calls: RefCell<Vec<String>>,
    /// /healthz URLs that do not answer (besides the service's own when it is not running).
    pub dead: RefCell<BTreeSet<String>>,
    /// The service cannot serve (its port is taken).
    pub service_broken: Cell<bool>,
    /// URL → body served.
    pub downloads: RefCell<BTreeMap<String, Vec<u8>>>,
    pub downloaded: Cell<u32>,
    pub hashed: RefCell<Vec<PathBuf>>,
    pub issued: Cell<u32>,
    clock: Cell<i128>,
}

/// The root the charm writes under; the charm directory.
pub const ROOT: &str = "/r";
pub const CHARM: &str = "/charm";

fn cdk_config() -> BTreeMap<String, Value> {
    let text = include_str!("../../../config.yaml");
    let y: Value = serde_yaml_ng::from_str(text).unwrap();
    let mut m: BTreeMap<String, Value> = y["options"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.get("default").cloned().unwrap_or(Value::Null)))
        .collect();
    m.insert(
        "keystone-url".into(),
        json!("https://keystone.example:5000/v3"),
    );
    m
}

pub const PRINCIPAL_ARGS: &str = r#"--advertise-address="10.0.0.5" --authorization-mode="Node,RBAC" --etcd-servers="https://10.0.0.7:2379""#;

impl Fake {
    /// A machine with kube-apiserver's snap in `args` style (or per flag), related, with the
    /// charm's binary shipped.
    pub fn new(args_style: bool) -> Fake {
        let f = Fake {
            files: RefCell::default(),
            dirs: RefCell::default(),
            units: RefCell::default(),
            gid: Cell::new(None),
            snap: RefCell::new(Some(if args_style {
                BTreeMap::from([("args".to_string(), json!(PRINCIPAL_ARGS))])
            } else {
                BTreeMap::from([
                    ("authorization-mode".to_string(), json!("Node,RBAC")),
                    ("v".to_string(), json!(2)),
                ])
            })),
            config: RefCell::new(cdk_config()),
            related: Cell::new(true),
            statuses: RefCell::default(),
            logs: RefCell::default(),
            calls: RefCell::default(),
            dead: RefCell::default(),
            service_broken: Cell::new(false),
            downloads: RefCell::default(),
            downloaded: Cell::new(0),
            hashed: RefCell::default(),
            issued: Cell::new(0),
            clock: Cell::new(1_000_000_000),
        };
        f.units.borrow_mut().insert(
            APISERVER_UNIT.into(),
            FakeUnit {
                active: true,
                enabled: true,
                ..FakeUnit::default()
            },
        );
        f.ship(b"k8s-keystone-auth build 1".to_vec());
        f
    }

    fn tick(&self) -> i128 {
        self.clock.set(self.clock.get() + 1);
        self.clock.get()
    }

    /// The charm ships this binary (a new charm revision).
    pub fn ship(&self, content: Vec<u8>) {
        let mtime_ns = self.tick();
        self.files.borrow_mut().insert(
            PathBuf::from(CHARM).join("bin/k8s-keystone-auth"),
            FakeFile {
                content,
                mode: 0o755,
                gid: 0,
                mtime_ns,
            },
        );
    }

    pub fn set(&self, changes: Value) {
        for (k, v) in changes.as_object().unwrap() {
            assert!(self.config.borrow().contains_key(k), "undeclared {k}");
            self.config.borrow_mut().insert(k.clone(), v.clone());
        }
    }

    pub fn read_str(&self, p: &str) -> Option<String> {
        self.files
            .borrow()
            .get(&PathBuf::from(ROOT).join(p.trim_start_matches('/')))
            .map(|f| String::from_utf8_lossy(&f.content).into_owned())
    }

    pub fn status(&self) -> (Status, String) {
        self.statuses.borrow().last().cloned().unwrap()
    }

    pub fn unit(&self, name: &str) -> FakeUnit {
        self.units.borrow().get(name).cloned().unwrap_or_default()
    }

    pub fn flag(&self, key: &str) -> Option<String> {
        let snap = self.snap.borrow();
        let c = snap.as_ref()?;
        match c.get("args") {
            Some(Value::String(a)) => super::snap::args_get(a, key),
            _ => c.get(key).map(|v| match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            }),
        }
    }

    fn call(&self, c: String) {
        self.calls.borrow_mut().push(c);
    }

    fn under(&self, p: &Path) -> Result<()> {
        if !p.starts_with(ROOT) {
            bail!("{} is outside the root", p.display());
        }
        Ok(())
    }
}

impl HookTools for Fake {
    fn config(&self) -> Result<BTreeMap<String, Value>> {
        Ok(self.config.borrow().clone())
    }
    fn relation_ids(&self, endpoint: &str) -> Result<Vec<String>> {
        Ok(if self.related.get() {
            vec![format!("{endpoint}:3")]
        } else {
            vec![]
        })
    }
    fn status(&self, status: Status, message: &str) -> Result<()> {
        self.statuses.borrow_mut().push((status, message.into()));
        Ok(())
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.into()));
    }
    fn application_version(&self, _version: &str) -> Result<()> {
        Ok(())
    }
}

impl Machine for Fake {
    fn tools(&self) -> &dyn HookTools {
        self
    }
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        Ok(self.files.borrow().get(path).map(|f| f.content.clone()))
    }
    fn stat(&self, path: &Path) -> Result<Option<Meta>> {
        if let Some(f) = self.files.borrow().get(path) {
            return Ok(Some(Meta {
                len: f.content.len() as u64,
                mtime_ns: f.mtime_ns,
                mode: f.mode,
                gid: f.gid,
                dir: false,
            }));
        }
        Ok(self.dirs.borrow().get(path).map(|&(mode, gid)| Meta {
            len: 0,
            mtime_ns: 0,
            mode,
            gid,
            dir: true,
        }))
    }
    fn sha256(&self, path: &Path) -> Result<String> {
        self.hashed.borrow_mut().push(path.to_path_buf());
        let c = self.read(path)?.unwrap_or_default();
        Ok(sha2::Sha256::digest(&c)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
    fn write(&self, path: &Path, content: &[u8], access: Access, gid: Option<u32>) -> Result<()> {
        self.under(path)?;
        let parent = path.parent().unwrap().to_path_buf();
        if !self.dirs.borrow().contains_key(&parent) {
            bail!("{} has no directory", path.display());
        }
        self.call(format!("write {}", path.display()));
        let mtime_ns = self.tick();
        self.files.borrow_mut().insert(
            path.to_path_buf(),
            FakeFile {
                content: content.to_vec(),
                mode: access.mode(),
                gid: gid.unwrap_or(0),
                mtime_ns,
            },
        );
        Ok(())
    }
    fn set_meta(&self, path: &Path, mode: u32, gid: Option<u32>) -> Result<()> {
        self.call(format!("chmod {}", path.display()));
        let mut files = self.files.borrow_mut();
        let f = files.get_mut(path).unwrap();
        f.mode = mode;
        f.gid = gid.unwrap_or(0);
        Ok(())
    }
    fn install(&self, from: &Path, to: &Path) -> Result<()> {
        self.under(to)?;
        self.call(format!("install {}", to.display()));
        let mut f = self.files.borrow().get(from).cloned().unwrap();
        f.mode = 0o755;
        self.files.borrow_mut().insert(to.to_path_buf(), f);
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> Result<bool> {
        let had = self.files.borrow_mut().remove(path).is_some();
        if had {
            self.call(format!("rm {}", path.display()));
        }
        Ok(had)
    }
    fn remove_dir(&self, path: &Path) -> Result<bool> {
        let had = self.dirs.borrow().contains_key(path);
        self.files.borrow_mut().retain(|p, _| !p.starts_with(path));
        self.dirs.borrow_mut().retain(|p, _| !p.starts_with(path));
        if had {
            self.call(format!("rm -r {}", path.display()));
        }
        Ok(had)
    }
    fn ensure_dir(&self, path: &Path, mode: Option<u32>, gid: Option<u32>) -> Result<()> {
        self.under(path)?;
        self.call(format!("mkdir {}", path.display()));
        let mut dirs = self.dirs.borrow_mut();
        for a in path.ancestors() {
            dirs.entry(a.to_path_buf()).or_insert((0o755, 0));
        }
        if let Some(mode) = mode {
            dirs.insert(path.to_path_buf(), (mode, gid.unwrap_or(0)));
        }
        Ok(())
    }
    fn systemctl(&self, args: &[&str]) -> Result<()> {
        self.call(format!("systemctl {}", args.join(" ")));
        if let [verb, unit] = args {
            let mut units = self.units.borrow_mut();
            let u = units.entry(unit.to_string()).or_default();
            match *verb {
                "start" => {
                    u.active = true;
                    u.starts += 1;
                }
                "restart" => {
                    u.active = true;
                    u.restarts += 1;
                }
                "stop" => u.active = false,
                "enable" => u.enabled = true,
                "disable" => u.enabled = false,
                v => bail!("unexpected systemctl {v}"),
            }
        }
        Ok(())
    }
    fn is_active(&self, unit: &str) -> Result<bool> {
        Ok(self.unit(unit).active)
    }
    fn is_enabled(&self, unit: &str) -> Result<bool> {
        Ok(self.unit(unit).enabled)
    }
    fn user_gid(&self, _name: &str) -> Result<Option<u32>> {
        Ok(self.gid.get())
    }
    fn add_user(&self, name: &str) -> Result<()> {
        self.call(format!("useradd {name}"));
        self.gid.set(Some(997));
        Ok(())
    }
    fn remove_user(&self, name: &str) -> Result<()> {
        self.call(format!("userdel {name}"));
        self.gid.set(None);
        Ok(())
    }
    fn snap_config(&self, _snap: &str) -> Result<Option<SnapConfig>> {
        Ok(self.snap.borrow().clone())
    }
    fn snap_apply(&self, _snap: &str, changes: &BTreeMap<String, Option<String>>) -> Result<()> {
        self.call(format!("snap {changes:?}"));
        let mut snap = self.snap.borrow_mut();
        let c = snap.as_mut().unwrap();
        for (k, v) in changes {
            match v {
                Some(v) => c.insert(k.clone(), json!(v)),
                None => c.remove(k),
            };
        }
        Ok(())
    }
    fn version(&self, binary: &Path) -> Option<String> {
        let c = self.read(binary).ok()??;
        c.starts_with(b"k8s-keystone-auth").then(|| "0.1.0".into())
    }
    fn check_config(&self, binary: &Path, config: &Path) -> Result<()> {
        assert!(self.files.borrow().contains_key(config));
        let c = self.read(binary)?.unwrap_or_default();
        if c.ends_with(b"refuses") {
            bail!("refused by this build");
        }
        Ok(())
    }
    fn download(&self, url: &url::Url, dest: &Path) -> Result<String> {
        let Some(body) = self.downloads.borrow().get(url.as_str()).cloned() else {
            bail!("{url} answered 404 Not Found");
        };
        self.downloaded.set(self.downloaded.get() + 1);
        self.write(dest, &body, Access::Executable, None)?;
        self.sha256(dest)
    }
    fn wait_healthy(&self, url: &str, _ca: &str, _timeout: Duration) -> Result<()> {
        let local = url.starts_with("https://127.0.0.1:");
        let service_up = self.unit(SERVICE_UNIT).active && !self.service_broken.get();
        if self.dead.borrow().contains(url) || (local && !service_up) {
            bail!("connection refused");
        }
        Ok(())
    }
    fn new_ca(&self) -> Result<(String, Secret)> {
        self.issued.set(self.issued.get() + 1);
        let n = self.issued.get();
        Ok((
            format!("CA CERT {n}\n"),
            Secret::new(format!("CA KEY {n}\n")),
        ))
    }
    fn server_cert(&self, ca_key: &Secret, sans: &[String]) -> Result<(String, Secret)> {
        self.issued.set(self.issued.get() + 1);
        let n = self.issued.get();
        Ok((
            format!(
                "SERVER CERT {n} by {} for {sans:?}\n",
                ca_key.expose().trim()
            ),
            Secret::new(format!("SERVER KEY {n}\n")),
        ))
    }
}
