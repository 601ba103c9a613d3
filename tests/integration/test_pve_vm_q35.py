# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pve_vm_q35 through ansible-playbook against the Proxmox API simulator (tests/pvesim).

Needs the collection installed by tools/setup.sh and ANSIBLE_COLLECTIONS_PATH from tools/env.sh.
"""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from installed_collection import skip_unless_installed
from pvesim.fixture import running_simulator

pytestmark = skip_unless_installed("plugins", "modules", "pve_vm_q35.py")

MAC = "BC:24:11:5A:7E:01"
TEMPLATE_MAC = "BC:24:11:00:90:00"
GIB = 1 << 30


def k3s_agent_state(state):
    """VM 120 as Terraform left the blog's k3s agent: i440fx + SeaBIOS, running; template 9000 (a cloud image)."""
    state["volumes"] += [
        {"volid": "local-lvm:vm-120-disk-0", "storage": "local-lvm", "node": "pve1", "vmid": 120, "size": 32 * GIB,
         "format": "raw", "content": "images", "ctime": 1731054484},
        {"volid": "local-lvm:vm-120-cloudinit", "storage": "local-lvm", "node": "pve1", "vmid": 120, "size": 4 << 20,
         "format": "raw", "content": "images", "ctime": 1731054484},
        {"volid": "local-lvm:base-9000-disk-0", "storage": "local-lvm", "node": "pve1", "vmid": 9000, "size": 10 * GIB,
         "format": "raw", "content": "images", "ctime": 1731000000},
        {"volid": "local-lvm:vm-9000-cloudinit", "storage": "local-lvm", "node": "pve1", "vmid": 9000, "size": 4 << 20,
         "format": "raw", "content": "images", "ctime": 1731000000},
    ]
    state["vms"]["120"] = {
        "node": "pve1",
        "status": "running",
        "pid": 4242,
        "started_at": time.time() - 600,
        "reserved_pci": [],
        "pending": {},
        "config": {
            "agent": "1",
            "boot": "order=scsi0;ide2;net0",
            "ciuser": "ubuntu",
            "cores": "4",
            "cpu": "host",
            "ide2": "local-lvm:vm-120-cloudinit,media=cdrom",
            "ipconfig0": "ip=192.168.1.120/24,gw=192.168.1.1",
            "memory": "8192",
            "meta": "creation-qemu=9.0.2,ctime=1731054484",
            "name": "k3s-agent-1",
            "nameserver": "192.168.1.1",
            "net0": "virtio=%s,bridge=vmbr0,firewall=1" % MAC,
            "ostype": "l26",
            "scsi0": "local-lvm:vm-120-disk-0,discard=on,iothread=1,size=32G,ssd=1",
            "scsihw": "virtio-scsi-single",
            "smbios1": "uuid=6f1c3f4e-2a0b-4c55-9d1e-0f3b2c1d4e5f",
            "sockets": "1",
            "vmgenid": "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a",
        },
    }
    state["vms"]["9000"] = {
        "node": "pve1",
        "status": "stopped",
        "pending": {},
        "config": {
            "boot": "order=scsi0;ide2;net0",
            "cores": "2",
            "ide2": "local-lvm:vm-9000-cloudinit,media=cdrom",
            "memory": "2048",
            "name": "ubuntu-2404-cloud",
            "net0": "virtio=%s,bridge=vmbr0" % TEMPLATE_MAC,
            "ostype": "l26",
            "scsi0": "local-lvm:base-9000-disk-0,discard=on,size=10G",
            "scsihw": "virtio-scsi-single",
            "serial0": "socket",
            "smbios1": "uuid=0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "template": 1,
        },
    }


@pytest.fixture
def sim(tmp_path):
    with running_simulator(tmp_path / "pve", task_duration=0.02) as handle:
        handle.update(k3s_agent_state)
        yield handle


