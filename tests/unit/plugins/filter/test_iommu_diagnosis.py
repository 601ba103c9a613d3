"""The iommu_diagnosis / iommu_report_lines / iommu_summary filters as a playbook calls them."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.gpu_passthrough.plugins.filter.iommu_diagnosis import FilterModule

FILTERS = FilterModule().filters()
GPU = "0000:00:02.0"


def _facts(driver="vfio-pci", cmdline=("quiet", "intel_iommu=on", "iommu=pt"), isolated=True, vendor="intel"):
    members = [GPU] if isolated else [GPU, "0000:00:02.1"]
    devices = {GPU: {"vendor_id": "8086", "device_id": "3e92", "class_id": "030000", "driver": driver,
                     "iommu_group": "2", "is_bridge": False, "is_gpu": True}}
    if not isolated:
        devices["0000:00:02.1"] = {"vendor_id": "8086", "device_id": "abcd", "class_id": "0c0330", "driver": "xhci_hcd",
                                   "iommu_group": "2", "is_bridge": False, "is_gpu": False}
    return {
        "enabled": True, "vendor": vendor, "firmware_vtd": True, "passthrough_mode": True,
        "cmdline": list(cmdline), "groups": {"2": members}, "devices": devices, "gpus": [GPU],
        "target": {"address": GPU, "group": "2", "isolated": isolated, "group_devices": members,
                   "reasons": [] if isolated else ["0000:00:02.1 (xhci_hcd) shares group 2"]},
    }


def test_registered_names():
    assert sorted(FILTERS) == ["iommu_diagnosis", "iommu_report_lines", "iommu_summary"]


# name, facts, filter kwargs, expected status words per link
TABLE = [
    ("healthy host", _facts(), {}, ["ok"] * 6),
    ("no DMAR", dict(_facts(), firmware_vtd=False, vendor=None, enabled=False, groups={}), {},
     ["FAIL", "ok", "FAIL", "FAIL", "FAIL", "ok"]),
    ("cmdline missing", _facts(cmdline=["quiet"]), {}, ["ok", "FAIL", "ok", "ok", "ok", "ok"]),
    ("IOMMU off", dict(_facts(), enabled=False, groups={}), {}, ["ok", "ok", "FAIL", "FAIL", "FAIL", "ok"]),
    ("GPU sharing a group", _facts(isolated=False), {"group": False}, ["ok", "ok", "ok", "ok", "FAIL", "ok"]),
    ("GPU sharing a group, whole group judged", _facts(isolated=False), {}, ["ok", "ok", "ok", "ok", "FAIL", "FAIL"]),
    ("wrong driver", _facts(driver="i915"), {}, ["ok"] * 5 + ["FAIL"]),
    ("wrong driver, other driver expected", _facts(driver="i915"), {"expected_driver": "i915"}, ["ok"] * 6),
    ("reboot pending", _facts(driver="i915", cmdline=["quiet"]), {"reboot_pending": True},
     ["ok", "PEND", "ok", "ok", "ok", "PEND"]),
    ("custom cmdline", _facts(), {"cmdline": {"intel_iommu": "on", "video": "efifb:off"}}, ["ok", "FAIL"] + ["ok"] * 4),
]


@pytest.mark.parametrize("name,facts,kwargs,words", TABLE, ids=[t[0] for t in TABLE])
def test_table(name, facts, kwargs, words):
    links = FILTERS["iommu_diagnosis"](facts, **kwargs)
    lines = FILTERS["iommu_report_lines"](links)
    assert [line.split(" ", 1)[0] for line in lines] == words
    for line, link in zip(lines, links):
        assert (" — fix: " in line) == (not link["ok"])
    verdict = FILTERS["iommu_summary"](links)
    assert verdict["ok"] == all(w == "ok" for w in words)
    assert len(verdict["failed"]) == words.count("FAIL")
    assert len(verdict["pending"]) == words.count("PEND")


def test_report_lines_accepts_facts_and_appends_summary():
    lines = FILTERS["iommu_report_lines"](_facts(driver="i915"), summary=True)
    assert len(lines) == 7
    assert lines[-1] == "5/6 links ok; FAIL: driver binding"
    assert "options vfio-pci ids=8086:3e92" in lines[5]


def test_null_facts_fail_every_link_with_a_fix():
    lines = FILTERS["iommu_report_lines"](FILTERS["iommu_diagnosis"](None))
    assert len(lines) == 6
    assert all(line.startswith("FAIL ") and " — fix: " in line for line in lines)


def test_parts_are_plain_data():
    parts = FILTERS["iommu_diagnosis"](_facts())
    assert all(set(part) == {"part", "link", "title", "ok", "pending", "detail", "fix"} for part in parts)


@pytest.mark.parametrize("call,args,kwargs,message", [
    ("iommu_diagnosis", (["a"],), {}, "expects the ansible_facts.iommu dictionary"),
    ("iommu_diagnosis", ("text",), {}, "expects the ansible_facts.iommu dictionary"),
    ("iommu_diagnosis", ({},), {"cmdline": "intel_iommu=on"}, "cmdline must be a dict"),
    ("iommu_diagnosis", ({},), {"driver_mode": "nouveau"}, "driver_mode must be vfio_ids or blacklist"),
    ("iommu_report_lines", ("text",), {}, "expects the list from iommu_diagnosis"),
    ("iommu_report_lines", ([{"ok": True}],), {}, "is not one of its parts"),
    ("iommu_summary", (42,), {}, "expects the list from iommu_diagnosis"),
])
def test_bad_input(call, args, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        FILTERS[call](*args, **kwargs)
