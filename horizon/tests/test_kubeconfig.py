"""The kubeconfig builder alone: inputs checked with messages that name the setting, odd names
made safe, the document as YAML that reads back the same, the secret only in ``env``."""

from __future__ import annotations

import base64

import pytest
import yaml

from kubernetes_keystone_horizon import kubeconfig as kc

SECRET = "s3cr3t: #not-a-comment 'q' \"dq\" *star &amp yes"


def inputs(ca_pem: bytes, **over) -> kc.Inputs:
    base = {
        "server": "https://k8s.example.org:6443",
        "ca_pem": ca_pem,
        "keystone_url": "https://keystone.example.org:5000/v3",
        "credential_id": "1c3f00aa",
        "credential_secret": SECRET,
        "cluster": "k8s.example.org:6443",
        "user": "kubectl@k8s.example.org:6443",
        "context": "kubectl@k8s.example.org:6443",
        "namespace": "team-a",
    }
    return kc.Inputs(**{**base, **over})


def test_document_has_the_exec_user_with_the_credential_in_env(ca_pem):
    doc = kc.build(inputs(ca_pem))
    back = yaml.safe_load(kc.render(doc))
    assert back == doc
    assert back["apiVersion"] == "v1"
    assert back["kind"] == "Config"
    assert back["current-context"] == "kubectl@k8s.example.org:6443"
    cluster = back["clusters"][0]
    assert cluster["name"] == "k8s.example.org:6443"
    assert cluster["cluster"]["server"] == "https://k8s.example.org:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == ca_pem
    ctx = back["contexts"][0]["context"]
    assert ctx["cluster"] == "k8s.example.org:6443"
    assert ctx["user"] == "kubectl@k8s.example.org:6443"
    assert ctx["namespace"] == "team-a"
    ex = back["users"][0]["user"]["exec"]
    assert ex["apiVersion"] == "client.authentication.k8s.io/v1"
    assert ex["command"] == "kubectl-keystone-auth"
    assert ex["interactiveMode"] == "Never"
    assert "kubectl-keystone-auth" in ex["installHint"]
    assert "args" not in ex, "the secret must never be in args (visible in ps)"
    env = {e["name"]: e["value"] for e in ex["env"]}
    assert env["OS_AUTH_URL"] == "https://keystone.example.org:5000/v3"
    assert env["OS_AUTH_TYPE"] == "v3applicationcredential"
    assert env["OS_APPLICATION_CREDENTIAL_ID"] == "1c3f00aa"
    assert env["OS_APPLICATION_CREDENTIAL_SECRET"] == SECRET
    # Every other variable of the plugin is set empty, so an openrc in the shell cannot mix in.
    assert env["OS_PASSWORD"] == env["OS_CLOUD"] == env["OS_USERNAME"] == ""
    assert len(env) == len(ex["env"]) == 4 + len(kc.BLANKED)
    # The secret is in env only: one value of the whole document.
    assert list(strings(back)).count(SECRET) == 1


def strings(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


def test_the_bearer_token_form_has_a_token_and_no_exec(ca_pem):
    doc = kc.build(inputs(ca_pem, bearer_token=True))
    back = yaml.safe_load(kc.render(doc))
    assert back == doc
    user = back["users"][0]["user"]
    assert "exec" not in user
    token = user["token"]
    assert token == kc.bearer_token("1c3f00aa", SECRET)
    assert token.startswith("kkac1_")
    # Header-safe: base64url parts joined by one dot, the secret itself nowhere.
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in token), token
    assert token.count(".") == 1
    assert SECRET not in list(strings(back))
    assert user["extensions"] == [
        {"name": "kubectl-keystone-auth", "extension": {"generated-by": "kubectl-keystone-auth"}}
    ]


def test_bearer_token_format_is_the_documented_one():
    # docs/bearer-tokens.md's example, and the same as kk_core::appcred_token's test.
    assert kc.bearer_token("4f2c", "s3cr:et") == "kkac1_NGYyYw.czNjcjpldA"


def test_no_namespace_writes_none(ca_pem):
    doc = kc.build(inputs(ca_pem, namespace=None))
    assert "namespace" not in doc["contexts"][0]["context"]


def test_repr_never_shows_the_secret(ca_pem):
    assert SECRET not in repr(inputs(ca_pem))
    assert "1c3f00aa" in repr(inputs(ca_pem))


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("kubectl", "kubectl"),
        ("my laptop", "my-laptop"),
        ("a/b\\c", "a-b-c"),
        ("  ..x..  ", "x"),
        ("ünïcödé", "n-c-d"),
        ("quote'\"and\nnewline", "quote-and-newline"),
        ("user@host:1", "user@host:1"),
        ("---", "keystone"),
        ("", "keystone"),
        (None, "keystone"),
        ("日本", "keystone"),
        ("x" * 300, "x" * 100),
    ],
)
def test_safe_name(raw, want):
    assert kc.safe_name(raw) == want


