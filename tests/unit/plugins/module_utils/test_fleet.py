"""fleet.plan: per node windows, batches and the refusals that keep the Proxmox and Kubernetes clusters healthy."""

import copy

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import fleet


def _node(index, reboot=True, plan=("set_machine",), status="running", others=()):
    name = "pve-%d" % index
    agent = {"vmid": 119 + index, "name": "k3s-agent-%d" % index, "k8s_node": "k3s-agent-%d" % index,
             "status": status, "plan": list(plan)}
    guests = [{"vmid": 119 + index, "name": agent["name"], "type": "qemu", "status": status, "onboot": 1}]
    guests.extend(others)
    return {"name": name, "node": "pve%d" % index, "agents": [agent], "guests": guests,
            "host": {"changes": ["cmdline: intel_iommu=on iommu=pt"] if reboot else [], "reboot": reboot}}


def _cluster(count=3, online=None, qdevice=0, votes=None, name="homelab", quorate=None):
    members = [{"name": "pve%d" % i, "online": True if online is None else online[i - 1],
                "votes": 1 if votes is None else votes[i - 1]} for i in range(1, count + 1)]
    cluster = {"name": name, "nodes": members, "qdevice_votes": qdevice}
    if quorate is not None:
        cluster["quorate"] = quorate
    return cluster


JELLYFIN = {"vmid": 130, "name": "jellyfin", "type": "qemu", "status": "running", "onboot": 1}
ROUTER = {"vmid": 200, "name": "router", "type": "lxc", "status": "running", "onboot": 0}
STOPPED = {"vmid": 131, "name": "old", "type": "qemu", "status": "stopped"}


def kinds(result):
    return [r["kind"] for r in result["refusals"]]


# ---------------------------------------------------------------- windows
def test_three_nodes_one_window_each():
    result = fleet.plan([_node(1, others=[JELLYFIN, ROUTER, STOPPED]), _node(2), _node(3, reboot=False)], _cluster())
    assert result["ok"] and result["refusals"] == []
    assert result["batches"] == [["pve-1"], ["pve-2"], ["pve-3"]]
    first, second, third = result["nodes"]
    # a rebooting host stops its agent and every other running guest, a stopped one stays out of it
    assert [(s["vmid"], s["type"], s["agent"]) for s in first["stops"]] == [(120, "qemu", True), (130, "qemu", False),
                                                                            (200, "lxc", False)]
    assert first["drain"] == ["k3s-agent-1"] and first["reboot"] is True
    assert first["host_changes"] == ["cmdline: intel_iommu=on iommu=pt"] and first["vm_changes"] == {"120": ["set_machine"]}
    # no reboot: only the agent whose VM config changes stops
    assert third["reboot"] is False and [s["vmid"] for s in third["stops"]] == [122]
    assert second["batch"] == 2 and third["batch"] == 3
    assert result["quorum"]["expected_votes"] == 3 and result["quorum"]["quorum"] == 2


def test_nothing_to_do_stops_nothing():
    result = fleet.plan([_node(1, reboot=False, plan=(), others=[JELLYFIN])], _cluster())
    node = result["nodes"][0]
    assert result["ok"] and node["stops"] == [] and node["drain"] == [] and node["changes"] is False


def test_stopped_agent_is_converted_without_a_stop():
    node = fleet.plan([_node(1, reboot=False, status="stopped")], _cluster())["nodes"][0]
    assert node["stops"] == [] and node["drain"] == [] and node["changes"] is True


def test_plan_lines_name_every_guest_and_refusal():
    result = fleet.plan([_node(1, others=[ROUTER])], _cluster(2))
    lines = fleet.plan_lines(result)
    assert lines[0] == ("batch 1 pve-1 (pve1): cmdline: intel_iommu=on iommu=pt, VM 120: set_machine; host reboot: yes; "
                        "guests stopping: VM 120 (k3s-agent-1, agent), CT 200 (router); drain: k3s-agent-1")
    assert lines[1].startswith("REFUSED (pve-1): rebooting pve1 costs the cluster its quorum")


