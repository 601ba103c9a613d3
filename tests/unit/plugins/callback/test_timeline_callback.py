# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The timeline callback driven as a run drives it: real hosts, tasks (with their variables) and task results, a
clock that ticks one second per result, and the file it writes."""

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import types

import pytest
import yaml
from ansible import constants as C
from ansible import context
from ansible.executor.task_result import TaskResult
from ansible.inventory.host import Host
from ansible.module_utils.common.collections import ImmutableDict
from ansible.playbook.block import Block
from ansible.playbook.task import Task
from ansible.playbook.task_include import TaskInclude
from ansible_collections.homelab.gpu_passthrough.plugins.callback import timeline as callback
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import timeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SHIM = os.path.join(ROOT, "playbooks", "callback_plugins", "site_timeline.py")
NAME = "homelab.gpu_passthrough.timeline"

MEMBERS = {
    "pve-1": {"node": "pve-1", "part": "host", "vmid": None, "k8s_node": None, "pve_node": "pve-1"},
    "agent-1": {"node": "pve-1", "part": "agent", "vmid": 120, "k8s_node": "k3s-agent-1", "pve_node": "pve-1"},
    "pve-2": {"node": "pve-2", "part": "host", "vmid": None, "k8s_node": None, "pve_node": "pve-2"},
    "agent-2": {"node": "pve-2", "part": "agent", "vmid": 121, "k8s_node": "k3s-agent-2", "pve_node": "pve-2"},
}
PLAN = {"ok": True, "nodes": [{"name": "pve-1", "reboot": True}, {"name": "pve-2", "reboot": False}],
        "lines": ["pve-1: host reboots; VM 120 stops", "pve-2: VM 121 stops"], "rolling": {"members": MEMBERS}}


def _shim_module():
    spec = importlib.util.spec_from_file_location("site_timeline_shim", SHIM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Options declared as the plugin loader declares them (from DOCUMENTATION), no check mode, a clock, no writer."""
    for name, module in ((NAME, callback), ("site_timeline", _shim_module())):
        C.config.initialize_plugin_configuration_definitions("callback", name, yaml.safe_load(module.DOCUMENTATION)["options"])
    monkeypatch.delenv("GPU_PASSTHROUGH_TIMELINE_FILE", raising=False)
    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(check=False))
    clock = {"now": 1000.0}

    def tick():
        clock["now"] += 1
        return clock["now"]

    monkeypatch.setattr(callback, "time", types.SimpleNamespace(time=tick))
    monkeypatch.setattr(callback.CallbackModule, "_writer", None)
    yield


class Play:
    """What the callback reads of a play: its variable manager's extra vars and its id."""

    def __init__(self, extra_vars, uuid="play"):
        self._manager = types.SimpleNamespace(extra_vars=dict(extra_vars))
        self._uuid = uuid

    def get_variable_manager(self):
        return self._manager


def make(cls=None, name=NAME):
    cb = (cls or callback.CallbackModule)()
    cb._load_name = name
    cb.set_options()
    return cb


class Run:
    """Sends a run's callbacks to every callback that is not disabled, as the task queue manager does."""

    def __init__(self, *callbacks, **extra_vars):
        self.callbacks = list(callbacks)
        self.play = Play(extra_vars)
        self.send("v2_playbook_on_start", object())

    def send(self, method, *args, **kwargs):
        for cb in self.callbacks:
            if not cb.disabled:
                getattr(cb, method)(*args, **kwargs)

    def play_start(self, uuid=None):
        """A play starts (a new one when ``uuid`` is given), or the next serial batch of the current one."""
        if uuid is not None:
            self.play = Play(self.play.get_variable_manager().extra_vars, uuid)
        self.send("v2_playbook_on_play_start", self.play)

    def task(self, host, name="A task", data=None, how="ok", ignore_errors=False, **task_vars):
        task = Task()
        task.name = name
        task.vars = task_vars
        self.send("v2_runner_on_start", Host(host), task)
        result = TaskResult(Host(host), task, dict(data or {}), {})
        if how == "failed":
            self.send("v2_runner_on_failed", result, ignore_errors=ignore_errors)
        else:
            self.send("v2_runner_on_" + how, result)

    def mark(self, host, event, data=None, name=None):
        self.task(host, name or "Step " + event, data, gpu_vm_timeline_event=event)

    def stats(self):
        self.send("v2_playbook_on_stats", object())


