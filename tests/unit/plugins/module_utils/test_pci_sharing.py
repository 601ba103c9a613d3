# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pci.scan's sharing facts (SR-IOV VFs, mediated device types) over sysfs trees shaped after real listings,
and odd or partial trees that must read without crashing."""

import os
import re

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import pci, sharing
from ansible_collections.homelab.gpu_passthrough.tests.unit.conftest import FIXTURES
from ansible_collections.homelab.gpu_passthrough.tests.unit.sharing_readers import (
    available_instances_listing,
    listed_type_dirs,
    lspci_plain,
    mdevctl_types,
    sysfs_conf,
)
from ansible_collections.homelab.gpu_passthrough.tests.unit.sysfs_builder import add_mdev_types, add_sriov, build_root


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


IGPU = "0000:00:02.0"
DELL = "iommu/single-line-proxmox-dell-coffeelake-3e92-igpu-group0-glob-order.txt"
ALDERLAKE = "iommu/loop-tab-format-alderlake-4680-12th-gen-sorted.txt"
ALDERLAKE_LSPCI = "lspci/nnk-alderlake-4680-igpu-i915-host-rx560-vfio-pci.txt"
MDEVCTL = "sharing/mdev/mdevctl-types-four-gvtg-types-v5_1-v5_2-v5_4-v5_8-no-name-field.txt"
LL_TYPES = "sharing/mdev/ll-mdev_supported_types-coffeelake-only-v5_4-and-v5_8-dirs.txt"
I9_9900K = "sharing/mdev/cat-available_instances-per-type-i9-9900k-dashed-separators.txt"
CREATE = "sharing/mdev/echo-uuid-create-v5_4-second-write-no-space-left-on-device.txt"
RAPTORLAKE_VFS = "sharing/sriov/lspci-grep-vga-raptorlake-p-pve04-7-vfs-trailing-prompt.txt"
ALDERLAKE_UP3 = "sharing/sriov/lspci-nnk-s-00-02.0-pf-only-alderlake-up3-modules-i915-xe-numbered-prompt.txt"
ERANGE = "sharing/sriov/echo-1-sriov_numvfs-numerical-result-out-of-range-ubuntu-alderlake-s.txt"
GEMINILAKE_CONF = "sharing/sriov/cat-etc-sysfs-conf-numvfs-7-with-comment-on-geminilake-single-vga.txt"

# The Raptor Lake-P listing names the GPU ("Raptor Lake-P [Iris Xe Graphics]") but not its id; pci.ids gives a7a0.
RAPTORLAKE_P_IRIS_XE = {"vendor_id": "8086", "device_id": "a7a0", "class_id": "0300", "driver": "i915"}
# The Gemini Lake host is a Celeron J4215, "GeminiLake [UHD Graphics 600]": 8086:3184 in pci.ids.
GEMINILAKE_UHD600 = {"vendor_id": "8086", "device_id": "3184", "class_id": "0300", "driver": "i915"}
# i915-sriov-dkms README: "You can create up to 7 VFs on Intel UHD Graphics".
DKMS_MAX_VFS = 7


def as_sysfs_description(shown):
    """i915 prints a type's description one ``key: value`` per line; mdevctl joins them with ", "."""
    return "\n".join(shown.split(", "))


def coffeelake_root(tmp_path):
    return build_root(tmp_path, fixture(DELL))


# ---------------------------------------------------------------------------------------------
# Mediated device types (GVT-g)


def test_coffeelake_types_as_listed_with_the_i9_9900k_instances(tmp_path):
    """The Coffee Lake listing has V5_4 and V5_8 only; the i9-9900K's files give their instances."""
    root = coffeelake_root(tmp_path)
    listed = listed_type_dirs(fixture(LL_TYPES))
    instances = available_instances_listing(fixture(I9_9900K))[IGPU]
    described = mdevctl_types(fixture(MDEVCTL))[IGPU]
    add_mdev_types(root, IGPU, {
        name: {"available_instances": instances[name], "description": as_sysfs_description(described[name]["description"]),
               "device_api": "vfio-pci"}
        for name in listed
    })
    device = pci.scan(root)["devices"][IGPU]
    assert [t["type"] for t in device["mdev_types"]] == listed == ["i915-GVTg_V5_4", "i915-GVTg_V5_8"]
    for entry in device["mdev_types"]:
        assert entry["available_instances"] == instances[entry["type"]]
        assert entry["description"] == described[entry["type"]]["description"]
        assert entry["name"] is None
        assert entry["device_api"] == "vfio-pci"
    assert "sriov" not in device and "physfn" not in device


