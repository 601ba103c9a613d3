# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet plan: what each Proxmox node's window will change and stop, in which batch, and what is refused.

Pure Python, standard library only (and the collection's k8s_node); read-only by nature. ``plan(nodes, cluster,
ha_resources, budgets, pods, options)`` decides, before anything changes, per node: the host changes, whether the
host reboots, which guests stop (the k3s agents *and* every other running VM or container on a rebooting host),
which Kubernetes nodes are drained; and refuses, with the option and the fix, what would break the cluster:

- a cluster that is not quorate now, or a node of the plan that is offline;
- a batch whose reboots would cost Proxmox quorum: corosync votequorum keeps quorum while the votes present are more
  than half the expected votes (``quorum = expected // 2 + 1``), a QDevice adding its votes (``pvecm`` and
  corosync's votequorum(5)); so a 2-node cluster without a QDevice cannot reboot either node while the other waits;
- a batch larger than ``max_unavailable`` (or than quorum allows);
- an HA-managed guest (``/cluster/ha/resources``, requested state ``started``) that the window would stop: the HA
  stack would relocate, freeze or restart it (pve-ha-manager ``src/PVE/HA/LRM.pm`` shutdown policy);
- a drain a PodDisruptionBudget would block: a budget allowing fewer disruptions than the healthy pods it covers on
  the batch's nodes (the eviction API answers 429 for each one beyond ``status.disruptionsAllowed``);
- a Kubernetes node the run would drain, label or uncordon that is not in the cluster (``missing_k8s_nodes``):
  found only in the node's window, it would leave the node cordoned or its agent unlabelled.

Inputs are plain dicts (what ``pve_cluster_info``, ``pve_vm_info``/``pve_vm_q35`` in check mode and
``kubernetes.core.k8s_info`` return, reduced by the playbook):

``nodes``: ``[{name, node, host: {changes: [str], reboot: bool}, agents: [{vmid, name, k8s_node, status, plan:
[str]}], guests: [{vmid, name, type: qemu|lxc, status, onboot}]}]`` in rolling order; ``guests`` lists every guest on
the node (agents included or not). ``cluster``: ``{name, quorate, nodes: [{name, online, votes}], qdevice_votes}``
(``name`` None: a standalone node without a cluster). ``ha_resources``: ``[{sid: "vm:120", state}]``.
``budgets``: ``[{namespace, name, selector: {matchLabels, matchExpressions}, disruptionsAllowed, currentHealthy,
desiredHealthy, unhealthyPodEvictionPolicy}]``. ``pods``: ``[{namespace, name, node, labels, owner_kind, ready}]``.
``options``: ``{batch: 1, max_unavailable: None, allow_ha: False}``.
"""

from __future__ import annotations

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import k8s_node

# The options of site.yml each refusal names.
OPTION_BATCH = "site_batch"
OPTION_MAX_UNAVAILABLE = "site_max_unavailable"
OPTION_ALLOW_HA = "site_allow_ha"

HA_ACTIVE_STATES = ("started", "enabled")  # "enabled" is the old name of "started" (pve-ha-manager Config.pm)


def _int(value, name, minimum=0):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("%s must be an integer, got %r" % (name, value)) from None
    if number < minimum:
        raise ValueError("%s must be at least %d, got %d" % (name, minimum, number))
    return number


def _refusal(kind, message, fix, node=None, **extra):
    found = {"kind": kind, "node": node, "message": message, "fix": fix}
    found.update(extra)
    return found


# ----------------------------------------------------------------------------------------------- host
# What a reboot repairs once the role has written the configuration, and what no run of the role can change (the
# role refuses those: proxmox_gpu_prep's preflight).
REBOOT_REPAIRS = ("cmdline", "iommu", "groups", "binding")
NOT_FIXABLE = {
    "firmware": "the firmware IOMMU table (DMAR/IVRS) is missing",
    "isolation": "the device shares its IOMMU group with other devices",
}
POWER_ACTIONS = ("shutdown", "stop", "start")


def host_plan(diagnosis, reboot=False):
    """``{changes, reboot, refusals}`` of one Proxmox host from ``diagnosis.diagnose`` output (None: no facts).

    Every failing part (named as the diagnosis names it: ``cmdline``, ``iommu``, ...) is a change the host link
    will make; the host reboots when ``reboot`` (the role's ``proxmox_gpu_prep_reboot``) allows it and a failing
    part is one a reboot repairs.
    """
    if diagnosis is None:
        return {"changes": [], "reboot": False, "refusals": []}
    ok = {part["part"]: bool(part.get("ok")) for part in diagnosis}
    failing = [part for part in diagnosis if not part.get("ok")]
    # isolation can only be judged once the IOMMU is on and the device sits in a group
    final = [part for part in failing if part["part"] == "firmware"
             or (part["part"] == "isolation" and ok.get("iommu") and ok.get("groups"))]
    refusals = [{"kind": "host", "message": "%s: %s" % (NOT_FIXABLE[part["part"]], part.get("detail")),
                 "fix": part.get("fix")} for part in final]
    changes = [part["part"] for part in failing if part["part"] not in NOT_FIXABLE]
    return {"changes": changes, "reboot": bool(reboot) and any(name in REBOOT_REPAIRS for name in changes) and not refusals,
            "refusals": refusals}


def vm_changes(actions):
    """The config steps of a ``pve_vm_q35`` plan (its power steps are the window, not a change)."""
    return [str(a.get("action") if isinstance(a, dict) else a) for a in actions or []
            if (a.get("action") if isinstance(a, dict) else a) not in POWER_ACTIONS]


# ----------------------------------------------------------------------------------------------- quorum
def quorum(cluster):
    """``{standalone, expected_votes, quorum, votes_present, quorate, max_down}`` for the cluster as it is now.

    ``max_down``: the most votes that may leave while the cluster stays quorate.
    """
    members = list(cluster.get("nodes") or [])
    standalone = not cluster.get("name") and len(members) <= 1
    votes = {str(m["name"]): _int(m.get("votes", 1), "votes of %s" % m.get("name")) for m in members}
    qdevice = _int(cluster.get("qdevice_votes") or 0, "qdevice_votes")
    expected = sum(votes.values()) + qdevice
    needed = expected // 2 + 1
    present = sum(votes[str(m["name"])] for m in members if m.get("online", True)) + qdevice
    quorate = True if standalone else bool(cluster.get("quorate", present >= needed))
    return {"standalone": standalone, "expected_votes": expected, "quorum": needed, "votes_present": present,
            "quorate": quorate, "max_down": max(present - needed, 0), "votes": votes, "qdevice_votes": qdevice}


def max_batch(cluster, rebooting):
    """The most of the ``rebooting`` nodes that may be down together, however a batch picks them."""
    q = quorum(cluster)
    if q["standalone"]:
        return len(rebooting) or 1
    heaviest = sorted((q["votes"].get(name, 1) for name in rebooting), reverse=True)
    allowed, lost = 0, 0
    for vote in heaviest:
        if lost + vote > q["max_down"]:
            break
        lost += vote
        allowed += 1
    return allowed


# ----------------------------------------------------------------------------------------------- budgets
def selector_matches(selector, labels):
    """Whether a LabelSelector (``matchLabels``, ``matchExpressions``) selects ``labels``; an empty one selects all."""
    selector = selector or {}
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), list(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError("unknown label selector operator %r" % (op,))
    return True


def evicted_by_drain(pod):
    """A drain evicts every pod but DaemonSet pods and mirror (static) pods."""
    return pod.get("owner_kind") not in ("DaemonSet", "Node")


def budget_blocks(budgets, pods, k8s_nodes):
    """``[{budget, namespace, pods, allowed}]``: the budgets a drain of ``k8s_nodes`` together would run into."""
    drained = set(k8s_nodes)
    found = []
    for budget in budgets or []:
        namespace = budget.get("namespace", "default")
        covered = [p for p in pods or [] if p.get("node") in drained and p.get("namespace", "default") == namespace
                   and evicted_by_drain(p) and selector_matches(budget.get("selector"), p.get("labels"))]
        if not covered:
            continue
        allowed = _int(budget.get("disruptionsAllowed", 0), "disruptionsAllowed of %s" % budget.get("name"))
        healthy = [p for p in covered if p.get("ready", True)]
        # an unhealthy pod may go while the budget is healthy, or always with unhealthyPodEvictionPolicy AlwaysAllow
        # (kubernetes pkg/registry/core/pod/storage/eviction.go)
        budget_healthy = int(budget.get("currentHealthy", 0)) >= int(budget.get("desiredHealthy", 0))
        stuck = [p for p in covered if not p.get("ready", True)
                 and not budget_healthy and budget.get("unhealthyPodEvictionPolicy") != "AlwaysAllow"]
        if len(healthy) > allowed or stuck:
            found.append({"budget": budget.get("name"), "namespace": namespace, "allowed": allowed,
                          "pods": sorted("%s/%s" % (namespace, p.get("name")) for p in healthy + stuck),
                          "nodes": sorted({p.get("node") for p in healthy + stuck})})
    return found


# ----------------------------------------------------------------------------------------------- per node
def _ha_index(ha_resources):
    index = {}
    for res in ha_resources or []:
        kind, _sep, vmid = str(res.get("sid", "")).partition(":")
        if not vmid:  # a bare VMID is a VM (pve-ha-manager Config.pm parse_sid)
            kind, vmid = "vm", kind
        index[(("qemu" if kind == "vm" else "lxc"), vmid)] = res
    return index


def node_plan(node):
    """The window of one node, before refusals: changes, reboot, guests that stop, Kubernetes nodes drained."""
    host = node.get("host") or {}
    reboot = bool(host.get("reboot"))
    agents = list(node.get("agents") or [])
    agent_ids = {str(a["vmid"]) for a in agents}
    stops = []
    for agent in agents:
        running = agent.get("status", "running") == "running"
        if running and (reboot or agent.get("plan")):
            stops.append({"vmid": int(agent["vmid"]), "name": agent.get("name"), "type": "qemu", "agent": True,
                          "k8s_node": agent.get("k8s_node") or agent.get("name"), "onboot": agent.get("onboot")})
    if reboot:
        for guest in node.get("guests") or []:
            if str(guest.get("vmid")) in agent_ids or guest.get("status") != "running":
                continue
            stops.append({"vmid": int(guest["vmid"]), "name": guest.get("name"), "type": guest.get("type", "qemu"),
                          "agent": False, "k8s_node": None, "onboot": guest.get("onboot")})
    vm_changes = {str(a["vmid"]): list(a.get("plan") or []) for a in agents if a.get("plan")}
    stopping = {s["vmid"] for s in stops}
    return {
        "name": node["name"],
        "node": node.get("node") or node["name"],
        "host_changes": list(host.get("changes") or []),
        "vm_changes": vm_changes,
        "reboot": reboot,
        "stops": stops,
        "drain": [s["k8s_node"] for s in stops if s["agent"]],
        # the agents' inventory hosts: which of them the node's window stops, and which get a VM config write
        "agents": [{"host": a.get("host") or a.get("name"), "vmid": int(a["vmid"]), "k8s_node": a.get("k8s_node")
                    or a.get("name"), "stop": int(a["vmid"]) in stopping, "vm_config": bool(a.get("plan"))}
                   for a in agents],
        "changes": bool(host.get("changes") or reboot or vm_changes),
        "refusals": [dict(r, node=node["name"]) for r in host.get("refusals") or []],
    }


def _batches(plans, size):
    return [plans[i:i + size] for i in range(0, len(plans), size)]


def plan(nodes, cluster, ha_resources=(), budgets=(), pods=(), options=None):
    """The fleet plan. ``ok`` is False when anything is refused; then nothing may be changed."""
    options = dict(options or {})
    batch = _int(options.get("batch", 1) if options.get("batch") is not None else 1, OPTION_BATCH, 1)
    max_unavailable = options.get("max_unavailable")
    if max_unavailable is not None:
        max_unavailable = _int(max_unavailable, OPTION_MAX_UNAVAILABLE, 1)
    allow_ha = bool(options.get("allow_ha"))

    q = quorum(cluster)
    online = {str(m["name"]): bool(m.get("online", True)) for m in cluster.get("nodes") or []}
    plans = [node_plan(n) for n in nodes]
    refusals = []

    if not q["quorate"]:
        refusals.append(_refusal(
            "not_quorate", "the Proxmox VE cluster %s is not quorate now (%d of %d expected votes present, %d needed)"
            % (cluster.get("name"), q["votes_present"], q["expected_votes"], q["quorum"]),
            "bring the missing nodes back (pvecm status) before a rolling run; nothing was changed"))

    for p in plans:
        if p["node"] in online and not online[p["node"]] and (p["changes"] or p["stops"]):
            p["refusals"].append(_refusal(
                "node_offline", "Proxmox node %s is offline" % p["node"],
                "bring it back or leave it out with --limit", p["name"]))

    # quorum: a node whose own votes are more than may leave can never reboot; a batch's reboots together must not
    # take more than that either
    rebooting = [] if q["standalone"] else [p for p in plans if p["reboot"]]
    for p in rebooting:
        if q["votes"].get(p["node"], 1) > q["max_down"]:
            p["refusals"].append(_refusal(
                "quorum", "rebooting %s costs the cluster its quorum: %d expected votes, %d needed, %d present, %s "
                "carries %d" % (p["node"], q["expected_votes"], q["quorum"], q["votes_present"], p["node"],
                                q["votes"].get(p["node"], 1)),
                "add a QDevice (pvecm qdevice setup <address>) or another node so one node may reboot, or run without "
                "the host reboot (proxmox_gpu_prep_reboot=false) and reboot by hand", p["name"]))
    possible = [p["node"] for p in rebooting if q["votes"].get(p["node"], 1) <= q["max_down"]]
    allowed = max_batch(cluster, possible) if possible else None
    limits = [(value, why) for value, why in (
        (allowed, "quorum allows %s rebooting node(s) down at once (%d expected votes, %d needed)"
         % (allowed, q["expected_votes"], q["quorum"])),
        (max_unavailable, "%s is %s" % (OPTION_MAX_UNAVAILABLE, max_unavailable))) if value is not None]
    limit, why = min(limits, key=lambda item: item[0]) if limits else (None, None)
    lost = [sum(q["votes"].get(p["node"], 1) for p in group if p["node"] in possible) for group in _batches(plans, batch)]
    if limit is not None and batch > limit and (max(lost) > q["max_down"] or limit == max_unavailable):
        refusals.append(_refusal(
            "batch", "%s=%d is larger than the fleet may lose: %s" % (OPTION_BATCH, batch, why),
            "set %s=%d or lower" % (OPTION_BATCH, limit), option=OPTION_BATCH, value=batch, allowed=limit))

    ha = _ha_index(ha_resources)
    for p in plans:
        for stop in p["stops"]:
            res = ha.get((stop["type"], str(stop["vmid"])))
            if res is None or res.get("state", "started") not in HA_ACTIVE_STATES:
                continue
            stop["ha"] = res.get("sid")
            if allow_ha:
                continue
            why = "the host reboot" if p["reboot"] else "the VM config change"
            p["refusals"].append(_refusal(
                "ha", "%s %s (%s) on %s is HA-managed (state %s): %s would stop it and the HA stack would relocate "
                "or restart it" % ("VM" if stop["type"] == "qemu" else "CT", stop["vmid"], stop["name"], p["node"],
                                   res.get("state", "started"), why),
                "ha-manager set %s --state ignored for the run (ha-manager set %s --state started after), migrate it "
                "away first (ha-manager migrate %s <node>), or set %s=true to let the HA stack handle it"
                % (res.get("sid"), res.get("sid"), res.get("sid"), OPTION_ALLOW_HA), p["name"], option=OPTION_ALLOW_HA))

    for number, group in enumerate(_batches(plans, batch), start=1):
        for p in group:
            p["batch"] = number
        drained = [k for p in group for k in p["drain"]]
        for block in budget_blocks(budgets, pods, drained):
            names = [p["name"] for p in group if set(p["drain"]) & set(block["nodes"])]
            refusals.append(_refusal(
                "budget", "PodDisruptionBudget %s/%s allows %d disruption(s) but draining %s would evict %s"
                % (block["namespace"], block["budget"], block["allowed"], ", ".join(drained), ", ".join(block["pods"])),
                "give the workload more replicas than the budget's minAvailable (kubectl -n %s scale ...), relax or "
                "delete the budget for the run (kubectl -n %s edit pdb %s), or move the pods off the node first"
                % (block["namespace"], block["namespace"], block["budget"]),
                ", ".join(names) or None, budget="%s/%s" % (block["namespace"], block["budget"]), pods=block["pods"]))

    for p in plans:
        refusals.extend(p["refusals"])
    return {
        "ok": not refusals,
        "nodes": plans,
        "batches": [[p["name"] for p in group] for group in _batches(plans, batch)],
        "batch": batch,
        "max_batch": limit,  # None: nothing bounds the batch
        "quorum": {k: v for k, v in q.items() if k != "votes"},
        "refusals": refusals,
    }


def rolling(fleet, hosts=(), other_agents=(), k8s_nodes=None, drains=None):
    """The rolling play's hosts and batches: ``{"order": [...], "serial": [...], "members": {host: {...}}}``.

    ``order`` lists, batch after batch, each node's Proxmox host (when it is one of ``hosts``, the inventory's Proxmox
    hosts) and then its agents; ``serial`` is the number of those hosts per batch, for a play's ``serial`` list.
    ``members`` says per host which node and batch it belongs to, its part (``host`` or ``agent``) and, for an agent,
    whether the window stops it, drains its Kubernetes node (when it stops and is one of ``drains``, the agents whose
    node may be drained; all of them when None) and writes its VM config; ``window`` whether the node's window stops or reboots
    anything; ``leader`` marks the member that records the node's ``done`` and checks the clusters after a window.
    ``other_agents`` (agents without a VM the plan could read, so without a window) come last, in one batch: only
    their guest link runs. ``k8s_nodes`` (agent -> Kubernetes node) names their nodes too."""
    hosts = {str(h) for h in hosts}
    by_name = {p["name"]: p for p in fleet["nodes"]}
    order, serial, members = [], [], {}
    for number, names in enumerate(fleet["batches"], start=1):
        count = 0
        for name in names:
            p = by_name[name]
            entries = []
            if name in hosts:
                entries.append((name, {"part": "host", "reboot": p["reboot"], "changes": bool(p["host_changes"])}))
            for agent in p.get("agents") or []:
                drain = agent["stop"] and (drains is None or agent["host"] in drains)
                entries.append((agent["host"], {"part": "agent", "vmid": agent["vmid"], "k8s_node": agent["k8s_node"],
                                                "stop": agent["stop"], "drain": drain, "vm_config": agent["vm_config"]}))
            for host, member in entries:
                if host in members:
                    continue
                members[host] = dict(member, node=p["name"], pve_node=p["node"], batch=number, reboot=p["reboot"],
                                     window=bool(p["reboot"] or p["stops"]),
                                     leader=not any(m["node"] == p["name"] for m in members.values()))
                order.append(host)
                count += 1
        if count:
            serial.append(count)
    rest = [str(h) for h in other_agents if str(h) not in members]
    for host in rest:
        members[host] = {"part": "agent", "vmid": None, "k8s_node": (k8s_nodes or {}).get(host), "stop": False,
                         "drain": False, "vm_config": False,
                         "node": host, "pve_node": None, "batch": len(serial) + 1, "reboot": False, "window": False,
                         "leader": True}
        order.append(host)
    if rest:
        serial.append(len(rest))
    return {"order": order, "serial": serial or [1], "members": members}


# ----------------------------------------------------------------------------------------------- Kubernetes objects
def budget_from_k8s(obj):
    """A policy/v1 PodDisruptionBudget as ``kubernetes.core.k8s_info`` returns it -> the shape ``plan`` takes."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    return {"namespace": meta.get("namespace", "default"), "name": meta.get("name"), "selector": spec.get("selector") or {},
            "disruptionsAllowed": status.get("disruptionsAllowed", 0), "currentHealthy": status.get("currentHealthy", 0),
            "desiredHealthy": status.get("desiredHealthy", 0),
            "unhealthyPodEvictionPolicy": spec.get("unhealthyPodEvictionPolicy")}


