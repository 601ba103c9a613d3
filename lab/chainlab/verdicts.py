# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's verdicts: one row per link of a chain run, keyed on a link id, with a title for display.

The rows of summary.json's ``links`` are ``{id, link, kind, status, detail, fix}``, ``link`` being the title. Rows
that judge a link of the chain carry its id from plugins/module_utils/links.py; the others are the lab's own. The
site.yml summary rows they are judged from are looked up by ``(host, id)``, never by title.
"""

from __future__ import annotations

import os
import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import links
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import timeline

from . import HOST_VM, VMID, WORKER_VM, progress, timeline_path

# The lab's rows, in the order a run prints them: (id, title).
ROWS = (
    ("host_prep", "host prep"),
    ("proxmox_node", "Proxmox node"),
    ("vm_config", "VM config"),
    ("drain", "drain"),
    ("worker_packages", "worker packages"),
    ("vaapi", "VA-API"),
    ("labels", "labels"),
    ("rolling_window", "rolling window"),
    ("second_run", "second run"),
)
TITLES = dict(ROWS)
IDS = tuple(TITLES)
# The rows that judge a link of the chain itself, under that link's id in links.py.
CHAIN_LINK_ROWS = ("proxmox_node", "vm_config", "drain", "labels")
# The site summary's host links that together make up the lab's host prep.
HOST_PREP_LINKS = links.DIAGNOSED
# gpu_worker's diagnosis names the link VA-API breaks at in brackets at the start of the guest driver's detail
# ("[VM config] ..."); the site rows carry no field for it. Either name of the link counts.
_BREAKS_AT = re.compile(r"\[(%s)\]" % "|".join(
    re.escape(name) for link_id in ("vm_config", "guest_driver") for name in (link_id, links.title(link_id))))


def row(row_id: str, kind: str, status: str, detail: str, fix: str | None = None) -> dict:
    """One row of summary.json's links; its title is looked up from the id (an unknown id raises KeyError)."""
    return {"id": row_id, "link": TITLES[row_id], "kind": kind, "status": status, "detail": detail, "fix": fix}


def site_rows(site: list[dict]) -> dict[tuple[str, str], dict]:
    """site.yml's summary rows (links.chain_summary) by (host, link id)."""
    return {(entry["host"], entry["id"]): entry for entry in site}


def summary_ok(rows: list[dict]) -> bool:
    """A run is good when no row failed: ok, expected (VA-API on the stand-in) or skipped."""
    return all(entry["status"] in ("ok", "expected") for entry in rows if entry["status"] != "skip")


def recap(output: str) -> dict[str, dict[str, int]]:
    """{host: {"ok": n, "changed": n, ...}} from ansible-playbook's PLAY RECAP (summed over serial batches)."""
    found: dict[str, dict[str, int]] = {}
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M):
        counts = found.setdefault(host, {})
        for key, value in re.findall(r"(\w+)=(\d+)", fields):
            counts[key] = counts.get(key, 0) + int(value)
    return found


def count_boots(text: str) -> int:
    """Boots in `journalctl --list-boots` output (one 32-hex boot id per line)."""
    return len(re.findall(r"^\s*-?\d+\s+[0-9a-f]{32}\b", text, re.M))


def chain_links(site: list[dict], pve_state: dict, k8s: dict | None, worker_pkgs: list[str], boots: int,
                standin: str) -> list[dict]:
    """The per-link verdict of a chain run from site.yml's summary, the simulators and the VMs."""
    by = site_rows(site)
    rows = []

    host = [by.get((HOST_VM, link_id)) for link_id in HOST_PREP_LINKS]
    host_ok = all(e and e["status"] == "ok" for e in host) and boots >= 2
    rows.append(row(
        "host_prep", "real", "ok" if host_ok else "FAIL",
        "; ".join(f"{e['link']}: {e['status']} ({e['detail']})" for e in host if e) + f"; {boots} boots in the host VM's journal",
        next((e["fix"] for e in host if e and e.get("fix")), None),
    ))

    node = (pve_state.get("nodes") or {}).get(HOST_VM) or {}
    dev = next((d for d in node.get("pci", []) if d["id"] == standin), {})
    rows.append(row(
        "proxmox_node", "simulated API, data from the host VM",
        "ok" if node.get("iommu_present") and dev.get("iommugroup", -1) >= 0 else "FAIL",
        f"node {HOST_VM}: {len(node.get('pci', []))} PCI devices read from the host VM, IOMMU "
        f"{'present' if node.get('iommu_present') else 'absent'}, {standin} "
        f"({dev.get('vendor_name', '?')} {dev.get('device_name', '?')}) in IOMMU group {dev.get('iommugroup')}",
    ))

    vm = (pve_state.get("vms") or {}).get(str(VMID)) or {}
    config = vm.get("config", {})
    site_vm = by.get((WORKER_VM, "vm_config")) or {}
    vm_ok = (site_vm.get("status") == "ok" and config.get("machine") == "q35" and config.get("bios") == "ovmf"
             and bool(config.get("efidisk0")) and str(config.get("hostpci0", "")).startswith(standin)
             and vm.get("status") == "running" and not vm.get("pending"))
    rows.append(row(
        "vm_config", "simulated API", "ok" if vm_ok else "FAIL",
        f"VM {VMID} {vm.get('status')}: machine {config.get('machine', 'i440fx')}, bios {config.get('bios', 'seabios')}, "
        f"efidisk0 {config.get('efidisk0')}, hostpci0 {config.get('hostpci0')}",
        site_vm.get("fix"),
    ))

    if k8s is not None:
        cluster = k8s.get("cluster", {})
        knode = (cluster.get("nodes") or {}).get(WORKER_VM) or {}
        actions = [r for r in k8s.get("requests", []) if r.get("status", 500) < 400 and r.get("node") in (WORKER_VM, None)]
        evicted = [r["name"] for r in actions if r.get("action") == "evict"]
        cordoned = any(r.get("action") == "cordon" for r in actions)
        uncordoned = any(r.get("action") == "uncordon" for r in actions)
        schedulable = not (knode.get("spec") or {}).get("unschedulable")
        rows.append(row(
            "drain", "simulated Kubernetes", "ok" if cordoned and uncordoned and schedulable else "FAIL",
            f"node {WORKER_VM}: cordoned {cordoned}, evicted {', '.join(evicted) or 'nothing'}, "
            f"uncordoned {uncordoned}, schedulable now {schedulable}",
        ))

    rows.append(row(
        "worker_packages", "real", "ok" if worker_pkgs else "FAIL",
        "installed in the worker VM: " + (", ".join(worker_pkgs) or "no VA-API packages"),
        None if worker_pkgs else "see the gpu_worker tasks in logs/site.log",
    ))

    guest = by.get((WORKER_VM, "guest_driver")) or {}
    diagnosis = guest.get("detail", "")
    if guest.get("status") == "ok":
        va_status = "ok"
    elif guest.get("status") == "FAIL" and _BREAKS_AT.search(diagnosis):
        va_status = "expected"  # the stand-in has no video engine: unavailable, with the reason
    else:
        va_status = "FAIL"
    if va_status == "expected":
        diagnosis = ("unavailable, as expected: the stand-in GPU is a display-only device (bochs-display: no render "
                     "node, no video engine); gpu_worker: " + diagnosis)
    rows.append(row("vaapi", "real, expected unavailable", va_status, diagnosis or "no gpu_worker report", guest.get("fix")))

    label = by.get((WORKER_VM, "labels")) or {}
    node_labels = {}
    if k8s is not None:
        node_labels = ((((k8s.get("cluster") or {}).get("nodes") or {}).get(WORKER_VM) or {}).get("metadata") or {}).get("labels") or {}
    rows.append(row(
        "labels", "simulated Kubernetes" if k8s is not None else "not exercised",
        label.get("status", "FAIL") if k8s is not None else "skip",
        label.get("detail", "no label link in the site summary")
        + ("; node labels now: " + ", ".join(f"{k}={v}" for k, v in sorted(node_labels.items())
                                             if not k.startswith(("kubernetes.io/", "beta.kubernetes.io/", "node.kubernetes.io/")))
           if node_labels else ""),
        label.get("fix"),
    ))
    return rows


