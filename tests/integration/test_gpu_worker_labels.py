# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/gpu_worker.yml (role gpu_worker) through ansible-playbook, labelling nodes in the Kubernetes API
stand-in (tests/k8ssim) through kubernetes.core.

The guest is this machine over the local connection, with only what needs hardware faked: a render node file in a
tmp /dev/dri, a tmp sysfs tree of a q35 VM (the emulated display as card0, the passed GPU behind a root port) and a
vainfo script that prints a real vainfo output.
Packages are not managed. Needs the collection installed by tools/setup.sh and ANSIBLE_COLLECTIONS_PATH from
tools/env.sh.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from installed_collection import installed_collection, skip_unless_installed
from k8ssim.fixture import running_k8ssim
from unit import sysfs_builder

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALLED = installed_collection("roles", "gpu_worker", "tasks", "main.yml")
pytestmark = skip_unless_installed("roles", "gpu_worker", "tasks", "main.yml")

VAINFO = os.path.join(TESTS, "unit", "fixtures", "vainfo")
NONFREE = "ihd-23.1.1-nonfree-k3s-node-profile-indent-stripped.txt"
FREE = "ihd-kabylake-hd630-proxmox-host-21.1.1-free.txt"
NODE = "k3s-agent-1"


VM_LSPCI = """00:01.0 VGA compatible controller [0300]: Device [1234:1111] (rev 02)
\tKernel driver in use: bochs-drm
01:00.0 VGA compatible controller [0300]: Intel Corporation CoffeeLake-S GT2 [UHD Graphics 630] [8086:%s] (rev 02)
\tKernel driver in use: i915
"""
CAPABILITY_LABELS = {
    "gpu.homelab.io/h264-decode": "true", "gpu.homelab.io/h264-encode": "true",
    "gpu.homelab.io/hevc-decode": "true", "gpu.homelab.io/hevc-encode": "true",
    "gpu.homelab.io/hevc10-decode": "true", "gpu.homelab.io/hevc10-encode": "true",
    "gpu.homelab.io/vp9-decode": "true", "gpu.homelab.io/generation": "9.5", "gpu.homelab.io/platform": "coffeelake",
}


def guest(tmp_path, fixture=NONFREE, device="3e92"):
    """A render node of the passed GPU (``device`` None: a vgem node without a PCI device), the emulated display as
    card0, and a vainfo printing ``fixture``."""
    root = tmp_path / "guest"
    (root / "dev" / "dri").mkdir(parents=True, exist_ok=True)
    (root / "dev" / "dri" / "renderD128").write_text("")
    sys_root = root / "vm"
    if not sys_root.exists():
        sysfs_builder.build_root(sys_root, lspci=VM_LSPCI % (device or "3e92"))
        sysfs_builder.add_drm_node(str(sys_root), "00:01.0", "card0", boot_vga=True)
        if device:
            sysfs_builder.add_drm_node(str(sys_root), "01:00.0", "card1", boot_vga=False)
            sysfs_builder.add_drm_node(str(sys_root), "01:00.0", "renderD128")
        else:
            sysfs_builder.add_software_drm_node(str(sys_root), "renderD128")
    vainfo = root / "vainfo"
    vainfo.write_text("#!/bin/sh\nexec cat %s\n" % os.path.join(VAINFO, fixture))
    vainfo.chmod(0o755)
    return {"gpu_worker_dri_dir": str(root / "dev" / "dri"), "gpu_worker_sysfs_dir": str(sys_root / "sys"),
            "gpu_worker_vainfo_path": str(vainfo)}


def run_playbook(tmp_path, k8s, host_vars, *extra, expect_rc=0):
    """Run playbooks/gpu_worker.yml; return (output, gpu_worker_report of the agent or None)."""
    stamp = time.monotonic_ns()
    report = tmp_path / ("report-%d.json" % stamp)
    variables = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 # the play asks for become; the test runs as the user it is
                 "ansible_become": False,
                 "gpu_worker_manage_packages": False, "kubernetes_kubeconfig": k8s.kubeconfig}
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
    wanted = dict(CAPABILITY_LABELS, gpu="intel-uhd-630", **{"cpu-tier": "i5-8500t", "media": "transcode"})

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
    assert sent[0]["body"]["metadata"]["annotations"] == {"gpu.homelab.io/managed-labels": ",".join(sorted(wanted))}
    labels = k8s.dump()["nodes"][NODE]["metadata"]["labels"]
    assert labels == dict(before, **wanted), labels
    assert "gpu" not in k8s.dump()["nodes"]["k3s-server"]["metadata"]["labels"]
    assert report["ok"] is True and report["link"] is None
    assert report["gpu"]["pci_id"] == "8086:3e92" and report["labels"] == wanted and report["label_notes"] == []
    # the passed GPU's node, found through sysfs, never the emulated card0
    assert report["gpu"]["pci_address"] == "0000:01:00.0" and report["gpu"]["card"] == "card1"
    assert report["codecs"]["present"] == ["h264_decode", "h264_encode", "hevc_decode", "hevc_encode"]
    assert "offers what Intel Coffee Lake (Gen 9.5) has" in report["message"], report["message"]
    # the GID a pod's supplementalGroups needs, read on the guest for the group owning the render node
    render_node = os.path.join(host_vars["gpu_worker_dri_dir"], "renderD128")
    assert report["render_group"]["gid"] == os.stat(render_node).st_gid, report["render_group"]
    assert "gpu=intel-uhd-630" in output and "gpu.homelab.io/hevc-encode=true" in output, output

    # again: nothing to send
    k8s.clear_requests()
    output, report = run_playbook(tmp_path, k8s, host_vars)
    assert patches(k8s) == [] and k8s.requests("patch_node") == [], k8s.requests()
    assert recap(output)[NODE]["changed"] == 0, output
    assert report["labels"] == wanted and report["labels_changed"] == {}


