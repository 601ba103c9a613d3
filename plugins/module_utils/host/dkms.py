# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Out-of-tree kernel modules (DKMS) and the kernels a Proxmox VE host has, read from command output.

Pure Python, standard library only; every reader skips what it does not know (prompts, other commands' output,
author elisions) and never raises on odd text. The question they serve: does the kernel a host will boot have
its build of a module such as ``i915-sriov-dkms`` (the most common SR-IOV failure is a kernel upgrade without one)?

Formats (from the outputs in the unit test fixtures and dkms itself):

- ``dkms status``, dkms 3: ``<module>/<version>, <kernel>, <arch>: <state>``; dkms 2: ``<module>, <version>,
  <kernel>, <arch>: <state>``; a source only added: ``<module>/<version>: added``; the state may carry notes
  in parentheses, e.g. ``installed (WARNING! Diff between built and installed module!)``, repeated.
- A failed build: ``Error! Bad return status for module build on kernel: <kernel> (<arch>)`` with the build
  directory ``/var/lib/dkms/<module>/<version>/build`` on a nearby line; ``dkms: autoinstall for kernel: <kernel>
  failed!``; a release that excludes the kernel: ``Building initial module <module>/<version> for <kernel>`` then
  ``... includes a BUILD_EXCLUSIVE directive`` (i915-sriov-dkms's ``dkms.conf`` sets ``BUILD_EXCLUSIVE_KERNEL``).
- ``pveversion``: ``(running kernel: <kernel>)``; ``pveversion -v`` lists kernel packages
  (``proxmox-kernel-6.5.11-8-pve-signed: 6.5.11-8``, the meta package ``proxmox-kernel-6.5: 6.5.13-5``).
- ``proxmox-boot-tool kernel pin <kernel>``: ``Setting '<kernel>' as grub default entry``; update-grub's
  ``Found linux image: /boot/vmlinuz-<kernel>``.
"""

from __future__ import annotations

import re

_STATUS = re.compile(
    r"^\s*(?P<module>[^\s,/:]+)(?:/|,\s*)(?P<version>[^\s,:]+)"
    r"(?:,\s*(?P<kernel>[^\s,:]+),\s*(?P<arch>[^\s,:]+))?"
    r":\s*(?P<status>[a-z]+)\b(?P<notes>.*)$"
)
_NOTE = re.compile(r"\(([^()]*)\)")
_BUILD_FAILED = re.compile(r"Error! Bad return status for module build on kernel:\s*(?P<kernel>\S+)(?:\s+\((?P<arch>[^)\s]+)\))?")
_BUILD_DIR = re.compile(r"/var/lib/dkms/(?P<module>[^/\s]+)/(?P<version>[^/\s]+)/(?:build|source)\b")
_AUTOINSTALL_FAILED = re.compile(r"dkms: autoinstall for kernel:\s*(?P<kernel>\S+)\s+failed")
_BUILDING = re.compile(r"Building (?:initial )?module\s+(?P<module>[^/\s]+)/(?P<version>\S+)\s+for\s+(?:kernel\s+)?(?P<kernel>[^\s(]+)")
_EXCLUSIVE_CONF = re.compile(r"/var/lib/dkms/(?P<module>[^/\s]+)/(?P<version>[^/\s]+)/(?P<kernel>[^/\s]+)/(?P<arch>[^/\s]+)/dkms\.conf")
_BUILD_EXCLUSIVE = re.compile(r"BUILD_EXCLUSIVE directive")
_RUNNING = re.compile(r"\(running kernel:\s*(?P<kernel>[^\s)]+)\s*\)")
_KERNEL_PACKAGE = re.compile(
    r"^\s*(?P<package>(?:proxmox|pve)-kernel-(?P<series>\d+\.\d+)(?:\.(?P<rest>\d+-\d+)-pve(?:-signed)?)?)\s*:\s*(?P<version>\S+)\s*$"
)
_PIN = re.compile(r"Setting '(?P<kernel>[^']+)' as grub default entry")
_IMAGE = re.compile(r"Found linux image:\s*\S*/vmlinuz-(?P<kernel>\S+)")

FAILED_BUILD = "build-failed"
AUTOINSTALL_FAILED = "autoinstall-failed"
BUILD_EXCLUSIVE = "build-exclusive"


def parse_status(text):
    """``dkms status`` text -> ``[{module, version, kernel, arch, status, notes}]`` in the order listed.

    ``kernel`` and ``arch`` are None for a module only added; ``status`` is the bare state (``installed``,
    ``built``, ``added``, ``broken``); ``notes`` the parenthesized remarks after it, each once. Other lines
    (prompts, other commands) are skipped.
    """
    rows = []
    for line in (text or "").splitlines():
        match = _STATUS.match(line)
        if not match or line.lstrip().startswith(("Error!", "Warning:")):
            continue
        notes = []
        for note in _NOTE.findall(match.group("notes")):
            note = note.strip()
            if note and note not in notes:
                notes.append(note)
        rows.append({
            "module": match.group("module"),
            "version": match.group("version"),
            "kernel": match.group("kernel"),
            "arch": match.group("arch"),
            "status": match.group("status"),
            "notes": notes,
        })
    return rows


def kernels_with(rows, module, status="installed"):
    """The kernels for which ``parse_status`` rows show ``module`` in ``status``, in the order listed."""
    kernels = []
    for row in rows or []:
        if row.get("module") == module and row.get("status") == status and row.get("kernel") and row["kernel"] not in kernels:
            kernels.append(row["kernel"])
    return kernels


def failed_builds(text):
    """Builds a log (apt's kernel postinst, ``dkms autoinstall``) shows failing or skipped:
    ``[{module, version, kernel, arch, reason}]``, one per module and kernel, ``reason`` one of
    ``build-failed``, ``autoinstall-failed`` (only the kernel is named) and ``build-exclusive`` (the module's
    release excludes that kernel). A kernel whose setup starts but whose outcome the text does not show is not
    listed."""
    lines = (text or "").splitlines()
    found = []

    def record(module, version, kernel, arch, reason):
        for entry in found:
            if entry["kernel"] == kernel and (module is None or entry["module"] in (None, module)):
                if module and entry["module"] is None:
                    entry.update(module=module, version=version)
                entry["arch"] = entry["arch"] or arch
                if reason != AUTOINSTALL_FAILED:
                    entry["reason"] = reason
                return
        found.append({"module": module, "version": version, "kernel": kernel, "arch": arch, "reason": reason})

    for index, line in enumerate(lines):
        failed = _BUILD_FAILED.search(line)
        if failed:
            module = version = None
            for nearby in lines[max(0, index - 2): index + 3]:
                where = _BUILD_DIR.search(nearby)
                if where:
                    module, version = where.group("module"), where.group("version")
                    break
            record(module, version, failed.group("kernel"), failed.group("arch"), FAILED_BUILD)
            continue
        autoinstall = _AUTOINSTALL_FAILED.search(line)
        if autoinstall:
            record(None, None, autoinstall.group("kernel"), None, AUTOINSTALL_FAILED)
            continue
        if _BUILD_EXCLUSIVE.search(line):
            window = lines[max(0, index - 3): index + 1]
            conf = next((m for m in (_EXCLUSIVE_CONF.search(w) for w in window) if m), None)
            building = next((m for m in (_BUILDING.search(w) for w in reversed(lines[:index + 1])) if m), None)
            if conf:
                record(conf.group("module"), conf.group("version"), conf.group("kernel"), conf.group("arch"), BUILD_EXCLUSIVE)
            elif building:
                record(building.group("module"), building.group("version"), building.group("kernel"), None, BUILD_EXCLUSIVE)
    return found


def running_kernel(text):
    """The running kernel ``pveversion`` (with or without ``-v``) names; None when it names none."""
    match = _RUNNING.search(text or "")
    return match.group("kernel") if match else None


def kernel_packages(text):
    """Kernel packages ``pveversion -v`` lists: ``[{package, version, kernel}]``; ``kernel`` is the release a
    versioned package installs (``6.5.11-8-pve``), None for a series meta package (``proxmox-kernel-6.5``).
    ``proxmox-kernel-helper`` and other tools are not kernels."""
    packages = []
    for line in (text or "").splitlines():
        match = _KERNEL_PACKAGE.match(line)
        if not match:
            continue
        kernel = "%s.%s-pve" % (match.group("series"), match.group("rest")) if match.group("rest") else None
        packages.append({"package": match.group("package"), "version": match.group("version"), "kernel": kernel})
    return packages


def pinned_kernel(text):
    """The kernel ``proxmox-boot-tool kernel pin`` set as the default entry; None when the text shows no pin."""
    match = _PIN.search(text or "")
    return match.group("kernel") if match else None


def kernel_images(text):
    """The kernels update-grub found (``Found linux image: /boot/vmlinuz-<kernel>``), in its order."""
    kernels = []
    for match in _IMAGE.finditer(text or ""):
        if match.group("kernel") not in kernels:
            kernels.append(match.group("kernel"))
    return kernels