def _plan_play(run):
    run.play_start()
    run.task("pve-1", "Plan the fleet", {"ansible_facts": {"site_plan": PLAN}, "changed": False})


def _window(run, host, agent, reboot=True):
    run.task(host, "Publish the reboot", {"ansible_facts": {"proxmox_gpu_prep_reboot_required": "True" if reboot else "False"}})
    run.task(host, "Prepare", {"changed": True}, proxmox_gpu_prep_timeline_event="host_change")
    for event in ("guest_prepared", "cordon", "drain"):
        run.mark(agent, event)
    run.mark(agent, "guest_stop", {"changed": True})
    run.mark(agent, "vm_config", {"changed": True, "plan": [{"action": "machine q35"}, {"action": "hostpci0 mapping=igpu"}]})
    if reboot:
        run.task(host, "Reboot", {"changed": True}, proxmox_gpu_prep_timeline_event="host_reboot")
    else:
        run.task(host, "Reboot", {"skipped": True}, how="skipped", proxmox_gpu_prep_timeline_event="host_reboot")
    run.mark(agent, "guest_start", {"changed": True})
    run.mark(agent, "ready")
    run.task(agent, "Report", {"ansible_facts": {"gpu_worker_report": {
        "render_node": "/dev/dri/renderD128", "labels": {"gpu.intel.com/i915": "true", "homelab/gpu": "uhd630"}}}})
    run.mark(agent, "guest_verified")
    run.mark(agent, "labels")
    run.mark(agent, "uncordon")
    run.task(host, "Quorate again", {"changed": False})


def _events(path):
    return timeline.load(path.read_text(encoding="utf-8"))


def test_two_batches_make_a_timeline_that_keeps_every_rule(tmp_path):
    path = tmp_path / "timeline.json"
    run = Run(make(), site_timeline_file=str(path))
    _plan_play(run)
    run.play_start()  # the rolling play's first batch
    _window(run, "pve-1", "agent-1")
    # written after every event: the file is readable mid-run
    assert [e["event"] for e in _events(path)][-1] == "uncordon"
    run.play_start()  # the second batch
    _window(run, "pve-2", "agent-2", reboot=False)
    run.play_start()  # the summary play
    run.task("pve-1", "Summary", {})
    run.stats()

    events = _events(path)
    assert timeline.validate(events, agents=[120, 121]) == []
    assert [(e["node"], e["event"], e["guest"], e["detail"]) for e in events] == [
        ("pve-1", "plan", None, "pve-1: host reboots; VM 120 stops"),
        ("pve-2", "plan", None, "pve-2: VM 121 stops"),
        ("pve-1", "host_change", None, "reboot required: True"),
        ("pve-1", "guest_prepared", 120, ""),
        ("pve-1", "cordon", 120, "k3s-agent-1"),
        ("pve-1", "drain", 120, "k3s-agent-1"),
        ("pve-1", "guest_stop", 120, "shut down"),
        ("pve-1", "vm_config", 120, "machine q35, hostpci0 mapping=igpu"),
        ("pve-1", "host_reboot", None, ""),
        ("pve-1", "host_up", None, ""),
        ("pve-1", "guest_start", 120, "started"),
        ("pve-1", "ready", 120, "k3s-agent-1"),
        ("pve-1", "guest_verified", 120, "/dev/dri/renderD128"),
        ("pve-1", "labels", 120, "gpu.intel.com/i915, homelab/gpu"),
        ("pve-1", "uncordon", 120, "k3s-agent-1"),
        ("pve-1", "done", None, ""),
        ("pve-2", "host_change", None, "reboot required: False"),
        ("pve-2", "guest_prepared", 121, ""),
        ("pve-2", "cordon", 121, "k3s-agent-2"),
        ("pve-2", "drain", 121, "k3s-agent-2"),
        ("pve-2", "guest_stop", 121, "shut down"),
        ("pve-2", "vm_config", 121, "machine q35, hostpci0 mapping=igpu"),
        ("pve-2", "guest_start", 121, "started"),
        ("pve-2", "ready", 121, "k3s-agent-2"),
        ("pve-2", "guest_verified", 121, "/dev/dri/renderD128"),
        ("pve-2", "labels", 121, "gpu.intel.com/i915, homelab/gpu"),
        ("pve-2", "uncordon", 121, "k3s-agent-2"),
        ("pve-2", "done", None, ""),
    ]
    at = {(e["node"], e["event"]): e["t"] for e in events}
    # one tick per callback: the reboot runs from its task's start (one tick before its end) to its end
    assert at[("pve-1", "host_up")] - at[("pve-1", "host_reboot")] == 1.0
    assert at[("pve-1", "host_reboot")] - at[("pve-1", "vm_config")] == 1.0
    # done at the batch's last result (the host's "Quorate again"), not when the next play starts
    assert at[("pve-1", "done")] - at[("pve-1", "uncordon")] == 2.0
    assert at[("pve-2", "host_change")] > at[("pve-1", "done")]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["timeline.json"]


