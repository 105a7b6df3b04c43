#!/usr/bin/env bash
# The end-to-end test bed: k8s-keystone-auth in front of a real Keystone, and real kube-apiservers
# (tests/k8s/up.sh) that use it as their authentication and authorization webhook, one with the
# webhook API v1 and one with v1beta1. Used by tests/run and deploy/demo.sh.
#
#   bash tests/k8s/bed.sh up     start (idempotent); prints the env lines it also writes to $BED_DIR/env
#   bash tests/k8s/bed.sh down   stop what `up` started (by pid files); safe to run twice
#
# Env:
#   KS_URL                 Keystone (required for up; tests/keystone/up.sh prints it)
#   BED_DIR                state and logs (default /tmp/kk-bed)
#   BED_SERVICE_BIN        the k8s-keystone-auth binary (default target/debug/k8s-keystone-auth)
#   BED_SERVICE_PORT       its HTTPS port on 127.0.0.1 (default 18443)
#   BED_POLICY             policy file copied for the service (default tests/k8s/policy.json)
#   BED_V1_PORT            kube-apiserver with webhook version v1 (default 16443)
#   BED_V1BETA1_PORT       kube-apiserver with webhook version v1beta1 (default 16543; "" = none)
#   BED_AUTHN_CACHE_TTL    kube-apiserver --authentication-token-webhook-cache-ttl (default 30s,
#                          what docs/kube-apiserver.md and the charm set)
#   BED_SERVICE_CACHE_TTL  the service's cache.ttl (default 30s)
#   BED_LOG_LEVEL          the service's log_level (default trace, the most verbose: the test run
#                          scans every log for issued secrets)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
BED_DIR=${BED_DIR:-/tmp/kk-bed}
BED_SERVICE_BIN=${BED_SERVICE_BIN:-$root/target/debug/k8s-keystone-auth}
BED_SERVICE_PORT=${BED_SERVICE_PORT:-18443}
BED_POLICY=${BED_POLICY:-$root/tests/k8s/policy.json}
BED_V1_PORT=${BED_V1_PORT:-16443}
BED_V1BETA1_PORT=${BED_V1BETA1_PORT-16543}
BED_AUTHN_CACHE_TTL=${BED_AUTHN_CACHE_TTL:-30s}
BED_SERVICE_CACHE_TTL=${BED_SERVICE_CACHE_TTL:-30s}
BED_LOG_LEVEL=${BED_LOG_LEVEL:-trace}
log() { echo "[k8s-bed] $*" >&2; }
die() { log "$*"; exit 1; }
svc="$BED_DIR/service"

service_alive() {
  local pid cmd
  [ -s "$svc/pid" ] || return 1
  pid=$(cat "$svc/pid")
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmd == *k8s-keystone-auth* ]]
}

down() {
  for v in v1 v1beta1; do
    [ -d "$BED_DIR/$v" ] && K8S_DIR="$BED_DIR/$v" bash "$root/tests/k8s/down.sh"
  done
  if service_alive; then
    kill "$(cat "$svc/pid")" 2>/dev/null || true
    for _ in $(seq 1 100); do service_alive || break; sleep 0.1; done
    log "stopped k8s-keystone-auth (pid $(cat "$svc/pid"))"
  fi
  rm -f "$svc/pid"
}

