# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every value a ``link`` field may take, defined once: ids, titles, order, which play selects them; and the
summary of a run.

Pure Python, standard library only. A ``link`` field always holds an id of this module: the links of the chain
(``LINKS``) or the places beside the chain a failure can be pinned on (``PLACES``: the user's input, a file, the
boot loader). Titles are for display only (``title``). ``errors.PassthroughError``, the guest verdict and the
host diagnosis' parts carry these ids. ``chain_summary`` turns what the roles left on each host (plain dicts)
into the rows ``playbooks/site.yml`` prints and writes with ``-e site_summary_file``: ``{id, host, link, status,
detail, fix}``, ``id`` being the link id and ``link`` its title, for display.
"""

from __future__ import annotations

from collections import namedtuple

Link = namedtuple("Link", "id title stage")

# In chain order. ``stage`` is the part of site.yml (and its tag) that proves the link.
LINKS = (
    Link("firmware", "BIOS/IOMMU", "host"),
    Link("cmdline", "cmdline", "host"),
    Link("group", "group", "host"),
    Link("binding", "binding", "host"),
    Link("proxmox_node", "Proxmox node", "host"),
    Link("vm_config", "VM config", "vm"),
    Link("drain", "drain", "vm"),
    Link("guest_driver", "guest driver", "guest"),
    Link("labels", "label", "guest"),
)
# Where a failure can be pinned that is not a link of the chain: before it (the user's input) or beside it (a file
# the host link edits, the boot loader).
PLACES = (
    Link("input", "input", None),
    Link("file", "file", None),
    Link("bootloader", "boot loader", None),
)
BY_ID = {link.id: link for link in LINKS + PLACES}
IDS = tuple(link.id for link in LINKS)
# Every value a ``link`` field may take.
ALL_IDS = IDS + tuple(place.id for place in PLACES)

# The host links the diagnosis (plugins/module_utils/host/diagnosis.py) judges: each of its parts names one of
# these as its ``link``; the summary has a row for each.
DIAGNOSED = ("firmware", "cmdline", "group", "binding")

# Tags that select a stage of site.yml: the stage's own tag and the tags of its role's steps. A stage is selected
# when the run selects all tags or one of these, and --skip-tags does not name one of the skipping tags.
STAGE_TAGS = {
    "host": ("host", "preflight", "cmdline", "vfio", "initramfs", "reboot", "verify"),
    "vm": ("vm", "gpu_vm_drain", "gpu_vm_convert"),
    "guest": ("guest", "labels"),
}
STAGE_TAG_PREFIX = {"guest": "gpu_worker"}
STAGE_SKIP_TAGS = {"host": ("host",), "vm": ("vm",), "guest": ("guest", "labels")}

STATUSES = ("ok", "pending", "FAIL", "skip")


def check(link_id):
    """``link_id`` when it is one of ``ALL_IDS``; anything else raises ValueError (one word per concept: no ad-hoc
    names, and a typo fails in the tests)."""
    if link_id not in BY_ID:
        raise ValueError("unknown link %r; the links are %s" % (link_id, ", ".join(ALL_IDS)))
    return link_id


def title(link_id):
    """The title of a link id, for display; an unknown id raises ValueError."""
    return BY_ID[check(link_id)].title


def to_bool(value, default=False):
    """What Ansible's ``bool`` filter makes of an inventory or extra var."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1
    return str(value).strip().lower() in ("yes", "on", "1", "true", "y", "t")


def selected_stages(run_tags, skip_tags=()):
    """``{host, vm, guest}`` -> whether --tags/--skip-tags select that stage of site.yml."""
    run = {str(t) for t in (run_tags or ["all"])}
    skip = {str(t) for t in (skip_tags or [])}
    result = {}
    for stage, tags in STAGE_TAGS.items():
        prefix = STAGE_TAG_PREFIX.get(stage)
        chosen = "all" in run or bool(run & set(tags)) or bool(prefix and any(t.startswith(prefix) for t in run))
        result[stage] = chosen and not (skip & set(STAGE_SKIP_TAGS[stage]))
    return result


def _row(host, link_id, status, detail, fix=None):
    return {"id": link_id, "host": host, "link": title(link_id), "status": status, "detail": detail, "fix": fix or None}


def _not_reached(host, link_ids, stage, selected, role, playbook, extra=""):
    if selected:
        detail = "%s did not %s (see the errors above)" % (role, extra or "reach this host")
        fix = "ansible-playbook playbooks/%s --limit %s" % (playbook, host)
        return [_row(host, link_id, "FAIL", detail, fix) for link_id in link_ids]
    detail = "%s link not selected (--tags/--skip-tags)" % stage
    return [_row(host, link_id, "skip", detail) for link_id in link_ids]


