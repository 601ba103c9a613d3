# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VM service: locate, read, prove inputs, shutdown/start, write with the digest, run a vm_plan.

Every module that changes a VM goes through ``VmService``, so there is one restart behaviour and one
permission rule:

1. ``locate`` and ``read`` (status, lock, config with ``digest``, pending keys) -- GET only;
2. ``plan`` (``vm_plan.plan``: only what is asked, permission rules on the new and old values);
3. ``prove`` every value the plan writes against the node and the API (storage, QEMU machines,
   CPUs and memory, mapping for this node, mdev types, romfile, cloud-init formats, lock,
   privileges) -- GET only, before anything is stopped or written;
4. ``apply``: shutdown (transient API errors while waiting are retried; a hard stop only once
   ``shutdown_timeout`` really passed with the guest still running), one config write guarded by the
   digest, start. A start that fails after a change leaves a line in the VM's description (see
   ``START_MARK``), so the next run starts the VM once the cause is fixed and never reports ``ok``
   for a VM a run left stopped. The description is used because it is written at once even on a
   running VM (qemu-server: src/PVE/QemuServer.pm $fast_plug_option) and shows in the GUI's Notes.
"""

from __future__ import annotations

import time

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import pci_ids
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import config as pve_config
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import hostpci
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import plan as vm_plan
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import recreate as vm_recreate

LONG_TASK = 3600
START_MARK = "[homelab.gpu_passthrough] start pending:"
MARKED_TEXT = "; it is left stopped and marked in its description, so the next run starts it."
# Seconds the shutdown task may run past its own timeout before the wait gives up on it.
SHUTDOWN_GRACE = 30
WAIT_RETRY_PAUSE = 0.5


def vm_path(node, vmid):
    return "/nodes/%s/qemu/%s" % (node, vmid)


def start_pending(config):
    """The reason text of the start mark in the VM's description, or None."""
    for line in str((config or {}).get("description") or "").splitlines():
        if line.startswith(START_MARK):
            return line[len(START_MARK):].strip() or "unknown"
    return None


def with_start_mark(description, reason=None):
    """``description`` without its start mark, plus a new one when ``reason`` is given."""
    mark = "%s %s" % (START_MARK, " ".join(str(reason).split())[:200]) if reason else None
    return pve_config.with_description_line(description, lambda line: line.startswith(START_MARK), mark)


