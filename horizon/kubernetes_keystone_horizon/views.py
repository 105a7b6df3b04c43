"""The panel's "Download kubeconfig file": the kubeconfig of the application credential just
created, made by :mod:`kubernetes_keystone_horizon.kubeconfig` from Horizon's settings (the
upstream names) and the credential Horizon keeps in the session.

A setting or an input that cannot make a working kubeconfig gives an error message on the
credential's page (which still shows the secret), never a broken file. The secret is never logged.
"""

from __future__ import annotations

import logging

from django import http
from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables
from horizon import messages
from openstack_dashboard import api

from kubernetes_keystone_horizon import kubeconfig

LOG = logging.getLogger(__name__)

INDEX_URL = "horizon:identity:application_credentials:index"
SUCCESS_URL = "horizon:identity:application_credentials:success"

# This plugin's own settings (the upstream ones are KUBECONFIG_ENABLED, KUBECONFIG_KUBERNETES_URL
# and KUBECONFIG_CERTIFICATE_AUTHORITY_DATA).
COMMAND = "KUBERNETES_KEYSTONE_COMMAND"
INSTALL_HINT = "KUBERNETES_KEYSTONE_INSTALL_HINT"
CLUSTER_NAME = "KUBERNETES_KEYSTONE_CLUSTER_NAME"
AUTH_URL = "KUBERNETES_KEYSTONE_AUTH_URL"
BEARER_TOKEN = "KUBERNETES_KEYSTONE_BEARER_TOKEN"  # noqa: S105 (a setting's name)


def _setting(name: str, default: str = "") -> str:
    value = getattr(settings, name, None)
    return default if value is None else str(value)


@sensitive_variables("app_cred")
def inputs_from(request, app_cred) -> kubeconfig.Inputs:
    """The kubeconfig's inputs: the settings, the identity endpoint of the catalog (as upstream's
    openrc and clouds.yaml use), the credential and the namespace of the create form."""
    server = kubeconfig.check_server(_setting("KUBECONFIG_KUBERNETES_URL"))
    ca_pem = kubeconfig.decode_ca(_setting("KUBECONFIG_CERTIFICATE_AUTHORITY_DATA"))
    auth_url = _setting(AUTH_URL)
    where = AUTH_URL
    if not auth_url:
        where = "the public identity endpoint of the catalog"
        try:
            auth_url = api.base.url_for(request, "identity", endpoint_type="publicURL")
        except Exception:  # Horizon raises its ServiceCatalogException, or others of the catalog
            raise kubeconfig.KubeconfigError(
                f"the catalog has no public identity endpoint: set {AUTH_URL}"
            ) from None
    keystone_url = kubeconfig.normalize_keystone_url(auth_url, where)
    credential_id = str(app_cred.get("id") or "")
    secret = str(app_cred.get("secret") or "")
    if not credential_id or not secret:
        raise kubeconfig.KubeconfigError(
            "this application credential's id or secret is no longer known: create a new one"
        )
    cluster = kubeconfig.safe_name(
        _setting(CLUSTER_NAME), fallback=kubeconfig.default_cluster_name(server)
    )
    user = f"{kubeconfig.safe_name(app_cred.get('name'))}@{cluster}"
    return kubeconfig.Inputs(
        server=server,
        ca_pem=ca_pem,
        keystone_url=keystone_url,
        credential_id=credential_id,
        credential_secret=secret,
        cluster=cluster,
        user=user,
        context=user,
        namespace=kubeconfig.check_namespace(app_cred.get("kubernetes_namespace")),
        command=_setting(COMMAND).strip() or kubeconfig.DEFAULT_COMMAND,
        install_hint=_setting(INSTALL_HINT).strip() or kubeconfig.INSTALL_HINT,
        bearer_token=bool(getattr(settings, BEARER_TOKEN, False)),
    )


@sensitive_variables("app_cred", "inputs", "text")
def download_kubeconfig_file(request):
    """The kubeconfig as an attachment, or an error message on the credential's page."""
    app_cred = request.session.get("application_credential")
    if not app_cred:
        messages.error(
            request,
            _("No application credential was just created: create one to download its kubeconfig."),
        )
        return redirect(reverse(INDEX_URL))
    try:
        inputs = inputs_from(request, app_cred)
    except kubeconfig.KubeconfigError as e:
        LOG.warning("kubeconfig of application credential %s not made: %s", app_cred.get("id"), e)
        messages.error(request, _("The kubeconfig file cannot be made: %s.") % e)
        return redirect(reverse(SUCCESS_URL))
    text = kubeconfig.render(kubeconfig.build(inputs))
    LOG.info(
        "kubeconfig of application credential %s for cluster %s",
        inputs.credential_id,
        inputs.cluster,
    )
    response = http.HttpResponse(text, content_type="application/yaml; charset=utf-8")
    filename = f"app-cred-{kubeconfig.safe_name(app_cred.get('name'))}-kubeconfig"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Content-Length"] = str(len(response.content))
    # It holds a secret: no cache may keep it.
    response["Cache-Control"] = "no-store"
    return response
