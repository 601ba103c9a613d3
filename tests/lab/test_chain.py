# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/chain end to end: site.yml on two lab VMs and the API stand-ins, twice.

Only run on purpose (`python -m pytest -q tests/lab/test_chain.py`, the chain stage): it boots two QEMU VMs and
takes 15-20 minutes under TCG. LAB_CHAIN_KEEP=1 leaves the lab running afterwards (`lab/chain down` stops it).
The pure helpers of lab/chain's package (lab/chainlab) are tested first, with outputs taken from the lab VMs and site
summary rows made by links.py as site.yml makes them; the end-to-end test is `-k end_to_end`.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAIN = os.path.join(REPO, "lab", "chain")
SUMMARY = os.path.join(os.environ.get("LAB_CACHE") or os.path.join(REPO, ".cache", "lab"), "chain", "summary.json")

sys.path.insert(0, os.path.join(REPO, "lab"))
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import links  # noqa: E402
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import timeline  # noqa: E402
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import diagnosis  # noqa: E402
from chainlab import HOST_VM, VMID, WORKER_VM, simulators, verdicts  # noqa: E402

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
    names = simulators.parse_lspci(LSPCI)
    assert names["0000:01:00.1"]["vendor_name"] == "Intel Corporation"
    assert names["0000:01:00.1"]["device_name"].startswith("82801FB")
    assert names["0000:00:01.0"]["subsystem_device_name"] == "QEMU PCIe Root port"
    assert names["0000:00:1f.2"]["device_name"] == "82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]"
    assert names["0000:01:00.0"] == {"vendor_name": "Vendor", "device_name": "Device", "subsystem_vendor_name": "Red Hat, Inc.",
                                     "subsystem_device_name": "Device"}


def test_pvesim_node_from_the_host_vm():
    node = simulators.pvesim_node(_raw())
    assert node["iommu_present"] is True and node["maxcpu"] == 2
    gpu = next(d for d in node["pci"] if d["id"] == "0000:01:00.0")
    assert gpu["class"] == "0x038000" and gpu["vendor"] == "0x1234" and gpu["iommugroup"] == 2
    assert simulators.standin_address(_raw()) == "0000:01:00.0"
    off = simulators.pvesim_node(_raw(iommu=False))
    assert off["iommu_present"] is False and {d["iommugroup"] for d in off["pci"]} == {-1}


def test_boots_recap_and_memory():
    boots = ("IDX BOOT ID                          FIRST ENTRY                 LAST ENTRY\n"
             " -1 3f1c0e6b2d0e4c1b9d2f8e7a6b5c4d3e Tue 2026-01-06 10:00:01 UTC Tue 2026-01-06 10:06:40 UTC\n"
             "  0 9a8b7c6d5e4f40312a1b2c3d4e5f6a7b Tue 2026-01-06 10:07:30 UTC Tue 2026-01-06 10:12:00 UTC\n")
    assert verdicts.count_boots(boots) == 2
    output = ("PLAY RECAP ***\nchain-k3s                  : ok=3    changed=1    unreachable=0    failed=0    skipped=2\n"
              "chain-k3s                  : ok=2    changed=0    unreachable=0    failed=0    skipped=0\n")
    assert verdicts.recap(output) == {"chain-k3s": {"ok": 5, "changed": 1, "unreachable": 0, "failed": 0, "skipped": 2}}
    assert simulators.lab_memory_mib(2012 << 20) == 2048


STANDIN = "0000:01:00.0"


def _site(guest_link="vm_config"):
    """site.yml's summary rows of a good lab run, made by links.py as the site role makes them; the guest's VA-API
    check breaks at `guest_link` (the stand-in has no video engine)."""
    parts = [{"part": name, "link": link_id, "title": title, "ok": True, "pending": False, "detail": f"{name} fine"}
             for name, title, link_id in diagnosis.PARTS]
    vm_report = {"ok": True, "vmid": VMID, "node": HOST_VM, "machine": "q35", "bios": "ovmf", "efidisk0": "local-lvm:x",
                 "hostpci": {"hostpci0": f"{STANDIN},pcie=1"}, "pending": [], "plan": []}
    worker_report = {"ok": False, "link": guest_link, "message": "no render node for the passed GPU", "render_nodes": [],
                     "fix": "pass the GPU to the VM", "labels": {"gpu.homelab.io/cpu-tier": "lab"}, "label_notes": [],
                     "labels_changed": True}
    return links.chain_summary([{"name": HOST_VM, "diagnosis": parts}],
                               [{"name": WORKER_VM, "vm_report": vm_report, "worker_report": worker_report}])