class VmService:
    """One VM link session over a ``PveSession`` (or anything with ``get/post/put/delete/wait_task/authid``)."""

    def __init__(self, api, warn=None, shutdown_timeout=180, force_stop=True):
        self.api = api
        self._warn = warn
        self.shutdown_timeout = shutdown_timeout
        self.force_stop = force_stop
        self.warnings = []
        self.power_log = []

    def warn(self, message):
        self.warnings.append(message)
        if self._warn:
            self._warn(message)

    # ------------------------------------------------------------------ locate and read
    def locate(self, vmid=None, name=None, node=None):
        """(vmid, node) of the VM named by ``vmid`` and/or ``name``; node None when it does not exist."""
        if vmid is not None and node and not name:
            return int(vmid), node
        rows = [r for r in (self.api.get("/cluster/resources", type="vm") or []) if r.get("type", "qemu") == "qemu"]
        if vmid is None:
            found = [r for r in rows if r.get("name") == name and not r.get("template")]
            if len(found) != 1:
                raise PassthroughError(
                    "%s VM named %r in the cluster (option name)." % ("No" if not found else "More than one", name),
                    fix="give the VM's vmid." if found else "check the name, or give the vmid.",
                    details={"option": "name", "value": name},
                )
            return int(found[0]["vmid"]), found[0]["node"]
        row = next((r for r in rows if int(r["vmid"]) == int(vmid)), None)
        if row is not None and node and row["node"] != node:
            raise PassthroughError(
                "VM %s is on node %s, not on %s (option node)." % (vmid, row["node"], node),
                fix="set node: %s, or leave node out." % row["node"],
                details={"option": "node", "value": node},
            )
        if row is not None and name and row.get("name") != name:
            raise PassthroughError(
                "VM %s is named %r, not %r (option name)." % (vmid, row.get("name"), name),
                fix="check vmid and name; leave name out to work on the VM whatever its name.",
                details={"option": "name", "value": name},
            )
        return int(vmid), (row["node"] if row else None)

    def read(self, node, vmid):
        """``{vmid, node, status, lock, template, config (with digest), pending, digest}``."""
        try:
            state = self.api.vm_state(node, vmid)
        except PassthroughError as err:
            if err.details.get("status") in (404, 500) and "does not exist" in str(err.details.get("pve_message", "")):
                raise PassthroughError("VM %s does not exist on node %s (option vmid)." % (vmid, node), fix="check vmid and node.",
                                       details={"option": "vmid", "value": vmid}) from None
            raise
        config = state["config"]
        return {"vmid": int(vmid), "node": node, "status": state["status"], "lock": state.get("lock") or config.get("lock"),
                "template": bool(pve_config.parse_bool(config.get("template", 0))), "config": config,
                "pending": state["pending"], "digest": config.get("digest")}

    def find(self, vmid=None, name=None, node=None):
        vmid, node = self.locate(vmid, name, node)
        if node is None:
            raise PassthroughError("VM %s does not exist in the cluster (option vmid)." % vmid,
                                   fix="check vmid, or that the API user has VM.Audit on /vms/%s." % vmid,
                                   details={"option": "vmid", "value": vmid})
        return self.read(node, vmid)

    # ------------------------------------------------------------------ plan
    def plan(self, vm, desired, start=True, restart=True, all_pending=False):
        """vm_plan steps for ``desired`` on ``vm`` (permission rules checked); a start mark adds a start.

        A restart also applies values already pending for the keys of ``desired`` (every pending key
        with ``all_pending``)."""
        wanted, absent = vm_plan.flatten_desired(desired)
        keys = set(wanted) | set(absent)
        pending = [k for k in vm["pending"] if all_pending or k in keys]
        user = self.api.authid
        steps = vm_plan.plan(vm["config"], desired, running=vm["status"] == "running", restart=restart, user=user,
                             pending=pending, romfile_root_only=self._romfile_root_only(vm["config"], desired, user))
        if not start:
            steps = [s for s in steps if s["action"] != "start"]
        reason = start_pending(vm["config"])
        if reason and start:
            if vm["status"] != "running" and not any(s["action"] == "start" for s in steps):
                steps.append({"action": "start", "reason": "left stopped by an earlier run: %s" % reason})
            steps.append({"action": "clear_start_mark"})
        return steps

    def _romfile_root_only(self, config, desired, user):
        """qemu-server 9.2.6 (PVE 9.2) made ``romfile`` root@pam only, even with a mapping (PVE/API2/Qemu.pm
        check_hostpci_perm); older releases let a mapping user set it. Asks GET /version only when it matters."""
        if user is None or hostpci.is_root(user):
            return True
        wanted, absent = vm_plan.flatten_desired(desired)
        values = [v for k, v in wanted.items() if k.startswith("hostpci")]
        values += [config[k] for k in list(wanted) + list(absent) if k.startswith("hostpci") and k in config]
        if not any("romfile" in (v if isinstance(v, str) else hostpci.format(v)) for v in values):
            return True
        release = str((self.api.get("/version") or {}).get("release") or "")
        return pve_config.release_at_least(release, (9, 2))

    # ------------------------------------------------------------------ prove
    def prove(self, vm, steps, inputs=None):
        """Check every value ``steps`` write against the node and the API; raise before anything is disrupted.

        ``inputs`` maps config keys to the module option that gave them (``{"efidisk0": "efidisk_storage"}``),
        so a refusal names the option the user wrote. GET requests only, each one only when a value needs it.
        """
        Proof(self.api, vm, inputs or {}).run(steps)

    # ------------------------------------------------------------------ power
    def status(self, node, vmid):
        return (self.api.get(vm_path(node, vmid) + "/status/current") or {}).get("status", "stopped")

    def shutdown(self, vm, timeout=None, force=None):
        """ACPI shutdown; a hard stop only when ``timeout`` seconds really passed with the guest still running."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        force = self.force_stop if force is None else force
        node, vmid = vm["node"], vm["vmid"]
        started = time.monotonic()
        upid = self.api.post(vm_path(node, vmid) + "/status/shutdown", timeout=timeout)
        ended = self._wait(upid, started + timeout + SHUTDOWN_GRACE)
        if ended is True:
            self.power_log.append("shutdown")
            return "shutdown"
        state = self._status_retrying(node, vmid, started + timeout + SHUTDOWN_GRACE)
        waited = time.monotonic() - started
        if state == "stopped":
            self.power_log.append("shutdown")
            return "shutdown"
        if waited < timeout:
            raise PassthroughError(
                "VM %s: the shutdown task ended after %.0f s, before shutdown_timeout (%s s), with: %s; the VM still runs "
                "and was not stopped." % (vmid, waited, timeout, ended),
                fix="remove the cause named above (a lock, a guest that refuses ACPI) and run again.",
                link="vm_config",
                details={"upid": upid, "option": "shutdown_timeout"},
            )
        if not force:
            raise PassthroughError(
                "VM %s still runs %.0f s after the shutdown request (shutdown_timeout %s s); it was not stopped hard." % (vmid, waited, timeout),
                fix="check that the guest handles ACPI power button events (qemu-guest-agent or acpid), raise shutdown_timeout, "
                    "or allow a hard stop.",
                link="vm_config",
                details={"upid": upid, "option": "shutdown_timeout"},
            )
        self.warn("VM %s was still running %.0f s after the shutdown request (shutdown_timeout %s s; the shutdown task ended with: %s); "
                  "it was stopped hard." % (vmid, waited, timeout, ended))
        self.api.wait_task(self.api.post(vm_path(node, vmid) + "/status/stop"), timeout=120)
        self.power_log.append("stop")
        return "stop"

    def _wait(self, upid, deadline):
        """True when the task ended well, else its error text; transient API errors are retried until ``deadline``."""
        while True:
            try:
                self.api.wait_task(upid, timeout=max(deadline - time.monotonic(), 1))
                return True
            except PassthroughError as err:
                if err.details.get("exitstatus") is not None or "upid" in err.details:
                    return err.details.get("exitstatus") or err.message
                if not err.details.get("transient") or time.monotonic() >= deadline:
                    raise
            time.sleep(WAIT_RETRY_PAUSE)

    def _status_retrying(self, node, vmid, deadline):
        while True:
            try:
                return self.status(node, vmid)
            except PassthroughError as err:
                if not err.details.get("transient") or time.monotonic() >= deadline:
                    raise
            time.sleep(WAIT_RETRY_PAUSE)

    def start(self, vm, mark_on_failure=False):
        """Start the VM; with ``mark_on_failure`` a failed start leaves the start mark in the description."""
        node, vmid = vm["node"], vm["vmid"]
        try:
            upid = self.api.post(vm_path(node, vmid) + "/status/start")
            ended = self._wait(upid, time.monotonic() + LONG_TASK)
        except PassthroughError as err:
            ended = err.message
        if ended is True:
            self.power_log.append("start")
            return
        marked = mark_on_failure and self._mark(vm, ended)
        raise PassthroughError(
            "VM %s could not be started: %s%s" % (vmid, ended, MARKED_TEXT if marked else "."),
            fix="correct the cause named above (the task log has details) and run again.",
            link="vm_config",
            details={"vmid": vmid, "start_pending": bool(marked)},
        )

    def _mark(self, vm, reason):
        try:
            config = self.api.get(vm_path(vm["node"], vm["vmid"]) + "/config") or {}
            self.write(vm, {"description": with_start_mark(config.get("description"), reason)})
            return True
        except PassthroughError as err:
            self.warn("VM %s is stopped and its start mark could not be written: %s" % (vm["vmid"], err))
            return False

    def write(self, vm, config=None, delete=None, digest=None):
        params = dict(config or {})
        if delete:
            params["delete"] = ",".join(delete)
        if digest:
            params["digest"] = digest
        self.api.put(vm_path(vm["node"], vm["vmid"]) + "/config", **params)

    # ------------------------------------------------------------------ apply
    def apply(self, vm, steps, desired=None, start=True):
        """Carry out ``steps``. A shutdown applies pending values and changes the digest: then the write is
        planned again from the config as it is (``desired`` needed for that)."""
        index = 0
        stopped_by_us = False
        try:
            while index < len(steps):
                step = steps[index]
                action = step["action"]
                if action == "shutdown":
                    self.shutdown(vm)
                    stopped_by_us = True
                    if vm["pending"] and desired is not None:
                        fresh = self.read(vm["node"], vm["vmid"])
                        rest = vm_plan.plan(fresh["config"], desired, running=False, user=self.api.authid)
                        rest = [s for s in rest if s["action"] in ("set_config", "delete")]
                        tail = [s for s in steps[index + 1:] if s["action"] not in ("set_config", "delete")]
                        steps = steps[: index + 1] + rest + tail
                elif action in ("set_config", "delete"):
                    config, delete = (step["config"], None) if action == "set_config" else ({}, step["keys"])
                    if action == "set_config" and index + 1 < len(steps) and steps[index + 1]["action"] == "delete":
                        delete = steps[index + 1]["keys"]
                        index += 1
                    self.write(vm, config, delete, step.get("digest"))
                elif action == "start":
                    self.start(vm, mark_on_failure=True)
                    stopped_by_us = False
                elif action == "clear_start_mark":
                    config = self.api.get(vm_path(vm["node"], vm["vmid"]) + "/config") or {}
                    text = with_start_mark(config.get("description"))
                    self.write(vm, {"description": text} if text else None, delete=None if text else ["description"])
                index += 1
        except PassthroughError as err:
            if stopped_by_us and start and not err.details.get("vmid"):
                self._start_after_failure(vm, err)
            raise
        return steps

    def _start_after_failure(self, vm, err):
        """A VM this run shut down is started again (its config as it is) before the run fails."""
        try:
            if self.status(vm["node"], vm["vmid"]) == "stopped":
                self.start(vm, mark_on_failure=True)
        except PassthroughError as again:
            self.warn("VM %s could not be started again after %s: %s" % (vm["vmid"], err.message, again))

    def power(self, vm, state, check_mode=False):
        """Bring the VM to ``state`` (``started``/``stopped``); returns the steps. A started VM that still carries a
        start mark loses it (the earlier failure is over)."""
        steps = []
        running = vm["status"] == "running"
        if state == "started" and not running:
            steps.append({"action": "start"})
        if state == "stopped" and running:
            steps.append({"action": "shutdown"})
        if state == "started" and start_pending(vm["config"]):
            steps.append({"action": "clear_start_mark"})
        if steps:
            Proof(self.api, vm, {}).check_state(steps)
        if steps and not check_mode:
            self.apply(vm, steps, start=state == "started")
        return steps

    def converge(self, vm, desired, check_mode=False, start=True, inputs=None, restart=True, all_pending=False):
        """plan -> prove -> apply; returns the steps (nothing done in check mode)."""
        steps = self.plan(vm, desired, start=start, restart=restart, all_pending=all_pending)
        if steps:
            self.prove(vm, steps, inputs)
        if steps and not check_mode:
            steps = self.apply(vm, steps, desired=desired, start=start)
        return steps


# qemu-server: src/PVE/API2/Qemu.pm $check_vm_modify_config_perm -- the privilege each key needs
PRIVILEGE_OF = (
    (("cores", "sockets", "cpu", "vcpus", "cpulimit", "cpuunits", "affinity", "numa"), "VM.Config.CPU"),
    (("memory", "balloon", "shares"), "VM.Config.Memory"),
    (("ciuser", "cipassword", "citype", "ciupgrade", "sshkeys", "nameserver", "searchdomain", "cicustom"), "VM.Config.Cloudinit"),
    (("name", "description", "tags", "bios", "onboot", "boot", "startup", "protection", "agent", "ostype"), "VM.Config.Options"),
)


def privilege_for(key):
    if key == "efidisk0" or vm_plan.PROTECTED_DISK_RE.match(key) or key.startswith("tpmstate"):
        return "VM.Config.Disk"
    if key.startswith("ipconfig"):
        return "VM.Config.Cloudinit"
    if key.startswith("net"):
        return "VM.Config.Network"
    for keys, privilege in PRIVILEGE_OF:
        if key in keys:
            return privilege
    return "VM.Config.HWType"  # machine, hostpciN, vga, usbN, serialN, ... (the default branch)


class Proof:
    """The checks of ``VmService.prove``; each read is made once and only when a value needs it."""

    def __init__(self, api, vm, inputs):
        self.api, self.vm, self.inputs = api, vm, inputs
        self.node = vm["node"]
        self._cache = {}

    def _get(self, url, **params):
        key = (url, tuple(sorted(params.items())))
        if key not in self._cache:
            self._cache[key] = self.api.get(url, **params)
        return self._cache[key]

    def refuse(self, key, value, message, fix, link="input"):
        option = self.inputs.get(key, key)
        raise PassthroughError("%s=%r: %s; nothing was changed." % (option, value, message), fix=fix, link=link,
                               details={"option": option, "value": value})

    def check_vm(self):
        """Not a template, not locked (qemu-server: PVE/QemuConfig.pm check_lock, "VM is locked (<lock>)")."""
        vm = self.vm
        if vm["template"]:
            self.refuse("vmid", vm["vmid"], "VM %s is a template" % vm["vmid"], "give the vmid of a VM, not of a template.")
        if vm["lock"]:
            self.refuse("vmid", vm["vmid"], "VM %s is locked (%s) by another task, e.g. a backup or migration" % (vm["vmid"], vm["lock"]),
                        "wait for that task to finish (Datacenter > Tasks) and run again; remove a stale lock with "
                        "'qm unlock %s' on node %s only when no task runs." % (vm["vmid"], self.node), link="vm_config")

    def check_state(self, steps):
        """The checks a power change needs: not a template, not locked, VM.PowerMgmt."""
        self.check_vm()
        keys = ["description"] if any(s["action"] == "clear_start_mark" for s in steps) else []
        self.check_privileges(keys, {}, steps, force=True)

    def run(self, steps):
        self.check_vm()
        changes = {}
        for step in steps:
            if step["action"] == "set_config":
                changes.update(step["config"])
        deletes = [k for s in steps if s["action"] == "delete" for k in s["keys"]]
        for key in sorted(changes, key=pve_config.slot_sort_key):
            self.check_value(key, changes[key])
        self.check_privileges(sorted(set(changes) | set(deletes)), changes, steps)

    # ------------------------------------------------------------------ values
    def check_value(self, key, value):
        if key == "machine":
            self.check_machine(value)
        elif key == "efidisk0":
            volume = str(value).split(",", maxsplit=1)[0]
            if vm_plan.NEW_DISK_RE.match(volume):
                self.check_storage(key, volume.split(":", 1)[0])
        elif key in ("cores", "sockets", "memory"):
            self.check_size(key, value)
        elif key.startswith("ipconfig") or key in ("sshkeys", "nameserver"):
            problem = pve_config.cloudinit_problem(key, value)
            if problem:
                self.refuse(key, value, problem[0], problem[1])
        elif key.startswith("hostpci"):
            self.check_hostpci(key, value)

    def check_machine(self, value):
        for _prop, message, fix in pve_config.machine_problems(value):
            self.refuse("machine", value, message, fix + ".")
        mtype = pve_config.parse_machine(value)["type"]
        if pve_config.machine_version(value) is None:
            return
        # qemu-server: src/PVE/API2/Qemu/Machine.pm (GET /nodes/{node}/capabilities/qemu/machines) lists what the
        # node's QEMU offers; QemuServer.pm config_to_command refuses a newer machine ("Installed QEMU version ... is too old")
        try:
            machines = self._get("/nodes/%s/capabilities/qemu/machines" % self.node) or []
        except PassthroughError as err:
            if err.details.get("status") in (404, 501):
                return
            raise
        offered = {str(m.get("id")) for m in machines}
        base = mtype.split("+pve")[0].replace(".pxe", "")
        if mtype not in offered and base not in offered:
            newest = sorted((m for m in offered if ("q35" in m) == ("q35" in mtype)), key=pve_config.machine_version_key)
            self.refuse("machine", value, "node %s's QEMU does not offer machine version %s" % (self.node, mtype),
                        "use 'q35' (the newest the node has) or a version the node lists, e.g. %s." % (newest[-1] if newest else "q35"))

    def check_storage(self, key, storage):
        # A running VM whose disk lives on the storage proves it: enabled on this node, active, holding images.
        if self.vm["status"] == "running" and any(str(self.vm["config"][k]).split(":", 1)[0] == storage
                                                  for k in data_disks(self.vm["config"])):
            return
        # pve-manager: PVE/API2/Storage/Status.pm index -- enabled storages of the node, 'content' filter, 'active'
        rows = self._get("/nodes/%s/storage" % self.node) or []
        row = next((r for r in rows if r.get("storage") == storage), None)
        names = sorted(r["storage"] for r in rows if "images" in str(r.get("content", "")).split(",") and r.get("active", 1))
        fix = "set efidisk_storage to a storage of node %s that takes disk images: %s." % (self.node, ", ".join(names) or "none found")
        if row is None:
            self.refuse(key, storage, "storage %s does not exist on node %s (or the API user cannot see it)" % (storage, self.node), fix)
        if "images" not in str(row.get("content", "")).split(","):
            self.refuse(key, storage, "storage %s does not take disk images (content %s)" % (storage, row.get("content")), fix)
        if not pve_config.parse_bool(row.get("active", 1)) or not pve_config.parse_bool(row.get("enabled", 1)):
            self.refuse(key, storage, "storage %s is not active on node %s" % (storage, self.node), fix)

    def check_size(self, key, value):
        text = str(value)
        number = int(text) if text.isdigit() else None
        if key == "memory":
            number = int(pve_config.parse_properties(text, "current").get("current", "x")) if text.split(",", maxsplit=1)[0].isdigit() else None
        minimum = 16 if key == "memory" else 1  # qemu-server: $confdesc memory (min 16 MiB), cores/sockets (min 1)
        if number is None or number < minimum:
            self.refuse(key, value, "%s must be a whole number of at least %d%s" % (key, minimum, " MiB" if key == "memory" else ""),
                        "give e.g. %s: %s." % (key, "4096" if key == "memory" else "4"))
        status = self._get("/nodes/%s/status" % self.node) or {}
        if key == "memory":
            total = int((status.get("memory") or {}).get("total") or 0) // (1 << 20)
            if total and number > total:
                self.refuse(key, value, "node %s has %d MiB of memory" % (self.node, total), "give at most %d." % total)
            return
        cpus = int((status.get("cpuinfo") or {}).get("cpus") or 0)
        config = self.vm["config"]
        cores = number if key == "cores" else int(config.get("cores", 1))
        sockets = number if key == "sockets" else int(config.get("sockets", 1))
        # qemu-server: src/PVE/QemuServer.pm config_to_command "MAX %s vcpus allowed per VM on this node"
        if cpus and cores * sockets > cpus:
            self.refuse(key, value, "%d sockets x %d cores is more than the %d CPUs of node %s" % (sockets, cores, cpus, self.node),
                        "give at most %d cores per socket." % max(cpus // max(sockets, 1), 1))

    def check_hostpci(self, key, value):
        parsed = hostpci.parse(value)
        options = parsed["options"]
        romfile = options.get("romfile")
        if romfile and ("/" in romfile or romfile.startswith(".")):
            self.refuse(key, value, "romfile %r is not a plain file name in /usr/share/kvm/" % romfile,
                        "copy the ROM to /usr/share/kvm/ on the node and give its file name only, e.g. romfile: vbios.rom.")
        if parsed["mapping"]:
            self.check_mapping(key, value, parsed["mapping"])
        if options.get("mdev"):
            device = parsed["mapping"] or pci_address(parsed)
            # pve-manager: PVE/API2/Hardware/PCI.pm mdevscan (GET /nodes/{node}/hardware/pci/{pci-id-or-mapping}/mdev)
            types = self._get("/nodes/%s/hardware/pci/%s/mdev" % (self.node, device)) or []
            offered = sorted(str(t.get("type")) for t in types)
            if options["mdev"] not in offered:
                self.refuse(key, value, "device %s on node %s does not offer mdev type %s" % (device, self.node, options["mdev"]),
                            "use one of: %s." % (", ".join(offered) or "none (the device has no mediated devices; drop mdev)"))

    def check_mapping(self, key, value, mapping):
        # pve-manager: PVE/API2/Cluster/Mapping/PCI.pm index with check-node: each mapping's problems for that node
        rows = self._get("/cluster/mapping/pci", **{"check-node": self.node}) or []
        row = next((r for r in rows if r.get("id") == mapping), None)
        if row is None:
            self.refuse(key, value, "PCI mapping %r does not exist (or the API user lacks Mapping.Use on /mapping/pci/%s)" % (mapping, mapping),
                        "create it with homelab.gpu_passthrough.pve_pci_mapping (with an entry for node %s) or fix the id." % self.node)
        for check in row.get("checks") or []:
            self.refuse(key, value, "PCI mapping %r has no valid entry for node %s: %s" % (mapping, self.node, check.get("message")),
                        "add or correct the map entry for node %s (homelab.gpu_passthrough.pve_pci_mapping)." % self.node)

    # ------------------------------------------------------------------ privileges
    def check_privileges(self, keys, changes, steps, force=False):
        user = self.api.authid
        if hostpci.is_root(user) or not (keys or force):
            return
        needed = {}
        vms = "/vms/%s" % self.vm["vmid"]
        for key in keys:
            needed.setdefault(vms, set()).add(privilege_for(key))
            value = changes.get(key)
            if key.startswith("hostpci") and value:
                mapping = hostpci.parse(value)["mapping"]
                if mapping:
                    needed.setdefault("/mapping/pci/%s" % mapping, set()).add("Mapping.Use")
            if key == "efidisk0" and value and vm_plan.NEW_DISK_RE.match(str(value).split(",", maxsplit=1)[0]):
                needed.setdefault("/storage/%s" % str(value).split(":", 1)[0], set()).add("Datastore.AllocateSpace")
        if any(s["action"] in ("shutdown", "start") for s in steps):
            needed.setdefault(vms, set()).add("VM.PowerMgmt")
        for path, privileges in sorted(needed.items()):
            have = (self._get("/access/permissions", path=path) or {}).get(path) or {}
            # the value is the ACL entry's propagate bit, not a grant: a listed privilege is granted even at 0
            # (pve-access-control src/PVE/RPCEnvironment.pm permissions, check: "defined($perm->{$priv})")
            missing = sorted(p for p in privileges if p not in have)
            if missing:
                keys_needing = sorted(k for k in keys if privilege_for(k) in missing) or keys
                # a power change alone (pve_vm_power) sets no key: it is the state option that needs VM.PowerMgmt
                needed_for = "set %s" % ", ".join(keys_needing) if keys_needing else "shut down or start VM %s" % self.vm["vmid"]
                raise PassthroughError(
                    "API user %s lacks %s on %s, needed to %s; nothing was changed or stopped."
                    % (user, ", ".join(missing), path, needed_for),
                    fix="grant %s on %s to %s (e.g. role PVEVMAdmin on /vms, PVEMappingUser on /mapping/pci), or leave those "
                        "options out." % (", ".join(missing), path, user),
                    details={"option": keys_needing[0] if keys_needing else "state", "missing": missing, "path": path},
                )


def pci_address(parsed):
    return pci_ids.with_function(parsed["hosts"][0]) if parsed["hosts"] else None


# ---------------------------------------------------------------------------------------------
# desired states from the options of pve_vm_q35 and pve_hostpci
# ---------------------------------------------------------------------------------------------

Q35_EXTRA_KEYS = ("cores", "memory", "ciuser", "sshkeys", "ipconfig0", "nameserver")
Q35_CORE_KEYS = ("machine", "bios", "efidisk0")
# the option that gave a config key, so a refusal names what the user wrote
Q35_INPUTS = {"efidisk0": "efidisk_storage"}


def check_q35_machine(machine):
    """The ``machine`` option: a q35 type Proxmox VE knows (checked before any request)."""
    problems = pve_config.machine_problems(machine)
    if problems:
        _key, message, fix = problems[0]
        raise PassthroughError("machine=%r: %s." % (machine, message), fix=fix + ".", details={"option": "machine", "value": machine})
    if not pve_config.is_q35(machine):
        raise PassthroughError("machine=%r is not a q35 machine type." % machine, fix="use q35 or a pinned version such as pc-q35-9.2+pve1.",
                               details={"option": "machine", "value": machine})


def hostpci_slot(entry, index):
    slot = entry.get("slot")
    slot = index if slot is None else slot
    if not 0 <= slot < hostpci.MAX_HOSTPCI_DEVICES:
        raise PassthroughError("slot=%d is out of range (hostpci entry %d)." % (slot, index),
                               fix="use a slot from 0 to %d." % (hostpci.MAX_HOSTPCI_DEVICES - 1),
                               details={"option": "hostpci", "value": slot})
    return slot


def desired_hostpci(api, entries, node, config):
    """``{slot: value or None}`` for hostpci entries; a new host address and vendor:device ids are checked against the
    node's device list (one read, only then). Options an entry leaves out keep the slot's live value."""
    wanted = {}
    for index, entry in enumerate(entries):
        slot = hostpci_slot(entry, index)
        if slot in wanted:
            raise PassthroughError("hostpci names slot %d twice." % slot, fix="give each entry its own slot.",
                                   details={"option": "hostpci", "value": slot})
        if entry.get("state") == "absent":
            wanted[slot] = None
            continue
        if bool(entry.get("host")) == bool(entry.get("mapping")):
            raise PassthroughError("hostpci[%d] needs exactly one of host and mapping." % index,
                                   fix="give host (a PCI address or vendor:device ids) or mapping (a cluster PCI mapping id).",
                                   details={"option": "hostpci", "value": entry.get("host") or entry.get("mapping")})
        if entry.get("mapping") and not pci_ids.is_config_id(entry["mapping"]):
            raise PassthroughError("hostpci[%d].mapping=%r is not a mapping id." % (index, entry["mapping"]),
                                   fix="a mapping id starts with a letter followed by letters, digits, '-' or '_'.",
                                   details={"option": "mapping", "value": entry["mapping"]})
        previous = config.get("hostpci%d" % slot)
        host = None
        if entry.get("host"):
            try:
                host = hostpci.entry_host(entry, previous, node, lambda: api.pci_devices(node))
            except PassthroughError as err:
                raise PassthroughError("host=%r: %s" % (entry["host"], err.message), fix=err.fix, link=err.link,
                                       details=dict(err.details, option="host", value=entry["host"])) from None
        wanted[slot] = hostpci.entry_value(entry, host, previous=previous)
    return wanted


def first_disk_storage(config):
    for key in sorted(config, key=pve_config.slot_sort_key):
        if vm_plan.PROTECTED_DISK_RE.match(key) and not key.startswith("unused") and "media=cdrom" not in str(config[key]):
            volume = str(config[key]).split(",", maxsplit=1)[0]
            if ":" in volume:
                return volume.split(":", 1)[0]
    return None


def q35_desired(p, config, hostpci_wanted=None):
    """The desired state of pve_vm_q35's options: q35 (any q35 string meets it), OVMF, an EFI disk (any existing one
    meets it unless ``replace_efidisk``), the extra keys that were given, the hostpci entries."""
    storage = p.get("efidisk_storage")
    if storage is None and not config.get("efidisk0"):
        storage = first_disk_storage(config)
    desired = {
        "machine": p["machine"],
        "bios": "ovmf",
        "efidisk0": {"storage": storage, "efitype": p.get("efitype") or "4m", "pre_enrolled_keys": p.get("pre_enrolled_keys"),
                     "replace": bool(p.get("replace_efidisk"))},
    }
    if not p.get("replace_efidisk"):
        desired["efidisk0"]["efitype"] = None  # any existing disk meets it; a new one gets 4m
    for key in Q35_EXTRA_KEYS:
        if p.get(key) is not None:
            desired[key] = p[key]
    if hostpci_wanted:
        desired["hostpci"] = dict(hostpci_wanted)
    return desired


def is_converted(p, config):
    changes, _deletes = vm_plan.compute(config, {k: v for k, v in q35_desired(p, config).items() if k in Q35_CORE_KEYS})
    return not changes


def result_of(service, vm, steps, check_mode=False, diff=False):
    """The module result after ``steps``: plan, config (expected in check mode), pending, vmid, node, diff."""
    before = {k: v for k, v in vm["config"].items() if k != "digest"}
    after = vm_plan.apply_plan(before, [s for s in steps if s["action"] in ("set_config", "delete")], vmid=vm["vmid"])
    pending = vm["pending"]
    if steps and not check_mode:
        config, pending = service.api.vm_config(vm["node"], vm["vmid"])
        after = {k: v for k, v in config.items() if k != "digest"}
    result = {"changed": bool(steps), "plan": steps, "config": after, "pending": pending, "vmid": vm["vmid"], "node": vm["node"]}
    if diff and steps:
        result["diff"] = {"before": before, "after": after}
    return result


# ---------------------------------------------------------------------------------------------
# recreate from a template (conversion=recreate of pve_vm_q35)
# ---------------------------------------------------------------------------------------------

# keys of the old VM carried over to the clone unless the user gave them (the guest keeps its identity)
CARRIED_KEYS = ("cores", "memory", "sockets", "ipconfig0", "nameserver", "searchdomain", "ciuser", "sshkeys")


def data_disks(config):
    """Disk keys holding a volume (not a CD-ROM, not the cloud-init drive)."""
    keys = []
    for key, value in config.items():
        if vm_plan.PROTECTED_DISK_RE.match(key) and not key.startswith("unused"):
            text = str(value)
            if "media=cdrom" in text or "cloudinit" in text.split(",", maxsplit=1)[0]:
                continue
            keys.append(key)
    return sorted(keys, key=pve_config.slot_sort_key)


def restore_hint(vmid, backup, node):
    if not backup:
        return "no backup was taken (backup_before_recreate: false)."
    return "restore it with 'qmrestore %s %s --force 1' on node %s (or Datacenter > Backup > Restore)." % (backup, vmid, node)


class Recreate:
    """Carries out ``vm_recreate.decide``'s steps, proving before the destroy what the clone needs."""

    def __init__(self, service, p, check_mode=False):
        self.service, self.api, self.p, self.check_mode = service, service.api, p, check_mode
        self.backup = None
        self.decision = None
        self._node = None

    def locate(self):
        p = self.p
        rows = [r for r in (self.api.get("/cluster/resources", type="vm") or []) if r.get("type", "qemu") == "qemu"]
        vmid = p["vmid"]
        if vmid is None:
            vmid, _node = self.service.locate(None, p["name"], None)
        row = next((r for r in rows if int(r["vmid"]) == int(vmid)), None)
        template = next((r for r in rows if p["template"] is not None and int(r["vmid"]) == int(p["template"])), None)
        if p["template"] is not None and template is None:
            raise PassthroughError("template=%s does not exist." % p["template"], fix="set template to an existing template's vmid.",
                                   details={"option": "template", "value": p["template"]})
        node = (row or {}).get("node") or p["node"] or (template or {}).get("node")
        if row is not None and p["node"] and row["node"] != p["node"]:
            raise PassthroughError("VM %s is on node %s, not on %s (option node)." % (vmid, row["node"], p["node"]),
                                   fix="set node: %s, or leave node out." % row["node"], details={"option": "node", "value": p["node"]})
        waited = False
        for check in (vmid, p["template"]):
            for task in (self.api.get("/nodes/%s/tasks" % node, vmid=check, source="active") or []) if check is not None else []:
                waited = True
                try:
                    self.api.wait_task(task["upid"], timeout=LONG_TASK)
                except PassthroughError:
                    pass  # what the task left behind is read again and decided on
        if waited:
            return self.locate()
        return int(vmid), node, row is not None, template

    def run(self):
        p = self.p
        vmid, node, exists, template_row = self.locate()
        vm = self.service.read(node, vmid) if exists else None
        if vm is not None and p["name"] and p["vmid"] is not None and vm["config"].get("name") != p["name"]:
            raise PassthroughError("VM %s is named %r, not %r (option name)." % (vmid, vm["config"].get("name"), p["name"]),
                                   fix="check vmid and name.", details={"option": "name", "value": p["name"]})
        backups = []
        if vm is None or (vm["status"] != "running" and p["backup_before_recreate"]):
            backups = self.find_backups(node, vmid)
        converted = vm is not None and is_converted(p, vm["config"])
        decision = vm_recreate.decide(vm, converted, p["template"], backups, vmid, p["allow_recreate"], p["backup_before_recreate"], p["start"])
        self.decision = decision
        for warning in decision["warnings"]:
            self.service.warn(warning)
        if decision["mode"] == "in_place":
            return None
        template_node = template_row["node"] if template_row else None
        if decision["mode"] == "recreate":
            self.prove(vm, vmid, node, template_row)
        self.backup = decision["backup"]
        result = {"changed": True, "plan": decision["steps"], "vmid": vmid, "node": node}
        if self.check_mode:
            result["config"] = self.predicted(vm, template_node, vmid)
            result["pending"] = []
        else:
            for step in decision["steps"]:
                self.do(step, vm, vmid, node, template_node)
            config, result["pending"] = self.api.vm_config(node, vmid)
            result["config"] = {k: v for k, v in config.items() if k != "digest"}
        if self.backup:
            result["backup"] = self.backup
        return result

    # ------------------------------------------------------------------ proof before the destroy
    def prove(self, vm, vmid, node, template_row):
        p = self.p
        template = self.api.get(vm_path(template_row["node"], p["template"]) + "/config") or {}
        if not pve_config.parse_bool(template.get("template", 0)):
            raise PassthroughError("template=%s (%s) is a VM, not a template; nothing was changed." % (p["template"], template.get("name")),
                                   fix="convert it with 'qm template %s' or give the vmid of a template." % p["template"],
                                   details={"option": "template", "value": p["template"]})
        if template_row["node"] != node:
            storages = {s["storage"]: s for s in (self.api.get("/nodes/%s/storage" % template_row["node"]) or [])}
            local = sorted({str(template[k]).split(":", 1)[0] for k in data_disks(template)
                            if not pve_config.parse_bool((storages.get(str(template[k]).split(":", 1)[0]) or {}).get("shared", 0))})
            if local:
                # qemu-server: src/PVE/API2/Qemu.pm clone_vm -- a target node needs the template's disks on shared storage
                raise PassthroughError(
                    "template=%s is on node %s with disks on local storage %s; it cannot be cloned to node %s; nothing was changed."
                    % (p["template"], template_row["node"], ", ".join(local), node),
                    fix="use a template on node %s, or put the template's disks on shared storage." % node,
                    details={"option": "template", "value": p["template"]})
        # the values the clone will get, proven now: a bad cores, ipconfig0 or storage must not surface after the destroy
        self._node = node
        config = {k: v for k, v in template.items() if k != "template"}
        clone = {"vmid": vmid, "node": node, "status": "stopped", "lock": None, "template": False, "config": config, "pending": [],
                 "digest": None}
        Proof(self.api, clone, Q35_INPUTS).run(vm_plan.plan(config, self.desired_for_clone(config, vm)))
        if vm is None:
            return
        Proof(self.api, vm, {}).check_vm()
        missing = [k for k in data_disks(vm["config"]) if k not in template and k not in (p.get("recreate_drop_disks") or [])]
        if missing:
            raise PassthroughError(
                "VM %s has disks the template %s lacks: %s; a recreate would drop them; nothing was changed."
                % (vmid, p["template"], ", ".join("%s (%s)" % (k, vm["config"][k]) for k in missing)),
                fix="list them in recreate_drop_disks to drop them from the clone (they stay in the backup), or use conversion: in_place.",
                details={"option": "recreate_drop_disks", "value": missing})

    def find_backups(self, node, vmid, digest=None):
        rows = self.api.get("/nodes/%s/storage/%s/content" % (node, self.p["backup_storage"]), content="backup", vmid=vmid) or []
        return rows if digest is None else vm_recreate.newest_backup(rows, vmid, digest)

    # ------------------------------------------------------------------ steps
    def do(self, step, vm, vmid, node, template_node):
        action = step["action"]
        try:
            if action == "shutdown":
                self.service.shutdown(vm)
            elif action == "backup":
                self.take_backup(vmid, node)
            elif action == "destroy":
                vm_recreate.check_destroy(vmid, self.backup, self.p["backup_before_recreate"])
                self.api.wait_task(self.api.delete(vm_path(node, vmid)), timeout=LONG_TASK)
            elif action == "clone":
                self.clone(step, vm, vmid, node, template_node)
            elif action == "configure":
                self.configure(vm, vmid, node)
            elif action == "start":
                self.service.start({"vmid": vmid, "node": node}, mark_on_failure=True)
            elif action == "finish":
                self.finish(vmid, node)
        except PassthroughError as err:
            if action in ("clone", "configure", "start", "finish"):
                raise PassthroughError(
                    "%s (recreate of VM %s, step %s, after the old VM was destroyed)" % (err.message.rstrip("."), vmid, action),
                    fix="%s Run again to carry on, or %s" % (err.fix or "", restore_hint(vmid, self.backup, node)),
                    link=err.link, details=dict(err.details, backup=self.backup)) from None
            raise

    def take_backup(self, vmid, node):
        config = self.api.get(vm_path(node, vmid) + "/config")
        d = self.decision
        notes = vm_recreate.backup_notes(vmid, config["digest"], d["mac"], config.get("name"), d["running"])
        upid = self.api.post("/nodes/%s/vzdump" % node, vmid=vmid, storage=self.p["backup_storage"], mode="stop", compress="zstd",
                             **{"notes-template": notes})
        self.api.wait_task(upid, timeout=LONG_TASK)
        found = self.find_backups(node, vmid, config["digest"])
        if not found:
            raise PassthroughError(
                "The vzdump task %s finished but no backup of VM %s is listed on %s; the VM was not destroyed." % (upid, vmid, self.p["backup_storage"]),
                fix="check the task log and the storage, then run again.", link="vm_config")
        self.backup = found[0]["volid"]

    def carried(self, vm):
        """Settings of the old VM the clone keeps unless the user gave them: cores, memory, static ipconfig0, ..."""
        config = (vm or {}).get("config") or {}
        kept = {}
        for key in CARRIED_KEYS:
            if self.p.get(key) is None and config.get(key) is not None:
                if key == "ipconfig0" and "ip=dhcp" in str(config[key]):
                    continue
                kept[key] = config[key]
        return kept

    def clone(self, step, vm, vmid, node, template_node):
        d = self.decision
        old = ((vm or {}).get("config") or {}).get("description")
        todo = vm_recreate.clone_todo(d["steps"])
        params = {"newid": vmid, "full": True, "name": self.p["name"] or d["name"],
                  "description": vm_recreate.with_mark(old, vm_recreate.mark_line(step["template"], self.backup, d["mac"], todo))}
        if node != template_node:
            params["target"] = node
        self.api.wait_task(self.api.post(vm_path(template_node, step["template"]) + "/clone", **params), timeout=LONG_TASK)

    def desired_for_clone(self, config, vm):
        desired = q35_desired(self.p, config)
        desired.update({k: v for k, v in self.carried(vm).items() if k not in desired})
        if self.p.get("hostpci"):
            desired["hostpci"] = desired_hostpci(self.api, self.p["hostpci"], self._node, config)
        if self.decision["mac"] and config.get("net0"):
            desired["net0"] = vm_recreate.net_with_mac(config["net0"], self.decision["mac"])
        return desired

    def configure(self, vm, vmid, node):
        self._node = node
        config = self.api.get(vm_path(node, vmid) + "/config")
        mark = vm_recreate.parse_mark(config.get("description")) or {}
        todo = [t for t in vm_recreate.clone_todo(self.decision["steps"]) if t == "start"]
        desired = self.desired_for_clone(config, vm)
        line = vm_recreate.mark_line(mark.get("template"), mark.get("backup"), mark.get("mac") or self.decision["mac"], todo)
        desired["description"] = vm_recreate.with_mark(config.get("description"), line)
        fresh = {"vmid": vmid, "node": node, "status": "stopped", "lock": None, "template": False, "config": config, "pending": [],
                 "digest": config.get("digest")}
        steps = vm_plan.plan(config, desired, running=False, user=self.api.authid)
        self.service.apply(fresh, steps, start=False)

    def finish(self, vmid, node):
        config = self.api.get(vm_path(node, vmid) + "/config")
        mark = vm_recreate.parse_mark(config.get("description"))
        if mark and mark["todo"]:
            line = vm_recreate.mark_line(mark["template"], mark["backup"], mark["mac"])
            self.service.write({"vmid": vmid, "node": node}, {"description": vm_recreate.with_mark(config.get("description"), line)},
                               digest=config.get("digest"))

    def predicted(self, vm, template_node, vmid):
        """The config a recreate would lead to (check mode and diff): the template's, named, MAC kept, converted."""
        self._node = template_node
        if self.decision["mode"] == "resume":
            config = dict(vm["config"])
        else:
            config = dict(self.api.get(vm_path(template_node, self.p["template"]) + "/config") or {})
            config.pop("template", None)
            config["name"] = self.p["name"] or self.decision["name"] or config.get("name")
        desired = self.desired_for_clone(config, vm)
        return vm_plan.apply_plan(config, vm_plan.plan(config, desired), vmid=vmid)


def info(vm):
    """pve_vm_info's ``vm``: the read VM with its hostpciN entries parsed (``error`` for a value that does not parse)."""
    config = {k: v for k, v in vm["config"].items() if k != "digest"}
    entries = {}
    for key in sorted((k for k in config if k.startswith("hostpci") and k[7:].isdigit()), key=pve_config.slot_sort_key):
        try:
            parsed = hostpci.parse(config[key])
            entries[key] = {f: parsed[f] for f in ("host", "hosts", "mapping", "options", "raw")}
        except PassthroughError as err:
            entries[key] = {"raw": config[key], "error": str(err)}
    return {"vmid": vm["vmid"], "node": vm["node"], "name": config.get("name"), "status": vm["status"], "lock": vm["lock"],
            "template": vm["template"], "config": config, "pending": list(vm["pending"]), "digest": vm["digest"], "hostpci": entries}