# ---------------------------------------------------------------- quorum
@pytest.mark.parametrize(("count", "qdevice", "votes", "batch", "expected"), [
    (3, 0, None, 1, []),                    # 3 nodes: one may go, 2 of 3 votes stay
    (3, 0, None, 2, ["batch"]),             # two down leaves 1 of 3
    (2, 0, None, 1, ["quorum", "quorum"]),  # 2 nodes, no QDevice: 1 of 2 is not more than half, for either node
    (2, 1, None, 1, []),                    # with a QDevice: 2 of 3 votes stay
    (2, 1, None, 2, ["batch"]),
    (5, 0, None, 2, []),                    # 5 nodes: 3 of 5 stay
    (5, 0, None, 3, ["batch"]),
    (4, 0, None, 2, ["batch"]),             # 4 nodes: quorum 3, only one may go
    (4, 1, None, 2, []),                    # 4 + QDevice: 5 votes, quorum 3, two may go
    (3, 0, [2, 1, 1], 1, ["quorum"]),       # pve1 carries 2 of 4 votes: quorum 3, only one vote may go
])
def test_quorum_bounds_the_batch(count, qdevice, votes, batch, expected):
    nodes = [_node(i) for i in range(1, count + 1)]
    result = fleet.plan(nodes, _cluster(count, qdevice=qdevice, votes=votes), options={"batch": batch})
    assert kinds(result) == expected, result["refusals"]
    if expected == ["batch"]:
        refusal = result["refusals"][0]
        assert refusal["option"] == "site_batch" and refusal["value"] == batch
        assert refusal["fix"] == "set site_batch=%d or lower" % refusal["allowed"]
        assert "quorum allows" in refusal["message"]


def test_weighted_votes():
    # pve1 has 3 of 5 votes (quorum 3): pve2 and pve3 may even reboot together, pve1 never
    cluster = _cluster(3, votes=[3, 1, 1])
    assert fleet.quorum(cluster)["max_down"] == 2
    assert fleet.max_batch(cluster, ["pve2", "pve3"]) == 2
    assert fleet.max_batch(cluster, ["pve1"]) == 0
    result = fleet.plan([_node(1), _node(2), _node(3)], cluster)
    assert kinds(result) == ["quorum"] and result["refusals"][0]["node"] == "pve-1"
    assert "pve1 carries 3" in result["refusals"][0]["message"]
    assert fleet.plan([_node(2), _node(3)], cluster, options={"batch": 2})["ok"]


def test_only_the_batch_that_loses_quorum_counts():
    # 5 nodes, two may go: a batch of 3 is refused when its three hosts reboot, fine when one of them does not
    assert kinds(fleet.plan([_node(i) for i in range(1, 6)], _cluster(5), options={"batch": 3})) == ["batch"]
    nodes = [_node(1), _node(2), _node(3, reboot=False), _node(4), _node(5)]
    assert fleet.plan(nodes, _cluster(5), options={"batch": 3})["ok"]
    assert fleet.plan([_node(1), _node(2, reboot=False), _node(3, reboot=False)], _cluster(3), options={"batch": 3})["ok"]


def test_max_batch_counts_the_heaviest_nodes():
    cluster = _cluster(5, votes=[1, 1, 1, 1, 1])
    assert fleet.max_batch(cluster, ["pve1", "pve2", "pve3"]) == 2
    assert fleet.max_batch(_cluster(2), ["pve1"]) == 0
    assert fleet.max_batch(_cluster(2, qdevice=1), ["pve1", "pve2"]) == 1


def test_2_node_cluster_refusal_names_the_fix():
    refusal = fleet.plan([_node(1), _node(2)], _cluster(2))["refusals"][0]
    assert refusal["kind"] == "quorum"
    assert "2 expected votes, 2 needed, 2 present, pve1 carries 1" in refusal["message"]
    assert "pvecm qdevice setup" in refusal["fix"] and "proxmox_gpu_prep_reboot=false" in refusal["fix"]


def test_2_node_cluster_without_reboot_is_fine():
    assert fleet.plan([_node(1, reboot=False), _node(2, reboot=False)], _cluster(2))["ok"]


def test_an_offline_node_costs_its_votes():
    # 3 nodes, pve3 already down: rebooting pve1 would leave 1 of 3
    result = fleet.plan([_node(1)], _cluster(3, online=[True, True, False]))
    assert kinds(result) == ["quorum"]


