#!/usr/bin/env bash
# Start a real Kubernetes control plane on 127.0.0.1 for tests: etcd, kube-apiserver and (unless
# K8S_CONTROLLER_MANAGER=0) kube-controller-manager, all built from their upstream Go modules by
# tests/k8s/build.sh (cached), with a throw-away PKI. Idempotent: a live control plane in K8S_DIR
# is reused.
#
# Env:
#   K8S_DIR               state, certificates, logs and pid files (default /tmp/k8s-test)
#   K8S_PORT              kube-apiserver's HTTPS port on 127.0.0.1 (default 6443)
#   K8S_ETCD_PORT         etcd's client port (default K8S_PORT+10000; the peer port is the next one)
#   AUTHN_WEBHOOK_CONFIG  kubeconfig file for --authentication-token-webhook-config-file (optional)
#   AUTHZ_WEBHOOK_CONFIG  kubeconfig file for --authorization-webhook-config-file (optional);
#                         --authorization-mode is Node,RBAC,Webhook with it, Node,RBAC without
#   WEBHOOK_VERSION       v1 (default) or v1beta1, for both webhooks
#   K8S_EXTRA_ARGS        more kube-apiserver flags, split on spaces
#                         (e.g. "--authentication-token-webhook-cache-ttl=30s")
#   K8S_CONTROLLER_MANAGER 1 (default) or 0
#   K8S_CONTROLLERS       kube-controller-manager's --controllers (default '*,-bootstrapsigner,-tokencleaner';
#                         'clusterrole-aggregation' alone starts in well under a second instead of 5-30 s)
#
# Writes $K8S_DIR/admin.kubeconfig (system:masters), $K8S_DIR/user.kubeconfig (a client-certificate
# user "cert-user" with no RBAC grant), $K8S_DIR/ca.crt, $K8S_DIR/ca.key (signs both serving and
# client certificates: tests mint their own) and $K8S_DIR/env (K8S_SERVER, K8S_CA_FILE,
# K8S_ADMIN_KUBECONFIG, K8S_USER_KUBECONFIG, K8S_DIR, K8S_WEBHOOK_VERSION). Prints the env lines
# on stdout; progress goes to stderr. Logs: $K8S_DIR/{etcd,kube-apiserver,kube-controller-manager}.log.
# Every wait is bounded; on failure the last lines of the failing log are printed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_DIR=${K8S_DIR:-/tmp/k8s-test}
K8S_PORT=${K8S_PORT:-6443}
K8S_ETCD_PORT=${K8S_ETCD_PORT:-$((K8S_PORT + 10000))}
ETCD_PEER_PORT=$((K8S_ETCD_PORT + 1))
WEBHOOK_VERSION=${WEBHOOK_VERSION:-v1}
K8S_CONTROLLER_MANAGER=${K8S_CONTROLLER_MANAGER:-1}
log() { echo "[k8s-up] $*" >&2; }
die() { log "$*"; exit 1; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
T0=$(ms)

case "$WEBHOOK_VERSION" in v1|v1beta1) ;; *) die "WEBHOOK_VERSION=$WEBHOOK_VERSION: expected v1 or v1beta1";; esac
case "$K8S_CONTROLLER_MANAGER" in 0|1) ;; *) die "K8S_CONTROLLER_MANAGER=$K8S_CONTROLLER_MANAGER: expected 0 or 1";; esac
for p in K8S_PORT K8S_ETCD_PORT; do
  [[ ${!p} =~ ^[0-9]+$ ]] && [ "${!p}" -ge 1 ] && [ "${!p}" -le 65534 ] || die "$p=${!p}: expected a TCP port number"
done
for v in AUTHN_WEBHOOK_CONFIG AUTHZ_WEBHOOK_CONFIG; do
  f=${!v:-}
  [ -z "$f" ] && continue
  [ -f "$f" ] || die "$v=$f: no such file (a webhook kubeconfig for kube-apiserver)"
  [ -r "$f" ] || die "$v=$f: not readable"
  grep -q 'server:' "$f" || die "$v=$f: not a kubeconfig with a cluster server (no 'server:' in it)"
done

mkdir -p "$K8S_DIR"
chmod 700 "$K8S_DIR"
cd "$K8S_DIR"

