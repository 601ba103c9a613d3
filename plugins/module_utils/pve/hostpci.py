# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proxmox VE ``hostpciN`` property strings and ``qm config`` text: parse, format, validate.

Pure and stdlib-only. Every rule names the Proxmox VE source it follows; paths are inside the
proxmox/qemu-server, pve-common and pve-manager repositories.

The value format is ``$hostpci_fmt`` in ``qemu-server: src/PVE/QemuServer/PCI.pm``::

    [[host=]<HOSTPCIID[;HOSTPCIID2...]>] [,mapping=<id>] [,pcie=<0|1>] [,rombar=<0|1>]
    [,romfile=<file>] [,x-vga=<0|1>] [,legacy-igd=<0|1>] [,mdev=<type>]
    [,vendor-id=0xXXXX] [,device-id=0xXXXX] [,sub-vendor-id=0xXXXX] [,sub-device-id=0xXXXX]
    [,driver=<vfio|keep>]

``parse`` returns::

    {"host": "0000:00:02.0" | None,      # as written, ';'-joined ids kept
     "hosts": ["0000:00:02.0", ...],     # the ids, split on ';'
     "host_has_function": bool | None,   # None for a mapping
     "host_keyed": bool,                 # True when written as "host=..."
     "mapping": "igpu" | None,
     "options": {"pcie": "1", ...},      # every other key, as written, in written order
     "raw": "<the value>"}

