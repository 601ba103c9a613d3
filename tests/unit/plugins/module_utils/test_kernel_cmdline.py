# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of kernel_cmdline: fixtures, set_args, GRUB default files, boot loader detection."""

from __future__ import annotations

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import cmdline as kc
from ansible_collections.homelab.gpu_passthrough.tests.unit import output_readers

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "fixtures", "cmdline")

# Transcribed from the fixture expectation tables (section "Kernel command lines"); `source` is the file kind and is skipped.
EXPECTED = {
    "etc-kernel-cmdline-proxmox-zfs-default-before.txt": {
        "line_count": 1,
        "boot_style": "none (etc/kernel/cmdline has no loader prefix)",
        "intel_iommu": None,
        "amd_iommu": None,
        "iommu": None,
        "iommu_pt_exact": False,
        "iommu_pt_effective": False,
        "vfio_pci_ids": None,
        "video": None,
        "duplicate_keys": [],
        "params": {"root": ["ZFS=rpool/ROOT/pve-1"], "boot": ["zfs"]},
    },
    "etc-kernel-cmdline-proxmox-zfs-intel-nomodeset.txt": {
        "line_count": 1,
        "boot_style": "none (etc/kernel/cmdline has no loader prefix)",
        "intel_iommu": ["on"],
        "amd_iommu": None,
        "iommu": None,
        "iommu_pt_exact": False,
        "iommu_pt_effective": False,
        "vfio_pci_ids": None,
        "video": None,
        "duplicate_keys": [],
        "params": {"root": ["ZFS=rpool/ROOT/pve-1"], "boot": ["zfs"], "intel_iommu": ["on"], "nomodeset": [True]},
    },
    "etc-kernel-cmdline-proxmox-zfs-intel_iommu-iommu_pt-after.txt": {
        "line_count": 1,
        "boot_style": "none (etc/kernel/cmdline has no loader prefix)",
        "intel_iommu": ["on"],
        "amd_iommu": None,
        "iommu": ["pt"],
        "iommu_pt_exact": True,
        "iommu_pt_effective": True,
        "vfio_pci_ids": None,
        "video": None,
        "duplicate_keys": [],
        "params": {"root": ["ZFS=rpool/ROOT/pve-1"], "boot": ["zfs"], "intel_iommu": ["on"], "iommu": ["pt"]},
    },
    "proc-cmdline-fedora-coffeelake-no-iommu-params.txt": {
        "line_count": 1,
        "boot_style": "grub (BOOT_IMAGE=)",
        "intel_iommu": None,
        "amd_iommu": None,
        "iommu": None,
        "iommu_pt_exact": False,
        "iommu_pt_effective": False,
        "vfio_pci_ids": None,
        "video": None,
        "duplicate_keys": [],
        "params": {
            "BOOT_IMAGE": ["(hd3,gpt2)/vmlinuz-5.19.11-300.fc37.x86_64"],
            "root": ["UUID=b7fdf8a0-5165-4827-95b0-81daa13e43aa"],
            "ro": [True],
            "rootflags": ["subvol=root"],
            "resume": ["/dev/mapper/fedora_localhost--live-swap"],
            "rd.luks.uuid": ["luks-8f7e929f-c3f1-4a33-8e54-dc87f811fe2a"],
            "rd.lvm.lv": ["fedora_localhost-live/swap"],
            "rhgb": [True],
            "quiet": [True],
        },
    },
    "proc-cmdline-manjaro-haswell-intel_iommu-vfio-pci-ids-nvidia.txt": {
        "line_count": 1,
        "boot_style": "grub (BOOT_IMAGE=)",
        "intel_iommu": ["on"],
        "amd_iommu": None,
        "iommu": ["pt"],
        "iommu_pt_exact": True,
        "iommu_pt_effective": True,
        "vfio_pci_ids": ["10de:13c2", "10de:0fbb"],
        "video": None,
        "duplicate_keys": [],
        "params": {
            "BOOT_IMAGE": ["/boot/vmlinuz-5.9-x86_64"],
            "root": ["UUID=aeae42e3-30f2-44ff-a71f-710e311a3a96"],
            "ro": [True],
            "quiet": [True],
            "resume": ["UUID=4b26c43b-c6ef-4d50-aabe-bb0200bf03d3"],
            "udev.log_priority": ["3"],
            "intel_iommu": ["on"],
            "iommu": ["pt"],
            "vfio-pci.ids": ["10de:13c2,10de:0fbb"],
        },
    },
    "proc-cmdline-proxmox-grub-6.5.11-8-pve-intel_iommu-iommu_pt.txt": {
        "line_count": 1,
        "boot_style": "grub (BOOT_IMAGE=)",
        "intel_iommu": ["on"],
        "amd_iommu": None,
        "iommu": ["pt"],
        "iommu_pt_exact": True,
        "iommu_pt_effective": True,
        "vfio_pci_ids": None,
        "video": None,
        "duplicate_keys": [],
        "params": {
            "BOOT_IMAGE": ["/boot/vmlinuz-6.5.11-8-pve"],
            "root": ["/dev/mapper/pve-root"],
            "ro": [True],
            "quiet": [True],
            "intel_iommu": ["on"],
            "iommu": ["pt"],
            "intel_pstate": ["enable"],
        },
    },
    "proc-cmdline-proxmox-grub-6.8.12-2-pve-intel_iommu-only-no-iommu_pt.txt": {
        "line_count": 1,
        "boot_style": "grub (BOOT_IMAGE=)",
        "intel_iommu": ["on"],
        "amd_iommu": None,
        "iommu": None,
        "iommu_pt_exact": False,
        "iommu_pt_effective": False,
        "vfio_pci_ids": None,
        "video": None,
        "duplicate_keys": [],
        "params": {"BOOT_IMAGE": ["/boot/vmlinuz-6.8.12-2-pve"], "root": ["/dev/mapper/pve-root"], "ro": [True], "quiet": [True], "intel_iommu": ["on"]},
    },
    "proc-cmdline-proxmox-systemd-boot-zfs-5.4.73-1-pve-intel_iommu-iommu_pt.txt": {
        "line_count": 1,
        "boot_style": "systemd-boot (initrd=\\EFI\\…)",
        "intel_iommu": ["on"],
        "amd_iommu": None,
        "iommu": ["pt"],
        "iommu_pt_exact": True,
        "iommu_pt_effective": True,
        "vfio_pci_ids": None,
        "video": None,
        "duplicate_keys": [],
        "params": {
            "initrd": ["\\EFI\\proxmox\\5.4.73-1-pve\\initrd.img-5.4.73-1-pve"],
            "root": ["ZFS=rpool/ROOT/pve-1"],
            "boot": ["zfs"],
            "intel_iommu": ["on"],
            "iommu": ["pt"],
        },
    },
    "proc-cmdline-proxmox-systemd-boot-zfs-7.0.6-2-pve-no-iommu-nomodeset.txt": {
        "line_count": 1,
        "boot_style": "systemd-boot (initrd=\\EFI\\…)",
        "intel_iommu": None,
        "amd_iommu": None,
        "iommu": None,
        "iommu_pt_exact": False,
        "iommu_pt_effective": False,
        "vfio_pci_ids": None,
        "video": None,
        "duplicate_keys": [],
        "params": {"initrd": ["\\EFI\\proxmox\\7.0.6-2-pve\\initrd.img-7.0.6-2-pve"], "root": ["ZFS=rpool/ROOT/pve-1"], "boot": ["zfs"], "nomodeset": [True]},
    },
    "proc-cmdline-ubuntu-gvt-g-i915-enable_gvt.txt": {
        "line_count": 1,
        "boot_style": "grub (BOOT_IMAGE=)",
        "intel_iommu": ["on"],
        "amd_iommu": None,
        "iommu": None,
        "iommu_pt_exact": False,
        "iommu_pt_effective": False,
        "vfio_pci_ids": None,
        "video": None,
        "duplicate_keys": [],
        "params": {
            "BOOT_IMAGE": ["/vmlinuz-5.15.0-67-generic"],
            "root": ["/dev/mapper/vgubuntu-root"],
            "ro": [True],
            "quiet": [True],
            "splash": [True],
            "intel_iommu": ["on"],
            "i915.enable_gvt": ["1"],
            "i915.enable_guc": ["0"],
            "kvm.ignore_msrs": ["1"],
            "mem_sleep_default": ["deep"],
            "vt.handoff": ["7"],
        },
    },
}

