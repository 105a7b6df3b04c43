#!/usr/bin/env bash
# Local demo: a real Keystone on 127.0.0.1, k8s-keystone-auth on a self-signed certificate,
# then a TokenReview and a SubjectAccessReview sent as kube-apiserver sends them, with the
# answers. Everything listens on 127.0.0.1 only. KEEP=1 leaves Keystone and the service up.
set -euo pipefail
cd "$(dirname "$0")/.."
export KS_DIR=${KS_DIR:-/tmp/keystone-test} KS_PORT=${KS_PORT:-5000}
DEMO=${DEMO_DIR:-/tmp/k8s-keystone-auth-demo}
PORT=${DEMO_PORT:-8443}
mkdir -p "$DEMO"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. Keystone (PyPI keystone 30, SQLite) on 127.0.0.1:$KS_PORT (first run ~40 s)"
bash tests/keystone/up.sh >/dev/null
python3 tests/keystone/seed.py > "$KS_DIR/seed.env"
set -a; source "$KS_DIR/seed.env"; set +a
echo "Keystone: $KS_URL; user alice@k8s on project team-a, read-only application credential 'kubectl-ro' (role k8s-viewer)"

say "2. Build k8s-keystone-auth"
cargo build --quiet --bin k8s-keystone-auth
BIN=target/debug/k8s-keystone-auth

say "3. Self-signed certificate for 127.0.0.1 and the service on https://127.0.0.1:$PORT"
[ -s "$DEMO/tls.crt" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=k8s-keystone-auth" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$DEMO/tls.key" -out "$DEMO/tls.crt" 2>/dev/null
cp deploy/policy-example.json "$DEMO/policy.json"
[ -s "$DEMO/pid" ] && kill "$(cat "$DEMO/pid")" 2>/dev/null && sleep 0.5 || true
setsid "$BIN" --listen "127.0.0.1:$PORT" --tls-cert-file "$DEMO/tls.crt" --tls-private-key-file "$DEMO/tls.key" \
  --keystone-url "$KS_URL" --keystone-policy-file "$DEMO/policy.json" </dev/null >"$DEMO/service.log" 2>&1 &
echo $! > "$DEMO/pid"
for _ in $(seq 1 100); do curl -fs --cacert "$DEMO/tls.crt" "https://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS --cacert "$DEMO/tls.crt" "https://127.0.0.1:$PORT/readyz"
cleanup() { [ -n "${KEEP:-}" ] || { kill "$(cat "$DEMO/pid")" 2>/dev/null || true; bash tests/keystone/down.sh; }; }
trap cleanup EXIT

say "4. alice gets a Keystone token from her application credential (what kubectl's plugin does)"
TOKEN=$(curl -fsS -D - -o /dev/null -H 'Content-Type: application/json' "$KS_URL/auth/tokens?nocatalog" \
  -d '{"auth":{"identity":{"methods":["application_credential"],"application_credential":{"id":"'"$KS_AC_KUBECTL_RO_ID"'","secret":"'"$KS_AC_KUBECTL_RO_SECRET"'"}}}}' \
  | awk 'tolower($1)=="x-subject-token:" {print $2}' | tr -d '\r')
echo "token: ${TOKEN:0:12}... (${#TOKEN} characters)"

say "5. kube-apiserver asks: who is this? (POST /webhook, TokenReview authentication.k8s.io/v1)"
REVIEW=$(curl -fsS --cacert "$DEMO/tls.crt" "https://127.0.0.1:$PORT/webhook" -H 'Content-Type: application/json' \
  -d '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"'"$TOKEN"'"}}')
echo "$REVIEW" | python3 -m json.tool

say "6. kube-apiserver asks: may alice list pods in namespace default? (SubjectAccessReview v1)"
SAR=$(echo "$REVIEW" | python3 -c '
import json, sys
u = json.load(sys.stdin)["status"]["user"]
print(json.dumps({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
  "user": u["username"], "uid": u["uid"], "groups": u["groups"], "extra": u["extra"],
  "resourceAttributes": {"verb": "list", "namespace": "default", "resource": "pods", "version": "v1"}}}))')
curl -fsS --cacert "$DEMO/tls.crt" "https://127.0.0.1:$PORT/webhook" -H 'Content-Type: application/json' -d "$SAR" | python3 -m json.tool
echo "... and delete them?"
curl -fsS --cacert "$DEMO/tls.crt" "https://127.0.0.1:$PORT/webhook" -H 'Content-Type: application/json' \
  -d "${SAR/\"verb\": \"list\"/\"verb\": \"delete\"}" | python3 -m json.tool
echo "(allowed: false without denied means \"no opinion\": RBAC decides next)"

say "7. The same token again comes from the cache; metrics"
curl -fsS --cacert "$DEMO/tls.crt" "https://127.0.0.1:$PORT/webhook" -H 'Content-Type: application/json' \
  -d '{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"'"$TOKEN"'"}}' >/dev/null
curl -fsS --cacert "$DEMO/tls.crt" "https://127.0.0.1:$PORT/metrics" | grep -E '^k8s_keystone_auth_(reviews_total|token_cache_requests_total|keystone_requests_total)'

say "8. The service's decision log (no token in it)"
cat "$DEMO/service.log"
if [ -n "${KEEP:-}" ]; then
  echo; echo "Left running: service pid $(cat "$DEMO/pid") on https://127.0.0.1:$PORT, Keystone at $KS_URL"
  echo "Stop with: kill \$(cat $DEMO/pid); bash tests/keystone/down.sh"
fi
