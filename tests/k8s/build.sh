#!/usr/bin/env bash
# Build the test bed's binaries (etcd, kube-apiserver, kube-controller-manager) from the Go
# module in this folder, once: they are kept in a cache folder named by a hash of go.mod, go.sum,
# the sources under cmd/ and the Go version, and reused while none of those changes.
#
#   K8S_BIN_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kubernetes-keystone/k8s-bin)
#
# Prints the folder holding the three binaries on stdout; progress goes to stderr.
# Cold: about 15 min on 2 cores (the Go build cache, ~2.5 GB in $(go env GOCACHE), makes a rebuild
# after a small change take a minute). Concurrent callers wait on a lock instead of building twice.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { echo "[k8s-build] $*" >&2; }
command -v go >/dev/null || { log "go is not on PATH: the test bed needs Go 1.26 (see README.md)"; exit 1; }

key=$(cd "$here" && { go version; cat build.sh go.mod go.sum; find cmd -name '*.go' | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-16)
# The version the binaries report (/version, kubectl version): the one go.mod pins.
kver=$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$here/go.mod")
[[ $kver =~ ^v1\.([0-9]+)\. ]] || { log "cannot read the k8s.io/kubernetes version from $here/go.mod"; exit 1; }
vpkg=k8s.io/component-base/version
ldflags="-X $vpkg.gitVersion=$kver -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=${BASH_REMATCH[1]} -X $vpkg.gitTreeState=clean"
root=${K8S_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubernetes-keystone/k8s-bin}
dest="$root/$key"
bins=(etcd kube-apiserver kube-controller-manager)
have() { for b in "${bins[@]}"; do [ -x "$dest/$b" ] || return 1; done; }

mkdir -p "$root"
exec 9>"$root/.lock"
if ! have; then
  flock 9
fi
if have; then
  log "cached: $dest"
else
  log "building ${bins[*]} into $dest (cold: ~15 min on 2 cores; Go build cache $(go env GOCACHE))"
  s=$(date +%s)
  rm -rf "$dest.tmp"; mkdir -p "$dest.tmp"
  if ! (cd "$here" && nice -n 10 go build -ldflags "$ldflags" -o "$dest.tmp/" ./cmd/... >"$root/build.log" 2>&1); then
    log "go build failed; last lines of $root/build.log:"; tail -40 "$root/build.log" >&2; exit 1
  fi
  rm -rf "$dest"; mv "$dest.tmp" "$dest"
  log "built in $(( $(date +%s) - s )) s"
  # Keep the three newest builds only.
  ls -1dt "$root"/*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
fi
flock -u 9
echo "$dest"
