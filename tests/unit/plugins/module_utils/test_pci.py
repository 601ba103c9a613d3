# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pci.scan, device selection, isolation and dmesg verdicts over real listings, lspci and dmesg output."""

import os
import re

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import pci
from ansible_collections.homelab.gpu_passthrough.tests.unit.conftest import FIXTURES
from ansible_collections.homelab.gpu_passthrough.tests.unit.sysfs_builder import build_root, parse_listing


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


ALDERLAKE = "iommu/loop-tab-format-alderlake-4680-12th-gen-sorted.txt"
ALDERLAKE_LSPCI = "lspci/nnk-alderlake-4680-igpu-i915-host-rx560-vfio-pci.txt"
AMD = "iommu/loop-tab-format-amd-ryzen-matisse-glob-order.txt"
COFFEELAKE_DESKTOP = "iommu/single-line-coffeelake-3e92-desktop-name-glob-order.txt"
DELL = "iommu/single-line-proxmox-dell-coffeelake-3e92-igpu-group0-glob-order.txt"
TRUENAS = "iommu/single-line-truenas-coffeelake-3e92-igpu-group0-with-cmdline.txt"
FIND = "iommu/find-type-l-intel-igpu-alone-group2-sorted.txt"

# Counts and the iGPU's group as EXPECTED.md states them for each listing.
LISTINGS = {
    FIND: {"groups": 15, "devices": 21, "multi": {"1": 3, "9": 2, "11": 3, "12": 2}, "igpu_group": "2"},
    ALDERLAKE: {"groups": 36, "devices": 43, "multi": {"7": 2, "8": 3, "18": 4, "23": 2}, "igpu_group": "3"},
    AMD: {"groups": 32, "devices": 47, "multi": {"12": 2, "13": 8, "20": 4, "21": 2, "22": 2, "23": 2, "27": 2}, "igpu_group": None},
    COFFEELAKE_DESKTOP: {"groups": 15, "devices": 21, "multi": {"1": 3, "4": 2, "11": 4}, "igpu_group": "2"},
    DELL: {"groups": 14, "devices": 21, "multi": {"2": 2, "5": 2, "7": 2, "11": 5}, "igpu_group": "0"},
    TRUENAS: {"groups": 12, "devices": 15, "multi": {"2": 2, "8": 3}, "igpu_group": "0"},
}

# raw find output shows no classes; the source names 0000:00:02.0 an Intel iGPU.
FIND_KNOWN = {"0000:00:02.0": {"class_id": "0300", "vendor_id": "8086"}}


