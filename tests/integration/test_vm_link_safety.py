# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VM link against the Proxmox API simulator through ansible-playbook: bad inputs refused with zero
writes and zero power tasks, live states preserved, faults converging, recreate refusals.

Each matrix runs all its cases as tasks of one playbook against one simulator (cheap); the simulator's
counters and task list prove that none of them wrote anything or touched a VM's power.
"""

import copy
import json
import os
import subprocess
import sys
import time

import pytest
from installed_collection import skip_unless_installed
from pvesim.fixture import running_simulator
from test_pve_vm_q35 import k3s_agent_state

pytestmark = skip_unless_installed("plugins", "modules", "pve_vm_info.py")

GIB = 1 << 30
SECURE_BOOT_EFIDISK = "local-lvm:vm-130-disk-1,efitype=4m,ms-cert=2023,pre-enrolled-keys=1,size=4M"
LIMITED_SECRET = "5c3a1f0e-7d2b-4e8a-9c6f-1a2b3c4d5e6f"


def gui_ovmf_vm(node="pve1", status="running", vmid=130):
    """What the PVE 9 GUI makes for an OVMF guest, tuned by hand: Secure-Boot efidisk0, viommu, a pinned machine,
    two hostpci entries (one driver=keep), cpu and args."""
    return {
        "node": node, "status": status, "pid": 4343 if status == "running" else None,
        "started_at": time.time() - 60 if status == "running" else None, "reserved_pci": [], "pending": {},
        "config": {
            "agent": "1", "bios": "ovmf", "boot": "order=scsi0;net0", "cores": "2", "cpu": "host,flags=+aes",
            "args": "-set device.hostpci1.x-pci-sub-vendor-id=0x17aa", "efidisk0": SECURE_BOOT_EFIDISK.replace("130", str(vmid)),
            "hostpci0": "0000:00:02.0,pcie=1,driver=keep", "hostpci1": "0000:00:1f.3,pcie=1",
            "machine": "pc-q35-9.2+pve1,viommu=intel", "memory": "4096", "name": "plex-%d" % vmid,
            "net0": "virtio=BC:24:11:EE:33:%02X,bridge=vmbr0" % (vmid - 100), "ostype": "l26",
            "scsi0": "local-lvm:vm-%d-disk-0,size=32G" % vmid, "scsihw": "virtio-scsi-single",
        },
    }


def lab_state(state):
    """VM 120 (the k3s agent, running i440fx), template 9000, and what the matrices need besides."""
    k3s_agent_state(state)
    vms = state["vms"]
    vms["130"] = gui_ovmf_vm()
    vms["131"] = gui_ovmf_vm(status="stopped", vmid=131)
    vms["132"] = copy.deepcopy(vms["120"])
    vms["132"]["config"]["name"] = "k3s-agent-locked"
    vms["132"]["config"]["lock"] = "backup"
    vms["133"] = copy.deepcopy(vms["120"])
    vms["133"]["config"].update(name="k3s-agent-data", scsi1="local-lvm:vm-133-disk-1,size=100G")
    vms["134"] = copy.deepcopy(vms["120"])
    vms["134"]["config"].update(name="k3s-agent-raw", hostpci0="0000:00:14.0")
    vms["9001"] = copy.deepcopy(vms["9000"])
    vms["9001"]["node"] = "pve2"
    vms["9001"]["config"].update(name="template-on-pve2", scsi0="local-lvm:base-9001-disk-0,size=10G")
    state["mappings"]["pci"]["elsewhere"] = {"map": ["node=pve2,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1"]}
    state["mappings"]["pci"]["igpu"] = {"map": ["node=pve1,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1"]}
    access = state["access"]
    access["roles"]["VMOperator"] = ["VM.Audit", "VM.PowerMgmt", "VM.Config.Options", "VM.Config.Disk", "VM.Config.CPU",
                                     "VM.Config.Memory", "Datastore.Audit", "Datastore.AllocateSpace", "Sys.Audit", "Mapping.Use",
                                     "Mapping.Audit"]
    access["users"]["operator@pve"] = {"password": "operatorpass", "enable": 1, "groups": [],
                                       "tokens": {"ansible": {"secret": LIMITED_SECRET, "privsep": 0}}}
    access["acl"].append({"path": "/", "ugid": "operator@pve", "roleid": "VMOperator", "propagate": 1})


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_simulator(tmp_path_factory.mktemp("pve"), task_duration=0.02) as handle:
        handle.update(lab_state)
        yield handle


@pytest.fixture
def fresh(tmp_path):
    with running_simulator(tmp_path / "pve", task_duration=0.02) as handle:
        handle.update(lab_state)
        yield handle


def auth(sim, user="root"):
    base = {"api_host": "127.0.0.1", "api_port": sim.port, "ca_path": sim.ca_path}
    if user == "root":
        return dict(base, api_user="root@pam", api_password="rootpass")
    if user == "operator":
        return dict(base, api_user="operator@pve", api_token_id="ansible", api_token_secret=LIMITED_SECRET)
    secret = sim.data["access"]["users"]["automation@pve"]["tokens"]["ansible"]["secret"]
    return dict(base, api_user="automation@pve", api_token_id="ansible", api_token_secret=secret)


def play(tmp_path, tasks, check=False):
    """Run ``(module, args)`` tasks in one ansible-playbook run; the registered results in order."""
    body = []
    for index, (module, args) in enumerate(tasks):
        task = {"name": "case %d" % index, "register": "out%d" % index, "ignore_errors": True, "diff": True,
                "homelab.gpu_passthrough.%s" % module: args}
        if check:
            task["check_mode"] = True
        body.append(task)
        body.append({"name": "show %d" % index, "ansible.builtin.debug": {"msg": "RESULT%d={{ out%d | to_json }}" % (index, index)}})
    path = tmp_path / ("play-%d.yml" % time.monotonic_ns())
    path.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": body}]))
    cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, str(path)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_LOCALHOST_WARNING="0")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    results = {}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith('"msg": "RESULT'):
            text = json.loads(line[len('"msg": '):])
            index, _sep, value = text[len("RESULT"):].partition("=")
            results[int(index)] = json.loads(value)
    assert sorted(results) == list(range(len(tasks))), output
    return [results[i] for i in range(len(tasks))]


def power_tasks(sim):
    return sorted(t["type"] for t in sim.snapshot()["tasks"].values() if t["type"] in ("qmshutdown", "qmstop", "qmstart", "qmreboot"))


def writes(sim):
    return sim.counters()["writes_without_auth"]


# ---------------------------------------------------------------------------------------------
# bad inputs: (case id, module, args, words the message must hold)
# ---------------------------------------------------------------------------------------------

Q35 = {"vmid": 120}
HOSTPCI = {"vmid": 120, "node": "pve1", "apply": "restart"}


def bad_cases(sim):
    root, token, operator = auth(sim), auth(sim, "token"), auth(sim, "operator")

    def q35(**kw):
        return "pve_vm_q35", dict(root, **dict(Q35, **kw))

    def pci(**kw):
        return "pve_hostpci", dict(root, **dict(HOSTPCI, **kw))

    def mapping(**kw):
        return "pve_pci_mapping", dict(root, **dict({"name": "uhd", "devices": [{"node": "pve1", "path": "0000:00:02.0"}]}, **kw))
    gpu = {"host": "0000:00:02.0", "pcie": True}
    return [
        ("q35 efidisk storage missing", q35(efidisk_storage="nope"), ["efidisk_storage", "nope", "does not exist", "local-lvm"]),
        ("q35 efidisk storage without images", q35(efidisk_storage="local"), ["efidisk_storage", "'local'", "disk images"]),
        ("q35 cores 0", q35(efidisk_storage="local-lvm", cores=0), ["cores", "at least 1"]),
        ("q35 cores above the node", q35(efidisk_storage="local-lvm", cores=64), ["cores", "64", "CPUs of node pve1"]),
        ("q35 memory 1", q35(efidisk_storage="local-lvm", memory=1), ["memory", "at least 16"]),
        ("q35 memory above the node", q35(efidisk_storage="local-lvm", memory=10 ** 7), ["memory", "10000000", "MiB of memory"]),
        ("q35 machine newer than qemu", q35(machine="pc-q35-10.1"), ["machine", "pc-q35-10.1", "does not offer"]),
        ("q35 viommu unknown", q35(machine="q35,viommu=amd"), ["machine", "viommu=amd", "viommu=intel"]),
        ("q35 machine i440fx", q35(machine="pc"), ["machine", "'pc'", "q35"]),
        ("q35 machine typo", q35(machine="q36"), ["machine", "q36", "Proxmox VE knows"]),
        ("q35 aw-bits", q35(machine="q35,aw-bits=12"), ["machine", "aw-bits=12", "32 to 64"]),
        ("q35 ipconfig bad ip", q35(efidisk_storage="local-lvm", ipconfig0="ip=192.168.1.300/24"), ["ipconfig0", "192.168.1.300", "IPv4"]),
        ("q35 ipconfig unknown key", q35(efidisk_storage="local-lvm", ipconfig0="address=10.0.0.5/24"), ["ipconfig0", "address", "ip="]),
        ("q35 ipconfig no prefix", q35(efidisk_storage="local-lvm", ipconfig0="ip=10.0.0.5"), ["ipconfig0", "10.0.0.5", "/prefix"]),
        ("q35 ipconfig gw with dhcp", q35(efidisk_storage="local-lvm", ipconfig0="ip=dhcp,gw=10.0.0.1"), ["ipconfig0", "gw=10.0.0.1", "static ip"]),
        ("q35 nameserver name", q35(efidisk_storage="local-lvm", nameserver="dns.home.arpa"), ["nameserver", "dns.home.arpa", "IP addresses"]),
        ("q35 sshkeys junk", q35(efidisk_storage="local-lvm", sshkeys="hunter2"), ["sshkeys", "hunter2", ".pub"]),
        ("q35 mapping missing", q35(efidisk_storage="local-lvm", hostpci=[{"mapping": "nomap"}]), ["hostpci0", "nomap", "pve_pci_mapping"]),
        ("q35 mapping for another node", q35(efidisk_storage="local-lvm", hostpci=[{"mapping": "elsewhere"}]),
         ["hostpci0", "elsewhere", "node pve1"]),
        ("q35 mdev not offered", q35(efidisk_storage="local-lvm", hostpci=[dict(gpu, mdev="i915-GVTg_V5_4")]),
         ["hostpci0", "i915-GVTg_V5_4", "drop mdev"]),
        ("q35 romfile path", q35(efidisk_storage="local-lvm", hostpci=[dict(gpu, romfile="../../etc/shadow")]),
         ["hostpci0", "../../etc/shadow", "/usr/share/kvm/"]),
        ("q35 host not on node", q35(efidisk_storage="local-lvm", hostpci=[{"host": "0000:00:05.0"}]), ["host", "0000:00:05.0", "lspci"]),
        ("q35 ids not on node", q35(efidisk_storage="local-lvm", hostpci=[{"host": "10de:1c82"}]), ["host", "10de:1c82", "lspci"]),
        ("q35 slot 16", q35(efidisk_storage="local-lvm", hostpci=[dict(gpu, slot=16)]), ["slot=16", "0 to 15"]),
        ("q35 slot twice", q35(efidisk_storage="local-lvm", hostpci=[dict(gpu, slot=1), {"slot": 1, "mapping": "igpu"}]),
         ["slot 1 twice", "own slot"]),
        ("q35 host and mapping", q35(efidisk_storage="local-lvm", hostpci=[dict(gpu, mapping="igpu")]), ["host and mapping", "mapping"]),
        ("q35 mapping id", q35(efidisk_storage="local-lvm", hostpci=[{"mapping": "1gpu"}]), ["mapping", "1gpu", "starts with a letter"]),
        ("q35 user without realm", q35(api_user="root"), ["api_user", "'root'", "root@pam"]),
        ("q35 port out of range", q35(api_port=70000), ["api_port", "70000", "1..65535"]),
        ("q35 ca file missing", q35(ca_path="/nonexistent/pve-root-ca.pem"), ["ca_path", "/nonexistent/pve-root-ca.pem", "pve-root-ca.pem"]),
        ("q35 locked vm", q35(vmid=132, efidisk_storage="local-lvm"), ["vmid", "132", "locked (backup)", "qm unlock"]),
        ("q35 template as vmid", q35(vmid=9000, efidisk_storage="local-lvm"), ["vmid", "9000", "template"]),
        ("q35 wrong name", q35(name="k3s-agent-9"), ["name", "k3s-agent-9", "vmid and name"]),
        ("q35 token lacks HWType", ("pve_vm_q35", dict(operator, vmid=120, efidisk_storage="local-lvm")),
         ["VM.Config.HWType", "machine", "grant"]),
        ("q35 recreate not allowed", q35(conversion="recreate", template=9000), ["allow_recreate", "in_place"]),
        ("q35 recreate from a vm", q35(conversion="recreate", template=130, allow_recreate=True), ["template", "130", "qm template"]),
        ("q35 recreate from itself", q35(conversion="recreate", template=120, allow_recreate=True), ["template", "120", "another VM"]),
        ("q35 recreate drops a data disk", q35(vmid=133, conversion="recreate", template=9000, allow_recreate=True),
         ["recreate_drop_disks", "scsi1", "in_place"]),
        ("q35 recreate from local storage elsewhere", q35(conversion="recreate", template=9001, allow_recreate=True),
         ["template", "9001", "pve2", "shared storage"]),
        ("q35 recreate bad ipconfig", q35(conversion="recreate", template=9000, allow_recreate=True, ipconfig0="ip=300.1.1.1/24"),
         ["ipconfig0", "300.1.1.1", "IPv4"]),
        ("q35 recreate cores above the node", q35(conversion="recreate", template=9000, allow_recreate=True, cores=99),
         ["cores", "99", "CPUs of node pve1"]),
        ("q35 recreate template missing", q35(conversion="recreate", template=9999, allow_recreate=True), ["template", "9999", "existing"]),
        ("hostpci token raw host", ("pve_hostpci", dict(token, **dict(HOSTPCI, host="0000:00:02.0"))),
         ["hostpci0", "0000:00:02.0", "pve_pci_mapping", "root@pam"]),
        ("hostpci token replaces raw entry", ("pve_hostpci", dict(token, vmid=134, node="pve1", mapping="igpu")),
         ["hostpci0", "0000:00:14.0", "root@pam"]),
        ("hostpci mapping missing", pci(mapping="nomap"), ["hostpci0", "nomap", "pve_pci_mapping"]),
        ("hostpci mapping for another node", pci(mapping="elsewhere"), ["hostpci0", "elsewhere", "node pve1"]),
        ("hostpci mdev not offered", pci(host="0000:00:02.0", mdev="i915-GVTg_V5_8"), ["hostpci0", "i915-GVTg_V5_8", "drop mdev"]),
        ("hostpci romfile absolute", pci(host="0000:00:02.0", romfile="/root/vbios.rom"), ["hostpci0", "/root/vbios.rom", "/usr/share/kvm/"]),
        ("hostpci slot 16", pci(host="0000:00:02.0", slot=16), ["slot=16", "0 to 15"]),
        ("hostpci host not on node", pci(host="0000:00:05.0"), ["host", "0000:00:05.0", "lspci"]),
        ("hostpci pcie on i440fx", pci(host="0000:00:02.0", pcie=True), ["hostpci0", "pcie=1", "q35"]),
        ("hostpci locked vm", pci(vmid=132, host="0000:00:02.0"), ["vmid", "132", "locked (backup)"]),
        ("hostpci user without realm", pci(api_user="admin", host="0000:00:02.0"), ["api_user", "'admin'", "realm"]),
        ("hostpci token lacks HWType", ("pve_hostpci", dict(operator, vmid=120, node="pve1", mapping="igpu")),
         ["VM.Config.HWType", "hostpci0", "grant"]),
        ("mapping id", mapping(name="1gpu"), ["name", "1gpu", "start with a letter"]),
        ("mapping address not on node", mapping(devices=[{"node": "pve1", "path": "0000:00:05.0"}]), ["0000:00:05.0", "pve1", "lspci"]),
        ("mapping ids not on node", mapping(devices=[{"node": "pve1", "path": "10de:1c82"}]), ["10de:1c82", "pve1", "lspci"]),
        ("mapping node twice", mapping(devices=[{"node": "pve1", "path": "0000:00:02.0"}, {"node": "pve1", "path": "0000:00:14.0"}]),
         ["pve1", "more than once", "one entry per node"]),
        ("mapping port", mapping(api_port=0), ["api_port", "1..65535"]),
        ("mapping ca file missing", mapping(ca_path="/nonexistent/ca.pem"), ["ca_path", "/nonexistent/ca.pem"]),
        ("mapping user without realm", mapping(api_user="root"), ["api_user", "root@pam"]),
        ("power locked vm", ("pve_vm_power", dict(root, vmid=132, state="stopped")), ["vmid", "132", "locked (backup)"]),
        ("power template", ("pve_vm_power", dict(root, vmid=9000, state="started")), ["vmid", "9000", "template"]),
    ]


def test_bad_input_matrix_refuses_with_zero_writes_and_zero_power_tasks(lab, tmp_path):
    cases = bad_cases(lab)
    before = lab.snapshot()
    lab.reset_counters()
    results = play(tmp_path, [(module, args) for _name, (module, args), _words in cases])
    problems = []
    for (name, _task, words), result in zip(cases, results):
        msg = result.get("msg", "")
        if not result.get("failed"):
            problems.append("%s: not refused: %s" % (name, result))
            continue
        missing = [w for w in words if w not in msg]
        if missing or "Fix:" not in msg:
            problems.append("%s: message lacks %s: %s" % (name, missing or "a fix", msg))
    assert not problems, "\n".join(problems)
    assert len(cases) >= 40
    assert writes(lab) == 0, lab.counters()
    after = lab.snapshot()
    assert after["tasks"] == before["tasks"] and power_tasks(lab) == []
    assert after["vms"] == before["vms"] and after["mappings"] == before["mappings"] and after["volumes"] == before["volumes"]


# ---------------------------------------------------------------------------------------------
# preservation of live states
# ---------------------------------------------------------------------------------------------


def test_defaults_on_gui_made_vms_make_no_write(lab, tmp_path):
    root = auth(lab)
    before = lab.snapshot()["vms"]
    lab.reset_counters()
    results = play(tmp_path, [
        ("pve_vm_q35", dict(root, vmid=130)),
        ("pve_vm_q35", dict(root, vmid=131)),
        ("pve_vm_q35", dict(root, vmid=130, machine="q35,viommu=intel")),
        ("pve_vm_q35", dict(root, vmid=130, hostpci=[{"slot": 0, "host": "00:02.0"}, {"slot": 1, "host": "0000:00:1f.3"}])),
        ("pve_hostpci", dict(root, vmid=130, slot=0, host="0000:00:02.0", pcie=True, apply="restart")),
        ("pve_vm_info", dict(root, vmid=130)),
        ("pve_vm_power", dict(root, vmid=131, state="stopped")),
        ("pve_vm_power", dict(root, vmid=130, state="started")),
    ])
    assert [r.get("changed") for r in results] == [False] * 8, results
    assert not any(r.get("failed") for r in results), results
    assert writes(lab) == 0 and lab.snapshot()["vms"] == before
    info = results[5]["vm"]
    assert info["status"] == "running" and info["lock"] is None and info["template"] is False and info["digest"]
    assert info["hostpci"]["hostpci0"]["options"] == {"pcie": "1", "driver": "keep"}
    assert info["config"]["efidisk0"] == SECURE_BOOT_EFIDISK and "digest" not in info["config"]
    assert results[6]["status_before"] == "stopped" and results[6]["status"] == "stopped"


@pytest.mark.parametrize("module, args, key, value", [
    ("pve_vm_q35", {"cores": 4}, "cores", "4"),
    ("pve_vm_q35", {"memory": 6144}, "memory", "6144"),
    ("pve_vm_q35", {"machine": "q35,viommu=virtio"}, "machine", "pc-q35-9.2+pve1,viommu=virtio"),
    ("pve_vm_q35", {"hostpci": [{"slot": 0, "host": "0000:00:02.0", "rombar": False}]}, "hostpci0", "0000:00:02.0,pcie=1,driver=keep,rombar=0"),
    ("pve_hostpci", {"slot": 2, "mapping": "igpu", "pcie": True, "apply": "none"}, "hostpci2", "mapping=igpu,pcie=1"),
])
def test_each_narrow_request_changes_only_its_key(fresh, tmp_path, module, args, key, value):
    before = fresh.snapshot()["vms"]["131"]["config"]
    (result,) = play(tmp_path, [(module, dict(auth(fresh), vmid=131, **args))])
    assert result.get("changed") is True and not result.get("failed"), result
    after = fresh.snapshot()["vms"]["131"]["config"]
    changed = sorted(k for k in set(before) | set(after) if k != "digest" and before.get(k) != after.get(k))
    assert changed == [key] and str(after[key]) == value, (changed, after.get(key))
    assert fresh.vm(131)["status"] == "stopped"


def test_replace_efidisk_is_the_only_way_to_a_new_efi_disk(fresh, tmp_path):
    checked, replaced = play(tmp_path, [
        ("pve_vm_q35", dict(auth(fresh), vmid=131, pre_enrolled_keys=False)),
        ("pve_vm_q35", dict(auth(fresh), vmid=131, pre_enrolled_keys=False, replace_efidisk=True)),
    ])
    assert checked["changed"] is False, checked
    assert replaced["changed"] is True, replaced
    config = fresh.vm(131)["config"]
    assert "pre-enrolled-keys=0" in config["efidisk0"] and config["unused0"] == "local-lvm:vm-131-disk-1"


# ---------------------------------------------------------------------------------------------
# faults: clear error, nothing lost, the next run converges, the third makes no write
# ---------------------------------------------------------------------------------------------


def converge_after(sim, tmp_path, args=None):
    args = dict(auth(sim), vmid=120, efidisk_storage="local-lvm", **(args or {}))
    second, = play(tmp_path, [("pve_vm_q35", args)])
    assert not second.get("failed"), second
    assert second["changed"] is True
    sim.reset_counters()
    third, = play(tmp_path, [("pve_vm_q35", args)])
    assert third["changed"] is False and writes(sim) == 0, third
    vm = sim.vm(120)
    assert vm["status"] == "running" and vm["config"]["machine"] == "q35" and vm["config"]["bios"] == "ovmf"
    assert vm["config"]["scsi0"].startswith("local-lvm:vm-120-disk-0") and "start pending" not in vm["config"].get("description", "")


@pytest.mark.parametrize("method, path", [
    ("PUT", r"/qemu/120/config$"),
    ("POST", r"/qemu/120/status/shutdown$"),
    ("POST", r"/qemu/120/status/start$"),
])
def test_500_on_each_write_then_converges(fresh, tmp_path, method, path):
    fresh.fail(method, path)
    first, = play(tmp_path, [("pve_vm_q35", dict(auth(fresh), vmid=120, efidisk_storage="local-lvm"))])
    assert first.get("failed") is True and "500" in first["msg"] and "Fix:" in first["msg"], first
    assert fresh.vm(120)["config"]["scsi0"].startswith("local-lvm:vm-120-disk-0")
    if path.endswith("start$"):
        # the start failed after the conversion: the VM is stopped and marked, and the next run starts it
        assert fresh.vm(120)["status"] == "stopped" and "start pending" in fresh.vm(120)["config"]["description"]
    converge_after(fresh, tmp_path)


def test_dropped_connections_beyond_the_retries_while_waiting(fresh, tmp_path):
    fresh.set_task_duration(0.5, "qmshutdown")
    fresh.drop("GET", r"/tasks/.*qmshutdown.*/status$", times=4, skip=1)
    result, = play(tmp_path, [("pve_vm_q35", dict(auth(fresh), vmid=120, efidisk_storage="local-lvm"))])
    assert not result.get("failed"), result
    assert power_tasks(fresh) == ["qmshutdown", "qmstart"]  # no hard stop
    assert not any("stopped hard" in w for w in result.get("warnings", []))


def test_start_task_ending_in_error_leaves_a_mark_and_a_rerun_starts_the_vm(fresh, tmp_path):
    # VM 130 runs with the iGPU: VM 120's start after the conversion fails in the qmstart task (PCI device in use)
    fresh.update(lambda data: data["vms"]["130"].update(reserved_pci=["0000:00:02.0"]))
    gpu = {"hostpci": [{"host": "0000:00:02.0", "pcie": True}]}
    first, again = play(tmp_path, [("pve_vm_q35", dict(auth(fresh), vmid=120, efidisk_storage="local-lvm", **gpu))] * 2)
    assert first.get("failed") is True and "could not be started" in first["msg"] and "Fix:" in first["msg"], first
    assert first["start_pending"] is True
    # a re-run while the cause is still there fails again: never "ok" for a VM left stopped
    assert again.get("failed") is True and "could not be started" in again["msg"], again
    vm = fresh.vm(120)
    assert vm["status"] == "stopped" and "start pending" in vm["config"]["description"]
    assert vm["config"]["hostpci0"] == "0000:00:02.0,pcie=1" and vm["config"]["scsi0"].startswith("local-lvm:vm-120-disk-0")
    stopped, = play(tmp_path, [("pve_vm_power", dict(auth(fresh), vmid=130, state="stopped"))])
    assert stopped["changed"] is True and stopped["status_before"] == "running"
    converge_after(fresh, tmp_path, gpu)


def test_lock_held_by_a_backup_then_released(fresh, tmp_path):
    fresh.update(lambda data: data["vms"]["120"]["config"].update(lock="backup"))
    refused, = play(tmp_path, [("pve_vm_q35", dict(auth(fresh), vmid=120, efidisk_storage="local-lvm"))])
    assert refused.get("failed") and "locked (backup)" in refused["msg"]
    assert writes(fresh) == 0 and power_tasks(fresh) == []
    fresh.update(lambda data: data["vms"]["120"]["config"].pop("lock"))
    converge_after(fresh, tmp_path)


def test_slow_answers_still_converge(fresh, tmp_path):
    fresh.latency(0.05)
    converge_after(fresh, tmp_path)


# ---------------------------------------------------------------------------------------------
# recreate that works keeps MAC, IP and what the user chose
# ---------------------------------------------------------------------------------------------


def test_recreate_keeps_mac_ip_cores_and_drops_only_the_named_disk(fresh, tmp_path):
    args = dict(auth(fresh), vmid=133, conversion="recreate", template=9000, allow_recreate=True, recreate_drop_disks=["scsi1"])
    before = fresh.vm(133)["config"]
    result, again = play(tmp_path, [("pve_vm_q35", args), ("pve_vm_q35", args)])
    assert not result.get("failed"), result
    assert result["backup"].startswith("local:backup/vzdump-qemu-133-")
    config = fresh.vm(133)["config"]
    assert config["net0"].split(",")[0] == before["net0"].split(",")[0]
    assert config["ipconfig0"] == before["ipconfig0"]
    assert str(config["cores"]) == before["cores"] and str(config["memory"]) == before["memory"]
    assert "scsi1" not in config and config["machine"] == "q35" and config["bios"] == "ovmf"
    assert again["changed"] is False, again
