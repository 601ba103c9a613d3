# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Measure what a node can transcode: ffmpeg on a generated test pattern, with VA-API and on the CPU.

Standard library only. The pure part builds the ffmpeg command lines of each scenario, parses what
``ffmpeg -progress pipe:1 -benchmark`` prints (key=value blocks on stdout ending in
``progress=continue|end``; ``bench: utime=… stime=… rtime=…`` on stderr) and judges the capacity:
real-time streams = fps / the source's fps. ``probe`` runs the plan through an injected runner
``run(argv, timeout, env) -> (rc, stdout, stderr, timed_out)``, so it is tested without ffmpeg.

Scenarios (no media download, testsrc2 from lavfi):

``h264_1080p``             1080p H.264 encode of the test pattern
``hevc_4k_to_h264_1080p``  a 4K HEVC clip (made first with libx265, not timed) decoded, scaled to
                           1080p and encoded to H.264 - the transcode a media server does most
"""

from __future__ import annotations

import math
import os
import re

SCENARIOS = ("h264_1080p", "hevc_4k_to_h264_1080p")
PATHS = ("vaapi", "cpu")
# The label name of each scenario's stream count (gpu.homelab.io/streams-<name>).
LABEL_NAMES = {"h264_1080p": "1080p-h264", "hevc_4k_to_h264_1080p": "4k-hevc-to-1080p-h264"}

NO_DEVICE = "no VA-API device"
NO_DEVICE_FIX = "check hostpci0 in the VM config (qm config <vmid>) and `lspci -nnk` in the VM"

_BENCH_RE = re.compile(r"bench:\s*utime=([0-9.]+)s\s+stime=([0-9.]+)s\s+rtime=([0-9.]+)s")
_SIZE_RE = re.compile(r"^([1-9][0-9]{1,4})x([1-9][0-9]{1,4})$")
_SPEED_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)x\s*$")
_OPTION_MISSING_RE = re.compile(r"(Unknown encoder|Encoder not found|No such filter|Unrecognized option)\s*'?([\w-]*)")


def _number(value):
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_progress(text):
    """``-progress`` output -> ``{blocks, frames, fps, fps_running, speed, out_time_s, ended}``.

    ``blocks``: one dict per block (values as printed). ``fps``: the last non-zero fps (ffmpeg prints
    0.00 until a second has passed); ``fps_running``: the last non-zero fps of a ``continue`` block
    (after a signal the closing block counts the flush). ``speed``: the last speed as a float
    (``N/A`` gives None, ``   0x`` 0.0); ``ended``: a ``progress=end`` block came. Never raises.
    """
    blocks, current = [], {}
    for raw in (text or "").splitlines():
        key, sep, value = raw.strip().partition("=")
        if not sep or not key:
            continue
        current[key] = value
        if key == "progress":
            blocks.append(current)
            current = {}
    if current:
        blocks.append(current)
    frames = fps = fps_running = speed = out_time = None
    for block in blocks:
        frame = _number(block.get("frame"))
        if frame is not None:
            frames = int(frame)
        match = _SPEED_RE.match(block.get("speed", ""))
        if match:
            speed = float(match.group(1))
        microseconds = _number(block.get("out_time_us"))
        if microseconds is not None and microseconds >= 0:
            out_time = microseconds / 1e6
        block_fps = _number(block.get("fps"))
        if block_fps:
            fps = block_fps
            if block.get("progress") == "continue":
                fps_running = block_fps
    return {"blocks": blocks, "frames": frames, "fps": fps, "fps_running": fps_running, "speed": speed,
            "out_time_s": out_time, "ended": any(block.get("progress") == "end" for block in blocks)}


def parse_benchmark(stderr):
    """``bench: utime=… stime=… rtime=…`` -> ``{user_s, system_s, real_s, cpu_percent}`` or None."""
    found = _BENCH_RE.findall(stderr or "")
    if not found:
        return None
    user, system, real = (float(v) for v in found[-1])
    return {"user_s": user, "system_s": system, "real_s": real,
            "cpu_percent": round(100.0 * (user + system) / real, 1) if real > 0 else None}


def error_lines(stderr):
    """The lines of ffmpeg's stderr that say why it failed (not the stream listing or the bench lines)."""
    lines = []
    for line in (stderr or "").splitlines():
        text = line.strip()
        if not text or text.startswith(("bench:", "Input #", "Output #", "Stream", "Metadata", "Duration")):
            continue
        if line[:1].isspace():
            continue
        lines.append(text)
    return lines


