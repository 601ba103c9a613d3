# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every edit kernel_cmdline refuses: the message names file, problem and fix, and no file (nor temp file) changes."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import files as host_files
from ansible_collections.homelab.gpu_passthrough.plugins.modules import kernel_cmdline as module
from ansible_collections.homelab.gpu_passthrough.tests.unit.plugins.modules.module_runner import run_module

PASSTHROUGH = {"intel_iommu": "on", "iommu": "pt"}
LIVE = "initrd=\\EFI\\debian\\6.12.57+deb13-amd64\\initrd.img root=LABEL=labroot ro console=ttyS0,115200\n"
DEBIAN_GRUB = 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n'


def put(root, path, data, mode=None):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as handle:
        handle.write(data if isinstance(data, bytes) else data.encode())
    if mode is not None:
        os.chmod(full, mode)
    return full


def snapshot(root):
    """Every file and directory under root, with the bytes of the files."""
    found = {}
    for directory, dirs, files in os.walk(str(root)):
        for name in dirs:
            found[os.path.relpath(os.path.join(directory, name), str(root)) + "/"] = None
        for name in files:
            full = os.path.join(directory, name)
            with open(full, "rb") as handle:
                found[os.path.relpath(full, str(root))] = handle.read()
    return found


def sdboot_root(tmp_path, cmdline):
    """Plain systemd-boot (kernel-install), as on the Debian 13 lab image."""
    root = tmp_path / "host"
    if cmdline is not None:
        put(root, "/etc/kernel/cmdline", cmdline)
    put(root, "/proc/cmdline", LIVE)
    put(root, "/boot/vmlinuz-6.12.57+deb13-amd64", "")
    return root


def grub_root(tmp_path, grub=DEBIAN_GRUB):
    root = tmp_path / "host"
    put(root, "/etc/default/grub", grub)
    put(root, "/proc/cmdline", "BOOT_IMAGE=/boot/vmlinuz-6.1.0-41-amd64 root=UUID=0c5b2d36 ro quiet\n")
    return root


def refused(capsys, root, args, *words, link="file"):
    """Run the module, assert it failed with every word in msg+fix and that nothing under root changed."""
    before = snapshot(root)
    result = run_module(capsys, module.main, dict({"root": str(root), "present": PASSTHROUGH}, **args))
    assert result.get("failed") is True, result
    text = result["msg"] + " " + str(result.get("fix"))
    for word in words:
        assert word in text, (word, text)
    assert result["link"] == link
    assert snapshot(root) == before
    return result


# ----------------------------------------------------------------- root=


@pytest.mark.parametrize("content, state", [("", "is empty"), ("\n\n", "is empty"), ("quiet splash\n", "holds 'quiet splash'")])
def test_kernel_cmdline_without_root_is_refused(tmp_path, capsys, content, state):
    root = sdboot_root(tmp_path, content)
    result = refused(capsys, root, {}, "/etc/kernel/cmdline", state, "no root=", "take_root_from_live")
    assert "root=LABEL=labroot" in result["fix"]  # the running one is named


def test_take_root_from_live_when_allowed(tmp_path, capsys):
    root = sdboot_root(tmp_path, "quiet\n")
    result = run_module(capsys, module.main, {"root": str(root), "present": PASSTHROUGH, "take_root_from_live": True, "backup": False})
    assert result["changed"] is True
    with open(os.path.join(str(root), "etc/kernel/cmdline"), encoding="utf-8") as handle:
        assert handle.read() == "root=LABEL=labroot quiet intel_iommu=on iommu=pt\n"


def test_take_root_from_live_needs_a_live_root(tmp_path, capsys):
    root = sdboot_root(tmp_path, "")
    put(root, "/proc/cmdline", "initrd=\\EFI\\x\\initrd.img quiet\n")
    refused(capsys, root, {"take_root_from_live": True}, "/etc/kernel/cmdline", "no root=", "cat /proc/cmdline")


# ----------------------------------------------------------------- shell text


