"""timeline: events, the rolling chain's rules over them, and the downtime windows."""

import json

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import timeline

FULL = ["host_change", "guest_prepared", "cordon", "drain", "guest_stop", "vm_config", "host_reboot", "host_up",
        "guest_start", "ready", "guest_verified", "labels", "uncordon", "done"]


def _node(node, guest, start, names=tuple(FULL)):
    return [timeline.event(node, name, guest if name in timeline.GUEST_EVENTS or name in ("cordon", "drain", "ready")
                           else None, t=start + i) for i, name in enumerate(names)]


def _fleet():
    events = [timeline.event(n, "plan", t=0.5) for n in ("pve-1", "pve-2", "pve-3")]
    events += _node("pve-1", 120, 1) + _node("pve-2", 121, 20) + _node("pve-3", 122, 40, [
        n for n in FULL if n not in ("host_reboot", "host_up")])
    return events


def test_a_rolling_run_keeps_every_rule():
    assert timeline.validate(_fleet(), agents=[120, 121, 122]) == []


def test_event_shape():
    item = timeline.event("pve-1", "guest_stop", "120", "shutdown", t=12.34567)
    assert item == {"t": 12.346, "node": "pve-1", "guest": 120, "event": "guest_stop", "detail": "shutdown"}
    with pytest.raises(ValueError, match="unknown timeline event 'reboot'"):
        timeline.event("pve-1", "reboot")
    assert timeline.validate([{"t": "x", "node": 1, "guest": "a", "event": "nope"}]) == [
        "event 0: unknown event 'nope'", "event 0: t must be epoch seconds, got 'x'", "event 0: node must be a name or null",
        "event 0: guest must be a VMID or null"]
    assert timeline.validate([{"t": 1, "node": "a", "guest": None, "event": "guest_stop"}]) == [
        "event 0: guest_stop needs its guest"]


def test_order_within_a_node():
    events = _node("pve-1", 120, 1)
    swapped = [dict(e) for e in events]
    # the host reboots before the guest stopped
    swapped[2]["t"], swapped[4]["t"] = swapped[4]["t"], swapped[2]["t"]
    assert any("out of order" in p for p in timeline.validate(swapped))
    # a repeated event for a second agent is fine
    two = events[:5] + [timeline.event("pve-1", "guest_stop", 125, t=5.5)] + events[5:]
    assert timeline.validate(two) == []


def test_nothing_after_done_or_after_a_failure():
    events = _node("pve-1", 120, 1) + [timeline.event("pve-1", "labels", t=100)]
    assert timeline.validate(events) == ["labels on pve-1 after its done"]
    failed = _node("pve-1", 120, 1, FULL[:5] + ["failed"]) + _node("pve-2", 121, 20)
    problems = timeline.validate(failed)
    assert "host_change on pve-2 before pve-1 was done" in problems
    assert "host_change on pve-2 after pve-1 failed" in problems


def test_the_next_node_waits_for_done():
    events = _node("pve-1", 120, 1) + _node("pve-2", 121, 5)  # pve-2 cordoned while pve-1 still in its window
    assert "cordon on pve-2 before pve-1 was done" in timeline.validate(events)
    # in batches of two the pair may overlap, the third may not start before both are done
    pair = _node("pve-1", 120, 1) + _node("pve-2", 121, 1.5) + _node("pve-3", 122, 15)
    assert timeline.validate(pair, batch=2) == []
    early = _node("pve-1", 120, 1) + _node("pve-2", 121, 1.5) + _node("pve-3", 122, 14.2)
    assert timeline.validate(early, batch=2) == ["host_change on pve-3 before pve-2 was done"]


