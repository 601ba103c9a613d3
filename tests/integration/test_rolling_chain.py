"""The rolling chain's Proxmox side run by ansible-playbook against the Proxmox API simulator.

Needs the collection installed by tools/setup.sh and ANSIBLE_COLLECTIONS_PATH from tools/env.sh.
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import timeline
from installed_collection import skip_unless_installed
from pvesim.fixture import running_simulator

pytestmark = [
    pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not on PATH (source tools/env.sh)"),
    skip_unless_installed("meta", "runtime.yml"),
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running_simulator(tmp_path_factory.mktemp("pvesim"), task_duration=0.02) as handle:
        def setup(data):
            for index, node in enumerate(("pve1", "pve2", "pve3")):
                data["vms"][str(120 + index)] = {
                    "node": node, "status": "running",
                    "config": {"name": "k3s-agent-%d" % (index + 1), "machine": "q35", "bios": "ovmf", "memory": "4096",
                               "cores": "2", "vmgenid": str(index + 1),
                               "efidisk0": "local-lvm:vm-%d-disk-1,efitype=4m,size=4M" % (120 + index)},
                    "pending": {},
                }
        handle.update(setup)
        yield handle


def run_play(tmp_path, play):
    """One ansible-playbook run of ``play`` (a list of plays) on localhost; (rc, output)."""
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, str(path)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def results(output):
    """The RESULT=<json> debug lines of a run, in order."""
    found = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith('"msg": "RESULT='):
            found.append(json.loads(json.loads(line[len('"msg": '):])[len("RESULT="):]))
    return found


def test_proxmox_group_carries_the_api_settings(sim, tmp_path):
    # one module_defaults entry for the whole proxmox action group of meta/runtime.yml: no auth options on the task
    auth = {"api_host": "127.0.0.1", "api_port": sim.port, "ca_path": sim.ca_path, "api_user": "root@pam",
            "api_password": "rootpass"}
    rc, output = run_play(tmp_path, [{
        "hosts": "localhost", "gather_facts": False,
        "module_defaults": {"group/homelab.gpu_passthrough.proxmox": auth},
        "tasks": [
            {"name": "plan", "homelab.gpu_passthrough.pve_vm_q35": {"vmid": 121}, "check_mode": True, "register": "q35"},
            {"name": "hostpci",
             "homelab.gpu_passthrough.pve_hostpci": {"vmid": 121, "slot": 0, "host": "0000:00:02.0", "apply": "none"},
             "check_mode": True, "register": "pci"},
            {"name": "show", "ansible.builtin.debug": {"msg": "RESULT={{ [q35, pci] | to_json }}"}},
        ],
    }])
    assert rc == 0, output
    q35, pci = results(output)[0]
    assert q35["node"] == "pve2" and q35["changed"] is False, q35
    assert pci["changed"] is True and pci["value"] == "0000:00:02.0", pci
    assert "hostpci0" not in sim.vm(121)["config"]


def test_pve_cluster_info_reads_quorum_ha_and_guests(sim, tmp_path):
    def setup(data):
        data["cluster"] = {"ha_resources": {"vm:121": {"state": "started", "group": "agents"}}}
        data["nodes"]["pve3"]["status"] = "offline"
    sim.update(setup)
    sim.reset_counters()
    auth = {"api_host": "127.0.0.1", "api_port": sim.port, "ca_path": sim.ca_path, "api_user": "automation@pve",
            "api_token_id": "ansible", "api_token_secret": sim.data["access"]["users"]["automation@pve"]["tokens"]["ansible"]["secret"]}
    try:
        rc, output = run_play(tmp_path, [{
            "hosts": "localhost", "gather_facts": False,
            "module_defaults": {"group/homelab.gpu_passthrough.proxmox": auth},
            "tasks": [
                {"name": "read", "homelab.gpu_passthrough.pve_cluster_info": {}, "register": "pve", "check_mode": True},
                {"name": "show", "ansible.builtin.debug": {"msg": "RESULT={{ pve | to_json }}"}},
            ],
        }])
    finally:
        def restore(data):
            data.pop("cluster", None)
            data["nodes"]["pve3"]["status"] = "online"
        sim.update(restore)
    assert rc == 0, output
    pve = results(output)[0]
    assert pve["changed"] is False
    assert pve["cluster"]["quorate"] is True and pve["cluster"]["standalone"] is False
    assert [(n["name"], n["online"], n["votes"]) for n in pve["cluster"]["nodes"]] == [
        ("pve1", True, 1), ("pve2", True, 1), ("pve3", False, 1)]
    assert pve["ha_resources"] == [{"sid": "vm:121", "type": "vm", "vmid": 121, "state": "started", "group": "agents"}]
    assert [(g["vmid"], g["status"], g["ha_state"]) for g in pve["guests"]["pve2"]] == [(121, "running", "started")]
    assert sim.counters()["writes_without_auth"] == 0


# ------------------------------------------------------------------ the fleet plan of site.yml
# The host link is stood in by a sysfs tree per Proxmox host, built by tests/unit/sysfs_builder.py from a real
# listing and read by iommu_facts through site.yml's site_host_root; the Proxmox API is pvesim and Kubernetes
# k8ssim. Every host and agent runs with ansible_connection=local.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "unit", "fixtures")


def _fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def _host_root(base, driver):
    from unit.sysfs_builder import build_root  # pylint: disable=import-outside-toplevel

    return build_root(base, _fixture("iommu/loop-tab-format-alderlake-4680-12th-gen-sorted.txt"),
                      lspci=_fixture("lspci/nnk-alderlake-4680-igpu-i915-host-rx560-vfio-pci.txt"),
                      cmdline="BOOT_IMAGE=/boot/vmlinuz-6.8.12-2-pve root=/dev/mapper/pve-root ro quiet intel_iommu=on iommu=pt",
                      devices={"0000:00:02.0": {"driver": driver}})


@contextlib.contextmanager
def _fleet(sim, tmp_path, node_of=None, agent_vars=None, extra_nodes=(), kubeconfig_names=None):
    """Three Proxmox hosts and their agents on pvesim and k8ssim. ``node_of``: agent -> its Kubernetes node (default:
    the inventory name); ``agent_vars``: agent -> more host variables; ``extra_nodes``: more Kubernetes nodes;
    ``kubeconfig_names``: agent -> the variables naming k8ssim's kubeconfig (default: kubernetes_kubeconfig in the
    inventory's all group)."""
    from k8ssim.fixture import running_k8ssim  # pylint: disable=import-outside-toplevel

    agents = ["k3s-agent-%d" % index for index in (1, 2, 3)]
    node_of = dict({agent: agent for agent in agents}, **(node_of or {}))
    with running_k8ssim(tmp_path / "k8s") as k8s:
        for agent in agents:
            k8s.cluster.add_node(node_of[agent])
        for name in extra_nodes:
            k8s.cluster.add_node(name)
        vmids = {node_of["k3s-agent-%d" % index]: str(119 + index) for index in (1, 2, 3)}

        def ready(node):
            # a node is Ready once its VM runs and has booted for a moment; a restart gives it a new bootID
            if node not in vmids:
                return None
            vm = sim.data["vms"].get(vmids[node]) or {}
            return vm.get("status") == "running" and time.time() - (vm.get("started_at") or 0) >= 0.3

        k8s.set_ready_source(ready, interval=0.1)
        k8s.cluster.add_pod("jellyfin-0", node_of["k3s-agent-3"], namespace="media", labels={"app": "jellyfin"},
                            owner_kind="StatefulSet", owner_name="jellyfin")
        hosts = {}
        for index in (1, 2, 3):
            # pve1's iGPU is still on i915: the host link binds it and reboots; pve2 and pve3 are ready
            root = _host_root(tmp_path / ("root%d" % index), "i915" if index == 1 else "vfio-pci")
            # the host link of the rolling chain is tests/integration/roles/host_standin on that tree
            hosts["pve%d" % index] = {"site_host_root": root, "proxmox_gpu_prep_device": "0000:00:02.0",
                                      "proxmox_gpu_prep_reboot": True, "site_host_role": "host_standin",
                                      "ansible_become": False}
        agent_hosts = {"k3s-agent-%d" % index: dict({"vm_id": 119 + index, "proxmox_node": "pve%d" % index},
                                                    **(agent_vars or {}).get("k3s-agent-%d" % index, {}))
                       for index in (1, 2, 3)}
        for agent, names in (kubeconfig_names or {}).items():
            agent_hosts[agent].update({name: k8s.kubeconfig for name in names})
        connection = {} if kubeconfig_names else {"kubernetes_kubeconfig": k8s.kubeconfig}
        inventory = {"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "gpu_vm_proxmox_api_host": "127.0.0.1", "gpu_vm_proxmox_api_port": sim.port,
                     "gpu_vm_proxmox_api_user": "root@pam", "gpu_vm_proxmox_api_password": "rootpass",
                     "gpu_vm_proxmox_ca_path": sim.ca_path, "gpu_vm_efidisk_storage": "local-lvm", **connection},
            "children": {"proxmox_hosts": {"hosts": hosts}, "k3s_gpu_agents": {"hosts": agent_hosts}},
        }}
        path = tmp_path / "inventory.json"
        path.write_text(json.dumps(inventory))
        before = sim.snapshot()

        def terraform(data):
            # VM 122 is still the i440fx machine Terraform created
            data["vms"]["122"]["config"]["machine"] = "pc"
            for index in (1, 2, 3):
                vm_name = agent_hosts["k3s-agent-%d" % index].get("name")
                if vm_name:
                    data["vms"][str(119 + index)]["config"]["name"] = vm_name
        sim.update(terraform)
        try:
            yield {"inventory": str(path), "k8s": k8s, "tmp": tmp_path,
                   "roots": {h: v["site_host_root"] for h, v in hosts.items()}}
        finally:
            def restore(data):
                data.clear()
                data.update(before)
            sim.update(restore)