alive() { # alive NAME: the pid in NAME.pid runs the binary NAME
  local pid cmd
  [ -s "$1.pid" ] || return 1
  pid=$(cat "$1.pid")
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmd == *"/$1 "* ]]
}
running() { [ -s "$1.pid" ] && kill -0 "$(cat "$1.pid")" 2>/dev/null; } # the process we started still runs
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ready() { curl -fsS --max-time 2 --cacert ca.crt --cert admin.crt --key admin.key "https://127.0.0.1:$K8S_PORT/readyz" >/dev/null 2>&1; }
fail_with_log() { # fail_with_log NAME MESSAGE: say why, show the log, stop what was started
  log "$2"
  [ -f "$1.log" ] && { log "last lines of $K8S_DIR/$1.log:"; tail -25 "$1.log" >&2; }
  K8S_DIR="$K8S_DIR" bash "$here/down.sh" 2>/dev/null
  exit 1
}

write_env() {
  cat > env <<ENV
K8S_DIR=$K8S_DIR
K8S_SERVER=https://127.0.0.1:$K8S_PORT
K8S_CA_FILE=$K8S_DIR/ca.crt
K8S_ADMIN_KUBECONFIG=$K8S_DIR/admin.kubeconfig
K8S_USER_KUBECONFIG=$K8S_DIR/user.kubeconfig
K8S_WEBHOOK_VERSION=$WEBHOOK_VERSION
ENV
  cat env
}

if alive kube-apiserver && alive etcd && ready; then
  log "already running in $K8S_DIR (kube-apiserver pid $(cat kube-apiserver.pid))"
  write_env
  exit 0
fi
if alive kube-apiserver || alive etcd || alive kube-controller-manager; then
  log "a half-started control plane is in $K8S_DIR: stopping it first"
  bash "$here/down.sh" >&2
fi
for p in "$K8S_PORT" "$K8S_ETCD_PORT" "$ETCD_PEER_PORT"; do
  port_busy "$p" && die "port $p on 127.0.0.1 is already in use by another process (K8S_PORT=$K8S_PORT, K8S_ETCD_PORT=$K8S_ETCD_PORT)"
done

bin=$(bash "$here/build.sh")

# 1. PKI: one CA signs the serving certificate and the client certificates; a ServiceAccount key.
s=$(ms)
ossl() { openssl "$@" >>pki.log 2>&1 || { log "openssl $1 failed:"; tail -5 pki.log >&2; exit 1; }; }
if [ ! -s ca.crt ]; then
  ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=test bed CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
