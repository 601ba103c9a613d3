#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pve_pci_mapping
short_description: Manage a Proxmox VE cluster PCI resource mapping
version_added: 0.1.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Creates, updates or deletes a cluster PCI resource mapping (C(/cluster/mapping/pci), Proxmox VE 8.0 or newer).
  - A VM that uses C(hostpciN=mapping=<id>) needs only C(Mapping.Use) on the mapping and C(VM.Config.HWType) on the
    VM, so API tokens can attach PCI devices through it; raw addresses are reserved to C(root@pam).
  - Each map entry (C(node=,path=,id=,subsystem-id=,iommugroup=)) is filled from what
    C(GET /nodes/<node>/hardware/pci) reports on that node. Proxmox VE compares these with the live device when a
    VM starts and refuses to start with a mapping that lacks one of them.
  - The map holds exactly one entry per node listed in O(devices); entries of other nodes are removed.
  - Nothing is written when the mapping already matches.
extends_documentation_fragment:
  - homelab.gpu_passthrough.pve_auth
attributes:
  check_mode:
    description: Reads the hardware and the mapping and reports the change without writing.
    support: full
  diff_mode:
    description: Shows the mapping (description, mdev, map entries) before and after.
    support: full
options:
  name:
    description:
      - The mapping's id, a letter followed by letters, digits, C(-) or C(_).
    type: str
    required: true
    aliases: [id]
  description:
    description:
      - Description of the mapping. Not changed when not given; an empty string removes it.
    type: str
  devices:
    description:
      - The device on each node. Required with O(state=present).
    type: list
    elements: dict
    suboptions:
      node:
        description:
          - The node name.
        type: str
        required: true
      path:
        description:
          - The device on that node, as a PCI address (V(0000:00:02.0), V(00:02.0)) or V(vendor:device) ids
            (V(8086:3e92)) looked up on the node. Several addresses joined with C(;) are allowed (SR-IOV virtual
            functions, of which Proxmox VE uses the first free one); ids matching several devices give all of them.
        type: str
        required: true
  mdev:
    description:
      - Whether the devices are used as mediated devices (GVT-g). Proxmox VE checks this flag against the hardware at
        VM start.
      - When not given it follows the hardware (true when a device offers mdev types); a value different from the
        hardware gives a warning.
    type: bool
  state:
    description:
      - V(present) creates or updates the mapping, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Creating, updating and deleting mappings needs C(Mapping.Modify), which C(PVEAdmin) does not include; use
    C(root@pam), C(Administrator) or C(PVEMappingAdmin). Reading the hardware needs C(Sys.Audit) on C(/).
  - Updates send the mapping file's digest, so a concurrent change makes the write fail instead of being overwritten.
requirements:
  - proxmoxer >= 2.0
  - requests
seealso:
  - module: homelab.gpu_passthrough.pve_hostpci
"""

EXAMPLES = r"""
- name: Map the UHD 630 of every node as igpu
  homelab.gpu_passthrough.pve_pci_mapping:
    api_host: pve1.example.lan
    api_user: root@pam
    api_password: "{{ vault_pve_root_password }}"
    ca_path: files/pve-root-ca.pem
    name: igpu
    description: Intel UHD 630
    devices:
      - {node: pve1, path: "0000:00:02.0"}
      - {node: pve2, path: "8086:3e92"}
      - {node: pve3, path: "8086:3e92"}

- name: Remove the mapping
  homelab.gpu_passthrough.pve_pci_mapping:
    name: igpu
    state: absent
"""

RETURN = r"""
mapping:
  description: The mapping after the run; null when absent.
  returned: always
  type: dict
  contains:
    id:
      description: The mapping id.
      type: str
    description:
      description: The description, if any.
      type: str
    mdev:
      description: The mdev flag.
      type: bool
    map:
      description: The map entries, one per node.
      type: list
      elements: str
  sample:
    id: igpu
    mdev: false
    map:
      - node=pve1,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import (
    AUTH_ARGUMENT_SPEC,
    AUTH_MUTUALLY_EXCLUSIVE,
    AUTH_REQUIRED_ONE_OF,
    AUTH_REQUIRED_TOGETHER,
    session_from_module,
)

ID_RE = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
VENDOR_DEVICE_RE = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$")
ADDRESS_RE = re.compile(r"^(?:[0-9a-f]{4,}:)?[0-9a-f]{2}:[0-9a-f]{2}(?:\.[0-9a-f])?$")
ENTRY_KEYS = ("node", "path", "id", "subsystem-id", "iommugroup")


def _hex(value):
    return str(value or "").lower().replace("0x", "")


