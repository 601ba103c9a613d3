"""Requests checked against the real Proxmox VE API schema (9.1 and 8.2), directly and through the simulator."""

import json
import os
import subprocess
import sys
import time

import pytest
import requests
from proxmoxer import ProxmoxAPI, ResourceException

from pvesim import schema
from pvesim.fixture import running_simulator
from pvesim.state import default_state

VERSIONS = ("9.1", "8.2")
CONFIG = "/nodes/pve1/qemu/120/config"
UNDEFINED = "property is not defined in schema and the schema does not allow additional properties"
MISSING = "property is missing and it is not optional"


def invalid_key(key):
    return "invalid format - invalid key in comma-separated list property: %s\n" % key


def sub_error(param, key, message):
    return "invalid format - format error\n%s.%s: %s\n" % (param, key, message)


# (case, method, path, params, {parameter: PVE's message}) - the same answer from 8.2 and 9.1
REFUSED = [
    ("unknown parameter", "PUT", CONFIG, {"colour": "blue"}, {"colour": UNDEFINED}),
    ("unknown parameter on a read", "GET", "/cluster/resources", {"kind": "vm"}, {"kind": UNDEFINED}),
    ("bad enum", "PUT", CONFIG, {"bios": "uefi"}, {"bios": "value 'uefi' does not have a value in the enumeration 'seabios, ovmf'"}),
    ("bad enum on a read", "GET", "/cluster/resources", {"type": "vms"},
     {"type": "value 'vms' does not have a value in the enumeration 'vm, storage, node, sdn'"}),
    ("bad enum in a property string", "PUT", CONFIG, {"machine": "q35,viommu=amd"},
     {"machine": sub_error("machine", "viommu", "value 'amd' does not have a value in the enumeration 'intel, virtio'")}),
    ("unknown property-string key", "PUT", CONFIG, {"hostpci0": "0000:00:02.0,speed=fast"}, {"hostpci0": invalid_key("speed")}),
    ("unknown drive key", "PUT", CONFIG, {"efidisk0": "local-lvm:1,efitype=4m,secure=1"}, {"efidisk0": invalid_key("secure")}),
    ("default key missing", "PUT", CONFIG, {"net0": "bridge=vmbr0"}, {"net0": sub_error("net0", "model", MISSING)}),
    ("two values for the default key", "PUT", CONFIG, {"net0": "virtio,e1000"},
     {"net0": "invalid format - duplicate key in comma-separated list property: model\n"}),
    ("duplicate key", "PUT", CONFIG, {"hostpci0": "mapping=igpu,pcie=1,pcie=0"},
     {"hostpci0": "invalid format - duplicate key in comma-separated list property: pcie\n"}),
    ("key without a value", "PUT", CONFIG, {"hostpci0": "mapping=igpu,pcie="},
     {"hostpci0": "invalid format - missing key in comma-separated list property\n"}),
    ("bare value without a default key", "PUT", CONFIG, {"ipconfig0": "dhcp"},
     {"ipconfig0": "invalid format - value without key, but schema does not define a default key\n"}),
    ("pattern", "PUT", CONFIG, {"bootdisk": "floppy0"}, {"bootdisk": "value does not match the regex pattern"}),
    ("pattern in a property string", "PUT", CONFIG, {"machine": "q36"},
     {"machine": sub_error("machine", "type", "value does not match the regex pattern")}),
    ("maxLength in a property string", "PUT", CONFIG, {"machine": "pc-q35-10." + "1" * 32},
     {"machine": sub_error("machine", "type", "value may only be 40 characters long")}),
    ("minimum", "PUT", CONFIG, {"cores": "0"}, {"cores": "value must have a minimum value of 1"}),
    ("maximum", "PUT", CONFIG, {"cpulimit": "129"}, {"cpulimit": "value must have a maximum value of 128"}),
    ("minimum in a property string", "PUT", CONFIG, {"memory": "8"}, {"memory": sub_error("memory", "current", "value must have a minimum value of 16")}),
    ("maximum in a property string", "PUT", CONFIG, {"net0": "virtio,bridge=vmbr0,tag=4095"},
     {"net0": sub_error("net0", "tag", "value must have a maximum value of 4094")}),
    ("maxLength", "PUT", CONFIG, {"digest": "0" * 41}, {"digest": "value may only be 40 characters long"}),
    ("integer", "PUT", CONFIG, {"cores": "two"}, {"cores": "type check ('integer') failed - got 'two'"}),
    ("number", "PUT", CONFIG, {"cpulimit": "half"}, {"cpulimit": "type check ('number') failed - got 'half'"}),
    ("top-level booleans are 1 or 0", "PUT", CONFIG, {"onboot": "true"}, {"onboot": "type check ('boolean') failed - got 'true'"}),
    ("property-string booleans", "PUT", CONFIG, {"hostpci0": "mapping=igpu,pcie=maybe"},
     {"hostpci0": sub_error("hostpci0", "pcie", "type check ('boolean') failed - got 'maybe'")}),
    ("a list for a string", "PUT", CONFIG, {"name": ["a", "b"]}, {"name": "type check ('string') failed - got ARRAY"}),
    ("-list format entries", "PUT", CONFIG, {"delete": "hostpci1,9bad"}, {"delete": "invalid format - invalid configuration ID '9bad'\n"}),
    ("urlencoded", "PUT", CONFIG, {"sshkeys": "ssh-ed25519 AAAAC3Nz admin@host"},
     {"sshkeys": "invalid format - invalid urlencoded string: ssh-ed25519 AAAAC3Nz admin@host\n"}),
    ("mac address", "PUT", CONFIG, {"net0": "virtio=01:00:5E:00:00:01,bridge=vmbr0"},
     {"net0": sub_error("net0", "macaddr", "invalid format - value does not look like a valid unicast MAC address\n")}),
    ("resize size pattern", "PUT", "/nodes/pve1/qemu/120/resize", {"disk": "scsi0", "size": "+2X"}, {"size": "value does not match the regex pattern"}),
    ("disk size format", "PUT", CONFIG, {"scsi0": "local-lvm:vm-120-disk-0,size=32X"},
     {"scsi0": sub_error("scsi0", "size", "invalid format - value does not look like a valid disk size: 32X\n")}),
    ("index past the option's count", "PUT", CONFIG, {"net32": "virtio,bridge=vmbr0", "hostpci16": "mapping=igpu"},
     {"net32": UNDEFINED, "hostpci16": UNDEFINED}),
    ("index with a leading zero", "PUT", CONFIG, {"net01": "virtio,bridge=vmbr0"}, {"net01": UNDEFINED}),
    ("path parameter vmid", "GET", "/nodes/pve1/qemu/99/config", {}, {"vmid": "invalid format - value does not look like a valid VM ID\n"}),
    ("path parameter node", "GET", "/nodes/pve_1/qemu/120/config", {}, {"node": "invalid format - value does not look like a valid node name\n"}),
    ("required parameter", "POST", "/cluster/mapping/pci", {"id": "igpu"}, {"map": MISSING}),
    ("required ticket password", "POST", "/access/ticket", {"username": "root@pam"}, {"password": MISSING}),
    ("array items", "POST", "/cluster/mapping/pci", {"id": "igpu", "map": ["node=pve1,path=0000:00:02.0,id=8086:3e92", "node=pve1,path=00:02.0,vendor=1"]},
     {"map[1]": invalid_key("vendor")}),
    ("array item sub-keys", "POST", "/cluster/mapping/pci", {"id": "igpu", "map": "node=pve1,path=0000:00:02.0"},
     {"map[0]": sub_error("map[0]", "id", MISSING)}),
    ("typetext format: cpu", "PUT", CONFIG, {"cpu": "host,flagz=+aes"}, {"cpu": invalid_key("flagz")}),
    ("typetext format: ipconfig", "PUT", CONFIG, {"ipconfig0": "ip=10.0.0.5/24,gateway=10.0.0.1"}, {"ipconfig0": invalid_key("gateway")}),
    ("typetext format: hostpci enum", "PUT", CONFIG, {"hostpci0": "mapping=igpu,pcie=1,x-vga=yes,rombar=off,legacy-igd=2"},
     {"hostpci0": sub_error("hostpci0", "legacy-igd", "type check ('boolean') failed - got '2'")}),
    ("typetext values: ipconfig address", "PUT", CONFIG, {"ipconfig0": "ip=10.0.0.300/24,gw=10.0.0.1"},
     {"ipconfig0": sub_error("ipconfig0", "ip", "invalid format - value does not look like a valid ipv4 network configuration\n")}),
    ("typetext values: ipconfig prefix", "PUT", CONFIG, {"ipconfig0": "ip=10.0.0.5/33"},
     {"ipconfig0": sub_error("ipconfig0", "ip", "invalid format - value does not look like a valid ipv4 network configuration\n")}),
    ("typetext values: ipconfig gateway", "PUT", CONFIG, {"ipconfig0": "ip=dhcp,ip6=auto,gw6=10.0.0.1"},
     {"ipconfig0": sub_error("ipconfig0", "gw6", "invalid format - value does not look like a valid IPv6 address\n")}),
    ("typetext values: hostpci host", "PUT", CONFIG, {"hostpci0": "0000:00:2.0,pcie=1"},
     {"hostpci0": sub_error("hostpci0", "host", "value does not match the regex pattern")}),
    ("typetext values: hostpci mapping id", "PUT", CONFIG, {"hostpci0": "mapping=1gpu"},
     {"hostpci0": sub_error("hostpci0", "mapping", "invalid format - invalid configuration ID '1gpu'\n")}),
    ("typetext values: hostpci romfile", "PUT", CONFIG, {"hostpci0": "mapping=igpu,romfile=a;b"},
     {"hostpci0": sub_error("hostpci0", "romfile", "value does not match the regex pattern")}),
    ("typetext values: hostpci ids", "PUT", CONFIG, {"hostpci0": "mapping=igpu,vendor-id=8086"},
     {"hostpci0": sub_error("hostpci0", "vendor-id", "value does not match the regex pattern")}),
    ("errors for several parameters", "POST", "/nodes/pve1/qemu/120/status/shutdown", {"timeout": "-1", "forcestop": "1"},
     {"timeout": "value must have a minimum value of 0", "forcestop": UNDEFINED}),
]

