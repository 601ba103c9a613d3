#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pve_vm_power
short_description: Start or shut down a Proxmox VE VM the way the other pve_* modules restart it
version_added: 0.2.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Brings a Proxmox VE VM to O(state=started) or O(state=stopped) through the API, with the same shutdown and start as
    M(homelab.gpu_passthrough.pve_vm_q35) and M(homelab.gpu_passthrough.pve_hostpci).
  - A shutdown is an ACPI shutdown; API errors while waiting for it are retried. Only when O(shutdown_timeout) seconds
    really passed with the guest still running is the VM stopped hard (with O(force=true)), and a warning says so.
  - A VM that a conversion left stopped after a failed start carries a line in its description; starting it here
    removes that line.
  - A locked VM (backup, migration) and a template are refused before any request that changes something.
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
  state:
    description:
      - V(started) starts a stopped VM, V(stopped) shuts a running VM down.
    type: str
    choices: [started, stopped]
    default: started
  shutdown_timeout:
    description:
      - Seconds the guest gets to shut down after the ACPI request.
      - Valid values are at least 0; any other value is refused before anything is sent or changed. With 0 a guest still
        running is stopped hard at once, as Proxmox VE does with a shutdown timeout of 0.
    type: int
    default: 180
  force:
    description:
      - Stop the VM hard when it still runs after O(shutdown_timeout). V(false) fails instead and leaves it running.
    type: bool
    default: true
extends_documentation_fragment:
  - homelab.gpu_passthrough.pve_auth
attributes:
  check_mode:
    description: Reads the VM and reports whether it would start or shut it down.
    support: full
  diff_mode:
    description: No diff; the status before and after are returned.
    support: none
notes:
  - Needs C(VM.PowerMgmt) on the VM (and C(VM.Config.Options) to remove a start line from its description).
requirements:
  - proxmoxer
seealso:
  - module: homelab.gpu_passthrough.pve_vm_info
"""

EXAMPLES = r"""
- name: Shut the k3s agent down for maintenance, stopping it after five minutes
  homelab.gpu_passthrough.pve_vm_power:
    api_host: pve1.home.arpa
    api_user: automation@pve
    api_token_id: ansible
    api_token_secret: "{{ vault_pve_token_secret }}"
    vmid: 120
    state: stopped
    shutdown_timeout: 300

- name: Start it again
  homelab.gpu_passthrough.pve_vm_power:
    api_host: pve1.home.arpa
    api_user: automation@pve
    api_token_id: ansible
    api_token_secret: "{{ vault_pve_token_secret }}"
    vmid: 120
    state: started
"""

RETURN = r"""
vmid:
  description: The VM's id.
  returned: success
  type: int
  sample: 120
node:
  description: The node the VM is on.
  returned: success
  type: str
  sample: pve1
status_before:
  description: V(running) or V(stopped) before the run.
  returned: success
  type: str
  sample: running
status:
  description: V(running) or V(stopped) after the run (in check mode, the expected one).
  returned: success
  type: str
  sample: stopped
warnings:
  description: What happened besides the asked change, for example a hard stop after the shutdown timeout.
  returned: when there is any
  type: list
  elements: str
  sample: ["VM 120 was still running 181 s after the shutdown request (shutdown_timeout 180 s; ...); it was stopped hard."]
"""

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import vm as pve_vm
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.client import pve_module, session_from_module


def run(module):
    p = module.params
    service = pve_vm.VmService(session_from_module(module), warn=module.warn, shutdown_timeout=p["shutdown_timeout"],
                               force_stop=p["force"])
    vm = service.find(p["vmid"], p["name"], p["node"])
    steps = service.power(vm, p["state"], module.check_mode)
    status = {"started": "running", "stopped": "stopped"}[p["state"]]
    return {"changed": bool(steps), "vmid": vm["vmid"], "node": vm["node"], "status_before": vm["status"], "status": status}


def main():
    argument_spec = dict(
        vmid=dict(type="int"),
        name=dict(type="str"),
        node=dict(type="str"),
        state=dict(type="str", default="started", choices=["started", "stopped"]),
        shutdown_timeout=dict(type="int", default=180),
        force=dict(type="bool", default=True),
    )
    module = pve_module(
        argument_spec,
        ranges=dict(vmid=option_checks.VMID, shutdown_timeout=option_checks.SHUTDOWN_TIMEOUT),
        empty_means_default=("node",),
        required_one_of=[("vmid", "name")],
    )
    option_checks.exit_with(module, lambda: run(module))


if __name__ == "__main__":
    main()
