# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""apt_components end to end: main() against files in a tmp directory; check mode, diff, second run."""

import os

from ansible_collections.homelab.gpu_passthrough.plugins.modules import apt_components
from ansible_collections.homelab.gpu_passthrough.tests.unit.plugins.modules.module_runner import run_module

BOOKWORM = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
TRIXIE = 'ID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n'
NOBLE = 'ID=ubuntu\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\nUBUNTU_CODENAME=noble\n'


def _tree(tmp_path, os_release, sources_list=None, deb822=None):
    (tmp_path / "os-release").write_text(os_release)
    args = {"os_release": str(tmp_path / "os-release"), "sources_list": str(tmp_path / "sources.list"),
            "deb822_sources": str(tmp_path / "distro.sources")}
    if sources_list is not None:
        (tmp_path / "sources.list").write_text(sources_list)
        os.chmod(tmp_path / "sources.list", 0o640)
    if deb822 is not None:
        (tmp_path / "distro.sources").write_text(deb822)
    return args


def test_debian_12_check_mode_diff_apply_and_again(tmp_path, capsys):
    text = "deb http://deb.debian.org/debian bookworm main\n"
    args = _tree(tmp_path, BOOKWORM, sources_list=text)
    checked = run_module(capsys, apt_components.main, args, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert checked["components"] == ["non-free", "non-free-firmware"] and checked["codename"] == "bookworm"
    assert checked["diff"][0]["after"] == "deb http://deb.debian.org/debian bookworm main non-free non-free-firmware\n"
    assert (tmp_path / "sources.list").read_text() == text

    applied = run_module(capsys, apt_components.main, args)
    assert applied["changed"] is True and applied["files"] == [str(tmp_path / "sources.list")]
    assert (tmp_path / "sources.list").read_text() == "deb http://deb.debian.org/debian bookworm main non-free non-free-firmware\n"
    assert os.stat(tmp_path / "sources.list").st_mode & 0o777 == 0o640

    again = run_module(capsys, apt_components.main, args)
    assert again["changed"] is False and again["files"] == []


def test_debian_13_deb822_only(tmp_path, capsys):
    sources = "Types: deb\nURIs: http://deb.debian.org/debian/\nSuites: trixie trixie-updates\nComponents: main\n"
    args = _tree(tmp_path, TRIXIE, deb822=sources)
    result = run_module(capsys, apt_components.main, args)
    assert result["changed"] is True and result["files"] == [str(tmp_path / "distro.sources")]
    assert "Components: main non-free non-free-firmware\n" in (tmp_path / "distro.sources").read_text()
    assert not (tmp_path / "sources.list").exists()


def test_ubuntu_multiverse_and_explicit_components(tmp_path, capsys):
    args = _tree(tmp_path, NOBLE, sources_list="deb http://archive.ubuntu.com/ubuntu noble main restricted universe\n")
    result = run_module(capsys, apt_components.main, args)
    assert result["components"] == ["universe", "multiverse"]
    assert (tmp_path / "sources.list").read_text() == "deb http://archive.ubuntu.com/ubuntu noble main restricted universe multiverse\n"
    contrib = run_module(capsys, apt_components.main, dict(args, components=["contrib"], codename="noble"))
    assert contrib["changed"] is True and contrib["components"] == ["contrib"]


def test_nothing_to_edit(tmp_path, capsys):
    result = run_module(capsys, apt_components.main, _tree(tmp_path, BOOKWORM))
    assert result["changed"] is False and result["files"] == []
