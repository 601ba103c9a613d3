# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readers of the GPU sharing fixtures (``mdevctl types``, ``cat available_instances`` per type, ``ls -l`` of
``mdev_supported_types``, plain ``lspci``, ``/etc/sysfs.conf``), so a test can build the sysfs tree those outputs
came from and state what each means. The collection reads sysfs itself; these readers exist for the tests only."""

from __future__ import annotations

import re

_TYPES_PATH = re.compile(r"/sys/bus/pci/devices/(?P<parent>[0-9a-fA-F:.]+)/mdev_supported_types/(?P<type>[^/\s]+)/?\s*$")
_ADDRESS = re.compile(r"^(?P<addr>(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]) (?P<desc>\S.*?)\s*$")
_MDEVCTL_FIELD = re.compile(r"^\s{4}(?P<key>[A-Za-z ]+):\s*(?P<value>.*?)\s*$")
_MDEVCTL_KEYS = {"Available instances": "available_instances", "Device API": "device_api", "Description": "description", "Name": "name"}


def mdevctl_types(text):
    """``mdevctl types`` -> parent -> type -> ``{name, description, available_instances, device_api}``
    (``name`` None when the listing has no ``Name:`` line)."""
    parents, parent, current = {}, None, None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[:1].isspace():
            parent = line.strip().lower()
            parents[parent] = {}
            continue
        field = _MDEVCTL_FIELD.match(line)
        if field and current is not None and field.group("key") in _MDEVCTL_KEYS:
            value = field.group("value")
            key = _MDEVCTL_KEYS[field.group("key")]
            current[key] = int(value) if key == "available_instances" else value
            continue
        if parent is not None and line.startswith("  ") and not line.startswith("    "):
            current = {"name": None, "description": None, "available_instances": None, "device_api": None}
            parents[parent][line.strip()] = current
    return parents


def available_instances_listing(text):
    """The ``<type path>`` / ``cat available_instances`` / value blocks with dashed separators -> parent -> type -> count."""
    parents, where = {}, None
    for line in text.splitlines():
        stripped = line.strip()
        path = _TYPES_PATH.search(stripped)
        if path:
            where = (path.group("parent").lower(), path.group("type"))
            continue
        if where and stripped.isdigit():
            parents.setdefault(where[0], {})[where[1]] = int(stripped)
            where = None
    return parents


def listed_type_dirs(text):
    """``ls -l`` / ``ll`` of ``mdev_supported_types/`` -> the type directories (``./``, ``../`` and the trailing ``/`` dropped)."""
    types = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 9 or not fields[0].startswith("d"):
            continue
        name = fields[-1].rstrip("/")
        if name not in (".", ".."):
            types.append(name)
    return types


def lspci_plain(text):
    """Plain ``lspci`` lines -> ``[(full address, description)]``; prompts and blank lines are skipped."""
    devices = []
    for line in text.splitlines():
        match = _ADDRESS.match(line)
        if match:
            address = match.group("addr").lower()
            devices.append((address if address.count(":") == 2 else "0000:" + address, match.group("desc")))
    return devices


def sysfs_conf(text):
    """``/etc/sysfs.conf`` (sysfsutils) -> attribute path under /sys -> value; comments and other lines are skipped."""
    settings = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped or stripped.startswith(":"):
            continue
        path, _sep, value = stripped.partition("=")
        settings[path.strip()] = value.strip()
    return settings