@pytest.mark.parametrize("name", ["GRUB CMDLINE", "GRUB_X;reboot", "$(reboot)", "1GRUB", "GRUB-X", ""])
def test_grub_variable_must_be_a_shell_name(tmp_path, capsys, name):
    root = grub_root(tmp_path)
    refused(capsys, root, {"grub_variable": name}, "grub_variable", "plain shell variable name", link="input")


@pytest.mark.parametrize("value", ["$(reboot)", "`reboot`", "a;reboot", "x&&y", "a|b", "a>b", "${HOME}", "a\\b", "*", "a{b}", "x\x07"])
@pytest.mark.parametrize("host", ["grub", "systemd-boot"])
def test_values_that_are_shell_text_are_refused(tmp_path, capsys, value, host):
    root = grub_root(tmp_path) if host == "grub" else sdboot_root(tmp_path, "root=LABEL=labroot ro\n")
    refused(capsys, root, {"present": {"initcall_blacklist": value}}, "initcall_blacklist", "syntax", link="input")


def test_absent_entries_that_are_shell_text_are_refused(tmp_path, capsys):
    root = grub_root(tmp_path)
    refused(capsys, root, {"absent": ["$(reboot)"]}, "absent", "syntax", link="input")


# ----------------------------------------------------------------- GRUB file the parser cannot keep


@pytest.mark.parametrize(
    "text, words",
    [
        ('GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet\nGRUB_TIMEOUT=5\n', ["unterminated double quote", "line 2"]),
        ("GRUB_CMDLINE_LINUX_DEFAULT='quiet\nGRUB_TIMEOUT=5\n", ["unterminated single quote", "line 1"]),
        ('GRUB_DISTRIBUTOR="Debian\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n', ["unterminated double quote", "line 1"]),
        ("GRUB_CMDLINE_LINUX_DEFAULT=quiet\\\nsplash\n", ["line continuation", "line 1"]),
        ('GRUB_CMDLINE_LINUX_DEFAULT="quiet" \\\nGRUB_TIMEOUT=5\n', ["line continuation", "line 1"]),
    ],
)
def test_grub_file_the_parser_cannot_keep_is_refused(tmp_path, capsys, text, words):
    root = grub_root(tmp_path, text)
    refused(capsys, root, {}, "/etc/default/grub", *words)


def test_unterminated_quote_never_pulls_the_next_line_in(tmp_path, capsys):
    root = grub_root(tmp_path, 'GRUB_CMDLINE_LINUX_DEFAULT="quiet\nGRUB_TIMEOUT=5\n')
    result = refused(capsys, root, {}, "/etc/default/grub", "read the lines after it")
    assert "cmdline" not in result and "GRUB_TIMEOUT" not in result["msg"].split("(", 1)[0]


# ----------------------------------------------------------------- bytes, kinds of files


def test_non_utf8_kernel_cmdline_is_refused_and_kept(tmp_path, capsys):
    root = sdboot_root(tmp_path, b"root=LABEL=labroot ro quiet \xe9\xff\n")
    refused(capsys, root, {}, "/etc/kernel/cmdline", "not UTF-8", "0xe9", "line 1", "iconv")


def test_non_utf8_grub_file_is_refused_and_kept(tmp_path, capsys):
    root = grub_root(tmp_path, DEBIAN_GRUB.encode() + b"# caf\xe9\n")
    refused(capsys, root, {}, "/etc/default/grub", "not UTF-8", "line 5")


def test_odd_bytes_in_proc_cmdline_are_only_read(tmp_path, capsys):
    root = grub_root(tmp_path)
    put(root, "/proc/cmdline", b"BOOT_IMAGE=/boot/vmlinuz root=UUID=x ro \xff\n")
    result = run_module(capsys, module.main, {"root": str(root), "present": PASSTHROUGH, "backup": False})
    assert result["changed"] is True and result["reboot_required"] is True


def test_seeding_from_a_live_line_with_odd_bytes_is_refused(tmp_path, capsys):
    root = sdboot_root(tmp_path, None)
    put(root, "/proc/cmdline", b"initrd=\\EFI\\x root=LABEL=labroot \xff\n")
    refused(capsys, root, {"bootloader": "systemd-boot"}, "/etc/kernel/cmdline", "not UTF-8")