def test_a_failure_in_batch_2_is_recorded_once_and_its_node_is_not_done(tmp_path):
    path = tmp_path / "timeline.json"
    run = Run(make(), site_timeline_file=str(path))
    _plan_play(run)
    run.play_start()
    _window(run, "pve-1", "agent-1")
    run.play_start()
    run.task("agent-2", "Probe the guest", {"msg": "no answer"}, how="failed", ignore_errors=True)
    run.task("pve-2", "Prepare", {"changed": True}, proxmox_gpu_prep_timeline_event="host_change")
    run.mark("agent-2", "cordon")
    run.mark("agent-2", "drain")
    run.mark("agent-2", "guest_stop", {"changed": True})
    run.task("agent-2", "Write the agent VM's config", {"msg": "PUT /qemu/121/config refused"}, how="failed",
             gpu_vm_timeline_event="vm_config")
    # the rescue starts the guest again, and fails later on
    run.task("agent-2", "Start the agent VM this window stopped", {"changed": True}, gpu_vm_timeline_event="guest_start")
    run.task("agent-2", "Stop the run", {"msg": "The rolling chain stopped on node pve-2"}, how="failed")
    run.stats()

    events = _events(path)
    two = [(e["event"], e["guest"], e["detail"]) for e in events if e["node"] == "pve-2"]
    assert two == [("plan", None, "pve-2: VM 121 stops"), ("host_change", None, "reboot required: False"),
                   ("cordon", 121, "k3s-agent-2"), ("drain", 121, "k3s-agent-2"), ("guest_stop", 121, "shut down"),
                   ("failed", 121, "Write the agent VM's config: PUT /qemu/121/config refused")]
    assert [e["event"] for e in events if e["node"] == "pve-1"][-1] == "done"
    assert timeline.validate(events) == []


def _imported(name, action, **statement_vars):
    """A task of a file that the ``action`` statement (with ``statement_vars``) brought in, inside a block."""
    statement = TaskInclude()
    statement.action = action
    statement.vars = statement_vars
    task = Task(block=Block(task_include=statement))
    task.name = name
    task.vars = {}
    return task


def test_a_declaration_on_import_tasks_counts_for_the_imported_task(tmp_path):
    path = tmp_path / "timeline.json"
    run = Run(make(), site_timeline_file=str(path))
    _plan_play(run)
    run.play_start()
    run.task("pve-1", "Prepare", {}, proxmox_gpu_prep_timeline_event="host_change")
    # gpu_vm's apply: "import_tasks: q35.yml" with gpu_vm_timeline_event: vm_config; the one task of q35.yml ends ok
    q35 = _imported("Ask Proxmox VE for the VM's config", "ansible.builtin.import_tasks", gpu_vm_timeline_event="vm_config")
    run.send("v2_runner_on_ok", TaskResult(Host("agent-1"), q35, {"plan": [{"action": "machine q35"}]}, {}))
    # a dynamic include reports ok before its tasks run, and its tasks are not declared by it
    include = TaskInclude()
    include.action = "ansible.builtin.include_role"
    include.name = "Stop the agent"
    include.vars = {"gpu_vm_timeline_event": "guest_stop"}
    run.send("v2_runner_on_ok", TaskResult(Host("agent-1"), include, {}, {}))
    inner = _imported("Shut down", "ansible.builtin.include_role", gpu_vm_timeline_event="guest_stop")
    run.send("v2_runner_on_ok", TaskResult(Host("agent-1"), inner, {"changed": True}, {}))
    assert [(e["event"], e["detail"]) for e in _events(path) if e["event"] != "plan"] == [
        ("host_change", "reboot required: False"), ("vm_config", "machine q35")]