def test_one_stop_and_one_start_per_guest():
    events = _fleet() + [timeline.event("pve-1", "guest_stop", 120, t=10.5)]
    assert "guest 120 stopped 2 times" in timeline.validate(events)
    # the old link-ordered chain restarts each agent twice: stop, start, stop, start
    twice = _node("pve-1", 120, 1, ["guest_stop", "guest_start", "cordon", "drain", "guest_stop", "vm_config", "guest_start",
                                    "done"])
    problems = timeline.validate(twice, agents=[120])
    assert "guest 120 stopped 2 times" in problems and "guest 120 started 2 times" in problems
    assert "agent 120: 2 stop(s) and 2 start(s), one of each expected" in problems
    missing = [e for e in _fleet() if not (e["event"] == "guest_start" and e["guest"] == 121)]
    assert timeline.validate(missing, agents=[121]) == ["agent 121: 1 stop(s) and 0 start(s), one of each expected"]


def test_plan_events():
    late_plan = _node("pve-1", 120, 1) + [timeline.event("pve-1", "plan", t=50)]
    assert timeline.validate(late_plan) == ["plan on pve-1 after its window began"]
    assert timeline.validate([timeline.event(None, "plan", t=1)]) == []
    assert timeline.validate([timeline.event(None, "cordon", t=1)]) == ["cordon at 1.000 has no node"]


def test_windows_per_node():
    found = timeline.windows(_fleet())
    assert [w["node"] for w in found] == ["pve-1", "pve-2", "pve-3"]
    first = found[0]
    # guest_stop at t=5, guest_start at t=9
    assert (first["start"], first["end"], first["seconds"], first["guests"], first["reboot"], first["status"]) == (
        5, 9, 4.0, {120: 4.0}, True, "done")
    assert found[2]["reboot"] is False and found[2]["seconds"] == 2.0
    lines = timeline.window_lines(_fleet())
    assert lines[0] == "pve-1: done; window 4.0 s (host rebooted); guests: 120 4.0 s; 13.0 s in all"
    assert lines[1] == "  VM 120 down 4.0 s (vm_config 1.0, host_reboot 1.0, host_up 1.0, guest_start 1.0)"
    assert lines[2] == ("  VM 120's node cordoned 10.0 s (drain 1.0, guest_stop 1.0, vm_config 1.0, host_reboot 1.0, "
                        "host_up 1.0, guest_start 1.0, ready 1.0, guest_verified 1.0, labels 1.0, uncordon 1.0)")
    assert lines[6] == "pve-3: done; window 2.0 s; guests: 122 2.0 s; 11.0 s in all"
    quiet = timeline.window_lines([timeline.event("pve-9", "done", t=1)])
    assert quiet == ["pve-9: done; window none; guests: none stopped; 0.0 s in all"]


def test_downtime_spans_and_their_parts():
    events = _node("pve-1", 120, 1)
    # preparation before the cordon is in neither span
    slow_prep = [dict(e, t=e["t"] + (100 if e["event"] != "host_change" else 0)) for e in events]
    cost = timeline.downtime(slow_prep)[0]
    assert cost["node"] == "pve-1" and cost["down"][120]["seconds"] == 4.0 and cost["cordoned"][120]["seconds"] == 10.0
    assert [name for name, _seconds in cost["down"][120]["parts"]] == ["vm_config", "host_reboot", "host_up", "guest_start"]
    assert sum(seconds for _name, seconds in cost["cordoned"][120]["parts"]) == 10.0
    # a window still open (no start yet) has no span, and a node that stopped nothing has none
    open_window = [e for e in events if e["event"] not in ("guest_start", "uncordon")]
    assert timeline.downtime(open_window)[0] == {"node": "pve-1", "down": {120: None}, "cordoned": {120: None}}
    assert timeline.downtime(_node("pve-2", 121, 1, ["host_change", "done"])) == [{"node": "pve-2", "down": {}, "cordoned": {}}]


def test_dump_and_load_round_trip():
    events = _fleet()
    text = timeline.dump(list(reversed(events)))  # plan events share a time: order by time only
    assert json.loads(text)["events"][0]["event"] == "plan"
    loaded = timeline.load(text)
    assert [e["t"] for e in loaded] == sorted(e["t"] for e in events)
    assert sorted(map(json.dumps, loaded)) == sorted(json.dumps(e, sort_keys=True) for e in events)
    with pytest.raises(ValueError, match="events"):
        timeline.load("[]")


