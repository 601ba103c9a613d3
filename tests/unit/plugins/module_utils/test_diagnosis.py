"""diagnosis.diagnose/format_lines/summarize over the hosts the troubleshooting table knows."""

import copy

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import diagnosis

ORDER = ["firmware", "cmdline", "iommu", "groups", "isolation", "binding"]
GPU = "0000:00:02.0"
AUDIO = "0000:01:00.1"


def _dev(vendor, device, cls, driver, group, bridge=False, gpu=False):
    return {"vendor_id": vendor, "device_id": device, "class_id": cls, "driver": driver,
            "iommu_group": group, "is_bridge": bridge, "is_gpu": gpu}


# A Lenovo M920q-like Proxmox host after the role and its reboot: UHD 630 alone in group 2, on vfio-pci.
HEALTHY = {
    "enabled": True,
    "vendor": "intel",
    "firmware_vtd": True,
    "passthrough_mode": True,
    "cmdline": ["BOOT_IMAGE=/boot/vmlinuz-6.8.12-2-pve", "root=/dev/mapper/pve-root", "ro", "quiet",
                "intel_iommu=on", "iommu=pt"],
    "groups": {"0": ["0000:00:00.0"], "1": ["0000:00:01.0"], "2": [GPU], "9": ["0000:00:1f.0", "0000:00:1f.3"]},
    "devices": {
        "0000:00:00.0": _dev("0x8086", "0x3ec2", "0x060000", "skl_uncore", "0"),
        "0000:00:01.0": _dev("0x8086", "0x1901", "0x060400", "pcieport", "1", bridge=True),
        GPU: _dev("0x8086", "0x3e92", "0x030000", "vfio-pci", "2", gpu=True),
        "0000:00:1f.0": _dev("0x8086", "0xa306", "0x060100", None, "9"),
        "0000:00:1f.3": _dev("0x8086", "0xa348", "0x040300", "snd_hda_intel", "9"),
    },
    "gpus": [GPU],
    "target": {"address": GPU, "group": "2", "isolated": True, "group_devices": [GPU], "reasons": []},
    "dmesg": {"vendor": "intel", "iommu_enabled": True, "evidence": ["DMAR: IOMMU enabled"],
              "default_domain": "Passthrough", "irq_remapping": True},
}

# The lab's stand-in: bochs-display + intel-hda behind one root port, one group.
STANDIN = {
    "enabled": True,
    "vendor": "intel",
    "firmware_vtd": True,
    "passthrough_mode": True,
    "cmdline": "BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=LABEL=root ro console=ttyS0 intel_iommu=on iommu=pt",
    "groups": {"3": ["0000:00:1c.0"], "4": ["0000:01:00.0", AUDIO]},
    "devices": {
        "0000:00:1c.0": _dev("1b36", "000c", "060400", "pcieport", "3", bridge=True),
        "0000:01:00.0": _dev("1234", "1111", "038000", "vfio-pci", "4", gpu=True),
        AUDIO: _dev("8086", "293e", "040300", "vfio-pci", "4"),
    },
    "gpus": ["0000:01:00.0"],
    "target": {"address": "0000:01:00.0", "group": "4", "isolated": True,
               "group_devices": ["0000:01:00.0", AUDIO], "reasons": []},
}

# This kind of machine: a VM without any IOMMU and without a display device.
NO_IOMMU = {
    "enabled": False, "vendor": None, "firmware_vtd": False, "passthrough_mode": False,
    "cmdline": ["console=ttyS0", "quiet"], "groups": {},
    "devices": {"0000:00:03.0": _dev("1af4", "1000", "020000", "virtio-pci", None)},
    "gpus": [], "target": None,
}


def _change(base, **changes):
    facts = copy.deepcopy(base)
    for key, value in changes.items():
        if "__" in key:
            outer, inner = key.split("__", 1)
            facts[outer][inner] = value
        else:
            facts[key] = value
    return facts


def _set_driver(facts, addr, driver):
    facts["devices"][addr]["driver"] = driver
    return facts


def _by_part(parts):
    return {part["part"]: part for part in parts}


