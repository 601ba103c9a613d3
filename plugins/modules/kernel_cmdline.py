#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kernel_cmdline
short_description: Set and remove kernel command line arguments in the boot loader configuration
version_added: 0.1.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Edits the kernel command line a Proxmox VE or Debian host boots with, such as C(intel_iommu=on iommu=pt).
  - On GRUB hosts it edits the value of O(grub_variable) in O(grub_file), or in the C(.cfg) drop-in under
    C(<grub_file>.d/) that assigns it last, since C(update-grub) sources the drop-ins after the main file.
    Comments, other lines and the quote style are kept.
  - On systemd-boot hosts (Proxmox VE with ZFS root on UEFI, managed by C(proxmox-boot-tool)) it edits
    O(kernel_cmdline_file), which is written back as one line. When that file does not exist yet it is
    seeded from the running command line without the C(BOOT_IMAGE=) and C(initrd=) arguments the boot
    loader adds.
  - Each argument in O(present) ends up exactly once, where it first stood; repeats of it and variants
    of its value (C(iommu=pti)) are replaced. Every other argument keeps its place and text.
  - The module does not run the refresh command nor reboot; it returns RV(refresh_command),
    RV(refresh_required) and RV(reboot_required) so the caller can do both.
options:
  present:
    description:
      - Arguments to set, as name to value.
      - A value of V(true), null or an empty string makes a bare flag such as C(nomodeset). Numbers are written as text.
      - Names and values must not contain whitespace or quotes, except a value wholly enclosed in double quotes.
    type: dict
    default: {}
  absent:
    description:
      - Arguments to remove.
      - A bare name (V(nomodeset), V(iommu)) removes every occurrence of that name, with or without a value.
      - A V(name=value) entry removes only the occurrences with exactly that value.
      - A name may not appear in both O(present) and O(absent).
      - An empty string as an item is refused.
    type: list
    elements: str
    default: []
  bootloader:
    description:
      - Which boot loader configuration to edit.
      - V(auto) asks C(proxmox-boot-tool status) which ESPs it manages and how, and otherwise looks for
        O(kernel_cmdline_file) and O(grub_file). It fails when it cannot tell; then set V(grub) or V(systemd-boot).
    type: str
    choices: [auto, grub, systemd-boot]
    default: auto
  grub_file:
    description:
      - The GRUB defaults file. Drop-ins are read from the directory of the same name with C(.d) appended.
      - An empty string is refused.
    type: path
    default: /etc/default/grub
  grub_variable:
    description:
      - The GRUB variable that holds the arguments.
      - An empty string is refused.
    type: str
    default: GRUB_CMDLINE_LINUX_DEFAULT
  kernel_cmdline_file:
    description:
      - The command line file read by C(proxmox-boot-tool refresh) and C(kernel-install).
      - An empty string is refused.
    type: path
    default: /etc/kernel/cmdline
  take_root_from_live:
    description:
      - When the systemd-boot command line file is empty or lacks C(root=), copy C(root=) (and C(rootfstype=), C(rootflags=),
        C(boot=) that go with it) from the running command line (C(/proc/cmdline)) instead of refusing.
      - Without it such a file is refused, since a loader entry without C(root=) does not boot.
    type: bool
    default: false
  backup:
    description:
      - Make a timestamped backup of the file before changing it.
    type: bool
    default: true
  root:
    description:
      - Directory all paths are read under, including C(/proc/cmdline) and C(/boot). Meant for tests and
        images. With O(bootloader=auto) a C(proxmox-boot-tool) found under it is run with C(status) as is (not
        chrooted); with an explicit O(bootloader) nothing is run and RV(refresh_command) assumes no proxmox-boot-tool.
      - An empty string is refused.
    type: path
    default: /
attributes:
  check_mode:
    description: Computes the new command line and reports the change without writing anything.
    support: full
  diff_mode:
    description: Shows the edited file before and after the change.
    support: full
  platform:
    description: Debian-based hosts, Proxmox VE included.
    support: full
    platforms: debian
