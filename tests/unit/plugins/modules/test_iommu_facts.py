# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""iommu_facts run through main() against fake roots built from real listings."""

import os

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homelab.gpu_passthrough.plugins.modules import iommu_facts
from ansible_collections.homelab.gpu_passthrough.tests.unit.conftest import FIXTURES
from ansible_collections.homelab.gpu_passthrough.tests.unit.plugins.modules.module_runner import run_module
from ansible_collections.homelab.gpu_passthrough.tests.unit.sharing_readers import available_instances_listing, listed_type_dirs
from ansible_collections.homelab.gpu_passthrough.tests.unit.sysfs_builder import add_mdev_types, add_sriov, build_root

CONTRACT_KEYS = {"enabled", "vendor", "firmware_vtd", "passthrough_mode", "cmdline", "groups", "devices", "gpus"}
DEVICE_KEYS = {"vendor_id", "device_id", "class_id", "driver", "iommu_group", "is_bridge", "is_gpu"}
SHARING_KEYS = {"sriov", "physfn", "mdev_types"}  # only on devices that have them


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def run(capsys, **args):
    return run_module(capsys, iommu_facts.main, args)


@pytest.fixture
def alderlake(tmp_path):
    return build_root(
        tmp_path,
        fixture("iommu/loop-tab-format-alderlake-4680-12th-gen-sorted.txt"),
        lspci=fixture("lspci/nnk-alderlake-4680-igpu-i915-host-rx560-vfio-pci.txt"),
        cmdline="BOOT_IMAGE=/boot/vmlinuz-6.8.12-2-pve root=/dev/mapper/pve-root ro quiet intel_iommu=on iommu=pt",
    )


def test_contract_keys(capsys, alderlake):
    result = run(capsys, root=alderlake)
    assert result["changed"] is False
    facts = result["ansible_facts"]["iommu"]
    assert set(facts) == CONTRACT_KEYS
    assert (facts["enabled"], facts["vendor"], facts["firmware_vtd"], facts["passthrough_mode"]) == (True, "intel", True, True)
    assert facts["cmdline"][-2:] == ["intel_iommu=on", "iommu=pt"]
    assert facts["groups"]["3"] == ["0000:00:02.0"]
    assert all(set(device) == DEVICE_KEYS for device in facts["devices"].values())
    assert facts["devices"]["0000:00:02.0"] == {
        "vendor_id": "8086", "device_id": "4680", "class_id": "0300", "driver": "i915",
        "iommu_group": "3", "is_bridge": False, "is_gpu": True,
    }


def test_sharing_facts_on_the_devices_that_have_them(capsys, alderlake):
    """VFs enabled on the Alder Lake iGPU: the PF says which, each VF names its PF, the rest keep their shape."""
    vfs = ["0000:00:02.1", "0000:00:02.2"]
    add_sriov(alderlake, "0000:00:02.0", vfs, total_vfs=7)
    facts = run(capsys, root=alderlake)["ansible_facts"]["iommu"]
    devices = facts["devices"]
    assert devices["0000:00:02.0"]["sriov"] == {"total_vfs": 7, "num_vfs": 2, "vfs": vfs}
    assert [devices[vf]["physfn"] for vf in vfs] == ["0000:00:02.0"] * 2
    for address, device in devices.items():
        assert DEVICE_KEYS <= set(device) <= DEVICE_KEYS | SHARING_KEYS
        if address not in ["0000:00:02.0"] + vfs:
            assert set(device) == DEVICE_KEYS
    assert all(key in iommu_facts.RETURN for key in SHARING_KEYS | {"total_vfs", "num_vfs", "available_instances", "device_api"})


def test_mdev_types_of_a_coffee_lake(capsys, tmp_path):
    root = build_root(tmp_path, fixture("iommu/single-line-proxmox-dell-coffeelake-3e92-igpu-group0-glob-order.txt"))
    instances = available_instances_listing(fixture("sharing/mdev/cat-available_instances-per-type-i9-9900k-dashed-separators.txt"))
    listed = listed_type_dirs(fixture("sharing/mdev/ll-mdev_supported_types-coffeelake-only-v5_4-and-v5_8-dirs.txt"))
    add_mdev_types(root, "0000:00:02.0", {name: {"available_instances": instances["0000:00:02.0"][name]} for name in listed})
    device = run(capsys, root=root, device="auto")["ansible_facts"]["iommu"]["devices"]["0000:00:02.0"]
    assert [(t["type"], t["available_instances"]) for t in device["mdev_types"]] == [(n, instances["0000:00:02.0"][n]) for n in listed]


