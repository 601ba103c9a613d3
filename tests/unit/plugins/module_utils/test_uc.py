# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest.uc: GuC/HuC read from real debugfs and kernel log outputs; odd input never raises; the LP judgement follows it."""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.filter.gpu_worker import FilterModule
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import capabilities as caps_mod
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import uc
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.vainfo import parse

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))
DIAGNOSIS = FilterModule().filters()["gpu_worker_diagnosis"]

GT0_AUTHENTICATED = "huc/dmesg-T-grep-GT0-redacted-prompt-pve-huc-authenticated-all-workloads-bang-vf-interface.txt"
N100_MISSING = "huc/guc_info-missing-huc_info-error-debian13-alderlake-n-gt-glob.txt"
VF_PRELOADED = "huc/debian-guest-session-vf-06-10.0-uhd730-lspci-dmesg-ls-render-vainfo-profiles-elided.txt"
UHD620_NO_SUBMISSION = "huc/dmesg-grep-i915-uhd620-incompatible-enable_guc-3-guc-submission-na-truncated.txt"
GVTG_GUEST = "huc/gvtg-guest-dmesg-virtual-gpu-detected-stolen-memory-disabled-vblank-warning-header-line.txt"
ADLS_GUC_ONLY = "dmesg/intel-alderlake-s-proxmox-grep-i915-vt-d-active-leading-lines.txt"

# Texts in the exact formats the kernel prints (intel_huc_load_status, intel_uc_fw_dump, the i915 probe and reset
# messages), for the states no published output in the fixtures shows.
HUC_DISABLED_DEBUGFS = "HuC disabled\n"
HUC_AVAILABLE_DEBUGFS = ("HuC firmware: i915/kbl_huc_4.0.0.bin\n\tstatus: AVAILABLE\n\tversion: wanted 4.0.0, found 4.0.0\n"
                         "\tuCode: 220032 bytes\n\tRSA: 256 bytes\nHuC status: 0x00006000\n")
HUC_RUNNING_DEBUGFS = ("HuC firmware: i915/tgl_huc.bin\n\tstatus: RUNNING\n\tversion: wanted 7.9.0, found 7.9.3\n"
                       "\tuCode: 589824 bytes\n\tRSA: 256 bytes\nHuC status: 0x00090001\n")
WEDGED_LOG = ("[    3.104000] i915 0000:00:02.0: [drm] GT0: GuC firmware i915/kbl_guc_70.1.1.bin version 70.1.1\n"
              "[    3.204000] i915 0000:00:02.0: [drm] *ERROR* GT0: Enabling uc failed (-5)\n"
              "[    3.204100] i915 0000:00:02.0: [drm] *ERROR* Failed to initialize GPU, declaring it wedged!\n")
MISSING_LOG = ("[    2.901000] i915 0000:00:02.0: Direct firmware load for i915/kbl_guc_70.1.1.bin failed with error -2\n"
               "[    2.901100] i915 0000:00:02.0: [drm] GuC firmware i915/kbl_guc_70.1.1.bin: fetch failed -ENOENT\n"
               "[    2.901200] i915 0000:00:02.0: [drm] HuC firmware i915/kbl_huc_4.0.0.bin: fetch failed -ENOENT\n")