def _state():
    config = {"machine": "q35", "bios": "ovmf", "efidisk0": "local-lvm:x", "hostpci0": f"{STANDIN},pcie=1"}
    return {"nodes": {HOST_VM: simulators.pvesim_node(_raw())}, "vms": {str(VMID): {"status": "running", "pending": {}, "config": config}}}


def _k8s():
    return {"cluster": {"nodes": {WORKER_VM: {"spec": {}, "metadata": {"labels": {"gpu.homelab.io/cpu-tier": "lab"}}}}},
            "requests": [{"status": 200, "action": "cordon", "node": WORKER_VM}, {"status": 201, "action": "evict", "name": "redis-0"},
                         {"status": 200, "action": "uncordon", "node": WORKER_VM}]}


def _statuses(rows):
    return {row["id"]: row["status"] for row in rows}


def test_lab_rows_are_defined_once_with_the_chain_links_ids():
    assert len(set(verdicts.IDS)) == len(verdicts.ROWS) and len(set(verdicts.TITLES.values())) == len(verdicts.ROWS)
    assert all(row_id.isidentifier() and row_id == row_id.lower() for row_id in verdicts.IDS)
    # a row judging a link of the chain carries that link's id
    assert set(verdicts.CHAIN_LINK_ROWS) <= set(links.IDS) and set(verdicts.CHAIN_LINK_ROWS) <= set(verdicts.IDS)
    # the host stage's links are judged by the host prep (from the site rows) and the Proxmox node (from pvesim)
    assert set(verdicts.HOST_PREP_LINKS) | {"proxmox_node"} == {link.id for link in links.LINKS if link.stage == "host"}


# the guest's diagnosis names the link it breaks at (the summary shows its title); a failure that names none is no
# expected one
@pytest.mark.parametrize(("guest_link", "vaapi"), [("vm_config", "expected"), ("guest_driver", "expected"), (None, "FAIL")])
def test_links_judge_the_expected_va_api_diagnosis(guest_link, vaapi):
    site = _site(guest_link)
    rows = verdicts.chain_links(site, _state(), _k8s(), ["vainfo 2.12"], 2, STANDIN)
    assert _statuses(rows) == {"host_prep": "ok", "proxmox_node": "ok", "vm_config": "ok", "drain": "ok",
                               "worker_packages": "ok", "vaapi": vaapi, "labels": "ok"}
    # every row: its id, the title the lab defines for it, in the lab's order
    assert [row["link"] for row in rows] == [verdicts.TITLES[row["id"]] for row in rows]
    assert [row["id"] for row in rows] == [row_id for row_id in verdicts.IDS if row_id in _statuses(rows)]
    va = next(row for row in rows if row["id"] == "vaapi")
    guest = next(row for row in site if row["id"] == "guest_driver")
    assert va["detail"].endswith(guest["detail"]) and va["fix"] == guest["fix"]
    # no reboot happened: the host prep fails
    assert _statuses(verdicts.chain_links(site, _state(), _k8s(), ["vainfo 2.12"], 1, STANDIN))["host_prep"] == "FAIL"


def test_links_look_site_rows_up_by_id_not_title():
    site = _site()
    retitled = [dict(row, link=row["link"].upper() + " (shown)") for row in site]
    judged = verdicts.chain_links(retitled, _state(), _k8s(), ["vainfo 2.12"], 2, STANDIN)
    assert _statuses(judged) == _statuses(verdicts.chain_links(site, _state(), _k8s(), ["vainfo 2.12"], 2, STANDIN))
    assert "FAIL" not in _statuses(judged).values()
    # a row of another host does not count for the lab's hosts
    elsewhere = [dict(row, host="pve-2") if row["id"] in ("firmware", "vm_config") else row for row in site]
    statuses = _statuses(verdicts.chain_links(elsewhere, _state(), _k8s(), ["vainfo 2.12"], 2, STANDIN))
    assert statuses["host_prep"] == "FAIL" and statuses["vm_config"] == "FAIL" and statuses["proxmox_node"] == "ok"