def test_an_unreachable_host_fails_its_node(tmp_path):
    path = tmp_path / "timeline.json"
    run = Run(make(), site_timeline_file=str(path))
    _plan_play(run)
    run.play_start()
    run.task("pve-1", "Prepare", {}, proxmox_gpu_prep_timeline_event="host_change")
    run.task("pve-1", "Reboot", {"msg": "ssh: connection refused", "unreachable": True}, how="unreachable")
    run.stats()
    assert [(e["event"], e["detail"]) for e in _events(path)][-1] == ("failed", "Reboot: ssh: connection refused")


def test_nothing_counts_but_ok_results_of_rolling_members(tmp_path):
    path = tmp_path / "timeline.json"
    run = Run(make(), site_timeline_file=str(path))
    run.play_start()
    run.mark("agent-1", "cordon")  # before the plan
    run.task("agent-1", "Early", {"msg": "x"}, how="failed")
    run.task("pve-1", "Plan the fleet", {"ansible_facts": {"site_plan": PLAN}})
    run.play_start()
    run.mark("controller", "cordon")  # not a member
    run.task("agent-1", "Drain", {"skipped": True}, how="skipped", gpu_vm_timeline_event="drain")
    run.task("agent-1", "Template", {}, gpu_vm_timeline_event="{{ site_event }}")
    run.task("agent-1", "Failure before the node's turn", {"msg": "x"}, how="failed")
    run.task("agent-1", "Undeclared", {"changed": True})
    run.mark("agent-2", "cordon")
    run.stats()
    assert [(e["node"], e["event"]) for e in _events(path)] == [
        ("pve-1", "plan"), ("pve-2", "plan"), ("pve-2", "cordon"), ("pve-2", "done")]


def test_no_file_without_a_path_or_in_check_mode(tmp_path, monkeypatch):
    os.chdir(tmp_path)
    run = Run(make())
    _plan_play(run)
    run.play_start()
    _window(run, "pve-1", "agent-1")
    run.stats()
    assert os.listdir(tmp_path) == []

    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(check=True))
    monkeypatch.setattr(callback.CallbackModule, "_writer", None)
    run = Run(make(), site_timeline_file=str(tmp_path / "timeline.json"))
    _plan_play(run)
    run.play_start()
    _window(run, "pve-1", "agent-1")
    run.stats()
    assert os.listdir(tmp_path) == []


def test_the_option_names_the_file_and_the_extra_var_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("GPU_PASSTHROUGH_TIMELINE_FILE", str(tmp_path / "from-env.json"))
    run = Run(make())
    _plan_play(run)
    run.stats()
    assert os.listdir(tmp_path) == ["from-env.json"]
    monkeypatch.setattr(callback.CallbackModule, "_writer", None)
    run = Run(make(), site_timeline_file=str(tmp_path / "from-extra-var.json"))
    _plan_play(run)
    assert sorted(os.listdir(tmp_path)) == ["from-env.json", "from-extra-var.json"]


def test_the_first_write_replaces_an_earlier_run(tmp_path):
    path = tmp_path / "timeline.json"
    path.write_text(timeline.dump([timeline.event("pve-9", "done", t=1)]))
    run = Run(make(), site_timeline_file=str(path))
    _plan_play(run)
    assert [e["node"] for e in _events(path)] == ["pve-1", "pve-2"]
    # a file that is no timeline at all is replaced too
    path.write_text("not json")
    run.play_start()
    run.task("pve-1", "Prepare", {}, proxmox_gpu_prep_timeline_event="host_change")
    assert [e["event"] for e in _events(path)] == ["plan", "plan", "host_change"]


