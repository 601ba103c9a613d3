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
    "Prepare Proxmox VE hosts for GPU passthrough": "host",
    "Convert the k3s agent VMs and pass the GPU through": "vm",
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
        tasks = [(name.strip(), {t.strip() for t in tags.split(",") if t.strip()})
                 for name, tags in re.findall(r"^      (.+?)\tTAGS: \[(.*?)\]$", block.split("tasks:", 1)[-1], re.M)]
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


def test_every_play_and_its_hosts():
    found = plays(site("--list-hosts", "--list-tasks"))
    assert [link_of(p) for p in found] == ["plan", "host", "vm", "vm", "guest", "summary"]
    by_link = {}
    for play in found:
        by_link.setdefault(link_of(play), []).append(play)
    assert sorted(by_link["host"][0][3]) == PVE
    for play in by_link["vm"] + by_link["guest"]:
        assert sorted(play[3]) == AGENTS
    assert sorted(by_link["summary"][0][3]) == sorted(PVE + AGENTS)
    assert sorted(by_link["plan"][0][3]) == sorted(PVE + AGENTS)
    assert all(selected(p) for p in found if link_of(p) != "summary")
    assert any(name.endswith("Drain the Kubernetes node (DaemonSet pods stay, emptyDir pods go)") for name, _tags in by_link["vm"][0][4])


def test_serial_one_for_the_vm_link():
    output = site("--list-hosts")
    # one VM (and so one Kubernetes node) at a time: the VM play lists its hosts once, the serial batches follow at run time
    with open(os.path.join(REPO, "playbooks", "gpu_vm.yml"), encoding="utf-8") as handle:
        assert re.search(r"^  serial: 1$", handle.read(), re.M)
    assert "Convert the k3s agent VMs and pass the GPU through" in output


def test_limit_to_one_agent():
    found = plays(site("--list-hosts", "--list-tasks", "--limit", "k3s-agent-2"))
    hosts = {i: p[3] for i, p in enumerate(found)}
    assert [link_of(p) for p in found] == ["plan", "host", "vm", "vm", "guest", "summary"]
    assert hosts == {0: ["k3s-agent-2"], 1: [], 2: ["k3s-agent-2"], 3: ["k3s-agent-2"], 4: ["k3s-agent-2"], 5: ["k3s-agent-2"]}


def test_limit_to_one_node_and_its_agent():
    found = plays(site("--list-hosts", "--limit", "pve-2,k3s-agent-2"))
    assert [sorted(p[3]) for p in found] == [["k3s-agent-2", "pve-2"], ["pve-2"], ["k3s-agent-2"], ["k3s-agent-2"], ["k3s-agent-2"],
                                             ["k3s-agent-2", "pve-2"]]


@pytest.mark.parametrize(
    ("tags", "links"),
    [
        ("host", {"host"}),
        ("vm", {"vm"}),
        ("guest", {"guest"}),
        ("labels", {"guest"}),
        ("host,vm", {"host", "vm"}),
    ],
)
def test_tags_select_their_link(tags, links):
    found = plays(site("--list-tasks", "--tags", tags))
    doing = {link_of(p) for p in found if link_of(p) not in ("summary", "plan") and selected(p)}
    assert doing == links, [(p[0], p[4]) for p in found]
    # the fleet plan runs with the whole chain or --tags plan, not with one link's tags
    assert not [p for p in found if link_of(p) == "plan" and selected(p)]
    # the summary always runs, and only its own tasks carry 'always' without a link tag
    summary = [p for p in found if link_of(p) == "summary"][0]
    assert [name for name, _tags in summary[4]] == ["Judge every link from what the roles left", "Show the chain", "Write the summary for other tools"]


def test_skip_tags_leave_a_link_out():
    found = plays(site("--list-tasks", "--skip-tags", "host"))
    assert {link_of(p) for p in found if link_of(p) != "summary" and selected(p)} == {"plan", "vm", "guest"}


def test_links_not_selected_do_not_run_their_always_tasks():
    # --tags host on an agent alone: the host play has no host, and the VM and guest plays list their roles' 'always'
    # checks (--list-tasks cannot show the `when` on their imports). Run for real, they must all be skipped: none of
    # them may reach the Proxmox API (pve-1.home.arpa does not resolve here) or the VM; only the summary runs.
    output = site("--tags", "host", "--limit", "k3s-agent-1", "-e", "ansible_connection=local")
    ran = re.findall(r"^(ok|changed|fatal|failed): \[k3s-agent-1(?: -> localhost)?\]", output, re.M)
    assert ran == ["ok", "ok"], output  # the summary's judgement and its lines
    assert re.search(r"k3s-agent-1 +skip +VM config +VM link not selected", output), output
    assert re.search(r"k3s-agent-1 +skip +guest driver +guest link not selected", output), output
    recap = re.search(r"^k3s-agent-1\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M)
    assert recap and recap.groups() == ("2", "0", "0", "0"), output


def test_summary_judges_what_the_roles_left(tmp_path):
    # The reports the VM and guest links leave, given as extra vars: the summary judges them through hostvars and
    # writes the same rows it prints.
    reports = {
        "site_vm_report": {"ok": True, "vmid": 120, "node": "pve-1", "machine": "q35", "bios": "ovmf",
                           "efidisk0": "local-lvm:vm-120-disk-1", "hostpci": {"hostpci0": "0000:00:02.0,pcie=1"},
                           "hostpci_wanted": {"hostpci0": "0000:00:02.0,pcie=1"}, "pending": [], "plan": []},
        "gpu_worker_report": {"ok": False, "link": "guest driver", "message": "no iHD driver", "render_nodes": [],
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
