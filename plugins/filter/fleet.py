# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet plan of site.yml over module_utils.fleet; documented in fleet_plan.yml and fleet_plan_lines.yml."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.gpu_passthrough.plugins.filter.chain import _diagnosis, _plain
from ansible_collections.homelab.gpu_passthrough.plugins.filter.k8s_node import connection as _k8s_connection
from ansible_collections.homelab.gpu_passthrough.plugins.filter.k8s_node import resolve as _k8s_node
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import fleet
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.links import to_bool


def _read(value):
    """A read the run made: None when it was not made (omitted, or a registered result of a skipped task)."""
    if isinstance(value, Mapping) and value.get("skipped") and not value.get("changed"):
        return None
    return value


def _resources(value, name):
    """The ``resources`` of a k8s_info result, or a plain list."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = value.get("resources") or []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise AnsibleFilterError("fleet_plan: %s must be a k8s_info result or a list, got %s" % (name, type(value).__name__))
    return [_plain(item) for item in value]


def _agent(name, hv, guests, k8s_node):
    vm = _plain(hv.get("gpu_vm_plan")) or {}
    vmid = vm.get("vmid") or hv.get("vm_id") or hv.get("gpu_vm_id")
    live = next((g for g in guests if vmid is not None and str(g.get("vmid")) == str(vmid)), {})
    actions = vm.get("plan") or []
    # a plan of power steps alone restarts the VM into its pending config
    changes = fleet.vm_changes(actions) or (["restart"] if actions else [])
    return {"vmid": int(vmid) if vmid not in (None, "") else None, "name": hv.get("name") or name, "host": name,
            "k8s_node": k8s_node["name"],
            "status": live.get("status", "running"), "plan": changes}


def _drainable(hostvars, agents, connections):
    """The agents whose Kubernetes node a window that stops them drains: their connection names a kubeconfig and
    gpu_vm_drain allows it (the one rule; the rolling play reads it from the plan's members)."""
    return {name for name in agents
            if connections[name].get("kubeconfig") and to_bool(hostvars[name].get("gpu_vm_drain"), True)}


def _touches(result, hostvars, agents, k8s_nodes_of, drainable, labels):
    """What the run will do to each agent's Kubernetes node: the rolling play's drain and uncordon, gpu_worker's
    labels (through the one connection the plan read the Nodes with)."""
    stops = {a["host"] for p in result["nodes"] for a in p["agents"] if a["stop"]}
    node_of = {a["host"]: p["name"] for p in result["nodes"] for a in p["agents"]}
    touches = []
    for name in agents:
        hv = hostvars[name]
        actions = []
        if name in stops and name in drainable:
            actions += ["drain", "uncordon"]
        if labels and to_bool(hv.get("gpu_worker_label_node"), True):
            actions.append("label")
        if actions:
            found = k8s_nodes_of[name]
            touches.append({"host": name, "node": node_of.get(name), "k8s_node": found["name"],
                            "source": found["source"], "actions": actions})
    return touches


def fleet_plan(hostvars, groups, cluster=None, budgets=None, pods=None, limit=None, batch=1, max_unavailable=None,
               allow_ha=False, qdevice_votes=0, host_group="proxmox_hosts", agent_group="k3s_gpu_agents",
               k8s_nodes=None, labels=False):
    if not isinstance(hostvars, Mapping) or not isinstance(groups, Mapping):
        raise AnsibleFilterError("fleet_plan expects hostvars as input and groups as its first argument")
    cluster, budgets, pods, k8s_nodes = (_read(value) for value in (cluster, budgets, pods, k8s_nodes))
    allowed = None if limit is None else {str(h) for h in limit}
    info = _plain(cluster) or {}
    guests_by_node = info.get("guests") or {}

    def members(group):
        return [str(h) for h in groups.get(group) or [] if allowed is None or str(h) in allowed]

    agents_of = {}
    # one rule names every agent's Kubernetes node, for the drain, the labels and the uncordon alike
    k8s_nodes_of = {name: _k8s_node(hostvars[name], name) for name in members(agent_group)}
    # and one rule names the cluster: the Nodes read, the drains and the labels go through one connection
    connections = {name: _k8s_connection(hostvars[name], name)["connection"] for name in members(agent_group)}
    drainable = _drainable(hostvars, members(agent_group), connections)
    for name in members(agent_group):
        hv = hostvars[name]
        node = str(hv.get("proxmox_node") or hv.get("gpu_vm_proxmox_node") or "")
        agents_of.setdefault(node, []).append(name)
    nodes = []
    hosts = members(host_group)
    for name in hosts + sorted(set(agents_of) - set(hosts) - {""}):
        hv = hostvars[name] if name in hosts else {}
        node = str(hv.get("site_proxmox_node") or name)
        guests = [g for g in guests_by_node.get(node) or [] if not g.get("template")]
        host = fleet.host_plan(_diagnosis(hv), reboot=to_bool(hv.get("proxmox_gpu_prep_reboot"))) if name in hosts \
            else {"changes": [], "reboot": False, "refusals": []}
        agents = [_agent(a, hostvars[a], guests, k8s_nodes_of[a]) for a in agents_of.get(name, []) + (agents_of.get(node, []) if node != name else [])]
        nodes.append({"name": name, "node": node, "host": host, "agents": [a for a in agents if a["vmid"] is not None],
                      "guests": guests})
    status = dict(info.get("cluster") or {"name": None, "nodes": []}, qdevice_votes=int(qdevice_votes or 0))
    try:
        result = fleet.plan(nodes, status, ha_resources=info.get("ha_resources") or [],
                            budgets=[fleet.budget_from_k8s(b) for b in _resources(budgets, "budgets")],
                            pods=[fleet.pod_from_k8s(p) for p in _resources(pods, "pods")],
                            options={"batch": batch, "max_unavailable": max_unavailable, "allow_ha": to_bool(allow_ha)})
    except ValueError as exc:
        raise AnsibleFilterError("fleet_plan: %s" % exc) from exc
    if not info.get("cluster") and any(n["reboot"] for n in result["nodes"]):
        result["refusals"].append({"kind": "cluster_unknown", "node": None, "option": "gpu_vm_proxmox_api_host",
                                   "message": "a host would reboot but the Proxmox VE cluster status was not read",
                                   "fix": "set gpu_vm_proxmox_api_host and its credentials so the plan can read the "
                                          "cluster's quorum"})
        result["ok"] = False
    if k8s_nodes is not None:
        known = [fleet.node_name_from_k8s(n) for n in _resources(k8s_nodes, "k8s_nodes")]
        missing = fleet.missing_k8s_nodes(_touches(result, hostvars, members(agent_group), k8s_nodes_of, drainable,
                                                   to_bool(labels)), known)
        result["refusals"].extend(missing)
        result["ok"] = result["ok"] and not missing
    result["lines"] = fleet.plan_lines(result)
    result["rolling"] = fleet.rolling(result, hosts, other_agents=members(agent_group),
                                      k8s_nodes={name: found["name"] for name, found in k8s_nodes_of.items()},
                                      drains=drainable)
    return result


def fleet_plan_lines(plan):
    if not isinstance(plan, Mapping) or "nodes" not in plan:
        raise AnsibleFilterError("fleet_plan_lines expects the dictionary from fleet_plan")
    return fleet.plan_lines(_plain(plan))


class FilterModule:
    """The rolling chain's fleet plan."""

    def filters(self):
        return {"fleet_plan": fleet_plan, "fleet_plan_lines": fleet_plan_lines}