def test_mdevctl_listing_without_name_field(tmp_path):
    """Four types, every file but ``name``: the facts carry what mdevctl shows and name None."""
    listed = mdevctl_types(fixture(MDEVCTL))[IGPU]
    root = coffeelake_root(tmp_path)
    add_mdev_types(root, IGPU, {
        name: dict(files, name=None, description=as_sysfs_description(files["description"])) for name, files in listed.items()
    })
    with open(os.path.join(_device_dir(root), "mdev_supported_types", "i915-GVTg_V5_8", "description")) as handle:
        assert handle.read().count("\n") == 5  # five lines in sysfs, one line in the facts
    types = {t["type"]: t for t in pci.scan(root)["devices"][IGPU]["mdev_types"]}
    assert sorted(types) == sorted(listed)
    for name, files in listed.items():
        assert {k: types[name][k] for k in files} == files
    assert all(t["name"] is None for t in types.values())


def test_a_created_instance_leaves_none_and_gvt_says_so(tmp_path):
    """The second create of V5_4 ran out of space: one instance was all there was, and after it none is left."""
    text = fixture(CREATE)
    writes = [line for line in text.splitlines() if line.startswith("#") and "/create" in line]
    failed_at = next(i for i, line in enumerate(text.splitlines()) if "No space left on device" in line)
    created = len([line for line in text.splitlines()[:failed_at] if line in writes]) - 1
    assert created == 1
    root = coffeelake_root(tmp_path)
    add_mdev_types(root, IGPU, {"i915-GVTg_V5_4": {"available_instances": 1 - created, "device_api": "vfio-pci"}})
    device = pci.scan(root)["devices"][IGPU]
    assert device["mdev_types"][0]["available_instances"] == 0
    verdict = sharing.modes("8086:3e92", device=device)["modes"]["gvt"]
    assert verdict["ok"] is True and verdict["live"] is True
    assert "no instance left" in verdict["msg"]


# ---------------------------------------------------------------------------------------------
# SR-IOV


def raptorlake_root(tmp_path):
    listed = [address for address, _desc in lspci_plain(fixture(RAPTORLAKE_VFS))]
    pf, vfs = listed[0], listed[1:]
    root = build_root(tmp_path, None, devices={pf: RAPTORLAKE_P_IRIS_XE})
    add_sriov(root, pf, vfs, total_vfs=DKMS_MAX_VFS)
    return root, pf, vfs


def test_raptorlake_pf_with_seven_vfs(tmp_path):
    root, pf, vfs = raptorlake_root(tmp_path)
    assert pf == IGPU and len(vfs) == 7
    facts = pci.scan(root)
    assert facts["devices"][pf]["sriov"] == {"total_vfs": DKMS_MAX_VFS, "num_vfs": len(vfs), "vfs": vfs}
    assert "physfn" not in facts["devices"][pf]
    for vf in vfs:
        assert facts["devices"][vf]["physfn"] == pf
        assert "sriov" not in facts["devices"][vf]
        assert (facts["devices"][vf]["vendor_id"], facts["devices"][vf]["device_id"]) == ("8086", "a7a0")
    assert facts["gpus"] == [pf] + vfs


def test_raptorlake_pf_is_not_passed_while_its_vfs_exist(tmp_path):
    root, pf, vfs = raptorlake_root(tmp_path)
    device = pci.scan(root)["devices"][pf]
    # The page pins 6.5.13-3-pve.
    judged = sharing.modes("8086:a7a0", device=device, kernel="6.5.13-3-pve")["modes"]
    assert judged["passthrough"]["ok"] is False and judged["passthrough"]["alternative"] == "sriov"
    assert vfs[0] in judged["passthrough"]["msg"]
    assert judged["sriov"]["ok"] is True and judged["sriov"]["live"] is True
    assert judged["gvt"]["ok"] is False and judged["gvt"]["alternative"] == "sriov"


