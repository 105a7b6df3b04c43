//! Stand-ins for the commands the kubernetes-keystone charm runs, for tests without a Juju
//! controller, snapd or systemd. The commands on the hook's `PATH` are links to
//! `tests/charm/fake-bin/stand-in`, a small bash script that sends its name, its arguments and
//! a few variables to this server (in the test process, at `FAKE_ADDR`), prints the answer's
//! stdout and stderr and exits with its code: a stand-in call costs a bash start, not an
//! interpreter's. The hook still runs every command as a separate program and sees its real
//! exit code, stdout and stderr.
//!
//!   Juju hook tools (contracts: docs/charm.md and the shared Juju reference, section 1):
//!     config-get, relation-ids, relation-list, status-set, juju-log, application-version-set
//!     - print with --format=json (`null` for an unset key), relation ids are `name:N`,
//!       usage errors exit 2 and runtime errors exit 1, with `ERROR ...` on stderr.
//!   snapd's `snap` (list, get [-d], set, unset): the kube-apiserver snap's configuration.
//!   systemd's `systemctl` (daemon-reload, enable, disable, start, stop, restart, is-active,
//!     is-enabled): `start` of a unit whose file is under $KUBERNETES_KEYSTONE_ROOT really runs
//!     the ExecStart of the unit as loaded by the last daemon-reload (as systemd does), in the
//!     background, with a clean environment; `stop` sends SIGTERM (SIGKILL after 5 s).
//!   getent passwd, useradd, userdel: the system user (getent answers with the caller's uid/gid).
//!
//! State lives in $FAKE_STATE (a directory): juju.json (config, relations), snap.json,
//! systemd.json, users.json; every call is appended to calls.jsonl, statuses to status.jsonl and
//! juju-log messages to juju-log.jsonl, so tests can see what they were asked. The calls of one
//! hook come one after the other and units have their own state directories, so the files need
//! no locking.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{LazyLock, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Map, Value, json};

/// `127.0.0.1:PORT` of the server (started on first use), for `FAKE_ADDR`.
pub static ADDR: LazyLock<String> = LazyLock::new(|| {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || serve(c));
        }
    });
    addr
});

/// The variables the client sends, in this order, after its argument count and name.
const ENV: [&str; 5] = [
    "FAKE_STATE",
    "JUJU_HOOK_NAME",
    "KUBERNETES_KEYSTONE_ROOT",
    "JUJU_RELATION",
    "JUJU_RELATION_ID",
];

/// What a stand-in answers.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

type R = Result<String, Out>;

fn serve(c: TcpStream) {
    let mut r = BufReader::new(&c);
    let mut field = || -> Option<String> {
        let mut b = Vec::new();
        r.read_until(0, &mut b).ok()?;
        (b.pop() == Some(0)).then(|| String::from_utf8_lossy(&b).into_owned())
    };
    let request = (|| {
        let n: usize = field()?.parse().ok()?;
        let tool = field()?;
        let env: HashMap<&str, String> = ENV
            .iter()
            .map(|k| Some((*k, field()?)))
            .collect::<Option<_>>()?;
        let args: Vec<String> = (0..n).map(|_| field()).collect::<Option<_>>()?;
        Some((tool, env, args))
    })();
    let out = match request {
        Some((tool, env, args)) => {
            let ctx = Ctx { tool, env, args };
            match ctx.run() {
                Ok(stdout) => Out {
                    code: 0,
                    stdout,
                    stderr: String::new(),
                },
                Err(out) => out,
            }
        }
        None => Out {
            code: 1,
            stdout: String::new(),
            stderr: "stand-in: malformed request\n".into(),
        },
    };
    let mut w = &c;
    let _ = write!(w, "{}\n{}\n", out.code, out.stderr.len())
        .and_then(|()| w.write_all(out.stderr.as_bytes()))
        .and_then(|()| w.write_all(out.stdout.as_bytes()));
}

fn fail_with(code: i32, stderr: String) -> Out {
    Out {
        code,
        stdout: String::new(),
        stderr,
    }
}

/// Exit 2, `ERROR msg` (juju/cmd usage errors).
fn usage(msg: impl std::fmt::Display) -> Out {
    fail_with(2, format!("ERROR {msg}\n"))
}