def _playbook(tmp_path, sim, args, check=False):
    task_args = {"api_host": "127.0.0.1", "api_port": sim.port, "api_user": "root@pam", "api_password": "rootpass",
                 "ca_path": sim.ca_path, "vmid": 120, "efidisk_storage": "local-lvm"}
    task_args.update(args)
    task_args = {k: v for k, v in task_args.items() if v is not None}  # None drops a default (api_password for a token)
    task = {"homelab.gpu_passthrough.pve_vm_q35": task_args, "register": "r", "ignore_errors": True, "diff": True}
    if check:
        task["check_mode"] = True
    # debug runs in the controller process: much cheaper than writing a file with a module
    report = {"ansible.builtin.debug": {"msg": "RESULT<{{ r | to_json | b64encode }}>"}}
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [task, report]}]
    path = tmp_path / ("play-%d.yml" % time.monotonic_ns())
    path.write_text(json.dumps(play))
    return path


def _command(path):
    return ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, str(path)]


def _env():
    env = dict(os.environ)
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0")
    return env


def run_module(tmp_path, sim, check=False, **args):
    """Run the module once through ansible-playbook; the registered result."""
    path = _playbook(tmp_path, sim, args, check=check)
    proc = subprocess.run(_command(path), env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"RESULT<([A-Za-z0-9+/=]+)>", proc.stdout)
    assert found, proc.stdout + proc.stderr
    return json.loads(base64.b64decode(found.group(1)))


