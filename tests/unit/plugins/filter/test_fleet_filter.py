"""fleet_plan as site.yml calls it: hostvars, pve_cluster_info's result and k8s_info results."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.gpu_passthrough.plugins.filter.fleet import FilterModule
from test_iommu_diagnosis import _facts

FILTERS = FilterModule().filters()
GROUPS = {"proxmox_hosts": ["pve-1", "pve-2", "pve-3"], "k3s_gpu_agents": ["k3s-agent-1", "k3s-agent-2", "k3s-agent-3"]}
Q35 = [{"action": "shutdown"}, {"action": "set_config", "config": {"machine": "q35"}}, {"action": "start"}]


def _hostvars(fresh=("pve-1",)):
    hv = {}
    for i in (1, 2, 3):
        host = "pve-%d" % i
        facts = _facts(driver="i915", cmdline=("quiet",)) if host in fresh else _facts()
        hv[host] = {"ansible_facts": {"iommu": facts}, "proxmox_gpu_prep_reboot": "true"}
        hv["k3s-agent-%d" % i] = {"vm_id": 119 + i, "proxmox_node": host, "site_vm_plan": {"vmid": 119 + i, "plan": Q35}}
    return hv


def _cluster(quorate=True, ha=()):
    return {"cluster": {"name": "homelab", "quorate": quorate, "standalone": False, "expected_votes": 3,
                        "nodes": [{"name": "pve-%d" % i, "online": True, "votes": 1} for i in (1, 2, 3)]},
            "ha_resources": list(ha),
            "guests": {"pve-1": [{"vmid": 120, "name": "k3s-agent-1", "type": "qemu", "status": "running"},
                                 {"vmid": 130, "name": "jellyfin", "type": "lxc", "status": "running"},
                                 {"vmid": 9000, "name": "tmpl", "type": "qemu", "status": "stopped", "template": True}],
                       "pve-2": [{"vmid": 121, "name": "k3s-agent-2", "type": "qemu", "status": "stopped"}]}}


def test_plan_of_the_homelab():
    plan = FILTERS["fleet_plan"](_hostvars(), GROUPS, cluster=_cluster())
    assert plan["ok"], plan["refusals"]
    first, second, third = plan["nodes"]
    assert first["reboot"] is True and first["host_changes"] == ["cmdline", "binding"]
    assert [(s["vmid"], s["agent"]) for s in first["stops"]] == [(120, True), (130, False)]
    # a stopped agent is converted without a stop; a host that is ready does not reboot
    assert second["reboot"] is False and second["stops"] == [] and second["vm_changes"] == {"121": ["set_config"]}
    assert third["drain"] == ["k3s-agent-3"]
    assert plan["lines"][0].startswith("batch 1 pve-1 (pve-1): cmdline, binding, VM 120: set_config; host reboot: yes")
    assert FILTERS["fleet_plan_lines"](plan) == plan["lines"]


def test_refusals_through_the_filter():
    budgets = {"resources": [{"metadata": {"name": "jellyfin", "namespace": "media"},
                              "spec": {"selector": {"matchLabels": {"app": "jellyfin"}}, "minAvailable": 1},
                              "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1}}]}
    pods = {"resources": [{"metadata": {"name": "jellyfin-0", "namespace": "media", "labels": {"app": "jellyfin"},
                                        "ownerReferences": [{"kind": "StatefulSet", "controller": True}]},
                           "spec": {"nodeName": "k3s-agent-1"},
                           "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}]}
    plan = FILTERS["fleet_plan"](_hostvars(), GROUPS, cluster=_cluster(quorate=False, ha=[
        {"sid": "ct:130", "type": "ct", "vmid": 130, "state": "started"}]), budgets=budgets, pods=pods)
    assert {r["kind"] for r in plan["refusals"]} == {"not_quorate", "ha", "budget"}
    assert any(line.startswith("REFUSED (pve-1): CT 130 (jellyfin)") for line in plan["lines"])


def test_limit_batch_and_unknown_cluster():
    plan = FILTERS["fleet_plan"](_hostvars(), GROUPS, cluster=_cluster(), limit=["k3s-agent-2"])
    # only the agent: its node appears without host changes
    assert [(n["name"], n["host_changes"], n["reboot"]) for n in plan["nodes"]] == [("pve-2", [], False)]
    # one rebooting host per batch of two is fine, two are not
    assert FILTERS["fleet_plan"](_hostvars(), GROUPS, cluster=_cluster(), batch=2)["ok"]
    two = FILTERS["fleet_plan"](_hostvars(fresh=("pve-1", "pve-2")), GROUPS, cluster=_cluster(), batch=2)
    assert [r["kind"] for r in two["refusals"]] == ["batch"]
    blind = FILTERS["fleet_plan"](_hostvars(), GROUPS)
    assert [r["kind"] for r in blind["refusals"]] == ["cluster_unknown"] and blind["ok"] is False
    # nothing reboots: no cluster status needed
    assert FILTERS["fleet_plan"](_hostvars(fresh=()), GROUPS)["ok"]
    with pytest.raises(AnsibleFilterError, match="site_batch must be at least 1"):
        FILTERS["fleet_plan"](_hostvars(), GROUPS, cluster=_cluster(), batch=0)
    with pytest.raises(AnsibleFilterError, match="budgets must be"):
        FILTERS["fleet_plan"](_hostvars(), GROUPS, cluster=_cluster(), budgets="x")
