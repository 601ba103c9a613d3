"""The simulator driven through proxmoxer (and plain requests where proxmoxer hides the HTTP details)."""

import json
import os
import subprocess
import sys
import time

import pytest
import requests
from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.core import AuthenticationError

from pvesim import rules
from pvesim.fixture import running_simulator
from pvesim.state import default_state

TOKEN_USER = "automation@pve"
TOKEN_NAME = "ansible"
TOKEN_SECRET = "0b2f8f4e-5d1c-4c53-9d0f-6f1b1c2a3e4d"
ONLY_ROOT_RAW = "only root can set 'hostpci0' config for non-mapped devices"


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory):
    """One certificate for the whole run (generating it is the slow part of starting a simulator)."""
    return tmp_path_factory.mktemp("pvesim-cert")


@pytest.fixture
def sim(tmp_path, cert_dir):
    """A fresh simulator per test."""
    with running_simulator(tmp_path, cert_dir=cert_dir) as handle:
        yield handle


def root_api(handle):
    """proxmoxer with root@pam password (ticket) auth, verifying with the simulator's CA."""
    return ProxmoxAPI("127.0.0.1", port=handle.port, user="root@pam", password="rootpass", verify_ssl=handle.ca_path, timeout=10)


def token_api(handle, user=TOKEN_USER, name=TOKEN_NAME, secret=TOKEN_SECRET):
    """proxmoxer with API token auth."""
    return ProxmoxAPI("127.0.0.1", port=handle.port, user=user, token_name=name, token_value=secret, verify_ssl=handle.ca_path,
                      timeout=10)


def wait_task(api, upid, timeout=10.0):
    """Poll the task until it stopped; return its status."""
    node = rules.upid_decode(upid)["node"]
    end = time.time() + timeout
    while time.time() < end:
        status = api.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped":
            return status
        time.sleep(0.01)
    raise AssertionError("task %s did not stop" % upid)


def create_vm(api, vmid=120, node="pve1", **extra):
    """Create a small VM and wait for it."""
    params = {"vmid": vmid, "name": "k3s-agent-%d" % vmid, "memory": 4096, "cores": 2, "scsi0": "local-lvm:32",
              "net0": "virtio,bridge=vmbr0", "scsihw": "virtio-scsi-single"}
    params.update(extra)
    status = wait_task(api, api.nodes(node).qemu.post(**params))
    assert status["exitstatus"] == "OK", status
    return api.nodes(node).qemu(vmid)


def start_vm(api, vm_resource):
    """Start and return the task status."""
    return wait_task(api, vm_resource.status.start.post())


def add_mapping(api, mid="igpu", node="pve1", **overrides):
    """A mapping for the UHD 630 with all the properties the node reports."""
    entry = "node=%s,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1" % node
    params = {"id": mid, "map": [overrides.pop("entry", entry)]}
    params.update(overrides)
    api.cluster.mapping.pci.post(**params)


# ------------------------------------------------------------------------------------------------ auth


def test_ticket_auth_reads_version_and_nodes(sim):
    api = root_api(sim)
    assert api.version.get()["release"] == sim.pve_version
    assert [n["node"] for n in api.nodes.get()] == ["pve1", "pve2", "pve3"]
    with pytest.raises(AuthenticationError):
        ProxmoxAPI("127.0.0.1", port=sim.port, user="root@pam", password="wrong", verify_ssl=sim.ca_path)


def test_token_authenticates_as_token_id_and_owns_its_tasks(sim):
    api = token_api(sim)
    upid = api.nodes("pve1").qemu.post(vmid=130, name="t", memory=1024)
    assert rules.upid_decode(upid)["user"] == "automation@pve!ansible"
    status = wait_task(api, upid)
    assert status["exitstatus"] == "OK"
    assert status["user"] == "automation@pve" and status["tokenid"] == "ansible"
    with pytest.raises(ResourceException) as err:
        token_api(sim, secret="not-the-secret").version.get()
    assert err.value.status_code == 401 and "Authentication failed!" in str(err.value)


