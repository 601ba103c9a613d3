# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading back what the boot loader boots, and judging it, over real grub.cfg and loader-entry texts."""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import boot_entry as be

BOOT = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "boot")
WANTED = {"intel_iommu": "on", "iommu": "pt"}


def fixture(name):
    with open(os.path.join(BOOT, name), encoding="utf-8") as handle:
        return handle.read()


# ----------------------------------------------------------------- GRUB


def test_grub_default_zero_is_the_first_entry_and_its_linux_line():
    entry = be.grub_entry(fixture("grub-cfg-debian12-pve8-ext4-submenu.cfg"))
    assert entry["name"] == "Proxmox VE GNU/Linux"
    assert entry["cmdline"] == "root=/dev/mapper/pve-root ro quiet intel_iommu=on iommu=pt"
    assert entry["chosen_by"] == "set default=0 in grub.cfg"


def test_grub_good_entry_is_ok():
    verdict = be.judge([be.grub_entry(fixture("grub-cfg-debian12-pve8-ext4-submenu.cfg"))], WANTED)
    assert verdict["ok"] and verdict["fix"] is None
    assert verdict["entries"][0]["missing"] == []


def test_grub_entry_not_refreshed_names_entry_and_missing_args():
    verdict = be.judge([be.grub_entry(fixture("grub-cfg-debian12-pve8-ext4-before-update-grub.cfg"))], WANTED)
    assert not verdict["ok"]
    assert "entry Proxmox VE GNU/Linux lacks intel_iommu=on iommu=pt" in verdict["msg"]
    assert "'root=/dev/mapper/pve-root ro quiet'" in verdict["msg"]
    assert "update-grub" in verdict["fix"]


def test_grub_saved_entry_path_through_submenu_by_ids():
    cfg = fixture("grub-cfg-debian12-pve8-ext4-grub-default-saved.cfg")
    entry = be.grub_entry(cfg, fixture("grubenv-saved-entry-older-kernel"))
    assert entry["name"] == "Proxmox VE GNU/Linux, with Linux 6.5.13-6-pve"
    assert "saved_entry=" in entry["chosen_by"]
    verdict = be.judge([entry], WANTED)
    assert not verdict["ok"] and "lacks intel_iommu=on iommu=pt" in verdict["msg"]


def test_grub_saved_without_grubenv_boots_entry_zero():
    entry = be.grub_entry(fixture("grub-cfg-debian12-pve8-ext4-grub-default-saved.cfg"), None)
    assert entry["name"] == "Proxmox VE GNU/Linux"


@pytest.mark.parametrize(
    "selector, title",
    [
        ("1>2", "Proxmox VE GNU/Linux, with Linux 6.5.13-6-pve"),
        ("Advanced options for Proxmox VE GNU/Linux>Proxmox VE GNU/Linux, with Linux 6.8.12-4-pve (recovery mode)",
         "Proxmox VE GNU/Linux, with Linux 6.8.12-4-pve (recovery mode)"),
        ("gnulinux-simple-5a1c1d0e-3f47-4b0c-9d0e-2f6f0c9f3b11", "Proxmox VE GNU/Linux"),
        ("2", "Memory test (memtest86+x64.efi)"),
        ("3", "UEFI Firmware Settings"),
    ],
)
def test_grub_selectors(selector, title):
    cfg = be.parse_grub_cfg(fixture("grub-cfg-debian12-pve8-ext4-submenu.cfg"))
    assert be.resolve_grub_entry(cfg, selector)["title"] == title


def test_grub_next_entry_wins_over_default():
    env = "# GRUB Environment Block\nnext_entry=1>0\n"
    entry = be.grub_entry(fixture("grub-cfg-debian12-pve8-ext4-submenu.cfg"), env)
    assert entry["name"] == "Proxmox VE GNU/Linux, with Linux 6.8.12-4-pve"
    assert "next_entry" in entry["chosen_by"]


def test_grub_default_naming_a_submenu_or_nothing_is_a_problem():
    cfg = fixture("grub-cfg-debian12-pve8-ext4-submenu.cfg")
    for env in ("next_entry=1\n", "next_entry=9\n", "next_entry=No such title\n"):
        entry = be.grub_entry(cfg, env)
        assert entry["cmdline"] is None and "names no bootable menu entry" in entry["problem"]
        verdict = be.judge([entry], WANTED)
        assert not verdict["ok"] and "/boot/grub/grub.cfg" in verdict["msg"]


def test_grub_default_entry_without_root_is_refused():
    entry = be.grub_entry(fixture("grub-cfg-custom-default-entry-without-root.cfg"))
    assert entry["name"] == "Debian custom"
    verdict = be.judge([entry], WANTED)
    assert not verdict["ok"]
    assert "entry Debian custom has no root= argument" in verdict["msg"]
    assert "'ro quiet intel_iommu=on iommu=pt'" in verdict["msg"]


