#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pve_hostpci
short_description: Attach or detach a PCI device (hostpciN) of a Proxmox VE virtual machine
version_added: 0.1.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Sets or removes one C(hostpciN) entry of a Proxmox VE VM through the API, either with a raw host PCI
    address (O(host)) or with a cluster PCI resource mapping (O(mapping), see M(homelab.gpu_passthrough.pve_pci_mapping)).
  - The wanted value is compared with the VM's configuration (pending values included) by meaning, not by text,
    so V(00:02.0) and V(0000:00:02.0,rombar=1) are the same. When nothing differs the module only reads.
  - Options not given keep the slot's live values (C(driver=keep), C(romfile), C(x-vga) stay); a new entry gets
    Proxmox VE's defaults for them.
  - The value is checked against the VM's machine and VGA before writing (C(pcie=1) needs q35, C(legacy-igd=1)
    needs i440fx with C(vga=none), and so on), because Proxmox VE itself only checks these when the VM starts.
  - Proxmox VE lets only C(root@pam) set, replace or remove a raw C(host) address. An API token is
    C(user@realm!name), never C(root@pam); with a token and a raw address the module fails before it writes anything.
  - A running VM keeps the change pending until it is restarted; O(apply=restart) shuts it down and starts it again,
    the same way M(homelab.gpu_passthrough.pve_vm_q35) and M(homelab.gpu_passthrough.pve_vm_power) do.
  - Before anything is written or restarted, the value is proven against the node and the API (device present, mapping
    valid for the node, mdev type offered, romfile a plain name, the VM not locked, the API user's privileges for the
    new and the old value); a refused input changes nothing.
extends_documentation_fragment:
  - homelab.gpu_passthrough.pve_auth
  - homelab.gpu_passthrough.hostpci
attributes:
  check_mode:
    description: Computes the change and the diff without writing to the API.
    support: full
  diff_mode:
    description: Shows the C(hostpciN) line before and after.
    support: full
options:
  vmid:
    description:
      - The VM's id.
      - Valid values are 100..999999999; any other value is refused before anything is sent or changed.
    type: int
    required: true
  node:
    description:
      - The node the VM is on. When not set it is looked up in C(/cluster/resources).
      - An empty string means the same as leaving the option out.
    type: str
  slot:
    description:
      - The N of C(hostpciN), 0 to 15.
      - Valid values are 0..15; any other value is refused before anything is sent or changed.
    type: int
    default: 0
  legacy_igd:
    description:
      - Legacy Intel IGD assignment (C(legacy-igd=1)); needs an i440fx machine, C(vga=none) and the iGPU at C(00:02.0).
    type: bool
  apply:
    description:
      - V(none) leaves a change to a running VM pending until its next start.
      - V(restart) shuts a running VM with pending changes down (stopping it when the shutdown times out) and
        starts it again, so the changes take effect; a stopped VM is not started.
    type: str
    choices: [none, restart]
    default: none
  shutdown_timeout:
    description:
      - Seconds a guest gets to shut down with O(apply=restart). Only when they really passed with the guest still
        running is it stopped hard (with a warning); API errors while waiting are retried.
      - Valid values are at least 0; any other value is refused before anything is sent or changed. With 0 a guest still
        running is stopped hard at once, as Proxmox VE does with a shutdown timeout of 0.
    type: int
    default: 180
notes:
  - The C(hostpciN) value is written with a synchronous C(PUT /nodes/<node>/qemu/<vmid>/config) carrying the
    configuration's digest, so a concurrent change makes the write fail instead of being overwritten.
requirements:
  - proxmoxer >= 2.0
  - requests
seealso:
  - module: homelab.gpu_passthrough.pve_pci_mapping
"""

EXAMPLES = r"""
- name: Pass the iGPU to the k3s agent as PCIe (root@pam)
  homelab.gpu_passthrough.pve_hostpci:
    api_host: pve1.example.lan
    api_user: root@pam
    api_password: "{{ vault_pve_root_password }}"
    ca_path: files/pve-root-ca.pem
    node: pve1
    vmid: 120
    slot: 0
    host: "0000:00:02.0"
    pcie: true
    apply: restart

