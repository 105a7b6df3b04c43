#!/usr/bin/env python3
"""Seed the test Keystone started by tests/keystone/up.sh.

Creates (find-or-create by name, so it is idempotent):
  domain k8s; project team-a (k8s); project other (Default); project service (Default)
  roles k8s-viewer, k8s-editor, member, service
  alice (k8s)    member + k8s-viewer + k8s-editor on team-a, default project team-a
  bob (k8s)      k8s-viewer on team-a, NO default project
  alice (Default) member on other, default project other (same name, other domain)
  k8s-webhook (Default) role service on project service (may validate any token)
  groups k8s-admins and team-a-devs (k8s), alice (k8s) member of both
  app creds of alice (k8s) with fixed secrets:
    kubectl             all her roles
    kubectl-ro          only k8s-viewer
    kubectl-rules       access rule  k8s     GET /api/v1/namespaces/*/pods
    kubectl-rules-other access rule  compute GET /v2.1/servers   (no k8s rule)

Stdlib only. Prints shell `export K=V` lines on stdout; errors go to stderr, exit 1.
Env: KS_URL (or KS_PORT, default 5000), KS_ADMIN_PASSWORD (default AdminPass123),
     KS_DIR (default /tmp/keystone-test, only for KS_ACCESS_LOG).
"""
import json
import os
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request

KS = (os.environ.get("KS_URL") or f"http://127.0.0.1:{os.environ.get('KS_PORT', '5000')}/v3").rstrip("/")
KS_DIR = os.environ.get("KS_DIR", "/tmp/keystone-test")
ADMIN_PW = os.environ.get("KS_ADMIN_PASSWORD", "AdminPass123")
ALICE_PW = "AlicePass123"
BOB_PW = "BobPass123"
WEBHOOK_PW = "WebhookPass123"


