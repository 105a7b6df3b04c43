"""The Application Credentials panel's URLs: upstream's, with only ``download_kubeconfig``
answered by :func:`kubernetes_keystone_horizon.views.download_kubeconfig_file` (openrc,
clouds.yaml, create, success and detail stay upstream's)."""

from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern
from openstack_dashboard.dashboards.identity.application_credentials import urls as upstream

from kubernetes_keystone_horizon import views

REPLACED = "download_kubeconfig"


def _replace(patterns):
    out, found = [], False
    for p in patterns:
        if isinstance(p, URLPattern) and p.name == REPLACED:
            out.append(URLPattern(p.pattern, views.download_kubeconfig_file, name=REPLACED))
            found = True
        else:
            out.append(p)
    if not found:
        raise ImproperlyConfigured(
            f"this Horizon's application credentials panel has no URL named {REPLACED!r}"
        )
    return out


urlpatterns = _replace(upstream.urlpatterns)
