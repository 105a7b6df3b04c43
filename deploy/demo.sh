#!/usr/bin/env bash
# The product's main job, end to end on 127.0.0.1: a real Keystone (PyPI keystone 30, SQLite), a
# real kube-apiserver v1.36 with etcd (built from their Go modules, cached after the first run)
# whose authentication and authorization webhook is k8s-keystone-auth, and real kubectl with the
# kubectl-keystone-auth exec plugin. A Keystone user's application credential becomes a
# kubeconfig; then `kubectl auth whoami`, an allowed `kubectl get` and a refused one, and the
# service's decision log. KEEP=1 leaves everything running.
#
# Cold (nothing built, Keystone not installed): about 18 min on 2 cores, most of it building
# kube-apiserver once. Warm: about 1 min.
set -euo pipefail
cd "$(dirname "$0")/.."
export KS_DIR=${KS_DIR:-/tmp/keystone-test} KS_PORT=${KS_PORT:-5000}
export BED_DIR=${DEMO_DIR:-/tmp/kk-demo}
export BED_SERVICE_PORT=${DEMO_SERVICE_PORT:-18444} BED_V1_PORT=${DEMO_K8S_PORT:-16444} BED_V1BETA1_PORT=""
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }

say "1. Keystone on 127.0.0.1:$KS_PORT (first run installs it from PyPI, ~40 s)"
bash tests/keystone/up.sh >/dev/null
python3 tests/keystone/seed.py > "$KS_DIR/seed.env"
set -a; source "$KS_DIR/seed.env"; set +a
echo "Keystone: $KS_URL"
echo "User alice (domain k8s) on project team-a; her application credential 'kubectl-ro' carries only the role k8s-viewer."

say "2. Build k8s-keystone-auth and kubectl-keystone-auth"
cargo build --quiet --locked --workspace --bins
PLUGIN=$PWD/target/debug/kubectl-keystone-auth

say "3. The control plane: k8s-keystone-auth, etcd and kube-apiserver (first run builds them, ~15 min)"
cleanup() {
  [ -n "${KEEP:-}" ] && return
  bash tests/k8s/bed.sh down 2>/dev/null || true
  bash tests/keystone/down.sh 2>/dev/null || true
}
trap cleanup EXIT
bash tests/k8s/bed.sh up >/dev/null
set -a; source "$BED_DIR/env"; source "$K8S_V1_DIR/env"; set +a
echo "kube-apiserver: $K8S_SERVER, with --authentication-token-webhook-config-file and"
echo "--authorization-webhook-config-file pointing at k8s-keystone-auth ($BED_SERVICE_URL/webhook),"
echo "--authorization-mode=Node,RBAC,Webhook; policy: tests/k8s/policy.json"
ADMIN=(kubectl --kubeconfig "$K8S_ADMIN_KUBECONFIG")
"${ADMIN[@]}" create namespace team-a --dry-run=client -o yaml | "${ADMIN[@]}" apply -f - >/dev/null
"${ADMIN[@]}" -n team-a create configmap hello --from-literal=greeting=hi --dry-run=client -o yaml | "${ADMIN[@]}" apply -f - >/dev/null
echo "(the cluster admin created namespace team-a with configmap hello)"

say "4. alice turns her application credential into a kubeconfig"
KC=$BED_DIR/alice.kubeconfig
show "kubectl-keystone-auth kubeconfig --server $K8S_SERVER --certificate-authority $K8S_CA_FILE --keystone-url $KS_URL --application-credential-id ... --application-credential-secret ... --namespace team-a --output $KC"
rm -f "$KC"
"$PLUGIN" kubeconfig --server "$K8S_SERVER" --certificate-authority "$K8S_CA_FILE" --keystone-url "$KS_URL" \
  --application-credential-id "$KS_AC_KUBECTL_RO_ID" --application-credential-secret "$KS_AC_KUBECTL_RO_SECRET" \
  --command "$PLUGIN" --cluster-name demo --namespace team-a --output "$KC"
echo "The user entry it wrote (mode $(stat -c %a "$KC"); the secret elided here, and the variables it blanks so that"
echo "no OS_* of the shell can change the credential left out):"
SECRET=$KS_AC_KUBECTL_RO_SECRET python3 - "$KC" <<'PY'
import os, sys
lines = open(sys.argv[1]).read().split("\n")
start = next(i for i, l in enumerate(lines) if l.startswith("users:"))
end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace() and not lines[i].startswith("- ")), len(lines))
out, i = [], start
while i < end:
    l = lines[i]
    if l.strip().startswith("- name: OS_") and i + 1 < end and lines[i + 1].strip() == "value: ''":
        i += 2
        continue
    out.append(l.replace(os.environ["SECRET"], "<the secret>"))
    i += 1
print("\n".join(out))
PY
export KUBECONFIG=$KC

say "5. Who am I? (kubectl -> kube-apiserver -> TokenReview -> k8s-keystone-auth -> Keystone)"
show "kubectl auth whoami"
kubectl auth whoami

say "6. An allowed request (policy rule 0: role k8s-viewer on project team-a may read pods and configmaps there)"
show "kubectl get configmaps"
kubectl get configmaps
show "kubectl auth can-i list pods -n team-a"
kubectl auth can-i list pods -n team-a || true

say "7. A refused one (nothing grants alice secrets in kube-system)"
show "kubectl get secrets -n kube-system"
if kubectl get secrets -n kube-system; then echo "unexpected: allowed"; exit 1; fi
show "kubectl auth can-i delete configmaps -n team-a"
kubectl auth can-i delete configmaps -n team-a || true

say "8. What the service logged (its decision log; no token or secret in it)"
grep -E '"review"|review ' "$BED_SERVICE_LOG" | tail -8 || tail -8 "$BED_SERVICE_LOG"
if grep -qF "$KS_AC_KUBECTL_RO_SECRET" "$BED_SERVICE_LOG"; then echo "the secret is in the log!"; exit 1; fi

if [ -n "${KEEP:-}" ]; then
  echo; echo "Left running. Try: KUBECONFIG=$KC kubectl get pods"
  echo "Stop with: BED_DIR=$BED_DIR bash tests/k8s/bed.sh down; bash tests/keystone/down.sh"
fi
