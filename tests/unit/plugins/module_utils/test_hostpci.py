# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hostpci: parse/format round trips, validation rules, qm config and pvesh table parsing."""

import os

import pytest
import yaml
from ansible_collections.homelab.gpu_passthrough.plugins.doc_fragments.hostpci import ModuleDocFragment
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import hostpci
from ansible_collections.homelab.gpu_passthrough.tests.unit import output_readers

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")


def read(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def pci(index, host, mapping, has_function, options, raw):
    return {"index": index, "host": host, "mapping": mapping, "host_has_function": has_function, "options": options, "raw": raw}


# Transcribed from the fixture expectations ("Proxmox VM configs"); not produced by the parser.
EXPECTED = {
    "qm/conf-101-opnsense-q35-ovmf-hostpci-resource-mapping-sriov-vf.txt": {
        "hostpci": [
            pci(0, None, "enp0_vf", None, {}, "mapping=enp0_vf"),
            pci(1, None, "enp1_vf", None, {}, "mapping=enp1_vf"),
        ],
        "machine": "q35",
        "bios": "ovmf",
        "efidisk0": "local-lvm:vm-101-disk-0,efitype=4m,size=4M",
        "vga": None,
        "args": None,
        "boot": "order=scsi0;ide2;net0",
    },
    "qm/conf-103-debian-q35-seabios-x-vga-rombar0-serial-tags.txt": {
        "hostpci": [
            pci(0, "0000:00:02.0", None, True, {"pcie": "1", "x-vga": "1", "rombar": "0"}, "0000:00:02.0,pcie=1,x-vga=1,rombar=0"),
        ],
        "machine": "q35",
        "bios": None,
        "efidisk0": None,
        "vga": "none",
        "args": None,
        "boot": "order=scsi0;ide2;net0",
    },
    "qm/conf-103-plex-q35-ovmf-secureboot-ms-cert-2023-hostpci-pcie.txt": {
        "hostpci": [pci(0, "0000:00:02.0", None, True, {"pcie": "1"}, "0000:00:02.0,pcie=1")],
        "machine": "q35",
        "bios": "ovmf",
        "efidisk0": "local-lvm:vm-103-disk-0,efitype=4m,ms-cert=2023,pre-enrolled-keys=1,size=4M",
        "vga": None,
        "args": None,
        "boot": "order=scsi0;ide2;net0",
    },
    "qm/hostpci-line-mapping-gvtg-mdev-v5_4.txt": {
        "hostpci": [pci(0, None, "igpu", None, {"mdev": "i915-GVTg_V5_4"}, "mapping=igpu,mdev=i915-GVTg_V5_4")],
    },
    "qm/hostpci-line-mapping-pcie-rombar-x-vga-0.txt": {
        "hostpci": [
            pci(0, None, "neuromancer-igpu", None, {"pcie": "1", "rombar": "1", "x-vga": "0"}, "mapping=neuromancer-igpu,pcie=1,rombar=1,x-vga=0"),
        ],
    },
    "qm/qm-config-100-win11-uhd630-legacy-igd-short-pci-address-empty-boot.txt": {
        "hostpci": [
            pci(0, "0000:00:02", None, False, {"legacy-igd": "1", "romfile": "igpu-uhd630.rom"}, "0000:00:02,legacy-igd=1,romfile=igpu-uhd630.rom"),
            pci(1, "0000:00:1f.3", None, True, {}, "0000:00:1f.3"),
        ],
        "machine": "pc-i440fx-9.2",
        "bios": "ovmf",
        "efidisk0": "local-lvm:vm-100-disk-1,efitype=4m,pre-enrolled-keys=1,size=4M",
        "vga": "none",
        "args": "-set device.hostpci0.addr=02.0 -set device.hostpci0.x-igd-gms=0x2 -set device.hostpci0.x-igd-opregion=on",
        "boot": "",
    },
}

FIELD_CASES = [(name, field) for name, facts in sorted(EXPECTED.items()) for field in facts]


def test_every_qm_fixture_has_expectations():
    names = sorted("qm/" + n for n in os.listdir(os.path.join(FIXTURES, "qm")))
    assert names == sorted(EXPECTED)


@pytest.mark.parametrize(("name", "field"), FIELD_CASES)
def test_parse_vm_config_fixture_field(name, field):
    facts = output_readers.parse_vm_config(read(name))
    assert facts[field] == EXPECTED[name][field]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_vm_config_keeps_every_line_as_config(name):
    text = read(name)
    facts = output_readers.parse_vm_config(text)
    keys = [line.split(":", 1)[0] for line in text.splitlines() if line.strip()]
    assert sorted(facts["config"]) == sorted(keys)
    assert all("error" not in entry for entry in facts["hostpci"])


def test_parse_vm_config_sections_description_and_empty_values():
    text = (
        "#GPU%20worker%3A k3s\n"
        "#second line\n"
        "boot:\n"
        "cdrom: none,media=cdrom\n"
        "hostpci0: 0000:00:02.0,pcie=1\n"
        "hostpci1: 0000:00:02.0,frobnicate=1\n"
        "machine: q35\n"
        "\n"
        "[PENDING]\n"
        "machine: pc\n"
        "[before-upgrade]\n"
        "hostpci2: 0000:01:00.0\n"
    )
    facts = output_readers.parse_vm_config(text)
    assert facts["description"] == "GPU worker: k3s\nsecond line"
    assert facts["boot"] == ""
    assert facts["config"]["ide2"] == "none,media=cdrom"
    assert facts["machine"] == "q35"
    assert facts["sections"] == ["PENDING", "before-upgrade"]
    assert [e["index"] for e in facts["hostpci"]] == [0, 1]
    assert "invalid key" in facts["hostpci"][1]["error"]
    assert facts["hostpci"][1]["host"] is None


def test_parse_vm_config_never_raises_on_junk():
    facts = output_readers.parse_vm_config("not a config\n: nothing\n[unterminated\n")
    assert facts["config"] == {} and facts["hostpci"] == []
    assert output_readers.parse_vm_config(None)["hostpci"] == []


def _fixture_hostpci_values():
    values = []
    for name in sorted(EXPECTED):
        for line in read(name).splitlines():
            if line.startswith("hostpci"):
                values.append(line.split(": ", 1)[1])
    return values


CONSTRUCTED = [
    "0000:01:00",
    "01:00.0;01:00.1",
    "0000:01:00.0;0000:01:00.1,pcie=1",
    "mapping=igpu,mdev=i915-GVTg_V5_4",
    "0000:00:02.0,driver=keep",
    "host=0000:00:02.0,pcie=1",
    "0000:00:02.0,vendor-id=0x8086,device-id=0x3e92,sub-vendor-id=0x1028,sub-device-id=0x085a",
    "mapping=igpu,pcie=1,rombar=0,x-vga=1,romfile=uhd630.rom",
    "00:02.0,legacy-igd=1",
    "10000:00:02.0",
    "mapping=neuromancer-igpu,pcie=on,driver=vfio",
]


@pytest.mark.parametrize("value", _fixture_hostpci_values() + CONSTRUCTED)
def test_parse_format_round_trip(value):
    parsed = hostpci.parse(value)
    assert hostpci.format(parsed) == value
    assert hostpci.parse(hostpci.format(parsed)) == parsed


def test_fixture_values_are_collected():
    assert len(_fixture_hostpci_values()) == 8


@pytest.mark.parametrize(
    ("value", "host", "hosts", "has_function", "mapping", "options"),
    [
        ("0000:01:00", "0000:01:00", ["0000:01:00"], False, None, {}),
        ("01:00.0;01:00.1", "01:00.0;01:00.1", ["01:00.0", "01:00.1"], True, None, {}),
        ("01:00.0;01:00", "01:00.0;01:00", ["01:00.0", "01:00"], False, None, {}),
        ("mapping=igpu,mdev=i915-GVTg_V5_4", None, [], None, "igpu", {"mdev": "i915-GVTg_V5_4"}),
        ("0000:00:02.0,driver=keep", "0000:00:02.0", ["0000:00:02.0"], True, None, {"driver": "keep"}),
        ("host=00:02.0,,pcie=1", "00:02.0", ["00:02.0"], True, None, {"pcie": "1"}),
    ],
)
def test_parse_parts(value, host, hosts, has_function, mapping, options):
    parsed = hostpci.parse(value)
    assert (parsed["host"], parsed["hosts"], parsed["host_has_function"], parsed["mapping"], parsed["options"]) == (
        host,
        hosts,
        has_function,
        mapping,
        options,
    )
    assert parsed["raw"] == value


def test_host_key_written_explicitly_is_kept():
    assert hostpci.parse("host=0000:00:02.0")["host_keyed"] is True
    assert hostpci.parse("0000:00:02.0")["host_keyed"] is False


@pytest.mark.parametrize(
    ("flat", "expected"),
    [
        ({"host": "0000:00:02.0", "pcie": True, "x-vga": False}, "0000:00:02.0,pcie=1,x-vga=0"),
        ({"host": ["0000:01:00.0", "0000:01:00.1"], "rombar": 0}, "0000:01:00.0;0000:01:00.1,rombar=0"),
        ({"mapping": "igpu", "mdev": "i915-GVTg_V5_4", "romfile": None}, "mapping=igpu,mdev=i915-GVTg_V5_4"),
        ({"host": "0000:00:02.0", "options": {"driver": "keep"}}, "0000:00:02.0,driver=keep"),
    ],
)
def test_format_flat_dicts(flat, expected):
    assert hostpci.format(flat) == expected


def test_format_is_the_contract_name():
    assert hostpci.format is hostpci.format_hostpci


def test_format_refuses_commas_and_unknown_keys():
    with pytest.raises(PassthroughError, match="illegal value with commas"):
        hostpci.format({"host": "0000:00:02.0", "romfile": "a,b.rom"})
    with pytest.raises(PassthroughError, match="invalid key"):
        hostpci.format({"host": "0000:00:02.0", "options": {"multifunction": "on"}})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0000:00:02.0,pcie=1,pcie=0", "duplicate key in comma-separated list property: pcie"),
        ("0000:00:02.0,0000:00:02.1", "duplicate key in comma-separated list property: host"),
        ("0000:00:02.0,multifunction=on", "invalid key in comma-separated list property: multifunction"),
        ("0000:00:02.0,pcie=", "missing key in comma-separated list property"),
        ("0000:00:1F.3", "Invalid PCI address '0000:00:1F.3'"),
        ("0000:00:02.0,pcie=maybe", "type check ('boolean') failed - got 'maybe' for 'pcie'"),
        ("0000:00:02.0,device-id=3e92", "does not match 0x followed by 4 hex digits"),
        ("0000:00:02.0,driver=i915", "is not one of vfio, keep"),
        ("mapping=1gpu", "invalid configuration ID '1gpu'"),
        ("0000:00:02.0,mdev=i915.GVTg", "may not contain"),
    ],
)
def test_parse_rejects_what_proxmox_rejects(value, message):
    with pytest.raises(PassthroughError) as info:
        hostpci.parse(value)
    assert message in info.value.message
    assert info.value.link == "input"
    assert info.value.fix


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("host=0000:00:02.0", "0000:00:02.0", True),
        ("00:02.0", "0000:00:02.0", True),
        ("0000:00:02.0,rombar=1", "0000:00:02.0", True),
        ("0000:00:02.0,pcie=on,x-vga=0,driver=vfio", "0000:00:02.0,pcie=1", True),
        ("0000:00:02.0,x-vga=1,pcie=1", "0000:00:02.0,pcie=1,x-vga=1", True),
        ("0000:00:02.0,device-id=0x3E92", "0000:00:02.0,device-id=0x3e92", True),
        ("0000:00:02", "0000:00:02.0", False),
        ("0000:00:02.0,pcie=1", "0000:00:02.0", False),
        ("0000:00:02.0,rombar=0", "0000:00:02.0", False),
        ("mapping=igpu", "0000:00:02.0", False),
        ("01:00.0;01:00.1", "01:00.1;01:00.0", False),
    ],
)
def test_equivalent(a, b, same):
    assert hostpci.equivalent(a, b) is same
    assert hostpci.equivalent(hostpci.parse(b), a) is same


