# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vainfo.parse against real vainfo output (tests/unit/fixtures/vainfo) and odd input."""

import json
import os
import random

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.vainfo import codec_report, parse

FIXTURE_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "vainfo")

with open(os.path.join(FIXTURE_DIR, "expected.json"), encoding="utf-8") as handle:
    EXPECTED = json.load(handle)

FIXTURES = sorted(name for name in os.listdir(FIXTURE_DIR) if name.endswith(".txt"))

CONTRACT_KEYS = {
    "status",
    "va_api_version",
    "driver",
    "driver_name",
    "driver_version",
    "profiles",
    "h264_encode",
    "hevc_encode",
    "h264_decode",
    "hevc_decode",
    "error_code",
    "error",
}

# expected.json keeps the names of the expectation tables; these are the same facts under the contract's names.
RENAMED = {"driver_string": "driver", "error_message": "error", "hevc_main_encode": "hevc_encode"}


def read(name):
    with open(os.path.join(FIXTURE_DIR, name), encoding="utf-8") as handle:
        return handle.read()


def expected_fields(name):
    """(parse key, expected value) for every field the expectation gives for this fixture."""
    fields = []
    for key, value in EXPECTED[name].items():
        fields.append((RENAMED.get(key, key), value))
    profiles = EXPECTED[name]["profiles"]
    # Decode facts are not in the tables; they follow from the transcribed profiles:
    # any H.264 profile with VLD, and VAProfileHEVCMain with VLD.
    h264 = any("VAEntrypointVLD" in eps for prof, eps in profiles.items() if prof.startswith("VAProfileH264"))
    fields.append(("h264_decode", h264))
    fields.append(("hevc_decode", "VAEntrypointVLD" in profiles.get("VAProfileHEVCMain", [])))
    return fields


def test_every_fixture_has_an_expectation():
    assert FIXTURES, "no vainfo fixtures found"
    assert sorted(EXPECTED) == FIXTURES


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_matches_every_expected_field(name):
    result = parse(read(name))
    mismatches = {}
    for key, want in expected_fields(name):
        got = result.get(key, "<missing key>")
        if got != want:
            mismatches[key] = {"got": got, "want": want}
    assert mismatches == {}


@pytest.mark.parametrize("name", FIXTURES)
def test_contract_keys_and_types(name):
    result = parse(read(name))
    assert set(result) >= CONTRACT_KEYS
    assert result["status"] in ("ok", "failed")
    assert isinstance(result["profiles"], dict)
    for key in ("h264_encode", "hevc_encode", "h264_decode", "hevc_decode"):
        assert isinstance(result[key], bool)
    assert result["error_code"] is None or isinstance(result["error_code"], int)
    if result["status"] == "ok":
        assert result["error"] is None
    else:
        assert isinstance(result["error"], str) and result["error"]


@pytest.mark.parametrize("name", FIXTURES)
def test_profile_order_is_first_appearance(name):
    profiles = parse(read(name))["profiles"]
    assert list(profiles) == list(EXPECTED[name]["profiles"])
    for profile, entrypoints in profiles.items():
        assert entrypoints == EXPECTED[name]["profiles"][profile]


# ---------------------------------------------------------------- never raises


def assert_parsed_cleanly(result):
    assert result["status"] in ("ok", "failed")
    assert set(result) >= CONTRACT_KEYS
    # parse() has a last-resort guard that turns an internal exception into this message; it must not fire.
    assert not (result["error"] or "").startswith("could not parse")


@pytest.mark.parametrize("name", FIXTURES)
def test_every_prefix_parses(name):
    text = read(name)
    full = parse(text)["profiles"]
    for end in range(len(text) + 1):
        result = parse(text[:end])
        assert_parsed_cleanly(result)
        if end == len(text) or text[end] == "\n":
            # Cut at a line end: the profiles seen so far are the start of the full list.
            assert list(result["profiles"]) == list(full)[: len(result["profiles"])]
            for profile, entrypoints in result["profiles"].items():
                assert entrypoints == full[profile][: len(entrypoints)]


@pytest.mark.parametrize("name", FIXTURES)
def test_every_suffix_parses(name):
    # Pastes lose their first characters as often as their last ones.
    text = read(name)
    for start in range(len(text) + 1):
        assert_parsed_cleanly(parse(text[start:]))


