"""One format: for the same inputs, the plugin's builder and ``kubectl-keystone-auth kubeconfig``
(the Rust generator, run with ``--no-verify`` so that it asks no Keystone) write the same
document. And real kubectl reads it."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from kubernetes_keystone_horizon import kubeconfig as kc

CASES = [
    pytest.param({}, id="plain"),
    pytest.param({"namespace": None}, id="no-namespace"),
    pytest.param({"command": "/opt/kk/bin/kubectl-keystone-auth"}, id="command"),
    pytest.param({"server": "https://k8s.example.org", "cluster": "k8s.example.org"}, id="no-port"),
    pytest.param(
        {"user": "my-laptop@c:1", "context": "my-laptop@c:1", "cluster": "c:1"}, id="odd-names"
    ),
    pytest.param(
        {"credential_secret": "sp ace: #'\"*&yes\\", "credential_id": "0123"}, id="odd-secret"
    ),
    pytest.param({"keystone_url": "http://127.0.0.1:5000/identity/"}, id="keystone-url"),
    pytest.param({"bearer_token": True}, id="bearer-token"),
    pytest.param(
        {"bearer_token": True, "credential_secret": "sp ace: #'\"*&ü\\"}, id="bearer-odd-secret"
    ),
]


def run_rust(plugin_bin, tmp_path, ca_pem, i: kc.Inputs, keystone_url_raw: str, *, names=True):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(ca_pem)
    argv = [plugin_bin, "kubeconfig", "--no-verify", "--server", i.server]
    argv += ["--certificate-authority", str(ca), "--keystone-url", keystone_url_raw]
    argv += ["--application-credential-id", i.credential_id]
    argv += ["--application-credential-secret", i.credential_secret]
    if i.bearer_token:
        argv += ["--bearer-token"]
    else:
        argv += ["--command", i.command]
    if names:
        argv += ["--cluster-name", i.cluster, "--kube-user", i.user, "--context-name", i.context]
    if i.namespace:
        argv += ["--namespace", i.namespace]
    # Nothing of this shell's OS_* or clouds.yaml: the inputs are the flags only.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    return yaml.safe_load(run.stdout)


@pytest.mark.parametrize("over", CASES)
def test_same_document_as_the_rust_generator(plugin_bin, tmp_path, ca_pem, over):
    raw_url = over.pop("keystone_url", "https://keystone.example.org:5000")
    base = {
        "server": "https://k8s.example.org:6443",
        "ca_pem": ca_pem,
        "keystone_url": kc.normalize_keystone_url(raw_url),
        "credential_id": "1c3f00aa",
        "credential_secret": "secret-1",
        "cluster": "k8s.example.org:6443",
        "user": "kubectl@k8s.example.org:6443",
        "context": "kubectl@k8s.example.org:6443",
        "namespace": "team-a",
    }
    i = kc.Inputs(**{**base, **over})
    ours = yaml.safe_load(kc.render(kc.build(i)))
    theirs = run_rust(plugin_bin, tmp_path, ca_pem, i, raw_url)
    assert ours == theirs


@pytest.mark.parametrize(
    "server", ["https://k8s.example.org:6443", "https://K8S.example.org:443", "https://[::1]:6443"]
)
def test_default_cluster_name_is_the_plugins(plugin_bin, tmp_path, ca_pem, server):
    i = kc.Inputs(
        server=server,
        ca_pem=ca_pem,
        keystone_url="https://ks/v3",
        credential_id="id",
        credential_secret="s",
    )
    theirs = run_rust(plugin_bin, tmp_path, ca_pem, i, "https://ks", names=False)
    assert theirs["clusters"][0]["name"] == kc.default_cluster_name(server)


def test_kubectl_reads_it(kubectl, tmp_path, ca_pem):
    name = kc.safe_name("my laptop (ü)")
    i = kc.Inputs(
        server="https://k8s.example.org:6443",
        ca_pem=ca_pem,
        keystone_url="https://ks/v3",
        credential_id="id",
        credential_secret="s: #'\"",
        cluster="k8s.example.org:6443",
        user=f"{name}@k8s.example.org:6443",
        context=f"{name}@k8s.example.org:6443",
        namespace="team-a",
    )
    f = tmp_path / "kubeconfig"
    f.write_text(kc.render(kc.build(i)))
    run = subprocess.run(
        [kubectl, "--kubeconfig", str(f), "config", "view", "--raw", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["current-context"] == f"{name}@k8s.example.org:6443"
    ex = seen["users"][0]["user"]["exec"]
    assert ex["apiVersion"] == "client.authentication.k8s.io/v1"
    assert {"name": "OS_APPLICATION_CREDENTIAL_SECRET", "value": "s: #'\""} in ex["env"]
    assert ex.get("args") is None
