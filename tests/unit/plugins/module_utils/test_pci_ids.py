# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pci_ids: the one normaliser for PCI addresses, vendor:device ids and hex ids."""

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pci_ids


@pytest.mark.parametrize("text, full", [
    ("00:02.0", "0000:00:02.0"),
    (" 0000:00:02.0 ", "0000:00:02.0"),
    ("01:00", "0000:01:00"),
    ("0000:0A:00.1", "0000:0a:00.1"),
    ("10000:00:1f.3", "10000:00:1f.3"),
])
def test_address_adds_the_domain_and_folds_case(text, full):
    assert pci_ids.address(text) == full


@pytest.mark.parametrize("text, ok", [
    ("0000:00:02.0", True), ("00:02.0", True), ("01:00", True), ("0000:0A:00.0", False),
    ("0:02.0", False), ("00:02.0;00:1f.3", False), ("", False), (None, False), ("8086:3e92", False),
])
def test_is_address_follows_pve_pcire(text, ok):
    assert pci_ids.is_address(text) is ok


def test_address_lists_only_when_allowed():
    assert pci_ids.is_address("0000:01:00.0;0000:01:00.1", allow_list=True)
    assert not pci_ids.is_address("0000:01:00.0;junk", allow_list=True)


def test_functions_and_slots():
    assert pci_ids.has_function("0000:00:02.0") and not pci_ids.has_function("0000:01:00")
    assert pci_ids.with_function("01:00") == "0000:01:00.0"
    assert pci_ids.same_slot("0000:01:00.1", "01:00")
    assert pci_ids.same_slot("0000:01:00.1", "0000:01:00.1")
    assert not pci_ids.same_slot("0000:01:00.1", "0000:01:00.0")
    assert not pci_ids.same_slot("0000:01:001.0", "0000:01:00")


@pytest.mark.parametrize("value, width, out", [
    ("0x8086", 4, "8086"), ("8086", 4, "8086"), ("0X3E92", 4, "3e92"), (32902, 4, "8086"), ("0x10", 4, "0010"),
    ("0x030000", 6, "030000"), ("junk", 4, None), (None, 4, None), ("", 4, None), ("0x123456", 4, None), (True, 4, None),
])
def test_hex_id(value, width, out):
    assert pci_ids.hex_id(value, width=width) == out


@pytest.mark.parametrize("text, out", [
    ("8086:3E92", "8086:3e92"), (" 10de:1c82 ", "10de:1c82"), ("00:02.0", None), ("8086-3e92", None), (None, None),
])
def test_vendor_device(text, out):
    assert pci_ids.vendor_device(text) == out


def test_vendor_device_of_a_hardware_pci_row():
    # GET /nodes/{node}/hardware/pci row as pve-manager answers it (0x-prefixed hex strings)
    row = {"id": "0000:00:02.0", "vendor": "0x8086", "device": "0x3e92", "subsystem_vendor": "0x17aa", "subsystem_device": "0x3136"}
    assert pci_ids.vendor_device_of(row) == "8086:3e92"
    assert pci_ids.vendor_device_of(row, prefix="subsystem_") == "17aa:3136"
    assert pci_ids.vendor_device_of({"id": "0000:00:1f.0"}) is None


@pytest.mark.parametrize("text, ok", [("igpu", True), ("enp0_vf", True), ("uhd-630", True), ("1gpu", False), ("a", False),
                                      ("gpu/0", False), ("", False)])
def test_config_ids(text, ok):
    assert pci_ids.is_config_id(text) is ok