def test_no_pci_gpu_no_gpu_label(tmp_path, k8s):
    # a render node without a PCI device (vgem) and an override: still no gpu label, the cpu tier is set
    host_vars = dict(guest(tmp_path, device=None), gpu_worker_cpu_tier="n100", gpu_worker_gpu_label="intel-uhd-630")
    output, report = run_playbook(tmp_path, k8s, host_vars)
    labels = k8s.dump()["nodes"][NODE]["metadata"]["labels"]
    assert labels.get("cpu-tier") == "n100" and "gpu" not in labels, labels
    assert report["gpu"] is None and report["labels"] == {"cpu-tier": "n100"}
    assert report["label_notes"][0].startswith("no GPU detected"), report
    assert "no GPU detected" in output


def test_failed_verification_strict_fails_before_any_label(tmp_path, k8s):
    host_vars = dict(guest(tmp_path, fixture=FREE), gpu_worker_cpu_tier="i5-8500t")
    output, report = run_playbook(tmp_path, k8s, host_vars, expect_rc=2)
    assert "guest driver is broken: VA-API works on" in output and "lacks hevc_encode, hevc10_encode" in output, output
    assert "that Intel Coffee Lake (Gen 9.5) offers: the free build" in output, output
    assert "Fix: install intel-media-va-driver-non-free" in output, output
    assert k8s.requests() == [] and report is None

    # not strict: the diagnosis is recorded, the node gets its other labels but no gpu label
    output, report = run_playbook(tmp_path, k8s, dict(host_vars, gpu_worker_verify_strict=False))
    labels = k8s.dump()["nodes"][NODE]["metadata"]["labels"]
    assert labels.get("cpu-tier") == "i5-8500t" and "gpu" not in labels, labels
    # what the free driver does list is still labelled: it is true
    assert labels.get("gpu.homelab.io/h264-encode") == "true" and "gpu.homelab.io/hevc-encode" not in labels, labels
    assert report["ok"] is False and report["link"] == "guest_driver" and report["codecs"]["missing"] == ["hevc_encode"]
    assert "did not pass the checks" in report["label_notes"][0], report


def test_unknown_node_names_the_fix(tmp_path, k8s):
    output, _report = run_playbook(tmp_path, k8s, dict(guest(tmp_path), kubernetes_node_name="agent-1.lan"), expect_rc=2)
    assert "Kubernetes node agent-1.lan not found" in output and "set the host variable kubernetes_node_name" in output, output
    assert patches(k8s) == []


def test_the_node_is_the_collection_one_variable_then_the_vm_name(tmp_path, k8s):
    # the VM is named otherwise; the one variable names the node, as it does for the drain
    output, report = run_playbook(tmp_path, k8s, dict(guest(tmp_path), name="vm-agent-1", kubernetes_node_name=NODE))
    assert [e["node"] for e in patches(k8s)] == [NODE] and report["labels"]["gpu"] == "intel-uhd-630", output
    assert "DEPRECATION" not in output, output
    # without it the VM name (the drain's default too), which is no node here
    k8s.clear_requests()
    output, _report = run_playbook(tmp_path, k8s, dict(guest(tmp_path), name="vm-agent-1"), expect_rc=2)
    assert "Kubernetes node vm-agent-1 not found" in output and patches(k8s) == [], output


def test_the_deprecated_names_are_honoured_with_a_warning(tmp_path, k8s):
    # the old node name and the old kubeconfig (kubernetes_kubeconfig null: not set), each with its deprecation
    output, _report = run_playbook(tmp_path, k8s, dict(guest(tmp_path), name="vm-agent-1", gpu_worker_node_name=NODE,
                                                       kubernetes_kubeconfig=None, gpu_worker_kubeconfig=k8s.kubeconfig))
    assert [e["node"] for e in patches(k8s)] == [NODE], k8s.requests()
    flat = " ".join(output.split())
    assert ("k3s-agent-1: gpu_worker_node_name is deprecated; set the host variable kubernetes_node_name instead "
            "(same value: k3s-agent-1)") in flat, output
    assert ("k3s-agent-1: gpu_worker_kubeconfig is deprecated; set the host variable kubernetes_kubeconfig instead "
            "(same value: %s)" % k8s.kubeconfig) in flat, output


