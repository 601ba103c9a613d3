# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster PCI resource mappings (``/cluster/mapping/pci``): map entries built from a node's device list,
compared by meaning, and the create/update/delete that converges one mapping.

Entries follow pve-guest-common: src/PVE/Mapping/PCI.pm ``$map_fmt`` (``node``, ``path``, ``id``,
``subsystem-id``, ``iommugroup``, ``description``); the API is pve-manager: PVE/API2/Cluster/Mapping/PCI.pm.
PCI ids go through ``pci_ids``.
"""

from __future__ import annotations

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pci_ids
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import config as pve_config

ENTRY_KEYS = ("node", "path", "id", "subsystem-id", "iommugroup")


def parse_entry(text):
    """``node=..,path=..`` -> dict (pve-guest-common src/PVE/Mapping/PCI.pm ``$map_fmt``)."""
    out = {}
    for part in str(text).split(","):
        if "=" in part:
            key, _sep, value = part.partition("=")
            out[key.strip()] = value.strip()
    return out


def _same_entry(a, b):
    pa, pb = parse_entry(a), parse_entry(b)
    return all(str(pa.get(k, "")).lower() == str(pb.get(k, "")).lower() for k in ENTRY_KEYS)


def build_entry(node, path, devices):
    """The map entry for ``path`` on ``node`` from the node's ``hardware/pci?verbose=1`` rows; also returns mdev."""
    by_id = {d["id"]: d for d in devices}
    wanted_ids = pci_ids.vendor_device(path)
    if wanted_ids:
        ids = sorted(d["id"] for d in devices if pci_ids.vendor_device_of(d) == wanted_ids)
        if not ids:
            raise PassthroughError(
                "No PCI device with ids %s on node %s." % (wanted_ids, node),
                fix="check the ids with 'lspci -nn' on %s, or give the PCI address." % node,
                link="input",
            )
    else:
        ids = []
        for part in path.split(";"):
            address = pci_ids.address(part)
            if not pci_ids.is_address(address):
                raise PassthroughError(
                    "Invalid PCI address %r for node %s." % (part, node),
                    fix="write it like lspci -D does, e.g. '0000:00:02.0', or give vendor:device ids like '8086:3e92'.",
                )
            address = pci_ids.with_function(address)
            if address not in by_id:
                raise PassthroughError(
                    "No PCI device %s on node %s (GET /nodes/%s/hardware/pci)." % (address, node, node),
                    fix="check the address with 'lspci -D' on %s." % node,
                    link="input",
                )
            ids.append(address)
    first = by_id[ids[0]]
    for other in ids[1:]:
        dev = by_id[other]
        if pci_ids.vendor_device_of(dev) != pci_ids.vendor_device_of(first):
            raise PassthroughError(
                "The devices %s on node %s are not all the same model." % (";".join(ids), node),
                fix="map only devices with the same vendor:device ids in one mapping.",
            )
    parts = ["node=%s" % node, "path=%s" % ";".join(ids), "id=%s" % pci_ids.vendor_device_of(first)]
    subsystem = pci_ids.vendor_device_of(first, prefix="subsystem_")
    if subsystem:
        parts.append("subsystem-id=%s" % subsystem)
    group = first.get("iommugroup", -1)
    if group is not None and int(group) != -1:
        parts.append("iommugroup=%d" % int(group))
    return ",".join(parts), bool(first.get("mdev"))


def _render(mapping):
    if not mapping:
        return ""
    lines = ["id: %s" % mapping["id"]]
    if mapping.get("description"):
        lines.append("description: %s" % mapping["description"])
    lines.append("mdev: %d" % (1 if mapping.get("mdev") else 0))
    lines.extend("map: %s" % entry for entry in mapping.get("map") or [])
    return "\n".join(lines) + "\n"


def read_mapping(session, name):
    """The mapping ``name`` and the file digest, from the list (a missing id is not an error there)."""
    for row in session.get("/cluster/mapping/pci") or []:
        if row.get("id") == name:
            entries = row.get("map") or []
            if not isinstance(entries, list):
                entries = [entries]
            current = {"id": name, "description": row.get("description"), "mdev": bool(pve_config.parse_bool(row.get("mdev", 0))), "map": list(entries)}
            return current, row.get("digest")
    return None, None


def converge(session, p, check_mode=False, diff=False, warn=None):
    """Converge mapping ``p["name"]`` to ``p`` (module options ``description``, ``devices``, ``mdev``, ``state``);
    the module's result."""
    name = p["name"]
    if not pci_ids.is_config_id(name):
        raise PassthroughError("Invalid mapping id %r (option name)." % name, fix="start with a letter, then letters, digits, '-' or '_'.",
                               details={"option": "name"})
    current, digest = read_mapping(session, name)
    result = {"changed": False, "mapping": current}

    if p["state"] == "absent":
        if current is not None:
            result["changed"] = True
            result["mapping"] = None
            if not check_mode:
                session.delete("/cluster/mapping/pci/%s" % name)
        if diff:
            result["diff"] = {"before": _render(current), "after": ""}
        return result

    devices = p["devices"] or []
    if not devices:
        raise PassthroughError("devices is empty for mapping %r." % name, fix="list at least one {node, path}.")
    nodes = [d["node"] for d in devices]
    doubled = sorted({n for n in nodes if nodes.count(n) > 1})
    if doubled:
        raise PassthroughError(
            "Node(s) %s are listed more than once in devices." % ", ".join(doubled),
            fix="give one entry per node; join several addresses of one node with ';' in its path.",
        )

    entries = []
    hw_mdev = False
    for dev in devices:
        rows = session.get("/nodes/%s/hardware/pci" % dev["node"], verbose=1, **{"pci-class-blacklist": ""}) or []
        entry, mdev = build_entry(dev["node"], dev["path"], rows)
        hw_mdev = hw_mdev or mdev
        # keep an equal existing entry as written (with its description, if any)
        old = next((e for e in (current or {}).get("map", []) if parse_entry(e).get("node") == dev["node"]), None)
        entries.append(old if old is not None and _same_entry(old, entry) else entry)

    mdev = hw_mdev if p["mdev"] is None else p["mdev"]
    if p["mdev"] is not None and p["mdev"] != hw_mdev:
        (warn or (lambda _msg: None))(
            "mdev is %s but the hardware %s mediated device types; Proxmox VE refuses to start a VM with this mapping "
            "until they agree." % (p["mdev"], "offers" if hw_mdev else "does not offer")
        )
    description = p["description"]
    if description is None:
        description = (current or {}).get("description")
    wanted = {"id": name, "description": description or None, "mdev": bool(mdev), "map": entries}

    if current is None:
        result["changed"] = True
        if not check_mode:
            params = {"id": name, "map": entries, "mdev": 1 if mdev else 0}
            if description:
                params["description"] = description
            session.post("/cluster/mapping/pci", **params)
    else:
        same_map = sorted(current["map"]) == sorted(entries)
        same = same_map and bool(current["mdev"]) == bool(mdev) and (current.get("description") or None) == wanted["description"]
        if not same:
            result["changed"] = True
            if not check_mode:
                params = {"map": entries, "mdev": 1 if mdev else 0, "digest": digest}
                if wanted["description"]:
                    params["description"] = wanted["description"]
                elif current.get("description"):
                    params["delete"] = "description"
                session.put("/cluster/mapping/pci/%s" % name, **params)
    result["mapping"] = wanted
    if diff:
        result["diff"] = {"before": _render(current), "after": _render(wanted)}
    return result
