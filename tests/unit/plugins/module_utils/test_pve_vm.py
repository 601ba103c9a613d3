# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pve_vm.VmService over a recording fake session: order of calls, and nothing written or stopped
before every input is proven."""

import copy

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import vm as pve_vm
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.config import config_from_pending

# VM 120 as Terraform left a k3s agent: i440fx, SeaBIOS, running on pve1
K3S = {
    "boot": "order=scsi0;ide2;net0", "cores": "4", "cpu": "host", "ide2": "local-lvm:vm-120-cloudinit,media=cdrom",
    "ipconfig0": "ip=192.168.1.120/24,gw=192.168.1.1", "memory": "8192", "name": "k3s-agent-1",
    "net0": "virtio=BC:24:11:5A:7E:01,bridge=vmbr0", "scsi0": "local-lvm:vm-120-disk-0,size=32G", "scsihw": "virtio-scsi-single",
    "digest": "d0",
}
# PVE GUI defaults for an OVMF VM: Secure-Boot efidisk0, viommu, a pinned machine version, extra hostpci entries
GUI_OVMF = dict(K3S, machine="pc-q35-9.2+pve1,viommu=intel", bios="ovmf",
                efidisk0="local-lvm:vm-120-disk-1,efitype=4m,ms-cert=2023,pre-enrolled-keys=1,size=4M",
                hostpci0="0000:00:02.0,pcie=1,driver=keep", hostpci1="0000:00:1f.3", args="-cpu host,kvm=off")


class FakeSession:
    """Answers like a PVE 9 node pve1; records every call; ``fail`` maps (method, path suffix) to errors to raise."""

    authid = "root@pam"

    def __init__(self, config, status="running", lock=None, user="root@pam", release="9.1", privileges=None):
        self.config = dict(config)
        self.status = status
        self.lock = lock
        self.authid = user
        self.release = release
        self.privileges = privileges
        self.calls = []
        self.fail = {}
        self.tasks = {}

    def _maybe_fail(self, method, path):
        for (m, suffix), errors in self.fail.items():
            if m == method and path.endswith(suffix) and errors:
                raise errors.pop(0)

    def get(self, path, /, **params):
        self.calls.append(("GET", path, params))
        self._maybe_fail("GET", path)
        if path.endswith("/status/current"):
            return {"status": self.status, "lock": self.lock}
        if path.endswith("/pending"):
            return [{"key": k, "value": v} for k, v in self.config.items()]
        if path.endswith("/config"):
            return dict(self.config)
        if path == "/nodes/pve1/storage":
            return [{"storage": "local", "content": "backup,iso", "active": 1, "enabled": 1},
                    {"storage": "local-lvm", "content": "images,rootdir", "active": 1, "enabled": 1},
                    {"storage": "nfs-down", "content": "images", "active": 0, "enabled": 1}]
        if path == "/nodes/pve1/status":
            return {"cpuinfo": {"cpus": 6}, "memory": {"total": 16 << 30}}
        if path == "/nodes/pve1/capabilities/qemu/machines":
            return [{"id": "pc-q35-9.2+pve1", "type": "q35", "version": "9.2"}, {"id": "pc-q35-9.2", "type": "q35", "version": "9.2"}]
        if path == "/cluster/mapping/pci":
            return [{"id": "igpu", "map": ["node=pve1,path=0000:00:02.0,id=8086:3e92"], "checks": []},
                    {"id": "elsewhere", "map": ["node=pve2,path=0000:00:02.0,id=8086:3e92"],
                     "checks": [{"severity": "warning", "message": "No mapping for node pve1."}]}]
        if path.endswith("/mdev"):
            return [{"type": "i915-GVTg_V5_4", "available": 1}, {"type": "i915-GVTg_V5_8", "available": 2}]
        if path == "/version":
            return {"release": self.release, "version": self.release + ".1"}
        if path == "/access/permissions":
            # {privilege: propagate bit}; a plain list means entries that propagate
            privileges = self.privileges if isinstance(self.privileges, dict) else {p: 1 for p in self.privileges or ()}
            return {params["path"]: dict(privileges)}
        if path.startswith("/nodes/pve1/tasks/"):
            return self.tasks.get(path.split("/")[4], {"status": "stopped", "exitstatus": "OK"})
        if path == "/nodes/pve1/hardware/pci":
            return [{"id": "0000:00:02.0", "vendor": "0x8086", "device": "0x3e92"}, {"id": "0000:00:1f.3", "vendor": "0x8086", "device": "0xa348"}]
        raise AssertionError("unexpected GET %s" % path)

    def vm_state(self, node, vmid):
        status = self.get("/nodes/%s/qemu/%s/status/current" % (node, vmid))
        config, pending = config_from_pending(self.get("/nodes/%s/qemu/%s/pending" % (node, vmid)))
        return {"status": status["status"], "lock": status.get("lock"), "config": config, "pending": pending}

    def vm_config(self, node, vmid):
        return config_from_pending(self.get("/nodes/%s/qemu/%s/pending" % (node, vmid)))

    def pci_devices(self, node):
        return self.get("/nodes/%s/hardware/pci" % node)

    def post(self, path, /, **params):
        self.calls.append(("POST", path, params))
        self._maybe_fail("POST", path)
        action = path.rsplit("/", 1)[-1]
        if action in ("shutdown", "stop"):
            self.status = "stopped"
        return "UPID:pve1:0001:0002:0003:qm%s:120:root@pam:" % action

    def put(self, path, /, **params):
        self.calls.append(("PUT", path, params))
        self._maybe_fail("PUT", path)
        for key in (params.get("delete") or "").split(","):
            self.config.pop(key, None)
        self.config.update({k: v for k, v in params.items() if k not in ("delete", "digest")})

    def wait_task(self, upid, timeout=600):
        self.calls.append(("WAIT", upid, {}))
        self._maybe_fail("WAIT", upid.split(":")[5])
        if upid.split(":")[5] == "qmstart":
            self.status = "running"
        return {"status": "stopped", "exitstatus": "OK"}

    def disruptive(self):
        return [c for c in self.calls if c[0] in ("POST", "PUT", "DELETE")]


def converge(session, p=None, hostpci=(), check_mode=False, start=True):
    service = pve_vm.VmService(session, shutdown_timeout=5)
    vm = service.find(120, None, "pve1")
    params = {"machine": "q35", "efidisk_storage": None, "efitype": "4m", "pre_enrolled_keys": None, "replace_efidisk": False}
    params.update(p or {})
    for key in pve_vm.Q35_EXTRA_KEYS:
        params.setdefault(key, None)
    wanted = pve_vm.desired_hostpci(session, list(hostpci), vm["node"], vm["config"])
    desired = pve_vm.q35_desired(params, vm["config"], wanted)
    return service, service.converge(vm, desired, check_mode, start=start, inputs=pve_vm.Q35_INPUTS)


def test_conversion_order_shutdown_one_write_with_digest_start():
    session = FakeSession(K3S)
    _service, steps = converge(session, {"efidisk_storage": "local-lvm"})
    assert [s["action"] for s in steps] == ["shutdown", "set_config", "start"]
    writes = session.disruptive()
    assert [w[1].rsplit("/", 1)[-1] for w in writes] == ["shutdown", "config", "start"]
    put = writes[1][2]
    assert put["digest"] == "d0" and put["machine"] == "q35" and put["bios"] == "ovmf" and put["efidisk0"].startswith("local-lvm:1")
    # local-lvm holds the running VM's scsi0: that proves it without a storage read
    assert not any(c[1] == "/nodes/pve1/storage" for c in session.calls)


def test_storage_is_read_before_the_shutdown_when_no_running_disk_proves_it():
    session = FakeSession(dict(K3S, scsi0="other:vm-120-disk-0,size=32G"))
    converge(session, {"efidisk_storage": "local-lvm"})
    first_post = session.calls.index(session.disruptive()[0])
    assert ("GET", "/nodes/pve1/storage", {}) in session.calls[:first_post]


def test_gui_made_ovmf_vm_needs_nothing_with_defaults():
    session = FakeSession(GUI_OVMF)
    _service, steps = converge(session)
    assert steps == [] and session.disruptive() == []


@pytest.mark.parametrize("option, value, key", [
    ("cores", 6, "cores"), ("memory", 4096, "memory"), ("ipconfig0", "ip=dhcp", "ipconfig0"),
])
def test_narrow_request_on_gui_vm_changes_only_its_key(option, value, key):
    session = FakeSession(GUI_OVMF)
    _service, steps = converge(session, {option: value})
    write = [s for s in steps if s["action"] == "set_config"]
    assert len(write) == 1 and list(write[0]["config"]) == [key]


def test_hostpci_entry_keeps_live_options_and_other_slots():
    session = FakeSession(GUI_OVMF)
    _service, steps = converge(session, hostpci=[{"slot": 0, "host": "0000:00:02.0", "rombar": False}])
    write = [s for s in steps if s["action"] == "set_config"][0]["config"]
    assert write == {"hostpci0": "0000:00:02.0,pcie=1,driver=keep,rombar=0"}


BAD = [
    ({"efidisk_storage": "nope"}, "efidisk_storage", "does not exist"),
    ({"efidisk_storage": "local"}, "efidisk_storage", "does not take disk images"),
    ({"efidisk_storage": "nfs-down"}, "efidisk_storage", "not active"),
    ({"efidisk_storage": "local-lvm", "cores": 0}, "cores", "at least 1"),
    ({"efidisk_storage": "local-lvm", "cores": 64}, "cores", "CPUs of node"),
    ({"efidisk_storage": "local-lvm", "memory": 1}, "memory", "at least 16"),
    ({"efidisk_storage": "local-lvm", "memory": 1 << 20}, "memory", "MiB of memory"),
    ({"efidisk_storage": "local-lvm", "machine": "pc-q35-10.1"}, "machine", "does not offer"),
    ({"efidisk_storage": "local-lvm", "ipconfig0": "ip=192.168.1.300/24"}, "ipconfig0", "IPv4"),
    ({"efidisk_storage": "local-lvm", "ipconfig0": "address=1.2.3.4"}, "ipconfig0", "does not know"),
    ({"efidisk_storage": "local-lvm", "nameserver": "dns.example"}, "nameserver", "IP addresses"),
    ({"efidisk_storage": "local-lvm", "sshkeys": "not a key"}, "sshkeys", "OpenSSH"),
]


@pytest.mark.parametrize("p, option, words", BAD)
def test_bad_inputs_are_refused_before_anything_is_disrupted(p, option, words):
    session = FakeSession(K3S)
    with pytest.raises(PassthroughError) as info:
        converge(session, p)
    assert info.value.details["option"] == option and words in info.value.message and info.value.fix
    assert session.disruptive() == []


@pytest.mark.parametrize("entry, words", [
    ({"mapping": "missing"}, "does not exist"),
    ({"mapping": "elsewhere"}, "no valid entry for node pve1"),
    ({"host": "0000:00:02.0", "mdev": "i915-GVTg_V5_1"}, "does not offer mdev type"),
    ({"host": "0000:00:02.0", "romfile": "../../etc/shadow"}, "plain file name"),
    ({"host": "0000:00:05.0"}, "No PCI device"),
])
def test_bad_hostpci_inputs_refused_before_the_shutdown(entry, words):
    session = FakeSession(dict(K3S, machine="q35", bios="ovmf", efidisk0="local-lvm:vm-120-disk-1,efitype=4m"))
    with pytest.raises(PassthroughError) as info:
        converge(session, hostpci=[dict(entry, slot=0)])
    assert words in info.value.message
    assert session.disruptive() == []


def test_locked_vm_is_refused_before_anything():
    session = FakeSession(K3S, lock="backup")
    with pytest.raises(PassthroughError) as info:
        converge(session, {"efidisk_storage": "local-lvm"})
    assert "locked (backup)" in info.value.message and "qm unlock" in info.value.fix
    assert session.disruptive() == []


def test_token_without_hwtype_is_refused_before_the_restart():
    session = FakeSession(dict(K3S, machine="q35", bios="ovmf", efidisk0="local-lvm:vm-120-disk-1,efitype=4m"),
                          user="automation@pve!ansible", privileges=("VM.PowerMgmt", "VM.Config.Options", "Mapping.Use"))
    with pytest.raises(PassthroughError) as info:
        converge(session, hostpci=[{"slot": 0, "mapping": "igpu", "pcie": True}])
    assert "VM.Config.HWType" in info.value.message and info.value.details["missing"] == ["VM.Config.HWType"]
    assert session.disruptive() == []


@pytest.mark.parametrize("propagate", [0, 1])
def test_token_granted_by_an_entry_without_propagate_is_not_refused(propagate):
    # GET /access/permissions: {path: {privilege: propagate bit}}; 0 is still a grant (ACL entry with propagate off)
    base = dict(K3S, machine="q35", bios="ovmf", efidisk0="local-lvm:vm-120-disk-1,efitype=4m")
    privileges = {p: propagate for p in ("VM.Audit", "VM.PowerMgmt", "VM.Config.HWType", "Mapping.Use")}
    session = FakeSession(base, user="automation@pve!ansible", privileges=privileges)
    _service, steps = converge(session, hostpci=[{"slot": 0, "mapping": "igpu", "pcie": True}])
    assert [s["action"] for s in steps] == ["shutdown", "set_config", "start"]
    assert steps[1]["config"] == {"hostpci0": "mapping=igpu,pcie=1"} and session.status == "running"


def test_token_power_with_privilege_from_an_entry_without_propagate():
    session = FakeSession(K3S, user="automation@pve!ansible", privileges={"VM.PowerMgmt": 0, "VM.Audit": 0})
    service = pve_vm.VmService(session, shutdown_timeout=5)
    steps = service.power(service.find(120, None, "pve1"), "stopped")
    assert [s["action"] for s in steps] == ["shutdown"] and session.status == "stopped"


@pytest.mark.parametrize("privileges", [{"VM.Audit": 0, "VM.Config.Options": 0}, {"VM.Audit": 1, "VM.Config.Options": 1}, {}])
def test_token_privilege_not_listed_is_refused_whatever_the_others_bits(privileges):
    session = FakeSession(K3S, user="automation@pve!ansible", privileges=privileges)
    service = pve_vm.VmService(session, shutdown_timeout=5)
    with pytest.raises(PassthroughError) as info:
        service.power(service.find(120, None, "pve1"), "stopped")
    assert info.value.details["missing"] == ["VM.PowerMgmt"] and "/vms/120" in info.value.message
    assert info.value.details["option"] == "state" and "grant VM.PowerMgmt" in info.value.fix
    assert session.disruptive() == []


def test_token_romfile_rule_follows_the_release():
    base = dict(K3S, machine="q35", bios="ovmf", efidisk0="local-lvm:vm-120-disk-1,efitype=4m")
    privileges = ("VM.PowerMgmt", "VM.Config.HWType", "Mapping.Use")
    new = FakeSession(base, user="automation@pve!ansible", release="9.2", privileges=privileges)
    with pytest.raises(PassthroughError) as info:
        converge(new, hostpci=[{"slot": 0, "mapping": "igpu", "romfile": "vbios.rom"}])
    assert "only root@pam can set 'romfile'" in info.value.message and new.disruptive() == []
    old = FakeSession(base, user="automation@pve!ansible", release="9.1", privileges=privileges)
    _service, steps = converge(old, hostpci=[{"slot": 0, "mapping": "igpu", "romfile": "vbios.rom"}])
    assert steps[1]["config"] == {"hostpci0": "mapping=igpu,romfile=vbios.rom"}


def test_transient_error_while_waiting_for_shutdown_is_retried_without_hard_stop(monkeypatch):
    monkeypatch.setattr(pve_vm, "WAIT_RETRY_PAUSE", 0)
    session = FakeSession(K3S)
    session.fail[("WAIT", "qmshutdown")] = [PassthroughError("Cannot reach the Proxmox API", details={"transient": True})] * 2
    service, _steps = converge(session, {"efidisk_storage": "local-lvm"})
    assert not any(c[1].endswith("/status/stop") for c in session.calls)
    assert service.power_log == ["shutdown", "start"] and service.warnings == []


def test_shutdown_task_error_before_the_timeout_is_no_hard_stop(monkeypatch):
    session = FakeSession(K3S)
    # the task fails at once (e.g. a lock) and the VM still runs
    session.fail[("WAIT", "qmshutdown")] = [PassthroughError("task failed", details={"upid": "u", "exitstatus": "VM is locked (backup)"})]
    original_post = session.post

    def post(path, /, **params):
        upid = original_post(path, **params)
        if path.endswith("/shutdown"):
            session.status = "running"
        return upid

    monkeypatch.setattr(session, "post", post)
    with pytest.raises(PassthroughError) as info:
        converge(session, {"efidisk_storage": "local-lvm"})
    assert "before shutdown_timeout" in info.value.message and "VM is locked (backup)" in info.value.message
    assert not any(c[1].endswith("/status/stop") for c in session.calls)
    assert not any(c[0] == "PUT" for c in session.calls)


def test_hard_stop_only_after_the_timeout_really_passed(monkeypatch):
    session = FakeSession(K3S)
    clock = [1000.0]
    monkeypatch.setattr(pve_vm.time, "monotonic", lambda: clock[0])

    original_wait, original_post = session.wait_task, session.post

    def wait_task(upid, timeout=600):
        if ":qmshutdown:" in upid:
            clock[0] += 6  # shutdown_timeout is 5 s
            raise PassthroughError("task failed", details={"upid": upid, "exitstatus": "VM quit/powerdown failed - got timeout"})
        return original_wait(upid, timeout)

    def post(path, /, **params):
        upid = original_post(path, **params)
        if path.endswith("/shutdown"):
            session.status = "running"  # the guest ignores ACPI
        return upid

    monkeypatch.setattr(session, "wait_task", wait_task)
    monkeypatch.setattr(session, "post", post)
    service, _steps = converge(session, {"efidisk_storage": "local-lvm"})
    assert service.power_log == ["stop", "start"]
    assert "still running 6 s after the shutdown request" in service.warnings[0] and "got timeout" in service.warnings[0]


def test_start_failure_leaves_a_mark_and_the_next_run_starts_the_vm():
    session = FakeSession(K3S)
    session.fail[("WAIT", "qmstart")] = [PassthroughError("task failed", details={"upid": "u", "exitstatus": "no such device 0000:00:02.0"})]
    with pytest.raises(PassthroughError) as info:
        converge(session, {"efidisk_storage": "local-lvm"})
    assert "no such device" in info.value.message and info.value.details["start_pending"] is True
    assert session.status == "stopped"
    assert pve_vm.start_pending(session.config) == "no such device 0000:00:02.0"
    # the next run: nothing else to change, but the VM is started and the mark removed; never "ok"
    session.calls = []
    _service, steps = converge(session, {"efidisk_storage": "local-lvm"})
    assert [s["action"] for s in steps] == ["start", "clear_start_mark"]
    assert session.status == "running" and pve_vm.start_pending(session.config) is None
    # the third run does nothing
    session.calls = []
    assert converge(session, {"efidisk_storage": "local-lvm"})[1] == [] and session.disruptive() == []


def test_check_mode_reads_only():
    session = FakeSession(K3S)
    _service, steps = converge(session, {"efidisk_storage": "local-lvm"}, check_mode=True)
    assert steps and session.disruptive() == []


def test_start_marks_round_trip():
    text = pve_vm.with_start_mark("k3s agent\n", "qmstart failed")
    assert pve_vm.start_pending({"description": text}) == "qmstart failed"
    assert pve_vm.with_start_mark(text) == "k3s agent"
    assert pve_vm.start_pending({"description": "k3s agent"}) is None


def test_locate_refuses_a_wrong_node_or_name():
    session = FakeSession(K3S)
    session.get = lambda path, /, **params: [{"vmid": 120, "node": "pve1", "name": "k3s-agent-1", "type": "qemu"}]
    service = pve_vm.VmService(session)
    with pytest.raises(PassthroughError) as info:
        service.locate(120, "k3s-agent-1", "pve2")
    assert info.value.details["option"] == "node" and "node: pve1" in info.value.fix
    with pytest.raises(PassthroughError) as info:
        service.locate(120, "other", None)
    assert info.value.details["option"] == "name"


def test_data_disks_and_carried_settings_of_a_recreate():
    config = dict(K3S, scsi1="local-lvm:vm-120-disk-3,size=100G")
    assert pve_vm.data_disks(config) == ["scsi0", "scsi1"]
    recreate = pve_vm.Recreate(pve_vm.VmService(FakeSession(K3S)), {k: None for k in pve_vm.CARRIED_KEYS})
    kept = recreate.carried({"config": copy.deepcopy(config)})
    assert kept == {"cores": "4", "memory": "8192", "ipconfig0": "ip=192.168.1.120/24,gw=192.168.1.1"}
    assert "qmrestore local:backup/x.vma.zst 120" in pve_vm.restore_hint(120, "local:backup/x.vma.zst", "pve1")