def test_the_lab_prints_the_windows(tmp_path, monkeypatch, capsys):
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    monkeypatch.syspath_prepend(os.path.join(root, "lab"))
    import chainlab
    from chainlab import verdicts

    monkeypatch.setattr(chainlab, "CHAIN_DIR", str(tmp_path))
    assert verdicts.print_timeline("site") == []
    (tmp_path / "site-timeline-site.json").write_text(timeline.dump(_node("chain-pve", 120, 1) + [
        timeline.event("chain-pve", "guest_stop", 120, t=30)]))
    lines = verdicts.print_timeline("site")
    assert lines[0].startswith("chain-pve: done; window 4.0 s (host rebooted); guests: 120")
    assert "RULE BROKEN: guest_stop on chain-pve after its done" in lines
    assert "RULE BROKEN: guest 120 stopped 2 times" in lines
    assert "timeline of the site run" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ recording a run

MEMBERS = {
    "pve-1": {"node": "pve-1", "part": "host", "vmid": None, "k8s_node": None},
    "agent-1": {"node": "pve-1", "part": "agent", "vmid": 120, "k8s_node": "k3s-agent-1"},
    "pve-2": {"node": "pve-2", "part": "host", "vmid": None, "k8s_node": None},
    "agent-2": {"node": "pve-2", "part": "agent", "vmid": 121, "k8s_node": "k3s-agent-2"},
}
PLAN = {"ok": True, "nodes": [{"name": "pve-1"}, {"name": "pve-2"}],
        "lines": ["pve-1: host reboots; VM 120 stops", "pve-2: VM 121 stops"], "rolling": {"members": MEMBERS}}


def _planned():
    rec = timeline.Recorder()
    rec.play_start()
    rec.ok("pve-1", {"ansible_facts": {"site_plan": PLAN}}, t=1)
    rec.play_start()
    return rec


def _window(rec, host, agent, start, reboot=True):
    """One node's window as site.yml's marked tasks report it, one second apart from ``start``."""
    clock = iter(range(start, start + 100))
    rec.ok(host, {"ansible_facts": {"proxmox_gpu_prep_reboot_required": "true" if reboot else False}}, t=next(clock))
    rec.ok(host, {"changed": True}, "host_change", t=next(clock))
    rec.ok(agent, {}, "guest_prepared", t=next(clock))
    rec.ok(agent, {}, "cordon", t=next(clock))
    rec.ok(agent, {}, "drain", t=next(clock))
    rec.ok(agent, {"changed": True}, "guest_stop", t=next(clock))
    rec.ok(agent, {"changed": True, "plan": [{"action": "machine q35"}, {"action": "hostpci0"}]}, "vm_config", t=next(clock))
    if reboot:
        rec.task_start(host, "reboot-" + host, "host_reboot", t=next(clock))
        rec.ok(host, {"changed": True}, "host_reboot", "reboot-" + host, t=next(clock) + 0.5)
    rec.ok(agent, {"changed": False}, "guest_start", t=next(clock))
    rec.ok(agent, {}, "ready", t=next(clock))
    rec.ok(agent, {"ansible_facts": {"gpu_worker_report": {"render_node": "/dev/dri/renderD128",
                                                           "labels": {"gpu.intel.com/i915": "true", "gpu": "uhd630"}}}},
           t=next(clock))
    rec.ok(agent, {}, "guest_verified", t=next(clock))
    rec.ok(agent, {}, "labels", t=next(clock))
    rec.ok(agent, {}, "uncordon", t=next(clock))
    rec.skipped(host, t=next(clock))
    return next(clock) - 1


