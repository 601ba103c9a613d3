# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rolling chain's timeline: what happened on which node, when; its rules; the downtime windows it shows.

Pure Python, standard library only. ``site.yml -e site_timeline_file=PATH`` writes
``{"events": [{"t": <epoch seconds>, "node": "pve-1", "guest": 120 | null, "event": "<EVENTS>", "detail": "..."}]}``.

The rules ``validate`` checks (the rolling chain's promise, principle 4 of the architecture):

- per node, events come in the order of ``EVENTS`` (an event may repeat for several guests of the node, and any may
  be missing: no ``host_reboot`` when the host does not need one); ``done`` or ``failed`` ends the node;
- nodes roll in batches (``batch`` nodes at a time, in the order they first appear): no event of a node of the next
  batch before every node of this one is ``done``; after a ``failed`` no event of another node follows;
- each guest stops at most once and starts at most once in the whole run, its start after its stop (one downtime
  window per guest); ``agents`` names guests that must have exactly one stop and one start.

``plan`` events (the fleet plan read before anything changes) may come for every node at the start; they do not
open the node's turn.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time

# The host's preparation and the guest's packages come before the cordon, while the guests serve: the window holds
# only what needs them stopped. The VM config is written while the guest is stopped and before the host reboots: a
# guest with onboot set is started by the rebooted host itself, and must boot its new config then.
EVENTS = ("plan", "host_change", "guest_prepared", "cordon", "drain", "guest_stop", "vm_config", "host_reboot",
          "host_up", "guest_start", "ready", "guest_verified", "labels", "uncordon", "done", "failed")
RANK = {name: index for index, name in enumerate(EVENTS)}
GUEST_EVENTS = ("guest_stop", "vm_config", "guest_start", "guest_verified")
ENDS = ("done", "failed")


def event(node, name, guest=None, detail="", t=None):
    """One event; ``t`` defaults to now. An unknown event name raises ValueError."""
    if name not in RANK:
        raise ValueError("unknown timeline event %r; the events are %s" % (name, ", ".join(EVENTS)))
    return {"t": round(float(time.time() if t is None else t), 3), "node": None if node is None else str(node),
            "guest": None if guest in (None, "") else int(guest), "event": name, "detail": str(detail or "")}


def load(text):
    """The events of a timeline file's text, in time order (stable for equal times)."""
    data = json.loads(text)
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise ValueError('a timeline is {"events": [...]}')
    return sorted(events, key=lambda e: e.get("t", 0))


def dump(events):
    return json.dumps({"events": sorted(events, key=lambda e: e["t"])}, indent=2, sort_keys=True) + "\n"


def append(path, item):
    """Add ``item`` to the timeline file at ``path`` (created when missing): under an exclusive lock on a side file, so
    hosts of one batch may record at once, and by an atomic rename, so a reader never sees half a file."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    with open(path + ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        events = []
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            events = load(text) if text.strip() else []
        events.append(item)
        fd, tmp = tempfile.mkstemp(prefix=".timeline-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(dump(events))
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return len(events)


def _shape(index, item):
    problems = []
    if not isinstance(item, dict):
        return ["event %d is not an object" % index]
    if item.get("event") not in RANK:
        problems.append("event %d: unknown event %r" % (index, item.get("event")))
    if not isinstance(item.get("t"), (int, float)):
        problems.append("event %d: t must be epoch seconds, got %r" % (index, item.get("t")))
    if item.get("node") is not None and not isinstance(item.get("node"), str):
        problems.append("event %d: node must be a name or null" % index)
    if item.get("guest") is not None and not isinstance(item.get("guest"), int):
        problems.append("event %d: guest must be a VMID or null" % index)
    if item.get("event") in GUEST_EVENTS and item.get("guest") is None:
        problems.append("event %d: %s needs its guest" % (index, item.get("event")))
    return problems


def validate(events, batch=1, agents=()):
    """The broken rules as sentences; empty when the timeline keeps every rule."""
    problems = []
    for index, item in enumerate(events):
        problems.extend(_shape(index, item))
    if problems:
        return problems
    events = sorted(events, key=lambda e: e["t"])
    last_rank, ended, order = {}, {}, []
    for item in events:
        node, name = item["node"], item["event"]
        if node is None:
            if name != "plan":
                problems.append("%s at %.3f has no node" % (name, item["t"]))
            continue
        if name == "plan":
            if node in last_rank:
                problems.append("plan on %s after its window began" % node)
            continue
        if node not in last_rank:
            order.append(node)
            last_rank[node] = -1
        if node in ended:
            problems.append("%s on %s after its %s" % (name, node, ended[node]))
            continue
        if RANK[name] < last_rank[node] and name != "failed":
            problems.append("%s on %s after %s: out of order" % (name, node, EVENTS[last_rank[node]]))
        last_rank[node] = max(last_rank[node], RANK[name])
        if name in ENDS:
            ended[node] = name
        # this node's batch may start only when every node of the batches before it is done
        position = order.index(node)
        for earlier in order[:position - position % batch]:
            if ended.get(earlier) != "done":
                problems.append("%s on %s before %s was done" % (name, node, earlier))
                break
        failed = [other for other, how in ended.items() if how == "failed" and other != node]
        if failed and order.index(failed[0]) // batch != position // batch:
            problems.append("%s on %s after %s failed" % (name, node, failed[0]))
    stops, starts = {}, {}
    for item in events:
        if item["event"] == "guest_stop":
            stops.setdefault(item["guest"], []).append(item)
        elif item["event"] == "guest_start":
            starts.setdefault(item["guest"], []).append(item)
    for guest in sorted(set(stops) | set(starts)):
        if len(stops.get(guest, [])) > 1:
            problems.append("guest %s stopped %d times" % (guest, len(stops[guest])))
        if len(starts.get(guest, [])) > 1:
            problems.append("guest %s started %d times" % (guest, len(starts[guest])))
        if guest in starts and guest in stops and starts[guest][0]["t"] < stops[guest][0]["t"]:
            problems.append("guest %s started before it stopped" % guest)
    for guest in agents or ():
        guest = int(guest)
        if len(stops.get(guest, [])) != 1 or len(starts.get(guest, [])) != 1:
            problems.append("agent %s: %d stop(s) and %d start(s), one of each expected"
                            % (guest, len(stops.get(guest, [])), len(starts.get(guest, []))))
    return problems


def windows(events):
    """Per node, in the order the nodes rolled: ``{node, start, end, seconds, guests: {vmid: seconds}, reboot,
    status}``; a node's window runs from its first guest stop to its last guest start (None when no guest stopped)."""
    nodes = {}
    for item in sorted(events, key=lambda e: e["t"]):
        if item.get("node") is None or item["event"] == "plan":
            continue
        info = nodes.setdefault(item["node"], {"node": item["node"], "start": None, "end": None, "seconds": None,
                                               "guests": {}, "reboot": False, "status": "running",
                                               "first": item["t"], "last": item["t"]})
        info["last"] = item["t"]
        guest = item.get("guest")
        if item["event"] == "guest_stop":
            info["start"] = item["t"] if info["start"] is None else info["start"]
            info["guests"].setdefault(guest, {"stop": item["t"], "start": None})
        elif item["event"] == "guest_start":
            info["end"] = item["t"]
            info["guests"].setdefault(guest, {"stop": None, "start": None})["start"] = item["t"]
        elif item["event"] == "host_reboot":
            info["reboot"] = True
        elif item["event"] in ENDS:
            info["status"] = item["event"]
    result = []
    for info in nodes.values():
        if info["start"] is not None and info["end"] is not None:
            info["seconds"] = round(info["end"] - info["start"], 1)
        info["guests"] = {g: (round(w["start"] - w["stop"], 1) if w["stop"] is not None and w["start"] is not None else None)
                          for g, w in info["guests"].items()}
        result.append(info)
    return result


def _span(events, node, first, last, guest=None):
    """``{seconds, parts: [[event, seconds], ...]}`` from the node's ``first`` event to its ``last`` (of ``guest`` when
    given); each part is the time until that event was recorded, so it holds the step that ended with it. None while
    either end is missing."""
    mine = [e for e in sorted(events, key=lambda e: e["t"]) if e.get("node") == node and e["event"] != "plan"]
    starts = [i for i, e in enumerate(mine) if e["event"] == first and (guest is None or e.get("guest") == guest)]
    if not starts:
        return None
    # an end recorded without its guest (one per node) closes every guest's span
    ends = [i for i, e in enumerate(mine) if e["event"] == last and (guest is None or e.get("guest") in (guest, None))
            and i > starts[0]]
    if not ends:
        return None
    inside = mine[starts[0]:ends[0] + 1]
    parts = [[later["event"], round(later["t"] - earlier["t"], 1)] for earlier, later in zip(inside, inside[1:])]
    return {"seconds": round(inside[-1]["t"] - inside[0]["t"], 1), "parts": parts}


def downtime(events):
    """Per node, what its window cost, in the order the nodes rolled: ``{node, down: {vmid: span}, cordoned: {vmid:
    span}}``. ``down`` is a guest's ``guest_stop`` -> ``guest_start`` (the VM off), ``cordoned`` its node's ``cordon``
    -> ``uncordon`` (out of service); a span is ``_span``'s, None while it is open."""
    result = []
    for w in windows(events):
        node = w["node"]
        guests = sorted({e["guest"] for e in events if e.get("node") == node and e.get("guest") is not None
                         and e["event"] in ("guest_stop", "cordon")})
        result.append({"node": node,
                       "down": {g: _span(events, node, "guest_stop", "guest_start", g) for g in guests
                                if any(e["event"] == "guest_stop" and e.get("guest") == g for e in events)},
                       "cordoned": {g: _span(events, node, "cordon", "uncordon", g) for g in guests
                                    if any(e["event"] == "cordon" and e.get("guest") == g for e in events)}})
    return result


def _span_text(span):
    if span is None:
        return "open"
    return "%.1f s (%s)" % (span["seconds"], ", ".join("%s %.1f" % (name, seconds) for name, seconds in span["parts"]))


def window_lines(events):
    """The windows for humans: one line per node, then one per guest that went down or was cordoned, with the parts."""
    lines = []
    costs = {c["node"]: c for c in downtime(events)}
    for w in windows(events):
        guests = ", ".join("%s %s" % (g, "%.1f s" % s if s is not None else "not started") for g, s in w["guests"].items())
        lines.append("%s: %s; window %s%s; guests: %s; %.1f s in all" % (
            w["node"], w["status"], "%.1f s" % w["seconds"] if w["seconds"] is not None else "none",
            " (host rebooted)" if w["reboot"] else "", guests or "none stopped", w["last"] - w["first"]))
        cost = costs.get(w["node"]) or {"down": {}, "cordoned": {}}
        for guest, span in cost["down"].items():
            lines.append("  VM %s down %s" % (guest, _span_text(span)))
        for guest, span in cost["cordoned"].items():
            lines.append("  VM %s's node cordoned %s" % (guest, _span_text(span)))
    return lines
