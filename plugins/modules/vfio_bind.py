#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vfio_bind
short_description: Bind PCI devices to vfio-pci, now and at every boot
version_added: 0.1.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Hands PCI devices to the C(vfio-pci) driver so a VM can take them.
  - At runtime through C(driver_override), C(unbind) and C(drivers_probe) in sysfs.
  - "Persistently through a modprobe.d file with C(options vfio-pci ids=...) and, per original driver,
    C(softdep <driver> pre: vfio-pci) so that vfio-pci claims the devices before their own drivers at boot."
  - Refuses, and changes nothing, when a device shares its IOMMU group with an endpoint that was not named,
    unless O(group=true).
  - With O(state=absent) the ids and softdeps go from the file and the devices go back to their own drivers.
options:
  devices:
    description:
      - The devices, each a full address (V(0000:01:00.0)), a short address (V(01:00.0)) or a vendor:device id
        (V(1002:67df), every device with that id).
      - An empty string as an item is refused.
    type: list
    elements: str
    required: true
  group:
    description:
      - Also take every other endpoint of each device's IOMMU group. Bridges are never taken.
      - When V(false), a group with endpoints that were not named is refused.
    type: bool
    default: false
  state:
    description:
      - V(present) binds the devices to vfio-pci; V(absent) hands them back to their own drivers.
    type: str
    choices: [present, absent]
    default: present
  runtime:
    description:
      - Change the binding now, through sysfs. Loads the vfio-pci module first when it is not loaded
        (only when O(root=/)).
    type: bool
    default: true
  persistent:
    description:
      - Manage O(conf_path) so that the binding holds after a reboot.
    type: bool
    default: true
  conf_path:
    description:
      - The modprobe.d file this module owns. It is rewritten as a whole, keeping lines it does not manage.
      - Taken below O(root) when O(root) is not V(/); a path that leads outside O(root) (C(..), a symlink) is refused.
      - A directory, or a file that is not UTF-8 and would have to change, is refused and left as it is. The file is
        replaced atomically and no temporary file is left behind.
      - An initramfs that loads vfio-pci early needs C(update-initramfs -u) after a change,
        see RV(initramfs_update_required).
      - An empty string is refused.
    type: path
    default: /etc/modprobe.d/vfio.conf
  softdep:
    description:
      - "Write C(softdep <original driver> pre: vfio-pci) for the drivers the devices had, so vfio-pci loads first."
      - Set V(false) when the original drivers are blacklisted instead; existing softdep lines are then removed.
    type: bool
    default: true
  backup:
    description:
      - Keep a timestamped copy of O(conf_path) before changing it.
    type: bool
    default: false
  root:
    description:
      - Root of the file system to act on; C(sys/) and O(conf_path) are taken below it.
      - An empty string is refused.
    type: path
    default: /
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  facts:
    support: none
  platform:
    platforms: debian
notes:
  - The original driver of a device already on vfio-pci (after a reboot) comes from the comment the module keeps in
    O(conf_path), or from the device's modalias through C(modprobe --resolve-alias).
  - C(ids=) claims every device with the same vendor:device id at boot; the module warns when other devices share one.
  - Binding needs the IOMMU on; without IOMMU groups only the file is written and a warning says so.
seealso:
  - module: homelab.gpu_passthrough.iommu_facts
"""

EXAMPLES = r"""
- name: Give the RX 580 and its HDMI audio to vfio-pci
  homelab.gpu_passthrough.vfio_bind:
    devices:
      - "0000:2d:00.0"
      - "0000:2d:00.1"
  register: vfio

- name: Rebuild the initramfs when the modprobe.d file changed
  ansible.builtin.command: update-initramfs -u -k all
  when: vfio.initramfs_update_required
  changed_when: true

- name: Bind a GPU by id, with everything in its IOMMU group, the blacklist way
  homelab.gpu_passthrough.vfio_bind:
    devices: ["10de:1b81"]
    group: true
    softdep: false

- name: Hand the devices back to their own drivers
  homelab.gpu_passthrough.vfio_bind:
    devices: ["0000:2d:00.0", "0000:2d:00.1"]
    state: absent
"""

RETURN = r"""
devices:
  description: The addresses acted on, group companions included.
  returned: always
  type: list
  elements: str
  sample: ["0000:2d:00.0", "0000:2d:00.1"]
ids:
  description: The vendor:device ids of RV(devices), sorted and unique.
  returned: always
  type: list
  elements: str
  sample: ["1002:67df", "1002:aaf0"]
bound:
  description: Address to the driver after the run (null when unbound); predicted in check mode.
  returned: always
  type: dict
  sample: {"0000:2d:00.0": "vfio-pci", "0000:2d:00.1": "vfio-pci"}
conf_changed:
  description: Whether O(conf_path) changed (or would change in check mode).
  returned: always
  type: bool
  sample: true
initramfs_update_required:
  description: Whether the initramfs must be rebuilt (C(update-initramfs -u)) for the file to take effect at boot.
  returned: always
  type: bool
  sample: true
