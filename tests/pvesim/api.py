"""The simulated `/api2/json` endpoints."""

import copy
import random
import re
import time
import uuid

from . import cluster, rules
from .rules import ApiError, die, param_exc, perm_exc

NEW_DISK_RE = re.compile(r"^(([^/:\s]+):)?(\d+(\.\d+)?)$")
CLOUDINIT_RE = re.compile(r"^([^/:\s]+):cloudinit$")
VM_CONFIG_PERM_LIST = ["VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network",
                       "VM.Config.HWType", "VM.Config.Options", "VM.Config.Cloudinit"]
UNDEFINED = "property is not defined in schema and the schema does not allow additional properties"
MISSING = "property is missing and it is not optional"


def format_size(size):
    """Largest exact unit (T, G, M, K) or plain bytes (pve-common `src/PVE/JSONSchema.pm`, `format_size`)."""
    size = int(size)
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size and size % factor == 0:
            return "%d%s" % (size // factor, unit)
    return str(size)


def parse_size(text):
    """`<n>[KMGT]` (bytes without unit) to bytes (pve-common `src/PVE/JSONSchema.pm`, `parse_size`)."""
    match = re.match(r"^(\d+(?:\.\d+)?)([KMGT])?$", str(text))
    if not match:
        return None
    factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, None: 1}[match.group(2)]
    return int(float(match.group(1)) * factor)


def as_bool(value, default=0):
    """Boolean parameter value (pve-common `src/PVE/JSONSchema.pm`, `parse_boolean`)."""
    if value is None:
        return default
    parsed = rules.parse_boolean(value)
    return parsed if parsed is not None else default


class Ctx:
    """One request: authenticated identity, permissions and parameters."""

    def __init__(self, user, perms, params, token=False):
        self.user = user
        self.perms = perms
        self.params = params
        self.token = token

    def check(self, path, privs, any_of=False):
        """Raise a permission error unless the identity has `privs` on `path`."""
        return self.perms.check(self.user, path, privs, any_of=any_of)

    def can(self, path, privs, any_of=False):
        """Whether the identity has `privs` on `path`."""
        return self.perms.check(self.user, path, privs, any_of=any_of, noerr=True)


