#!/usr/bin/env bash
# Build the Go reference, cloud-provider-openstack's k8s-keystone-auth and client-keystone-auth at
# the version go.mod pins, once: the binaries are kept in a cache folder named by a hash of
# go.mod, go.sum, this script and the Go version, and reused while none of those changes.
#
# The module has `replace` lines, so `go install pkg@version` refuses it: it is downloaded (and
# checked against go.sum here) with `go mod download`, copied out of the read-only module cache
# and built as the main module, with its own go.sum pinning its dependencies.
#
#   GO_REFERENCE_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kubernetes-keystone/go-reference)
#
# Prints two lines on stdout, for `source` or `eval`:
#   GO_REFERENCE_BIN=<folder with k8s-keystone-auth and client-keystone-auth>
#   GO_REFERENCE_SRC=<the downloaded module, read-only: its test fixtures are read from there>
# Progress goes to stderr. Cold: about 5 min on 2 cores (less when the test bed's Go build
# cache is warm). Concurrent callers wait on a lock instead of building twice.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { echo "[go-reference] $*" >&2; }
command -v go >/dev/null || { log "go is not on PATH: the Go reference needs Go 1.26 (see README.md)"; exit 1; }

module=k8s.io/cloud-provider-openstack
version=$(awk -v m="$module" '$1 == "require" && $2 == m {print $3}' "$here/go.mod")
[ -n "$version" ] || { log "cannot read the version of $module from $here/go.mod"; exit 1; }
src=$(cd "$here" && go mod download -json "$module" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { log "go mod download $module@$version gave no folder"; exit 1; }

key=$(cd "$here" && { go version; cat build.sh go.mod go.sum; } | sha256sum | cut -c1-16)
root=${GO_REFERENCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubernetes-keystone/go-reference}
dest="$root/$key"
bins=(k8s-keystone-auth client-keystone-auth)
have() { for b in "${bins[@]}"; do [ -x "$dest/$b" ] || return 1; done; }

mkdir -p "$root"
exec 9>"$root/.lock"
if ! have; then
  flock 9
fi
if have; then
  log "cached: $dest"
else
  log "building ${bins[*]} $version into $dest (cold: ~5 min on 2 cores)"
  s=$(date +%s)
  work="$root/src.tmp"
  rm -rf "$work" "$dest.tmp"; mkdir -p "$dest.tmp"
  cp -r "$src" "$work"; chmod -R u+w "$work"
  ldflags="-X $module/pkg/version.Version=$version"
  if ! (cd "$work" && nice -n 10 go build -ldflags "$ldflags" -o "$dest.tmp/" ./cmd/k8s-keystone-auth ./cmd/client-keystone-auth >"$root/build.log" 2>&1); then
    log "go build failed; last lines of $root/build.log:"; tail -40 "$root/build.log" >&2; exit 1
  fi
  rm -rf "$work" "$dest"; mv "$dest.tmp" "$dest"
  log "built in $(( $(date +%s) - s )) s"
  ls -1dt "$root"/*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
fi
flock -u 9
echo "GO_REFERENCE_BIN=$dest"
echo "GO_REFERENCE_SRC=$src"