def _text(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def _read(name=None, debugfs=None, log=None, address="0000:00:02.0", enable_guc=None):
    """combine() over a fixture read as debugfs and as a kernel log, the way vainfo_facts does."""
    text = _text(name) if name else None
    fs = uc.parse_debugfs(debugfs if debugfs is not None else text)
    kernel = uc.parse_kernel_log(log if log is not None else text, address)
    return uc.combine(fs, kernel, enable_guc)


# fixture or text, as (debugfs, kernel log) -> huc, guc, source, the HuC firmware seen
STATES = [
    ("authenticated", dict(name=GT0_AUTHENTICATED), "authenticated", "loaded", "kernel log",
     {"path": "i915/tgl_huc.bin", "version": "7.9.3"}),
    ("authenticated (debugfs)", dict(debugfs=HUC_RUNNING_DEBUGFS, log=""), "authenticated", "unknown", "debugfs",
     {"path": "i915/tgl_huc.bin", "version": "7.9.3"}),
    ("firmware missing (debugfs)", dict(name=N100_MISSING), "failed", "firmware missing", "debugfs",
     {"path": "i915/tgl_huc.bin", "version": None}),
    ("firmware missing (log)", dict(debugfs="", log=MISSING_LOG), "firmware missing", "firmware missing", "kernel log",
     {"path": "i915/kbl_huc_4.0.0.bin", "version": None}),
    ("not loaded (disabled)", dict(debugfs=HUC_DISABLED_DEBUGFS, log=""), "not loaded", "unknown", "debugfs", None),
    ("not loaded (available)", dict(debugfs=HUC_AVAILABLE_DEBUGFS, log=""), "not loaded", "unknown", "debugfs",
     {"path": "i915/kbl_huc_4.0.0.bin", "version": "4.0.0"}),
    ("wedged", dict(debugfs="", log=WEDGED_LOG), "wedged", "wedged", "kernel log", None),
    ("VF preloaded", dict(name=VF_PRELOADED, address="0000:06:10.0"), "loaded", "loaded", "kernel log", None),
    ("GVT-g guest", dict(name=GVTG_GUEST, address="0000:00:04.0"), "unknown", "unknown", None, None),
    ("GuC only", dict(name=ADLS_GUC_ONLY), "unknown", "loaded", "kernel log", None),
]


@pytest.mark.parametrize("case, kwargs, huc, guc, source, huc_firmware", STATES, ids=[s[0] for s in STATES])
def test_states_from_real_and_kernel_format_outputs(case, kwargs, huc, guc, source, huc_firmware):
    result = _read(**kwargs)
    assert (result["huc"], result["guc"], result["source"]) == (huc, guc, source), result["detail"]
    if huc_firmware:
        assert {k: result["firmware"]["huc"][k] for k in huc_firmware} == huc_firmware
    assert isinstance(result["detail"], str) and result["detail"]


def test_missing_guc_reads_the_wanted_and_found_versions():
    result = _read(N100_MISSING)
    assert result["firmware"]["guc"] == {"path": "i915/tgl_guc_70.bin", "version": "0.0.0", "wanted": "70.12.1",
                                         "status": "MISSING"}
    assert result["firmware"]["huc"]["status"] == "ERROR"
    assert "HuC failed" in result["detail"] and "GuC firmware missing" in result["detail"]
    assert uc.huc_present(result) is False


def test_authenticated_lines_are_kept_and_the_guc_version_read():
    result = _read(GT0_AUTHENTICATED)
    assert result["firmware"]["guc"]["path"] == "i915/tgl_guc_70.bin"
    assert result["firmware"]["guc"]["version"] == "70.20.0"
    assert any("authenticated for all workloads!" in line for line in result["seen"])
    assert uc.huc_present(result) is True


def test_a_vf_is_not_credited_with_its_pf_huc():
    # The SR-IOV host logs its VFs too: for VF 00:02.1 only its own "GUC: interface version" lines count.
    result = _read(GT0_AUTHENTICATED, address="0000:00:02.1")
    assert result["huc"] == "unknown" and uc.huc_present(result) is None


def test_sriov_vf_and_missing_submission_are_noted():
    assert any("SR-IOV VF" in n for n in _read(VF_PRELOADED, address="06:10.0")["notes"])
    uhd620 = _read(UHD620_NO_SUBMISSION, enable_guc=3)
    assert uhd620["huc"] == "unknown" and uhd620["source"] == "parameter"
    assert any("GuC submission" in n and "enable_guc=3" in n for n in uhd620["notes"])
    assert "judged by i915.enable_guc=3" in uhd620["detail"]


def test_a_harmless_guc_notice_is_no_failure():
    # i915 prints this notice on healthy Alder Lake boots; it says nothing about the firmware's state.
    log = _text(ADLS_GUC_ONLY) + ("[   11.190000] i915 0000:00:02.0: [drm] GT0: GuC error state capture buffer maybe "
                                  "small: 2097152 < 2443728 (min = 814576)\n")
    assert _read(debugfs="", log=log)["guc"] == "loaded"


def test_wedged_beats_the_firmware_that_loaded():
    result = _read(debugfs="", log=WEDGED_LOG)
    assert result["firmware"]["guc"]["version"] == "70.1.1"
    assert "wedged" in result["detail"]


@pytest.mark.parametrize("text", [
    None, "", b"\xff\xfe\x00garbage", "HuC firmware:", "\tstatus: RUNNING\n", "HuC firmware: x\n\tstatus:\n",
    "HuC firmware: i915/tgl_huc.bin\n\tstatus: SOMETHING NEW\n\tversion: wanted , found\n",
    "GuC firmware  version \nHuC: \nwedged", "i915 0000:00:02.0: [drm] GT0: HuC firmware",
    _text("huc/vainfo-excerpt-rocketlake-4c8a-vp9-profiles-decode-only-no-encode-entrypoint.txt"),
    _text("huc/lspci-grep-vga-in-vm-vf-at-00-08.0-raptorlake-s-blank-line-after-command.txt"),
    _text("huc/debian12-guest-lspci-grep-vga-std-vga-1234-1111-plus-vf-06-11.0-alderlake-n.txt"),
])
def test_odd_and_partial_outputs_never_raise(text):
    result = uc.combine(uc.parse_debugfs(text), uc.parse_kernel_log(text, "0000:00:02.0"), None)
    assert result["huc"] in uc.STATES and result["guc"] in uc.STATES


def _debugfs_tree(tmp_path, minor, files, name=None):
    base = tmp_path / "debug" / "dri" / str(minor)
    for relative, text in files.items():
        path = base / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if name is not None:
        (base / "name").write_text(name)
    return str(tmp_path / "debug")


def test_read_debugfs_takes_the_media_gt_huc(tmp_path):
    # Meteor Lake: HuC lives on the media GT (gt1); gt0 says it has none.
    debugfs = _debugfs_tree(tmp_path, 1, {
        "gt0/uc/huc_info": "HuC not supported\n",
        "gt0/uc/guc_info": _text(N100_MISSING).split("$ sudo cat /sys/kernel/debug/dri/0/gt*/uc/huc_info")[0],
        "gt1/uc/huc_info": HUC_RUNNING_DEBUGFS,
    }, name="i915 dev=0000:00:02.0 unique=0000:00:02.0\n")
    parsed, files, problem = uc.read_debugfs(debugfs, "card1", "0000:00:02.0")
    assert problem is None and len(files) == 3
    assert parsed["huc"]["state"] == "authenticated" and parsed["guc"]["state"] == "firmware missing"


def test_read_debugfs_skips_another_devices_dir_and_says_why(tmp_path):
    debugfs = _debugfs_tree(tmp_path, 0, {"gt0/uc/huc_info": HUC_RUNNING_DEBUGFS},
                            name="i915 dev=0000:03:00.0 unique=0000:03:00.0\n")
    parsed, files, problem = uc.read_debugfs(debugfs, "card0", "0000:00:02.0")
    assert parsed is None and files == [] and "no guc_info/huc_info" in problem
    parsed, files, problem = uc.read_debugfs(str(tmp_path / "not-mounted"), "card0", "0000:00:02.0")
    assert parsed is None and "not mounted" in problem


def test_read_debugfs_old_kernel_files(tmp_path):
    debugfs = _debugfs_tree(tmp_path, 0, {"i915_huc_load_status": HUC_AVAILABLE_DEBUGFS})
    parsed, files, _problem = uc.read_debugfs(debugfs, "card0", None)
    assert parsed["huc"]["state"] == "not loaded" and files[0].endswith("i915_huc_load_status")


def test_debugfs_wins_over_the_log_per_firmware():
    result = uc.combine(uc.parse_debugfs(HUC_AVAILABLE_DEBUGFS), uc.parse_kernel_log(_text(GT0_AUTHENTICATED)), 2)
    assert result["huc"] == "not loaded" and result["sources"] == {"huc": "debugfs", "guc": "kernel log"}


# --- the LP judgement with the state read ---------------------------------------------------------------------

TIGER_LAKE = "vainfo/ihd-tigerlake-h-gen12-22.3.1-thinkpad-t15p.txt"


def _facts(fixture, pci_id, enable_guc, read=None):
    node = "/dev/dri/renderD128"
    vendor, device = pci_id.split(":")
    return {"render_nodes": [node], "devices": {}, "results": {node: parse(_text(fixture))}, "available": True,
            "hint": None, "gpu": {"node": node, "pci_id": pci_id, "vendor": vendor, "device": device,
                                  "class": "030000", "enable_guc": enable_guc}, "uc": read}


@pytest.mark.parametrize("platform_id, state, vp9_lp", [
    ("8086:9a60", "authenticated", True), ("8086:9a60", "loaded", True),
    ("8086:9a60", "firmware missing", False), ("8086:9a60", "failed", False), ("8086:9a60", "wedged", False),
    ("8086:9a60", "not loaded", False),
    ("8086:46d1", "authenticated", True), ("8086:46d1", "firmware missing", False),
    ("8086:3e92", "authenticated", False), ("8086:3e92", "not loaded", False),  # Gen 9.5: no VP9 encoder at all
])
def test_lp_pairs_follow_the_read_state(platform_id, state, vp9_lp):
    caps = caps_mod.lookup(platform_id)
    pairs = caps_mod.expected_profiles(caps, non_free=True, huc={"huc": state, "source": "debugfs"})
    assert (("VAProfileVP9Profile0", "VAEntrypointEncSliceLP") in pairs) is vp9_lp


def test_unknown_state_falls_back_to_the_parameter_rule():
    caps = caps_mod.lookup("8086:9a60")
    assert caps_mod.huc_loaded(caps, {"huc": "unknown", "enable_guc": 2}) is True
    assert caps_mod.huc_loaded(caps, {"huc": "unknown", "enable_guc": 0}) is False
    assert caps_mod.huc_loaded(caps, {"huc": "unknown", "enable_guc": -1}) is False  # Tiger Lake's default
    assert caps_mod.huc_loaded(caps_mod.lookup("8086:46d1"), {"huc": "unknown", "enable_guc": None}) is True


def test_the_read_state_beats_enable_guc_in_the_verdict():
    # The ThinkPad lists no VP9 low-power encoder. enable_guc=2 alone says HuC should be there: VP9 encode missing.
    assert DIAGNOSIS(_facts(TIGER_LAKE, "8086:9a60", 2), non_free=True)["ok"] is False
    # The kernel says the HuC firmware is missing: VP9 LP is not expected, and the report says why.
    missing = DIAGNOSIS(_facts(TIGER_LAKE, "8086:9a60", 2, _read(debugfs="", log=MISSING_LOG)), non_free=True)
    assert missing["ok"] is True and missing["uc"]["huc"] == "firmware missing"
    assert any("HuC firmware missing" in n and "low-power" in n for n in missing["notes"])
    # HuC authenticated and still no VP9 LP listed: the gap is named with the state read.
    authenticated = DIAGNOSIS(_facts(TIGER_LAKE, "8086:9a60", -1, _read(GT0_AUTHENTICATED)), non_free=True)
    assert authenticated["ok"] is False and "vp9_encode" in authenticated["message"]
    # An explicit huc setting still wins over what was read.
    assert DIAGNOSIS(_facts(TIGER_LAKE, "8086:9a60", 2, _read(GT0_AUTHENTICATED)), non_free=True, huc=False)["ok"]


def test_the_cause_names_the_read_state():
    # Rocket Lake lists VP9 decode only: with HuC authenticated the missing VP9 LP encoder is a gap ...
    caps = caps_mod.lookup("8086:4c8a")
    profiles = parse(_text("huc/vainfo-excerpt-rocketlake-4c8a-vp9-profiles-decode-only-no-encode-entrypoint.txt"))[
        "profiles"]
    gaps = {m["capability"] for m in caps_mod.missing_capabilities(caps, profiles, "iHD", True, _read(GT0_AUTHENTICATED))}
    assert "vp9_encode" in gaps
    # ... with the HuC firmware missing it is not expected at all.
    assert "vp9_encode" not in {m["capability"] for m in caps_mod.missing_capabilities(
        caps, profiles, "iHD", True, _read(debugfs="", log=MISSING_LOG))}
    # Arc encodes in LP mode only: AV1 encode missing is caused by the HuC state the kernel reported.
    arc = parse(_text("vainfo/ihd-arc-a770-23.2.3-display-drm-device-renderD128.txt"))["profiles"]
    arc = {p: e for p, e in arc.items() if "AV1" not in p}
    gaps = {m["capability"]: m for m in caps_mod.missing_capabilities(
        caps_mod.lookup("8086:56a0"), arc, "iHD", True, _read(debugfs="", log=MISSING_LOG))}
    assert "firmware missing, read from kernel log" in gaps["av1_encode"]["cause"]