def test_not_quorate_is_refused():
    result = fleet.plan([_node(1, reboot=False)], _cluster(3, online=[True, False, False], quorate=False))
    assert kinds(result)[0] == "not_quorate"
    assert "is not quorate now (1 of 3 expected votes present, 2 needed)" in result["refusals"][0]["message"]
    assert result["ok"] is False


def test_offline_node_of_the_plan_is_refused():
    result = fleet.plan([_node(1, reboot=False), _node(3, reboot=False)], _cluster(3, online=[True, True, False]))
    assert kinds(result) == ["node_offline"] and result["refusals"][0]["node"] == "pve-3"
    assert "--limit" in result["refusals"][0]["fix"]


def test_standalone_node_may_reboot():
    result = fleet.plan([_node(1)], {"name": None, "nodes": [{"name": "pve1", "online": True}]})
    assert result["ok"] and result["quorum"]["standalone"] is True and result["max_batch"] is None


def test_max_unavailable_bounds_the_batch():
    nodes = [_node(i) for i in range(1, 8)]
    result = fleet.plan(nodes, _cluster(7), options={"batch": 3, "max_unavailable": 2})
    assert kinds(result) == ["batch"]
    assert result["refusals"][0]["message"] == "site_batch=3 is larger than the fleet may lose: site_max_unavailable is 2"
    assert result["refusals"][0]["allowed"] == 2
    # quorum would allow 3 of 7: with max_unavailable 3 a batch of 3 is fine
    assert fleet.plan(nodes, _cluster(7), options={"batch": 3, "max_unavailable": 3})["batches"] == [
        ["pve-1", "pve-2", "pve-3"], ["pve-4", "pve-5", "pve-6"], ["pve-7"]]
    # without reboots only max_unavailable bounds it
    quiet = [_node(i, reboot=False) for i in range(1, 4)]
    assert kinds(fleet.plan(quiet, _cluster(3), options={"batch": 3, "max_unavailable": 1})) == ["batch"]
    assert fleet.plan(quiet, _cluster(3), options={"batch": 3})["ok"]


@pytest.mark.parametrize(("options", "message"), [
    ({"batch": 0}, "site_batch must be at least 1, got 0"),
    ({"batch": "two"}, "site_batch must be an integer, got 'two'"),
    ({"max_unavailable": 0}, "site_max_unavailable must be at least 1"),
])
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        fleet.plan([_node(1)], _cluster(), options=options)


# ---------------------------------------------------------------- HA
def test_ha_managed_guest_on_a_rebooting_host_is_refused():
    ha = [{"sid": "vm:130", "state": "started"}, {"sid": "ct:200", "state": "ignored"}, {"sid": "vm:999", "state": "started"}]
    result = fleet.plan([_node(1, others=[JELLYFIN, ROUTER])], _cluster(), ha_resources=ha)
    assert kinds(result) == ["ha"]
    refusal = result["refusals"][0]
    assert refusal["node"] == "pve-1" and refusal["option"] == "site_allow_ha"
    assert refusal["message"].startswith("VM 130 (jellyfin) on pve1 is HA-managed (state started): the host reboot")
    assert "ha-manager set vm:130 --state ignored" in refusal["fix"] and "site_allow_ha=true" in refusal["fix"]
    allowed = fleet.plan([_node(1, others=[JELLYFIN])], _cluster(), ha_resources=ha, options={"allow_ha": True})
    assert allowed["ok"] and allowed["nodes"][0]["stops"][1]["ha"] == "vm:130"


def test_ha_managed_agent_stopped_for_its_config():
    # no reboot, but the agent stops for its VM config: the HA stack would start it again
    result = fleet.plan([_node(1, reboot=False)], _cluster(), ha_resources=[{"sid": "120"}])
    assert kinds(result) == ["ha"] and "the VM config change" in result["refusals"][0]["message"]
    # a guest that does not stop is no concern
    assert fleet.plan([_node(1, reboot=False, others=[JELLYFIN])], _cluster(), ha_resources=[{"sid": "vm:130"}])["ok"]


def test_ha_container_sid():
    result = fleet.plan([_node(1, others=[ROUTER])], _cluster(), ha_resources=[{"sid": "ct:200", "state": "started"}])
    assert kinds(result) == ["ha"] and result["refusals"][0]["message"].startswith("CT 200 (router)")
    # a VM with the same id is another resource
    assert fleet.plan([_node(1, others=[ROUTER])], _cluster(), ha_resources=[{"sid": "vm:200"}])["ok"]


