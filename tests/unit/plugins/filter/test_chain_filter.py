"""chain_summary / chain_summary_lines / chain_selected as site.yml calls them, over hostvars-shaped data."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.gpu_passthrough.plugins.filter.chain import FilterModule
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.verdict import diagnose
from test_iommu_diagnosis import _facts

FILTERS = FilterModule().filters()
VM_OK = {"ok": True, "vmid": 120, "node": "pve-1", "machine": "q35", "bios": "ovmf", "efidisk0": "local-lvm:vm-120-disk-1",
         "hostpci": {"hostpci0": "0000:00:02.0,pcie=1"}, "hostpci_wanted": {"hostpci0": "0000:00:02.0,pcie=1"},
         "pending": [], "plan": []}
WORKER_OK = {"ok": True, "message": "iHD", "render_nodes": ["/dev/dri/renderD128"], "labels": {"gpu": "true"},
             "label_notes": [], "labels_changed": False}
GROUPS = {"proxmox_hosts": ["pve-1", "pve-2"], "k3s_gpu_agents": ["k3s-agent-1", "k3s-agent-2"]}


def _hostvars():
    return {
        "pve-1": {"ansible_facts": {"iommu": _facts()}, "proxmox_gpu_prep_group": "true"},
        "pve-2": {"ansible_facts": {}},
        "k3s-agent-1": {"gpu_vm_report": VM_OK, "gpu_worker_report": WORKER_OK, "gpu_worker_node_name": "agent-1"},
        "k3s-agent-2": {"gpu_worker_label_node": False},
    }


def test_summary_of_a_run():
    rows = FILTERS["chain_summary"](_hostvars(), GROUPS, run_tags=["all"], skip_tags=[])
    status = {(r["host"], r["id"]): r["status"] for r in rows}
    assert [status[("pve-1", lid)] for lid in ("firmware", "cmdline", "group", "binding")] == ["ok"] * 4
    assert status[("pve-2", "cmdline")] == "FAIL"
    assert status[("k3s-agent-1", "labels")] == "ok" and status[("k3s-agent-2", "vm_config")] == "FAIL"
    lines = FILTERS["chain_summary_lines"](rows)
    assert len(lines) == len(rows) and lines[0].startswith("pve-1        ok      BIOS/IOMMU    DMAR table present")


def test_limit_and_tags():
    rows = FILTERS["chain_summary"](_hostvars(), GROUPS, limit=["k3s-agent-2"], run_tags=["host"], skip_tags=[])
    assert [(r["host"], r["id"], r["status"]) for r in rows] == [
        ("k3s-agent-2", "vm_config", "skip"), ("k3s-agent-2", "guest_driver", "skip"), ("k3s-agent-2", "labels", "skip")]


def test_driver_mode_is_checked():
    hostvars = _hostvars()
    hostvars["pve-1"]["proxmox_gpu_prep_driver_mode"] = "vfio"
    with pytest.raises(AnsibleFilterError, match="vfio_ids or blacklist, got 'vfio'"):
        FILTERS["chain_summary"](hostvars, GROUPS)


def test_selected_and_bad_input():
    assert FILTERS["chain_selected"](["gpu_vm_convert"], ["guest"]) == {"host": False, "vm": True, "guest": False}
    with pytest.raises(AnsibleFilterError, match="run_tags must be a list"):
        FILTERS["chain_selected"]("host")
    with pytest.raises(AnsibleFilterError, match="not one"):
        FILTERS["chain_summary_lines"]([{"host": "x"}])
    with pytest.raises(AnsibleFilterError, match="hostvars"):
        FILTERS["chain_summary"]([], GROUPS)


def test_check_mode_selects_no_stage():
    assert FILTERS["chain_selected"](["all"], [], check_mode=True) == {"host": False, "vm": False, "guest": False}
    rows = FILTERS["chain_summary"](_hostvars(), GROUPS, limit=["pve-2"], run_tags=["all"], check_mode=True)
    assert {r["status"] for r in rows} == {"skip"}


def test_the_label_row_names_the_node_by_the_collection_rule():
    hostvars = _hostvars()
    hostvars["k3s-agent-1"].update(kubernetes_node_name="agent-1.lan", name="vm-1")
    hostvars["k3s-agent-2"].update(name="vm-2", gpu_worker_label_node=True,
                                   gpu_worker_report=dict(WORKER_OK, labels={"gpu": "true"}))
    rows = {(r["host"], r["id"]): r for r in FILTERS["chain_summary"](hostvars, GROUPS, run_tags=["all"], skip_tags=[])}
    assert rows[("k3s-agent-1", "labels")]["detail"].startswith("node agent-1.lan: ")
    assert rows[("k3s-agent-2", "labels")]["detail"].startswith("node vm-2: ")


def test_link_title_shows_what_a_verdict_names():
    verdict = diagnose(None)
    # the message the gpu_worker role fails with names the link by its title, as the verdict's line does
    assert verdict["line"].startswith("FAIL %s: " % FILTERS["link_title"](verdict["link"]))
    # the summary row of that link shows the same title
    rows = FILTERS["chain_summary"](_hostvars(), GROUPS, limit=["k3s-agent-1"], run_tags=["all"], skip_tags=[])
    assert {r["id"]: r["link"] for r in rows}[verdict["link"]] == FILTERS["link_title"](verdict["link"])
    assert FILTERS["link_title"](None) is None
    with pytest.raises(AnsibleFilterError, match="link_title: unknown link 'VM config'"):
        FILTERS["link_title"]("VM config")