notes:
  - Run with become, the files are owned by root.
  - Values with shell expansion in the GRUB file (for example C("$GRUB_CMDLINE_LINUX_DEFAULT iommu=pt")) are
    refused rather than rewritten.
  - "Refused, writing nothing and leaving no temporary file: a O(kernel_cmdline_file) empty or without C(root=) (see
    O(take_root_from_live)); a O(grub_variable) that is not a plain shell name; argument names or values holding shell or
    GRUB syntax (C($), C(;), C(\\), backquotes, parentheses, braces, glob characters); a GRUB file with an unterminated
    quote, or a line continuation outside quotes in the assignment to edit; a command line whose double quotes do not pair up
    (the kernel would read the added arguments as part of that value); a file that is not UTF-8; a path that is a
    directory; a path that leads outside O(root) (C(..) or a symlink); an immutable or append-only file (C(chattr +i)), a
    read-only mount or a file this user cannot write. Each message names the file, the problem and the fix."
  - The file is replaced atomically (a temporary file beside it, renamed over it), keeping its mode and owner.
seealso:
  - name: Proxmox VE host bootloader
    description: Where Proxmox VE keeps the kernel command line and how to apply it.
    link: https://pve.proxmox.com/wiki/Host_Bootloader
"""

EXAMPLES = r"""
- name: Turn on the IOMMU in passthrough mode
  homelab.gpu_passthrough.kernel_cmdline:
    present:
      intel_iommu: "on"
      iommu: pt
  register: cmdline

- name: Apply the new command line to the boot loader
  ansible.builtin.command:
    argv: "{{ item }}"
  loop: "{{ cmdline.refresh_command }}"
  changed_when: true
  when: cmdline.refresh_required

- name: Reboot into it
  ansible.builtin.reboot:
  when: cmdline.reboot_required

- name: Drop nomodeset and pin vfio-pci ids on a GRUB host
  homelab.gpu_passthrough.kernel_cmdline:
    bootloader: grub
    present:
      vfio-pci.ids: "8086:3e92,8086:a348"
    absent:
      - nomodeset
"""

RETURN = r"""
bootloader:
  description: The boot loader whose configuration was edited.
  returned: success
  type: str
  sample: systemd-boot
path:
  description: The file edited (or that would be), under O(root).
  returned: success
  type: str
  sample: /etc/kernel/cmdline
cmdline:
  description: The argument string after the change, tokens separated by single spaces.
  returned: success
  type: str
  sample: root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt
previous_cmdline:
  description: The argument string before the change.
  returned: success
  type: str
  sample: root=ZFS=rpool/ROOT/pve-1 boot=zfs
backup_file:
  description: The backup made before writing.
  returned: changed and O(backup) is true and the file existed
  type: str
  sample: /etc/kernel/cmdline.12345.2026-01-01@10:00:00~
refresh_command:
  description:
    - Commands (argument lists) that apply the file to the boot loader, to run after a change.
    - V([["proxmox-boot-tool", "refresh"]]) when proxmox-boot-tool manages the ESPs, V([["update-grub"]]) for plain GRUB,
      one C(kernel-install add) per installed kernel for plain systemd-boot.
  returned: success
  type: list
  elements: list
  sample: [["proxmox-boot-tool", "refresh"]]
live_cmdline:
  description: The command line the running kernel was booted with (C(/proc/cmdline)), null when unreadable.
  returned: success
  type: str
  sample: initrd=\EFI\proxmox\6.8.12-4-pve\initrd.img-6.8.12-4-pve root=ZFS=rpool/ROOT/pve-1 boot=zfs
reboot_required:
  description:
    - True when the running command line lacks a wanted argument or still has an unwanted one, so it stays true until the
      host has rebooted with the new configuration. Without a readable C(/proc/cmdline) it equals RV(ignore:changed).
  returned: success
  type: bool
  sample: true
refresh_required:
  description:
    - True when the file changed, or when it already holds the arguments but the running kernel does not, so an interrupted
      run is completed by running RV(refresh_command) again.
  returned: success
  type: bool
  sample: true
"""

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.bootloader import edit_kernel_cmdline


def main():
    module = option_checks.checked_module(
        dict(
            present=dict(type="dict", default={}),
            absent=dict(type="list", elements="str", default=[]),
            bootloader=dict(type="str", default="auto", choices=["auto", "grub", "systemd-boot"]),
            grub_file=dict(type="path", default="/etc/default/grub"),
            grub_variable=dict(type="str", default="GRUB_CMDLINE_LINUX_DEFAULT"),
            kernel_cmdline_file=dict(type="path", default="/etc/kernel/cmdline"),
            take_root_from_live=dict(type="bool", default=False),
            backup=dict(type="bool", default=True),
            root=dict(type="path", default="/"),
        ),
        expects={"grub_variable": "a plain shell variable name such as GRUB_CMDLINE_LINUX_DEFAULT"},
        supports_check_mode=True,
    )
    option_checks.exit_with(module, lambda: edit_kernel_cmdline(module))


if __name__ == "__main__":
    main()