@pytest.mark.parametrize(
    ("machine", "q35", "i440fx"),
    [
        ("q35", True, False),
        ("pc-q35-8.1", True, False),
        ("pc-q35-9.2+pve1", True, False),
        ("type=q35,viommu=intel", True, False),
        ("q35,viommu=virtio,aw-bits=48", True, False),
        ("pc", False, True),
        ("pc-i440fx-9.2", False, True),
        ("pc-i440fx-8.1+pve1,enable-s3=1", False, True),
        (None, False, True),
        ("", False, True),
        ("virt", False, False),
    ],
)
def test_machine_helpers(machine, q35, i440fx):
    assert hostpci.is_q35(machine) is q35
    assert hostpci.is_i440fx(machine) is i440fx


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def messages(problems):
    return [p.message for p in problems]


def test_valid_full_passthrough_on_q35_is_clean():
    assert hostpci.validate("0000:00:02.0,pcie=1", machine="q35", bios="ovmf", vga="std", user="root@pam", slot=0) == []


def test_valid_fixture_configs_are_clean_for_root():
    for name in EXPECTED:
        facts = output_readers.parse_vm_config(read(name))
        if facts.get("machine") is None and name.startswith("qm/hostpci-line"):
            continue
        assert hostpci.validate_config(facts["config"], user="root@pam") == [], name


