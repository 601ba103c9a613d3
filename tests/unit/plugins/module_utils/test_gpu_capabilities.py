# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_capabilities: the generation table over real device ids, expected_profiles against real vainfo outputs."""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import capabilities as caps_mod
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.vainfo import parse

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "vainfo"))

README = "intel/media-driver:README.md"
FEATURES = "intel/media-driver:docs/media_features.md"
JELLYFIN = "jellyfin/jellyfin.org:docs/general/post-install/transcoding/hardware-acceleration/intel.md"

# (pci id, platform, generation, source the row cites, the fact checked, [codec, decode, encode])
TABLE = [
    # UHD 630 desktop ids: INTEL_CFL_S_GT2_IDS; Gen 9.x low power is H.264 only (Jellyfin LP Mode Hardware Support)
    ("8086:3e92", "coffeelake", "9.5", README, ("hevc", True, "full")),
    ("8086:3E91", "coffeelake", "9.5", README, ("h264", True, "both")),
    ("8086:3e98", "coffeelake", "9.5", README, ("av1", False, "no")),
    # UHD 630 Comet Lake: INTEL_CML_GT2_IDS
    ("8086:9bc5", "cometlake", "9.5", README, ("hevc10", True, "full")),
    ("8086:9bc8", "cometlake", "9.5", README, ("vp9", True, "no")),
    # HD 630 Kaby Lake: INTEL_KBL_GT2_IDS
    ("8086:5912", "kabylake", "9.5", README, ("av1", False, "no")),
    # Skylake HD 530: no HEVC 10-bit (Jellyfin: 6th gen lacks 10-bit)
    ("8086:1912", "skylake", "9", README, ("hevc10", False, "no")),
    ("8086:5a85", "apollolake", "9", README, ("hevc10", True, "no")),
    ("8086:3185", "geminilake", "9.5", JELLYFIN, ("hevc10", True, "full")),
    ("8086:8a52", "icelake", "11", README, ("hevc", True, "both")),
    ("8086:4e61", "jasperlake", "11", README, ("h264", True, "lp")),
    ("8086:4571", "elkhartlake", "11", README, ("av1", False, "no")),
    # Gen 12: AV1 decode (Jellyfin Transcode AV1), no AV1 encode before DG2/MTL
    ("8086:9a49", "tigerlake", "12", README, ("av1", True, "no")),
    ("8086:4c8a", "rocketlake", "12", README, ("av1", True, "no")),
    ("8086:4680", "alderlake-s", "12", README, ("av1", True, "no")),
    ("8086:46a6", "alderlake-p", "12", README, ("hevc", True, "both")),
    # N100/N95/N305: INTEL_ADLN_IDS
    ("8086:46d0", "alderlake-n", "12", README, ("av1", True, "no")),
    ("8086:46d1", "alderlake-n", "12", README, ("av1", True, "no")),
    ("8086:46d2", "alderlake-n", "12", README, ("vp9", True, "lp")),
    ("8086:46d3", "alderlake-n", "12", README, ("hevc10", True, "both")),
    ("8086:46d4", "alderlake-n", "12", README, ("h264", True, "both")),
    ("8086:a780", "raptorlake-s", "12", README, ("av1", True, "no")),
    ("8086:a7a0", "raptorlake-p", "12", README, ("av1", True, "no")),
    # Arc A770 / A380: INTEL_DG2_IDS; AV1 encode, LP only
    ("8086:56a0", "alchemist", "12.5", FEATURES, ("av1", True, "lp")),
    ("8086:56a5", "alchemist", "12.5", FEATURES, ("h264", True, "lp")),
    ("8086:7d55", "meteorlake", "12.7", FEATURES, ("av1", True, "lp")),
    ("8086:7d51", "arrowlake", "12.7", FEATURES, ("vp9", True, "lp")),
    ("8086:64a0", "lunarlake", "20", FEATURES, ("vp9", True, "no")),
    # Arc B580: INTEL_BMG_IDS
    ("8086:e20b", "battlemage", "20", FEATURES, ("av1", True, "lp")),
    ("8086:e20c", "battlemage", "20", FEATURES, ("hevc", True, "lp")),
]


