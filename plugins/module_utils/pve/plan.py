# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Current VM config + desired state -> the minimal, ordered steps that converge it.

Pure and stdlib-only. ``current`` is what ``GET /nodes/{node}/qemu/{vmid}/config`` returns (a flat
key -> string dict, plus ``digest``). ``desired`` may hold:

- ``machine`` (``q35``, ``pc-q35-9.2+pve1``, ``q35,viommu=intel`` ...), ``bios`` (``seabios``/``ovmf``);
- ``efidisk0``: ``{"storage": "local-lvm", "efitype": "4m", "pre_enrolled_keys": False}``
  (``efitype`` defaults to ``4m``; ``storage`` or ``pre_enrolled_keys`` None means "any");
- ``hostpci``: ``{index: value}`` where value is a hostpci string, a dict for ``hostpci.format``
  or None (absent); slots not named are left alone; ``hostpciN`` keys are accepted too;
- any other config key (``cores``, ``memory``, ``ciuser``, ``sshkeys``, ``ipconfig0``,
  ``nameserver`` ...) with its value, or None for "absent";
- ``delete``: a list of keys that must be absent.

A step is one of::

    {"action": "shutdown"}
    {"action": "set_config", "config": {key: value}, "digest": <current digest or None>}
    {"action": "delete", "keys": [key, ...], "digest": <digest if it is the first write>}
    {"action": "start"}

