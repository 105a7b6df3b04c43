#!/usr/bin/env bash
# Makes or reuses a venv with the Python `kubernetes` client pinned by constraints.txt, and prints
# its python's path. Cached in $KK_PYTHON_VENV_CACHE (default
# ~/.cache/kubernetes-keystone/python-client-venv), named by a hash of constraints.txt and the
# Python version, made under a lock (several worktrees and tests may share it), as
# horizon/run-tests.sh makes its venv. Cold: ~25 s (pip from PyPI); warm: at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PY=${KK_PYTHON:-python3}
recipe=1
key=$( { cat "$here/constraints.txt"; "$PY" -c 'import sys; print(sys.version)'; echo "$recipe"; } | sha256sum | cut -c1-16)
cache=${KK_PYTHON_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubernetes-keystone/python-client-venv}
venv="$cache/$key"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 600 9 || { echo "could not lock $cache/.lock within 10 min" >&2; exit 1; }
if ! { [ -x "$venv/bin/python" ] && [ -e "$venv/.complete" ]; }; then
  echo "[python-client] making the venv $venv (pip install kubernetes from PyPI)" >&2
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -c "$here/constraints.txt" kubernetes >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
