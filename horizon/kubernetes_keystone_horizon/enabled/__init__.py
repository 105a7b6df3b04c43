"""Horizon's pluggable settings of this plugin: copy the file of this folder into
``openstack_dashboard/local/enabled/`` (``python -m kubernetes_keystone_horizon.enable`` does)."""
