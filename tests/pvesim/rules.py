"""Proxmox VE behaviour rules encoded for the simulator.

Every function that encodes a rule names, in its docstring, the Proxmox source file (and the sub in it)
whose behaviour it follows. Repositories: proxmox/qemu-server, proxmox/pve-manager, proxmox/pve-common,
proxmox/pve-guest-common, proxmox/pve-access-control, proxmox/pve-http-server. Only facts were carried
over; the code is written for this simulator.
"""

import hashlib
import re

MAX_HOSTPCI_DEVICES = 16


# --------------------------------------------------------------------------------------------------
# Errors as the API server reports them
# --------------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error the way PVE's HTTP server reports it: status code, message, optional per-parameter errors.

    Follows pve-manager `PVE/HTTPServer.pm` (`rest_handler`: a `PVE::Exception` keeps its code, any other
    `die` becomes 500 with the text as message) and pve-http-server `PVE/APIServer/AnyEvent.pm`
    (`response`: only the first line of the message goes into the HTTP status line).
    """

    def __init__(self, status, message, errors=None):
        super().__init__(message)
        self.status = status
        self.message = message if message.endswith("\n") else message + "\n"
        self.errors = errors

    def task_text(self):
        """Text a worker writes after `TASK ERROR:` for this error.

        Follows pve-common `src/PVE/Exception.pm` (`stringify`: "<code> <msg>" plus one "<param>: <error>"
        line per parameter error) and `src/PVE/RESTEnvironment.pm` (`fork_worker`: chomp, newlines to spaces).
        """
        text = self.message
        if self.status != 500:
            text = "%d %s" % (self.status, text)
        for key, value in sorted((self.errors or {}).items()):
            text += "%s: %s\n" % (key, value)
        return text.rstrip("\n").replace("\n", " ")


def die(message):
    """A plain `die` in a handler: HTTP 500 with the text (pve-manager `PVE/HTTPServer.pm`, `rest_handler`)."""
    return ApiError(500, message)


def param_exc(errors):
    """`raise_param_exc`: HTTP 400 "Parameter verification failed." (pve-common `src/PVE/Exception.pm`)."""
    return ApiError(400, "Parameter verification failed.", errors)


def perm_exc(what=None):
    """`raise_perm_exc`: HTTP 403 "Permission check failed (<what>)" (pve-common `src/PVE/Exception.pm`)."""
    message = "Permission check failed"
    if what:
        message += " (%s)" % what
    return ApiError(403, message)


# --------------------------------------------------------------------------------------------------
# UPID and task status
# --------------------------------------------------------------------------------------------------

UPID_RE = re.compile(
    r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):"
    r"([^:\s/]+):([^:\s/]*):([^:\s/]+):$"
)


def upid_encode(node, pid, pstart, starttime, task_type, task_id, user):
    """Build a UPID `UPID:$node:$pid:$pstart:$starttime:$type:$id:$user:` with 8-digit upper-case hex numbers.

    Follows pve-common `src/PVE/UPID.pm` (`encode`).
    """
    return "UPID:%s:%08X:%08X:%08X:%s:%s:%s:" % (node, pid, pstart, starttime, task_type, task_id, user)


def upid_decode(upid):
    """Split a UPID into its parts, or return None if it does not parse.

    Follows pve-common `src/PVE/UPID.pm` (`decode`, same pattern; pstart may have 9 digits).
    """
    match = UPID_RE.match(upid or "")
    if not match:
        return None
    return {
        "node": match.group(1),
        "pid": int(match.group(3), 16),
        "pstart": int(match.group(4), 16),
        "starttime": int(match.group(5), 16),
        "type": match.group(6),
        "id": match.group(7),
        "user": match.group(8),
    }


def task_exitstatus(last_line):
    """Exit status from the last task log line: `OK`, `WARNINGS: n`, the error text, or `unexpected status`.

    Follows pve-common `src/PVE/UPID.pm` (`read_status`).
    """
    if last_line == "TASK OK":
        return "OK"
    match = re.match(r"^TASK ERROR: (.+)$", last_line or "")
    if match:
        return match.group(1)
    match = re.match(r"^TASK (WARNINGS: \d+)$", last_line or "")
    if match:
        return match.group(1)
    return "unexpected status"


def task_status_is_error(status):
    """Only `OK` and `WARNINGS: n` count as success (pve-common `src/PVE/UPID.pm`, `status_is_error`)."""
    return not (status == "OK" or re.match(r"^WARNINGS: \d+$", status or ""))


def task_final_line(error_text, warnings):
    """Last log line a worker writes: `TASK ERROR: …` (newlines folded), `TASK WARNINGS: n` or `TASK OK`.

    Follows pve-common `src/PVE/RESTEnvironment.pm` (`fork_worker`, end of the child).
    """
    if error_text:
        return "TASK ERROR: " + error_text.rstrip("\n").replace("\n", " ")
    if warnings:
        return "TASK WARNINGS: %d" % warnings
    return "TASK OK"


def task_user_view(upid_user):
    """Split a token task owner `user@realm!token` into user and tokenid, as the task status shows them.

    Follows pve-manager `PVE/API2/Tasks.pm` (`$convert_token_task`).
    """
    if "!" in upid_user:
        user, token = upid_user.split("!", 1)
        return user, token
    return upid_user, None


def task_owner_matches(upid_user, authuser):
    """A token sees only its own tasks; a user sees its own and its tokens' tasks; others need Sys.Audit.

    Follows pve-manager `PVE/API2/Tasks.pm` (`$check_task_user`).
    """
    user, token = task_user_view(upid_user)
    if token:
        return authuser in (upid_user, user)
    return authuser == user


# --------------------------------------------------------------------------------------------------
# Property strings
# --------------------------------------------------------------------------------------------------


class FormatError(Exception):
    """A property string that does not fit its format."""


BOOL_TRUE = ("1", "true", "yes", "on")
BOOL_FALSE = ("0", "false", "no", "off")


def parse_boolean(value):
    """Booleans accept 1/0, true/false, yes/no, on/off (pve-common `src/PVE/JSONSchema.pm`, `parse_boolean`)."""
    text = str(value).lower()
    if text in BOOL_TRUE:
        return 1
    if text in BOOL_FALSE:
        return 0
    return None


def parse_property_string(value, fmt, lenient=False):
    """Parse `key=value,…` with an optional default key; unknown keys fail unless `lenient`.

    Follows pve-common `src/PVE/JSONSchema.pm` (`parse_property_string`: the error texts "invalid key in
    comma-separated list property", "duplicate key …", "value without key, but schema does not define a
    default key", then `check_object` against the format).
    """
    res = {}
    default_key = None
    for key, spec in fmt.items():
        if spec.get("default_key"):
            default_key = key
    for part in str(value).split(","):
        if part == "":
            continue
        if "=" in part:
            key, val = part.split("=", 1)
            key = fmt.get(key, {}).get("alias", key)
            if key in res:
                raise FormatError("duplicate key in comma-separated list property: %s" % key)
            spec = fmt.get(key)
            if spec is None and not lenient:
                raise FormatError("invalid key in comma-separated list property: %s" % key)
            if spec and spec.get("type") == "boolean":
                parsed = parse_boolean(val)
                val = parsed if parsed is not None else val
            res[key] = val
        else:
            if default_key is None:
                raise FormatError("value without key, but schema does not define a default key")
            if default_key in res:
                raise FormatError("duplicate key in comma-separated list property: %s" % default_key)
            res[default_key] = part
    errors = []
    for key, val in res.items():
        spec = fmt.get(key)
        if not spec:
            continue
        err = check_value(val, spec)
        if err:
            errors.append("%s: %s" % (key, err))
    if errors:
        raise FormatError("format error\n" + "\n".join(errors))
    return res


def check_value(value, spec):
    """Type, pattern, enum and range checks with PVE's texts (pve-common `src/PVE/JSONSchema.pm`, `check_prop`)."""
    vtype = spec.get("type", "string")
    text = str(value)
    if vtype == "boolean":
        if parse_boolean(text) is None:
            return "type check ('boolean') failed - got '%s'" % text
        return None
    if vtype == "integer":
        if not re.match(r"^-?\d+$", text):
            return "type check ('integer') failed - got '%s'" % text
        number = int(text)
        if "minimum" in spec and number < spec["minimum"]:
            return "value must have a minimum value of %s" % spec["minimum"]
        if "maximum" in spec and number > spec["maximum"]:
            return "value must have a maximum value of %s" % spec["maximum"]
        return None
    if "enum" in spec and text not in spec["enum"]:
        return "value '%s' does not have a value in the enumeration '%s'" % (text, ", ".join(spec["enum"]))
    if "pattern" in spec and not re.match("^(?:%s)$" % spec["pattern"], text):
        return "value does not match the regex pattern"
    if "format" in spec:
        try:
            parse_property_string(text, spec["format"], lenient=spec.get("lenient", False))
        except FormatError as exc:
            return "invalid format - %s" % exc
    return None


def print_property_string(data, fmt):
    """Default key first (bare value), then the other keys sorted by name.

    Follows pve-common `src/PVE/JSONSchema.pm` (`print_property_string`).
    """
    parts = []
    default_key = None
    for key, spec in fmt.items():
        if spec.get("default_key"):
            default_key = key
    if default_key is not None and data.get(default_key) is not None:
        parts.append(str(data[default_key]))
    for key in sorted(data):
        if key == default_key or data[key] is None:
            continue
        parts.append("%s=%s" % (key, data[key]))
    return ",".join(parts)


PCIRE = r"(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?"
HEX_ID = r"0x[0-9a-fA-F]{4}"

# qemu-server src/PVE/QemuServer/PCI.pm, $hostpci_fmt
HOSTPCI_FMT = {
    "host": {"default_key": True, "pattern": "%s(;%s)*" % (PCIRE, PCIRE)},
    "mapping": {"pattern": r"[a-zA-Z][a-zA-Z0-9_\-]*"},
    "rombar": {"type": "boolean"},
    "romfile": {"pattern": r"[^,;]+"},
    "pcie": {"type": "boolean"},
    "x-vga": {"type": "boolean"},
    "legacy-igd": {"type": "boolean"},
    "mdev": {"pattern": r"[^/\.:]+"},
    "vendor-id": {"pattern": HEX_ID},
    "device-id": {"pattern": HEX_ID},
    "sub-vendor-id": {"pattern": HEX_ID},
    "sub-device-id": {"pattern": HEX_ID},
    "driver": {"enum": ["vfio", "keep"]},
}

# qemu-server src/PVE/QemuServer/Machine.pm, $machine_fmt
MACHINE_FMT = {
    "type": {"default_key": True,
             "pattern": r"(pc|pc(-i440fx)?-\d+(\.\d+)+(\+pve\d+)?(\.pxe)?|q35|pc-q35-\d+(\.\d+)+(\+pve\d+)?(\.pxe)?"
                        r"|virt(?:-\d+(\.\d+)+)?(\+pve\d+)?)"},
    "viommu": {"enum": ["intel", "virtio"]},
    "aw-bits": {"type": "integer", "minimum": 32, "maximum": 64},
    "enable-s3": {"type": "boolean"},
    "enable-s4": {"type": "boolean"},
}

# qemu-server src/PVE/QemuServer/Drive.pm (drive formats; only the keys the simulator reads are typed)
DRIVE_FMT = {
    "file": {"default_key": True},
    "size": {},
    "format": {"enum": ["raw", "cow", "qcow", "qed", "qcow2", "vmdk", "cloop"]},
    "media": {"enum": ["cdrom", "disk"]},
    "efitype": {"enum": ["2m", "4m"]},
    "pre-enrolled-keys": {"type": "boolean"},
    "ms-cert": {"enum": ["2011", "2023", "2023w", "2023k"]},
}

# qemu-server src/PVE/QemuServer/Network.pm (net format: model=macaddr as first pair)
NET_MODELS = ["e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b", "i82559er",
              "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3"]


def parse_hostpci(value):
    """Parse a `hostpciN` value; `host` is the default key (qemu-server `src/PVE/QemuServer/PCI.pm`, `$hostpci_fmt`)."""
    return parse_property_string(value, HOSTPCI_FMT)


def parse_machine(value):
    """Parse a `machine` value (qemu-server `src/PVE/QemuServer/Machine.pm`, `$machine_fmt`)."""
    return parse_property_string(value, MACHINE_FMT)


def machine_is_q35(conf):
    """q35 when the machine type contains `q35` (qemu-server `src/PVE/QemuServer/Machine.pm`, `machine_type_is_q35`)."""
    machine = conf.get("machine")
    if not machine:
        return False
    try:
        mtype = parse_machine(machine).get("type", "")
    except FormatError:
        mtype = str(machine)
    return "q35" in mtype


def assert_valid_machine_property(value):
    """Intel vIOMMU needs q35 (qemu-server `src/PVE/QemuServer/Machine.pm`, `assert_valid_machine_property`)."""
    parsed = parse_machine(value)
    if parsed.get("viommu") == "intel" and "q35" not in parsed.get("type", "pc"):
        raise die("to use Intel vIOMMU please set the machine type to q35")


def parse_drive(value):
    """Parse a drive value leniently; `file` is the default key (qemu-server `src/PVE/QemuServer/Drive.pm`)."""
    return parse_property_string(value, DRIVE_FMT, lenient=True)


def print_drive(drive):
    """Print a drive: file first, then the other keys sorted (qemu-server `Drive.pm`, `print_drive`)."""
    return print_property_string(drive, DRIVE_FMT)


def parse_net(value):
    """Split `model[=mac],key=value…` into model, macaddr and the rest (qemu-server `QemuServer/Network.pm`, `parse_net`)."""
    parts = [p for p in str(value).split(",") if p]
    res = {"_order": []}
    for part in parts:
        key, _sep, val = part.partition("=")
        if key in NET_MODELS:
            res["model"] = key
            if val:
                res["macaddr"] = val.upper()
        elif key == "model":
            res["model"] = val
        elif key == "macaddr":
            res["macaddr"] = val.upper()
        else:
            res[key] = val
            res["_order"].append(key)
    if "model" not in res:
        raise FormatError("invalid network device format")
    return res


def print_net(net):
    """Print a net value as `model=MAC,` then the remaining keys sorted (qemu-server `QemuServer/Network.pm`, `print_net`)."""
    parts = ["%s=%s" % (net["model"], net["macaddr"])]
    for key in sorted(k for k in net if k not in ("model", "macaddr", "_order")):
        parts.append("%s=%s" % (key, net[key]))
    return ",".join(parts)


# --------------------------------------------------------------------------------------------------
# VM configuration keys and their privileges
# --------------------------------------------------------------------------------------------------

# qemu-server src/PVE/API2/Qemu.pm: $cpuoptions, $memoryoptions, $hwtypeoptions, $generaloptions,
# $vmpoweroptions, $diskoptions, $cloudinitoptions
CPU_OPTIONS = {"cores", "cpu", "runningcpu", "cpulimit", "cpuunits", "numa", "smp", "sockets", "vcpus"}
MEMORY_OPTIONS = {"memory", "balloon", "shares", "allow-ksm"}
HWTYPE_OPTIONS = {"acpi", "hotplug", "kvm", "machine", "runningmachine", "scsihw", "smbios1", "tablet", "vga", "watchdog",
                  "audio0", "rng0"}
GENERAL_OPTIONS = {"agent", "autostart", "bios", "description", "keyboard", "localtime", "migrate_downtime", "migrate_speed",
                   "name", "onboot", "ostype", "protection", "reboot", "startdate", "startup", "tdf", "template"}
VMPOWER_OPTIONS = {"freeze"}
DISK_OPTIONS = {"boot", "bootdisk", "vmstatestorage"}
CLOUDINIT_OPTIONS = {"cicustom", "cipassword", "citype", "ciuser", "ciupgrade", "nameserver", "searchdomain", "sshkeys"}

DRIVE_RE = re.compile(r"^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5])|efidisk0|tpmstate0)$")


def is_valid_drivename(key):
    """Drive keys ide0-3, sata0-5, scsi0-30, virtio0-15, efidisk0, tpmstate0 (qemu-server `QemuServer/Drive.pm`, `is_valid_drivename`)."""
    return bool(DRIVE_RE.match(key))


INT_KEYS = {
    "cores": {"minimum": 1}, "sockets": {"minimum": 1}, "vcpus": {"minimum": 1}, "cpuunits": {"minimum": 1},
    "balloon": {"minimum": 0}, "shares": {"minimum": 0}, "migrate_speed": {"minimum": 0}, "tdf": {},
}
BOOL_KEYS = {"onboot", "template", "protection", "numa", "kvm", "acpi", "tablet", "localtime", "reboot", "autostart", "freeze",
             "allow-ksm", "ciupgrade"}
ENUM_KEYS = {
    "bios": ["seabios", "ovmf"],
    "ostype": ["other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris"],
    "scsihw": ["lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"],
    "citype": ["configdrive2", "nocloud", "opennebula"],
    "keyboard": ["de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it", "ja", "lt", "mk",
                 "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr"],
}
STRING_KEYS = {"name", "description", "cpu", "runningcpu", "cpulimit", "smp", "memory", "hotplug", "runningmachine", "smbios1",
               "vga", "watchdog", "audio0", "rng0", "agent", "migrate_downtime", "startdate", "startup", "boot", "bootdisk",
               "vmstatestorage", "cicustom", "cipassword", "ciuser", "nameserver", "searchdomain", "sshkeys", "args", "tags",
               "lock", "hookscript", "vmgenid", "meta", "affinity", "cdrom", "vmstate", "ivshmem", "spice_enhancements",
               "hugepages", "keephugepages", "arch", "parent", "amd-sev", "intel-tdx", "running-nets-host-mtu"}
INDEXED_KEYS = re.compile(r"^(net([0-9]|[1-2][0-9]|3[01])|hostpci([0-9]|1[0-5])|unused\d+|ipconfig([0-9]|[1-2][0-9]|3[01])|"
                          r"serial[0-3]|parallel[0-2]|usb([0-9]|1[0-3])|numa[0-7]|virtiofs[0-9])$")


def option_exists(key):
    """Whether `key` is a VM configuration option (qemu-server `src/PVE/QemuServer.pm`, `option_exists` over `$confdesc`)."""
    return (key in INT_KEYS or key in BOOL_KEYS or key in ENUM_KEYS or key in STRING_KEYS or key == "machine"
            or is_valid_drivename(key) or bool(INDEXED_KEYS.match(key)))


def check_config_value(key, value):
    """Validate one VM option value; returns (normalized value, error text or None).

    Follows the types in qemu-server `src/PVE/QemuServer.pm` (`$confdesc`) and the check texts of pve-common
    `src/PVE/JSONSchema.pm`; booleans are stored as 0/1.
    """
    text = str(value)
    if key in BOOL_KEYS:
        parsed = parse_boolean(text)
        if parsed is None:
            return text, "type check ('boolean') failed - got '%s'" % text
        return parsed, None
    if key in INT_KEYS:
        err = check_value(text, dict(INT_KEYS[key], type="integer"))
        return (text if err else int(text)), err
    if key in ENUM_KEYS:
        return text, check_value(text, {"enum": ENUM_KEYS[key]})
    if key == "machine":
        return text, check_value(text, {"format": MACHINE_FMT})
    if key.startswith("hostpci"):
        return text, check_value(text, {"format": HOSTPCI_FMT})
    if is_valid_drivename(key) or key.startswith("unused"):
        return text, check_value(text, {"format": DRIVE_FMT, "lenient": True})
    if key.startswith("net"):
        try:
            parse_net(text)
        except FormatError as exc:
            return text, "invalid format - %s" % exc
    return text, None


def option_privileges(key):
    """Privileges (and 'any' flag) a non-root user needs to set `key`, or None for value-dependent/root-only keys.

    Follows qemu-server `src/PVE/API2/Qemu.pm` (`$check_vm_modify_config_perm`): CPU → VM.Config.CPU, memory →
    VM.Config.Memory, hardware type (incl. `machine`) → VM.Config.HWType, general (incl. `bios`) → VM.Config.Options,
    power → VM.PowerMgmt, boot/disk options → VM.Config.Disk, `netN` → VM.Config.Network, cloud-init keys and
    `ipconfigN` → VM.Config.Cloudinit or VM.Config.Network; drives, `unusedN`, `serialN`, `usbN`, `hostpciN`,
    `virtiofsN` and `tags` are checked elsewhere with their value. Returns "root" for everything else (`args`,
    `lock`, unknown keys: "only root can set '<opt>' config").
    """
    if is_valid_drivename(key) or key == "cdrom" or key == "tags" or re.match(r"^(unused|serial|usb|hostpci|virtiofs)\d+$", key):
        return None
    if key in CPU_OPTIONS or re.match(r"^numa\d+$", key):
        return (["VM.Config.CPU"], False)
    if key in MEMORY_OPTIONS:
        return (["VM.Config.Memory"], False)
    if key in HWTYPE_OPTIONS:
        return (["VM.Config.HWType"], False)
    if key in GENERAL_OPTIONS:
        return (["VM.Config.Options"], False)
    if key in VMPOWER_OPTIONS:
        return (["VM.PowerMgmt"], False)
    if key in DISK_OPTIONS:
        return (["VM.Config.Disk"], False)
    if re.match(r"^net\d+$", key) or key == "running-nets-host-mtu":
        return (["VM.Config.Network"], False)
    if key in CLOUDINIT_OPTIONS or re.match(r"^ipconfig\d+$", key):
        return (["VM.Config.Cloudinit", "VM.Config.Network"], True)
    if key == "vmstate":
        return (["VM.Config.Disk", "VM.PowerMgmt"], False)
    return "root"


def check_vm_modify_config_perm(perms, authuser, vmid, keys):
    """Check the per-option privileges for `keys`; non-root users get "only root can set '<opt>' config" for root-only keys.

    Follows qemu-server `src/PVE/API2/Qemu.pm` (`$check_vm_modify_config_perm`, the `startup` special case needs
    Sys.Modify on `/`).
    """
    if authuser == "root@pam":
        return
    for key in keys:
        need = option_privileges(key)
        if need is None:
            continue
        if need == "root":
            raise die("only root can set '%s' config" % key)
        privs, any_of = need
        perms.check(authuser, "/vms/%s" % vmid, privs, any_of=any_of)
        if key == "startup":
            perms.check(authuser, "/", ["Sys.Modify"])


def check_hostpci_perm(perms, authuser, vmid, opt, value, release=None):
    """Only `root@pam` may set raw `host=` devices; a `mapping=` needs Mapping.Use on /mapping/pci/<id> and
    VM.Config.HWType on the VM; `romfile` is root@pam-only even with a mapping since qemu-server 9.2.6 (PVE 9.2,
    `romfile_root_only`); with an older `release` a mapping user may set it.

    Follows qemu-server `src/PVE/API2/Qemu.pm` (`check_hostpci_perm`, used by `check_vm_create_hostpci_perm` on
    create and by `$update_vm_api` for the old and the new value on update and for the value on delete). Error
    texts: "only root can set '<opt>' config for non-mapped devices", "either 'host' or 'mapping' must be set.",
    and the parameter error "only root@pam can set 'romfile' option".
    """
    if authuser == "root@pam":
        return
    try:
        device = parse_hostpci(value)
    except FormatError as exc:
        raise param_exc({opt: "invalid format - %s" % exc}) from exc
    if device.get("host"):
        raise die("only root can set '%s' config for non-mapped devices" % opt)
    if device.get("mapping"):
        perms.check(authuser, "/mapping/pci/%s" % device["mapping"], ["Mapping.Use"])
        perms.check(authuser, "/vms/%s" % vmid, ["VM.Config.HWType"])
    else:
        raise die("either 'host' or 'mapping' must be set.")
    if device.get("romfile") is not None and romfile_root_only(release):
        raise param_exc({opt: "only root@pam can set 'romfile' option"})


def romfile_root_only(release):
    """qemu-server 9.2.6 (commit 79782166, shipped with PVE 9.2) made `romfile` root@pam-only in `check_hostpci_perm`
    (qemu-server `src/PVE/API2/Qemu.pm`); None (unknown) means the current rule."""
    match = re.match(r"^(\d+)\.(\d+)", str(release or ""))
    return not match or (int(match.group(1)), int(match.group(2))) >= (9, 2)


def check_mapping_access(perms, authuser, conf):
    """Cloning a VM with raw PCI devices is root-only; mapped devices need Mapping.Use.

    Follows qemu-server `src/PVE/QemuServer.pm` (`check_mapping_access`, called by `clone_vm` in `API2/Qemu.pm`).
    """
    if authuser == "root@pam":
        return
    for key in sorted(conf):
        if not re.match(r"^hostpci\d+$", key):
            continue
        device = parse_hostpci(conf[key])
        if device.get("host"):
            raise die("only root can set '%s' config for non-mapped devices" % key)
        if device.get("mapping"):
            perms.check(authuser, "/mapping/pci/%s" % device["mapping"], ["Mapping.Use"])
        else:
            raise die("either 'host' or 'mapping' must be set.")


# --------------------------------------------------------------------------------------------------
# Access control: privileges, roles, ACL evaluation
# --------------------------------------------------------------------------------------------------

# pve-access-control src/PVE/AccessControl.pm, $privgroups (category -> root/admin/user/audit privileges)
PRIVGROUPS = {
    "VM": {
        "root": [],
        "admin": ["VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType",
                  "VM.Config.Options", "VM.Allocate", "VM.Clone", "VM.GuestAgent.Unrestricted", "VM.Migrate", "VM.Replicate",
                  "VM.Snapshot", "VM.Snapshot.Rollback"],
        "user": ["VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.GuestAgent.FileRead",
                 "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite", "VM.PowerMgmt"],
        "audit": ["VM.Audit", "VM.GuestAgent.Audit"],
    },
    "Sys": {"root": ["Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"], "admin": ["Sys.Console", "Sys.Syslog"],
            "user": [], "audit": ["Sys.Audit"]},
    "Datastore": {"root": [], "admin": ["Datastore.Allocate", "Datastore.AllocateTemplate"], "user": ["Datastore.AllocateSpace"],
                  "audit": ["Datastore.Audit"]},
    "SDN": {"root": [], "admin": ["SDN.Allocate", "SDN.Audit"], "user": ["SDN.Use"], "audit": ["SDN.Audit"]},
    "User": {"root": ["Realm.Allocate"], "admin": ["User.Modify", "Group.Allocate", "Realm.AllocateUser"], "user": [], "audit": []},
    "Pool": {"root": [], "admin": ["Pool.Allocate"], "user": ["Pool.Audit"], "audit": ["Pool.Audit"]},
    "Mapping": {"root": [], "admin": ["Mapping.Modify"], "user": ["Mapping.Use"], "audit": ["Mapping.Audit"]},
}


def builtin_roles():
    """The predefined roles: Administrator (all), NoAccess, PVE<Cat>Admin, PVE<Cat>User, PVEAdmin, PVEAuditor,
    PVETemplateUser; Mapping.Modify is taken out of PVEAdmin.

    Follows pve-access-control `src/PVE/AccessControl.pm` (`create_roles`).
    """
    valid = {"Permissions.Modify"}
    roles = {"NoAccess": set(), "PVEAdmin": set(), "PVEAuditor": set()}
    for cat, groups in PRIVGROUPS.items():
        for level in ("root", "admin", "user", "audit"):
            valid.update(groups[level])
        admin = set(groups["admin"]) | set(groups["user"]) | set(groups["audit"])
        roles.setdefault("PVE%sAdmin" % cat, set()).update(admin)
        roles["PVEAdmin"].update(admin)
        if groups["user"]:
            roles["PVE%sUser" % cat] = set(groups["user"]) | set(groups["audit"])
        roles["PVEAuditor"].update(groups["audit"])
    roles["PVEAdmin"].discard("Mapping.Modify")
    roles["PVETemplateUser"] = {"VM.Clone", "VM.Audit"}
    roles["Administrator"] = set(valid)
    return roles


ALL_PRIVILEGES = builtin_roles()["Administrator"]


class Permissions:
    """Privilege evaluation over users, tokens, groups and ACL entries kept in the simulator state."""

    def __init__(self, access):
        self.access = access
        self.roles = builtin_roles()
        for name, privs in (access.get("roles") or {}).items():
            self.roles[name] = set(privs)

    def _roles_on_path(self, ugid_matches, path):
        """Roles of a user (or token) on `path`: walk from `/` down; a more specific ACL entry replaces what was
        inherited; an entry applies to its own path always and below only with propagate. User entries win
        over group entries on the same path.

        Follows pve-access-control `src/PVE/AccessControl.pm` (`roles`).
        """
        roles = {}
        components = [""] if path == "/" else path.rstrip("/").split("/")
        acl = self.access.get("acl") or []
        for idx in range(len(components)):
            current = "/" + "/".join(components[1:idx + 1])
            final = idx == len(components) - 1
            for kind in ("user", "group"):
                new = {}
                for entry in acl:
                    entry_path = entry.get("path", "/")
                    if (entry_path.rstrip("/") or "/") != current:
                        continue
                    if not ugid_matches(entry.get("ugid", ""), kind):
                        continue
                    propagate = 1 if parse_boolean(entry.get("propagate", 1)) else 0
                    if final or propagate:
                        new[entry["roleid"]] = propagate
                if new:
                    roles = new
                    break
        return roles

    def _privs_for(self, ident, path):
        """`{privilege: propagate}` from the roles on `path`: a privilege propagates when any role giving it does."""
        roles = self._roles_on_path(lambda ugid, kind: self._match(ident, ugid, kind), path)
        if "NoAccess" in roles:
            return {}
        privs = {}
        for role, propagate in roles.items():
            for priv in self.roles.get(role, set()):
                privs[priv] = 1 if privs.get(priv) or parse_boolean(propagate) else 0
        return privs

    def _match(self, ident, ugid, kind):
        if kind == "user":
            return ugid == ident
        if "!" in ident or not ugid.startswith("@"):
            return False
        user = self.access.get("users", {}).get(ident, {})
        return ugid[1:] in (user.get("groups") or [])

    def privileges(self, ident, path):
        """`{privilege: propagate bit}` of `ident` on `path`, as `GET /access/permissions` reports it: a listed
        privilege is granted whatever its value; the value only says whether the ACL entry giving it propagates.
        root@pam has all with 1; a token without privilege separation has its user's; with privsep the
        privileges both have, propagating only when both do.

        Follows pve-access-control `src/PVE/RPCEnvironment.pm` (`permissions`, `$compile_acl_path`).
        """
        if ident == "root@pam":
            return {p: 1 for p in ALL_PRIVILEGES}
        if "!" in ident:
            user, token = ident.split("!", 1)
            info = self.access.get("users", {}).get(user, {}).get("tokens", {}).get(token)
            if info is None:
                return {}
            user_privs = self.privileges(user, path)
            if not parse_boolean(info.get("privsep", 1)):
                return user_privs
            own = self._privs_for(ident, path)
            return {p: 1 if own[p] and user_privs[p] else 0 for p in own if p in user_privs}
        return self._privs_for(ident, path)

    def permissions(self, ident, path):
        """The set of privileges `ident` has on `path` (the keys of `privileges`)."""
        return set(self.privileges(ident, path))

    def check(self, ident, path, privs, any_of=False, noerr=False):
        """Raise "Permission check failed (<path>, <priv>)" (or "<path>, a|b" with any_of) when missing.

        Follows pve-access-control `src/PVE/RPCEnvironment.pm` (`check`, `check_any`).
        """
        have = self.permissions(ident, path)
        if any_of:
            if any(p in have for p in privs):
                return True
            if noerr:
                return False
            raise perm_exc("%s, %s" % (path, "|".join(privs)))
        for priv in privs:
            if priv not in have:
                if noerr:
                    return False
                raise perm_exc("%s, %s" % (path, priv))
        return True


# --------------------------------------------------------------------------------------------------
# Pending changes
# --------------------------------------------------------------------------------------------------


def parse_pending_delete(text):
    """`delete` in [PENDING]: keys separated by `,`/`;`/spaces, `!` prefix = force.

    Follows pve-guest-common `src/PVE/AbstractConfig.pm` (`parse_pending_delete`).
    """
    res = {}
    for entry in re.split(r"[,;\s]+", (text or "").strip()):
        if not entry:
            continue
        force = entry.startswith("!")
        res[entry.lstrip("!")] = 1 if force else 0
    return res


def print_pending_delete(delete_hash):
    """Sorted, comma-joined, force entries with `!` (pve-guest-common `src/PVE/AbstractConfig.pm`, `print_pending_delete`)."""
    return ",".join(("!" if delete_hash[k] else "") + k for k in sorted(delete_hash))


def add_to_pending_delete(pending, key, force=False):
    """Mark `key` for deletion (pve-guest-common `src/PVE/AbstractConfig.pm`, `add_to_pending_delete`)."""
    delete = parse_pending_delete(pending.get("delete"))
    delete[key] = 1 if force else 0
    pending["delete"] = print_pending_delete(delete)


def remove_from_pending_delete(pending, key):
    """Unmark `key` (pve-guest-common `src/PVE/AbstractConfig.pm`, `remove_from_pending_delete`)."""
    delete = parse_pending_delete(pending.get("delete"))
    if key not in delete:
        return
    del delete[key]
    if delete:
        pending["delete"] = print_pending_delete(delete)
    else:
        pending.pop("delete", None)


def cleanup_pending(conf, pending):
    """Drop pending values equal to the current ones and deletions of keys that are not set.

    Follows pve-guest-common `src/PVE/AbstractConfig.pm` (`cleanup_pending`).
    """
    changes = False
    for key in list(pending):
        if key == "delete":
            continue
        if key in conf and str(pending[key]) == str(conf[key]):
            del pending[key]
            changes = True
    delete = parse_pending_delete(pending.get("delete"))
    kept = {k: v for k, v in delete.items() if k in conf}
    if len(kept) != len(delete):
        changes = True
    if kept:
        pending["delete"] = print_pending_delete(kept)
    else:
        pending.pop("delete", None)
    return changes


def config_with_pending(conf, pending, current=False):
    """The config as GET /config returns it: pending values applied and pending deletions removed, unless `current`.

    Follows pve-guest-common `src/PVE/AbstractConfig.pm` (`load_current_config`).
    """
    res = dict(conf)
    if not current:
        for key, value in pending.items():
            if key != "delete":
                res[key] = value
        for key in parse_pending_delete(pending.get("delete")):
            res.pop(key, None)
    return res


def pending_array(conf, pending):
    """One item per key with `value`, `pending`, `delete` (1, or 2 for force).

    Follows pve-guest-common `src/PVE/GuestHelpers.pm` (`config_with_pending_array`).
    """
    delete = parse_pending_delete(pending.get("delete"))
    items = []
    for key in sorted(conf):
        item = {"key": key, "value": conf[key]}
        if key in pending:
            item["pending"] = pending[key]
        if key in delete:
            item["delete"] = 2 if delete[key] else 1
        items.append(item)
    for key in sorted(pending):
        if key == "delete" or key in conf:
            continue
        items.append({"key": key, "pending": pending[key]})
    for key in sorted(delete):
        if key not in conf:
            items.append({"key": key, "delete": 2 if delete[key] else 1})
    return items


# qemu-server src/PVE/QemuServer.pm, $fast_plug_option (+ every cloud-init option)
FAST_PLUG_OPTIONS = {"description", "hookscript", "lock", "migrate_downtime", "migrate_speed", "name", "onboot", "protection",
                     "shares", "startup", "tags", "vmstatestorage"} | CLOUDINIT_OPTIONS


def hotplug_decision(key, conf, deleting=False):
    """Whether a pending change to `key` takes effect at once on a running VM ('apply') or stays pending ('skip').

    Follows qemu-server `src/PVE/QemuServer.pm` (`vmconfig_hotplug_pending`): fast-plug options (name, description,
    onboot, cloud-init keys, …) always apply; with the default `hotplug` (network, disk, usb) `netN` and disks
    apply, except `efidisk0`/`tpmstate0` (and deleting ide/sata drives); `cpuunits`, `cpulimit` and `agent` apply;
    cores/memory need cpu/memory hotplug; everything else — `machine`, `bios`, `hostpciN`, `vga`, `args`, … —
    is not hot-pluggable and stays pending until the next start.
    """
    hotplug = str(conf.get("hotplug", "network,disk,usb"))
    if hotplug == "1":
        features = {"network", "disk", "usb"}
    elif hotplug == "0":
        features = set()
    else:
        features = set(hotplug.split(","))
    if key in FAST_PLUG_OPTIONS:
        return "apply"
    if re.match(r"^net\d+$", key):
        return "apply" if (features & {"network"} or not deleting) else "skip"
    if is_valid_drivename(key):
        if key in ("efidisk0", "tpmstate0"):
            return "skip"
        if deleting and re.match(r"^(ide|sata)\d+$", key):
            return "skip"
        return "apply" if "disk" in features else "skip"
    if key in ("cpuunits", "cpulimit", "agent"):
        return "apply"
    if key in ("vcpus",):
        return "apply" if "cpu" in features else "skip"
    if key == "memory":
        return "apply" if "memory" in features else "skip"
    return "skip"


def drive_is_cdrom(drive):
    """A drive with `media=cdrom` or the file `none`/`cdrom` (qemu-server `QemuServer/Drive.pm`, `drive_is_cdrom`)."""
    return drive.get("media") == "cdrom" or drive.get("file") in ("none", "cdrom")


# --------------------------------------------------------------------------------------------------
# Start-time checks for PCI passthrough
# --------------------------------------------------------------------------------------------------


def lspci_filter(devices, pci_id):
    """Devices whose address starts with `pci_id` (the `0000:` domain optional), so `01:00` matches all functions.

    Follows pve-common `src/PVE/SysFSTools.pm` (`lspci` with a string filter: `m/^(0000:)?\\Q$filter\\E/`).
    """
    res = []
    for dev in devices:
        addr = dev["id"]
        if addr.startswith(pci_id) or (addr.startswith("0000:") and addr[5:].startswith(pci_id)):
            res.append(dev)
    return res


def hex_strip(value):
    """Drop `0x` prefixes for comparisons (pve-guest-common `src/PVE/Mapping/PCI.pm`, `assert_valid`)."""
    return str(value).replace("0x", "") if value is not None else None


def mapping_assert_valid(name, entry, mapping_cfg, devices):
    """Check a mapping's node entry against the live devices: for every path (a path without function means
    `.0`) the device must exist, and `id`, `subsystem-id`, `iommugroup` (first path only) and — with the cluster
    entry — the `mdev` capability must match; a property the hardware has but the mapping lacks fails with
    "missing expected property", one the hardware lacks with "unexpected property", a different value with
    "'<prop>' does not match for '<name>' (<expected> != <configured>)".

    Follows pve-guest-common `src/PVE/Mapping/PCI.pm` (`assert_valid`).
    """
    for idx, path in enumerate(str(entry.get("path", "")).split(";")):
        if not path:
            continue
        if not re.search(r"\.[a-f0-9]$", path, re.I):
            path = path + ".0"
        full = path if re.match(r"^[a-f0-9]{4,}:", path) else "0000:" + path
        info = next((d for d in devices if d["id"] == full), None)
        if info is None:
            raise die("pci device '%s' not found" % path)
        expected = {
            "id": "%s:%s" % (hex_strip(info["vendor"]), hex_strip(info["device"])),
            "iommugroup": info.get("iommugroup") if info.get("iommugroup", -1) != -1 else None,
            "subsystem-id": None,
        }
        if info.get("subsystem_vendor") is not None and info.get("subsystem_device") is not None:
            expected["subsystem-id"] = "%s:%s" % (hex_strip(info["subsystem_vendor"]), hex_strip(info["subsystem_device"]))
        configured = {k: entry.get(k) for k in ("id", "iommugroup", "subsystem-id")}
        if mapping_cfg is not None:
            expected["mdev"] = 1 if info.get("mdev") else 0
            configured["mdev"] = 1 if parse_boolean(mapping_cfg.get("mdev", 0)) else 0
        for prop in sorted(expected):
            if prop == "iommugroup" and idx > 0:
                continue
            exp, conf = expected[prop], configured[prop]
            if exp is None and conf is None:
                continue
            if exp is not None and conf is None:
                raise die("missing expected property '%s' for device '%s'" % (prop, path))
            if exp is None and conf is not None:
                raise die("unexpected property '%s' configured for device '%s'" % (prop, path))
            exp_s, conf_s = hex_strip(exp), hex_strip(conf)
            if str(exp_s) != str(conf_s):
                raise die("'%s' does not match for '%s' (%s != %s)" % (prop, name, exp_s, conf_s))


def parse_mapping_entry(text):
    """Parse one `map` entry `node=…,path=…,id=…[,subsystem-id=…][,iommugroup=…][,description=…]`.

    Follows pve-guest-common `src/PVE/Mapping/PCI.pm` (`$map_fmt`).
    """
    fmt = {
        "node": {"pattern": r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"},
        "id": {"pattern": r"[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}"},
        "subsystem-id": {"pattern": r"[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}"},
        "path": {"pattern": r"(?:[a-f0-9]{4,}:[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?;)*[a-f0-9]{4,}:[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?"},
        "iommugroup": {"type": "integer"},
        "description": {},
    }
    entry = parse_property_string(text, fmt)
    for required in ("node", "id", "path"):
        if required not in entry:
            raise FormatError("format error\n%s: property is missing and it is not optional" % required)
    if "iommugroup" in entry:
        entry["iommugroup"] = int(entry["iommugroup"])
    return entry


def resolve_hostpci_devices(vmid, conf, node_devices, mappings, node):
    """Parse every `hostpciN` for a start: resolve `mapping=` through the cluster mapping for this node (each entry
    checked with `mapping_assert_valid`, failures as "PCI device mapping invalid (hardware probably changed): …"),
    look every id up on the node ("no PCI device found for '<id>'"), refuse `pcie=1` without q35 (the die text has
    no newline, so Perl appends its location), and apply the legacy-igd rules.

    Follows qemu-server `src/PVE/QemuServer/PCI.pm` (`parse_hostpci`, `parse_hostpci_devices`).
    Returns {opt: {"alternatives": [[device, …], …], "parsed": {...}}}.
    """
    q35 = machine_is_q35(conf)
    legacy_igd = False
    result = {}
    for idx in range(MAX_HOSTPCI_DEVICES):
        opt = "hostpci%d" % idx
        if not conf.get(opt):
            continue
        parsed = parse_hostpci(conf[opt])
        host, mapping = parsed.get("host"), parsed.get("mapping")
        if host and mapping:
            raise die("Cannot set both 'host' and 'mapping'.")
        alternatives = []
        if mapping:
            cfg = mappings.get(mapping)
            entries = []
            for text in (cfg or {}).get("map", []):
                try:
                    ent = parse_mapping_entry(text)
                except FormatError:
                    continue
                if ent["node"] == node:
                    entries.append(ent)
            if not entries:
                raise die("PCI device mapping not found for '%s'" % mapping)
            for ent in entries:
                try:
                    mapping_assert_valid(mapping, ent, cfg, node_devices)
                except ApiError as exc:
                    raise die("PCI device mapping invalid (hardware probably changed): %s" % exc.message) from exc
                alternatives.append(ent["path"].split(";"))
        elif host:
            alternatives.append(host.split(";"))
        else:
            raise die("Either 'host' or 'mapping' must be set.")
        resolved = []
        for alternative in alternatives:
            ids = []
            for pci_id in alternative:
                found = lspci_filter(node_devices, pci_id)
                if not found:
                    raise die("no PCI device found for '%s'" % pci_id)
                ids.extend(found)
            if len(ids) > 1 and parsed.get("mdev"):
                raise die("cannot use mediated device with multifunction device")
            resolved.append(ids)
        if not q35 and parse_boolean(parsed.get("pcie", 0)):
            raise die("q35 machine model is not enabled at /usr/share/perl5/PVE/QemuServer/PCI.pm line 510.")
        if parse_boolean(parsed.get("legacy-igd", 0)):
            check_legacy_igd(conf, parsed, resolved, q35, legacy_igd)
            legacy_igd = True
        result[opt] = {"alternatives": resolved, "parsed": parsed}
    return result


def check_legacy_igd(conf, parsed, resolved, q35, already):
    """legacy-igd: one device only, `vga: none`, rombar on, no x-vga, no mdev, not q35, single function, 00:02.0.

    Follows qemu-server `src/PVE/QemuServer/PCI.pm` (`parse_hostpci_devices`).
    """
    if already:
        raise die("only one device can be assigned in legacy-igd mode")
    if conf.get("vga") != "none":
        raise die("legacy IGD assignment requires VGA mode to be 'none'")
    if parsed.get("rombar") is not None and not parse_boolean(parsed["rombar"]):
        raise die("legacy IGD assignment requires rombar to be enabled")
    if parse_boolean(parsed.get("x-vga", 0)):
        raise die("legacy IGD assignment is not compatible with x-vga")
    if parsed.get("mdev"):
        raise die("legacy IGD assignment is not compatible with mdev")
    if q35:
        raise die("legacy IGD assignment is not compatible with q35")
    if len(resolved[0]) > 1:
        raise die("legacy IGD assignment is not compatible with multifunction devices")
    if len(resolved) > 1:
        raise die("legacy IGD assignment is not compatible with alternate devices")
    if not resolved[0][0]["id"].endswith("02.0"):
        raise die("legacy IGD assignment only works for devices on host bus 00:02.0")


def choose_and_reserve(vmid, devices, reservations):
    """Pick one free alternative per device and reserve its ids; a device held by another running VM fails with
    "PCI device '<id>' already in use by VMID '<vmid>'"; the same device twice in one VM fails with
    "device '<id>' assigned more than once"; no free alternative: "could not find a free device for 'hostpciN'".

    Follows qemu-server `src/PVE/QemuServer/PCI.pm` (`choose_hostpci_devices`, `reserve_pci_usage`).
    `reservations` maps PCI id -> vmid of running VMs. Returns the list of ids to reserve.
    """
    used = set()
    chosen = []
    for idx in range(MAX_HOSTPCI_DEVICES):
        opt = "hostpci%d" % idx
        if opt not in devices:
            continue
        alternatives = devices[opt]["alternatives"]
        if devices[opt]["parsed"].get("mdev"):
            continue
        if len(alternatives) == 1:
            ids = [d["id"] for d in alternatives[0]]
            for pci_id in ids:
                if pci_id in used:
                    raise die("device '%s' assigned more than once" % pci_id)
                owner = reservations.get(pci_id)
                if owner is not None and str(owner) != str(vmid):
                    raise die("PCI device '%s' already in use by VMID '%s'" % (pci_id, owner))
                used.add(pci_id)
            chosen.extend(ids)
            continue
        found = False
        for alternative in alternatives:
            ids = [d["id"] for d in alternative]
            if any(i in used for i in ids):
                continue
            if any(reservations.get(i) is not None and str(reservations[i]) != str(vmid) for i in ids):
                continue
            used.update(ids)
            chosen.extend(ids)
            found = True
            break
        if not found:
            raise die("could not find a free device for '%s'" % opt)
    return chosen


def check_iommu_support(node_state):
    """Passthrough needs an IOMMU: "cannot prepare PCI pass-through, IOMMU not present".

    Follows qemu-server `src/PVE/QemuServer/PCI.pm` (`prepare_pci_device`) and pve-common
    `src/PVE/SysFSTools.pm` (`check_iommu_support`: /sys/class/iommu/ populated).
    """
    if not node_state.get("iommu_present", True):
        raise die("cannot prepare PCI pass-through, IOMMU not present")


# --------------------------------------------------------------------------------------------------
# Hardware listing and configuration digests
# --------------------------------------------------------------------------------------------------

DEFAULT_PCI_CLASS_BLACKLIST = "05;06;0b"


def hardware_pci_list(devices, blacklist, verbose):
    """List node PCI devices: classes whose `0x…` class starts with a blacklisted prefix are left out (default
    "05;06;0b"); non-verbose rows carry id, class, vendor, device, iommugroup (-1 without IOMMU) and mdev;
    verbose adds subsystem ids and names.

    Follows pve-manager `PVE/API2/Hardware/PCI.pm` (`pci_scan`) and pve-common `src/PVE/SysFSTools.pm` (`lspci`).
    """
    prefixes = [p for p in re.split(r"[,;\s]+", blacklist if blacklist is not None else DEFAULT_PCI_CLASS_BLACKLIST) if p]
    rows = []
    for dev in sorted(devices, key=lambda d: d["id"]):
        if any(str(dev["class"]).startswith("0x" + p) for p in prefixes):
            continue
        row = {"id": dev["id"], "class": dev["class"], "vendor": dev["vendor"], "device": dev["device"],
               "iommugroup": dev.get("iommugroup", -1)}
        if dev.get("mdev"):
            row["mdev"] = 1
        if verbose:
            for key in ("vendor_name", "device_name", "subsystem_vendor", "subsystem_device", "subsystem_vendor_name",
                        "subsystem_device_name"):
                if dev.get(key) is not None:
                    row[key] = dev[key]
        rows.append(row)
    return rows


def render_vm_config(conf, pending):
    """Render a VM config the way /etc/pve/qemu-server/<vmid>.conf looks (description as `#` lines, `key: value`
    lines, then a `[PENDING]` section), for the SHA1 `digest`.

    Follows qemu-server `src/PVE/QemuServer.pm` (`write_vm_config`) and pve-guest-common `AbstractConfig.pm`
    (`load_config` returns the SHA1 of the file as `digest`).
    """
    lines = []
    if conf.get("description"):
        lines.extend("#" + line for line in str(conf["description"]).split("\n"))
    for key in sorted(conf):
        if key in ("description", "digest"):
            continue
        lines.append("%s: %s" % (key, conf[key]))
    if pending:
        lines.append("")
        lines.append("[PENDING]")
        for key in sorted(pending):
            lines.append("%s: %s" % (key, pending[key]))
    return "\n".join(lines) + "\n"


def sha1_hex(text):
    """SHA1 hex digest, as PVE's config digests (pve-common `src/PVE/Tools.pm`, `Digest::SHA::sha1_hex` of the file)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def render_mapping_config(ids):
    """Render /etc/pve/mapping/pci.cfg (section per id, then `\\tkey value` lines, `map` once per entry) for its digest.

    Follows pve-guest-common `src/PVE/Mapping/PCI.pm` (SectionConfig with `format_section_header`: "<id>").
    """
    out = []
    for mid in sorted(ids):
        out.append(mid)
        entry = ids[mid]
        for key in sorted(entry):
            if key in ("type",):
                continue
            values = entry[key] if isinstance(entry[key], list) else [entry[key]]
            for value in values:
                out.append("\t%s %s" % (key, value))
        out.append("")
    return "\n".join(out)


def volume_owner(volname):
    """The VMID owning a volume: the id of its last `vm-<id>-…`/`base-<id>-…` part (a linked clone
    `base-9000-disk-0/vm-121-disk-0` belongs to 121), else None.

    Follows pve-storage `src/PVE/Storage/*Plugin.pm` (`parse_volname`: `[base-<id>-…/](base|vm)-<id>-…`).
    """
    found = re.findall(r"(?:^|/)(?:vm|base|subvol)-(\d+)-", volname)
    return int(found[-1]) if found else None


# ----------------------------------------------------------------------------------------------
# QEMU machine versions and mediated device types
# ----------------------------------------------------------------------------------------------

DEFAULT_QEMU_VERSION = "9.2.0"
# i915 GVT-g types of a Coffee Lake iGPU (pve-common SysFSTools.pm get_mdev_types reads mdev_supported_types/*)
GVTG_TYPES = (("i915-GVTg_V5_4", 1, "low_gm_size: 128MB"), ("i915-GVTg_V5_8", 2, "low_gm_size: 64MB"))


def qemu_machine_list(qemu_version):
    """Rows `{id, type, version}` for i440fx and q35 from 5.0 up to the node's QEMU major.minor, the newest also as
    `+pve1` (qemu-server `src/PVE/API2/Qemu/Machine.pm` lists the machines `qemu-system-x86_64 -machine help` prints,
    with the PVE revisions of `PVE::QemuServer::Machine`)."""
    major, minor = [int(x) for x in str(qemu_version).split(".")[:2]]
    rows = []
    for ver_major in range(5, major + 1):
        for ver_minor in range(0, 3):
            if (ver_major, ver_minor) > (major, minor):
                break
            version = "%d.%d" % (ver_major, ver_minor)
            rows.append({"id": "pc-i440fx-%s" % version, "type": "i440fx", "version": version})
            rows.append({"id": "pc-q35-%s" % version, "type": "q35", "version": version})
    newest = "%d.%d" % (major, minor)
    rows.append({"id": "pc-i440fx-%s+pve1" % newest, "type": "i440fx", "version": newest})
    rows.append({"id": "pc-q35-%s+pve1" % newest, "type": "q35", "version": newest})
    return rows


def check_machine_version(machine, qemu_version):
    """A pinned machine newer than the node's QEMU does not start: "Installed QEMU version '<v>' is too old to run machine
    type '<type>', please upgrade node '<node>'" (qemu-server `src/PVE/QemuServer.pm` `config_to_command`)."""
    mtype = parse_machine(machine).get("type", "") if machine else ""
    found = re.search(r"-(\d+)\.(\d+)", mtype or "")
    if not found:
        return
    major, minor = [int(x) for x in str(qemu_version).split(".")[:2]]
    if (int(found.group(1)), int(found.group(2))) > (major, minor):
        raise die("Installed QEMU version '%s' is too old to run machine type '%s', please upgrade node" % (qemu_version, mtype))


def mdev_types(pci_id, devices, mappings, node):
    """The mdev type rows of a device or of a mapping's entry for `node`; [] for a device without mdev support;
    "no such device" for an unknown id (pve-manager `PVE/API2/Hardware/PCI.pm` `mdevscan`)."""
    if pci_id in mappings:
        for text in mappings[pci_id].get("map", []):
            try:
                entry = parse_mapping_entry(text)
            except FormatError:
                continue
            if entry["node"] == node:
                pci_id = entry["path"].split(";")[0]
                break
        else:
            raise die("mapping '%s' has no entry for node '%s'" % (pci_id, node))
    full = pci_id if pci_id.count(":") == 2 else "0000:" + pci_id
    if "." not in full:
        full += ".0"
    row = next((d for d in devices if d["id"] == full), None)
    if row is None:
        raise die("no such device '%s'" % pci_id)
    if row.get("mdev_types") is not None:
        return [dict(t) for t in row["mdev_types"]]
    if not row.get("mdev"):
        return []
    return [{"type": name, "available": count, "description": text, "name": name} for name, count, text in GVTG_TYPES]