/// Exit 1, `ERROR msg` (runtime errors).
fn fail(msg: impl std::fmt::Display) -> Out {
    fail_with(1, format!("ERROR {msg}\n"))
}

/// `["a", "b"]`, as Python's json.dumps prints a list of strings.
fn py_list(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| Value::from(s.as_str()).to_string())
        .collect();
    format!("[{}]", items.join(", "))
}

struct Ctx {
    tool: String,
    env: HashMap<&'static str, String>,
    args: Vec<String>,
}

/// gnuflag-style options: (options, positionals).
struct Parsed {
    opts: HashMap<&'static str, String>,
    pos: Vec<String>,
}

impl Parsed {
    fn get(&self, k: &str) -> Option<&str> {
        self.opts.get(k).map(String::as_str)
    }
    fn flag(&self, k: &str) -> bool {
        self.get(k) == Some("true")
    }
}

fn parse(
    args: &[String],
    flags: &[(&str, &'static str)],
    valued: &[(&str, &'static str)],
) -> Result<Parsed, Out> {
    let mut p = Parsed {
        opts: HashMap::new(),
        pos: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            p.pos.extend(args[i + 1..].iter().cloned());
            break;
        }
        if a.starts_with('-') && a != "-" {
            let stripped = a.trim_start_matches('-');
            let (name, val) = match stripped.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (stripped, None),
            };
            if let Some((_, key)) = valued.iter().find(|(n, _)| *n == name) {
                let v = match val {
                    Some(v) => v.to_string(),
                    None => {
                        i += 1;
                        args.get(i)
                            .cloned()
                            .ok_or_else(|| usage(format!("option needs an argument: {a}")))?
                    }
                };
                p.opts.insert(key, v);
            } else if let Some((_, key)) = flags.iter().find(|(n, _)| *n == name) {
                let on = val.is_none_or(|v| !["false", "False", "0"].contains(&v));
                p.opts.insert(key, on.to_string());
            } else {
                return Err(usage(format!("flag provided but not defined: {a}")));
            }
        } else {
            p.pos.push(a.clone());
        }
        i += 1;
    }
    Ok(p)
}

/// juju/cmd output formatting.
fn output(value: &Value, fmt: &str) -> String {
    match fmt {
        "json" => format!("{value}\n"),
        "yaml" if value.is_null() => String::new(),
        "yaml" => format!("{value}\n"), // JSON is YAML; good enough for a stand-in
        _ => match value {
            Value::Null => String::new(),
            Value::String(s) if s.is_empty() => String::new(),
            Value::Bool(b) => format!("{}\n", if *b { "True" } else { "False" }),
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => format!("{s}\n"),
                    other => format!("{other}\n"),
                })
                .collect(),
            Value::String(s) => format!("{s}\n"),
            other => format!("{other}\n"),
        },
    }
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.split_once(") ").and_then(|(_, rest)| rest.chars().next()))
        .is_some_and(|state| !"ZX".contains(state))
}

/// The services this process started, by pid: a message when each has been reaped.
static EXITS: LazyLock<Mutex<HashMap<u64, mpsc::Receiver<()>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Words of an `ExecStart=` line: whitespace-separated, with double or single quotes.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

impl Ctx {
    fn var(&self, k: &str) -> &str {
        self.env.get(k).map(String::as_str).unwrap_or("")
    }

    fn path(&self, name: &str) -> PathBuf {
        Path::new(self.var("FAKE_STATE")).join(name)
    }

    fn load(&self, name: &str, default: Value) -> Value {
        match std::fs::read_to_string(self.path(name)) {
            Ok(t) => serde_json::from_str(&t).unwrap(),
            Err(_) => default,
        }
    }

    fn save(&self, name: &str, v: &Value) {
        let tmp = self.path(&format!("{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(v).unwrap()).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
    }

    fn append(&self, name: &str, v: Value) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(name))
            .unwrap();
        writeln!(f, "{v}").unwrap();
    }

    fn hook(&self) -> &str {
        self.var("JUJU_HOOK_NAME")
    }