CASES = [
    # name, facts, kwargs, parts expected ok, parts expected pending
    ("healthy", HEALTHY, {}, set(ORDER), set()),
    ("healthy stand-in group", STANDIN, {}, set(ORDER), set()),
    ("no DMAR table", _change(HEALTHY, firmware_vtd=False, vendor=None, enabled=False, groups={},
                              target={"address": GPU, "group": None, "isolated": False, "group_devices": [], "reasons": ["no IOMMU group"]},
                              devices={GPU: _dev("8086", "3e92", "030000", "i915", None, gpu=True)},
                              cmdline=["quiet"], dmesg=None),
     {}, set(), set()),
    ("cmdline missing, IOMMU on by default", _change(HEALTHY, cmdline=["BOOT_IMAGE=/vmlinuz", "quiet"], passthrough_mode=False),
     {}, set(ORDER) - {"cmdline"}, set()),
    ("IOMMU off", _change(HEALTHY, enabled=False, groups={}, cmdline=["quiet", "intel_iommu=off", "iommu=pt"],
                          target={"address": GPU, "group": None, "isolated": False, "group_devices": [], "reasons": ["no IOMMU group"]},
                          devices={GPU: _dev("8086", "3e92", "030000", "i915", None, gpu=True)},
                          dmesg={"vendor": "intel", "iommu_enabled": False, "evidence": ["DMAR: IOMMU disabled"], "default_domain": None}),
     {}, {"firmware"}, set()),
    ("GPU sharing a group", _change(STANDIN, target={"address": "0000:01:00.0", "group": "4", "isolated": False,
                                                     "group_devices": ["0000:01:00.0", AUDIO, "0000:01:00.2"],
                                                     "reasons": ["0000:01:00.2 is another device in group 4"]}),
     {}, set(ORDER) - {"isolation", "binding"}, set()),
    ("wrong driver", _set_driver(copy.deepcopy(HEALTHY), GPU, "i915"), {}, set(ORDER) - {"binding"}, set()),
    ("reboot pending", _set_driver(_change(HEALTHY, cmdline=["quiet"], passthrough_mode=False), GPU, "i915"),
     {"reboot_pending": True}, set(ORDER) - {"cmdline", "binding"}, {"cmdline", "binding"}),
    ("nothing at all", NO_IOMMU, {}, set(), set()),
]


@pytest.mark.parametrize("name,facts,kwargs,ok,pending", CASES, ids=[c[0] for c in CASES])
def test_links_table(name, facts, kwargs, ok, pending):
    links = diagnosis.diagnose(copy.deepcopy(facts), **kwargs)
    assert [ln["part"] for ln in links] == ORDER
    assert {ln["part"] for ln in links if ln["ok"]} == ok
    assert {ln["part"] for ln in links if ln["pending"]} == pending
    for ln in links:
        assert ln["detail"]
        if ln["ok"]:
            assert ln["fix"] is None
        else:
            assert ln["fix"], "%s has no fix" % ln["part"]


def test_healthy_details():
    links = _by_part(diagnosis.diagnose(HEALTHY))
    assert links["firmware"]["detail"] == "DMAR table present"
    assert links["cmdline"]["detail"] == "intel_iommu=on iommu=pt live in /proc/cmdline"
    assert "DMAR: IOMMU enabled" in links["iommu"]["detail"]
    assert "Passthrough" in links["iommu"]["detail"]
    assert "group 2" in links["isolation"]["detail"]
    assert links["binding"]["detail"] == "0000:00:02.0 bound to vfio-pci"


def test_no_dmar_gives_bios_hint_everywhere_it_matters():
    case = dict((c[0], c[1]) for c in CASES)["no DMAR table"]
    links = _by_part(diagnosis.diagnose(case, reboot_pending=True))
    assert "VT-d" in links["firmware"]["fix"] and "M920q" in links["firmware"]["fix"]
    assert "no DMAR/IVRS ACPI table" in links["firmware"]["detail"]
    # a reboot cannot repair missing firmware support: the IOMMU link stays a failure pointing at the firmware
    assert not links["iommu"]["pending"]
    assert links["iommu"]["fix"].startswith("fix the firmware VT-d link first")


def test_cmdline_fix_names_both_bootloaders():
    facts = _change(HEALTHY, cmdline=["quiet", "iommu=pt"])
    link = _by_part(diagnosis.diagnose(facts))["cmdline"]
    assert link["detail"] == "intel_iommu=on missing from /proc/cmdline"
    assert "`intel_iommu=on`" in link["fix"]
    assert "update-grub" in link["fix"] and "proxmox-boot-tool refresh" in link["fix"]