def test_privsep_token_gets_only_the_intersection(sim):
    def add_token(data):
        data["access"]["users"]["automation@pve"]["tokens"]["narrow"] = {"secret": "s3cret", "privsep": 1}
        data["access"]["acl"].append({"path": "/vms/120", "ugid": "automation@pve!narrow", "roleid": "PVEAuditor", "propagate": 1})

    create_vm(root_api(sim))
    sim.update(add_token)
    narrow = token_api(sim, name="narrow", secret="s3cret")
    assert narrow.nodes("pve1").qemu(120).config.get()["name"] == "k3s-agent-120"
    with pytest.raises(ResourceException) as err:
        narrow.nodes("pve1").qemu(120).config.put(cores=4)
    assert err.value.status_code == 403
    assert "Permission check failed (/vms/120, VM.Config" in str(err.value)


def test_writes_with_a_ticket_need_the_csrf_header(sim):
    url = sim.api_url + "/access/ticket"
    login = requests.post(url, data={"username": "root@pam", "password": "rootpass"}, verify=sim.ca_path, timeout=10).json()["data"]
    cookies = {"PVEAuthCookie": login["ticket"]}
    get = requests.get(sim.api_url + "/cluster/nextid", cookies=cookies, verify=sim.ca_path, timeout=10)
    assert get.status_code == 200 and get.json() == {"data": "100"}
    target = sim.api_url + "/nodes/pve1/qemu"
    without = requests.post(target, data={"vmid": 101}, cookies=cookies, verify=sim.ca_path, timeout=10)
    assert without.status_code == 401 and without.reason == "Permission denied - invalid csrf token"
    with_csrf = requests.post(target, data={"vmid": 101}, cookies=cookies, headers={"CSRFPreventionToken": login["CSRFPreventionToken"]},
                              verify=sim.ca_path, timeout=10)
    assert with_csrf.status_code == 200 and with_csrf.json()["data"].startswith("UPID:pve1:")
    anonymous = requests.get(sim.api_url + "/version", verify=sim.ca_path, timeout=10)
    assert anonymous.status_code == 401 and anonymous.reason == "No ticket"
    token_header = {"Authorization": "PVEAPIToken=%s!%s=%s" % (TOKEN_USER, TOKEN_NAME, TOKEN_SECRET)}
    token_write = requests.post(target, data={"vmid": 102}, headers=token_header, verify=sim.ca_path, timeout=10)
    assert token_write.status_code == 200


# ------------------------------------------------------------------------------------------------ /access/permissions


def scoped_user(data, user_propagate=0, token_propagate=0, privsep=1):
    """scoped@pve with PVEVMUser on /vms/120 only, and its token ``ansible`` (privsep: its own entry, same role)."""
    data["access"]["users"]["scoped@pve"] = {"password": "scopedpass", "enable": 1, "groups": [],
                                             "tokens": {"ansible": {"secret": "scoped-secret", "privsep": privsep}}}
    data["access"]["acl"].append({"path": "/vms/120", "ugid": "scoped@pve", "roleid": "PVEVMUser", "propagate": user_propagate})
    data["access"]["acl"].append({"path": "/vms/120", "ugid": "scoped@pve!ansible", "roleid": "PVEVMUser", "propagate": token_propagate})


def test_permissions_value_is_the_propagate_bit_not_a_grant(sim):
    # pve-access-control src/PVE/API2/AccessControl.pm permissions: 'Map of "path" => (Map of "privilege" => "propagate
    # boolean")'; src/PVE/RPCEnvironment.pm $compile_acl_path: a privilege is set when defined, its value the propagate flag
    create_vm(root_api(sim))
    create_vm(root_api(sim), vmid=121)
    sim.update(scoped_user)
    scoped = token_api(sim, user="scoped@pve", name="ansible", secret="scoped-secret")
    here = scoped.access.permissions.get(path="/vms/120")
    assert set(here) == {"/vms/120"} and here["/vms/120"]["VM.PowerMgmt"] == 0
    assert set(here["/vms/120"].values()) == {0} and set(here["/vms/120"]) == rules.builtin_roles()["PVEVMUser"]
    # a propagate-0 entry grants on its own path only: a path below or beside it is answered, empty
    assert scoped.access.permissions.get(path="/vms/121") == {"/vms/121": {}}
    tree = scoped.access.permissions.get()
    assert set(tree) == {"/vms/120"}
    # what the value says is informational: the grant itself works
    assert wait_task(scoped, scoped.nodes("pve1").qemu(120).status.start.post())["exitstatus"] == "OK"
    with pytest.raises(ResourceException) as err:
        scoped.nodes("pve1").qemu(121).status.start.post()
    assert err.value.status_code == 403 and "(/vms/121, VM.PowerMgmt)" in str(err.value)