@pytest.fixture
def fleet(sim, tmp_path):
    with _fleet(sim, tmp_path) as handle:
        yield handle


def site(fleet, *extra):
    from installed_collection import installed_collection  # pylint: disable=import-outside-toplevel

    playbook = os.path.join(installed_collection("playbooks", "site.yml"), "playbooks", "site.yml")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", TMPDIR=str(fleet["tmp"]),
               ANSIBLE_ROLES_PATH=os.path.join(REPO, "tests", "integration", "roles"))
    proc = subprocess.run(["ansible-playbook", "-i", fleet["inventory"], playbook, *extra], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_check_prints_the_plan_and_changes_nothing(sim, fleet):
    sim.reset_counters()
    plan_file = fleet["tmp"] / "plan.json"
    rc, output = site(fleet, "--check", "-e", "site_plan_file=%s" % plan_file)
    assert rc == 0, output
    plan = json.loads(plan_file.read_text())
    assert plan["ok"] and plan["batches"] == [["pve1"], ["pve2"], ["pve3"]]
    first, second, _third = plan["nodes"]
    assert first["reboot"] is True and first["host_changes"] == ["binding"]
    assert second["reboot"] is False and second["host_changes"] == []
    # agent 1 stops for its host's reboot, agent 3 for its machine change, agent 2 (ready) not at all
    assert [n["drain"] for n in plan["nodes"]] == [["k3s-agent-1"], [], ["k3s-agent-3"]]
    assert plan["nodes"][1]["vm_changes"] == {} and plan["nodes"][2]["vm_changes"]["122"]
    assert ("batch 1 pve1 (pve1): binding; host reboot: yes; guests stopping: VM 120 (k3s-agent-1, agent); "
            "drain: k3s-agent-1") in output, output
    # --check stops after the plan: no link ran, nothing was written, no node cordoned
    assert sim.counters()["writes_without_auth"] == 0
    assert not [e for e in fleet["k8s"].requests() if e["action"] in ("cordon", "evict", "patch_node")]
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)", output, re.M)
    assert len(recap) == 6 and all(changed == "0" and failed == "0" for _host, changed, failed in recap), output
    assert re.search(r"k3s-agent-1 +skip +guest driver +guest link not selected", output), output