def test_iommu_off_points_at_cmdline_and_shows_log():
    case = dict((c[0], c[1]) for c in CASES)["IOMMU off"]
    links = _by_part(diagnosis.diagnose(case))
    assert "intel_iommu=on missing" in links["cmdline"]["detail"]  # the last repeat wins: off
    assert "DMAR: IOMMU disabled" in links["iommu"]["detail"]
    assert "intel_iommu=on iommu=pt" in links["iommu"]["fix"]
    assert links["isolation"]["fix"].startswith("turn the IOMMU on first")


def test_log_saying_off_fails_iommu_link():
    facts = _change(HEALTHY, dmesg={"vendor": "intel", "iommu_enabled": False, "evidence": ["DMAR: IOMMU disabled"],
                                    "default_domain": "Translated"})
    link = _by_part(diagnosis.diagnose(facts))["iommu"]
    assert not link["ok"]
    assert "the kernel log says the IOMMU is off" in link["detail"]
    assert "DMAR: IOMMU disabled" in link["detail"]


@pytest.mark.parametrize("dmesg,note", [
    # early boot lines rotated out of the ring buffer: the groups decide
    ({"vendor": None, "iommu_enabled": False, "evidence": [], "default_domain": None}, "no IOMMU lines in the kernel log"),
    # emulated machine: the log names AMD (TCG CPU) while the firmware table is Intel's DMAR
    ({"vendor": "amd", "iommu_enabled": False, "evidence": ['3 "Adding to iommu group" lines'], "default_domain": "Passthrough"},
     "default domain Passthrough"),
])
def test_groups_outweigh_an_inconclusive_log(dmesg, note):
    link = _by_part(diagnosis.diagnose(_change(HEALTHY, dmesg=dmesg)))["iommu"]
    assert link["ok"]
    assert note in link["detail"]


def test_unreadable_log_does_not_fail_iommu_link():
    facts = _change(HEALTHY, dmesg={"error": "dmesg: read kernel buffer failed: Operation not permitted"})
    link = _by_part(diagnosis.diagnose(facts))["iommu"]
    assert link["ok"]
    assert "kernel log unreadable" in link["detail"]


def test_shared_group_fix_lists_members_and_acs():
    case = dict((c[0], c[1]) for c in CASES)["GPU sharing a group"]
    link = _by_part(diagnosis.diagnose(case))["isolation"]
    assert "ACS" in link["fix"]
    assert "0000:01:00.0, 0000:01:00.1, 0000:01:00.2" in link["fix"]
    assert "0000:01:00.2 is another device in group 4" in link["detail"]


def test_wrong_driver_fix_is_ids_softdep_initramfs_reboot():
    facts = _set_driver(copy.deepcopy(HEALTHY), GPU, "i915")
    link = _by_part(diagnosis.diagnose(facts))["binding"]
    assert link["detail"] == "0000:00:02.0 uses i915"
    for part in ("options vfio-pci ids=8086:3e92", "softdep i915 pre: vfio-pci", "update-initramfs -u -k all", "reboot"):
        assert part in link["fix"]


def test_wrong_driver_blacklist_mode():
    facts = _set_driver(copy.deepcopy(HEALTHY), GPU, "i915")
    link = _by_part(diagnosis.diagnose(facts, driver_mode="blacklist"))["binding"]
    assert "blacklist i915" in link["fix"]
    assert "softdep" not in link["fix"]


def test_group_binding_covers_the_audio_function():
    facts = _set_driver(copy.deepcopy(STANDIN), AUDIO, "snd_hda_intel")
    link = _by_part(diagnosis.diagnose(facts))["binding"]
    assert not link["ok"]
    assert link["detail"] == "0000:01:00.1 uses snd_hda_intel"
    assert "ids=1234:1111,8086:293e" in link["fix"]
    # only the target judged: the audio function does not matter
    assert _by_part(diagnosis.diagnose(facts, group=False))["binding"]["ok"]


def test_no_expected_driver_skips_judgement():
    facts = _set_driver(copy.deepcopy(HEALTHY), GPU, "i915")
    link = _by_part(diagnosis.diagnose(facts, expected_driver=None))["binding"]
    assert link["ok"] and "driver i915" in link["detail"]