def test_a_file_that_cannot_be_written_warns_once(tmp_path, monkeypatch):
    warnings = []
    cb = make()
    monkeypatch.setattr(cb._display, "warning", warnings.append)
    run = Run(cb, site_timeline_file=str(tmp_path / "missing" / "timeline.json"))
    _plan_play(run)
    run.play_start()
    _window(run, "pve-1", "agent-1")
    run.stats()
    assert len(warnings) == 1 and "cannot write the timeline" in warnings[0]


def test_enabled_twice_records_once(tmp_path):
    path = tmp_path / "timeline.json"
    shim = _shim_module()
    assert issubclass(shim.CallbackModule, callback.CallbackModule)
    assert shim.CallbackModule.CALLBACK_NEEDS_ENABLED is False and callback.CallbackModule.CALLBACK_NEEDS_ENABLED is True
    assert shim.CallbackModule.CALLBACK_NAME != callback.CallbackModule.CALLBACK_NAME
    first, second = make(shim.CallbackModule, "site_timeline"), make()
    run = Run(first, second, site_timeline_file=str(path))
    assert second.disabled and not first.disabled
    _plan_play(run)
    run.play_start()
    _window(run, "pve-1", "agent-1")
    run.stats()
    events = _events(path)
    assert [e["event"] for e in events].count("guest_stop") == 1
    assert timeline.validate(events, agents=[120]) == []
    # the run is over: the next run's first callback records
    assert callback.CallbackModule._writer is None


def test_documentation_parses():
    for module, name in ((callback, "timeline"), (_shim_module(), "site_timeline")):
        doc = yaml.safe_load(module.DOCUMENTATION)
        assert doc["name"] == name and doc["type"] == "aggregate"
        assert doc["short_description"] and doc["description"]
        assert doc["options"]["path"]["type"] == "path"
        assert doc["options"]["path"]["env"] == [{"name": "GPU_PASSTHROUGH_TIMELINE_FILE"}]
        assert doc["options"]["path"]["ini"] == [{"section": "callback_timeline", "key": "path"}]
    doc = yaml.safe_load(callback.DOCUMENTATION)
    assert doc["requirements"] and doc["version_added"] and doc["author"]
    assert (callback.CallbackModule.CALLBACK_VERSION, callback.CallbackModule.CALLBACK_TYPE,
            callback.CallbackModule.CALLBACK_NAME) == (2.0, "aggregate", NAME)


# ------------------------------------------------------------------------------------------------ a real run

PLAYBOOK = """
- name: Fleet plan
  hosts: all
  gather_facts: false
  tasks:
    - name: Plan the fleet
      run_once: true
      ansible.builtin.set_fact:
        site_plan: %(plan)s

- name: Rolling chain
  hosts: all
  gather_facts: false
  serial: 2
  vars:
    _m: "{{ site_plan.rolling.members[inventory_hostname] }}"
  tasks:
    - name: Prepare the host
      when: _m.part == 'host'
      vars:
        proxmox_gpu_prep_timeline_event: host_change
      ansible.builtin.set_fact:
        proxmox_gpu_prep_reboot_required: "{{ _m.node == 'pve-1' }}"
    - name: Cordon
      when: _m.part == 'agent'
      vars:
        gpu_vm_timeline_event: cordon
      ansible.builtin.debug:
        msg: cordon
    - name: Stop the guest
      when: _m.part == 'agent'
      vars:
        gpu_vm_timeline_event: guest_stop
      ansible.builtin.debug:
        msg: stop
      changed_when: true
    - name: Write the VM config
      when: _m.part == 'agent'
      ansible.builtin.import_tasks: vm_config.yml
      vars:
        gpu_vm_timeline_event: vm_config
    - name: Reboot
      when: _m.part == 'host' and proxmox_gpu_prep_reboot_required | bool
      vars:
        proxmox_gpu_prep_timeline_event: host_reboot
      ansible.builtin.debug:
        msg: reboot
    - name: Start the guest
      when: _m.part == 'agent'
      vars:
        gpu_vm_timeline_event: guest_start
      ansible.builtin.debug:
        msg: start
      changed_when: true
    - name: Uncordon
      when: _m.part == 'agent'
      vars:
        gpu_vm_timeline_event: uncordon
      ansible.builtin.debug:
        msg: uncordon
"""


