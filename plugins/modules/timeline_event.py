#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: timeline_event
short_description: Record one event of the rolling chain in its timeline file
version_added: 0.1.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Adds one event, stamped with the time it is recorded, to a timeline file, creating the file when it is missing.
    The file is a JSON object whose C(events) list holds C(t) (epoch seconds), C(node), C(guest), C(event) and
    C(detail) per event.
  - C(playbooks/site.yml) records every step of its rolling chain with it when C(site_timeline_file) is set; the file
    shows each node's downtime window (C(lab/chain) prints it).
  - Writers of one batch may record at the same time; the file is replaced atomically under a lock.
  - "Runs where the file is, usually on the controller (C(delegate_to: localhost))."
options:
  path:
    description:
      - The timeline file.
      - An empty string is refused.
    type: path
    required: true
  node:
    description:
      - The Proxmox VE node (the inventory host of the node) the event belongs to; unset for a fleet-wide event.
      - An empty string is refused.
    type: str
  guest:
    description:
      - The VMID of the guest the event is about.
      - Valid values are 100..999999999; any other value is refused before anything is sent or changed.
    type: int
  event:
    description:
      - What happened, in the order a node's window runs through them.
    type: str
    required: true
    choices: [plan, host_change, guest_prepared, cordon, drain, guest_stop, vm_config, host_reboot, host_up, guest_start, ready,
              guest_verified, labels, uncordon, done, failed]
  detail:
    description:
      - A sentence about the event, for humans.
    type: str
    default: ""
attributes:
  check_mode:
    description: Reports the event it would record and writes nothing.
    support: full
  diff_mode:
    description: No diff.
    support: none
notes:
  - Recording an event is not a change of the managed systems, so the module always reports C(changed=false).
seealso:
  - module: homelab.gpu_passthrough.pve_vm_power
"""

EXAMPLES = r"""
- name: Record that the agent VM stopped
  homelab.gpu_passthrough.timeline_event:
    path: /var/log/homelab/site-timeline.json
    node: pve1
    guest: 120
    event: guest_stop
    detail: shut down for the host reboot
  delegate_to: localhost
"""

RETURN = r"""
event:
  description: The event recorded.
  returned: always
  type: dict
  sample: {"t": 1764680000.123, "node": "pve1", "guest": 120, "event": "guest_stop", "detail": "shut down"}
events:
  description: How many events the file holds now (0 in check mode).
  returned: always
  type: int
  sample: 7
"""

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks, timeline


def main():
    module = option_checks.checked_module(
        {
            "path": {"type": "path", "required": True},
            "node": {"type": "str"},
            "guest": {"type": "int"},
            "event": {"type": "str", "required": True, "choices": list(timeline.EVENTS)},
            "detail": {"type": "str", "default": ""},
        },
        ranges={"guest": option_checks.VMID},
        empty_means_default=("detail",),
        supports_check_mode=True,
    )
    params = module.params
    item = timeline.event(params["node"], params["event"], params["guest"], params["detail"])
    if module.check_mode:
        module.exit_json(changed=False, event=item, events=0)
    try:
        count = timeline.append(params["path"], item)
    except (OSError, ValueError) as exc:
        module.fail_json(msg="timeline_event: cannot record %s in %s: %s. Fix: point path (site_timeline_file) at a "
                             "writable file holding a timeline, or at a new one" % (params["event"], params["path"], exc),
                         event=item)
    module.exit_json(changed=False, event=item, events=count)


if __name__ == "__main__":
    main()
