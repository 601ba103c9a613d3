# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Walk the passthrough chain of one host and say, part by part, what holds and what to fix.

Pure Python, standard library only. The input is the ``iommu`` facts dictionary that the
``iommu_facts`` module returns (optionally with its ``dmesg`` part); the output is an ordered
list of parts, each ``{part, link, title, ok, pending, detail, fix}``. ``part`` is the finer name used
here, ``link`` the host link of module_utils/links.py the part belongs to, ``title`` the part's name for display:

``part``      ``link``   title             holds when
``firmware``  firmware   firmware VT-d     the DMAR (Intel) or IVRS (AMD) ACPI table exists
``cmdline``   cmdline    cmdline           the wanted kernel arguments are live in /proc/cmdline
``iommu``     firmware   IOMMU on          the kernel turned the IOMMU on (groups exist, kernel log agrees)
``groups``    group      groups            the target device was found and sits in an IOMMU group
``isolation`` group      target isolation  nothing else shares the target's group
``binding``   binding    driver binding    the target (and its group) is bound to the expected driver

``pending`` marks a failing part that the next reboot is expected to repair (the role
has written the configuration but the running kernel does not carry it yet).
"""

from __future__ import annotations

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import links, pci_ids

# In order: the part, its title, and the link of module_utils/links.py it belongs to.
PARTS = (
    ("firmware", "firmware VT-d", "firmware"),
    ("cmdline", "cmdline", "cmdline"),
    ("iommu", "IOMMU on", "firmware"),
    ("groups", "groups", "group"),
    ("isolation", "target isolation", "group"),
    ("binding", "driver binding", "binding"),
)
TITLES = {name: title for name, title, _link in PARTS}
LINK_OF = {name: links.check(link) for name, _title, link in PARTS}

DEFAULT_DRIVER = "vfio-pci"
INTEL_ARGS = {"intel_iommu": "on", "iommu": "pt"}
AMD_ARGS = {"iommu": "pt"}

BIOS_HINT = {
    "intel": (
        "enable VT-d (Intel Virtualization Technology for Directed I/O) in the firmware setup "
        "(Lenovo M920q: F1 at power-on → Advanced → CPU Setup → VT-d → Enabled; "
        "other boards: Advanced/Chipset → VT-d), save and power-cycle"
    ),
    "amd": (
        "enable the IOMMU (AMD-Vi, often labelled IOMMU or SVM/IOMMU) in the firmware setup "
        "(Advanced → AMD CBS → NBIO → IOMMU → Enabled on most boards), save and power-cycle"
    ),
}
BIOS_HINT[None] = (
    "enable VT-d (Intel; Lenovo M920q: F1 at power-on → Advanced → CPU Setup → VT-d → Enabled) "
    "or the IOMMU/AMD-Vi (AMD) in the firmware setup, save and power-cycle; without it the "
    "firmware publishes no DMAR/IVRS table and the kernel cannot isolate devices"
)
REBOOT_FIX = "reboot the host so the new kernel command line and vfio configuration take effect"
ROLE = "homelab.gpu_passthrough.proxmox_gpu_prep"


def _table_name(vendor):
    return {"intel": "DMAR", "amd": "IVRS"}.get(vendor, "DMAR/IVRS")


def _class_prefix(value):
    """``0x030000`` -> ``0300`` (class and subclass)."""
    return (pci_ids.hex_id(value, 6) or "")[:4]


def format_args(args):
    """``{"intel_iommu": "on", "iommu": "pt", "quiet": None}`` -> ``intel_iommu=on iommu=pt quiet``."""
    parts = []
    for key, value in args.items():
        if value is None or value is True:
            parts.append(str(key))
        else:
            parts.append("%s=%s" % (key, value))
    return " ".join(parts)


def parse_cmdline(cmdline):
    """The live command line (list of tokens or one string) -> ``{key: value}``; the last repeat wins."""
    if cmdline is None:
        return {}
    tokens = cmdline.split() if isinstance(cmdline, str) else [str(t) for t in cmdline]
    args = {}
    for token in tokens:
        if token == "--":
            break  # what follows belongs to init
        key, sep, value = token.partition("=")
        args[key] = value.strip('"') if sep else None
    return args


def missing_args(cmdline, wanted):
    """The entries of ``wanted`` that the command line does not carry, in order."""
    live = parse_cmdline(cmdline)
    missing = {}
    for key, value in wanted.items():
        if key not in live:
            missing[key] = value
            continue
        if value is None or value is True:
            continue
        have = live[key]
        if have is None or (have != str(value) and str(value) not in have.split(",")):
            missing[key] = value
    return missing


def wanted_args(vendor, iommu_pt=True, extra=None):
    """The kernel arguments the role wants for a platform IOMMU vendor (None counts as Intel)."""
    args = dict(AMD_ARGS if vendor == "amd" else INTEL_ARGS)
    if not iommu_pt:
        args.pop("iommu", None)
    if extra:
        args.update(extra)
    return args


def _part(name, ok, detail, fix=None, pending=False):
    return {
        "part": name,
        "link": LINK_OF[name],
        "title": TITLES[name],
        "ok": bool(ok),
        "pending": bool(pending) and not ok,
        "detail": detail,
        "fix": None if ok else fix,
    }


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [line for line in str(value).splitlines() if line.strip()]


def _device_ids(devices, addresses):
    ids = []
    for addr in addresses:
        dev = devices.get(addr) or {}
        vendor, device = pci_ids.hex_id(dev.get("vendor_id")), pci_ids.hex_id(dev.get("device_id"))
        if vendor and device:
            pair = "%s:%s" % (vendor, device)
            if pair not in ids:
                ids.append(pair)
    return ids


def _endpoints(devices, addresses):
    return [a for a in addresses if not (devices.get(a) or {}).get("is_bridge")]


def _describe(devices, addr):
    dev = devices.get(addr) or {}
    vendor, device = pci_ids.hex_id(dev.get("vendor_id")), pci_ids.hex_id(dev.get("device_id"))
    parts = [addr]
    if vendor and device:
        parts.append("[%s:%s]" % (vendor, device))
    cls = _class_prefix(dev.get("class_id"))
    if cls:
        parts.append("class %s" % cls)
    if dev.get("is_bridge"):
        parts.append("bridge")
    parts.append("driver %s" % (dev.get("driver") or "none"))
    return " ".join(parts)


def _firmware(facts):
    vendor = facts.get("vendor")
    table = _table_name(vendor)
    if facts.get("firmware_vtd"):
        return _part("firmware", True, "%s table present" % table)
    return _part(
        "firmware", False,
        "no DMAR/IVRS ACPI table: the firmware exposes no IOMMU (VT-d/AMD-Vi off or unsupported)",
        BIOS_HINT.get(vendor, BIOS_HINT[None]),
    )


def _cmdline(facts, wanted, pending):
    cmdline = facts.get("cmdline")
    missing = missing_args(cmdline, wanted)
    if not wanted:
        return _part("cmdline", True, "no kernel arguments wanted on this platform")
    if not missing:
        return _part("cmdline", True, "%s live in /proc/cmdline" % format_args(wanted))
    fix = (
        "run the %s role, or add `%s` to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub and run "
        "update-grub (systemd-boot/ZFS: append to /etc/kernel/cmdline and run proxmox-boot-tool refresh), "
        "then reboot" % (ROLE, format_args(missing))
    )
    if pending:
        fix = REBOOT_FIX
        detail = "%s configured, not live yet (reboot pending)" % format_args(missing)
    else:
        detail = "%s missing from /proc/cmdline" % format_args(missing)
    return _part("cmdline", False, detail, fix, pending)


def _iommu(facts, wanted, pending):
    groups = facts.get("groups") or {}
    dmesg = facts.get("dmesg")
    enabled = bool(facts.get("enabled")) and bool(groups)
    notes = []
    log_denies = False
    if isinstance(dmesg, dict):
        if dmesg.get("error"):
            notes.append("kernel log unreadable: %s" % dmesg.get("error"))
        else:
            evidence = _as_list(dmesg.get("evidence"))
            if evidence:
                # the deciding line: the last one when the log says off (the "disabled" line comes last)
                line = evidence[-1] if dmesg.get("iommu_enabled") is False else evidence[0]
                notes.append("kernel log: %s" % line.strip())
            else:
                notes.append("no IOMMU lines in the kernel log" + (" (rotated?)" if enabled else ""))
            domain = dmesg.get("default_domain")
            if domain:
                notes.append("default domain %s" % domain)
            log_vendor, table_vendor = dmesg.get("vendor"), facts.get("vendor")
            # Trust a negative log only when it speaks of the same IOMMU as the firmware table
            # (an emulated CPU may name another vendor than the emulated IOMMU).
            same = not log_vendor or not table_vendor or log_vendor == table_vendor
            log_denies = dmesg.get("iommu_enabled") is False and bool(evidence) and same
    if enabled and not log_denies:
        detail = "%d IOMMU group%s" % (len(groups), "" if len(groups) == 1 else "s")
        if notes:
            detail += "; " + "; ".join(notes)
        return _part("iommu", True, detail)
    if enabled:
        detail = "%d IOMMU groups, but the kernel log says the IOMMU is off" % len(groups)
    else:
        detail = "no IOMMU groups in /sys/kernel/iommu_groups: the kernel did not turn the IOMMU on"
    if notes:
        detail += "; " + "; ".join(notes)
    if not facts.get("firmware_vtd"):
        fix = "fix the firmware VT-d link first (VT-d/AMD-Vi enabled in the firmware setup)"
        pending = False
    elif missing_args(facts.get("cmdline"), wanted):
        fix = "add `%s` to the kernel command line (run the %s role) and reboot" % (format_args(wanted), ROLE)
    else:
        fix = "check `dmesg | grep -e DMAR -e IOMMU -e AMD-Vi` for the reason (e.g. intel_iommu=off, a firmware bug, a kernel without IOMMU support)"
    if pending:
        fix = REBOOT_FIX
        detail += " (reboot pending)"
    return _part("iommu", False, detail, fix, pending)


def _target(facts):
    target = facts.get("target")
    if not isinstance(target, dict) or not target.get("address"):
        return None
    return target


def _groups(facts, pending):
    groups = facts.get("groups") or {}
    devices = facts.get("devices") or {}
    target = _target(facts)
    if target is None:
        gpus = facts.get("gpus") or []
        raw = facts.get("target")
        reasons = "; ".join(_as_list(raw.get("reasons"))) if isinstance(raw, dict) else ""
        detail = "no target device found" + (" (%s)" % reasons if reasons else "")
        if gpus:
            fix = "name the device to pass through (device/proxmox_gpu_prep_device), e.g. one of: %s" % ", ".join(gpus)
        else:
            fix = "no display-class PCI device on this host: name the device (address like 0000:00:02.0 or id like 8086:3e92); check `lspci -nn`"
        return _part("groups", False, detail, fix)
    addr = target["address"]
    group = target.get("group") or (devices.get(addr) or {}).get("iommu_group")
    if group is None or not groups:
        detail = "%s is in no IOMMU group" % addr
        fix = "turn the IOMMU on first (see the IOMMU on link)"
        if pending:
            fix = REBOOT_FIX
            detail += " (reboot pending)"
        return _part("groups", False, detail, fix, pending)
    members = target.get("group_devices") or groups.get(str(group)) or []
    return _part(
        "groups", True,
        "%d group%s; %s in group %s with %d device%s" % (
            len(groups), "" if len(groups) == 1 else "s", addr, group, len(members), "" if len(members) == 1 else "s"),
    )


def _isolation(facts, pending):
    devices = facts.get("devices") or {}
    target = _target(facts)
    if target is None:
        return _part("isolation", False, "no target device", "see the groups link")
    addr = target["address"]
    group = target.get("group")
    if group is None or not facts.get("groups"):
        detail = "%s has no IOMMU group to be isolated in" % addr
        fix = REBOOT_FIX if pending else "turn the IOMMU on first (see the IOMMU on link)"
        return _part("isolation", False, detail, fix, pending)
    members = list(target.get("group_devices") or (facts.get("groups") or {}).get(str(group)) or [])
    if target.get("isolated"):
        others = [m for m in members if m != addr]
        detail = "group %s: %s" % (group, addr)
        if others:
            detail += " with its own functions/bridges %s" % ", ".join(others)
        else:
            detail += " alone"
        return _part("isolation", True, detail)
    reasons = _as_list(target.get("reasons"))
    detail = "group %s is shared: %s" % (group, "; ".join(_describe(devices, m) for m in members))
    if reasons:
        detail += " — " + "; ".join(reasons)
    fix = (
        "pass the whole group only if every member may go to the VM (group: true); otherwise move the card "
        "to a slot whose root port has ACS (usually a CPU-attached slot) or check the firmware for ACS/"
        "'PCIe ACS' settings; pcie_acs_override=downstream,multifunction (Proxmox kernel) splits groups "
        "without real isolation. Group members: %s" % ", ".join(members)
    )
    return _part("isolation", False, detail, fix)


def _binding(facts, expected, include_group, pending, driver_mode):
    devices = facts.get("devices") or {}
    target = _target(facts)
    if expected is None:
        if target is None:
            return _part("binding", True, "no driver expected")
        return _part("binding", True, "no driver expected; %s" % _describe(devices, target["address"]))
    if target is None:
        return _part("binding", False, "no target device", "see the groups link")
    addr = target["address"]
    wanted = [addr]
    if include_group:
        for member in _endpoints(devices, list(target.get("group_devices") or [])):
            if member not in wanted:
                wanted.append(member)
    drivers = {a: (devices.get(a) or {}).get("driver") for a in wanted}
    wrong = [a for a in wanted if drivers[a] != expected]
    if not wrong:
        return _part("binding", True, "%s bound to %s" % (", ".join(wanted), expected))
    detail = "; ".join("%s uses %s" % (a, drivers[a] or "no driver") for a in wrong)
    ids = _device_ids(devices, wanted)
    current = []
    for a in wrong:
        drv = drivers[a]
        if drv and drv != expected and drv not in current:
            current.append(drv)
    if expected != DEFAULT_DRIVER:
        fix = "bind %s to %s (driver_override + drivers_probe, or the driver's own configuration)" % (", ".join(wrong), expected)
    else:
        conf = "`options vfio-pci ids=%s`" % (",".join(ids) or "<vendor:device>")
        if driver_mode == "blacklist" and current:
            conf += " and %s" % ", ".join("`blacklist %s`" % d for d in current)
        elif current:
            conf += " and %s (or blacklist %s)" % (", ".join("`softdep %s pre: vfio-pci`" % d for d in current), ", ".join(current))
        fix = (
            "write %s to /etc/modprobe.d/vfio.conf, list vfio, vfio_iommu_type1, vfio_pci in "
            "/etc/modules-load.d/vfio.conf, run update-initramfs -u -k all, reboot (the %s role does all of it)" % (conf, ROLE)
        )
    if pending:
        fix = REBOOT_FIX
        detail += " (reboot pending)"
    return _part("binding", False, detail, fix, pending)


def diagnose(facts, cmdline=None, expected_driver=DEFAULT_DRIVER, group=True, reboot_pending=False,
             iommu_pt=True, driver_mode="vfio_ids"):
    """The parts of the chain for one host, in order (``PARTS``).

    ``facts``: the ``iommu`` facts dictionary (None or {} for a host without data).
    ``cmdline``: the wanted kernel arguments (dict); by default ``intel_iommu=on iommu=pt`` on an Intel
    (or unknown) platform and ``iommu=pt`` on AMD, keyed on the firmware table's vendor.
    ``expected_driver``: the driver the target should use (None: do not judge the binding).
    ``group``: also judge the other endpoints in the target's group.
    ``reboot_pending``: the configuration is written but the host has not rebooted into it; parts the
    reboot should repair are reported as pending instead of as plain failures.
    """
    if facts is None:
        facts = {}
    if not isinstance(facts, dict):
        raise TypeError("iommu facts must be a dict, got %s" % type(facts).__name__)
    wanted = wanted_args(facts.get("vendor"), iommu_pt) if cmdline is None else dict(cmdline)
    pending = bool(reboot_pending)
    firmware = _firmware(facts)
    return [
        firmware,
        _cmdline(facts, wanted, pending),
        _iommu(facts, wanted, pending and firmware["ok"]),
        _groups(facts, pending and firmware["ok"]),
        _isolation(facts, pending and firmware["ok"]),
        _binding(facts, expected_driver, group, pending and firmware["ok"], driver_mode),
    ]


def _title(part):
    return part.get("title") or TITLES.get(part["part"], part["part"])


def summarize(parts):
    """``{ok, failed, pending, line}``: ``ok`` only when every part holds; ``failed`` and ``pending`` name parts."""
    failed = [p["part"] for p in parts if not p["ok"] and not p.get("pending")]
    pending = [p["part"] for p in parts if not p["ok"] and p.get("pending")]
    good = len(parts) - len(failed) - len(pending)
    line = "%d/%d links ok" % (good, len(parts))
    if failed:
        line += "; FAIL: %s" % ", ".join(TITLES.get(n, n) for n in failed)
    if pending:
        line += "; pending reboot: %s" % ", ".join(TITLES.get(n, n) for n in pending)
    if not failed and not pending:
        line += ": ready for passthrough"
    return {"ok": not failed and not pending, "failed": failed, "pending": pending, "line": line}


def status_word(part):
    if part.get("ok"):
        return "ok"
    return "PEND" if part.get("pending") else "FAIL"


def format_lines(parts, summary=False):
    """One line per part: ``ok   firmware VT-d      DMAR table present`` / ``FAIL cmdline ... — fix: ...``."""
    width = max([len(_title(p)) for p in parts] + [0])
    lines = []
    for part in parts:
        text = "%-4s %-*s  %s" % (status_word(part), width, _title(part), part.get("detail") or "")
        if not part.get("ok") and part.get("fix"):
            text += " — fix: %s" % part["fix"]
        lines.append(text.rstrip())
    if summary:
        lines.append(summarize(parts)["line"])
    return lines