FIXTURE_NAMES = sorted(EXPECTED)


def read_fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def test_every_cmdline_fixture_has_expectations():
    assert sorted(os.listdir(FIXTURES)) == FIXTURE_NAMES


# --------------------------------------------------------------------------- analyze over the fixtures


@pytest.mark.parametrize("name", FIXTURE_NAMES)
@pytest.mark.parametrize("field", sorted(next(iter(EXPECTED.values()))))
def test_analyze_fixture_field(name, field):
    assert output_readers.analyze_cmdline(read_fixture(name))[field] == EXPECTED[name][field]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_parse_keeps_every_token_of_the_fixture(name):
    text = read_fixture(name)
    tokens = kc.parse(text)
    assert " ".join(tokens) == text.strip()
    assert len(tokens) == sum(len(values) for values in EXPECTED[name]["params"].values())


def test_analyze_iommu_pti_is_effective_but_not_exact():
    facts = output_readers.analyze_cmdline("BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet intel_iommu=on iommu=pti\n")
    assert facts["iommu"] == ["pti"]
    assert facts["iommu_pt_exact"] is False
    assert facts["iommu_pt_effective"] is True


@pytest.mark.parametrize(
    "line, effective",
    [
        ("iommu=pt iommu=nopt", False),
        ("iommu=nopt iommu=pt", True),
        ("iommu=soft,pt", True),
        ("iommu=off", False),
        ("iommu.passthrough=1", True),
        ("iommu=pt iommu.passthrough=0", False),
    ],
)
def test_analyze_passthrough_follows_the_kernel_reading(line, effective):
    assert output_readers.analyze_cmdline(line)["iommu_pt_effective"] is effective