# ---------------------------------------------------------------- PodDisruptionBudgets
def _pod(name, node, labels, namespace="media", owner="ReplicaSet", ready=True):
    return {"name": name, "node": node, "namespace": namespace, "labels": labels, "owner_kind": owner, "ready": ready}


def _budget(name, allowed, labels=None, namespace="media", expressions=None, healthy=1, desired=1, policy=None):
    budget = {"name": name, "namespace": namespace, "disruptionsAllowed": allowed, "currentHealthy": healthy,
              "desiredHealthy": desired,
              "selector": {"matchLabels": labels or {}, "matchExpressions": expressions or []}}
    if policy:
        budget["unhealthyPodEvictionPolicy"] = policy
    return budget


def test_budget_blocking_a_drain_is_refused_with_its_name():
    pods = [_pod("jellyfin-0", "k3s-agent-1", {"app": "jellyfin"}), _pod("other", "k3s-agent-2", {"app": "jellyfin"})]
    result = fleet.plan([_node(1), _node(2)], _cluster(), budgets=[_budget("jellyfin", 0, {"app": "jellyfin"})], pods=pods)
    assert kinds(result) == ["budget", "budget"]
    first = result["refusals"][0]
    assert first["budget"] == "media/jellyfin" and first["pods"] == ["media/jellyfin-0"] and first["node"] == "pve-1"
    assert first["message"] == ("PodDisruptionBudget media/jellyfin allows 0 disruption(s) but draining k3s-agent-1 "
                                "would evict media/jellyfin-0")
    assert "kubectl -n media edit pdb jellyfin" in first["fix"]


def test_budget_with_room_one_node_at_a_time():
    pods = [_pod("web-a", "k3s-agent-1", {"app": "web"}), _pod("web-b", "k3s-agent-2", {"app": "web"})]
    budgets = [_budget("web", 1, {"app": "web"}, healthy=2, desired=1)]
    assert fleet.plan([_node(1), _node(2)], _cluster(5), budgets=budgets, pods=pods)["ok"]
    # both nodes in one batch: two evictions against one allowed
    together = fleet.plan([_node(1), _node(2)], _cluster(5), budgets=budgets, pods=pods, options={"batch": 2})
    assert kinds(together) == ["budget"] and together["refusals"][0]["node"] == "pve-1, pve-2"


@pytest.mark.parametrize(("pod", "budget", "blocked"), [
    (_pod("x", "k3s-agent-1", {"app": "x"}), _budget("b", 0, {"app": "y"}), False),          # other labels
    (_pod("x", "k3s-agent-1", {"app": "x"}, namespace="a"), _budget("b", 0, {"app": "x"}, namespace="b"), False),
    (_pod("x", "k3s-agent-1", {"app": "x"}, owner="DaemonSet"), _budget("b", 0, {"app": "x"}), False),  # drain skips it
    (_pod("x", "k3s-agent-1", {"app": "x"}, owner="Node"), _budget("b", 0, {}), False),       # mirror pod
    (_pod("x", "k3s-agent-9", {"app": "x"}), _budget("b", 0, {"app": "x"}), False),          # not on a drained node
    (_pod("x", "k3s-agent-1", {"app": "x"}), _budget("b", 0, {}), True),                     # empty selector: all pods
    (_pod("x", "k3s-agent-1", {"tier": "db"}), _budget("b", 0, expressions=[{"key": "tier", "operator": "In", "values": ["db"]}]), True),
    (_pod("x", "k3s-agent-1", {"tier": "db"}), _budget("b", 0, expressions=[{"key": "tier", "operator": "NotIn", "values": ["db"]}]), False),
    (_pod("x", "k3s-agent-1", {"longhorn.io/component": "instance-manager"}, namespace="longhorn-system", owner="Pod"),
     _budget("instance-manager-abc", 0, {"longhorn.io/component": "instance-manager"}, namespace="longhorn-system"), True),
    (_pod("x", "k3s-agent-1", {}), _budget("b", 0, expressions=[{"key": "tier", "operator": "DoesNotExist"}]), True),
    (_pod("x", "k3s-agent-1", {}), _budget("b", 0, expressions=[{"key": "tier", "operator": "Exists"}]), False),
    # an unhealthy pod may go while the budget is healthy ...
    (_pod("x", "k3s-agent-1", {"app": "x"}, ready=False), _budget("b", 0, {"app": "x"}, healthy=1, desired=1), False),
    # ... but not while it is not, unless the policy says AlwaysAllow
    (_pod("x", "k3s-agent-1", {"app": "x"}, ready=False), _budget("b", 0, {"app": "x"}, healthy=0, desired=1), True),
    (_pod("x", "k3s-agent-1", {"app": "x"}, ready=False),
     _budget("b", 0, {"app": "x"}, healthy=0, desired=1, policy="AlwaysAllow"), False),
])
def test_which_pods_a_budget_covers(pod, budget, blocked):
    result = fleet.plan([_node(1)], _cluster(), budgets=[budget], pods=[pod])
    assert (kinds(result) == ["budget"]) is blocked, result["refusals"]


