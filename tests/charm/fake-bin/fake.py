#!/usr/bin/env python3
"""Stand-ins for the commands the kubernetes-keystone charm runs, for tests without a Juju
controller, snapd or systemd. One script, run under the name of the command it stands for
(the files next to it are links to it):

  Juju hook tools (contracts: ../../../docs/charm.md and the shared Juju reference, section 1):
    config-get, relation-ids, relation-list, status-set, juju-log, application-version-set
    - print with --format=json (`null` for an unset key), relation ids are `name:N`,
      usage errors exit 2 and runtime errors exit 1, with `ERROR ...` on stderr.
  snapd's `snap` (list, get [-d], set, unset): the kube-apiserver snap's configuration.
  systemd's `systemctl` (daemon-reload, enable, disable, start, stop, restart, is-active,
    is-enabled): `start` of a unit whose file is under $KUBERNETES_KEYSTONE_ROOT really runs
    the ExecStart of the unit as loaded by the last daemon-reload (as systemd does), in the
    background, with a clean environment; `stop` sends SIGTERM.
  getent passwd, useradd, userdel: the system user (getent answers with the caller's uid/gid).

State lives in $FAKE_STATE (a directory): juju.json (config, relations), snap.json,
systemd.json, users.json; every call is appended to calls.jsonl, statuses to status.jsonl and
juju-log messages to juju-log.jsonl, so tests can see what they were asked.
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import time

STATE = os.environ.get("FAKE_STATE", "")
TOOL = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]


def path(name):
    return os.path.join(STATE, name)


def load(name, default):
    try:
        with open(path(name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def save(name, value):
    tmp = path(name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, path(name))


def append(name, value):
    with open(path(name), "a") as f:
        f.write(json.dumps(value) + "\n")


def usage(msg):
    sys.stderr.write(f"ERROR {msg}\n")
    sys.exit(2)


def fail(msg):
    sys.stderr.write(f"ERROR {msg}\n")
    sys.exit(1)


def hook():
    return os.environ.get("JUJU_HOOK_NAME", "")


def output(value, fmt):
    """juju/cmd output formatting."""
    if fmt == "json":
        print(json.dumps(value))
    elif fmt == "yaml":
        if value is not None:
            print(json.dumps(value))  # JSON is YAML; good enough for a stand-in
    else:  # smart
        if value is None or value == "":
            return
        if isinstance(value, bool):
            print("True" if value else "False")
        elif isinstance(value, list):
            for v in value:
                print(v)
        elif isinstance(value, str):
            print(value)
        else:
            print(json.dumps(value))


def parse(args, flags, valued):
    """Parses gnuflag-style options: returns (options, positionals)."""
    opts, pos, i = {}, [], 0
    while i < len(args):
        a = args[i]
        if a == "--":
            pos.extend(args[i + 1:])
            break
        if a.startswith("-") and a != "-":
            name, eq, val = a.lstrip("-").partition("=")
            if name in valued:
                if not eq:
                    i += 1
                    if i >= len(args):
                        usage(f"option needs an argument: {a}")
                    val = args[i]
                opts[valued[name]] = val
            elif name in flags and not eq:
                opts[flags[name]] = True
            elif name in flags and eq:
                opts[flags[name]] = val not in ("false", "False", "0")
            else:
                usage(f"flag provided but not defined: {a}")
        else:
            pos.append(a)
        i += 1
    return opts, pos


def relation_id(juju, raw):
    digits = raw.rsplit(":", 1)[-1]
    for endpoint, rels in juju.get("relations", {}).items():
        if digits in rels:
            return endpoint, digits
    usage(f'invalid value "{raw}" for option -r: relation not found')


# ---------------------------------------------------------------- hook tools
def config_get():
    opts, pos = parse(ARGS, {"a": "all", "all": "all"}, {"format": "format", "o": "output", "output": "output"})
    fmt = opts.get("format", "smart")
    if fmt not in ("smart", "json", "yaml"):
        usage(f'invalid value "{fmt}" for option --format: unknown format "{fmt}"')
    if len(pos) > 1:
        usage(f"unrecognized args: {json.dumps(pos[1:])}")
    juju = load("juju.json", {})
    if "config_raw" in juju:  # tests: a config-get that prints something broken
        sys.stdout.write(juju["config_raw"])
        return
    config = juju.get("config", {})
    if pos:
        if opts.get("all"):
            usage(f'cannot use argument --all together with key "{pos[0]}"')
        output(config.get(pos[0]), fmt)
    elif opts.get("all"):
        output(config, fmt)
    else:
        output({k: v for k, v in config.items() if v is not None}, fmt)


def relation_ids():
    opts, pos = parse(ARGS, {}, {"format": "format"})
    if len(pos) > 1:
        usage(f"unrecognized args: {json.dumps(pos[1:])}")
    name = pos[0] if pos else os.environ.get("JUJU_RELATION", "")
    if not name:
        usage("no relation name specified")
    rels = load("juju.json", {}).get("relations", {}).get(name, {})
    output(sorted(f"{name}:{n}" for n in rels), opts.get("format", "smart"))


def relation_list():
    opts, pos = parse(ARGS, {"app": "app"}, {"format": "format", "r": "r", "relation": "r"})
    if pos:
        usage(f"unrecognized args: {json.dumps(pos)}")
    raw = opts.get("r") or os.environ.get("JUJU_RELATION_ID", "")
    if not raw:
        usage("no relation id specified")
    juju = load("juju.json", {})
    endpoint, n = relation_id(juju, raw)
    units = juju["relations"][endpoint][n]
    if opts.get("app"):
        output(units[0].split("/")[0] if units else "", opts.get("format", "smart"))
    else:
        output(units, opts.get("format", "smart"))


def status_set():
    opts, pos = parse(ARGS, {"application": "application", "service": "application"}, {})
    if not pos:
        usage("invalid args, require <status> [message] [data]")
    if pos[0] not in ("maintenance", "blocked", "waiting", "active"):
        usage(f'invalid status "{pos[0]}", expected one of [maintenance blocked waiting active]')
    if len(pos) > 2:
        usage(f"unrecognized args: {json.dumps(pos[2:])}")
    append("status.jsonl", {"hook": hook(), "status": pos[0], "message": pos[1] if len(pos) > 1 else ""})


def juju_log():
    opts, pos = parse(ARGS, {"debug": "debug"}, {"l": "level", "log-level": "level", "format": "format"})
    if not pos:
        usage("no message specified")
    if load("juju.json", {}).get("juju_log_fails"):  # tests: the agent cannot be reached
        fail("cannot connect to the unit agent")
    level = "DEBUG" if opts.get("debug") else opts.get("level", "INFO").upper()
    if level not in ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        level = "INFO"
    append("juju-log.jsonl", {"hook": hook(), "level": level, "message": " ".join(pos)})


def application_version_set():
    _, pos = parse(ARGS, {}, {})
    if not pos:
        usage("no version specified")
    if len(pos) > 1:
        usage(f"unrecognized args: {json.dumps(pos[1:])}")
    juju = load("juju.json", {})
    juju["version"] = pos[0]
    save("juju.json", juju)


# ---------------------------------------------------------------- snap
def snap_err(msg):
    sys.stderr.write(f"error: {msg}\n")
    sys.exit(1)


def snap():
    if not ARGS:
        snap_err("missing command")
    cmd, rest = ARGS[0], ARGS[1:]
    state = load("snap.json", {})
    snaps = state.setdefault("installed", {})
    flags = [a for a in rest if a.startswith("-")]
    pos = [a for a in rest if not a.startswith("-")]
    if cmd == "list":
        missing = [p for p in pos if p not in snaps]
        if missing or not snaps:
            snap_err("no matching snaps installed")
        print("Name  Version  Rev  Tracking  Publisher  Notes")
        for p in pos or sorted(snaps):
            print(f"{p}  1.31.0  1234  1.31/stable  canonical**  -")
        return
    if not pos:
        snap_err("the required argument `<snap>` was not provided")
    name, keys = pos[0], pos[1:]
    if name not in snaps:
        snap_err(f'snap "{name}" not found')
    conf = snaps[name].setdefault("config", {})
    if cmd == "get":
        if not keys:
            if not conf:
                snap_err(f'snap "{name}" has no configuration')
            if "-d" not in flags:
                snap_err("only -d is supported by this stand-in without keys")
            print(json.dumps(conf, indent="\t", sort_keys=True))
            return
        for k in keys:
            if k not in conf:
                snap_err(f'snap "{name}" has no "{k}" configuration option')
        if len(keys) == 1 and "-d" not in flags:
            v = conf[keys[0]]
            print(v if isinstance(v, str) else json.dumps(v))
        else:
            print(json.dumps({k: conf[k] for k in keys}, indent="\t", sort_keys=True))
        return
    if cmd in ("set", "unset"):
        if not keys:
            snap_err("the required argument `<conf value>` was not provided")
        for kv in keys:
            if cmd == "unset":
                conf.pop(kv, None)
                continue
            k, eq, v = kv.partition("=")
            if k.endswith("!") and not eq:
                conf.pop(k[:-1], None)
                continue
            if not eq:
                snap_err(f'invalid configuration: "{kv}" (want key=value)')
            try:  # snapd stores values that parse as JSON as JSON
                conf[k] = json.loads(v)
            except ValueError:
                conf[k] = v
        save("snap.json", state)
        return
    snap_err(f'unknown command "{cmd}", see \'snap help\'.')


# ---------------------------------------------------------------- systemctl
def unit_path(unit):
    root = os.environ.get("KUBERNETES_KEYSTONE_ROOT", "/")
    return os.path.join(root, "etc/systemd/system", unit)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] not in "ZX"
    except (FileNotFoundError, IndexError):
        return False


def systemctl():
    sd = load("systemd.json", {})
    units = sd.setdefault("units", {})
    flags = [a for a in ARGS if a.startswith("-")]
    pos = [a for a in ARGS if not a.startswith("-")]
    if not pos:
        sys.stderr.write("systemctl: missing command\n")
        sys.exit(1)
    cmd, names = pos[0], pos[1:]
    if cmd == "daemon-reload":
        for name, u in units.items():
            if u.get("file"):
                try:
                    u["loaded"] = open(unit_path(name)).read()
                except FileNotFoundError:
                    u["loaded"] = None
        # unit files that appeared since the last reload
        root_dir = os.path.dirname(unit_path("x"))
        if os.path.isdir(root_dir):
            for f in os.listdir(root_dir):
                if f.endswith(".service") and f not in units:
                    units[f] = {"file": True, "loaded": open(os.path.join(root_dir, f)).read()}
        sd["daemon_reloads"] = sd.get("daemon_reloads", 0) + 1
        save("systemd.json", sd)
        return
    if not names:
        sys.stderr.write(f"Too few arguments.\n")
        sys.exit(1)
    name = names[0] if names[0].endswith(".service") or "." in names[0] else names[0] + ".service"
    u = units.get(name) or units.get(names[0])
    key = name if name in units else names[0]
    quiet = "--quiet" in flags or "-q" in flags
    if cmd == "is-active":
        active = bool(u) and (alive(u["pid"]) if u.get("pid") else u.get("active", False))
        if not quiet:
            print("active" if active else "inactive")
        sys.exit(0 if active else 3)
    if cmd == "is-enabled":
        enabled = bool(u) and u.get("enabled", False)
        if not quiet:
            print("enabled" if enabled else "disabled")
        sys.exit(0 if enabled else 1)
    if u is None or (u.get("file") and u.get("loaded") is None):
        sys.stderr.write(f"Failed to {cmd} {name}: Unit {name} not found.\n")
        sys.exit(5)
    if cmd in ("enable", "disable"):
        u["enabled"] = cmd == "enable"
        if "--now" in flags:
            stop_unit(u) if cmd == "disable" else start_unit(name, u)
    elif cmd == "start":
        if not (u.get("pid") and alive(u["pid"])):
            start_unit(name, u)
    elif cmd == "stop":
        stop_unit(u)
    elif cmd == "restart":
        stop_unit(u)
        start_unit(name, u)
        u["restarts"] = u.get("restarts", 0) + 1
    else:
        sys.stderr.write(f"Unknown command verb {cmd}.\n")
        sys.exit(1)
    units[key] = u
    save("systemd.json", sd)


def start_unit(name, u):
    u["starts"] = u.get("starts", 0) + 1
    if not u.get("file"):
        u["active"] = True  # a unit of another package (snap.kube-apiserver.daemon)
        return
    exec_start = next(l.split("=", 1)[1] for l in u["loaded"].splitlines() if l.startswith("ExecStart="))
    log = open(path(name + ".log"), "ab")
    p = subprocess.Popen(shlex.split(exec_start), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         env={"PATH": "/usr/bin:/bin"}, start_new_session=True)
    u["pid"] = p.pid
    u["exec_start"] = exec_start


def stop_unit(u):
    pid = u.pop("pid", None)
    u["active"] = False
    if pid and alive(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not alive(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- users
def getent():
    if len(ARGS) != 2 or ARGS[0] != "passwd":
        sys.stderr.write("stand-in getent: only `getent passwd NAME`\n")
        sys.exit(1)
    users = load("users.json", [])
    if ARGS[1] not in users:
        sys.exit(2)
    print(f"{ARGS[1]}:x:{os.getuid()}:{os.getgid()}::/nonexistent:/usr/sbin/nologin")


def useradd():
    users = load("users.json", [])
    name = ARGS[-1]
    if name in users:
        sys.stderr.write(f"useradd: user '{name}' already exists\n")
        sys.exit(9)
    users.append(name)
    save("users.json", users)


def userdel():
    users = load("users.json", [])
    name = ARGS[-1]
    if name not in users:
        sys.stderr.write(f"userdel: user '{name}' does not exist\n")
        sys.exit(6)
    users.remove(name)
    save("users.json", users)


TOOLS = {
    "config-get": config_get, "relation-ids": relation_ids, "relation-list": relation_list,
    "status-set": status_set, "juju-log": juju_log, "application-version-set": application_version_set,
    "snap": snap, "systemctl": systemctl, "getent": getent, "useradd": useradd, "userdel": userdel,
}

if __name__ == "__main__":
    if not STATE or not os.path.isdir(STATE):
        sys.stderr.write(f"{TOOL} (stand-in): FAKE_STATE is not a directory\n")
        sys.exit(1)
    append("calls.jsonl", {"hook": hook(), "tool": TOOL, "args": ARGS})
    if TOOL not in TOOLS:
        sys.stderr.write(f"fake.py: unknown tool {TOOL}\n")
        sys.exit(1)
    TOOLS[TOOL]()