def test_grub_lab_first_boot_menu():
    entry = be.grub_entry(fixture("grub-cfg-lab-first-boot-handwritten.cfg"))
    assert entry["name"] == "Debian GNU/Linux"
    verdict = be.judge([entry], WANTED)
    assert not verdict["ok"] and "lacks intel_iommu=on iommu=pt" in verdict["msg"]


def test_grub_unterminated_quote_in_title_does_not_swallow_the_file():
    cfg = "set default=0\nmenuentry 'broken {\n  linux /vmlinuz root=/dev/sda1 ro\n}\n"
    entry = be.grub_entry(cfg)
    assert entry["cmdline"] == "root=/dev/sda1 ro"


# ----------------------------------------------------------------- systemd-boot


def pve_entries(current="loader-entry-pve8-zfs-proxmox-6.8.12-4-pve.conf"):
    return {
        "proxmox-6.5.13-6-pve.conf": fixture("loader-entry-pve8-zfs-proxmox-6.5.13-6-pve.conf"),
        "proxmox-6.8.12-4-pve.conf": fixture(current),
    }


def test_systemd_boot_default_glob_picks_newest_matching_entry():
    entry = be.systemd_boot_entry(pve_entries(), fixture("loader-conf-pve-proxmox-glob.conf"), where="ESP 7E3A-21F0")
    assert entry["name"] == "proxmox-6.8.12-4-pve.conf"
    assert entry["cmdline"] == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt"
    assert be.judge([entry], WANTED)["ok"]


def test_systemd_boot_without_default_takes_newest_version():
    entry = be.systemd_boot_entry(pve_entries(), None)
    assert entry["name"] == "proxmox-6.8.12-4-pve.conf" and "newest" in entry["chosen_by"]


def test_systemd_boot_efi_variables_win():
    entry = be.systemd_boot_entry(pve_entries(), fixture("loader-conf-pve-proxmox-glob.conf"), efi_default="proxmox-6.5.13-6-pve.conf")
    assert entry["name"] == "proxmox-6.5.13-6-pve.conf"
    entry = be.systemd_boot_entry(pve_entries(), None, efi_default="proxmox-6.5.13-6-pve.conf", efi_oneshot="proxmox-6.8.12-4-pve.conf")
    assert entry["name"] == "proxmox-6.8.12-4-pve.conf"


def test_systemd_boot_default_matching_nothing_is_a_problem():
    entry = be.systemd_boot_entry(pve_entries(), "default debian-*\n")
    assert entry["cmdline"] is None and "matches no loader entry" in entry["problem"]


def test_debian13_kernel_install_entry_lacking_args():
    entries = {"debian-6.12.57+deb13-amd64.conf": fixture("loader-entry-debian13-kernel-install-6.12.57+deb13-amd64.conf")}
    entry = be.systemd_boot_entry(entries, fixture("loader-conf-lab-debian-glob.conf"), where="ESP /boot/efi")
    verdict = be.judge([entry], WANTED, fix=be.FIX_SYSTEMD_BOOT)
    assert not verdict["ok"]
    assert "ESP /boot/efi entry debian-6.12.57+deb13-amd64.conf lacks intel_iommu=on iommu=pt" in verdict["msg"]
    assert "kernel-install add" in verdict["fix"]


def test_options_lines_are_joined():
    fields = be.parse_loader_entry("title x\noptions root=/dev/sda1\noptions  ro quiet\n")
    assert fields["options"] == "root=/dev/sda1 ro quiet"


def test_stale_esp_is_named_among_good_ones():
    good = be.systemd_boot_entry(pve_entries(), fixture("loader-conf-pve-proxmox-glob.conf"), where="ESP 7E3A-21F0")
    stale = be.systemd_boot_entry(
        pve_entries("loader-entry-pve8-zfs-proxmox-6.8.12-4-pve-stale.conf"), fixture("loader-conf-pve-proxmox-glob.conf"), where="ESP 7E3B-9C44"
    )
    verdict = be.judge([good, stale], WANTED, fix=be.FIX_PBT)
    assert not verdict["ok"]
    assert "ESP 7E3B-9C44 entry proxmox-6.8.12-4-pve.conf lacks intel_iommu=on iommu=pt" in verdict["msg"]
    assert "7E3A-21F0" not in verdict["msg"]
    assert [e["ok"] for e in verdict["entries"]] == [True, False]
    assert "proxmox-boot-tool refresh" in verdict["fix"]


