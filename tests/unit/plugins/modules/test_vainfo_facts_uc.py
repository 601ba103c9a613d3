# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vainfo_facts' uc: the GuC/HuC state of the passed GPU's card from a debugfs tree, else from the kernel log.

The sysfs tree is built from lspci lines (sysfs_builder); the debugfs tree holds a real guc_info/huc_info paste; the
kernel log is a real dmesg paste handed to the module where it would run dmesg.
"""

import os

import sysfs_builder
from ansible_collections.homelab.gpu_passthrough.plugins.modules import vainfo_facts
from ansible_collections.homelab.gpu_passthrough.tests.unit.plugins.modules.module_runner import run_module

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "huc"))
N100_PASTE = "guc_info-missing-huc_info-error-debian13-alderlake-n-gt-glob.txt"
GT0_AUTHENTICATED = "dmesg-T-grep-GT0-redacted-prompt-pve-huc-authenticated-all-workloads-bang-vf-interface.txt"

# A q35 VM: the emulated display at 00:01.0 is card0, the passed Alder Lake-N at 00:02.0 is card1 (guest address
# chosen to match the kernel log paste's device).
LSPCI = """00:01.0 VGA compatible controller [0300]: Device [1234:1111] (rev 02)
\tKernel driver in use: bochs-drm
00:02.0 VGA compatible controller [0300]: Intel Corporation Alder Lake-N [UHD Graphics] [8086:46d1]
\tKernel driver in use: i915
"""


def _text(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def _guest(tmp_path):
    root = sysfs_builder.build_root(tmp_path, lspci=LSPCI)
    for address, name, boot_vga in (("00:01.0", "card0", True), ("00:02.0", "card1", False),
                                    ("00:02.0", "renderD128", None)):
        sysfs_builder.add_drm_node(root, address, name, boot_vga)
    dri = tmp_path / "dev-dri"
    dri.mkdir()
    (dri / "renderD128").write_text("")
    return {"sysfs_dir": os.path.join(root, "sys"), "dri_dir": str(dri), "vainfo_path": str(tmp_path / "no-vainfo"),
            "debugfs_dir": str(tmp_path / "debug")}


def _split_paste(text):
    """The N100 paste holds `cat .../guc_info` then `cat .../huc_info`: one file each."""
    guc, _sep, huc = text.partition("$ sudo cat /sys/kernel/debug/dri/0/gt*/uc/huc_info")
    return guc, huc


def test_uc_from_debugfs_of_the_render_nodes_card(tmp_path, capsys, monkeypatch):
    args = _guest(tmp_path)
    guc, huc = _split_paste(_text(N100_PASTE))
    uc_dir = tmp_path / "debug" / "dri" / "1" / "gt0" / "uc"
    uc_dir.mkdir(parents=True)
    (uc_dir / "guc_info").write_text(guc)
    (uc_dir / "huc_info").write_text(huc)
    # card0 is the emulated display: its debugfs dir must not be read
    (tmp_path / "debug" / "dri" / "0").mkdir()
    logs = []
    monkeypatch.setattr(vainfo_facts, "read_kernel_log", lambda module: logs.append(1))

    facts = run_module(capsys, vainfo_facts.main, args)["ansible_facts"]["vainfo"]
    assert facts["gpu"]["card"] == "card1"
    read = facts["uc"]
    assert (read["guc"], read["huc"], read["source"]) == ("firmware missing", "failed", "debugfs")
    assert read["firmware"]["guc"]["wanted"] == "70.12.1"
    assert [os.path.relpath(p, args["debugfs_dir"]) for p in read["debugfs_files"]] == [
        "dri/1/gt0/uc/guc_info", "dri/1/gt0/uc/huc_info"]
    assert logs == []  # debugfs knew the HuC state: the kernel log is not read


def test_uc_from_the_kernel_log_when_debugfs_is_not_there(tmp_path, capsys, monkeypatch):
    args = _guest(tmp_path)
    monkeypatch.setattr(vainfo_facts, "read_kernel_log", lambda module: _text(GT0_AUTHENTICATED))
    read = run_module(capsys, vainfo_facts.main, args)["ansible_facts"]["vainfo"]["uc"]
    assert (read["huc"], read["guc"], read["source"]) == ("authenticated", "loaded", "kernel log")
    assert read["firmware"]["huc"]["version"] == "7.9.3"


def test_uc_unknown_with_the_reason_when_nothing_is_readable(tmp_path, capsys, monkeypatch):
    args = _guest(tmp_path)
    monkeypatch.setattr(vainfo_facts, "read_kernel_log", lambda module: None)
    read = run_module(capsys, vainfo_facts.main, args)["ansible_facts"]["vainfo"]["uc"]
    assert read["huc"] == "unknown" and read["source"] is None
    assert "not mounted" in read["detail"] and "run as root" in read["detail"]


def test_no_intel_gpu_no_uc(tmp_path, capsys, monkeypatch):
    args = _guest(tmp_path)
    args["sysfs_dir"] = str(tmp_path / "empty-sys")
    monkeypatch.setattr(vainfo_facts, "read_kernel_log", lambda module: "")
    assert run_module(capsys, vainfo_facts.main, args)["ansible_facts"]["vainfo"]["uc"] is None