def _vainfo(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return parse(handle.read())


def _without(profiles, prefix):
    return {p: e for p, e in profiles.items() if not p.startswith(prefix)}


@pytest.mark.parametrize("pci_id, platform, generation, source, fact", TABLE)
def test_table_over_real_ids(pci_id, platform, generation, source, fact):
    caps = caps_mod.lookup(pci_id)
    assert caps["platform"] == platform
    assert caps["generation"] == generation
    assert caps["vendor"] == "intel"
    assert source in caps["source"]
    assert "i915_pciids.h" in caps["ids_source"]
    codec, decode, encode = fact
    assert caps["codecs"][codec] == {"decode": decode, "encode": encode}
    assert set(caps["codecs"]) >= {"h264", "hevc", "hevc10", "vp9", "av1"}
    assert caps["name"].startswith("Intel ")


@pytest.mark.parametrize("pci_id", ["8086:0000", "10de:1c82", "1234:1111", "8086:0412", "", None, "garbage", "8086:5a40"])
def test_unknown_ids_are_none(pci_id):
    # 8086:0412 is Haswell and 8086:5a40 Cannon Lake: real ids, but not in the table
    assert caps_mod.lookup(pci_id) is None
    assert caps_mod.expected_profiles(None) == []


def test_generation_facts():
    for pci_id, _p, generation, _s, _f in TABLE:
        caps = caps_mod.lookup(pci_id)
        codecs = caps["codecs"]
        if generation.startswith("9"):
            # Gen 9.x low power encode is H.264 only, and there is no AV1
            assert [c for c, v in codecs.items() if v["encode"] in ("lp", "both")] == ["h264"]
            assert codecs["av1"] == {"decode": False, "encode": "no"}
        if generation in ("12", "12.5", "12.7", "20"):
            assert codecs["av1"]["decode"] is True
        if generation in ("12.5", "12.7", "20"):
            assert codecs["av1"]["encode"] == "lp"
            assert all(v["encode"] in ("lp", "no") for v in codecs.values())


def test_gen9_expected_profiles_have_no_lp_hevc():
    pairs = caps_mod.expected_profiles(caps_mod.lookup("8086:3e92"), non_free=True)
    assert ("VAProfileH264High", "VAEntrypointEncSliceLP") in pairs
    assert ("VAProfileHEVCMain", "VAEntrypointEncSlice") in pairs
    assert ("VAProfileHEVCMain", "VAEntrypointEncSliceLP") not in pairs
    assert not [p for p in pairs if p[0].startswith("VAProfileAV1")]


@pytest.mark.parametrize("fixture, pci_id", [
    ("ihd-kabylake-hd630-proxmox-host-21.1.1-free.txt", "8086:5912"),
    ("ihd-cometlake-uhd610-22.5.2-wayland-x11-drm-fallback.txt", "8086:9ba8"),
    ("ihd-23.1.1-nonfree-k3s-node-profile-indent-stripped.txt", "8086:3e92"),
    ("ihd-tigerlake-h-gen12-22.3.1-thinkpad-t15p.txt", "8086:9a60"),
    ("ihd-arc-a770-23.2.3-display-drm-device-renderD128.txt", "8086:56a0"),
])
def test_real_outputs_list_every_expected_pair(fixture, pci_id):
    result = _vainfo(fixture)
    caps = caps_mod.lookup(pci_id)
    expected = caps_mod.expected_profiles(caps)
    assert expected
    assert set(expected) <= caps_mod.listed_pairs(result["profiles"])
    assert caps_mod.missing_capabilities(caps, result["profiles"], result["driver_name"]) == []


def test_non_free_build_outputs_pass_the_non_free_expectation():
    for fixture, pci_id in [("ihd-cometlake-uhd610-22.5.2-wayland-x11-drm-fallback.txt", "8086:9ba8"),
                            ("ihd-23.1.1-nonfree-k3s-node-profile-indent-stripped.txt", "8086:3e92")]:
        result = _vainfo(fixture)
        assert caps_mod.missing_capabilities(caps_mod.lookup(pci_id), result["profiles"], "iHD", non_free=True) == []


def test_free_build_lacks_hevc_encode_and_names_the_non_free_driver():
    result = _vainfo("ihd-kabylake-hd630-proxmox-host-21.1.1-free.txt")
    missing = caps_mod.missing_capabilities(caps_mod.lookup("8086:5912"), result["profiles"], "iHD", non_free=True)
    by_name = {m["capability"]: m for m in missing}
    assert sorted(by_name) == ["h264_encode", "hevc10_encode", "hevc_encode"]
    assert by_name["hevc_encode"]["partial"] is False
    assert by_name["h264_encode"]["partial"] is True  # low-power H.264 is there
    assert "intel-media-va-driver-non-free" in by_name["hevc_encode"]["fix"]
    assert "free build" in by_name["hevc_encode"]["cause"]


def test_arc_without_av1_names_av1_and_the_firmware():
    result = _vainfo("ihd-arc-a770-23.2.3-display-drm-device-renderD128.txt")
    profiles = _without(result["profiles"], "VAProfileAV1")
    missing = caps_mod.missing_capabilities(caps_mod.lookup("8086:56a0"), profiles, "iHD")
    assert [m["capability"] for m in missing] == ["av1_decode", "av1_encode"]
    assert missing[0]["missing"] == ["VAProfileAV1Profile0/VAEntrypointVLD"]
    assert "newer intel-media-va-driver-non-free" in missing[0]["fix"]
    assert "HuC" in missing[1]["cause"]
    assert "firmware" in missing[1]["fix"]


def test_n100_output_without_av1_decode_fails_naming_av1():
    # An N100 lists what a Tiger Lake lists (same Gen 12 media engine); drop AV1 as an old driver would.
    result = _vainfo("ihd-tigerlake-h-gen12-22.3.1-thinkpad-t15p.txt")
    caps = caps_mod.lookup("8086:46d1")
    assert caps_mod.missing_capabilities(caps, result["profiles"], "iHD", huc=False) == []
    missing = caps_mod.missing_capabilities(caps, _without(result["profiles"], "VAProfileAV1"), "iHD", huc=False)
    assert [m["capability"] for m in missing] == ["av1_decode"]
    assert "AV1" in missing[0]["cause"]


def test_vp9_lp_encode_counts_only_with_huc():
    caps = caps_mod.lookup("8086:9a49")  # Tiger Lake: i915 does not load HuC by default
    assert caps["firmware"]["param"] == "i915.enable_guc=2"
    assert ("VAProfileVP9Profile0", "VAEntrypointEncSliceLP") not in caps_mod.expected_profiles(caps)
    assert ("VAProfileVP9Profile0", "VAEntrypointEncSliceLP") in caps_mod.expected_profiles(caps, huc=True)
    result = _vainfo("ihd-tigerlake-h-gen12-22.3.1-thinkpad-t15p.txt")
    missing = caps_mod.missing_capabilities(caps, result["profiles"], "iHD", huc=True)
    assert [m["capability"] for m in missing] == ["vp9_encode"]
    assert "i915.enable_guc=2" in missing[0]["fix"]
    # N100 (ADL-N) loads HuC by default, so its VP9 low-power encoder is expected
    assert ("VAProfileVP9Profile0", "VAEntrypointEncSliceLP") in caps_mod.expected_profiles(caps_mod.lookup("8086:46d0"))


def test_battlemage_uses_xe_and_no_enable_guc():
    caps = caps_mod.lookup("8086:e20b")
    assert caps["kernel_driver"] == "xe"
    assert caps["firmware"]["param"] is None
    missing = caps_mod.missing_capabilities(caps, {}, "iHD")
    encode = [m for m in missing if m["kind"] == "encode"]
    assert encode and all("enable_guc" not in m["fix"] for m in encode)


def test_i965_is_named_as_the_cause():
    result = _vainfo("i965-baytrail-2.4.1-lib64-videoproc-after-vc1.txt")
    missing = caps_mod.missing_capabilities(caps_mod.lookup("8086:3e92"), result["profiles"], result["driver_name"])
    assert missing
    assert all("LIBVA_DRIVER_NAME=iHD" in m["fix"] for m in missing)


def test_offered_reads_modes_from_vainfo():
    offered = caps_mod.offered(_vainfo("ihd-tigerlake-h-gen12-22.3.1-thinkpad-t15p.txt")["profiles"])
    assert offered["h264"] == {"decode": True, "encode": "both"}
    assert offered["av1"] == {"decode": True, "encode": "no"}
    assert caps_mod.offered(_vainfo("ihd-arc-a770-23.2.3-display-drm-device-renderD128.txt")["profiles"])["av1"] == {
        "decode": True, "encode": "lp"}


def test_every_listed_id_belongs_to_one_platform():
    seen = {}
    for platform, ids in caps_mod.DEVICE_IDS.items():
        for device in ids.split():
            assert device not in seen, (device, platform, seen.get(device))
            seen[device] = platform
    assert set(caps_mod.DEVICE_IDS) == set(caps_mod.PLATFORMS)
