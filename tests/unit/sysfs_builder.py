# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a fake root (sysfs, /proc/cmdline, ACPI tables) from real IOMMU listings and lspci output.

The layout follows the kernel's: device directories live under ``sys/devices/pci<domain>:00`` and
``sys/bus/pci/devices/<addr>``, ``iommu_group``, ``driver`` and the group members are relative symlinks.
Writable sysfs attributes (``driver_override``, ``bind``, ``unbind``, ``drivers_probe``, ``remove_id``)
are plain files, so a test can read back what was written; ``kernel_probe`` then plays the kernel's part.

Listing formats understood (all as people paste them):

* single line: ``IOMMU group 0 00:02.0 VGA compatible controller [0300]: ... [8086:3e92]``
* two lines: ``IOMMU Group 3:`` then a tab-indented ``lspci -nns`` line
* ``find /sys/kernel/iommu_groups/ -type l``: ``/sys/kernel/iommu_groups/2/devices/0000:00:02.0``

lspci output (``-nn``, ``-nnk``, ``-nnv``, ``-Dnnk``) adds class, ids, drivers and their modules.
"""

import json
import os
import re

_LSPCI_DEVICE = re.compile(
    r"^(?P<addr>(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]) (?P<desc>.+?) \[(?P<cls>[0-9a-fA-F]{4})\]: "
    r"(?P<name>.*)\[(?P<vid>[0-9a-fA-F]{4}):(?P<did>[0-9a-fA-F]{4})\]"
)
_PROG_IF = re.compile(r"\(prog-if ([0-9a-fA-F]{2})")
_SUBSYSTEM = re.compile(r"^\s+Subsystem: .*\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\]\s*$")
_DRIVER = re.compile(r"^\s+Kernel driver in use: (\S+)\s*$")
_MODULES = re.compile(r"^\s+Kernel modules: (.+?)\s*$")
_SINGLE_LINE = re.compile(r"^IOMMU [Gg]roup (\d+) (\S.*)$")
_HEADER = re.compile(r"^IOMMU [Gg]roup (\d+):?\s*$")
_FIND = re.compile(r"/iommu_groups/(\d+)/devices/(\S+)\s*$")

FAKE_KERNEL_STATE = "fake-kernel.json"


def full_address(text):
    text = text.lower()
    return text if text.count(":") == 2 else "0000:" + text


def _lspci_record(line):
    match = _LSPCI_DEVICE.match(line)
    if not match:
        return None, None
    prog_if = _PROG_IF.search(line)
    return full_address(match.group("addr")), {
        "class_id": match.group("cls").lower(),
        "prog_if": prog_if.group(1).lower() if prog_if else "00",
        "vendor_id": match.group("vid").lower(),
        "device_id": match.group("did").lower(),
    }


def parse_listing(text):
    """An IOMMU listing -> ``groups`` (group -> addresses, file order), ``devices`` (what the lines show),
    ``group_order`` (first appearance) and ``other_lines`` (lines that belong to no group)."""
    groups, devices, order, other = {}, {}, [], []
    current = None

    def add(group, address, record):
        if group not in groups:
            groups[group] = []
            order.append(group)
        groups[group].append(address)
        if record:
            devices[address] = record

    for line in text.splitlines():
        if not line.strip():
            continue
        header = _HEADER.match(line)
        if header:
            current = header.group(1)
            if current not in groups:
                groups[current] = []
                order.append(current)
            continue
        single = _SINGLE_LINE.match(line)
        if single:
            address, record = _lspci_record(single.group(2))
            if address:
                add(single.group(1), address, record)
                continue
        found = _FIND.search(line)
        if found:
            add(found.group(1), full_address(found.group(2)), None)
            continue
        if current is not None and line[:1].isspace():
            address, record = _lspci_record(line.strip())
            if address:
                add(current, address, record)
                continue
        other.append(line)
    return {"groups": groups, "devices": devices, "group_order": order, "other_lines": other}


def parse_lspci(text):
    """lspci output -> address -> class, ids, ``driver`` and ``modules`` (``-k``), ``subsystem`` (``-v``/``-k``)."""
    devices = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.strip() == "--":
            continue
        if not line[:1].isspace():
            address, record = _lspci_record(line)
            current = address
            if address:
                record.update({"driver": None, "modules": [], "subsystem": None})
                devices[address] = record
            continue
        if current is None:
            continue
        driver = _DRIVER.match(line)
        if driver:
            devices[current]["driver"] = driver.group(1)
            continue
        modules = _MODULES.match(line)
        if modules:
            devices[current]["modules"] = [m.strip() for m in modules.group(1).split(",") if m.strip()]
            continue
        subsystem = _SUBSYSTEM.match(line)
        if subsystem:
            devices[current]["subsystem"] = (subsystem.group(1).lower(), subsystem.group(2).lower())
    return devices


def _module_for(driver, modules):
    normalized = driver.replace("-", "_")
    for module in modules:
        if module.replace("-", "_") == normalized:
            return module
    return modules[0] if len(modules) == 1 else None


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def _symlink(target, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.remove(path)
    os.symlink(target, path)


def _device_dir(root, address):
    return os.path.join(root, "sys", "devices", "pci%s:00" % address.split(":")[0], address)


def _ensure_driver(root, driver, module=None):
    base = os.path.join(root, "sys", "bus", "pci", "drivers", driver)
    for name in ("bind", "unbind", "new_id", "remove_id"):
        if not os.path.exists(os.path.join(base, name)):
            _write(os.path.join(base, name), "")
    if module:
        os.makedirs(os.path.join(root, "sys", "module", module), exist_ok=True)
        _symlink(os.path.join("..", "..", "..", "..", "module", module), os.path.join(base, "module"))


def set_driver(root, address, driver):
    """Bind ``address`` to ``driver`` the way sysfs shows it (None: unbound)."""
    device_dir = _device_dir(root, address)
    link = os.path.join(device_dir, "driver")
    if os.path.lexists(link):
        old = os.path.basename(os.readlink(link))
        old_entry = os.path.join(root, "sys", "bus", "pci", "drivers", old, address)
        if os.path.lexists(old_entry):
            os.remove(old_entry)
        os.remove(link)
    if driver:
        _ensure_driver(root, driver)
        _symlink(os.path.join("..", "..", "..", "bus", "pci", "drivers", driver), link)
        _symlink(
            os.path.join("..", "..", "..", "..", "devices", os.path.basename(os.path.dirname(device_dir)), address),
            os.path.join(root, "sys", "bus", "pci", "drivers", driver, address),
        )


def build_root(base, listing=None, lspci=None, cmdline="", acpi_table="DMAR", devices=None, vfio_loaded=True):
    """Create the fake root under ``base`` and return its path.

    ``listing``: IOMMU listing text (None: no IOMMU, no groups). ``lspci``: lspci text for classes and drivers.
    ``devices``: address -> overrides (``class_id``, ``vendor_id``, ``device_id``, ``driver``, ``module``) for
    what neither text shows, e.g. the raw ``find`` output. ``acpi_table``: ``DMAR``, ``IVRS`` or None.
    Attributes nobody knows (no class in a ``find`` line) are left out, as a test of missing files.
    """
    root = str(base)
    parsed = parse_listing(listing) if listing else {"groups": {}, "devices": {}}
    from_lspci = parse_lspci(lspci) if lspci else {}
    records = {}
    for address in [a for members in parsed["groups"].values() for a in members] + list(from_lspci):
        record = records.setdefault(address, {})
        record.update(parsed["devices"].get(address, {}))
        for key, value in from_lspci.get(address, {}).items():
            if value is not None or key not in record:
                record[key] = value
    for address, overrides in (devices or {}).items():
        records.setdefault(full_address(address), {}).update(overrides)
    group_of = {a: g for g, members in parsed["groups"].items() for a in members}

    natives = {}
    for address, record in records.items():
        device_dir = _device_dir(root, address)
        os.makedirs(device_dir, exist_ok=True)
        _symlink(
            os.path.join("..", "..", "..", "devices", os.path.basename(os.path.dirname(device_dir)), address),
            os.path.join(root, "sys", "bus", "pci", "devices", address),
        )
        if record.get("vendor_id"):
            _write(os.path.join(device_dir, "vendor"), "0x%s\n" % record["vendor_id"])
        if record.get("device_id"):
            _write(os.path.join(device_dir, "device"), "0x%s\n" % record["device_id"])
        if record.get("class_id"):
            _write(os.path.join(device_dir, "class"), "0x%s%s\n" % (record["class_id"], record.get("prog_if", "00")))
        if record.get("vendor_id") and record.get("device_id") and record.get("class_id"):
            sub_vendor, sub_device = record.get("subsystem") or ("0000", "0000")
            _write(
                os.path.join(device_dir, "modalias"),
                "pci:v0000%sd0000%ssv0000%ssd0000%sbc%ssc%si%s\n"
                % (
                    record["vendor_id"].upper(), record["device_id"].upper(), sub_vendor.upper(), sub_device.upper(),
                    record["class_id"][:2].upper(), record["class_id"][2:].upper(), record.get("prog_if", "00").upper(),
                ),
            )
        _write(os.path.join(device_dir, "driver_override"), "(null)\n")
        if address in group_of:
            group = group_of[address]
            _symlink(os.path.join("..", "..", "..", "kernel", "iommu_groups", group), os.path.join(device_dir, "iommu_group"))
            _symlink(
                os.path.join("..", "..", "..", "..", "devices", os.path.basename(os.path.dirname(device_dir)), address),
                os.path.join(root, "sys", "kernel", "iommu_groups", group, "devices", address),
            )
        driver = record.get("driver")
        if driver:
            module = record.get("module") or _module_for(driver, record.get("modules") or [])
            _ensure_driver(root, driver, module)
            set_driver(root, address, driver)
            natives[address] = driver
    os.makedirs(os.path.join(root, "sys", "bus", "pci", "devices"), exist_ok=True)
    os.makedirs(os.path.join(root, "sys", "kernel", "iommu_groups"), exist_ok=True)
    if vfio_loaded:
        _ensure_driver(root, "vfio-pci", "vfio_pci")
    _write(os.path.join(root, "sys", "bus", "pci", "drivers_probe"), "")
    _write(os.path.join(root, "proc", "cmdline"), cmdline.rstrip("\n") + "\n")
    os.makedirs(os.path.join(root, "sys", "firmware", "acpi", "tables"), exist_ok=True)
    if acpi_table:
        _write(os.path.join(root, "sys", "firmware", "acpi", "tables", acpi_table), acpi_table)
    _write(os.path.join(root, FAKE_KERNEL_STATE), json.dumps({"native_drivers": natives}))
    return root


def read(root, *parts):
    with open(os.path.join(root, *parts)) as handle:
        return handle.read()


def kernel_probe(root):
    """Play the kernel after ``drivers_probe``: a set driver_override decides the driver; a cleared one
    sends the device back to the driver it had when the root was built."""
    with open(os.path.join(root, FAKE_KERNEL_STATE)) as handle:
        natives = json.load(handle)["native_drivers"]
    devices_dir = os.path.join(root, "sys", "bus", "pci", "devices")
    for address in sorted(os.listdir(devices_dir)):
        override_path = os.path.join(devices_dir, address, "driver_override")
        override = read(override_path).strip()
        link = os.path.join(devices_dir, address, "driver")
        driver = os.path.basename(os.readlink(link)) if os.path.lexists(link) else None
        if override and override != "(null)":
            if driver != override:
                set_driver(root, address, override)
        else:
            _write(override_path, "(null)\n")
            if driver == "vfio-pci":
                set_driver(root, address, natives.get(address))


def add_drm_node(root, address, name, boot_vga=None):
    """A DRM node (``card0``, ``renderD128``) of the PCI device at ``address``, laid out as the kernel does:
    ``class/drm/<name>`` links to ``devices/.../<address>/drm/<name>``, whose ``device`` links back to the device."""
    address = full_address(address)
    device_dir = _device_dir(root, address)
    node_dir = os.path.join(device_dir, "drm", name)
    os.makedirs(node_dir, exist_ok=True)
    _symlink(os.path.join("..", ".."), os.path.join(node_dir, "device"))
    _symlink(
        os.path.join("..", "..", "devices", os.path.basename(os.path.dirname(device_dir)), address, "drm", name),
        os.path.join(root, "sys", "class", "drm", name),
    )
    if boot_vga is not None:
        _write(os.path.join(device_dir, "boot_vga"), "%d\n" % int(boot_vga))


def add_software_drm_node(root, name, platform_device="vgem"):
    """A DRM node without a PCI device (vgem lives under /sys/devices/platform)."""
    node_dir = os.path.join(root, "sys", "devices", "platform", platform_device, "drm", name)
    os.makedirs(node_dir, exist_ok=True)
    _symlink(os.path.join("..", ".."), os.path.join(node_dir, "device"))
    _symlink(os.path.join("..", "..", "devices", "platform", platform_device, "drm", name),
             os.path.join(root, "sys", "class", "drm", name))


def add_sriov(root, pf_address, vf_addresses=(), total_vfs=None, num_vfs=None):
    """Give the device at ``pf_address`` the SR-IOV capability as the kernel shows it: ``sriov_totalvfs``,
    ``sriov_numvfs`` (default: the number of VFs) and a ``virtfnN`` link per VF, whose ``physfn`` links back.
    VF directories missing so far are created with the PF's ids, class and IOMMU-less. None writes no file."""
    pf_address = full_address(pf_address)
    pf_dir = _device_dir(root, pf_address)
    bus_dir = os.path.basename(os.path.dirname(pf_dir))
    vf_addresses = [full_address(a) for a in vf_addresses]
    if total_vfs is not None:
        _write(os.path.join(pf_dir, "sriov_totalvfs"), "%s\n" % total_vfs)
    count = len(vf_addresses) if num_vfs is None else num_vfs
    if count is not None:
        _write(os.path.join(pf_dir, "sriov_numvfs"), "%s\n" % count)
    for index, vf in enumerate(vf_addresses):
        vf_dir = _device_dir(root, vf)
        if not os.path.isdir(vf_dir):
            os.makedirs(vf_dir)
            for name in ("vendor", "device", "class"):
                if os.path.exists(os.path.join(pf_dir, name)):
                    _write(os.path.join(vf_dir, name), read(pf_dir, name))
            _write(os.path.join(vf_dir, "driver_override"), "(null)\n")
            _symlink(os.path.join("..", "..", "..", "devices", bus_dir, vf), os.path.join(root, "sys", "bus", "pci", "devices", vf))
        _symlink(os.path.join("..", vf), os.path.join(pf_dir, "virtfn%d" % index))
        _symlink(os.path.join("..", pf_address), os.path.join(vf_dir, "physfn"))


def add_mdev_types(root, address, types):
    """``mdev_supported_types/<type>/`` under the device at ``address``: ``types`` maps each type to its files
    (``name``, ``description``, ``available_instances``, ``device_api``); a file whose value is None is left out.
    Each type also gets the ``create`` file and the ``devices`` directory the kernel has."""
    base = os.path.join(_device_dir(root, full_address(address)), "mdev_supported_types")
    os.makedirs(base, exist_ok=True)
    for type_name, files in types.items():
        type_dir = os.path.join(base, type_name)
        os.makedirs(os.path.join(type_dir, "devices"), exist_ok=True)
        _write(os.path.join(type_dir, "create"), "")
        for name, value in (files or {}).items():
            if value is not None:
                _write(os.path.join(type_dir, name), "%s\n" % value)
    return base
