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
        hv["k3s-agent-%d" % i] = {"vm_id": 119 + i, "proxmox_node": host, "gpu_vm_plan": {"vmid": 119 + i, "plan": Q35}}
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


# ------------------------------------------------------------------ the agents' Kubernetes nodes
def _nodes(*names):
    return {"resources": [{"metadata": {"name": n}} for n in names]}


def _agents(plan):
    return {host: member["k8s_node"] for host, member in plan["rolling"]["members"].items() if member["part"] == "agent"}


def test_one_variable_names_the_node_drained_and_uncordoned():
    hv = _hostvars()
    for i in (1, 2, 3):
        hv["k3s-agent-%d" % i].update(name="vm-agent-%d" % i, kubernetes_node_name="node-%d.lan" % i)
    plan = FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster(), k8s_nodes=_nodes("node-1.lan", "node-2.lan", "node-3.lan"),
                                 labels=True)
    assert plan["ok"], plan["refusals"]
    assert [n["drain"] for n in plan["nodes"]] == [["node-1.lan"], [], ["node-3.lan"]]
    assert _agents(plan) == {"k3s-agent-1": "node-1.lan", "k3s-agent-2": "node-2.lan", "k3s-agent-3": "node-3.lan"}


def test_the_default_is_the_vm_name_then_the_inventory_hostname():
    hv = _hostvars()
    hv["k3s-agent-1"]["name"] = "vm-agent-1"
    hv["k3s-agent-2"]["gpu_vm_name"] = "vm-agent-2"
    plan = FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster())
    assert _agents(plan) == {"k3s-agent-1": "vm-agent-1", "k3s-agent-2": "vm-agent-2", "k3s-agent-3": "k3s-agent-3"}


def test_agents_without_a_vm_plan_are_named_too():
    hv = _hostvars()
    hv["k3s-agent-2"] = {"kubernetes_node_name": "node-2.lan"}  # no vm_id: its guest link (labels) runs alone
    plan = FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster(), k8s_nodes=_nodes("k3s-agent-1", "k3s-agent-3"),
                                 labels=True)
    assert _agents(plan)["k3s-agent-2"] == "node-2.lan"
    assert [(r["host"], r["k8s_node"]) for r in plan["refusals"]] == [("k3s-agent-2", "node-2.lan")]


def test_a_missing_node_is_refused_with_the_agent_the_variable_and_the_fix():
    hv = _hostvars()
    hv["k3s-agent-1"].update(kubernetes_node_name="agent-1.lan", kubernetes_kubeconfig="/k3s.yaml")
    plan = FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster(), k8s_nodes=_nodes("k3s-agent-1", "k3s-agent-2", "k3s-agent-3"),
                                 labels=True)
    assert plan["ok"] is False
    (refusal,) = plan["refusals"]
    assert refusal["kind"] == "k8s_node" and refusal["node"] == "pve-1" and refusal["option"] == "kubernetes_node_name"
    assert refusal["message"] == ("agent k3s-agent-1: Kubernetes node agent-1.lan (kubernetes_node_name) is not in the "
                                  "cluster; the run would drain, uncordon and label it")
    assert "kubernetes_node_name of k3s-agent-1" in refusal["fix"] and "kubectl get nodes" in refusal["fix"]
    assert "or point kubernetes_kubeconfig and kubernetes_context at the cluster the agent joined" in refusal["fix"]
    assert any(line.startswith("REFUSED (pve-1): agent k3s-agent-1: Kubernetes node agent-1.lan") for line in plan["lines"])


def test_only_the_nodes_the_run_touches_must_exist():
    hv = _hostvars(fresh=())
    for i in (1, 2, 3):
        hv["k3s-agent-%d" % i].update(kubernetes_kubeconfig="/k3s.yaml")
    # agent 2's VM is stopped (no drain), agent 1 runs but nothing changes on pve-1
    hv["k3s-agent-1"]["gpu_vm_plan"] = {"vmid": 120, "plan": []}
    nodes = _nodes("k3s-agent-3")
    assert not FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster(), k8s_nodes=_nodes())["ok"]
    # no labels: only agent 3 is drained
    assert FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster(), k8s_nodes=nodes)["ok"]
    # labels: every agent's node
    plan = FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster(), k8s_nodes=nodes, labels=True)
    assert [(r["host"], r["message"].rsplit("would ", 1)[1]) for r in plan["refusals"]] == [
        ("k3s-agent-1", "label it"), ("k3s-agent-2", "label it")]
    # not read (no kubeconfig): no check
    assert FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster(), labels=True)["ok"]
    # gpu_vm_drain false, gpu_worker_label_node false: not touched
    hv["k3s-agent-3"]["gpu_vm_drain"] = "false"
    for i in (1, 2, 3):
        hv["k3s-agent-%d" % i]["gpu_worker_label_node"] = False
    assert FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster(), k8s_nodes=_nodes(), labels=True)["ok"]
    # one connection for the drain and the labels: every agent labelled is checked against the Nodes the plan read
    hv["k3s-agent-2"]["gpu_worker_label_node"] = True
    plan = FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster(), k8s_nodes=_nodes(), labels=True)
    assert [(r["host"], r["message"].rsplit("would ", 1)[1]) for r in plan["refusals"]] == [("k3s-agent-2", "label it")]


