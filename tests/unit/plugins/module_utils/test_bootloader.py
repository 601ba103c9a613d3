# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot loader service against a temporary root, with a recording stand-in for the commands, warnings and backups."""

from __future__ import annotations

import errno
import os
import shutil

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import bootloader
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import files as host_files
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.cmdline import carries, parse

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "fixtures", "cmdline")

ZFS_BEFORE = "etc-kernel-cmdline-proxmox-zfs-default-before.txt"
LIVE_SDBOOT_PLAIN = "proc-cmdline-proxmox-systemd-boot-zfs-7.0.6-2-pve-no-iommu-nomodeset.txt"
LIVE_GRUB_NO_PT = "proc-cmdline-proxmox-grub-6.8.12-2-pve-intel_iommu-only-no-iommu_pt.txt"
PASSTHROUGH = {"intel_iommu": "on", "iommu": "pt"}
DEBIAN_GRUB = 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n'
UEFI_STATUS = "System currently booted with uefi\n5C3A-1F2B is configured with: uefi (versions: 6.8.12-4-pve)\n"


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


def snapshot(root):
    found = {}
    for directory, _dirs, names in os.walk(str(root)):
        for name in names:
            with open(os.path.join(directory, name), "rb") as handle:
                found[os.path.relpath(os.path.join(directory, name), str(root))] = handle.read()
    return found


class RecordingHost:
    """What the module hands the service, recording every call: binaries found, commands run, warnings, backups."""

    def __init__(self, binaries=None, outputs=None):
        self.binaries = dict(binaries or {})
        self.outputs = dict(outputs or {})
        self.looked_up, self.commands, self.warnings, self.backups = [], [], [], []

    def find_binary(self, name):
        self.looked_up.append(name)
        return self.binaries.get(name)

    def run_command(self, argv):
        self.commands.append(list(argv))
        return 0, self.outputs.get(argv[-1], ""), ""

    def warn(self, text):
        self.warnings.append(text)

    def backup(self, path):
        copy = path + ".backup~"
        shutil.copy2(path, copy)
        self.backups.append(copy)
        return copy

    def service(self, root):
        return bootloader.BootloaderConfig(str(root), find_binary=self.find_binary, run_command=self.run_command, warn=self.warn,
                                           backup=self.backup)


def pbt_image(root):
    """A Proxmox VE ZFS-on-UEFI image: proxmox-boot-tool in it, /etc/kernel/cmdline, a kernel, the live line."""
    tool = put(root, "/usr/sbin/proxmox-boot-tool", "#!/bin/sh\nexit 1\n", mode=0o755)
    put(root, "/etc/kernel/cmdline", fixture(ZFS_BEFORE))
    put(root, "/proc/cmdline", fixture(LIVE_SDBOOT_PLAIN))
    put(root, "/boot/vmlinuz-6.8.12-4-pve", "")
    return tool


# --------------------------------------------------------------------------- reading the host


def test_proxmox_boot_tool_in_an_image_is_asked_for_its_status(tmp_path):
    tool = pbt_image(tmp_path)
    host = RecordingHost(outputs={"status": UEFI_STATUS})
    present, status = host.service(tmp_path).pbt_status("auto")
    assert present is True and "configured with: uefi" in status
    assert host.commands == [[tool, "status"]]
    assert host.looked_up == []  # below another root the controller's PATH does not count


def test_an_explicit_boot_loader_below_a_root_runs_nothing(tmp_path):
    pbt_image(tmp_path)
    host = RecordingHost(outputs={"status": UEFI_STATUS})
    assert host.service(tmp_path).pbt_status("systemd-boot") == (False, None)
    assert host.commands == [] and host.looked_up == []


@pytest.mark.parametrize("found", [None, "/usr/sbin/proxmox-boot-tool"])
def test_on_the_host_itself_the_tool_is_looked_up_on_the_path(found):
    host = RecordingHost(binaries={"proxmox-boot-tool": found}, outputs={"status": UEFI_STATUS})
    present, status = host.service("/").pbt_status("grub")
    assert host.looked_up == ["proxmox-boot-tool"]
    assert present is (found is not None)
    assert host.commands == ([[found, "status"]] if found else [])
    assert (status is not None) is present


def test_a_tool_whose_symlink_leaves_the_image_is_not_run(tmp_path):
    outside = tmp_path / "controller"
    put(outside, "/usr/sbin/proxmox-boot-tool", "#!/bin/sh\nexit 1\n", mode=0o755)
    image = tmp_path / "image"
    image.mkdir()
    os.symlink(str(outside / "usr" / "sbin"), str(image / "sbin"))
    host = RecordingHost()
    assert host.service(image).pbt_status("auto") == (False, None)
    assert host.commands == []


