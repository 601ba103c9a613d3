#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: iommu_facts
short_description: Read IOMMU state, IOMMU groups and PCI devices of a host
version_added: 0.1.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Reads C(/sys/bus/pci/devices), C(/sys/kernel/iommu_groups), C(/proc/cmdline) and
    C(/sys/firmware/acpi/tables) and returns them as C(ansible_facts.iommu).
  - With O(device), also says whether that device sits alone in its IOMMU group, and why not.
  - Says per device what sharing the live system offers, SR-IOV virtual functions and mediated device (GVT-g) types.
  - Never changes anything. Works on a host without an IOMMU (then RV(ansible_facts.iommu.enabled) is V(false)).
options:
  device:
    description:
      - The device to judge, returned as RV(ansible_facts.iommu.target).
      - A full address (V(0000:00:02.0)), a short address (V(00:02.0)), a vendor:device id (V(8086:3e92), first match)
        or V(auto) (the Intel iGPU at 0000:00:02.0 if present, else the first display-class device by address).
      - An empty string means the same as leaving the option out.
    type: str
  dmesg:
    description:
      - Also run C(dmesg) and judge from the kernel log whether DMA remapping is on; the verdict is
        RV(ansible_facts.iommu.dmesg).
      - Reading the kernel log usually needs root; without it the verdict is an C(error) message, not a failure.
    type: bool
    default: false
  root:
    description:
      - Root of the file system to inspect; C(sys/) and C(proc/) are read below it.
      - An empty string means the same as leaving the option out.
    type: path
    default: /
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: debian
notes:
  - Addresses are always the full lower-case form V(0000:00:02.0); group numbers are strings.
  - C(class_id) is base class and subclass as C(lspci -nn) prints it (V(0300), V(0380), V(0604)).
  - Bridges (PCI base class 06) are left out of the isolation verdict, and so are the other functions of the same
    slot (a GPU's HDMI audio), except on the root bus, where one slot's functions are separate chipset controllers.
seealso:
  - module: homelab.gpu_passthrough.vfio_bind
"""

EXAMPLES = r"""
- name: Read IOMMU groups and devices
  homelab.gpu_passthrough.iommu_facts:

- name: Is the iGPU alone in its IOMMU group?
  homelab.gpu_passthrough.iommu_facts:
    device: auto
    dmesg: true

- name: Stop when the GPU cannot be passed on its own
  ansible.builtin.assert:
    that: ansible_facts.iommu.target.isolated
    fail_msg: "{{ ansible_facts.iommu.target.reasons | join('; ') }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to C(ansible_facts).
  returned: always
  type: dict
  contains:
    iommu:
      description: IOMMU state, groups and PCI devices.
      returned: always
      type: dict
      contains:
        enabled:
          description: Whether IOMMU groups exist.
          returned: always
          type: bool
          sample: true
        vendor:
          description: V(intel) when the firmware has a DMAR table, V(amd) for an IVRS table, else null.
          returned: always
          type: str
          sample: intel
        firmware_vtd:
          description: Whether the firmware offers an IOMMU (a DMAR or IVRS ACPI table is present).
          returned: always
          type: bool
          sample: true
        passthrough_mode:
          description: Whether the kernel command line sets passthrough (C(iommu=pt), read by prefix as the kernel does).
          returned: always
          type: bool
          sample: true
        cmdline:
          description: The tokens of C(/proc/cmdline).
          returned: always
          type: list
          elements: str
          sample: ["BOOT_IMAGE=/boot/vmlinuz-6.8.12-2-pve", "ro", "quiet", "intel_iommu=on", "iommu=pt"]
        groups:
          description: IOMMU group number (a string) to the sorted addresses in it.
          returned: always
          type: dict
          sample: {"0": ["0000:00:02.0"], "1": ["0000:00:00.0"]}
        devices:
          description:
            - Address to C(vendor_id), C(device_id), C(class_id), C(driver) (null when unbound),
              C(iommu_group) (null without IOMMU), C(is_bridge) (class 06xx) and C(is_gpu) (class 03xx).
            - C(sriov), only on a device with the SR-IOV capability (a physical function, e.g. a Gen 12 iGPU) with
              C(total_vfs) (C(sriov_totalvfs)), C(num_vfs) (C(sriov_numvfs), the VFs enabled now) and C(vfs), the
              addresses of the enabled virtual functions in the order of their C(virtfnN) links. A number that
              cannot be read is null.
            - C(physfn), only on a virtual function, the address of its physical function.
            - C(mdev_types), only on a device with C(mdev_supported_types/) (a GVT-g iGPU once C(i915.enable_gvt=1)
              and C(kvmgt) are loaded), one entry per type with C(type) (the directory name, what C(hostpciN)
              C(mdev=) takes), C(name) (null when the type has no name file, as in GVT-g listings),
              C(description) (its lines joined by a comma and a space, as C(mdevctl types) shows it),
              C(available_instances) (how many more instances can be created now) and C(device_api); a value that
              cannot be read is null, and the list is empty when the directory lists no type.
          returned: always
          type: dict
          sample:
            "0000:00:02.0":
              vendor_id: "8086"
              device_id: "3e98"
              class_id: "0300"
              driver: i915
              iommu_group: "0"
              is_bridge: false
              is_gpu: true
              mdev_types:
                - type: i915-GVTg_V5_4
                  name: null
                  description: "low_gm_size: 128MB, high_gm_size: 512MB, fence: 4, resolution: 1920x1200, weight: 4"
                  available_instances: 1
                  device_api: vfio-pci
                - type: i915-GVTg_V5_8
                  name: null
                  description: "low_gm_size: 64MB, high_gm_size: 384MB, fence: 4, resolution: 1024x768, weight: 2"
                  available_instances: 2
                  device_api: vfio-pci
        gpus:
          description: Addresses of display-class (03xx) devices.
          returned: always
          type: list
          elements: str
          sample: ["0000:00:02.0"]
        target:
          description: The verdict for O(device).
          returned: when O(device) is set
          type: dict
          contains:
            address:
              description: The resolved address.
              type: str
              returned: always
              sample: "0000:00:02.0"
            group:
              description: Its IOMMU group, null without IOMMU.
              type: str
              returned: always
              sample: "0"
            isolated:
              description: Whether the device can be passed through without other endpoints.
              type: bool
              returned: always
              sample: true
            group_devices:
              description: Every address in its group, itself included.
              type: list
              elements: str
              returned: always
              sample: ["0000:00:02.0"]
            reasons:
              description: Why it is not isolated; empty when it is.
              type: list
              elements: str
              returned: always
              sample: []
        dmesg:
          description:
            - The kernel log verdict, or C(error) when the log could not be read.
            - C(vendor), C(iommu_enabled), C(evidence) (the deciding log lines), C(default_domain)
              (V(Translated), V(Passthrough) or null) and C(irq_remapping) (V(x2apic), V(xapic), V(enabled) or null).
          returned: when O(dmesg=true)
          type: dict
          sample: {"vendor": "intel", "iommu_enabled": true, "evidence": ["DMAR: IOMMU enabled"],
                   "default_domain": "Passthrough", "irq_remapping": "x2apic"}
"""

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.pci import dmesg_verdict, scan


def read_dmesg(module, vendor):
    dmesg = module.get_bin_path("dmesg")
    if dmesg is None:
        return {"error": "dmesg was not found on the host."}
    try:
        rc, out, err = module.run_command([dmesg], handle_exceptions=False, encoding=None)
    except OSError as exc:
        return {"error": "dmesg could not run: %s" % exc}
    # The kernel log holds whatever drivers printed: decode with replacement, never fail the facts on it.
    out, err = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else (v or "") for v in (out, err)]
    # Unprivileged reads fail when kernel.dmesg_restrict=1; report it instead of failing the facts.
    if rc != 0:
        return {"error": (err or out or "dmesg exited with %d" % rc).strip()}
    return dmesg_verdict(out, vendor=vendor)


def main():
    module = option_checks.checked_module(
        dict(
            device=dict(type="str"),
            dmesg=dict(type="bool", default=False),
            root=dict(type="path", default="/"),
        ),
        empty_means_default=("device", "root"),
        supports_check_mode=True,
    )
    try:
        facts = scan(module.params["root"], device=module.params["device"])
    except PassthroughError as err:
        module.fail_json(**err.to_result())
    if module.params["dmesg"]:
        facts["dmesg"] = read_dmesg(module, facts["vendor"])
    module.exit_json(changed=False, ansible_facts={"iommu": facts})


if __name__ == "__main__":
    main()