    fn run(&self) -> R {
        let state = self.var("FAKE_STATE");
        if state.is_empty() || !Path::new(state).is_dir() {
            return Err(fail_with(
                1,
                format!("{} (stand-in): FAKE_STATE is not a directory\n", self.tool),
            ));
        }
        self.append(
            "calls.jsonl",
            json!({"hook": self.hook(), "tool": self.tool, "args": self.args}),
        );
        match self.tool.as_str() {
            "config-get" => self.config_get(),
            "relation-ids" => self.relation_ids(),
            "relation-list" => self.relation_list(),
            "status-set" => self.status_set(),
            "juju-log" => self.juju_log(),
            "application-version-set" => self.application_version_set(),
            "snap" => self.snap(),
            "systemctl" => self.systemctl(),
            "getent" => self.getent(),
            "useradd" => self.useradd(),
            "userdel" => self.userdel(),
            t => Err(fail_with(1, format!("stand-in: unknown tool {t}\n"))),
        }
    }

    // ------------------------------------------------------------ hook tools
    fn config_get(&self) -> R {
        let p = parse(
            &self.args,
            &[("a", "all"), ("all", "all")],
            &[("format", "format"), ("o", "output"), ("output", "output")],
        )?;
        let fmt = p.get("format").unwrap_or("smart");
        if !["smart", "json", "yaml"].contains(&fmt) {
            return Err(usage(format!(
                "invalid value \"{fmt}\" for option --format: unknown format \"{fmt}\""
            )));
        }
        if p.pos.len() > 1 {
            return Err(usage(format!(
                "unrecognized args: {}",
                py_list(&p.pos[1..])
            )));
        }
        let juju = self.load("juju.json", json!({}));
        if let Some(raw) = juju.get("config_raw") {
            // tests: a config-get that prints something broken
            return Ok(raw.as_str().unwrap_or_default().to_string());
        }
        let config = juju.get("config").cloned().unwrap_or(json!({}));
        if let Some(key) = p.pos.first() {
            if p.flag("all") {
                return Err(usage(format!(
                    "cannot use argument --all together with key \"{key}\""
                )));
            }
            Ok(output(config.get(key).unwrap_or(&Value::Null), fmt))
        } else if p.flag("all") {
            Ok(output(&config, fmt))
        } else {
            let set: Map<String, Value> = config
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Ok(output(&Value::Object(set), fmt))
        }
    }

