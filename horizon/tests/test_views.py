"""The plugin inside Horizon's Django (in this process): the panel keeps its place, only the
kubeconfig URL is replaced, the view answers with the kubeconfig or with an error message on the
credential's page, and never logs the secret. And upstream's own template, rendered as upstream's
view renders it, gives a file real kubectl refuses."""

from __future__ import annotations

import base64
import inspect
import json
import logging
import subprocess
from pathlib import Path

import pytest
import yaml

from kubernetes_keystone_horizon import kubeconfig as kc
from kubernetes_keystone_horizon import views

SECRET = "Sec-ret_1: #'\"x"
APP_CRED = {
    "id": "a1b2c3",
    "name": "my laptop",
    "secret": SECRET,
    "kubernetes_namespace": "team-a",
}
SERVER = "https://k8s.example.org:6443"


@pytest.fixture
def kube_settings(settings, ca_pem):
    settings.KUBECONFIG_ENABLED = True
    settings.KUBECONFIG_KUBERNETES_URL = SERVER
    settings.KUBECONFIG_CERTIFICATE_AUTHORITY_DATA = base64.b64encode(ca_pem).decode()
    return settings


@pytest.fixture
def settings(horizon):
    """Django's settings, restored after the test."""
    from django.conf import settings as s  # noqa: PLC0415

    saved = {k: getattr(s, k) for k in dir(s) if k.isupper()}
    yield s
    for k in [k for k in dir(s) if k.isupper() and k not in saved]:
        delattr(s, k)
    for k, v in saved.items():
        setattr(s, k, v)


def messages_of(request) -> list[str]:
    from django.contrib.messages import get_messages  # noqa: PLC0415

    return [str(m) for m in get_messages(request)]


def test_the_panel_keeps_its_place_and_only_the_kubeconfig_url_is_ours(horizon):
    from openstack_dashboard.dashboards.identity.application_credentials import (  # noqa: PLC0415
        panel as upstream_panel,
    )
    from openstack_dashboard.dashboards.identity.application_credentials import (  # noqa: PLC0415
        urls as upstream_urls,
    )

    from kubernetes_keystone_horizon import panel  # noqa: PLC0415

    identity = horizon.get_dashboard("identity")
    registered = identity.get_panel("application_credentials")
    assert type(registered) is panel.ApplicationCredentialsPanel
    assert isinstance(registered, upstream_panel.ApplicationCredentialsPanel)
    # Its group and its place in it are those of upstream's enabled file (_3090_...).
    group = identity.get_panel_group("default")
    slugs = [p.slug for p in group]
    assert "application_credentials" in slugs
    assert slugs.index("application_credentials") == len(
        [s for s in slugs if s in ("domains", "projects", "users", "groups", "roles")]
    ), slugs

    from django.urls import resolve, reverse  # noqa: PLC0415

    for p in upstream_urls.urlpatterns:
        kwargs = (
            {"application_credential_id": "x"}
            if "application_credential_id" in str(p.pattern)
            else {}
        )
        path = reverse(f"horizon:identity:application_credentials:{p.name}", kwargs=kwargs)
        func = inspect.unwrap(resolve(path).func)
        if p.name == "download_kubeconfig":
            assert func is inspect.unwrap(views.download_kubeconfig_file), path
        else:
            want = getattr(p.callback, "view_class", None) or inspect.unwrap(p.callback)
            assert (getattr(func, "view_class", None) or func) is want, path


def test_download_gives_the_kubeconfig(kube_settings, make_request, ca_pem):
    response = views.download_kubeconfig_file(make_request(dict(APP_CRED)))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="app-cred-my-laptop-kubeconfig"'
    assert response["Cache-Control"] == "no-store"
    got = yaml.safe_load(response.content.decode())
    want = kc.build(
        kc.Inputs(
            server=SERVER,
            ca_pem=ca_pem,
            keystone_url="https://keystone.example.org:5000/v3",
            credential_id="a1b2c3",
            credential_secret=SECRET,
            cluster="k8s.example.org:6443",
            user="my-laptop@k8s.example.org:6443",
            context="my-laptop@k8s.example.org:6443",
            namespace="team-a",
        )
    )
    assert got == want


def test_the_bearer_token_setting_gives_the_token_form(kube_settings, make_request, caplog):
    caplog.set_level(logging.DEBUG)
    kube_settings.KUBERNETES_KEYSTONE_BEARER_TOKEN = True
    response = views.download_kubeconfig_file(make_request(dict(APP_CRED)))
    assert response.status_code == 200
    user = yaml.safe_load(response.content.decode())["users"][0]["user"]
    assert "exec" not in user
    token = kc.bearer_token("a1b2c3", SECRET)
    assert user["token"] == token
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "kubeconfig of application credential a1b2c3" in text
    assert SECRET not in text
    assert token not in text


