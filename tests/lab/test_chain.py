# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/chain end to end: site.yml on two lab VMs and the API stand-ins, twice.

Only run on purpose (`python -m pytest -q tests/lab/test_chain.py`, the chain stage): it boots two QEMU VMs and
takes 15-20 minutes under TCG. LAB_CHAIN_KEEP=1 leaves the lab running afterwards (`lab/chain down` stops it).
The pure helpers of lab/chain.py are tested first, with outputs taken from the lab VMs.
"""

import importlib.util
import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAIN = os.path.join(REPO, "lab", "chain")
SUMMARY = os.path.join(os.environ.get("LAB_CACHE") or os.path.join(REPO, ".cache", "lab"), "chain", "summary.json")


def _load_chain():
    spec = importlib.util.spec_from_file_location("lab_chain", os.path.join(REPO, "lab", "chain.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chain = _load_chain()

# `lspci -nnmm -D` in the grub lab VM (some lines)
LSPCI = "\n".join([
    '0000:00:00.0 "Host bridge [0600]" "Intel Corporation [8086]" "82G33/G31/P35/P31 Express DRAM Controller [29c0]" -p00 '
    '"Red Hat, Inc. [1af4]" "QEMU Virtual Machine [1100]"',
    '0000:00:01.0 "PCI bridge [0604]" "Red Hat, Inc. [1b36]" "QEMU PCIe Root port [000c]" -p00 "Red Hat, Inc. [1b36]" '
    '"QEMU PCIe Root port [0000]"',
    '0000:00:1f.2 "SATA controller [0106]" "Intel Corporation [8086]" "82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller '
    '[AHCI mode] [2922]" -r02 -p01 "Red Hat, Inc. [1af4]" "QEMU Virtual Machine [1100]"',
    '0000:01:00.0 "Display controller [0380]" "Vendor [1234]" "Device [1111]" -r02 -p00 "Red Hat, Inc. [1af4]" "Device [1100]"',
    '0000:01:00.1 "Audio device [0403]" "Intel Corporation [8086]" "82801FB/FBM/FR/FW/FRW (ICH6 Family) High Definition Audio '
    'Controller [2668]" -r01 -p00 "Red Hat, Inc. [1af4]" "QEMU Virtual Machine [1100]"',
]) + "\n"


def _raw(iommu=True):
    def dev(addr, cls, vendor, device, group, driver):
        return {"id": addr, "class": cls, "vendor": vendor, "device": device, "subsystem_vendor": "0x1af4",
                "subsystem_device": "0x1100", "iommu_group": group if iommu else None, "driver": driver}

    return {
        "devices": [dev("0000:00:00.0", "0x060000", "0x8086", "0x29c0", "0", None),
                    dev("0000:00:01.0", "0x060400", "0x1b36", "0x000c", "1", "pcieport"),
                    dev("0000:01:00.0", "0x038000", "0x1234", "0x1111", "2", "vfio-pci"),
                    dev("0000:01:00.1", "0x040300", "0x8086", "0x2668", "2", "vfio-pci")],
        "lspci": LSPCI, "iommu_class": ["dmar0"] if iommu else [], "nproc": 2, "mem_bytes": 2012 << 20,
    }


def test_parse_lspci_names():
    names = chain.parse_lspci(LSPCI)
    assert names["0000:01:00.1"]["vendor_name"] == "Intel Corporation"
    assert names["0000:01:00.1"]["device_name"].startswith("82801FB")
    assert names["0000:00:01.0"]["subsystem_device_name"] == "QEMU PCIe Root port"
    assert names["0000:00:1f.2"]["device_name"] == "82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]"
    assert names["0000:01:00.0"] == {"vendor_name": "Vendor", "device_name": "Device", "subsystem_vendor_name": "Red Hat, Inc.",
                                     "subsystem_device_name": "Device"}


def test_pvesim_node_from_the_host_vm():
    node = chain.pvesim_node(_raw())
    assert node["iommu_present"] is True and node["maxcpu"] == 2
    gpu = next(d for d in node["pci"] if d["id"] == "0000:01:00.0")
    assert gpu["class"] == "0x038000" and gpu["vendor"] == "0x1234" and gpu["iommugroup"] == 2
    assert chain.standin_address(_raw()) == "0000:01:00.0"
    off = chain.pvesim_node(_raw(iommu=False))
    assert off["iommu_present"] is False and {d["iommugroup"] for d in off["pci"]} == {-1}


def test_boots_recap_and_memory():
    boots = ("IDX BOOT ID                          FIRST ENTRY                 LAST ENTRY\n"
             " -1 3f1c0e6b2d0e4c1b9d2f8e7a6b5c4d3e Tue 2026-01-06 10:00:01 UTC Tue 2026-01-06 10:06:40 UTC\n"
             "  0 9a8b7c6d5e4f40312a1b2c3d4e5f6a7b Tue 2026-01-06 10:07:30 UTC Tue 2026-01-06 10:12:00 UTC\n")
    assert chain.count_boots(boots) == 2
    output = ("PLAY RECAP ***\nchain-k3s                  : ok=3    changed=1    unreachable=0    failed=0    skipped=2\n"
              "chain-k3s                  : ok=2    changed=0    unreachable=0    failed=0    skipped=0\n")
    assert chain.recap(output) == {"chain-k3s": {"ok": 5, "changed": 1, "unreachable": 0, "failed": 0, "skipped": 2}}
    assert chain.lab_memory_mib(2012 << 20) == 2048


def test_links_judge_the_expected_va_api_diagnosis():
    site = [{"host": "chain-pve", "link": n, "status": "ok", "detail": n, "fix": None} for n in ("BIOS/IOMMU", "cmdline", "group", "binding")]
    site += [{"host": "chain-k3s", "link": "VM config", "status": "ok", "detail": "VM 120", "fix": None},
             {"host": "chain-k3s", "link": "guest driver", "status": "FAIL", "detail": "[VM config] no render node", "fix": "pass the GPU"},
             {"host": "chain-k3s", "link": "label", "status": "ok", "detail": "node chain-k3s: a=b", "fix": None}]
    config = {"machine": "q35", "bios": "ovmf", "efidisk0": "local-lvm:x", "hostpci0": "0000:01:00.0,pcie=1"}
    state = {"nodes": {"chain-pve": chain.pvesim_node(_raw())}, "vms": {"120": {"status": "running", "pending": {}, "config": config}}}
    k8s = {"cluster": {"nodes": {"chain-k3s": {"spec": {}, "metadata": {"labels": {"a": "b"}}}}},
           "requests": [{"status": 200, "action": "cordon", "node": "chain-k3s"}, {"status": 201, "action": "evict", "name": "redis-0"},
                        {"status": 200, "action": "uncordon", "node": "chain-k3s"}]}
    links = {link["link"]: link for link in chain.chain_links(site, state, k8s, ["vainfo 2.12"], 2, "0000:01:00.0")}
    assert {name: link["status"] for name, link in links.items()} == {
        "host prep": "ok", "Proxmox node": "ok", "VM config": "ok", "drain": "ok", "worker packages": "ok", "VA-API": "expected", "labels": "ok"}
    assert chain.chain_links(site, state, k8s, ["vainfo 2.12"], 1, "0000:01:00.0")[0]["status"] == "FAIL"  # no reboot happened


def test_window_link_judges_the_lab_timeline():
    tl = chain.timeline
    steps = ["host_change", "guest_prepared", "cordon", "drain", "guest_stop", "vm_config", "host_reboot", "host_up",
             "guest_start", "ready", "guest_verified", "labels", "uncordon", "done"]
    guest = {"guest_prepared", "cordon", "drain", "guest_stop", "vm_config", "guest_start", "ready", "guest_verified",
             "uncordon"}
    events = [tl.event(chain.HOST_VM, "plan", t=0)] + [
        tl.event(chain.HOST_VM, name, chain.VMID if name in guest else None, t=10 + i * 10) for i, name in enumerate(steps)]
    link = chain.window_link(events)
    # guest_stop at 50, guest_start at 90: one window of 40 s
    assert link["status"] == "ok" and "one window of 40.0 s" in link["detail"], link
    # the host prepared inside the window: the link says so
    inside = sorted((dict(e, t=45) if e["event"] == "host_change" else e for e in events), key=lambda e: e["t"])
    late = chain.window_link(inside)
    assert late["status"] == "FAIL" and "expected host_change before the cordon" in late["detail"], late
    # the old order: the host rebooted before its agent was drained, and the agent restarted twice
    old = [tl.event(chain.HOST_VM, name, chain.VMID if name in guest else None, t=10 + i * 10) for i, name in enumerate(
        ["host_change", "host_reboot", "host_up", "cordon", "drain", "guest_stop", "vm_config", "guest_start", "ready",
         "uncordon", "done"])] + [tl.event(chain.HOST_VM, "guest_stop", chain.VMID, t=12), tl.event(chain.HOST_VM, "guest_start", chain.VMID, t=25)]
    bad = chain.window_link(old)
    assert bad["status"] == "FAIL" and "guest 120 stopped 2 times" in bad["detail"], bad
    assert chain.window_link([]) is None


@pytest.fixture(scope="module")
def chain_run():
    env = dict(os.environ)
    proc = subprocess.run([CHAIN, "up", "--twice"], cwd=REPO, env=env, capture_output=True, text=True, timeout=45 * 60, check=False)
    try:
        with open(SUMMARY, encoding="utf-8") as handle:
            summary = json.load(handle)
    except (OSError, ValueError):
        summary = {}
    yield proc, summary
    if not os.environ.get("LAB_CHAIN_KEEP"):
        subprocess.run([CHAIN, "down"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def test_chain_end_to_end(chain_run):
    proc, summary = chain_run
    output = proc.stdout + proc.stderr
    assert summary.get("links"), output
    links = {link["link"]: link for link in summary["links"]}
    real = ("host prep", "Proxmox node", "VM config", "drain", "worker packages", "labels", "rolling window", "second run")
    assert {name: links[name]["status"] for name in real} == dict.fromkeys(real, "ok"), json.dumps(summary["links"], indent=1)
    # the stand-in has no video engine: VA-API unavailable, with the link it breaks at and the fix
    va = links["VA-API"]
    assert va["status"] == "expected", va
    assert "[VM config]" in va["detail"] or "[guest driver]" in va["detail"], va
    assert va["fix"], va
    assert summary["second_run"]["changed"] == 0 and summary["second_run"]["boots_after"] == summary["second_run"]["boots_before"]
    assert summary["second_run"]["vm_after"] == summary["second_run"]["vm_before"]
    assert proc.returncode == 0, output