@pytest.mark.parametrize(("user_propagate", "token_propagate", "privsep", "value"),
                         [(1, 1, 1, 1), (1, 0, 1, 0), (0, 1, 1, 0), (1, 0, 0, 1), (0, 1, 0, 0)])
def test_permissions_of_a_token_combine_the_propagate_bits(sim, user_propagate, token_propagate, privsep, value):
    # RPCEnvironment.pm: privsep token = privileges both have, "$user_privs->{$_} && $privs->{$_}"; no privsep = the user's
    sim.update(lambda data: scoped_user(data, user_propagate, token_propagate, privsep))
    scoped = token_api(sim, user="scoped@pve", name="ansible", secret="scoped-secret")
    privileges = scoped.access.permissions.get(path="/vms/120")["/vms/120"]
    assert privileges and set(privileges.values()) == {value}


def test_permissions_of_root_and_of_propagated_entries_are_1(sim):
    root = root_api(sim).access.permissions.get(path="/vms/120")["/vms/120"]
    assert set(root) == rules.ALL_PRIVILEGES and set(root.values()) == {1}
    token = token_api(sim).access.permissions.get(path="/vms/120")["/vms/120"]  # PVEVMAdmin on /vms, propagate 1
    assert token["VM.Config.HWType"] == 1 and set(token.values()) == {1}


def test_permissions_union_of_roles_propagates_when_any_role_does(sim):
    def two_entries(data):
        scoped_user(data, privsep=0)
        data["access"]["acl"].append({"path": "/vms/120", "ugid": "scoped@pve", "roleid": "PVEVMAdmin", "propagate": 1})

    sim.update(two_entries)
    scoped = token_api(sim, user="scoped@pve", name="ansible", secret="scoped-secret")
    privileges = scoped.access.permissions.get(path="/vms/120")["/vms/120"]
    # VM.PowerMgmt is in both roles (one propagates), VM.Config.HWType only in PVEVMAdmin: both 1
    assert privileges["VM.PowerMgmt"] == 1 and privileges["VM.Config.HWType"] == 1


# ------------------------------------------------------------------------------------------------ hostpci permissions


def test_raw_hostpci_is_root_only_on_create_update_and_delete(sim):
    root, token = root_api(sim), token_api(sim)
    with pytest.raises(ResourceException) as err:
        token.nodes("pve1").qemu.post(vmid=121, hostpci0="0000:00:02.0")
    assert err.value.status_code == 500 and str(err.value).endswith(ONLY_ROOT_RAW)
    assert sim.vm(121) is None

    vm_root = create_vm(root, hostpci0="0000:00:02.0,pcie=1", machine="q35")
    assert vm_root.config.get()["hostpci0"] == "0000:00:02.0,pcie=1"
    vm_token = token.nodes("pve1").qemu(120)
    add_mapping(root)
    before = sim.snapshot()["vms"]["120"]
    attempts = (
        ({"hostpci1": "0000:00:1f.3"}, ONLY_ROOT_RAW.replace("hostpci0", "hostpci1")),  # new raw device
        ({"hostpci0": "mapping=igpu,pcie=1"}, ONLY_ROOT_RAW),  # replacing a raw device: the old value is checked
        ({"delete": "hostpci0"}, ONLY_ROOT_RAW),  # removing a raw device
    )
    for params, text in attempts:
        with pytest.raises(ResourceException) as err:
            vm_token.config.put(**params)
        assert err.value.status_code == 500 and str(err.value).endswith(text)
    assert sim.snapshot()["vms"]["120"] == before
    vm_root.config.put(delete="hostpci0")
    assert "hostpci0" not in vm_root.config.get()


