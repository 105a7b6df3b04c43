# local_settings.py of the test Horizon: horizon/run-tests.sh installs it as
# openstack_dashboard/local/local_settings.py of the test venv. Every value that differs between
# runs comes from the environment, so that runs of several worktrees share one venv.
import os

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
SECRET_KEY = os.environ.get("HORIZON_TEST_SECRET_KEY") or "kubernetes-keystone-horizon-tests"

# Sessions in Django's per-process memory cache: one runserver process, no memcached.
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

OPENSTACK_KEYSTONE_URL = os.environ.get("KS_URL", "http://127.0.0.1:5000/v3")
OPENSTACK_KEYSTONE_MULTIDOMAIN_SUPPORT = True
OPENSTACK_KEYSTONE_DEFAULT_DOMAIN = "Default"

# Upstream's settings of the "Download kubeconfig file" button.
KUBECONFIG_ENABLED = True
KUBECONFIG_KUBERNETES_URL = os.environ.get("HORIZON_TEST_KUBERNETES_URL", "")
KUBECONFIG_CERTIFICATE_AUTHORITY_DATA = os.environ.get("HORIZON_TEST_KUBERNETES_CA_DATA", "")

# The static files are compressed once, when the venv is made (run-tests.sh).
COMPRESS_OFFLINE = True

# Everything Horizon and the plugin log goes to stderr (the server's log, scanned by tests/run for
# the secrets the tests issued).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        name: {"level": "DEBUG"}
        for name in (
            "kubernetes_keystone_horizon",
            "horizon",
            "openstack_dashboard",
            "openstack_auth",
            "django.request",
        )
    },
}
