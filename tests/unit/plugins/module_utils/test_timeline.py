"""timeline: events, the rolling chain's rules over them, and the downtime windows."""

import json

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import timeline

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
    import importlib.util
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    spec = importlib.util.spec_from_file_location("lab_chain", os.path.join(root, "lab", "chain.py"))
    chain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chain)
    monkeypatch.setattr(chain, "CHAIN_DIR", str(tmp_path))
    assert chain.print_timeline("site") == []
    (tmp_path / "site-timeline-site.json").write_text(timeline.dump(_node("chain-pve", 120, 1) + [
        timeline.event("chain-pve", "guest_stop", 120, t=30)]))
    lines = chain.print_timeline("site")
    assert lines[0].startswith("chain-pve: done; window 4.0 s (host rebooted); guests: 120")
    assert "RULE BROKEN: guest_stop on chain-pve after its done" in lines
    assert "RULE BROKEN: guest 120 stopped 2 times" in lines
    assert "timeline of the site run" in capsys.readouterr().out


def test_append_from_several_writers_keeps_every_event(tmp_path):
    import multiprocessing

    path = str(tmp_path / "timeline.json")

    def write(index):
        for number in range(10):
            timeline.append(path, timeline.event("pve-%d" % index, "plan", detail="write %d" % number))

    procs = [multiprocessing.Process(target=write, args=(i,)) for i in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    loaded = timeline.load((tmp_path / "timeline.json").read_text(encoding="utf-8"))
    assert len(loaded) == 40 and sorted({e["node"] for e in loaded}) == ["pve-0", "pve-1", "pve-2", "pve-3"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".timeline-")] == []


def test_append_refuses_a_file_that_is_no_timeline(tmp_path):
    path = tmp_path / "timeline.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="events"):
        timeline.append(str(path), timeline.event("pve-1", "done"))
    assert path.read_text() == "[1, 2]"
