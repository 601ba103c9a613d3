# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Downtime of a fleet run: the rolling chain of site.yml against the link-ordered chain it replaced.

  python bench/rolling.py                          # 3 nodes one at a time, 50 nodes in the batch quorum allows
  python bench/rolling.py --nodes 8 --batch 2      # another fleet
  python bench/rolling.py --timeline PATH          # step durations taken from a timeline site.yml wrote

A simulated fleet: every node carries one k3s agent VM, every host needs the vfio binding and a reboot, every VM a
config change. Both chains are laid out as timelines of plugins/module_utils/chain/timeline.py from the same step
durations, then judged by the same code site.yml's users get: timeline.validate (the rolling promise), timeline.windows
(per-node downtime) and fleet.max_batch (how many nodes quorum lets reboot together). Not a test; it prints figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# the collection's code, imported from this tree (tools/collection_tree.py)
sys.path.insert(0, os.path.join(REPO, "tools"))
import collection_tree  # noqa: E402  pylint: disable=wrong-import-position

collection_tree.importable()
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import fleet, timeline  # noqa: E402  pylint: disable=wrong-import-position

# seconds per step; the defaults are of the order a lab run shows (lab/chain prints its own timeline)
DEFAULTS = {"host_change": 60.0, "guest_prepared": 30.0, "drain": 10.0, "guest_stop": 20.0, "vm_config": 2.0,
            "host_reboot": 90.0,
            "guest_start": 5.0, "ready": 40.0, "guest_verified": 20.0, "labels": 2.0, "uncordon": 1.0}


def durations_from(path):
    """Mean step durations of a timeline site.yml wrote: each step's time since the node's previous event."""
    with open(path, encoding="utf-8") as handle:
        events = timeline.load(handle.read())
    gaps, last = {}, {}
    for item in events:
        if item["event"] == "plan":
            continue
        node = item["node"]
        if node in last:
            gaps.setdefault(item["event"], []).append(item["t"] - last[node])
        last[node] = item["t"]
    found = dict(DEFAULTS)
    found.update({k: round(statistics.mean(v), 2) for k, v in gaps.items() if k in DEFAULTS and v})
    # host_up carries the reboot's length
    if gaps.get("host_up"):
        found["host_reboot"] = round(statistics.mean(gaps["host_up"]), 2)
    return found


def rolling(nodes, batch, d):
    """site.yml today: node by node (batch nodes at a time); the host's preparation and the guest's packages while the
    guest serves, then one window per node that holds only what needs the guest stopped."""
    events, t = [], 0.0
    names = ["pve-%d" % i for i in range(1, nodes + 1)]
    for start in range(0, nodes, batch):
        ends = []
        for name in names[start:start + batch]:
            vmid = 100 + int(name.split("-")[1])
            now = t

            def add(event, guest=None, seconds=0.0, node=name):
                nonlocal now
                now += seconds
                events.append(timeline.event(node, event, guest, t=now))

            add("host_change", None, d["host_change"])
            add("guest_prepared", vmid, d["guest_prepared"])
            add("cordon", vmid)
            add("drain", vmid, d["drain"])
            add("guest_stop", vmid, d["guest_stop"])
            add("vm_config", vmid, d["vm_config"])
            add("host_reboot")
            add("host_up", None, d["host_reboot"])
            add("guest_start", vmid, d["guest_start"])
            add("ready", vmid, d["ready"])
            add("guest_verified", vmid, d["guest_verified"])
            add("labels", None, d["labels"])
            add("uncordon", vmid, d["uncordon"])
            add("done")
            ends.append(now)
        t = max(ends)
    return events


def link_ordered(nodes, d):
    """The chain before: the host link on every host at once (each agent dies with its host, undrained, and onboot
    starts it), then the VM link one VM at a time (drain, restart into the new config), then the guest link."""
    events = []
    names = ["pve-%d" % i for i in range(1, nodes + 1)]
    reboot_at = d["host_change"]
    up_at = reboot_at + d["host_reboot"]
    for name in names:
        vmid = 100 + int(name.split("-")[1])
        events += [timeline.event(name, "host_change", t=0.0), timeline.event(name, "host_reboot", t=reboot_at),
                   timeline.event(name, "guest_stop", vmid, "with its host, undrained", t=reboot_at),
                   timeline.event(name, "host_up", t=up_at),
                   timeline.event(name, "guest_start", vmid, "onboot", t=up_at + d["guest_start"]),
                   timeline.event(name, "ready", vmid, t=up_at + d["guest_start"] + d["ready"])]
    t = up_at + d["guest_start"] + d["ready"]
    for name in names:
        vmid = 100 + int(name.split("-")[1])
        for event, guest, seconds in (("cordon", vmid, 0.0), ("drain", vmid, d["drain"]),
                                      ("guest_stop", vmid, d["guest_stop"]), ("vm_config", vmid, d["vm_config"]),
                                      ("guest_start", vmid, d["guest_start"]), ("ready", vmid, d["ready"]),
                                      ("uncordon", vmid, d["uncordon"])):
            t += seconds
            events.append(timeline.event(name, event, guest, t=t))
    for name in names:
        vmid = 100 + int(name.split("-")[1])
        t += d["guest_verified"]
        events.append(timeline.event(name, "guest_verified", vmid, t=t))
        t += d["labels"]
        events += [timeline.event(name, "labels", t=t), timeline.event(name, "done", t=t)]
    return events