@pytest.mark.parametrize("case", ["not_quorate", "ha", "budget"])
def test_refusals_before_any_change(sim, fleet, case):
    if case == "not_quorate":
        def lose(data):
            data["nodes"]["pve2"]["status"] = "offline"
            data["nodes"]["pve3"]["status"] = "offline"
        sim.update(lose)
        wanted = "is not quorate now (1 of 3 expected votes present, 2 needed)"
    elif case == "ha":
        def ha(data):
            data["cluster"] = {"ha_resources": {"vm:122": {"state": "started"}, "vm:121": {"state": "started"}}}
        sim.update(ha)
        # agent 3 stops for its machine change; agent 2 does not stop, so its HA state is no concern
        wanted = "VM 122 (k3s-agent-3) on pve3 is HA-managed (state started): the VM config change would stop it"
    else:
        fleet["k8s"].cluster.add_budget("jellyfin", "media", {"app": "jellyfin"}, min_available=1)
        wanted = "PodDisruptionBudget media/jellyfin allows 0 disruption(s) but draining k3s-agent-3 would evict media/jellyfin-0"
    sim.reset_counters()
    # the host and guest links are left out: were the plan to let the run go on, they would work on this machine
    rc, output = site(fleet, "--skip-tags", "host,guest")
    assert rc != 0, output
    assert "The fleet plan refuses" in output and wanted in output, output
    if case == "ha":
        assert "VM 121 (k3s-agent-2)" not in output.split("The fleet plan refuses", 1)[1]
    assert "nothing was changed" in output
    assert sim.counters()["writes_without_auth"] == 0
    assert not [e for e in fleet["k8s"].requests() if e["action"] in ("cordon", "evict", "patch_node")]