up() {
  [ -n "${KS_URL:-}" ] || die "KS_URL is not set: start Keystone first (tests/keystone/up.sh prints it)"
  [ -x "$BED_SERVICE_BIN" ] || die "BED_SERVICE_BIN=$BED_SERVICE_BIN is not an executable: run cargo build -p kk-webhook --bin k8s-keystone-auth first"
  [ -r "$BED_POLICY" ] || die "BED_POLICY=$BED_POLICY: no such file"
  command -v kubectl >/dev/null || die "kubectl is not on PATH (it writes the webhook kubeconfig)"
  mkdir -p "$svc"; chmod 700 "$BED_DIR" "$svc"
  cd "$svc"
  ossl() { openssl "$@" >>pki.log 2>&1 || { log "openssl $1 failed:"; tail -5 pki.log >&2; exit 1; }; }
  # The service's CA signs its serving certificate and kube-apiserver's client certificate
  # (the service requires client certificates: client_ca_file).
  if [ ! -s ca.crt ]; then
    ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=k8s-keystone-auth test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    ossl req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj "/CN=k8s-keystone-auth"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > tls.ext
    ossl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out tls.crt -extfile tls.ext
    ossl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=kube-apiserver"
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    ossl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out client.crt -extfile client.ext
    rm -f ./*.csr ./*.ext; chmod 600 ./*.key
  fi
  cp "$BED_POLICY" policy.json
  cat > config.toml <<TOML
listen = "127.0.0.1:$BED_SERVICE_PORT"
log_level = "$BED_LOG_LEVEL"
[tls]
cert_file = "$svc/tls.crt"
private_key_file = "$svc/tls.key"
client_ca_file = "$svc/ca.crt"
reload_interval = "1s"
[keystone]
url = "$KS_URL"
[cache]
ttl = "$BED_SERVICE_CACHE_TTL"
[policy]
file = "$svc/policy.json"
reload_interval = "500ms"
TOML
  # The webhook kubeconfig kube-apiserver reads: the service's CA pinned, a client certificate,
  # all embedded. Written by kubectl, the kubeconfig writer of the field, into a new file that
  # replaces the old one (kubectl config would otherwise edit what an earlier run left).
  kc=webhook.kubeconfig.new
  rm -f "$kc"
  kcfg() { kubectl config --kubeconfig "$kc" "$@" >/dev/null || die "kubectl config $1 failed for $svc/$kc"; }
  kcfg set-cluster k8s-keystone-auth --server "https://127.0.0.1:$BED_SERVICE_PORT/webhook" \
    --certificate-authority ca.crt --embed-certs=true
  kcfg set-credentials kube-apiserver --client-certificate client.crt --client-key client.key --embed-certs=true
  kcfg set-context webhook --cluster k8s-keystone-auth --user kube-apiserver
  kcfg use-context webhook
  chmod 600 "$kc"
  mv -f "$kc" webhook.kubeconfig
  if service_alive && [ "$BED_SERVICE_BIN" -nt pid ]; then
    log "$BED_SERVICE_BIN is newer than the running service: restarting it"
    kill "$(cat pid)" 2>/dev/null || true
    for _ in $(seq 1 100); do service_alive || break; sleep 0.1; done
  fi
  if service_alive; then
    log "k8s-keystone-auth already running (pid $(cat pid))"
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$BED_SERVICE_PORT") 2>/dev/null && die "port $BED_SERVICE_PORT on 127.0.0.1 is already in use (BED_SERVICE_PORT)"
    setsid "$BED_SERVICE_BIN" --config "$svc/config.toml" </dev/null >"$svc/service.log" 2>&1 &
    echo $! > pid
    ok=""
    for _ in $(seq 1 150); do
      curl -fs --max-time 2 --cacert ca.crt --cert client.crt --key client.key "https://127.0.0.1:$BED_SERVICE_PORT/healthz" >/dev/null 2>&1 && { ok=1; break; }
      kill -0 "$(cat pid)" 2>/dev/null || break
      sleep 0.1
    done
    [ -n "$ok" ] || { log "k8s-keystone-auth did not answer /healthz within 15 s; last lines of $svc/service.log:"; tail -20 service.log >&2; exit 1; }
    log "k8s-keystone-auth on https://127.0.0.1:$BED_SERVICE_PORT (pid $(cat pid))"
  fi
  {
    echo "BED_DIR=$BED_DIR"
    echo "BED_SERVICE_URL=https://127.0.0.1:$BED_SERVICE_PORT"
    echo "BED_SERVICE_DIR=$svc"
    echo "BED_SERVICE_LOG=$svc/service.log"
    echo "BED_POLICY_FILE=$svc/policy.json"
    echo "BED_AUTHN_CACHE_TTL=$BED_AUTHN_CACHE_TTL"
    echo "BED_SERVICE_CACHE_TTL=$BED_SERVICE_CACHE_TTL"
  } > "$BED_DIR/env"
  for v in v1 v1beta1; do
    if [ "$v" = v1 ]; then port=$BED_V1_PORT; else port=$BED_V1BETA1_PORT; fi
    [ -n "$port" ] || continue
    K8S_DIR="$BED_DIR/$v" K8S_PORT="$port" WEBHOOK_VERSION="$v" \
      AUTHN_WEBHOOK_CONFIG="$svc/webhook.kubeconfig" AUTHZ_WEBHOOK_CONFIG="$svc/webhook.kubeconfig" \
      K8S_EXTRA_ARGS="--authentication-token-webhook-cache-ttl=$BED_AUTHN_CACHE_TTL" \
      bash "$root/tests/k8s/up.sh" >/dev/null
    echo "K8S_${v^^}_DIR=$BED_DIR/$v" >> "$BED_DIR/env"
  done
  cat "$BED_DIR/env"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down   (see the comment at the top of $0)" >&2; exit 2 ;;
esac
