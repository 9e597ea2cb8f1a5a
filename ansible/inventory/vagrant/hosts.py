#!/usr/bin/env python3
"""Ansible dynamic inventory derived from vagrant/settings.yml (the one settings file).

Prints the groups control_plane, workers and nfs_servers with each machine's ansible_host,
computed exactly as the Vagrantfile does: name_prefix-index at prefix.host_number; and the group
deployer (the first control-plane machine), where site.yml builds the images and deploys.
"""
import json
import os
import sys

import yaml

SETTINGS_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "vagrant", "settings.yml"
)


def build_inventory(settings):
    """Return the inventory (groups and hostvars) for the given settings."""
    prefix = settings["network"]["prefix"]
    inventory = {"_meta": {"hostvars": {}}}
    for group, role in settings["roles"].items():
        count = role["count"]
        host_numbers = role["host_numbers"]
        if len(host_numbers) < count:
            sys.exit(f"settings.yml: role {group} needs {count} host_numbers")
        hosts = []
        for index in range(1, count + 1):
            name = f"{role['name_prefix']}-{index}"
            hosts.append(name)
            inventory["_meta"]["hostvars"][name] = {
                "ansible_host": f"{prefix}.{host_numbers[index - 1]}",
                "ansible_user": "vagrant",
            }
        inventory[group] = {"hosts": hosts}
    if not inventory.get("control_plane", {}).get("hosts"):
        sys.exit("settings.yml: roles.control_plane needs at least one machine")
    inventory["deployer"] = {"hosts": inventory["control_plane"]["hosts"][:1]}
    return inventory


def main():
    with open(SETTINGS_PATH, encoding="utf-8") as settings_file:
        inventory = build_inventory(yaml.safe_load(settings_file))
    if len(sys.argv) > 2 and sys.argv[1] == "--host":
        print(json.dumps(inventory["_meta"]["hostvars"].get(sys.argv[2], {})))
    else:
        print(json.dumps(inventory, indent=2))


if __name__ == "__main__":
    main()