def test_a_node_without_a_drain_is_not_held_by_budgets():
    pods = [_pod("jellyfin-0", "k3s-agent-1", {"app": "jellyfin"})]
    result = fleet.plan([_node(1, reboot=False, plan=())], _cluster(), budgets=[_budget("j", 0, {"app": "jellyfin"})], pods=pods)
    assert result["ok"]


def test_unknown_selector_operator():
    with pytest.raises(ValueError, match="unknown label selector operator 'Gt'"):
        fleet.selector_matches({"matchExpressions": [{"key": "a", "operator": "Gt"}]}, {"a": "1"})


def test_every_refusal_at_once_and_the_input_untouched():
    nodes = [_node(1, others=[JELLYFIN]), _node(2)]
    before = copy.deepcopy(nodes)
    result = fleet.plan(nodes, _cluster(2, quorate=False, online=[True, False]), ha_resources=[{"sid": "vm:130"}],
                        budgets=[_budget("j", 0, {"app": "j"})], pods=[_pod("j-0", "k3s-agent-1", {"app": "j"})])
    assert sorted(set(kinds(result))) == ["budget", "ha", "node_offline", "not_quorate", "quorum"]
    assert all(r["message"] and r["fix"] for r in result["refusals"])
    assert nodes == before


# ---------------------------------------------------------------- host plan from the diagnosis
def _diagnosis(**state):
    from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import diagnosis
    from test_diagnosis import HEALTHY, NO_IOMMU, _change, _set_driver

    cases = {
        "healthy": HEALTHY,
        "fresh": _set_driver(_change(HEALTHY, cmdline=["quiet"], passthrough_mode=False), "0000:00:02.0", "i915"),
        "no_firmware": NO_IOMMU,
        "shared": _change(HEALTHY, target={"address": "0000:00:02.0", "group": "2", "isolated": False,
                                           "group_devices": ["0000:00:02.0", "0000:00:14.0"],
                                           "reasons": ["0000:00:14.0 is another device in group 2"]}),
    }
    return diagnosis.diagnose(copy.deepcopy(cases[state["case"]]))


def test_host_plan_from_the_diagnosis():
    assert fleet.host_plan(_diagnosis(case="healthy"), reboot=True) == {"changes": [], "reboot": False, "refusals": []}
    fresh = fleet.host_plan(_diagnosis(case="fresh"), reboot=True)
    assert fresh["changes"] == ["cmdline", "binding"] and fresh["reboot"] is True and fresh["refusals"] == []
    # the role reports "reboot pending" instead when it may not reboot
    assert fleet.host_plan(_diagnosis(case="fresh"), reboot=False)["reboot"] is False
    assert fleet.host_plan(None, reboot=True) == {"changes": [], "reboot": False, "refusals": []}


@pytest.mark.parametrize(("case", "what"), [("no_firmware", "firmware IOMMU table"), ("shared", "shares its IOMMU group")])
def test_host_plan_refuses_what_no_run_can_fix(case, what):
    host = fleet.host_plan(_diagnosis(case=case), reboot=True)
    assert host["reboot"] is False and [r["kind"] for r in host["refusals"]] == ["host"]
    assert what in host["refusals"][0]["message"] and host["refusals"][0]["fix"]
    node = dict(_node(1), host=host)
    result = fleet.plan([node], _cluster())
    assert kinds(result) == ["host"] and result["refusals"][0]["node"] == "pve-1"