    fn relation_ids(&self) -> R {
        let p = parse(&self.args, &[], &[("format", "format")])?;
        if p.pos.len() > 1 {
            return Err(usage(format!(
                "unrecognized args: {}",
                py_list(&p.pos[1..])
            )));
        }
        let name = p
            .pos
            .first()
            .cloned()
            .unwrap_or_else(|| self.var("JUJU_RELATION").to_string());
        if name.is_empty() {
            return Err(usage("no relation name specified"));
        }
        let juju = self.load("juju.json", json!({}));
        let mut ids: Vec<String> = juju["relations"][&name]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(n, _)| format!("{name}:{n}"))
            .collect();
        ids.sort();
        Ok(output(&json!(ids), p.get("format").unwrap_or("smart")))
    }

    fn relation_list(&self) -> R {
        let p = parse(
            &self.args,
            &[("app", "app")],
            &[("format", "format"), ("r", "r"), ("relation", "r")],
        )?;
        if !p.pos.is_empty() {
            return Err(usage(format!("unrecognized args: {}", py_list(&p.pos))));
        }
        let raw = p
            .get("r")
            .filter(|r| !r.is_empty())
            .unwrap_or(self.var("JUJU_RELATION_ID"))
            .to_string();
        if raw.is_empty() {
            return Err(usage("no relation id specified"));
        }
        let juju = self.load("juju.json", json!({}));
        let digits = raw.rsplit(':').next().unwrap_or_default();
        let units = juju["relations"]
            .as_object()
            .into_iter()
            .flatten()
            .find_map(|(_, rels)| rels.get(digits))
            .cloned()
            .ok_or_else(|| {
                usage(format!(
                    "invalid value \"{raw}\" for option -r: relation not found"
                ))
            })?;
        let fmt = p.get("format").unwrap_or("smart");
        if p.flag("app") {
            let app = units[0]
                .as_str()
                .and_then(|u| u.split('/').next())
                .unwrap_or("");
            Ok(output(&json!(app), fmt))
        } else {
            Ok(output(&units, fmt))
        }
    }

    fn status_set(&self) -> R {
        let p = parse(
            &self.args,
            &[("application", "application"), ("service", "application")],
            &[],
        )?;
        let Some(status) = p.pos.first() else {
            return Err(usage("invalid args, require <status> [message] [data]"));
        };
        if !["maintenance", "blocked", "waiting", "active"].contains(&status.as_str()) {
            return Err(usage(format!(
                "invalid status \"{status}\", expected one of [maintenance blocked waiting active]"
            )));
        }
        if p.pos.len() > 2 {
            return Err(usage(format!(
                "unrecognized args: {}",
                py_list(&p.pos[2..])
            )));
        }
        self.append(
            "status.jsonl",
            json!({"hook": self.hook(), "status": status,
                   "message": p.pos.get(1).cloned().unwrap_or_default()}),
        );
        Ok(String::new())
    }

    fn juju_log(&self) -> R {
        let p = parse(
            &self.args,
            &[("debug", "debug")],
            &[("l", "level"), ("log-level", "level"), ("format", "format")],
        )?;
        if p.pos.is_empty() {
            return Err(usage("no message specified"));
        }
        if self.load("juju.json", json!({}))["juju_log_fails"] == json!(true) {
            // tests: the agent cannot be reached
            return Err(fail("cannot connect to the unit agent"));
        }
        let mut level = if p.flag("debug") {
            "DEBUG".to_string()
        } else {
            p.get("level").unwrap_or("INFO").to_uppercase()
        };
        if !["TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].contains(&level.as_str()) {
            level = "INFO".into();
        }
        self.append(
            "juju-log.jsonl",
            json!({"hook": self.hook(), "level": level, "message": p.pos.join(" ")}),
        );
        Ok(String::new())
    }

    fn application_version_set(&self) -> R {
        let p = parse(&self.args, &[], &[])?;
        match p.pos.as_slice() {
            [] => Err(usage("no version specified")),
            [v] => {
                let mut juju = self.load("juju.json", json!({}));
                juju["version"] = json!(v);
                self.save("juju.json", &juju);
                Ok(String::new())
            }
            more => Err(usage(format!("unrecognized args: {}", py_list(&more[1..])))),
        }
    }

    // ------------------------------------------------------------ snap
    fn snap(&self) -> R {
        let snap_err = |msg: String| fail_with(1, format!("error: {msg}\n"));
        let Some((cmd, rest)) = self.args.split_first() else {
            return Err(snap_err("missing command".into()));
        };
        let mut state = self.load("snap.json", json!({}));
        if state.get("installed").is_none() {
            state["installed"] = json!({});
        }
        let flags: Vec<&String> = rest.iter().filter(|a| a.starts_with('-')).collect();
        let pos: Vec<&String> = rest.iter().filter(|a| !a.starts_with('-')).collect();
        let snaps = state["installed"].as_object().cloned().unwrap_or_default();
        if cmd == "list" {
            if snaps.is_empty() || pos.iter().any(|p| !snaps.contains_key(p.as_str())) {
                return Err(snap_err("no matching snaps installed".into()));
            }
            let mut out = String::from("Name  Version  Rev  Tracking  Publisher  Notes\n");
            let names: Vec<&String> = if pos.is_empty() {
                snaps.keys().collect()
            } else {
                pos.clone()
            };
            for p in names {
                out.push_str(&format!("{p}  1.31.0  1234  1.31/stable  canonical**  -\n"));
            }
            return Ok(out);
        }
        let Some((name, keys)) = pos.split_first() else {
            return Err(snap_err(
                "the required argument `<snap>` was not provided".into(),
            ));
        };
        let name = name.as_str();
        if !snaps.contains_key(name) {
            return Err(snap_err(format!("snap \"{name}\" not found")));
        }
        let mut conf = snaps[name]
            .get("config")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let d = flags.iter().any(|f| f.as_str() == "-d");
        match cmd.as_str() {
            "get" => {
                if keys.is_empty() {
                    if conf.is_empty() {
                        return Err(snap_err(format!("snap \"{name}\" has no configuration")));
                    }
                    if !d {
                        return Err(snap_err(
                            "only -d is supported by this stand-in without keys".into(),
                        ));
                    }
                    return Ok(format!(
                        "{}\n",
                        serde_json::to_string_pretty(&Value::Object(conf)).unwrap()
                    ));
                }
                for k in keys {
                    if !conf.contains_key(k.as_str()) {
                        return Err(snap_err(format!(
                            "snap \"{name}\" has no \"{k}\" configuration option"
                        )));
                    }
                }
                if keys.len() == 1 && !d {
                    return Ok(match &conf[keys[0].as_str()] {
                        Value::String(s) => format!("{s}\n"),
                        v => format!("{v}\n"),
                    });
                }
                let picked: Map<String, Value> = keys
                    .iter()
                    .map(|k| (k.to_string(), conf[k.as_str()].clone()))
                    .collect();
                Ok(format!(
                    "{}\n",
                    serde_json::to_string_pretty(&Value::Object(picked)).unwrap()
                ))
            }
            "set" | "unset" => {
                if keys.is_empty() {
                    return Err(snap_err(
                        "the required argument `<conf value>` was not provided".into(),
                    ));
                }
                for kv in keys {
                    if cmd == "unset" {
                        conf.remove(kv.as_str());
                        continue;
                    }
                    match kv.split_once('=') {
                        None if kv.ends_with('!') => {
                            conf.remove(kv.trim_end_matches('!'));
                        }
                        None => {
                            return Err(snap_err(format!(
                                "invalid configuration: \"{kv}\" (want key=value)"
                            )));
                        }
                        Some((k, v)) => {
                            // snapd stores values that parse as JSON as JSON
                            let value = serde_json::from_str(v).unwrap_or_else(|_| json!(v));
                            conf.insert(k.to_string(), value);
                        }
                    }
                }
                state["installed"][name]["config"] = Value::Object(conf);
                self.save("snap.json", &state);
                Ok(String::new())
            }
            other => Err(snap_err(format!(
                "unknown command \"{other}\", see 'snap help'."
            ))),
        }
    }

    // ------------------------------------------------------------ systemctl
    fn unit_path(&self, unit: &str) -> PathBuf {
        let root = match self.var("KUBERNETES_KEYSTONE_ROOT") {
            "" => "/",
            r => r,
        };
        Path::new(root).join("etc/systemd/system").join(unit)
    }

    fn systemctl(&self) -> R {
        let mut sd = self.load("systemd.json", json!({}));
        if sd.get("units").is_none() {
            sd["units"] = json!({});
        }
        let flags: Vec<&str> = self
            .args
            .iter()
            .filter(|a| a.starts_with('-'))
            .map(String::as_str)
            .collect();
        let pos: Vec<&str> = self
            .args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .map(String::as_str)
            .collect();
        let Some((cmd, names)) = pos.split_first() else {
            return Err(fail_with(1, "systemctl: missing command\n".into()));
        };
        let cmd = *cmd;
        if cmd == "daemon-reload" {
            let units = sd["units"].as_object_mut().unwrap();
            for (name, u) in units.iter_mut() {
                if u["file"] == json!(true) {
                    u["loaded"] = std::fs::read_to_string(self.unit_path(name))
                        .map(Value::from)
                        .unwrap_or(Value::Null);
                }
            }
            // unit files that appeared since the last reload
            let dir = self.unit_path("x");
            if let Some(Ok(entries)) = dir.parent().map(std::fs::read_dir) {
                for e in entries.flatten() {
                    let f = e.file_name().to_string_lossy().into_owned();
                    if f.ends_with(".service") && !units.contains_key(&f) {
                        let loaded = std::fs::read_to_string(e.path()).unwrap_or_default();
                        units.insert(f, json!({"file": true, "loaded": loaded}));
                    }
                }
            }
            let n = sd["daemon_reloads"].as_u64().unwrap_or(0);
            sd["daemon_reloads"] = json!(n + 1);
            self.save("systemd.json", &sd);
            return Ok(String::new());
        }
        let Some(first) = names.first() else {
            return Err(fail_with(1, "Too few arguments.\n".into()));
        };
        let name = if first.ends_with(".service") || first.contains('.') {
            first.to_string()
        } else {
            format!("{first}.service")
        };
        let units = &sd["units"];
        let key = if units.get(&name).is_some() {
            name.clone()
        } else {
            first.to_string()
        };
        // An empty unit counts as none, as in Python.
        let mut u = units
            .get(&name)
            .or_else(|| units.get(*first))
            .filter(|u| u.as_object().is_some_and(|o| !o.is_empty()))
            .cloned();
        let quiet = flags.contains(&"--quiet") || flags.contains(&"-q");
        let answer = |yes: bool, word: (&str, &str), no_code: i32| {
            let stdout = if quiet {
                String::new()
            } else {
                format!("{}\n", if yes { word.0 } else { word.1 })
            };
            if yes {
                Ok(stdout)
            } else {
                Err(Out {
                    code: no_code,
                    stdout,
                    stderr: String::new(),
                })
            }
        };
        if cmd == "is-active" {
            let active = u.as_ref().is_some_and(|u| match u["pid"].as_u64() {
                Some(pid) if pid != 0 => alive(pid),
                _ => u["active"] == json!(true),
            });
            return answer(active, ("active", "inactive"), 3);
        }
        if cmd == "is-enabled" {
            let enabled = u.as_ref().is_some_and(|u| u["enabled"] == json!(true));
            return answer(enabled, ("enabled", "disabled"), 1);
        }
        let Some(unit) = u
            .as_mut()
            .filter(|u| !(u["file"] == json!(true) && u["loaded"].is_null()))
        else {
            return Err(fail_with(
                5,
                format!("Failed to {cmd} {name}: Unit {name} not found.\n"),
            ));
        };
        match cmd {
            "enable" | "disable" => {
                unit["enabled"] = json!(cmd == "enable");
                if flags.contains(&"--now") {
                    if cmd == "disable" {
                        self.stop_unit(unit);
                    } else {
                        self.start_unit(&name, unit);
                    }
                }
            }
            "start" => {
                let running = unit["pid"].as_u64().is_some_and(alive);
                if !running {
                    self.start_unit(&name, unit);
                }
            }
            "stop" => self.stop_unit(unit),
            "restart" => {
                self.stop_unit(unit);
                self.start_unit(&name, unit);
                let n = unit["restarts"].as_u64().unwrap_or(0);
                unit["restarts"] = json!(n + 1);
            }
            other => return Err(fail_with(1, format!("Unknown command verb {other}.\n"))),
        }
        sd["units"][key] = u.unwrap_or(Value::Null);
        self.save("systemd.json", &sd);
        Ok(String::new())
    }

    fn start_unit(&self, name: &str, u: &mut Value) {
        let n = u["starts"].as_u64().unwrap_or(0);
        u["starts"] = json!(n + 1);
        if u["file"] != json!(true) {
            u["active"] = json!(true); // a unit of another package (snap.kube-apiserver.daemon)
            return;
        }
        let exec_start = u["loaded"]
            .as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap()
            .to_string();
        let words = split_words(&exec_start);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&format!("{name}.log")))
            .unwrap();
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(&words[0])
            .args(&words[1..])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = u64::from(child.id());
        // Reaped as soon as it exits, so a stopped service leaves no zombie behind.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = child.wait();
            let _ = tx.send(());
        });
        EXITS.lock().unwrap().insert(pid, rx);
        u["pid"] = json!(pid);
        u["exec_start"] = json!(exec_start);
    }

    fn stop_unit(&self, u: &mut Value) {
        let pid = u.as_object_mut().and_then(|o| o.remove("pid"));
        u["active"] = json!(false);
        let Some(pid) = pid.and_then(|p| p.as_u64()) else {
            return;
        };
        if !alive(pid) {
            return;
        }
        let signal = |s| {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), s);
        };
        signal(nix::sys::signal::Signal::SIGTERM);
        let exited = EXITS.lock().unwrap().remove(&pid);
        match exited {
            Some(rx) => {
                if rx.recv_timeout(Duration::from_secs(5)).is_err() {
                    signal(nix::sys::signal::Signal::SIGKILL);
                    let _ = rx.recv_timeout(Duration::from_secs(5));
                }
            }
            // Not started by this process (cannot happen in these tests): no way to wait.
            None => signal(nix::sys::signal::Signal::SIGKILL),
        }
    }

    // ------------------------------------------------------------ users
    fn getent(&self) -> R {
        let [db, name] = self.args.as_slice() else {
            return Err(fail_with(
                1,
                "stand-in getent: only `getent passwd NAME`\n".into(),
            ));
        };
        if db != "passwd" {
            return Err(fail_with(
                1,
                "stand-in getent: only `getent passwd NAME`\n".into(),
            ));
        }
        let users = self.load("users.json", json!([]));
        if !users.as_array().unwrap().contains(&json!(name)) {
            return Err(fail_with(2, String::new()));
        }
        Ok(format!(
            "{name}:x:{}:{}::/nonexistent:/usr/sbin/nologin\n",
            nix::unistd::getuid(),
            nix::unistd::getgid()
        ))
    }

    fn useradd(&self) -> R {
        let mut users = self.load("users.json", json!([]));
        let name = self.args.last().cloned().unwrap_or_default();
        let list = users.as_array_mut().unwrap();
        if list.contains(&json!(name)) {
            return Err(fail_with(
                9,
                format!("useradd: user '{name}' already exists\n"),
            ));
        }
        list.push(json!(name));
        self.save("users.json", &users);
        Ok(String::new())
    }

    fn userdel(&self) -> R {
        let mut users = self.load("users.json", json!([]));
        let name = self.args.last().cloned().unwrap_or_default();
        let list = users.as_array_mut().unwrap();
        let Some(i) = list.iter().position(|u| u == &json!(name)) else {
            return Err(fail_with(
                6,
                format!("userdel: user '{name}' does not exist\n"),
            ));
        };
        list.remove(i);
        self.save("users.json", &users);
        Ok(String::new())
    }
}

