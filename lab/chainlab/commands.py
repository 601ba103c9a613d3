# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/chain's commands: up (boot, simulate, run site.yml, judge), verify (site.yml again), down and status."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import time

from . import CHAIN_DIR, HOST_VM, LAB_DIR, LOG_DIR, REPO_DIR, SUMMARY, VMID, WORKER_VM, ChainError, progress, started
from .process import (
    boots,
    collection_dir,
    env,
    pid_alive,
    playbook,
    probe,
    read_json,
    run,
    start_service,
    stop_service,
    vm_up,
    worker_packages,
    write_json,
)
from .simulators import NodeFollower, admin, agent_vm, cluster_spec, inventory, lab_memory_mib, pvesim_node, standin_address, vm_marks
from .verdicts import chain_links, print_links, print_timeline, second_run_link, summary_ok, timeline_events, window_link


def cmd_up(args: argparse.Namespace) -> int:
    os.makedirs(LOG_DIR, exist_ok=True)
    os.makedirs(os.path.join(CHAIN_DIR, "tmp"), exist_ok=True)
    summary: dict = {"ok": False, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": [], "links": []}
    try:
        return _up(args, summary)
    except ChainError as exc:
        summary["error"] = str(exc)
        summary["seconds"] = round(time.monotonic() - started, 1)
        write_json(SUMMARY, summary)
        progress(f"FAILED: {exc}")
        return 1


def _up(args: argparse.Namespace, summary: dict) -> int:
    if not args.no_setup:
        progress("installing the collection from the working tree (tools/setup.sh --test)")
        run([os.path.join(REPO_DIR, "tools", "setup.sh"), "--test"], log=os.path.join(LOG_DIR, "setup.log"), timeout=1800)
    collection_dir(env())
    if not args.reuse:
        # a chain proves most when it starts from Terraform's state and an unprepared host
        stopped = [name for name, marker in (("k8ssim", "k8ssim"), ("pvesim", "pvesim")) if stop_service(name, marker)]
        for name in (HOST_VM, WORKER_VM):
            if subprocess.run([os.path.join(LAB_DIR, "vm"), "info", name], capture_output=True, check=False).returncode == 0:
                run([os.path.join(LAB_DIR, "vm"), "down", name], log=os.path.join(LOG_DIR, f"vm-{name}.log"), timeout=120)
                stopped.append(name)
        if stopped:
            progress(f"stopped the previous chain's {', '.join(stopped)} (--reuse keeps them)")
        for name in ("pvesim", "k8ssim"):
            shutil.rmtree(os.path.join(CHAIN_DIR, name), ignore_errors=True)
        for name in os.listdir(CHAIN_DIR) + [os.path.join("logs", n) for n in os.listdir(LOG_DIR)]:
            if re.match(r"^(logs/)?(site-.*\.(log|json)|summary\.json)$", name):
                os.unlink(os.path.join(CHAIN_DIR, name))

    progress(f"booting the lab VMs {HOST_VM} (host, stand-in GPU) and {WORKER_VM} (worker) with lab/vm (image built or reused)")
    procs = {name: vm_up(name) for name in (HOST_VM, WORKER_VM)}
    lab = {}
    for name, proc in procs.items():
        out = proc.communicate()[0]
        if proc.returncode != 0:
            raise ChainError(f"lab/vm up {name} failed; see {os.path.join(LOG_DIR, f'vm-{name}.log')}")
        lab[name] = json.loads(out)
        progress(f"  {name}: SSH on {lab[name]['address']}:{lab[name]['port']} ({lab[name]['accel']}, boot {lab[name]['boot_seconds']} s)")

    host = probe(HOST_VM)
    host["lab"] = lab[HOST_VM]
    worker = probe(WORKER_VM)
    worker.update(lab=lab[WORKER_VM], name=WORKER_VM, user="root", memory_mib=lab_memory_mib(worker["mem_bytes"]))
    standin = standin_address(host)
    node = pvesim_node(host)
    progress(f"read {HOST_VM}: {len(node['pci'])} PCI devices, IOMMU {'present' if node['iommu_present'] else 'absent'}, "
             f"{len(host['iommu_groups'])} IOMMU groups, stand-in GPU at {standin}")

    state_path = os.path.join(CHAIN_DIR, "pvesim", "state.json")
    pve_ready = os.path.join(CHAIN_DIR, "pvesim", "ready.json")
    os.makedirs(os.path.dirname(state_path), exist_ok=True)
    if not pid_alive(os.path.join(CHAIN_DIR, "pvesim.pid"), "pvesim"):
        vm, volumes = agent_vm(VMID, HOST_VM, worker)
        # pvesim fills in the rest (storages, users, settings) from its defaults
        write_json(state_path, {"cluster_name": "chain", "nodes": {HOST_VM: node}, "volumes": volumes, "vms": {str(VMID): vm}})
    pve = start_service("pvesim", "pvesim", ["--state", state_path, "--port", "0"], pve_ready)
    progress(f"pvesim on {pve['base_url']}: node {HOST_VM}, VM {VMID} '{WORKER_VM}' (i440fx/SeaBIOS, running), hostpci to add: {standin}")

    k8s = None
    if not args.no_k8s:
        k8s_dir = os.path.join(CHAIN_DIR, "k8ssim")
        os.makedirs(k8s_dir, exist_ok=True)
        spec = os.path.join(k8s_dir, "cluster.json")
        write_json(spec, cluster_spec())
        k8s_args = ["--dir", k8s_dir, "--cluster", spec, "--pvesim-state", state_path, "--vm", f"{WORKER_VM}={VMID}",
                    "--boot-seconds", "2", "--dump", os.path.join(k8s_dir, "dump.json")]
        k8s = start_service("k8ssim", "k8ssim", k8s_args, os.path.join(k8s_dir, "ready.json"))
        progress(f"k8ssim on {k8s['url']}: nodes chain-server and {WORKER_VM} (Ready follows VM {VMID} in pvesim)")

    write_json(os.path.join(CHAIN_DIR, "inventory.yml"), inventory(host, worker, pve, k8s, standin))
    progress(f"inventory written: {os.path.join(CHAIN_DIR, 'inventory.yml')}")

    progress("site.yml: the fleet plan, then node by node: host link and guest packages while VM 120 serves, then "
             "drain, stop VM 120, VM config, the host's reboot, start, Ready, guest proof, labels, uncordon")
    # The Proxmox stand-in's node is the host VM: when the host VM has rebooted, the node is read from it again
    # (IOMMU present, the stand-in on vfio-pci), as a real node reports its new state after a reboot.
    follower = NodeFollower(pve, host.get("boot_id"))
    follower.start()
    try:
        run_ = playbook("site", ["-e", "gpu_vm_start_retries=36"])
    finally:
        follower.stop()
    summary["runs"].append(run_)
    if run_["rc"] != 0:
        raise ChainError(f"site.yml failed:\n{run_.get('error')}\nlog: {run_['log']}")
    if not follower.refreshed:
        follower.refresh()
    progress(f"  site.yml done in {run_['seconds']} s; changed: "
             + ", ".join(f"{h}={c.get('changed')}" for h, c in run_["recap"].items()))
    progress(f"  pvesim node {HOST_VM} {follower.note}")
    run_["timeline"] = print_timeline("site")
    summary["window"] = window_link(timeline_events("site"))

    collect(summary, standin, k8s)
    if args.twice:
        verify(summary)
    summary["ok"] = summary_ok(summary["links"])
    summary["seconds"] = round(time.monotonic() - started, 1)
    write_json(SUMMARY, summary)
    print(f"\nchain summary ({summary['seconds']} s; {SUMMARY}):", flush=True)
    print_links(summary["links"])
    return 0 if summary["ok"] else 1


def collect(summary: dict, standin: str, k8s: dict | None) -> None:
    progress("reading the result: site.yml summary, pvesim, k8ssim, the VMs")
    site = (read_json(os.path.join(CHAIN_DIR, "site-summary-site.json")) or {}).get("links", [])
    pve = read_json(os.path.join(CHAIN_DIR, "pvesim", "ready.json")) or {}
    state = admin(pve, "GET", "/state")
    dump = None
    if k8s is not None:
        time.sleep(1.5)  # the dump is rewritten every second
        dump = read_json(os.path.join(CHAIN_DIR, "k8ssim", "dump.json")) or {}
    summary["site"] = site
    summary["standin"] = standin
    summary["links"] = chain_links(site, state, dump, worker_packages(), boots(HOST_VM), standin)
    if summary.get("window"):
        summary["links"].append(summary["window"])


def verify(summary: dict) -> None:
    """site.yml once more: nothing may change, the host may not reboot and VM 120 may not restart."""
    pve = read_json(os.path.join(CHAIN_DIR, "pvesim", "ready.json"))
    if not pve or not os.path.exists(os.path.join(CHAIN_DIR, "inventory.yml")):
        raise ChainError("no chain to verify: run lab/chain up first")
    boots_before = boots(HOST_VM)
    vm_before = vm_marks(admin(pve, "GET", "/state"))
    progress("site.yml again: expecting changed=0, no reboot, no VM restart")
    again = playbook("again", [])
    summary.setdefault("runs", []).append(again)
    boots_after = boots(HOST_VM)
    vm_after = vm_marks(admin(pve, "GET", "/state"))
    changed = sum(c.get("changed", 0) for c in again["recap"].values())
    failed = sum(c.get("failed", 0) + c.get("unreachable", 0) for c in again["recap"].values())
    ok = again["rc"] == 0 and changed == 0 and failed == 0 and boots_after == boots_before and vm_after == vm_before
    per_host = ", ".join("%s=%s" % (h, c.get("changed")) for h, c in again["recap"].items())
    detail = (f"changed={changed} ({per_host}), "
              f"host VM boots {boots_before} -> {boots_after}, VM {VMID} {vm_before['status']} since "
              f"{time.strftime('%H:%M:%S', time.localtime(vm_before['started_at'] or 0))} -> "
              f"{'unchanged' if vm_after == vm_before else 'CHANGED'} ({len(vm_after['tasks'])} tasks), {again['seconds']} s")
    summary["second_run"] = {"ok": ok, "changed": changed, "failed": failed, "rc": again["rc"], "boots_before": boots_before,
                             "boots_after": boots_after, "vm_before": vm_before, "vm_after": vm_after, "seconds": again["seconds"]}
    summary["links"] = [link for link in summary.get("links", []) if link.get("id") != "second_run"]
    summary["links"].append(second_run_link(ok, detail, again["log"]))
    progress(f"  second run: {detail}")


def cmd_verify(_args: argparse.Namespace) -> int:
    summary = read_json(SUMMARY) or {"links": [], "runs": []}
    try:
        verify(summary)
    except ChainError as exc:
        progress(f"FAILED: {exc}")
        return 1
    summary["ok"] = summary_ok(summary["links"])
    write_json(SUMMARY, summary)
    print_links(summary["links"])
    return 0 if summary["ok"] else 1


def cmd_down(_args: argparse.Namespace) -> int:
    for name, marker in (("k8ssim", "k8ssim"), ("pvesim", "pvesim")):
        progress(f"{name}: {'stopped' if stop_service(name, marker) else 'not running'}")
    for name in (HOST_VM, WORKER_VM):
        proc = subprocess.run([os.path.join(LAB_DIR, "vm"), "down", name], capture_output=True, text=True, check=False)
        progress(f"{name}: {(proc.stderr.strip().splitlines() or ['down'])[-1].replace('[vm] ', '')}")
    return 0


def cmd_status(_args: argparse.Namespace) -> int:
    summary = read_json(SUMMARY)
    if not summary:
        print("no chain summary yet (lab/chain up)")
        return 1
    print_links(summary.get("links", []))
    return 0 if summary.get("ok") else 1