def _full(address):
    address = address.strip().lower()
    if address.count(":") == 1:
        address = "0000:" + address
    return address


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
    match = VENDOR_DEVICE_RE.match(path.strip())
    if match:
        vendor, device = match.group(1).lower(), match.group(2).lower()
        ids = sorted(d["id"] for d in devices if _hex(d.get("vendor")) == vendor and _hex(d.get("device")) == device)
        if not ids:
            raise PassthroughError(
                "No PCI device with ids %s:%s on node %s." % (vendor, device, node),
                fix="check the ids with 'lspci -nn' on %s, or give the PCI address." % node,
                link="input",
            )
    else:
        ids = []
        for part in path.split(";"):
            address = _full(part)
            if not ADDRESS_RE.match(address):
                raise PassthroughError(
                    "Invalid PCI address %r for node %s." % (part, node),
                    fix="write it like lspci -D does, e.g. '0000:00:02.0', or give vendor:device ids like '8086:3e92'.",
                )
            if "." not in address:
                address += ".0"
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
        if (_hex(dev.get("vendor")), _hex(dev.get("device"))) != (_hex(first.get("vendor")), _hex(first.get("device"))):
            raise PassthroughError(
                "The devices %s on node %s are not all the same model." % (";".join(ids), node),
                fix="map only devices with the same vendor:device ids in one mapping.",
            )
    parts = ["node=%s" % node, "path=%s" % ";".join(ids), "id=%s:%s" % (_hex(first.get("vendor")), _hex(first.get("device")))]
    if first.get("subsystem_vendor") is not None and first.get("subsystem_device") is not None:
        parts.append("subsystem-id=%s:%s" % (_hex(first["subsystem_vendor"]), _hex(first["subsystem_device"])))
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


def _as_bool(value):
    return str(value).lower() in ("1", "true", "yes", "on")


def read_mapping(session, name):
    """The mapping ``name`` and the file digest, from the list (a missing id is not an error there)."""
    for row in session.get("/cluster/mapping/pci") or []:
        if row.get("id") == name:
            entries = row.get("map") or []
            if not isinstance(entries, list):
                entries = [entries]
            current = {"id": name, "description": row.get("description"), "mdev": _as_bool(row.get("mdev", 0)), "map": list(entries)}
            return current, row.get("digest")
    return None, None


def run(module, session):
    p = module.params
    name = p["name"]
    if not ID_RE.match(name):
        raise PassthroughError("Invalid mapping id %r." % name, fix="start with a letter, then letters, digits, '-' or '_'.")
    current, digest = read_mapping(session, name)
    result = {"changed": False, "mapping": current}

    if p["state"] == "absent":
        if current is not None:
            result["changed"] = True
            result["mapping"] = None
            if not module.check_mode:
                session.delete("/cluster/mapping/pci/%s" % name)
        if module._diff:
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
        module.warn(
            "mdev is %s but the hardware %s mediated device types; Proxmox VE refuses to start a VM with this mapping "
            "until they agree." % (p["mdev"], "offers" if hw_mdev else "does not offer")
        )
    description = p["description"]
    if description is None:
        description = (current or {}).get("description")
    wanted = {"id": name, "description": description or None, "mdev": bool(mdev), "map": entries}

    if current is None:
        result["changed"] = True
        if not module.check_mode:
            params = {"id": name, "map": entries, "mdev": 1 if mdev else 0}
            if description:
                params["description"] = description
            session.post("/cluster/mapping/pci", **params)
    else:
        same_map = sorted(current["map"]) == sorted(entries)
        same = same_map and bool(current["mdev"]) == bool(mdev) and (current.get("description") or None) == wanted["description"]
        if not same:
            result["changed"] = True
            if not module.check_mode:
                params = {"map": entries, "mdev": 1 if mdev else 0, "digest": digest}
                if wanted["description"]:
                    params["description"] = wanted["description"]
                elif current.get("description"):
                    params["delete"] = "description"
                session.put("/cluster/mapping/pci/%s" % name, **params)
    result["mapping"] = wanted
    if module._diff:
        result["diff"] = {"before": _render(current), "after": _render(wanted)}
    return result


def main():
    argument_spec = dict(AUTH_ARGUMENT_SPEC)
    argument_spec.update(
        name=dict(type="str", required=True, aliases=["id"]),
        description=dict(type="str"),
        devices=dict(
            type="list",
            elements="dict",
            options=dict(node=dict(type="str", required=True), path=dict(type="str", required=True)),
        ),
        mdev=dict(type="bool"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=AUTH_REQUIRED_ONE_OF,
        required_together=AUTH_REQUIRED_TOGETHER,
        mutually_exclusive=AUTH_MUTUALLY_EXCLUSIVE,
        required_if=[("state", "present", ["devices"])],
        supports_check_mode=True,
    )
    try:
        session = session_from_module(module)
        result = run(module, session)
    except PassthroughError as err:
        module.fail_json(**err.to_result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
