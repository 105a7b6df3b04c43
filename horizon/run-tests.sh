#!/usr/bin/env bash
# The Horizon plugin's tests (horizon/tests): makes or reuses the test venv, installs Horizon
# 27.0.0 and the test tools pinned by constraints.txt and this plugin, enables the plugin as an
# operator would (its enabled file into openstack_dashboard/local/enabled), then runs ruff and
# pytest. Extra arguments go to pytest; `run-tests.sh lint` runs ruff only (.ci/run does, first).
#
# The venv is cached in $HORIZON_VENV_CACHE (default ~/.cache/kubernetes-keystone/horizon-venv),
# named by a hash of constraints.txt, the Python version and the static-file step below, and made
# under a lock (several worktrees may share it). Cold: ~50 s on 2 cores (pip, then Horizon's
# static files collected and compressed once); warm: ~3 s, then ~15 s of tests.
#
# The live tests (Horizon on 127.0.0.1 against the test Keystone, headless Chromium, real kubectl
# through the test bed's kube-apiserver) need tests/run's environment: KS_URL and the seeded users,
# K8S_V1_DIR (the bed's first kube-apiserver), TEST_LOG_DIR. With HORIZON_TESTS_REQUIRE_LIVE=1
# (tests/run sets it) a missing variable fails them instead of skipping them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
PY=${HORIZON_PY:-python3}
ms() { echo $(( $(date +%s%N) / 1000000 )); }
log() { echo "[horizon] $*" >&2; }
t0=$(ms)

# Bump when the way the venv is made changes.
recipe=1
key=$( { cat "$here/constraints.txt"; "$PY" -c 'import sys; print(sys.version)'; echo "$recipe"; } | sha256sum | cut -c1-16)
cache=${HORIZON_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubernetes-keystone/horizon-venv}
venv="$cache/$key"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 900 9 || { log "could not lock $cache/.lock within 15 min"; exit 1; }
if [ -x "$venv/bin/python" ] && [ -e "$venv/.complete" ]; then
  log "venv cached: $venv"
else
  log "making the venv $venv (cold: pip install of Horizon 27.0.0 and the test tools, then its static files)"
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -c "$here/constraints.txt" pip setuptools
  "$venv/bin/pip" install -q --disable-pip-version-check -c "$here/constraints.txt" \
    horizon playwright pytest ruff
  # Horizon's static files, collected and compressed once as a packager does (COMPRESS_OFFLINE).
  site=$("$venv/bin/python" -c 'import openstack_dashboard, os; print(os.path.dirname(openstack_dashboard.__file__))')
  cp "$here/tests/horizon_local_settings.py" "$site/local/local_settings.py"
  manage() { DJANGO_SETTINGS_MODULE=openstack_dashboard.settings "$venv/bin/python" -m django "$@"; }
  manage collectstatic --noinput -v0
  manage compress --force -v0
  touch "$venv/.complete"
  log "venv made in $(( ($(ms) - t0) / 1000 )) s"
fi

# This checkout's plugin, installed as an operator would: pip, then the enabled file (still under
# the lock: no two runs pip into the venv at once).
site=$("$venv/bin/python" -c 'import openstack_dashboard, os; print(os.path.dirname(openstack_dashboard.__file__))')
cp "$here/tests/horizon_local_settings.py" "$site/local/local_settings.py.new"
mv -f "$site/local/local_settings.py.new" "$site/local/local_settings.py"
build=$(mktemp -d "${TMPDIR:-/tmp}/kk-horizon-build.XXXXXX")
trap 'rm -rf "$build"' EXIT
cp -r "$here/pyproject.toml" "$here/kubernetes_keystone_horizon" "$build/"
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall "$build"
"$venv/bin/python" -m kubernetes_keystone_horizon.enable >/dev/null
flock -u 9
log "venv ready and plugin installed in $(( ($(ms) - t0) / 1000 )) s"
[ -n "${TEST_LOG_DIR:-}" ] && echo "horizon: venv ready and plugin installed in $(( ($(ms) - t0) / 1000 )) s" >> "$TEST_LOG_DIR/figures.txt"

cd "$here"
"$venv/bin/ruff" check --no-cache .
"$venv/bin/ruff" format --no-cache --check .
[ "${1:-}" != lint ] || exit 0
export KK_PLUGIN_BIN=${KK_PLUGIN_BIN:-$root/target/debug/kubectl-keystone-auth}
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