def timeline_events(name: str) -> list[dict]:
    """The events of the site.yml run `name` (its -e site_timeline_file); [] when it wrote none."""
    path = timeline_path(name)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return timeline.load(fh.read())


def window_link(events: list[dict]) -> dict | None:
    """The rolling chain's promise on the lab: VM 120 stopped once and started once, drained and stopped before the
    host reboot; the window's seconds."""
    if not events:
        return None
    tl = timeline
    problems = tl.validate(events, agents=[VMID])
    order = [e["event"] for e in events if e.get("node") == HOST_VM and e["event"] != "plan"]

    def at(name):
        return order.index(name) if name in order else None

    before = all(at(n) is not None for n in ("drain", "guest_stop", "host_reboot")) and \
        at("drain") < at("guest_stop") < at("host_reboot") < at("guest_start" if "guest_start" in order else "done")
    if not before:
        problems.append("expected drain, guest_stop, host_reboot, guest_start in that order on "
                        f"{HOST_VM}, got {', '.join(order)}")
    # the window holds only what needs the guest stopped: the host's preparation and the guest's packages come first
    late = [n for n in ("host_change", "guest_prepared") if at(n) is None or (at("cordon") is not None and at(n) > at("cordon"))]
    if late:
        problems.append(f"expected {', '.join(late)} before the cordon on {HOST_VM}, got {', '.join(order)}")
    window = next((w for w in tl.windows(events) if w["node"] == HOST_VM), {})
    detail = (f"VM {VMID}: one window of {window.get('seconds')} s (drain, stop, VM config, reboot, start; the host link "
              f"and the guest's packages before it); {HOST_VM}: " + " -> ".join(order))
    return row("rolling_window", "real host + simulated API", "FAIL" if problems else "ok",
               detail + ("; " + "; ".join(problems) if problems else ""),
               None if not problems else f"see {timeline_path('site')}")


def print_timeline(name: str) -> list[str]:
    """The downtime windows per node of one site.yml run, printed; [] when the run wrote no timeline."""
    path = timeline_path(name)
    if not os.path.exists(path):
        return []
    tl = timeline
    with open(path, encoding="utf-8") as handle:
        events = tl.load(handle.read())
    lines = tl.window_lines(events)
    problems = tl.validate(events)
    progress(f"  timeline of the {name} run ({path}):")
    for line in lines + [f"RULE BROKEN: {p}" for p in problems]:
        progress("    " + line)
    return lines + [f"RULE BROKEN: {p}" for p in problems]


def print_links(rows: list[dict]) -> None:
    """A line per row: status, title, detail, and the fix of a row that is not ok."""
    width = max(len(link["link"]) for link in rows)
    for link in rows:
        line = f"  {link['status']:<8} {link['link']:<{width}}  {link['detail']}"
        if link.get("fix") and link["status"] not in ("ok",):
            line += f"\n  {'':<8} {'':<{width}}  fix: {link['fix']}"
        print(line, flush=True)


def second_run_link(ok: bool, detail: str, log: str) -> dict:
    """The verdict of site.yml run again (lab/chain verify, up --twice)."""
    return row("second_run", "real + simulated", "ok" if ok else "FAIL", detail, None if ok else f"see {log}")