def test_host_and_mapping_together():
    problems = hostpci.validate("0000:00:02.0,mapping=igpu", machine="q35", slot=0)
    assert messages(problems) == ["hostpci0: Cannot set both 'host' and 'mapping' in '0000:00:02.0,mapping=igpu'."]
    assert "either the PCI address or 'mapping=<id>'" in problems[0].fix


def test_neither_host_nor_mapping():
    problems = hostpci.validate({"pcie": 1}, machine="q35", slot=3)
    assert messages(problems) == ["hostpci3: Either 'host' or 'mapping' must be set in 'pcie=1'."]


def test_pcie_needs_q35_naming_the_machine():
    problems = hostpci.validate("0000:00:02.0,pcie=1", machine="pc-i440fx-9.2", slot=0)
    assert len(problems) == 1
    assert "q35 machine model is not enabled" in problems[0].message
    assert "pc-i440fx-9.2" in problems[0].message and "'0000:00:02.0,pcie=1'" in problems[0].message
    assert "machine to q35" in problems[0].fix and "drop pcie=1" in problems[0].fix
    assert problems[0].link == "vm_config"
    default = hostpci.validate("0000:00:02.0,pcie=1", machine=None)
    assert "the default i440fx" in default[0].message


def test_legacy_igd_happy_path_like_the_fixture():
    assert hostpci.validate("0000:00:02,legacy-igd=1,romfile=igpu-uhd630.rom", machine="pc-i440fx-9.2", vga="none", user="root@pam") == []