def diagnose_failure(path, stderr, device):
    """(error, diagnosis) for a failed run, naming the likely cause and its fix."""
    text = stderr or ""
    lowered = text.lower()
    last = (error_lines(text) or ["ffmpeg failed without a message"])[-1]
    if path == "vaapi":
        if "no va display found" in lowered or "failed to initialise vaapi connection" in lowered or \
                "device creation failed" in lowered:
            return ("VA-API device %s cannot be opened: %s" % (device, last),
                    "vainfo fails too: run `vainfo --display drm --device %s` and fix what the gpu_worker report "
                    "names (driver package, render group, LIBVA_DRIVER_NAME)" % device)
        if "no usable encoding entrypoint" in lowered:
            return ("the VA-API driver lists no H.264 encoder: %s" % last,
                    "install intel-media-va-driver-non-free; a GPU without H.264 encode cannot run this scenario")
        if "rc mode" in lowered:
            return ("the H.264 low-power encoder has no rate control: %s" % last,
                    "load the HuC firmware (i915.enable_guc=2 where the kernel does not by default) and reboot")
    missing = _OPTION_MISSING_RE.search(text)
    if missing:
        return ("this ffmpeg lacks %s: %s" % (missing.group(2) or "a component", last),
                "install Debian's ffmpeg (built with libx264, libx265 and VA-API)")
    return (last, "run the command by hand and read ffmpeg's messages")


def parse_size(value, name):
    match = _SIZE_RE.match(str(value or "").strip())
    if not match:
        raise ValueError("%s=%r: a size is WIDTHxHEIGHT, for example 1920x1080" % (name, value))
    width, height = int(match.group(1)), int(match.group(2))
    if width % 2 or height % 2:
        raise ValueError("%s=%r: width and height must be even for yuv420p" % (name, value))
    return width, height


def _base(ffmpeg):
    return [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-benchmark", "-progress", "pipe:1", "-y"]


def _pattern(size, fps):
    return ["-f", "lavfi", "-i", "testsrc2=size=%dx%d:rate=%d" % (size[0], size[1], fps)]


def source_command(ffmpeg, size, fps, frames, path):
    """The 4K HEVC clip the transcode scenario reads, made with libx265 on the CPU (not timed)."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y"] + _pattern(size, fps) + [
        "-frames:v", str(frames), "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
        "-pix_fmt", "yuv420p", path]


def command(scenario, path, ffmpeg, frames, fps, sizes, device=None, source=None, preset="veryfast"):
    """The timed ffmpeg command of one scenario on one path; output goes to the null muxer."""
    encode_size, output_size = sizes["encode"], sizes["output"]
    argv = _base(ffmpeg)
    if scenario == "h264_1080p":
        if path == "vaapi":
            argv += ["-init_hw_device", "vaapi=va:%s" % device, "-filter_hw_device", "va"] + _pattern(encode_size, fps)
            argv += ["-frames:v", str(frames), "-vf", "format=nv12,hwupload", "-c:v", "h264_vaapi"]
        else:
            argv += _pattern(encode_size, fps)
            argv += ["-frames:v", str(frames), "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p"]
    elif scenario == "hevc_4k_to_h264_1080p":
        if path == "vaapi":
            argv += ["-hwaccel", "vaapi", "-hwaccel_device", device, "-hwaccel_output_format", "vaapi", "-i", source]
            argv += ["-frames:v", str(frames), "-vf", "scale_vaapi=w=%d:h=%d" % output_size, "-c:v", "h264_vaapi"]
        else:
            argv += ["-i", source, "-frames:v", str(frames), "-vf", "scale=%d:%d" % output_size,
                     "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p"]
    else:
        raise ValueError("unknown scenario %r (known: %s)" % (scenario, ", ".join(SCENARIOS)))
    return argv + ["-f", "null", "-"]


def capacity(fps, source_fps):
    """Real-time streams: how many sources at ``source_fps`` this fps keeps up with (floor), or None."""
    if not fps or not source_fps:
        return None
    return int(math.floor(fps / float(source_fps) + 1e-9))


def judge_run(rc, stdout, stderr, timed_out, source_fps, path, device=None):
    """One run's result: ``{ok, fps, speed, frames, streams, realtime, cpu_percent, seconds, error, diagnosis}``."""
    progress = parse_progress(stdout)
    bench = parse_benchmark(stderr)
    fps = progress["fps_running"] if timed_out else progress["fps"]
    if not fps and progress["speed"]:
        fps = progress["speed"] * source_fps
    if not fps and bench and bench["real_s"] and progress["frames"]:
        fps = progress["frames"] / bench["real_s"]
    fps = round(fps, 2) if fps else None
    ok = rc == 0 and not timed_out and progress["ended"] and bool(progress["frames"])
    error = diagnosis = None
    if timed_out:
        error = "timed out after %s frames" % (progress["frames"] or 0)
        diagnosis = "raise timeout or lower frames; the fps measured until then is reported"
    elif not ok:
        error, diagnosis = diagnose_failure(path, stderr, device)
    streams = capacity(fps, source_fps) if fps else None
    return {
        "ok": ok,
        "fps": fps,
        "speed": progress["speed"],
        "frames": progress["frames"],
        "streams": streams,
        "realtime": bool(fps and fps >= source_fps),
        "cpu_percent": bench["cpu_percent"] if bench else None,
        "seconds": bench["real_s"] if bench else None,
        "error": error,
        "diagnosis": diagnosis,
    }


def no_device(device, hint=None):
    """The result of the VA-API path when the render node does not exist."""
    return {"ok": False, "fps": None, "speed": None, "frames": None, "streams": None, "realtime": False,
            "cpu_percent": None, "seconds": None, "error": "%s: %s does not exist" % (NO_DEVICE, device),
            "diagnosis": hint or "no render node in the VM: the GPU is not passed through — %s" % NO_DEVICE_FIX,
            "skipped": True}


def summary(results, source_fps):
    """One line per scenario and path, for humans."""
    lines = []
    for scenario, paths in results.items():
        for path, result in paths.items():
            if result.get("ok"):
                lines.append("%s %s: %.1f fps (%sx), %d real-time stream(s) at %d fps, CPU %s%%" % (
                    scenario, path, result["fps"], result["speed"], result["streams"] or 0, source_fps,
                    result["cpu_percent"]))
            else:
                lines.append("%s %s: %s — %s" % (scenario, path, result.get("error"), result.get("diagnosis")))
    return lines


def label_streams(results, path="vaapi"):
    """Label name -> streams of the scenarios that passed on ``path`` (what the node's GPU can do)."""
    return {LABEL_NAMES[s]: r[path]["streams"] for s, r in results.items()
            if path in r and r[path].get("ok") and r[path].get("streams") is not None}


def probe(run, ffmpeg, workdir, scenarios=SCENARIOS, paths=PATHS, device="/dev/dri/renderD128", frames=300,
          timeout=120, source_fps=30, sizes=None, preset="veryfast", env=None, device_exists=os.path.exists):
    """Run every scenario on every path. ``run(argv, timeout, env) -> (rc, stdout, stderr, timed_out)``.

    Returns ``{measurements: {scenario: {path: result}}, commands, lines, label_streams}`` (not ``results``:
    Ansible reserves that key in a module's return).
    """
    sizes = dict(sizes or {})
    sizes.setdefault("encode", (1920, 1080))
    sizes.setdefault("source", (3840, 2160))
    sizes.setdefault("output", (1920, 1080))
    results, commands = {}, {}
    has_device = bool(device) and device_exists(device)
    source = None
    for scenario in scenarios:
        results[scenario], commands[scenario] = {}, {}
        if scenario == "hevc_4k_to_h264_1080p" and source is None:
            source = os.path.join(workdir, "source-hevc.mkv")
            rc, _out, err, timed_out = run(source_command(ffmpeg, sizes["source"], source_fps, frames, source), timeout, env)
            if rc != 0 or timed_out:
                error, diagnosis = ("making the HEVC source timed out", "raise timeout or lower frames") if timed_out \
                    else diagnose_failure("cpu", err, None)
                for path in paths:
                    results[scenario][path] = dict(no_device(device), error="no HEVC source: %s" % error,
                                                   diagnosis=diagnosis)
                continue
        for path in paths:
            if path == "vaapi" and not has_device:
                results[scenario][path] = no_device(device)
                continue
            argv = command(scenario, path, ffmpeg, frames, source_fps, sizes, device, source, preset)
            commands[scenario][path] = argv
            rc, out, err, timed_out = run(argv, timeout, env)
            results[scenario][path] = judge_run(rc, out, err, timed_out, source_fps, path, device)
    return {"measurements": results, "commands": commands, "lines": summary(results, source_fps),
            "label_streams": label_streams(results)}


def run_subprocess(argv, timeout, env=None):
    """Run ffmpeg; at the timeout send SIGTERM so it closes its progress output, then SIGKILL if it hangs."""
    import subprocess  # the service part; the rest of the module is pure

    environ = dict(os.environ)
    environ.update(env or {})
    environ.update({"LANG": "C", "LC_ALL": "C"})
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=environ, text=True, errors="replace")
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err, False
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return proc.returncode, out, err, True


