# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the fleet plan needs to know of a Proxmox VE cluster, read through the API: quorum, votes, HA, guests.

``parse_*`` are pure (API rows in, plain dicts out); ``read_cluster(session)`` makes the read-only calls:

- ``GET /cluster/status``: pve-manager ``PVE/API2/Cluster.pm`` ``get_status`` — a ``cluster`` row (name, quorate)
  when the node is in a cluster, one ``node`` row (name, nodeid, online) per node;
- ``GET /cluster/config/nodes``: pve-cluster ``src/PVE/API2/ClusterConfig.pm`` ``nodes`` — the corosync nodelist
  with each node's ``quorum_votes`` (empty on a standalone node);
- ``GET /cluster/ha/resources``: pve-ha-manager ``src/PVE/API2/HA/Resources.pm`` ``index`` — ``sid`` (``vm:120``,
  ``ct:200``), ``type``, ``state``, ``group``;
- ``GET /cluster/resources?type=vm``: every VM and container with its node and status.
"""

from __future__ import annotations


def _int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def parse_status(rows, nodelist=()):
    """``{name, quorate, standalone, nodes: [{name, nodeid, online, local, votes}], expected_votes}``."""
    cluster = next((r for r in rows or [] if r.get("type") == "cluster"), None)
    votes = {str(n.get("node") or n.get("name")): _int(n.get("quorum_votes"), 1) for n in nodelist or []}
    nodes = []
    for row in rows or []:
        if row.get("type") != "node":
            continue
        name = str(row.get("name"))
        nodes.append({"name": name, "nodeid": _int(row.get("nodeid"), 0), "online": bool(_int(row.get("online"), 0)),
                      "local": bool(_int(row.get("local"), 0)), "votes": votes.get(name, 1)})
    nodes.sort(key=lambda n: n["name"])
    return {
        "name": cluster.get("name") if cluster else None,
        # a standalone node has no cluster row and nothing to lose quorum with
        "quorate": bool(_int(cluster.get("quorate"), 0)) if cluster else True,
        "standalone": cluster is None,
        "nodes": nodes,
        "expected_votes": sum(n["votes"] for n in nodes),
    }


def parse_ha(rows):
    """``[{sid, type, vmid, state, group}]``; a bare VMID as ``sid`` is a VM (pve-ha-manager ``parse_sid``)."""
    found = []
    for row in rows or []:
        sid = str(row.get("sid", ""))
        kind, _sep, vmid = sid.partition(":")
        if not vmid:
            kind, vmid = "vm", kind
        found.append({"sid": sid if ":" in sid else "vm:%s" % sid, "type": row.get("type") or kind,
                      "vmid": _int(vmid), "state": row.get("state") or "started", "group": row.get("group")})
    return sorted(found, key=lambda r: (r["vmid"] is None, r["vmid"] or 0, r["sid"]))


def parse_guests(rows, ha=()):
    """``{node: [{vmid, name, type, status, template, ha_state}]}`` from ``/cluster/resources?type=vm`` rows."""
    states = {(r["type"], r["vmid"]): r["state"] for r in ha or []}
    guests = {}
    for row in rows or []:
        kind = row.get("type")
        if kind not in ("qemu", "lxc"):
            continue
        vmid = _int(row.get("vmid"))
        guests.setdefault(str(row.get("node")), []).append({
            "vmid": vmid, "name": row.get("name"), "type": kind, "status": row.get("status"),
            "template": bool(_int(row.get("template"), 0)),
            "ha_state": states.get(("vm" if kind == "qemu" else "ct", vmid)),
        })
    return {node: sorted(items, key=lambda g: g["vmid"] or 0) for node, items in sorted(guests.items())}


def read_cluster(session, guests=True):
    """Read the cluster through ``session`` (a ``pve.PveSession``); only GET requests."""
    status_rows = session.get("/cluster/status")
    standalone = not any(r.get("type") == "cluster" for r in status_rows or [])
    nodelist = [] if standalone else session.get("/cluster/config/nodes")
    cluster = parse_status(status_rows, nodelist)
    ha = parse_ha(session.get("/cluster/ha/resources"))
    result = {"cluster": cluster, "ha_resources": ha}
    if guests:
        result["guests"] = parse_guests(session.get("/cluster/resources", type="vm"), ha)
    return result