# requests the collection's modules send (pve_vm_q35, pve_hostpci, pve_pci_mapping, the gpu_vm role), as they
# reached the simulator in the integration tests
MODULE_REQUESTS = [
    ("POST", "/access/ticket", {"username": "root@pam", "password": "rootpass"}),
    ("GET", "/cluster/resources", {"type": "vm"}),
    ("GET", "/nodes/pve1/qemu/120/status/current", {}),
    ("GET", "/nodes/pve1/qemu/120/pending", {}),
    ("GET", "/nodes/pve1/hardware/pci", {"verbose": "1", "pci-class-blacklist": ""}),
    ("GET", "/cluster/mapping/pci", {}),
    ("PUT", CONFIG, {"digest": "92114136174c6b71695f5908a3410e0a7490a352", "hostpci0": "0000:00:02.0,pcie=1"}),
    ("PUT", "/nodes/pve2/qemu/121/config", {"digest": "b727a8f7ffba4f1be77ff377ffd306a84b1efb7a", "hostpci0": "mapping=igpu,pcie=1"}),
    ("PUT", CONFIG, {"machine": "q35", "bios": "ovmf", "efidisk0": "local-lvm:1,efitype=4m,pre-enrolled-keys=0",
                     "hostpci0": "0000:00:02.0,pcie=1,rombar=1,x-vga=0", "digest": "863dd52b8f4b259a82517706849fbc6c0fe5fd2e"}),
    ("POST", "/cluster/mapping/pci", {"id": "igpu", "mdev": "0", "description": "UHD 630",
                                      "map": ["node=pve1,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1",
                                              "node=pve2,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1"]}),
    ("PUT", "/cluster/mapping/pci/usb", {"map": "node=pve3,path=0000:00:14.0,id=8086:a36d,subsystem-id=17aa:3136,iommugroup=3", "mdev": "0",
                                         "digest": "8e4d973cc6e8ef6ac40a75533cc9cde72b070382"}),
    ("DELETE", "/cluster/mapping/pci/usb", {}),
    ("POST", "/nodes/pve2/qemu/121/status/shutdown", {"timeout": "180", "forceStop": "1"}),
    ("POST", "/nodes/pve1/qemu/120/status/start", {}),
    ("GET", "/nodes/pve2/tasks/UPID:pve2:000062EE:00058885:6B0FB53C:qmshutdown:121:automation@pve!ansible:/status", {}),
    ("GET", "/nodes/pve1/tasks", {"vmid": "120", "source": "active"}),
    ("POST", "/nodes/pve1/vzdump", {"vmid": "120", "storage": "local", "mode": "stop", "compress": "zstd",
                                    "notes-template": "pve_vm_q35 recreate of VM 120: digest=863dd52b mac=BC:24:11:5A:7E:01 running=1"}),
    ("GET", "/nodes/pve1/storage/local/content", {"content": "backup", "vmid": "120"}),
    ("DELETE", "/nodes/pve1/qemu/120", {}),
    ("POST", "/nodes/pve1/qemu/9000/clone", {"newid": "120", "full": "1", "name": "k3s-agent-1",
                                             "description": "[pve_vm_q35] recreated from template 9000 backup=local:backup/vzdump-qemu-120.vma.zst"}),
    ("PUT", CONFIG, {"machine": "q35", "bios": "ovmf", "efidisk0": "local-lvm:1,efitype=4m,pre-enrolled-keys=0", "ciuser": "ubuntu",
                     "ipconfig0": "ip=192.168.1.120/24,gw=192.168.1.1", "net0": "virtio=BC:24:11:5A:7E:01,bridge=vmbr0",
                     "digest": "346af0bb02e6b9fae0d249d7f43e450bd549a658"}),
]

