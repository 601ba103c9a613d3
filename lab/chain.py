# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole chain on this machine: playbooks/site.yml against two lab VMs and the API stand-ins.

  lab/chain [up] [--twice] [--no-k8s] [--no-setup] [--reuse]
      Stop what a previous up left running (unless --reuse), install the collection from the working tree (tools/setup.sh --test), boot a host VM
      (chain-pve: grub flavour, vIOMMU, the stand-in GPU) and a worker VM (chain-k3s) with
      lab/vm, start the Proxmox API simulator with one node read from the host VM and a VM 120
      for the worker, start the Kubernetes stand-in, write an inventory, run site.yml once (the
      rolling chain: one window for VM 120 around the host VM's reboot; the node is read again
      from the host VM when it has rebooted), print the timeline and a line per link and write
      .cache/lab/chain/summary.json. --twice then runs `verify`.
  lab/chain verify      run the whole site.yml once more: changed=0, no reboot of the host VM, no restart
                        of VM 120 in the simulator
  lab/chain down        stop what `up` started: both VMs, the simulator and the stand-in
  lab/chain status      print summary.json

Real here: the host VM's boot loader, kernel command line, IOMMU, vfio-pci binding and reboot;
the worker VM's packages and vainfo. Simulated: the Proxmox VE API (tests/pvesim; its node
carries the host VM's real PCI devices and IOMMU groups) and Kubernetes (tests/k8ssim; the
node's Ready follows the simulated VM). The stand-in GPU (bochs-display) has no video engine,
so VA-API is expected to be unavailable in the worker, with the role's diagnosis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

LAB_DIR = os.path.dirname(os.path.realpath(__file__))
REPO_DIR = os.path.dirname(LAB_DIR)
# the collection's code, imported from this tree (tools/collection_tree.py)
sys.path.insert(0, os.path.join(REPO_DIR, "tools"))
import collection_tree  # noqa: E402  pylint: disable=wrong-import-position

collection_tree.importable()
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import timeline  # noqa: E402  pylint: disable=wrong-import-position

CACHE_DIR = os.environ.get("LAB_CACHE") or os.path.join(REPO_DIR, ".cache", "lab")
CHAIN_DIR = os.path.join(CACHE_DIR, "chain")
LOG_DIR = os.path.join(CHAIN_DIR, "logs")
SUMMARY = os.path.join(CHAIN_DIR, "summary.json")
VENV_BIN = os.path.join(REPO_DIR, ".venv", "bin")
COLLECTION = os.path.join("ansible_collections", "homelab", "gpu_passthrough")

HOST_VM = "chain-pve"
WORKER_VM = "chain-k3s"
VMID = 120
LINK_ORDER = ("host prep", "Proxmox node", "VM config", "drain", "worker packages", "VA-API", "labels", "second run")

started = time.monotonic()


class ChainError(Exception):
    """A failure with a message for the user."""


def progress(msg: str) -> None:
    print(f"[chain {int(time.monotonic() - started):4d}s] {msg}", flush=True)


