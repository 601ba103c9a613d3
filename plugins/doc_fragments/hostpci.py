# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

import textwrap


class ModuleDocFragment:
    # The options of one hostpciN entry (argument spec: pve.hostpci.entry_argument_spec). pve_hostpci takes them as
    # its options (this fragment), pve_vm_q35 as the suboptions of its hostpci list (hostpci.entries, below).
    DOCUMENTATION = r"""
options:
  host:
    description:
      - The host PCI device, as an address (V(0000:00:02.0), V(00:02.0), V(0000:01:00) for all functions,
        V(0000:01:00.0;0000:01:00.1)) or as V(vendor:device) ids (V(8086:3e92)), which are looked up in
        C(/nodes/<node>/hardware/pci) and must match exactly one device.
      - A new address is checked against that list before anything is written or the VM is shut down.
      - Only C(root@pam) with a password may set it; with an API token use C(mapping).
      - Mutually exclusive with C(mapping).
      - An empty string is refused.
    type: str
  mapping:
    description:
      - The id of a cluster PCI resource mapping (C(/cluster/mapping/pci)); works with API tokens.
      - It must exist and have a valid entry for the VM's node (checked before anything is written).
      - Needs C(Mapping.Use) on C(/mapping/pci/<id>) and C(VM.Config.HWType) on the VM.
      - An empty string is refused.
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
      - Mediated device type, for example V(i915-GVTg_V5_4) for Intel GVT-g; it must be one the device offers on the
        node (checked before anything is written).
      - An empty string is refused.
    type: str
  romfile:
    description:
      - A ROM file name (no path) under C(/usr/share/kvm/) on the node. Only C(root@pam) may set it on Proxmox VE 9.2
        and later (qemu-server 9.2.6), even with a mapping.
      - An empty string is refused.
    type: str
  driver:
    description:
      - V(vfio) (Proxmox VE's default) binds the device to vfio-pci at VM start; V(keep) (Proxmox VE 9) leaves the
        host driver bound. Not set, the live value stays.
    type: str
    choices: [vfio, keep]
  state:
    description:
      - V(present) makes C(hostpciN) hold the described device, V(absent) removes C(hostpciN).
    type: str
    choices: [present, absent]
    default: present
"""


# The slot of an entry in a list: unlike pve_hostpci's slot option it has no default of its own.
_LIST_SLOT = r"""
slot:
  description:
    - The N of C(hostpciN), 0 to 15. Defaults to the entry's position in the list.
    - Valid values are 0..15; any other value is refused before anything is sent or changed.
  type: int
"""

# The same options as the suboptions of a hostpci list option, for pve_vm_q35 (extends_documentation_fragment
# homelab.gpu_passthrough.hostpci.entries). Ansible merges a fragment's options one level deep, and the module's own
# keys of an option win, so the module documents description, type, elements and default of its hostpci option and
# this fragment adds the suboptions. Built from DOCUMENTATION so that the entry options are written once.
ModuleDocFragment.ENTRIES = "\noptions:\n  hostpci:\n    suboptions:\n%s%s" % (
    textwrap.indent(_LIST_SLOT.lstrip("\n"), "      "),
    textwrap.indent(ModuleDocFragment.DOCUMENTATION.split("\noptions:\n", 1)[1], "    "),
)
