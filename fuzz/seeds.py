#!/usr/bin/env python3
"""Writes the committed seed corpus (fuzz/corpus/<target>/) from the project's own fixtures and
the shapes its tests use. Rerun after changing a seed: `python3 fuzz/seeds.py`."""
import json
import os
from pathlib import Path

root = Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "corpus"


def write(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, (dict, list)):
        data = json.dumps(data, indent=1)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


token = "gAAAAABhermeticseedxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
extra = {"alpha.kubernetes.io/identity/project/id": ["p-team-a"],
         "alpha.kubernetes.io/identity/roles": ["member"]}

# review: bodies as kube-apiserver sends them (tests/hermetic/support.rs), and refused ones.
for v in ["v1", "v1beta1"]:
    write("review", f"token-review-{v}", {
        "apiVersion": f"authentication.k8s.io/{v}", "kind": "TokenReview",
        "metadata": {"creationTimestamp": None},
        "spec": {"token": token, "audiences": ["https://kubernetes.default.svc"]}, "status": {}})
write("review", "sar-v1-resource", {
    "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
    "metadata": {"creationTimestamp": None},
    "spec": {"user": "alice", "uid": "u-alice", "groups": ["devs", "p-team-a"], "extra": extra,
             "resourceAttributes": {"verb": "list", "namespace": "default", "version": "v1",
                                    "resource": "pods"}},
    "status": {"allowed": False}})
write("review", "sar-v1beta1-nonresource-access-rules", {
    "apiVersion": "authorization.k8s.io/v1beta1", "kind": "SubjectAccessReview",
    "spec": {"user": "alice", "group": ["devs"],
             "extra": dict(extra, **{"alpha.kubernetes.io/identity/access-rules":
                                     ["GET /api/v1/namespaces/*/pods", "GET /healthz"]}),
             "nonResourceAttributes": {"verb": "get", "path": "/healthz"}}})
write("review", "sar-serviceaccount", {
    "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
    "spec": {"user": "system:serviceaccount:default:x",
             "extra": {"authentication.kubernetes.io/credential-id": ["JTI=1"],
                       "alpha.kubernetes.io/identity/project/id": ["p1"]},
             "resourceAttributes": {"verb": "get", "namespace": "default", "group": "apps",
                                    "resource": "deployments", "subresource": "scale", "name": "web"}}})
write("review", "wrong-version", '{"apiVersion":"authentication.k8s.io/v2","kind":"TokenReview","spec":{"token":"x"}}')
write("review", "wrong-type", '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":5}}')

# policy: the text, a NUL, then bytes that choose the request.
request = b"\x00\x01\x01\x00\x03\x01\x00\x02\x01\x04\x01\x05\x01\x07\x01\x06\x01\x0b\x01\x0c"
for name, path in [("reference-example", "tests/fixtures/policy/reference_example.json"),
                   ("deploy-example", "deploy/policy-example.json"),
                   ("rbac-bundle", "deploy/rbac/k8s-keystone-auth/policy.json")]:
    p = root / path
    if p.exists():
        write("policy", name, p.read_bytes() + request)
write("policy", "v1-only", json.dumps([
    {"resource": {"verbs": ["get", "list"], "resources": ["pods", "pods/*"], "version": "",
                  "namespace": "*"},
     "match": [{"type": "project", "values": ["demo"]}, {"type": "group", "values": ["*"]}]},
    {"nonresource": {"verbs": ["*"], "path": "/healthz*"},
     "match": [{"type": "user", "values": ["alice"]}]}]).encode() + request)
write("policy", "v2-only", json.dumps([
    {"users": {"roles": ["admin"], "projects": ["p1"]},
     "resource_permissions": {"*/*": ["*"], "!['kube-system']/secrets": ["get"]},
     "nonresource_permissions": {"/api": ["get"]}}]).encode() + request)
write("policy", "skipped-part", b'[{"nonresource": {"verbs": ["get"]}, "match": []}]' + request)

# sync_config
for name, path in [("rbac-bundle", "deploy/rbac/k8s-keystone-auth/sync-config.yaml")]:
    write("sync_config", name, (root / path).read_bytes())
write("sync_config", "reference", "data-types-to-sync: [projects, role_assignments]\nnamespace-format: \"prefix-%d-%n-%i-suffix\"\nprojects-name-blacklist: [admin]\nrole-mappings:\n  - keystone-role: member\n    groups: [mygroup]\n")
write("sync_config", "lenient", "namespace-format: \"\"\nunknown: 1\nrole-mappings:\n  - keystone-role: \"\"\n    username: bob\n    cluster-role: view\n    extra: x\n")
write("sync_config", "empty", "")