def test_own_settings(kube_settings, make_request):
    kube_settings.KUBERNETES_KEYSTONE_COMMAND = "/usr/local/bin/kubectl-keystone-auth"
    kube_settings.KUBERNETES_KEYSTONE_INSTALL_HINT = "Get it from https://example.org/kk"
    kube_settings.KUBERNETES_KEYSTONE_CLUSTER_NAME = "prod cluster"
    kube_settings.KUBERNETES_KEYSTONE_AUTH_URL = "https://public-keystone.example.org"
    got = yaml.safe_load(views.download_kubeconfig_file(make_request(dict(APP_CRED))).content)
    ex = got["users"][0]["user"]["exec"]
    assert ex["command"] == "/usr/local/bin/kubectl-keystone-auth"
    assert ex["installHint"] == "Get it from https://example.org/kk"
    assert got["clusters"][0]["name"] == "prod-cluster"
    assert got["users"][0]["name"] == "my-laptop@prod-cluster"
    assert ex["env"][0] == {
        "name": "OS_AUTH_URL",
        "value": "https://public-keystone.example.org/v3",
    }


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("KUBECONFIG_KUBERNETES_URL", "", "KUBECONFIG_KUBERNETES_URL is not set"),
        ("KUBECONFIG_KUBERNETES_URL", None, "KUBECONFIG_KUBERNETES_URL is not set"),
        ("KUBECONFIG_KUBERNETES_URL", "http://k8s:6443", "must be an https:// URL"),
        (
            "KUBECONFIG_CERTIFICATE_AUTHORITY_DATA",
            "",
            "KUBECONFIG_CERTIFICATE_AUTHORITY_DATA is not",
        ),
        ("KUBECONFIG_CERTIFICATE_AUTHORITY_DATA", None, "KUBECONFIG_CERTIFICATE_AUTHORITY_DATA is"),
        ("KUBECONFIG_CERTIFICATE_AUTHORITY_DATA", "bm90IGEgY2VydA==", "no PEM certificate"),
    ],
)
def test_a_missing_setting_is_an_error_on_the_credentials_page(
    kube_settings, make_request, setting, value, words
):
    if value is None:
        delattr(kube_settings, setting)
    else:
        setattr(kube_settings, setting, value)
    request = make_request(dict(APP_CRED))
    response = views.download_kubeconfig_file(request)
    # Back to the credential's page (it still shows the secret), with the reason: no file.
    assert response.status_code == 302
    assert response["Location"] == "/identity/application_credentials/success/"
    assert "Content-Disposition" not in response
    shown = messages_of(request)
    assert len(shown) == 1
    assert shown[0].startswith("The kubeconfig file cannot be made: ")
    assert words in shown[0]


def test_a_bad_namespace_or_no_catalog_is_an_error(kube_settings, make_request):
    request = make_request({**APP_CRED, "kubernetes_namespace": "Team A"})
    assert views.download_kubeconfig_file(request).status_code == 302
    assert "not a valid namespace name" in messages_of(request)[0]
    request = make_request(dict(APP_CRED), catalog_url=None)
    assert views.download_kubeconfig_file(request).status_code == 302
    assert "KUBERNETES_KEYSTONE_AUTH_URL" in messages_of(request)[0]


def test_no_credential_in_the_session(kube_settings, make_request):
    request = make_request(None)
    response = views.download_kubeconfig_file(request)
    assert response.status_code == 302
    assert response["Location"] == "/identity/application_credentials/"
    assert "create one" in messages_of(request)[0]


def test_the_secret_is_never_logged(kube_settings, make_request, caplog):
    caplog.set_level(logging.DEBUG)
    requests = []
    ok = make_request(dict(APP_CRED))
    assert views.download_kubeconfig_file(ok).status_code == 200
    requests.append(ok)
    kube_settings.KUBECONFIG_CERTIFICATE_AUTHORITY_DATA = ""
    failed = make_request(dict(APP_CRED))
    assert views.download_kubeconfig_file(failed).status_code == 302
    requests.append(failed)
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    # Something was logged (so the check means something), the secret never.
    assert "kubeconfig of application credential a1b2c3" in text
    assert "not made" in text
    assert SECRET not in text
    for r in requests:
        assert all(SECRET not in m for m in messages_of(r))


def kubectl_view(kubectl, path: Path):
    return subprocess.run(
        [kubectl, "--kubeconfig", str(path), "config", "view", "--raw", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_upstream_template_is_broken_and_ours_is_not(
    kube_settings, make_request, kubectl, tmp_path
):
    """Upstream's view renders kubeconfig.template with its own context: the quote it leaves
    open makes the file one kubectl cannot read. Ours, for the same request, can be read."""
    from openstack_dashboard.dashboards.identity.application_credentials import (  # noqa: PLC0415
        views as upstream,
    )

    stock = upstream.download_kubeconfig_file(make_request(dict(APP_CRED)))
    assert stock.status_code == 200
    text = stock.content.decode()
    assert '- "--keystone-url=https://keystone.example.org:5000/v3/\n' in text
    assert "command: bin/kubectl-keystone-auth" in text
    assert "client.authentication.k8s.io/v1beta1" in text
    # Upstream puts the secret in args (seen by every local user in ps), HTML-escaped.
    assert '--application-credential-secret=Sec-ret_1: #&#x27;&quot;x"' in text
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(text)
    (tmp_path / "stock").write_text(text)
    run = kubectl_view(kubectl, tmp_path / "stock")
    assert run.returncode != 0
    assert "did not find expected key" in run.stderr, run.stderr
    assert "line 22" in run.stderr, run.stderr

    ours = views.download_kubeconfig_file(make_request(dict(APP_CRED)))
    (tmp_path / "ours").write_bytes(ours.content)
    run = kubectl_view(kubectl, tmp_path / "ours")
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    ex = seen["users"][0]["user"]["exec"]
    assert ex["command"] == "kubectl-keystone-auth"
    assert ex["apiVersion"] == "client.authentication.k8s.io/v1"
    assert ex.get("args") is None
    assert seen["contexts"][0]["context"]["namespace"] == "team-a"
