#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pve_vm_q35
short_description: Convert a Proxmox VE VM to the q35 machine type with OVMF (UEFI) firmware
version_added: 0.1.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Makes a Proxmox VE VM a C(q35) machine with C(ovmf) firmware and an C(efidisk0) EFI vars disk, what PCIe
    passthrough of a GPU needs, and optionally sets cores, memory and cloud-init options in the same change.
  - With O(conversion=in_place) (the default) the VM keeps its vmid, name, disks and MAC address, so a Kubernetes node
    running in it keeps its identity. A running VM is shut down only when a key that cannot be hot-applied changes
    (O(shutdown_timeout), then stopped), all keys are written in one config write guarded by the config digest, and
    the VM is started again.
  - With O(conversion=recreate), meant for guests that cannot boot with UEFI, the VM is backed up with vzdump,
    destroyed and cloned from O(template) with the same vmid and name; net0 keeps its MAC address. This needs
    O(allow_recreate=true). A run interrupted at any step can be run again; it finds the backup it made (by the notes
    it gave it) or the clone it made (by a line in its description) and carries on from there.
  - O(hostpci) entries are written in the same config write, so converting a VM and passing a GPU through to it
    costs one restart.
  - A VM that already has the wanted settings is left alone without any write request.
options:
  vmid:
    description:
      - The VM's id. Either O(vmid) or O(name) is required.
    type: int
  name:
    description:
      - The VM's name. Without O(vmid), the VM is looked up by it and must be unique in the cluster.
      - With O(vmid), the VM found must have this name; a recreated VM gets it.
    type: str
  node:
    description:
      - The cluster node the VM is on. Looked up in the cluster resources when not set.
    type: str
  machine:
    description:
      - The q35 machine type, V(q35) or a pinned version such as V(pc-q35-9.2+pve1), optionally with properties
        (V(q35,viommu=intel)).
      - A VM pinned to any q35 version already meets V(q35); a pinned version must match exactly.
    type: str
    default: q35
  efidisk_storage:
    description:
      - Storage to allocate C(efidisk0) on (C(STORAGE:1,efitype=...)) when the VM has none or its type is wrong.
      - When not set, the storage of the VM's first disk (or of its existing C(efidisk0)).
    type: str
  efitype:
    description:
      - Size of the OVMF vars image. Proxmox VE recommends V(4m); V(2m) is the old layout.
    type: str
    choices: [2m, 4m]
    default: 4m
  pre_enrolled_keys:
    description:
      - Enroll the distribution and Microsoft Secure Boot keys in the new EFI vars disk, which turns Secure Boot on.
    type: bool
    default: false
  cores:
    description:
      - CPU cores per socket.
    type: int
  memory:
    description:
      - Memory in MiB.
    type: int
  ciuser:
    description:
      - Cloud-init user name.
    type: str
  sshkeys:
    description:
      - Cloud-init public SSH keys, one per line, as plain text (the module URL-encodes them as Proxmox VE stores them).
    type: str
  ipconfig0:
    description:
      - Cloud-init IP configuration of net0, for example V(ip=192.168.1.120/24,gw=192.168.1.1) or V(ip=dhcp).
    type: str
  nameserver:
    description:
      - Cloud-init DNS servers, separated by spaces.
    type: str
  hostpci:
    description:
      - PCI devices to pass through, each a C(hostpciN) entry written together with the conversion (one restart).
      - Slots not listed are left alone. An entry is compared with what the VM has by meaning (V(00:02.0) and
        V(0000:00:02.0,rombar=1) are the same), so a VM that has it is not touched.
      - See M(homelab.gpu_passthrough.pve_hostpci) for one entry at a time, and for the permission rules - a raw
        O(hostpci[].host) needs C(root@pam) with a password; with an API token use O(hostpci[].mapping).
    type: list
    elements: dict
    default: []
    suboptions:
      slot:
        description:
          - The N of C(hostpciN), 0 to 15. Defaults to the entry's position in the list.
        type: int
      host:
        description:
          - The host PCI device as an address (V(0000:00:02.0), V(00:02.0), V(0000:01:00) for all functions) or as
            V(vendor:device) ids (V(8086:3e92)) looked up in C(/nodes/<node>/hardware/pci).
          - A new address is checked against that list before the VM is shut down.
          - Mutually exclusive with O(hostpci[].mapping).
        type: str
      mapping:
        description:
          - The id of a cluster PCI resource mapping; works with API tokens.
        type: str
      pcie:
        description:
          - Pass the device as PCI Express (C(pcie=1)); needs the q35 machine this module sets.
        type: bool
      rombar:
        description:
          - Whether the device's ROM is visible to the guest (Proxmox VE default V(true)).
        type: bool
      x_vga:
        description:
          - Mark the device as the VM's primary GPU (C(x-vga=1)).
        type: bool
      mdev:
        description:
          - Mediated device type, for example V(i915-GVTg_V5_4).
        type: str
      romfile:
        description:
          - A ROM file name under C(/usr/share/kvm/) on the node. Only C(root@pam) may set it.
        type: str
      state:
        description:
          - V(absent) removes C(hostpciN).
        type: str
        choices: [present, absent]
        default: present
  conversion:
    description:
      - V(in_place) changes the VM's config and keeps everything else.
      - V(recreate) backs the VM up, destroys it and clones O(template) in its place; only when the VM does not
        already have the wanted machine, bios and efidisk0. Other changes are always made in place.
    type: str
    choices: [in_place, recreate]
    default: in_place
  allow_recreate:
    description:
      - Allow O(conversion=recreate) to destroy the VM. Without it such a run fails before any change.
    type: bool
    default: false
  backup_before_recreate:
    description:
      - Take a vzdump backup (stop mode, zstd) to O(backup_storage) before destroying the VM. The VM is never destroyed
        without one unless this is V(false).
      - A backup this module made of the VM's current config while the VM is stopped is used again by a later run
        instead of taking another.
    type: bool
    default: true
  backup_storage:
    description:
      - Storage for the backup; it must allow the C(backup) content type.
    type: str
    default: local
  template:
    description:
      - The vmid of the template to clone for O(conversion=recreate) (a full clone, on the template's node).
    type: int
  shutdown_timeout:
    description:
      - Seconds to wait for the guest to shut down (ACPI) before the VM is stopped hard.
    type: int
    default: 180
  start:
    description:
      - Start the VM again after a conversion that stopped it (a VM that was not running stays stopped).
      - V(false) leaves it stopped, for example to attach a PCI device before the first start.
    type: bool
    default: true
extends_documentation_fragment:
  - homelab.gpu_passthrough.pve_auth
attributes:
  check_mode:
    description: Reads the VM (GET requests only) and returns the plan and the config it would lead to.
    support: full
  diff_mode:
    description: Shows the VM config before and after the change.
    support: full
notes:
  - Setting C(machine) needs C(VM.Config.HWType), C(bios) needs C(VM.Config.Options), C(efidisk0) needs C(VM.Config.Disk)
    and C(Datastore.AllocateSpace) on its storage; a recreate also needs C(VM.Backup), C(VM.Allocate), C(VM.Clone) on the
    template and C(Datastore.AllocateSpace) on O(backup_storage). An API token with these privileges is enough.
  - An in-place run killed between the shutdown and the start leaves the VM stopped; running it again completes the
    config but does not know the VM ran before.
  - With O(backup_before_recreate=false), a recreate interrupted after the destroy cannot recover the old MAC address.
requirements:
  - proxmoxer
seealso:
  - name: Proxmox VE BIOS and UEFI
    description: OVMF, efidisk0 and the machine types in the qm manual.
    link: https://pve.proxmox.com/pve-docs/chapter-qm.html#qm_bios_and_uefi
"""

EXAMPLES = r"""
- name: Convert the k3s agent VM in place (disks, MAC and vmid kept)
  homelab.gpu_passthrough.pve_vm_q35:
    api_host: pve1.home.arpa
    api_user: automation@pve
    api_token_id: ansible
    api_token_secret: "{{ vault_pve_token_secret }}"
    ca_path: files/pve-root-ca.pem
    vmid: 120
    efidisk_storage: local-lvm
  register: q35

- name: Convert and pass the iGPU through in one restart (a raw address needs root@pam)
  homelab.gpu_passthrough.pve_vm_q35:
    api_host: pve1.home.arpa
    api_user: root@pam
    api_password: "{{ vault_pve_root_password }}"
    vmid: 120
    node: pve1
    hostpci:
      - host: "0000:00:02.0"
        pcie: true
        rombar: true
        x_vga: false

- name: The same with an API token, through a cluster PCI mapping
  homelab.gpu_passthrough.pve_vm_q35:
    api_host: pve1.home.arpa
    api_user: automation@pve
    api_token_id: ansible
    api_token_secret: "{{ vault_pve_token_secret }}"
    vmid: 120
    hostpci:
      - mapping: uhd630
        pcie: true

- name: Convert, but leave the VM stopped so a GPU can be attached first
  homelab.gpu_passthrough.pve_vm_q35:
    api_host: pve1.home.arpa
    api_user: root@pam
    api_password: "{{ vault_pve_root_password }}"
    name: k3s-agent-1
    machine: pc-q35-9.2+pve1
    cores: 4
    memory: 8192
    start: false

- name: Recreate a guest that cannot boot with UEFI from a cloud-init template
  homelab.gpu_passthrough.pve_vm_q35:
    api_host: pve1.home.arpa
    api_user: root@pam
    api_password: "{{ vault_pve_root_password }}"
    vmid: 121
    conversion: recreate
    allow_recreate: true
    template: 9000
    backup_storage: local
    ciuser: ubuntu
    sshkeys: "{{ lookup('ansible.builtin.file', 'files/admin.pub') }}"
    ipconfig0: ip=192.168.1.121/24,gw=192.168.1.1
    nameserver: 192.168.1.1
"""

RETURN = r"""
plan:
  description: The steps taken (or, in check mode, that would be), in order.
  returned: always
  type: list
  elements: dict
  sample: [{"action": "shutdown"}, {"action": "set_config", "config": {"machine": "q35", "bios": "ovmf"}}, {"action": "start"}]
config:
  description: The VM config after the run (in check mode, the expected one), without C(digest).
  returned: success
  type: dict
  sample: {"machine": "q35", "bios": "ovmf", "efidisk0": "local-lvm:vm-120-disk-1,efitype=4m,pre-enrolled-keys=0,size=4M",
           "hostpci0": "0000:00:02.0,pcie=1"}
pending:
  description: Config keys still waiting in the VM's pending section (applied at the next start).
  returned: success
  type: list
  elements: str
  sample: []
backup:
  description: The volid of the vzdump backup made (or found from an interrupted run) for a recreate.
  returned: when a recreate used a backup
  type: str
  sample: local:backup/vzdump-qemu-120-2026_01_01-10_00_00.vma.zst
vmid:
  description: The VM's id.
  returned: success
  type: int
  sample: 120
node:
  description: The node the VM is on.
  returned: success
  type: str
  sample: pve1
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import hostpci, vm_plan, vm_recreate
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import (
    AUTH_ARGUMENT_SPEC,
    AUTH_MUTUALLY_EXCLUSIVE,
    AUTH_REQUIRED_ONE_OF,
    AUTH_REQUIRED_TOGETHER,
    session_from_module,
)

# Keys this module manages besides machine/bios/efidisk0; pending values of any of them are applied by a restart.
EXTRA_KEYS = ("cores", "memory", "ciuser", "sshkeys", "ipconfig0", "nameserver")
CORE_KEYS = ("machine", "bios", "efidisk0")
LONG_TASK = 3600


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


def _vm_path(node, vmid):
    return "/nodes/%s/qemu/%s" % (node, vmid)


def locate(api, p):
    """(vmid, node, resources) of the VM named by vmid/name; node None when the VM does not exist."""
    vmid, node = p["vmid"], p["node"]
    if vmid is not None and node and not p["name"] and p["conversion"] == "in_place":
        return vmid, node, None
    rows = [r for r in (api.get("/cluster/resources", type="vm") or []) if r.get("type", "qemu") == "qemu"]
    if vmid is None:
        found = [r for r in rows if r.get("name") == p["name"] and not r.get("template")]
        if len(found) != 1:
            raise PassthroughError(
                "%s VM named %r in the cluster." % ("No" if not found else "More than one", p["name"]),
                fix="give the VM's vmid." if found else "check the name, or give the vmid.",
                link="input",
                details={"option": "name"},
            )
        return int(found[0]["vmid"]), found[0]["node"], rows
    row = next((r for r in rows if int(r["vmid"]) == int(vmid)), None)
    if row is not None and node and row["node"] != node:
        raise PassthroughError(
            "VM %s is on node %s, not on %s." % (vmid, row["node"], node),
            fix="set node: %s, or leave node out." % row["node"],
            link="input",
            details={"option": "node"},
        )
    if row is None:
        return vmid, node, rows
    return vmid, row["node"], rows


def read_vm(api, node, vmid):
    """``{"status", "lock", "config", "pending"}`` of the VM, or None when it does not exist."""
    if not node:
        return None
    return api.vm_state(node, vmid)


def wait_active_tasks(api, node, vmids):
    """Wait for tasks still running on the VM or the template (a backup, destroy or clone of an interrupted run;
    a clone task carries the template's id)."""
    waited = False
    for vmid in vmids:
        if vmid is None:
            continue
        for task in api.get("/nodes/%s/tasks" % node, vmid=vmid, source="active") or []:
            waited = True
            try:
                api.wait_task(task["upid"], timeout=LONG_TASK)
            except PassthroughError:
                pass  # what the task left behind is read again and decided on
    return waited


# ---------------------------------------------------------------------------------------------
# deciding
# ---------------------------------------------------------------------------------------------


def _first_disk_storage(config):
    for key in sorted(config, key=hostpci.slot_sort_key):
        if vm_plan.PROTECTED_DISK_RE.match(key) and not key.startswith("unused") and "media=cdrom" not in str(config[key]):
            volume = str(config[key]).split(",", maxsplit=1)[0]
            if ":" in volume:
                return volume.split(":", 1)[0]
    return None


def hostpci_slot(entry, index):
    slot = entry.get("slot")
    slot = index if slot is None else slot
    if not 0 <= slot < hostpci.MAX_HOSTPCI_DEVICES:
        raise PassthroughError("hostpci[%d]: slot %d is out of range." % (index, slot),
                               fix="use a slot from 0 to %d." % (hostpci.MAX_HOSTPCI_DEVICES - 1),
                               link="input", details={"option": "hostpci"})
    return slot


def wanted_hostpci(api, p, node, config):
    """``{slot: value or None}`` from the hostpci option. A host address that differs from the VM's entry, and
    vendor:device ids, are checked against the node's device list (one read, only then)."""
    wanted = {}
    for index, entry in enumerate(p["hostpci"]):
        slot = hostpci_slot(entry, index)
        if slot in wanted:
            raise PassthroughError("hostpci names slot %d twice." % slot, fix="give each entry its own slot.",
                                   link="input", details={"option": "hostpci"})
        if entry.get("state") == "absent":
            wanted[slot] = None
            continue
        if bool(entry.get("host")) == bool(entry.get("mapping")):
            raise PassthroughError("hostpci[%d] needs exactly one of host and mapping." % index,
                                   fix="give host (a PCI address or vendor:device ids) or mapping (a cluster PCI mapping id).",
                                   link="input", details={"option": "hostpci"})
        host = None
        if entry.get("host"):
            host = hostpci.entry_host(entry, config.get("hostpci%d" % slot), node, lambda: api.pci_devices(node))
        wanted[slot] = hostpci.entry_value(entry, host)
    return wanted


def managed_keys(p):
    return CORE_KEYS + EXTRA_KEYS + tuple("hostpci%d" % hostpci_slot(e, i) for i, e in enumerate(p["hostpci"]))


def desired_config(p, config, hostpci_wanted=None):
    """The desired state for vm_plan from the options (efidisk0 storage defaulted from the VM's disks)."""
    storage = p["efidisk_storage"]
    if storage is None and not config.get("efidisk0"):
        storage = _first_disk_storage(config)
    desired = {
        "machine": p["machine"],
        "bios": "ovmf",
        "efidisk0": {"storage": storage, "efitype": p["efitype"], "pre_enrolled_keys": p["pre_enrolled_keys"]},
    }
    for key in EXTRA_KEYS:
        if p[key] is not None:
            desired[key] = p[key]
    if hostpci_wanted:
        desired["hostpci"] = dict(hostpci_wanted)
    return desired


def plan_in_place(api, p, vm, hostpci_wanted):
    """vm_plan steps for the VM as it is; the final start is dropped with start=false."""
    wanted_pending = [k for k in vm["pending"] if k in managed_keys(p)]
    steps = vm_plan.plan(vm["config"], desired_config(p, vm["config"], hostpci_wanted), running=vm["status"] == "running",
                         restart=True, user=api.authid, pending=wanted_pending)
    if not p["start"]:
        steps = [s for s in steps if s["action"] != "start"]
    return steps


def is_converted(p, config):
    changes, _deletes = vm_plan.compute(config, {k: v for k, v in desired_config(p, config).items() if k in CORE_KEYS})
    return not changes


def check_machine(machine):
    if hostpci.machine_base_type(machine) != "q35":
        raise PassthroughError(
            "machine %r is not a q35 machine type." % machine,
            fix="use q35 or a pinned version such as pc-q35-9.2+pve1.",
            link="input",
            details={"option": "machine"},
        )


# ---------------------------------------------------------------------------------------------
# applying
# ---------------------------------------------------------------------------------------------


def shutdown(module, api, node, vmid):
    """ACPI shutdown with the timeout; if it does not stop the VM in time, a hard stop."""
    timeout = module.params["shutdown_timeout"]
    try:
        upid = api.post(_vm_path(node, vmid) + "/status/shutdown", timeout=timeout)
        api.wait_task(upid, timeout=timeout + 30)
        return
    except PassthroughError as err:
        module.warn("VM %s did not shut down within %s s (%s); stopping it." % (vmid, timeout, err.message))
    upid = api.post(_vm_path(node, vmid) + "/status/stop")
    api.wait_task(upid, timeout=120)


def write_config(api, node, vmid, config=None, delete=None, digest=None):
    params = dict(config or {})
    if delete:
        params["delete"] = ",".join(delete)
    if digest:
        params["digest"] = digest
    api.put(_vm_path(node, vmid) + "/config", **params)


def run_steps(module, api, node, vmid, steps, refresh_digest=False):
    """Carry out vm_plan steps; a set_config and a following delete go in one write with the digest."""
    digest = None
    index = 0
    while index < len(steps):
        step = steps[index]
        action = step["action"]
        if action == "shutdown":
            shutdown(module, api, node, vmid)
            if refresh_digest:
                # pending values were applied by the stop: take the config as it is now
                return "replan"
        elif action == "start":
            api.wait_task(api.post(_vm_path(node, vmid) + "/status/start"), timeout=LONG_TASK)
        elif action in ("set_config", "delete"):
            config, delete = (step["config"], None) if action == "set_config" else ({}, step["keys"])
            digest = step.get("digest") or digest
            if action == "set_config" and index + 1 < len(steps) and steps[index + 1]["action"] == "delete":
                delete = steps[index + 1]["keys"]
                index += 1
            write_config(api, node, vmid, config, delete, digest)
            digest = None
        index += 1
    return "done"


def restart_after_failure(module, api, node, vmid):
    """Best effort: a VM this run shut down is started again (with its config as it is) before the run fails."""
    try:
        if (api.get(_vm_path(node, vmid) + "/status/current") or {}).get("status") == "stopped":
            api.wait_task(api.post(_vm_path(node, vmid) + "/status/start"), timeout=LONG_TASK)
    except PassthroughError as err:
        module.warn("VM %s could not be started again after the failure: %s" % (vmid, err))


def convert_in_place(module, api, node, vmid, vm, hostpci_wanted):
    """Plan and (unless check mode) apply; returns the steps."""
    p = module.params
    steps = plan_in_place(api, p, vm, hostpci_wanted)
    if not steps or module.check_mode:
        return steps
    wanted_pending = [k for k in vm["pending"] if k in managed_keys(p)]
    try:
        outcome = run_steps(module, api, node, vmid, steps, refresh_digest=bool(wanted_pending))
    except PassthroughError:
        if steps[0]["action"] == "shutdown" and p["start"]:
            restart_after_failure(module, api, node, vmid)
        raise
    if outcome == "replan":
        fresh = read_vm(api, node, vmid)
        rest = vm_plan.plan(fresh["config"], desired_config(p, fresh["config"], hostpci_wanted), running=False, user=api.authid)
        run_steps(module, api, node, vmid, rest)
        if p["start"]:
            api.wait_task(api.post(_vm_path(node, vmid) + "/status/start"), timeout=LONG_TASK)
    return steps


def find_backup(api, node, p, vmid, digest=None):
    rows = api.get("/nodes/%s/storage/%s/content" % (node, p["backup_storage"]), content="backup", vmid=vmid) or []
    return rows, vm_recreate.newest_backup(rows, vmid, digest)


class Recreate:
    """Carries out the steps vm_recreate.decide returned, re-reading what each step needs."""

    def __init__(self, module, api, node, vmid, decision, vm, template_node, hostpci_wanted):
        self.module, self.api, self.node, self.vmid = module, api, node, vmid
        self.hostpci_wanted = hostpci_wanted
        self.d = decision
        self.vm = vm
        self.template_node = template_node
        self.backup = decision["backup"]
        self.todo = vm_recreate.clone_todo(decision["steps"])

    def run(self):
        for step in self.d["steps"]:
            getattr(self, "do_" + step["action"])(step)

    def do_shutdown(self, _step):
        shutdown(self.module, self.api, self.node, self.vmid)

    def do_backup(self, _step):
        p, api = self.module.params, self.api
        config = api.get(_vm_path(self.node, self.vmid) + "/config")
        notes = vm_recreate.backup_notes(self.vmid, config["digest"], self.d["mac"], config.get("name"), self.d["running"])
        upid = api.post("/nodes/%s/vzdump" % self.node, vmid=self.vmid, storage=p["backup_storage"], mode="stop",
                        compress="zstd", **{"notes-template": notes})
        api.wait_task(upid, timeout=LONG_TASK)
        found = find_backup(api, self.node, p, self.vmid, config["digest"])[1]
        if not found:
            raise PassthroughError(
                "The vzdump task %s finished but no backup of VM %s is listed on %s." % (upid, self.vmid, p["backup_storage"]),
                fix="check the task log and the storage, then run again.",
                link="vm_config",
            )
        self.backup = found[0]["volid"]

    def do_destroy(self, _step):
        vm_recreate.check_destroy(self.vmid, self.backup, self.module.params["backup_before_recreate"])
        self.api.wait_task(self.api.delete(_vm_path(self.node, self.vmid)), timeout=LONG_TASK)

    def do_clone(self, step):
        p = self.module.params
        old = (self.vm or {}).get("config", {}).get("description")
        params = {"newid": self.vmid, "full": True, "name": p["name"] or self.d["name"],
                  "description": vm_recreate.with_mark(old, vm_recreate.mark_line(step["template"], self.backup, self.d["mac"], self.todo))}
        if self.node != self.template_node:
            params["target"] = self.node
        upid = self.api.post(_vm_path(self.template_node, step["template"]) + "/clone", **params)
        self.api.wait_task(upid, timeout=LONG_TASK)

    def do_configure(self, _step):
        p, api = self.module.params, self.api
        config = api.get(_vm_path(self.node, self.vmid) + "/config")
        mark = vm_recreate.parse_mark(config.get("description")) or {}
        todo = [t for t in self.todo if t == "start"]
        desired = desired_config(p, config, self.hostpci_wanted)
        if self.d["mac"] and config.get("net0"):
            desired["net0"] = vm_recreate.net_with_mac(config["net0"], self.d["mac"])
        line = vm_recreate.mark_line(mark.get("template"), mark.get("backup"), mark.get("mac") or self.d["mac"], todo)
        desired["description"] = vm_recreate.with_mark(config.get("description"), line)
        running = self.d["mode"] == "resume" and (self.vm or {}).get("status") == "running"
        steps = vm_plan.plan(config, desired, running=running, user=api.authid)
        run_steps(self.module, api, self.node, self.vmid, steps)

    def do_start(self, _step):
        self.api.wait_task(self.api.post(_vm_path(self.node, self.vmid) + "/status/start"), timeout=LONG_TASK)

    def do_finish(self, _step):
        config = self.api.get(_vm_path(self.node, self.vmid) + "/config")
        mark = vm_recreate.parse_mark(config.get("description"))
        if mark and mark["todo"]:
            line = vm_recreate.mark_line(mark["template"], mark["backup"], mark["mac"])
            write_config(self.api, self.node, self.vmid, {"description": vm_recreate.with_mark(config.get("description"), line)},
                         digest=config.get("digest"))


def predicted_recreate(api, p, vm, decision, template_node, vmid, hostpci_wanted):
    """The config a recreate would lead to (check mode and diff): the template's, named, MAC kept, converted."""
    if decision["mode"] == "resume":
        config = dict(vm["config"])
    else:
        config = dict(api.get(_vm_path(template_node, p["template"]) + "/config") or {})
        config.pop("template", None)
        config["name"] = p["name"] or decision["name"] or config.get("name")
    desired = desired_config(p, config, hostpci_wanted)
    if decision["mac"] and config.get("net0"):
        desired["net0"] = vm_recreate.net_with_mac(config["net0"], decision["mac"])
    return vm_plan.apply_plan(config, vm_plan.plan(config, desired), vmid=vmid)


# ---------------------------------------------------------------------------------------------
# the module
# ---------------------------------------------------------------------------------------------


def find_vm(api, p):
    """(vmid, node, resources, vm): the VM read after tasks of an interrupted recreate have ended; vm None if absent."""
    vmid, node, resources = locate(api, p)
    if p["conversion"] == "recreate" and node and wait_active_tasks(api, node, [vmid, p["template"]]):
        vmid, node, resources = locate(api, p)
    exists = resources is None or any(int(r["vmid"]) == int(vmid) for r in resources)
    vm = read_vm(api, node, vmid) if exists else None
    if vm is not None and p["name"] and p["vmid"] is not None and vm["config"].get("name") != p["name"]:
        raise PassthroughError(
            "VM %s is named %r, not %r." % (vmid, vm["config"].get("name"), p["name"]),
            fix="check vmid and name; leave name out to convert the VM whatever its name.",
            link="input",
            details={"option": "name"},
        )
    if vm is None and p["conversion"] == "in_place":
        raise PassthroughError("VM %s does not exist%s." % (vmid, " on node %s" % node if node else ""),
                               fix="check vmid and node.", link="input", details={"option": "vmid"})
    return vmid, node, resources, vm


def decide_recreate(module, api, vmid, node, resources, vm):
    """(decision, node, template_node) for conversion=recreate (GET requests only)."""
    p = module.params
    template_row = next((r for r in resources if p["template"] is not None and int(r["vmid"]) == int(p["template"])), None)
    if p["template"] is not None and template_row is None:
        raise PassthroughError("Template %s does not exist." % p["template"], fix="set template to an existing template's vmid.",
                               link="input", details={"option": "template"})
    template_node = template_row["node"] if template_row else None
    node = node or template_node
    skip = not node or (vm is not None and (vm["status"] == "running" or not p["backup_before_recreate"]))
    backups = [] if skip else find_backup(api, node, p, vmid)[0]
    converted = vm is not None and is_converted(p, vm["config"])
    decision = vm_recreate.decide(vm, converted, p["template"], backups, vmid, p["allow_recreate"], p["backup_before_recreate"], p["start"])
    for warning in decision["warnings"]:
        module.warn(warning)
    return decision, node, template_node


def run(module):
    p = module.params
    check_machine(p["machine"])
    api = session_from_module(module)
    vmid, node, resources, vm = find_vm(api, p)
    before = {k: v for k, v in (vm or {}).get("config", {}).items() if k != "digest"}
    decision, template_node = {"mode": "in_place"}, None
    if p["conversion"] == "recreate":
        decision, node, template_node = decide_recreate(module, api, vmid, node, resources, vm)
    result = {"changed": False, "vmid": vmid, "node": node}

    hostpci_wanted = wanted_hostpci(api, p, node, vm["config"] if vm and decision["mode"] == "in_place" else {})
    if decision["mode"] == "in_place":
        result["plan"] = convert_in_place(module, api, node, vmid, vm, hostpci_wanted)
        after = vm_plan.apply_plan(before, result["plan"], vmid=vmid)
    else:
        result["plan"] = decision["steps"]
        result["backup"] = decision["backup"]
        if module.check_mode:
            after = predicted_recreate(api, p, vm, decision, template_node, vmid, hostpci_wanted)
        else:
            job = Recreate(module, api, node, vmid, decision, vm, template_node, hostpci_wanted)
            job.run()
            result["backup"] = job.backup
        if not result["backup"]:
            del result["backup"]
    result["changed"] = bool(result["plan"])

    result["pending"] = (vm or {}).get("pending", [])
    if result["changed"] and not module.check_mode:
        config, result["pending"] = api.vm_config(node, vmid)
        after = {k: v for k, v in config.items() if k != "digest"}
    result["config"] = after
    if module._diff and result["changed"]:
        result["diff"] = {"before": before, "after": after}
    return result


def main():
    argument_spec = dict(
        vmid=dict(type="int"),
        name=dict(type="str"),
        node=dict(type="str"),
        machine=dict(type="str", default="q35"),
        efidisk_storage=dict(type="str"),
        efitype=dict(type="str", default="4m", choices=["2m", "4m"]),
        pre_enrolled_keys=dict(type="bool", default=False),
        cores=dict(type="int"),
        memory=dict(type="int"),
        ciuser=dict(type="str"),
        sshkeys=dict(type="str", no_log=False),
        ipconfig0=dict(type="str"),
        nameserver=dict(type="str"),
        conversion=dict(type="str", default="in_place", choices=["in_place", "recreate"]),
        allow_recreate=dict(type="bool", default=False),
        backup_before_recreate=dict(type="bool", default=True),
        backup_storage=dict(type="str", default="local"),
        template=dict(type="int"),
        hostpci=dict(type="list", elements="dict", default=[], options=dict(
            slot=dict(type="int"),
            host=dict(type="str"),
            mapping=dict(type="str"),
            pcie=dict(type="bool"),
            rombar=dict(type="bool"),
            x_vga=dict(type="bool"),
            mdev=dict(type="str"),
            romfile=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        )),
        shutdown_timeout=dict(type="int", default=180),
        start=dict(type="bool", default=True),
    )
    argument_spec.update(AUTH_ARGUMENT_SPEC)
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=AUTH_REQUIRED_ONE_OF + [("vmid", "name")],
        required_together=AUTH_REQUIRED_TOGETHER,
        mutually_exclusive=AUTH_MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )
    try:
        result = run(module)
    except PassthroughError as err:
        module.fail_json(**err.to_result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
