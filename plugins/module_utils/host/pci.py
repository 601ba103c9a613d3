# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PCI devices, IOMMU groups and vfio-pci binding, read from sysfs and decided here.

Conventions of the returned data:

* addresses are always the full lower-case form ``0000:00:02.0``;
* ``vendor_id``/``device_id`` are four lower-case hex digits (``8086``, ``3e92``);
* ``class_id`` is base class + subclass, four hex digits (``0300``, ``0380``, ``0604``),
  the form ``lspci -nn`` prints; the programming interface byte is dropped;
* ``is_bridge`` means PCI base class 06 (host, ISA, PCI-to-PCI bridges ...);
* ``is_gpu`` means PCI base class 03 (VGA, 3D and display controllers);
* IOMMU group numbers are strings;
* ``sriov`` (a physical function: ``total_vfs``, ``num_vfs``, ``vfs``), ``physfn`` (a virtual function's PF) and
  ``mdev_types`` (a mediated-device parent such as a GVT-g iGPU) appear only on devices that have them; a number
  that cannot be read is None, a link whose target is gone is left out.

Everything here uses the standard library only; the modules do the Ansible part.
"""

import errno
import os
import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import cmdline as kernel_cmdline

VFIO_DRIVER = "vfio-pci"
VFIO_MODULE = "vfio_pci"

ACCEPTED_FORMS = "a full address (0000:00:02.0), a short address (00:02.0), a vendor:device id (8086:3e92) or auto"

_FULL_ADDRESS = re.compile(r"^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$")
_SHORT_ADDRESS = re.compile(r"^([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$")
_ID_PAIR = re.compile(r"^([0-9a-f]{4}):([0-9a-f]{4})$")


# ---------------------------------------------------------------------------
# Small readers


def _read_text(path):
    """A sysfs or proc file's text, odd bytes replaced (only read, never written back); None if unreadable."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def _read_hex(path, digits):
    """``0x030000`` -> ``0300`` (first ``digits`` digits); None if the file is missing or odd."""
    text = _read_text(path)
    if text is None:
        return None
    value = text.strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    if not re.match(r"^[0-9a-f]+$", value):
        return None
    return value[:digits]


def _link_name(path):
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def _sysfs(root, *parts):
    return os.path.join(root, "sys", *parts)


def _group_sort_key(name):
    return (0, int(name)) if name.isdigit() else (1, name)


# ---------------------------------------------------------------------------
# Addresses and device selection


def normalize_address(text):
    """Return ``0000:00:02.0`` for ``0000:00:02.0`` or ``00:02.0`` (any case); raise PassthroughError otherwise."""
    value = (text or "").strip().lower()
    match = _FULL_ADDRESS.match(value)
    if match:
        domain, bus, slot, function = match.groups()
    else:
        match = _SHORT_ADDRESS.match(value)
        if not match:
            raise PassthroughError(
                "%r is not a PCI address." % (text,),
                fix="Give %s; an address needs its function, e.g. 0000:00:02.0." % ACCEPTED_FORMS,
            )
        domain = "0000"
        bus, slot, function = match.groups()
    if int(slot, 16) > 0x1F:
        raise PassthroughError(
            "%r is not a PCI address: the slot %s is above 1f." % (text, slot),
            fix="Copy the address from lspci -D, e.g. 0000:00:02.0.",
        )
    return "%s:%s:%s.%s" % (domain, bus, slot, function)


def slot_of(address):
    """``0000:2d:00.1`` -> ``0000:2d:00``: the functions of one device share it."""
    return address.rsplit(".", 1)[0]


def is_id_pair(text):
    return bool(_ID_PAIR.match((text or "").strip().lower()))


def _describe(facts, address):
    dev = facts["devices"].get(address, {})
    parts = []
    if dev.get("class_id"):
        parts.append("class %s" % dev["class_id"])
    if dev.get("vendor_id") and dev.get("device_id"):
        parts.append("%s:%s" % (dev["vendor_id"], dev["device_id"]))
    if dev.get("driver"):
        parts.append("driver %s" % dev["driver"])
    return "%s (%s)" % (address, ", ".join(parts)) if parts else address


def _display_list(facts):
    if not facts["gpus"]:
        return "no display-class device was found"
    return "display devices found: " + ", ".join(_describe(facts, a) for a in facts["gpus"])


def select_devices(facts, spec, all_matches=False):
    """Addresses that ``spec`` names: an address, a vendor:device id or ``auto``.

    A vendor:device id gives the first match unless ``all_matches``. Raises PassthroughError
    naming ``spec`` when nothing matches or the form is not understood.
    """
    value = (spec or "").strip().lower()
    devices = facts["devices"]
    if value == "auto":
        igpu = "0000:00:02.0"
        if igpu in devices and devices[igpu]["is_gpu"] and devices[igpu]["vendor_id"] == "8086":
            return [igpu]
        if facts["gpus"]:
            return [facts["gpus"][0]]
        raise PassthroughError(
            "device=auto found no display-class PCI device (class 03xx).",
            fix="Name the device by address or vendor:device id; %s." % _display_list(facts),
        )
    if is_id_pair(value):
        vendor, device = value.split(":")
        found = [a for a, d in devices.items() if d["vendor_id"] == vendor and d["device_id"] == device]
        if not found:
            raise PassthroughError(
                "No PCI device has the vendor:device id %r." % (spec,),
                fix="Use an id lspci -nn shows on this host; %s." % _display_list(facts),
            )
        return found if all_matches else found[:1]
    if ":" not in value or "." not in value:
        raise PassthroughError(
            "%r is neither a PCI address nor a vendor:device id." % (spec,),
            fix="Give %s." % ACCEPTED_FORMS,
        )
    address = normalize_address(value)
    if address not in devices:
        raise PassthroughError(
            "No PCI device at %r (%s)." % (spec, address),
            fix="Use an address lspci -D shows on this host; %s." % _display_list(facts),
        )
    return [address]


# ---------------------------------------------------------------------------
# Kernel command line


def split_cmdline(line):
    """Split a kernel command line on blanks, keeping double-quoted blanks and every character as written."""
    return kernel_cmdline.parse(line)


def passthrough_in_effect(tokens):
    """Whether the command line puts the IOMMU default domain in passthrough.

    The x86 ``iommu=`` parser walks comma-separated options and matches each by prefix, so ``pt`` and
    ``pti`` both set passthrough and ``nopt`` clears it; ``iommu.passthrough=`` is the generic switch.
    Later arguments win, as in the kernel.
    """
    passthrough = False
    for token in tokens:
        key, sep, value = token.partition("=")
        value = value.strip('"')
        if key == "iommu" and sep:
            for option in value.split(","):
                if option.startswith("pt"):
                    passthrough = True
                elif option.startswith("nopt"):
                    passthrough = False
        elif key == "iommu.passthrough" and sep:
            passthrough = value.lower() in ("1", "y", "yes", "on", "true")
    return passthrough


# ---------------------------------------------------------------------------
# sysfs scan


def _read_groups(root):
    base = _sysfs(root, "kernel", "iommu_groups")
    groups = {}
    try:
        names = os.listdir(base)
    except OSError:
        return groups
    for name in sorted(names, key=_group_sort_key):
        try:
            members = os.listdir(os.path.join(base, name, "devices"))
        except OSError:
            continue
        groups[name] = sorted(m.lower() for m in members)
    return groups


def _read_device(path):
    class_id = _read_hex(os.path.join(path, "class"), 4)
    base_class = class_id[:2] if class_id else None
    device = {
        "vendor_id": _read_hex(os.path.join(path, "vendor"), 4),
        "device_id": _read_hex(os.path.join(path, "device"), 4),
        "class_id": class_id,
        "driver": _link_name(os.path.join(path, "driver")),
        "iommu_group": _link_name(os.path.join(path, "iommu_group")),
        "is_bridge": base_class == "06",
        "is_gpu": base_class == "03",
    }
    sriov = _read_sriov(path)
    if sriov is not None:
        device["sriov"] = sriov
    physfn = _linked_address(os.path.join(path, "physfn"))
    if physfn is not None:
        device["physfn"] = physfn
    mdev_types = _read_mdev_types(path)
    if mdev_types is not None:
        device["mdev_types"] = mdev_types
    return device


# ---------------------------------------------------------------------------
# Sharing: SR-IOV virtual functions and mediated device types

_VIRTFN = re.compile(r"^virtfn([0-9]+)$")
_COUNT = re.compile(r"^[0-9]+$")


def _read_int(path):
    """A sysfs count (``7``) as an int; None when the file is missing, unreadable or not a plain number."""
    text = _read_text(path)
    value = text.strip() if text is not None else ""
    return int(value) if _COUNT.match(value) else None


def _read_line(path):
    """A one-line sysfs attribute without its newline; None when missing or unreadable."""
    text = _read_text(path)
    return text.strip() if text is not None else None


def _read_description(path):
    """An mdev type's description on one line: i915's GVT-g prints one ``key: value`` per line
    (``gvt/kvmgt.c`` ``description_show``); joined with ", " as ``mdevctl types`` shows it."""
    text = _read_text(path)
    if text is None:
        return None
    return ", ".join(line.strip() for line in text.splitlines() if line.strip())


def _linked_address(path):
    """The PCI address a ``physfn``/``virtfnN`` link points to; None without the link, when its target is
    gone (a device removed while we read) or when it names no PCI address."""
    if not os.path.islink(path) or not os.path.exists(path):
        return None
    name = (_link_name(path) or "").lower()
    return name if _FULL_ADDRESS.match(name) else None


def _read_sriov(path):
    """``{total_vfs, num_vfs, vfs}`` of a device with the SR-IOV capability, else None.

    The kernel adds ``sriov_totalvfs``/``sriov_numvfs`` to every physical function and one ``virtfnN`` link per
    enabled VF (``drivers/pci/iov.c``); VFs are listed in the order of N.
    """
    try:
        names = os.listdir(path)
    except OSError:
        return None
    virtfns = {}
    for name in names:
        match = _VIRTFN.match(name)
        if match:
            virtfns[int(match.group(1))] = name
    if "sriov_totalvfs" not in names and "sriov_numvfs" not in names and not virtfns:
        return None
    vfs = []
    for index in sorted(virtfns):
        address = _linked_address(os.path.join(path, virtfns[index]))
        if address:
            vfs.append(address)
    return {
        "total_vfs": _read_int(os.path.join(path, "sriov_totalvfs")),
        "num_vfs": _read_int(os.path.join(path, "sriov_numvfs")),
        "vfs": vfs,
    }


def _read_mdev_types(path):
    """The types of ``mdev_supported_types/`` (a GVT-g iGPU lists ``i915-GVTg_V5_4`` ...), each with ``type``,
    ``name`` (optional: the GVT-g listings seen have none), ``description``, ``available_instances`` and
    ``device_api``; None when the directory is absent, [] when it lists nothing readable."""
    base = os.path.join(path, "mdev_supported_types")
    if not os.path.isdir(base):
        return None
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    types = []
    for name in names:
        type_dir = os.path.join(base, name)
        if not os.path.isdir(type_dir):
            continue
        types.append({
            "type": name,
            "name": _read_line(os.path.join(type_dir, "name")),
            "description": _read_description(os.path.join(type_dir, "description")),
            "available_instances": _read_int(os.path.join(type_dir, "available_instances")),
            "device_api": _read_line(os.path.join(type_dir, "device_api")),
        })
    return types


def _read_devices(root, groups):
    base = _sysfs(root, "bus", "pci", "devices")
    try:
        names = os.listdir(base)
    except OSError:
        names = []
    member_of = {}
    for group, members in groups.items():
        for address in members:
            member_of[address] = group
    devices = {}
    for name in sorted(n.lower() for n in names):
        if not _FULL_ADDRESS.match(name):
            continue
        device = _read_device(os.path.join(base, name))
        if device["iommu_group"] is None:
            device["iommu_group"] = member_of.get(name)
        devices[name] = device
    return devices


def _acpi_vendor(root):
    tables = _sysfs(root, "firmware", "acpi", "tables")
    if os.path.exists(os.path.join(tables, "DMAR")):
        return "intel"
    if os.path.exists(os.path.join(tables, "IVRS")):
        return "amd"
    return None


def isolation(facts, address):
    """The ``target`` verdict for one device: can it go to a VM without taking others along?

    Bridges in the group stay with the host (vfio tolerates them). Other functions of the same slot
    travel with the device, like a GPU's HDMI audio, except on the root bus: there the functions of one
    slot are separate chipset controllers (LPC, SMBus, audio, SPI), which the host still needs.
    """
    devices = facts["devices"]
    device = devices[address]
    group = device["iommu_group"]
    members = facts["groups"].get(group, [address]) if group is not None else [address]
    reasons = []
    if group is None:
        reasons.append(
            "%s has no IOMMU group: the IOMMU is off (turn on VT-d/AMD-Vi in the firmware and add "
            "intel_iommu=on or amd_iommu=on to the kernel command line)." % address
        )
    if device["is_bridge"]:
        reasons.append("%s is a bridge (class %s); bridges stay with the host." % (address, device["class_id"]))
    on_root_bus = address.split(":")[1] == "00"
    for other in members:
        if other == address:
            continue
        other_device = devices.get(other, {})
        if other_device.get("is_bridge"):
            continue
        if slot_of(other) == slot_of(address) and not on_root_bus:
            continue
        reasons.append("shares IOMMU group %s with %s" % (group, _describe(facts, other)))
    return {
        "address": address,
        "group": group,
        "isolated": not reasons,
        "group_devices": list(members),
        "reasons": reasons,
    }


def scan(root="/", device=None):
    """Read ``<root>/sys`` and ``<root>/proc/cmdline`` into the ``ansible_facts.iommu`` shape.

    With ``device`` (address, vendor:device id or ``auto``) the result also has ``target``.
    """
    groups = _read_groups(root)
    devices = _read_devices(root, groups)
    cmdline = split_cmdline(_read_text(os.path.join(root, "proc", "cmdline")) or "")
    vendor = _acpi_vendor(root)
    facts = {
        "enabled": bool(groups),
        "vendor": vendor,
        "firmware_vtd": vendor is not None,
        "passthrough_mode": passthrough_in_effect(cmdline),
        "cmdline": cmdline,
        "groups": groups,
        "devices": devices,
        "gpus": [a for a, d in devices.items() if d["is_gpu"] and not d["is_bridge"]],
    }
    if device is not None:
        facts["target"] = isolation(facts, select_devices(facts, device)[0])
    return facts


# ---------------------------------------------------------------------------
# dmesg

_TIMESTAMP = re.compile(r"^\s*(?:<\d+>)?\[\s*[\d.]+\]\s?")
_INTEL_ON = (
    re.compile(r"DMAR: IOMMU enabled"),
    re.compile(r"Intel\(R\) Virtualization Technology for Directed I/O"),
    re.compile(r"i915 \S+: \[drm\] (?:VT-d active for gfx access|DMAR active)"),
)
_INTEL_OFF = re.compile(r"DMAR: IOMMU disabled")
_INTEL_MARK = re.compile(r"\bDMAR(?:-IR)?:|\bACPI: DMAR\b|VT-d active|Directed I/O")
_AMD_CAP = re.compile(r"AMD-Vi: Found IOMMU cap")
_AMD_MARK = re.compile(r"AMD-Vi:")
_ADDING = re.compile(r"Adding to iommu group \d+")
_DEFAULT_DOMAIN = re.compile(r"iommu: Default domain type: (\w+)")
_INTEL_IRQ = re.compile(r"DMAR-IR: Enabled IRQ remapping in (\w+) mode")
_AMD_IRQ = re.compile(r"AMD-Vi: Interrupt remapping enabled")


def dmesg_verdict(text, vendor=None):
    """Whether the kernel log proves DMA remapping is on.

    Returns ``vendor`` (``intel``/``amd``, from the log; the ``vendor`` argument is the fallback when the
    log names none, e.g. the ACPI table vendor), ``iommu_enabled``, ``evidence`` (the deciding lines
    without timestamps), ``default_domain`` (``Translated``/``Passthrough``/None) and ``irq_remapping``
    (``x2apic``/``xapic`` on Intel, ``enabled`` on AMD, None when not logged).
    """
    messages = [_TIMESTAMP.sub("", line).rstrip() for line in (text or "").splitlines()]
    intel_on, intel_off, amd_cap = [], [], []
    intel_marks = amd_marks = adding = 0
    default_domain = irq_remapping = None
    for message in messages:
        if _INTEL_MARK.search(message):
            intel_marks += 1
        if _AMD_MARK.search(message):
            amd_marks += 1
        if any(p.search(message) for p in _INTEL_ON):
            intel_on.append(message)
        if _INTEL_OFF.search(message):
            intel_off.append(message)
        if _AMD_CAP.search(message):
            amd_cap.append(message)
        if _ADDING.search(message):
            adding += 1
        match = _DEFAULT_DOMAIN.search(message)
        if match:
            default_domain = match.group(1)
        match = _INTEL_IRQ.search(message)
        if match:
            irq_remapping = match.group(1)
        elif _AMD_IRQ.search(message):
            irq_remapping = "enabled"

    if amd_marks and amd_marks >= intel_marks:
        found_vendor = "amd"
    elif intel_marks:
        found_vendor = "intel"
    else:
        found_vendor = None

    if found_vendor == "amd":
        evidence = list(amd_cap)
        if adding:
            evidence.append('%d "Adding to iommu group" lines' % adding)
        enabled = bool(amd_cap) and adding > 0
    elif found_vendor == "intel":
        evidence = intel_on + intel_off
        enabled = bool(intel_on) and not intel_off
    else:
        evidence = []
        enabled = False
    return {
        "vendor": found_vendor or vendor,
        "iommu_enabled": enabled,
        "evidence": evidence,
        "default_domain": default_domain,
        "irq_remapping": irq_remapping,
    }


# ---------------------------------------------------------------------------
# vfio-pci configuration file

MANAGED_HEADER = "# Managed by the homelab.gpu_passthrough.vfio_bind Ansible module; its ids and softdep lines are rewritten on each run."
_MAPPING_PREFIX = "# original driver of "
_OPTIONS = re.compile(r"^options\s+vfio[-_]pci\s+(.*)$")
_SOFTDEP = re.compile(r"^softdep\s+(\S+)\s+pre:\s+vfio[-_]pci\s*$")
_MAPPING = re.compile(r"^# original driver of ([0-9a-f]{4}:[0-9a-f]{4}): (\S+)\s*$")


def parse_vfio_conf(text):
    """Split a modprobe.d file into ``ids``, ``softdeps``, ``originals`` (id -> modules),
    ``options`` (other vfio-pci parameters) and ``other_lines`` (kept verbatim)."""
    conf = {"ids": [], "softdeps": [], "originals": {}, "options": [], "other_lines": []}
    for line in (text or "").splitlines():
        stripped = line.strip()
        if stripped == MANAGED_HEADER:
            continue
        mapping = _MAPPING.match(stripped)
        if mapping:
            conf["originals"][mapping.group(1)] = mapping.group(2).split(",")
            continue
        options = _OPTIONS.match(stripped)
        if options:
            for param in options.group(1).split():
                if param.startswith("ids="):
                    for vid in param[4:].split(","):
                        vid = vid.strip().lower()
                        if vid and vid not in conf["ids"]:
                            conf["ids"].append(vid)
                elif param not in conf["options"]:
                    conf["options"].append(param)
            continue
        softdep = _SOFTDEP.match(stripped)
        if softdep:
            if softdep.group(1) not in conf["softdeps"]:
                conf["softdeps"].append(softdep.group(1))
            continue
        conf["other_lines"].append(line)
    while conf["other_lines"] and not conf["other_lines"][-1].strip():
        conf["other_lines"].pop()
    return conf


def render_vfio_conf(conf):
    """The file text for a parsed/planned ``conf``; None when nothing is left to write."""
    ids = sorted(set(conf["ids"]))
    if not ids and not conf["options"] and not any(line.strip() for line in conf["other_lines"]):
        return None
    lines = [MANAGED_HEADER]
    for vid in ids:
        if conf["originals"].get(vid):
            lines.append("%s%s: %s" % (_MAPPING_PREFIX, vid, ",".join(conf["originals"][vid])))
    params = (["ids=" + ",".join(ids)] if ids else []) + list(conf["options"])
    if params:
        lines.append("options vfio-pci " + " ".join(params))
    for module_name in sorted(set(conf["softdeps"])):
        lines.append("softdep %s pre: vfio-pci" % module_name)
    lines.extend(conf["other_lines"])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# vfio-pci binding plan


def _module_of_driver(root, driver):
    """Kernel module behind a bound driver (``xhci_hcd`` -> ``xhci_pci``); softdep wants module names."""
    name = _link_name(_sysfs(root, "bus", "pci", "drivers", driver, "module"))
    return name or driver.replace("-", "_")


def _device_file(root, address, name):
    text = _read_text(_sysfs(root, "bus", "pci", "devices", address, name))
    return text.strip() if text is not None else None


def _expand_and_check_groups(facts, addresses, add_group):
    """Add group companions (``add_group``) or refuse when a group holds endpoints nobody named."""
    devices = facts["devices"]
    chosen = list(addresses)
    warnings = []
    for address in addresses:
        group = devices[address]["iommu_group"]
        if group is None:
            warnings.append("%s has no IOMMU group (IOMMU off?): its group could not be checked." % address)
            continue
        others = [m for m in facts["groups"].get(group, []) if m != address and m in devices and not devices[m]["is_bridge"]]
        missing = [m for m in others if m not in chosen]
        if not missing:
            continue
        if add_group:
            chosen.extend(missing)
            continue
        raise PassthroughError(
            "%s shares IOMMU group %s with %s, which were not named; vfio needs every endpoint of a group."
            % (address, group, ", ".join(_describe(facts, m) for m in missing)),
            fix="Add %s to devices, or set group: true." % ", ".join(missing),
            link="group",
            details={"group": group, "group_devices": facts["groups"][group]},
        )
    return sorted(set(chosen))


def resolve_vfio_devices(facts, specs, add_group=False):
    """Addresses for ``specs`` (addresses or vendor:device ids, every match), group rules applied."""
    if not specs:
        raise PassthroughError("No devices were given.", fix="Name at least one device: %s." % ACCEPTED_FORMS)
    addresses = []
    for spec in specs:
        for address in select_devices(facts, spec, all_matches=True):
            if facts["devices"][address]["is_bridge"]:
                raise PassthroughError(
                    "%r is a bridge (%s); bridges are never bound to vfio-pci." % (spec, _describe(facts, address)),
                    fix="Name the endpoint behind it instead.",
                )
            if address not in addresses:
                addresses.append(address)
    return _expand_and_check_groups(facts, addresses, add_group)


def plan_vfio(facts, root, specs, state="present", add_group=False, softdep=True, conf_text=None, resolve_alias=None):
    """Decide the vfio-pci binding: the file text after, and the runtime steps per device.

    ``resolve_alias(modalias) -> [module, ...]`` finds a driver for a device already on vfio-pci
    (``modprobe --resolve-alias``); without it the original drivers come from the existing file.
    Returns ``devices``, ``ids``, ``conf_before``, ``conf_after`` (None: remove the file),
    ``runtime`` (address -> ``bind``/``release``/None), ``expected`` (address -> driver after)
    and ``warnings``.
    """
    devices = facts["devices"]
    addresses = resolve_vfio_devices(facts, specs, add_group) if state == "present" else _resolve_for_absent(facts, specs, add_group)
    conf = parse_vfio_conf(conf_text)
    warnings = []
    ids = sorted({"%s:%s" % (devices[a]["vendor_id"], devices[a]["device_id"]) for a in addresses})

    if state == "present":
        for address in addresses:
            vid = "%s:%s" % (devices[address]["vendor_id"], devices[address]["device_id"])
            modules = _original_modules(root, devices[address], address, conf, vid, resolve_alias)
            if modules:
                conf["originals"][vid] = modules
            elif softdep:
                warnings.append(
                    "The original driver of %s (%s) is unknown, so no softdep was written for it; "
                    "blacklist its driver instead if vfio-pci loses the race at boot." % (address, vid)
                )
            if vid not in conf["ids"]:
                conf["ids"].append(vid)
        # vfio-pci ids= claims every device with the id at boot, not only the named one.
        for address, device in devices.items():
            vid = "%s:%s" % (device["vendor_id"], device["device_id"])
            if vid in ids and address not in addresses:
                warnings.append("%s has the same id %s, so vfio-pci will claim it at boot too." % (address, vid))
        wanted_softdeps = set(conf["softdeps"])
        for vid in conf["ids"]:
            wanted_softdeps.update(conf["originals"].get(vid, []))
    else:
        removed = set(ids) | {s.strip().lower() for s in specs if is_id_pair(s)}
        conf["ids"] = [vid for vid in conf["ids"] if vid not in removed]
        still_needed = set()
        for vid in conf["ids"]:
            still_needed.update(conf["originals"].get(vid, []))
        dropped = set()
        for vid in removed:
            dropped.update(conf["originals"].pop(vid, []))
        if conf["ids"]:
            wanted_softdeps = {m for m in conf["softdeps"] if m not in dropped or m in still_needed}
        else:
            wanted_softdeps = set()
    wanted_softdeps.discard(VFIO_MODULE)
    conf["softdeps"] = sorted(wanted_softdeps) if softdep else []
    conf["originals"] = {vid: mods for vid, mods in conf["originals"].items() if vid in conf["ids"]}

    runtime = {}
    expected = {}
    for address in addresses:
        driver = devices[address]["driver"]
        override = _device_file(root, address, "driver_override")
        if state == "present":
            if devices[address]["iommu_group"] is None:
                runtime[address] = None
                expected[address] = driver
                warnings.append("%s is not bound now: vfio-pci needs the IOMMU on; the file applies after a reboot." % address)
            elif driver == VFIO_DRIVER:
                runtime[address] = None
                expected[address] = driver
            else:
                runtime[address] = "bind"
                expected[address] = VFIO_DRIVER
        else:
            if driver == VFIO_DRIVER or override == VFIO_DRIVER:
                runtime[address] = "release"
                expected[address] = None if driver == VFIO_DRIVER else driver
            else:
                runtime[address] = None
                expected[address] = driver
    return {
        "devices": addresses,
        "ids": ids,
        "conf_before": conf_text,
        "conf_after": render_vfio_conf(conf),
        "runtime": runtime,
        "expected": expected,
        "warnings": warnings,
    }


def _resolve_for_absent(facts, specs, add_group):
    """Devices to hand back; an id no longer present is still removed from the file."""
    devices = facts["devices"]
    addresses = []
    for spec in specs:
        try:
            found = select_devices(facts, spec, all_matches=True)
        except PassthroughError:
            if is_id_pair(spec):
                continue
            raise
        addresses.extend(a for a in found if a not in addresses)
    if add_group:
        for address in list(addresses):
            group = devices[address]["iommu_group"]
            addresses.extend(
                m for m in facts["groups"].get(group, []) if m not in addresses and m in devices and not devices[m]["is_bridge"]
            )
    return sorted(addresses)


def _original_modules(root, device, address, conf, vid, resolve_alias):
    driver = device["driver"]
    if driver and driver != VFIO_DRIVER:
        return [_module_of_driver(root, driver)]
    if conf["originals"].get(vid):
        return list(conf["originals"][vid])
    modalias = _device_file(root, address, "modalias")
    if resolve_alias and modalias:
        modules = [m.replace("-", "_") for m in resolve_alias(modalias)]
        return [m for m in modules if m and m != VFIO_MODULE]
    return []


# ---------------------------------------------------------------------------
# Runtime binding (sysfs writes)


def _write(path, value):
    with open(path, "w") as handle:
        handle.write(value)


def vfio_driver_loaded(root):
    return os.path.isdir(_sysfs(root, "bus", "pci", "drivers", VFIO_DRIVER))


def bind_to_vfio(root, address, current_driver):
    """Hand ``address`` to vfio-pci now: driver_override, unbind from its driver, reprobe."""
    _write(_sysfs(root, "bus", "pci", "devices", address, "driver_override"), VFIO_DRIVER)
    if current_driver:
        _write(_sysfs(root, "bus", "pci", "drivers", current_driver, "unbind"), address)
    _write(_sysfs(root, "bus", "pci", "drivers_probe"), address)


def release_from_vfio(root, address, current_driver, vendor_id, device_id):
    """Give ``address`` back to its own driver: clear driver_override, leave vfio-pci, reprobe."""
    _write(_sysfs(root, "bus", "pci", "devices", address, "driver_override"), "\n")
    # An id vfio-pci got from ids= would let it claim the device again on reprobe.
    remove_id = _sysfs(root, "bus", "pci", "drivers", VFIO_DRIVER, "remove_id")
    if os.path.exists(remove_id):
        try:
            _write(remove_id, "%s %s" % (vendor_id, device_id))
        except OSError as err:
            if err.errno != errno.ENODEV:
                raise
    if current_driver == VFIO_DRIVER:
        _write(_sysfs(root, "bus", "pci", "drivers", VFIO_DRIVER, "unbind"), address)
    _write(_sysfs(root, "bus", "pci", "drivers_probe"), address)


def current_driver(root, address):
    return _link_name(_sysfs(root, "bus", "pci", "devices", address, "driver"))