def host_rows(host, diagnosis, selected=True):
    """The four host rows from ``diagnosis.diagnose`` output (None: the host link did not reach the host)."""
    if diagnosis is None:
        return _not_reached(host, DIAGNOSED, "host", selected, "proxmox_gpu_prep", "proxmox_gpu_prep.yml")
    rows = []
    for link_id in DIAGNOSED:
        # in the diagnosis' order: the firmware row shows the firmware table, then the IOMMU turned on
        parts = [part for part in diagnosis if part.get("link") == link_id]
        bad = [part for part in parts if not part.get("ok")]
        if not bad:
            status = "ok"
        elif all(part.get("pending") for part in bad):
            status = "pending"
        else:
            status = "FAIL"
        rows.append(_row(host, link_id, status, "; ".join(part.get("detail") or "" for part in parts),
                         bad[0].get("fix") if bad else None))
    return rows


def _pairs(mapping, sep):
    return sep.join("%s=%s" % (key, value) for key, value in (mapping or {}).items())


def vm_row(host, report, selected=True):
    """The VM config row from the ``gpu_vm_report`` fact of gpu_vm's entry point verify."""
    if report is None:
        return _not_reached(host, ["vm_config"], "VM", selected, "gpu_vm", "gpu_vm.yml",
                            "get through for this VM")[0]
    ok = to_bool(report.get("ok"))
    plan = list(report.get("plan") or [])
    pending = list(report.get("pending") or [])
    hostpci = report.get("hostpci") or {}
    detail = "VM %s on %s: machine %s, bios %s, efidisk0 %s, %s" % (
        report.get("vmid"), report.get("node"), report.get("machine"), report.get("bios"),
        "present" if report.get("efidisk0") else "missing", _pairs(hostpci, " ") or "no hostpciN")
    if plan:
        detail += "; still to do: " + ", ".join(str(step) for step in plan)
    if pending:
        detail += "; pending until a restart: " + ", ".join(str(key) for key in pending)
    fix = None
    if not ok:
        wanted = " ".join(str(value) for value in (report.get("hostpci_wanted") or {}).values())
        fix = "ansible-playbook playbooks/gpu_vm.yml --limit %s (wanted: %s)" % (host, wanted)
    return _row(host, "vm_config", "ok" if ok else "FAIL", detail, fix)


def guest_rows(host, report, selected=True, label_node=True, node_name=None):
    """The guest driver and label rows from the ``gpu_worker_report`` fact."""
    if report is None:
        return _not_reached(host, ["guest_driver", "labels"], "guest", selected, "gpu_worker", "gpu_worker.yml",
                            "get through on this VM")
    ok = to_bool(report.get("ok"))
    prefix = "" if ok or not report.get("link") else "[%s] " % title(report["link"])
    nodes = ", ".join(report.get("render_nodes") or []) or "none"
    rows = [_row(host, "guest_driver", "ok" if ok else "FAIL",
                 "%s%s; render nodes: %s" % (prefix, report.get("message") or "", nodes),
                 None if ok else report.get("fix"))]
    notes = list(report.get("label_notes") or [])
    if not to_bool(label_node, True):
        rows.append(_row(host, "labels", "skip", "gpu_worker_label_node is false"))
    elif "labels_changed" not in report:
        rows.append(_row(host, "labels", "FAIL", "gpu_worker did not reach its label step",
                         "ansible-playbook playbooks/gpu_worker.yml --tags gpu_worker_labels --limit %s" % host))
    else:
        missing = [note for note in notes if "not found" in str(note)]
        detail = "node %s: %s" % (node_name or host, _pairs(report.get("labels"), ", ") or "no labels")
        if notes:
            detail += " (%s)" % "; ".join(str(note) for note in notes)
        rows.append(_row(host, "labels", "FAIL" if missing else "ok", detail,
                         "set the host variables kubernetes_node_name and kubernetes_kubeconfig to the node and "
                         "cluster the agent joined"
                         if missing else None))
    return rows


def chain_summary(hosts, agents, selected=None):
    """The summary rows of a site.yml run, hosts first, then agents, each in the order given.

    ``hosts``: ``[{name, diagnosis}]`` (``diagnosis``: ``diagnosis.diagnose`` output, None when the host link did
    not reach the host). ``agents``: ``[{name, vm_report, worker_report, label_node, node_name}]``.
    ``selected``: ``selected_stages`` output (default: everything selected).
    """
    chosen = dict(selected_stages(["all"]), **(selected or {}))
    rows = []
    for host in hosts:
        rows.extend(host_rows(host["name"], host.get("diagnosis"), to_bool(chosen["host"])))
    for agent in agents:
        name = agent["name"]
        rows.append(vm_row(name, agent.get("vm_report"), to_bool(chosen["vm"])))
        rows.extend(guest_rows(name, agent.get("worker_report"), to_bool(chosen["guest"]),
                               agent.get("label_node", True), agent.get("node_name")))
    return rows


def summary_lines(rows):
    """One line per row: host, status, link title, detail and the fix when there is one."""
    width = max([len(row["host"]) for row in rows] + [4])
    lines = []
    for row in rows:
        line = "%-*s  %-7s %-12s  %s" % (width, row["host"], row["status"], row["link"], row["detail"])
        if row.get("fix"):
            line += " -- fix: %s" % row["fix"]
        lines.append(line)
    return lines
