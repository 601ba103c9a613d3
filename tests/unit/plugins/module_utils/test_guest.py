# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest: the verdict over vainfo facts built from real vainfo outputs, GPU detection from sysfs lines, node labels."""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import guest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.vainfo import parse

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "vainfo"))
NODE = "/dev/dri/renderD128"
ALL = ["h264_decode", "h264_encode", "hevc_decode", "hevc_encode"]


def _fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return parse(handle.read())


def _facts(*names, hint=None):
    """vainfo facts as vainfo_facts returns them, one render node per fixture."""
    nodes = ["/dev/dri/renderD%d" % (128 + i) for i in range(len(names))]
    return {"render_nodes": nodes, "devices": {}, "results": {n: _fixture(f) for n, f in zip(nodes, names)},
            "available": False, "hint": hint}


def test_no_render_node_is_the_vm_config():
    verdict = guest.diagnose({"render_nodes": [], "devices": {}, "results": {}, "available": False,
                              "hint": "no render node: the VM has no GPU"})
    assert verdict["ok"] is False
    assert verdict["link"] == "VM config"
    assert verdict["message"] == "no render node in the VM: the GPU is not passed through"
    assert verdict["fix"] == "check hostpci0 in the VM config (qm config <vmid>) and `lspci -nnk` in the VM"
    assert verdict["line"] == ("FAIL VM config: no render node in the VM: the GPU is not passed through — fix: "
                               "check hostpci0 in the VM config (qm config <vmid>) and `lspci -nnk` in the VM")
    assert verdict["codecs"]["missing"] == ALL


def test_missing_facts_count_as_no_render_node():
    assert guest.diagnose(None)["link"] == "VM config"


def test_render_node_without_vainfo_names_the_package():
    verdict = guest.diagnose({"render_nodes": [NODE], "results": {}, "hint": "install the `vainfo` package"})
    assert verdict["link"] == "guest driver"
    assert "vainfo is not installed" in verdict["message"]
    assert "vainfo package" in verdict["fix"]


def test_non_free_driver_passes():
    verdict = guest.diagnose(_facts("ihd-23.1.1-nonfree-k3s-node-profile-indent-stripped.txt"))
    assert verdict["ok"] is True and verdict["link"] is None and verdict["fix"] is None
    assert verdict["message"] == "VA-API ok on %s: iHD 23.1.1 with %s" % (NODE, ", ".join(ALL))
    assert verdict["line"].startswith("ok   VA-API ok on")
    assert verdict["node"] == NODE and verdict["driver_version"] == "23.1.1"


def test_free_driver_lacks_hevc_encode():
    verdict = guest.diagnose(_facts("ihd-kabylake-hd630-proxmox-host-21.1.1-free.txt"))
    assert verdict["ok"] is False and verdict["link"] == "guest driver"
    assert verdict["message"] == "VA-API works on %s (iHD 21.1.1) but lacks hevc_encode" % NODE
    assert "intel-media-va-driver-non-free" in verdict["fix"] and "hevc_encode" in verdict["fix"]
    assert verdict["codecs"]["missing"] == ["hevc_encode"]


def test_required_codecs_are_the_callers():
    facts = _facts("ihd-kabylake-hd630-proxmox-host-21.1.1-free.txt")
    assert guest.diagnose(facts, required=["h264_encode", "hevc_decode"])["ok"] is True
    unknown = guest.diagnose(facts, required=["h265_encode"])
    assert unknown["ok"] is False and "h265_encode" in unknown["message"] and "hevc_encode" in unknown["fix"]


def test_i965_is_the_wrong_driver_when_ihd_is_wanted():
    verdict = guest.diagnose(_facts("i965-baytrail-2.4.1-lib64-videoproc-after-vc1.txt"))
    assert verdict["link"] == "guest driver"
    assert verdict["message"] == "libva uses the `i965` driver on %s, not iHD" % NODE
    assert "LIBVA_DRIVER_NAME=iHD" in verdict["fix"]
    # any driver is fine when none is asked for; then the missing HEVC decides
    anything = guest.diagnose(_facts("i965-baytrail-2.4.1-lib64-videoproc-after-vc1.txt"), driver_name=None)
    assert anything["codecs"]["missing"] == ["hevc_decode", "hevc_encode"]


def test_bmc_driver_picked_by_libva():
    verdict = guest.diagnose(_facts("fail-jellyfin-ffmpeg-aspeed-bmc-ast-driver.txt"))
    assert verdict["link"] == "guest driver"
    assert verdict["message"].startswith("libva picked the `ast` driver for %s, not iHD" % NODE)
    assert "LIBVA_DRIVER_NAME=iHD" in verdict["fix"] and "lspci -nnk" in verdict["fix"]


