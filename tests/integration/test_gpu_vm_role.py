# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/gpu_vm.yml (role gpu_vm) through ansible-playbook against the Proxmox API simulator (tests/pvesim)
and the Kubernetes API stand-in (tests/k8ssim), with two k3s agents from an inventory shaped like the blog's tfvars.

Needs the collection installed by tools/setup.sh and ANSIBLE_COLLECTIONS_PATH from tools/env.sh.
"""

import json
import os
import re
import subprocess
import time

import pytest
from installed_collection import installed_collection, skip_unless_installed
from k8ssim.fixture import running_k8ssim
from pvesim.fixture import running_simulator

INSTALLED = installed_collection("roles", "gpu_vm", "tasks", "main.yml")
pytestmark = skip_unless_installed("roles", "gpu_vm", "tasks", "main.yml")

GIB = 1 << 30
AGENTS = {
    # inventory name -> (vmid, Proxmox node, MAC)
    "k3s-agent-1": (120, "pve1", "BC:24:11:5A:7E:01"),
    "k3s-agent-2": (121, "pve2", "BC:24:11:5A:7E:02"),
}
BOOT_SECONDS = 0.5  # how long after a VM start its kubelet reports Ready


def agent_vms(state):
    """The two agents as Terraform left them: i440fx + SeaBIOS, running, a 32G disk and a cloud-init drive each."""
    for name, (vmid, node, mac) in AGENTS.items():
        state["volumes"] += [
            {"volid": "local-lvm:vm-%d-disk-0" % vmid, "storage": "local-lvm", "node": node, "vmid": vmid,
             "size": 32 * GIB, "format": "raw", "content": "images", "ctime": 1731054484},
            {"volid": "local-lvm:vm-%d-cloudinit" % vmid, "storage": "local-lvm", "node": node, "vmid": vmid,
             "size": 4 << 20, "format": "raw", "content": "images", "ctime": 1731054484},
        ]
        state["vms"][str(vmid)] = {
            "node": node, "status": "running", "pid": 4000 + vmid, "started_at": time.time() - 3600,
            "reserved_pci": [], "pending": {},
            "config": {
                "agent": "1",
                "boot": "order=scsi0;ide2;net0",
                "ciuser": "ubuntu",
                "cores": "4",
                "cpu": "host",
                "ide2": "local-lvm:vm-%d-cloudinit,media=cdrom" % vmid,
                "ipconfig0": "ip=192.168.1.%d/24,gw=192.168.1.1" % vmid,
                "memory": "8192",
                "name": name,
                "net0": "virtio=%s,bridge=vmbr0,firewall=1" % mac,
                "ostype": "l26",
                "scsi0": "local-lvm:vm-%d-disk-0,discard=on,iothread=1,size=32G,ssd=1" % vmid,
                "scsihw": "virtio-scsi-single",
                "smbios1": "uuid=6f1c3f4e-2a0b-4c55-9d1e-0f3b2c1d4e%02d" % (vmid - 100),
                "sockets": "1",
            },
        }


def inventory(pve, k8s, **group_vars):
    hosts = {}
    for name, (vmid, node, _mac) in AGENTS.items():
        hosts[name] = {
            # tfvars names; the VMs must never be contacted (TEST-NET address, no SSH there)
            "name": name, "vm_id": vmid, "proxmox_node": node, "ip_address": "192.0.2.%d" % vmid,
            "cores": 4, "memory": 8192, "machine_type": "q35", "bios": "ovmf",
            "gpu_passthrough": [{"host": "0000:00:02.0", "pcie": True, "rombar": True, "x_vga": False}],
            "ansible_host": "192.0.2.%d" % vmid,
        }
    variables = {
        "gpu_vm_proxmox_api_host": "127.0.0.1", "gpu_vm_proxmox_api_port": pve.port,
        "gpu_vm_proxmox_api_user": "root@pam", "gpu_vm_proxmox_api_password": "rootpass",
        "gpu_vm_proxmox_ca_path": pve.ca_path, "gpu_vm_efidisk_storage": "local-lvm",
        "gpu_vm_shutdown_timeout": 5, "kubernetes_kubeconfig": k8s.kubeconfig,
    }
    variables.update(group_vars)
    return {"all": {"children": {"k3s_gpu_agents": {"hosts": hosts, "vars": variables}}}}


def cluster(k8s, pve):
    """Nodes for both agents and a server; pods of every kind on them; Ready follows the VM (booted for a moment)."""
    k8s.cluster.add_node("k3s-server", labels={"node-role.kubernetes.io/control-plane": "true"})
    for name in AGENTS:
        k8s.cluster.add_node(name)
        suffix = name[-1]
        k8s.cluster.add_pod("jellyfin-6d4cf56db6-%sx" % suffix, name, namespace="media", labels={"app": "jellyfin"})
        k8s.cluster.add_pod("redis-0%s" % suffix, name, owner_kind="StatefulSet", owner_name="redis", empty_dir=True)
        k8s.cluster.add_pod("svclb-traefik-%s" % suffix, name, namespace="kube-system", owner_kind="DaemonSet",
                            owner_name="svclb-traefik")
        k8s.cluster.add_pod("intel-gpu-plugin-%s" % suffix, name, namespace="kube-system", owner_kind="DaemonSet",
                            owner_name="intel-gpu-plugin")
    k8s.cluster.add_pod("coredns-7f496c8d7d-q2x9z", "k3s-server", namespace="kube-system")

    vmids = {name: str(vmid) for name, (vmid, _node, _mac) in AGENTS.items()}

    def ready(node):
        if node not in vmids:
            return None
        vm = pve.data["vms"].get(vmids[node]) or {}
        return vm.get("status") == "running" and time.time() - (vm.get("started_at") or 0) >= BOOT_SECONDS

    k8s.set_ready_source(ready)


@pytest.fixture
def labs(tmp_path):
    with running_simulator(tmp_path / "pve", task_duration=0.02) as pve, running_k8ssim(tmp_path / "k8s") as k8s:
        pve.update(agent_vms)
        cluster(k8s, pve)
        yield pve, k8s


def playbook_path():
    return os.path.join(INSTALLED, "playbooks", "gpu_vm.yml")


def run_playbook(tmp_path, pve, k8s, *extra, **group_vars):
    inv = tmp_path / ("inventory-%d.json" % time.monotonic_ns())
    inv.write_text(json.dumps(inventory(pve, k8s, **group_vars)))
    env = dict(os.environ)
    # TMPDIR: kubernetes.core keeps its discovery cache there
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_HOST_KEY_CHECKING="0", TMPDIR=str(tmp_path))
    cmd = ["ansible-playbook", "-i", str(inv), playbook_path()] + list(extra)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return output


def recap(output):
    """{host: {"ok": n, "changed": n, ...}} from the PLAY RECAP (one per serial batch)."""
    found = {}
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M):
        found[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    return found


def k8s_steps(k8s, pods_by_name):
    """The drain-relevant requests in order: (action, node)."""
    steps = []
    for entry in k8s.requests():
        if entry["status"] >= 400:
            continue
        if entry["action"] in ("cordon", "uncordon"):
            steps.append((entry["action"], entry["node"], entry["time"]))
        elif entry["action"] == "evict":
            steps.append(("evict", pods_by_name["%s/%s" % (entry["namespace"], entry["name"])], entry["time"]))
    return steps


def test_converts_each_agent_one_node_at_a_time(tmp_path, labs):
    pve, k8s = labs
    before = pve.snapshot()
    pods_before = k8s.dump()["pods"]
    pods_by_name = {key: pod["spec"]["nodeName"] for key, pod in pods_before.items()}

    # check mode: the plan only
    pve.reset_counters()
    output = run_playbook(tmp_path, pve, k8s, "--check")
    assert "q35 plan shutdown" in output, output
    assert pve.counters()["writes_without_auth"] == 0
    assert k8s.requests() == []

    # the conversion
    pve.reset_counters()
    output = run_playbook(tmp_path, pve, k8s)
    after = pve.snapshot()
    for name, (vmid, _node, mac) in AGENTS.items():
        vm = after["vms"][str(vmid)]
        config = vm["config"]
        assert config["machine"] == "q35" and config["bios"] == "ovmf", config
        assert config["efidisk0"].startswith("local-lvm:") and "efitype=4m" in config["efidisk0"], config
        assert re.fullmatch(r"0000:00:02\.0(,.*)?", config["hostpci0"]) and "pcie=1" in config["hostpci0"], config
        old = before["vms"][str(vmid)]["config"]
        for key in ("scsi0", "ide2", "net0", "name", "smbios1", "ipconfig0"):
            assert config[key] == old[key], key
        assert mac in config["net0"]
        assert vm["status"] == "running" and not vm["pending"], vm
        efidisk = config["efidisk0"].split(",")[0]
        disks = sorted(v["volid"] for v in after["volumes"] if v.get("vmid") == vmid)
        assert disks == sorted(["local-lvm:vm-%d-cloudinit" % vmid, "local-lvm:vm-%d-disk-0" % vmid, efidisk])
        assert recap(output)[name]["changed"] > 0, output

    # Kubernetes: per node cordon -> evictions -> uncordon, the second node only after the first is back
    steps = k8s_steps(k8s, pods_by_name)
    agents = list(AGENTS)
    expected = []
    for name in agents:
        expected += [("cordon", name)] + [("evict", name)] * 2 + [("uncordon", name)]
    assert [(action, node) for action, node, _t in steps] == expected, steps
    evicted = sorted("%s/%s" % (e["namespace"], e["name"]) for e in k8s.requests("evict"))
    assert evicted == ["default/redis-01", "default/redis-02", "media/jellyfin-6d4cf56db6-1x", "media/jellyfin-6d4cf56db6-2x"]
    pods_after = k8s.dump()["pods"]
    assert sorted(pods_after) == ["kube-system/coredns-7f496c8d7d-q2x9z", "kube-system/intel-gpu-plugin-1",
                                  "kube-system/intel-gpu-plugin-2", "kube-system/svclb-traefik-1", "kube-system/svclb-traefik-2"]
    # only the drain's "is the evicted pod gone yet?" reads are answered 404; nothing touched the server node
    assert all(e["status"] < 400 or (e["action"] == "get_pod" and e["status"] == 404) for e in k8s.requests()), k8s.requests()
    assert [e for e in k8s.requests() if e["node"] == "k3s-server"] == []

    # each node went down only after its drain and was uncordoned only after it was Ready with a new boot
    times = {(action, node): t for action, node, t in steps if action != "evict"}
    for name in agents:
        downs = [t for t, node, ready in k8s.transitions if node == name and not ready]
        ups = [t for t, node, ready in k8s.transitions if node == name and ready]
        assert downs and ups, k8s.transitions
        assert times[("cordon", name)] < downs[0] < ups[-1] < times[("uncordon", name)], (times, k8s.transitions)
    assert times[("uncordon", agents[0])] < times[("cordon", agents[1])]
    first_down_2 = min(t for t, node, ready in k8s.transitions if node == agents[1] and not ready)
    assert times[("uncordon", agents[0])] < first_down_2
    for name in agents:
        node = k8s.dump()["nodes"][name]
        assert not node["spec"].get("unschedulable"), node["spec"]

    # second run: nothing to do, no Proxmox write, no Kubernetes request
    pve.reset_counters()
    k8s.clear_requests()
    output = run_playbook(tmp_path, pve, k8s)
    for name in agents:
        assert recap(output)[name]["changed"] == 0, output
    assert pve.counters()["writes_without_auth"] == 0, pve.counters()
    assert k8s.requests() == []


def test_without_drain_no_kubernetes_request(tmp_path, labs):
    pve, k8s = labs
    output = run_playbook(tmp_path, pve, k8s, "-e", "gpu_vm_drain=false", "-e", "gpu_vm_hosts=k3s-agent-2")
    vm = pve.vm(121)
    assert vm["config"]["machine"] == "q35" and "pcie=1" in vm["config"]["hostpci0"], vm
    assert "machine" not in pve.vm(120)["config"]
    assert recap(output)["k3s-agent-2"]["changed"] > 0, output
    assert k8s.requests() == []
    assert len(k8s.dump()["pods"]) == 9


def test_the_node_drained_is_the_one_variable(tmp_path, labs):
    # the agent's node is called unlike its VM and inventory name (k3s-agent-2): the host variable names it
    pve, k8s = labs
    k8s.cluster.add_node("agent-2.home.arpa")

    def ready(node):
        vm = pve.data["vms"].get({"agent-2.home.arpa": "121"}.get(node, "")) or {}
        if not vm:
            return None
        return vm.get("status") == "running" and time.time() - (vm.get("started_at") or 0) >= BOOT_SECONDS

    k8s.set_ready_source(ready)
    output = run_playbook(tmp_path, pve, k8s, "-e", "gpu_vm_hosts=k3s-agent-2", "-e", "kubernetes_node_name=agent-2.home.arpa")
    assert pve.vm(121)["config"]["machine"] == "q35", output
    steps = [(e["action"], e["node"]) for e in k8s.requests() if e["action"] in ("cordon", "uncordon", "patch_node")]
    assert steps == [("cordon", "agent-2.home.arpa"), ("uncordon", "agent-2.home.arpa")], steps
    assert "DEPRECATION" not in output, output
