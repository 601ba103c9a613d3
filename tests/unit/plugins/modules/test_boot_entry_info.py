# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot_entry_info module run through main() against temporary roots."""

from __future__ import annotations

import os
import shutil
from unittest import mock

from ansible_collections.homelab.gpu_passthrough.plugins.modules import boot_entry_info as module
from ansible_collections.homelab.gpu_passthrough.tests.unit.plugins.modules.module_runner import run_module

BOOT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "fixtures", "boot")
WANTED = {"intel_iommu": "on", "iommu": "pt"}


def fixture(name):
    with open(os.path.join(BOOT, name), "rb") as handle:
        return handle.read()


def put(root, path, data):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as handle:
        handle.write(data if isinstance(data, bytes) else data.encode())
    return full


def tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), str(root)) for d, _dirs, files in os.walk(str(root)) for f in files)


def run(capsys, root, **args):
    return run_module(capsys, module.main, dict(root=str(root), present=WANTED, **args))


def test_grub_host_good_entry(tmp_path, capsys):
    put(tmp_path, "/boot/grub/grub.cfg", fixture("grub-cfg-debian12-pve8-ext4-submenu.cfg"))
    before = tree(tmp_path)
    result = run(capsys, tmp_path)
    assert result["ok"] is True and result["changed"] is False
    assert result["bootloader"] == "grub" and result["managed_by"] is None
    assert result["entries"][0]["name"] == "Proxmox VE GNU/Linux"
    assert tree(tmp_path) == before


def test_grub_host_not_refreshed(tmp_path, capsys):
    put(tmp_path, "/boot/grub/grub.cfg", fixture("grub-cfg-debian12-pve8-ext4-before-update-grub.cfg"))
    result = run(capsys, tmp_path)
    assert result["ok"] is False and "failed" not in result
    assert "/boot/grub/grub.cfg entry Proxmox VE GNU/Linux lacks intel_iommu=on iommu=pt" in result["msg"]
    assert "update-grub" in result["fix"]


def test_grub_cfg_missing(tmp_path, capsys):
    result = run(capsys, tmp_path, bootloader="grub")
    assert result["ok"] is False and "does not exist" in result["msg"]


def test_grub_cfg_with_odd_bytes_is_read(tmp_path, capsys):
    text = fixture("grub-cfg-lab-first-boot-handwritten.cfg").replace(b"'Debian GNU/Linux'", b"'Debian \xff\xfe'")
    put(tmp_path, "/boot/grub/grub.cfg", text)
    result = run(capsys, tmp_path)
    assert result["ok"] is False and "lacks intel_iommu=on iommu=pt" in result["msg"]


def test_plain_systemd_boot_debian13(tmp_path, capsys):
    put(tmp_path, "/boot/efi/loader/loader.conf", fixture("loader-conf-lab-debian-glob.conf"))
    put(tmp_path, "/boot/efi/loader/entries/debian-6.12.57+deb13-amd64.conf", fixture("loader-entry-debian13-kernel-install-6.12.57+deb13-amd64.conf"))
    result = run(capsys, tmp_path)
    assert result["bootloader"] == "systemd-boot"
    assert result["ok"] is False
    assert "ESP /boot/efi entry debian-6.12.57+deb13-amd64.conf lacks intel_iommu=on iommu=pt" in result["msg"]
    assert "kernel-install add" in result["fix"]
    good = fixture("loader-entry-debian13-kernel-install-6.12.57+deb13-amd64.conf").replace(
        b"console=ttyS0,115200", b"console=ttyS0,115200 intel_iommu=on iommu=pt"
    )
    put(tmp_path, "/boot/efi/loader/entries/debian-6.12.57+deb13-amd64.conf", good)
    assert run(capsys, tmp_path)["ok"] is True


def esp(root, uuid, current):
    base = "/var/tmp/espmounts/%s" % uuid
    put(root, base + "/loader/loader.conf", fixture("loader-conf-pve-proxmox-glob.conf"))
    put(root, base + "/loader/entries/proxmox-6.5.13-6-pve.conf", fixture("loader-entry-pve8-zfs-proxmox-6.5.13-6-pve.conf"))
    put(root, base + "/loader/entries/proxmox-6.8.12-4-pve.conf", fixture(current))


