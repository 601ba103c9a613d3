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
  - Options not given take Proxmox VE's defaults; the entry is written as a whole.
  - The value is checked against the VM's machine and VGA before writing (C(pcie=1) needs q35, C(legacy-igd=1)
    needs i440fx with C(vga=none), and so on), because Proxmox VE itself only checks these when the VM starts.
  - Proxmox VE lets only C(root@pam) set, replace or remove a raw C(host) address. An API token is
    C(user@realm!name), never C(root@pam); with a token and a raw address the module fails before it writes anything.
  - A running VM keeps the change pending until it is restarted; O(apply=restart) shuts it down and starts it again.
extends_documentation_fragment:
  - homelab.gpu_passthrough.pve_auth
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
    type: int
    required: true
  node:
    description:
      - The node the VM is on. When not set it is looked up in C(/cluster/resources).
    type: str
  slot:
    description:
      - The N of C(hostpciN), 0 to 15.
    type: int
    default: 0
  host:
    description:
      - The host PCI device, as an address (V(0000:00:02.0), V(00:02.0), V(0000:01:00) for all functions,
        V(0000:01:00.0;0000:01:00.1)) or as V(vendor:device) ids (V(8086:3e92)), which are looked up in
        C(/nodes/<node>/hardware/pci) and must match exactly one device.
      - Only C(root@pam) with a password may set it.
      - Mutually exclusive with O(mapping).
    type: str
  mapping:
    description:
      - The id of a cluster PCI resource mapping (C(/cluster/mapping/pci)).
      - Needs C(Mapping.Use) on C(/mapping/pci/<id>) and C(VM.Config.HWType) on the VM; works with API tokens.
    type: str
  pcie:
    description:
      - Pass the device as PCI Express (C(pcie=1)). Needs a q35 machine.
    type: bool
  rombar:
    description:
      - Whether the device's ROM is visible to the guest (Proxmox VE default V(true)).
    type: bool
  x_vga:
    description:
      - Mark the device as the VM's primary GPU (C(x-vga=1)).
    type: bool
  mdev:
    description:
      - Mediated device type, for example V(i915-GVTg_V5_4) for Intel GVT-g.
    type: str
  romfile:
    description:
      - A ROM file name under C(/usr/share/kvm/) on the node. Only C(root@pam) may set it.
    type: str
  legacy_igd:
    description:
      - Legacy Intel IGD assignment (C(legacy-igd=1)); needs an i440fx machine, C(vga=none) and the iGPU at C(00:02.0).
    type: bool
  state:
    description:
      - V(present) makes C(hostpciN) hold the described device, V(absent) removes C(hostpciN).
    type: str
    choices: [present, absent]
    default: present
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
      - Seconds a guest gets to shut down with O(apply=restart) before it is stopped.
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


from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import hostpci
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import (
    AUTH_ARGUMENT_SPEC,
    AUTH_MUTUALLY_EXCLUSIVE,
    AUTH_REQUIRED_ONE_OF,
    AUTH_REQUIRED_TOGETHER,
    session_from_module,
)


def find_vm_node(session, vmid):
    for res in session.get("/cluster/resources", type="vm") or []:
        if str(res.get("vmid")) == str(vmid) and res.get("type", "qemu") == "qemu":
            return res["node"]
    raise PassthroughError("VM %s was not found in the cluster (/cluster/resources)." % vmid,
                           fix="check vmid, or that the API user has VM.Audit on /vms/%s." % vmid, link="input")


def _is_raw(value):
    try:
        return hostpci.parse(value)["host"] is not None
    except PassthroughError:
        return False


def _restart(module, session, node, vmid):
    base = "/nodes/%s/qemu/%s/status" % (node, vmid)
    timeout = module.params["shutdown_timeout"]
    upid = session.post(base + "/shutdown", timeout=timeout, forceStop=1)
    session.wait_task(upid, timeout=timeout + 60)
    upid = session.post(base + "/start")
    session.wait_task(upid, timeout=600)


