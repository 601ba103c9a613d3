# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest: the verdict over vainfo facts built from real vainfo outputs, GPU detection from sysfs lines, node labels."""

import os

import pytest
import sysfs_builder
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import verdict as guest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.vainfo import parse

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
    assert verdict["link"] == "vm_config"
    assert verdict["message"] == "no render node in the VM: the GPU is not passed through"
    assert verdict["fix"] == "check hostpci0 in the VM config (qm config <vmid>) and `lspci -nnk` in the VM"
    assert verdict["line"] == ("FAIL VM config: no render node in the VM: the GPU is not passed through — fix: "
                               "check hostpci0 in the VM config (qm config <vmid>) and `lspci -nnk` in the VM")
    assert verdict["codecs"]["missing"] == ALL


def test_missing_facts_count_as_no_render_node():
    assert guest.diagnose(None)["link"] == "vm_config"


def test_render_node_without_vainfo_names_the_package():
    verdict = guest.diagnose({"render_nodes": [NODE], "results": {}, "hint": "install the `vainfo` package"})
    assert verdict["link"] == "guest_driver"
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
    assert verdict["ok"] is False and verdict["link"] == "guest_driver"
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
    assert verdict["link"] == "guest_driver"
    assert verdict["message"] == "libva uses the `i965` driver on %s, not iHD" % NODE
    assert "LIBVA_DRIVER_NAME=iHD" in verdict["fix"]
    # any driver is fine when none is asked for; then the missing HEVC decides
    anything = guest.diagnose(_facts("i965-baytrail-2.4.1-lib64-videoproc-after-vc1.txt"), driver_name=None)
    assert anything["codecs"]["missing"] == ["hevc_decode", "hevc_encode"]


def test_bmc_driver_picked_by_libva():
    verdict = guest.diagnose(_facts("fail-jellyfin-ffmpeg-aspeed-bmc-ast-driver.txt"))
    assert verdict["link"] == "guest_driver"
    assert verdict["message"].startswith("libva picked the `ast` driver for %s, not iHD" % NODE)
    assert "LIBVA_DRIVER_NAME=iHD" in verdict["fix"] and "lspci -nnk" in verdict["fix"]


def test_ihd_init_failure_has_no_codecs():
    verdict = guest.diagnose(_facts("fail-ihd-init-failed-gem-aperture-error1.txt"))
    assert verdict["link"] == "guest_driver"
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


# lspci of a q35 VM: the emulated display (bochs) at 00:01.0 is card0; the passed GPU sits behind a root port.
VM_LSPCI = """00:01.0 VGA compatible controller [0300]: Device [1234:1111] (rev 02)
\tKernel driver in use: bochs-drm
01:00.0 VGA compatible controller [0300]: Intel Corporation CoffeeLake-S GT2 [UHD Graphics 630] [8086:3e92] (rev 02)
\tKernel driver in use: i915
\tKernel modules: i915
"""
# virtio-gpu with virgl has a render node of its own, renderD128, before the passed Alder Lake-N
VIRTIO_LSPCI = """00:01.0 VGA compatible controller [0300]: Red Hat, Inc. Virtio 1.0 GPU [1af4:1050] (rev 01)
\tKernel driver in use: virtio-pci
06:10.0 VGA compatible controller [0300]: Intel Corporation Alder Lake-N [UHD Graphics] [8086:46d1]
\tKernel driver in use: i915
"""


def _vm_root(tmp_path, lspci, nodes, enable_guc=None):
    root = sysfs_builder.build_root(tmp_path, lspci=lspci)
    for address, name, boot_vga in nodes:
        sysfs_builder.add_drm_node(root, address, name, boot_vga)
    if enable_guc is not None:
        os.makedirs(os.path.join(root, "sys", "module", "i915", "parameters"), exist_ok=True)
        with open(os.path.join(root, "sys", "module", "i915", "parameters", "enable_guc"), "w") as handle:
            handle.write("%d\n" % enable_guc)
    return os.path.join(root, "sys")