@pytest.mark.parametrize(
    ("value", "machine", "vga", "message", "fix"),
    [
        ("0000:00:02.0,legacy-igd=1", "pc", None, "legacy IGD assignment requires VGA mode to be 'none'", "vga: none"),
        ("0000:00:02.0,legacy-igd=1", "q35", "none", "legacy IGD assignment is not compatible with q35", "i440fx"),
        ("0000:00:02.0,legacy-igd=1,rombar=0", "pc", "none", "legacy IGD assignment requires rombar to be enabled", "rombar=0"),
        ("0000:00:02.0,legacy-igd=1,x-vga=1", "pc", "none", "legacy IGD assignment is not compatible with x-vga", "x-vga"),
        ("0000:00:02.0,legacy-igd=1,mdev=i915-GVTg_V5_4", "pc", "none", "legacy IGD assignment is not compatible with mdev", "mdev"),
        ("0000:00:02.0;0000:00:02.1,legacy-igd=1", "pc", "none", "legacy IGD assignment is not compatible with multifunction devices", "0000:00:02.0"),
        ("0000:01:00.0,legacy-igd=1", "pc", "none", "legacy IGD assignment only works for devices on host bus 00:02.0", "iGPU"),
    ],
)
def test_legacy_igd_rules(value, machine, vga, message, fix):
    problems = hostpci.validate(value, machine=machine, vga=vga, slot=0)
    assert len(problems) == 1, messages(problems)
    assert message in problems[0].message
    assert repr(value) in problems[0].message
    assert fix in problems[0].fix


def test_mdev_with_multifunction():
    problems = hostpci.validate("0000:00:02.0;0000:00:02.1,mdev=i915-GVTg_V5_4", machine="q35")
    assert messages(problems) == ["hostpciN: cannot use mediated device with multifunction device: '0000:00:02.0;0000:00:02.1,mdev=i915-GVTg_V5_4'."]


@pytest.mark.parametrize("slot", [-1, 16, "x"])
def test_slot_range(slot):
    problems = hostpci.validate("mapping=igpu", machine="q35", slot=slot)
    assert len(problems) == 1
    assert "out of range" in problems[0].message and "0 to 15" in problems[0].fix


