"""Horizon plugin: the Application Credentials panel's "Download kubeconfig file" gives a
kubeconfig that runs ``kubectl-keystone-auth`` (see docs/horizon.md)."""