def test_render_node_is_the_passed_gpu_not_the_emulated_card0(tmp_path):
    sysfs = _vm_root(tmp_path, VM_LSPCI, [("00:01.0", "card0", True), ("01:00.0", "card1", False),
                                          ("01:00.0", "renderD128", None)], enable_guc=-1)
    drm = guest.scan_drm(sysfs)
    assert [(n["name"], n["pci_id"], n["driver"]) for n in drm] == [
        ("card0", "1234:1111", "bochs-drm"), ("card1", "8086:3e92", "i915"), ("renderD128", "8086:3e92", "i915")]
    assert drm[0]["boot_vga"] is True and drm[0]["class"] == "030000"
    gpu = guest.gpu_facts(sysfs, "/dev/dri")
    assert gpu["node"] == "/dev/dri/renderD128" and gpu["card"] == "card1"
    assert gpu["pci_address"] == "0000:01:00.0" and gpu["pci_id"] == "8086:3e92" and gpu["known"] is True
    assert gpu["enable_guc"] == -1


def test_emulated_display_with_a_render_node_is_skipped(tmp_path):
    sysfs = _vm_root(tmp_path, VIRTIO_LSPCI, [("00:01.0", "card0", True), ("00:01.0", "renderD128", None),
                                              ("06:10.0", "card1", False), ("06:10.0", "renderD129", None)])
    gpu = guest.gpu_facts(sysfs, "/dev/dri")
    assert gpu["node"] == "/dev/dri/renderD129" and gpu["pci_id"] == "8086:46d1"
    assert gpu["skipped"] == [{"node": "/dev/dri/renderD128", "pci_id": "1af4:1050",
                               "why": "the emulated display (virtio-gpu)"}]
    # the address given wins, even against the known GPU
    forced = guest.gpu_facts(sysfs, "/dev/dri", pci_address="00:01.0")
    assert forced["node"] == "/dev/dri/renderD128"
    assert guest.gpu_facts(sysfs, "/dev/dri", pci_address="0000:09:00.0") is None


def test_vgem_is_no_gpu(tmp_path):
    root = sysfs_builder.build_root(tmp_path, lspci=VM_LSPCI)
    sysfs_builder.add_drm_node(root, "00:01.0", "card0", True)
    sysfs_builder.add_software_drm_node(root, "renderD128")
    sysfs = os.path.join(root, "sys")
    assert [n["pci_id"] for n in guest.scan_drm(sysfs)] == ["1234:1111", None]
    assert guest.gpu_facts(sysfs) is None
    assert guest.scan_drm(str(tmp_path / "nothing")) == []


def _gpu_facts(fixture, pci_id, node=NODE, enable_guc=None):
    facts = _facts(fixture)
    vendor, device = pci_id.split(":")
    facts["gpu"] = {"node": node, "pci_id": pci_id, "vendor": vendor, "device": device, "class": "030000",
                    "enable_guc": enable_guc}
    return facts


def test_kaby_lake_free_driver_is_judged_by_its_generation():
    facts = _gpu_facts("ihd-kabylake-hd630-proxmox-host-21.1.1-free.txt", "8086:5912")
    verdict = guest.diagnose(facts, non_free=True)
    assert verdict["ok"] is False and verdict["link"] == "guest_driver"
    assert "lacks hevc_encode, hevc10_encode that Intel Kaby Lake (Gen 9.5) offers" in verdict["message"]
    assert "free build" in verdict["message"]
    assert "intel-media-va-driver-non-free" in verdict["fix"]
    assert any(n.startswith("h264_encode:") for n in verdict["notes"])  # low-power H.264 is there
    # without the non-free driver expected, what the free build lists is all there is to prove
    assert guest.diagnose(facts, non_free=False)["ok"] is True


def test_coffee_lake_non_free_passes_with_its_generation_named():
    verdict = guest.diagnose(_gpu_facts("ihd-23.1.1-nonfree-k3s-node-profile-indent-stripped.txt", "8086:3e92"),
                             non_free=True)
    assert verdict["ok"] is True
    assert verdict["capabilities"]["generation"] == "9.5"
    assert "offers what Intel Coffee Lake (Gen 9.5) has" in verdict["message"]
    assert verdict["offered"]["hevc"] == {"decode": True, "encode": "full"}
    assert "VAProfileHEVCMain/VAEntrypointEncSlice" in verdict["expected_profiles"]


