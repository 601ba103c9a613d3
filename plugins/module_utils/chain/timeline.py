# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rolling chain's timeline: what happened on which node, when; its rules; the downtime windows it shows.

Pure Python (standard library and the collection's links). ``site.yml -e site_timeline_file=PATH`` writes
``{"events": [{"t": <epoch seconds>, "node": "pve-1", "guest": 120 | null, "event": "<EVENTS>", "detail": "..."}]}``:
the callback ``homelab.gpu_passthrough.timeline`` feeds what the run reports to a ``Recorder`` and writes its events.

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

import json
import time

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.links import to_bool

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


def _cost(events, node):
    """What ``node``'s window cost: ``{node, down: {vmid: span}, cordoned: {vmid: span}}`` (see ``downtime``)."""
    guests = sorted({e["guest"] for e in events if e.get("node") == node and e.get("guest") is not None
                     and e["event"] in ("guest_stop", "cordon")})
    return {"node": node,
            "down": {g: _span(events, node, "guest_stop", "guest_start", g) for g in guests
                     if any(e["event"] == "guest_stop" and e.get("guest") == g for e in events)},
            "cordoned": {g: _span(events, node, "cordon", "uncordon", g) for g in guests
                         if any(e["event"] == "cordon" and e.get("guest") == g for e in events)}}


def downtime(events, rolled=None):
    """Per node, what its window cost, in the order the nodes rolled: ``{node, down: {vmid: span}, cordoned: {vmid:
    span}}``. ``down`` is a guest's ``guest_stop`` -> ``guest_start`` (the VM off), ``cordoned`` its node's ``cordon``
    -> ``uncordon`` (out of service); a span is ``_span``'s, None while it is open. ``rolled``: ``windows(events)``
    when the caller has it already."""
    return [_cost(events, w["node"]) for w in (windows(events) if rolled is None else rolled)]


def _span_text(span):
    if span is None:
        return "open"
    return "%.1f s (%s)" % (span["seconds"], ", ".join("%s %.1f" % (name, seconds) for name, seconds in span["parts"]))


def window_lines(events):
    """The windows for humans: one line per node, then one per guest that went down or was cordoned, with the parts."""
    lines = []
    rolled = windows(events)
    costs = {c["node"]: c for c in downtime(events, rolled)}
    for w in rolled:
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


# ------------------------------------------------------------------------------------------------ recording a run
#
# A task declares the event it ends with in a task variable named ``<anything>_timeline_event`` (for example
# ``gpu_vm_timeline_event: guest_stop``); ``plan``, ``done`` and ``failed`` come from the run itself.

MARKER_SUFFIX = "_timeline_event"
MARKED = tuple(name for name in EVENTS if name != "plan" and name not in ENDS)
# the facts a detail is made of, kept per host as the run reports them (the latest wins)
KEPT_FACTS = ("proxmox_gpu_prep_reboot_required", "gpu_worker_report")
K8S_EVENTS = ("cordon", "drain", "ready", "uncordon")


def marker(task_vars, imported_with=()):
    """The event a task declares it ends with: the value of its own variable whose name ends in ``_timeline_event``,
    else of the ``import_tasks`` statements it was imported by (``imported_with``: their variables, nearest first; a
    static import's variables are its tasks' variables). None when there is none, or when the value is not the
    literal name of an event a task may end with."""
    for declared in (task_vars,) + tuple(imported_with):
        declared = declared if isinstance(declared, dict) else {}
        for name in sorted(declared, key=str):
            value = declared[name]
            if str(name).endswith(MARKER_SUFFIX) and isinstance(value, str) and value in MARKED:
                return str(value)
    return None


def _now(t):
    return time.time() if t is None else float(t)


def _loop_items(result):
    items = result.get("results")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def result_facts(result):
    """The facts a task result sets (``ansible_facts``, of the task or of each loop item; a later item wins)."""
    found = {}
    for item in [result] + _loop_items(result):
        facts = item.get("ansible_facts")
        if isinstance(facts, dict):
            found.update(facts)
    return found


def changed(result):
    """Whether a task result reports a change (a loop changed when one item did)."""
    if "changed" in result:
        return to_bool(result["changed"])
    return any(to_bool(item.get("changed")) for item in _loop_items(result))


def _guest(member):
    """The VMID of a rolling member that is an agent VM; None for a Proxmox host (or an agent without one)."""
    if member.get("part") != "agent" or isinstance(member.get("vmid"), bool):
        return None
    try:
        return int(member["vmid"])
    except (KeyError, TypeError, ValueError):
        return None


class Recorder:
    """The timeline of one playbook run, from what the run reports, as plain values (host names, result dicts, task
    variables, epoch seconds). Each method returns the events it recorded (also appended to ``events``).

    - ``ok`` of a result whose facts hold ``site_plan`` captures the fleet plan (the latest wins) and, when the plan is
      ok, records one ``plan`` event per node (once per node);
    - ``ok`` of a task that declares an event (``marker``) records it for the host's node when the host is a rolling
      member of the plan; ``host_reboot`` records ``host_reboot`` at the task's start and ``host_up`` at its end;
    - a node's turn opens at its first event other than ``plan``, or at the first result of one of its hosts in the
      rolling play (the first play to start after the one that captured the plan; ``play_start`` names the plays, and
      a play's serial batches share its name);
    - ``failed`` records ``failed`` once per node, for a member whose node's turn is open;
    - ``play_start`` and ``stats`` close the batch that ran: every node opened in it that has not ended is ``done``, at
      the time of the batch's last result, unless one of them failed.

    A node that is ``done`` or ``failed`` records nothing more."""

    def __init__(self):
        self.events = []
        self.members = None
        self._facts = {}
        self._started = {}
        self._planned = set()
        self._opened = set()
        self._ended = {}
        self._batch = []
        self._last = None
        self._play = None
        self._plan_play = None
        self._rolling_play = None

    # -- what the run reports

    def play_start(self, play_id=None):
        """A play starts, or the next serial batch of one: the batch that ran is closed."""
        closed = self._close()
        if self.members is not None and self._rolling_play is None and play_id is not None \
                and play_id != self._plan_play:
            self._rolling_play = play_id
        self._play = play_id
        return closed

    def stats(self):
        """The run ends: the batch that ran is closed."""
        return self._close()

    def task_start(self, host, task_id, name=None, t=None):
        """A task starts on ``host``; ``name`` is the event the task declares (only a reboot's start is kept)."""
        if name == "host_reboot":
            self._started[(host, task_id)] = _now(t)

    def skipped(self, host, task_id=None, t=None):
        self._last = _now(t)
        self._started.pop((host, task_id), None)
        self._open(self._member(host))
        return []

    def ok(self, host, result, name=None, task_id=None, t=None):
        """A task ended ok on ``host`` with ``result`` (its result dict); ``name`` is the event it declares."""
        t = self._last = _now(t)
        result = result if isinstance(result, dict) else {}
        facts = result_facts(result)
        kept = {key: facts[key] for key in KEPT_FACTS if key in facts}
        if kept:
            self._facts.setdefault(host, {}).update(kept)
        new = []
        if isinstance(facts.get("site_plan"), dict):
            self._plan_play = self._play
            new += self._plan(facts["site_plan"], t)
        started = self._started.pop((host, task_id), None)
        member = self._member(host)
        self._open(member)
        if name in MARKED and member is not None:
            new += self._marked(host, member, name, result, t if started is None else started, t)
        self.events.extend(new)
        return new

    def failed(self, host, task_name, msg, task_id=None, ignore_errors=False, t=None):
        """A task failed on ``host`` (or the host was unreachable): the first failure of an open node's turn."""
        t = self._last = _now(t)
        self._started.pop((host, task_id), None)
        member = self._member(host)
        if ignore_errors or member is None:
            return []
        self._open(member)
        node = member["node"]
        if node not in self._opened or node in self._ended:
            return []
        self._ended[node] = "failed"
        new = [event(node, "failed", _guest(member), "%s: %s" % (task_name or "", "" if msg is None else msg), t)]
        self.events.extend(new)
        return new

    # -- the rules

    def _member(self, host):
        """The host's entry of the plan's rolling members (with its node), None when it is none."""
        member = (self.members or {}).get(host)
        if not isinstance(member, dict) or member.get("node") in (None, ""):
            return None
        return dict(member, node=str(member["node"]))

    def _open(self, member, marked=False):
        """Open the member's node's turn: at its first marked event, or at any result in the rolling play."""
        if member is None or (not marked and (self._rolling_play is None or self._play != self._rolling_play)):
            return
        node = member["node"]
        if node not in self._opened and node not in self._ended:
            self._opened.add(node)
            self._batch.append(node)

    def _plan(self, plan, t):
        rolling = plan.get("rolling") if isinstance(plan.get("rolling"), dict) else {}
        members = rolling.get("members") if isinstance(rolling.get("members"), dict) else {}
        self.members = {str(host): member for host, member in members.items()}
        if not to_bool(plan.get("ok")):
            return []
        new = []
        for node, line in zip(plan.get("nodes") or [], plan.get("lines") or []):
            name = node.get("name") if isinstance(node, dict) else None
            if name in (None, "") or str(name) in self._planned or str(name) in self._opened:
                continue
            self._planned.add(str(name))
            new.append(event(name, "plan", detail=line, t=t))
        return new

    def _marked(self, host, member, name, result, started, t):
        node, guest = member["node"], _guest(member)
        if node in self._ended or (name in GUEST_EVENTS and guest is None):
            return []
        self._open(member, marked=True)
        if name == "host_reboot":
            return [event(node, "host_reboot", guest, t=started), event(node, "host_up", guest, t=t)]
        return [event(node, name, guest, self._detail(host, member, name, result), t)]

    def _detail(self, host, member, name, result):
        facts = self._facts.get(host, {})
        report = facts.get("gpu_worker_report") if isinstance(facts.get("gpu_worker_report"), dict) else {}
        if name == "host_change":
            return "reboot required: %s" % to_bool(facts.get("proxmox_gpu_prep_reboot_required"))
        if name in K8S_EVENTS:
            return str(member.get("k8s_node") or "")
        if name == "guest_stop":
            return "shut down" if changed(result) else "was stopped already"
        if name == "guest_start":
            return "started" if changed(result) else "running already (onboot)"
        if name == "vm_config":
            steps = result.get("plan") if isinstance(result.get("plan"), list) else []
            return ", ".join(str(step["action"]) for step in steps
                             if isinstance(step, dict) and step.get("action") is not None) or "no change"
        if name == "guest_verified":
            return str(report.get("render_node") or "")
        if name == "labels":
            labels = report.get("labels")
            return ", ".join(str(key) for key in labels) if isinstance(labels, dict) else ""
        return ""

    def _close(self):
        nodes, t = self._batch, self._last
        self._batch, self._last = [], None
        if any(self._ended.get(node) == "failed" for node in nodes):
            return []
        new = []
        for node in nodes:
            if node not in self._ended:
                self._ended[node] = "done"
                new.append(event(node, "done", t=t))
        self.events.extend(new)
        return new