def test_proxmox_boot_tool_every_esp_is_read_and_a_stale_one_named(tmp_path, capsys):
    put(tmp_path, "/etc/kernel/proxmox-boot-uuids", "7E3A-21F0\n7E3B-9C44\n")
    esp(tmp_path, "7E3A-21F0", "loader-entry-pve8-zfs-proxmox-6.8.12-4-pve.conf")
    esp(tmp_path, "7E3B-9C44", "loader-entry-pve8-zfs-proxmox-6.8.12-4-pve-stale.conf")
    result = run(capsys, tmp_path)
    assert result["managed_by"] == "proxmox-boot-tool" and result["bootloader"] == "systemd-boot"
    assert [e["where"] for e in result["entries"]] == ["ESP 7E3A-21F0", "ESP 7E3B-9C44"]
    assert result["ok"] is False
    assert "ESP 7E3B-9C44 entry proxmox-6.8.12-4-pve.conf lacks intel_iommu=on iommu=pt" in result["msg"]
    assert "ESP 7E3A-21F0" not in result["msg"]
    assert "proxmox-boot-tool refresh" in result["fix"]


def test_proxmox_boot_tool_missing_esp_is_named(tmp_path, capsys):
    put(tmp_path, "/etc/kernel/proxmox-boot-uuids", "7E3A-21F0\nDEAD-BEEF\n")
    esp(tmp_path, "7E3A-21F0", "loader-entry-pve8-zfs-proxmox-6.8.12-4-pve.conf")
    result = run(capsys, tmp_path)
    assert result["ok"] is False and "ESP DEAD-BEEF: listed in /etc/kernel/proxmox-boot-uuids" in result["msg"]


def test_proxmox_boot_tool_grub_esp(tmp_path, capsys):
    put(tmp_path, "/etc/kernel/proxmox-boot-uuids", "7E3A-21F0\n")
    put(tmp_path, "/var/tmp/espmounts/7E3A-21F0/grub/grub.cfg", fixture("grub-cfg-debian12-pve8-ext4-submenu.cfg"))
    result = run(capsys, tmp_path)
    assert result["bootloader"] == "grub" and result["ok"] is True


def test_bad_wanted_argument_fails(tmp_path, capsys):
    result = run_module(capsys, module.main, dict(root=str(tmp_path), present={"bad key": "x"}))
    assert result["failed"] and "bad key" in result["msg"]


def test_efi_variable_default_is_read_from_efivarfs(tmp_path, capsys):
    put(tmp_path, "/boot/efi/loader/loader.conf", fixture("loader-conf-pve-proxmox-glob.conf"))
    put(tmp_path, "/boot/efi/loader/entries/proxmox-6.5.13-6-pve.conf", fixture("loader-entry-pve8-zfs-proxmox-6.5.13-6-pve.conf"))
    put(tmp_path, "/boot/efi/loader/entries/proxmox-6.8.12-4-pve.conf", fixture("loader-entry-pve8-zfs-proxmox-6.8.12-4-pve.conf"))
    assert run(capsys, tmp_path)["ok"] is True
    var = b"\x07\x00\x00\x00" + "proxmox-6.5.13-6-pve.conf".encode("utf-16-le") + b"\x00\x00"
    put(tmp_path, "/sys/firmware/efi/efivars/LoaderEntryDefault-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f", var)
    result = run(capsys, tmp_path)
    assert result["ok"] is False and result["entries"][0]["name"] == "proxmox-6.5.13-6-pve.conf"
    assert "LoaderEntryDefault" in result["entries"][0]["chosen_by"]


class FakeModule:
    """Records the commands the ESP opener runs; mount "succeeds" by copying an ESP into the mount point."""

    def __init__(self, esp_source, mounted=None, mount_rc=0):
        self.calls = []
        self.esp_source = esp_source
        self.mounted = mounted
        self.mount_rc = mount_rc

    def run_command(self, args, **kwargs):
        self.calls.append(args)
        if args[0] == "findmnt":
            return (0, self.mounted + "\n", "") if self.mounted else (1, "", "")
        if args[0] == "mount" and self.mount_rc == 0:
            shutil.copytree(self.esp_source, args[-1], dirs_exist_ok=True)
        if args[0] == "umount":
            for name in os.listdir(args[-1]):
                shutil.rmtree(os.path.join(args[-1], name))
        return (self.mount_rc if args[0] == "mount" else 0), "", ""


