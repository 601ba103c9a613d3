# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API stand-ins fed from the lab VMs: the pvesim node read from the host VM (and read again after its reboot),
VM 120 as Terraform left it for the worker VM, pvesim's admin side-channel, the k8ssim cluster, the inventory."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import ssl
import subprocess
import threading
import time
import urllib.request

from . import HOST_VM, VMID, WORKER_VM, ChainError
from .process import probe, ssh


def parse_lspci(text: str) -> dict[str, dict[str, str]]:
    """`lspci -nnmm -D` -> {address: {vendor_name, device_name, subsystem_vendor_name, subsystem_device_name}}."""
    names: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        try:
            fields = shlex.split(line)
        except ValueError:
            continue
        if len(fields) < 4:
            continue
        quoted = [f for f in fields[1:] if not re.match(r"^-[a-z]", f)]
        keys = ("class_name", "vendor_name", "device_name", "subsystem_vendor_name", "subsystem_device_name")
        entry = {}
        for key, value in zip(keys, quoted):
            name = re.sub(r"\s*\[[0-9a-fA-F]{4}\]$", "", value).strip()
            if name:
                entry[key] = name
        entry.pop("class_name", None)
        address = fields[0] if fields[0].count(":") == 2 else "0000:" + fields[0]
        names[address.lower()] = entry
    return names


def pvesim_node(raw: dict) -> dict:
    """What the host VM reported (sysfs, lspci) -> a pvesim node, as GET /nodes/{node}/hardware/pci would list it."""
    names = parse_lspci(raw.get("lspci", ""))
    iommu_present = bool(raw.get("iommu_class"))
    devices = []
    for dev in raw.get("devices", []):
        group = dev.get("iommu_group")
        entry = {
            "id": dev["id"],
            "class": dev.get("class") or "0x000000",
            "vendor": dev.get("vendor") or "0x0000",
            "device": dev.get("device") or "0x0000",
            "subsystem_vendor": dev.get("subsystem_vendor") or "0x0000",
            "subsystem_device": dev.get("subsystem_device") or "0x0000",
            "iommugroup": int(group) if group is not None and str(group).isdigit() else -1,
        }
        entry.update(names.get(dev["id"], {}))
        devices.append(entry)
    return {
        "status": "online",
        "iommu_present": iommu_present,
        "maxcpu": int(raw.get("nproc") or 1),
        "maxmem": int(raw.get("mem_bytes") or 0),
        "pci": devices,
    }


def standin_address(raw: dict) -> str:
    """The address of the host VM's display-class device (the stand-in GPU)."""
    for dev in raw.get("devices", []):
        if str(dev.get("class") or "").lower().startswith("0x03"):
            return dev["id"]
    raise ChainError("the host VM shows no display-class PCI device (lab/vm boots it with the stand-in GPU)")


def agent_vm(vmid: int, node: str, worker: dict) -> tuple[dict, list[dict]]:
    """VM `vmid` as Terraform left it for the worker VM (i440fx, SeaBIOS, running) and its volumes."""
    gib = 1 << 30
    volumes = [
        {"volid": f"local-lvm:vm-{vmid}-disk-0", "storage": "local-lvm", "node": node, "vmid": vmid, "size": 8 * gib,
         "format": "raw", "content": "images", "ctime": int(time.time()) - 86400},
        {"volid": f"local-lvm:vm-{vmid}-cloudinit", "storage": "local-lvm", "node": node, "vmid": vmid, "size": 4 << 20,
         "format": "raw", "content": "images", "ctime": int(time.time()) - 86400},
    ]
    config = {
        "agent": "1",
        "boot": "order=scsi0;ide2;net0",
        "ciuser": worker.get("user", "root"),
        "cores": str(worker.get("nproc", 2)),
        "cpu": "host",
        "ide2": f"local-lvm:vm-{vmid}-cloudinit,media=cdrom",
        "ipconfig0": f"ip={worker['ip_cidr']},gw={worker['gateway']}" if worker.get("ip_cidr") else "ip=dhcp",
        "memory": str(worker.get("memory_mib", 2048)),
        "name": worker["name"],
        "net0": f"virtio={worker.get('mac', 'BC:24:11:00:01:20').upper()},bridge=vmbr0,firewall=1",
        "ostype": "l26",
        "scsi0": f"local-lvm:vm-{vmid}-disk-0,discard=on,iothread=1,size=8G,ssd=1",
        "scsihw": "virtio-scsi-single",
        "sockets": "1",
    }
    if worker.get("uuid"):
        config["smbios1"] = f"uuid={worker['uuid']}"
    vm = {"node": node, "status": "running", "pid": 4000 + vmid, "started_at": time.time() - 3600, "reserved_pci": [],
          "pending": {}, "config": config}
    return vm, volumes


