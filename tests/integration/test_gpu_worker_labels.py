# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/gpu_worker.yml (role gpu_worker) through ansible-playbook, labelling nodes in the Kubernetes API
stand-in (tests/k8ssim) through kubernetes.core.

The guest is this machine over the local connection, with only what needs hardware faked: a render node file in a
tmp /dev/dri, a tmp sysfs tree holding the GPU's PCI ids, and a vainfo script that prints a real vainfo output.
Packages are not managed. Needs the collection installed by tools/setup.sh and ANSIBLE_COLLECTIONS_PATH from
tools/env.sh.
"""

import json
import os
import re
import subprocess
import sys
import time

import pytest
from installed_collection import installed_collection, skip_unless_installed
from k8ssim.fixture import running_k8ssim

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALLED = installed_collection("roles", "gpu_worker", "tasks", "main.yml")
pytestmark = skip_unless_installed("roles", "gpu_worker", "tasks", "main.yml")

VAINFO = os.path.join(TESTS, "unit", "fixtures", "vainfo")
NONFREE = "ihd-23.1.1-nonfree-k3s-node-profile-indent-stripped.txt"
FREE = "ihd-kabylake-hd630-proxmox-host-21.1.1-free.txt"
NODE = "k3s-agent-1"


def guest(tmp_path, fixture=NONFREE, pci=("0x8086", "0x3e92")):
    """A render node, its sysfs entry (PCI ids, or none like vgem) and a vainfo printing ``fixture``."""
    root = tmp_path / "guest"
    (root / "dev" / "dri").mkdir(parents=True, exist_ok=True)
    (root / "dev" / "dri" / "renderD128").write_text("")
    device = root / "sys" / "class" / "drm" / "renderD128" / "device"
    device.mkdir(parents=True, exist_ok=True)
    for name, value in zip(("vendor", "device"), pci or ()):
        (device / name).write_text(value + "\n")
    vainfo = root / "vainfo"
    vainfo.write_text("#!/bin/sh\nexec cat %s\n" % os.path.join(VAINFO, fixture))
    vainfo.chmod(0o755)
    return {"gpu_worker_dri_dir": str(root / "dev" / "dri"), "gpu_worker_sysfs_dir": str(root / "sys"),
            "gpu_worker_vainfo_path": str(vainfo)}


def run_playbook(tmp_path, k8s, host_vars, *extra, expect_rc=0):
    """Run playbooks/gpu_worker.yml; return (output, gpu_worker_report of the agent or None)."""
    stamp = time.monotonic_ns()
    report = tmp_path / ("report-%d.json" % stamp)
    variables = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 # the play asks for become; the test runs as the user it is
                 "ansible_become": False,
                 "gpu_worker_manage_packages": False, "gpu_worker_kubeconfig": k8s.kubeconfig}
    variables.update(host_vars)
    inv = tmp_path / ("inventory-%d.json" % stamp)
    inv.write_text(json.dumps({"all": {"children": {"k3s_gpu_agents": {"hosts": {NODE: variables}}}}}))
    playbook = tmp_path / ("site-%d.yml" % stamp)
    playbook.write_text(
        "- ansible.builtin.import_playbook: %s\n"
        "- name: Keep the report\n  hosts: k3s_gpu_agents\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n        content: \"{{ gpu_worker_report | to_json }}\"\n        dest: %s\n"
        "        mode: '0600'\n      delegate_to: localhost\n      check_mode: false\n      changed_when: false\n"
        % (os.path.join(INSTALLED, "playbooks", "gpu_worker.yml"), report))
    env = dict(os.environ)
    # TMPDIR: kubernetes.core keeps its discovery cache there
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", TMPDIR=str(tmp_path), ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run(["ansible-playbook", "-i", str(inv), str(playbook)] + list(extra), env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == expect_rc, output
    return output, (json.loads(report.read_text()) if report.exists() else None)


def recap(output):
    found = {}
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M):
        found[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    return found


def patches(k8s):
    return [e for e in k8s.requests("patch_node") if "dryRun" not in e["query"]]


@pytest.fixture
def k8s(tmp_path):
    with running_k8ssim(tmp_path / "k8s") as sim:
        sim.cluster.add_node("k3s-server", labels={"node-role.kubernetes.io/control-plane": "true"})
        sim.cluster.add_node(NODE, labels={"topology.kubernetes.io/zone": "rack-1"})
        yield sim


def test_labels_from_detection_check_mode_then_once(tmp_path, k8s):
    host_vars = dict(guest(tmp_path), gpu_worker_cpu_tier="i5-8500t", gpu_worker_extra_labels={"media": "transcode"})
    before = k8s.dump()["nodes"][NODE]["metadata"]["labels"]
    wanted = {"gpu": "intel-uhd-630", "cpu-tier": "i5-8500t", "media": "transcode"}

    # check mode: the node is read, nothing is sent that could change it
    output, report = run_playbook(tmp_path, k8s, host_vars, "--check")
    assert recap(output)[NODE]["changed"] == 1, output
    assert patches(k8s) == [] and k8s.requests("get_node"), k8s.requests()
    assert k8s.dump()["nodes"][NODE]["metadata"]["labels"] == before
    assert report["labels"] == wanted and report["labels_changed"] == wanted

    # the run: one merge patch carrying exactly the new labels; the others stay
    k8s.clear_requests()
    output, report = run_playbook(tmp_path, k8s, host_vars)
    sent = patches(k8s)
    assert len(sent) == 1, k8s.requests()
    assert sent[0]["node"] == NODE and sent[0]["content_type"] == "application/merge-patch+json", sent[0]
    assert sent[0]["body"]["metadata"]["labels"] == wanted, sent[0]
    labels = k8s.dump()["nodes"][NODE]["metadata"]["labels"]
    assert labels == dict(before, **wanted), labels
    assert "gpu" not in k8s.dump()["nodes"]["k3s-server"]["metadata"]["labels"]
    assert report["ok"] is True and report["link"] is None
    assert report["gpu"]["pci_id"] == "8086:3e92" and report["labels"] == wanted and report["label_notes"] == []
    assert report["codecs"]["present"] == ["h264_decode", "h264_encode", "hevc_decode", "hevc_encode"]
    assert "k3s-agent-1: cpu-tier=i5-8500t, gpu=intel-uhd-630, media=transcode" in output or \
        "k3s-agent-1: gpu=intel-uhd-630, cpu-tier=i5-8500t, media=transcode" in output, output

    # again: nothing to send
    k8s.clear_requests()
    output, report = run_playbook(tmp_path, k8s, host_vars)
    assert patches(k8s) == [] and k8s.requests("patch_node") == [], k8s.requests()
    assert recap(output)[NODE]["changed"] == 0, output
    assert report["labels"] == wanted and report["labels_changed"] == {}


def test_no_pci_gpu_no_gpu_label(tmp_path, k8s):
    # a render node without a PCI device (vgem) and an override: still no gpu label, the cpu tier is set
    host_vars = dict(guest(tmp_path, pci=None), gpu_worker_cpu_tier="n100", gpu_worker_gpu_label="intel-uhd-630")
    output, report = run_playbook(tmp_path, k8s, host_vars)
    labels = k8s.dump()["nodes"][NODE]["metadata"]["labels"]
    assert labels.get("cpu-tier") == "n100" and "gpu" not in labels, labels
    assert report["gpu"] is None and report["labels"] == {"cpu-tier": "n100"}
    assert report["label_notes"][0].startswith("no GPU detected"), report
    assert "no GPU detected" in output


def test_failed_verification_strict_fails_before_any_label(tmp_path, k8s):
    host_vars = dict(guest(tmp_path, fixture=FREE), gpu_worker_cpu_tier="i5-8500t")
    output, report = run_playbook(tmp_path, k8s, host_vars, expect_rc=2)
    assert "guest driver is broken: VA-API works on" in output and "lacks hevc_encode" in output, output
    assert "Fix: the encoders come with intel-media-va-driver-non-free" in output, output
    assert k8s.requests() == [] and report is None

    # not strict: the diagnosis is recorded, the node gets its other labels but no gpu label
    output, report = run_playbook(tmp_path, k8s, dict(host_vars, gpu_worker_verify_strict=False))
    labels = k8s.dump()["nodes"][NODE]["metadata"]["labels"]
    assert labels.get("cpu-tier") == "i5-8500t" and "gpu" not in labels, labels
    assert report["ok"] is False and report["link"] == "guest driver" and report["codecs"]["missing"] == ["hevc_encode"]
    assert "did not pass the checks" in report["label_notes"][0], report


def test_unknown_node_names_the_fix(tmp_path, k8s):
    output, _report = run_playbook(tmp_path, k8s, dict(guest(tmp_path), gpu_worker_node_name="agent-1.lan"), expect_rc=2)
    assert "Kubernetes node agent-1.lan not found" in output and "gpu_worker_node_name" in output, output
    assert patches(k8s) == []