def run_probe(ffmpeg, scenarios, paths, device, frames, timeout, source_fps, encode_size, source_size, output_size,
              preset="veryfast", driver_name=None, run=run_subprocess):
    """Check the inputs (PassthroughError naming the option and the fix), probe in a temporary directory."""
    import shutil
    import tempfile

    from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError

    try:
        sizes = {"encode": parse_size(encode_size, "encode_size"), "source": parse_size(source_size, "source_size"),
                 "output": parse_size(output_size, "output_size")}
    except ValueError as exc:
        raise PassthroughError(str(exc), fix="give the size as WIDTHxHEIGHT with even numbers") from exc
    for name, value in (("frames", frames), ("timeout", timeout), ("source_fps", source_fps)):
        if not isinstance(value, int) or value < 1:
            raise PassthroughError("%s=%r must be a positive whole number" % (name, value), fix="set %s to 1 or more" % name)
    if not ffmpeg:
        raise PassthroughError("ffmpeg is not installed",
                               fix="install the ffmpeg package (the gpu_worker role adds it to its packages with "
                                   "gpu_worker_probe, unless gpu_worker_manage_packages is false)",
                               link="guest_driver")
    env = {"LIBVA_DRIVER_NAME": driver_name} if driver_name else {}
    workdir = tempfile.mkdtemp(prefix="transcode_probe_")
    try:
        return probe(run, ffmpeg, workdir, scenarios, paths, device, frames, timeout, source_fps, sizes, preset, env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