def test_vm_changes_leave_the_power_steps_out():
    assert fleet.vm_changes([{"action": "shutdown"}, {"action": "set_config", "config": {}}, {"action": "start"}]) == [
        "set_config"]
    assert fleet.vm_changes(["add_efidisk", "stop"]) == ["add_efidisk"]


# ---------------------------------------------------------------- the rolling play's hosts
def test_rolling_orders_each_node_then_its_agents_batch_by_batch():
    second = _node(2, reboot=False, plan=())
    second["agents"].append({"vmid": 125, "name": "k3s-agent-5", "k8s_node": "k3s-agent-5", "status": "running",
                             "plan": ["set_hostpci0"]})
    result = fleet.plan([_node(1), second, _node(3, reboot=False, plan=())], _cluster(), options={"batch": 2})
    rolling = fleet.rolling(result, hosts=["pve-1", "pve-2", "pve-3"])
    assert rolling["order"] == ["pve-1", "k3s-agent-1", "pve-2", "k3s-agent-2", "k3s-agent-5", "pve-3", "k3s-agent-3"]
    # two nodes per batch: five hosts, then the last node and its agent
    assert rolling["serial"] == [5, 2]
    members = rolling["members"]
    assert members["pve-1"] == {"part": "host", "reboot": True, "changes": True, "node": "pve-1", "pve_node": "pve1",
                                "batch": 1, "window": True, "leader": True}
    assert members["k3s-agent-1"]["leader"] is False
    assert members["k3s-agent-1"]["stop"] is True and members["k3s-agent-1"]["vm_config"] is True
    # a node without reboot: only the agent whose config changes stops
    assert (members["k3s-agent-2"]["stop"], members["k3s-agent-5"]["stop"]) == (False, True)
    assert members["k3s-agent-5"] == {"part": "agent", "vmid": 125, "k8s_node": "k3s-agent-5", "stop": True,
                                      "drain": True, "vm_config": True, "node": "pve-2", "pve_node": "pve2", "batch": 1,
                                      "reboot": False, "window": True, "leader": False}
    assert members["k3s-agent-3"]["stop"] is False and members["k3s-agent-3"]["batch"] == 2
    # nothing stops on pve-3: no window, so no cluster checks after it
    assert members["pve-3"]["window"] is False and members["k3s-agent-3"]["window"] is False


def test_rolling_without_the_host_in_the_inventory_holds_only_the_agents():
    # agents on a node whose host the inventory does not list (or --limit left out): their VM link still rolls
    result = fleet.plan([_node(1, reboot=False), _node(2, reboot=False, plan=())], _cluster())
    rolling = fleet.rolling(result, hosts=[], other_agents=["k3s-agent-2", "k3s-agent-9"])
    assert rolling["order"] == ["k3s-agent-1", "k3s-agent-2", "k3s-agent-9"] and rolling["serial"] == [1, 1, 1]
    assert rolling["members"]["k3s-agent-1"]["leader"] is True
    # an agent whose VM the plan could not read gets only its guest link, after every window
    assert rolling["members"]["k3s-agent-9"] == {"part": "agent", "vmid": None, "k8s_node": None, "stop": False,
                                                 "drain": False, "vm_config": False, "node": "k3s-agent-9", "pve_node": None, "batch": 3,
                                                 "reboot": False, "window": False, "leader": True}
    assert fleet.rolling({"nodes": [], "batches": []})["serial"] == [1]


def test_rolling_drains_only_the_agents_that_stop_and_may_be_drained():
    # the plan decides the drain per member: it stops in this window and is one of drains (kubeconfig, gpu_vm_drain)
    second = _node(2, reboot=False, plan=())
    second["agents"].append({"vmid": 125, "name": "k3s-agent-5", "k8s_node": "k3s-agent-5", "status": "running",
                             "plan": ["set_hostpci0"]})
    result = fleet.plan([_node(1), second], _cluster())
    members = fleet.rolling(result, hosts=["pve-1", "pve-2"], drains={"k3s-agent-1", "k3s-agent-2"})["members"]
    assert [(h, members[h]["stop"], members[h]["drain"]) for h in ("k3s-agent-1", "k3s-agent-2", "k3s-agent-5")] == [
        ("k3s-agent-1", True, True), ("k3s-agent-2", False, False), ("k3s-agent-5", True, False)]
