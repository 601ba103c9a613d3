# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one normaliser for PCI addresses, vendor:device ids and hex ids.

Pure and stdlib-only. Every other module asks this one:

- ``address(text)``: ``01:00.0`` -> ``0000:01:00.0`` (domain added, lower case); ``is_address``;
  ``has_function``; ``same_slot``.
- ``hex_id(value)``: ``0x8086``, ``8086``, ``0X8086``, 32902 -> ``8086``; None when it is no hex id.
- ``vendor_device(text)``: ``8086:3E92`` -> ``8086:3e92``; None when it is no vendor:device pair;
  ``vendor_device_of(row)`` for a ``GET /nodes/{node}/hardware/pci`` row.
- ``is_config_id(text)``: a Proxmox configuration id (mapping names).
"""

from __future__ import annotations

import re

# qemu-server: src/PVE/QemuServer/PCI.pm $PCIRE -- lower-case hex only, the domain is optional
# and the function is optional (an id without function means all functions of the device).
ADDRESS_PATTERN = r"(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?"
ADDRESS_RE = re.compile(r"^%s$" % ADDRESS_PATTERN)
ADDRESS_LIST_RE = re.compile(r"^%s(?:;%s)*$" % (ADDRESS_PATTERN, ADDRESS_PATTERN))
# pve-common: src/PVE/JSONSchema.pm $CONFIGID_RE (format 'pve-configid', used by mapping ids)
CONFIGID_RE = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
VENDOR_DEVICE_RE = re.compile(r"^([0-9a-f]{4}):([0-9a-f]{4})$", re.IGNORECASE)
# qemu-server: src/PVE/QemuServer/PCI.pm $hostpci_fmt 'vendor-id' and friends
HEX_OPTION_RE = re.compile(r"^0x[0-9a-fA-F]{4}$")
_HEX_RE = re.compile(r"^(?:0x)?([0-9a-f]+)$")


def address(text):
    """``01:00.0`` -> ``0000:01:00.0``; ``0000:00:02`` stays without function; case folded, blanks stripped.

    pve-common: src/PVE/SysFSTools.pm lspci matches an id as a prefix of the full address after an
    optional ``0000:`` domain, so a missing domain means ``0000``. Does not validate (see ``is_address``).
    """
    text = str(text).strip().lower()
    if text.count(":") == 1:
        text = "0000:" + text
    return text


def is_address(text, allow_list=False):
    """Whether ``text`` is a PCI address as Proxmox writes it (``;``-joined ones with ``allow_list``)."""
    pattern = ADDRESS_LIST_RE if allow_list else ADDRESS_RE
    return bool(pattern.match(str(text or "").strip()))


def has_function(text):
    """``0000:00:02.0`` -> True, ``0000:01:00`` (all functions) -> False."""
    return "." in str(text)


def with_function(text):
    """The full address of function 0 for an address without function."""
    full = address(text)
    return full if has_function(full) else full + ".0"


def same_slot(known, wanted):
    """Whether device ``known`` (a full address with function) is ``wanted`` or one of its functions."""
    known, wanted = address(known), address(wanted)
    return known == wanted or (not has_function(wanted) and known.startswith(wanted + "."))


def hex_id(value, width=4):
    """``0x8086``, ``8086``, 32902 -> ``8086`` (``width`` digits at least, lower case); None when not hex.

    ``width=6`` suits PCI class ids (``0x030000``).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return "%0*x" % (width, value)
    match = _HEX_RE.match(str(value).strip().lower())
    if not match or len(match.group(1)) > max(width, 4):
        return None
    return match.group(1).zfill(width)


def vendor_device(text):
    """``8086:3E92`` -> ``8086:3e92``; None when ``text`` is not a vendor:device pair."""
    match = VENDOR_DEVICE_RE.match(str(text or "").strip())
    return "%s:%s" % (match.group(1).lower(), match.group(2).lower()) if match else None


def vendor_device_of(row, prefix=""):
    """``vendor:device`` of a ``GET /nodes/{node}/hardware/pci`` row (pve-manager PVE/API2/Hardware/PCI.pm);
    ``prefix="subsystem_"`` for the subsystem ids. None when an id is missing."""
    vendor, device = hex_id(row.get(prefix + "vendor")), hex_id(row.get(prefix + "device"))
    return "%s:%s" % (vendor, device) if vendor and device else None


def is_config_id(text):
    """A Proxmox configuration id (mapping ids): a letter, then letters, digits, ``-`` or ``_``."""
    return bool(CONFIGID_RE.match(str(text or "")))
