# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""homelab.gpu_passthrough.timeline, enabled by itself for the playbooks of this directory."""

# the documentation comes before the imports, as ansible-test expects
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
name: site_timeline
type: aggregate
short_description: Enables homelab.gpu_passthrough.timeline for the playbooks beside it
description:
  - The callback C(homelab.gpu_passthrough.timeline), enabled without configuration for the playbooks of this
    directory (C(site.yml -e site_timeline_file=PATH) writes the rolling chain's timeline).
  - When C(homelab.gpu_passthrough.timeline) is enabled in C(callbacks_enabled) as well, each event is still recorded
    once.
options:
  path:
    description:
      - The timeline file to write; the extra variable C(site_timeline_file) takes precedence.
    type: path
    env:
      - name: GPU_PASSTHROUGH_TIMELINE_FILE
    ini:
      - section: callback_timeline
        key: path
"""

from ansible_collections.homelab.gpu_passthrough.plugins.callback.timeline import CallbackModule as TimelineCallback


class CallbackModule(TimelineCallback):
    CALLBACK_NAME = "site_timeline"
    CALLBACK_NEEDS_ENABLED = False