def test_links_without_kubernetes_or_a_guest_verdict():
    site = [row for row in _site() if row["id"] != "guest_driver"]
    rows = verdicts.chain_links(site, _state(), None, [], 2, STANDIN)
    statuses = _statuses(rows)
    assert "drain" not in statuses and statuses["labels"] == "skip"
    assert statuses["vaapi"] == "FAIL" and statuses["worker_packages"] == "FAIL"
    assert not verdicts.summary_ok(rows)
    assert verdicts.summary_ok([row for row in rows if row["status"] != "FAIL"])


def test_second_run_row():
    good, bad = verdicts.second_run_link(True, "changed=0", "site-again.log"), verdicts.second_run_link(False, "changed=2", "site-again.log")
    assert (good["id"], good["link"], good["status"], good["fix"]) == ("second_run", verdicts.TITLES["second_run"], "ok", None)
    assert bad["status"] == "FAIL" and "site-again.log" in bad["fix"]


def test_window_link_judges_the_lab_timeline():
    tl = timeline
    steps = ["host_change", "guest_prepared", "cordon", "drain", "guest_stop", "vm_config", "host_reboot", "host_up",
             "guest_start", "ready", "guest_verified", "labels", "uncordon", "done"]
    guest = {"guest_prepared", "cordon", "drain", "guest_stop", "vm_config", "guest_start", "ready", "guest_verified",
             "uncordon"}
    events = [tl.event(HOST_VM, "plan", t=0)] + [
        tl.event(HOST_VM, name, VMID if name in guest else None, t=10 + i * 10) for i, name in enumerate(steps)]
    link = verdicts.window_link(events)
    # guest_stop at 50, guest_start at 90: one window of 40 s
    assert link["id"] == "rolling_window" and link["link"] == verdicts.TITLES["rolling_window"]
    assert link["status"] == "ok" and "one window of 40.0 s" in link["detail"], link
    # the host prepared inside the window: the link says so
    inside = sorted((dict(e, t=45) if e["event"] == "host_change" else e for e in events), key=lambda e: e["t"])
    late = verdicts.window_link(inside)
    assert late["status"] == "FAIL" and "expected host_change before the cordon" in late["detail"], late
    # the old order: the host rebooted before its agent was drained, and the agent restarted twice
    old = [tl.event(HOST_VM, name, VMID if name in guest else None, t=10 + i * 10) for i, name in enumerate(
        ["host_change", "host_reboot", "host_up", "cordon", "drain", "guest_stop", "vm_config", "guest_start", "ready",
         "uncordon", "done"])] + [tl.event(HOST_VM, "guest_stop", VMID, t=12), tl.event(HOST_VM, "guest_start", VMID, t=25)]
    bad = verdicts.window_link(old)
    assert bad["status"] == "FAIL" and "guest 120 stopped 2 times" in bad["detail"], bad
    assert verdicts.window_link([]) is None


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
    rows = {row["id"]: row for row in summary["links"]}
    assert [row["link"] for row in summary["links"]] == [verdicts.TITLES[row["id"]] for row in summary["links"]]
    real = ("host_prep", "proxmox_node", "vm_config", "drain", "worker_packages", "labels", "rolling_window", "second_run")
    assert {row_id: rows[row_id]["status"] for row_id in real} == dict.fromkeys(real, "ok"), json.dumps(summary["links"], indent=1)
    # the stand-in has no video engine: VA-API unavailable, with the link it breaks at and the fix
    va = rows["vaapi"]
    assert va["status"] == "expected", va
    breaks_at = [f"[{name}]" for link_id in ("vm_config", "guest_driver") for name in (link_id, links.title(link_id))]
    assert any(name in va["detail"] for name in breaks_at), va
    assert va["fix"], va
    assert summary["second_run"]["changed"] == 0 and summary["second_run"]["boots_after"] == summary["second_run"]["boots_before"]
    assert summary["second_run"]["vm_after"] == summary["second_run"]["vm_before"]
    assert proc.returncode == 0, output