def test_mapped_hostpci_needs_mapping_use(sim):
    root, token = root_api(sim), token_api(sim)
    create_vm(root, machine="q35")
    add_mapping(root)
    vm_token = token.nodes("pve1").qemu(120)
    vm_token.config.put(hostpci0="mapping=igpu,pcie=1")
    assert vm_token.config.get()["hostpci0"] == "mapping=igpu,pcie=1"
    # romfile is root@pam-only from PVE 9.2 (qemu-server 9.2.6) on
    sim.update(lambda data: data["version"].update(release="9.2", version="9.2.1"))
    with pytest.raises(ResourceException) as err:
        vm_token.config.put(hostpci0="mapping=igpu,romfile=vbios.bin")
    assert err.value.status_code == 400 and err.value.errors == {"hostpci0": "only root@pam can set 'romfile' option"}
    sim.update(lambda data: data["version"].update(release="9.1", version="9.1.4"))
    vm_token.config.put(hostpci0="mapping=igpu,romfile=vbios.bin")
    vm_token.config.put(delete="hostpci0")

    sim.update(lambda data: data["access"].__setitem__("acl", [e for e in data["access"]["acl"] if e["path"] != "/mapping/pci"]))
    with pytest.raises(ResourceException) as err:
        vm_token.config.put(hostpci0="mapping=igpu")
    assert err.value.status_code == 403 and "Permission check failed (/mapping/pci/igpu, Mapping.Use)" in str(err.value)


def test_other_option_privileges(sim):
    root = root_api(sim)
    create_vm(root)
    sim.update(lambda data: data["access"]["acl"].__setitem__(1, {"path": "/vms", "ugid": TOKEN_USER, "roleid": "PVEVMUser", "propagate": 1}))
    vm = token_api(sim).nodes("pve1").qemu(120)
    for key, value, priv in (("machine", "q35", "VM.Config.HWType"), ("bios", "ovmf", "VM.Config.Options")):
        with pytest.raises(ResourceException) as err:
            vm.config.put(**{key: value})
        assert err.value.status_code == 403 and "(/vms/120, %s)" % priv in str(err.value)
    vm.config.put(ciuser="ubuntu")
    with pytest.raises(ResourceException) as err:
        vm.config.put(args="-cpu host")
    assert str(err.value).endswith("only root can set 'args' config")
    root_api(sim).nodes("pve1").qemu(120).config.put(args="-cpu host")
    assert vm.config.get()["args"] == "-cpu host"


# ------------------------------------------------------------------------------------------------ config, digest, tasks


def test_config_digest_conflict_and_parameter_errors(sim):
    vm = create_vm(root_api(sim))
    digest = vm.config.get()["digest"]
    assert len(digest) == 40
    vm.config.put(cores=4, digest=digest)
    with pytest.raises(ResourceException) as err:
        vm.config.put(cores=6, digest=digest)
    assert err.value.status_code == 500 and "checksum mismatch (file change by other user?)" in str(err.value)
    with pytest.raises(ResourceException) as err:
        vm.config.put(colour="blue")
    assert err.value.status_code == 400 and "colour" in err.value.errors
    with pytest.raises(ResourceException) as err:
        vm.config.put(hostpci0="0000:00:02.0,speed=fast")
    assert "invalid key in comma-separated list property: speed" in err.value.errors["hostpci0"]
    with pytest.raises(ResourceException) as err:
        vm.config.put(machine="pc", delete="machine")
    assert "you can't use '-machine' and -delete machine' at the same time" in err.value.errors["delete"]
    assert vm.config.get()["cores"] == 4
    refused = sim.schema_violations(clear=True)  # the API schema refuses the first two, the handler the third
    assert [sorted(v["errors"]) for v in refused] == [["colour"], ["hostpci0"]]


def test_async_config_returns_upid_and_task_log(sim):
    api = root_api(sim)
    vm = create_vm(api)
    upid = vm.config.post(description="gpu node", delete="tags")
    parts = rules.upid_decode(upid)
    assert parts["node"] == "pve1" and parts["type"] == "qmconfig" and parts["id"] == "120" and parts["user"] == "root@pam"
    assert upid == rules.upid_encode(parts["node"], parts["pid"], parts["pstart"], parts["starttime"], "qmconfig", "120", "root@pam")
    status = wait_task(api, upid)
    assert status["status"] == "stopped" and status["exitstatus"] == "WARNINGS: 1"
    log = api.nodes("pve1").tasks(upid).log.get()
    assert log[-1]["t"] == "TASK WARNINGS: 1"
    assert any("cannot delete 'tags' - not set in current configuration!" in line["t"] for line in log)
    assert vm.config.get()["description"] == "gpu node"