# keystone: answers as tests/hermetic/fake.rs scripts them.
user = {"id": "u-alice", "name": "alice", "domain": {"id": "d1", "name": "k8s"}}
project = {"id": "p-team-a", "name": "team-a", "domain": {"id": "d1", "name": "k8s"}}
roles = [{"id": "r1", "name": "member"}, {"id": "r2", "name": "k8s-viewer"}]
write("keystone", "token", {"token": {"methods": ["password"], "user": user, "project": project,
                                      "roles": roles, "expires_at": "2030-01-01T00:00:00.000000Z"}})
write("keystone", "token-app-cred-rules", {"token": {
    "methods": ["application_credential"], "user": user, "project": project, "roles": roles,
    "expires_at": "2030-01-01T00:00:00Z",
    "application_credential": {"id": "ac1", "name": "ci", "restricted": True, "access_rules": [
        {"service": "k8s", "method": "GET", "path": "/api/v1/namespaces/*/pods"},
        {"service": "compute", "method": "GET", "path": "/servers"}]}}})
write("keystone", "token-trust-unscoped", {"token": {"methods": ["token"], "user": user,
    "roles": None, "expires_at": "bad", "OS-TRUST:trust": {"id": "t"}}})
write("keystone", "groups", {"groups": [{"id": "g-devs", "name": "devs"}],
                             "links": {"next": "http://127.0.0.1/v3/users/u/groups?page=2", "self": "x", "previous": None}})
write("keystone", "projects", {"projects": [{"id": "p1", "name": "demo", "domain_id": "default", "enabled": False}],
                               "links": {"next": None}, "truncated": True})
write("keystone", "role-assignments", {"role_assignments": [
    {"role": {"id": "r1", "name": "member"}, "user": {"id": "u1", "name": "alice", "domain": {"id": "default"}},
     "scope": {"project": {"id": "p1"}}}], "links": {}})
write("keystone", "created", {"application_credential": {"id": "ac", "name": "n", "secret": "s3cr3t-value-long",
                                                         "project_id": "p1", "expires_at": None, "roles": roles}})
write("keystone", "error", {"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}})

# exec_credential: KUBERNETES_EXEC_INFO as kubectl sets it.
write("exec_credential", "v1-cluster", {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
    "spec": {"interactive": True, "cluster": {"server": "https://127.0.0.1:6443", "tls-server-name": "k",
             "insecure-skip-tls-verify": False, "certificate-authority-data": "eA==",
             "proxy-url": "http://p", "disable-compression": True, "config": {"a": [1, None]}}}})
write("exec_credential", "v1beta1", {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "spec": {}})
write("exec_credential", "answer", {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
    "status": {"token": "t", "expirationTimestamp": "2030-01-01T00:00:00.5+02:00"}})
# Found by the fuzzer: the plugin trims Unicode whitespace (here a vertical tab) before parsing.
write("exec_credential", "vertical-tab", b"{\n }\x0b\t\t\t")
write("exec_credential", "unknown-version", '{"apiVersion":"client.authentication.k8s.io/v2","spec":null}')

# kubeconfig
write("kubeconfig", "webhook", (root / "deploy/webhook-kubeconfig.yaml").read_bytes())
write("kubeconfig", "generated", """apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: garr
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: eA==
    extensions:
    - name: kubectl-keystone-auth
      extension:
        generated-by: kubectl-keystone-auth
contexts:
- name: alice@garr
  context:
    cluster: garr
    user: alice
    namespace: team-a
users:
- name: alice
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: kubectl-keystone-auth
      env:
      - name: OS_PASSWORD
        value: secret
      interactiveMode: IfAvailable
      provideClusterInfo: false
current-context: alice@garr
""")
write("kubeconfig", "foreign-entries", """apiVersion: v1
kind: Config
clusters:
- name: garr
  cluster: {server: "https://other", insecure-skip-tls-verify: true, x-unknown: [1, 2]}
users:
- name: admin
  user: {client-certificate-data: eA==, client-key-data: eQ==, token: abc, username: u, password: p}
contexts: []
current-context: ""
x-top: {a: b}
""")
write("kubeconfig", "empty", "# nothing\n")
