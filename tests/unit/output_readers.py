# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readers of the real command outputs the fixtures hold (``qm config`` text, ``pvesh get .../hardware/pci`` tables,
``/proc/cmdline`` lines), so the tests can state what each fixture means with the collection's own parsers. The
collection reads the same things through the Proxmox VE API and its modules; these readers exist for the tests only."""

from __future__ import annotations

import re
from urllib.parse import unquote as percent_decode

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.cmdline import (  # the tokenizer's own rules
    norm_key,
    split_arg,
    unquote,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.cmdline import (
    parse as parse_cmdline,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.config import parse_bool, slot_sort_key
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.hostpci import normalize_id, parse

BOOT_STYLE_GRUB = "grub (BOOT_IMAGE=)"
BOOT_STYLE_SYSTEMD_BOOT = "systemd-boot (initrd=\\EFI\\\u2026)"
BOOT_STYLE_NONE = "none (etc/kernel/cmdline has no loader prefix)"


# ---------------------------------------------------------------------------------------------
# qm config / <vmid>.conf text
# ---------------------------------------------------------------------------------------------

_LINE_RE = re.compile(r"^([a-z][a-z_-]*\d*):(?:\s*(.*?))?\s*$")
_SECTION_RE = re.compile(r"^\[([^\]]*)\]\s*$")


def parse_vm_config(text):
    """Parse ``qm config`` output or ``/etc/pve/qemu-server/<vmid>.conf`` text (current config only).

    Follows qemu-server: src/PVE/QemuServer.pm parse_vm_config: blank lines are skipped, ``#`` lines
    are the description (URI-escaped, pve-common: src/PVE/ParseUtils.pm decode_text), a ``[...]``
    line starts another section (``[PENDING]``, ``[special:cloudinit]``, a snapshot) which is not part
    of the current config, ``cdrom`` is an alias of ``ide2``. Unlike Proxmox, a ``key:`` line without
    a value (as ``qm config`` can print) is kept with the value ``""``. Never raises on odd input.

    Returns ``config`` (every key -> value string), ``hostpci`` (list, by index: ``index``, ``host``,
    ``mapping``, ``host_has_function``, ``options``, ``raw``, and ``error`` if the value does not
    parse), ``machine``, ``bios``, ``efidisk0``, ``vga``, ``args``, ``boot`` (None when absent),
    ``description`` and ``sections`` (names of the other sections seen).
    """
    config = {}
    description = []
    sections = []
    in_main = True
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        section = _SECTION_RE.match(line.strip())
        if section:
            in_main = False
            sections.append(section.group(1))
            continue
        if not in_main:
            continue
        if line.startswith("#"):
            description.append(percent_decode(line[1:]))
            continue
        match = _LINE_RE.match(line.rstrip("\r"))
        if not match:
            continue
        key, value = match.group(1), match.group(2) or ""
        if key == "cdrom":
            key = "ide2"
        if key == "description":
            description.append(percent_decode(value))
            continue
        config[key] = value
    return vm_config_facts(config, description="\n".join(description).rstrip() or None, sections=sections)


def vm_config_facts(config, description=None, sections=None):
    """The facts of ``parse_vm_config`` from a flat config dict (e.g. what the API returns)."""
    hostpci = []
    for key in sorted(config, key=slot_sort_key):
        match = re.match(r"^hostpci(\d+)$", key)
        if not match:
            continue
        entry = {"index": int(match.group(1)), "host": None, "mapping": None, "host_has_function": None, "options": {}, "raw": config[key]}
        try:
            p = parse(config[key])
        except PassthroughError as exc:
            entry["error"] = str(exc)
        else:
            for field in ("host", "mapping", "host_has_function", "options"):
                entry[field] = p[field]
        hostpci.append(entry)
    facts = {"config": dict(config), "hostpci": hostpci}
    for key in ("machine", "bios", "efidisk0", "vga", "args", "boot"):
        facts[key] = config.get(key)
    facts["description"] = description if description is not None else config.get("description")
    facts["sections"] = list(sections or [])
    return facts


# ---------------------------------------------------------------------------------------------
# pvesh get /nodes/<node>/hardware/pci (table output)
# ---------------------------------------------------------------------------------------------

# pve-manager: PVE/API2/Hardware/PCI.pm pci_scan return properties
PCI_SCAN_FIELDS = (
    "id",
    "class",
    "vendor",
    "vendor_name",
    "device",
    "device_name",
    "subsystem_vendor",
    "subsystem_vendor_name",
    "subsystem_device",
    "subsystem_device_name",
    "iommugroup",
    "mdev",
)

_TABLE_RULE_RE = re.compile(r"^[\s|+:=\-\u2500-\u257f]*$")


def _table_cells(line):
    line = line.strip()
    for vertical in ("\u2502", "\u2503", "\u2551"):
        line = line.replace(vertical, "|")
    if not line.startswith("|"):
        return None
    cells = line.strip("|").split("|")
    return [c.strip() for c in cells]


def _resolve_headers(headers):
    """Map (possibly truncated) column titles onto pci_scan field names.

    A title that is not a field name but the prefix of exactly one field that no other column
    has is taken to mean that field (pasted tables lose the ends of wide titles).
    """
    present = set(h for h in headers if h in PCI_SCAN_FIELDS)
    resolved = []
    for title in headers:
        if title in PCI_SCAN_FIELDS or not title:
            resolved.append(title)
            continue
        candidates = [f for f in PCI_SCAN_FIELDS if f.startswith(title) and f not in present]
        if len(candidates) == 1:
            resolved.append(candidates[0])
            present.add(candidates[0])
        else:
            resolved.append(title)
    return resolved


def parse_pvesh_pci_table(text):
    """Rows of ``pvesh get /nodes/<node>/hardware/pci`` table output (pipe or box-drawing borders).

    Each row is a dict with the pci_scan fields (pve-manager: PVE/API2/Hardware/PCI.pm): ``id``
    (normalised ``0000:00:02.0``), ``class``, ``vendor``, ``device``, ``subsystem_vendor``,
    ``subsystem_device`` (``0x`` hex strings as printed), the ``*_name`` fields (None when
    empty), ``iommugroup`` (int, -1 when there is none) and ``mdev`` (bool). Columns the table
    does not have are None. Never raises; lines that are not table rows are skipped.
    """
    headers = None
    rows = []
    for line in (text or "").splitlines():
        if not line.strip() or _TABLE_RULE_RE.match(line):
            continue
        cells = _table_cells(line)
        if cells is None:
            continue
        if headers is None:
            headers = _resolve_headers(cells)
            continue
        raw = dict(zip(headers, cells))
        row = {field: (raw.get(field) or None) for field in PCI_SCAN_FIELDS}
        if row["id"]:
            row["id"] = normalize_id(row["id"])
        try:
            row["iommugroup"] = int(raw.get("iommugroup", ""))
        except ValueError:
            row["iommugroup"] = -1
        row["mdev"] = bool(parse_bool(raw.get("mdev") or "0"))
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# /proc/cmdline
# ---------------------------------------------------------------------------------------------

def _iommu_passthrough(params_in_order):
    """Passthrough as the kernel reads it, from ``(key, value)`` pairs in command-line order.

    x86 ``iommu=`` (``arch/x86/kernel/pci-dma.c``, ``iommu_setup``) takes comma-separated
    options matched by prefix (``pt`` on, ``nopt`` off, so ``iommu=pti`` counts as ``pt``);
    ``iommu.passthrough=`` (``drivers/iommu/iommu.c``) takes a boolean. Last wins.
    """
    effective = False
    for key, value in params_in_order:
        if value is None:
            continue
        value = unquote(value)
        if key == "iommu":
            for option in value.split(","):
                if option.startswith("nopt"):
                    effective = False
                elif option.startswith("pt"):
                    effective = True
        elif key == "iommu.passthrough":
            lowered = value.lower()
            if lowered in ("1", "y", "yes", "on", "true"):
                effective = True
            elif lowered in ("0", "n", "no", "off", "false"):
                effective = False
    return effective


def analyze_cmdline(text):
    """Facts about a command line (``/proc/cmdline`` or ``/etc/kernel/cmdline`` contents).

    Returns ``line_count``, ``boot_style``, ``intel_iommu``, ``amd_iommu``, ``iommu`` (lists of
    values or None), ``iommu_pt_exact`` (a literal ``iommu=pt`` token), ``iommu_pt_effective``
    (the kernel's reading), ``vfio_pci_ids`` (last ``vfio-pci.ids`` split on commas, or None),
    ``video`` (list or None), ``duplicate_keys`` (keys given more than once, first-seen order)
    and ``params`` (key -> list of values in order, a flag's value is True).
    """
    text = text or ""
    tokens = parse_cmdline(text)
    pairs = []
    params = {}
    for token in tokens:
        key, value = split_arg(token)
        pairs.append((key, value))
        params.setdefault(key, []).append(True if value is None else unquote(value))

    def values(*keys):
        found = [v for k, v in pairs if k in keys and v is not None]
        return [unquote(v) for v in found] or None

    boot_style = BOOT_STYLE_NONE
    for key, value in pairs:
        if key == "BOOT_IMAGE":
            boot_style = BOOT_STYLE_GRUB
            break
        if key == "initrd" and value and unquote(value).upper().startswith("\\EFI\\"):
            boot_style = BOOT_STYLE_SYSTEMD_BOOT
            break

    vfio = [v for k, v in pairs if norm_key(k) == "vfio_pci.ids" and v is not None]
    seen = {}
    for key, _value in pairs:
        seen[key] = seen.get(key, 0) + 1
    duplicates = []
    for key, _value in pairs:
        if seen[key] > 1 and key not in duplicates:
            duplicates.append(key)

    return {
        "line_count": len([ln for ln in text.splitlines() if ln.strip()]),
        "boot_style": boot_style,
        "intel_iommu": values("intel_iommu"),
        "amd_iommu": values("amd_iommu"),
        "iommu": values("iommu"),
        "iommu_pt_exact": any(k == "iommu" and v == "pt" for k, v in pairs),
        "iommu_pt_effective": _iommu_passthrough(pairs),
        "vfio_pci_ids": [i for i in unquote(vfio[-1]).split(",") if i] if vfio else None,
        "video": values("video"),
        "duplicate_keys": duplicates,
        "params": params,
    }
