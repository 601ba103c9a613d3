"""What proves gpu_worker on a lab VM (scenario gpu_worker; skipped in the others).

The VM has no GPU: the stand-in display (bochs) gives /dev/dri/card0 and no render node. Its image
(grub-worker) carries Debian's ffmpeg. Converge installs the real packages from Debian with non-free enabled
and records the role's report; the side effect judges the guest again with no render node in strict mode,
measures transcodes with ffmpeg on the CPU (the VA-API path reports that there is no device), with vgem's
render node (the real vainfo and iHD driver), and with vainfo answering as the free and the non-free Intel
media driver do. The reports and the strict failure message are kept as JSON in /root.
"""

from __future__ import annotations

import json
import os
import re

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("MOLECULE_SCENARIO_NAME") != "gpu_worker", reason="gpu_worker scenario only"
)

CODECS = ["h264_decode", "h264_encode", "hevc_decode", "hevc_encode"]
NO_RENDER_NODE = "no render node in the VM: the GPU is not passed through"
HOSTPCI_FIX = "check hostpci0 in the VM config (qm config <vmid>) and `lspci -nnk` in the VM"
# the probe's bound in side_effect.yml and the pattern's frame rate (the role's default)
PROBE_FRAMES = 30
SOURCE_FPS = 30
PROBE_SCENARIOS = ["h264_1080p", "hevc_4k_to_h264_1080p"]


def _json(host, path):
    return json.loads(host.file(path).content_string)


@pytest.fixture(scope="module")
def converge(host):
    return _json(host, "/root/gpu_worker-converge.json")


@pytest.fixture(scope="module")
def side_effect(host):
    return _json(host, "/root/gpu_worker-side_effect.json")


@pytest.mark.parametrize("package", ["intel-media-va-driver-non-free", "vainfo", "intel-gpu-tools"])
def test_packages_come_from_debian(host, package):
    assert host.package(package).is_installed, package


def test_driver_is_the_one_from_non_free(host):
    policy = host.check_output("apt-cache policy intel-media-va-driver-non-free")
    assert "/debian bookworm/non-free amd64 Packages" in policy, policy


def test_non_free_enabled_on_the_debian_entries(host):
    entries = [line.split() for line in host.file("/etc/apt/sources.list").content_string.splitlines()
               if line.startswith("deb ")]
    assert entries, "no deb entries in /etc/apt/sources.list"
    for fields in entries:
        assert {"main", "non-free", "non-free-firmware"} <= set(fields[3:]), fields
        assert len(fields[3:]) == len(set(fields[3:])), f"a component twice: {fields}"


def test_transcoder_user_can_open_render_nodes(host):
    groups = host.user("jellyfin").groups
    assert "render" in groups and "video" in groups, groups


def test_no_render_node_is_a_vm_config_failure(host, converge):
    assert converge["ok"] is False
    assert converge["link"] == "vm_config"
    assert converge["message"] == NO_RENDER_NODE
    assert converge["fix"] == HOSTPCI_FIX
    assert converge["render_nodes"] == [] and converge["gpu"] is None
    assert converge["codecs"]["missing"] == CODECS


def test_strict_mode_fails_naming_the_link_and_the_fix(side_effect):
    message = side_effect["strict"]
    assert f"VM config is broken: {NO_RENDER_NODE}." in message, message
    assert f"Fix: {HOSTPCI_FIX}" in message, message


def test_render_node_without_video_engine_is_a_guest_driver_failure(host, side_effect):
    report = side_effect["vgem"]
    assert report["render_nodes"] == ["/dev/dri/renderD128"], report
    assert report["ok"] is False and report["link"] == "guest_driver", report
    assert "the iHD driver failed to initialise on /dev/dri/renderD128" in report["message"], report
    assert "vainfo reports no codecs" in report["message"], report
    assert "intel-media-va-driver-non-free" in report["fix"], report
    assert report["codecs"]["missing"] == CODECS and report["codecs"]["present"] == []
    # vgem is a platform device: no PCI id, so no GPU to name or label
    assert report["gpu"] is None
    # the real vainfo on the real node, as the role ran it
    run = host.run("LANG=C LIBVA_DRIVER_NAME=iHD vainfo --display drm --device /dev/dri/renderD128")
    assert run.rc != 0 and "iHD_drv_video.so init failed" in run.stdout + run.stderr, run.stdout + run.stderr