@pytest.mark.parametrize("seed", range(40))
def test_random_line_drops_and_garbage(seed):
    rng = random.Random(seed)
    name = FIXTURES[seed % len(FIXTURES)]
    lines = read(name).splitlines()
    kept = [line for line in lines if rng.random() > 0.3]
    for _attempt in range(5):
        kept.insert(rng.randrange(len(kept) + 1), "".join(chr(rng.randrange(0, 0x2FF)) for _char in range(rng.randrange(40))))
    result = parse("\n".join(kept))
    assert_parsed_cleanly(result)
    # Nothing is invented: every parsed profile occurs in the original text.
    for profile in result["profiles"]:
        assert profile in read(name)


@pytest.mark.parametrize("value", [None, b"vainfo: VA-API version: 1.20 (libva 2.20.1)\n", 42, "", "\n\n\n", "[...]", ":" * 50, "\x00\xff"])
def test_odd_values_do_not_raise(value):
    assert_parsed_cleanly(parse(value))


def test_bytes_are_decoded():
    result = parse(b"vainfo: VA-API version: 1.20 (libva 2.20.1)\n")
    assert result["status"] == "ok"
    assert result["va_api_version"] == "1.20"


def test_empty_output_is_a_failure_with_a_message():
    result = parse("")
    assert result["status"] == "failed"
    assert result["error_code"] is None
    assert "no VA-API version" in result["error"]


# ---------------------------------------------------------------- formats seen in the wild

HEADER = (
    "libva info: VA-API version 1.20.0\n"
    "libva info: Trying to open /usr/lib/x86_64-linux-gnu/dri/iHD_drv_video.so\n"
    "libva info: Found init function __vaDriverInit_1_20\n"
    "libva info: va_openDriver() returns 0\n"
    "vainfo: VA-API version: 1.20 (libva 2.12.0)\n"
    "vainfo: Driver version: Intel iHD driver for Intel(R) Gen Graphics - 23.4.3 ()\n"
    "vainfo: Supported profile and entrypoints\n"
)


@pytest.mark.parametrize("separator", ["\t", " ", "    ", " \t"])
@pytest.mark.parametrize("indent", ["", "      ", "\t"])
def test_separator_and_indent_variants(separator, indent):
    body = "".join(
        "%s%-32s:%s%s\n" % (indent, profile, separator, entry)
        for profile, entry in [
            ("VAProfileH264ConstrainedBaseline", "VAEntrypointVLD"),
            ("VAProfileHEVCMain", "VAEntrypointVLD"),
            ("VAProfileHEVCMain", "VAEntrypointEncSliceLP"),
        ]
    )
    result = parse(HEADER + body)
    assert result["status"] == "ok"
    assert result["profiles"] == {
        "VAProfileH264ConstrainedBaseline": ["VAEntrypointVLD"],
        "VAProfileHEVCMain": ["VAEntrypointVLD", "VAEntrypointEncSliceLP"],
    }
    assert result["hevc_encode"] is True
    assert result["h264_encode"] is False
    assert result["h264_decode"] is True
    assert result["unrecognized_lines"] == []


def test_fei_alone_is_not_encode():
    result = parse(HEADER + "VAProfileH264Main : VAEntrypointFEI\nVAProfileHEVCMain : VAEntrypointFEI\n")
    assert result["profiles"]["VAProfileH264Main"] == ["VAEntrypointFEI"]
    assert result["h264_encode"] is False
    assert result["hevc_encode"] is False
    assert result["h264_decode"] is False


def test_hevc_encode_needs_exactly_the_main_profile():
    result = parse(HEADER + "VAProfileHEVCMain10 : VAEntrypointEncSlice\nVAProfileHEVCMain : VAEntrypointVLD\n")
    assert result["hevc_encode"] is False
    assert result["hevc_decode"] is True


def test_vainitialize_error_glued_mid_line():
    text = (
        "libva info: VA-API version 1.17.0\n"
        "libva info: Trying to open /usr/lib/x86_64-linux-gnu/dri/iHD_drv_video.so\n"
        "libva info: va_openDriver() returns -1vaInitialize failed with error code -1 (unknown libva error),exit\n"
    )
    result = parse(text)
    assert result["status"] == "failed"
    assert result["error_code"] == -1
    assert result["error"] == "unknown libva error"
    assert result["open_returns"] == [-1]
    assert result["unrecognized_lines"] == []