/// The stand-ins as the hook sees them: separate programs with the documented outputs and
/// exit codes.
#[test]
fn charm_stand_ins_keep_the_tools_contracts() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        state.path().join("juju.json"),
        r#"{"config": {"port": 8443, "policy": null},
            "relations": {"kubernetes-master": {"3": ["kubernetes-master/0"]}}}"#,
    )
    .unwrap();
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/charm/fake-bin");
    let run = |tool: &str, args: &[&str]| {
        let out = Command::new(bin.join(tool))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("FAKE_ADDR", ADDR.as_str())
            .env("FAKE_STATE", state.path())
            .env("JUJU_HOOK_NAME", "install")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let ok = |s: &str| (0, s.to_string(), String::new());
    assert_eq!(
        run("config-get", &["--format=json", "policy"]),
        ok("null\n")
    );
    assert_eq!(run("config-get", &["port"]), ok("8443\n"));
    assert_eq!(
        run("config-get", &["--all", "--format", "json"]),
        ok("{\"policy\":null,\"port\":8443}\n")
    );
    assert_eq!(
        run("config-get", &["--bogus"]),
        (
            2,
            String::new(),
            "ERROR flag provided but not defined: --bogus\n".into()
        )
    );
    assert_eq!(
        run("relation-ids", &["--format=json", "kubernetes-master"]),
        ok("[\"kubernetes-master:3\"]\n")
    );
    // stderr of any length and bytes, stdout and the code all come through.
    assert_eq!(
        run("status-set", &["--", "grün", "x"]),
        (
            2,
            String::new(),
            "ERROR invalid status \"grün\", expected one of [maintenance blocked waiting active]\n"
                .into()
        )
    );
    assert_eq!(run("status-set", &["--", "active", "a\nb c"]), ok(""));
    assert_eq!(
        std::fs::read_to_string(state.path().join("status.jsonl")).unwrap(),
        "{\"hook\":\"install\",\"message\":\"a\\nb c\",\"status\":\"active\"}\n"
    );
    assert_eq!(
        run("snap", &["get", "-d", "kube-apiserver"]),
        (
            1,
            String::new(),
            "error: snap \"kube-apiserver\" not found\n".into()
        )
    );
    assert_eq!(
        run("systemctl", &["is-active", "k8s-keystone-auth"]),
        (3, "inactive\n".into(), String::new())
    );
    assert_eq!(run("getent", &["passwd", "k8s-keystone-auth"]).0, 2);
    assert_eq!(run("useradd", &["--system", "k8s-keystone-auth"]), ok(""));
    assert!(
        run("getent", &["passwd", "k8s-keystone-auth"])
            .1
            .starts_with("k8s-keystone-auth:x:")
    );
    // Every call was recorded, with its arguments as given.
    let calls = std::fs::read_to_string(state.path().join("calls.jsonl")).unwrap();
    assert_eq!(calls.lines().count(), 12);
    assert!(
        calls.contains(r#""args":["--","active","a\nb c"]"#),
        "{calls}"
    );
    // Without the server: a clear failure.
    let out = Command::new(bin.join("juju-log"))
        .arg("x")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("FAKE_ADDR", "127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the stand-in server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