def start_module(tmp_path, sim, **args):
    """Start ansible-playbook in the background (to be killed by the test)."""
    path = _playbook(tmp_path, sim, args)
    return subprocess.Popen(_command(path), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _process_tree(pid):
    """``pid`` and all its descendants (Ansible's workers start their own sessions, so a process group is not enough)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="utf-8") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _kill_tree(proc):
    """SIGKILL the ansible-playbook process and everything it started, the module process included."""
    for pid in _process_tree(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)


def kill_when(proc, sim, predicate, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if predicate(sim.snapshot()):
            _kill_tree(proc)
            return
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.02)
    _kill_tree(proc)
    raise AssertionError("the awaited step never started")


def task_running(kind):
    return lambda state: any(t["type"] == kind and t["status"] == "running" for t in state["tasks"].values())


def volids(state, **match):
    return sorted(v["volid"] for v in state["volumes"] if all(v.get(k) == val for k, val in match.items()))


def backups(state):
    return volids(state, content="backup", vmid=120)


def writes(sim):
    return sim.counters()["writes_without_auth"]


def assert_converted(vm, scsi0="local-lvm:vm-120-disk-0,discard=on,iothread=1,size=32G,ssd=1"):
    config = vm["config"]
    assert config["machine"] == "q35"
    assert config["bios"] == "ovmf"
    assert config["efidisk0"].startswith("local-lvm:vm-120-disk-")
    assert "efitype=4m" in config["efidisk0"]
    assert config["scsi0"] == scsi0
    assert config["net0"].startswith("virtio=%s," % MAC)
    assert vm["pending"] == {}


# ---------------------------------------------------------------------------------------------
# in place
# ---------------------------------------------------------------------------------------------


def test_in_place_conversion_then_nothing_to_do(tmp_path, sim):
    before = sim.snapshot()
    old_pid = before["vms"]["120"]["pid"]
    result = run_module(tmp_path, sim)
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert [s["action"] for s in result["plan"]] == ["shutdown", "set_config", "start"]

    vm = sim.vm(120)
    assert_converted(vm)
    assert vm["status"] == "running" and vm["pid"] != old_pid
    assert vm["config"]["name"] == "k3s-agent-1"
    efi_volume = vm["config"]["efidisk0"].split(",")[0]
    assert efi_volume in volids(sim.snapshot(), storage="local-lvm", vmid=120)
    assert efi_volume not in volids(before, storage="local-lvm")
    assert "local-lvm:vm-120-disk-0" in volids(sim.snapshot())
    assert result["config"]["efidisk0"] == vm["config"]["efidisk0"]
    assert result["pending"] == []
    assert result["diff"]["before"]["net0"] == result["diff"]["after"]["net0"]
    assert "machine" not in result["diff"]["before"] and result["diff"]["after"]["machine"] == "q35"

    sim.reset_counters()
    again = run_module(tmp_path, sim)
    assert again["changed"] is False and again["plan"] == []
    assert writes(sim) == 0
    assert sim.counters()["reads"] > 0


def test_check_mode_touches_nothing(tmp_path, sim):
    before = sim.snapshot()["vms"]["120"]
    sim.reset_counters()
    result = run_module(tmp_path, sim, check=True, cores=6)
    assert result["changed"] is True
    assert writes(sim) == 0
    assert sim.vm(120)["config"] == before["config"] and sim.vm(120)["status"] == "running"
    assert result["plan"][1]["config"]["cores"] == "6"
    assert result["diff"]["before"]["cores"] == "4" and result["diff"]["after"]["cores"] == "6"
    assert result["config"]["bios"] == "ovmf"


def test_500_on_config_write_fails_clearly_and_rerun_converges(tmp_path, sim):
    sim.fail("PUT", r"/qemu/120/config$")
    failed = run_module(tmp_path, sim)
    assert failed.get("failed") is True
    assert "PUT /nodes/pve1/qemu/120/config" in failed["msg"] and "500" in failed["msg"]
    vm = sim.vm(120)
    assert "machine" not in vm["config"] and vm["status"] == "running"  # started again with its old config
    assert volids(sim.snapshot(), vmid=120) == ["local-lvm:vm-120-cloudinit", "local-lvm:vm-120-disk-0"]

    result = run_module(tmp_path, sim)
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert_converted(sim.vm(120))
    assert sim.vm(120)["status"] == "running"


def test_dropped_connection_while_polling_a_task(tmp_path, sim):
    sim.set_task_duration(0.3)
    rule = sim.drop("GET", r"/tasks/.*/status$", skip=1)
    result = run_module(tmp_path, sim)
    assert rule.hits == 1  # the second status poll lost its connection
    assert not result.get("failed"), result
    assert_converted(sim.vm(120))
    assert sim.vm(120)["status"] == "running"


# ---------------------------------------------------------------------------------------------
# PCI devices in the same change
# ---------------------------------------------------------------------------------------------

IGPU = [{"host": "8086:3e92", "pcie": True, "rombar": True, "x_vga": False}]


def power_tasks(state):
    return sorted(t["type"] for t in state["tasks"].values() if t["type"] in ("qmshutdown", "qmstop", "qmstart", "qmreboot"))


def token_auth(sim):
    token = sim.data["access"]["users"]["automation@pve"]["tokens"]["ansible"]["secret"]
    return {"api_user": "automation@pve", "api_password": None, "api_token_id": "ansible", "api_token_secret": token}


def test_conversion_and_hostpci_take_one_restart(tmp_path, sim):
    result = run_module(tmp_path, sim, hostpci=IGPU)
    assert not result.get("failed"), result
    assert [s["action"] for s in result["plan"]] == ["shutdown", "set_config", "start"]
    assert result["plan"][1]["config"]["hostpci0"] == "0000:00:02.0,pcie=1,rombar=1,x-vga=0"
    vm = sim.vm(120)
    assert_converted(vm)
    assert vm["status"] == "running"
    assert hostpci_options(vm["config"]["hostpci0"]) == hostpci_options("0000:00:02.0,pcie=1")
    assert power_tasks(sim.snapshot()) == ["qmshutdown", "qmstart"]
    assert result["config"]["hostpci0"] == vm["config"]["hostpci0"]

    # the same entry written as an address: nothing to do, and no device list read for it
    sim.reset_counters()
    again = run_module(tmp_path, sim, hostpci=[{"host": "00:02.0", "pcie": True}])
    assert again["changed"] is False and again["plan"] == []
    endpoints = sim.counters()["endpoints"]
    assert writes(sim) == 0
    assert "GET /nodes/{node}/hardware/pci" not in endpoints, endpoints
    assert power_tasks(sim.snapshot()) == ["qmshutdown", "qmstart"]


def hostpci_options(value):
    """A hostpciN value as a dict with Proxmox VE's defaults for rombar and x-vga filled in."""
    host, *options = value.split(",")
    found = {"host": host, "rombar": "1", "x-vga": "0"}
    found.update(option.split("=", 1) for option in options)
    return found


def test_token_with_a_raw_host_fails_before_any_write(tmp_path, sim):
    before = sim.snapshot()["vms"]["120"]
    sim.reset_counters()
    result = run_module(tmp_path, sim, node="pve1", hostpci=[{"host": "0000:00:02.0", "pcie": True}], **token_auth(sim))
    assert result.get("failed") is True
    assert "only root can set 'hostpci0' config for non-mapped devices" in result["msg"], result
    assert "mapping" in result["fix"] and "root@pam" in result["fix"], result
    assert writes(sim) == 0
    assert sim.snapshot()["vms"]["120"]["config"] == before["config"] and sim.vm(120)["status"] == "running"


def test_a_device_the_node_lacks_fails_before_the_shutdown(tmp_path, sim):
    result = run_module(tmp_path, sim, hostpci=[{"host": "0000:05:00.0", "pcie": True}])
    assert result.get("failed") is True
    assert "No PCI device 0000:05:00.0 on node pve1" in result["msg"], result
    assert writes(sim) == 0
    assert sim.vm(120)["status"] == "running" and "machine" not in sim.vm(120)["config"]
    assert power_tasks(sim.snapshot()) == []


# ---------------------------------------------------------------------------------------------
# recreate
# ---------------------------------------------------------------------------------------------

RECREATE = {"conversion": "recreate", "template": 9000, "ciuser": "ubuntu", "ipconfig0": "ip=192.168.1.120/24,gw=192.168.1.1"}
FROM_TEMPLATE = "local-lvm:vm-120-disk-0,discard=on,size=10G"


def assert_recreated(sim):
    vm = sim.vm(120)
    assert_converted(vm, scsi0=FROM_TEMPLATE)
    assert vm["config"]["name"] == "k3s-agent-1"
    assert vm["config"]["serial0"] == "socket"  # from the template
    assert vm["status"] == "running"
    assert "todo=" not in vm["config"]["description"]
    return vm


def test_recreate_needs_allow_recreate(tmp_path, sim):
    before = sim.snapshot()
    sim.reset_counters()
    result = run_module(tmp_path, sim, **RECREATE)
    assert result["failed"] is True
    assert "allow_recreate" in result["msg"]
    assert writes(sim) == 0
    assert sim.snapshot()["vms"] == before["vms"]


def test_recreate_backs_up_keeps_mac_and_takes_disks_from_template(tmp_path, sim):
    result = run_module(tmp_path, sim, allow_recreate=True, **RECREATE)
    assert not result.get("failed"), result
    assert [s["action"] for s in result["plan"]] == ["shutdown", "backup", "destroy", "clone", "configure", "start", "finish"]
    assert_recreated(sim)
    assert backups(sim.snapshot()) == [result["backup"]]
    assert result["config"]["net0"].startswith("virtio=%s," % MAC)

    sim.reset_counters()
    again = run_module(tmp_path, sim, allow_recreate=True, **RECREATE)
    assert again["changed"] is False
    assert writes(sim) == 0
    assert len(backups(sim.snapshot())) == 1


def test_recreate_killed_during_backup_reruns_with_that_backup(tmp_path, sim):
    sim.set_task_duration(1.5, "vzdump")
    proc = start_module(tmp_path, sim, allow_recreate=True, **RECREATE)
    kill_when(proc, sim, task_running("vzdump"))
    assert sim.vm(120) is not None

    result = run_module(tmp_path, sim, allow_recreate=True, **RECREATE)
    assert not result.get("failed"), result
    assert "backup" not in [s["action"] for s in result["plan"]]  # the interrupted run's backup is used
    assert_recreated(sim)
    made = backups(sim.snapshot())
    assert made == [result["backup"]]


def test_recreate_killed_during_destroy_reruns_and_keeps_the_backup(tmp_path, sim):
    sim.set_task_duration(1.0, "qmdestroy")
    proc = start_module(tmp_path, sim, allow_recreate=True, **RECREATE)
    kill_when(proc, sim, task_running("qmdestroy"))
    made = backups(sim.snapshot())
    assert len(made) == 1

    result = run_module(tmp_path, sim, allow_recreate=True, **RECREATE)
    assert not result.get("failed"), result
    assert [s["action"] for s in result["plan"]] == ["clone", "configure", "start", "finish"]
    assert_recreated(sim)
    assert backups(sim.snapshot()) == made