def test_kernel_versions_leave_out_backups_and_dpkg_leftovers(tmp_path):
    for name in ("vmlinuz-6.1.0-18-amd64", "vmlinuz-6.1.0-25-amd64", "vmlinuz-6.1.0-18-amd64.old", "vmlinuz-6.1.0-9-amd64.bak",
                 "vmlinuz-6.1.0-25-amd64.dpkg-tmp", "vmlinuz-", "config-6.1.0-25-amd64"):
        put(tmp_path, "/boot/" + name, "")
    assert sorted(RecordingHost().service(tmp_path).kernel_versions()) == ["6.1.0-18-amd64", "6.1.0-25-amd64"]


def test_live_cmdline_is_single_spaced_or_none(tmp_path):
    service = RecordingHost().service(tmp_path)
    assert service.live_cmdline() is None
    put(tmp_path, "/proc/cmdline", fixture(LIVE_GRUB_NO_PT))
    assert service.live_cmdline() == " ".join(parse(fixture(LIVE_GRUB_NO_PT)))


# --------------------------------------------------------------------------- planning


def test_plan_reads_and_decides_but_writes_nothing(tmp_path):
    pbt_image(tmp_path)
    before = snapshot(tmp_path)
    host = RecordingHost(outputs={"status": UEFI_STATUS})
    plan = host.service(tmp_path).plan(PASSTHROUGH)
    assert snapshot(tmp_path) == before and host.backups == []
    assert plan["bootloader"] == "systemd-boot" and plan["refresh_command"] == [["proxmox-boot-tool", "refresh"]]
    assert plan["path"] == os.path.join(str(tmp_path), "etc/kernel/cmdline")
    assert plan["before"] == fixture(ZFS_BEFORE)
    assert plan["changed"] is True and carries(plan["after"], PASSTHROUGH, [])
    assert plan["previous_cmdline"] == " ".join(parse(fixture(ZFS_BEFORE)))
    assert plan["reboot_required"] is not carries(fixture(LIVE_SDBOOT_PLAIN), PASSTHROUGH, [])
    assert plan["refresh_required"] is True


def test_grub_conflict_in_the_linux_variable_is_warned(tmp_path):
    put(tmp_path, "/etc/default/grub", DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="intel_iommu=off"'))
    host = RecordingHost()
    plan = host.service(tmp_path).plan(PASSTHROUGH, bootloader="grub")
    assert plan["bootloader"] == "grub" and plan["refresh_command"] == [["update-grub"]]
    assert len(host.warnings) == 1 and "intel_iommu=off" in host.warnings[0]


def test_a_value_yaml_made_true_is_refused_before_anything_is_read(tmp_path):
    pbt_image(tmp_path)
    host = RecordingHost(outputs={"status": UEFI_STATUS})
    with pytest.raises(PassthroughError) as raised:
        host.service(tmp_path).plan({"intel_iommu": True})
    assert "Quote" in raised.value.fix
    assert host.commands == []


# --------------------------------------------------------------------------- writing


def test_edit_writes_with_a_backup_and_a_second_edit_changes_nothing(tmp_path):
    pbt_image(tmp_path)
    host = RecordingHost(outputs={"status": UEFI_STATUS})
    service = host.service(tmp_path)
    result = service.edit(PASSTHROUGH, diff=True)
    target = os.path.join(str(tmp_path), "etc/kernel/cmdline")
    assert result["changed"] is True and result["backup_file"] == host.backups[0]
    with open(host.backups[0], encoding="utf-8") as handle:
        assert handle.read() == fixture(ZFS_BEFORE)
    with open(target, encoding="utf-8") as handle:
        written = handle.read()
    assert result["diff"] == {"before": fixture(ZFS_BEFORE), "after": written, "before_header": target, "after_header": target}
    again = service.edit(PASSTHROUGH)
    assert again["changed"] is False and "backup_file" not in again and len(host.backups) == 1


def test_check_mode_and_no_backup(tmp_path):
    pbt_image(tmp_path)
    host = RecordingHost(outputs={"status": UEFI_STATUS})
    before = snapshot(tmp_path)
    assert host.service(tmp_path).edit(PASSTHROUGH, check_mode=True)["changed"] is True
    assert snapshot(tmp_path) == before
    result = host.service(tmp_path).edit(PASSTHROUGH, backup=False)
    assert result["changed"] is True and "backup_file" not in result and host.backups == []


def test_a_failed_write_removes_its_backup(tmp_path, monkeypatch):
    pbt_image(tmp_path)
    before = snapshot(tmp_path)
    host = RecordingHost(outputs={"status": UEFI_STATUS})

    def replace(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(host_files.os, "replace", replace)
    with pytest.raises(PassthroughError):
        host.service(tmp_path).edit(PASSTHROUGH)
    assert len(host.backups) == 1 and not os.path.exists(host.backups[0])
    assert snapshot(tmp_path) == before
