# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dkms status lines, failed builds and the kernels of a Proxmox VE host, over every dkms fixture."""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import dkms
from ansible_collections.homelab.gpu_passthrough.tests.unit.conftest import FIXTURES

DKMS_DIR = os.path.join(FIXTURES, "sharing", "dkms")
MODULE = "i915-sriov-dkms"


def fixture(name):
    with open(os.path.join(DKMS_DIR, name), encoding="utf-8") as handle:
        return handle.read()


def _row(version, kernel, status="installed", notes=(), module=MODULE, arch="x86_64"):
    return {"module": module, "version": version, "kernel": kernel, "arch": arch, "status": status, "notes": list(notes)}


# What each fixture must read as (tests/unit/fixtures/sharing/SOURCES.md, EXPECTED), per reader.
EXPECTED = {
    "dkms-status-four-pve-6.8.12-kernels-all-installed-2025.03.27.txt": {
        "status": [_row("2025.03.27", "6.8.12-%d-pve" % n) for n in (4, 6, 8, 9)],
    },
    "dkms-status-then-pveversion-kernel-named-module-version-6.8.12-2-bare-prompt.txt": {
        # the module version "6.8.12-2" is the old kernel-named scheme, not a kernel
        "status": [_row("6.8.12-2", "6.8.12-2-pve")],
        "running": "6.8.12-2-pve",
    },
    "apt-upgrade-dkms-autoinstall-failed-new-kernel-6.8.8-2-module-6.5.13-5-excerpt.txt": {
        # 6.8.4-3-pve's setup starts, but its outcome is not shown: not a failure
        "failed": [{"module": MODULE, "version": "6.5.13-5", "kernel": "6.8.8-2-pve", "arch": "x86_64", "reason": dkms.FAILED_BUILD}],
    },
    "dkms-build-exclusive-directive-skips-7.0.0-3-pve.txt": {
        "failed": [{"module": MODULE, "version": "2026.03.05.1", "kernel": "7.0.0-3-pve", "arch": "x86_64", "reason": dkms.BUILD_EXCLUSIVE}],
    },
    "proxmox-boot-tool-kernel-pin-6.8.4-2-grub-output.txt": {
        "pinned": "6.8.4-2-pve",
        "images": ["6.8.4-2-pve"],
    },
    "pveversion-v-excerpt-running-6.5.13-5-with-6.5.11-8-kept-truncated.txt": {
        "running": "6.5.13-5-pve",
        "packages": [
            {"package": "proxmox-kernel-6.5", "version": "6.5.13-5", "kernel": None},
            {"package": "proxmox-kernel-6.5.11-8-pve-signed", "version": "6.5.11-8", "kernel": "6.5.11-8-pve"},
        ],
    },
}

READERS = {
    "status": dkms.parse_status,
    "failed": dkms.failed_builds,
    "running": dkms.running_kernel,
    "packages": dkms.kernel_packages,
    "pinned": dkms.pinned_kernel,
    "images": dkms.kernel_images,
}
NOTHING = {"status": [], "failed": [], "running": None, "packages": [], "pinned": None, "images": []}


def test_every_dkms_fixture_has_an_expectation():
    assert sorted(os.listdir(DKMS_DIR)) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_on_every_fixture(name, reader):
    """Each reader finds what the fixture shows, and nothing in the fixtures of the others."""
    expected = EXPECTED[name].get(reader, NOTHING[reader])
    assert READERS[reader](fixture(name)) == expected


def test_installed_kernels_of_the_module():
    rows = dkms.parse_status(fixture("dkms-status-four-pve-6.8.12-kernels-all-installed-2025.03.27.txt"))
    assert dkms.kernels_with(rows, MODULE) == ["6.8.12-4-pve", "6.8.12-6-pve", "6.8.12-8-pve", "6.8.12-9-pve"]
    assert dkms.kernels_with(rows, MODULE, status="built") == []
    assert dkms.kernels_with(rows, "nvidia") == []


def test_the_upgraded_kernel_lacks_the_build():
    """After the failed autoinstall, the new kernel is not among the kernels with an installed build."""
    failed = dkms.failed_builds(fixture("apt-upgrade-dkms-autoinstall-failed-new-kernel-6.8.8-2-module-6.5.13-5-excerpt.txt"))
    status = dkms.parse_status(fixture("dkms-status-four-pve-6.8.12-kernels-all-installed-2025.03.27.txt"))
    assert failed[0]["kernel"] not in dkms.kernels_with(status, MODULE)


# Forms dkms prints besides the fixtures' (dkms 2 commas, added, built, warnings, broken).
@pytest.mark.parametrize("line, row", [
    ("i915-sriov-dkms/2024.09.21, 6.8.12-2-pve, x86_64: installed (WARNING! Diff between built and installed module!)",
     _row("2024.09.21", "6.8.12-2-pve", notes=["WARNING! Diff between built and installed module!"])),
    ("nvidia/535.154.05, 6.8.0-31-generic, x86_64: installed (WARNING! Diff between built and installed module!) "
     "(WARNING! Diff between built and installed module!)",
     _row("535.154.05", "6.8.0-31-generic", module="nvidia", notes=["WARNING! Diff between built and installed module!"])),
    ("rtl8812au, 4.2.2, 4.13.0-25-generic, x86_64: built", _row("4.2.2", "4.13.0-25-generic", "built", module="rtl8812au")),
    ("i915-sriov-dkms/2025.03.27: added", _row("2025.03.27", None, "added", arch=None)),
    ("8812au, 4.2.2: added", _row("4.2.2", None, "added", module="8812au", arch=None)),
    ("i915-sriov-dkms/2025.07.22, 6.14.8-2-pve, x86_64: installed (original_module exists)",
     _row("2025.07.22", "6.14.8-2-pve", notes=["original_module exists"])),
])
def test_status_forms(line, row):
    assert dkms.parse_status(line) == [row]


@pytest.mark.parametrize("text", ["", None, "Error! i915-sriov-dkms/2025.03.27 is broken!", ":~# dkms status\n", "\x00\xff garbage: 1, 2"])
def test_status_of_nothing_useful(text):
    assert dkms.parse_status(text) == []


def test_autoinstall_failure_alone_names_only_the_kernel():
    assert dkms.failed_builds("dkms: autoinstall for kernel: 6.8.8-2-pve failed!\n") == [
        {"module": None, "version": None, "kernel": "6.8.8-2-pve", "arch": None, "reason": dkms.AUTOINSTALL_FAILED}]


def test_build_exclusive_on_one_line():
    text = ("Warning: The /var/lib/dkms/i915-sriov-dkms/2025.07.22/6.17.2-1-pve/x86_64/dkms.conf for module "
            "i915-sriov-dkms/2025.07.22 includes a BUILD_EXCLUSIVE directive which does not match this kernel/arch/config.\n")
    assert dkms.failed_builds(text) == [
        {"module": MODULE, "version": "2025.07.22", "kernel": "6.17.2-1-pve", "arch": "x86_64", "reason": dkms.BUILD_EXCLUSIVE}]