def test_stale_labels_removed_foreign_ones_kept_then_no_patch(tmp_path, k8s):
    host_vars = dict(guest(tmp_path), gpu_worker_cpu_tier="i5-8500t", gpu_worker_nfd_labels=True)
    run_playbook(tmp_path, k8s, host_vars)
    labels = k8s.dump()["nodes"][NODE]["metadata"]["labels"]
    assert labels["intel.feature.node.kubernetes.io/gpu"] == "true", labels
    assert labels["gpu.intel.com/device-id.0300-3e92.present"] == "true", labels
    # labels someone else set, one of them under NFD's key the collection also uses
    k8s.cluster.nodes[NODE]["metadata"]["labels"].update({"team": "media", "feature.node.kubernetes.io/cpu-x": "true"})

    # the free driver now: HEVC encode is gone, so are its labels and (not verified) the gpu label
    k8s.clear_requests()
    host_vars = dict(guest(tmp_path, fixture=FREE), gpu_worker_cpu_tier="i5-8500t", gpu_worker_nfd_labels=True,
                     gpu_worker_verify_strict=False)
    _output, report = run_playbook(tmp_path, k8s, host_vars)
    sent = patches(k8s)
    assert len(sent) == 1, k8s.requests()
    assert sent[0]["body"]["metadata"]["labels"] == {
        "gpu": None, "gpu.homelab.io/hevc-encode": None, "gpu.homelab.io/hevc10-encode": None}, sent[0]
    labels = k8s.dump()["nodes"][NODE]["metadata"]["labels"]
    assert "gpu" not in labels and "gpu.homelab.io/hevc-encode" not in labels, labels
    assert labels["team"] == "media" and labels["feature.node.kubernetes.io/cpu-x"] == "true", labels
    assert labels["topology.kubernetes.io/zone"] == "rack-1", labels
    assert report["labels_removed"] == ["gpu", "gpu.homelab.io/hevc-encode", "gpu.homelab.io/hevc10-encode"]

    # the GPU is gone from the VM: every label the collection set goes, NFD-style ones included; cpu-tier stays
    k8s.clear_requests()
    host_vars = dict(guest(tmp_path / "gone", device=None), gpu_worker_cpu_tier="i5-8500t", gpu_worker_nfd_labels=True,
                     gpu_worker_verify_strict=False)
    run_playbook(tmp_path, k8s, host_vars)
    labels = k8s.dump()["nodes"][NODE]["metadata"]["labels"]
    assert not [k for k in labels if k.startswith(("gpu.homelab.io/", "gpu.intel.com/", "intel.feature."))], labels
    assert labels["cpu-tier"] == "i5-8500t" and labels["team"] == "media", labels
    annotations = k8s.dump()["nodes"][NODE]["metadata"].get("annotations", {})
    assert annotations["gpu.homelab.io/managed-labels"] == "cpu-tier", annotations

    # the same again: nothing to send
    k8s.clear_requests()
    output, _report = run_playbook(tmp_path, k8s, host_vars)
    assert k8s.requests("patch_node") == [], k8s.requests()
    assert recap(output)[NODE]["changed"] == 0, output


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_probe_on_this_machine_cpu_measured_vaapi_without_device(tmp_path, k8s):
    # a render node file that is no device: no VA-API device to open; the CPU path runs for real, on a tiny bound
    host_vars = dict(guest(tmp_path), gpu_worker_probe=True, gpu_worker_probe_frames=10, gpu_worker_probe_timeout=120,
                     gpu_worker_probe_encode_size="160x120", gpu_worker_probe_source_size="320x240",
                     gpu_worker_probe_output_size="160x90", gpu_worker_probe_label=True)
    os.remove(os.path.join(host_vars["gpu_worker_dri_dir"], "renderD128"))
    host_vars["gpu_worker_verify_strict"] = False
    _output, report = run_playbook(tmp_path, k8s, host_vars)
    probe = report["probe"]
    for scenario in ("h264_1080p", "hevc_4k_to_h264_1080p"):
        assert probe["results"][scenario]["cpu"]["ok"] is True and probe["results"][scenario]["cpu"]["fps"] > 0, probe
        assert probe["results"][scenario]["vaapi"]["error"].startswith("no VA-API device"), probe
    assert probe["label_streams"] == {}
    labels = k8s.dump()["nodes"][NODE]["metadata"]["labels"]
    assert not [k for k in labels if k.startswith("gpu.homelab.io/streams-")], labels