- name: The same with an API token, through a cluster mapping
  homelab.gpu_passthrough.pve_hostpci:
    api_host: pve1.example.lan
    api_user: automation@pve
    api_token_id: ansible
    api_token_secret: "{{ vault_pve_token_secret }}"
    ca_path: files/pve-root-ca.pem
    vmid: 120
    mapping: igpu
    pcie: true

- name: Remove hostpci1
  homelab.gpu_passthrough.pve_hostpci:
    vmid: 120
    slot: 1
    state: absent
"""

RETURN = r"""
key:
  description: The configuration key managed.
  returned: always
  type: str
  sample: hostpci0
value:
  description: The C(hostpciN) value after the run (pending included); null when absent.
  returned: always
  type: str
  sample: 0000:00:02.0,pcie=1
previous:
  description: The value before the run (pending included); null when it was not set.
  returned: always
  type: str
  sample: null
node:
  description: The node the VM is on.
  returned: always
  type: str
  sample: pve1
pending:
  description: True when the VM runs and the C(hostpciN) change has not taken effect yet (it waits for a restart).
  returned: always
  type: bool
  sample: false
restarted:
  description: True when the module restarted the VM (O(apply=restart)).
  returned: always
  type: bool
  sample: false
"""


from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import vm as pve_vm
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.client import pve_module, session_from_module
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.hostpci import entry_argument_spec

ENTRY_KEYS = tuple(entry_argument_spec()) + ("legacy_igd",)


def run(module):
    p = module.params
    slot = pve_vm.hostpci_slot({"slot": p["slot"]}, 0)
    key = "hostpci%d" % slot
    service = pve_vm.VmService(session_from_module(module), warn=module.warn, shutdown_timeout=p["shutdown_timeout"])
    vm = service.find(p["vmid"], None, p["node"])
    entry = dict({k: p[k] for k in ENTRY_KEYS}, slot=slot)
    wanted = pve_vm.desired_hostpci(service.api, [entry], vm["node"], vm["config"])
    restart = p["apply"] == "restart"
    steps = service.converge(vm, {"hostpci": wanted}, module.check_mode, restart=restart, all_pending=restart)
    result = pve_vm.result_of(service, vm, steps, module.check_mode)
    previous, value = vm["config"].get(key), result["config"].get(key)
    restarted = any(s["action"] == "shutdown" for s in steps)
    running = vm["status"] == "running"
    pending = running and not restarted and (key in vm["pending"] or previous != value)
    out = {"changed": bool(steps), "key": key, "value": value, "previous": previous, "node": vm["node"], "restarted": restarted,
           "pending": bool(pending)}
    if module._diff:
        header = "/nodes/%s/qemu/%s/config/%s" % (vm["node"], vm["vmid"], key)
        out["diff"] = {"before": "%s: %s\n" % (key, previous) if previous is not None else "",
                       "after": "%s: %s\n" % (key, value) if value is not None else "", "before_header": header, "after_header": header}
    return out


def main():
    argument_spec = dict(
        vmid=dict(type="int", required=True),
        node=dict(type="str"),
        slot=dict(type="int", default=0),
        legacy_igd=dict(type="bool"),
        apply=dict(type="str", default="none", choices=["none", "restart"]),
        shutdown_timeout=dict(type="int", default=180),
        **entry_argument_spec()
    )
    module = pve_module(
        argument_spec,
        ranges=dict(vmid=option_checks.VMID, slot=option_checks.HOSTPCI_SLOT,
                    shutdown_timeout=option_checks.SHUTDOWN_TIMEOUT),
        empty_means_default=("node",),
        mutually_exclusive=[("host", "mapping")],
        required_if=[("state", "present", ("host", "mapping"), True)],
    )
    option_checks.exit_with(module, lambda: run(module))


if __name__ == "__main__":
    main()
