"""The kubeconfig of an application credential, as ``kubectl-keystone-auth kubeconfig`` writes it.

Pure: no Django, no logging. :func:`build` makes the document (a dict) from :class:`Inputs`
(with ``bearer_token``, the user is the credential as one bearer token, :func:`bearer_token`, as
``kubectl-keystone-auth kubeconfig --bearer-token`` writes it),
:func:`render` writes it with PyYAML. The document is the one the Rust generator
(``crates/kk-plugin/src/kubeconfig.rs``) writes for the same inputs, key for key; the tests run
both and compare them.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import yaml

EXEC_API_VERSION = "client.authentication.k8s.io/v1"
DEFAULT_COMMAND = "kubectl-keystone-auth"
# The extension that marks the entries kubectl-keystone-auth wrote, so that its --merge later
# replaces them and nothing else.
MARK = "kubectl-keystone-auth"
# The same text as the plugin's own (INSTALL_HINT in crates/kk-plugin/src/kubeconfig.rs).
INSTALL_HINT = (
    "kubectl-keystone-auth logs you in to Kubernetes with OpenStack Keystone.\n"
    "Build it from the kubernetes-keystone project "
    "(cargo build --release --bin kubectl-keystone-auth)\n"
    "and put the binary in a directory of your PATH, or set the exec command of this kubeconfig "
    "to its full path."
)
AUTH_TYPE = "v3applicationcredential"
# The application-credential bearer token, version 1 (docs/bearer-tokens.md,
# kk_core::appcred_token).
BEARER_PREFIX = "kkac1_"
# Every other variable the plugin reads, set empty in the kubeconfig so that an openrc sourced in
# the shell cannot mix into the credential: the plugin's settings in their order, then their
# older aliases, then OS_CLOUD (crates/kk-plugin/src/settings.rs and blank_unused in lib.rs).
BLANKED = (
    "OS_USERNAME",
    "OS_USER_ID",
    "OS_USER_DOMAIN_NAME",
    "OS_USER_DOMAIN_ID",
    "OS_PROJECT_NAME",
    "OS_PROJECT_ID",
    "OS_PROJECT_DOMAIN_NAME",
    "OS_PROJECT_DOMAIN_ID",
    "OS_DOMAIN_NAME",
    "OS_DOMAIN_ID",
    "OS_DEFAULT_DOMAIN",
    "OS_PASSWORD",
    "OS_TOKEN",
    "OS_APPLICATION_CREDENTIAL_NAME",
    "OS_CACERT",
    "OS_CERT",
    "OS_KEY",
    "OS_TENANT_NAME",
    "OS_TENANT_ID",
    "OS_AUTH_TOKEN",
    "OS_CLOUD",
)
PEM_MARK = "-----BEGIN CERTIFICATE-----"
# Characters kept in entry names; every run of others becomes one "-".
_UNSAFE = re.compile(r"[^A-Za-z0-9._@:-]+")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class KubeconfigError(ValueError):
    """An input that cannot make a working kubeconfig. The message says which and why, and
    never quotes the secret."""


@dataclass(frozen=True)
class Inputs:
    """What goes into the kubeconfig. ``repr`` never shows the secret."""

    server: str
    """The Kubernetes API server URL (``https://`` only)."""
    ca_pem: bytes
    """Its CA certificate(s), PEM."""
    keystone_url: str
    """Keystone's URL, normalized (see :func:`normalize_keystone_url`)."""
    credential_id: str
    credential_secret: str = field(repr=False)
    cluster: str = ""
    user: str = ""
    context: str = ""
    namespace: str | None = None
    command: str = DEFAULT_COMMAND
    install_hint: str = INSTALL_HINT
    bearer_token: bool = False
    """Write the credential as the user's ``token`` (no plugin needed; the cluster's
    k8s-keystone-auth must enable ``[application_credential_tokens]``) instead of an ``exec``."""


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def bearer_token(credential_id: str, secret: str) -> str:
    """The application-credential bearer token: ``kkac1_<base64url(id)>.<base64url(secret)>``,
    base64url without padding (docs/bearer-tokens.md). A secret as a whole."""
    return f"{BEARER_PREFIX}{_b64url(credential_id)}.{_b64url(secret)}"


def _marked() -> list[dict[str, Any]]:
    return [{"name": MARK, "extension": {"generated-by": MARK}}]


def build(inputs: Inputs) -> dict[str, Any]:
    """The kubeconfig: one cluster, one user whose ``exec`` runs the plugin with the credential
    in ``env`` (never in ``args``), one context, made current."""
    cluster: dict[str, Any] = {
        "server": inputs.server,
        "certificate-authority-data": base64.b64encode(inputs.ca_pem).decode("ascii"),
        "extensions": _marked(),
    }
    env = [
        {"name": "OS_AUTH_URL", "value": inputs.keystone_url},
        {"name": "OS_AUTH_TYPE", "value": AUTH_TYPE},
        {"name": "OS_APPLICATION_CREDENTIAL_ID", "value": inputs.credential_id},
        {"name": "OS_APPLICATION_CREDENTIAL_SECRET", "value": inputs.credential_secret},
    ] + [{"name": name, "value": ""} for name in BLANKED]
    if inputs.bearer_token:
        user: dict[str, Any] = {
            "token": bearer_token(inputs.credential_id, inputs.credential_secret),
            "extensions": _marked(),
        }
        return _document(inputs, cluster, user)
    user = {
        "exec": {
            "apiVersion": EXEC_API_VERSION,
            "command": inputs.command,
            "env": env,
            "interactiveMode": "Never",
            "provideClusterInfo": False,
            "installHint": inputs.install_hint,
        },
        "extensions": _marked(),
    }
    return _document(inputs, cluster, user)


def _document(inputs: Inputs, cluster: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {"cluster": inputs.cluster, "user": inputs.user}
    if inputs.namespace:
        context["namespace"] = inputs.namespace
    context["extensions"] = _marked()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": inputs.cluster, "cluster": cluster}],
        "users": [{"name": inputs.user, "user": user}],
        "contexts": [{"name": inputs.context, "context": context}],
        "current-context": inputs.context,
    }


class _Dumper(yaml.SafeDumper):
    """Block style; text of several lines (the install hint) as a literal block."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(doc: dict[str, Any]) -> str:
    """YAML text of a document from :func:`build`."""
    return yaml.dump(
        doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def check_server(raw: str | None, setting: str = "KUBECONFIG_KUBERNETES_URL") -> str:
    """The API server URL as written, checked: https, a host, nothing that is not a server."""
    server = (raw or "").strip()
    if not server:
        raise KubeconfigError(f"{setting} is not set: it must be the Kubernetes API server URL")
    try:
        parts = urllib.parse.urlsplit(server)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as e:
        raise KubeconfigError(f"{setting} {server!r} is not a URL: {e}") from None
    if parts.scheme != "https":
        raise KubeconfigError(
            f"{setting} {server!r} must be an https:// URL: kubectl sends no credentials over "
            "plain http"
        )
    if not parts.hostname:
        raise KubeconfigError(f"{setting} {server!r} has no host")
    if parts.username is not None or parts.query or parts.fragment:
        raise KubeconfigError(f"{setting} must not carry a user, a query or a fragment")
    return server


def decode_ca(raw: str | bytes | None, setting: str = "KUBECONFIG_CERTIFICATE_AUTHORITY_DATA"):
    """The CA as PEM bytes, from base64 of PEM (what kubeconfig's ``certificate-authority-data``
    holds, and what Horizon's setting holds) or from PEM text itself."""
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    text = (raw or "").strip()
    if not text:
        raise KubeconfigError(
            f"{setting} is not set: it must be the Kubernetes API server's CA certificate "
            "(base64 of its PEM, as in a kubeconfig's certificate-authority-data)"
        )
    if PEM_MARK in text:
        pem = text.encode("ascii", errors="replace")
        if not pem.endswith(b"\n"):
            pem += b"\n"
        return pem
    try:
        pem = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"{setting} is neither base64 nor PEM") from None
    if PEM_MARK.encode() not in pem:
        raise KubeconfigError(f"{setting} decodes to no PEM certificate")
    return pem


def normalize_keystone_url(raw: str | None, setting: str = "the identity endpoint") -> str:
    """Keystone's v3 URL without a trailing slash, as the plugin normalizes it
    (``https://ks:5000`` and ``https://ks:5000/v3/`` become ``https://ks:5000/v3``)."""
    url = (raw or "").strip()
    if not url:
        raise KubeconfigError(f"{setting} is empty: it must be Keystone's URL")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise KubeconfigError(f"{setting} {url!r} is not a URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise KubeconfigError(f"{setting} {url!r} must start with https:// or http://")
    if not parts.hostname:
        raise KubeconfigError(f"{setting} {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise KubeconfigError(f"{setting} must not carry a user name or password")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise KubeconfigError(f"{setting} must not have a query or fragment")
    netloc = _host(parts.hostname)
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v2.0")
    if not path.endswith("/v3"):
        path += "/v3"
    return f"{scheme}://{netloc}{path}"


def _host(hostname: str) -> str:
    """A host as URLs write it: lower case, IPv6 in brackets."""
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return hostname.lower()
    return f"[{address.compressed}]" if address.version == 6 else str(address)


def default_cluster_name(server: str) -> str:
    """The plugin's default cluster name: the server's host, with its port when the URL names
    one."""
    parts = urllib.parse.urlsplit(server)
    host = _host(parts.hostname or "kubernetes")
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        return f"{host}:{parts.port}"
    return host


def safe_name(raw: str | None, fallback: str = "keystone", limit: int = 100) -> str:
    """A name that is safe as a kubeconfig entry name and in a file name: letters, digits and
    ``. _ @ : -`` only (every run of other characters becomes ``-``), no leading or trailing
    ``-`` or ``.``, at most ``limit`` characters; ``fallback`` when nothing is left."""
    name = _UNSAFE.sub("-", raw or "").strip("-.")[:limit].strip("-.")
    return name or fallback


def check_namespace(raw: str | None) -> str | None:
    """The context's namespace: ``None`` when empty, else a Kubernetes namespace name (an RFC 1123
    label: at most 63 lower-case letters, digits and ``-``, starting and ending alphanumeric)."""
    ns = (raw or "").strip()
    if not ns:
        return None
    if len(ns) > 63 or not _NAMESPACE.fullmatch(ns):
        raise KubeconfigError(
            f"the Kubernetes namespace {ns!r} is not a valid namespace name (at most 63 lower-case "
            "letters, digits and '-', starting and ending with a letter or digit)"
        )
    return ns
