# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""transcode_probe: main() with the real ffmpeg on a tiny bound (skipped without ffmpeg), and its refusals."""

import shutil

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.modules import transcode_probe
from ansible_collections.homelab.gpu_passthrough.tests.unit.plugins.modules.module_runner import run_module

FFMPEG = shutil.which("ffmpeg")


@pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg")
def test_cpu_path_measures_and_vaapi_path_reports_no_device(tmp_path, capsys):
    out = run_module(capsys, transcode_probe.main, {
        "frames": 10, "timeout": 60, "encode_size": "160x120", "source_size": "320x240", "output_size": "160x90",
        "device": str(tmp_path / "renderD128"), "cpu_preset": "ultrafast"}, check_mode=True)
    assert out["changed"] is False
    # Ansible renames a module's "results" key; the measurements have their own
    assert "results" not in out
    for scenario in ("h264_1080p", "hevc_4k_to_h264_1080p"):
        cpu = out["measurements"][scenario]["cpu"]
        assert cpu["ok"] is True, cpu
        assert cpu["frames"] == 10 and cpu["fps"] > 0 and cpu["cpu_percent"] is not None
        vaapi = out["measurements"][scenario]["vaapi"]
        assert vaapi["ok"] is False and vaapi["error"].startswith("no VA-API device")
    assert out["label_streams"] == {}


def test_bad_size_fails_naming_the_option(capsys):
    out = run_module(capsys, transcode_probe.main, {"encode_size": "1080p", "ffmpeg_path": "/bin/true"})
    assert out["failed"] is True and "encode_size='1080p'" in out["msg"] and "WIDTHxHEIGHT" in out["fix"]