def test_lines_glued_together_are_split():
    text = (
        "libva info: VA-API version 1.14.0libva info: va_openDriver() returns 0"
        "vainfo: VA-API version: 1.14 (libva 2.12.0)vainfo: Driver version: Intel i965 driver for Intel(R) Coffee Lake - 2.4.1\n"
        "      VAProfileH264Main               : VAEntrypointVLD      VAProfileH264Main               : VAEntrypointEncSlice\n"
        "error: can't connect to X server!VAProfileHEVCMain : VAEntrypointVLD\n"
    )
    result = parse(text)
    assert result["status"] == "ok"
    assert result["libva_info_version"] == "1.14.0"
    assert result["va_api_version"] == "1.14"
    assert result["driver_name"] == "i965"
    assert result["i965_platform"] == "Coffee Lake"
    assert result["profiles"] == {
        "VAProfileH264Main": ["VAEntrypointVLD", "VAEntrypointEncSlice"],
        "VAProfileHEVCMain": ["VAEntrypointVLD"],
    }
    assert result["error_lines"] == ["error: can't connect to X server!"]


def test_truncated_first_characters_and_elisions():
    text = (
        "ibva info: VA-API version 1.17.0\n"
        "info: va_openDriver() returns 0\n"
        "ainfo: VA-API version: 1.17 (libva 2.12.0)\n"
        "nfo: Driver version: Intel iHD driver for Intel(R) Gen Graphics - 23.1.1 ()\n"
        "[...]\n"
        "ProfileH264Main : VAEntrypointVLD\n"
        "      VAProfileHEVCMain               : VAEntrypointEncSlice\n"
        "      [...]\n"
    )
    result = parse(text)
    assert result["status"] == "ok"
    assert result["libva_info_version"] == "1.17.0"
    assert result["va_api_version"] == "1.17"
    assert result["driver_name"] == "iHD"
    assert result["driver_version"] == "23.1.1"
    assert result["hevc_encode"] is True
    # The damaged profile line has no "VAProfile" left, so it is kept as unrecognised, not guessed.
    assert "ProfileH264Main : VAEntrypointVLD" in result["unrecognized_lines"]
    assert "[...]" in result["unrecognized_lines"]


def test_crlf_line_endings():
    result = parse((HEADER + "VAProfileH264Main : VAEntrypointEncSliceLP\n").replace("\n", "\r\n"))
    assert result["h264_encode"] is True
    assert result["driver"] == "Intel iHD driver for Intel(R) Gen Graphics - 23.4.3 ()"


def test_vainfo_all_style_pairs():
    result = parse(HEADER + "VAProfileH264High/VAEntrypointEncSlice\n    VAConfigAttribRTFormat         : VA_RT_FORMAT_YUV420\n")
    assert result["profiles"] == {"VAProfileH264High": ["VAEntrypointEncSlice"]}
    assert result["h264_encode"] is True


@pytest.mark.parametrize(
    "line, message",
    [
        ("error: failed to initialize display 'drm'", "failed to initialize display 'drm'"),
        ("Failed to open the given device!", "Failed to open the given device!"),
        ("Failed to a DRM display for the given device", "Failed to a DRM display for the given device"),
    ],
)
def test_display_failures(line, message):
    result = parse("Trying display: drm\n" + line + "\n")
    assert result["status"] == "failed"
    assert result["error"] == message
    assert result["error_code"] is None
    assert result["display_attempts"] == ["drm"]


def test_query_error_after_driver_line_is_a_failure():
    result = parse(HEADER + "vaQueryConfigProfiles failed with error code 2 (resource allocation failed),exit\n")
    assert result["status"] == "failed"
    assert result["error_code"] == 2
    assert result["error"] == "resource allocation failed"
    assert result["driver_name"] == "iHD"


def test_libva_error_without_vainitialize_line():
    result = parse("libva info: VA-API version 1.20.0\nlibva error: vaGetDriverNames() failed with unknown libva error\n")
    assert result["status"] == "failed"
    assert result["error"] == "vaGetDriverNames() failed with unknown libva error"
    assert result["error_code"] is None


