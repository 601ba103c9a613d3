# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""proxmox_gpu_prep's read-back and reboot steps on the controller: the boot entry is read back and a bad one refused.

The step runs against a fake root (module_defaults point boot_entry_info at it). The reboot itself
is never allowed here (proxmox_gpu_prep_reboot: false), so a broken gate cannot reboot the machine
running the tests; what is proven is the read-back, its refusal message and the published facts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TREE = os.path.join(ROOT, ".cache", "pytest-collections")  # conftest links the collection there
BOOT = os.path.join(ROOT, "tests", "unit", "fixtures", "boot")

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    homelab.gpu_passthrough.boot_entry_info:
      root: "{root}"
  vars:
    proxmox_gpu_prep_reboot: false
    _proxmox_gpu_prep_cmdline: {{intel_iommu: "on", iommu: pt}}
    _proxmox_gpu_prep_kcmd: {{bootloader: grub, reboot_required: true}}
  tasks:
    - name: The read-back step
      ansible.builtin.include_role:
        name: homelab.gpu_passthrough.proxmox_gpu_prep
        tasks_from: readback
    - name: The reboot step
      ansible.builtin.include_role:
        name: homelab.gpu_passthrough.proxmox_gpu_prep
        tasks_from: reboot
    - name: Hand the facts to the test
      ansible.builtin.copy:
        content: "{{{{ {{'required': proxmox_gpu_prep_reboot_required, 'pending': proxmox_gpu_prep_reboot_pending,
                       'entries': proxmox_gpu_prep_boot_entry}} | to_json }}}}"
        dest: "{out}"
        mode: "0600"
"""

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) is None, reason="needs ansible-playbook")


# the vfio modules of a Proxmox VE kernel, where its package installs them (vfio and vfio_iommu_type1 as modules)
VFIO_FILES = ("kernel/drivers/vfio/vfio.ko", "kernel/drivers/vfio/vfio_iommu_type1.ko", "kernel/drivers/vfio/pci/vfio-pci.ko")


def play(tmp_path, grub_cfg, modules=VFIO_FILES):
    root = tmp_path / "host"
    (root / "boot" / "grub").mkdir(parents=True)
    shutil.copy(os.path.join(BOOT, grub_cfg), root / "boot" / "grub" / "grub.cfg")
    for path in modules:  # the kernel the fixtures' entries boot
        (root / "lib" / "modules" / "6.8.12-4-pve" / path).parent.mkdir(parents=True, exist_ok=True)
        (root / "lib" / "modules" / "6.8.12-4-pve" / path).write_bytes(b"")
    out = tmp_path / "facts.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(root=root, out=out))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=TREE, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook)],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300, check=False)
    facts = json.loads(out.read_text()) if out.exists() else None
    return done, facts


def test_entry_not_refreshed_fails_naming_it_and_the_fix(tmp_path):
    done, facts = play(tmp_path, "grub-cfg-debian12-pve8-ext4-before-update-grub.cfg")
    assert done.returncode != 0, done.stdout
    assert "Refuse to reboot into a boot entry" in done.stdout
    assert "entry Proxmox VE GNU/Linux lacks intel_iommu=on iommu=pt" in done.stdout
    assert "update-grub" in done.stdout and "The host was not rebooted" in done.stdout
    assert "Reboot into the new configuration" not in done.stdout
    assert facts is None


def test_good_entry_passes_and_publishes_the_facts(tmp_path):
    done, facts = play(tmp_path, "grub-cfg-debian12-pve8-ext4-submenu.cfg")
    assert done.returncode == 0, done.stdout + done.stderr
    assert facts["required"] is True and facts["pending"] is True
    assert facts["entries"][0]["name"] == "Proxmox VE GNU/Linux" and facts["entries"][0]["ok"] is True
    assert facts["entries"][0]["kernel"] == "6.8.12-4-pve" and facts["entries"][0]["missing_modules"] == []
    assert "reboot pending" in done.stdout


def test_a_kernel_without_vfio_pci_is_refused_before_the_reboot(tmp_path):
    done, facts = play(tmp_path, "grub-cfg-debian12-pve8-ext4-submenu.cfg", modules=VFIO_FILES[:2])
    assert done.returncode != 0, done.stdout
    assert "boots kernel 6.8.12-4-pve, which lacks vfio_pci" in done.stdout
    assert "Install the complete kernel package of 6.8.12-4-pve" in done.stdout and "The host was not rebooted" in done.stdout
    assert "Reboot into the new configuration" not in done.stdout
    assert facts is None