# ------------------------------------------------------------------ the rolling chain, node by node
def _per_node(events):
    found = {}
    for item in events:
        if item["event"] != "plan":
            found.setdefault(item["node"], []).append(item["event"])
    return found


def _driver(root, address="0000:00:02.0"):
    return os.path.basename(os.readlink(os.path.join(root, "sys", "bus", "pci", "devices", address, "driver")))


def _k8s_actions(fleet, *actions):
    return [(e["action"], e.get("node")) for e in fleet["k8s"].requests() if e["action"] in actions]


def test_node_by_node_one_window_each_then_no_change(sim, fleet):
    path = fleet["tmp"] / "timeline.json"
    rc, output = site(fleet, "--skip-tags", "guest", "-e", "site_timeline_file=%s" % path)
    assert rc == 0, output
    events = timeline.load(path.read_text())
    # the order of a window, no node before the last one is done, one stop and one start per stopped agent
    assert timeline.validate(events, agents=[120, 122]) == [], events
    assert _per_node(events) == {
        # pve1's host binds its iGPU and reboots: the host link is prepared while its agent serves; the agent stops
        # only for the reboot and starts after it
        "pve1": ["host_change", "cordon", "drain", "guest_stop", "host_reboot", "host_up", "guest_start", "ready",
                 "uncordon", "done"],
        # ready: nothing stops
        "pve2": ["host_change", "done"],
        # the i440fx VM: its config is written while it is stopped, and it starts once
        "pve3": ["host_change", "cordon", "drain", "guest_stop", "vm_config", "guest_start", "ready", "uncordon", "done"],
    }
    assert [e["node"] for e in events if e["event"] == "plan"] == ["pve1", "pve2", "pve3"]
    assert _driver(fleet["roots"]["pve1"]) == "vfio-pci"
    assert sim.vm(122)["config"]["machine"] == "q35" and sim.vm(122)["status"] == "running"
    assert all(sim.vm(v)["status"] == "running" for v in (120, 121, 122))
    # each drained node came back: no node is left cordoned
    assert not [n for n in fleet["k8s"].cluster.nodes.values() if n["spec"].get("unschedulable")]
    windows = {w["node"]: w for w in timeline.windows(events)}
    assert windows["pve1"]["reboot"] is True and windows["pve1"]["seconds"] > 0 and windows["pve2"]["seconds"] is None

    # a second run changes nothing: no window anywhere, no write, no Kubernetes action
    sim.reset_counters()
    before = len(fleet["k8s"].requests())
    again = fleet["tmp"] / "again.json"
    rc, output = site(fleet, "--skip-tags", "guest", "-e", "site_timeline_file=%s" % again)
    assert rc == 0, output
    events = timeline.load(again.read_text())
    assert _per_node(events) == {"pve1": ["host_change", "done"], "pve2": ["host_change", "done"],
                                 "pve3": ["host_change", "done"]}
    assert sim.counters()["writes_without_auth"] == 0
    assert not [e for e in fleet["k8s"].requests()[before:] if e["action"] in ("cordon", "evict", "patch_node")]