def test_analyze_repeats_video_and_wrapped_lines():
    facts = output_readers.analyze_cmdline("root=ZFS=rpool/ROOT/pve-1 boot=zfs video=efifb:off\n  video=vesafb:off console=tty0 console=ttyS0,115200 \n")
    assert facts["line_count"] == 2
    assert facts["video"] == ["efifb:off", "vesafb:off"]
    assert facts["duplicate_keys"] == ["video", "console"]
    assert facts["params"]["console"] == ["tty0", "ttyS0,115200"]
    assert facts["boot_style"] == output_readers.BOOT_STYLE_NONE


def test_analyze_vfio_ids_underscore_spelling_and_quotes():
    facts = output_readers.analyze_cmdline('quiet vfio_pci.ids=8086:3e92,8086:a348 dyndbg="file vfio_pci.c +p"')
    assert facts["vfio_pci_ids"] == ["8086:3e92", "8086:a348"]
    assert facts["params"]["dyndbg"] == ["file vfio_pci.c +p"]


def test_parse_is_quote_aware():
    assert kc.parse('a foo="x y  z" b\t"c d"=e') == ["a", 'foo="x y  z"', "b", '"c d"=e']
    assert kc.split_arg('foo="x y"') == ("foo", '"x y"')
    assert kc.split_arg("root=ZFS=rpool/ROOT/pve-1") == ("root", "ZFS=rpool/ROOT/pve-1")
    assert kc.split_arg("nomodeset") == ("nomodeset", None)


# --------------------------------------------------------------------------- set_args

PASSTHROUGH = {"intel_iommu": "on", "iommu": "pt"}


@pytest.mark.parametrize(
    "line, present, absent, expected",
    [
        # new keys are appended in the order given
        ("root=ZFS=rpool/ROOT/pve-1 boot=zfs", PASSTHROUGH, [], "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt"),
        # repeats of a present key collapse into the first position
        ("quiet iommu=pt intel_iommu=on iommu=pt splash", {"iommu": "pt"}, [], "quiet iommu=pt intel_iommu=on splash"),
        # a wrong value of the same key is replaced in place
        ("quiet iommu=pti intel_iommu=on", PASSTHROUGH, [], "quiet iommu=pt intel_iommu=on"),
        ("quiet intel_iommu=off", {"intel_iommu": "on"}, [], "quiet intel_iommu=on"),
        # legitimately repeated keys keep place and text
        (
            "video=efifb:off quiet video=vesafb:off console=tty0 console=ttyS0,115200n8",
            PASSTHROUGH,
            [],
            "video=efifb:off quiet video=vesafb:off console=tty0 console=ttyS0,115200n8 intel_iommu=on iommu=pt",
        ),
        # quoted values stay one token and keep their quotes
        ('quiet dyndbg="module vfio_pci +p" splash', {"iommu": "pt"}, [], 'quiet dyndbg="module vfio_pci +p" splash iommu=pt'),
        ("quiet", {"acpi_osi": '"Windows 2015"'}, [], 'quiet acpi_osi="Windows 2015"'),
        # trailing spaces and wrapped lines become one clean line
        ("root=ZFS=rpool/ROOT/pve-1 boot=zfs   \n", PASSTHROUGH, [], "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt"),
        ("root=ZFS=rpool/ROOT/pve-1\n  boot=zfs\nquiet\n", {"iommu": "pt"}, [], "root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet iommu=pt"),
        # flags and numbers
        ("quiet", {"nomodeset": True, "pcie_aspm": None, "nofb": ""}, [], "quiet nomodeset pcie_aspm nofb"),
        ("quiet", {"i915.enable_guc": 0, "i915.max_vfs": 7}, [], "quiet i915.enable_guc=0 i915.max_vfs=7"),
        ("quiet nomodeset=1", {"nomodeset": True}, [], "quiet nomodeset"),
        # module parameters: dash and underscore are the same key
        ("quiet vfio_pci.ids=10de:13c2", {"vfio-pci.ids": "10de:13c2,10de:0fbb"}, [], "quiet vfio-pci.ids=10de:13c2,10de:0fbb"),
        # absent: a bare name removes every occurrence, flag or valued
        ("quiet nomodeset splash nomodeset=1 iommu=pt", {}, ["nomodeset"], "quiet splash iommu=pt"),
        ("iommu=soft quiet iommu=pt", {}, ["iommu"], "quiet"),
        # absent: key=value removes only that exact argument
        ("iommu=soft quiet iommu=pt", {}, ["iommu=soft"], "quiet iommu=pt"),
        ("video=efifb:off video=vesafb:off quiet", {}, ["video=vesafb:off"], "video=efifb:off quiet"),
        # both at once
        ("quiet nomodeset intel_iommu=off", PASSTHROUGH, ["nomodeset"], "quiet intel_iommu=on iommu=pt"),
        ("", PASSTHROUGH, [], "intel_iommu=on iommu=pt"),
    ],
)
def test_set_args(line, present, absent, expected):
    assert kc.set_args(line, present, absent) == expected
    assert kc.set_args(expected, present, absent) == expected


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_set_args_on_fixtures_is_idempotent_and_keeps_the_rest(name):
    line = read_fixture(name)
    present = {"intel_iommu": "on", "iommu": "pt", "vfio-pci.ids": "8086:3e92"}
    absent = ["nomodeset"]
    once = kc.set_args(line, present, absent)
    assert kc.set_args(once, present, absent) == once
    facts = output_readers.analyze_cmdline(once)
    assert facts["intel_iommu"] == ["on"]
    assert facts["iommu"] == ["pt"]
    assert facts["vfio_pci_ids"] == ["8086:3e92"]
    assert "nomodeset" not in facts["params"]
    managed = {"intel_iommu", "iommu", "vfio-pci.ids", "nomodeset"}
    others = [t for t in kc.parse(line) if kc.split_arg(t)[0] not in managed]
    assert [t for t in kc.parse(once) if kc.split_arg(t)[0] not in managed] == others
    # first argument stays first: the boot loader prefix is never moved
    assert kc.parse(once)[0] == kc.parse(line)[0]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_set_args_without_changes_only_normalizes_whitespace(name):
    line = read_fixture(name)
    assert kc.set_args(line, {}, []) == line.strip()