# other valid forms: PVE's boolean words inside property strings, indexed options at their last index, aliases
ACCEPTED = [
    ("PUT", CONFIG, {"hostpci15": "mapping=igpu,pcie=on,x-vga=no,rombar=TRUE", "net31": "virtio,bridge=vmbr0"}),
    ("PUT", CONFIG, {"net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1,tag=20", "ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1"}),
    ("PUT", CONFIG, {"ipconfig1": "ip=dhcp", "ipconfig2": "ip6=2001:db8::5/64,gw6=2001:db8::1", "ipconfig3": "ip=manual,ip6=auto"}),
    ("PUT", CONFIG, {"hostpci0": "0000:00:02.0;0000:00:02.1,pcie=1,romfile=igd.rom,vendor-id=0x8086,sub-device-id=0x3136",
                     "hostpci1": "01:00.0,mdev=i915-GVTg_V5_4"}),
    ("PUT", CONFIG, {"scsi0": "volume=local-lvm:vm-120-disk-0,discard=on,iothread=1,size=32G", "unused255": "local-lvm:vm-120-disk-9"}),
    ("PUT", CONFIG, {"delete": ["hostpci1", "efidisk0"], "sshkeys": "ssh-ed25519%20AAAAC3Nz%20admin%40host", "onboot": "1"}),
    ("PUT", CONFIG, {"delete": "efidisk0", "force": "1", "cpu": "host,flags=+aes;-pcid,hidden=1"}),
    ("PUT", CONFIG, {"machine": "pc-q35-9.2+pve1,viommu=intel", "memory": "4096", "cores": "4", "cpulimit": "1.5"}),
    ("DELETE", "/nodes/pve1/storage/local/content/local:backup/vzdump-qemu-120-2026_01_01-00_00_00.vma.zst", {}),
    ("POST", "/nodes/pve1/qemu/120/clone", {"newid": "121", "name": "k3s-agent-2", "full": "1", "storage": "local-lvm"}),
    ("DELETE", "/nodes/pve1/qemu/120", {"purge": "1", "destroy-unreferenced-disks": "1"}),
]

