#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: transcode_probe
short_description: Measure how many real-time transcodes a node can run, with VA-API and on the CPU
version_added: 0.2.0
description:
  - Runs ffmpeg on a generated test pattern (C(testsrc2) from lavfi; no media is downloaded) and reports
    the frames per second, the speed, the real-time stream capacity (fps divided by O(source_fps)) and
    the CPU use of each scenario on each path.
  - Scenario C(h264_1080p) encodes the pattern at O(encode_size) to H.264. Scenario
    C(hevc_4k_to_h264_1080p) first makes an HEVC clip at O(source_size) with libx265 (not timed), then
    decodes it, scales it to O(output_size) and encodes it to H.264 - what a media server does most.
  - Path C(vaapi) runs on the render node O(device) (C(h264_vaapi), C(scale_vaapi), VA-API decode);
    path C(cpu) uses libx264. When O(device) does not exist the VA-API path reports C(no VA-API device)
    with the diagnosis instead of running.
  - Every run stops after O(frames) frames or O(timeout) seconds; a run cut by the timeout reports the
    fps measured until then. Progress is read from C(ffmpeg -progress pipe:1), CPU use from C(-benchmark).
  - Nothing is changed on the host; the clip lives in a temporary directory removed at the end.
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
options:
  scenarios:
    description: The scenarios to run, in this order.
    type: list
    elements: str
    choices: [h264_1080p, hevc_4k_to_h264_1080p]
    default: [h264_1080p, hevc_4k_to_h264_1080p]
  paths:
    description: Where to run each scenario, C(vaapi) (the GPU) and C(cpu) (libx264).
    type: list
    elements: str
    choices: [vaapi, cpu]
    default: [vaapi, cpu]
  device:
    description:
      - The VA-API render node, for example the passed GPU's node, C(ansible_facts.vainfo.gpu.node) of M(homelab.gpu_passthrough.vainfo_facts).
      - An empty string is refused.
    type: path
    default: /dev/dri/renderD128
  frames:
    description:
      - Frames per run (and of the HEVC clip).
      - Valid values are at least 1; any other value is refused before anything is sent or changed.
    type: int
    default: 300
  timeout:
    description:
      - Seconds each ffmpeg run may take before it is stopped.
      - Valid values are at least 1; any other value is refused before anything is sent or changed.
    type: int
    default: 120
  source_fps:
    description:
      - Frame rate of the test pattern; a stream is real-time when it is transcoded at this rate.
      - Valid values are at least 1; any other value is refused before anything is sent or changed.
    type: int
    default: 30
  encode_size:
    description:
      - Size of the pattern the C(h264_1080p) scenario encodes.
      - An empty string is refused.
    type: str
    default: 1920x1080
  source_size:
    description:
      - Size of the HEVC clip of the C(hevc_4k_to_h264_1080p) scenario.
      - An empty string is refused.
    type: str
    default: 3840x2160
  output_size:
    description:
      - Size the C(hevc_4k_to_h264_1080p) scenario scales to.
      - An empty string is refused.
    type: str
    default: 1920x1080
  cpu_preset:
    description:
      - The libx264 preset of the CPU path.
      - An empty string is refused.
    type: str
    default: veryfast
  driver_name:
    description:
      - Sets E(LIBVA_DRIVER_NAME) for ffmpeg, for example C(iHD).
      - An empty string means the same as leaving the option out.
    type: str
  ffmpeg_path:
    description:
      - Path of the ffmpeg binary; looked up on E(PATH) by default.
      - An empty string means the same as leaving the option out.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The probe only reads; it also runs in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Needs ffmpeg with libx264, libx265 and VA-API (Debian's C(ffmpeg) package).
seealso:
  - module: homelab.gpu_passthrough.vainfo_facts
"""

EXAMPLES = r"""
- name: Measure the GPU and the CPU
  homelab.gpu_passthrough.transcode_probe:
    device: "{{ ansible_facts.vainfo.gpu.node }}"
    driver_name: iHD
  register: probe

- name: A quick bound for a slow machine
  homelab.gpu_passthrough.transcode_probe:
    paths: [cpu]
    frames: 30
    timeout: 60
    encode_size: 320x240
    source_size: 640x360
    output_size: 320x180
"""

RETURN = r"""
measurements:
  description:
    - Scenario to path to the result of the run.
    - Each holds C(ok), C(fps), C(speed) (times real time), C(frames), C(streams) (real-time streams at
      O(source_fps)), C(realtime), C(cpu_percent) (user + system time over wall time, percent of one core),
      C(seconds), C(error) and C(diagnosis) (null when ok).
  returned: always
  type: dict
  sample:
    h264_1080p:
      vaapi: {ok: true, fps: 242.1, speed: 8.06, frames: 300, streams: 8, realtime: true, cpu_percent: 65.6,
              seconds: 1.239, error: null, diagnosis: null}
      cpu: {ok: true, fps: 13.82, speed: 0.454, frames: 150, streams: 0, realtime: false, cpu_percent: 48.1,
            seconds: 10.858, error: null, diagnosis: null}
lines:
  description: One line per scenario and path.
  returned: always
  type: list
  elements: str
  sample: ["h264_1080p cpu: 13.8 fps (0.454x), 0 real-time stream(s) at 30 fps, CPU 48.1%"]
label_streams:
  description: Label name (C(1080p-h264), C(4k-hevc-to-1080p-h264)) to the real-time streams of each scenario that passed on VA-API.
  returned: always
  type: dict
  sample: {1080p-h264: 8}
commands:
  description: Scenario to path to the ffmpeg argv that ran.
  returned: always
  type: dict
"""

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.transcode import PATHS, SCENARIOS, run_probe


def main():
    module = option_checks.checked_module(
        dict(
            scenarios=dict(type="list", elements="str", choices=list(SCENARIOS), default=list(SCENARIOS)),
            paths=dict(type="list", elements="str", choices=list(PATHS), default=list(PATHS)),
            device=dict(type="path", default="/dev/dri/renderD128"),
            frames=dict(type="int", default=300),
            timeout=dict(type="int", default=120),
            source_fps=dict(type="int", default=30),
            encode_size=dict(type="str", default="1920x1080"),
            source_size=dict(type="str", default="3840x2160"),
            output_size=dict(type="str", default="1920x1080"),
            cpu_preset=dict(type="str", default="veryfast"),
            driver_name=dict(type="str"),
            ffmpeg_path=dict(type="path"),
        ),
        ranges=dict(frames=option_checks.Range(1, why="frames each ffmpeg run encodes", example=300),
                    timeout=option_checks.Range(1, why="seconds each ffmpeg run may take", example=120),
                    source_fps=option_checks.Range(1, why="frames per second of one real-time stream", example=30)),
        empty_means_default=("driver_name", "ffmpeg_path"),
        supports_check_mode=True,
    )
    p = module.params
    ffmpeg = p["ffmpeg_path"] or module.get_bin_path("ffmpeg")
    try:
        result = run_probe(ffmpeg, p["scenarios"], p["paths"], p["device"], p["frames"], p["timeout"], p["source_fps"],
                           p["encode_size"], p["source_size"], p["output_size"], p["cpu_preset"], p["driver_name"])
    except PassthroughError as err:
        module.fail_json(**err.to_result())
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