def test_marker_is_the_literal_event_of_a_timeline_event_variable():
    assert timeline.marker({"gpu_vm_timeline_event": "guest_stop", "other": "cordon"}) == "guest_stop"
    assert timeline.marker({"proxmox_gpu_prep_timeline_event": "host_change"}) == "host_change"
    # unknown names, non-strings, templates and the run's own events declare nothing
    for value in ("reboot", 3, None, ["cordon"], "{{ x }}", "plan", "done", "failed"):
        assert timeline.marker({"x_timeline_event": value}) is None
    assert timeline.marker({"timeline_event_x": "cordon"}) is None
    assert timeline.marker(None) is None and timeline.marker("guest_stop") is None
    # two declarations: the first by variable name
    assert timeline.marker({"b_timeline_event": "drain", "a_timeline_event": "cordon"}) == "cordon"
    # the import_tasks statements a task was imported by, nearest first; the task's own declaration first
    assert timeline.marker({}, [{"x": 1}, {"gpu_vm_timeline_event": "vm_config"}]) == "vm_config"
    assert timeline.marker({"a_timeline_event": "drain"}, [{"gpu_vm_timeline_event": "vm_config"}]) == "drain"
    assert timeline.marker(None, [None, {"a_timeline_event": "nope"}]) is None


def test_the_plan_records_one_event_per_node_once():
    rec = timeline.Recorder()
    assert rec.ok("pve-1", {"ansible_facts": {"other": 1}}, t=0.5) == [] and rec.members is None
    first = rec.ok("pve-1", {"ansible_facts": {"site_plan": PLAN}}, t=1)
    assert [(e["node"], e["event"], e["detail"], e["t"]) for e in first] == [
        ("pve-1", "plan", "pve-1: host reboots; VM 120 stops", 1.0), ("pve-2", "plan", "pve-2: VM 121 stops", 1.0)]
    # set on every host, or read again: the latest members win, the plan events stay one per node
    moved = dict(PLAN, rolling={"members": {"agent-9": dict(MEMBERS["agent-1"], vmid=129)}})
    assert rec.ok("pve-2", {"ansible_facts": {"site_plan": moved}}, t=2) == []
    assert rec.members == moved["rolling"]["members"]
    assert rec.ok("agent-1", {}, "cordon", t=3) == []
    assert [e["guest"] for e in rec.ok("agent-9", {}, "cordon", t=4)] == [129]
    # a plan that refused records no plan event; a loop's items set facts too
    refused = timeline.Recorder()
    assert refused.ok("pve-1", {"results": [{"ansible_facts": {"site_plan": dict(PLAN, ok="false")}}]}, t=1) == []
    assert refused.members == MEMBERS and refused.events == []


def test_two_batches_keep_every_rule():
    rec = _planned()
    last = _window(rec, "pve-1", "agent-1", 10)
    done = rec.play_start()
    assert [(e["node"], e["event"], e["t"]) for e in done] == [("pve-1", "done", float(last))]
    # a later play touching a node that is done records nothing for it
    assert rec.ok("agent-1", {}, "labels", t=40) == []
    last = _window(rec, "pve-2", "agent-2", 50, reboot=False)
    assert [e["event"] for e in rec.stats()] == ["done"]
    assert rec.stats() == []
    assert timeline.validate(rec.events, agents=[120, 121]) == []
    one = [(e["event"], e["guest"], e["detail"]) for e in rec.events if e["node"] == "pve-1"]
    assert one == [
        ("plan", None, "pve-1: host reboots; VM 120 stops"),
        ("host_change", None, "reboot required: True"),
        ("guest_prepared", 120, ""),
        ("cordon", 120, "k3s-agent-1"),
        ("drain", 120, "k3s-agent-1"),
        ("guest_stop", 120, "shut down"),
        ("vm_config", 120, "machine q35, hostpci0"),
        ("host_reboot", None, ""),
        ("host_up", None, ""),
        ("guest_start", 120, "running already (onboot)"),
        ("ready", 120, "k3s-agent-1"),
        ("guest_verified", 120, "/dev/dri/renderD128"),
        ("labels", 120, "gpu.intel.com/i915, gpu"),
        ("uncordon", 120, "k3s-agent-1"),
        ("done", None, ""),
    ]
    reboot = {e["event"]: e["t"] for e in rec.events if e["node"] == "pve-1"}
    # the reboot from the task's start to its end
    assert (reboot["vm_config"], reboot["host_reboot"], reboot["host_up"]) == (16.0, 17.0, 18.5)
    two = [e for e in rec.events if e["node"] == "pve-2"]
    assert two[1]["detail"] == "reboot required: False" and "host_reboot" not in [e["event"] for e in two]
    assert two[-1]["t"] == float(last)
    windows = {w["node"]: w for w in timeline.windows(rec.events)}
    assert windows["pve-1"]["reboot"] and windows["pve-1"]["status"] == "done"


