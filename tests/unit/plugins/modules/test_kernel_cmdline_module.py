# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel_cmdline module run through main() against a temporary root."""

from __future__ import annotations

import json
import os
import stat

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.modules import kernel_cmdline as module
from ansible_collections.homelab.gpu_passthrough.tests.unit.plugins.modules.module_runner import run_module

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "fixtures", "cmdline")

ZFS_BEFORE = "etc-kernel-cmdline-proxmox-zfs-default-before.txt"
ZFS_AFTER = "etc-kernel-cmdline-proxmox-zfs-intel_iommu-iommu_pt-after.txt"
LIVE_SDBOOT_PT = "proc-cmdline-proxmox-systemd-boot-zfs-5.4.73-1-pve-intel_iommu-iommu_pt.txt"
LIVE_SDBOOT_PLAIN = "proc-cmdline-proxmox-systemd-boot-zfs-7.0.6-2-pve-no-iommu-nomodeset.txt"
LIVE_GRUB_NO_PT = "proc-cmdline-proxmox-grub-6.8.12-2-pve-intel_iommu-only-no-iommu_pt.txt"
LIVE_GRUB_PT = "proc-cmdline-proxmox-grub-6.5.11-8-pve-intel_iommu-iommu_pt.txt"

PASSTHROUGH = {"intel_iommu": "on", "iommu": "pt"}

PROXMOX_GRUB = """\
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`( . /etc/os-release && echo ${NAME} )`
# the installer's default
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""
"""

UEFI_STATUS = """\
System currently booted with uefi
5C3A-1F2B is configured with: uefi (versions: 6.8.12-4-pve)
"""


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def put(root, path, text, mode=None):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as handle:
        handle.write(text)
    if mode is not None:
        os.chmod(full, mode)
    return full


def get(root, path):
    with open(os.path.join(str(root), path.lstrip("/")), "rb") as handle:
        return handle.read()


def snapshot(root):
    """Every file under root with its bytes."""
    found = {}
    for directory, _dirs, files in os.walk(str(root)):
        for name in files:
            full = os.path.join(directory, name)
            with open(full, "rb") as handle:
                found[os.path.relpath(full, str(root))] = handle.read()
    return found


def run(capsys, args, check=False, diff=False):
    return run_module(capsys, module.main, args, check_mode=check, diff=diff)


def pve_zfs_root(tmp_path, live=LIVE_SDBOOT_PLAIN, cmdline=ZFS_BEFORE):
    """A Proxmox VE ZFS-on-UEFI host: proxmox-boot-tool manages uefi ESPs."""
    put(tmp_path, "/usr/sbin/proxmox-boot-tool", "#!/bin/sh\n[ \"$1\" = status ] || exit 1\ncat <<'EOF'\n%sEOF\n" % UEFI_STATUS, mode=0o755)
    put(tmp_path, "/etc/kernel/cmdline", fixture(cmdline))
    put(tmp_path, "/proc/cmdline", fixture(live))
    put(tmp_path, "/boot/vmlinuz-6.8.12-4-pve", "")
    return tmp_path


# --------------------------------------------------------------------------- systemd-boot via proxmox-boot-tool


def test_check_mode_writes_nothing(tmp_path, capsys):
    root = pve_zfs_root(tmp_path)
    before = snapshot(root)
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH}, check=True, diff=True)
    assert result["changed"] is True
    assert result["bootloader"] == "systemd-boot"
    assert result["cmdline"] == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt"
    assert result["refresh_command"] == [["proxmox-boot-tool", "refresh"]]
    assert "backup_file" not in result
    assert result["diff"]["after"] == fixture(ZFS_AFTER)
    assert snapshot(root) == before


def test_real_run_writes_backs_up_and_second_run_is_unchanged(tmp_path, capsys):
    root = pve_zfs_root(tmp_path)
    first = run(capsys, {"root": str(root), "present": PASSTHROUGH}, diff=True)
    path = os.path.join(str(root), "etc/kernel/cmdline")
    assert first["changed"] is True
    assert first["path"] == path
    assert first["previous_cmdline"] == "root=ZFS=rpool/ROOT/pve-1 boot=zfs"
    assert first["cmdline"] == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt"
    assert first["diff"] == {"before": fixture(ZFS_BEFORE), "after": fixture(ZFS_AFTER), "before_header": path, "after_header": path}
    # the written file is what the Proxmox guide shows after editing
    assert get(root, "/etc/kernel/cmdline") == fixture(ZFS_AFTER).encode()
    with open(first["backup_file"], encoding="utf-8") as handle:
        assert handle.read() == fixture(ZFS_BEFORE)
    assert first["reboot_required"] is True
    assert first["refresh_required"] is True
    assert first["live_cmdline"] == fixture(LIVE_SDBOOT_PLAIN).strip()

    written = snapshot(root)
    second = run(capsys, {"root": str(root), "present": PASSTHROUGH}, diff=True)
    assert second["changed"] is False
    assert "diff" not in second
    assert "backup_file" not in second
    assert snapshot(root) == written
    # not rebooted yet: the live line still lacks the arguments, so refresh and reboot are still due
    assert second["reboot_required"] is True
    assert second["refresh_required"] is True


