"""The pure parts of lab/vm.py (accelerator choice, the QEMU command line, VM names), the
image flavours lab/build-image, lab/vm and the molecule scenarios agree on, and lab/chain's
command line over its package (lab/chainlab; its verdicts are tested in tests/lab)."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

_VM = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "lab", "vm.py")


def _load_vm():
    spec = importlib.util.spec_from_file_location("lab_vm", _VM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vm = _load_vm()

# A CPU under a paravirtual KVM module: /dev/kvm exists, no vmx/svm.
CPUINFO_PVM = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx \
mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology cpuid pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic \
hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext
bugs\t\t: sysret_ss_attrs spectre_v1 spectre_v2 spec_store_bypass srso

processor\t: 1
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme de pse tsc msr pae
"""
CPUINFO_VMX = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae vmx ept vpid\n"
CPUINFO_SVM = "processor\t: 0\nflags\t\t: fpu vme svm npt\n"


@pytest.mark.parametrize(
    ("cpuinfo", "kvm_usable", "expected"),
    [
        (CPUINFO_PVM, True, "tcg"),
        (CPUINFO_VMX, True, "kvm"),
        (CPUINFO_SVM, True, "kvm"),
        (CPUINFO_VMX, False, "tcg"),
        ("", True, "tcg"),
        # "vmx" in another field or as part of a word does not count.
        ("model name\t: vmx-less\nflags\t\t: fpu svmx\n", True, "tcg"),
    ],
)
def test_choose_accel(cpuinfo, kvm_usable, expected):
    assert vm.choose_accel(cpuinfo, kvm_usable) == expected


def _cmd(accel: str) -> list[str]:
    return vm.qemu_command(
        name="t",
        accel=accel,
        memory_mib=2048,
        ovmf_code="/fw/CODE.fd",
        ovmf_vars="/vm/VARS.fd",
        disk="/vm/disk.qcow2",
        port=2222,
        serial_log="/vm/serial.log",
        qmp_socket="/vm/qmp.sock",
        pidfile="/vm/qemu.pid",
    )


def _pairs(cmd: list[str]) -> list[tuple[str, str]]:
    return [(cmd[i], cmd[i + 1]) for i in range(len(cmd) - 1) if cmd[i].startswith("-")]


def test_tcg_command_line():
    pairs = _pairs(_cmd("tcg"))
    assert ("-accel", "tcg,thread=multi") in pairs
    assert ("-cpu", "max") in pairs
    assert ("-smp", "2") in pairs
    assert ("-machine", "q35") in pairs


def test_kvm_command_line_splits_the_irqchip():
    pairs = _pairs(_cmd("kvm"))
    assert ("-accel", "kvm") in pairs
    assert ("-machine", "q35,kernel-irqchip=split") in pairs


def test_stand_in_gpu_is_one_multifunction_slot():
    devices = [v for k, v in _pairs(_cmd("tcg")) if k == "-device"]
    assert devices.index("intel-iommu,intremap=on,caching-mode=on") < devices.index("pcie-root-port,id=rp1,chassis=1,slot=1")
    assert "bochs-display,bus=rp1,addr=0.0,multifunction=on" in devices
    assert "intel-hda,bus=rp1,addr=0.1" in devices


def test_ssh_is_forwarded_on_loopback_only():
    netdevs = [v for k, v in _pairs(_cmd("tcg")) if k == "-netdev"]
    assert netdevs == ["user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22"]


def test_firmware_vars_are_per_vm_and_code_read_only():
    drives = [v for k, v in _pairs(_cmd("tcg")) if k == "-drive"]
    assert "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd" in drives
    assert "if=pflash,format=raw,unit=1,file=/vm/VARS.fd" in drives


@pytest.mark.parametrize("name", ["host-prep-grub", "a", "vm_1.x"])
def test_vm_names_accepted(name):
    assert vm.vm_dir(name).endswith(os.sep + name)


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-x", "a b"])
def test_vm_names_rejected(name):
    with pytest.raises(vm.LabError):
        vm.vm_dir(name)


# ------------------------------------------------------------ image flavours
_REPO = os.path.dirname(os.path.dirname(_VM))
_BUILD_IMAGE = os.path.join(_REPO, "lab", "build-image")


def _build_image_flavours() -> list[str]:
    with open(_BUILD_IMAGE) as fh:
        match = re.search(r"^FLAVOURS=\(([^)]*)\)$", fh.read(), re.MULTILINE)
    assert match, "no FLAVOURS=(...) line in lab/build-image"
    return match.group(1).split()


def test_vm_offers_exactly_the_flavours_build_image_builds():
    assert list(vm.FLAVOURS) == _build_image_flavours()


def test_debian_13_has_a_systemd_boot_flavour():
    assert "trixie-systemd-boot" in vm.FLAVOURS


@pytest.mark.parametrize("scenario", sorted(glob.glob(os.path.join(_REPO, "molecule", "*", "molecule.yml"))))
def test_molecule_platforms_use_known_flavours(scenario):
    with open(scenario) as fh:
        platforms = yaml.safe_load(fh).get("platforms", [])
    assert platforms, scenario
    for platform in platforms:
        assert platform["flavour"] in vm.FLAVOURS, (scenario, platform)


def test_build_image_refuses_an_unknown_flavour_naming_the_known_ones():
    # The flavour is checked before anything needs root or touches the cache.
    proc = subprocess.run(["bash", _BUILD_IMAGE, "--flavour", "sid-grub"], capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "unknown flavour: sid-grub" in proc.stderr
    for flavour in vm.FLAVOURS:
        assert flavour in proc.stderr


def test_build_image_help_names_every_flavour():
    proc = subprocess.run(["bash", _BUILD_IMAGE, "--help"], capture_output=True, text=True, check=True)
    for flavour in vm.FLAVOURS:
        assert flavour in proc.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (tools/setup.sh --test)")
def test_lab_shell_scripts_pass_shellcheck():
    scripts = [os.path.join(_REPO, "lab", name) for name in ("build-image", "vm", "chain")]
    proc = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------ lab/chain
_CHAIN = os.path.join(_REPO, "lab", "chain")


def _chain(*args: str, lab_cache: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAB_CACHE=lab_cache)
    return subprocess.run([sys.executable, _CHAIN + ".py", *args], capture_output=True, text=True, env=env, check=False, timeout=60)


def test_chain_help_names_its_commands(tmp_path):
    proc = _chain("--help", lab_cache=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for command in ("up", "verify", "down", "status", "--twice"):
        assert command in proc.stdout


def test_chain_status_prints_the_summary_rows(tmp_path):
    assert _chain("status", lab_cache=str(tmp_path)).returncode == 1  # no summary yet
    rows = [{"id": "host_prep", "link": "host prep", "kind": "real", "status": "ok", "detail": "2 boots", "fix": None},
            {"id": "vaapi", "link": "VA-API", "kind": "real", "status": "expected", "detail": "no render node", "fix": "pass the GPU"}]
    (tmp_path / "chain").mkdir()
    (tmp_path / "chain" / "summary.json").write_text(json.dumps({"ok": True, "links": rows}))
    proc = _chain("status", lab_cache=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[:2] for line in lines if not line.strip().startswith("fix:")] == [["ok", "host"], ["expected", "VA-API"]]
    assert any(line.strip() == "fix: pass the GPU" for line in lines)
