# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pve_config: machine, efidisk0 and "is met by" over real qm configs."""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import config as pve_config
from ansible_collections.homelab.gpu_passthrough.tests.unit import output_readers

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "qm")


def qm(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return output_readers.parse_vm_config(handle.read())["config"]


PLEX = "conf-103-plex-q35-ovmf-secureboot-ms-cert-2023-hostpci-pcie.txt"
OPNSENSE = "conf-101-opnsense-q35-ovmf-hostpci-resource-mapping-sriov-vf.txt"
WIN11 = "qm-config-100-win11-uhd630-legacy-igd-short-pci-address-empty-boot.txt"
DEBIAN = "conf-103-debian-q35-seabios-x-vga-rombar0-serial-tags.txt"


@pytest.mark.parametrize("current", ["q35", "pc-q35-9.2+pve1", "q35,viommu=intel", "pc-q35-8.1,viommu=virtio,aw-bits=48",
                                     "type=q35,viommu=intel"])
def test_any_q35_string_meets_q35(current):
    assert pve_config.machine_meets(current, "q35")
    assert pve_config.machine_value(current, "q35") == current


@pytest.mark.parametrize("current", [None, "", "pc", "pc-i440fx-9.2", "pc-8.1"])
def test_i440fx_does_not_meet_q35(current):
    assert not pve_config.machine_meets(current, "q35")
    assert pve_config.machine_value(current, "q35") == "q35"


def test_machine_change_keeps_live_properties_and_pinned_version():
    assert pve_config.machine_value("pc-q35-8.1", "q35,viommu=intel") == "pc-q35-8.1,viommu=intel"
    assert pve_config.machine_value("q35,viommu=virtio", "q35,viommu=intel") == "q35,viommu=intel"
    assert pve_config.machine_value("pc-i440fx-9.2,viommu=intel", "q35") == "q35,viommu=intel"
    # a pinned wanted version replaces the live one, properties stay
    assert pve_config.machine_value("pc-q35-8.1,viommu=intel", "pc-q35-9.2+pve1") == "pc-q35-9.2+pve1,viommu=intel"
    assert not pve_config.machine_meets("pc-q35-8.1", "pc-q35-9.2+pve1")
    assert pve_config.machine_meets("pc-q35-9.2+pve1,viommu=intel", "pc-q35-9.2+pve1")


@pytest.mark.parametrize("machine, version", [("pc-q35-9.2+pve1", (9, 2)), ("pc-i440fx-8.1", (8, 1)), ("pc-q35-10.0.pxe", (10, 0)),
                                              ("q35", None), ("pc", None), (None, None)])
def test_machine_version(machine, version):
    assert pve_config.machine_version(machine) == version


@pytest.mark.parametrize("machine, key", [("q35,viommu=amd", "viommu"), ("q36", "type"), ("q35,aw-bits=12", "aw-bits"),
                                          ("q35,foo=1", "foo"), ("q35,enable-s3=maybe", "enable-s3"), ("", "type")])
def test_machine_problems_name_the_property(machine, key):
    problems = pve_config.machine_problems(machine)
    assert [p[0] for p in problems] == [key]


@pytest.mark.parametrize("machine", ["q35", "pc-q35-9.2+pve1", "q35,viommu=intel,aw-bits=48", "pc-i440fx-9.2", "virt"])
def test_valid_machines_have_no_problems(machine):
    assert pve_config.machine_problems(machine) == []


def test_fixture_machines():
    assert pve_config.is_q35(qm(PLEX)["machine"]) and pve_config.is_q35(qm(OPNSENSE)["machine"])
    assert pve_config.is_i440fx(qm(WIN11)["machine"]) and pve_config.machine_version(qm(WIN11)["machine"]) == (9, 2)


def test_gui_secure_boot_efidisk_meets_has_an_efi_disk():
    efidisk = qm(PLEX)["efidisk0"]
    spec = pve_config.efidisk_spec(efidisk)
    assert spec == {"volume": "local-lvm:vm-103-disk-0", "storage": "local-lvm", "efitype": "4m", "pre_enrolled_keys": True,
                    "ms_cert": "2023"}
    # the module's defaults (4m, no keys) do not replace it: its NVRAM holds the boot entries and Secure Boot state
    assert pve_config.efidisk_meets(efidisk, "4m", False)
    assert not pve_config.efidisk_meets(efidisk, "4m", False, replace=True)
    assert pve_config.efidisk_meets(efidisk, "4m", True, replace=True)
    assert pve_config.efidisk_meets(efidisk, None, None, replace=True)


def test_old_layout_efidisk_defaults_to_2m():
    spec = pve_config.efidisk_spec(qm(OPNSENSE)["efidisk0"])
    assert spec["efitype"] == "4m" and spec["pre_enrolled_keys"] is False
    assert pve_config.efidisk_spec("local-lvm:vm-120-disk-1,size=128K")["efitype"] == "2m"
    assert not pve_config.efidisk_meets("local-lvm:vm-120-disk-1,size=128K", "4m", None, replace=True)
    assert not pve_config.efidisk_meets(None, "4m", None)
    assert qm(DEBIAN).get("efidisk0") is None


def test_new_efidisk_needs_a_storage():
    assert pve_config.new_efidisk("local-lvm", "4m", True) == "local-lvm:1,efitype=4m,pre-enrolled-keys=1"
    assert pve_config.new_efidisk("local-lvm") == "local-lvm:1,efitype=4m"
    with pytest.raises(PassthroughError) as info:
        pve_config.new_efidisk(None)
    assert info.value.details["option"] == "efidisk_storage" and "efidisk_storage" in info.value.fix


def test_config_from_pending_rows():
    rows = [{"key": "cores", "value": "4", "pending": "8"}, {"key": "hostpci0", "value": "0000:00:02.0", "delete": 1},
            {"key": "digest", "value": "abc"}, {"key": "memory", "pending": "4096"}, {"key": "name", "value": "k3s"}]
    config, pending = pve_config.config_from_pending(rows)
    assert config == {"cores": "8", "digest": "abc", "memory": "4096", "name": "k3s"}
    assert pending == ["cores", "hostpci0", "memory"]


@pytest.mark.parametrize("value, out", [("1", True), ("on", True), ("Yes", True), (0, False), ("off", False), ("junk", None), (True, True)])
def test_parse_bool(value, out):
    assert pve_config.parse_bool(value) is out


def test_slot_sort_key_orders_by_number():
    assert sorted(["hostpci10", "hostpci2", "cores", "hostpci0"], key=pve_config.slot_sort_key) == ["cores", "hostpci0", "hostpci2", "hostpci10"]


ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@laptop"


@pytest.mark.parametrize("key, value", [
    ("ipconfig0", "ip=192.168.1.120/24,gw=192.168.1.1"), ("ipconfig0", "ip=dhcp"), ("ipconfig0", "ip6=auto"),
    ("ipconfig1", "ip=10.0.0.5/8,ip6=fd00::5/64,gw6=fd00::1"), ("nameserver", "192.168.1.1 1.1.1.1"), ("nameserver", "fd00::1"),
    ("sshkeys", ED25519), ("sshkeys", ED25519 + "\n" + ED25519.replace("admin", "other")),
    ("sshkeys", "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl%20admin%40laptop"),
    ("sshkeys", 'command="uptime" ' + ED25519),
])
def test_cloudinit_values_in_pve_formats_pass(key, value):
    assert pve_config.cloudinit_problem(key, value) is None


@pytest.mark.parametrize("key, value, words", [
    ("ipconfig0", "ip=192.168.1.300/24", "IPv4"), ("ipconfig0", "ip=192.168.1.5", "/prefix"), ("ipconfig0", "ip=fd00::1/64", "IPv4"),
    ("ipconfig0", "gw=192.168.1.1", "static ip"), ("ipconfig0", "ip=dhcp,gw=192.168.1.1", "static ip"),
    ("ipconfig0", "address=1.2.3.4/24", "does not know"), ("ipconfig0", "192.168.1.5/24", "does not know"),
    ("ipconfig0", "ip6=fd00::1", "/prefix"), ("nameserver", "dns.example", "IP addresses"), ("nameserver", " ", "IP addresses"),
    ("sshkeys", "hunter2", "OpenSSH"), ("sshkeys", "ssh-ed25519", "OpenSSH"), ("sshkeys", "", "no key"),
])
def test_cloudinit_values_refused_name_the_problem(key, value, words):
    message, fix = pve_config.cloudinit_problem(key, value)
    assert words in message and fix


@pytest.mark.parametrize("release, at_least", [("9.2", True), ("9.10", True), ("10.0", True), ("9.1", False), ("8.4", False), ("", True)])
def test_release_at_least(release, at_least):
    assert pve_config.release_at_least(release, (9, 2)) is at_least