def test_alderlake_up3_pf_only(tmp_path):
    """PF on i915, no VFs enabled: SR-IOV is there to be used, passthrough still possible."""
    root = build_root(tmp_path, None, lspci=fixture(ALDERLAKE_UP3))
    add_sriov(root, IGPU, [], total_vfs=DKMS_MAX_VFS)
    facts = pci.scan(root)
    device = facts["devices"][IGPU]
    assert (device["device_id"], device["driver"]) == ("46a8", "i915")
    assert device["sriov"] == {"total_vfs": DKMS_MAX_VFS, "num_vfs": 0, "vfs": []}
    assert [a for a, d in facts["devices"].items() if d.get("physfn")] == []
    judged = sharing.modes("8086:46a8", device=device, kernel="6.14.8-2-pve")
    assert judged["possible"] == ["passthrough", "sriov"]


def test_erange_means_the_driver_allows_no_vf(tmp_path):
    """``echo 1 > sriov_numvfs`` said ERANGE: the total is below 1 (drivers/pci/iov.c), the stock i915 is loaded."""
    assert "Numerical result out of range" in fixture(ERANGE)
    root = build_root(tmp_path, fixture(ALDERLAKE), lspci=fixture(ALDERLAKE_LSPCI))
    add_sriov(root, IGPU, [], total_vfs=0, num_vfs=0)
    device = pci.scan(root)["devices"][IGPU]
    assert device["sriov"] == {"total_vfs": 0, "num_vfs": 0, "vfs": []}
    verdict = sharing.modes("8086:4680", device=device, kernel="6.8.0-88-generic")["modes"]["sriov"]
    assert (verdict["ok"], verdict["live"]) == (True, False)
    assert "sriov_totalvfs 0" in verdict["msg"] and "i915-sriov-dkms" in verdict["msg"]


def test_geminilake_config_asks_for_vfs_the_hardware_has_not(tmp_path):
    text = fixture(GEMINILAKE_CONF)
    wanted = sysfs_conf(text)
    assert wanted == {"devices/pci0000:00/0000:00:02.0/sriov_numvfs": "7"}
    (address, description), = lspci_plain(text)
    assert "GeminiLake" in description
    root = build_root(tmp_path, None, devices={address: GEMINILAKE_UHD600})
    device = pci.scan(root)["devices"][address]
    assert "sriov" not in device
    verdict = sharing.modes("8086:3184", device=device)["modes"]["sriov"]
    assert verdict["ok"] is False and verdict["alternative"] == "passthrough"


# ---------------------------------------------------------------------------------------------
# Odd and partial trees


def _device_dir(root, address=IGPU):
    return os.path.realpath(os.path.join(root, "sys", "bus", "pci", "devices", address))


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def test_garbage_and_unreadable_counts_are_none(tmp_path):
    root = coffeelake_root(tmp_path)
    base = _device_dir(root)
    _write(os.path.join(base, "sriov_totalvfs"), b"seven\n")
    os.makedirs(os.path.join(base, "sriov_numvfs"))  # reading a directory fails like an unreadable file
    assert pci.scan(root)["devices"][IGPU]["sriov"] == {"total_vfs": None, "num_vfs": None, "vfs": []}


@pytest.mark.parametrize("text", [b"-1\n", b"", b"\xff\xfe\n", b"0x7\n", b"7 7\n"])
def test_odd_numbers_in_count_files(tmp_path, text):
    root = coffeelake_root(tmp_path)
    _write(os.path.join(_device_dir(root), "sriov_totalvfs"), text)
    assert pci.scan(root)["devices"][IGPU]["sriov"]["total_vfs"] is None


def test_numvfs_alone_still_marks_the_capability(tmp_path):
    root = coffeelake_root(tmp_path)
    _write(os.path.join(_device_dir(root), "sriov_numvfs"), b"0\n")
    assert pci.scan(root)["devices"][IGPU]["sriov"] == {"total_vfs": None, "num_vfs": 0, "vfs": []}