def test_unmounted_esp_is_mounted_read_only_and_cleaned_up(tmp_path, monkeypatch):
    source = tmp_path / "esp"
    put(source, "/loader/entries/proxmox-6.8.12-4-pve.conf", fixture("loader-entry-pve8-zfs-proxmox-6.8.12-4-pve.conf"))
    fake = FakeModule(str(source))
    real_exists = os.path.exists
    monkeypatch.setattr(module.os.path, "exists", lambda p: p == "/dev/disk/by-uuid/7E3A-21F0" or real_exists(p))
    with module.esp_opener(fake, "/")("7E3A-21F0") as path:
        assert os.path.isfile(os.path.join(path, "loader/entries/proxmox-6.8.12-4-pve.conf"))
    assert fake.calls[1][:3] == ["mount", "-o", "ro"] and fake.calls[2][0] == "umount"
    assert not real_exists(path)


def test_mounted_esp_is_read_where_it_is(tmp_path):
    fake = FakeModule(None, mounted="/boot/efi")
    with mock.patch.object(module.os.path, "exists", return_value=True), module.esp_opener(fake, "/")("7E3A-21F0") as path:
        assert path == "/boot/efi"
    assert [c[0] for c in fake.calls] == ["findmnt"]


def test_esp_that_does_not_mount_is_none(tmp_path, monkeypatch):
    fake = FakeModule(None, mount_rc=32)
    real_exists = os.path.exists
    monkeypatch.setattr(module.os.path, "exists", lambda p: p.startswith("/dev/disk/by-uuid/") or real_exists(p))
    with module.esp_opener(fake, "/")("7E3A-21F0") as path:
        assert path is None
    assert [c[0] for c in fake.calls] == ["findmnt", "mount"]


def test_modules_of_the_kernel_the_entry_boots(tmp_path, capsys):
    put(tmp_path, "/boot/grub/grub.cfg", fixture("grub-cfg-debian12-pve8-ext4-submenu.cfg"))
    put(tmp_path, "/lib/modules/6.8.12-4-pve/kernel/drivers/vfio/pci/vfio-pci.ko", b"")
    put(tmp_path, "/lib/modules/6.8.12-4-pve/modules.builtin", b"kernel/drivers/vfio/vfio.ko\n")
    before = tree(tmp_path)
    result = run(capsys, tmp_path, modules=["vfio_pci", "vfio", "updates/dkms/i915"])
    assert result["ok"] is False and "failed" not in result
    (entry,) = result["entries"]
    assert entry["kernel"] == "6.8.12-4-pve" and entry["missing_modules"] == ["updates/dkms/i915"]
    assert entry["modules"] == {"vfio_pci": "kernel/drivers/vfio/pci/vfio-pci.ko", "vfio": "builtin",
                                "updates/dkms/i915": None}
    assert "dkms autoinstall -k <version> for each of 6.8.12-4-pve" in result["fix"]
    put(tmp_path, "/lib/modules/6.8.12-4-pve/updates/dkms/i915.ko.zst", b"")
    assert run(capsys, tmp_path, modules=["vfio_pci", "updates/dkms/i915"])["ok"] is True
    assert tree(tmp_path) == sorted(before + ["lib/modules/6.8.12-4-pve/updates/dkms/i915.ko.zst"])


def test_a_module_that_is_no_module_name_is_refused_before_reading(tmp_path, capsys):
    put(tmp_path, "/boot/grub/grub.cfg", fixture("grub-cfg-debian12-pve8-ext4-submenu.cfg"))
    result = run(capsys, tmp_path, modules=["vfio-pci", "../i915"])
    assert result["failed"] is True and result["option"] == "modules" and result["value"] == "../i915"
    assert "updates/dkms/i915" in result["fix"]