def test_failing_task_reports_the_error_text(sim):
    create_vm(root_api(sim))
    token = token_api(sim)
    upid = token.nodes("pve1").qemu(120).config.post(hostpci0="0000:00:02.0")
    status = wait_task(token, upid)
    assert status["exitstatus"] == ONLY_ROOT_RAW
    assert rules.task_status_is_error(status["exitstatus"])
    assert token.nodes("pve1").tasks(upid).log.get()[-1]["t"] == "TASK ERROR: " + ONLY_ROOT_RAW


def test_vm_lock_from_backup_blocks_other_operations(sim):
    api = root_api(sim)
    vm = create_vm(api)
    sim.set_task_duration(0.4, "vzdump")
    upid = api.nodes("pve1").vzdump.post(vmid=120, storage="local", compress="zstd", mode="snapshot")
    time.sleep(0.1)
    assert vm.config.get()["lock"] == "backup"
    with pytest.raises(ResourceException) as err:
        vm.config.put(cores=8)
    assert "VM is locked (backup)" in str(err.value)
    assert start_vm(api, vm)["exitstatus"] == "VM is locked (backup)"
    assert wait_task(api, upid)["exitstatus"] == "OK"
    assert "lock" not in vm.config.get()
    backups = api.nodes("pve1").storage("local").content.get(content="backup")
    assert len(backups) == 1 and backups[0]["vmid"] == 120 and backups[0]["volid"].startswith("local:backup/vzdump-qemu-120-")
    assert backups[0]["volid"].endswith(".vma.zst") and backups[0]["subtype"] == "qemu"


# ------------------------------------------------------------------------------------------------ pending and start checks


def test_running_vm_keeps_hardware_changes_pending_until_restart(sim):
    api = root_api(sim)
    vm = create_vm(api)
    assert start_vm(api, vm)["exitstatus"] == "OK"
    vm.config.put(machine="q35", bios="ovmf", name="renamed", hostpci0="0000:00:02.0,pcie=1", efidisk0="local-lvm:1,efitype=4m")
    current = vm.config.get(current=1)
    assert "machine" not in current and "bios" not in current and current["name"] == "renamed"
    pending = {item["key"]: item for item in vm.pending.get()}
    assert pending["machine"]["pending"] == "q35" and pending["bios"]["pending"] == "ovmf"
    assert pending["hostpci0"]["pending"] == "0000:00:02.0,pcie=1" and "efidisk0" in pending
    assert vm.config.get()["machine"] == "q35"
    assert pending["digest"] == {"key": "digest", "value": vm.config.get()["digest"]}
    status = wait_task(api, vm.status.reboot.post())
    assert status["exitstatus"] == "OK"
    assert sim.wait_tasks()
    after = vm.config.get(current=1)
    assert after["machine"] == "q35" and after["bios"] == "ovmf" and after["hostpci0"] == "0000:00:02.0,pcie=1"
    assert vm.status.current.get()["status"] == "running"
    assert [item for item in vm.pending.get() if "pending" in item or "delete" in item] == []


def test_pending_is_applied_at_start_and_on_a_stopped_vm_at_once(sim):
    api = root_api(sim)
    vm = create_vm(api)
    vm.config.put(cores=3)
    assert vm.config.get(current=1)["cores"] == 3
    sim.update(lambda data: data["vms"]["120"]["pending"].update({"machine": "q35", "delete": "scsihw"}))
    assert vm.config.get(current=1).get("machine") is None
    assert start_vm(api, vm)["exitstatus"] == "OK"
    current = vm.config.get(current=1)
    assert current["machine"] == "q35" and "scsihw" not in current


def test_start_checks(sim):
    api = root_api(sim)
    vm = create_vm(api, hostpci0="0000:00:02.0,pcie=1")
    status = start_vm(api, vm)
    assert status["exitstatus"].startswith("q35 machine model is not enabled")
    assert vm.status.current.get()["status"] == "stopped"

    vm.config.put(machine="q35")
    sim.update(lambda data: data["nodes"]["pve1"].__setitem__("iommu_present", False))
    assert start_vm(api, vm)["exitstatus"] == "cannot prepare PCI pass-through, IOMMU not present"
    sim.update(lambda data: data["nodes"]["pve1"].__setitem__("iommu_present", True))

    vm.config.put(hostpci1="0000:05:00.0")
    assert start_vm(api, vm)["exitstatus"] == "no PCI device found for '0000:05:00.0'"
    vm.config.put(delete="hostpci1")
    assert start_vm(api, vm)["exitstatus"] == "OK"

    other = create_vm(api, vmid=121, machine="q35", hostpci0="00:02.0")
    assert start_vm(api, other)["exitstatus"] == "PCI device '0000:00:02.0' already in use by VMID '120'"
    wait_task(api, vm.status.stop.post())
    assert start_vm(api, other)["exitstatus"] == "OK"


