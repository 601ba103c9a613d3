# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""apt_components end to end: main() against files in a tmp directory; check mode, diff, second run."""

import json
import os

import pytest
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


# ----------------------------------------------------------------- refusals: nothing changes, no temp file


def _snapshot(root):
    found = {}
    for directory, _dirs, files in os.walk(str(root)):
        for name in files:
            with open(os.path.join(directory, name), "rb") as handle:
                found[os.path.relpath(os.path.join(directory, name), str(root))] = handle.read()
    return found


def _refused(capsys, tmp_path, args, *words):
    before = _snapshot(tmp_path)
    result = run_module(capsys, apt_components.main, args)
    assert result.get("failed") is True, result
    for word in words:
        assert word in result["msg"] + " " + str(result["fix"]), (word, result["msg"])
    assert _snapshot(tmp_path) == before
    return result


BOOKWORM_LIST = "deb http://deb.debian.org/debian bookworm main\n"


@pytest.mark.parametrize(
    "components, words",
    [
        (["non free"], ["'non free'", "2 component(s)", "own list item"]),
        ([""], ["''", "nothing"]),
        (["  "], ["not a plain word"]),
        ([], ["empty list"]),
        (["non-free", "contrib;rm"], ["'contrib;rm'"]),
    ],
)
def test_components_must_be_plain_words(tmp_path, capsys, components, words):
    args = _tree(tmp_path, BOOKWORM, sources_list=BOOKWORM_LIST)
    _refused(capsys, tmp_path, dict(args, components=components), *words)


def test_missing_os_release_fails_clearly(tmp_path, capsys):
    args = _tree(tmp_path, BOOKWORM, sources_list=BOOKWORM_LIST)
    os.remove(args["os_release"])
    _refused(capsys, tmp_path, args, args["os_release"], "does not exist", "codename")


def test_missing_os_release_with_explicit_components_and_codename_works(tmp_path, capsys):
    args = _tree(tmp_path, BOOKWORM, sources_list=BOOKWORM_LIST)
    os.remove(args["os_release"])
    result = run_module(capsys, apt_components.main, dict(args, components=["contrib"], codename="bookworm"))
    assert result["changed"] is True
    assert (tmp_path / "sources.list").read_text() == "deb http://deb.debian.org/debian bookworm main contrib\n"


@pytest.mark.parametrize("release", ['ID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40"\n', "NAME=unknown\n"])
def test_unsupported_distribution_fails_clearly(tmp_path, capsys, release):
    args = _tree(tmp_path, release, sources_list=BOOKWORM_LIST)
    _refused(capsys, tmp_path, args, "distribution", "components and codename explicitly")


def test_release_without_codename_fails(tmp_path, capsys):
    args = _tree(tmp_path, 'ID=debian\nPRETTY_NAME="Debian GNU/Linux trixie/sid"\n', sources_list=BOOKWORM_LIST)
    _refused(capsys, tmp_path, args, "VERSION_CODENAME", "codename explicitly")


def test_non_utf8_sources_file_is_read_and_refused_only_when_it_must_change(tmp_path, capsys):
    args = _tree(tmp_path, BOOKWORM)
    (tmp_path / "sources.list").write_bytes(b"# caf\xe9\ndeb http://deb.debian.org/debian bookworm main non-free non-free-firmware\n")
    assert run_module(capsys, apt_components.main, args)["changed"] is False
    (tmp_path / "sources.list").write_bytes(b"# caf\xe9\ndeb http://deb.debian.org/debian bookworm main\n")
    _refused(capsys, tmp_path, args, str(tmp_path / "sources.list"), "not UTF-8", "line 1")


def test_sources_path_that_is_a_directory_is_refused(tmp_path, capsys):
    args = _tree(tmp_path, BOOKWORM)
    os.makedirs(tmp_path / "sources.list")
    _refused(capsys, tmp_path, args, "is a directory", "sources_list")


def test_paths_outside_root_are_refused(tmp_path, capsys):
    root = tmp_path / "host"
    (root / "etc/apt").mkdir(parents=True)
    (root / "etc/os-release").write_text(BOOKWORM)
    (tmp_path / "outside.list").write_text(BOOKWORM_LIST)
    os.symlink(str(tmp_path / "outside.list"), str(root / "etc/apt/sources.list"))
    args = {"root": str(root), "deb822_sources": "/etc/apt/sources.list.d/debian.sources"}
    _refused(capsys, tmp_path, args, "sources_list", "leads outside", "symlink")
    _refused(capsys, tmp_path, dict(args, sources_list="/etc/../../outside.list"), "sources_list", "leads outside")


def test_write_failure_leaves_no_temp_file(tmp_path, capsys, monkeypatch):
    from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import files as host_files

    args = _tree(tmp_path, BOOKWORM, sources_list=BOOKWORM_LIST)

    def replace(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(host_files.os, "replace", replace)
    _refused(capsys, tmp_path, args, "chattr -i")


def test_no_file_at_all_warns(tmp_path, capsys):
    result = run_module(capsys, apt_components.main, _tree(tmp_path, BOOKWORM))
    assert result["changed"] is False
    assert "no component was added" in json.dumps(result.get("warnings", []))


# ----------------------------------------------------------------- empty strings: refused, never an edit


@pytest.mark.parametrize("extra", [{}, {"components": ["contrib"]}, {"components": ["non-free", "non-free-firmware"]}])
@pytest.mark.parametrize("release", [BOOKWORM, NOBLE, None])
def test_empty_codename_is_refused_and_changes_nothing(tmp_path, capsys, extra, release):
    text = "deb http://deb.debian.org/debian bookworm main\ndeb http://archive.ubuntu.com/ubuntu noble main\n"
    deb822 = "Types: deb\nURIs: http://deb.debian.org/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n"
    args = _tree(tmp_path, release or BOOKWORM, sources_list=text, deb822=deb822)
    if release is None:
        os.remove(args["os_release"])
    result = _refused(capsys, tmp_path, dict(args, codename="", **extra), "codename", "empty string", "leave it out")
    assert result["option"] == "codename" and result["value"] == "" and result["link"] == "input"
    assert (tmp_path / "sources.list").read_text() == text


@pytest.mark.parametrize("option", ["sources_list", "deb822_sources", "os_release", "root"])
def test_empty_path_options_are_refused(tmp_path, capsys, option):
    args = _tree(tmp_path, BOOKWORM, sources_list=BOOKWORM_LIST)
    result = _refused(capsys, tmp_path, dict(args, **{option: ""}), option, "empty string")
    assert result["option"] == option


def test_codename_given_still_edits_only_its_entries(tmp_path, capsys):
    text = "deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian trixie main\n"
    args = _tree(tmp_path, BOOKWORM, sources_list=text)
    result = run_module(capsys, apt_components.main, dict(args, codename="trixie"))
    assert result["changed"] is True and result["codename"] == "trixie"
    assert (tmp_path / "sources.list").read_text() == (
        "deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian trixie main non-free non-free-firmware\n")
