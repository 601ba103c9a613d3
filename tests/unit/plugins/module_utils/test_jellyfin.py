# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest.jellyfin: the settings of Jellyfin's Intel page for a Coffee Lake, an Alder Lake-N and an Arc A380.

Each expectation names the line of https://jellyfin.org/docs/general/post-install/transcoding/hardware-acceleration/intel
it follows; the vainfo profiles are real outputs, the HuC states real debugfs/dmesg pastes read by guest.uc.
"""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import capabilities as caps_mod
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import jellyfin, uc
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.vainfo import parse

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))
GROUP = {"name": "render", "gid": 993}


def _text(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def _profiles(name):
    return parse(_text(name))["profiles"]


AUTHENTICATED = uc.combine(None, uc.parse_kernel_log(
    _text("huc/dmesg-T-grep-GT0-redacted-prompt-pve-huc-authenticated-all-workloads-bang-vf-interface.txt"),
    "0000:00:02.0"))
N100_FAILED = uc.combine(uc.parse_debugfs(_text("huc/guc_info-missing-huc_info-error-debian13-alderlake-n-gt-glob.txt")))
# UHD 630 non-free iHD on a k3s node (Coffee Lake/Comet Lake class output)
COFFEE_LAKE_VAINFO = "vainfo/ihd-23.1.1-nonfree-k3s-node-profile-indent-stripped.txt"
ARC_VAINFO = "vainfo/ihd-arc-a770-23.2.3-display-drm-device-renderD128.txt"


def test_coffee_lake_uhd630_default_huc_not_loaded():
    result = jellyfin.settings(caps_mod.lookup("8086:3e92"), _profiles(COFFEE_LAKE_VAINFO), None,
                               "/dev/dri/renderD128", GROUP)
    enc = result["encoding"]
    # "Acceleration Methods": QSV preferred on Broadwell and newer
    assert enc["HardwareAccelerationType"] == "qsv" and enc["VaapiDevice"] == "/dev/dri/renderD128"
    # "Transcode HEVC": HEVC 8/10-bit from Gen 9.5; "Transcode AV1": AV1 decode from Gen 12 only
    assert {"h264", "hevc"} <= set(enc["HardwareDecodingCodecs"]) and "av1" not in enc["HardwareDecodingCodecs"]
    assert enc["EnableDecodingColorDepth10Hevc"] is True
    # "LP Mode System Support": Linux runs LP by default only on Gen 12 ADL+; a Gen 9.5 without enable_guc=2 has no
    # HuC, so the LP encoder stays off while the PAK encoders encode H.264 and HEVC
    assert enc["EnableIntelLowPowerH264HwEncoder"] is False and enc["EnableIntelLowPowerHevcHwEncoder"] is False
    assert enc["EnableHardwareEncoding"] is True and enc["AllowHevcEncoding"] is True and enc["AllowAv1Encoding"] is False
    # "Tone-mapping Methods": every GPU with HEVC 10-bit decoding
    assert enc["EnableTonemapping"] is True and enc["EnableVppTonemapping"] is False
    assert result["supplemental_groups"] == [993] and result["render_group"] == GROUP
    assert any("HuC is not loaded" in n and "i915.enable_guc=2" in n for n in result["notes"])
    assert any("MediaSDK" in n for n in result["notes"])


def test_coffee_lake_with_huc_authenticated_gets_lp_h264_only():
    enc = jellyfin.settings(caps_mod.lookup("8086:3e92"), _profiles(COFFEE_LAKE_VAINFO), AUTHENTICATED)["encoding"]
    # "LP Mode Hardware Support": Gen 9.x LP encoding is H.264 only
    assert enc["EnableIntelLowPowerH264HwEncoder"] is True and enc["EnableIntelLowPowerHevcHwEncoder"] is False


@pytest.mark.parametrize("huc, lp", [(None, True), (AUTHENTICATED, True), (N100_FAILED, False)])
def test_alder_lake_n_lp_only_with_huc(huc, lp):
    result = jellyfin.settings(caps_mod.lookup("8086:46d1"), None, huc, "/dev/dri/renderD129", GROUP)
    enc = result["encoding"]
    # "LP Mode System Support": Gen 12 ADL+ loads HuC by default; N100 without firmware (HuC ERROR) must not use LP
    assert enc["EnableIntelLowPowerH264HwEncoder"] is lp and enc["EnableIntelLowPowerHevcHwEncoder"] is lp
    # "LP Mode Hardware Support": Gen 12 has both modes, so encoding stays on without HuC
    assert enc["EnableHardwareEncoding"] is True and enc["AllowHevcEncoding"] is True
    # "Transcode AV1": Gen 12 decodes AV1, encodes it only from DG2/MTL
    assert "av1" in enc["HardwareDecodingCodecs"] and enc["AllowAv1Encoding"] is False
    # the second GPU's node, as the page says for renderD129
    assert enc["VaapiDevice"] == "/dev/dri/renderD129"
    assert result["huc"]["loaded"] is lp
    if huc is N100_FAILED:
        assert "failed, read from debugfs" in result["huc"]["judged_by"]


def test_arc_a380_lp_only():
    caps = caps_mod.lookup("8086:56a5")
    assert caps["platform"] == "alchemist"
    enc = jellyfin.settings(caps, _profiles(ARC_VAINFO), None)["encoding"]
    # "ARC GPU Support": LP encoding is used by default on Arc; "Encoding AV1": Gen 12.5 DG2 / Arc A-series
    assert enc["EnableIntelLowPowerH264HwEncoder"] is True and enc["EnableIntelLowPowerHevcHwEncoder"] is True
    assert enc["AllowAv1Encoding"] is True and enc["EnableHardwareEncoding"] is True
    assert {"h264", "hevc", "vp9", "av1"} <= set(enc["HardwareDecodingCodecs"])


def test_arc_a380_without_huc_encodes_nothing_in_hardware():
    # "LP Mode Hardware Support": DG2/Arc A-series only support LP mode; LP needs HuC ("GuC & HuC firmware can be
    # missing on older distros")
    missing = {"huc": "firmware missing", "source": "kernel log"}
    result = jellyfin.settings(caps_mod.lookup("8086:56a5"), _profiles(ARC_VAINFO), missing)
    enc = result["encoding"]
    encoders = ("EnableHardwareEncoding", "EnableIntelLowPowerH264HwEncoder", "EnableIntelLowPowerHevcHwEncoder",
                "AllowHevcEncoding", "AllowAv1Encoding")
    assert not any(enc[k] for k in encoders)
    assert enc["HardwareDecodingCodecs"]  # decoding does not need HuC
    assert any("low-power mode only" in n for n in result["notes"])


def test_decoders_not_listed_by_vainfo_stay_off():
    profiles = {p: e for p, e in _profiles(ARC_VAINFO).items() if not p.startswith("VAProfileVP9")}
    result = jellyfin.settings(caps_mod.lookup("8086:56a5"), profiles, None)
    assert "vp9" not in result["encoding"]["HardwareDecodingCodecs"]
    assert any(n.startswith("VP9 decode:") for n in result["notes"])


def test_unknown_gpu_prescribes_nothing():
    result = jellyfin.settings(None, {}, None, "/dev/dri/renderD128", GROUP)
    assert result["encoding"] is None and result["supplemental_groups"] == [993]