def test_mapping_is_validated_against_the_node_at_start(sim):
    api = root_api(sim)
    add_mapping(api, mid="incomplete", entry="node=pve1,path=0000:00:02.0,id=8086:3e92")
    add_mapping(api, mid="igpu")
    vm = create_vm(api, machine="q35", hostpci0="mapping=incomplete,pcie=1")
    text = start_vm(api, vm)["exitstatus"]
    assert text.startswith("PCI device mapping invalid (hardware probably changed): missing expected property")
    vm2 = create_vm(api, vmid=122, node="pve2", machine="q35", hostpci0="mapping=igpu,pcie=1")
    assert start_vm(api, vm2)["exitstatus"] == "PCI device mapping not found for 'igpu'"
    vm.config.put(hostpci0="mapping=igpu,pcie=1")
    assert start_vm(api, vm)["exitstatus"] == "OK"


# ------------------------------------------------------------------------------------------------ disks, destroy, clone


def test_efidisk_allocation_creates_a_volume_and_disks_survive_edits(sim):
    api = root_api(sim)
    vm = create_vm(api)
    vm.config.put(bios="ovmf", machine="q35", efidisk0="local-lvm:1,efitype=4m,pre-enrolled-keys=1")
    efidisk = vm.config.get()["efidisk0"]
    ms_cert = "ms-cert=2023k," if sim.pve_version == "9.1" else ""  # PVE 9 records the CA the keys came with
    assert efidisk == "local-lvm:vm-120-disk-1,efitype=4m,%spre-enrolled-keys=1,size=4M" % ms_cert
    volumes = {v["volid"]: v for v in api.nodes("pve1").storage("local-lvm").content.get(vmid=120)}
    assert set(volumes) == {"local-lvm:vm-120-disk-0", "local-lvm:vm-120-disk-1"}
    assert volumes["local-lvm:vm-120-disk-1"]["size"] == 4 * 1024 * 1024
    vm.config.put(scsi0="local-lvm:8")
    conf = vm.config.get()
    assert conf["unused0"] == "local-lvm:vm-120-disk-0" and conf["scsi0"].startswith("local-lvm:vm-120-disk-2,")
    wait_task(api, vm.resize.put(disk="scsi0", size="+2G"))
    assert "size=10G" in vm.config.get()["scsi0"]
    assert wait_task(api, vm.resize.put(disk="scsi0", size="4G"))["exitstatus"] == "shrinking disks is not supported"


def test_destroy_removes_owned_volumes(sim):
    api = root_api(sim)
    vm = create_vm(api)
    vm.config.put(efidisk0="local-lvm:1")
    sim.update(lambda data: data["volumes"].append({"volid": "local-lvm:vm-120-disk-9", "storage": "local-lvm", "node": "pve1",
                                                    "vmid": 120, "size": 1 << 30, "format": "raw", "content": "images"}))
    assert start_vm(api, vm)["exitstatus"] == "OK"
    with pytest.raises(ResourceException) as err:
        vm.delete()
    assert "VM 120 is running - destroy failed" in str(err.value)
    wait_task(api, vm.status.stop.post())
    assert wait_task(api, vm.delete(purge=1))["exitstatus"] == "OK"
    left = [v["volid"] for v in api.nodes("pve1").storage("local-lvm").content.get()]
    assert left == ["local-lvm:vm-120-disk-9"]
    create_vm(api, vmid=123)
    sim.update(lambda data: data["volumes"].append({"volid": "local-lvm:vm-123-disk-7", "storage": "local-lvm", "node": "pve1",
                                                    "vmid": 123, "size": 1 << 30, "format": "raw", "content": "images"}))
    wait_task(api, api.nodes("pve1").qemu(123).delete(**{"destroy-unreferenced-disks": 1}))
    assert [v["vmid"] for v in api.nodes("pve1").storage("local-lvm").content.get()] == [120]
    with pytest.raises(ResourceException) as err:
        vm.config.get()
    assert "Configuration file 'nodes/pve1/qemu-server/120.conf' does not exist" in str(err.value)