@pytest.mark.parametrize(
    "present, absent, words",
    [
        ({"intel iommu": "on"}, [], "intel iommu"),
        ({"": "on"}, [], "empty"),
        ({"iommu=pt": True}, [], "iommu=pt"),
        ({"acpi_osi": "Windows 2015"}, [], "whitespace"),
        ({"acpi_osi": 'Windows"'}, [], "quotes"),
        ({"acpi_osi": "'x y'"}, [], "quotes"),
        ({"iommu": "pt\n"}, [], "whitespace"),
        ({"nomodeset": False}, [], "absent"),
        ({"vfio-pci.ids": ["8086:3e92"]}, [], "commas"),
        ({"iommu": "pt"}, ["iommu"], "both"),
        ({"vfio-pci.ids": "8086:3e92"}, ["vfio_pci.ids"], "both"),
        ({"iommu": "pt"}, ["iommu=soft"], "both"),
        ({}, ["two words"], "whitespace"),
        ({}, "nomodeset", "list"),
    ],
)
def test_set_args_rejects_input_that_would_break_the_line(present, absent, words):
    with pytest.raises(PassthroughError) as caught:
        kc.set_args("quiet", present, absent)
    assert caught.value.link == "input"
    assert caught.value.fix
    assert words in str(caught.value)


def test_carries_and_conflicts():
    live = "BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro intel_iommu=off quiet intel_iommu=on iommu=pt"
    assert kc.carries(live, PASSTHROUGH, ["nomodeset"]) is True
    assert kc.carries(live, {"iommu": "pt", "nomodeset": True}, []) is False
    assert kc.carries(live, PASSTHROUGH, ["quiet"]) is False
    assert kc.carries(live, {"intel_iommu": "off"}, []) is False
    assert kc.carries("quiet iommu=pti", {"iommu": "pt"}, []) is False
    assert kc.conflicting_tokens("quiet intel_iommu=off iommu=pt nomodeset", PASSTHROUGH, ["nomodeset"]) == ["intel_iommu=off", "nomodeset"]


# --------------------------------------------------------------------------- /etc/kernel/cmdline


def test_kernel_cmdline_file_round_trip():
    wrapped = "root=ZFS=rpool/ROOT/pve-1 boot=zfs\nintel_iommu=on   \n\n"
    assert kc.read_kernel_cmdline(wrapped) == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on"
    assert kc.kernel_cmdline_needs_rewrite(wrapped, kc.read_kernel_cmdline(wrapped)) is True
    new = kc.set_args(kc.read_kernel_cmdline(wrapped), PASSTHROUGH, [])
    assert kc.write_kernel_cmdline(new) == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n"
    assert kc.kernel_cmdline_needs_rewrite(kc.write_kernel_cmdline(new), new) is False
    # whitespace alone does not cause a rewrite
    assert kc.kernel_cmdline_needs_rewrite("root=ZFS=rpool/ROOT/pve-1  boot=zfs ", "root=ZFS=rpool/ROOT/pve-1 boot=zfs") is False
    assert kc.kernel_cmdline_needs_rewrite("root=ZFS=rpool/ROOT/pve-1 boot=zfs\n", "root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt") is True


