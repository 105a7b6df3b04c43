# The Application Credentials panel of kubernetes-keystone-horizon. Named as Horizon's own
# openstack_dashboard/enabled/_3090_identity_application_credentials_panel.py, so that in
# openstack_dashboard/local/enabled it replaces that file: the same panel in the same place,
# with this plugin's "Download kubeconfig file".
PANEL = "application_credentials"
PANEL_DASHBOARD = "identity"
PANEL_GROUP = "default"
ADD_PANEL = "kubernetes_keystone_horizon.panel.ApplicationCredentialsPanel"
