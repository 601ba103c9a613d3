# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pci_mapping: map entries from a node's device list, and converge over a recording fake session."""

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import pci_mapping

# GET /nodes/pve1/hardware/pci rows (pve-manager PVE/API2/Hardware/PCI.pm), an M920q's iGPU and audio
DEVICES = [
    {"id": "0000:00:02.0", "class": "0x030000", "vendor": "0x8086", "device": "0x3e92", "subsystem_vendor": "0x17aa",
     "subsystem_device": "0x3136", "iommugroup": 1, "mdev": 1},
    {"id": "0000:00:1f.3", "class": "0x040300", "vendor": "0x8086", "device": "0xa348", "iommugroup": 12},
]


@pytest.mark.parametrize("path", ["0000:00:02.0", "00:02.0", "00:02", "8086:3E92"])
def test_build_entry_from_address_or_ids(path):
    entry, mdev = pci_mapping.build_entry("pve1", path, DEVICES)
    assert entry == "node=pve1,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1"
    assert mdev is True


@pytest.mark.parametrize("path, words", [("0000:00:03.0", "No PCI device 0000:00:03.0"), ("8086:ffff", "8086:ffff"),
                                         ("zz:02.0", "Invalid PCI address"), ("00:02.0;00:1f.3", "not all the same model")])
def test_build_entry_refusals_name_the_input(path, words):
    with pytest.raises(PassthroughError) as info:
        pci_mapping.build_entry("pve1", path, DEVICES)
    assert words in info.value.message and info.value.fix


def test_entries_compare_by_meaning():
    assert pci_mapping._same_entry("node=pve1,path=0000:00:02.0,id=8086:3E92,description=x", "path=0000:00:02.0,node=pve1,id=8086:3e92")
    assert not pci_mapping._same_entry("node=pve1,path=0000:00:02.0,id=8086:3e92", "node=pve2,path=0000:00:02.0,id=8086:3e92")


class FakeSession:
    def __init__(self, mappings):
        self.mappings = mappings
        self.calls = []

    def get(self, path, **params):
        self.calls.append(("GET", path))
        if path == "/cluster/mapping/pci":
            return self.mappings
        return DEVICES

    def post(self, path, **params):
        self.calls.append(("POST", path, params))

    def put(self, path, **params):
        self.calls.append(("PUT", path, params))

    def delete(self, path, **params):
        self.calls.append(("DELETE", path))


def params(**kw):
    p = {"name": "igpu", "description": None, "devices": [{"node": "pve1", "path": "00:02.0"}], "mdev": None, "state": "present"}
    p.update(kw)
    return p


def test_converge_creates_then_is_unchanged():
    session = FakeSession([])
    result = pci_mapping.converge(session, params())
    assert result["changed"] and session.calls[-1][0] == "POST"
    existing = [{"id": "igpu", "map": [session.calls[-1][2]["map"][0]], "mdev": 1, "digest": "d1"}]
    again = FakeSession(existing)
    assert pci_mapping.converge(again, params())["changed"] is False
    assert [c[0] for c in again.calls] == ["GET", "GET"]


def test_converge_refuses_a_bad_id_before_any_request():
    session = FakeSession([])
    with pytest.raises(PassthroughError) as info:
        pci_mapping.converge(session, params(name="1gpu"))
    assert info.value.details["option"] == "name" and session.calls == []


def test_check_mode_writes_nothing():
    session = FakeSession([])
    assert pci_mapping.converge(session, params(), check_mode=True)["changed"]
    assert all(c[0] == "GET" for c in session.calls)
