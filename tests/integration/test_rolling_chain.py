"""The rolling chain's Proxmox side run by ansible-playbook against the Proxmox API simulator.

Needs the collection installed by tools/setup.sh and ANSIBLE_COLLECTIONS_PATH from tools/env.sh.
"""

import json
import os
import re
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
            {"name": "hostpci",
             "homelab.gpu_passthrough.pve_hostpci": {"vmid": 121, "slot": 0, "host": "0000:00:02.0", "apply": "none"},
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
    assert sim.counters()["writes_without_auth"] == 0


# ------------------------------------------------------------------ the fleet plan of site.yml
# The host link is stood in by a sysfs tree per Proxmox host, built by tests/unit/sysfs_builder.py from a real
# listing and read by iommu_facts through site.yml's site_host_root; the Proxmox API is pvesim and Kubernetes
# k8ssim. Every host and agent runs with ansible_connection=local.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "unit", "fixtures")


def _fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def _host_root(base, driver):
    from unit.sysfs_builder import build_root  # pylint: disable=import-outside-toplevel

    return build_root(base, _fixture("iommu/loop-tab-format-alderlake-4680-12th-gen-sorted.txt"),
                      lspci=_fixture("lspci/nnk-alderlake-4680-igpu-i915-host-rx560-vfio-pci.txt"),
                      cmdline="BOOT_IMAGE=/boot/vmlinuz-6.8.12-2-pve root=/dev/mapper/pve-root ro quiet intel_iommu=on iommu=pt",
                      devices={"0000:00:02.0": {"driver": driver}})


@pytest.fixture
def fleet(sim, tmp_path):
    from k8ssim.fixture import running_k8ssim  # pylint: disable=import-outside-toplevel

    with running_k8ssim(tmp_path / "k8s") as k8s:
        for index in (1, 2, 3):
            k8s.cluster.add_node("k3s-agent-%d" % index)
        k8s.cluster.add_pod("jellyfin-0", "k3s-agent-3", namespace="media", labels={"app": "jellyfin"},
                            owner_kind="StatefulSet", owner_name="jellyfin")
        hosts = {}
        for index in (1, 2, 3):
            # pve1's iGPU is still on i915: the host link binds it and reboots; pve2 and pve3 are ready
            root = _host_root(tmp_path / ("root%d" % index), "i915" if index == 1 else "vfio-pci")
            hosts["pve%d" % index] = {"site_host_root": root, "proxmox_gpu_prep_device": "0000:00:02.0",
                                      "proxmox_gpu_prep_reboot": True}
        agents = {"k3s-agent-%d" % index: {"vm_id": 119 + index, "proxmox_node": "pve%d" % index}
                  for index in (1, 2, 3)}
        inventory = {"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "gpu_vm_proxmox_api_host": "127.0.0.1", "gpu_vm_proxmox_api_port": sim.port,
                     "gpu_vm_proxmox_api_user": "root@pam", "gpu_vm_proxmox_api_password": "rootpass",
                     "gpu_vm_proxmox_ca_path": sim.ca_path, "gpu_vm_kubeconfig": k8s.kubeconfig,
                     "gpu_vm_efidisk_storage": "local-lvm"},
            "children": {"proxmox_hosts": {"hosts": hosts}, "k3s_gpu_agents": {"hosts": agents}},
        }}
        path = tmp_path / "inventory.json"
        path.write_text(json.dumps(inventory))
        before = sim.snapshot()

        def terraform(data):
            # VM 122 is still the i440fx machine Terraform created
            data["vms"]["122"]["config"]["machine"] = "pc"
        sim.update(terraform)
        yield {"inventory": str(path), "k8s": k8s, "tmp": tmp_path}

        def restore(data):
            data.clear()
            data.update(before)
        sim.update(restore)


def site(fleet, *extra):
    from installed_collection import installed_collection  # pylint: disable=import-outside-toplevel

    playbook = os.path.join(installed_collection("playbooks", "site.yml"), "playbooks", "site.yml")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", TMPDIR=str(fleet["tmp"]))
    proc = subprocess.run(["ansible-playbook", "-i", fleet["inventory"], playbook, *extra], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_check_prints_the_plan_and_changes_nothing(sim, fleet):
    sim.reset_counters()
    plan_file = fleet["tmp"] / "plan.json"
    rc, output = site(fleet, "--check", "-e", "site_plan_file=%s" % plan_file)
    assert rc == 0, output
    plan = json.loads(plan_file.read_text())
    assert plan["ok"] and plan["batches"] == [["pve1"], ["pve2"], ["pve3"]]
    first, second, _third = plan["nodes"]
    assert first["reboot"] is True and first["host_changes"] == ["binding"]
    assert second["reboot"] is False and second["host_changes"] == []
    # agent 1 stops for its host's reboot, agent 3 for its machine change, agent 2 (ready) not at all
    assert [n["drain"] for n in plan["nodes"]] == [["k3s-agent-1"], [], ["k3s-agent-3"]]
    assert plan["nodes"][1]["vm_changes"] == {} and plan["nodes"][2]["vm_changes"]["122"]
    assert ("batch 1 pve1 (pve1): binding; host reboot: yes; guests stopping: VM 120 (k3s-agent-1, agent); "
            "drain: k3s-agent-1") in output, output
    # --check stops after the plan: no link ran, nothing was written, no node cordoned
    assert sim.counters()["writes_without_auth"] == 0
    assert not [e for e in fleet["k8s"].requests() if e["action"] in ("cordon", "evict", "patch_node")]
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)", output, re.M)
    assert len(recap) == 6 and all(changed == "0" and failed == "0" for _host, changed, failed in recap), output
    assert re.search(r"k3s-agent-1 +skip +guest driver +guest link not selected", output), output


@pytest.mark.parametrize("case", ["not_quorate", "ha", "budget"])
def test_refusals_before_any_change(sim, fleet, case):
    if case == "not_quorate":
        def lose(data):
            data["nodes"]["pve2"]["status"] = "offline"
            data["nodes"]["pve3"]["status"] = "offline"
        sim.update(lose)
        wanted = "is not quorate now (1 of 3 expected votes present, 2 needed)"
    elif case == "ha":
        def ha(data):
            data["cluster"] = {"ha_resources": {"vm:122": {"state": "started"}, "vm:121": {"state": "started"}}}
        sim.update(ha)
        # agent 3 stops for its machine change; agent 2 does not stop, so its HA state is no concern
        wanted = "VM 122 (k3s-agent-3) on pve3 is HA-managed (state started): the VM config change would stop it"
    else:
        fleet["k8s"].cluster.add_budget("jellyfin", "media", {"app": "jellyfin"}, min_available=1)
        wanted = "PodDisruptionBudget media/jellyfin allows 0 disruption(s) but draining k3s-agent-3 would evict media/jellyfin-0"
    sim.reset_counters()
    # the host and guest links are left out: were the plan to let the run go on, they would work on this machine
    rc, output = site(fleet, "--skip-tags", "host,guest")
    assert rc != 0, output
    assert "The fleet plan refuses" in output and wanted in output, output
    if case == "ha":
        assert "VM 121 (k3s-agent-2)" not in output.split("The fleet plan refuses", 1)[1]
    assert "nothing was changed" in output
    assert sim.counters()["writes_without_auth"] == 0
    assert not [e for e in fleet["k8s"].requests() if e["action"] in ("cordon", "evict", "patch_node")]