def test_strip_loader_args_matches_what_proxmox_boot_tool_falls_back_to():
    live = read_fixture("proc-cmdline-proxmox-systemd-boot-zfs-5.4.73-1-pve-intel_iommu-iommu_pt.txt")
    assert kc.strip_loader_args(live) == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt"
    grub_live = read_fixture("proc-cmdline-proxmox-grub-6.8.12-2-pve-intel_iommu-only-no-iommu_pt.txt")
    assert kc.strip_loader_args(grub_live) == "root=/dev/mapper/pve-root ro quiet intel_iommu=on"


# --------------------------------------------------------------------------- GRUB default files

# Shaped like the stock files: Debian 12 computes the distributor with lsb_release, Proxmox VE 8 from os-release.
DEBIAN_GRUB = """\
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
# For full documentation of the options in this file, see:
#   info -f grub -n 'Simple configuration'

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
# the installer's default; don't put root= here
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""

# os-prober is off by default; uncomment to look for other systems
#GRUB_DISABLE_OS_PROBER=false

# Uncomment to get a beep at grub start
#GRUB_INIT_TUNE="480 440 1"
"""

PROXMOX_GRUB = """\
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`( . /etc/os-release && echo ${NAME} )`
GRUB_CMDLINE_LINUX_DEFAULT='quiet'
#GRUB_CMDLINE_LINUX_DEFAULT='quiet intel_iommu=on iommu=pt nomodeset'
GRUB_CMDLINE_LINUX="root=ZFS=rpool/ROOT/pve-1 boot=zfs"

# Disable os-prober, it might add menu entries for each guest
GRUB_DISABLE_OS_PROBER=true
"""

BARE_GRUB = """\
GRUB_DEFAULT=0
GRUB_TIMEOUT=5
   GRUB_CMDLINE_LINUX_DEFAULT=quiet   # set by the installer
GRUB_CMDLINE_LINUX=
"""


def changed_lines(before, after):
    old = before.splitlines(True)
    new = after.splitlines(True)
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new) if a != b]


def test_read_grub_on_stock_files():
    assert kc.read_grub(DEBIAN_GRUB) == "quiet"
    assert kc.read_grub(DEBIAN_GRUB, "GRUB_CMDLINE_LINUX") == ""
    assert kc.read_grub(PROXMOX_GRUB) == "quiet"
    assert kc.read_grub(PROXMOX_GRUB, "GRUB_CMDLINE_LINUX") == "root=ZFS=rpool/ROOT/pve-1 boot=zfs"
    assert kc.read_grub(PROXMOX_GRUB, "GRUB_DISABLE_OS_PROBER") == "true"
    assert kc.read_grub(BARE_GRUB) == "quiet"
    assert kc.read_grub(BARE_GRUB, "GRUB_CMDLINE_LINUX") == ""
    assert kc.read_grub(DEBIAN_GRUB, "GRUB_GFXMODE") is None


def test_write_grub_double_quotes_changes_one_value_only():
    value = kc.set_args(kc.read_grub(DEBIAN_GRUB), PASSTHROUGH, [])
    after = kc.write_grub(DEBIAN_GRUB, kc.GRUB_VARIABLE, value)
    assert changed_lines(DEBIAN_GRUB, after) == [('GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n', 'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"\n')]
    assert kc.read_grub(after) == "quiet intel_iommu=on iommu=pt"
    assert kc.write_grub(after, kc.GRUB_VARIABLE, kc.set_args(kc.read_grub(after), PASSTHROUGH, [])) == after


def test_write_grub_single_quotes_kept_and_commented_assignment_ignored():
    value = kc.set_args(kc.read_grub(PROXMOX_GRUB), PASSTHROUGH, [])
    after = kc.write_grub(PROXMOX_GRUB, kc.GRUB_VARIABLE, value)
    assert changed_lines(PROXMOX_GRUB, after) == [("GRUB_CMDLINE_LINUX_DEFAULT='quiet'\n", "GRUB_CMDLINE_LINUX_DEFAULT='quiet intel_iommu=on iommu=pt'\n")]
    # a value holding a single quote cannot stay single-quoted
    odd = kc.write_grub(PROXMOX_GRUB, kc.GRUB_VARIABLE, "quiet it's")
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet it\'s"\n' in odd
    assert kc.read_grub(odd) == "quiet it's"


