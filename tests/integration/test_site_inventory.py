# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml with the example homelab inventory: which hosts each play targets, what --limit and the
link tags select. Nothing is contacted (--list-hosts, --list-tasks, --syntax-check).

Needs the collection installed by tools/setup.sh and ANSIBLE_COLLECTIONS_PATH from tools/env.sh.
"""

import json
import os
import re
import subprocess

import pytest
from installed_collection import installed_collection

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORY = os.path.join(REPO, "examples", "inventory", "homelab")
INSTALLED = installed_collection("roles", "gpu_worker", "tasks", "main.yml")

pytestmark = pytest.mark.skipif(
    INSTALLED is None or not os.path.isfile(os.path.join(REPO, "playbooks", "gpu_worker.yml")),
    reason="playbooks/gpu_worker.yml or the installed gpu_worker role (ANSIBLE_COLLECTIONS_PATH) is missing; "
           "run tools/setup.sh and . tools/env.sh",
)

PVE = ["pve-1", "pve-2", "pve-3"]
AGENTS = ["k3s-agent-1", "k3s-agent-2", "k3s-agent-3"]
# play name -> the link it belongs to
LINKS = {
    "Fleet plan - read everything, change nothing": "plan",
    "Rolling chain - node by node, one downtime window each": "rolling",
    "Read the VM config back through the Proxmox VE API": "vm",
    "Summary - one line per link per host": "summary",
}


def ansible(*args):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=180, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def site(*extra):
    return ansible("ansible-playbook", "-i", INVENTORY, os.path.join(REPO, "playbooks", "site.yml"), *extra)


def plays(output):
    """[(name, play tags, pattern, hosts, [(task, tags)])] from --list-hosts --list-tasks output."""
    found = []
    for block in re.split(r"\n(?=  play #\d+ )", output)[1:]:
        head = re.match(r"  play #\d+ \(([^)]*)\): (.*?)\tTAGS: \[(.*?)\]", block)
        assert head, block
        hosts_part = re.search(r"hosts \(\d+\):\n((?:      \S.*\n?)*)", block)
        hosts = [h.strip() for h in hosts_part.group(1).splitlines()] if hosts_part else []
        # task names without the role they come from; the argument spec checks left out
        tasks = [(name.strip().split(" : ", 1)[-1], {t.strip() for t in tags.split(",") if t.strip()})
                 for name, tags in re.findall(r"^      (.+?)\tTAGS: \[(.*?)\]$", block.split("tasks:", 1)[-1], re.M)
                 if not name.split(" : ", 1)[-1].startswith("Validating arguments against arg spec")]
        found.append((head.group(2), {t.strip() for t in head.group(3).split(",") if t.strip()}, head.group(1), hosts, tasks))
    return found


def link_of(play):
    name, tags = play[0], play[1]
    if name in LINKS:
        return LINKS[name]
    if {"guest", "labels"} <= tags:
        return "guest"
    raise AssertionError("unknown play %r" % (name,))


def selected(play):
    """Whether a play does work beyond the 'always' tasks (checks that the link's `when` turns off when not selected)."""
    return any("always" not in tags for _name, tags in play[4])


def test_inventory_lists_the_homelab():
    data = json.loads(ansible("ansible-inventory", "-i", INVENTORY, "--list"))
    assert sorted(data["proxmox_hosts"]["hosts"]) == PVE
    assert sorted(data["k3s_gpu_agents"]["hosts"]) == AGENTS
    agents = data["_meta"]["hostvars"]
    for index, name in enumerate(AGENTS):
        agent = agents[name]
        assert agent["vm_id"] == 120 + index
        assert agent["proxmox_node"] == PVE[index]
        assert agent["machine_type"] == "q35" and agent["bios"] == "ovmf"
        assert agent["gpu_passthrough"] == [{"host": "0000:00:02.0", "pcie": True, "rombar": True, "x_vga": False}]
        assert re.fullmatch(r"192\.168\.1\.12\d", agent["ip_address"])
    # secrets come from the vault or the environment, never from the files
    for name in PVE + AGENTS:
        assert "vault_proxmox_api_password" in agents[name]["gpu_vm_proxmox_api_password"]


def test_syntax():
    site("--syntax-check")


# the rolling play's steps, in the order of a node's window (plugins/module_utils/chain/timeline.py)
# the host's preparation and the guest's packages first, while the agents serve; then the window
WINDOW = ["Prepare the Proxmox host (command line, vfio, initramfs, boot entry read back)",
          "Install the guest's packages while the agent serves",
          "Cordon and drain the Kubernetes node", "Shut the agent VM down", "Write the agent VM's config",
          "Reboot the Proxmox host once, when it needs it", "Prove the Proxmox host", "Start the agent VM",
          "Wait until the Kubernetes node has booted again and is Ready",
          "Prove the guest (driver, VA-API) and label its Kubernetes node", "Uncordon the Kubernetes node",
          "Before the next node - the Proxmox VE cluster is quorate again"]


def test_every_play_and_its_hosts():
    found = plays(site("--list-hosts", "--list-tasks"))
    assert [link_of(p) for p in found] == ["plan", "rolling", "vm", "summary"]
    plan, rolling, readback, summary = found
    assert sorted(plan[3]) == sorted(PVE + AGENTS) and sorted(summary[3]) == sorted(PVE + AGENTS)
    # the rolling play's hosts are lined up by the plan at run time, node by node
    assert rolling[2] == "site_rolling" and rolling[3] == []
    names = [name for name, _tags in rolling[4]]
    assert [n for n in names if n in WINDOW] == WINDOW, names
    assert sorted(readback[3]) == AGENTS


def test_serial_comes_from_the_plan():
    with open(os.path.join(REPO, "playbooks", "site.yml"), encoding="utf-8") as handle:
        text = handle.read()
    assert re.search(r"^  serial: .*site_plan\.rolling\.serial", text, re.M)
    assert re.search(r"^  any_errors_fatal: true$", text, re.M)
    # the VM link alone still goes one VM (and so one Kubernetes node) at a time
    with open(os.path.join(REPO, "playbooks", "gpu_vm.yml"), encoding="utf-8") as handle:
        assert re.search(r"^  serial: 1$", handle.read(), re.M)


def test_limit_to_one_agent():
    found = plays(site("--list-hosts", "--list-tasks", "--limit", "k3s-agent-2"))
    assert [p[3] for p in found] == [["k3s-agent-2"], [], ["k3s-agent-2"], ["k3s-agent-2"]]


def test_limit_to_one_node_and_its_agent():
    found = plays(site("--list-hosts", "--limit", "pve-2,k3s-agent-2"))
    assert [sorted(p[3]) for p in found] == [["k3s-agent-2", "pve-2"], [], ["k3s-agent-2"], ["k3s-agent-2", "pve-2"]]


@pytest.mark.parametrize("tags", ["host", "vm", "guest", "labels", "host,vm", "gpu_worker_labels"])
def test_any_tags_keep_the_plan_and_the_rolling_chain(tags):
    # the links a run selects are chosen at run time (chain_selected); the plan and the rolling steps are always listed
    found = plays(site("--list-tasks", "--tags", tags))
    by_link = {link_of(p): p for p in found}
    assert "Plan the fleet" in [name for name, _tags in by_link["plan"][4]]
    assert [n for n, _tags in by_link["rolling"][4] if n in WINDOW] == WINDOW
    summary = by_link["summary"]
    assert [name for name, _tags in summary[4]] == ["Judge every link from what the roles left", "Show the chain", "Write the summary for other tools"]
    assert bool(by_link["vm"][4]) == (tags in ("vm", "host,vm")), by_link["vm"]


def test_links_not_selected_do_not_run_their_always_tasks():
    # --tags host on an agent alone: no host is selected, so the plan reads neither the cluster nor the VM, and the
    # rolling steps of the agent are all skipped. Run for real, none of them may reach the Proxmox API
    # (pve-1.home.arpa does not resolve here) or the VM.
    output = site("--tags", "host", "--limit", "k3s-agent-1", "-e", "ansible_connection=local")
    ran = re.findall(r"^(ok|changed|fatal|failed): \[k3s-agent-1(?: -> localhost)?\]", output, re.M)
    assert ran and "fatal" not in ran and "changed" not in ran, output
    assert re.search(r"TASK \[homelab.gpu_passthrough.site : Read the Proxmox VE cluster\] \**\nskipping: \[k3s-agent-1\]", output), output
    assert re.search(r"k3s-agent-1 +skip +VM config +VM link not selected", output), output
    assert re.search(r"k3s-agent-1 +skip +guest driver +guest link not selected", output), output
    recap = re.search(r"^k3s-agent-1\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M)
    assert recap and recap.groups()[1:] == ("0", "0", "0"), output


def test_summary_judges_what_the_roles_left(tmp_path):
    # The reports the VM and guest links leave, given as extra vars: the summary judges them through hostvars and
    # writes the same rows it prints.
    reports = {
        "gpu_vm_report": {"ok": True, "vmid": 120, "node": "pve-1", "machine": "q35", "bios": "ovmf",
                          "efidisk0": "local-lvm:vm-120-disk-1", "hostpci": {"hostpci0": "0000:00:02.0,pcie=1"},
                          "hostpci_wanted": {"hostpci0": "0000:00:02.0,pcie=1"}, "pending": [], "plan": []},
        "gpu_worker_report": {"ok": False, "link": "guest_driver", "message": "no iHD driver", "render_nodes": [],
                              "fix": "install intel-media-va-driver", "labels": {}, "label_notes": [], "labels_changed": False},
    }
    extra = tmp_path / "reports.json"
    extra.write_text(json.dumps(reports))
    out = tmp_path / "summary.json"
    output = site("--tags", "summary", "--limit", "k3s-agent-1", "-e", "ansible_connection=local",
                  "-e", "@" + str(extra), "-e", "site_summary_file=" + str(out))
    assert re.search(r"k3s-agent-1 +ok +VM config +VM 120 on pve-1: machine q35, bios ovmf, efidisk0 present, "
                     r"hostpci0=0000:00:02.0,pcie=1", output), output
    assert re.search(r"k3s-agent-1 +FAIL +guest driver +\[guest driver\] no iHD driver; render nodes: none -- fix: "
                     r"install intel-media-va-driver", output), output
    rows = json.loads(out.read_text())["links"]
    assert [(r["id"], r["status"]) for r in rows] == [("vm_config", "ok"), ("guest_driver", "FAIL"), ("labels", "ok")]