def test_dangling_links_are_left_out(tmp_path):
    root, pf, vfs = raptorlake_root(tmp_path)
    gone = vfs[2]
    vf_dir = _device_dir(root, gone)
    os.remove(os.path.join(root, "sys", "bus", "pci", "devices", gone))
    for name in os.listdir(vf_dir):
        os.remove(os.path.join(vf_dir, name))
    os.rmdir(vf_dir)
    assert os.path.islink(os.path.join(_device_dir(root, pf), "virtfn2"))
    facts = pci.scan(root)
    assert facts["devices"][pf]["sriov"]["vfs"] == [v for v in vfs if v != gone]
    assert facts["devices"][pf]["sriov"]["num_vfs"] == len(vfs)  # what the file says, not the links


def test_dangling_physfn_is_left_out(tmp_path):
    root, pf, vfs = raptorlake_root(tmp_path)
    link = os.path.join(_device_dir(root, vfs[0]), "physfn")
    os.remove(link)
    os.symlink("../0000:00:09.0", link)
    facts = pci.scan(root)
    assert "physfn" not in facts["devices"][vfs[0]]
    assert facts["devices"][vfs[1]]["physfn"] == pf


def test_virtfn_links_in_numeric_order(tmp_path):
    """virtfn10 comes after virtfn2, as the VF index says, not as the names sort."""
    vfs = ["0000:00:02.%d" % f for f in range(1, 8)] + ["0000:00:03.%d" % f for f in range(0, 5)]
    root = build_root(tmp_path, None, devices={IGPU: RAPTORLAKE_P_IRIS_XE})
    add_sriov(root, IGPU, vfs, total_vfs=len(vfs))
    assert pci.scan(root)["devices"][IGPU]["sriov"]["vfs"] == vfs


def test_virtfn_link_to_something_not_a_pci_address(tmp_path):
    root = coffeelake_root(tmp_path)
    base = _device_dir(root)
    os.makedirs(os.path.join(base, "not-a-device"))
    os.symlink("not-a-device", os.path.join(base, "virtfn0"))
    assert pci.scan(root)["devices"][IGPU]["sriov"] == {"total_vfs": None, "num_vfs": None, "vfs": []}


def test_empty_mdev_supported_types(tmp_path):
    root = coffeelake_root(tmp_path)
    os.makedirs(os.path.join(_device_dir(root), "mdev_supported_types"))
    assert pci.scan(root)["devices"][IGPU]["mdev_types"] == []


def test_mdev_type_without_files_and_stray_entries(tmp_path):
    root = coffeelake_root(tmp_path)
    base = os.path.join(_device_dir(root), "mdev_supported_types")
    os.makedirs(os.path.join(base, "i915-GVTg_V5_8"))
    _write(os.path.join(base, "README"), b"not a type\n")
    _write(os.path.join(base, "i915-GVTg_V5_4", "available_instances"), b"many\n")
    _write(os.path.join(base, "i915-GVTg_V5_4", "description"), b"low_gm_size: 128MB, \xff\n")
    os.makedirs(os.path.join(base, "i915-GVTg_V5_4", "name"))  # unreadable
    types = pci.scan(root)["devices"][IGPU]["mdev_types"]
    assert [t["type"] for t in types] == ["i915-GVTg_V5_4", "i915-GVTg_V5_8"]
    first, second = types
    assert first["available_instances"] is None and first["name"] is None
    assert first["description"].startswith("low_gm_size: 128MB, ")
    assert second == {"type": "i915-GVTg_V5_8", "name": None, "description": None, "available_instances": None, "device_api": None}


def test_mdev_supported_types_as_a_file_is_no_parent(tmp_path):
    root = coffeelake_root(tmp_path)
    _write(os.path.join(_device_dir(root), "mdev_supported_types"), b"")
    assert "mdev_types" not in pci.scan(root)["devices"][IGPU]


def test_devices_without_sharing_keep_their_shape(tmp_path):
    root = build_root(tmp_path, fixture(ALDERLAKE), lspci=fixture(ALDERLAKE_LSPCI))
    add_sriov(root, IGPU, [], total_vfs=DKMS_MAX_VFS)
    facts = pci.scan(root)
    plain = {"vendor_id", "device_id", "class_id", "driver", "iommu_group", "is_bridge", "is_gpu"}
    assert set(facts["devices"][IGPU]) == plain | {"sriov"}
    assert all(set(d) == plain for a, d in facts["devices"].items() if a != IGPU)
    assert re.match(r"^\d+$", facts["devices"][IGPU]["iommu_group"])