def test_write_grub_unquoted_gets_double_quotes_only_when_needed():
    after = kc.write_grub(BARE_GRUB, kc.GRUB_VARIABLE, "quiet iommu=pt")
    assert changed_lines(BARE_GRUB, after) == [
        ("   GRUB_CMDLINE_LINUX_DEFAULT=quiet   # set by the installer\n", '   GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"   # set by the installer\n')
    ]
    single = kc.write_grub(BARE_GRUB, kc.GRUB_VARIABLE, "iommu=pt")
    assert "   GRUB_CMDLINE_LINUX_DEFAULT=iommu=pt   # set by the installer\n" in single
    # GRUB_CMDLINE_LINUX is a different variable and is not touched
    assert single.endswith("GRUB_CMDLINE_LINUX=\n")


def test_write_grub_escapes_what_double_quotes_would_expand():
    after = kc.write_grub(DEBIAN_GRUB, kc.GRUB_VARIABLE, 'quiet acpi_osi="Windows 2015" x=$HOME')
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet acpi_osi=\\"Windows 2015\\" x=\\$HOME"\n' in after
    assert kc.read_grub(after) == 'quiet acpi_osi="Windows 2015" x=$HOME'


def test_last_assignment_wins():
    text = 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n# later override\nGRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\n'
    assert kc.read_grub(text) == "quiet splash"
    after = kc.write_grub(text, kc.GRUB_VARIABLE, "quiet splash iommu=pt")
    assert after == 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n# later override\nGRUB_CMDLINE_LINUX_DEFAULT="quiet splash iommu=pt"\n'


def test_wrapped_and_exported_assignments():
    text = 'export GRUB_CMDLINE_LINUX_DEFAULT="quiet\n    intel_iommu=on"\nGRUB_TIMEOUT=5\n'
    assert kc.parse(kc.read_grub(text)) == ["quiet", "intel_iommu=on"]
    after = kc.write_grub(text, kc.GRUB_VARIABLE, kc.set_args(kc.read_grub(text), PASSTHROUGH, []))
    assert after == 'export GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"\nGRUB_TIMEOUT=5\n'


def test_missing_variable_is_appended():
    text = 'GRUB_DEFAULT=0\n#GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_TIMEOUT=5'
    after = kc.write_grub(text, kc.GRUB_VARIABLE, "intel_iommu=on iommu=pt")
    assert after == text + '\nGRUB_CMDLINE_LINUX_DEFAULT="intel_iommu=on iommu=pt"\n'
    assert kc.write_grub("", kc.GRUB_VARIABLE, "quiet") == 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'


def test_values_built_by_expansion_are_refused():
    text = DEBIAN_GRUB + 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT iommu=pt"\n'
    with pytest.raises(PassthroughError) as caught:
        kc.read_grub(text, path="/etc/default/grub.d/90-local.cfg")
    assert caught.value.link == "file"
    assert "/etc/default/grub.d/90-local.cfg" in str(caught.value)
    with pytest.raises(PassthroughError):
        kc.write_grub(text, kc.GRUB_VARIABLE, "quiet")
    # escaped dollars are plain text
    assert kc.read_grub('GRUB_CMDLINE_LINUX_DEFAULT="a=\\$x"\n') == "a=$x"


# Proxmox writes GRUB_DEFAULT to this drop-in when a kernel is pinned; cloud images set the command line in a drop-in.
KERNEL_PIN_CFG = 'GRUB_DEFAULT="gnulinux-advanced-5f1c2d>gnulinux-6.8.12-4-pve-advanced-5f1c2d"\n'
CLOUDIMG_CFG = '# Cloud image defaults\nGRUB_CMDLINE_LINUX_DEFAULT="console=tty1 console=ttyS0"\nGRUB_TIMEOUT=0\n'
LOCAL_CFG = "GRUB_CMDLINE_LINUX_DEFAULT='quiet console=ttyS0,115200'\n"


def test_effective_grub_file_follows_update_grub_order():
    main = ("/etc/default/grub", DEBIAN_GRUB)
    pin = ("/etc/default/grub.d/proxmox-kernel-pin.cfg", KERNEL_PIN_CFG)
    cloud = ("/etc/default/grub.d/50-cloudimg-settings.cfg", CLOUDIMG_CFG)
    local = ("/etc/default/grub.d/90-local.cfg", LOCAL_CFG)
    assert kc.effective_grub_file(main, []) == "/etc/default/grub"
    assert kc.effective_grub_file(main, [pin]) == "/etc/default/grub"
    assert kc.effective_grub_file(main, [cloud, pin]) == "/etc/default/grub.d/50-cloudimg-settings.cfg"
    # lexical order decides, not the order given
    assert kc.effective_grub_file(main, [local, pin, cloud]) == "/etc/default/grub.d/90-local.cfg"
    assert kc.effective_grub_file(main, [cloud], "GRUB_CMDLINE_LINUX") == "/etc/default/grub"
    assert kc.effective_grub_file(("/etc/default/grub", "GRUB_TIMEOUT=5\n"), [pin]) == "/etc/default/grub"


# --------------------------------------------------------------------------- boot loader detection