def test_after_reboot_nothing_is_required(tmp_path, capsys):
    root = pve_zfs_root(tmp_path, live=LIVE_SDBOOT_PT, cmdline=ZFS_AFTER)
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH})
    assert result["changed"] is False
    assert result["reboot_required"] is False
    assert result["refresh_required"] is False


def test_live_line_already_right_but_file_changes(tmp_path, capsys):
    # the running kernel already has the arguments (e.g. set by hand at the boot prompt): refresh, no reboot
    root = pve_zfs_root(tmp_path, live=LIVE_SDBOOT_PT, cmdline=ZFS_BEFORE)
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH})
    assert result["changed"] is True
    assert result["reboot_required"] is False
    assert result["refresh_required"] is True


def test_absent_argument_still_live_requires_reboot(tmp_path, capsys):
    root = pve_zfs_root(tmp_path, live=LIVE_SDBOOT_PLAIN, cmdline="etc-kernel-cmdline-proxmox-zfs-intel-nomodeset.txt")
    result = run(capsys, {"root": str(root), "present": {"intel_iommu": "on"}, "absent": ["nomodeset"]})
    assert result["changed"] is True
    assert get(root, "/etc/kernel/cmdline") == b"root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on\n"
    assert result["reboot_required"] is True


def test_wrapped_file_is_rewritten_as_one_line(tmp_path, capsys):
    root = pve_zfs_root(tmp_path, live=LIVE_SDBOOT_PT)
    put(root, "/etc/kernel/cmdline", "root=ZFS=rpool/ROOT/pve-1 boot=zfs\nintel_iommu=on iommu=pt  \n")
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH})
    assert result["changed"] is True
    assert get(root, "/etc/kernel/cmdline") == fixture(ZFS_AFTER).encode()
    assert run(capsys, {"root": str(root), "present": PASSTHROUGH})["changed"] is False


def test_missing_kernel_cmdline_is_seeded_from_live_line(tmp_path, capsys):
    root = pve_zfs_root(tmp_path)
    os.unlink(os.path.join(str(root), "etc/kernel/cmdline"))
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH, "absent": ["nomodeset"]})
    assert result["changed"] is True
    assert result["previous_cmdline"] == ""
    assert "backup_file" not in result
    assert get(root, "/etc/kernel/cmdline") == b"root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n"


# --------------------------------------------------------------------------- GRUB


def grub_root(tmp_path, live=LIVE_GRUB_NO_PT):
    put(tmp_path, "/etc/default/grub", PROXMOX_GRUB)
    put(tmp_path, "/proc/cmdline", fixture(live))
    return tmp_path


def test_grub_edit_keeps_everything_else(tmp_path, capsys):
    root = grub_root(tmp_path)
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH}, diff=True)
    assert result["bootloader"] == "grub"
    assert result["refresh_command"] == [["update-grub"]]
    assert result["cmdline"] == "quiet intel_iommu=on iommu=pt"
    assert result["previous_cmdline"] == "quiet"
    expected = PROXMOX_GRUB.replace('GRUB_CMDLINE_LINUX_DEFAULT="quiet"', 'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"')
    assert get(root, "/etc/default/grub") == expected.encode()
    assert result["diff"]["before"] == PROXMOX_GRUB
    assert result["diff"]["after"] == expected
    assert result["reboot_required"] is True

    # rebooted into the new line
    put(root, "/proc/cmdline", fixture(LIVE_GRUB_PT))
    again = run(capsys, {"root": str(root), "present": PASSTHROUGH})
    assert again["changed"] is False
    assert again["reboot_required"] is False
    assert again["refresh_required"] is False


def test_grub_drop_in_holds_the_effective_value(tmp_path, capsys):
    root = grub_root(tmp_path)
    put(root, "/etc/default/grub.d/proxmox-kernel-pin.cfg", 'GRUB_DEFAULT="gnulinux-advanced-5f1c2d>gnulinux-6.8.12-4-pve-advanced-5f1c2d"\n')
    dropin = put(root, "/etc/default/grub.d/50-local.cfg", "# serial console\nGRUB_CMDLINE_LINUX_DEFAULT='console=ttyS0,115200 quiet'\n")
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH, "bootloader": "grub"})
    assert result["path"] == dropin
    assert (
        get(root, "/etc/default/grub.d/50-local.cfg") == b"# serial console\nGRUB_CMDLINE_LINUX_DEFAULT='console=ttyS0,115200 quiet intel_iommu=on iommu=pt'\n"
    )
    assert get(root, "/etc/default/grub") == PROXMOX_GRUB.encode()


def test_grub_linux_variable_conflict_is_warned(tmp_path, capsys):
    root = grub_root(tmp_path)
    put(root, "/etc/default/grub", PROXMOX_GRUB.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="intel_iommu=off"'))
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH})
    # ansible-core 2.19 returns structured warnings; older releases plain strings
    assert "GRUB_CMDLINE_LINUX also holds 'intel_iommu=off'" in json.dumps(result["warnings"])


