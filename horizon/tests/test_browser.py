"""The whole path as a person takes it, for real: Horizon 27 (runserver on 127.0.0.1, this
plugin enabled) against the test Keystone, headless Debian Chromium driven by Playwright. Alice
logs in, creates an application credential in the panel and presses "Download kubeconfig file";
then real kubectl with only that file, and only kubectl-keystone-auth beside it on PATH, reaches
the test bed's kube-apiserver, which asks k8s-keystone-auth, which asks Keystone."""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import env, need

from kubernetes_keystone_horizon import kubeconfig as kc

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Live:
    url: str
    keystone: str
    server: str
    ca_pem: bytes
    log: Path


def record_issued(log_dir: Path, secret: str) -> None:
    """For tests/run's scan: no log of the run may contain it."""
    with open(log_dir / "issued-tokens", "a", encoding="utf-8") as f:
        f.write(secret + "\n")


def read_env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keystone(url: str, method: str, path: str, token: str | None = None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers=headers)  # noqa: S310 (the test Keystone)
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        raw = resp.read()
        return resp.headers, (json.loads(raw) if raw else None)


@pytest.fixture(scope="module")
def live(log_dir, tmp_path_factory):
    """Horizon on a free port of 127.0.0.1, its output in the run's logs; stopped at the end."""
    need(f"Debian's chromium at {CHROMIUM}", os.path.exists(CHROMIUM) and CHROMIUM)
    ks_url = env("KS_URL")
    bed = read_env_file(Path(env("K8S_V1_DIR")) / "env")
    ca_pem = Path(bed["K8S_CA_FILE"]).read_bytes()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = log_dir / "horizon-server.log"
    run_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "openstack_dashboard.settings",
        "HORIZON_TEST_KUBERNETES_URL": bed["K8S_SERVER"],
        "HORIZON_TEST_KUBERNETES_CA_DATA": base64.b64encode(ca_pem).decode(),
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, "-m", "django", "runserver", "--insecure", "--noreload"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*argv, f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=run_env,
            cwd=tmp_path_factory.mktemp("horizon"),
            start_new_session=True,
        )
    try:
        # Up when the login page answers (bounded: 90 s), or failed when the server exits.
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Horizon exited with {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/auth/login/", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Horizon did not answer within 90 s: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Live(url=url, keystone=ks_url, server=bed["K8S_SERVER"], ca_pem=ca_pem, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def redact(doc, secret: str):
    return json.loads(json.dumps(doc).replace(json.dumps(secret)[1:-1], "<the secret>"))


def kubectl_only(kubectl: str, plugin_bin: str, tmp: Path):
    """Runs kubectl with a PATH holding kubectl and kubectl-keystone-auth only, an empty home
    and no OS_* variable: the kubeconfig is all it has."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").symlink_to(kubectl)
    (bin_dir / "kubectl-keystone-auth").symlink_to(plugin_bin)
    home = tmp / "home"
    home.mkdir()
    run_env = {"PATH": str(bin_dir), "HOME": str(home), "XDG_CACHE_HOME": str(tmp / "cache")}

    def run(*args: str):
        return subprocess.run(
            [str(bin_dir / "kubectl"), *args],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run, tmp / "cache"


def test_download_kubeconfig_in_horizon_then_kubectl(live, kubectl, plugin_bin, log_dir, tmp_path):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    started = time.monotonic()
    name = f"horizon-test-{secrets.token_hex(4)}"
    domain, password = env("KS_DOMAIN_NAME"), env("KS_ALICE_PASSWORD")
    kubeconfig = tmp_path / "downloaded-kubeconfig"
    cred_id = secret = None
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(
                    accept_downloads=True, viewport={"width": 1280, "height": 720}
                ).new_page()
                page.set_default_timeout(30_000)
                page.goto(f"{live.url}/auth/login/")
                page.fill("#id_domain", domain)
                page.fill("#id_username", "alice")
                page.fill("#id_password", password)
                page.click("#loginBtn")
                page.wait_for_url(lambda u: "/auth/login" not in u)

                page.goto(f"{live.url}/identity/application_credentials/")
                # The panel is where upstream puts it: in Identity's menu, and current.
                menu = page.locator("a.openstack-panel.active", has_text="Application Credentials")
                assert menu.count() == 1
                page.click("a#application_credentials__action_create")
                page.fill("#id_name", name)
                page.fill("#id_kubernetes_namespace", "team-a")
                page.click(".modal-footer input[type=submit], .modal-footer button[type=submit]")
                button = page.locator("a", has_text="Download kubeconfig file")
                button.wait_for()
                cred_id = page.input_value("#id_app_cred_id")
                secret = page.input_value("#id_app_cred_secret")
                assert secret
                record_issued(log_dir, secret)

                # The success modal, the secret masked; HORIZON_SCREENSHOT=docs/... updates the
                # docs' picture.
                shots = [log_dir / "horizon-success-modal.png"]
                shots += [Path(x) for x in [os.environ.get("HORIZON_SCREENSHOT")] if x]
                for shot in shots:
                    page.screenshot(
                        path=str(shot),
                        mask=[page.locator("#id_app_cred_secret")],
                        mask_color="#dde1e6",
                    )

                with page.expect_download() as download:
                    button.click()
                assert download.value.suggested_filename == f"app-cred-{name}-kubeconfig"
                download.value.save_as(kubeconfig)
                # Upstream's two other buttons still give upstream's files.
                for label, words in [
                    ("Download openrc file", f'export OS_APPLICATION_CREDENTIAL_ID="{cred_id}"'),
                    ("Download clouds.yaml", f'application_credential_id: "{cred_id}"'),
                ]:
                    with page.expect_download() as other:
                        page.locator("a", has_text=label).click()
                    other.value.save_as(tmp_path / "other")
                    # (Never an assert that would print the file: it holds the secret.)
                    if words not in (tmp_path / "other").read_text():
                        pytest.fail(f"{label}: the file has no {words!r}")
            finally:
                browser.close()
        browser_s = time.monotonic() - started

        # The file: exactly what the builder makes of these settings and this credential.
        cluster = kc.default_cluster_name(live.server)
        want = kc.build(
            kc.Inputs(
                server=live.server,
                ca_pem=live.ca_pem,
                keystone_url=kc.normalize_keystone_url(live.keystone),
                credential_id=cred_id,
                credential_secret=secret,
                cluster=cluster,
                user=f"{name}@{cluster}",
                context=f"{name}@{cluster}",
                namespace="team-a",
            )
        )
        try:
            got = yaml.safe_load(kubeconfig.read_text())
        except yaml.YAMLError as e:  # (its message would quote the file, and so the secret)
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
            pytest.fail(f"the downloaded kubeconfig is not YAML ({type(e).__name__} at {where})")
        # Compared with the secret taken out, so that a failure never prints it.
        assert redact(got, secret) == redact(want, secret)
        assert "<the secret>" in json.dumps(redact(got, secret))

        kubectl_run, cache = kubectl_only(kubectl, plugin_bin, tmp_path)
        whoami = kubectl_run("--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json")
        assert whoami.returncode == 0, whoami.stderr
        user = json.loads(whoami.stdout)["status"]["userInfo"]
        assert user["username"] == "alice"
        assert user["uid"] == env("KS_ALICE_ID")
        assert user["extra"]["alpha.kubernetes.io/identity/project/name"] == ["team-a"]
        # The context's namespace is the form's; alice's k8s-viewer role may list its pods.
        pods = kubectl_run("--kubeconfig", str(kubeconfig), "get", "pods")
        assert pods.returncode == 0, pods.stderr
        assert "No resources found in team-a namespace." in pods.stderr
        for f in (cache / "kubectl-keystone-auth").glob("*.json"):
            record_issued(log_dir, json.loads(f.read_text())["token"])
        with open(log_dir / "figures.txt", "a", encoding="utf-8") as f:
            f.write(
                f"horizon: browser test {browser_s:.1f} s (login, create, download), "
                f"{time.monotonic() - started:.1f} s with kubectl\n"
            )
    finally:
        if cred_id:
            delete_credential(live.keystone, cred_id, domain, password, log_dir)


def delete_credential(ks_url: str, cred_id: str, domain: str, password: str, log_dir: Path):
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "alice", "domain": {"name": domain}, "password": password}
                },
            }
        }
    }
    headers, _ = keystone(ks_url, "POST", "/auth/tokens", body=body)
    token = headers["X-Subject-Token"]
    record_issued(log_dir, token)
    keystone(
        ks_url, "DELETE", f"/users/{env('KS_ALICE_ID')}/application_credentials/{cred_id}", token
    )