def test_clone_and_template(sim):
    api = root_api(sim)
    source = create_vm(api, vmid=9000, name="debian-12")
    mac = source.config.get()["net0"].split(",")[0]
    assert wait_task(api, source.template.post())["exitstatus"] == "OK"
    assert source.config.get()["scsi0"].startswith("local-lvm:base-9000-disk-0,")
    assert wait_task(api, source.clone.post(newid=121, name="k3s-agent-1", full=1))["exitstatus"] == "OK"
    clone = api.nodes("pve1").qemu(121).config.get()
    assert clone["name"] == "k3s-agent-1" and "template" not in clone
    assert clone["net0"].split(",")[0] != mac and clone["net0"].endswith(",bridge=vmbr0")
    assert clone["scsi0"].startswith("local-lvm:vm-121-disk-0,") and clone["smbios1"] != source.config.get()["smbios1"]
    wait_task(api, source.clone.post(newid=122))
    assert api.nodes("pve1").qemu(122).config.get()["scsi0"].startswith("local-lvm:base-9000-disk-0/vm-122-disk-0,")
    with pytest.raises(ResourceException) as err:
        source.clone.post(newid=121)
    assert "unable to create VM 121: config file already exists" in str(err.value)
    create_vm(api, vmid=124, hostpci0="0000:00:02.0")
    with pytest.raises(ResourceException) as err:
        token_api(sim).nodes("pve1").qemu(124).clone.post(newid=125)
    assert ONLY_ROOT_RAW in str(err.value)


# ------------------------------------------------------------------------------------------------ hardware and mappings


def test_hardware_pci_listing(sim):
    api = root_api(sim)
    rows = api.nodes("pve1").hardware.pci.get()
    ids = [r["id"] for r in rows]
    assert "0000:00:02.0" in ids and "0000:00:00.0" not in ids and "0000:00:14.2" not in ids
    gpu = next(r for r in rows if r["id"] == "0000:00:02.0")
    assert gpu["iommugroup"] == 1 and gpu["subsystem_device"] == "0x3136" and gpu["class"] == "0x030000"
    everything = api.nodes("pve1").hardware.pci.get(**{"pci-class-blacklist": "", "verbose": 0})
    assert "0000:00:00.0" in [r["id"] for r in everything] and "subsystem_vendor" not in everything[0]
    sim.update(lambda data: data["nodes"]["pve1"].__setitem__("iommu_present", False))
    assert {r["iommugroup"] for r in api.nodes("pve1").hardware.pci.get()} == {-1}


def test_mapping_crud_with_digest_and_checks(sim):
    api = root_api(sim)
    add_mapping(api, description="UHD 630")
    with pytest.raises(ResourceException) as err:
        add_mapping(api)
    assert "pci ID 'igpu' already defined" in str(err.value)
    listed = api.cluster.mapping.pci.get(**{"check-node": "pve1"})
    assert listed[0]["id"] == "igpu" and listed[0]["checks"] == [] and len(listed[0]["digest"]) == 40
    entry = api.cluster.mapping.pci("igpu").get()
    assert entry["map"] == ["node=pve1,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1"]
    api.cluster.mapping.pci("igpu").put(map=entry["map"] + ["node=pve2,path=0000:00:02.0,id=8086:3e92"], digest=entry["digest"])
    with pytest.raises(ResourceException) as err:
        api.cluster.mapping.pci("igpu").put(description="stale", digest=entry["digest"])
    assert "detected modified configuration - file changed by other user? Try again." in str(err.value)
    checks = api.cluster.mapping.pci.get(**{"check-node": "pve2"})[0]["checks"]
    assert checks[0]["severity"] == "error" and "missing expected property" in checks[0]["message"]
    api.cluster.mapping.pci("igpu").put(delete="description")
    assert "description" not in api.cluster.mapping.pci("igpu").get()
    with pytest.raises(ResourceException) as err:
        api.cluster.mapping.pci.post(id="bad", map="node=pve1,path=00:02.0")
    assert err.value.status_code == 400 and list(err.value.errors) == ["map[0]"]
    assert "map[0].id: property is missing and it is not optional" in err.value.errors["map[0]"]
    assert len(sim.schema_violations(clear=True)) == 1
    api.cluster.mapping.pci("igpu").delete()
    assert api.cluster.mapping.pci.get() == []


