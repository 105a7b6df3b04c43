#!/usr/bin/env bash
# Build real Helm (helm.sh/helm/v3's own `cmd/helm`, at the version go.mod pins) once, for the
# multi-tenancy tests (tests/integration/helm.rs). The binary is kept in a cache folder named by a
# hash of go.mod, go.sum, this script and the Go version, and reused while none of those changes.
#
# This module has no Go source of its own: go.mod names Helm's main package with a `tool` line,
# which makes go.sum pin every module it needs. Helm's go.mod has no `replace` lines, so building
# its main package from this module resolves exactly the versions Helm's own release build uses.
# The version flags are the ones Helm's Makefile sets for a tagged build.
#
#   HELM_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kubernetes-keystone/helm)
#
# Prints one line on stdout, for `source` or `eval`:
#   HELM_BIN=<path of the helm binary>
# Progress goes to stderr. Cold (empty Go build cache): 5.8 min on 2 cores shared with other
# builds (3.7 min of CPU). Concurrent callers wait on a lock instead of building twice.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { echo "[helm-build] $*" >&2; }
command -v go >/dev/null || { log "go is not on PATH: Helm is built with Go 1.26 (see README.md)"; exit 1; }

module=helm.sh/helm/v3
version=$(awk -v m="$module" '$1 == m {print $2}' "$here/go.mod")
[[ $version =~ ^v3\.[0-9]+\.[0-9]+$ ]] || { log "cannot read the version of $module from $here/go.mod"; exit 1; }
# Helm's Makefile: the Kubernetes version charts see by default (.Capabilities.KubeVersion in
# `helm template`) is client-go's minor, major 1.
client_go=$(awk '$1 == "k8s.io/client-go" {print $2}' "$here/go.mod")
[[ $client_go =~ ^v0\.([0-9]+)\. ]] || { log "cannot read the version of k8s.io/client-go from $here/go.mod"; exit 1; }
kminor=${BASH_REMATCH[1]}
ldflags="-w -s -X $module/internal/version.version=$version -X $module/internal/version.metadata="
ldflags+=" -X $module/internal/version.gitTreeState=clean"
ldflags+=" -X $module/pkg/lint/rules.k8sVersionMajor=1 -X $module/pkg/lint/rules.k8sVersionMinor=$kminor"
ldflags+=" -X $module/pkg/chartutil.k8sVersionMajor=1 -X $module/pkg/chartutil.k8sVersionMinor=$kminor"

key=$(cd "$here" && { go version; cat build.sh go.mod go.sum; } | sha256sum | cut -c1-16)
root=${HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubernetes-keystone/helm}
dest="$root/$key"

mkdir -p "$root"
exec 9>"$root/.lock"
if ! [ -x "$dest/helm" ]; then
  flock 9
fi
if [ -x "$dest/helm" ]; then
  log "cached: $dest"
else
  log "building helm $version into $dest (cold: ~6 min on 2 cores; Go build cache $(go env GOCACHE))"
  s=$(date +%s)
  rm -rf "$dest.tmp"; mkdir -p "$dest.tmp"
  if ! (cd "$here" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$dest.tmp/helm" "$module/cmd/helm" >"$root/build.log" 2>&1); then
    log "go build failed; last lines of $root/build.log:"; tail -40 "$root/build.log" >&2; exit 1
  fi
  got=$("$dest.tmp/helm" version --template '{{.Version}}')
  [ "$got" = "$version" ] || { log "the built helm says it is $got, not $version"; exit 1; }
  rm -rf "$dest"; mv "$dest.tmp" "$dest"
  log "built in $(( $(date +%s) - s )) s"
  # Keep the three newest builds only.
  ls -1dt "$root"/*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
fi
flock -u 9
echo "HELM_BIN=$dest/helm"