# ----------------------------------------------------------------- pure logic
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
    by = {(entry["host"], entry["link"]): entry for entry in site}
    links = []

    host = [by.get((HOST_VM, name)) for name in ("BIOS/IOMMU", "cmdline", "group", "binding")]
    host_ok = all(e and e["status"] == "ok" for e in host) and boots >= 2
    links.append({
        "link": "host prep", "kind": "real", "status": "ok" if host_ok else "FAIL",
        "detail": "; ".join(f"{e['link']}: {e['status']} ({e['detail']})" for e in host if e)
        + f"; {boots} boots in the host VM's journal",
        "fix": next((e["fix"] for e in host if e and e.get("fix")), None),
    })

    node = (pve_state.get("nodes") or {}).get(HOST_VM) or {}
    dev = next((d for d in node.get("pci", []) if d["id"] == standin), {})
    links.append({
        "link": "Proxmox node", "kind": "simulated API, data from the host VM",
        "status": "ok" if node.get("iommu_present") and dev.get("iommugroup", -1) >= 0 else "FAIL",
        "detail": f"node {HOST_VM}: {len(node.get('pci', []))} PCI devices read from the host VM, IOMMU "
                  f"{'present' if node.get('iommu_present') else 'absent'}, {standin} "
                  f"({dev.get('vendor_name', '?')} {dev.get('device_name', '?')}) in IOMMU group {dev.get('iommugroup')}",
        "fix": None,
    })

    vm = (pve_state.get("vms") or {}).get(str(VMID)) or {}
    config = vm.get("config", {})
    site_vm = by.get((WORKER_VM, "VM config")) or {}
    vm_ok = (site_vm.get("status") == "ok" and config.get("machine") == "q35" and config.get("bios") == "ovmf"
             and bool(config.get("efidisk0")) and str(config.get("hostpci0", "")).startswith(standin)
             and vm.get("status") == "running" and not vm.get("pending"))
    links.append({
        "link": "VM config", "kind": "simulated API", "status": "ok" if vm_ok else "FAIL",
        "detail": f"VM {VMID} {vm.get('status')}: machine {config.get('machine', 'i440fx')}, bios {config.get('bios', 'seabios')}, "
                  f"efidisk0 {config.get('efidisk0')}, hostpci0 {config.get('hostpci0')}",
        "fix": site_vm.get("fix"),
    })

    if k8s is not None:
        cluster = k8s.get("cluster", {})
        knode = (cluster.get("nodes") or {}).get(WORKER_VM) or {}
        actions = [r for r in k8s.get("requests", []) if r.get("status", 500) < 400 and r.get("node") in (WORKER_VM, None)]
        evicted = [r["name"] for r in actions if r.get("action") == "evict"]
        cordoned = any(r.get("action") == "cordon" for r in actions)
        uncordoned = any(r.get("action") == "uncordon" for r in actions)
        schedulable = not (knode.get("spec") or {}).get("unschedulable")
        links.append({
            "link": "drain", "kind": "simulated Kubernetes",
            "status": "ok" if cordoned and uncordoned and schedulable else "FAIL",
            "detail": f"node {WORKER_VM}: cordoned {cordoned}, evicted {', '.join(evicted) or 'nothing'}, "
                      f"uncordoned {uncordoned}, schedulable now {schedulable}",
            "fix": None,
        })

    links.append({
        "link": "worker packages", "kind": "real", "status": "ok" if worker_pkgs else "FAIL",
        "detail": "installed in the worker VM: " + (", ".join(worker_pkgs) or "no VA-API packages"),
        "fix": None if worker_pkgs else "see the gpu_worker tasks in logs/site.log",
    })

    guest = by.get((WORKER_VM, "guest driver")) or {}
    diagnosis = guest.get("detail", "")
    if guest.get("status") == "ok":
        va_status = "ok"
    elif guest.get("status") == "FAIL" and re.search(r"\[(VM config|guest driver)\]", diagnosis):
        va_status = "expected"  # the stand-in has no video engine: unavailable, with the reason
    else:
        va_status = "FAIL"
    if va_status == "expected":
        diagnosis = ("unavailable, as expected: the stand-in GPU is a display-only device (bochs-display: no render "
                     "node, no video engine); gpu_worker: " + diagnosis)
    links.append({
        "link": "VA-API", "kind": "real, expected unavailable", "status": va_status,
        "detail": diagnosis or "no gpu_worker report", "fix": guest.get("fix"),
    })

    label = by.get((WORKER_VM, "label")) or {}
    node_labels = {}
    if k8s is not None:
        node_labels = ((((k8s.get("cluster") or {}).get("nodes") or {}).get(WORKER_VM) or {}).get("metadata") or {}).get("labels") or {}
    links.append({
        "link": "labels", "kind": "simulated Kubernetes" if k8s is not None else "not exercised",
        "status": label.get("status", "FAIL") if k8s is not None else "skip",
        "detail": label.get("detail", "no label link in the site summary")
        + ("; node labels now: " + ", ".join(f"{k}={v}" for k, v in sorted(node_labels.items())
                                             if not k.startswith(("kubernetes.io/", "beta.kubernetes.io/", "node.kubernetes.io/")))
           if node_labels else ""),
        "fix": label.get("fix"),
    })
    return links


