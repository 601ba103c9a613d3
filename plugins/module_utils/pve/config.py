# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proxmox VE VM config values other than hostpciN: machine, bios, efidisk0, booleans, key order,
the pending view, and when a live value already "is met by" what the user asked for.

Pure and stdlib-only. The rule of the collection: an unset option keeps the live value, and a
desired value is met by any live value that satisfies it:

- ``machine: q35`` is met by every q35 machine string (``pc-q35-9.2+pve1``, ``q35,viommu=intel``);
  when the machine must change, its ``viommu``/``aw-bits``/... properties and a pinned version the
  user did not replace are kept (``machine_value``).
- "has an EFI disk" is met by any ``efidisk0``; an existing one is replaced (other ``efitype`` or
  keys) only when the caller says so explicitly, since its EFI variables (NVRAM: boot entries,
  Secure Boot keys and state) are lost with it (``efidisk_meets``).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError

# qemu-server: src/PVE/QemuServer/Machine.pm $machine_fmt (type pattern, viommu enum, aw-bits range)
MACHINE_TYPE_RE = re.compile(
    r"^(?:pc|pc(?:-i440fx)?-\d+(?:\.\d+)+(?:\+pve\d+)?(?:\.pxe)?|q35|pc-q35-\d+(?:\.\d+)+(?:\+pve\d+)?(?:\.pxe)?"
    r"|virt(?:-\d+(?:\.\d+)+)?(?:\+pve\d+)?)$"
)
MACHINE_KEYS = ("type", "viommu", "aw-bits", "enable-s3", "enable-s4")
VIOMMU = ("intel", "virtio")
_VERSION_RE = re.compile(r"-(\d+)\.(\d+)(?:\.\d+)*(?:\+pve(\d+))?(?:\.pxe)?$")

# qemu-server: src/PVE/QemuServer/Drive.pm $efidisk_fmt: efitype defaults to 2m, pre-enrolled-keys to 0
EFITYPES = ("2m", "4m")
EFITYPE_DEFAULT = "2m"

BIOS_DEFAULT = "seabios"  # qemu-server: src/PVE/QemuServer.pm $confdesc bios