def test_slot_from_parsed_entry_index():
    entry = dict(hostpci.parse("0000:00:02.0"), index=16)
    assert "hostpci16: slot 16 is out of range" in hostpci.validate(entry)[0].message


def test_romfile_outside_kvm_dir():
    problems = hostpci.validate("0000:00:02.0,romfile=/root/vbios.rom", machine="q35")
    assert "romfile '/root/vbios.rom' is outside /usr/share/kvm/" in problems[0].message


@pytest.mark.parametrize("user", ["automation@pve", "root@pam!ansible", "automation@pve!ansible", "root@pve"])
def test_raw_host_only_for_root_pam(user):
    problems = hostpci.validate("0000:00:02.0,pcie=1", machine="q35", user=user, slot=0)
    assert len(problems) == 1
    error = problems[0]
    assert "only root can set 'hostpci0' config for non-mapped devices" in error.message
    assert repr(user) in error.message and "0000:00:02.0,pcie=1" in error.message
    assert "mapping" in error.fix and "root@pam" in error.fix and "api_password" in error.fix
    if "!" in user:
        assert "an API token" in error.message


def test_mapping_is_fine_for_a_token_but_romfile_is_not():
    assert hostpci.validate("mapping=igpu,pcie=1", machine="q35", user="automation@pve!ansible") == []
    problems = hostpci.validate("mapping=igpu,romfile=uhd630.rom", machine="q35", user="automation@pve!ansible", slot=1)
    assert messages(problems) == ["only root@pam can set 'romfile' option: hostpci1=mapping=igpu,romfile=uhd630.rom for API user 'automation@pve!ansible'."]


def test_root_pam_may_use_raw_hosts_and_romfile():
    assert hostpci.validate("0000:00:02.0,pcie=1,romfile=uhd630.rom", machine="q35", user="root@pam") == []


def test_validate_raise_errors_raises_first_problem():
    with pytest.raises(PassthroughError) as info:
        hostpci.validate("0000:00:02.0,pcie=1", machine="pc", user="bob@pve", raise_errors=True)
    assert "q35 machine model is not enabled" in str(info.value)
    assert "Fix:" in str(info.value)


def test_validate_returns_parse_errors():
    problems = hostpci.validate("0000:00:02.0,bogus=1")
    assert len(problems) == 1 and "invalid key" in problems[0].message


def test_validate_config_cross_slot_rules():
    config = {
        "machine": "pc",
        "vga": "none",
        "hostpci0": "0000:00:02.0,legacy-igd=1",
        "hostpci1": "00:02.0,legacy-igd=1",
    }
    found = messages(hostpci.validate_config(config))
    assert "only one device can be assigned in legacy-igd mode (hostpci0, hostpci1)." in found
    assert "device '0000:00:02.0' assigned more than once (hostpci0, hostpci1)." in found


def test_validate_config_accepts_parse_vm_config_facts():
    facts = output_readers.parse_vm_config(read("qm/conf-103-debian-q35-seabios-x-vga-rombar0-serial-tags.txt"))
    problems = hostpci.validate_config(facts, user="automation@pve!ansible")
    assert len(problems) == 1 and "non-mapped" in problems[0].message


# ---------------------------------------------------------------------------------------------
# pvesh get /nodes/<node>/hardware/pci
# ---------------------------------------------------------------------------------------------

PVESH = "proxmox-api/pvesh-get-nodes-hardware-pci-table-dell-coffeelake.txt"


def test_pvesh_pci_table_rows():
    rows = output_readers.parse_pvesh_pci_table(read(PVESH))
    assert len(rows) == 21
    by_id = {row["id"]: row for row in rows}
    igpu = by_id["0000:00:02.0"]
    assert igpu == {
        "id": "0000:00:02.0",
        "class": "0x030000",
        "vendor": "0x8086",
        "vendor_name": None,
        "device": "0x3e92",
        "device_name": "CoffeeLake-S GT2 [UHD Graphics 630]",
        "subsystem_vendor": "0x1028",
        "subsystem_vendor_name": "Dell",
        "subsystem_device": "0x085a",
        "subsystem_device_name": None,
        "iommugroup": 0,
        "mdev": False,
    }
    nic = by_id["0000:03:00.0"]
    assert (nic["subsystem_device_name"], nic["iommugroup"]) == ("ConnectX-3 10 GbE Single Port SFP+ Adapter", 13)
    assert by_id["0000:00:14.2"]["subsystem_vendor_name"] == "Intel Cor"
    group11 = sorted(r["id"] for r in rows if r["iommugroup"] == 11)
    assert group11 == ["0000:00:1f.0", "0000:00:1f.3", "0000:00:1f.4", "0000:00:1f.5", "0000:00:1f.6"]