def test_arc_without_av1_fails_naming_av1():
    facts = _gpu_facts("ihd-arc-a770-23.2.3-display-drm-device-renderD128.txt", "8086:56a0")
    assert guest.diagnose(facts)["ok"] is True
    profiles = facts["results"][NODE]["profiles"]
    facts["results"][NODE]["profiles"] = {p: e for p, e in profiles.items() if "AV1" not in p}
    verdict = guest.diagnose(facts)
    assert verdict["ok"] is False
    assert "lacks av1_decode, av1_encode" in verdict["message"] and "HuC" in verdict["message"]
    assert "firmware" in verdict["fix"] and "newer intel-media-va-driver-non-free" in verdict["fix"]


def test_enable_guc_from_sysfs_decides_the_huc_pairs():
    fixture = "ihd-tigerlake-h-gen12-22.3.1-thinkpad-t15p.txt"
    assert guest.diagnose(_gpu_facts(fixture, "8086:9a60", enable_guc=-1), non_free=True)["ok"] is True
    with_huc = guest.diagnose(_gpu_facts(fixture, "8086:9a60", enable_guc=2), non_free=True)
    assert with_huc["ok"] is False and "vp9_encode" in with_huc["message"]


def test_unknown_gpu_falls_back_and_says_so():
    verdict = guest.diagnose(_gpu_facts("ihd-23.1.1-nonfree-k3s-node-profile-indent-stripped.txt", "8086:0412"))
    assert verdict["ok"] is True and verdict["capabilities"] is None
    assert verdict["notes"][0] == ("GPU 8086:0412 is not in the capability table: judged by h264_decode, h264_encode, "
                                   "hevc_decode, hevc_encode only, not by its generation")


def test_only_the_passed_gpus_node_counts():
    facts = _facts("ihd-23.1.1-nonfree-k3s-node-profile-indent-stripped.txt", "ihd-kabylake-hd630-proxmox-host-21.1.1-free.txt")
    facts["gpu"] = {"node": "/dev/dri/renderD129", "pci_id": "8086:5912", "vendor": "8086", "device": "5912"}
    verdict = guest.diagnose(facts, non_free=True)
    assert verdict["node"] == "/dev/dri/renderD129" and verdict["ok"] is False


GPU = {"node": NODE, "pci_id": "8086:3e92", "vendor": "8086", "device": "3e92", "class": "030000"}


def test_labels_from_the_detected_gpu():
    result = guest.node_labels(GPU, names={"8086:3E92": "intel-uhd-630"}, cpu_tier="i5-8500t", extra={"media": True},
                               current={"gpu": "old", "cpu-tier": "i5-8500t", "kubernetes.io/os": "linux"})
    assert result["labels"] == {"gpu": "intel-uhd-630", "cpu-tier": "i5-8500t", "media": "True"}
    assert result["changes"] == {"gpu": "intel-uhd-630", "media": "True"}
    assert result["notes"] == [] and result["removed"] == []
    assert result["managed"] == "cpu-tier,gpu,media"


def test_capability_and_nfd_labels():
    offered = {"h264": {"decode": True, "encode": "both"}, "hevc": {"decode": True, "encode": "full"},
               "hevc10": {"decode": True, "encode": "no"}, "vp9": {"decode": False, "encode": "no"},
               "av1": {"decode": False, "encode": "no"}}
    caps = {"generation": "9.5", "platform": "coffeelake"}
    result = guest.node_labels(GPU, names={"8086:3e92": "intel-uhd-630"}, offered=offered, caps=caps, nfd=True,
                               streams={"1080p-h264": 7.9})
    assert result["labels"] == {
        "gpu": "intel-uhd-630",
        "gpu.homelab.io/h264-decode": "true", "gpu.homelab.io/h264-encode": "true",
        "gpu.homelab.io/hevc-decode": "true", "gpu.homelab.io/hevc-encode": "true",
        "gpu.homelab.io/hevc10-decode": "true",
        "gpu.homelab.io/generation": "9.5", "gpu.homelab.io/platform": "coffeelake",
        "intel.feature.node.kubernetes.io/gpu": "true",
        "gpu.intel.com/device-id.0300-3e92.present": "true",
        "gpu.homelab.io/streams-1080p-h264": "7",
    }
    # a display controller class (0380) keeps its class in the NFD label
    assert "gpu.intel.com/device-id.0380-9bc8.present" in guest.nfd_labels(dict(GPU, device="9bc8", **{"class": "038000"}))
    assert guest.nfd_labels(dict(GPU, vendor="1002")) == {}