def parse_bool(value):
    """pve-common: src/PVE/JSONSchema.pm parse_boolean: 1|on|yes|true and 0|off|no|false, any case; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "on", "yes", "true"):
        return True
    if text in ("0", "off", "no", "false"):
        return False
    return None


def with_description_line(description, is_ours, line=None):
    """A VM ``description`` with the lines ``is_ours`` picks removed (and the blank lines they leave at the end), then
    ``line`` appended when given: how the collection keeps its one-line marks in a description the user also writes."""
    kept = [text for text in str(description or "").split("\n") if not is_ours(text)]
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept + ([line] if line else []))


def slot_sort_key(key):
    """``hostpci2`` < ``hostpci10``: config keys ordered by name, then number."""
    match = re.match(r"^([a-z_-]+)(\d+)$", key)
    if match:
        return (match.group(1), int(match.group(2)))
    return (key, -1)


def parse_properties(value, default_key=None):
    """``a,k=v`` -> ``{default_key: "a", "k": "v"}`` in written order (pve-common JSONSchema.pm
    parse_property_string, without the schema: blank parts skipped, keys and values stripped)."""
    result = {}
    for part in str(value or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            key, _sep, val = part.partition("=")
            result[key.strip()] = val.strip()
        elif default_key:
            result[default_key] = part
    return result


def config_from_pending(rows):
    """(config as ``GET .../config`` shows it, sorted keys with a pending change) from ``GET .../pending`` rows.

    qemu-server PVE/API2/Qemu.pm ``vm_pending``, pve-guest-common PVE/GuestHelpers.pm
    ``config_with_pending_array``: each row has the current ``value``, the ``pending`` one and ``delete``.
    """
    config, pending = {}, []
    for row in rows:
        key = row.get("key")
        if key is None:
            continue
        if "pending" in row or row.get("delete"):
            pending.append(key)
        if row.get("delete"):
            continue
        value = row["pending"] if "pending" in row else row.get("value")
        if value is not None:
            config[key] = value
    return config, sorted(pending)


# ---------------------------------------------------------------------------------------------
# machine
# ---------------------------------------------------------------------------------------------


def parse_machine(machine):
    """``[type=]<type>[,viommu=..][,aw-bits=..]..`` -> ``{"type": ..., <other keys>: ...}``; type None when absent."""
    result = {"type": None}
    result.update(parse_properties(machine, default_key="type"))
    return result


def format_machine(parsed):
    """The inverse of ``parse_machine``: type first, then the other keys in their order."""
    parts = [parsed["type"]] if parsed.get("type") else []
    parts.extend("%s=%s" % (k, v) for k, v in parsed.items() if k != "type" and v is not None)
    return ",".join(parts)


def machine_base_type(machine):
    """``q35``, ``i440fx`` or ``virt`` (qemu-server: src/PVE/QemuServer/Machine.pm machine_base_type).

    Anything containing ``q35`` is q35, anything starting with ``pc`` is i440fx; no machine at all
    is the x86_64 default ``pc``, i.e. i440fx. Returns None for a type Proxmox would not recognise.
    """
    mtype = parse_machine(machine)["type"]
    if not mtype:
        return "i440fx"
    if "q35" in mtype:
        return "q35"
    if mtype.startswith("pc"):
        return "i440fx"
    if mtype.startswith("virt"):
        return "virt"
    return None


def is_q35(machine):
    return machine_base_type(machine) == "q35"


def is_i440fx(machine):
    return machine_base_type(machine) == "i440fx"


def machine_version(machine):
    """``pc-q35-9.2+pve1`` -> ``(9, 2)``; None for an unpinned type (``q35``, ``pc``).

    qemu-server: src/PVE/QemuServer/Machine.pm extract_version.
    """
    match = _VERSION_RE.search(parse_machine(machine)["type"] or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def machine_problems(machine):
    """What the API would refuse in a machine string: ``[(key, message, fix)]`` (Machine.pm $machine_fmt)."""
    problems = []
    parsed = parse_machine(machine)
    if not parsed["type"] or not MACHINE_TYPE_RE.match(parsed["type"]) or len(parsed["type"]) > 40:
        problems.append(("type", "machine type %r is not one Proxmox VE knows" % parsed["type"],
                         "use q35 or a pinned version such as pc-q35-9.2+pve1"))
    for key, value in parsed.items():
        if key not in MACHINE_KEYS:
            problems.append((key, "machine property %r is unknown" % key, "use only %s" % ", ".join(MACHINE_KEYS[1:])))
        elif key == "viommu" and value not in VIOMMU:
            problems.append((key, "viommu=%s is not one of %s" % (value, ", ".join(VIOMMU)), "use viommu=intel or viommu=virtio"))
        elif key == "aw-bits" and not (value.isdigit() and 32 <= int(value) <= 64):
            problems.append((key, "aw-bits=%s is not a number from 32 to 64" % value, "use e.g. aw-bits=48"))
        elif key in ("enable-s3", "enable-s4") and parse_bool(value) is None:
            problems.append((key, "%s=%s is not a boolean" % (key, value), "use %s=1 or %s=0" % (key, key)))
    return problems


def machine_meets(current, wanted):
    """Whether the live ``current`` machine already is the ``wanted`` one.

    Same base type; a versionless wanted type (``q35``) is met by any version of it, a pinned one
    only by itself; every property the user gave (``viommu=intel``) must be there with that value,
    properties the user did not give are not looked at.
    """
    if machine_base_type(current) != machine_base_type(wanted):
        return False
    cur, want = parse_machine(current), parse_machine(wanted)
    if machine_version(wanted) is not None and cur["type"] != want["type"]:
        return False
    return all(cur.get(k) == v for k, v in want.items() if k != "type")


def machine_value(current, wanted):
    """The machine string to write for ``wanted`` on a VM that has ``current``: the live value when it
    meets ``wanted``; else the wanted type (a pinned live version of the same base type is kept when
    ``wanted`` is versionless) with the live properties kept and the wanted ones set."""
    if machine_meets(current, wanted):
        return current
    cur, want = parse_machine(current), parse_machine(wanted)
    merged = dict(cur)
    merged.update({k: v for k, v in want.items() if k != "type"})
    same_base = machine_base_type(current) == machine_base_type(wanted)
    keep_pinned = same_base and machine_version(wanted) is None and cur["type"]
    merged["type"] = cur["type"] if keep_pinned else want["type"]
    return format_machine(merged)


# ---------------------------------------------------------------------------------------------
# efidisk0
# ---------------------------------------------------------------------------------------------


def efidisk_spec(value):
    """``volume``, ``storage``, ``efitype`` (default 2m), ``pre_enrolled_keys`` (default False) and
    ``ms_cert`` of an efidisk0 value (qemu-server: src/PVE/QemuServer/Drive.pm $efidisk_fmt)."""
    opts = parse_properties(value, default_key="file")
    volume = opts.pop("file", None) or opts.pop("volume", None)
    storage = volume.split(":", 1)[0] if volume and ":" in volume else None
    keys = parse_bool(opts.get("pre-enrolled-keys", "0"))
    return {"volume": volume, "storage": storage, "efitype": opts.get("efitype", EFITYPE_DEFAULT),
            "pre_enrolled_keys": bool(keys), "ms_cert": opts.get("ms-cert")}


def efidisk_meets(current, efitype=None, pre_enrolled_keys=None, replace=False):
    """Whether the live ``current`` efidisk0 meets "has an EFI disk" (any efidisk0 does).

    With ``replace`` (an explicit option whose docs say the NVRAM is lost), a disk whose ``efitype``
    or ``pre_enrolled_keys`` differ from the given ones (None: any) does not meet it.
    """
    if not current:
        return False
    if not replace:
        return True
    spec = efidisk_spec(current)
    if efitype is not None and spec["efitype"] != efitype:
        return False
    return pre_enrolled_keys is None or spec["pre_enrolled_keys"] == bool(pre_enrolled_keys)


def new_efidisk(storage, efitype="4m", pre_enrolled_keys=None):
    """``STORAGE:1,efitype=..`` asks the API to allocate a new EFI vars disk (the size is ignored,
    qemu-server: src/PVE/API2/Qemu.pm create_disks / $NEW_DISK_RE)."""
    if not storage:
        raise PassthroughError(
            "efidisk0 must be created but no storage was given for it.",
            fix="set efidisk_storage to a storage of the node that takes disk images, e.g. 'local-lvm'.",
            link="input",
            details={"option": "efidisk_storage"},
        )
    value = "%s:1,efitype=%s" % (storage, efitype or "4m")
    if pre_enrolled_keys is not None:
        value += ",pre-enrolled-keys=%d" % (1 if pre_enrolled_keys else 0)
    return value


def machine_version_key(machine):
    return machine_version(machine) or (0, 0)


def release_at_least(release, wanted):
    """``"9.2"`` >= ``(9, 2)``; an unreadable release counts as new (the stricter rules apply)."""
    match = re.match(r"^(\d+)\.(\d+)", str(release or ""))
    return not match or (int(match.group(1)), int(match.group(2))) >= tuple(wanted)


# ---------------------------------------------------------------------------------------------
# cloud-init values
# ---------------------------------------------------------------------------------------------

# pve-common: src/PVE/Tools.pm validate_ssh_public_keys / sshkeys split per line; the key types OpenSSH writes
SSH_KEY_RE = re.compile(r"^(?:\S+\s+)?(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)"
                        r"(?:-cert-v01@openssh\.com)?\s+[A-Za-z0-9+/]+={0,2}(?:\s.*)?$")


def cloudinit_problem(key, value):
    """``(message, fix)`` when a cloud-init value is not in Proxmox VE's format, else None.

    ipconfigN: qemu-server src/PVE/QemuServer.pm $ipconfig_fmt (ip: dhcp or IPv4/CIDR, gw IPv4; ip6: dhcp, auto or
    IPv6/CIDR, gw6 IPv6); nameserver: format address-list (pve-common JSONSchema.pm verify_address_list);
    sshkeys: one OpenSSH public key per line.
    """
    text = str(value)
    if key.startswith("ipconfig"):
        fields = parse_properties(text)
        unknown = sorted(set(fields) - {"ip", "gw", "ip6", "gw6"}) or [p for p in text.split(",") if p.strip() and "=" not in p]
        if unknown:
            return ("%s has keys %s that Proxmox VE does not know" % (key, ", ".join(unknown)),
                    "write it as ip=<IPv4/CIDR|dhcp>[,gw=<IPv4>][,ip6=<IPv6/CIDR|dhcp|auto>][,gw6=<IPv6>], e.g. ip=192.168.1.120/24,gw=192.168.1.1.")
        checks = (("ip", 4, True, ("dhcp",)), ("gw", 4, False, ()), ("ip6", 6, True, ("dhcp", "auto")), ("gw6", 6, False, ()))
        for name, version, cidr, words in checks:
            if name not in fields or fields[name] in words:
                continue
            if not _ip_ok(fields[name], version, cidr):
                return ("%s=%s is not an IPv%d %s" % (name, fields[name], version, "address with /prefix" if cidr else "address"),
                        "e.g. ip=192.168.1.120/24,gw=192.168.1.1 (or ip=dhcp)." if version == 4 else "e.g. ip6=fd00::120/64,gw6=fd00::1 (or ip6=auto).")
        if "gw" in fields and fields.get("ip") in (None, "dhcp"):
            return ("gw=%s needs a static ip" % fields["gw"], "give ip=<IPv4/CIDR> with gw, or drop gw with ip=dhcp.")
        return None
    if key == "nameserver":
        bad = [a for a in re.split(r"[,;\s]+", text.strip()) if a and not _ip_ok(a, None, False)]
        if bad or not text.strip():
            return ("nameserver %s is not a list of IP addresses" % (", ".join(bad) or "(empty)"),
                    "give IP addresses separated by spaces, e.g. '192.168.1.1 1.1.1.1'.")
        return None
    if key == "sshkeys":
        plain = unquote(text) if re.search(r"%[0-9A-Fa-f]{2}", text) and " " not in text else text
        lines = [line.strip() for line in plain.splitlines() if line.strip() and not line.strip().startswith("#")]
        bad = [line for line in lines if not SSH_KEY_RE.match(line)]
        if bad or not lines:
            return ("sshkeys holds %s that is not an OpenSSH public key" % (repr(bad[0][:40]) if bad else "no key"),
                    "give the contents of a .pub file, one key per line (ssh-ed25519 AAAA... user@host).")
    return None


def _ip_ok(text, version, cidr):
    try:
        if cidr:
            if "/" not in text:
                return False
            net = ipaddress.ip_interface(text)
        else:
            net = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or net.version == version