def test_target(capsys, alderlake):
    facts = run(capsys, root=alderlake, device="00:1f.3")["ansible_facts"]["iommu"]
    assert set(facts["target"]) == {"address", "group", "isolated", "group_devices", "reasons"}
    assert (facts["target"]["address"], facts["target"]["group"], facts["target"]["isolated"]) == ("0000:00:1f.3", "18", False)


def test_check_mode_is_the_same_read(capsys, alderlake):
    normal = run(capsys, root=alderlake, device="auto")
    checked = run(capsys, root=alderlake, device="auto", _ansible_check_mode=True)
    assert checked["changed"] is False
    assert checked["ansible_facts"] == normal["ansible_facts"]


def test_bad_device_fails_naming_it(capsys, alderlake):
    result = run(capsys, root=alderlake, device="00:02")
    assert result["failed"] is True
    assert "00:02" in result["msg"]
    assert result["link"] == "input"
    assert "0000:00:02.0" in result["fix"]


def test_host_without_iommu(capsys, tmp_path):
    root = build_root(tmp_path, None, lspci=fixture("lspci/D-nn-grep-VGA-alderlake-n-n100-46d1-proxmox.txt"), acpi_table=None)
    facts = run(capsys, root=root, device="auto")["ansible_facts"]["iommu"]
    assert (facts["enabled"], facts["groups"], facts["vendor"], facts["firmware_vtd"]) == (False, {}, None, False)
    assert facts["target"]["isolated"] is False


def _fake_dmesg(monkeypatch, rc, out, err=""):
    calls = []

    def run_command(self, args, **kwargs):
        calls.append(args)
        return rc, out, err

    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/bin/" + name)
    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    return calls


def test_dmesg_verdict_added(capsys, monkeypatch, alderlake):
    calls = _fake_dmesg(monkeypatch, 0, fixture("dmesg/intel-proxmox-coffeelake-dell-grep-dmar-iommu-amdvi-full-success.txt"))
    facts = run(capsys, root=alderlake, dmesg=True)["ansible_facts"]["iommu"]
    assert calls == [["/bin/dmesg"]]
    assert facts["dmesg"]["iommu_enabled"] is True
    assert facts["dmesg"]["evidence"][0] == "DMAR: IOMMU enabled"


def test_dmesg_vendor_falls_back_to_acpi_table(capsys, monkeypatch, alderlake):
    _fake_dmesg(monkeypatch, 0, fixture("dmesg/intel-fedora-coffeelake-i7-9700-no-intel_iommu-default-domain-translated-excerpt.txt"))
    verdict = run(capsys, root=alderlake, dmesg=True)["ansible_facts"]["iommu"]["dmesg"]
    assert (verdict["vendor"], verdict["iommu_enabled"], verdict["default_domain"]) == ("intel", False, "Translated")


def test_dmesg_unreadable_is_reported_not_fatal(capsys, monkeypatch, alderlake):
    _fake_dmesg(monkeypatch, 1, "", "dmesg: read kernel buffer failed: Operation not permitted\n")
    result = run(capsys, root=alderlake, dmesg=True)
    assert "failed" not in result
    assert result["ansible_facts"]["iommu"]["dmesg"] == {"error": "dmesg: read kernel buffer failed: Operation not permitted"}


def test_no_dmesg_unless_asked(capsys, monkeypatch, alderlake):
    calls = _fake_dmesg(monkeypatch, 0, "")
    assert "dmesg" not in run(capsys, root=alderlake)["ansible_facts"]["iommu"]
    assert calls == []


def test_dmesg_with_odd_bytes_gives_a_verdict(capsys, monkeypatch, alderlake):
    text = fixture("dmesg/intel-proxmox-coffeelake-dell-grep-dmar-iommu-amdvi-full-success.txt").encode() + b"\nusb 1-1: Product: \xff\xfeCam\n"
    _fake_dmesg(monkeypatch, 0, text, b"")
    result = run(capsys, root=alderlake, dmesg=True)
    assert "failed" not in result
    assert result["ansible_facts"]["iommu"]["dmesg"]["iommu_enabled"] is True


def test_sysfs_files_with_odd_bytes_do_not_fail_the_facts(capsys, alderlake):
    with open(os.path.join(alderlake, "sys/bus/pci/devices/0000:00:02.0/class"), "wb") as handle:
        handle.write(b"0x03\xff\xfe00\n")
    with open(os.path.join(alderlake, "proc/cmdline"), "wb") as handle:
        handle.write(b"root=/dev/sda1 intel_iommu=on iommu=pt \xe9\n")
    result = run(capsys, root=alderlake, device="0000:00:02.0")
    assert "failed" not in result
    facts = result["ansible_facts"]["iommu"]
    assert facts["devices"]["0000:00:02.0"]["class_id"] is None
    assert "intel_iommu=on" in facts["cmdline"]