def test_pbt_managed_grub_esp_refreshes_with_proxmox_boot_tool(tmp_path, capsys):
    root = grub_root(tmp_path)
    status = "System currently booted with legacy bios\n8B1D-4E77 is configured with: grub (versions: 6.8.12-4-pve)\n"
    put(root, "/usr/sbin/proxmox-boot-tool", "#!/bin/sh\ncat <<'EOF'\n%sEOF\n" % status, mode=0o755)
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH}, check=True)
    assert result["bootloader"] == "grub"
    assert result["refresh_command"] == [["proxmox-boot-tool", "refresh"]]


def test_plain_systemd_boot_uses_kernel_install(tmp_path, capsys):
    put(tmp_path, "/etc/kernel/cmdline", "root=UUID=0b7f6a3e-58e1-4bbf-a4f1-2c9f0e6f1a11 ro quiet\n")
    put(tmp_path, "/boot/vmlinuz-6.1.0-18-amd64", "")
    put(tmp_path, "/boot/vmlinuz-6.1.0-25-amd64", "")
    result = run(capsys, {"root": str(tmp_path), "present": PASSTHROUGH})
    assert result["bootloader"] == "systemd-boot"
    assert result["refresh_command"] == [
        ["kernel-install", "add", "6.1.0-18-amd64", "/boot/vmlinuz-6.1.0-18-amd64"],
        ["kernel-install", "add", "6.1.0-25-amd64", "/boot/vmlinuz-6.1.0-25-amd64"],
    ]
    # no /proc/cmdline under this root: what is live is unknown, so it follows the change
    assert result["live_cmdline"] is None
    assert result["reboot_required"] is True
    assert run(capsys, {"root": str(tmp_path), "present": PASSTHROUGH})["reboot_required"] is False


# --------------------------------------------------------------------------- errors change nothing


@pytest.mark.parametrize(
    "args, words",
    [
        ({"present": {"acpi_osi": "Windows 2015"}}, "whitespace"),
        ({"present": {"iommu": "pt"}, "absent": ["iommu"]}, "both"),
        ({"present": {"intel_iommu": True}}, "Quote"),
        ({"present": PASSTHROUGH, "bootloader": "grub"}, "grub"),
    ],
)
def test_errors_change_nothing(tmp_path, capsys, args, words):
    root = pve_zfs_root(tmp_path)
    before = snapshot(root)
    params = {"root": str(root)}
    params.update(args)
    result = run(capsys, params)
    assert result["failed"] is True
    assert words in result["msg"]
    assert result["fix"]
    assert snapshot(root) == before


def test_nothing_found_is_a_bootloader_error(tmp_path, capsys):
    result = run(capsys, {"root": str(tmp_path), "present": PASSTHROUGH})
    assert result["failed"] is True
    assert result["link"] == "bootloader"
    assert "bootloader:" in result["fix"]
    assert "/etc/default/grub" in result["msg"]
    assert os.listdir(str(tmp_path)) == []


def test_grub_value_with_expansion_is_refused(tmp_path, capsys):
    root = grub_root(tmp_path)
    put(root, "/etc/default/grub.d/90-append.cfg", 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT nomodeset"\n')
    before = snapshot(root)
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH})
    assert result["failed"] is True
    assert result["link"] == "file"
    assert "90-append.cfg" in result["msg"]
    assert snapshot(root) == before


def test_pbt_file_without_root_is_refused(tmp_path, capsys):
    root = pve_zfs_root(tmp_path)
    put(root, "/etc/kernel/cmdline", "boot=zfs\n")
    before = snapshot(root)
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH})
    assert result["failed"] is True
    assert "root=" in result["msg"]
    assert snapshot(root) == before


def test_unwritable_file_fails_before_writing(tmp_path, capsys, monkeypatch):
    root = pve_zfs_root(tmp_path)
    before = snapshot(root)
    target = os.path.join(str(root), "etc/kernel/cmdline")
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        # as if the file belonged to root and the task ran without become
        if mode == os.W_OK and os.path.abspath(path) in (target, os.path.dirname(target)):
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    result = run(capsys, {"root": str(root), "present": PASSTHROUGH})
    assert result["failed"] is True
    assert result["link"] == "file"
    assert target in result["msg"]
    assert "become" in result["fix"]
    assert snapshot(root) == before
    # check mode only reports
    assert run(capsys, {"root": str(root), "present": PASSTHROUGH}, check=True)["changed"] is True


def test_new_file_mode_is_regular(tmp_path, capsys):
    root = pve_zfs_root(tmp_path)
    run(capsys, {"root": str(root), "present": PASSTHROUGH, "backup": False})
    info = os.stat(os.path.join(str(root), "etc/kernel/cmdline"))
    assert stat.S_ISREG(info.st_mode)
    assert sorted(os.listdir(os.path.join(str(root), "etc/kernel"))) == ["cmdline"]
