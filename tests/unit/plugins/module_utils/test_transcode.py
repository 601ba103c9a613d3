# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""transcode: ffmpeg -progress / -benchmark parsing over recorded outputs (real CPU runs, real VA-API failures,
constructed VA-API successes; see fixtures/SOURCES.md), capacity, commands, and the probe over a fake runner."""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import transcode

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "ffmpeg"))


def recorded(name):
    def read(ext):
        with open(os.path.join(FIXTURES, name + ext), encoding="utf-8") as handle:
            return handle.read()
    return read(".progress"), read(".stderr")


# name -> (frames, last fps, last speed, ended, user+system over real as percent)
PROGRESS = {
    "cpu-libx264-640x360-60f": (60, None, 2.78, True, round(100 * (0.240 + 0.034) / 0.695, 1)),
    "cpu-libx264-1920x1080-150f": (150, 13.82, 0.454, True, round(100 * (4.190 + 1.028) / 10.858, 1)),
    "cpu-hevc-1280x720-to-libx264-640x360-30f": (30, None, 1.34, True, round(100 * (0.227 + 0.028) / 0.700, 1)),
    "cpu-libx264-3840x2160-sigterm-after-2s": (12, 1.56, 0.0432, True, round(100 * (1.447 + 2.100) / 7.712, 1)),
    "vaapi-h264-1920x1080-300f-uhd630-constructed": (300, 242.10, 8.06, True, round(100 * (0.512 + 0.301) / 1.239, 1)),
    "vaapi-hevc-3840x2160-to-h264-1920x1080-300f-uhd630-constructed": (300, 97.02, 3.23, True,
                                                                       round(100 * (0.874 + 0.512) / 3.105, 1)),
    "vaapi-h264-no-render-node": (None, None, None, False, None),
}


@pytest.mark.parametrize("name", sorted(PROGRESS))
def test_progress_and_benchmark_of_recorded_runs(name):
    frames, fps, speed, ended, cpu = PROGRESS[name]
    out, err = recorded(name)
    progress = transcode.parse_progress(out)
    assert progress["frames"] == frames
    assert progress["fps"] == fps
    assert progress["speed"] == speed
    assert progress["ended"] is ended
    bench = transcode.parse_benchmark(err)
    assert (bench["cpu_percent"] if bench else None) == cpu


def test_blocks_keep_every_key_as_printed():
    blocks = transcode.parse_progress(recorded("cpu-libx264-1920x1080-150f")[0])["blocks"]
    assert len(blocks) == 20
    assert blocks[0] == {"frame": "1", "fps": "0.00", "stream_0_0_q": "0.0", "bitrate": "N/A", "total_size": "N/A",
                         "out_time_us": "0", "out_time_ms": "0", "out_time": "00:00:00.000000", "dup_frames": "0",
                         "drop_frames": "0", "speed": "N/A", "progress": "continue"}
    assert blocks[1]["speed"] == "   0x" or blocks[1]["speed"].strip() == "0x"


def test_fps_falls_back_to_speed_when_ffmpeg_prints_zero():
    out, err = recorded("cpu-libx264-640x360-60f")
    result = transcode.judge_run(0, out, err, False, 30, "cpu")
    assert result["ok"] is True and result["fps"] == round(2.78 * 30, 2) and result["streams"] == 2
    assert result["realtime"] is True and result["seconds"] == 0.695 and result["error"] is None


def test_slow_cpu_is_not_real_time():
    out, err = recorded("cpu-libx264-1920x1080-150f")
    result = transcode.judge_run(0, out, err, False, 30, "cpu")
    assert result["ok"] is True and result["fps"] == 13.82 and result["streams"] == 0 and result["realtime"] is False


def test_timed_out_run_reports_the_running_fps():
    out, err = recorded("cpu-libx264-3840x2160-sigterm-after-2s")
    progress = transcode.parse_progress(out)
    assert progress["fps_running"] == 9.47  # the closing block's 1.56 counts the flush
    result = transcode.judge_run(255, out, err, True, 30, "cpu")
    assert result["ok"] is False and result["fps"] == 9.47 and result["error"] == "timed out after 12 frames"


def test_constructed_vaapi_runs_give_the_capacity():
    out, err = recorded("vaapi-h264-1920x1080-300f-uhd630-constructed")
    h264 = transcode.judge_run(0, out, err, False, 30, "vaapi", "/dev/dri/renderD128")
    assert h264["ok"] is True and h264["streams"] == 8 and h264["cpu_percent"] == 65.6
    out, err = recorded("vaapi-hevc-3840x2160-to-h264-1920x1080-300f-uhd630-constructed")
    assert transcode.judge_run(0, out, err, False, 30, "vaapi")["streams"] == 3
    assert transcode.label_streams({"h264_1080p": {"vaapi": h264, "cpu": dict(h264, streams=1)}}) == {"1080p-h264": 8}


@pytest.mark.parametrize("name, error, fix", [
    ("vaapi-h264-no-render-node", "cannot be opened: Error parsing global options", "vainfo --display drm"),
    ("vaapi-hevc-decode-no-render-node", "cannot be opened", "LIBVA_DRIVER_NAME"),
    ("vaapi-h264-no-encode-entrypoint-constructed", "lists no H.264 encoder", "intel-media-va-driver-non-free"),
])
def test_vaapi_failures_are_diagnosed(name, error, fix):
    out, err = recorded(name)
    result = transcode.judge_run(1, out, err, False, 30, "vaapi", "/dev/dri/renderD128")
    assert result["ok"] is False and result["fps"] is None
    assert error in result["error"] and fix in result["diagnosis"]


def test_capacity():
    assert transcode.capacity(242.1, 30) == 8
    assert transcode.capacity(60.0, 30) == 2
    assert transcode.capacity(29.99, 30) == 0
    assert transcode.capacity(None, 30) is None


def test_commands_are_bounded_and_use_the_device():
    sizes = {"encode": (320, 240), "source": (640, 360), "output": (320, 180)}
    cpu = transcode.command("h264_1080p", "cpu", "ffmpeg", 30, 30, sizes)
    assert cpu[:8] == ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-benchmark", "-progress", "pipe:1", "-y"]
    assert "testsrc2=size=320x240:rate=30" in cpu and cpu[cpu.index("-frames:v") + 1] == "30" and "libx264" in cpu
    vaapi = transcode.command("hevc_4k_to_h264_1080p", "vaapi", "ffmpeg", 30, 30, sizes, "/dev/dri/renderD129", "/t/s.mkv")
    assert vaapi[vaapi.index("-hwaccel_device") + 1] == "/dev/dri/renderD129"
    assert "scale_vaapi=w=320:h=180" in vaapi and "h264_vaapi" in vaapi and vaapi[-3:] == ["-f", "null", "-"]
    with pytest.raises(ValueError, match="unknown scenario"):
        transcode.command("av1", "cpu", "ffmpeg", 1, 30, sizes)


def test_probe_without_device_reports_no_vaapi_device():
    calls = []
    out, err = recorded("cpu-libx264-640x360-60f")

    def run(argv, timeout, env):
        calls.append((argv, timeout, env))
        return 0, out, err, False

    probe = transcode.probe(run, "ffmpeg", "/tmp/w", scenarios=["h264_1080p", "hevc_4k_to_h264_1080p"], frames=30,
                            timeout=60, device="/dev/dri/renderD128", device_exists=lambda path: False)
    vaapi = probe["measurements"]["h264_1080p"]["vaapi"]
    assert vaapi["ok"] is False and vaapi["error"] == "no VA-API device: /dev/dri/renderD128 does not exist"
    assert "hostpci0" in vaapi["diagnosis"]
    assert probe["measurements"]["hevc_4k_to_h264_1080p"]["cpu"]["ok"] is True
    # the source clip, then one CPU run per scenario; no VA-API run, each bounded by the timeout
    assert [c[0][-1] for c in calls] == ["-", "/tmp/w/source-hevc.mkv", "-"]
    assert all(c[1] == 60 for c in calls)
    assert probe["label_streams"] == {}
    assert probe["lines"][0].startswith("h264_1080p vaapi: no VA-API device")


def test_run_probe_refuses_bad_inputs_before_running():
    def run(*_args):
        raise AssertionError("nothing may run")

    with pytest.raises(PassthroughError, match="encode_size='1080p'"):
        transcode.run_probe("ffmpeg", ["h264_1080p"], ["cpu"], None, 30, 60, 30, "1080p", "640x360", "320x180", run=run)
    with pytest.raises(PassthroughError, match="frames=0"):
        transcode.run_probe("ffmpeg", ["h264_1080p"], ["cpu"], None, 0, 60, 30, "320x240", "640x360", "320x180", run=run)
    with pytest.raises(PassthroughError, match="ffmpeg is not installed") as missing:
        transcode.run_probe(None, ["h264_1080p"], ["cpu"], None, 1, 60, 30, "320x240", "640x360", "320x180", run=run)
    assert "gpu_worker_manage_packages" in missing.value.to_result()["fix"]