# keys 9.x added that the collection uses: 8.2 refuses them as its own schema does
NEW_IN_9 = [
    ("hostpci driver", {"hostpci0": "mapping=igpu,pcie=1,driver=keep"}, {"hostpci0": invalid_key("driver")}),
    ("efidisk0 ms-cert", {"efidisk0": "local-lvm:1,efitype=4m,pre-enrolled-keys=1,ms-cert=2023k"}, {"efidisk0": invalid_key("ms-cert")}),
    ("machine aw-bits", {"machine": "q35,viommu=intel,aw-bits=48"}, {"machine": invalid_key("aw-bits")}),
    ("cpu guest-phys-bits", {"cpu": "host,guest-phys-bits=42"}, {"cpu": invalid_key("guest-phys-bits")}),
    ("virtiofs", {"virtiofs0": "share1"}, {"virtiofs0": UNDEFINED}),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", REFUSED, ids=[case[0] for case in REFUSED])
def test_refused_like_pve(version, case):
    _name, method, path, params, expected = case
    error = schema.load(version).check_request(method, path, params)
    assert error is not None and error.status == 400 and error.message == "Parameter verification failed.\n"
    assert error.errors == expected


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("request_", MODULE_REQUESTS + ACCEPTED, ids=["%s %s" % (r[0], r[1]) for r in MODULE_REQUESTS + ACCEPTED])
def test_valid_requests_pass(version, request_):
    method, path, params = request_
    assert schema.load(version).check_request(method, path, params) is None


@pytest.mark.parametrize("case", NEW_IN_9, ids=[case[0] for case in NEW_IN_9])
def test_keys_new_in_9_are_refused_by_8_2(case):
    _name, params, expected_8_2 = case
    assert schema.load("9.1").check_request("PUT", CONFIG, params) is None
    assert schema.load("8.2").check_request("PUT", CONFIG, params).errors == expected_8_2


@pytest.mark.parametrize("version, message", [("9.1", "missing property required by 'force'"),
                                              ("8.2", "missing property - 'force' requires this property")])
def test_requires_is_worded_per_release(version, message):
    assert schema.load(version).check_request("PUT", CONFIG, {"force": "1"}).errors == {"delete": message}


@pytest.mark.parametrize("version, message", [("9.1", "missing property required by 'ipconfig0.gw'"),
                                              ("8.2", "missing property - 'ipconfig0.gw' requires this property")])
def test_requires_inside_a_property_string(version, message):
    errors = schema.load(version).check_request("PUT", CONFIG, {"ipconfig0": "gw=10.0.0.1"}).errors
    assert errors == {"ipconfig0": "invalid format - format error\nipconfig0.ip: %s\n" % message}


@pytest.mark.parametrize("version", VERSIONS)
def test_a_path_or_method_the_api_lacks_is_not_implemented(version):
    api = schema.load(version)
    for method, path in (("GET", "/nodes/pve1/qemu/120/frobnicate"), ("DELETE", "/version"), ("PUT", "/nodes/pve1/qemu/120/status/start"),
                         ("GET", "/nodez")):
        error = api.check_request(method, path, {})
        assert (error.status, error.message) == (501, "Method '%s %s' not implemented\n" % (method, path))
    assert api.lookup("GET", "/access/users") == ("/access/users", {})  # outside the subset: routed, not checked
    assert api.check_request("GET", "/access/users", {"anything": "1"}) is None


@pytest.mark.parametrize("version", VERSIONS)
def test_access_permissions_is_checked(version):
    """/access/permissions is inside the subset: its parameters are checked like any other path's."""
    api = schema.load(version)
    assert api.check_request("GET", "/access/permissions", {"path": "/vms/120"}) is None
    error = api.check_request("GET", "/access/permissions", {"anything": "1"})
    assert error.status == 400 and "anything" in error.errors


@pytest.mark.parametrize("version", VERSIONS)
def test_typetext_keys_match_the_derived_formats(version):
    """The typetext parser reads the same key names and default key as the schema's typetext-derived dicts."""
    with open(os.path.join(schema.schema_dir(), "schema-%s.json" % version), encoding="utf-8") as handle:
        doc = json.load(handle)
    compared = 0
    for methods in doc["paths"].values():
        for info in methods.values():
            for spec in (info.get("parameters") or {}).values():
                if spec.get("derived_from") != "typetext":
                    continue
                parsed = schema.keys_from_typetext(spec["typetext"])
                assert set(parsed) == {k for k, v in spec["format"].items() if "alias" not in v}, spec["format_name"]
                assert {k for k, v in parsed.items() if v.get("default_key")} == {k for k, v in spec["format"].items() if v.get("default_key")}
                assert {k for k, v in parsed.items() if v["type"] == "boolean"} == {k for k, v in spec["format"].items() if v.get("type") == "boolean"}
                assert {k for k, v in parsed.items() if v.get("optional")} == {k for k, v in spec["format"].items() if v.get("optional")}
                compared += 1
    assert compared >= 30


def test_typetext_parser_without_the_derived_dict():
    """A parameter that has only its typetext (no format dict) is still checked key by key."""
    api = schema.load("9.1")
    spec = {"type": "string", "typetext": "[[host=]<HOSTPCIID>] [,pcie=<1|0>] [,driver=<vfio|keep>]"}
    errors = {}
    api.check_prop("0000:00:02.0,pcie=1,driver=bind", spec, "hostpci0", errors)
    assert errors == {"hostpci0": sub_error("hostpci0", "driver", "value 'bind' does not have a value in the enumeration 'vfio, keep'")}
    errors = {}
    api.check_prop("0000:00:02.0,pcie=yes,driver=keep", spec, "hostpci0", errors)
    assert errors == {}


def test_unknown_version_is_refused():
    with pytest.raises(ValueError, match="pve_version must be one of 9.1, 8.2"):
        schema.normalize_version("7.4")
    assert schema.normalize_version("8") == "8.2" and schema.normalize_version("9.1.9") == "9.1"


# ------------------------------------------------------------------------------------------------ through the simulator


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pvesim-schema-cert")


def root_api(handle):
    return ProxmoxAPI("127.0.0.1", port=handle.port, user="root@pam", password="rootpass", verify_ssl=handle.ca_path, timeout=10)


def vm_state(vmid=120):
    state = default_state()
    state["volumes"].append({"volid": "local-lvm:vm-%d-disk-0" % vmid, "storage": "local-lvm", "node": "pve1", "vmid": vmid,
                             "size": 34359738368, "format": "raw", "content": "images", "ctime": 0})
    state["vms"][str(vmid)] = {"node": "pve1", "status": "stopped", "pending": {},
                               "config": {"name": "k3s-agent-1", "memory": "4096", "cores": 2, "scsi0": "local-lvm:vm-%d-disk-0,size=32G" % vmid}}
    return state


@pytest.mark.parametrize("version", VERSIONS)
def test_simulator_answers_400_before_the_handler_and_counts_it(tmp_path, cert_dir, version):
    with running_simulator(tmp_path, state=vm_state(), cert_dir=cert_dir, pve_version=version) as sim:
        api = root_api(sim)
        before = sim.snapshot()["vms"]["120"]
        sim.reset_counters()
        params = {"cores": "4", "hostpci0": "mapping=igpu,pcie=1,driver=keep", "colour": "blue"}
        response = requests.put(sim.api_url + CONFIG, data=params, verify=sim.ca_path, timeout=10,
                                headers={"Authorization": "PVEAPIToken=automation@pve!ansible=0b2f8f4e-5d1c-4c53-9d0f-6f1b1c2a3e4d"})
        assert response.status_code == 400 and response.reason == "Parameter verification failed."
        expected = {"colour": UNDEFINED}
        if version == "8.2":
            expected["hostpci0"] = invalid_key("driver")
        assert response.json() == {"data": None, "message": "Parameter verification failed.\n", "errors": expected}
        assert sim.snapshot()["vms"]["120"] == before  # nothing applied: not even cores
        counters = sim.counters()
        assert counters["schema_violations"] == 1 and counters["writes"] == 1
        admin = requests.get(sim.base_url + sim.admin_prefix + "/counters", verify=sim.ca_path, timeout=10).json()["data"]
        assert admin["schema_violations"] == 1
        logged = requests.get(sim.base_url + sim.admin_prefix + "/schema", verify=sim.ca_path, timeout=10).json()["data"]
        assert logged["pve_version"] == version
        assert logged["violations"] == [{"method": "PUT", "path": CONFIG, "status": 400, "message": "Parameter verification failed.",
                                         "errors": expected}]
        with pytest.raises(ResourceException) as err:
            api.nodes("pve1").qemu(120).config.put(machine="q35,viommu=amd")
        assert err.value.status_code == 400 and "machine.viommu" in err.value.errors["machine"]
        api.nodes("pve1").qemu(120).config.put(cores=4, machine="q35,viommu=intel")  # valid requests still reach the handler
        assert sim.vm(120)["config"]["cores"] == 4
        sim.reset_counters()
        assert sim.counters()["schema_violations"] == 0
        assert len(sim.schema_violations(clear=True)) == 2  # the log outlives a counter reset; cleared for the fixture


def test_simulator_answers_501_for_what_the_api_lacks(tmp_path, cert_dir):
    with running_simulator(tmp_path, cert_dir=cert_dir) as sim:
        api = root_api(sim)
        with pytest.raises(ResourceException) as err:
            api.nodes("pve1").qemu(120).frobnicate.post()
        assert err.value.status_code == 501 and "Method 'POST /nodes/pve1/qemu/120/frobnicate' not implemented" in str(err.value)
        with pytest.raises(ResourceException) as err:  # real, not simulated: 501 too, but no violation
            api.nodes("pve1").qemu(120).snapshot.get()
        assert err.value.status_code == 501
        assert [v["path"] for v in sim.schema_violations(clear=True)] == ["/nodes/pve1/qemu/120/frobnicate"]


def test_version_follows_the_release(tmp_path, cert_dir, monkeypatch):
    monkeypatch.delenv("PVESIM_PVE_VERSION", raising=False)
    with running_simulator(tmp_path / "default", cert_dir=cert_dir) as sim:
        api = root_api(sim)
        assert api.version.get() == {"version": "9.1.9", "release": "9.1", "repoid": "ee7bad0a3d154679", "console": "xtermjs"}
        assert api.nodes("pve1").status.get()["pveversion"] == "pve-manager/9.1.9"
        settings = sim.base_url + sim.admin_prefix + "/settings"
        assert requests.post(settings, json={"pve_version": "7.4"}, verify=sim.ca_path, timeout=10).status_code == 400
        requests.post(settings, json={"pve_version": "8.2"}, verify=sim.ca_path, timeout=10).raise_for_status()
        assert api.version.get()["version"] == "8.2.4" and sim.pve_version == "8.2"
        with pytest.raises(ResourceException) as err:
            api.nodes("pve1").qemu(120).config.put(machine="q35,aw-bits=48")
        assert err.value.errors == {"machine": invalid_key("aw-bits")}
        sim.schema_violations(clear=True)
    with running_simulator(tmp_path / "old", cert_dir=cert_dir, pve_version="8.2") as sim:
        assert root_api(sim).version.get()["release"] == "8.2"
        assert sim.snapshot()["settings"]["pve_version"] == "8.2"


def test_environment_picks_the_release(tmp_path, cert_dir, monkeypatch):
    monkeypatch.setenv("PVESIM_PVE_VERSION", "8.2")
    with running_simulator(tmp_path, cert_dir=cert_dir) as sim:
        assert sim.pve_version == "8.2" and root_api(sim).version.get()["version"] == "8.2.4"


def test_fixture_fails_a_test_whose_requests_the_schema_refused(tmp_path, cert_dir):
    def send_unknown_parameter(sim):
        with pytest.raises(ResourceException):
            root_api(sim).nodes("pve1").qemu(120).config.put(colour="blue")

    refused = r"(?s)9\.1 API schema refused 1 request.*PUT /nodes/pve1/qemu/120/config -> 400 .*colour"
    with pytest.raises(AssertionError, match=refused), \
            running_simulator(tmp_path / "strict", state=vm_state(), cert_dir=cert_dir, pve_version="9.1") as sim:
        send_unknown_parameter(sim)
    with running_simulator(tmp_path / "allowed", state=vm_state(), cert_dir=cert_dir, allow_schema_violations=True) as sim:
        send_unknown_parameter(sim)
        assert sim.counters()["schema_violations"] == 1


def test_command_line_pve_version(tmp_path, cert_dir):
    state = tmp_path / "state.json"
    state.write_text(json.dumps(default_state(nodes=("pve1",))))
    ready = tmp_path / "ready.json"
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env.pop("PVESIM_PVE_VERSION", None)
    proc = subprocess.Popen([sys.executable, "-m", "pvesim", "--state", str(state), "--port", "0", "--ready-file", str(ready),
                             "--cert-dir", str(cert_dir), "--pve-version", "8.2"],
                            cwd=tests_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.time() + 20
        while not ready.exists() and time.time() < end and proc.poll() is None:
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["pve_version"] == "8.2"
        api = ProxmoxAPI("127.0.0.1", port=info["port"], user="root@pam", password="rootpass", verify_ssl=info["ca_path"])
        assert api.version.get()["version"] == "8.2.4"
        with pytest.raises(ResourceException) as err:
            api.nodes("pve1").qemu.post(vmid=150, efidisk0="local-lvm:1,ms-cert=2023k")
        assert err.value.errors == {"efidisk0": invalid_key("ms-cert")}
        counters = requests.get(info["base_url"] + info["admin_prefix"] + "/counters", verify=info["ca_path"], timeout=10).json()["data"]
        assert counters["schema_violations"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