``format`` accepts that dict (``raw`` is ignored) and also a flat dict such as
``{"host": "0000:00:02.0", "pcie": True}``; booleans are written as ``1``/``0``.
"""

from __future__ import annotations

import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pci_ids
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.config import is_i440fx, is_q35, parse_bool, slot_sort_key

# qemu-server: src/PVE/QemuServer/PCI.pm $MAX_HOSTPCI_DEVICES
MAX_HOSTPCI_DEVICES = 16

PCI_ID_RE = pci_ids.ADDRESS_RE
HOST_RE = pci_ids.ADDRESS_LIST_RE
CONFIGID_RE = pci_ids.CONFIGID_RE
HEX_ID_RE = pci_ids.HEX_OPTION_RE
# $hostpci_fmt patterns of 'mdev' and 'romfile'
MDEV_RE = re.compile(r"^[^/.:]+$")
ROMFILE_RE = re.compile(r"^[^,;]+$")

BOOL_KEYS = ("rombar", "pcie", "x-vga", "legacy-igd")
HEX_KEYS = ("vendor-id", "device-id", "sub-vendor-id", "sub-device-id")
STRING_KEYS = ("romfile", "mdev", "driver")
OPTION_KEYS = BOOL_KEYS + STRING_KEYS + HEX_KEYS
KEYS = ("host", "mapping") + OPTION_KEYS

# Defaults from $hostpci_fmt: an absent key means this value.
DEFAULTS = {"rombar": "1", "pcie": "0", "x-vga": "0", "legacy-igd": "0", "driver": "vfio"}
DRIVERS = ("vfio", "keep")

ROOT = "root@pam"

# ``romfile`` must name a file below this directory ($hostpci_fmt description).
ROMFILE_DIR = "/usr/share/kvm/"

# Ways out of the raw-host permission rule, named in every such error.
FIX_NOT_ROOT = (
    "use a cluster PCI resource mapping instead of a raw address (create it with "
    "homelab.gpu_passthrough.pve_pci_mapping or POST /cluster/mapping/pci, then set "
    "'mapping=<id>'; needs Mapping.Use on /mapping/pci/<id> and VM.Config.HWType on the VM), "
    "or authenticate as root@pam with its password (api_user: root@pam and api_password, "
    "no API token: a token 'user@realm!id' is never root@pam)"
)


normalize_id = pci_ids.address
has_function = pci_ids.has_function


def _error(message, fix, value, link="input"):
    return PassthroughError(message, fix=fix, link=link, details={"value": value})


def parse(value):
    """Split a ``hostpciN`` value into its parts (see the module docstring).

    Follows pve-common: src/PVE/JSONSchema.pm parse_property_string over ``$hostpci_fmt``
    (qemu-server: src/PVE/QemuServer/PCI.pm): parts are split on ``,``, blank parts are skipped,
    a part without ``=`` is the default key ``host``, ``key=`` without a value, unknown and repeated
    keys are errors, and each value must match its pattern. Raises ``PassthroughError`` (link
    ``input``) with Proxmox's wording; it does not check host/mapping exclusivity (Proxmox only
    does that at VM start, see ``validate``).
    """
    if value is None:
        raise _error("A hostpci value is required, got nothing.", "give a PCI address such as '0000:00:02.0' or 'mapping=<id>'.", value)
    raw = str(value)
    result = {"host": None, "hosts": [], "host_has_function": None, "host_keyed": False, "mapping": None, "options": {}, "raw": raw}
    seen = set()
    for part in raw.split(","):
        if not part.strip():
            continue
        match = re.match(r"^([^=]+)=(.+)$", part, re.DOTALL)
        if match:
            key, val = match.group(1), match.group(2)
            keyed = True
        elif "=" not in part:
            key, val, keyed = "host", part, False
        else:
            raise _error(
                "missing key in comma-separated list property: %r in hostpci value %r." % (part, raw),
                "write options as 'key=value', e.g. 'pcie=1'.",
                raw,
            )
        if key in seen:
            raise _error(
                "duplicate key in comma-separated list property: %s (in hostpci value %r)." % (key, raw),
                "give '%s' only once." % key,
                raw,
            )
        seen.add(key)
        if key not in KEYS:
            raise _error(
                "invalid key in comma-separated list property: %s (in hostpci value %r)." % (key, raw),
                "use only %s." % ", ".join(KEYS),
                raw,
            )
        _check_value(key, val, raw)
        if key == "host":
            result["host"] = val
            result["host_keyed"] = keyed
            result["hosts"] = val.split(";")
            result["host_has_function"] = all(has_function(h) for h in result["hosts"])
        elif key == "mapping":
            result["mapping"] = val
        else:
            result["options"][key] = val
    return result


def _check_value(key, val, raw):
    """Patterns and enums of ``$hostpci_fmt`` (qemu-server: src/PVE/QemuServer/PCI.pm)."""
    if key == "host" and not HOST_RE.match(val):
        raise _error(
            "Invalid PCI address %r in hostpci value %r." % (val, raw),
            "write it like lspci does, lower-case hex: '0000:00:02.0', '00:02.0', '01:00' (all functions) or '0000:01:00.0;0000:01:00.1'.",
            raw,
        )
    if key == "mapping" and not CONFIGID_RE.match(val):
        raise _error(
            "invalid configuration ID %r in hostpci value %r." % (val, raw),
            "a mapping id starts with a letter followed by letters, digits, '-' or '_'.",
            raw,
        )
    if key in BOOL_KEYS and parse_bool(val) is None:
        raise _error(
            "type check ('boolean') failed - got %r for '%s' in hostpci value %r." % (val, key, raw),
            "use 1 or 0 for '%s'." % key,
            raw,
        )
    if key in HEX_KEYS and not HEX_ID_RE.match(val):
        raise _error(
            "value %r for '%s' in hostpci value %r does not match 0x followed by 4 hex digits." % (val, key, raw),
            "write ids like '0x3e92'.",
            raw,
        )
    if key == "mdev" and not MDEV_RE.match(val):
        raise _error(
            "mdev type %r in hostpci value %r may not contain '/', '.' or ':'." % (val, raw),
            "use a type name from mdev_supported_types, e.g. 'i915-GVTg_V5_4'.",
            raw,
        )
    if key == "romfile" and not ROMFILE_RE.match(val):
        raise _error("romfile %r in hostpci value %r may not contain ';'." % (val, raw), "name a single file in %s." % ROMFILE_DIR, raw)
    if key == "driver" and val not in DRIVERS:
        raise _error(
            "value %r for 'driver' in hostpci value %r is not one of vfio, keep." % (val, raw),
            "use driver=vfio (the default) or driver=keep.",
            raw,
        )


def _value_text(key, value):
    if key in BOOL_KEYS and isinstance(value, (bool, int)):
        return "1" if value else "0"
    text = str(value)
    if "," in text:
        # pve-common: src/PVE/JSONSchema.pm print_property_string "illegal value with commas"
        raise _error("illegal value with commas for %s: %r." % (key, text), "remove the comma.", text)
    return text


def format_hostpci(d):
    """Write a ``hostpciN`` value from ``parse``'s dict or a flat dict of keys.

    ``host`` is written first and without ``host=`` (it is the default key of ``$hostpci_fmt``),
    unless the dict says ``host_keyed``; then ``mapping``; then options in the dict's order
    (flat keys first, then ``options``). ``None`` values are left out. ``host`` may be a string or a
    list of ids (joined with ``;``). ``format(parse(v)) == v`` for every value ``parse`` accepts
    that has no blank parts.
    """
    parts = []
    host = d.get("host")
    if isinstance(host, (list, tuple)):
        host = ";".join(host)
    if host is None and d.get("hosts"):
        host = ";".join(d["hosts"])
    if host is not None:
        parts.append(("host=%s" if d.get("host_keyed") else "%s") % _value_text("host", host))
    if d.get("mapping") is not None:
        parts.append("mapping=%s" % _value_text("mapping", d["mapping"]))
    done = set()
    flat = [(k, v) for k, v in d.items() if k in OPTION_KEYS]
    nested = list((d.get("options") or {}).items())
    for key, value in flat + nested:
        if value is None or key in done:
            continue
        if key not in OPTION_KEYS:
            raise _error("invalid key in hostpci options: %s." % key, "use only %s." % ", ".join(OPTION_KEYS), str(d))
        done.add(key)
        parts.append("%s=%s" % (key, _value_text(key, value)))
    return ",".join(parts)


# The contract name; bound here so the module does not define a function named like the builtin.
format = format_hostpci


def _as_parsed(d):
    """A ``parse``-shaped dict from a value string, a parsed dict or a flat dict."""
    if isinstance(d, str):
        return parse(d)
    return parse(format_hostpci(d))


def canonical(d):
    """The semantic content of a hostpci value, for comparisons.

    Ids get the ``0000:`` domain and lower case, booleans become ``1``/``0``, options equal to their
    ``$hostpci_fmt`` default are dropped (``rombar=1``, ``pcie=0``, ``x-vga=0``, ``legacy-igd=0``,
    ``driver=vfio``), hex ids are lower-cased, and option order does not matter.
    """
    p = _as_parsed(d)
    options = {}
    for key, value in p["options"].items():
        if key in BOOL_KEYS:
            value = "1" if parse_bool(value) else "0"
        elif key in HEX_KEYS:
            value = value.lower()
        if DEFAULTS.get(key) == value:
            continue
        options[key] = value
    hosts = tuple(normalize_id(h) for h in p["hosts"]) if p["host"] is not None else None
    return {"hosts": hosts, "mapping": p["mapping"], "options": dict(sorted(options.items()))}


def equivalent(a, b):
    """True when two hostpci values (strings or dicts) mean the same to Proxmox."""
    return canonical(a) == canonical(b)


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def is_root(user):
    """Only the exact user ``root@pam`` passes (qemu-server: src/PVE/API2/Qemu.pm check_hostpci_perm).

    An API token authenticates as ``user@realm!tokenid`` (pve-access-control:
    src/PVE/AccessControl.pm verify_token), so ``root@pam!ansible`` is not root.
    """
    return user == ROOT


def check_permission(value, user, opt="hostpci0", romfile_root_only=True):
    """Problems the API would raise for ``user`` setting (or deleting) ``opt`` to/from ``value``.

    qemu-server: src/PVE/API2/Qemu.pm check_hostpci_perm -- root@pam may do anything; anyone else
    dies "only root can set '<opt>' config for non-mapped devices" for a ``host=`` value, needs
    Mapping.Use on /mapping/pci/<id> plus VM.Config.HWType for a ``mapping=`` value (not checkable
    here), and "only root@pam can set 'romfile' option" even with a mapping (since qemu-server 9.2.6;
    ``romfile_root_only=False`` for older nodes). The API applies it to
    the new value, to the old value on update, and to the value being deleted.
    """
    if user is None or is_root(user):
        return []
    p = _as_parsed(value)
    problems = []
    where = "%s=%s for API user %r" % (opt, p["raw"], user)
    if p["host"]:
        token = " (an API token, which is never root@pam)" if "!" in user else ""
        problems.append(
            PassthroughError(
                "only root can set '%s' config for non-mapped devices: %s%s." % (opt, where, token),
                fix=FIX_NOT_ROOT,
                link="input",
                details={"value": p["raw"], "user": user, "option": opt},
            )
        )
    elif not p["mapping"]:
        problems.append(_error("either 'host' or 'mapping' must be set: %s." % where, "give a PCI address or 'mapping=<id>'.", p["raw"]))
    if "romfile" in p["options"] and romfile_root_only:
        problems.append(
            PassthroughError(
                "only root@pam can set 'romfile' option: %s." % where,
                fix="drop romfile (the device's own ROM is used), or authenticate as root@pam with its password.",
                link="input",
                details={"value": p["raw"], "user": user, "option": opt},
            )
        )
    return problems


def validate(d, machine=None, bios=None, vga=None, user=None, slot=None, raise_errors=False):
    """Problems with one hostpci value in a VM with this machine/bios/vga, set by ``user``.

    Returns a list of ``PassthroughError`` (empty when fine); with ``raise_errors`` the first one is
    raised. ``d`` is a value string or a (parsed or flat) dict; ``slot`` (or ``d["index"]``) is the N
    of ``hostpciN``. ``user`` None skips the permission rules; ``bios`` is accepted for symmetry with
    the VM config (no start-time rule depends on it: with OVMF, x-vga is simply not passed on,
    qemu-server: src/PVE/QemuServer/PCI.pm print_hostpci_devices).
    """
    del bios  # no rule depends on it, see the docstring
    if slot is None and isinstance(d, dict):
        slot = d.get("index")
    opt = "hostpci%s" % (slot if slot is not None else "N")
    problems = []
    try:
        p = _as_parsed(d)
    except PassthroughError as exc:
        problems.append(exc)
        if raise_errors:
            raise
        return problems
    raw = p["raw"]

    def add(message, fix, link="vm_config"):
        problems.append(PassthroughError("%s: %s" % (opt, message), fix=fix, link=link, details={"value": raw, "option": opt}))

    # qemu-server: src/PVE/QemuServer/PCI.pm $MAX_HOSTPCI_DEVICES -- hostpci0 .. hostpci15
    if slot is not None:
        try:
            slot_ok = 0 <= int(slot) < MAX_HOSTPCI_DEVICES
        except (TypeError, ValueError):
            slot_ok = False
        if not slot_ok:
            add("slot %r is out of range for %r." % (slot, raw), "use a slot from 0 to %d." % (MAX_HOSTPCI_DEVICES - 1), link="input")

    # qemu-server: src/PVE/QemuServer/PCI.pm parse_hostpci -- host xor mapping
    if p["host"] is not None and p["mapping"] is not None:
        add("Cannot set both 'host' and 'mapping' in %r." % raw, "keep either the PCI address or 'mapping=<id>', not both.", link="input")
    elif p["host"] is None and p["mapping"] is None:
        add("Either 'host' or 'mapping' must be set in %r." % raw, "give a PCI address such as '0000:00:02.0' or 'mapping=<id>'.", link="input")

    options = p["options"]
    flag = {k: parse_bool(options.get(k, DEFAULTS[k])) for k in BOOL_KEYS}
    q35 = is_q35(machine)
    machine_text = machine if machine else "the default i440fx ('pc')"

    # qemu-server: src/PVE/QemuServer/PCI.pm parse_hostpci_devices -- checked at VM start only
    if flag["pcie"] and not q35:
        add(
            "q35 machine model is not enabled: %r asks for pcie=1 but the machine is %s." % (raw, machine_text),
            "set the VM's machine to q35 (e.g. machine: q35), or drop pcie=1.",
        )

    # qemu-server: src/PVE/QemuServer/PCI.pm parse_hostpci -- mdev and multifunction
    if options.get("mdev") and len(p["hosts"]) > 1:
        add("cannot use mediated device with multifunction device: %r." % raw, "give a single function such as '0000:00:02.0' with mdev.")

    # qemu-server: src/PVE/QemuServer/PCI.pm $hostpci_fmt 'legacy-igd' ("Requires 'pc-i440fx' machine
    # type and VGA set to 'none'") and parse_hostpci_devices (the start-time checks, in its order)
    if flag["legacy-igd"]:
        if vga != "none":
            add(
                "legacy IGD assignment requires VGA mode to be 'none' (%r, vga is %r)." % (raw, vga),
                "set 'vga: none' on the VM.",
            )
        if not flag["rombar"]:
            add("legacy IGD assignment requires rombar to be enabled (%r)." % raw, "drop rombar=0.")
        if flag["x-vga"]:
            add("legacy IGD assignment is not compatible with x-vga (%r)." % raw, "drop x-vga=1.")
        if options.get("mdev"):
            add("legacy IGD assignment is not compatible with mdev (%r)." % raw, "drop mdev, or drop legacy-igd=1 for a GVT-g device.")
        if not is_i440fx(machine):
            add(
                "legacy IGD assignment is not compatible with q35 (%r, machine is %s)." % (raw, machine_text),
                "use an i440fx machine (pc or pc-i440fx-X.Y), or drop legacy-igd=1 and pass the iGPU with pcie=1 on q35.",
            )
        if len(p["hosts"]) > 1:
            add("legacy IGD assignment is not compatible with multifunction devices (%r)." % raw, "pass only the iGPU function, '0000:00:02.0'.")
        if p["hosts"]:
            first = normalize_id(p["hosts"][0])
            # the check is m/02\.0$/ on the first id that lspci expands; an id without function
            # expands to its functions, the first of which is .0
            if not (first if has_function(first) else first + ".0").endswith("02.0"):
                add(
                    "legacy IGD assignment only works for devices on host bus 00:02.0 (%r)." % raw,
                    "legacy-igd is for the Intel iGPU at 0000:00:02.0; drop it for other devices.",
                )

    # $hostpci_fmt 'romfile': "Custom pci device rom filename (must be located in /usr/share/kvm/)"
    romfile = options.get("romfile")
    if romfile and romfile.startswith("/") and not romfile.startswith(ROMFILE_DIR):
        add("romfile %r is outside %s." % (romfile, ROMFILE_DIR), "copy the ROM to %s and give its file name." % ROMFILE_DIR, link="input")

    problems.extend(check_permission(p["raw"], user, opt))
    if raise_errors and problems:
        raise problems[0]
    return problems


def validate_config(config, user=None, raise_errors=False):
    """Problems with every ``hostpciN`` of a flat VM config (GET .../config, or a `qm config` text read into one).

    Adds the cross-slot rules of qemu-server: src/PVE/QemuServer/PCI.pm parse_hostpci_devices
    ("only one device can be assigned in legacy-igd mode") and choose_hostpci_devices
    ("device '<id>' assigned more than once").
    """
    if "hostpci" in config and isinstance(config["hostpci"], list):
        config = dict(config.get("config") or {})
    problems = []
    legacy = []
    used = {}
    for key in sorted(config, key=slot_sort_key):
        match = re.match(r"^hostpci(\d+)$", key)
        if not match:
            continue
        slot = int(match.group(1))
        value = config[key]
        problems.extend(validate(value, machine=config.get("machine"), bios=config.get("bios"), vga=config.get("vga"), user=user, slot=slot))
        try:
            p = parse(value)
        except PassthroughError:
            continue
        if parse_bool(p["options"].get("legacy-igd", "0")):
            legacy.append(key)
        for host in p["hosts"]:
            used.setdefault(normalize_id(host), []).append(key)
    if len(legacy) > 1:
        problems.append(
            PassthroughError(
                "only one device can be assigned in legacy-igd mode (%s)." % ", ".join(legacy),
                fix="keep legacy-igd=1 on the iGPU entry only.",
                link="vm_config",
                details={"options": legacy},
            )
        )
    for host, keys in sorted(used.items()):
        if len(keys) > 1:
            problems.append(
                PassthroughError(
                    "device '%s' assigned more than once (%s)." % (host, ", ".join(keys)),
                    fix="remove all but one of %s." % ", ".join(keys),
                    link="vm_config",
                    details={"options": keys},
                )
            )
    if raise_errors and problems:
        raise problems[0]
    return problems


# The module options of one hostpciN entry and the property each one writes.
ENTRY_OPTIONS = (("host", "host"), ("mapping", "mapping"), ("pcie", "pcie"), ("rombar", "rombar"), ("x_vga", "x-vga"),
                 ("mdev", "mdev"), ("romfile", "romfile"), ("legacy_igd", "legacy-igd"), ("driver", "driver"))


def entry_argument_spec():
    """The argument spec of one hostpciN entry's options, shared by pve_hostpci (its options) and pve_vm_q35 (the
    suboptions of its ``hostpci`` list); the ``hostpci`` doc fragment documents them. A new dict on every call."""
    return dict(
        host=dict(type="str"),
        mapping=dict(type="str"),
        pcie=dict(type="bool"),
        rombar=dict(type="bool"),
        x_vga=dict(type="bool"),
        mdev=dict(type="str"),
        romfile=dict(type="str"),
        driver=dict(type="str", choices=list(DRIVERS)),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


def entry_value(entry, host=None, previous=None):
    """The hostpciN value for module options such as ``{"host": ..., "pcie": True, "x_vga": False}``.

    ``host`` replaces ``entry["host"]`` (the resolved address). Options that are None keep what
    ``previous`` (the slot's live value) has -- ``driver=keep``, ``romfile``, ``x-vga`` the user did not
    give stay -- or, without one, Proxmox VE's defaults; an empty string removes an option.
    """
    flat = {}
    if previous:
        try:
            flat.update(parse(previous)["options"])
        except PassthroughError:
            pass
    for option, prop in ENTRY_OPTIONS:
        value = host if option == "host" and host is not None else entry.get(option)
        if value is None or option in ("host", "mapping"):
            continue
        if value == "":
            flat.pop(prop, None)
        else:
            flat[prop] = value
    device = {}
    for option in ("host", "mapping"):
        value = host if option == "host" and host is not None else entry.get(option)
        if value:
            device[option] = value
    device.update(flat)
    return format_hostpci(device)


def is_vendor_device(host):
    return pci_ids.vendor_device(host) is not None


def resolve_host(host, devices, node):
    """The PCI address(es) for a ``host`` option, checked against ``devices`` (the node's
    ``GET /nodes/{node}/hardware/pci`` rows, pve-manager ``PVE/API2/Hardware/PCI.pm``).

    ``vendor:device`` ids must match exactly one device; addresses (with or without domain,
    ``;``-joined) must each be a device or, without function, a device's slot.
    """
    ids = pci_ids.vendor_device(host)
    if ids:
        vendor, device = ids.split(":")
        found = sorted(d["id"] for d in devices if pci_ids.vendor_device_of(d) == ids)
        if len(found) == 1:
            return found[0]
        if not found:
            raise PassthroughError(
                "No PCI device with ids %s:%s on node %s." % (vendor, device, node),
                fix="check the ids with 'lspci -nn' on %s, or give the PCI address." % node,
                link="input",
                details={"option": "host"},
            )
        raise PassthroughError(
            "PCI ids %s:%s match %d devices on node %s: %s." % (vendor, device, len(found), node, ", ".join(found)),
            fix="give the PCI address of the one to pass.",
            link="input",
            details={"option": "host"},
        )
    parsed = parse(host)
    if parsed["host"] is None or parsed["mapping"] is not None or parsed["options"]:
        raise PassthroughError("host %r is not a PCI address or vendor:device ids." % host,
                               fix="give host like '0000:00:02.0' and set the other options through their own parameters.",
                               link="input", details={"option": "host"})
    ids = [normalize_id(h) for h in parsed["hosts"]]
    known = [d["id"] for d in devices]
    for pci_id in ids:
        if not any(pci_ids.same_slot(k, pci_id) for k in known):
            raise PassthroughError(
                "No PCI device %s on node %s (GET /nodes/%s/hardware/pci)." % (pci_id, node, node),
                fix="check the address with 'lspci -D' on %s; the VM must be on the node that has the device." % node,
                link="input",
                details={"option": "host"},
            )
    return ";".join(ids)


def entry_host(entry, previous, node, devices):
    """The address to write for ``entry["host"]``: the entry's own text when ``previous`` (the VM's
    ``hostpciN`` now) already holds that device with those options, else ``resolve_host`` against
    ``devices()``, a callable, so the node's device list is only read for a new value or ids."""
    host = entry["host"]
    if previous is not None and not is_vendor_device(host) and equivalent(previous, entry_value(entry, previous=previous)):
        return host
    return resolve_host(host, devices(), node)