A plan never deletes or replaces a ``scsiN``/``virtioN``/``sataN``/``ideN`` disk or an ``unusedN``
volume: such a plan raises ``PassthroughError`` (link ``vm_config``) instead.
"""

from __future__ import annotations

import copy
import re
from urllib.parse import quote, unquote

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import config as pve_config
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import hostpci

# qemu-server: src/PVE/QemuServer/Drive.pm -- ide0-3, sata0-5, scsi0-30, virtio0-15, unused0-255
PROTECTED_DISK_RE = re.compile(r"^(?:ide|sata|scsi|virtio|unused)\d+$")
# qemu-server: src/PVE/QemuServer/Drive.pm $NEW_DISK_RE -- "STORAGE:SIZE" allocates a new volume
NEW_DISK_RE = re.compile(r"^(?:([^/:\s]+):)?(\d+(?:\.\d+)?)$")

# qemu-server: src/PVE/QemuServer.pm $fast_plug_option and $confdesc_cloudinit: written to the
# config at once even on a running VM (cloud-init changes reach the guest at the next boot).
FAST_PLUG = frozenset(
    (
        "description",
        "hookscript",
        "lock",
        "migrate_downtime",
        "migrate_speed",
        "name",
        "onboot",
        "protection",
        "shares",
        "startup",
        "tags",
        "vmstatestorage",
        "citype",
        "ciuser",
        "cipassword",
        "ciupgrade",
        "cicustom",
        "searchdomain",
        "nameserver",
        "sshkeys",
    )
)
# qemu-server: src/PVE/QemuServer.pm vmconfig_hotplug_pending -- hot-applied without hotplug features
HOT_ALWAYS = frozenset(("cpuunits", "cpulimit", "agent"))

# Proxmox defaults for keys whose absence means a value (qemu-server: src/PVE/QemuServer.pm $confdesc).
DEFAULTS = {"bios": pve_config.BIOS_DEFAULT}

ROOT_ONLY_KEYS = frozenset(("args",))


def _hotplug_features(current):
    """qemu-server: src/PVE/QemuServer.pm parse_hotplug_features; absent or '1' = network,disk,usb."""
    value = str(current.get("hotplug", "1")).strip()
    if value == "1":
        return {"network", "disk", "usb"}
    if value == "0":
        return set()
    return {v.strip() for v in value.split(",") if v.strip()}


def needs_restart(key, current):
    """Whether a change of ``key`` on a running VM stays pending until the VM is restarted.

    qemu-server: src/PVE/QemuServer.pm vmconfig_hotplug_pending: fast-plug and cloud-init keys are
    written at once; ``netN`` with the 'network' feature, ``memory`` with 'memory', ``vcpus`` with
    'cpu', ``usbN`` with 'usb', and cpuunits/cpulimit/agent are hot-applied; every other key
    (machine, bios, efidisk0, hostpciN, cores, sockets, cpu, vga, boot, args ...) is skipped and
    stays pending.
    """
    if key in FAST_PLUG or key in HOT_ALWAYS or re.match(r"^ipconfig\d+$", key):
        return False
    features = _hotplug_features(current)
    if re.match(r"^net\d+$", key):
        return "network" not in features
    if re.match(r"^usb\d+$", key):
        return "usb" not in features
    if key == "memory":
        return "memory" not in features
    if key == "vcpus":
        return "cpu" not in features
    return True


# ---------------------------------------------------------------------------------------------
# comparisons
# ---------------------------------------------------------------------------------------------


def _text(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _property_parts(value):
    """A property string as a set of normalised parts (order does not matter)."""
    return frozenset(p.strip() for p in _text(value).split(",") if p.strip())


def _machine_equal(cur, want):
    """``pve_config.machine_meets``: any q35 string meets ``q35``; given properties must match, others are kept."""
    return pve_config.machine_meets(cur, want)


def _plain_sshkeys(value):
    text = str(value)
    if re.search(r"%[0-9A-Fa-f]{2}", text) and " " not in text:
        text = unquote(text)
    return text


def _sshkeys_equal(cur, want):
    """``sshkeys`` is stored URI-encoded (qemu-server: src/PVE/API2/Qemu.pm decodes it to validate)."""

    def lines(v):
        return [line.strip() for line in unquote(str(v)).splitlines() if line.strip()]

    return lines(cur) == lines(_plain_sshkeys(want))


efidisk_spec = pve_config.efidisk_spec


def _desired_efidisk(want):
    if isinstance(want, str):
        spec = efidisk_spec(want)
        spec["raw"] = want
        spec["replace"] = True
        return spec
    spec = dict(want)
    spec.setdefault("efitype", None)
    spec.setdefault("storage", None)
    spec.setdefault("pre_enrolled_keys", None)
    spec.setdefault("replace", False)
    return spec


def _efidisk_equal(cur, want):
    """Any live efidisk0 meets "has an EFI disk"; only ``replace`` (NVRAM lost) compares type and keys."""
    w = _desired_efidisk(want)
    return pve_config.efidisk_meets(cur, w["efitype"], w["pre_enrolled_keys"], replace=w["replace"])


def _efidisk_value(want, current_value=None):
    w = _desired_efidisk(want)
    if w.get("raw"):
        return w["raw"]
    storage = w.get("storage")
    if storage is None and current_value:
        storage = efidisk_spec(current_value)["storage"]
    return pve_config.new_efidisk(storage, w["efitype"] or "4m", w["pre_enrolled_keys"])


# qemu-server: src/PVE/QemuServer/Network.pm $nic_model_list (the model key doubles as the MAC key)
NIC_MODELS = frozenset(
    (
        "e1000",
        "e1000-82540em",
        "e1000-82544gc",
        "e1000-82545em",
        "e1000e",
        "i82551",
        "i82557b",
        "i82559er",
        "ne2k_isa",
        "ne2k_pci",
        "pcnet",
        "rtl8139",
        "virtio",
        "vmxnet3",
    )
)


def parse_net(value):
    """``virtio=BC:24:11:0C:52:4B,bridge=vmbr0`` -> ``{"model": "virtio", "macaddr": "BC:24:...", "options": {...}}``."""
    result = {"model": None, "macaddr": None, "options": {}}
    for part in str(value).split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        if key in NIC_MODELS:
            result["model"] = key
            result["macaddr"] = val.upper() if sep else None
        elif key == "model":
            result["model"] = val
        elif key == "macaddr":
            result["macaddr"] = val.upper()
        else:
            result["options"][key] = val
    return result


def _net_equal(cur, want):
    """A wanted NIC without a MAC address is met by the current MAC (the guest keeps its identity)."""
    c, w = parse_net(cur), parse_net(want)
    if w["macaddr"] is None:
        c["macaddr"] = None
    return c == w


def _net_value(want, cur):
    """Keep the current MAC address when the wanted NIC does not name one."""
    w = parse_net(want)
    if w["macaddr"] is not None or not cur:
        return _text(want)
    c = parse_net(cur)
    if not c["macaddr"] or not w["model"]:
        return _text(want)
    parts = ["%s=%s" % (w["model"], c["macaddr"])]
    parts.extend("%s=%s" % (k, v) for k, v in w["options"].items())
    return ",".join(parts)


def values_equal(key, cur, want):
    """Whether ``current[key] == cur`` already means the desired ``want`` (both not None)."""
    if key == "machine":
        return _machine_equal(cur, want)
    if key == "bios":
        return _text(cur or pve_config.BIOS_DEFAULT) == _text(want)
    if re.match(r"^hostpci\d+$", key):
        try:
            return hostpci.equivalent(cur, want)
        except PassthroughError:
            return False
    if key == "efidisk0":
        return _efidisk_equal(cur, want)
    if key == "sshkeys":
        return _sshkeys_equal(cur, want)
    if re.match(r"^net\d+$", key):
        return _net_equal(cur, want)
    if key in ("nameserver", "searchdomain"):
        return _text(cur).split() == _text(want).split()
    if key == "cipassword":
        # GET .../config never returns the password itself; it cannot be compared
        return True
    if isinstance(want, bool):
        return pve_config.parse_bool(cur) is want
    if "," in _text(cur) or "," in _text(want) or "=" in _text(want):
        return _property_parts(cur) == _property_parts(want)
    return _text(cur) == _text(want)


def _value_for(key, want, current):
    if key == "machine":
        return pve_config.machine_value(current.get("machine"), want)
    if re.match(r"^hostpci\d+$", key):
        return want if isinstance(want, str) else hostpci.format(want)
    if key == "efidisk0":
        return _efidisk_value(want, current.get("efidisk0"))
    if key == "sshkeys":
        return quote(_plain_sshkeys(want), safe="")
    if re.match(r"^net\d+$", key) and isinstance(want, str):
        return _net_value(want, current.get(key))
    return _text(want)


# ---------------------------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------------------------


def flatten_desired(desired):
    """desired -> ({key: wanted value}, [keys to delete])."""
    wanted = {}
    absent = []
    for key, value in (desired or {}).items():
        if key == "hostpci":
            for index, slot_value in (value or {}).items():
                slot_key = "hostpci%d" % int(index)
                if slot_value is None:
                    absent.append(slot_key)
                else:
                    wanted[slot_key] = slot_value
        elif key == "delete":
            absent.extend(value or [])
        elif value is None:
            absent.append(key)
        else:
            wanted[key] = value
    return wanted, absent


def _drive_volume(value):
    for part in str(value).split(","):
        if "=" not in part:
            return part
        k, _sep, v = part.partition("=")
        if k in ("file", "volume"):
            return v
    return None


def _refuse_disk_changes(current, changes, deletes):
    touched = []
    for key in deletes:
        if PROTECTED_DISK_RE.match(key) and key in current:
            touched.append("delete %s (%s)" % (key, current[key]))
    for key, value in changes.items():
        if PROTECTED_DISK_RE.match(key) and key in current and _drive_volume(current[key]) != _drive_volume(value):
            touched.append("replace %s (%s) with %r" % (key, current[key], value))
    if touched:
        raise PassthroughError(
            "Refusing a plan that would drop a disk: %s." % "; ".join(touched),
            fix="leave disks and unused volumes out of the desired state; move, detach or delete disks by hand if that is really meant.",
            link="vm_config",
            details={"refused": touched},
        )


def _check_permissions(current, changes, deletes, user, romfile_root_only=True):
    """qemu-server: src/PVE/API2/Qemu.pm update_vm_api: check_hostpci_perm on the old and the new value
    of every hostpciN set and on every hostpciN deleted; $check_vm_modify_config_perm: ``args``
    and unknown keys are root only."""
    if user is None or hostpci.is_root(user):
        return
    problems = []
    for key in sorted(set(changes) | set(deletes), key=pve_config.slot_sort_key):
        if re.match(r"^hostpci\d+$", key):
            if current.get(key):
                problems.extend(hostpci.check_permission(current[key], user, key, romfile_root_only))
            if key in changes:
                problems.extend(hostpci.check_permission(changes[key], user, key, romfile_root_only))
        elif key in ROOT_ONLY_KEYS:
            problems.append(
                PassthroughError(
                    "only root can set '%s' config (API user %r)." % (key, user),
                    fix="leave '%s' out, or authenticate as root@pam with its password." % key,
                    link="input",
                    details={"option": key, "user": user},
                )
            )
    if problems:
        first = problems[0]
        first.details["problems"] = [str(p) for p in problems]
        raise first


def _check_hostpci(final, changes, deletes):
    """Start-time rules (qemu-server: src/PVE/QemuServer/PCI.pm parse_hostpci_devices) on the result."""
    touched = set(changes) | set(deletes)
    if not any(k in ("machine", "vga") or k.startswith("hostpci") for k in touched):
        return
    problems = hostpci.validate_config(final)
    if problems:
        first = problems[0]
        first.details["problems"] = [str(p) for p in problems]
        raise first


def compute(current, desired):
    """({key: value to set}, [keys to delete]) that take ``current`` to ``desired``; no checks."""
    wanted, absent = flatten_desired(desired)
    changes = {}
    for key, want in wanted.items():
        if key == "machine":
            # an absent machine is the default 'pc' (i440fx), so compare even when absent
            if _machine_equal(current.get(key), want):
                continue
        else:
            cur = current.get(key)
            if cur is None:
                cur = DEFAULTS.get(key)
            if cur is not None and values_equal(key, cur, want):
                continue
        changes[key] = _value_for(key, want, current)
    deletes = sorted({k for k in absent if k in current and k not in changes}, key=pve_config.slot_sort_key)
    return changes, deletes


def plan(current, desired, running=False, restart=True, user=None, pending=None, romfile_root_only=True):
    """The minimal ordered steps taking ``current`` to ``desired`` (see the module docstring).

    ``running``: the VM runs now; then a change to a key that is not hot-applied (``needs_restart``)
    is wrapped in ``shutdown`` ... ``start`` when ``restart`` is true, or left pending (the
    ``set_config`` step then lists those keys in ``pending_until_restart``). ``pending``: keys that
    already wait in the VM's pending section (GET .../pending); with ``restart`` they also cause a
    shutdown/start, since GET .../config shows pending values as if applied. ``user``: the API user;
    when given, Proxmox's permission rules for hostpci and root-only keys are checked before any step
    is returned (``romfile_root_only``: the qemu-server 9.2.6 rule, see ``hostpci.check_permission``).
    Raises ``PassthroughError`` for plans that would drop a disk, break a start-time hostpci rule or
    be refused by the API.
    """
    current = dict(current or {})
    changes, deletes = compute(current, desired)
    _refuse_disk_changes(current, changes, deletes)
    _check_permissions(current, changes, deletes, user, romfile_root_only)
    final = apply_plan(current, _write_steps(changes, deletes, None))
    _check_hostpci(final, changes, deletes)

    restart_keys = sorted(k for k in list(changes) + deletes if needs_restart(k, current))
    waiting = sorted(k for k in (pending or ()) if needs_restart(k, current))
    cycle = bool(running and restart and (restart_keys or waiting))

    steps = []
    if cycle:
        steps.append({"action": "shutdown"})
    writes = _write_steps(changes, deletes, current.get("digest"))
    if running and not restart and restart_keys:
        writes[0]["pending_until_restart"] = restart_keys
    steps.extend(writes)
    if cycle:
        steps.append({"action": "start"})
    return steps


def _write_steps(changes, deletes, digest):
    steps = []
    if changes:
        steps.append({"action": "set_config", "config": dict(changes), "digest": digest})
    if deletes:
        steps.append({"action": "delete", "keys": list(deletes), "digest": None if changes else digest})
    return steps


# ---------------------------------------------------------------------------------------------
# applying (for check mode, diff, the simulator and tests)
# ---------------------------------------------------------------------------------------------


def _free_key(config, prefix):
    index = 0
    while "%s%d" % (prefix, index) in config:
        index += 1
    return "%s%d" % (prefix, index)


def _allocate(config, key, value, vmid):
    """Turn a ``STORAGE:SIZE`` drive value into a named volume, as the API would."""
    parts = str(value).split(",")
    match = NEW_DISK_RE.match(parts[0])
    if not match or not match.group(1):
        return value
    storage = match.group(1)
    used = set()
    for other in config.values():
        m = re.search(r"vm-%s-disk-(\d+)" % re.escape(str(vmid)), str(other))
        if m:
            used.add(int(m.group(1)))
    number = 0
    while number in used:
        number += 1
    parts[0] = "%s:vm-%s-disk-%d" % (storage, vmid, number)
    old = config.get(key)
    if old and _drive_volume(old) and not NEW_DISK_RE.match(_drive_volume(old)):
        # a replaced drive is kept as unusedN (qemu-server: src/PVE/QemuServer.pm vmconfig_register_unused_drive)
        config[_free_key(config, "unused")] = _drive_volume(old)
    return ",".join(parts)


def apply_plan(config, steps, vmid=None):
    """The config after ``steps`` (a copy). With ``vmid``, ``STORAGE:1`` allocations get volume names
    ``STORAGE:vm-<vmid>-disk-<n>`` and a replaced volume moves to ``unusedN``. ``digest`` is dropped."""
    result = copy.deepcopy(dict(config or {}))
    result.pop("digest", None)
    for step in steps:
        if step["action"] == "set_config":
            for key, value in step["config"].items():
                if vmid is not None and (key == "efidisk0" or PROTECTED_DISK_RE.match(key)):
                    value = _allocate(result, key, value, vmid)
                result[key] = value
        elif step["action"] == "delete":
            for key in step["keys"]:
                result.pop(key, None)
    return result


def diff(current, desired, **kwargs):
    """Ansible's diff: ``{"before": config, "after": config after the plan}`` (``digest`` left out).

    Keyword arguments go to ``plan``.
    """
    before = dict(current or {})
    before.pop("digest", None)
    after = apply_plan(before, plan(current, desired, **kwargs))
    return {"before": before, "after": after}