# Laid out as proxmox-boot-tool status prints it (src/bin/proxmox-boot-tool in proxmox-kernel-helper).
PBT_UEFI = """\
System currently booted with uefi
5C3A-1F2B is configured with: uefi (versions: 6.8.12-4-pve, 6.8.8-2-pve)
5C3A-9D0E is configured with: uefi (versions: 6.8.12-4-pve, 6.8.8-2-pve)
"""
PBT_GRUB_LEGACY = """\
System currently booted with legacy bios
8B1D-4E77 is configured with: grub (versions: 6.5.13-5-pve, 6.8.12-4-pve)
"""
PBT_GRUB_ON_UEFI = """\
System currently booted with uefi
8B1D-4E77 is configured with: grub (versions: 6.8.12-4-pve)
"""
PBT_MIXED = """\
System currently booted with uefi
5C3A-1F2B is configured with: uefi (versions: 6.8.12-4-pve)
8B1D-4E77 is configured with: grub (versions: 6.8.12-4-pve)
"""
PBT_NONE = "E: /etc/kernel/proxmox-boot-uuids does not exist.\n"


def test_parse_pbt_status():
    assert kc.parse_pbt_status(PBT_MIXED) == {
        "booted": "uefi",
        "esps": [{"uuid": "5C3A-1F2B", "modes": ["uefi"]}, {"uuid": "8B1D-4E77", "modes": ["grub"]}],
    }
    assert kc.parse_pbt_status(
        "System currently booted with uefi\nAB12-CD34 is configured with: uefi (versions: 6.8.12-4-pve), grub (versions: 6.8.12-4-pve)\n"
    )["esps"] == [{"uuid": "AB12-CD34", "modes": ["uefi", "grub"]}]
    assert kc.parse_pbt_status(PBT_NONE) == {"booted": None, "esps": []}


@pytest.mark.parametrize(
    "kwargs, bootloader, path, refresh",
    [
        # Proxmox VE, ZFS on UEFI: systemd-boot ESPs managed by proxmox-boot-tool
        (
            dict(pbt_present=True, pbt_status=PBT_UEFI, kernel_cmdline_exists=True, grub_exists=True),
            "systemd-boot",
            "/etc/kernel/cmdline",
            [["proxmox-boot-tool", "refresh"]],
        ),
        # the file may be missing on such hosts; status alone decides
        (dict(pbt_present=True, pbt_status=PBT_UEFI), "systemd-boot", "/etc/kernel/cmdline", [["proxmox-boot-tool", "refresh"]]),
        # Proxmox VE, ZFS on legacy BIOS or grub ESPs: GRUB, still refreshed by proxmox-boot-tool
        (dict(pbt_present=True, pbt_status=PBT_GRUB_LEGACY, grub_exists=True), "grub", "/etc/default/grub", [["proxmox-boot-tool", "refresh"]]),
        (dict(pbt_present=True, pbt_status=PBT_GRUB_ON_UEFI, grub_exists=True), "grub", "/etc/default/grub", [["proxmox-boot-tool", "refresh"]]),
        # a uefi ESP on a legacy-booted system is refreshed through GRUB
        (
            dict(pbt_present=True, pbt_status="System currently booted with legacy bios\n5C3A-1F2B is configured with: uefi (versions: 6.8.12-4-pve)\n"),
            "grub",
            "/etc/default/grub",
            [["proxmox-boot-tool", "refresh"]],
        ),
        # Proxmox VE on LVM: proxmox-boot-tool installed but managing nothing
        (dict(pbt_present=True, pbt_status=PBT_NONE, grub_exists=True), "grub", "/etc/default/grub", [["update-grub"]]),
        # plain Debian with GRUB
        (dict(grub_exists=True, kernel_versions=["6.1.0-18-amd64"]), "grub", "/etc/default/grub", [["update-grub"]]),
        # plain Debian with systemd-boot: one kernel-install per kernel, oldest first
        (
            dict(kernel_cmdline_exists=True, kernel_versions=["6.1.0-18-amd64", "6.1.0-9-amd64"]),
            "systemd-boot",
            "/etc/kernel/cmdline",
            [
                ["kernel-install", "add", "6.1.0-9-amd64", "/boot/vmlinuz-6.1.0-9-amd64"],
                ["kernel-install", "add", "6.1.0-18-amd64", "/boot/vmlinuz-6.1.0-18-amd64"],
            ],
        ),
        # explicit choices
        (dict(bootloader="grub", pbt_present=True, pbt_status=PBT_UEFI), "grub", "/etc/default/grub", [["proxmox-boot-tool", "refresh"]]),
        (dict(bootloader="grub"), "grub", "/etc/default/grub", [["update-grub"]]),
        (
            dict(bootloader="systemd-boot", grub_exists=True, kernel_versions=["6.12.9-amd64"]),
            "systemd-boot",
            "/etc/kernel/cmdline",
            [["kernel-install", "add", "6.12.9-amd64", "/boot/vmlinuz-6.12.9-amd64"]],
        ),
        (
            dict(bootloader="systemd-boot", grub_file="/x/grub", kernel_cmdline_file="/x/cmdline", pbt_present=True, pbt_status=PBT_GRUB_ON_UEFI),
            "systemd-boot",
            "/x/cmdline",
            [["proxmox-boot-tool", "refresh"]],
        ),
        # status output is ignored when the tool is not present
        (dict(pbt_present=False, pbt_status=PBT_UEFI, grub_exists=True), "grub", "/etc/default/grub", [["update-grub"]]),
    ],
)
def test_detect_bootloader(kwargs, bootloader, path, refresh):
    found = kc.detect_bootloader(**kwargs)
    assert found["bootloader"] == bootloader
    assert found["path"] == path
    assert found["refresh_command"] == refresh


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(), ["/etc/kernel/cmdline", "/etc/default/grub", "proxmox-boot-tool"]),
        (dict(pbt_present=True, pbt_status=PBT_NONE), ["/etc/kernel/cmdline", "/etc/default/grub"]),
        (dict(grub_file="/srv/grub", kernel_cmdline_file="/srv/cmdline"), ["/srv/grub", "/srv/cmdline"]),
        (dict(pbt_present=True, pbt_status=PBT_MIXED), ["grub", "systemd-boot"]),
        (dict(kernel_cmdline_exists=True, grub_exists=True), ["both"]),
        (dict(kernel_cmdline_exists=True), ["vmlinuz"]),
        (dict(bootloader="lilo"), ["lilo"]),
    ],
)
def test_detect_bootloader_errors(kwargs, words):
    with pytest.raises(PassthroughError) as caught:
        kc.detect_bootloader(**kwargs)
    message = str(caught.value)
    for word in words:
        assert word in message
    if kwargs.get("bootloader") != "lilo":
        assert caught.value.link == "bootloader"
        assert "bootloader:" in caught.value.fix or "bootloader: grub" in message