# ------------------------------------------------------------------- helpers
def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = VENV_BIN + os.pathsep + e.get("PATH", "")
    e.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(REPO_DIR, ".cache", "collections"))
    e.update(
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_HOST_KEY_CHECKING="0",
        ANSIBLE_PIPELINING="1",
        ANSIBLE_TIMEOUT="60",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        # kubernetes.core keeps its discovery cache under TMPDIR
        TMPDIR=os.path.join(CHAIN_DIR, "tmp"),
    )
    return e


def collection_dir(environment: dict[str, str]) -> str:
    for path in environment["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep):
        candidate = os.path.join(path, COLLECTION)
        if os.path.isfile(os.path.join(candidate, "playbooks", "site.yml")):
            return candidate
    raise ChainError("homelab.gpu_passthrough with playbooks/site.yml is not installed; run tools/setup.sh --test")


def run(cmd: list[str], *, log: str | None = None, check: bool = True, timeout: float | None = None, input_text: str | None = None,
        cwd: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env())
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ChainError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}):\n{tail}")
    return proc


def vm_up(name: str) -> subprocess.Popen:
    log = open(os.path.join(LOG_DIR, f"vm-{name}.log"), "a", encoding="utf-8")  # noqa: SIM115  closed with the process
    return subprocess.Popen([os.path.join(LAB_DIR, "vm"), "up", name, "--flavour", "grub"], stdout=subprocess.PIPE, stderr=log,
                            text=True, env=env())


def ssh(name: str, command: str, input_text: str | None = None, timeout: float = 120) -> str:
    return run([os.path.join(LAB_DIR, "vm"), "ssh", name, "--", command], input_text=input_text, timeout=timeout).stdout


# Runs in a lab VM (python3 is in the image): what Proxmox VE's PCI listing is made of.
PROBE = r"""
import json, os, subprocess
def rd(p):
    try:
        with open(p) as fh:
            return fh.read().strip()
    except OSError:
        return None
def link(p):
    return os.path.basename(os.readlink(p)) if os.path.islink(p) else None
root = "/sys/bus/pci/devices"
devices = []
for addr in sorted(os.listdir(root)):
    d = os.path.join(root, addr)
    devices.append({"id": addr, "class": rd(d + "/class"), "vendor": rd(d + "/vendor"), "device": rd(d + "/device"),
                    "subsystem_vendor": rd(d + "/subsystem_vendor"), "subsystem_device": rd(d + "/subsystem_device"),
                    "iommu_group": link(d + "/iommu_group"), "driver": link(d + "/driver")})
try:
    lspci = subprocess.run(["lspci", "-nnmm", "-D"], capture_output=True, text=True).stdout
except OSError:
    lspci = ""
listing = lambda p: sorted(os.listdir(p)) if os.path.isdir(p) else []
mem = [l for l in (rd("/proc/meminfo") or "").splitlines() if l.startswith("MemTotal:")]
ip = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout.split()
route = subprocess.run(["ip", "-4", "route", "show", "default"], capture_output=True, text=True).stdout.split()
nets = [n for n in listing("/sys/class/net") if n != "lo"]
print(json.dumps({
    "devices": devices, "lspci": lspci, "iommu_class": listing("/sys/class/iommu"),
    "iommu_groups": listing("/sys/kernel/iommu_groups"), "nproc": os.cpu_count(),
    "mem_bytes": int(mem[0].split()[1]) * 1024 if mem else 0, "cmdline": rd("/proc/cmdline"),
    "boot_id": rd("/proc/sys/kernel/random/boot_id"), "hostname": rd("/etc/hostname"),
    "ip_cidr": ip[ip.index("inet") + 1] if "inet" in ip else None,
    "gateway": route[route.index("via") + 1] if "via" in route else None,
    "mac": rd("/sys/class/net/%s/address" % nets[0]) if nets else None,
    "uuid": rd("/sys/class/dmi/id/product_uuid"),
}))
"""


