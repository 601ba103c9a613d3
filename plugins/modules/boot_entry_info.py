#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: boot_entry_info
short_description: Read back the kernel command line the boot loader will boot, and judge it
version_added: 0.2.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Reads what the boot loader boots next, not what the configuration files ask for.
  - GRUB, the default entry of the generated C(grub.cfg) and its C(linux) line. C(set default=), C(saved_entry)
    and C(next_entry) from C(grubenv) and C(>) paths through submenus are honoured.
  - systemd-boot, the loader entry chosen by the C(LoaderEntryOneShot) or C(LoaderEntryDefault) EFI variable, the
    C(default) glob of C(loader/loader.conf), or else the newest entry, and its C(options) lines.
  - When C(/etc/kernel/proxmox-boot-uuids) lists ESPs, every one of them is read (mounted read-only for the time
    of the read when not mounted), since C(proxmox-boot-tool refresh) writes them all and the firmware may boot any.
  - Judges each entry, it must carry C(root=), every argument of O(present) and none of O(absent), and, with
    O(modules), boot a kernel whose C(/lib/modules/<version>/) has each of them, so a host is never rebooted into
    a kernel without the driver its mode loads (an upgraded kernel without its dkms build).
    RV(ok) says whether it is safe to reboot; RV(msg) names each bad entry, where it is, what it holds, and RV(fix) what to run.
  - Never changes anything and does not fail on a bad entry; the caller decides (the proxmox_gpu_prep role refuses to reboot).
options:
  present:
    description:
      - Arguments the entry must carry, name to value, as for the kernel_cmdline module. V(true) or null for a bare flag.
    type: dict
    default: {}
  absent:
    description:
      - Arguments the entry must not carry. A bare name matches it with any value, V(name=value) only that value.
      - An empty string as an item is refused.
    type: list
    elements: str
    default: []
  modules:
    description:
      - Kernel modules the kernel of each entry must have, in its C(/lib/modules/<version>/) or built in (its
        C(modules.builtin)). C(-) and C(_) in a name are the same, as for modprobe.
      - A path below C(/lib/modules/<version>/) ending in a module name, like V(updates/dkms/i915), asks for that
        build only, where dkms installs it; the stock module of the same name does not count.
      - The kernel is the version in the entry's image name (C(vmlinuz-<version>)) or its loader entry's C(version).
      - An empty string as an item is refused.
    type: list
    elements: str
    default: []
  bootloader:
    description:
      - The boot loader to read. V(auto) reads the loader entries when the ESP has some and O(grub_cfg) does not exist, else GRUB.
      - ESPs listed by proxmox-boot-tool are always read, each by what it holds (C(loader/entries) or C(grub/grub.cfg)).
    type: str
    choices: [auto, grub, systemd-boot]
    default: auto
  grub_cfg:
    description:
      - The generated GRUB configuration; C(grubenv) is read from the same directory.
      - An empty string means the same as leaving the option out.
    type: path
    default: /boot/grub/grub.cfg
  esp_paths:
    description:
      - Where the ESP (and an XBOOTLDR partition) may be mounted; each one that has C(loader/entries) is read.
      - An empty string as an item is refused.
    type: list
    elements: path
    default: [/efi, /boot/efi, /boot]
  root:
    description:
      - Directory all paths are read under. Meant for tests and images. Below another root the ESPs of
        proxmox-boot-tool are read from C(var/tmp/espmounts/<UUID>) under it and nothing is mounted.
      - An empty string means the same as leaving the option out.
    type: path
    default: /
attributes:
  check_mode:
    description: Reads only, in check mode as well.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: none
  platform:
    description: Debian-based hosts, Proxmox VE included.
    support: full
    platforms: debian
notes:
  - Run with become, the ESPs and C(grub.cfg) are readable by root only on most hosts.
seealso:
  - module: homelab.gpu_passthrough.kernel_cmdline
"""

EXAMPLES = r"""
- name: Read back the boot entry before rebooting
  homelab.gpu_passthrough.boot_entry_info:
    present:
      intel_iommu: "on"
      iommu: pt
  register: boot_entry

- name: Read back the entry of a host sharing its GPU with SR-IOV, and the dkms build in the kernel it boots
  homelab.gpu_passthrough.boot_entry_info:
    present:
      i915.enable_guc: "3"
      i915.max_vfs: "7"
    modules: [vfio-pci, updates/dkms/i915]
  register: boot_entry
- name: Refuse to reboot into a command line the boot loader does not carry
  ansible.builtin.fail:
    msg: "{{ boot_entry.msg }} Fix: {{ boot_entry.fix }}"
  when: not boot_entry.ok
"""

RETURN = r"""
ok:
  description: Whether every entry carries C(root=) and the wanted arguments, so a reboot boots them.
  returned: always
  type: bool
  sample: true