def run(module, session):
    p = module.params
    vmid = p["vmid"]
    slot = p["slot"]
    if not 0 <= slot < hostpci.MAX_HOSTPCI_DEVICES:
        raise PassthroughError("slot %d is out of range." % slot, fix="use a slot from 0 to %d." % (hostpci.MAX_HOSTPCI_DEVICES - 1))
    key = "hostpci%d" % slot
    authid = session.authid
    present = p["state"] == "present"

    # The permission rule first: a raw address needs root@pam, whatever the VM holds.
    if present and p["host"] and authid != hostpci.ROOT:
        raise PassthroughError(
            "only root can set '%s' config for non-mapped devices: host %s for API user %r%s; nothing was changed."
            % (key, p["host"], authid, " (an API token, which is never root@pam)" if "!" in authid else ""),
            fix=hostpci.FIX_NOT_ROOT,
            link="input",
            details={"user": authid, "option": key},
        )

    node = p["node"] or find_vm_node(session, vmid)
    config_path = "/nodes/%s/qemu/%s/config" % (node, vmid)
    vm = session.vm_state(node, vmid)
    config = vm["config"]
    previous = config.get(key)

    want = None
    if present:
        host = hostpci.entry_host(p, previous, node, lambda: session.pci_devices(node)) if p["host"] else None
        want = hostpci.entry_value(p, host)
        hostpci.validate(want, machine=config.get("machine"), bios=config.get("bios"), vga=config.get("vga"),
                         user=authid, slot=slot, raise_errors=True)
        final = dict(config)
        final[key] = want
        for problem in hostpci.validate_config({k: v for k, v in final.items() if k != "digest"}):
            opts = problem.details.get("options") or [problem.details.get("option")]
            if key in opts:
                raise problem
        changed = previous is None or not hostpci.equivalent(previous, want)
        value = want if changed else previous
    else:
        changed = previous is not None
        value = None

    # Replacing or removing a raw address is root@pam's too (the API checks the old value).
    if changed and previous is not None and authid != hostpci.ROOT and _is_raw(previous):
        raise hostpci.check_permission(previous, authid, key)[0]

    running = vm["status"] == "running"
    key_pending = key in vm["pending"]
    any_pending = bool(vm["pending"])

    result = {"changed": changed, "key": key, "value": value, "previous": previous, "node": node, "restarted": False}
    if module._diff:
        result["diff"] = {
            "before": "%s: %s\n" % (key, previous) if previous is not None else "",
            "after": "%s: %s\n" % (key, value) if value is not None else "",
            "before_header": "%s/%s" % (config_path, key),
            "after_header": "%s/%s" % (config_path, key),
        }

    if changed and not module.check_mode:
        if present:
            session.put(config_path, digest=config.get("digest"), **{key: want})
        else:
            session.put(config_path, digest=config.get("digest"), delete=key)
    pending = running and (changed or key_pending)

    if p["apply"] == "restart" and running and (changed or any_pending):
        result["changed"] = True
        result["restarted"] = True
        if not module.check_mode:
            _restart(module, session, node, vmid)
        pending = False
    result["pending"] = bool(pending)
    return result


def main():
    argument_spec = dict(AUTH_ARGUMENT_SPEC)
    argument_spec.update(
        vmid=dict(type="int", required=True),
        node=dict(type="str"),
        slot=dict(type="int", default=0),
        host=dict(type="str"),
        mapping=dict(type="str"),
        pcie=dict(type="bool"),
        rombar=dict(type="bool"),
        x_vga=dict(type="bool"),
        mdev=dict(type="str"),
        romfile=dict(type="str"),
        legacy_igd=dict(type="bool"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        apply=dict(type="str", default="none", choices=["none", "restart"]),
        shutdown_timeout=dict(type="int", default=180),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=AUTH_REQUIRED_ONE_OF,
        required_together=AUTH_REQUIRED_TOGETHER,
        mutually_exclusive=AUTH_MUTUALLY_EXCLUSIVE + [("host", "mapping")],
        required_if=[("state", "present", ("host", "mapping"), True)],
        supports_check_mode=True,
    )
    try:
        session = session_from_module(module)
        result = run(module, session)
    except PassthroughError as err:
        module.fail_json(**err.to_result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