def pod_from_k8s(obj):
    """A Pod as ``kubernetes.core.k8s_info`` returns it -> the shape ``plan`` takes."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    owners = meta.get("ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else {})
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return {"namespace": meta.get("namespace", "default"), "name": meta.get("name"), "node": spec.get("nodeName"),
            "labels": meta.get("labels") or {}, "owner_kind": owner.get("kind"),
            "ready": status.get("phase") == "Running" and (not ready or ready[-1].get("status") == "True")}


def node_name_from_k8s(obj):
    """A Node as ``kubernetes.core.k8s_info`` returns it -> its name."""
    return (obj.get("metadata") or {}).get("name")


def _and(words):
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def missing_k8s_nodes(touches, k8s_nodes):
    """Refusals for the Kubernetes nodes the run would touch that ``k8s_nodes`` (the names in the cluster) lacks.

    ``touches``: ``[{host, node, k8s_node, source, actions: [drain|uncordon|label]}]``: per agent its Proxmox node,
    its Kubernetes node, where that name came from (``k8s_node.described``) and what the run would do to it.
    """
    known = {str(name) for name in k8s_nodes}
    refusals = []
    for touch in touches:
        if touch["k8s_node"] in known:
            continue
        refusals.append(_refusal(
            "k8s_node", "agent %s: Kubernetes node %s (%s) is not in the cluster; the run would %s it"
            % (touch["host"], touch["k8s_node"], k8s_node.described(touch.get("source")), _and(touch["actions"])),
            "set the host variable %s of %s to the node's name as kubectl get nodes lists it, or point "
            "%s at the cluster the agent joined"
            % (k8s_node.VARIABLE, touch["host"], " and ".join(k8s_node.CONNECTION_VARIABLES)),
            touch.get("node"), host=touch["host"], k8s_node=touch["k8s_node"], option=k8s_node.VARIABLE))
    return refusals


def plan_lines(fleet):
    """The plan for humans: one line per node and per refusal."""
    lines = []
    for p in fleet["nodes"]:
        stops = ", ".join("%s %s (%s%s)" % ("VM" if s["type"] == "qemu" else "CT", s["vmid"], s["name"],
                                            ", agent" if s["agent"] else "") for s in p["stops"]) or "none"
        changes = p["host_changes"] + ["VM %s: %s" % (vmid, ", ".join(steps)) for vmid, steps in p["vm_changes"].items()]
        lines.append("batch %d %s (%s): %s; host reboot: %s; guests stopping: %s; drain: %s" % (
            p["batch"], p["name"], p["node"], ", ".join(changes) or "no change", "yes" if p["reboot"] else "no", stops,
            ", ".join(p["drain"]) or "none"))
    for r in fleet["refusals"]:
        lines.append("REFUSED%s: %s -- fix: %s" % (" (%s)" % r["node"] if r.get("node") else "", r["message"], r["fix"]))
    return lines