fi
leaf() { # leaf NAME SUBJECT EXT
  [ -s "$1.crt" ] && return 0
  ossl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
  printf '%s\n' "$3" > "$1.ext"
  ossl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out "$1.crt" -extfile "$1.ext"
  rm -f "$1.csr" "$1.ext"
}
leaf apiserver "/CN=kube-apiserver" "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
extendedKeyUsage=serverAuth"
leaf admin "/O=system:masters/CN=kubernetes-admin" "extendedKeyUsage=clientAuth"
leaf controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
leaf cert-user "/CN=cert-user" "extendedKeyUsage=clientAuth"
[ -s sa.key ] || ossl genrsa -out sa.key 2048
[ -s sa.pub ] || ossl rsa -in sa.key -pubout -out sa.pub
chmod 600 ./*.key

kubeconfig() { # kubeconfig FILE USER CERT KEY
  local crt key
  crt=$(base64 -w0 "$3"); key=$(base64 -w0 "$4")
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: test-bed
  cluster:
    server: https://127.0.0.1:$K8S_PORT
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: $2
  user:
    client-certificate-data: $crt
    client-key-data: $key
contexts:
- name: $2@test-bed
  context: {cluster: test-bed, user: $2}
current-context: $2@test-bed
KC
  chmod 600 "$1"
}
kubeconfig admin.kubeconfig kubernetes-admin admin.crt admin.key
kubeconfig controller-manager.kubeconfig system:kube-controller-manager controller-manager.crt controller-manager.key
kubeconfig user.kubeconfig cert-user cert-user.crt cert-user.key
log "$(( $(ms) - s )) ms: PKI and kubeconfigs"

start() { # start NAME ARGS...: setsid, no terminal, output to NAME.log, pid to NAME.pid
  local name=$1; shift
  setsid "$bin/$name" "$@" </dev/null >>"$name.log" 2>&1 &
  echo $! > "$name.pid"
}

# 2. etcd (fresh data each start: the test bed keeps no state between runs)
s=$(ms)
rm -rf etcd-data
start etcd --data-dir "$K8S_DIR/etcd-data" \
  --listen-client-url "http://127.0.0.1:$K8S_ETCD_PORT" --listen-peer-url "http://127.0.0.1:$ETCD_PEER_PORT"
for _ in $(seq 1 300); do
  grep -q "etcd: ready" etcd.log 2>/dev/null && break
  running etcd || fail_with_log etcd "etcd exited during start-up"
  sleep 0.1
done
grep -q "etcd: ready" etcd.log || fail_with_log etcd "etcd not ready after 30 s"
log "$(( $(ms) - s )) ms: etcd on 127.0.0.1:$K8S_ETCD_PORT (pid $(cat etcd.pid))"

# 3. kube-apiserver
s=$(ms)
args=(
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$K8S_PORT"
  --etcd-servers="http://127.0.0.1:$K8S_ETCD_PORT"
  --tls-cert-file="$K8S_DIR/apiserver.crt" --tls-private-key-file="$K8S_DIR/apiserver.key"
  --client-ca-file="$K8S_DIR/ca.crt"
  --service-account-issuer=https://kubernetes.default.svc
  --service-account-key-file="$K8S_DIR/sa.pub" --service-account-signing-key-file="$K8S_DIR/sa.key"
  --service-cluster-ip-range=10.0.0.0/24
  --anonymous-auth=false
  --profiling=false
  --cert-dir="$K8S_DIR/cert-dir"
)
mode=Node,RBAC
if [ -n "${AUTHN_WEBHOOK_CONFIG:-}" ]; then
  args+=(--authentication-token-webhook-config-file="$AUTHN_WEBHOOK_CONFIG"
         --authentication-token-webhook-version="$WEBHOOK_VERSION")
fi
if [ -n "${AUTHZ_WEBHOOK_CONFIG:-}" ]; then
  mode=Node,RBAC,Webhook
  args+=(--authorization-webhook-config-file="$AUTHZ_WEBHOOK_CONFIG"
         --authorization-webhook-version="$WEBHOOK_VERSION")
fi
args+=(--authorization-mode="$mode")
# shellcheck disable=SC2206 # split on spaces on purpose
[ -n "${K8S_EXTRA_ARGS:-}" ] && args+=(${K8S_EXTRA_ARGS})
printf '%s\n' "${args[@]}" > kube-apiserver.args
start kube-apiserver "${args[@]}"
for _ in $(seq 1 600); do
  ready && break
  running kube-apiserver || fail_with_log kube-apiserver "kube-apiserver exited during start-up (its flags are in $K8S_DIR/kube-apiserver.args)"
  sleep 0.1
done
ready || fail_with_log kube-apiserver "kube-apiserver not ready on https://127.0.0.1:$K8S_PORT/readyz after 60 s"
log "$(( $(ms) - s )) ms: kube-apiserver on https://127.0.0.1:$K8S_PORT (pid $(cat kube-apiserver.pid), authorization-mode $mode, webhooks $WEBHOOK_VERSION)"

# 4. kube-controller-manager: aggregated ClusterRoles (admin, edit, view), ServiceAccounts,
#    namespace deletion. Its own HTTPS port is off (--secure-port=0).
if [ "$K8S_CONTROLLER_MANAGER" = 1 ]; then
  s=$(ms)
  start kube-controller-manager --kubeconfig="$K8S_DIR/controller-manager.kubeconfig" \
    --secure-port=0 --leader-elect=false --use-service-account-credentials=true \
    --root-ca-file="$K8S_DIR/ca.crt" --service-account-private-key-file="$K8S_DIR/sa.key" \
    --controllers="${K8S_CONTROLLERS:-*,-bootstrapsigner,-tokencleaner}" --cluster-name=test-bed
  # Ready when the aggregated ClusterRole "view" has rules (the clusterrole-aggregation controller ran).
  for _ in $(seq 1 300); do
    running kube-controller-manager || fail_with_log kube-controller-manager "kube-controller-manager exited during start-up"
    n=$(kubectl --kubeconfig admin.kubeconfig get clusterrole view -o 'jsonpath={.rules[*].verbs}' 2>/dev/null | wc -w) || n=0
    [ "$n" -gt 0 ] && break
    sleep 0.1
  done
  [ "${n:-0}" -gt 0 ] || fail_with_log kube-controller-manager "kube-controller-manager did not fill the aggregated ClusterRole view within 30 s"
  log "$(( $(ms) - s )) ms: kube-controller-manager (pid $(cat kube-controller-manager.pid))"
fi
log "$(( $(ms) - T0 )) ms total"
write_env