def not_ready(events):
    """Per guest the seconds its Kubernetes node was NotReady (guest_stop to ready), and the most nodes NotReady at
    once."""
    down, spans = {}, []
    for item in sorted(events, key=lambda e: e["t"]):
        if item["event"] == "guest_stop":
            down[item["guest"]] = item["t"]
        elif item["event"] == "ready" and item["guest"] in down:
            spans.append((item["guest"], down.pop(item["guest"]), item["t"]))
    per_guest = {}
    for guest, start, end in spans:
        per_guest[guest] = per_guest.get(guest, 0.0) + end - start
    edges = sorted([(s, 1) for _g, s, _e in spans] + [(e, -1) for _g, _s, e in spans])
    most = now = 0
    for _t, step in edges:
        now += step
        most = max(most, now)
    return per_guest, most


def hosts_down_at_once(events):
    edges = sorted([(e["t"], 1) for e in events if e["event"] == "host_reboot"]
                   + [(e["t"], -1) for e in events if e["event"] == "host_up"])
    most = now = 0
    for _t, step in edges:
        now += step
        most = max(most, now)
    return most


def guest_down(events):
    """Per guest the seconds it was down (each guest_stop to the next guest_start), summed over its windows."""
    stopped, total = {}, {}
    for item in sorted(events, key=lambda e: e["t"]):
        if item["event"] == "guest_stop":
            stopped[item["guest"]] = item["t"]
        elif item["event"] == "guest_start" and item["guest"] in stopped:
            total[item["guest"]] = total.get(item["guest"], 0.0) + item["t"] - stopped.pop(item["guest"])
    return total


def figures(name, events, nodes, agents, batch=1):
    stops = sum(1 for e in events if e["event"] == "guest_stop")
    per_guest, most = not_ready(events)
    cluster = {"name": "bench", "nodes": [{"name": "pve-%d" % i, "votes": 1} for i in range(1, nodes + 1)]}
    q = fleet.quorum(cluster)
    down = hosts_down_at_once(events)
    broken = timeline.validate(events, batch=batch, agents=agents)
    return {
        "chain": name, "nodes": nodes, "windows per agent": round(stops / nodes, 1),
        "guest down s per agent": round(statistics.mean(guest_down(events).values()), 1),
        "NotReady s per node": round(statistics.mean(per_guest.values()), 1),
        "NotReady nodes at once": most,
        "hosts down at once": "%d (quorum %s)" % (down, "kept" if down <= q["max_down"] else "LOST"),
        "run s": round(max(e["t"] for e in events) - min(e["t"] for e in events), 1),
        "rolling rules broken": len(broken),
    }


def table(rows):
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("| " + " | ".join(["---"] * len(keys)) + " |")
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, action="append", help="fleet sizes (default 3 and 50)")
    parser.add_argument("--batch", type=int, help="nodes per batch (default: 1 for 3 nodes, else what quorum allows)")
    parser.add_argument("--timeline", help="take the step durations from this site.yml timeline")
    args = parser.parse_args(argv)
    d = durations_from(args.timeline) if args.timeline else dict(DEFAULTS)
    print("step seconds:", ", ".join("%s %s" % kv for kv in d.items()))
    rows = []
    for nodes in args.nodes or [3, 50]:
        cluster = {"name": "bench", "nodes": [{"name": "pve-%d" % i, "votes": 1} for i in range(1, nodes + 1)]}
        allowed = fleet.max_batch(cluster, [m["name"] for m in cluster["nodes"]])
        batch = args.batch or (1 if nodes <= 3 else allowed)
        agents = [100 + i for i in range(1, nodes + 1)]
        ours = figures("rolling, batch %d (quorum allows %d)" % (batch, allowed), rolling(nodes, batch, d), nodes, agents,
                       batch)
        before = figures("link-ordered", link_ordered(nodes, d), nodes, agents)
        rows += [ours, before]
    table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
