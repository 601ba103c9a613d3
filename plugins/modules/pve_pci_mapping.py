#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pve_pci_mapping
short_description: Manage a Proxmox VE cluster PCI resource mapping
version_added: 0.1.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Creates, updates or deletes a cluster PCI resource mapping (C(/cluster/mapping/pci), Proxmox VE 8.0 or newer).
  - A VM that uses C(hostpciN=mapping=<id>) needs only C(Mapping.Use) on the mapping and C(VM.Config.HWType) on the
    VM, so API tokens can attach PCI devices through it; raw addresses are reserved to C(root@pam).
  - Each map entry (C(node=,path=,id=,subsystem-id=,iommugroup=)) is filled from what
    C(GET /nodes/<node>/hardware/pci) reports on that node. Proxmox VE compares these with the live device when a
    VM starts and refuses to start with a mapping that lacks one of them.
  - The map holds exactly one entry per node listed in O(devices); entries of other nodes are removed.
  - Nothing is written when the mapping already matches.
extends_documentation_fragment:
  - homelab.gpu_passthrough.pve_auth
attributes:
  check_mode:
    description: Reads the hardware and the mapping and reports the change without writing.
    support: full
  diff_mode:
    description: Shows the mapping (description, mdev, map entries) before and after.
    support: full
options:
  name:
    description:
      - The mapping's id, a letter followed by letters, digits, C(-) or C(_).
      - An empty string is refused.
    type: str
    required: true
    aliases: [id]
  description:
    description:
      - Description of the mapping. Not changed when not given.
      - An empty string is refused; it would silently drop the description (remove one in the GUI or with C(pvesh)).
    type: str
  devices:
    description:
      - The device on each node. Required with O(state=present).
    type: list
    elements: dict
    suboptions:
      node:
        description:
          - The node name.
          - An empty string is refused.
        type: str
        required: true
      path:
        description:
          - The device on that node, as a PCI address (V(0000:00:02.0), V(00:02.0)) or V(vendor:device) ids
            (V(8086:3e92)) looked up on the node. Several addresses joined with C(;) are allowed (SR-IOV virtual
            functions, of which Proxmox VE uses the first free one); ids matching several devices give all of them.
          - An empty string is refused.
        type: str
        required: true
  mdev:
    description:
      - Whether the devices are used as mediated devices (GVT-g). Proxmox VE checks this flag against the hardware at
        VM start.
      - When not given it follows the hardware (true when a device offers mdev types); a value different from the
        hardware gives a warning.
    type: bool
  state:
    description:
      - V(present) creates or updates the mapping, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Creating, updating and deleting mappings needs C(Mapping.Modify), which C(PVEAdmin) does not include; use
    C(root@pam), C(Administrator) or C(PVEMappingAdmin). Reading the hardware needs C(Sys.Audit) on C(/).
  - Updates send the mapping file's digest, so a concurrent change makes the write fail instead of being overwritten.
requirements:
  - proxmoxer >= 2.0
  - requests
seealso:
  - module: homelab.gpu_passthrough.pve_hostpci
"""

EXAMPLES = r"""
- name: Map the UHD 630 of every node as igpu
  homelab.gpu_passthrough.pve_pci_mapping:
    api_host: pve1.example.lan
    api_user: root@pam
    api_password: "{{ vault_pve_root_password }}"
    ca_path: files/pve-root-ca.pem
    name: igpu
    description: Intel UHD 630
    devices:
      - {node: pve1, path: "0000:00:02.0"}
      - {node: pve2, path: "8086:3e92"}
      - {node: pve3, path: "8086:3e92"}

- name: Remove the mapping
  homelab.gpu_passthrough.pve_pci_mapping:
    name: igpu
    state: absent
"""

RETURN = r"""
mapping:
  description: The mapping after the run; null when absent.
  returned: always
  type: dict
  contains:
    id:
      description: The mapping id.
      type: str
    description:
      description: The description, if any.
      type: str
    mdev:
      description: The mdev flag.
      type: bool
    map:
      description: The map entries, one per node.
      type: list
      elements: str
  sample:
    id: igpu
    mdev: false
    map:
      - node=pve1,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1
"""

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import pci_mapping
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.client import pve_module, session_from_module


def main():
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["id"]),
        description=dict(type="str"),
        devices=dict(
            type="list",
            elements="dict",
            options=dict(node=dict(type="str", required=True), path=dict(type="str", required=True)),
        ),
        mdev=dict(type="bool"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    module = pve_module(
        argument_spec,
        required_if=[("state", "present", ["devices"])],
    )
    option_checks.exit_with(module, lambda: pci_mapping.converge(
        session_from_module(module), module.params, module.check_mode, module._diff, module.warn))


if __name__ == "__main__":
    main()