def test_amd_platform_wants_only_iommu_pt():
    facts = _change(HEALTHY, vendor="amd", cmdline=["quiet", "iommu=pt"])
    links = _by_part(diagnosis.diagnose(facts))
    assert links["firmware"]["detail"] == "IVRS table present"
    assert links["cmdline"]["ok"]
    assert not _by_part(diagnosis.diagnose(facts, iommu_pt=True, cmdline={"amd_iommu": "on"}))["cmdline"]["ok"]


def test_iommu_pt_optional():
    facts = _change(HEALTHY, cmdline=["intel_iommu=on"])
    assert not _by_part(diagnosis.diagnose(facts))["cmdline"]["ok"]
    assert _by_part(diagnosis.diagnose(facts, iommu_pt=False))["cmdline"]["ok"]


def test_no_target_names_candidates():
    facts = _change(HEALTHY, target=None, gpus=[GPU, "0000:01:00.0"])
    link = _by_part(diagnosis.diagnose(facts))["groups"]
    assert not link["ok"]
    assert "0000:00:02.0, 0000:01:00.0" in link["fix"]
    none = _by_part(diagnosis.diagnose(NO_IOMMU))["groups"]
    assert "no display-class PCI device" in none["fix"]


def test_empty_and_none_facts_fail_every_link():
    for facts in (None, {}):
        links = diagnosis.diagnose(facts)
        assert [ln["ok"] for ln in links] == [False] * 6
        assert all(ln["fix"] for ln in links)


def test_rejects_non_dict():
    with pytest.raises(TypeError):
        diagnosis.diagnose(["not", "facts"])


@pytest.mark.parametrize("cmdline,wanted,missing", [
    ("quiet intel_iommu=on iommu=pt", {"intel_iommu": "on", "iommu": "pt"}, {}),
    (["intel_iommu=on,sm_on", "iommu=pt"], {"intel_iommu": "on"}, {}),
    ("intel_iommu=on intel_iommu=off", {"intel_iommu": "on"}, {"intel_iommu": "on"}),
    ("iommu=pti", {"iommu": "pt"}, {"iommu": "pt"}),
    ("amd_iommu=on", {"iommu": "pt"}, {"iommu": "pt"}),
    ("ro -- intel_iommu=on", {"intel_iommu": "on"}, {"intel_iommu": "on"}),
    ("ro quiet", {"quiet": None}, {}),
    ("ro", {"quiet": None}, {"quiet": None}),
    (None, {"iommu": "pt"}, {"iommu": "pt"}),
])
def test_missing_args(cmdline, wanted, missing):
    assert diagnosis.missing_args(cmdline, wanted) == missing


def test_format_lines_exact():
    links = diagnosis.diagnose(_change(HEALTHY, cmdline=["quiet"]))
    lines = diagnosis.format_lines(links)
    assert len(lines) == 6
    assert lines[0] == "ok   firmware VT-d     DMAR table present"
    assert lines[1].startswith("FAIL cmdline           intel_iommu=on iommu=pt missing from /proc/cmdline — fix: run the ")
    assert all(line.startswith("ok   ") for line in lines[2:])


def test_format_lines_pending_and_summary():
    facts = _set_driver(_change(HEALTHY, cmdline=["quiet"]), GPU, "i915")
    links = diagnosis.diagnose(facts, reboot_pending=True)
    lines = diagnosis.format_lines(links, summary=True)
    assert len(lines) == 7
    assert lines[1].startswith("PEND cmdline ")
    assert "(reboot pending)" in lines[1] and "fix: reboot the host" in lines[1]
    assert lines[-1] == "4/6 links ok; pending reboot: cmdline, driver binding"


def test_summarize():
    assert diagnosis.summarize(diagnosis.diagnose(HEALTHY)) == {
        "ok": True, "failed": [], "pending": [], "line": "6/6 links ok: ready for passthrough"}
    verdict = diagnosis.summarize(diagnosis.diagnose(NO_IOMMU))
    assert verdict["ok"] is False
    assert verdict["failed"] == ORDER
    assert verdict["line"].startswith("0/6 links ok; FAIL: firmware VT-d, cmdline, IOMMU on")