def probe(name: str) -> dict:
    return json.loads(ssh(name, "python3 -", input_text=PROBE))


def boots(name: str) -> int:
    return count_boots(ssh(name, "journalctl --list-boots --no-pager"))


def worker_packages() -> list[str]:
    out = ssh(WORKER_VM, "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' 2>/dev/null || true")
    wanted = re.compile(r"^(vainfo|intel-media-va-driver\S*|i965-va-driver\S*|mesa-va-drivers|libva\S*|intel-gpu-tools)$")
    return sorted(f"{p} {v}" for p, v, s in (line.split(" ", 2) for line in out.splitlines() if line.count(" ") >= 2)
                  if wanted.match(p) and s.startswith("ii"))


def pid_alive(pidfile: str, marker: str) -> int | None:
    try:
        with open(pidfile) as fh:
            pid = int(fh.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except (OSError, ValueError):
        return None
    return pid if marker.encode() in cmdline else None


def start_service(name: str, module: str, args: list[str], ready_file: str, timeout: float = 60) -> dict:
    """Start `python -m module` from tests/ in its own session, unless it runs already; its ready-file data."""
    pidfile = os.path.join(CHAIN_DIR, f"{name}.pid")
    if pid_alive(pidfile, module) and os.path.exists(ready_file):
        with open(ready_file) as fh:
            return json.load(fh)
    with contextlib.suppress(OSError):
        os.unlink(ready_file)
    python = os.path.join(VENV_BIN, "python") if os.path.exists(os.path.join(VENV_BIN, "python")) else sys.executable
    with open(os.path.join(LOG_DIR, f"{name}.log"), "a", encoding="utf-8") as log:
        proc = subprocess.Popen([python, "-m", module, *args, "--ready-file", ready_file], cwd=os.path.join(REPO_DIR, "tests"),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env())
    with open(pidfile, "w") as fh:
        fh.write(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while not os.path.exists(ready_file):
        if proc.poll() is not None:
            raise ChainError(f"{module} exited (rc {proc.returncode}); see {os.path.join(LOG_DIR, name + '.log')}")
        if time.monotonic() > deadline:
            raise ChainError(f"{module} did not get ready within {timeout} s")
        time.sleep(0.2)
    with open(ready_file) as fh:
        return json.load(fh)


def stop_service(name: str, marker: str) -> bool:
    pidfile = os.path.join(CHAIN_DIR, f"{name}.pid")
    pid = pid_alive(pidfile, marker)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pid_alive(pidfile, marker):
        time.sleep(0.2)
    if pid_alive(pidfile, marker):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.unlink(pidfile)
    return True


def admin(pve: dict, method: str, sub: str, body: dict | None = None):
    ctx = ssl.create_default_context(cafile=pve["ca_path"])
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(pve["base_url"] + pve["admin_prefix"] + sub, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return json.load(resp).get("data")


def read_json(path: str) -> dict | None:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def write_json(path: str, data) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- the chain
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


def playbook(name: str, extra: list[str], timeout: float = 3600) -> dict:
    """Run site.yml, stream its PLAY lines as progress; {name, rc, seconds, recap, log}."""
    environment = env()
    site = os.path.join(collection_dir(environment), "playbooks", "site.yml")
    log = os.path.join(LOG_DIR, f"site-{name}.log")
    cmd = ["ansible-playbook", "-i", os.path.join(CHAIN_DIR, "inventory.yml"), site,
           "-e", "site_summary_file=" + os.path.join(CHAIN_DIR, f"site-summary-{name}.json"),
           "-e", "site_timeline_file=" + timeline_path(name), *extra]
    t0 = time.monotonic()
    output = []
    with open(log, "w", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, cwd=REPO_DIR)
        assert proc.stdout is not None
        deadline = t0 + timeout
        for line in proc.stdout:
            fh.write(line)
            fh.flush()
            output.append(line)
            if line.startswith("PLAY [") and "RECAP" not in line:
                progress("  " + line.strip().strip("*").strip())
            if time.monotonic() > deadline:
                proc.kill()
        rc = proc.wait()
    text = "".join(output)
    result = {"name": name, "command": " ".join(cmd[:4] + extra), "rc": rc, "seconds": round(time.monotonic() - t0, 1),
              "recap": recap(text), "log": log}
    if rc != 0:
        failed = [line.strip() for line in output if line.startswith(("fatal:", "failed:")) or "FAILED!" in line][-3:]
        result["error"] = "\n".join(failed) or "\n".join(line.rstrip() for line in output[-15:])
    return result


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


def timeline_events(name: str) -> list[dict]:
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
    return {"link": "rolling window", "kind": "real host + simulated API", "status": "FAIL" if problems else "ok",
            "detail": detail + ("; " + "; ".join(problems) if problems else ""),
            "fix": None if not problems else f"see {timeline_path('site')}"}


def timeline_path(name: str) -> str:
    return os.path.join(CHAIN_DIR, f"site-timeline-{name}.json")


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


def print_links(links: list[dict]) -> None:
    width = max(len(link["link"]) for link in links)
    for link in links:
        line = f"  {link['status']:<8} {link['link']:<{width}}  {link['detail']}"
        if link.get("fix") and link["status"] not in ("ok",):
            line += f"\n  {'':<8} {'':<{width}}  fix: {link['fix']}"
        print(line, flush=True)


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
    summary["ok"] = all(link["status"] in ("ok", "expected") for link in summary["links"] if link["status"] != "skip")
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


def vm_marks(state: dict) -> dict:
    vm = state["vms"][str(VMID)]
    return {"status": vm.get("status"), "pid": vm.get("pid"), "started_at": vm.get("started_at"),
            "tasks": sorted(upid for upid, task in state.get("tasks", {}).items() if task.get("id") == str(VMID))}


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
    links = [link for link in summary.get("links", []) if link["link"] != "second run"]
    links.append({"link": "second run", "kind": "real + simulated", "status": "ok" if ok else "FAIL", "detail": detail,
                  "fix": None if ok else f"see {again['log']}"})
    summary["links"] = links
    progress(f"  second run: {detail}")


def cmd_verify(_args: argparse.Namespace) -> int:
    summary = read_json(SUMMARY) or {"links": [], "runs": []}
    try:
        verify(summary)
    except ChainError as exc:
        progress(f"FAILED: {exc}")
        return 1
    summary["ok"] = all(link["status"] in ("ok", "expected") for link in summary["links"] if link["status"] != "skip")
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab/chain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command_name")
    up = sub.add_parser("up", help="boot, simulate, run site.yml, summarise (the default)")
    for target in (p, up):
        target.add_argument("--twice", action="store_true", help="then run site.yml again and check that nothing changes")
        target.add_argument("--no-k8s", action="store_true", help="no Kubernetes stand-in: no drain, no labels")
        target.add_argument("--no-setup", action="store_true", help="use the collection as installed (ANSIBLE_COLLECTIONS_PATH)")
        target.add_argument("--reuse", action="store_true", help="keep the VMs and simulators of a previous up instead of starting fresh")
    up.set_defaults(func=cmd_up)
    sub.add_parser("verify", help="run site.yml again: changed=0, no reboot, no VM restart").set_defaults(func=cmd_verify)
    sub.add_parser("down", help="stop everything up started").set_defaults(func=cmd_down)
    sub.add_parser("status", help="print the last summary").set_defaults(func=cmd_status)
    p.set_defaults(func=cmd_up)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ChainError as exc:
        print(f"lab/chain: {exc}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as exc:
        print(f"lab/chain: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
