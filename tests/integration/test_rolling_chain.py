"""The rolling chain's Proxmox side run by ansible-playbook against the Proxmox API simulator.

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

pytestmark = [
    pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not on PATH (source tools/env.sh)"),
    skip_unless_installed("meta", "runtime.yml"),
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running_simulator(tmp_path_factory.mktemp("pvesim"), task_duration=0.02) as handle:
        def setup(data):
            for index, node in enumerate(("pve1", "pve2", "pve3")):
                data["vms"][str(120 + index)] = {
                    "node": node, "status": "running",
                    "config": {"name": "k3s-agent-%d" % (index + 1), "machine": "q35", "bios": "ovmf", "memory": "4096",
                               "cores": "2", "vmgenid": str(index + 1),
                               "efidisk0": "local-lvm:vm-%d-disk-1,efitype=4m,size=4M" % (120 + index)},
                    "pending": {},
                }
        handle.update(setup)
        yield handle


def run_play(tmp_path, play):
    """One ansible-playbook run of ``play`` (a list of plays) on localhost; (rc, output)."""
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, str(path)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def results(output):
    """The RESULT=<json> debug lines of a run, in order."""
    found = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith('"msg": "RESULT='):
            found.append(json.loads(json.loads(line[len('"msg": '):])[len("RESULT="):]))
    return found


def test_proxmox_group_carries_the_api_settings(sim, tmp_path):
    # one module_defaults entry for the whole proxmox action group of meta/runtime.yml: no auth options on the task
    auth = {"api_host": "127.0.0.1", "api_port": sim.port, "ca_path": sim.ca_path, "api_user": "root@pam",
            "api_password": "rootpass"}
    rc, output = run_play(tmp_path, [{
        "hosts": "localhost", "gather_facts": False,
        "module_defaults": {"group/homelab.gpu_passthrough.proxmox": auth},
        "tasks": [
            {"name": "plan", "homelab.gpu_passthrough.pve_vm_q35": {"vmid": 121}, "check_mode": True, "register": "q35"},
            {"name": "hostpci", "homelab.gpu_passthrough.pve_hostpci": {"vmid": 121, "slot": 0, "host": "0000:00:02.0",
                                                                       "apply": "none"},
             "check_mode": True, "register": "pci"},
            {"name": "show", "ansible.builtin.debug": {"msg": "RESULT={{ [q35, pci] | to_json }}"}},
        ],
    }])
    assert rc == 0, output
    q35, pci = results(output)[0]
    assert q35["node"] == "pve2" and q35["changed"] is False, q35
    assert pci["changed"] is True and pci["value"] == "0000:00:02.0", pci
    assert "hostpci0" not in sim.vm(121)["config"]


def test_pve_cluster_info_reads_quorum_ha_and_guests(sim, tmp_path):
    def setup(data):
        data["cluster"] = {"ha_resources": {"vm:121": {"state": "started", "group": "agents"}}}
        data["nodes"]["pve3"]["status"] = "offline"
    sim.update(setup)
    sim.reset_counters()
    auth = {"api_host": "127.0.0.1", "api_port": sim.port, "ca_path": sim.ca_path, "api_user": "automation@pve",
            "api_token_id": "ansible", "api_token_secret": sim.data["access"]["users"]["automation@pve"]["tokens"]["ansible"]["secret"]}
    try:
        rc, output = run_play(tmp_path, [{
            "hosts": "localhost", "gather_facts": False,
            "module_defaults": {"group/homelab.gpu_passthrough.proxmox": auth},
            "tasks": [
                {"name": "read", "homelab.gpu_passthrough.pve_cluster_info": {}, "register": "pve", "check_mode": True},
                {"name": "show", "ansible.builtin.debug": {"msg": "RESULT={{ pve | to_json }}"}},
            ],
        }])
    finally:
        def restore(data):
            data.pop("cluster", None)
            data["nodes"]["pve3"]["status"] = "online"
        sim.update(restore)
    assert rc == 0, output
    pve = results(output)[0]
    assert pve["changed"] is False
    assert pve["cluster"]["quorate"] is True and pve["cluster"]["standalone"] is False
    assert [(n["name"], n["online"], n["votes"]) for n in pve["cluster"]["nodes"]] == [
        ("pve1", True, 1), ("pve2", True, 1), ("pve3", False, 1)]
    assert pve["ha_resources"] == [{"sid": "vm:121", "type": "vm", "vmid": 121, "state": "started", "group": "agents"}]
    assert [(g["vmid"], g["status"], g["ha_state"]) for g in pve["guests"]["pve2"]] == [(121, "running", "started")]
    assert sim.counters()["writes"] == 0
