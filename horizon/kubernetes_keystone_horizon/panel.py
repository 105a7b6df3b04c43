"""Upstream's Application Credentials panel with this plugin's URLs (see :mod:`.urls`)."""

import os

from horizon import loaders
from openstack_dashboard.dashboards.identity.application_credentials import panel as upstream


class ApplicationCredentialsPanel(upstream.ApplicationCredentialsPanel):
    """The same panel (name, slug, policy, access check), with this package's URLs."""

    urls = "kubernetes_keystone_horizon.urls"


# Horizon finds a panel's templates in a "templates" folder beside its module (Dashboard.register).
# This panel's views, but one, are upstream's and render upstream's templates, which stay beside
# upstream's module: point the panel's template key there. (This package has no "templates"
# folder, so registering the panel does not replace this.)
loaders.panel_template_dirs[os.path.join("identity", ApplicationCredentialsPanel.slug)] = (
    os.path.join(os.path.dirname(upstream.__file__), "templates")
)