@pytest.mark.parametrize(
    "driver, name, version",
    [
        ("VA-API NVDEC driver [direct backend]", "nvidia", None),
        ("Splitted-Desktop Systems VDPAU backend for VA-API - 0.7.4", "vdpau", "0.7.4"),
        (
            "Mesa Gallium driver 24.0.5-1ubuntu1 for AMD Radeon Graphics (radeonsi, renoir, LLVM 17.0.6, DRM 3.57, 6.8.0-31-generic)",
            "radeonsi",
            "24.0.5-1ubuntu1",
        ),
        ("Mesa Gallium driver 23.0.4 for NV118", "nouveau", "23.0.4"),
        ("Intel iHD driver for Intel(R) Gen Graphics - 24.1.0 (2e67b48)", "iHD", "24.1.0"),
        ("Intel i965 driver for Intel(R) CherryView - 2.4.0.pre1 (2.3.0-11-g9a0d2a7)", "i965", "2.4.0.pre1"),
        ("Intel iHD driver for Intel(R) Gen Graphics", "iHD", None),
        ("Something else entirely", None, None),
    ],
)
def test_driver_strings(driver, name, version):
    result = parse("vainfo: VA-API version: 1.20 (libva 2.20.1)\nvainfo: Driver version: %s\n" % driver)
    assert result["status"] == "ok"
    assert result["driver"] == driver
    assert result["driver_name"] == name
    assert result["driver_version"] == version


def test_opened_library_names_the_driver():
    text = (
        "libva info: Trying to open /usr/lib/x86_64-linux-gnu/dri/r600_drv_video.so\n"
        "libva info: va_openDriver() returns 0\n"
        "vainfo: Driver version: Mesa Gallium driver 22.3.6 for AMD CEDAR (DRM 2.50.0, 6.1.0-18-amd64, LLVM 15.0.6)\n"
    )
    result = parse(text)
    assert result["driver_name"] == "r600"
    assert result["mesa_gpu"] == "AMD CEDAR"


def test_ast_driver_is_reported_as_tried_not_as_driver():
    result = parse(read("fail-jellyfin-ffmpeg-aspeed-bmc-ast-driver.txt"))
    assert result["driver_name"] is None
    assert set(result["drivers_attempted_names"]) == {"ast"}


# ---------------------------------------------------------------- codec_report


@pytest.mark.parametrize("name", FIXTURES)
def test_codec_report_default_follows_the_parse(name):
    parsed = parse(read(name))
    report = codec_report(parsed)
    wanted = ["h264_decode", "h264_encode", "hevc_decode", "hevc_encode"]
    # Both lists keep the order of the request.
    assert report["missing"] == [c for c in wanted if c in report["missing"]]
    assert report["present"] == [c for c in wanted if c in report["present"]]
    assert sorted(report["missing"] + report["present"]) == sorted(wanted)
    for capability in wanted:
        assert (capability in report["present"]) == (parsed["status"] == "ok" and parsed[capability])
    assert report["ok"] == (not report["missing"])


def test_codec_report_free_ihd_lacks_hevc_encode():
    report = codec_report(parse(read("ihd-kabylake-hd630-proxmox-host-21.1.1-free.txt")))
    assert report == {"ok": False, "present": ["h264_decode", "h264_encode", "hevc_decode"], "missing": ["hevc_encode"], "unknown": []}


def test_codec_report_lp_only_arc_has_everything():
    report = codec_report(parse(read("ihd-arc-a770-23.2.3-display-drm-device-renderD128.txt")), ["hevc_encode", "av1_encode"])
    assert report == {"ok": True, "present": ["hevc_encode", "av1_encode"], "missing": [], "unknown": []}


def test_codec_report_failed_run_has_nothing():
    report = codec_report(parse(read("fail-docker-ubuntu2004-ihd-init-failed-error1.txt")), ["h264_decode"])
    assert report["missing"] == ["h264_decode"]
    assert report["ok"] is False


def test_codec_report_unknown_names():
    report = codec_report(parse(read("ihd-tigerlake-h-gen12-22.3.1-thinkpad-t15p.txt")), ["h264_encode", "vp9_encode"])
    assert report["unknown"] == ["vp9_encode"]
    assert report["present"] == ["h264_encode"]
    assert report["ok"] is False


def test_codec_report_accepts_a_single_name_and_junk_input():
    assert codec_report(parse(read("ihd-tigerlake-h-gen12-22.3.1-thinkpad-t15p.txt")), "av1_decode")["ok"] is True
    assert codec_report(None, ["h264_decode"])["missing"] == ["h264_decode"]


def test_non_utf8_output_is_parsed_with_replacement():
    with open(os.path.join(FIXTURE_DIR, "ihd-23.1.1-nonfree-k3s-node-profile-indent-stripped.txt"), "rb") as handle:
        data = handle.read()
    result = parse(data.replace(b"VAProfileNone", b"VAProfile\xffNone", 1) + b"\n\xfe\xff junk \x80\n")
    assert result["status"] == "ok" and result["h264_decode"] is True