# ----------------------------------------------------------------- refusals of the core


@pytest.mark.parametrize("name", ["GRUB CMDLINE", "X;reboot", "$(x)", "9X", "", None, "GRUB-X"])
def test_grub_variable_must_be_a_shell_name(name):
    with pytest.raises(PassthroughError) as caught:
        kc.validate_grub_variable(name)
    assert "plain shell variable name" in str(caught.value)
    with pytest.raises(PassthroughError):
        kc.write_grub(DEBIAN_GRUB, name, "quiet")


def test_unterminated_quote_never_pulls_the_next_line_in():
    text = 'GRUB_CMDLINE_LINUX_DEFAULT="quiet\nGRUB_TIMEOUT=5\n'
    with pytest.raises(PassthroughError) as caught:
        kc.read_grub(text, path="/etc/default/grub")
    assert "unterminated double quote" in str(caught.value) and "line 1" in str(caught.value)
    with pytest.raises(PassthroughError):
        kc.write_grub(text, kc.GRUB_VARIABLE, "quiet iommu=pt")


def test_quoted_continuation_is_kept_as_the_same_arguments():
    text = 'GRUB_CMDLINE_LINUX_DEFAULT="quiet \\\n splash"\n'
    assert kc.parse(kc.read_grub(text)) == ["quiet", "splash"]


@pytest.mark.parametrize("value", ["$(reboot)", "a;b", "`x`", "a\\b", "{x}", "a|b", "*"])
def test_shell_text_values_are_refused(value):
    with pytest.raises(PassthroughError) as caught:
        kc.validate_args({"initcall_blacklist": value}, [])
    assert "syntax" in str(caught.value)


@pytest.mark.parametrize("value", ["8086:3e92,8086:a348", "efifb:off", "ttyS0,115200n8", "1", '"a b"', "ZFS=rpool/ROOT/pve-1", "!Windows"])
def test_plain_values_pass(value):
    kc.validate_args({"x": value}, [])


def test_plan_kernel_cmdline_root_rules():
    live = "initrd=\\EFI\\proxmox\\6.8.12-4-pve\\initrd.img root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet"
    with pytest.raises(PassthroughError) as caught:
        kc.plan_kernel_cmdline("\n", live, PASSTHROUGH, [], "/etc/kernel/cmdline")
    assert "is empty" in str(caught.value) and "root=ZFS=rpool/ROOT/pve-1" in str(caught.value)
    previous, line, changed, after = kc.plan_kernel_cmdline("\n", live, PASSTHROUGH, [], take_root_from_live=True)
    assert line == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt" and changed and after == line + "\n"
    assert kc.plan_kernel_cmdline(None, live, PASSTHROUGH, [])[1] == "root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet intel_iommu=on iommu=pt"
    with pytest.raises(PassthroughError):
        kc.plan_kernel_cmdline("root=/dev/sda1\n", live, {}, ["root"])