# ------------------------------------------------------------------------------------------------ faults and counters


def test_injected_500_and_dropped_connection(sim):
    api = root_api(sim)
    sim.fail("GET", r"^/nodes/[^/]+/qemu$", times=1, message="injected")
    with pytest.raises(ResourceException) as err:
        api.nodes("pve1").qemu.get()
    assert err.value.status_code == 500 and "injected" in str(err.value)
    assert api.nodes("pve1").qemu.get() == []
    sim.drop("GET", "/version", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.version.get()
    assert api.version.get()["version"]
    sim.fail("*", "/cluster/nextid", times=2, skip=1, status=503)
    assert api.cluster.nextid.get() == "100"
    for attempt in range(2):
        with pytest.raises(ResourceException) as err:
            api.cluster.nextid.get()
        assert err.value.status_code == 503, attempt
    assert api.cluster.nextid.get() == "100"


def test_counters_and_latency(sim):
    api = root_api(sim)
    create_vm(api)
    sim.reset_counters()
    api.nodes("pve1").qemu(120).config.get()
    api.nodes("pve1").qemu(120).config.get()
    api.nodes("pve1").qemu(120).config.put(cores=1)
    counts = sim.counters()
    assert counts["endpoints"]["GET /nodes/{node}/qemu/{vmid}/config"] == {"reads": 2, "writes": 0}
    assert counts["endpoints"]["PUT /nodes/{node}/qemu/{vmid}/config"] == {"reads": 0, "writes": 1}
    assert counts["reads"] == 2 and counts["writes"] == 1 and counts["writes_without_auth"] == 1
    sim.reset_counters()
    assert sim.counters()["reads"] == 0
    sim.latency(0.05)
    began = time.time()
    api.version.get()
    assert time.time() - began >= 0.05
    admin = requests.get(sim.base_url + sim.admin_prefix + "/counters", verify=sim.ca_path, timeout=10).json()["data"]
    assert admin["endpoints"]["GET /version"]["reads"] == 1


# ------------------------------------------------------------------------------------------------ TLS and CLI


def test_tls_verification(sim, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert root_api(sim).version.get()["version"]
    with pytest.raises(requests.exceptions.SSLError) as err:
        ProxmoxAPI("127.0.0.1", port=sim.port, user="root@pam", password="rootpass", verify_ssl=True, timeout=10)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)


def test_command_line_start(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps(default_state(nodes=("pve1",))))
    ready = tmp_path / "ready.json"
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "pvesim", "--state", str(state), "--port", "0", "--ready-file", str(ready)],
                            cwd=tests_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.time() + 20
        while not ready.exists() and time.time() < end and proc.poll() is None:
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["ca_path"] == str(tmp_path / "pvesim.pem")
        api = ProxmoxAPI("127.0.0.1", port=info["port"], user="root@pam", password="rootpass", verify_ssl=info["ca_path"])
        assert [n["node"] for n in api.nodes.get()] == ["pve1"]
        wait_task(api, api.nodes("pve1").qemu.post(vmid=150, name="persisted"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert json.loads(state.read_text())["vms"]["150"]["config"]["name"] == "persisted"


def test_background_delay_and_autostart(sim):
    api = root_api(sim)
    vm = create_vm(api)
    assert vm.config.post(cores=3, background_delay=5) is None
    assert vm.config.get()["cores"] == 3
    token = token_api(sim)
    with pytest.raises(ResourceException) as err:
        token.nodes("pve1").qemu(120).config.post(hostpci0="0000:00:02.0", background_delay=5)
    assert "failed to update VM 120: " + ONLY_ROOT_RAW in str(err.value)
    status = wait_task(api, api.nodes("pve1").qemu.post(vmid=126, machine="pc", hostpci0="0000:00:02.0,pcie=1", start=1))
    assert status["exitstatus"] == "WARNINGS: 1"
    assert api.nodes("pve1").qemu(126).status.current.get()["status"] == "stopped"