def root_for(tmp_path, name, **kwargs):
    if name == FIND:
        kwargs.setdefault("devices", FIND_KNOWN)
    if name == ALDERLAKE:
        kwargs.setdefault("lspci", fixture(ALDERLAKE_LSPCI))
    kwargs.setdefault("acpi_table", "IVRS" if name == AMD else "DMAR")
    return build_root(tmp_path, fixture(name), **kwargs)


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_listing_groups_and_devices(tmp_path, name):
    expected = LISTINGS[name]
    facts = pci.scan(root_for(tmp_path, name))
    assert facts["enabled"] is True
    assert len(facts["groups"]) == expected["groups"]
    assert len(facts["devices"]) == expected["devices"]
    assert {g: len(m) for g, m in facts["groups"].items() if len(m) > 1} == expected["multi"]
    assert list(facts["groups"]) == sorted(facts["groups"], key=int)
    for group, members in facts["groups"].items():
        assert members == sorted(members)
        for address in members:
            assert re.match(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$", address)
            assert facts["devices"][address]["iommu_group"] == group


@pytest.mark.parametrize("name", [n for n in sorted(LISTINGS) if LISTINGS[n]["igpu_group"]])
def test_igpu_alone_in_its_group(tmp_path, name):
    facts = pci.scan(root_for(tmp_path, name), device="auto")
    assert facts["target"] == {
        "address": "0000:00:02.0",
        "group": LISTINGS[name]["igpu_group"],
        "isolated": True,
        "group_devices": ["0000:00:02.0"],
        "reasons": [],
    }


@pytest.mark.parametrize("name", [COFFEELAKE_DESKTOP, DELL, TRUENAS])
def test_3e92_by_id_and_by_short_address(tmp_path, name):
    root = root_for(tmp_path, name)
    by_id = pci.scan(root, device="8086:3E92")["target"]
    by_short = pci.scan(root, device="00:02.0")["target"]
    assert by_id == by_short
    assert by_id["isolated"] is True
    igpu = pci.scan(root)["devices"]["0000:00:02.0"]
    assert (igpu["vendor_id"], igpu["device_id"], igpu["class_id"], igpu["is_gpu"]) == ("8086", "3e92", "0300", True)


def test_amd_rx580_shares_group_27_only_with_its_hdmi_audio(tmp_path):
    root = root_for(tmp_path, AMD)
    facts = pci.scan(root, device="1002:67df")
    assert facts["vendor"] == "amd"
    assert facts["target"] == {
        "address": "0000:2d:00.0",
        "group": "27",
        "isolated": True,
        "group_devices": ["0000:2d:00.0", "0000:2d:00.1"],
        "reasons": [],
    }
    audio = pci.scan(root, device="0000:2d:00.1")["target"]
    assert audio["isolated"] is True
    gt710 = pci.scan(root, device="24:00.0")["target"]
    assert (gt710["group"], gt710["isolated"]) == ("23", True)


def test_amd_auto_skips_the_host_bridge_at_00_02_0(tmp_path):
    facts = pci.scan(root_for(tmp_path, AMD), device="auto")
    assert facts["devices"]["0000:00:02.0"]["is_bridge"] is True
    assert facts["gpus"] == ["0000:24:00.0", "0000:2d:00.0"]
    assert facts["target"]["address"] == "0000:24:00.0"


@pytest.mark.parametrize(
    "target, others",
    [
        ("0000:00:14.0", ["0000:00:14.2"]),
        ("0000:00:14.2", ["0000:00:14.0"]),
        ("0000:00:15.1", ["0000:00:15.0", "0000:00:15.2"]),
        ("0000:00:1f.3", ["0000:00:1f.4", "0000:00:1f.5"]),
    ],
)
def test_alderlake_chipset_groups_are_not_isolated(tmp_path, target, others):
    facts = pci.scan(root_for(tmp_path, ALDERLAKE), device=target)
    verdict = facts["target"]
    assert verdict["isolated"] is False
    assert verdict["group_devices"] == facts["groups"][verdict["group"]]
    assert len(verdict["reasons"]) == len(others)
    for other, reason in zip(others, verdict["reasons"]):
        assert other in reason
        assert verdict["group"] in reason


def test_alderlake_rx560_with_audio_is_isolated_and_on_vfio(tmp_path):
    facts = pci.scan(root_for(tmp_path, ALDERLAKE), device="04:00.1")
    assert facts["target"]["isolated"] is True
    assert facts["devices"]["0000:04:00.0"]["driver"] == "vfio-pci"
    assert facts["devices"]["0000:00:02.0"]["driver"] == "i915"
    assert facts["devices"]["0000:00:01.0"]["driver"] == "pcieport"
    assert facts["devices"]["0000:00:14.2"]["driver"] is None
    assert facts["gpus"] == ["0000:00:02.0", "0000:03:00.0", "0000:04:00.0"]


def test_gpu_behind_its_root_port_is_isolated(tmp_path):
    facts = pci.scan(root_for(tmp_path, COFFEELAKE_DESKTOP), device="10de:1b81")
    assert facts["target"]["group_devices"] == ["0000:00:01.0", "0000:01:00.0", "0000:01:00.1"]
    assert facts["target"]["isolated"] is True


def test_device_of_unknown_class_is_not_taken_for_a_bridge(tmp_path):
    facts = pci.scan(root_for(tmp_path, FIND), device="0000:05:00.0")
    assert facts["devices"]["0000:00:1c.7"]["class_id"] is None
    assert facts["target"]["isolated"] is False
    assert "0000:00:1c.7" in facts["target"]["reasons"][0]


def test_a_bridge_is_never_isolated(tmp_path):
    facts = pci.scan(root_for(tmp_path, DELL), device="00:1d.0")
    assert facts["target"]["isolated"] is False
    assert "bridge" in facts["target"]["reasons"][0]


def _sorted_listing(text):
    """The same listing with its groups in numeric order, lines inside a group untouched."""
    blocks = []
    for line in text.splitlines():
        header = re.match(r"^IOMMU [Gg]roup (\d+)", line)
        if header and (line.rstrip().endswith(":") or not blocks or blocks[-1][0] != header.group(1)):
            blocks.append((header.group(1), [line]))
        else:
            blocks[-1][1].append(line)
    blocks.sort(key=lambda block: int(block[0]))
    return "\n".join(line for dummy_group, lines in blocks for line in lines) + "\n"


@pytest.mark.parametrize("name", [AMD, COFFEELAKE_DESKTOP, DELL])
def test_glob_order_parses_like_sorted(tmp_path, name):
    text = fixture(name)
    resorted = _sorted_listing(text)
    assert parse_listing(text)["group_order"] != parse_listing(resorted)["group_order"]
    assert sorted(text.splitlines()) == sorted(resorted.splitlines())
    acpi = "IVRS" if name == AMD else "DMAR"
    glob_facts = pci.scan(build_root(tmp_path / "glob", text, acpi_table=acpi), device="auto")
    sorted_facts = pci.scan(build_root(tmp_path / "sorted", resorted, acpi_table=acpi), device="auto")
    assert glob_facts == sorted_facts


def test_truenas_cmdline_line_sets_passthrough(tmp_path):
    listing = parse_listing(fixture(TRUENAS))
    assert len(listing["other_lines"]) == 1
    facts = pci.scan(root_for(tmp_path, TRUENAS, cmdline=listing["other_lines"][0]))
    assert facts["passthrough_mode"] is True
    assert "intel_iommu=on" in facts["cmdline"]
    assert facts["cmdline"][0].startswith("BOOT_IMAGE=")


# iommu_pt_effective per EXPECTED.md for the command-line fixtures.
CMDLINES = {
    "cmdline/proc-cmdline-proxmox-grub-6.5.11-8-pve-intel_iommu-iommu_pt.txt": True,
    "cmdline/proc-cmdline-proxmox-grub-6.8.12-2-pve-intel_iommu-only-no-iommu_pt.txt": False,
    "cmdline/proc-cmdline-proxmox-systemd-boot-zfs-5.4.73-1-pve-intel_iommu-iommu_pt.txt": True,
    "cmdline/proc-cmdline-proxmox-systemd-boot-zfs-7.0.6-2-pve-no-iommu-nomodeset.txt": False,
    "cmdline/proc-cmdline-manjaro-haswell-intel_iommu-vfio-pci-ids-nvidia.txt": True,
    "cmdline/proc-cmdline-fedora-coffeelake-no-iommu-params.txt": False,
    "cmdline/proc-cmdline-ubuntu-gvt-g-i915-enable_gvt.txt": False,
}


@pytest.mark.parametrize("name", sorted(CMDLINES))
def test_proc_cmdline_fixtures(tmp_path, name):
    if not os.path.exists(os.path.join(FIXTURES, name)):
        pytest.skip("cmdline fixture not present")
    text = fixture(name)
    facts = pci.scan(build_root(tmp_path, fixture(DELL), cmdline=text))
    assert facts["passthrough_mode"] is CMDLINES[name]
    assert facts["cmdline"] == text.split()


@pytest.mark.parametrize(
    "line, expected",
    [
        ("ro quiet intel_iommu=on iommu=pt", True),
        ("ro quiet intel_iommu=on iommu=pti", True),
        ("intel_iommu=on iommu=nopt", False),
        ("iommu=pt iommu=nopt", False),
        ("iommu=soft,pt", True),
        ("iommu=pt iommu.passthrough=0", False),
        ("iommu.passthrough=1", True),
        ("intel_iommu=on", False),
        ("", False),
    ],
)
def test_passthrough_mode_reads_like_the_kernel(line, expected):
    assert pci.passthrough_in_effect(pci.split_cmdline(line)) is expected


def test_cmdline_keeps_quotes_and_backslashes():
    tokens = pci.split_cmdline('initrd=\\EFI\\proxmox\\initrd.img dyndbg="file vfio_pci.c +p" ro\n')
    assert tokens == ["initrd=\\EFI\\proxmox\\initrd.img", 'dyndbg="file vfio_pci.c +p"', "ro"]


def test_host_without_iommu(tmp_path):
    root = build_root(tmp_path, None, lspci=fixture(ALDERLAKE_LSPCI), acpi_table=None, cmdline="ro quiet")
    facts = pci.scan(root, device="auto")
    assert (facts["enabled"], facts["vendor"], facts["firmware_vtd"], facts["groups"]) == (False, None, False, {})
    assert facts["devices"]["0000:00:02.0"]["iommu_group"] is None
    assert facts["target"]["isolated"] is False
    assert facts["target"]["group"] is None
    assert "no IOMMU group" in facts["target"]["reasons"][0]


def test_empty_root(tmp_path):
    facts = pci.scan(str(tmp_path))
    assert facts == {
        "enabled": False, "vendor": None, "firmware_vtd": False, "passthrough_mode": False,
        "cmdline": [], "groups": {}, "devices": {}, "gpus": [],
    }


@pytest.mark.parametrize(
    "name, address, class_id, driver",
    [
        ("lspci/nn-grep-display-controller-class-0380-cometlake-9bc8.txt", "0000:00:02.0", "0380", None),
        ("lspci/nnv-head-cometlake-9bc8-prog-if-apple-subsystem.txt", "0000:00:02.0", "0300", None),
        ("lspci/D-nn-grep-VGA-alderlake-n-n100-46d1-proxmox.txt", "0000:00:02.0", "0300", None),
        ("lspci/Dnnk-grep-A3-alderlake-s-4680-display-controller-i915-xe-plus-nvidia.txt", "0000:00:02.0", "0380", "i915"),
        ("lspci/Dnnk-grep-A3-alderlake-s-4680-display-controller-i915-xe-plus-nvidia.txt", "0000:01:00.0", "0300", "nvidia"),
    ],
)
def test_display_classes_from_lspci(tmp_path, name, address, class_id, driver):
    facts = pci.scan(build_root(tmp_path, None, lspci=fixture(name)), device="auto")
    device = facts["devices"][address]
    assert (device["class_id"], device["driver"], device["is_gpu"]) == (class_id, driver, True)
    assert address in facts["gpus"]
    assert facts["target"]["address"] == "0000:00:02.0"


def test_auto_without_intel_igpu_takes_first_display_device(tmp_path):
    root = build_root(tmp_path, None, lspci=fixture(ALDERLAKE_LSPCI).replace("00:02.0 VGA compatible controller [0300]", "00:02.0 Non-VGA [0001]"))
    facts = pci.scan(root, device="auto")
    assert facts["target"]["address"] == "0000:03:00.0"


@pytest.mark.parametrize("spec", ["0000:00:1F.3", "00:1f.3", " 00:1f.3 "])
def test_address_forms(tmp_path, spec):
    assert pci.scan(root_for(tmp_path, DELL), device=spec)["target"]["address"] == "0000:00:1f.3"


@pytest.mark.parametrize(
    "spec, words",
    [
        ("0000:07:00.0", ["0000:07:00.0", "0000:00:02.0"]),
        ("dead:beef", ["dead:beef", "0000:00:02.0"]),
        ("00:02", ["00:02", "0000:00:02.0"]),
        ("0000:00:02", ["0000:00:02"]),
        ("00:2g.0", ["00:2g.0"]),
        ("00:20.0", ["00:20.0", "1f"]),
        ("00:02.8", ["00:02.8"]),
        ("igpu", ["igpu", "8086:3e92"]),
        ("", ["''"]),
    ],
)
def test_bad_device_names_the_input_and_the_fix(tmp_path, spec, words):
    with pytest.raises(PassthroughError) as caught:
        pci.scan(root_for(tmp_path, DELL), device=spec)
    text = str(caught.value)
    assert caught.value.fix
    assert caught.value.link == "input"
    for word in words:
        assert word in text


def test_auto_without_any_display_device(tmp_path):
    root = build_root(tmp_path, fixture(AMD).replace("[0300]", "[0380]").replace("[0380]", "[0200]"), acpi_table="IVRS")
    with pytest.raises(PassthroughError) as caught:
        pci.scan(root, device="auto")
    assert "auto" in str(caught.value)
    assert "no display-class device was found" in str(caught.value)


# The dmesg verdicts EXPECTED.md gives, minus its notes.
DMESG = {
    "dmesg/amd-ryzen-matisse-grep-dmar-iommu-fresh-install-no-params.txt": {
        "vendor": "amd", "iommu_enabled": True,
        "evidence": ["pci 0000:00:00.2: AMD-Vi: Found IOMMU cap 0x40", '47 "Adding to iommu group" lines'],
        "default_domain": "Translated", "irq_remapping": None,
    },
    "dmesg/intel-alderlake-s-proxmox-grep-i915-vt-d-active-leading-lines.txt": {
        "vendor": "intel", "iommu_enabled": True, "evidence": ["i915 0000:00:02.0: [drm] VT-d active for gfx access"],
        "default_domain": None, "irq_remapping": None,
    },
    "dmesg/intel-fedora-coffeelake-i7-9700-no-intel_iommu-default-domain-translated-excerpt.txt": {
        "vendor": "intel", "iommu_enabled": False, "evidence": [], "default_domain": "Translated", "irq_remapping": None,
    },
    "dmesg/intel-intel_iommu-off-dmar-iommu-disabled-kernel-4.13-excerpt.txt": {
        "vendor": "intel", "iommu_enabled": False, "evidence": ["DMAR: IOMMU disabled"], "default_domain": None, "irq_remapping": None,
    },
    "dmesg/intel-kubevirt-grep-iommu-enable-single-line.txt": {
        "vendor": "intel", "iommu_enabled": True, "evidence": ["DMAR: IOMMU enabled"], "default_domain": None, "irq_remapping": None,
    },
    "dmesg/intel-proxmox-coffeelake-dell-grep-dmar-iommu-amdvi-full-success.txt": {
        "vendor": "intel", "iommu_enabled": True,
        "evidence": ["DMAR: IOMMU enabled", "DMAR: Intel(R) Virtualization Technology for Directed I/O"],
        "default_domain": None, "irq_remapping": "x2apic",
    },
}
# The Fedora excerpt names no vendor in its four lines (EXPECTED.md knows it from the mail around it),
# so the verdict takes the vendor the ACPI tables give, as iommu_facts passes it.
DMESG_VENDOR_HINT = {"dmesg/intel-fedora-coffeelake-i7-9700-no-intel_iommu-default-domain-translated-excerpt.txt": "intel"}


def test_every_dmesg_fixture_has_an_expectation():
    assert sorted("dmesg/" + n for n in os.listdir(os.path.join(FIXTURES, "dmesg"))) == sorted(DMESG)


@pytest.mark.parametrize("name", sorted(DMESG))
def test_dmesg_verdict(name):
    assert pci.dmesg_verdict(fixture(name), vendor=DMESG_VENDOR_HINT.get(name)) == DMESG[name]


def test_dmesg_without_vendor_lines_has_no_vendor_of_its_own():
    name = "dmesg/intel-fedora-coffeelake-i7-9700-no-intel_iommu-default-domain-translated-excerpt.txt"
    assert pci.dmesg_verdict(fixture(name))["vendor"] is None


def test_dmar_table_lines_alone_prove_nothing():
    text = "".join(line + "\n" for line in fixture(
        "dmesg/intel-proxmox-coffeelake-dell-grep-dmar-iommu-amdvi-full-success.txt").splitlines()
        if "IOMMU enabled" not in line and "Directed I/O" not in line)
    verdict = pci.dmesg_verdict(text)
    assert (verdict["vendor"], verdict["iommu_enabled"], verdict["evidence"]) == ("intel", False, [])
    assert verdict["irq_remapping"] == "x2apic"


def test_amd_cap_without_group_lines_is_not_enough():
    lines = [line for line in fixture("dmesg/amd-ryzen-matisse-grep-dmar-iommu-fresh-install-no-params.txt").splitlines()
             if "Adding to iommu group" not in line]
    verdict = pci.dmesg_verdict("\n".join(lines))
    assert (verdict["vendor"], verdict["iommu_enabled"]) == ("amd", False)


def test_passthrough_default_domain_with_trailing_space():
    text = "[    0.41] iommu: Default domain type: Passthrough (set via kernel command line) \n[    0.05] DMAR: IOMMU enabled\n"
    verdict = pci.dmesg_verdict(text)
    assert (verdict["default_domain"], verdict["iommu_enabled"]) == ("Passthrough", True)


def test_dmesg_verdict_on_nothing():
    assert pci.dmesg_verdict("") == {"vendor": None, "iommu_enabled": False, "evidence": [], "default_domain": None, "irq_remapping": None}


# --- vfio-pci file and plan


def test_conf_round_trip_keeps_foreign_lines():
    text = "# my GPU\noptions vfio-pci ids=10de:13c2,10de:0fbb disable_vga=1\nsoftdep nouveau pre: vfio-pci\nblacklist nouveau\n"
    conf = pci.parse_vfio_conf(text)
    assert conf["ids"] == ["10de:13c2", "10de:0fbb"]
    assert conf["options"] == ["disable_vga=1"]
    assert conf["softdeps"] == ["nouveau"]
    assert conf["other_lines"] == ["# my GPU", "blacklist nouveau"]
    rendered = pci.render_vfio_conf(conf)
    assert rendered.splitlines()[0] == pci.MANAGED_HEADER
    assert "options vfio-pci ids=10de:0fbb,10de:13c2 disable_vga=1\n" in rendered
    assert pci.render_vfio_conf(pci.parse_vfio_conf(rendered)) == rendered


def test_conf_with_nothing_left_is_removed():
    conf = pci.parse_vfio_conf(pci.MANAGED_HEADER + "\n")
    assert pci.render_vfio_conf(conf) is None


def test_plan_refuses_a_shared_group(tmp_path):
    facts = pci.scan(root_for(tmp_path, AMD))
    with pytest.raises(PassthroughError) as caught:
        pci.plan_vfio(facts, str(tmp_path), ["2d:00.0"])
    assert caught.value.link == "group"
    assert "0000:2d:00.1" in str(caught.value)
    assert "group: true" in str(caught.value)


def test_plan_group_true_takes_endpoints_not_bridges(tmp_path):
    root = root_for(tmp_path, COFFEELAKE_DESKTOP)
    plan = pci.plan_vfio(pci.scan(root), root, ["10de:1b81"], add_group=True)
    assert plan["devices"] == ["0000:01:00.0", "0000:01:00.1"]
    assert plan["ids"] == ["10de:10f0", "10de:1b81"]
    assert "ids=10de:10f0,10de:1b81" in plan["conf_after"]


def test_plan_refuses_a_bridge(tmp_path):
    root = root_for(tmp_path, COFFEELAKE_DESKTOP)
    with pytest.raises(PassthroughError) as caught:
        pci.plan_vfio(pci.scan(root), root, ["00:01.0"], add_group=True)
    assert "00:01.0" in str(caught.value)


def test_plan_softdeps_use_module_names(tmp_path):
    root = root_for(tmp_path, ALDERLAKE)
    plan = pci.plan_vfio(pci.scan(root), root, ["00:14.0", "00:14.2"])
    # xhci_hcd is the driver; xhci_pci is the module a softdep must name.
    assert "softdep xhci_pci pre: vfio-pci" in plan["conf_after"].splitlines()
    assert plan["runtime"] == {"0000:00:14.0": "bind", "0000:00:14.2": "bind"}


def test_plan_resolves_alias_for_a_device_already_on_vfio(tmp_path):
    root = root_for(tmp_path, ALDERLAKE)
    seen = []

    def resolve(alias):
        seen.append(alias)
        return ["amdgpu"] if alias.startswith("pci:v00001002d000067FF") else ["snd_hda_intel"]

    plan = pci.plan_vfio(pci.scan(root), root, ["04:00.0", "04:00.1"], resolve_alias=resolve)
    assert len(seen) == 2
    assert plan["runtime"] == {"0000:04:00.0": None, "0000:04:00.1": None}
    assert "softdep amdgpu pre: vfio-pci" in plan["conf_after"]
    assert "softdep snd_hda_intel pre: vfio-pci" in plan["conf_after"]


def test_scan_survives_non_utf8_sysfs_and_cmdline(tmp_path):
    root = build_root(tmp_path, fixture("iommu/find-type-l-intel-igpu-alone-group2-sorted.txt"), cmdline="ro intel_iommu=on")
    with open(os.path.join(root, "sys/bus/pci/devices/0000:00:02.0/vendor"), "wb") as handle:
        handle.write(b"0x80\xff86\n")
    with open(os.path.join(root, "proc/cmdline"), "wb") as handle:
        handle.write(b"ro intel_iommu=on \xe9t\xe9\n")
    facts = pci.scan(root)
    assert facts["devices"]["0000:00:02.0"]["vendor_id"] is None
    assert "intel_iommu=on" in facts["cmdline"]
