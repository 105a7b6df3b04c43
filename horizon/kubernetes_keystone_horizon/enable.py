"""``python -m kubernetes_keystone_horizon.enable``: copies the plugin's enabled file into the
``local/enabled`` folder of the Horizon this Python imports (or of ``--dashboard DIR``, the
``openstack_dashboard`` folder), and prints where."""

import argparse
import os
import shutil
import sys

from kubernetes_keystone_horizon import enabled

NAME = "_3090_identity_application_credentials_panel.py"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubernetes_keystone_horizon.enable")
    parser.add_argument("--dashboard", help="the openstack_dashboard folder (default: imported)")
    args = parser.parse_args(argv)
    dashboard = args.dashboard
    if not dashboard:
        import openstack_dashboard  # noqa: PLC0415 (only when no folder is given)

        dashboard = os.path.dirname(openstack_dashboard.__file__)
    target = os.path.join(dashboard, "local", "enabled")
    if not os.path.isdir(target):
        print(
            f"{target} is not a folder: is {dashboard} Horizon's openstack_dashboard?",
            file=sys.stderr,
        )
        return 1
    shutil.copyfile(
        os.path.join(os.path.dirname(enabled.__file__), NAME), os.path.join(target, NAME)
    )
    print(os.path.join(target, NAME))
    return 0


if __name__ == "__main__":
    sys.exit(main())