def test_details_from_defaults():
    rec = _planned()
    rec.ok("pve-1", {}, "host_change", t=2)
    rec.ok("agent-1", {}, "vm_config", t=3)
    rec.ok("agent-1", {"plan": []}, "vm_config", t=3.5)
    rec.ok("agent-1", {"changed": False}, "guest_stop", t=4)
    rec.ok("agent-1", {"results": [{"changed": False}, {"changed": True}]}, "guest_start", t=5)
    rec.ok("agent-1", {}, "guest_verified", t=6)
    rec.ok("agent-1", {}, "labels", t=7)
    assert [e["detail"] for e in rec.events[2:]] == ["reboot required: False", "no change", "no change",
                                                     "was stopped already", "started", "", ""]


def test_a_failure_ends_its_node_once_and_the_batch_is_not_done():
    rec = _planned()
    _window(rec, "pve-1", "agent-1", 10)
    rec.play_start()
    # ignored errors and failures before the node's turn record nothing
    assert rec.failed("agent-2", "Probe", "no answer", ignore_errors=True, t=49) == []
    assert rec.failed("agent-2", "Install the guest's packages", "apt failed", t=49.5) == []
    for name, t in (("host_change", 50), ("cordon", 51), ("drain", 52)):
        rec.ok("pve-2" if name == "host_change" else "agent-2", {}, name, t=t)
    rec.ok("agent-2", {"changed": True}, "guest_stop", t=53)
    failed = rec.failed("agent-2", "Write the agent VM's config", "PUT refused", t=54)
    assert [(e["node"], e["event"], e["guest"], e["detail"]) for e in failed] == [
        ("pve-2", "failed", 121, "Write the agent VM's config: PUT refused")]
    # the rescue fails again, the host fails too, a later marker: nothing more for the node
    assert rec.failed("agent-2", "Start the agent VM this window stopped", "boom", t=55) == []
    assert rec.failed("pve-2", "Reboot", None, t=56) == []
    assert rec.ok("agent-2", {"changed": True}, "guest_start", t=57) == []
    assert rec.stats() == []
    assert [e["event"] for e in rec.events if e["node"] == "pve-2"][-1] == "failed"
    assert timeline.validate(rec.events) == []
    # a host failure records no guest
    other = _planned()
    other.ok("pve-1", {}, "host_change", t=2)
    assert [(e["guest"], e["detail"]) for e in other.failed("pve-1", "Reboot", "timed out", t=3)] == [(None, "Reboot: timed out")]


def test_one_failed_node_leaves_its_batch_mates_open():
    rec = _planned()
    rec.ok("pve-1", {}, "host_change", t=2)
    rec.ok("pve-2", {}, "host_change", t=3)
    rec.failed("pve-2", "Prepare", "refused", t=4)
    assert rec.play_start() == [] and rec.stats() == []
    assert [e["event"] for e in rec.events if e["node"] == "pve-1"] == ["plan", "host_change"]


def test_who_counts():
    rec = timeline.Recorder()
    # before the plan nothing counts
    assert rec.ok("agent-1", {}, "cordon", t=0.5) == [] and rec.failed("agent-1", "t", "m", t=0.6) == []
    rec = _planned()
    # a host the plan does not roll, an undeclared task, a guest event without a guest
    assert rec.ok("controller", {}, "cordon", t=2) == []
    assert rec.ok("agent-1", {"changed": True}, None, t=3) == []
    rec.members["agent-1"] = dict(MEMBERS["agent-1"], vmid=None)
    assert rec.ok("agent-1", {}, "guest_stop", t=4) == []
    assert rec.failed("controller", "t", "m", t=5) == []
    assert rec.play_start() == [] and [e["event"] for e in rec.events] == ["plan", "plan"]