def test_pvesh_pci_table_box_drawing_and_mdev():
    text = (
        "\u250c\u2500\u2500\u252c\u2500\u2500\u2510\n"
        "\u2502 class    \u2502 id           \u2502 iommugroup \u2502 mdev \u2502 vendor \u2502 device \u2502\n"
        "\u255e\u2550\u2550\u256a\u2550\u2550\u2561\n"
        "\u2502 0x030000 \u2502 0000:00:02.0 \u2502 2          \u2502 1    \u2502 0x8086 \u2502 0x3e92 \u2502\n"
        "\u2502 0x040300 \u2502 00:1f.3      \u2502            \u2502      \u2502 0x8086 \u2502 0xa348 \u2502\n"
        "\u2514\u2500\u2500\u2534\u2500\u2500\u2518\n"
    )
    rows = output_readers.parse_pvesh_pci_table(text)
    assert [(r["id"], r["iommugroup"], r["mdev"], r["device"]) for r in rows] == [
        ("0000:00:02.0", 2, True, "0x3e92"),
        ("0000:00:1f.3", -1, False, "0xa348"),
    ]


def test_pvesh_pci_table_junk():
    assert output_readers.parse_pvesh_pci_table("") == []
    assert output_readers.parse_pvesh_pci_table("no table here\n") == []


# ---------------------------------------------------------------------------------------------
# module options -> hostpciN, host resolution against the node's device list
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry, host, expected",
    [
        ({"host": "00:02.0", "pcie": True, "rombar": True, "x_vga": False}, None, "00:02.0,pcie=1,rombar=1,x-vga=0"),
        ({"host": "8086:3e92", "pcie": True}, "0000:00:02.0", "0000:00:02.0,pcie=1"),
        ({"mapping": "uhd630", "pcie": True, "mdev": None, "slot": 3, "state": "present"}, None, "mapping=uhd630,pcie=1"),
        ({"host": "0000:01:00", "x_vga": True, "romfile": "vbios.bin", "legacy_igd": False}, None,
         "0000:01:00,x-vga=1,romfile=vbios.bin,legacy-igd=0"),
    ],
)
def test_entry_value(entry, host, expected):
    assert hostpci.entry_value(entry, host) == expected
    assert hostpci.parse(expected)["raw"] == expected


def test_resolve_host_against_the_pvesh_fixture():
    devices = output_readers.parse_pvesh_pci_table(read(PVESH))
    assert hostpci.resolve_host("8086:3e92", devices, "pve1") == "0000:00:02.0"
    assert hostpci.resolve_host("8086:3E92", devices, "pve1") == "0000:00:02.0"
    assert hostpci.resolve_host("00:02.0", devices, "pve1") == "0000:00:02.0"
    # a slot without function (all functions) and a ';' list
    assert hostpci.resolve_host("0000:00:1f", devices, "pve1") == "0000:00:1f"
    assert hostpci.resolve_host("01:00.0;03:00.0", devices, "pve1") == "0000:01:00.0;0000:03:00.0"
    assert hostpci.is_vendor_device("8086:3e92") and not hostpci.is_vendor_device("00:02.0")


@pytest.mark.parametrize(
    "host, message",
    [
        ("10de:1b80", "No PCI device with ids 10de:1b80 on node pve1"),
        ("8086:a348", None),  # exactly one device: resolves
        ("0000:05:00.0", "No PCI device 0000:05:00.0 on node pve1"),
        ("0000:00:02.0,pcie=1", "not a PCI address or vendor:device ids"),
        ("mapping=uhd630", "not a PCI address or vendor:device ids"),
    ],
)
def test_resolve_host_errors_name_the_option(host, message):
    devices = output_readers.parse_pvesh_pci_table(read(PVESH))
    if message is None:
        assert hostpci.resolve_host(host, devices, "pve1") == "0000:00:1f.3"
        return
    with pytest.raises(PassthroughError) as exc:
        hostpci.resolve_host(host, devices, "pve1")
    assert message in exc.value.message
    assert exc.value.link == "input" and exc.value.details["option"] == "host"
    assert exc.value.fix


