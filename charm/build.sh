#!/usr/bin/env bash
# Builds the kubernetes-keystone charm archive (a .charm is a zip), as `charmcraft pack` with
# charmcraft.yaml would, without charmcraft: dispatch, hooks/* (links to dispatch),
# bin/kubernetes-keystone-hook, bin/k8s-keystone-auth (release builds), metadata.yaml,
# config.yaml, README.md (docs/charm.md), manifest.yaml.
#
#   charm/build.sh [OUTPUT]        # default: ./kubernetes-keystone.charm
#
# HOOK_BIN and SERVICE_BIN name prebuilt binaries instead of `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-kubernetes-keystone.charm}
if [ -z "${HOOK_BIN:-}" ] || [ -z "${SERVICE_BIN:-}" ]; then
  cargo build --release --locked -p kk-charm --bin kubernetes-keystone-hook -p kk-webhook --bin k8s-keystone-auth >&2
fi
HOOK_BIN=${HOOK_BIN:-target/release/kubernetes-keystone-hook}
SERVICE_BIN=${SERVICE_BIN:-target/release/k8s-keystone-auth}
python3 - "$out" "$HOOK_BIN" "$SERVICE_BIN" <<'PY'
import os, platform, stat, sys, time, zipfile
out, hook_bin, service_bin = sys.argv[1:4]
arch = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64el", "s390x": "s390x"}.get(platform.machine(), platform.machine())
manifest = (
    "# Written by charm/build.sh (what charmcraft pack writes)\n"
    "charmcraft-version: charm/build.sh\n"
    f"charmcraft-started-at: '{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}'\n"
    "analysis:\n  attributes: []\n"
    "bases:\n" + "".join(
        f"- name: ubuntu\n  channel: '{c}'\n  architectures:\n  - {arch}\n" for c in ("20.04", "22.04", "24.04"))
)

def add_file(z, name, src=None, data=None, mode=0o644):
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | mode) << 16
    if data is None:
        with open(src, "rb") as f:
            data = f.read()
    z.writestr(info, data)

def add_link(z, name, target):
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.create_system = 3  # Unix, so that the mode (a symlink) is honoured
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z.writestr(info, target)

tmp = out + ".tmp"
with zipfile.ZipFile(tmp, "w") as z:
    add_file(z, "dispatch", "dispatch", mode=0o755)
    for h in sorted(os.listdir("hooks")):
        p = os.path.join("hooks", h)
        if os.path.islink(p):
            add_link(z, p, os.readlink(p))
        else:
            add_file(z, p, p, mode=0o755)
    add_file(z, "bin/kubernetes-keystone-hook", hook_bin, mode=0o755)
    add_file(z, "bin/k8s-keystone-auth", service_bin, mode=0o755)
    for f in ("metadata.yaml", "config.yaml"):
        add_file(z, f, f)
    add_file(z, "README.md", "docs/charm.md")
    add_file(z, "manifest.yaml", data=manifest.encode())
os.replace(tmp, out)
print(out)
PY
