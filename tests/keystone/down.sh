#!/usr/bin/env bash
# Stop the Keystone started by tests/keystone/up.sh, by its pid file only
# ($KS_DIR/gunicorn.pid). --purge also deletes $KS_DIR (venv, DB, keys, logs).
# Env: KS_DIR (default /tmp/keystone-test).
set -u
KS_DIR=${KS_DIR:-/tmp/keystone-test}
pidfile="$KS_DIR/gunicorn.pid"
if [ -s "$pidfile" ]; then
  pid=$(cat "$pidfile")
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  if [[ $cmd == *gunicorn* ]]; then
    kill "$pid" 2>/dev/null || true            # SIGTERM: graceful shutdown of master + worker
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "[keystone-down] pid $pid still alive after 10 s, sending SIGKILL" >&2
      kill -9 "$pid" 2>/dev/null || true
    fi
    echo "[keystone-down] stopped pid $pid" >&2
  else
    echo "[keystone-down] stale pid file (pid $pid is not a gunicorn), removing it" >&2
  fi
  rm -f "$pidfile"
else
  echo "[keystone-down] not running (no $pidfile)" >&2
fi
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$KS_DIR"
  echo "[keystone-down] removed $KS_DIR" >&2
fi
exit 0
