"""Shared fixtures: Horizon's Django set up in-process, requests as Horizon's views get them,
the tools of the live tests (kubectl, the Rust plugin) and tests/run's environment."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openstack_dashboard.settings")

REPO = Path(__file__).resolve().parents[2]
CATALOG_KEYSTONE = "https://keystone.example.org:5000/v3/"


def require_live() -> bool:
    """tests/run sets HORIZON_TESTS_REQUIRE_LIVE=1: there a missing tool or variable fails."""
    return os.environ.get("HORIZON_TESTS_REQUIRE_LIVE") == "1"


def need(what: str, value):
    if value:
        return value
    if require_live():
        pytest.fail(f"{what} is missing (HORIZON_TESTS_REQUIRE_LIVE=1)")
    pytest.skip(f"{what} is missing: run the Horizon tests with tests/run")
    return None


def env(name: str) -> str:
    return need(f"the environment variable {name}", os.environ.get(name))


@pytest.fixture(scope="session")
def kubectl() -> str:
    return need("kubectl on PATH", shutil.which("kubectl"))


@pytest.fixture(scope="session")
def plugin_bin() -> str:
    path = os.environ.get("KK_PLUGIN_BIN") or str(REPO / "target/debug/kubectl-keystone-auth")
    return need(f"the Rust plugin {path} (cargo build -p kk-plugin)", os.path.exists(path) and path)


@pytest.fixture(scope="session")
def log_dir() -> Path:
    """tests/run's TEST_LOG_DIR: its logs are scanned for the secrets recorded in issued-tokens."""
    return Path(env("TEST_LOG_DIR"))


def pytest_configure(config):
    """Horizon's Django, set up in this process (the views' modules need it to import)."""
    import django  # noqa: PLC0415

    django.setup()


@pytest.fixture(scope="session")
def horizon():
    """Horizon, its URLs loaded (which registers the panels)."""
    from django.urls import reverse  # noqa: PLC0415

    reverse("horizon:identity:application_credentials:index")
    import horizon as hz  # noqa: PLC0415

    return hz


class StubUser:
    """What Horizon's views read of the logged-in user."""

    def __init__(self, catalog_url: str | None = CATALOG_KEYSTONE):
        self.username = "alice"
        self.services_region = "RegionOne"
        self.service_catalog = (
            []
            if catalog_url is None
            else [
                {
                    "type": "identity",
                    "name": "keystone",
                    "endpoints": [
                        {"interface": "public", "region_id": "RegionOne", "url": catalog_url},
                        {
                            "interface": "admin",
                            "region_id": "RegionOne",
                            "url": "http://admin:5000",
                        },
                    ],
                }
            ]
        )
        self.is_authenticated = True
        self.authorized_tenants = []

    def __str__(self) -> str:
        return self.username


@pytest.fixture
def make_request(horizon):
    """A GET request with a session holding ``app_cred`` (as the create form leaves it), a user
    and message storage."""
    from django.contrib.messages.storage.session import SessionStorage  # noqa: PLC0415
    from django.contrib.sessions.backends.cache import SessionStore  # noqa: PLC0415
    from django.test import RequestFactory  # noqa: PLC0415

    def make(app_cred: dict | None, catalog_url: str | None = CATALOG_KEYSTONE):
        request = RequestFactory().get("/identity/application_credentials/download_kubeconfig/")
        request.session = SessionStore()
        if app_cred is not None:
            request.session["application_credential"] = app_cred
        request.user = StubUser(catalog_url)
        request._messages = SessionStorage(request)
        request.horizon = {"async_messages": []}
        return request

    return make


@pytest.fixture(scope="session")
def ca_pem() -> bytes:
    """A self-signed CA certificate, PEM."""
    import datetime  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