backup_file:
  description: The copy of the old file.
  returned: when O(backup=true) and the file changed
  type: str
  sample: /etc/modprobe.d/vfio.conf.12345.2026-01-01@10:00:00~
"""

import os

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.files import check_writable, confine, read_for_edit, read_lenient, write_atomic
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.pci import (
    VFIO_DRIVER,
    bind_to_vfio,
    current_driver,
    plan_vfio,
    release_from_vfio,
    scan,
    vfio_driver_loaded,
)


def alias_resolver(module):
    modprobe = module.get_bin_path("modprobe")
    if modprobe is None:
        return None

    def resolve(modalias):
        rc, out, dummy = module.run_command([modprobe, "--resolve-alias", modalias])
        return out.split() if rc == 0 else []

    return resolve


def apply_runtime(module, root, facts, plan):
    if root == "/" and "bind" in plan["runtime"].values() and not vfio_driver_loaded(root):
        modprobe = module.get_bin_path("modprobe", required=True)
        module.run_command([modprobe, VFIO_DRIVER], check_rc=True)
        if not vfio_driver_loaded(root):
            raise PassthroughError(
                "modprobe vfio-pci ran, but /sys/bus/pci/drivers/vfio-pci does not exist.",
                fix="Install a kernel with vfio-pci (CONFIG_VFIO_PCI) and check dmesg.",
                link="binding",
            )
    for address, action in sorted(plan["runtime"].items()):
        device = facts["devices"][address]
        try:
            if action == "bind":
                bind_to_vfio(root, address, device["driver"])
            elif action == "release":
                release_from_vfio(root, address, device["driver"], device["vendor_id"], device["device_id"])
        except OSError as err:
            raise PassthroughError(
                "Writing to sysfs for %s failed: %s." % (address, err),
                fix="Run as root; if the device is in use (a running VM, a console on the GPU), stop that first.",
                link="binding",
            ) from err


def main():
    module = option_checks.checked_module(
        dict(
            devices=dict(type="list", elements="str", required=True),
            group=dict(type="bool", default=False),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            runtime=dict(type="bool", default=True),
            persistent=dict(type="bool", default=True),
            conf_path=dict(type="path", default="/etc/modprobe.d/vfio.conf"),
            softdep=dict(type="bool", default=True),
            backup=dict(type="bool", default=False),
            root=dict(type="path", default="/"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    root = params["root"]

    try:
        conf_path = confine(root, params["conf_path"], "conf_path")
        facts = scan(root)
        # Read even when not managing it: the file remembers the original drivers.
        before = read_lenient(conf_path) if os.path.isfile(conf_path) else read_for_edit(conf_path, "conf_path")
        plan = plan_vfio(
            facts,
            root,
            params["devices"],
            state=params["state"],
            add_group=params["group"],
            softdep=params["softdep"],
            conf_text=before,
            resolve_alias=alias_resolver(module) if root == "/" else None,
        )
    except PassthroughError as err:
        module.fail_json(**err.to_result())

    after = plan["conf_after"]
    if not params["persistent"]:
        conf_changed = False
    elif after is None:
        conf_changed = before is not None
    else:
        conf_changed = after != before
    runtime_changed = params["runtime"] and any(plan["runtime"].values())

    for warning in plan["warnings"]:
        module.warn(warning)

    result = dict(
        changed=bool(conf_changed or runtime_changed),
        devices=plan["devices"],
        ids=plan["ids"],
        conf_changed=conf_changed,
        initramfs_update_required=conf_changed,
    )
    if module._diff and params["persistent"]:
        result["diff"] = dict(before=before or "", after=after or "", before_header=conf_path, after_header=conf_path)

    if module.check_mode:
        result["bound"] = plan["expected"] if params["runtime"] else {a: facts["devices"][a]["driver"] for a in plan["devices"]}
        module.exit_json(**result)

    if conf_changed:
        try:
            if before is not None and "\ufffd" in before:
                read_for_edit(conf_path, "conf_path")  # refuses bytes a rewrite would not keep
            if not os.path.isdir(os.path.dirname(conf_path)):
                os.makedirs(os.path.dirname(conf_path))
            check_writable(conf_path)
            if params["backup"] and before is not None:
                result["backup_file"] = module.backup_local(conf_path)
            if after is None:
                os.remove(conf_path)
            else:
                write_atomic(conf_path, after)
        except PassthroughError as err:
            if result.get("backup_file"):
                os.unlink(result.pop("backup_file"))  # the file is unchanged, so is its copy
            module.fail_json(**err.to_result())

    if params["runtime"]:
        try:
            apply_runtime(module, root, facts, plan)
        except PassthroughError as err:
            module.fail_json(**dict(err.to_result(), **result))

    result["bound"] = {a: current_driver(root, a) for a in plan["devices"]}
    for address, action in plan["runtime"].items():
        if action == "bind" and params["runtime"] and result["bound"][address] != VFIO_DRIVER:
            module.warn("%s is on %s after binding, not vfio-pci; see dmesg." % (address, result["bound"][address]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
