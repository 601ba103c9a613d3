#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pve_vm_info
short_description: Read a Proxmox VE VM's status, lock, config, pending changes and hostpci entries
version_added: 0.2.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Reads one VM through the Proxmox VE API with GET requests only, the way the other pve_* modules of this collection
    read it before they change anything, and returns it with its C(hostpciN) entries parsed.
  - Meant for plans and reports (for example a rolling C(site.yml)) that must not run a changing module in check mode.
options:
  vmid:
    description:
      - The VM's id. Either O(vmid) or O(name) is required.
      - Valid values are 100..999999999; any other value is refused before anything is sent or changed.
    type: int
  name:
    description:
      - The VM's name. Without O(vmid), the VM is looked up by it and must be unique in the cluster.
      - An empty string is refused.
    type: str
  node:
    description:
      - The cluster node the VM is on. Looked up in the cluster resources when not set.
      - An empty string means the same as leaving the option out.
    type: str
extends_documentation_fragment:
  - homelab.gpu_passthrough.pve_auth
attributes:
  check_mode:
    description: The module only reads; it runs the same in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
notes:
  - Needs C(VM.Audit) on the VM. The result never reports a change.
requirements:
  - proxmoxer
seealso:
  - module: homelab.gpu_passthrough.pve_vm_q35
  - module: homelab.gpu_passthrough.pve_vm_power
"""

EXAMPLES = r"""
- name: Read the k3s agent VM
  homelab.gpu_passthrough.pve_vm_info:
    api_host: pve1.home.arpa
    api_user: automation@pve
    api_token_id: ansible
    api_token_secret: "{{ vault_pve_token_secret }}"
    vmid: 120
  register: agent

- name: Show whether the iGPU is attached
  ansible.builtin.debug:
    msg: "{{ agent.vm.hostpci.hostpci0.host | default('no hostpci0') }}"
"""

RETURN = r"""
vm:
  description: The VM as the API shows it now.
  returned: success
  type: dict
  contains:
    vmid:
      description: The VM's id.
      type: int
      sample: 120
    node:
      description: The node it is on.
      type: str
      sample: pve1
    name:
      description: Its name; null when it has none.
      type: str
      sample: k3s-agent-1
    status:
      description: V(running) or V(stopped).
      type: str
      sample: running
    lock:
      description: The lock another task holds on it (V(backup), V(migrate), ...), null when none.
      type: str
      sample: null
    template:
      description: Whether it is a template.
      type: bool
      sample: false
    config:
      description: The config as C(GET .../config) shows it (pending values as if applied), without C(digest).
      type: dict
      sample: {"machine": "q35", "bios": "ovmf", "hostpci0": "0000:00:02.0,pcie=1"}
    pending:
      description: Keys with a change waiting for the next start.
      type: list
      elements: str
      sample: []
    digest:
      description: The config digest; a write that carries it fails if the config changed meanwhile.
      type: str
      sample: 2f3c9d0a0e4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d
    hostpci:
      description:
        - Each C(hostpciN) entry parsed, keyed by its name; C(host) (as written), C(hosts) (the ids), C(mapping),
          C(options) (every other key as written) and C(raw); C(error) instead when the value does not parse.
      type: dict
      sample: {"hostpci0": {"host": "0000:00:02.0", "hosts": ["0000:00:02.0"], "mapping": null, "options": {"pcie": "1"},
               "raw": "0000:00:02.0,pcie=1"}}
"""

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import vm as pve_vm
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.client import pve_module, session_from_module


def run(module):
    p = module.params
    service = pve_vm.VmService(session_from_module(module))
    return {"changed": False, "vm": pve_vm.info(service.find(p["vmid"], p["name"], p["node"]))}


def main():
    argument_spec = dict(vmid=dict(type="int"), name=dict(type="str"), node=dict(type="str"))
    module = pve_module(
        argument_spec,
        ranges=dict(vmid=option_checks.VMID),
        empty_means_default=("node",),
        required_one_of=[("vmid", "name")],
    )
    option_checks.exit_with(module, lambda: run(module))


if __name__ == "__main__":
    main()