def test_absent_arguments_still_there_are_named():
    entry = be.systemd_boot_entry({"a-6.8.conf": "options root=/dev/sda1 nomodeset iommu=pt\n"})
    verdict = be.judge([entry], {"iommu": "pt"}, ["nomodeset"])
    assert not verdict["ok"] and "still has nomodeset" in verdict["msg"]


def test_no_entries_is_not_ok():
    assert not be.judge([], WANTED)["ok"]


def test_efi_string_decoding_survives_odd_bytes():
    data = b"\x07\x00\x00\x00" + "proxmox-6.8.conf".encode("utf-16-le") + b"\x00\x00"
    assert be.read_efi_string(data) == "proxmox-6.8.conf"
    assert be.read_efi_string(b"\x07\x00\x00\x00\xff") is not None
    assert be.read_efi_string(b"") is None


def test_pbt_uuids():
    assert be.read_pbt_uuids("# comment\n7E3A-21F0\n\n7E3B-9C44\n") == ["7E3A-21F0", "7E3B-9C44"]


def test_systemd_boot_saved_default_follows_the_last_booted_entry():
    conf = "timeout 3\ndefault @saved\n"
    entry = be.systemd_boot_entry(pve_entries(), conf, efi_last_booted="proxmox-6.5.13-6-pve.conf")
    assert entry["name"] == "proxmox-6.5.13-6-pve.conf" and "LoaderEntryLastBooted" in entry["chosen_by"]
    assert be.systemd_boot_entry(pve_entries(), conf)["name"] == "proxmox-6.8.12-4-pve.conf"


# ----------------------------------------------------------------- grub.cfg generated by grub 2.06's own scripts

GENERATED = "grub-cfg-generated-grub-2.06-debian12-"


def test_generated_default_entry_carries_the_args():
    entry = be.grub_entry(fixture(GENERATED + "default-0.cfg"))
    assert entry["name"] == "Debian GNU/Linux"
    assert entry["cmdline"] == "root=UUID=0c5b2d36-8a0f-4b7e-9a43-6f2b1f8d9e21 ro console=ttyS0,115200 quiet intel_iommu=on iommu=pt"
    assert be.judge([entry], WANTED)["ok"]


def test_generated_before_the_args_is_refused_naming_the_entry():
    verdict = be.judge([be.grub_entry(fixture(GENERATED + "before-args.cfg"))], WANTED)
    assert not verdict["ok"] and "entry Debian GNU/Linux lacks intel_iommu=on iommu=pt" in verdict["msg"]


def test_generated_saved_default_with_a_recovery_entry_saved():
    cfg = fixture(GENERATED + "default-saved.cfg")
    entry = be.grub_entry(cfg, "saved_entry=gnulinux-advanced-UUID=0c5b2d36-8a0f-4b7e-9a43-6f2b1f8d9e21>"
                               "gnulinux-6.1.0-41-amd64-recovery-UUID=0c5b2d36-8a0f-4b7e-9a43-6f2b1f8d9e21\n")
    assert entry["cmdline"] == "root=UUID=0c5b2d36-8a0f-4b7e-9a43-6f2b1f8d9e21 ro single console=ttyS0,115200"
    verdict = be.judge([entry], WANTED)
    assert not verdict["ok"] and "lacks intel_iommu=on iommu=pt" in verdict["msg"]
    assert be.grub_entry(cfg)["name"] == "Debian GNU/Linux"  # no grubenv: entry 0


# ----------------------------------------------------------------- loader entries written by systemd 252's 90-loaderentry.install

SD252 = "loader-entry-generated-systemd-252-debian12-"


def lab_esp(current):
    return {
        "debian-6.1.0-40-amd64.conf": fixture(SD252 + "older-kernel.conf"),
        "debian-6.1.0-41-amd64.conf": fixture(SD252 + current),
    }


@pytest.mark.parametrize(
    "current, ok, words",
    [
        ("args.conf", True, []),
        ("before-args.conf", False, ["ESP /boot/efi entry debian-6.1.0-41-amd64.conf lacks intel_iommu=on iommu=pt"]),
        ("no-root.conf", False, ["entry debian-6.1.0-41-amd64.conf has no root= argument", "'intel_iommu=on iommu=pt'"]),
    ],
)
def test_kernel_install_entries_newest_matching_default(current, ok, words):
    entry = be.systemd_boot_entry(lab_esp(current), fixture("loader-conf-lab-debian-glob.conf"), where="ESP /boot/efi")
    assert entry["name"] == "debian-6.1.0-41-amd64.conf"
    verdict = be.judge([entry], WANTED, fix=be.FIX_SYSTEMD_BOOT)
    assert verdict["ok"] is ok
    for word in words:
        assert word in verdict["msg"]