def lab_memory_mib(mem_bytes: int) -> int:
    """The VM's memory as configured (MiB, a multiple of 256) from the MemTotal the guest sees (less, kernel reserved)."""
    return max(256, -(-int(mem_bytes) // (256 << 20)) * 256)


def admin(pve: dict, method: str, sub: str, body: dict | None = None):
    ctx = ssl.create_default_context(cafile=pve["ca_path"])
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(pve["base_url"] + pve["admin_prefix"] + sub, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return json.load(resp).get("data")


def vm_marks(state: dict) -> dict:
    vm = state["vms"][str(VMID)]
    return {"status": vm.get("status"), "pid": vm.get("pid"), "started_at": vm.get("started_at"),
            "tasks": sorted(upid for upid, task in state.get("tasks", {}).items() if task.get("id") == str(VMID))}


def cluster_spec() -> dict:
    node = WORKER_VM
    return {
        "nodes": [{"name": "chain-server", "labels": {"node-role.kubernetes.io/control-plane": "true"}},
                  {"name": node}],
        "pods": [
            {"name": "jellyfin-6d4cf56db6-x2x9k", "node": node, "namespace": "media", "labels": {"app": "jellyfin"}},
            {"name": "redis-0", "node": node, "owner_kind": "StatefulSet", "owner_name": "redis", "empty_dir": True},
            {"name": "svclb-traefik-chain", "node": node, "namespace": "kube-system", "owner_kind": "DaemonSet",
             "owner_name": "svclb-traefik"},
            {"name": "coredns-7f496c8d7d-q2x9z", "node": "chain-server", "namespace": "kube-system"},
        ],
    }


def inventory(host: dict, worker: dict, pve: dict, k8s: dict | None, standin: str) -> dict:
    ssh_args = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes "
                "-o ServerAliveInterval=5 -o ServerAliveCountMax=6")

    def conn(facts):
        return {"ansible_host": facts["address"], "ansible_port": facts["port"], "ansible_user": facts["user"],
                "ansible_ssh_private_key_file": facts["identity_file"], "ansible_ssh_common_args": ssh_args,
                "ansible_python_interpreter": "/usr/bin/python3"}

    agent = conn(worker["lab"])
    agent.update({
        # the tfvars of the agent, as Terraform created VM 120
        "vm_id": VMID, "proxmox_node": HOST_VM, "ip_address": (worker.get("ip_cidr") or "").split("/")[0] or None,
        "cores": int(worker.get("nproc") or 2), "memory": int(worker.get("memory_mib") or 2048),
        "machine_type": "q35", "bios": "ovmf",
        "gpu_passthrough": [{"host": standin, "pcie": True, "rombar": True, "x_vga": False}],
    })
    agent_vars = {
        "gpu_vm_efidisk_storage": "local-lvm",
        "gpu_vm_shutdown_timeout": 10,
        "gpu_vm_ready_timeout": 120,
        "gpu_vm_drain": k8s is not None,
        "gpu_worker_verify_strict": False,
        "gpu_worker_label_node": k8s is not None,
        # a label the role sets whatever VA-API says, so the label link patches the node here too
        "gpu_worker_cpu_tier": "lab",
    }
    if k8s is not None:
        agent_vars.update(kubernetes_kubeconfig=k8s["kubeconfig"])
    pve_host = conn(host["lab"])
    pve_host.update(proxmox_gpu_prep_reboot=True, proxmox_gpu_prep_device=standin)
    return {"all": {
        "vars": {
            "gpu_vm_proxmox_api_host": "127.0.0.1", "gpu_vm_proxmox_api_port": pve["port"],
            "gpu_vm_proxmox_api_user": "root@pam", "gpu_vm_proxmox_api_password": "rootpass",
            "gpu_vm_proxmox_ca_path": pve["ca_path"],
        },
        "children": {
            "proxmox_hosts": {"hosts": {HOST_VM: pve_host}},
            "k3s_gpu_agents": {"hosts": {WORKER_VM: agent}, "vars": agent_vars},
        },
    }}


class NodeFollower(threading.Thread):
    """While site.yml runs: when the host VM's boot id changes, its PCI devices and IOMMU are read again into the
    Proxmox stand-in's node (PUT of that node only)."""

    def __init__(self, pve: dict, boot_id: str | None, interval: float = 2.0):
        super().__init__(daemon=True)
        self.pve, self.boot_id, self.interval = pve, (boot_id or "").strip(), interval
        self.halt = threading.Event()
        self.refreshed = False
        self.note = "not refreshed"

    def refresh(self) -> None:
        host = probe(HOST_VM)
        node = pvesim_node(host)
        admin(self.pve, "PUT", f"/nodes/{HOST_VM}", node)
        self.boot_id = (host.get("boot_id") or "").strip()
        self.refreshed = True
        self.note = (f"read again from the host VM at {time.strftime('%H:%M:%S')}: IOMMU "
                     f"{'present' if node['iommu_present'] else 'absent'}, {len(node['pci'])} PCI devices")

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            try:
                now = ssh(HOST_VM, "cat /proc/sys/kernel/random/boot_id", timeout=10).strip()
            except (ChainError, subprocess.SubprocessError, OSError):
                continue  # rebooting
            if now and now != self.boot_id:
                with contextlib.suppress(ChainError, subprocess.SubprocessError, OSError, ValueError):
                    self.refresh()

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