@pytest.mark.parametrize(
    "name",
    ["my laptop", "yes", "0123", "*alias", "- dash", "a: b", "#c", "ü", "'", "\n", "[x]", "{y}"],
)
def test_odd_credential_names_give_a_valid_document(ca_pem, name):
    safe = kc.safe_name(name)
    doc = kc.build(inputs(ca_pem, user=f"{safe}@c", context=f"{safe}@c", cluster="c"))
    back = yaml.safe_load(kc.render(doc))
    assert back == doc
    assert isinstance(back["users"][0]["name"], str)
    assert back["contexts"][0]["context"]["user"] == back["users"][0]["name"]


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("https://ks:5000", "https://ks:5000/v3"),
        ("https://ks:5000/", "https://ks:5000/v3"),
        ("https://ks:5000/v3/", "https://ks:5000/v3"),
        ("https://KS.Example:443/identity", "https://ks.example/identity/v3"),
        ("http://127.0.0.1:5000/v2.0", "http://127.0.0.1:5000/v3"),
        ("http://[::1]:5000/v3", "http://[::1]:5000/v3"),
        ("  https://ks/v3  ", "https://ks/v3"),
    ],
)
def test_keystone_url_is_normalized_as_the_plugin_does(raw, want):
    assert kc.normalize_keystone_url(raw) == want


@pytest.mark.parametrize(
    "raw", ["", "ks:5000", "ftp://ks/", "https://u:p@ks/", "https://ks/?token=x", "https:///v3"]
)
def test_bad_keystone_urls_are_refused(raw):
    with pytest.raises(kc.KubeconfigError) as e:
        kc.normalize_keystone_url(raw, "the identity endpoint")
    assert "the identity endpoint" in str(e.value)
    assert "token=x" not in str(e.value)
    assert "u:p" not in str(e.value)


def test_ca_from_base64_or_pem(ca_pem):
    b64 = base64.b64encode(ca_pem).decode()
    assert kc.decode_ca(b64) == ca_pem
    # Wrapped base64 (as in a file) and PEM text are taken too.
    assert kc.decode_ca("\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))) == ca_pem
    assert kc.decode_ca(ca_pem.decode()) == ca_pem
    assert kc.decode_ca(ca_pem.decode().rstrip("\n")) == ca_pem


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "is not set"),
        (None, "is not set"),
        ("   ", "is not set"),
        ("not base64 !", "neither base64 nor PEM"),
        (base64.b64encode(b"hello").decode(), "no PEM certificate"),
    ],
)
def test_missing_or_bad_ca_is_an_error_naming_the_setting(raw, words):
    with pytest.raises(kc.KubeconfigError) as e:
        kc.decode_ca(raw)
    assert "KUBECONFIG_CERTIFICATE_AUTHORITY_DATA" in str(e.value)
    assert words in str(e.value)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "is not set"),
        (None, "is not set"),
        ("http://k8s:6443", "https://"),
        ("k8s:6443", "https://"),
        ("https://", "no host"),
        ("https://k8s:99999", "not a URL"),
        ("https://k8s/?a=b", "query"),
    ],
)
def test_missing_or_bad_server_is_an_error_naming_the_setting(raw, words):
    with pytest.raises(kc.KubeconfigError) as e:
        kc.check_server(raw)
    assert "KUBECONFIG_KUBERNETES_URL" in str(e.value)
    assert words in str(e.value)


@pytest.mark.parametrize(
    ("server", "want"),
    [
        ("https://k8s.example.org:6443", "k8s.example.org:6443"),
        ("https://K8S.example.org", "k8s.example.org"),
        ("https://k8s.example.org:443/", "k8s.example.org"),
        ("https://[::1]:6443", "[::1]:6443"),
        ("https://127.0.0.1:6443", "127.0.0.1:6443"),
    ],
)
def test_default_cluster_name(server, want):
    assert kc.default_cluster_name(server) == want


@pytest.mark.parametrize(
    ("raw", "want"), [("team-a", "team-a"), ("", None), (None, None), (" default ", "default")]
)
def test_namespace(raw, want):
    assert kc.check_namespace(raw) == want


@pytest.mark.parametrize("raw", ["Team-A", "-a", "a-", "a_b", "a.b", "x" * 64, "a b"])
def test_bad_namespace_is_an_error(raw):
    with pytest.raises(kc.KubeconfigError, match="not a valid namespace name"):
        kc.check_namespace(raw)