def test_resolve_host_ambiguous_ids():
    devices = [{"id": "0000:01:00.0", "vendor": "0x10de", "device": "0x1b80"}, {"id": "0000:02:00.0", "vendor": "0x10de", "device": "0x1b80"}]
    with pytest.raises(PassthroughError) as exc:
        hostpci.resolve_host("10de:1b80", devices, "pve2")
    assert "match 2 devices on node pve2: 0000:01:00.0, 0000:02:00.0" in exc.value.message


def test_entry_host_reads_the_device_list_only_for_a_new_value_or_ids():
    devices = output_readers.parse_pvesh_pci_table(read(PVESH))
    reads = []

    def listed():
        reads.append(1)
        return devices

    held = "0000:00:02.0,pcie=1"
    assert hostpci.entry_host({"host": "00:02.0", "pcie": True}, held, "pve1", listed) == "00:02.0"
    assert reads == []
    assert hostpci.entry_host({"host": "00:02.0", "pcie": False}, held, "pve1", listed) == "0000:00:02.0"
    assert hostpci.entry_host({"host": "8086:3e92", "pcie": True}, held, "pve1", listed) == "0000:00:02.0"
    assert hostpci.entry_host({"host": "00:02.0"}, None, "pve1", listed) == "0000:00:02.0"
    assert len(reads) == 3
    with pytest.raises(PassthroughError):
        hostpci.entry_host({"host": "0000:05:00.0"}, held, "pve1", listed)


def test_entry_value_keeps_the_live_options_the_entry_does_not_give():
    live = "0000:00:02.0,pcie=1,driver=keep,romfile=vbios.rom,x-vga=1"
    assert hostpci.entry_value({"host": "0000:00:02.0", "rombar": False}, previous=live) == \
        "0000:00:02.0,pcie=1,driver=keep,romfile=vbios.rom,x-vga=1,rombar=0"
    # an empty string removes an option; a given option replaces the live one
    assert hostpci.entry_value({"host": "0000:00:02.0", "romfile": "", "driver": "vfio"}, previous=live) == \
        "0000:00:02.0,pcie=1,driver=vfio,x-vga=1"
    # a mapping replaces the raw address, the options stay
    assert hostpci.entry_value({"mapping": "igpu"}, previous="0000:00:02.0,pcie=1") == "mapping=igpu,pcie=1"
    # without a live value: only what is given (Proxmox VE's defaults for the rest)
    assert hostpci.entry_value({"host": "0000:00:02.0", "pcie": True}) == "0000:00:02.0,pcie=1"


def test_entry_host_keeps_a_live_entry_with_options_not_given():
    live = "0000:00:02.0,pcie=1,driver=keep"
    assert hostpci.entry_host({"host": "00:02.0"}, live, "pve1", lambda: pytest.fail("no device read needed")) == "00:02.0"


def test_romfile_permission_follows_the_release_rule():
    assert hostpci.check_permission("mapping=igpu,romfile=vbios.rom", "automation@pve!ansible", "hostpci0")
    assert hostpci.check_permission("mapping=igpu,romfile=vbios.rom", "automation@pve!ansible", "hostpci0", romfile_root_only=False) == []
    assert hostpci.check_permission("0000:00:02.0,romfile=vbios.rom", "root@pam", "hostpci0") == []


# ------------------------------------------------------------------------------------------------ the entry options


def test_the_doc_fragment_documents_the_entry_spec_in_both_forms():
    spec = hostpci.entry_argument_spec()
    single = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    listed = yaml.safe_load(ModuleDocFragment.ENTRIES)["options"]["hostpci"]["suboptions"]
    assert set(single) == set(spec)
    for name, option in spec.items():
        documented = {k: single[name].get(k) for k in ("type", "default", "choices")}
        assert documented == {k: option.get(k) for k in ("type", "default", "choices")}, name
    # the list form: the same options, text and all, plus the slot an entry takes from its place in the list
    assert {name: listed[name] for name in spec} == single
    assert set(listed) - set(spec) == {"slot"} and "default" not in listed["slot"]
    # each module gets its own spec to keep
    assert hostpci.entry_argument_spec() is not spec and hostpci.entry_argument_spec()["host"] is not spec["host"]