def test_a_failure_on_node_2_leaves_node_3_untouched_and_a_rerun_finishes(sim, fleet):
    def second_needs_work(data):
        data["vms"]["121"]["config"]["machine"] = "pc"
    sim.update(second_needs_work)
    sim.fail("PUT", r"/qemu/121/config$")
    path = fleet["tmp"] / "timeline.json"
    rc, output = site(fleet, "--skip-tags", "guest", "-e", "site_timeline_file=%s" % path)
    assert rc != 0, output
    assert "The rolling chain stopped on node pve2 (batch 2)" in output, output
    assert "nodes already done make no change" in output
    events = timeline.load(path.read_text())
    nodes = _per_node(events)
    assert nodes["pve1"][-1] == "done" and nodes["pve2"][-1] == "failed" and "pve3" not in nodes, nodes
    assert nodes["pve2"][:4] == ["host_change", "cordon", "drain", "guest_stop"]
    # the stopped agent was started again; node 3 was never cordoned, its VM never touched
    assert sim.vm(121)["status"] == "running" and sim.vm(121)["config"]["machine"] == "pc"
    assert sim.vm(122)["config"]["machine"] == "pc" and sim.vm(122)["status"] == "running"
    assert ("cordon", "k3s-agent-3") not in _k8s_actions(fleet, "cordon")
    assert timeline.validate(events) == []

    sim.clear_faults()
    sim.reset_counters()
    again = fleet["tmp"] / "again.json"
    rc, output = site(fleet, "--skip-tags", "guest", "-e", "site_timeline_file=%s" % again)
    assert rc == 0, output
    events = timeline.load(again.read_text())
    nodes = _per_node(events)
    # node 1 is done: no window, no reboot; node 2 finishes (its node was left cordoned and is drained again)
    assert nodes["pve1"] == ["host_change", "done"], nodes
    assert "vm_config" in nodes["pve2"] and "vm_config" in nodes["pve3"]
    assert sim.vm(121)["config"]["machine"] == "q35" and sim.vm(122)["config"]["machine"] == "q35"
    assert timeline.validate(events, agents=[121, 122]) == []


def test_a_host_preparation_refusal_stops_the_run_before_the_window(sim, fleet):
    # the host link of node 1 refuses while it prepares (as a boot entry read back without the arguments does): its
    # agent keeps serving, nothing is stopped or cordoned, and no later node is touched
    with open(fleet["inventory"], encoding="utf-8") as handle:
        inventory = json.load(handle)
    inventory["all"]["children"]["proxmox_hosts"]["hosts"]["pve1"]["host_standin_fail"] = True
    with open(fleet["inventory"], "w", encoding="utf-8") as handle:
        json.dump(inventory, handle)
    sim.reset_counters()
    path = fleet["tmp"] / "timeline.json"
    rc, output = site(fleet, "--skip-tags", "guest", "-e", "site_timeline_file=%s" % path)
    assert rc != 0, output
    assert 'The rolling chain stopped on node pve1 (batch 1), at "Fail when the test asks for it" on pve1' in output, output
    assert "was started again" not in output and "stays cordoned" not in output, output
    events = timeline.load(path.read_text())
    nodes = _per_node(events)
    assert nodes == {"pve1": ["failed"]}, nodes
    # zero power actions and zero writes: every VM runs as before, no node was cordoned or drained
    assert sim.counters()["writes_without_auth"] == 0, sim.counters()
    assert all(sim.vm(v)["status"] == "running" for v in (120, 121, 122))
    assert not _k8s_actions(fleet, "cordon", "evict", "uncordon")
    assert _driver(fleet["roots"]["pve1"]) == "i915"
    assert sim.vm(122)["config"]["machine"] == "pc"


@pytest.mark.parametrize("option, value", [("gpu_vm_start_retries", "many"), ("gpu_vm_drain_timeout", "soon"),
                                           ("site_batch", "two")])
def test_a_bad_rolling_option_is_refused_before_any_change(sim, fleet, option, value):
    # the role entry points' argument specs are typed: the plan play refuses what the window would read mid-way
    sim.reset_counters()
    rc, output = site(fleet, "--skip-tags", "guest", "-e", "%s=%s" % (option, value))
    assert rc != 0, output
    assert "Validating arguments against arg spec" in output and option in output and "int" in output, output
    assert "Line the hosts up node by node" not in output, output
    assert sim.counters()["writes_without_auth"] == 0 and sim.counters()["writes"] == 0
    assert not [e for e in fleet["k8s"].requests() if e["action"] in ("cordon", "evict", "patch_node")]