def test_free_driver_fails_naming_the_missing_codec(side_effect):
    report = side_effect["free"]
    assert report["ok"] is False and report["link"] == "guest_driver", report
    assert report["codecs"]["missing"] == ["hevc_encode"], report
    assert report["message"] == "VA-API works on /dev/dri/renderD128 (iHD 21.1.1) but lacks hevc_encode", report
    assert "intel-media-va-driver-non-free" in report["fix"], report


def test_checks_pass_only_when_vainfo_reports_the_codecs(side_effect):
    report = side_effect["nonfree"]
    assert report["ok"] is True and report["link"] is None and report["fix"] is None, report
    assert report["codecs"]["present"] == CODECS and report["codecs"]["missing"] == [], report
    assert report["driver_name"] == "iHD" and report["driver_version"] == "23.1.1", report
    assert report["message"].startswith("VA-API ok on /dev/dri/renderD128: iHD 23.1.1"), report


@pytest.fixture(scope="module")
def probe(side_effect):
    return side_effect["probe"]["probe"]


@pytest.mark.parametrize("scenario", PROBE_SCENARIOS)
def test_probe_measures_the_cpu_path(probe, scenario):
    cpu = probe["results"][scenario]["cpu"]
    assert cpu["ok"] is True and cpu["error"] is None and cpu["diagnosis"] is None, cpu
    assert cpu["frames"] == PROBE_FRAMES and cpu["fps"] > 0, cpu
    assert cpu["streams"] == int(cpu["fps"] // SOURCE_FPS), cpu
    assert cpu["realtime"] is (cpu["fps"] >= SOURCE_FPS), cpu
    assert cpu["cpu_percent"] > 0 and cpu["seconds"] > 0, cpu
    assert any(line.startswith(f"{scenario} cpu: {cpu['fps']:.1f} fps (") for line in probe["lines"]), probe["lines"]


@pytest.mark.parametrize("scenario", PROBE_SCENARIOS)
def test_probe_reports_no_vaapi_device_with_the_diagnosis(probe, scenario):
    vaapi = probe["results"][scenario]["vaapi"]
    assert vaapi["ok"] is False and vaapi["fps"] is None and vaapi["streams"] is None, vaapi
    assert vaapi["error"] == "no VA-API device: /dev/dri/renderD128 does not exist", vaapi
    assert vaapi["diagnosis"] == f"{NO_RENDER_NODE} — {HOSTPCI_FIX}", vaapi
    assert f"{scenario} vaapi: {vaapi['error']} — {vaapi['diagnosis']}" in probe["lines"], probe["lines"]


def test_probe_labels_no_streams_when_vaapi_ran_nowhere(side_effect, probe):
    assert probe["label_streams"] == {}, probe
    # the verdict beside the measurement is still the missing render node
    assert side_effect["probe"]["link"] == "vm_config" and side_effect["probe"]["message"] == NO_RENDER_NODE


def test_probe_leaves_no_work_directory(host):
    left = host.run("find /tmp /var/tmp /root -name 'transcode_probe_*'")
    assert left.rc == 0 and not left.stdout.strip(), left.stdout


def _apt_transactions(host):
    text = host.file("/var/log/apt/history.log").content_string
    return [block.strip() for block in text.split("\n\n") if "Start-Date:" in block]


def _installs(transaction, package):
    pattern = re.compile(r"(?:^Install: |, )" + re.escape(package) + r":amd64 \(")
    return any(pattern.search(line) for line in transaction.splitlines() if line.startswith("Install: "))


def test_ffmpeg_comes_with_the_image_and_the_probe_installs_nothing(host):
    assert host.package("ffmpeg").is_installed
    transactions = _apt_transactions(host)
    with_ffmpeg = [i for i, t in enumerate(transactions) if _installs(t, "ffmpeg")]
    with_vainfo = [i for i, t in enumerate(transactions) if _installs(t, "vainfo")]
    assert len(with_ffmpeg) == 1 and len(with_vainfo) == 1, transactions
    # the image build's apt ran before converge's, and converge's is the last: the probe, with the
    # package tasks on, found ffmpeg and the VA-API packages installed and changed nothing
    assert with_ffmpeg[0] < with_vainfo[0] == len(transactions) - 1, transactions