msg:
  description: The verdict, naming each bad entry, where it is and what its command line holds.
  returned: always
  type: str
  sample: "The boot loader would not boot the wanted command line: ESP 7E3A-21F0 entry proxmox-6.8.12-4-pve.conf lacks iommu=pt ..."
fix:
  description: What to run when RV(ok) is false; null otherwise.
  returned: always
  type: str
  sample: Run update-grub, check GRUB_DEFAULT in /etc/default/grub (and grub-editenv list for saved_entry), then run the role again.
bootloader:
  description: The boot loader read, V(grub) or V(systemd-boot) (V(mixed) when proxmox-boot-tool ESPs differ).
  returned: always
  type: str
  sample: grub
managed_by:
  description: V(proxmox-boot-tool) when it lists the ESPs, else null.
  returned: always
  type: str
  sample: proxmox-boot-tool
entries:
  description: The entries read, one per proxmox-boot-tool ESP, else one.
  returned: always
  type: list
  elements: dict
  contains:
    where:
      description: The file or ESP the entry was read from.
      type: str
    name:
      description: The menu entry title (GRUB) or the loader entry file name (systemd-boot); null when none was found.
      type: str
    chosen_by:
      description: Why this entry is the one booted (the default setting that names it).
      type: str
    cmdline:
      description: Its kernel arguments; null when none could be read.
      type: str
    kernel:
      description: The version of the kernel it boots (the name of its C(/lib/modules/<version>/)); null when the
        image path names none.
      type: str
      sample: 6.8.12-4-pve
    modules:
      description:
        - With O(modules), each asked for with where the kernel has it (its path below C(/lib/modules/<version>/),
          or V(builtin)), or null when it lacks it.
        - Null when the kernel has no C(/lib/modules/<version>/) or no version could be told.
      type: dict
      sample: {"vfio-pci": "builtin", "updates/dkms/i915": "updates/dkms/i915.ko.xz"}
    missing_modules:
      description: With O(modules), those its kernel lacks.
      type: list
      elements: str
    problem:
      description: Why no command line could be read, else null.
      type: str
    ok:
      description: Whether this entry carries C(root=) and the wanted arguments.
      type: bool
    missing:
      description: Wanted arguments it lacks.
      type: list
      elements: str
    unwanted:
      description: Entries of O(absent) it still carries.
      type: list
      elements: str
"""

import contextlib
import os
import tempfile

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.boot_entry import (
    check_module_specs,
    judge,
    read_boot_entries,
    under,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.cmdline import validate_args


def esp_opener(module, root):
    """Context manager factory: the directory holding one proxmox-boot-tool ESP, or None."""

    @contextlib.contextmanager
    def open_esp(uuid):
        if root != "/":
            path = under(root, "/var/tmp/espmounts/%s" % uuid)
            yield path if os.path.isdir(path) else None
            return
        device = "/dev/disk/by-uuid/%s" % uuid
        if not os.path.exists(device):
            yield None
            return
        rc, out, dummy = module.run_command(["findmnt", "-n", "-o", "TARGET", "--source", device])
        if rc == 0 and out.strip():
            yield out.splitlines()[0].strip()
            return
        mountpoint = tempfile.mkdtemp(prefix="boot_entry_info.")
        try:
            rc, dummy, dummy = module.run_command(["mount", "-o", "ro", device, mountpoint])
            if rc != 0:
                yield None
                return
            try:
                yield mountpoint
            finally:
                module.run_command(["umount", mountpoint])
        finally:
            # rmdir, never a recursive delete: a mount left behind must keep its files.
            try:
                os.rmdir(mountpoint)
            except OSError:
                pass

    return open_esp


def run(module):
    p = module.params
    validate_args(p["present"], p["absent"])
    check_module_specs(p["modules"])
    root = p["root"] or "/"
    found = read_boot_entries(root, p["bootloader"], p["grub_cfg"], p["esp_paths"], open_esp=esp_opener(module, root),
                              modules=p["modules"])
    verdict = judge(found["entries"], p["present"], p["absent"], fix=found["fix"], modules=p["modules"])
    return dict(changed=False, bootloader=found["bootloader"], managed_by=found["managed_by"], **verdict)


def main():
    module = option_checks.checked_module(
        dict(
            present=dict(type="dict", default={}),
            absent=dict(type="list", elements="str", default=[]),
            modules=dict(type="list", elements="str", default=[]),
            bootloader=dict(type="str", default="auto", choices=["auto", "grub", "systemd-boot"]),
            grub_cfg=dict(type="path", default="/boot/grub/grub.cfg"),
            esp_paths=dict(type="list", elements="path", default=["/efi", "/boot/efi", "/boot"]),
            root=dict(type="path", default="/"),
        ),
        empty_means_default=("grub_cfg", "root"),
        supports_check_mode=True,
    )
    option_checks.exit_with(module, lambda: run(module))


if __name__ == "__main__":
    main()