def _playbook(tmp_path, name, *args, **env):
    binary = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(binary):
        pytest.skip("no ansible-playbook beside %s" % sys.executable)
    site = tmp_path / "site"
    if not site.exists():
        (site / "callback_plugins").mkdir(parents=True)
        shutil.copy(SHIM, site / "callback_plugins" / "site_timeline.py")
        (site / "site.yml").write_text(PLAYBOOK % {"plan": json.dumps(PLAN)})
        (site / "vm_config.yml").write_text("- name: The config write\n  ansible.builtin.debug:\n    msg: write\n")
        # in the plan's order: the serial batches are pve-1 and its agent, then pve-2 and its agent
        (site / "inventory.ini").write_text("\n".join(list(MEMBERS) + [
            "[all:vars]", "ansible_connection=local", "ansible_python_interpreter=%s" % sys.executable]) + "\n")
    # this tree as the collection (tests/unit/conftest.py links it there)
    environment = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_CONFIG")}
    environment.update(ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".cache", "pytest-collections"),
                       ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_NOCOLOR="1", **env)
    path = tmp_path / name
    proc = subprocess.run([binary, "-i", str(site / "inventory.ini"), str(site / "site.yml"),
                           "-e", "site_timeline_file=%s" % path, *args],
                          capture_output=True, text=True, env=environment, cwd=str(tmp_path), timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "callback" not in proc.stderr.lower(), proc.stderr
    return path


def test_site_playbooks_enable_it_by_themselves(tmp_path):
    alone = _events(_playbook(tmp_path, "alone.json"))
    assert timeline.validate(alone, agents=[120, 121]) == []
    assert [(e["node"], e["event"]) for e in alone if e["event"] != "plan"] == [
        ("pve-1", "host_change"), ("pve-1", "cordon"), ("pve-1", "guest_stop"), ("pve-1", "vm_config"),
        ("pve-1", "host_reboot"), ("pve-1", "host_up"), ("pve-1", "guest_start"), ("pve-1", "uncordon"), ("pve-1", "done"),
        ("pve-2", "host_change"), ("pve-2", "cordon"), ("pve-2", "guest_stop"), ("pve-2", "vm_config"),
        ("pve-2", "guest_start"), ("pve-2", "uncordon"), ("pve-2", "done")]
    assert alone[2]["detail"] == "reboot required: True"
    # enabled by name as well: still one event each
    both = _events(_playbook(tmp_path, "both.json", ANSIBLE_CALLBACKS_ENABLED=NAME))
    assert [(e["node"], e["event"]) for e in both] == [(e["node"], e["event"]) for e in alone]
    # check mode writes nothing
    assert not _playbook(tmp_path, "check.json", "--check").exists()


def test_in_the_rolling_play_a_node_opens_with_its_first_result(tmp_path):
    # the play after the plan's is the rolling play: a failure before any declared step still fails its node (a host
    # preparation refused), and a node whose window had nothing to record is done
    path = tmp_path / "timeline.json"
    run = Run(make(), site_timeline_file=str(path))
    run.play_start("plan")
    run.task("pve-1", "Plan the fleet", {"ansible_facts": {"site_plan": PLAN}, "changed": False})
    run.play_start("rolling")
    run.task("pve-1", "Read the host", {"changed": False})
    run.task("agent-1", "Install the packages", how="skipped")
    run.play_start("rolling")
    run.task("pve-2", "Refuse to reboot into a boot entry that lacks root=", {"msg": "entry lacks intel_iommu=on"},
             how="failed")
    run.task("pve-2", "Stop the run where it failed", {"msg": "stopped"}, how="failed")
    run.play_start("readback")
    run.task("agent-2", "Read the VM back", {"changed": False})
    run.stats()
    events = timeline.load(path.read_text())
    assert [(e["node"], e["event"]) for e in events] == [
        ("pve-1", "plan"), ("pve-2", "plan"), ("pve-1", "done"), ("pve-2", "failed")]
    assert events[-1]["detail"] == "Refuse to reboot into a boot entry that lacks root=: entry lacks intel_iommu=on"
    assert timeline.validate(events) == []