@pytest.mark.parametrize("option, path", [("kernel_cmdline_file", "/etc/kernel/cmdline"), ("grub_file", "/etc/default/grub")])
def test_a_directory_is_refused(tmp_path, capsys, option, path):
    root = sdboot_root(tmp_path, None)
    os.makedirs(os.path.join(str(root), path.lstrip("/")))
    refused(capsys, root, {"bootloader": "systemd-boot" if option == "kernel_cmdline_file" else "grub"}, path, "is a directory", option)


# ----------------------------------------------------------------- files that cannot be replaced


def test_immutable_file_is_refused_before_any_write(tmp_path, capsys):
    root = sdboot_root(tmp_path, "root=LABEL=labroot ro\n")
    target = os.path.join(str(root), "etc/kernel/cmdline")
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", target], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i needs root and a file system with attribute flags")
    try:
        refused(capsys, root, {}, target, "immutable", "chattr -i")
    finally:
        subprocess.run(["chattr", "-i", target], check=True)


def test_eperm_on_rename_leaves_no_temp_file_and_no_backup(tmp_path, capsys, monkeypatch):
    root = sdboot_root(tmp_path, "root=LABEL=labroot ro\n")

    def replace(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(host_files.os, "replace", replace)
    refused(capsys, root, {"backup": True}, "/etc/kernel/cmdline", "refused to replace", "chattr -i")


def test_read_only_mount_is_refused(tmp_path, capsys, monkeypatch):
    root = sdboot_root(tmp_path, "root=LABEL=labroot ro\n")
    real = os.statvfs

    class ReadOnly:
        def __init__(self, st):
            self.f_flag = st.f_flag | os.ST_RDONLY

    monkeypatch.setattr(host_files.os, "statvfs", lambda path: ReadOnly(real(path)))
    refused(capsys, root, {}, "/etc/kernel/cmdline", "read-only mount", "remount")


def test_write_error_removes_the_temp_file(tmp_path, capsys, monkeypatch):
    root = sdboot_root(tmp_path, "root=LABEL=labroot ro\n")

    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(host_files.os, "fsync", fsync)
    refused(capsys, root, {"backup": False}, "/etc/kernel/cmdline", "Input/output error")


# ----------------------------------------------------------------- confinement


@pytest.mark.parametrize("path", ["../outside/cmdline", "/etc/../../outside/cmdline"])
def test_path_escaping_root_by_dotdot_is_refused(tmp_path, capsys, path):
    root = sdboot_root(tmp_path, "root=LABEL=labroot ro\n")
    put(tmp_path, "/outside/cmdline", "root=/dev/sda1\n")
    before = snapshot(tmp_path)
    refused(capsys, root, {"kernel_cmdline_file": path, "bootloader": "systemd-boot"}, "kernel_cmdline_file", "leads outside", link="input")
    assert snapshot(tmp_path) == before


def test_path_escaping_root_by_symlink_is_refused(tmp_path, capsys):
    root = sdboot_root(tmp_path, None)
    outside = put(tmp_path, "/outside/cmdline", "root=/dev/sda1\n")
    os.makedirs(os.path.join(str(root), "etc/kernel"))
    os.symlink(outside, os.path.join(str(root), "etc/kernel/cmdline"))
    before = snapshot(tmp_path)
    refused(capsys, root, {"bootloader": "systemd-boot"}, "kernel_cmdline_file", "symlink", link="input")
    assert snapshot(tmp_path) == before


def test_unpaired_quote_in_kernel_cmdline_is_refused(tmp_path, capsys):
    root = sdboot_root(tmp_path, 'root=LABEL=labroot ro acpi_osi="!Windows 2015\nquiet\n')
    refused(capsys, root, {}, "/etc/kernel/cmdline", "unpaired double quote", "Close or remove the quote")


def test_unpaired_quote_inside_the_grub_value_is_refused(tmp_path, capsys):
    root = grub_root(tmp_path, 'GRUB_CMDLINE_LINUX_DEFAULT="quiet acpi_osi=\\"!Windows"\n')
    refused(capsys, root, {}, "/etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT", "unpaired double quote")
