#!/usr/bin/env bash
# Stop the control plane started by tests/k8s/up.sh in $K8S_DIR, by its pid files only: a pid
# whose process is not the binary that file names is left alone. Safe to run twice.
# --purge also deletes $K8S_DIR.
# Env: K8S_DIR (default /tmp/k8s-test).
set -u
K8S_DIR=${K8S_DIR:-/tmp/k8s-test}
log() { echo "[k8s-down] $*" >&2; }
stop() { # stop NAME
  local pidfile="$K8S_DIR/$1.pid" pid cmd
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)
  if [[ $cmd == *"/$1 "* ]]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$1 (pid $pid) still alive after 10 s, sending SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
    log "stopped $1 (pid $pid)"
  else
    log "stale $1.pid (pid $pid is not our $1), removing it"
  fi
  rm -f "$pidfile"
}
if [ -d "$K8S_DIR" ]; then
  # Reverse order of start: the apiserver's clients first, etcd last.
  stop kube-controller-manager
  stop kube-apiserver
  stop etcd
else
  log "nothing to stop (no $K8S_DIR)"
fi
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$K8S_DIR"
  log "removed $K8S_DIR"
fi
exit 0