ROUTES = [
    ("GET", "/version", "version"),
    ("GET", "/nodes", "nodes_index"),
    ("GET", "/nodes/{node}/status", "node_status"),
    ("GET", "/cluster/resources", "cluster_resources"),
    ("GET", "/cluster/nextid", "cluster_nextid"),
    ("GET", "/access/permissions", "access_permissions"),
    ("POST", "/access/ticket", "access_ticket"),
    ("GET", "/nodes/{node}/qemu", "qemu_list"),
    ("POST", "/nodes/{node}/qemu", "qemu_create"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}", "qemu_destroy"),
    ("GET", "/nodes/{node}/qemu/{vmid}/config", "qemu_config_get"),
    ("POST", "/nodes/{node}/qemu/{vmid}/config", "qemu_config_post"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/config", "qemu_config_put"),
    ("GET", "/nodes/{node}/qemu/{vmid}/pending", "qemu_pending"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/resize", "qemu_resize"),
    ("POST", "/nodes/{node}/qemu/{vmid}/template", "qemu_template"),
    ("POST", "/nodes/{node}/qemu/{vmid}/clone", "qemu_clone"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current", "qemu_status_current"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/start", "qemu_start"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/stop", "qemu_stop"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown", "qemu_shutdown"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/reboot", "qemu_reboot"),
    ("POST", "/nodes/{node}/vzdump", "vzdump"),
    ("GET", "/nodes/{node}/storage", "storage_index"),
    ("GET", "/nodes/{node}/storage/{storage}/content", "storage_content"),
    ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}", "storage_content_delete"),
    ("GET", "/nodes/{node}/tasks", "tasks_list"),
    ("GET", "/nodes/{node}/tasks/{upid}/status", "task_status"),
    ("GET", "/nodes/{node}/tasks/{upid}/log", "task_log"),
    ("GET", "/nodes/{node}/hardware/pci", "hardware_pci"),
    ("GET", "/nodes/{node}/hardware/pci/{pciid}/mdev", "hardware_pci_mdev"),
    ("GET", "/nodes/{node}/capabilities/qemu/machines", "qemu_machines"),
    ("GET", "/cluster/mapping/pci", "mapping_list"),
    ("POST", "/cluster/mapping/pci", "mapping_create"),
    ("GET", "/cluster/mapping/pci/{id}", "mapping_get"),
    ("PUT", "/cluster/mapping/pci/{id}", "mapping_update"),
    ("DELETE", "/cluster/mapping/pci/{id}", "mapping_delete"),
]
ROUTES += cluster.ROUTES


def compile_routes():
    """(method, regex, template, handler name) for every route."""
    compiled = []
    for method, template, name in ROUTES:
        pattern = "^" + re.sub(r"\{([a-z_]+)\}", r"(?P<\1>[^/]+)", template) + "$"
        compiled.append((method, re.compile(pattern), template, name))
    return compiled


COMPILED_ROUTES = compile_routes()


def match_route(method, path):
    """Find the route for `method path`: (template, handler name, path params), or a path-only match, or None."""
    path_match = None
    for rmethod, regex, template, name in COMPILED_ROUTES:
        found = regex.match(path)
        if not found:
            continue
        if rmethod == method:
            return template, name, found.groupdict()
        path_match = template
    if path_match:
        return path_match, None, {}
    return None


class Api(cluster.ClusterApi):  # pylint: disable=too-many-public-methods
    """Handlers; each one gets a `Ctx` and the path parameters and returns the `data` of the response."""

    def __init__(self, state, tasks):
        self.state = state
        self.tasks = tasks

    # ----------------------------------------------------------------------------------------------
    # helpers
    # ----------------------------------------------------------------------------------------------

    @property
    def data(self):
        """The live state document."""
        return self.state.data

    def node_state(self, node):
        """The node record, or the error the API proxy gives for a name that is not a cluster node."""
        info = self.data["nodes"].get(node)
        if info is None:
            raise die("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known" % (node, node))
        if info.get("status") != "online":
            raise ApiError(595, "No route to host")
        return info

    def vm_record(self, node, vmid):
        """The VM on `node`, or "Configuration file … does not exist" (pve-guest-common `AbstractConfig.pm`, `load_config`)."""
        vm = self.data["vms"].get(str(vmid))
        if vm is None or vm["node"] != node:
            raise die("Configuration file 'nodes/%s/qemu-server/%s.conf' does not exist" % (node, vmid))
        return vm

    @staticmethod
    def vmid_param(value, name="vmid"):
        """Integer VMID 100..999999999 (pve-common `src/PVE/JSONSchema.pm`, standard option `pve-vmid`)."""
        err = rules.check_value(value, {"type": "integer", "minimum": 100, "maximum": 999999999})
        if err:
            raise param_exc({name: err})
        return int(value)

    @staticmethod
    def check_lock(vm):
        """Fail with "VM is locked (<lock>)" (pve-guest-common `src/PVE/AbstractConfig.pm`, `check_lock`)."""
        lock = vm["config"].get("lock")
        if lock:
            raise die("VM is locked (%s)" % lock)

    @staticmethod
    def digest(vm):
        """SHA1 of the rendered config file."""
        return rules.sha1_hex(rules.render_vm_config(vm["config"], vm["pending"]))

    def storage_cfg(self, node, sid):
        """A storage enabled on `node` (pve-storage `PVE/Storage.pm`, `storage_check_enabled`)."""
        scfg = self.data["storages"].get(sid)
        if scfg is None:
            raise die("storage '%s' does not exist" % sid)
        nodes = scfg.get("nodes")
        if nodes and node not in nodes:
            raise die("storage '%s' is not available on node '%s'" % (sid, node))
        if scfg.get("disable"):
            raise die("storage '%s' is disabled" % sid)
        return scfg

    def volumes_on(self, node, sid=None):
        """Volumes visible on `node` (shared storages everywhere, local ones per node)."""
        res = []
        for vol in self.data["volumes"]:
            if sid is not None and vol["storage"] != sid:
                continue
            scfg = self.data["storages"].get(vol["storage"], {})
            if scfg.get("shared") or vol.get("node") in (None, node):
                res.append(vol)
        return res

    def find_volume(self, node, volid):
        """The volume record for `volid` on `node`, or None."""
        sid = volid.split(":", 1)[0]
        for vol in self.volumes_on(node, sid):
            if vol["volid"] == volid:
                return vol
        return None

    def free_volume(self, node, volid):
        """Remove a volume from its storage (pve-storage `vdisk_free`)."""
        vol = self.find_volume(node, volid)
        if vol is not None:
            self.data["volumes"].remove(vol)
            return True
        return False

    def alloc_volume(self, node, sid, vmid, size, kind="disk", fmt=None, content="images"):
        """Allocate `vm-<vmid>-disk-<n>` (lowest free n) or `vm-<vmid>-cloudinit`; dir storages name it
        `<vmid>/vm-<vmid>-disk-<n>.<fmt>` with qcow2 as default format, lvmthin uses raw and rounds up to 4 MiB.

        Follows pve-storage `PVE/Storage/Plugin.pm` / `LvmThinPlugin.pm` (`alloc_image`, `find_free_diskname`).
        """
        scfg = self.storage_cfg(node, sid)
        if "images" not in scfg.get("content", []):
            raise die("storage '%s' does not support vm images" % sid)
        is_dir = scfg.get("type") in ("dir", "nfs", "cifs", "glusterfs", "btrfs")
        fmt = fmt or ("qcow2" if is_dir else "raw")
        if kind == "cloudinit":
            name = "vm-%s-cloudinit" % vmid
        else:
            taken = set()
            for vol in self.volumes_on(node, sid):
                found = re.search(r"(?:vm|base)-%s-disk-(\d+)" % vmid, vol["volid"])
                if found:
                    taken.add(int(found.group(1)))
            index = 0
            while index in taken:
                index += 1
            name = "vm-%s-disk-%d" % (vmid, index)
        if is_dir:
            volid = "%s:%s/%s.%s" % (sid, vmid, name, fmt)
        else:
            volid = "%s:%s" % (sid, name)
            fmt = "raw"
            size = max(4 << 20, ((int(size) + (4 << 20) - 1) // (4 << 20)) * (4 << 20))
        if self.find_volume(node, volid):
            raise die("volume '%s' already exists" % volid)
        vol = {"volid": volid, "storage": sid, "node": None if scfg.get("shared") else node, "vmid": int(vmid), "size": int(size),
               "format": fmt, "content": content, "ctime": int(time.time())}
        self.data["volumes"].append(vol)
        return vol

    def random_mac(self):
        """A random MAC under the datacenter `mac_prefix` (pve-common `src/PVE/Tools.pm`, `random_ether_addr`)."""
        prefix = self.data["settings"].get("mac_prefix", "BC:24:11").upper()
        parts = prefix.split(":")
        while len(parts) < 6:
            parts.append("%02X" % random.randint(0, 255))
        return ":".join(parts[:6])

    def add_random_macs(self, settings):
        """Give every `netN` without a MAC a random one (qemu-server `QemuServer/Network.pm`, `add_random_macs`)."""
        for key in list(settings):
            if re.match(r"^net\d+$", key):
                net = rules.parse_net(settings[key])
                if not net.get("macaddr"):
                    net["macaddr"] = self.random_mac()
                settings[key] = rules.print_net(net)

    def validate_config_params(self, params, allowed_extra):
        """Schema check of VM options: unknown keys and bad values give a 400 with per-parameter errors."""
        errors = {}
        for key in list(params):
            if key in allowed_extra:
                continue
            if not rules.option_exists(key):
                errors[key] = UNDEFINED
                continue
            value, err = rules.check_config_value(key, params[key])
            if err:
                errors[key] = err
            else:
                params[key] = value
        if errors:
            raise param_exc(errors)

    def check_storage_access(self, ctx, vmid, settings, default_storage=None):
        """Allocating `STORAGE:SIZE` needs Datastore.AllocateSpace on /storage/<id>; raw paths are root-only.

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`$check_storage_access`).
        """
        for key, value in settings.items():
            if not rules.is_valid_drivename(key):
                continue
            drive = rules.parse_drive(value)
            volid = drive.get("file", "")
            if rules.drive_is_cdrom(drive) and volid in ("none", "cdrom"):
                continue
            match = NEW_DISK_RE.match(volid) or CLOUDINIT_RE.match(volid)
            if match:
                sid = match.group(2) if NEW_DISK_RE.match(volid) else match.group(1)
                sid = sid or default_storage
                if not sid:
                    raise param_exc({key: "no storage ID specified (and no default storage)"})
                ctx.check("/storage/%s" % sid, ["Datastore.AllocateSpace"])
            elif volid.startswith("/"):
                if ctx.user != "root@pam":
                    raise die("Only root can pass arbitrary filesystem paths.")
            elif vmid is not None and rules.volume_owner(volid.split(":", 1)[-1]) != int(vmid):
                ctx.check("/storage/%s" % volid.split(":", 1)[0], ["Datastore.Audit", "Datastore.AllocateSpace"], any_of=True)

    def create_disks(self, task, node, vmid, settings, default_storage=None):
        """Allocate new disks (`STORAGE:SIZE_GiB`), the EFI vars disk (`efidisk0: STORAGE:1`, size from the
        firmware vars file, not the number; lvmthin rounds to 4M; `pre-enrolled-keys=1` records `ms-cert=2023k`),
        cloud-init drives (`STORAGE:cloudinit`), and check that referenced volumes exist ("volume <id> does not
        exist"). Returns (new drive values, volids created).

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`create_disks`) and `src/PVE/QemuServer/OVMF.pm`
        (`create_efidisk`).
        """
        values = {}
        created = []
        for key in sorted(settings):
            if not rules.is_valid_drivename(key):
                continue
            drive = rules.parse_drive(settings[key])
            file_ = drive.get("file", "")
            new = NEW_DISK_RE.match(file_)
            cloud = CLOUDINIT_RE.match(file_)
            if rules.drive_is_cdrom(drive) and file_ in ("none", "cdrom"):
                values[key] = rules.print_drive(drive)
            elif new:
                sid = new.group(2) or default_storage
                fmt = drive.pop("format", None)
                if key == "efidisk0":
                    scfg = self.storage_cfg(node, sid)
                    size = 540672 if drive.get("efitype") == "4m" else 131072
                    if scfg.get("type") not in ("dir", "nfs", "cifs", "btrfs"):
                        size = 4 << 20
                    if (rules.parse_boolean(drive.get("pre-enrolled-keys", 0)) and "ms-cert" not in drive
                            and self.data["settings"].get("pve_version") != "8.2"):  # ms-cert: qemu-server 9.x
                        drive["ms-cert"] = "2023k"
                elif key == "tpmstate0":
                    size = 4 << 20
                else:
                    size = int(float(new.group(3)) * (1 << 30))
                vol = self.alloc_volume(node, sid, vmid, size, fmt=fmt)
                created.append(vol["volid"])
                drive["file"] = vol["volid"]
                drive["size"] = format_size(vol["size"])
                values[key] = rules.print_drive(drive)
                if task is not None:
                    task.log("%s: successfully created disk '%s'" % (key, values[key]))
            elif cloud:
                vol = self.alloc_volume(node, cloud.group(1), vmid, 4 << 20, kind="cloudinit")
                created.append(vol["volid"])
                drive["file"] = vol["volid"]
                drive["media"] = "cdrom"
                values[key] = rules.print_drive(drive)
            elif file_.startswith("/") or rules.drive_is_cdrom(drive):
                values[key] = rules.print_drive(drive)
            else:
                vol = self.find_volume(node, file_)
                if vol is None:
                    raise die("volume %s does not exist" % file_)
                drive["size"] = format_size(vol["size"])
                drive.pop("format", None)
                values[key] = rules.print_drive(drive)
        return values, created

    @staticmethod
    def register_unused(conf, volid):
        """Keep a replaced or detached volume as `unusedN` (qemu-server `src/PVE/QemuServer.pm`,
        `vmconfig_register_unused_drive` / `add_unused_volume`: first free N, no duplicates)."""
        for key, value in conf.items():
            if key.startswith("unused") and rules.parse_drive(value).get("file") == volid:
                return key
        index = 0
        while "unused%d" % index in conf:
            index += 1
        conf["unused%d" % index] = volid
        return "unused%d" % index

    def detach_or_free(self, node, conf, key, force):
        """Deleting a drive: cdroms just go, a cloud-init volume is freed, other volumes become `unusedN` unless
        `force` frees them (qemu-server `src/PVE/QemuServer.pm`, `vmconfig_delete_or_detach_drive`)."""
        drive = rules.parse_drive(conf[key])
        volid = drive.get("file", "")
        if rules.drive_is_cdrom(drive) and not volid.endswith("-cloudinit"):
            return
        if volid.endswith("-cloudinit") or force:
            self.free_volume(node, volid)
        elif ":" in volid:
            self.register_unused(conf, volid)

    def replace_drive(self, node, conf, key, new_value):
        """An existing drive replaced by another volume keeps the old one as `unusedN` (cloud-init freed).

        Follows qemu-server `src/PVE/QemuServer.pm` (`vmconfig_apply_pending`: `vmconfig_register_unused_drive`).
        """
        if key not in conf:
            return
        old = rules.parse_drive(conf[key])
        new = rules.parse_drive(new_value)
        if old.get("file") == new.get("file") or rules.drive_is_cdrom(old):
            return
        if old.get("file", "").endswith("-cloudinit"):
            self.free_volume(node, old["file"])
        elif ":" in old.get("file", ""):
            self.register_unused(conf, old["file"])

    def apply_pending(self, vm, task=None):
        """Apply all pending changes of a stopped VM: deletions first (drives detached to `unusedN`, or freed with
        force), then `cleanup_pending`, then every pending value replaces the current one.

        Follows qemu-server `src/PVE/QemuServer.pm` (`vmconfig_apply_pending`); called when a config change hits
        a stopped VM, by `vm_start` before the command line is built, and by `vm_stop_cleanup` after a stop.
        """
        conf, pending = vm["config"], vm["pending"]
        if not pending:
            return
        delete = rules.parse_pending_delete(pending.get("delete"))
        for key in sorted(delete):
            if key in conf and rules.is_valid_drivename(key):
                self.detach_or_free(vm["node"], conf, key, delete[key])
            rules.remove_from_pending_delete(pending, key)
            conf.pop(key, None)
        rules.cleanup_pending(conf, pending)
        for key in sorted(pending):
            if key == "delete":
                continue
            if rules.is_valid_drivename(key):
                self.replace_drive(vm["node"], conf, key, pending[key])
            conf[key] = pending.pop(key)
        if task is not None:
            task.log("applied pending changes")

    def hotplug_pending(self, vm, selection):
        """On a running VM apply what can be hot-plugged and leave the rest pending.

        Follows qemu-server `src/PVE/QemuServer.pm` (`vmconfig_hotplug_pending`; decisions in
        `rules.hotplug_decision`).
        """
        conf, pending = vm["config"], vm["pending"]
        for key in sorted(pending):
            if key == "delete" or key not in pending:
                continue
            fast = key in rules.FAST_PLUG_OPTIONS
            if not fast and key not in selection:
                continue
            if rules.hotplug_decision(key, conf) == "apply":
                if rules.is_valid_drivename(key):
                    self.replace_drive(vm["node"], conf, key, pending[key])
                conf[key] = pending.pop(key)
        delete = rules.parse_pending_delete(pending.get("delete"))
        for key in sorted(delete):
            if key not in selection:
                continue
            if rules.hotplug_decision(key, conf, deleting=True) == "apply":
                if key in conf and rules.is_valid_drivename(key):
                    self.detach_or_free(vm["node"], conf, key, delete[key])
                conf.pop(key, None)
                rules.remove_from_pending_delete(pending, key)

    # ----------------------------------------------------------------------------------------------
    # cluster, nodes, version, access
    # ----------------------------------------------------------------------------------------------

    def version(self, ctx, _path):
        """GET /version (pve-manager `PVE/API2.pm`, `version`)."""
        del ctx
        return dict(self.data["version"], console="xtermjs")

    def nodes_index(self, ctx, _path):
        """GET /nodes: one row per node; details only with Sys.Audit (pve-manager `PVE/API2/Nodes.pm`, `Nodeinfo`)."""
        rows = []
        for name in sorted(self.data["nodes"]):
            info = self.data["nodes"][name]
            row = {"node": name, "status": info.get("status", "online"), "type": "node", "id": "node/%s" % name, "level": ""}
            if ctx.can("/nodes/%s" % name, ["Sys.Audit"]):
                row.update({"maxcpu": info.get("maxcpu", 4), "maxmem": info.get("maxmem", 1 << 34), "cpu": 0.02,
                            "mem": info.get("maxmem", 1 << 34) // 4, "uptime": int(time.time()) - self.data["boot_time"]})
            rows.append(row)
        return rows

    def node_status(self, ctx, path):
        """GET /nodes/{node}/status (needs Sys.Audit on /nodes/{node})."""
        info = self.node_state(path["node"])
        ctx.check("/nodes/%s" % path["node"], ["Sys.Audit"])
        return {"uptime": int(time.time()) - self.data["boot_time"], "pveversion": "pve-manager/%s" % self.data["version"]["version"],
                "cpuinfo": {"cpus": info.get("maxcpu", 4), "model": "Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz"},
                "memory": {"total": info.get("maxmem", 1 << 34)}}

    def cluster_resources(self, ctx, _path):
        """GET /cluster/resources: nodes, VMs and storages the caller may see, optional `type` filter.

        Follows pve-manager `PVE/API2/Cluster.pm` (`resources`: VMs need VM.Audit, storages Datastore.Audit or
        Datastore.AllocateSpace, nodes Sys.Audit).
        """
        wanted = ctx.params.get("type")
        if wanted is not None and wanted not in ("vm", "storage", "node", "sdn"):
            raise param_exc({"type": "value '%s' does not have a value in the enumeration 'vm, storage, node, sdn'" % wanted})
        rows = []
        if wanted in (None, "vm"):
            for vmid in sorted(self.data["vms"], key=int):
                vm = self.data["vms"][vmid]
                if not ctx.can("/vms/%s" % vmid, ["VM.Audit"]):
                    continue
                rows.append(self.vm_row(vm, int(vmid), with_node=True))
        if wanted in (None, "node"):
            for name in sorted(self.data["nodes"]):
                if not ctx.can("/nodes/%s" % name, ["Sys.Audit"]):
                    continue
                info = self.data["nodes"][name]
                rows.append({"id": "node/%s" % name, "type": "node", "node": name, "status": info.get("status", "online"),
                             "maxcpu": info.get("maxcpu", 4), "maxmem": info.get("maxmem", 1 << 34), "level": ""})
        if wanted in (None, "storage"):
            for name in sorted(self.data["nodes"]):
                for sid in sorted(self.data["storages"]):
                    scfg = self.data["storages"][sid]
                    if scfg.get("nodes") and name not in scfg["nodes"]:
                        continue
                    if not ctx.can("/storage/%s" % sid, ["Datastore.Audit", "Datastore.AllocateSpace"], any_of=True):
                        continue
                    rows.append({"id": "storage/%s/%s" % (name, sid), "type": "storage", "storage": sid, "node": name,
                                 "status": "available", "plugintype": scfg.get("type"), "content": ",".join(scfg.get("content", [])),
                                 "shared": scfg.get("shared", 0)})
        return rows

    def vm_row(self, vm, vmid, with_node=False):
        """One VM as listed by /nodes/{node}/qemu and /cluster/resources."""
        conf = vm["config"]
        disk_total = 0
        for key, value in conf.items():
            if rules.is_valid_drivename(key):
                drive = rules.parse_drive(value)
                if not rules.drive_is_cdrom(drive):
                    disk_total += parse_size(drive.get("size", "0")) or 0
        mem = str(conf.get("memory", "512")).split(",", maxsplit=1)[0].replace("current=", "")
        row = {"vmid": vmid, "name": conf.get("name", "VM %s" % vmid), "status": vm["status"],
               "maxmem": int(mem) * (1 << 20) if mem.isdigit() else 512 << 20, "maxdisk": disk_total,
               "cpus": int(conf.get("cores", 1)) * int(conf.get("sockets", 1)),
               "uptime": int(time.time() - vm["started_at"]) if vm["status"] == "running" and vm.get("started_at") else 0}
        if vm["status"] == "running" and vm.get("pid"):
            row["pid"] = vm["pid"]
        if conf.get("template"):
            row["template"] = 1
        if conf.get("lock"):
            row["lock"] = conf["lock"]
        if conf.get("tags"):
            row["tags"] = conf["tags"]
        if with_node:
            row.update({"id": "qemu/%d" % vmid, "type": "qemu", "node": vm["node"], "template": 1 if conf.get("template") else 0})
        return row

    def cluster_nextid(self, ctx, _path):
        """GET /cluster/nextid: lowest free VMID from 100, or check a given one ("VM <id> already exists").

        Follows pve-manager `PVE/API2/Cluster.pm` (`nextid`).
        """
        wanted = ctx.params.get("vmid")
        if wanted is not None:
            vmid = self.vmid_param(wanted)
            if str(vmid) in self.data["vms"]:
                raise param_exc({"vmid": "VM %d already exists" % vmid})
            return str(vmid)
        vmid = 100
        while str(vmid) in self.data["vms"]:
            vmid += 1
        return str(vmid)

    def access_permissions(self, ctx, _path):
        """GET /access/permissions: the caller's (or `userid`'s) privileges per path, `{path: {privilege: propagate}}`
        ("Map of privilege => propagate boolean"); a path asked with `path` is answered even without privileges,
        the whole tree leaves out paths without any.

        Follows pve-access-control `src/PVE/API2/AccessControl.pm` (`permissions`) and `src/PVE/RPCEnvironment.pm`
        (`permissions`, `get_effective_permissions`).
        """
        userid = ctx.params.get("userid", ctx.user)
        if userid != ctx.user and not userid.startswith(ctx.user + "!"):
            ctx.check("/access", ["Sys.Audit"])
        paths = [ctx.params["path"]] if ctx.params.get("path") else ["/", "/vms", "/storage", "/nodes", "/mapping/pci", "/access"]
        for entry in self.data["access"].get("acl", []):
            if entry["path"] not in paths and not ctx.params.get("path"):
                paths.append(entry["path"])
        res = {}
        for path in paths:
            # value = propagate bit of the granting ACL entry (0 or 1), not a grant flag
            privs = ctx.perms.privileges(userid, path)
            if privs or ctx.params.get("path"):  # one path asked: answered even when empty, as Proxmox does
                res[path] = {p: privs[p] for p in sorted(privs)}
        return res

    def access_ticket(self, ctx, _path):  # handled by the server (needs no auth); kept for routing and counters
        """POST /access/ticket is answered by the HTTP layer."""
        raise die("internal: ticket handled by server %s" % ctx.user)

    # ----------------------------------------------------------------------------------------------
    # qemu
    # ----------------------------------------------------------------------------------------------

    def qemu_list(self, ctx, path):
        """GET /nodes/{node}/qemu: the node's VMs the caller has VM.Audit on (qemu-server `API2/Qemu.pm`, `vmlist`)."""
        self.node_state(path["node"])
        rows = []
        for vmid in sorted(self.data["vms"], key=int):
            vm = self.data["vms"][vmid]
            if vm["node"] != path["node"] or not ctx.can("/vms/%s" % vmid, ["VM.Audit"]):
                continue
            rows.append(self.vm_row(vm, int(vmid)))
        return rows

    def qemu_create(self, ctx, path):
        """POST /nodes/{node}/qemu: checks as `create_vm` does, then a `qmcreate` task that allocates disks, adds
        defaults (boot order, smbios1 uuid, vmgenid, meta) and writes the config; `start=1` starts it after.

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`create_vm`: VM.Allocate on /vms/<vmid>,
        `$check_vm_modify_config_perm`, `check_vm_create_hostpci_perm`, "unable to create VM <id> - VM <id> already
        exists on node '<node>'").
        """
        node = path["node"]
        self.node_state(node)
        params = dict(ctx.params)
        if "vmid" not in params:
            raise param_exc({"vmid": MISSING})
        vmid = self.vmid_param(params.pop("vmid"))
        storage = params.pop("storage", None)
        start = as_bool(params.pop("start", None))
        for key in ("archive", "force", "pool", "unique", "bwlimit", "live-restore", "ha-managed"):
            if key in params:
                raise param_exc({key: "not supported by the simulator"})
        self.validate_config_params(params, ())
        if not ctx.can("/vms/%d" % vmid, ["VM.Allocate"]):
            raise perm_exc()
        if start:
            ctx.check("/vms/%d" % vmid, ["VM.PowerMgmt"])
        self.check_storage_access(ctx, None, params, storage)
        rules.check_vm_modify_config_perm(ctx.perms, ctx.user, vmid, list(params))
        for key in sorted(params):
            if key.startswith("hostpci"):
                rules.check_hostpci_perm(ctx.perms, ctx.user, vmid, key, params[key], self.data["version"].get("release"))
        self.add_random_macs(params)
        existing = self.data["vms"].get(str(vmid))
        if existing is not None:
            raise die("unable to create VM %d - VM %d already exists on node '%s'" % (vmid, vmid, existing["node"]))
        vm = {"node": node, "status": "stopped", "config": {"lock": "create"}, "pending": {}}
        self.data["vms"][str(vmid)] = vm
        created = []

        def finish(task):
            values, new_vols = self.create_disks(task, node, vmid, params, storage)
            created.extend(new_vols)
            conf = dict(params)
            conf.update(values)
            if "boot" not in conf:
                devices = []
                disks = [k for k in sorted(conf, key=self._drive_sort) if rules.is_valid_drivename(k)]
                first_disk = next((k for k in disks if not rules.drive_is_cdrom(rules.parse_drive(conf[k]))), None)
                first_cd = next((k for k in disks if rules.drive_is_cdrom(rules.parse_drive(conf[k]))), None)
                devices.extend(k for k in (first_disk, first_cd) if k)
                nets = sorted((k for k in conf if re.match(r"^net\d+$", k)), key=lambda k: int(k[3:]))
                devices.extend(nets[:1])
                if devices:
                    conf["boot"] = "order=" + ";".join(devices)
            conf.setdefault("smbios1", "uuid=%s" % uuid.uuid4())
            if conf.get("vmgenid", "1") == "1":
                conf["vmgenid"] = str(uuid.uuid4())
            conf["meta"] = "creation-qemu=9.2.0,ctime=%d" % int(time.time())
            vm["config"] = conf
            if start:
                task.log("Execute autostart")
                try:
                    self._start_vm(task, node, vmid, vm, {})
                except ApiError as exc:  # the VM stays, the start error is a warning (as in create_vm)
                    task.warn(exc.task_text())

        def on_error(_task):
            for volid in created:
                self.free_volume(node, volid)
            self.data["vms"].pop(str(vmid), None)

        return self.tasks.create(node, "qmcreate", vmid, ctx.user, finish, vmid=vmid, on_error=on_error)

    @staticmethod
    def _drive_sort(key):
        order = {"ide": 0, "sata": 1, "scsi": 2, "virtio": 3, "efidisk": 4, "tpmstate": 5}
        match = re.match(r"^([a-z]+)(\d+)$", key)
        if not match:
            return (9, 0)
        return (order.get(match.group(1), 8), int(match.group(2)))

    def qemu_destroy(self, ctx, path):
        """DELETE /nodes/{node}/qemu/{vmid}: protection, running and lock checks, then a `qmdestroy` task removing
        the volumes the config references (incl. unused and pending) that the VM owns, and with
        `destroy-unreferenced-disks=1` every other volume of that VMID; the VM's ACL entries go too.

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`destroy_vm`) and `src/PVE/QemuServer.pm` (`destroy_vm`).
        """
        node = path["node"]
        vmid = self.vmid_param(path["vmid"])
        self.node_state(node)
        ctx.check("/vms/%d" % vmid, ["VM.Allocate"])
        skiplock = as_bool(ctx.params.get("skiplock"))
        if skiplock and ctx.user != "root@pam":
            raise param_exc({"skiplock": "Only root may use this option."})
        purge_unreferenced = as_bool(ctx.params.get("destroy-unreferenced-disks"))
        purge = as_bool(ctx.params.get("purge"))

        def early():
            vm = self.vm_record(node, vmid)
            if as_bool(vm["config"].get("protection")):
                raise die("can't remove VM %d - protection mode enabled" % vmid)
            if vm["status"] == "running":
                raise die("VM %d is running - destroy failed" % vmid)
            return vm

        early()

        def finish(task):
            vm = early()
            if not skiplock:
                self.check_lock(vm)
            removed = set()
            for source in (vm["config"], vm["pending"]):
                for key, value in source.items():
                    if not (rules.is_valid_drivename(key) or key.startswith("unused") or key == "vmstate"):
                        continue
                    drive = rules.parse_drive(value)
                    volid = drive.get("file", "")
                    if rules.drive_is_cdrom(drive) and not volid.endswith("-cloudinit"):
                        continue
                    vol = self.find_volume(node, volid)
                    if vol is None or vol["vmid"] != vmid or volid in removed:
                        continue
                    removed.add(volid)
                    self.free_volume(node, volid)
                    task.log("Removed volume '%s'" % volid)
            if purge_unreferenced:
                for vol in list(self.volumes_on(node)):
                    if vol["vmid"] == vmid and vol.get("content") == "images":
                        self.free_volume(node, vol["volid"])
                        task.log("Removed unreferenced volume '%s'" % vol["volid"])
            acl = self.data["access"].get("acl", [])
            self.data["access"]["acl"] = [e for e in acl if e.get("path") != "/vms/%d" % vmid]
            if purge:
                task.log("purging VM %d from related configurations.." % vmid)
            del self.data["vms"][str(vmid)]

        return self.tasks.create(node, "qmdestroy", vmid, ctx.user, finish, vmid=vmid)

    def qemu_config_get(self, ctx, path):
        """GET …/config: pending values applied unless `current=1`; includes `digest`; `cipassword` masked.

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`vm_config`).
        """
        vmid = self.vmid_param(path["vmid"])
        ctx.check("/vms/%d" % vmid, ["VM.Audit"])
        self.node_state(path["node"])
        vm = self.vm_record(path["node"], vmid)
        if ctx.params.get("snapshot"):
            raise die("snapshot '%s' does not exist" % ctx.params["snapshot"])
        conf = rules.config_with_pending(vm["config"], vm["pending"], current=as_bool(ctx.params.get("current")))
        if conf.get("cipassword"):
            conf["cipassword"] = "**********"
        conf["digest"] = self.digest(vm)
        return conf

    def qemu_pending(self, ctx, path):
        """GET …/pending (qemu-server `src/PVE/API2/Qemu.pm`, `vm_pending`): the rows of the loaded config,
        which carries the file's `digest` (so a `{"key": "digest", "value": …}` row is there; pve-guest-common
        `src/PVE/GuestHelpers.pm` `format_pending` skips that key when printing)."""
        vmid = self.vmid_param(path["vmid"])
        ctx.check("/vms/%d" % vmid, ["VM.Audit"])
        vm = self.vm_record(path["node"], vmid)
        conf = dict(vm["config"], digest=self.digest(vm))
        return rules.pending_array(conf, vm["pending"])

    def qemu_config_post(self, ctx, path):
        """POST …/config: asynchronous update, returns the `qmconfig` task's UPID."""
        return self.update_vm(ctx, path, sync=False)

    def qemu_config_put(self, ctx, path):
        """PUT …/config: synchronous update, returns null."""
        return self.update_vm(ctx, path, sync=True)

    def update_vm(self, ctx, path, sync):  # pylint: disable=too-many-locals,too-many-statements
        """Update a VM config: parameter checks, per-option privileges for deleted and set keys, early digest and
        lock checks (before any task), then — under the VM lock, in the worker for POST — delete/set each key into
        the pending section with the value-dependent checks (`hostpciN`: old and new value; drives: disk
        privileges, allocation), `cleanup_pending`, and finally apply pending at once on a stopped VM or hot-plug
        what can be hot-plugged on a running one.

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`$update_vm_api`, `update_vm_async`, `update_vm`): "no
        options specified", "checksum mismatch (file change by other user?)", "VM is locked (…)", "you can't use
        '-<opt>' and -delete <opt>' at the same time", "unknown option '<opt>'", warning "cannot delete '<opt>' -
        not set in current configuration!".
        """
        with self.state.lock:  # checks before any lock on the VM (lock order: VM lock, then state lock)
            node = path["node"]
            vmid = self.vmid_param(path["vmid"])
            self.node_state(node)
            ctx.check("/vms/%d" % vmid, VM_CONFIG_PERM_LIST, any_of=True)
            params = dict(ctx.params)
            digest = params.pop("digest", None)
            background_delay = params.pop("background_delay", None)
            params.pop("skip_cloud_init", None)
            skiplock = as_bool(params.pop("skiplock", None))
            delete_str = params.pop("delete", None)
            revert_str = params.pop("revert", None)
            force = as_bool(params.pop("force", None))
            if skiplock and ctx.user != "root@pam":
                raise param_exc({"skiplock": "Only root may use this option."})
            if background_delay is not None:
                err = rules.check_value(background_delay, {"type": "integer", "minimum": 1, "maximum": 30})
                if err:
                    raise param_exc({"background_delay": err})
            self.validate_config_params(params, ())
            if not delete_str and not revert_str and not params:
                raise die("no options specified")
            revert = []
            for opt in re.split(r"[,;\s]+", revert_str or ""):
                if not opt:
                    continue
                if not rules.option_exists(opt):
                    raise param_exc({"revert": "unknown option '%s'" % opt})
                if opt in params:
                    raise param_exc({"delete": "you can't use '-%s' and -revert %s' at the same time" % (opt, opt)})
                revert.append(opt)
            delete = []
            for opt in re.split(r"[,;\s]+", delete_str or ""):
                if not opt:
                    continue
                opt = "ide2" if opt == "cdrom" else opt
                if opt in params:
                    raise param_exc({"delete": "you can't use '-%s' and -delete %s' at the same time" % (opt, opt)})
                if opt in revert:
                    raise param_exc({"revert": "you can't use '-delete %s' and -revert %s' at the same time" % (opt, opt)})
                if not rules.option_exists(opt):
                    raise param_exc({"delete": "unknown option '%s'" % opt})
                delete.append(opt)
            self.add_random_macs(params)
            rules.check_vm_modify_config_perm(ctx.perms, ctx.user, vmid, delete)
            rules.check_vm_modify_config_perm(ctx.perms, ctx.user, vmid, list(params))
            self.check_storage_access(ctx, vmid, params)

            def load_and_check():
                vm = self.vm_record(node, vmid)
                if digest and digest != self.digest(vm):
                    raise die("checksum mismatch (file change by other user?)")
                if not skiplock:
                    self.check_lock(vm)
                return vm

            load_and_check()  # early checks before forking/locking

            def updatefn(task):
                vm = load_and_check()
                conf, pending = vm["config"], vm["pending"]
                for opt in revert:
                    if opt in conf:
                        params[opt] = conf[opt]
                    elif opt in pending:
                        delete.append(opt)
                if task is not None:
                    shown = ["-%s %s" % (k, "<hidden>" if k == "cipassword" else v) for k, v in sorted(params.items())]
                    task.log("update VM %d: %s" % (vmid, " ".join(shown)))
                modified = set()
                for opt in delete:
                    modified.add(opt)
                    value = conf.get(opt, pending.get(opt))
                    if value is None:
                        message = "cannot delete '%s' - not set in current configuration!" % opt
                        if task is not None:
                            task.warn(message)
                        modified.discard(opt)
                        continue
                    pending.pop(opt, None)
                    if opt.startswith("unused"):
                        if as_bool(conf.get("protection")):
                            raise die("can't remove unused disk '%s' - protection mode enabled" % value)
                        ctx.check("/vms/%d" % vmid, ["VM.Config.Disk"])
                        self.free_volume(node, rules.parse_drive(value).get("file", ""))
                        conf.pop(opt, None)
                    elif rules.is_valid_drivename(opt):
                        if as_bool(conf.get("protection")):
                            raise die("can't remove drive '%s' - protection mode enabled" % opt)
                        self.check_drive_perms(ctx, vmid, value)
                        rules.add_to_pending_delete(pending, opt, force)
                    elif opt.startswith("hostpci"):
                        rules.check_hostpci_perm(ctx.perms, ctx.user, vmid, opt, value, self.data["version"].get("release"))
                        rules.add_to_pending_delete(pending, opt, force)
                    elif opt == "tags":
                        conf.pop(opt, None)
                    else:
                        rules.add_to_pending_delete(pending, opt, force)
                for opt in sorted(params):
                    modified.add(opt)
                    value = params[opt]
                    if opt in pending and str(pending[opt]) == str(value):
                        continue
                    if rules.is_valid_drivename(opt):
                        if conf.get(opt):
                            self.check_drive_perms(ctx, vmid, conf[opt])
                        self.check_drive_perms(ctx, vmid, value)
                        if opt in pending:
                            old_pending = rules.parse_drive(pending[opt]).get("file", "")
                            if ":" in old_pending and self.find_volume(node, old_pending):
                                self.register_unused(conf, old_pending)
                        values, _created = self.create_disks(task, node, vmid, {opt: value})
                        pending[opt] = values[opt]
                    elif opt.startswith("hostpci"):
                        if conf.get(opt):
                            rules.check_hostpci_perm(ctx.perms, ctx.user, vmid, opt, conf[opt], self.data["version"].get("release"))
                        rules.check_hostpci_perm(ctx.perms, ctx.user, vmid, opt, value, self.data["version"].get("release"))
                        pending[opt] = value
                    elif opt == "machine":
                        rules.assert_valid_machine_property(value)
                        pending[opt] = value
                    elif opt == "cipassword":
                        conf[opt] = value
                    else:
                        pending[opt] = value
                    rules.remove_from_pending_delete(pending, opt)
                rules.cleanup_pending(conf, pending)
                if not pending:
                    return
                if vm["status"] == "running":
                    self.hotplug_pending(vm, modified)
                else:
                    self.apply_pending(vm)

        if sync:
            lock = self.tasks.acquire_vm(vmid)
            try:
                with self.state.lock:
                    try:
                        updatefn(None)
                    finally:
                        self.state.save()  # like PVE, options written before an error stay written
            finally:
                lock.release()
            return None
        upid = self.tasks.create(node, "qmconfig", vmid, ctx.user, updatefn, vmid=vmid)
        if background_delay is None:
            return upid
        end = time.time() + int(background_delay)
        record = self.data["tasks"][upid]
        while time.time() < end and record["status"] == "running":
            time.sleep(0.01)
        if record["status"] == "running":
            return upid
        if rules.task_status_is_error(record["exitstatus"]):
            raise die("failed to update VM %d: %s" % (vmid, record["exitstatus"]))
        return None

    @staticmethod
    def check_drive_perms(ctx, vmid, value):
        """Cloud-init drives need VM.Config.Cloudinit + CDROM, cdroms VM.Config.CDROM, disks VM.Config.Disk.

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`$check_drive_perms` in `$update_vm_api`).
        """
        if ctx.user == "root@pam":
            return
        drive = rules.parse_drive(value)
        if drive.get("file", "").endswith("cloudinit"):
            ctx.check("/vms/%d" % vmid, ["VM.Config.Cloudinit", "VM.Config.CDROM"])
        elif rules.drive_is_cdrom(drive):
            ctx.check("/vms/%d" % vmid, ["VM.Config.CDROM"])
        else:
            ctx.check("/vms/%d" % vmid, ["VM.Config.Disk"])

    def qemu_resize(self, ctx, path):
        """PUT …/resize: a `resize` task; "disk '<d>' does not exist", "you can't resize a cdrom", "shrinking disks is
        not supported"; `+<size>` grows relative to the current size.

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`resize_vm`).
        """
        node = path["node"]
        vmid = self.vmid_param(path["vmid"])
        ctx.check("/vms/%d" % vmid, ["VM.Config.Disk"])
        disk, size = ctx.params.get("disk"), ctx.params.get("size")
        errors = {}
        if disk is None:
            errors["disk"] = MISSING
        elif not rules.is_valid_drivename(disk):
            errors["disk"] = "value '%s' does not have a value in the enumeration" % disk
        if size is None:
            errors["size"] = MISSING
        elif not re.match(r"^\+?\d+(\.\d+)?[KMGT]?$", str(size)):
            errors["size"] = "value does not match the regex pattern"
        if errors:
            raise param_exc(errors)
        digest = ctx.params.get("digest")
        self.vm_record(node, vmid)

        def finish(task):
            vm = self.vm_record(node, vmid)
            if digest and digest != self.digest(vm):
                raise die("checksum mismatch (file change by other user?)")
            self.check_lock(vm)
            conf = vm["config"]
            if not conf.get(disk):
                raise die("disk '%s' does not exist" % disk)
            drive = rules.parse_drive(conf[disk])
            if rules.drive_is_cdrom(drive):
                raise die("you can't resize a cdrom")
            vol = self.find_volume(node, drive.get("file", ""))
            if vol is None:
                raise die("Could not determine current size of volume '%s'" % drive.get("file"))
            text = str(size)
            newsize = parse_size(text.lstrip("+"))
            if text.startswith("+"):
                newsize += vol["size"]
            if newsize < vol["size"]:
                raise die("shrinking disks is not supported")
            vol["size"] = newsize
            drive["size"] = format_size(newsize)
            conf[disk] = rules.print_drive(drive)
            task.log("resized %s to %s" % (disk, drive["size"]))

        return self.tasks.create(node, "resize", vmid, ctx.user, finish, vmid=vmid)

    def qemu_template(self, ctx, path):
        """POST …/template: a `qmtemplate` task renaming disks to `base-<vmid>-disk-N` and setting `template: 1`.

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`template`: "you can't convert a template to a template", "you
        can't convert a VM to template if VM is running") and `src/PVE/QemuServer.pm` (`template_create`).
        """
        node = path["node"]
        vmid = self.vmid_param(path["vmid"])
        ctx.check("/vms/%d" % vmid, ["VM.Allocate"])

        def check():
            vm = self.vm_record(node, vmid)
            self.check_lock(vm)
            if as_bool(vm["config"].get("template")):
                raise die("you can't convert a template to a template")
            if vm["status"] == "running":
                raise die("you can't convert a VM to template if VM is running")
            return vm

        check()

        def finish(task):
            vm = check()
            conf = vm["config"]
            for key in sorted(conf):
                if not rules.is_valid_drivename(key):
                    continue
                drive = rules.parse_drive(conf[key])
                vol = self.find_volume(node, drive.get("file", ""))
                if vol is None or rules.drive_is_cdrom(drive):
                    continue
                vol["volid"] = vol["volid"].replace("vm-%d-disk-" % vmid, "base-%d-disk-" % vmid)
                drive["file"] = vol["volid"]
                conf[key] = rules.print_drive(drive)
                task.log("%s: converted to base volume '%s'" % (key, vol["volid"]))
            conf["template"] = 1

        return self.tasks.create(node, "qmtemplate", vmid, ctx.user, finish, vmid=vmid)

    def qemu_clone(self, ctx, path):  # pylint: disable=too-many-locals
        """POST …/clone: VM.Clone on the source and VM.Allocate on the new id; raw PCI devices only for root
        (`check_mapping_access`); a `qmclone` task copies the config without unused disks, snapshots and pending
        changes, gives every `netN` a new MAC, a new smbios1 uuid and vmgenid, names it `Copy-of-VM-<name>` unless
        `name` is given, and full-copies disks (linked clones from templates unless `full=1`).

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`clone_vm`: "unable to create VM <id>: config file already
        exists", "parameter 'storage' not allowed for linked clones").
        """
        node = path["node"]
        vmid = self.vmid_param(path["vmid"])
        if "newid" not in ctx.params:
            raise param_exc({"newid": MISSING})
        newid = self.vmid_param(ctx.params["newid"], "newid")
        ctx.check("/vms/%d" % vmid, ["VM.Clone"])
        ctx.check("/vms/%d" % newid, ["VM.Allocate"])
        storage = ctx.params.get("storage")
        target = ctx.params.get("target")
        if target and target != node:
            raise die("can't clone VM to node '%s' (VM uses local storage)" % target)

        def load_and_check():
            vm = self.vm_record(node, vmid)
            self.check_lock(vm)
            full = as_bool(ctx.params.get("full"), default=0 if as_bool(vm["config"].get("template")) else 1)
            if storage is not None and not full:
                raise die("parameter 'storage' not allowed for linked clones")
            if storage is not None:
                scfg = self.storage_cfg(node, storage)
                if "images" not in scfg.get("content", []):
                    raise param_exc({"storage": "storage '%s' does not support vm images" % storage})
                ctx.check("/storage/%s" % storage, ["Datastore.AllocateSpace"])
            rules.check_mapping_access(ctx.perms, ctx.user, vm["config"])
            if str(newid) in self.data["vms"]:
                raise die("unable to create VM %d: config file already exists" % newid)
            return vm, full

        with self.state.lock:
            load_and_check()
            self.data["vms"][str(newid)] = {"node": node, "status": "stopped", "config": {"lock": "clone"}, "pending": {}}
        created = []

        def finish(task):
            del self.data["vms"][str(newid)]
            src, full = load_and_check()
            task.log("creating a clone of VM %d with ID %d" % (vmid, newid))
            newconf = {}
            for key, value in src["config"].items():
                if key in ("snapshots", "parent", "snaptime", "vmstate", "snapstate", "runningcpu", "runningmachine", "lock",
                           "running-nets-host-mtu") or key.startswith("unused"):
                    continue
                if re.match(r"^net\d+$", key):
                    net = rules.parse_net(value)
                    net["macaddr"] = self.random_mac()
                    newconf[key] = rules.print_net(net)
                elif rules.is_valid_drivename(key):
                    drive = rules.parse_drive(value)
                    if rules.drive_is_cdrom(drive) and not drive.get("file", "").endswith("-cloudinit"):
                        newconf[key] = value
                        continue
                    vol = self.find_volume(node, drive.get("file", ""))
                    if vol is None:
                        raise die("volume %s does not exist" % drive.get("file"))
                    if drive.get("file", "").endswith("-cloudinit"):
                        new = self.alloc_volume(node, vol["storage"], newid, vol["size"], kind="cloudinit")
                    elif full or key == "tpmstate0":
                        new = self.alloc_volume(node, storage or vol["storage"], newid, vol["size"], fmt=ctx.params.get("format"))
                    else:
                        new = self.alloc_volume(node, vol["storage"], newid, vol["size"])
                        base = vol["volid"].split(":", 1)[1]
                        new["volid"] = "%s:%s/%s" % (vol["storage"], base, new["volid"].split(":", 1)[1])
                    created.append(new["volid"])
                    drive["file"] = new["volid"]
                    drive["size"] = format_size(new["size"])
                    newconf[key] = rules.print_drive(drive)
                    task.log("%s: cloned to '%s'" % (key, new["volid"]))
                else:
                    newconf[key] = value
            if src["pending"]:
                task.warn("found pending changes for '%s', discarding for clone" % ",".join(sorted(src["pending"])))
            smbios = [p for p in str(newconf.get("smbios1", "")).split(",") if p and not p.startswith("uuid=")]
            newconf["smbios1"] = ",".join(["uuid=%s" % uuid.uuid4()] + smbios)
            if newconf.get("vmgenid"):
                newconf["vmgenid"] = str(uuid.uuid4())
            newconf.pop("template", None)
            newconf["name"] = ctx.params.get("name") or "Copy-of-VM-%s" % src["config"].get("name", vmid)
            if ctx.params.get("description"):
                newconf["description"] = ctx.params["description"]
            self.data["vms"][str(newid)] = {"node": node, "status": "stopped", "config": newconf, "pending": {}}

        def on_error(_task):
            for volid in created:
                self.free_volume(node, volid)
            self.data["vms"].pop(str(newid), None)

        return self.tasks.create(node, "qmclone", vmid, ctx.user, finish, vmid=newid, on_error=on_error)

    def qemu_status_current(self, ctx, path):
        """GET …/status/current (qemu-server `src/PVE/API2/Qemu.pm`, `vm_status`; `lock` shown when set)."""
        vmid = self.vmid_param(path["vmid"])
        ctx.check("/vms/%d" % vmid, ["VM.Audit"])
        vm = self.vm_record(path["node"], vmid)
        row = self.vm_row(vm, vmid)
        row.update({"qmpstatus": vm["status"], "ha": {"managed": 0}, "agent": 1 if str(vm["config"].get("agent", "0"))[:1] == "1" else 0})
        if vm["status"] == "running":
            row["running-machine"] = vm.get("running_machine", "pc-i440fx-9.2+pve1")
            row["running-qemu"] = "9.2.0"
        return row

    def _power_common(self, ctx, path):
        node = path["node"]
        vmid = self.vmid_param(path["vmid"])
        self.node_state(node)
        ctx.check("/vms/%d" % vmid, ["VM.PowerMgmt"])
        for key in ("skiplock", "keepActive", "migratedfrom", "stateuri", "force-cpu", "targetstorage"):
            if as_bool(ctx.params.get(key)) and ctx.user != "root@pam":
                raise param_exc({key: "Only root may use this option."})
        self.vm_record(node, vmid)
        return node, vmid

    def _start_vm(self, task, node, vmid, vm, params):
        """Start checks and state change, in order: template, lock, already running, apply pending, PCI devices
        (mapping validation, presence, q35 for pcie, legacy-igd rules), reservation against other running VMs,
        IOMMU presence; OVMF without efidisk0 warns "no efidisk configured! Using temporary efivars disk.".

        Follows qemu-server `src/PVE/QemuServer.pm` (`vm_start`, `vm_start_nolock`), `src/PVE/QemuServer/PCI.pm`
        (`parse_hostpci_devices`, `choose_hostpci_devices`, `reserve_pci_usage`, `prepare_pci_device`) and
        `src/PVE/QemuServer/OVMF.pm`.
        """
        conf = vm["config"]
        if as_bool(conf.get("template")):
            raise die("you can't start a vm if it's a template")
        if not as_bool(params.get("skiplock")):
            self.check_lock(vm)
        if vm["status"] == "running":
            raise die("VM %d already running" % vmid)
        if vm["pending"]:
            self.apply_pending(vm, task)
        node_info = self.data["nodes"][node]
        rules.check_machine_version(conf.get("machine"), node_info.get("qemu_version", rules.DEFAULT_QEMU_VERSION))
        devices = rules.resolve_hostpci_devices(vmid, conf, node_info.get("pci", []), self.data["mappings"]["pci"], node)
        reservations = {}
        for other_id, other in self.data["vms"].items():
            if other["node"] == node and other["status"] == "running" and other_id != str(vmid):
                for pci_id in other.get("reserved_pci", []):
                    reservations[pci_id] = other_id
        chosen = rules.choose_and_reserve(vmid, devices, reservations)
        if devices:
            rules.check_iommu_support(node_info)
        if conf.get("bios") == "ovmf" and not conf.get("efidisk0"):
            task.warn("no efidisk configured! Using temporary efivars disk.")
        vm["status"] = "running"
        vm["pid"] = self.data["next_pid"]
        self.data["next_pid"] += 1
        vm["started_at"] = time.time()
        vm["reserved_pci"] = chosen
        mtype = rules.parse_machine(conf["machine"]).get("type", "pc") if conf.get("machine") else "pc"
        vm["running_machine"] = "pc-q35-9.2+pve1" if "q35" in mtype else "pc-i440fx-9.2+pve1"
        task.log("start VM %d: ok" % vmid)

    def _stop_vm(self, task, vm, skiplock=False):
        """Stop: nothing to do if not running; lock check; PCI reservations released; pending changes applied.

        Follows qemu-server `src/PVE/QemuServer.pm` (`_do_vm_stop`, `vm_stop_cleanup` with apply_pending_changes).
        """
        if vm["status"] != "running":
            return
        if not skiplock:
            self.check_lock(vm)
        vm["status"] = "stopped"
        vm["pid"] = None
        vm["started_at"] = None
        vm["reserved_pci"] = []
        self.apply_pending(vm, task)

    def qemu_start(self, ctx, path):
        """POST …/status/start: a `qmstart` task running the start checks (see `_start_vm`).

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`vm_start`: root-only options checked before the task).
        """
        node, vmid = self._power_common(ctx, path)
        params = dict(ctx.params)

        def finish(task):
            self._start_vm(task, node, vmid, self.vm_record(node, vmid), params)

        return self.tasks.create(node, "qmstart", vmid, ctx.user, finish, vmid=vmid)

    def qemu_stop(self, ctx, path):
        """POST …/status/stop: a `qmstop` task (qemu-server `src/PVE/API2/Qemu.pm`, `vm_stop`)."""
        node, vmid = self._power_common(ctx, path)
        skiplock = as_bool(ctx.params.get("skiplock"))

        def finish(task):
            self._stop_vm(task, self.vm_record(node, vmid), skiplock)

        return self.tasks.create(node, "qmstop", vmid, ctx.user, finish, vmid=vmid)

    def qemu_shutdown(self, ctx, path):
        """POST …/status/shutdown: a `qmshutdown` task; the simulated guest always powers off in time.

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`vm_shutdown`).
        """
        node, vmid = self._power_common(ctx, path)
        skiplock = as_bool(ctx.params.get("skiplock"))

        def finish(task):
            self._stop_vm(task, self.vm_record(node, vmid), skiplock)

        return self.tasks.create(node, "qmshutdown", vmid, ctx.user, finish, vmid=vmid)

    def qemu_reboot(self, ctx, path):
        """POST …/status/reboot: "VM <id> not running" at once if stopped; the `qmreboot` task shuts the VM down
        (pending changes applied on the way), then a `qmstart` task by root@pam starts it again, as qmeventd does.

        Follows qemu-server `src/PVE/API2/Qemu.pm` (`vm_reboot`) and `src/PVE/QemuServer.pm` (`vm_reboot`).
        """
        node, vmid = self._power_common(ctx, path)
        if self.vm_record(node, vmid)["status"] != "running":
            raise die("VM %d not running" % vmid)

        def finish(task):
            vm = self.vm_record(node, vmid)
            if vm["status"] != "running":
                return
            self._stop_vm(task, vm)

            def restart(task2):
                self._start_vm(task2, node, vmid, self.vm_record(node, vmid), {})

            self.tasks.create(node, "qmstart", vmid, "root@pam", restart, vmid=vmid)

        return self.tasks.create(node, "qmreboot", vmid, ctx.user, finish, vmid=vmid)

    # ----------------------------------------------------------------------------------------------
    # backups and storage
    # ----------------------------------------------------------------------------------------------

    def vzdump(self, ctx, path):
        """POST /nodes/{node}/vzdump: VM.Backup on each VM and Datastore.AllocateSpace on the storage; a `vzdump`
        task (id = the VMID when there is one) that holds `lock: backup` while it runs and writes
        `backup/vzdump-qemu-<vmid>-<YYYY_MM_DD-HH_MM_SS>.vma[.zst|.gz|.lzo]` to the backup storage.

        Follows pve-manager `PVE/API2/VZDump.pm` (`vzdump`) and `PVE/VZDump.pm` (archive name).
        """
        node = path["node"]
        self.node_state(node)
        vmids = [v for v in re.split(r"[,;\s]+", str(ctx.params.get("vmid", ""))) if v]
        if not vmids:
            raise param_exc({"vmid": MISSING})
        vmids = [self.vmid_param(v) for v in vmids]
        storage = ctx.params.get("storage", "local")
        compress = str(ctx.params.get("compress", "0"))
        ext = {"0": ".vma", "1": ".vma.lzo", "gzip": ".vma.gz", "lzo": ".vma.lzo", "zstd": ".vma.zst"}.get(compress)
        if ext is None:
            raise param_exc({"compress": "value '%s' does not have a value in the enumeration '0, 1, gzip, lzo, zstd'" % compress})
        mode = ctx.params.get("mode", "snapshot")
        for vmid in vmids:
            ctx.check("/vms/%d" % vmid, ["VM.Backup"])
        ctx.check("/storage/%s" % storage, ["Datastore.AllocateSpace"])
        scfg = self.storage_cfg(node, storage)
        if "backup" not in scfg.get("content", []):
            raise die("storage '%s' does not support backups" % storage)
        locked = []

        def begin(task):
            for vmid in vmids:
                vm = self.vm_record(node, vmid)
                try:
                    self.check_lock(vm)
                except ApiError as exc:
                    task.log("ERROR: Backup of VM %d failed - %s" % (vmid, exc.message.strip()))
                    raise die("job errors") from exc
                vm["config"]["lock"] = "backup"
                locked.append(vmid)
                task.log("INFO: Starting Backup of VM %d (qemu)" % vmid)
                task.log("INFO: Backup mode: %s" % mode)

        def finish(task):
            for vmid in vmids:
                vm = self.vm_record(node, vmid)
                stamp = time.strftime("%Y_%m_%d-%H_%M_%S", time.localtime())
                name = "backup/vzdump-qemu-%d-%s%s" % (vmid, stamp, ext)
                size = 0
                for key, value in vm["config"].items():
                    if rules.is_valid_drivename(key):
                        vol = self.find_volume(node, rules.parse_drive(value).get("file", ""))
                        size += (vol or {}).get("size", 0) // 10
                volid = "%s:%s" % (storage, name)
                suffix = 0
                while self.find_volume(node, volid):
                    suffix += 1
                    volid = "%s:%s" % (storage, name.replace("vzdump-", "vzdump%d-" % suffix, 1))
                self.data["volumes"].append({"volid": volid, "storage": storage, "node": None if scfg.get("shared") else node,
                                             "vmid": vmid, "size": max(size, 1 << 20), "format": ext.lstrip(".").replace("vma.", "vma."),
                                             "content": "backup", "subtype": "qemu", "ctime": int(time.time()),
                                             "notes": ctx.params.get("notes-template", "").replace("{{vmid}}", str(vmid))})
                vm["config"].pop("lock", None)
                locked.remove(vmid)
                task.log("INFO: creating vzdump archive '%s'" % volid)
                task.log("INFO: Finished Backup of VM %d" % vmid)

        def on_error(_task):
            for vmid in locked:
                vm = self.data["vms"].get(str(vmid))
                if vm and vm["config"].get("lock") == "backup":
                    vm["config"].pop("lock")

        task_id = vmids[0] if len(vmids) == 1 else None
        return self.tasks.create(node, "vzdump", task_id, ctx.user, finish, begin=begin, on_error=on_error)

    def storage_index(self, ctx, path):
        """GET /nodes/{node}/storage: storages enabled on the node the caller can see (`content` filter)."""
        node = path["node"]
        self.node_state(node)
        wanted = ctx.params.get("content")
        rows = []
        for sid in sorted(self.data["storages"]):
            scfg = self.data["storages"][sid]
            if scfg.get("nodes") and node not in scfg["nodes"]:
                continue
            if wanted and wanted not in scfg.get("content", []):
                continue
            if not ctx.can("/storage/%s" % sid, ["Datastore.Audit", "Datastore.AllocateSpace"], any_of=True):
                continue
            used = sum(v["size"] for v in self.volumes_on(node, sid))
            rows.append({"storage": sid, "type": scfg.get("type"), "content": ",".join(scfg.get("content", [])), "active": 1,
                         "enabled": 1, "shared": scfg.get("shared", 0), "total": 1 << 40, "used": used, "avail": (1 << 40) - used})
        return rows

    def storage_content(self, ctx, path):
        """GET /nodes/{node}/storage/{storage}/content: volumes with volid, content, format, size, vmid, ctime
        (backups add subtype and notes); filters `content` and `vmid`; needs Datastore.Audit or
        Datastore.AllocateSpace on /storage/<id>.

        Follows pve-storage `PVE/API2/Storage/Content.pm` (`index`).
        """
        node, sid = path["node"], path["storage"]
        self.node_state(node)
        ctx.check("/storage/%s" % sid, ["Datastore.Audit", "Datastore.AllocateSpace"], any_of=True)
        self.storage_cfg(node, sid)
        content = ctx.params.get("content")
        vmid = ctx.params.get("vmid")
        rows = []
        for vol in sorted(self.volumes_on(node, sid), key=lambda v: v["volid"]):
            if content and vol.get("content") != content:
                continue
            if vmid is not None and str(vol.get("vmid")) != str(vmid):
                continue
            row = {k: vol[k] for k in ("volid", "content", "format", "size", "vmid", "ctime") if vol.get(k) is not None}
            if vol.get("content") == "backup":
                row["subtype"] = vol.get("subtype", "qemu")
                if vol.get("notes"):
                    row["notes"] = vol["notes"]
            if vol.get("content") == "images":
                row["used"] = vol["size"] // 4
            rows.append(row)
        return rows

    def storage_content_delete(self, ctx, path):
        """DELETE …/content/{volume}: removes a volume not used by a VM config; backups need VM.Backup or
        Datastore.Allocate. Follows pve-storage `PVE/API2/Storage/Content.pm` (`delete`)."""
        node, sid = path["node"], path["storage"]
        self.node_state(node)
        volid = path["volume"] if ":" in path["volume"] else "%s:%s" % (sid, path["volume"])
        vol = self.find_volume(node, volid)
        if vol is None:
            raise die("volume '%s' does not exist" % volid)
        if vol.get("content") == "backup":
            if not ctx.can("/storage/%s" % sid, ["Datastore.Allocate"]):
                ctx.check("/vms/%s" % vol["vmid"], ["VM.Backup"])
                ctx.check("/storage/%s" % sid, ["Datastore.AllocateSpace"])
        else:
            ctx.check("/storage/%s" % sid, ["Datastore.Allocate"])
            for other in self.data["vms"].values():
                for value in other["config"].values():
                    if isinstance(value, str) and value.split(",")[0] == volid:
                        raise die("volume '%s' is still in use" % volid)

        def finish(_task):
            self.free_volume(node, volid)

        return self.tasks.create(node, "imgdel", volid, ctx.user, finish)

    # ----------------------------------------------------------------------------------------------
    # tasks
    # ----------------------------------------------------------------------------------------------

    def _task_for(self, ctx, path):
        info = rules.upid_decode(path["upid"])
        if info is None:
            raise param_exc({"upid": "unable to parse worker upid"})
        record = self.data["tasks"].get(path["upid"])
        if record is None or info["node"] != path["node"]:
            raise param_exc({"upid": "no such task"})
        if not rules.task_owner_matches(record["user"], ctx.user):
            ctx.check("/nodes/%s" % path["node"], ["Sys.Audit"])
        return record

    def task_status(self, ctx, path):
        """GET …/tasks/{upid}/status: `running|stopped`, `exitstatus` once stopped, and the UPID's parts (a token
        owner shows as `user` + `tokenid`).

        Follows pve-manager `PVE/API2/Tasks.pm` (`read_task_status`: "unable to parse worker upid", "no such task",
        Sys.Audit on /nodes/<node> for tasks of others).
        """
        record = self._task_for(ctx, path)
        user, token = rules.task_user_view(record["user"])
        res = {k: record[k] for k in ("upid", "node", "pid", "pstart", "starttime", "type", "id", "status")}
        res["user"] = user
        if token:
            res["tokenid"] = token
        if record["status"] == "stopped":
            res["exitstatus"] = record.get("exitstatus", "unexpected status")
        return res

    def task_log(self, ctx, path):
        """GET …/tasks/{upid}/log: `[{n, t}]` from `start` (0) up to `limit` (50) lines, "no content" when empty.

        Follows pve-manager `PVE/API2/Tasks.pm` (`read_task_log`) and pve-common `src/PVE/Tools.pm`
        (`dump_logfile`).
        """
        record = self._task_for(ctx, path)
        start = int(ctx.params.get("start", 0))
        limit = int(ctx.params.get("limit", 50))
        lines = record["log"]
        rows = []
        for idx, line in enumerate(lines):
            if idx < start:
                continue
            if limit and len(rows) >= limit:
                break
            rows.append({"n": idx + 1, "t": line})
        if not lines:
            rows.append({"n": 1, "t": "no content"})
        return rows

    def tasks_list(self, ctx, path):
        """GET /nodes/{node}/tasks: newest first; `vmid`, `typefilter`, `source` (active|archive|all), `limit`."""
        node = path["node"]
        self.node_state(node)
        rows = []
        for upid, record in self.data["tasks"].items():
            if record["node"] != node:
                continue
            if not rules.task_owner_matches(record["user"], ctx.user) and not ctx.can("/nodes/%s" % node, ["Sys.Audit"]):
                continue
            if ctx.params.get("vmid") and record["id"] != str(ctx.params["vmid"]):
                continue
            if ctx.params.get("typefilter") and record["type"] != ctx.params["typefilter"]:
                continue
            source = ctx.params.get("source", "archive")
            if source == "active" and record["status"] != "running":
                continue
            row = {"upid": upid, "node": node, "pid": record["pid"], "pstart": record["pstart"], "starttime": record["starttime"],
                   "type": record["type"], "id": record["id"], "user": record["user"]}
            if record["status"] == "stopped":
                row["status"] = record.get("exitstatus")
                row["endtime"] = record.get("endtime", record["starttime"])
            rows.append(row)
        rows.sort(key=lambda r: (r["starttime"], r["pid"]), reverse=True)
        limit = int(ctx.params.get("limit", 50))
        return rows[:limit]

    # ----------------------------------------------------------------------------------------------
    # hardware and mappings
    # ----------------------------------------------------------------------------------------------

    def hardware_pci(self, ctx, path):
        """GET /nodes/{node}/hardware/pci: needs Sys.Audit or Sys.Modify on `/` (pve-manager
        `PVE/API2/Hardware/PCI.pm`, `pci_scan`; listing rules in `rules.hardware_pci_list`)."""
        info = self.node_state(path["node"])
        ctx.check("/", ["Sys.Audit", "Sys.Modify"], any_of=True)
        verbose = as_bool(ctx.params.get("verbose"), default=1)
        devices = info.get("pci", [])
        if not info.get("iommu_present", True):
            devices = [dict(d, iommugroup=-1) for d in devices]
        return rules.hardware_pci_list(devices, ctx.params.get("pci-class-blacklist"), verbose)

    def mapping_digest(self):
        """SHA1 of the rendered mapping/pci.cfg."""
        return rules.sha1_hex(rules.render_mapping_config(self.data["mappings"]["pci"]))

    def mapping_list(self, ctx, _path):
        """GET /cluster/mapping/pci: entries the caller has Mapping.Modify, .Use or .Audit on, each with `digest`;
        with `check-node` a `checks` list (warning "No mapping for node <node>.", errors "Invalid configuration:
        …" from `assert_valid`).

        Follows pve-manager `PVE/API2/Cluster/Mapping/PCI.pm` (`index`).
        """
        check_node = ctx.params.get("check-node")
        rows = []
        digest = self.mapping_digest()
        for mid in sorted(self.data["mappings"]["pci"]):
            if not ctx.can("/mapping/pci/%s" % mid, ["Mapping.Modify", "Mapping.Use", "Mapping.Audit"], any_of=True):
                continue
            entry = copy.deepcopy(self.data["mappings"]["pci"][mid])
            entry.update({"id": mid, "type": "pci", "digest": digest})
            if check_node:
                devices = self.node_state(check_node).get("pci", [])
                checks = []
                node_entries = []
                for text in entry.get("map", []):
                    try:
                        parsed = rules.parse_mapping_entry(text)
                    except rules.FormatError:
                        continue
                    if parsed["node"] == check_node:
                        node_entries.append(parsed)
                if not node_entries:
                    checks.append({"severity": "warning", "message": "No mapping for node %s." % check_node})
                for parsed in node_entries:
                    try:
                        rules.mapping_assert_valid(mid, parsed, entry, devices)
                    except ApiError as exc:
                        checks.append({"severity": "error", "message": "Invalid configuration: %s" % exc.message})
                entry["checks"] = checks
            rows.append(entry)
        return rows

    def mapping_get(self, ctx, path):
        """GET /cluster/mapping/pci/{id}: Mapping.Use, .Modify or .Audit on the id; "mapping '<id>' not found"."""
        mid = path["id"]
        ctx.check("/mapping/pci/%s" % mid, ["Mapping.Use", "Mapping.Modify", "Mapping.Audit"], any_of=True)
        entry = self.data["mappings"]["pci"].get(mid)
        if entry is None:
            raise die("mapping '%s' not found" % mid)
        res = copy.deepcopy(entry)
        res.update({"type": "pci", "digest": self.mapping_digest()})
        return res

    @staticmethod
    def _mapping_options(params, create):
        """Validate mapping options: `description`, `mdev`, `live-migration-capable`, `map` (entries checked against
        the map format). Follows pve-guest-common `src/PVE/Mapping/PCI.pm` (`$defaultData`, `options`)."""
        errors = {}
        opts = {}
        for key, value in params.items():
            if key in ("id", "digest", "delete"):
                continue
            if key == "map":
                values = value if isinstance(value, list) else [value]
                for text in values:
                    try:
                        rules.parse_mapping_entry(text)
                    except rules.FormatError as exc:
                        errors["map"] = "invalid format - %s" % exc
                opts["map"] = list(values)
            elif key in ("mdev", "live-migration-capable"):
                parsed = rules.parse_boolean(value)
                if parsed is None:
                    errors[key] = "type check ('boolean') failed - got '%s'" % value
                opts[key] = parsed
            elif key == "description":
                opts[key] = value
            else:
                errors[key] = UNDEFINED
        if create and "map" not in params:
            errors["map"] = MISSING
        if errors:
            raise param_exc(errors)
        return opts

    def mapping_create(self, ctx, _path):
        """POST /cluster/mapping/pci: Mapping.Modify on /mapping/pci; "create hardware mapping failed: pci ID '<id>'
        already defined". Follows pve-manager `PVE/API2/Cluster/Mapping/PCI.pm` (`create`)."""
        ctx.check("/mapping/pci", ["Mapping.Modify"])
        mid = ctx.params.get("id")
        if not mid:
            raise param_exc({"id": MISSING})
        if not re.match(r"^[a-z][a-z0-9_\-]+$", mid, re.I):
            raise param_exc({"id": "invalid format - invalid configuration ID '%s'" % mid})
        opts = self._mapping_options(ctx.params, create=True)
        if mid in self.data["mappings"]["pci"]:
            raise die("create hardware mapping failed: pci ID '%s' already defined" % mid)
        self.data["mappings"]["pci"][mid] = opts
        return None

    def mapping_update(self, ctx, path):
        """PUT /cluster/mapping/pci/{id}: Mapping.Modify on the id; `digest` compared with the whole file
        ("detected modified configuration - file changed by other user? Try again."); `delete` removes options.

        Follows pve-manager `PVE/API2/Cluster/Mapping/PCI.pm` (`update`) and pve-common `src/PVE/Tools.pm`
        (`assert_if_modified`).
        """
        mid = path["id"]
        ctx.check("/mapping/pci/%s" % mid, ["Mapping.Modify"])
        opts = self._mapping_options(ctx.params, create=False)
        digest = ctx.params.get("digest")
        if digest and digest != self.mapping_digest():
            raise die("update hardware mapping failed: detected modified configuration - file changed by other user? Try again.")
        entry = self.data["mappings"]["pci"].get(mid)
        if entry is None:
            raise die("update hardware mapping failed: pci ID '%s' does not exist" % mid)
        for key in [k for k in re.split(r"[,;\s]+", ctx.params.get("delete", "") or "") if k]:
            if key == "map":
                raise die("update hardware mapping failed: cannot delete required option 'map'")
            if key not in ("description", "mdev", "live-migration-capable"):
                raise param_exc({"delete": "invalid option '%s'" % key})
            entry.pop(key, None)
        entry.update(opts)
        return None

    def mapping_delete(self, ctx, path):
        """DELETE /cluster/mapping/pci/{id}: Mapping.Modify on /mapping/pci; deleting a missing id succeeds.

        Follows pve-manager `PVE/API2/Cluster/Mapping/PCI.pm` (`delete`).
        """
        ctx.check("/mapping/pci", ["Mapping.Modify"])
        self.data["mappings"]["pci"].pop(path["id"], None)
        return None

    # ----------------------------------------------------------------------------------------------
    # node capabilities and mediated devices
    # ----------------------------------------------------------------------------------------------

    def qemu_machines(self, ctx, path):
        """GET /nodes/{node}/capabilities/qemu/machines: the machine types the node's QEMU offers (`qemu_version` of the
        node, default 9.2.0), see `rules.qemu_machine_list`. Needs Sys.Audit on /nodes/{node}.

        Follows qemu-server `src/PVE/API2/Qemu/Machine.pm` (`types`).
        """
        info = self.node_state(path["node"])
        ctx.check("/nodes/%s" % path["node"], ["Sys.Audit"])
        return rules.qemu_machine_list(info.get("qemu_version", rules.DEFAULT_QEMU_VERSION))

    def hardware_pci_mdev(self, ctx, path):
        """GET /nodes/{node}/hardware/pci/{pci-id-or-mapping}/mdev: the mdev types of a device (`mdev_types` of its
        row, or the i915 GVT-g types for a device with `mdev: 1`); a mapping id is resolved to this node's path.

        Follows pve-manager `PVE/API2/Hardware/PCI.pm` (`mdevscan`) and pve-common `src/PVE/SysFSTools.pm`
        (`get_mdev_types`).
        """
        node = path["node"]
        info = self.node_state(node)
        ctx.check("/", ["Sys.Audit", "Sys.Modify"], any_of=True)
        return rules.mdev_types(path["pciid"], info.get("pci", []), self.data["mappings"]["pci"], node)