# ------------------------------------------------------------------ the agents' Kubernetes nodes
# Every agent's node is called unlike its inventory name (k3s-agent-N) and its VM name (vm-agent-N), as with a k3s
# --node-name; nodes with those two names exist as well, so a run that took the wrong name would touch them.
NODE_OF = {"k3s-agent-%d" % index: "gpu-node-%d.home.arpa" % index for index in (1, 2, 3)}
DECOYS = ["k3s-agent-%d" % index for index in (1, 2, 3)] + ["vm-agent-%d" % index for index in (1, 2, 3)]


def _agents(tmp_path, **per_agent):
    """The agents' host variables: the VM name, the guest stand-in of test_gpu_worker_labels (a render node, a q35
    sysfs tree, a vainfo script) and ``per_agent`` (agent -> more variables)."""
    from test_gpu_worker_labels import guest  # pylint: disable=import-outside-toplevel

    worker = dict(guest(tmp_path), ansible_become=False, gpu_worker_manage_packages=False)
    return {agent: dict(worker, name="vm-agent-%s" % agent[-1], **per_agent.get(agent, {})) for agent in NODE_OF}


def _touched(fleet):
    """(action, node) of every request that changed a Kubernetes node: cordon, uncordon, label patches."""
    return [(e["action"], e.get("node")) for e in fleet["k8s"].requests()
            if e["action"] in ("cordon", "uncordon", "patch_node") and "dryRun" not in e.get("query", "")]


def test_the_one_variable_names_the_node_drained_labelled_and_uncordoned(sim, tmp_path):
    agent_vars = _agents(tmp_path, **{agent: {"kubernetes_node_name": node} for agent, node in NODE_OF.items()})
    with _fleet(sim, tmp_path, node_of=NODE_OF, agent_vars=agent_vars, extra_nodes=DECOYS) as fleet:
        path = fleet["tmp"] / "timeline.json"
        rc, output = site(fleet, "-e", "site_timeline_file=%s" % path)
        assert rc == 0, output
        assert "drain: gpu-node-1.home.arpa" in output and "drain: gpu-node-3.home.arpa" in output, output
        touched = _touched(fleet)
        # agents 1 and 3 stop: their nodes are cordoned (and drained) and uncordoned; every agent's node is labelled
        stopped = [NODE_OF["k3s-agent-1"], NODE_OF["k3s-agent-3"]]
        assert [t for t in touched if t[0] == "cordon"] == [("cordon", node) for node in stopped], touched
        assert [t for t in touched if t[0] == "uncordon"] == [("uncordon", node) for node in stopped], touched
        assert sorted(node for action, node in touched if action == "patch_node") == sorted(NODE_OF.values()), touched
        # no other node was touched
        assert {node for _action, node in touched} == set(NODE_OF.values()), touched
        nodes = fleet["k8s"].cluster.nodes
        for agent, node in NODE_OF.items():
            assert nodes[node]["metadata"]["labels"].get("gpu") == "intel-uhd-630", (agent, nodes[node]["metadata"])
            assert not nodes[node]["spec"].get("unschedulable"), node
        for decoy in DECOYS:
            assert "gpu" not in nodes[decoy]["metadata"]["labels"] and not nodes[decoy]["spec"].get("unschedulable")
        assert "DEPRECATION" not in output, output
        events = timeline.load(path.read_text())
        assert [e["detail"] for e in events if e["event"] == "cordon"] == [NODE_OF["k3s-agent-1"], NODE_OF["k3s-agent-3"]]
        assert timeline.validate(events, agents=[120, 122]) == [], events


