# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sharing.modes: which of passthrough, gvt and sriov can work for a GPU, over real PCI ids, the live facts and
the kernel; each refusal names the mode, the GPU and the fix, and the real logs agree with the table."""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import capabilities
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import sharing
from ansible_collections.homelab.gpu_passthrough.tests.unit.conftest import FIXTURES


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


# Real GPUs: (pci id, what it is, the modes that can work). GVT-g: Broadwell .. Comet Lake; SR-IOV: Tiger Lake,
# Alder/Raptor Lake, Meteor/Arrow Lake (i915-sriov-dkms), Battlemage (xe); passthrough: every GPU.
GPUS = [
    ("8086:3e92", "UHD 630 (Coffee Lake-S, the M920q's)", ["passthrough", "gvt"]),
    ("8086:3e9b", "UHD 630 (Coffee Lake-H)", ["passthrough", "gvt"]),
    ("8086:3e98", "UHD 630 (i9-9900K)", ["passthrough", "gvt"]),
    ("8086:5917", "UHD 620 (Kaby Lake-R, i7-8550U)", ["passthrough", "gvt"]),
    ("8086:9bc8", "UHD 630 (Comet Lake)", ["passthrough", "gvt"]),
    ("8086:46d1", "N100 (Alder Lake-N)", ["passthrough", "sriov"]),
    ("8086:a7a0", "Raptor Lake-P Iris Xe", ["passthrough", "sriov"]),
    ("8086:4680", "UHD 770 (Alder Lake-S)", ["passthrough", "sriov"]),
    ("8086:46a8", "Alder Lake-UP3 Iris Xe", ["passthrough", "sriov"]),
    ("8086:9a49", "Tiger Lake Iris Xe", ["passthrough", "sriov"]),
    ("8086:7d55", "Meteor Lake Arc", ["passthrough", "sriov"]),
    ("8086:3185", "UHD 605 (Gemini Lake)", ["passthrough"]),
    ("8086:3184", "UHD 600 (Gemini Lake, J4215)", ["passthrough"]),
    ("8086:56a5", "Arc A380 (DG2)", ["passthrough"]),
    ("8086:8a52", "Iris Plus (Ice Lake)", ["passthrough"]),
    ("8086:4c8a", "UHD 750 (Rocket Lake)", ["passthrough"]),
    ("8086:e20b", "Arc B580 (Battlemage)", ["passthrough", "sriov"]),
    ("10de:1c82", "GTX 1050 Ti (not Intel)", ["passthrough"]),
]


@pytest.mark.parametrize("pci_id, what, possible", GPUS, ids=[g[0] for g in GPUS])
def test_modes_per_gpu(pci_id, what, possible):
    judged = sharing.modes(pci_id)
    assert judged["possible"] == possible, what
    for mode, verdict in judged["modes"].items():
        assert verdict["mode"] == mode
        assert verdict["msg"].startswith("%s: %s " % (mode, judged["name"]))
        assert verdict["live"] is None  # no live facts given
        if verdict["ok"]:
            assert verdict["fix"] is None and verdict["alternative"] is None
        else:
            assert verdict["alternative"] in possible and verdict["alternative"] != mode
            assert verdict["msg"].endswith("-> %s" % verdict["fix"])
            assert verdict["alternative"] in verdict["fix"]


def test_the_refusal_the_issue_names():
    assert sharing.modes("8086:46d1")["modes"]["gvt"]["msg"] == (
        "gvt: Intel Alder Lake-N (Gen 12) has no GVT-g (dropped after Gen 9.5) -> use sriov")


def test_sriov_on_coffee_lake_points_to_gvt():
    verdict = sharing.modes("8086:3e92")["modes"]["sriov"]
    assert (verdict["ok"], verdict["alternative"]) == (False, "gvt")
    assert "Intel Coffee Lake (Gen 9.5) has no SR-IOV" in verdict["msg"]


def test_gemini_lake_log_and_table_agree():
    """The Proxmox VE 5 Gemini Lake host set i915.enable_gvt=1 and i915 still said GVT-g is disabled."""
    log = fixture("sharing/mdev/dmesg-grep-gvt-pve5-geminilake-unsupported-device-gvt-disabled.txt")
    assert "i915.enable_gvt=1" in log and "Unsupported device. GVT-g is disabled" in log
    verdict = sharing.modes("8086:3185")["modes"]["gvt"]
    assert verdict["ok"] is False
    assert "Unsupported device. GVT-g is disabled" in verdict["reason"]


def test_gen9_guc_log_and_table_agree():
    """The UHD 620 host asked for enable_guc=3 (SR-IOV) and i915 said GuC submission is N/A."""
    log = fixture("huc/dmesg-grep-i915-uhd620-incompatible-enable_guc-3-guc-submission-na-truncated.txt")
    assert "i915.max_vfs=7" in log and "Incompatible option enable_guc=3 - GuC submission is N/A" in log
    verdict = sharing.modes("8086:5917")["modes"]["sriov"]
    assert verdict["ok"] is False and "GuC submission" in verdict["reason"] and "enable_guc=3" in verdict["reason"]


def test_a_driver_without_sriov_gives_no_vfs():
    """``driver does not support SR-IOV configuration via sysfs``: a device whose sysfs shows no VF total."""
    assert "driver does not support SR-IOV" in fixture(
        "sharing/sriov/dmesg-grep-iov-driver-does-not-support-sriov-sysfs-then-sudo-echo-permission-denied-zh.txt")
    device = {"vendor_id": "8086", "device_id": "3e92", "sriov": {"total_vfs": 0, "num_vfs": 0, "vfs": []}}
    verdict = sharing.modes("8086:3e92", device=device)["modes"]["sriov"]
    assert verdict["ok"] is False and verdict["alternative"] == "gvt"


# ---------------------------------------------------------------------------------------------
# The kernel


@pytest.mark.parametrize("pci_id, kernel, ok", [
    ("8086:46d1", "5.15.0-88-generic", False),
    ("8086:46d1", "6.1.0-13-amd64", True),
    ("8086:46d1", "6.8.12-9-pve", True),
    ("8086:46d1", "7.0.0-3-pve", True),
    ("8086:46d1", "not a release", True),  # not judged
    ("8086:e20b", "6.14.8-2-pve", False),
    ("8086:e20b", "6.17.2-1-pve", True),
])
def test_kernel_gate(pci_id, kernel, ok):
    verdict = sharing.modes(pci_id, kernel=kernel)["modes"]["sriov"]
    assert verdict["ok"] is ok
    if not ok:
        assert kernel in verdict["msg"] and "boot a kernel" in verdict["fix"]


@pytest.mark.parametrize("release, version", [("6.8.12-4-pve", (6, 8)), ("7.0.0-3-pve", (7, 0)), ("4.15.18-9-pve", (4, 15)),
                                              ("", None), (None, None), ("pve", None)])
def test_kernel_version(release, version):
    assert sharing.kernel_version(release) == version


# ---------------------------------------------------------------------------------------------
# Live facts


def test_gvt_ready_but_not_enabled_yet():
    verdict = sharing.modes("8086:3e92", device={"device_id": "3e92"})["modes"]["gvt"]
    assert (verdict["ok"], verdict["live"]) == (True, False)
    assert "i915.enable_gvt=1" in verdict["reason"] and "kvmgt" in verdict["reason"]


def test_live_proof_wins_for_an_unknown_gpu():
    device = {"mdev_types": [{"type": "nvidia-63", "available_instances": 4}], "sriov": {"total_vfs": 16, "num_vfs": 0, "vfs": []}}
    judged = sharing.modes("10de:1eb8", device=device)
    assert judged["known"] is False
    assert judged["possible"] == ["passthrough", "gvt", "sriov"]
    assert judged["modes"]["gvt"]["live"] is True and "nvidia-63" in judged["modes"]["gvt"]["msg"]


def test_odd_device_entries_are_not_live_facts():
    for device in ("0000:00:02.0", {"mdev_types": "i915-GVTg_V5_4"}, {"sriov": [7]}, {"mdev_types": [None, {"type": ""}]}):
        judged = sharing.modes("8086:46d1", device=device)
        assert judged["possible"] == ["passthrough", "sriov"]


def test_the_table_carries_the_sharing_fields():
    for platform, row in capabilities.PLATFORMS.items():
        generation = float(row["generation"])
        assert row["gvt"] in (True, False) and row["sriov"] in (None, "i915-sriov-dkms", "xe"), platform
        assert not row["gvt"] or generation <= 9.5, platform
        assert not row["sriov"] or generation >= 12, platform
    caps = capabilities.lookup("8086:3e92")
    assert caps["sharing"]["gvt"] is True and caps["sharing"]["sriov"] is None
    assert "intel_gvt.c" in caps["sharing"]["source"]
    assert "i915-sriov-dkms" in capabilities.lookup("8086:46d1")["sharing"]["source"]


# ---------------------------------------------------------------------------------------------
# require


def test_require_refuses_naming_option_mode_gpu_and_fix():
    with pytest.raises(PassthroughError) as caught:
        sharing.require("gvt", "8086:46d1", option="proxmox_gpu_prep_mode")
    error = caught.value
    assert error.message.startswith("proxmox_gpu_prep_mode=gvt: gvt: Intel Alder Lake-N (Gen 12)")
    assert error.fix == "use sriov" and error.details == {"alternative": "sriov"}
    assert error.link == "input"


def test_require_returns_the_verdict_when_it_can_work():
    assert sharing.require("sriov", "8086:46d1", kernel="6.8.12-9-pve")["ok"] is True


@pytest.mark.parametrize("mode", ["vgpu", "", None, "SRIOV"])
def test_require_refuses_an_unknown_mode(mode):
    with pytest.raises(PassthroughError) as caught:
        sharing.require(mode, "8086:46d1", option="proxmox_gpu_prep_mode")
    assert "proxmox_gpu_prep_mode=%r" % (mode,) in caught.value.message
    assert "passthrough, gvt, sriov" in caught.value.fix