def test_the_plan_names_the_deprecated_variable_and_honours_it(monkeypatch):
    from ansible_collections.homelab.gpu_passthrough.plugins.filter import k8s_node as plugin  # pylint: disable=import-outside-toplevel

    warned = []
    monkeypatch.setattr(plugin.display, "deprecated", lambda msg, **_kw: warned.append(msg))
    hv = _hostvars()
    hv["k3s-agent-1"]["gpu_worker_node_name"] = "agent-1.lan"
    plan = FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster(), k8s_nodes=_nodes("k3s-agent-2", "k3s-agent-3"), labels=True)
    assert plan["nodes"][0]["drain"] == ["agent-1.lan"]
    assert "gpu_worker_node_name (deprecated: kubernetes_node_name)" in plan["refusals"][0]["message"]
    assert warned == ["k3s-agent-1: gpu_worker_node_name is deprecated; set the host variable kubernetes_node_name "
                      "instead (same value: agent-1.lan)"]
    hv["k3s-agent-1"]["gpu_vm_kubernetes_node"] = "k3s-agent-1"
    with pytest.raises(AnsibleFilterError, match="name different Kubernetes nodes"):
        FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster())


def test_the_plan_decides_each_members_drain_by_the_rule_it_checks_nodes_with():
    # the window drains exactly the nodes the plan checked: a stopping agent with a kubeconfig and gpu_vm_drain
    hv = _hostvars()
    for i in (1, 2, 3):
        hv["k3s-agent-%d" % i]["kubernetes_kubeconfig"] = "/k3s.yaml"
    hv["k3s-agent-3"]["gpu_vm_drain"] = "false"
    members = FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster())["rolling"]["members"]
    # agent 1 stops with its rebooting host; agent 2's VM is stopped already; agent 3 may not be drained
    assert [(h, members[h]["stop"], members[h]["drain"]) for h in ("k3s-agent-1", "k3s-agent-2", "k3s-agent-3")] == [
        ("k3s-agent-1", True, True), ("k3s-agent-2", False, False), ("k3s-agent-3", True, False)]
    del hv["k3s-agent-1"]["kubernetes_kubeconfig"]
    assert FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster())["rolling"]["members"]["k3s-agent-1"]["drain"] is False
    # a context alone names no kubeconfig: kubernetes.core's defaults, not read by the plan, not drained
    hv["k3s-agent-1"]["kubernetes_context"] = "homelab"
    assert FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster())["rolling"]["members"]["k3s-agent-1"]["drain"] is False


def test_the_plan_honours_the_old_connection_names_of_either_role(monkeypatch):
    from ansible_collections.homelab.gpu_passthrough.plugins.filter import k8s_node as plugin  # pylint: disable=import-outside-toplevel

    warned = []
    monkeypatch.setattr(plugin.display, "deprecated", lambda msg, **_kw: warned.append(msg))
    hv = _hostvars()
    # agent 1 names its kubeconfig in gpu_vm's old name, agent 3 in gpu_worker's: one cluster for both roles
    hv["k3s-agent-1"]["gpu_vm_kubeconfig"] = "/k3s.yaml"
    hv["k3s-agent-3"]["gpu_worker_kubeconfig"] = "/k3s.yaml"
    members = FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster())["rolling"]["members"]
    assert [(h, members[h]["drain"]) for h in ("k3s-agent-1", "k3s-agent-3")] == [
        ("k3s-agent-1", True), ("k3s-agent-3", True)]
    assert warned == [
        "k3s-agent-1: gpu_vm_kubeconfig is deprecated; set the host variable kubernetes_kubeconfig instead "
        "(same value: /k3s.yaml)",
        "k3s-agent-3: gpu_worker_kubeconfig is deprecated; set the host variable kubernetes_kubeconfig instead "
        "(same value: /k3s.yaml)"]


def test_the_plan_refuses_old_connection_names_that_disagree():
    # the drain through one cluster, the labels through another: stopped before anything is read or changed
    hv = _hostvars()
    hv["k3s-agent-2"].update(gpu_vm_kubeconfig="/a.yaml", gpu_worker_kubeconfig="/b.yaml")
    with pytest.raises(AnsibleFilterError, match="k3s-agent-2: gpu_vm_kubeconfig=/a.yaml and gpu_worker_kubeconfig=/b.yaml "
                                                 "name different kubeconfigs; .* set the host variable kubernetes_kubeconfig"):
        FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster())
    hv["k3s-agent-2"].update(gpu_vm_kubeconfig="/k3s.yaml", gpu_worker_kubeconfig="/k3s.yaml",
                             gpu_vm_kube_context="homelab", gpu_worker_kube_context="lab")
    with pytest.raises(AnsibleFilterError, match="name different kubeconfig contexts"):
        FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster())
    # the new variables settle it
    hv["k3s-agent-2"].update(kubernetes_kubeconfig="/k3s.yaml", kubernetes_context="homelab")
    assert FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster())["ok"]


def test_a_skipped_read_counts_as_not_read():
    hv = _hostvars()
    hv["k3s-agent-1"].update(kubernetes_node_name="agent-1.lan", kubernetes_kubeconfig="/k3s.yaml")
    skipped = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
    read = FILTERS["fleet_plan"](hv, GROUPS, cluster=_cluster(), k8s_nodes=_nodes("k3s-agent-1"), labels=True)
    not_read = FILTERS["fleet_plan"](hv, GROUPS, cluster=skipped, budgets=skipped, pods=skipped, k8s_nodes=skipped,
                                     labels=True)
    assert "k8s_node" in [r["kind"] for r in read["refusals"]]
    assert not any(r["kind"] == "k8s_node" for r in not_read["refusals"]), not_read["refusals"]
    assert not_read == FILTERS["fleet_plan"](hv, GROUPS, labels=True)