def req(method, path, token=None, body=None, headers=None):
    h = {"Content-Type": "application/json", **(headers or {})}
    if token:
        h["X-Auth-Token"] = token
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(KS + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            raw = resp.read()
            return resp.status, resp.headers, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return e.code, e.headers, parsed
    except urllib.error.URLError as e:
        sys.exit(f"seed: cannot reach {KS}{path}: {e.reason}")


def must(expected, result, what):
    code, hdrs, body = result
    if code not in expected:
        sys.exit(f"seed: {what}: HTTP {code} {body}")
    return hdrs, body


def password_token(user, pw, udom, proj, pdom):
    body = {"auth": {"identity": {"methods": ["password"],
                                  "password": {"user": {"name": user, "domain": {"name": udom}, "password": pw}}},
                     "scope": {"project": {"name": proj, "domain": {"name": pdom}}}}}
    hdrs, _ = must({201}, req("POST", "/auth/tokens", body=body), f"token for {user}@{udom}")
    return hdrs["X-Subject-Token"]


ADMIN = password_token("admin", ADMIN_PW, "Default", "admin", "Default")


def q(v):
    return urllib.parse.quote(v, safe="")


def find_or_create(coll, key, name, attrs, domain_id=None):
    query = f"?name={q(name)}" + (f"&domain_id={q(domain_id)}" if domain_id else "")
    _, body = must({200}, req("GET", f"/{coll}{query}", ADMIN), f"list {coll}")
    if body[coll]:
        return body[coll][0]
    if domain_id:
        attrs = {"domain_id": domain_id, **attrs}
    _, body = must({201}, req("POST", f"/{coll}", ADMIN, {key: {"name": name, **attrs}}), f"create {key} {name}")
    return body[key]


def grant(project_id, user_id, role_id, what):
    must({204}, req("PUT", f"/projects/{project_id}/users/{user_id}/roles/{role_id}", ADMIN), f"grant {what}")


dom = find_or_create("domains", "domain", "k8s", {"description": "Kubernetes users"})
proj = find_or_create("projects", "project", "team-a", {}, dom["id"])
other = find_or_create("projects", "project", "other", {}, "default")
svcproj = find_or_create("projects", "project", "service", {}, "default")
roles = {n: find_or_create("roles", "role", n, {})["id"] for n in ("k8s-viewer", "k8s-editor", "member", "service")}

alice = find_or_create("users", "user", "alice", {"password": ALICE_PW, "default_project_id": proj["id"]}, dom["id"])
bob = find_or_create("users", "user", "bob", {"password": BOB_PW}, dom["id"])
alice_def = find_or_create("users", "user", "alice", {"password": ALICE_PW, "default_project_id": other["id"]}, "default")
hook = find_or_create("users", "user", "k8s-webhook", {"password": WEBHOOK_PW}, "default")

for rname in ("member", "k8s-viewer", "k8s-editor"):
    grant(proj["id"], alice["id"], roles[rname], f"{rname} to alice on team-a")
grant(proj["id"], bob["id"], roles["k8s-viewer"], "k8s-viewer to bob on team-a")
grant(other["id"], alice_def["id"], roles["member"], "member to alice@Default on other")
grant(svcproj["id"], hook["id"], roles["service"], "service to k8s-webhook on service")

for gname in ("k8s-admins", "team-a-devs"):
    g = find_or_create("groups", "group", gname, {"description": f"test group {gname}"}, dom["id"])
    must({204}, req("PUT", f"/groups/{g['id']}/users/{alice['id']}", ADMIN), f"add alice to {gname}")
_, body = must({200}, req("GET", f"/users/{alice['id']}/groups", ADMIN), "list alice's groups")
groups = sorted(g["name"] for g in body["groups"])

ALICE = password_token("alice", ALICE_PW, "k8s", "team-a", "k8s")
APPCREDS = {
    "kubectl": {"secret": "kubectl-secret-1"},
    "kubectl-ro": {"secret": "kubectl-ro-secret-1", "roles": [{"name": "k8s-viewer"}]},
    "kubectl-rules": {"secret": "kubectl-rules-secret-1", "access_rules": [
        {"service": "k8s", "method": "GET", "path": "/api/v1/namespaces/*/pods"}]},
    "kubectl-rules-other": {"secret": "kubectl-rules-other-secret-1", "access_rules": [
        {"service": "compute", "method": "GET", "path": "/v2.1/servers"}]},
}

out = {
    "KS_URL": KS,
    "KS_ADMIN_PASSWORD": ADMIN_PW,
    "KS_ACCESS_LOG": os.path.join(KS_DIR, "log", "access.log"),
    "KS_DOMAIN_ID": dom["id"],
    "KS_DOMAIN_NAME": "k8s",
    "KS_PROJECT_ID": proj["id"],
    "KS_PROJECT_NAME": "team-a",
    "KS_OTHER_PROJECT_ID": other["id"],
    "KS_OTHER_PROJECT_NAME": "other",
    "KS_ALICE_ID": alice["id"],
    "KS_ALICE_PASSWORD": ALICE_PW,
    "KS_ALICE_DEFAULT_ID": alice_def["id"],
    "KS_BOB_ID": bob["id"],
    "KS_BOB_PASSWORD": BOB_PW,
    "KS_GROUPS": ",".join(groups),
    "KS_WEBHOOK_USER_ID": hook["id"],
    "KS_WEBHOOK_USER": "k8s-webhook",
    "KS_WEBHOOK_PASSWORD": WEBHOOK_PW,
    "KS_WEBHOOK_USER_DOMAIN_ID": "default",
    "KS_WEBHOOK_PROJECT": "service",
    "KS_WEBHOOK_PROJECT_ID": svcproj["id"],
}
for name, attrs in APPCREDS.items():
    _, body = must({200}, req("GET", f"/users/{alice['id']}/application_credentials?name={q(name)}", ALICE),
                   "list app creds")
    if body["application_credentials"]:
        ac = body["application_credentials"][0]
    else:
        _, body = must({201}, req("POST", f"/users/{alice['id']}/application_credentials", ALICE,
                                  {"application_credential": {"name": name, **attrs}}), f"create app cred {name}")
        ac = body["application_credential"]
    var = name.upper().replace("-", "_")
    out[f"KS_AC_{var}_ID"] = ac["id"]
    out[f"KS_AC_{var}_SECRET"] = attrs["secret"]

for k, v in out.items():
    print(f"export {k}={shlex.quote(v)}")