def test_stale_collection_labels_go_foreign_labels_stay():
    current = {"gpu": "intel-uhd-630", "gpu.homelab.io/hevc-encode": "true", "gpu.homelab.io/h264-encode": "true",
               "intel.feature.node.kubernetes.io/gpu": "true", "cpu-tier": "i5", "media": "yes",
               "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel", "topology.kubernetes.io/zone": "rack-1"}
    offered = {"h264": {"decode": True, "encode": "lp"}}
    # the GPU lost HEVC encode; the role set cpu-tier and the NFD label before, not media
    result = guest.node_labels(GPU, names={"8086:3e92": "intel-uhd-630"}, offered=offered, current=current,
                               managed=["gpu", "cpu-tier", "intel.feature.node.kubernetes.io/gpu",
                                        "gpu.homelab.io/hevc-encode"])
    assert result["removed"] == ["cpu-tier", "gpu.homelab.io/hevc-encode", "intel.feature.node.kubernetes.io/gpu"]
    assert result["changes"] == {"gpu.homelab.io/h264-decode": "true", "cpu-tier": None,
                                 "gpu.homelab.io/hevc-encode": None, "intel.feature.node.kubernetes.io/gpu": None}
    assert "media" not in result["changes"] and "topology.kubernetes.io/zone" not in result["changes"]
    # the GPU is gone: every label of the collection goes, the foreign ones stay
    gone = guest.node_labels(None, names={"8086:3e92": "intel-uhd-630"}, current=current, managed=["gpu"])
    assert gone["removed"] == ["gpu", "gpu.homelab.io/h264-encode", "gpu.homelab.io/hevc-encode"]
    assert set(gone["changes"]) == set(gone["removed"]) and all(v is None for v in gone["changes"].values())


def test_no_gpu_no_gpu_label():
    result = guest.node_labels(None, names={"8086:3e92": "intel-uhd-630"}, override="forced", cpu_tier="n100",
                               current={"gpu": "intel-uhd-630"})
    assert result["labels"] == {"cpu-tier": "n100"}
    assert result["notes"][0].startswith("no GPU detected")
    assert result["changes"] == {"cpu-tier": "n100", "gpu": None}
    assert "removed gpu=intel-uhd-630" in result["notes"][1]


def test_unknown_gpu_and_override():
    gpu = dict(GPU, pci_id="8086:9bc8", device="9bc8")
    unknown = guest.node_labels(gpu, names={"8086:3e92": "intel-uhd-630"})
    assert unknown["labels"] == {} and "8086:9bc8 has no name" in unknown["notes"][0]
    forced = guest.node_labels(gpu, names={}, override="intel-uhd-630", gpu_key="example.com/gpu")
    assert forced["labels"] == {"example.com/gpu": "intel-uhd-630"}


def test_unverified_gpu_gets_no_label():
    result = guest.node_labels(GPU, names={"8086:3e92": "intel-uhd-630"}, verified=False)
    assert result["labels"] == {} and "did not pass the checks" in result["notes"][0]


@pytest.mark.parametrize("key, value", [("gpu", "intel uhd 630"), ("gpu", "-x"), ("bad key!", "x"), ("gpu", "x" * 64),
                                        ("Upper.Example/gpu", "x")])
def test_invalid_labels_are_refused(key, value):
    with pytest.raises(ValueError, match="label"):
        guest.node_labels(None, extra={key: value})