def test_ihd_init_failure_has_no_codecs():
    verdict = guest.diagnose(_facts("fail-ihd-init-failed-gem-aperture-error1.txt"))
    assert verdict["link"] == "guest driver"
    assert verdict["message"].startswith("the iHD driver failed to initialise on %s" % NODE)
    assert verdict["message"].endswith("vainfo reports no codecs")
    assert "intel-media-va-driver-non-free" in verdict["fix"] and "i915" in verdict["fix"]
    assert verdict["codecs"]["missing"] == ALL


def test_no_driver_found():
    verdict = guest.diagnose(_facts("fail-vaGetDriverNames-failed-nvidia-host.txt"), driver_name=None)
    assert verdict["message"].startswith("libva found no VA-API driver for %s" % NODE)
    assert verdict["fix"].startswith("install intel-media-va-driver-non-free")


def test_unopenable_node_is_about_access():
    result = parse("Failed to open the given device!")
    verdict = guest.diagnose({"render_nodes": [NODE], "results": {NODE: result}})
    assert verdict["message"].startswith("vainfo cannot open %s" % NODE)
    assert "render" in verdict["fix"]


def test_first_passing_node_decides():
    facts = _facts("fail-ihd-init-failed-gem-aperture-error1.txt", "ihd-tigerlake-h-gen12-22.3.1-thinkpad-t15p.txt")
    verdict = guest.diagnose(facts)
    assert verdict["ok"] is True and verdict["node"] == "/dev/dri/renderD129"
    assert verdict["nodes"]["/dev/dri/renderD128"]["ok"] is False
    failing = guest.diagnose(_facts("fail-ihd-init-failed-gem-aperture-error1.txt", "fail-vaGetDriverNames-failed-nvidia-host.txt"))
    assert failing["node"] == "/dev/dri/renderD128" and failing["ok"] is False


@pytest.mark.parametrize("text, expected", [
    ("renderD128 0x8086 0x3e92\n", "8086:3e92"),
    ("renderD129 0x1234 0x1111\nrenderD128 0x8086 0x3E92\n", "8086:3e92"),  # numeric order, case folded
    ("renderD128 - -\nrenderD129 0x8086 0x46d1\n", "8086:46d1"),  # vgem first, then the iGPU
    ("renderD128 - -\n", None),
    ("", None),
    ("card0 0x1234 0x1111\n", None),
])
def test_gpu_from_sysfs(text, expected):
    gpu = guest.gpu_from_sysfs(text)
    assert (gpu["pci_id"] if gpu else None) == expected


def test_labels_from_the_detected_gpu():
    gpu = guest.gpu_from_sysfs("renderD128 0x8086 0x3e92")
    result = guest.node_labels(gpu, names={"8086:3E92": "intel-uhd-630"}, cpu_tier="i5-8500t", extra={"media": True},
                               current={"gpu": "old", "cpu-tier": "i5-8500t", "kubernetes.io/os": "linux"})
    assert result["labels"] == {"gpu": "intel-uhd-630", "cpu-tier": "i5-8500t", "media": "True"}
    assert result["changes"] == {"gpu": "intel-uhd-630", "media": "True"}
    assert result["notes"] == []


def test_no_gpu_no_gpu_label():
    result = guest.node_labels(None, names={"8086:3e92": "intel-uhd-630"}, override="forced", cpu_tier="n100",
                               current={"gpu": "intel-uhd-630"})
    assert result["labels"] == {"cpu-tier": "n100"}
    assert result["notes"][0].startswith("no GPU detected")
    assert "still carries gpu=intel-uhd-630" in result["notes"][1]


def test_unknown_gpu_and_override():
    gpu = guest.gpu_from_sysfs("renderD128 0x8086 0x9bc8")
    unknown = guest.node_labels(gpu, names={"8086:3e92": "intel-uhd-630"})
    assert unknown["labels"] == {} and "8086:9bc8 has no name" in unknown["notes"][0]
    forced = guest.node_labels(gpu, names={}, override="intel-uhd-630", gpu_key="example.com/gpu")
    assert forced["labels"] == {"example.com/gpu": "intel-uhd-630"}


def test_unverified_gpu_gets_no_label():
    gpu = guest.gpu_from_sysfs("renderD128 0x8086 0x3e92")
    result = guest.node_labels(gpu, names={"8086:3e92": "intel-uhd-630"}, verified=False)
    assert result["labels"] == {} and "did not pass the checks" in result["notes"][0]


@pytest.mark.parametrize("key, value", [("gpu", "intel uhd 630"), ("gpu", "-x"), ("bad key!", "x"), ("gpu", "x" * 64),
                                        ("Upper.Example/gpu", "x")])
def test_invalid_labels_are_refused(key, value):
    with pytest.raises(ValueError, match="label"):
        guest.node_labels(None, extra={key: value})