def test_the_deprecated_names_are_honoured_with_a_warning(sim, tmp_path):
    # agent 1 sets the drain's old names, agent 2 the labels' old names, agent 3 both: each names the node and the
    # cluster for the plan, the drain and the labels alike (agent 3 drains through gpu_worker's kubeconfig too)
    old_node = {"k3s-agent-1": ["gpu_vm_kubernetes_node"], "k3s-agent-2": ["gpu_worker_node_name"],
                "k3s-agent-3": ["gpu_vm_kubernetes_node", "gpu_worker_node_name"]}
    old_kubeconfig = {"k3s-agent-1": ["gpu_vm_kubeconfig"], "k3s-agent-2": ["gpu_worker_kubeconfig"],
                      "k3s-agent-3": ["gpu_worker_kubeconfig"]}
    agent_vars = _agents(tmp_path, **{agent: {name: NODE_OF[agent] for name in names} for agent, names in old_node.items()})
    with _fleet(sim, tmp_path, node_of=NODE_OF, agent_vars=agent_vars, extra_nodes=DECOYS,
                kubeconfig_names=old_kubeconfig) as fleet:
        rc, output = site(fleet)
        assert rc == 0, output
        flat = " ".join(output.split())
        for agent, names in old_node.items():
            for old in names:
                assert "%s: %s is deprecated; set the host variable kubernetes_node_name instead" % (agent, old) in flat, output
        for agent, names in old_kubeconfig.items():
            for old in names:
                assert "%s: %s is deprecated; set the host variable kubernetes_kubeconfig instead" % (agent, old) in flat, output
        assert "drain: gpu-node-1.home.arpa" in output and "drain: gpu-node-3.home.arpa" in output, output
        touched = _touched(fleet)
        stopped = [NODE_OF["k3s-agent-1"], NODE_OF["k3s-agent-3"]]
        assert [t for t in touched if t[0] == "cordon"] == [("cordon", node) for node in stopped], touched
        assert [t for t in touched if t[0] == "uncordon"] == [("uncordon", node) for node in stopped], touched
        assert {node for _action, node in touched} == set(NODE_OF.values()), touched
        assert sorted(node for action, node in touched if action == "patch_node") == sorted(NODE_OF.values()), touched


def test_old_kubeconfig_names_that_disagree_stop_the_plan_before_any_change(sim, tmp_path):
    # the drain would read one cluster and the labels another: the plan names both and the fix
    agent_vars = _agents(tmp_path, **{agent: {"kubernetes_node_name": node} for agent, node in NODE_OF.items()})
    agent_vars["k3s-agent-2"].update(gpu_vm_kubeconfig=str(tmp_path / "elsewhere.yaml"))
    with _fleet(sim, tmp_path, node_of=NODE_OF, agent_vars=agent_vars, extra_nodes=DECOYS,
                kubeconfig_names={agent: ["gpu_worker_kubeconfig"] for agent in NODE_OF}) as fleet:
        sim.reset_counters()
        rc, output = site(fleet)
        assert rc != 0, output
        flat = " ".join(output.split())
        assert ("k3s-agent-2: gpu_vm_kubeconfig=%s and gpu_worker_kubeconfig=%s name different kubeconfigs; the drain "
                "and the labels would go to different clusters. Fix: set the host variable kubernetes_kubeconfig"
                % (tmp_path / "elsewhere.yaml", fleet["k8s"].kubeconfig)) in flat, output
        assert sim.counters()["writes_without_auth"] == 0
        assert _touched(fleet) == [] and not [e for e in fleet["k8s"].requests() if e["action"] == "evict"]
        assert _driver(fleet["roots"]["pve1"]) == "i915" and sim.vm(122)["config"]["machine"] == "pc"


def test_a_missing_node_is_refused_by_the_plan_before_any_change(sim, tmp_path):
    # agent 1's node is misspelt: its window would drain it, the guest link label it
    agent_vars = _agents(tmp_path, **{agent: {"kubernetes_node_name": node} for agent, node in NODE_OF.items()})
    agent_vars["k3s-agent-1"]["kubernetes_node_name"] = "gpu-node-1.home.arpa.typo"
    with _fleet(sim, tmp_path, node_of=NODE_OF, agent_vars=agent_vars, extra_nodes=DECOYS) as fleet:
        sim.reset_counters()
        rc, output = site(fleet)
        assert rc != 0, output
        flat = " ".join(output.split())
        assert "The fleet plan refuses 1 thing(s); nothing was changed." in flat, output
        assert ("agent k3s-agent-1: Kubernetes node gpu-node-1.home.arpa.typo (kubernetes_node_name) is not in the "
                "cluster; the run would drain, uncordon and label it -- fix: set the host variable kubernetes_node_name "
                "of k3s-agent-1 to the node's name as kubectl get nodes lists it") in flat, output
        assert sim.counters()["writes_without_auth"] == 0
        assert _touched(fleet) == [] and not [e for e in fleet["k8s"].requests() if e["action"] == "evict"]
        assert _driver(fleet["roots"]["pve1"]) == "i915" and sim.vm(122)["config"]["machine"] == "pc"
