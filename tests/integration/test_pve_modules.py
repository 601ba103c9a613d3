"""pve_hostpci and pve_pci_mapping run by ansible-playbook against the Proxmox API simulator.

Needs the collection installed by tools/setup.sh and ANSIBLE_COLLECTIONS_PATH from tools/env.sh.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from installed_collection import skip_unless_installed
from pvesim.fixture import running_simulator

ROOT_PASSWORD = "rootpass"


pytestmark = [
    pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not on PATH (source tools/env.sh)"),
    skip_unless_installed("plugins", "modules", "pve_hostpci.py"),
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running_simulator(tmp_path_factory.mktemp("pvesim"), task_duration=0.02) as handle:
        def setup(data):
            data["vms"]["120"] = {
                "node": "pve1",
                "status": "stopped",
                "config": {"name": "k3s-agent-1", "machine": "q35", "bios": "ovmf", "memory": "4096", "cores": "2",
                           "scsi0": "local-lvm:vm-120-disk-0,size=32G", "vmgenid": "1"},
                "pending": {},
            }
            data["vms"]["121"] = {
                "node": "pve2",
                "status": "running",
                "config": {"name": "k3s-agent-2", "machine": "q35", "bios": "ovmf", "memory": "4096", "cores": "2", "vmgenid": "2"},
                "pending": {},
            }
            # the token's user may use mappings (an admin grants PVEMappingUser), but not raw devices
            data["access"]["acl"].append({"path": "/mapping/pci", "ugid": "automation@pve", "roleid": "PVEMappingUser", "propagate": 1})
        handle.update(setup)
        yield handle


def _token_secret(sim):
    return sim.data["access"]["users"]["automation@pve"]["tokens"]["ansible"]["secret"]


def _auth(sim, token=False):
    auth = {"api_host": "127.0.0.1", "api_port": sim.port, "ca_path": sim.ca_path}
    if token:
        auth.update(api_user="automation@pve", api_token_id="ansible", api_token_secret=_token_secret(sim))
    else:
        auth.update(api_user="root@pam", api_password=ROOT_PASSWORD)
    return auth


def play(tmp_path, tasks, verbose=False):
    """Run tasks ``(module, args, keywords)`` in one ansible-playbook run; returns (rc, [task results], output)."""
    body = []
    for index, (module, args, keywords) in enumerate(tasks):
        task = {"name": "task %d" % index, "register": "out%d" % index, "ignore_errors": True, "homelab.gpu_passthrough.%s" % module: args}
        task.update(keywords or {})
        body.append(task)
        body.append({"name": "show %d" % index, "ansible.builtin.debug": {"msg": "RESULT%d={{ out%d | to_json }}" % (index, index)}})
    path = tmp_path / "play.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": body}]))
    cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, str(path)]
    if verbose:
        cmd.append("-vvv")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, check=False)
    output = proc.stdout + proc.stderr
    results = {}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith('"msg": "RESULT'):
            text = json.loads(line[len('"msg": '):])
            index, _sep, value = text[len("RESULT"):].partition("=")
            results[int(index)] = json.loads(value)
    assert sorted(results) == list(range(len(tasks))), output
    return proc.returncode, [results[i] for i in range(len(tasks))], output


DIFF = {"diff": True}
CHECK = {"check_mode": True, "diff": True}


def test_root_attaches_check_mode_and_second_run(sim, tmp_path):
    attach = dict(_auth(sim), node="pve1", vmid=120, slot=0, host="8086:3e92", pcie=True)
    before = sim.snapshot()["vms"]["120"]
    sim.reset_counters()
    rc, (checked, first, second), out = play(tmp_path, [
        ("pve_hostpci", dict(attach, slot=1, host="0000:00:14.0"), CHECK),
        ("pve_hostpci", attach, DIFF),
        ("pve_hostpci", dict(attach, host="00:02.0", rombar=True), DIFF),
    ])
    assert rc == 0, out
    # check mode: reports the change and its diff, writes nothing
    assert checked["changed"] is True and checked["value"] == "0000:00:14.0,pcie=1", checked
    assert "+hostpci1: 0000:00:14.0,pcie=1" in out
    assert "hostpci1" not in sim.vm(120)["config"]
    # the real run writes hostpci0 once; the second (same meaning, other spelling) reads only
    assert first["changed"] is True and first["value"] == "0000:00:02.0,pcie=1" and first["pending"] is False, first
    assert "+hostpci0: 0000:00:02.0,pcie=1" in out
    assert second["changed"] is False and not second.get("failed"), second
    assert sim.counters()["writes_without_auth"] == 1
    config = sim.vm(120)["config"]
    assert config["hostpci0"] == "0000:00:02.0,pcie=1"
    assert {k: v for k, v in config.items() if k not in ("hostpci0", "digest")} == {
        k: v for k, v in before["config"].items() if k != "digest"}


def test_token_raw_host_fails_unchanged_and_secrets_hidden(sim, tmp_path):
    before = sim.snapshot()
    sim.reset_counters()
    rc, (denied, again), out = play(tmp_path, [
        ("pve_hostpci", dict(_auth(sim, token=True), node="pve2", vmid=121, slot=0, host="0000:00:02.0", pcie=True), None),
        ("pve_hostpci", dict(_auth(sim), node="pve1", vmid=120, slot=0, host="0000:00:02.0", pcie=True), None),
    ], verbose=True)
    assert denied.get("failed") is True, denied
    assert "only root can set 'hostpci0' config for non-mapped devices" in denied["msg"]
    assert "pve_pci_mapping" in denied["msg"] and "root@pam" in denied["msg"] and "api_password" in denied["msg"]
    assert again["changed"] is False and not again.get("failed"), again
    assert sim.counters()["writes_without_auth"] == 0
    after = sim.snapshot()
    assert after["vms"] == before["vms"] and after["mappings"] == before["mappings"]
    # -vvv shows the module arguments, with the secrets masked
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in out
    assert ROOT_PASSWORD not in out
    assert _token_secret(sim) not in out


def test_token_uses_mapping_created_by_module(sim, tmp_path):
    margs = dict(_auth(sim), name="igpu", description="UHD 630",
                 devices=[{"node": "pve1", "path": "0000:00:02.0"}, {"node": "pve2", "path": "8086:3e92"}])
    hargs = dict(_auth(sim, token=True), vmid=121, slot=0, mapping="igpu", pcie=True, apply="restart")
    sim.reset_counters()
    rc, (created, same, attached, again), out = play(tmp_path, [
        ("pve_pci_mapping", margs, DIFF),
        ("pve_pci_mapping", margs, None),
        ("pve_hostpci", hargs, DIFF),
        ("pve_hostpci", hargs, None),
    ], verbose=True)
    assert rc == 0, out
    assert created["changed"] is True and same["changed"] is False, (created, same)
    assert sorted(sim.data["mappings"]["pci"]["igpu"]["map"]) == [
        "node=pve1,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1",
        "node=pve2,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1",
    ]
    # VM 121 runs on pve2: the token sets the mapping, and apply=restart makes it take effect
    assert attached["changed"] is True and not attached.get("failed"), attached
    assert attached["node"] == "pve2" and attached["restarted"] is True and attached["pending"] is False
    assert again["changed"] is False and again["restarted"] is False, again
    sim.wait_tasks()
    vm = sim.vm(121)
    assert vm["config"]["hostpci0"] == "mapping=igpu,pcie=1"
    assert vm["status"] == "running" and not vm["pending"]
    # mapping create, config PUT, shutdown, start; the repeated runs wrote nothing
    assert sim.counters()["writes_without_auth"] == 4
    assert _token_secret(sim) not in out and ROOT_PASSWORD not in out


def test_mapping_update_and_delete(sim, tmp_path):
    margs = dict(_auth(sim), name="usb", devices=[{"node": "pve1", "path": "0000:00:14.0"}])
    sim.reset_counters()
    rc, (created, moved, checked, deleted), out = play(tmp_path, [
        ("pve_pci_mapping", margs, None),
        ("pve_pci_mapping", dict(margs, devices=[{"node": "pve3", "path": "0000:00:14.0"}]), DIFF),
        ("pve_pci_mapping", dict(margs, state="absent"), CHECK),
        ("pve_pci_mapping", dict(margs, state="absent"), None),
    ])
    assert rc == 0, out
    assert [r["changed"] for r in (created, moved, checked, deleted)] == [True, True, True, True]
    assert "-map: node=pve1" in out and "+map: node=pve3" in out
    assert moved["mapping"]["map"][0].startswith("node=pve3,path=0000:00:14.0,id=8086:a36d")
    assert "usb" not in sim.data["mappings"]["pci"]
    # create, update, delete: the check-mode task wrote nothing
    assert sim.counters()["writes_without_auth"] == 3
