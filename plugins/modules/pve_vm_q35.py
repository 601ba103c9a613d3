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
      - Valid values are 100..999999999; any other value is refused before anything is sent or changed.
    type: int
  name:
    description:
      - The VM's name. Without O(vmid), the VM is looked up by it and must be unique in the cluster.
      - With O(vmid), the VM found must have this name; a recreated VM gets it.
      - An empty string is refused.
    type: str
  node:
    description:
      - The cluster node the VM is on. Looked up in the cluster resources when not set.
      - An empty string means the same as leaving the option out.
    type: str
  machine:
    description:
      - The q35 machine type, V(q35) or a pinned version such as V(pc-q35-9.2+pve1), optionally with properties
        (V(q35,viommu=intel)).
      - Any q35 machine string meets V(q35) and is left as it is (its C(viommu) and pinned version included); a pinned
        version must match exactly. Properties given here are set, properties not given keep their live values.
      - A pinned version is checked against the machines the node's QEMU offers before the VM is touched.
      - An empty string is refused.
    type: str
    default: q35
  efidisk_storage:
    description:
      - Storage to allocate C(efidisk0) on (C(STORAGE:1,efitype=...)) when the VM has none (or with O(replace_efidisk)).
      - When not set, the storage of the VM's first disk (or of its existing C(efidisk0)).
      - It must exist on the VM's node, be active and take disk images; that is checked before the VM is touched.
      - An empty string is refused.
    type: str
  efitype:
    description:
      - Size of the OVMF vars image of a new EFI disk. Proxmox VE recommends V(4m); V(2m) is the old layout.
      - An existing C(efidisk0) of another type is kept unless O(replace_efidisk=true).
    type: str
    choices: [2m, 4m]
    default: 4m
  pre_enrolled_keys:
    description:
      - Enroll the distribution and Microsoft Secure Boot keys in a new EFI vars disk, which turns Secure Boot on.
      - Not set, a new disk gets Proxmox VE's default (no keys) and an existing one is kept whatever it has.
    type: bool
  replace_efidisk:
    description:
      - Replace an existing C(efidisk0) whose type or keys differ from O(efitype) and O(pre_enrolled_keys).
      - B(The EFI variables (NVRAM) of the old disk are lost) - boot entries, Secure Boot keys and state; the old volume
        stays as C(unusedN). Without this option an existing EFI disk is always kept.
    type: bool
    default: false
  cores:
    description:
      - CPU cores per socket; at most the node's CPUs (checked before the VM is touched). Not set, the live value stays.
      - Valid values are at least 1; any other value is refused before anything is sent or changed.
    type: int
  memory:
    description:
      - Memory in MiB, 16 up to the node's memory (checked before the VM is touched). Not set, the live value stays.
      - Valid values are at least 16; any other value is refused before anything is sent or changed.
    type: int
  ciuser:
    description:
      - Cloud-init user name.
      - An empty string is refused.
    type: str
  sshkeys:
    description:
      - Cloud-init public SSH keys, one per line, as plain text (the module URL-encodes them as Proxmox VE stores them).
      - An empty string is refused.
    type: str
  ipconfig0:
    description:
      - Cloud-init IP configuration of net0, for example V(ip=192.168.1.120/24,gw=192.168.1.1) or V(ip=dhcp).
      - An empty string is refused.
    type: str
  nameserver:
    description:
      - Cloud-init DNS servers, separated by spaces.
      - An empty string is refused.
    type: str
  hostpci:
    description:
      - PCI devices to pass through, each a C(hostpciN) entry written together with the conversion (one restart).
      - Slots not listed are left alone, and options an entry does not give keep their live values (C(driver=keep),
        C(romfile), C(x-vga)). An entry is compared with what the VM has by meaning (V(00:02.0) and
        V(0000:00:02.0,rombar=1) are the same), so a VM that has it is not touched.
      - See M(homelab.gpu_passthrough.pve_hostpci) for one entry at a time, and for the permission rules - a raw
        O(hostpci[].host) needs C(root@pam) with a password; with an API token use O(hostpci[].mapping).
    type: list
    elements: dict
    default: []
    # suboptions: from the homelab.gpu_passthrough.hostpci.entries doc fragment
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
      - An empty string is refused.
    type: str
    default: local
  template:
    description:
      - The vmid of the template to clone for O(conversion=recreate) (a full clone, on the template's node).
      - It must be a template, and on the VM's node unless its disks are on shared storage (checked before the destroy).
      - The clone keeps the old VM's cores, memory, sockets, static C(ipconfig0), nameserver, C(ciuser), C(sshkeys) and
        net0 MAC address unless those options are given.
      - Valid values are 100..999999999; any other value is refused before anything is sent or changed.
    type: int
  recreate_drop_disks:
    description:
      - Disks of the VM (such as V(scsi1)) the template does not have, which a recreate may leave out of the clone
        (they stay in the backup). A recreate of a VM with such a disk not listed here is refused before anything is
        stopped.
      - An empty string as an item is refused.
    type: list
    elements: str
    default: []
  shutdown_timeout:
    description:
      - Seconds to wait for the guest to shut down (ACPI). Only when they really passed with the guest still running
        is the VM stopped hard, with a warning saying so; API errors while waiting are retried.
      - Valid values are at least 0; any other value is refused before anything is sent or changed. With 0 a guest still
        running is stopped hard at once, as Proxmox VE does with a shutdown timeout of 0.
    type: int
    default: 180
  start:
    description:
      - Start the VM again after a conversion that stopped it (a VM that was not running stays stopped).
      - V(false) leaves it stopped, for example to attach a PCI device before the first start.
      - A start that fails leaves a line in the VM's description; the next run starts the VM (once the cause is
        fixed) and removes it, so a run never reports C(ok) for a VM a run left stopped.
    type: bool
    default: true
extends_documentation_fragment:
  - homelab.gpu_passthrough.pve_auth
  - homelab.gpu_passthrough.hostpci.entries
attributes:
  check_mode:
    description: Reads the VM (GET requests only) and returns the plan and the config it would lead to.
    support: full
  diff_mode:
    description: Shows the VM config before and after the change.
    support: full
notes:
  - Every value to be written is checked against the node and the API before the VM is shut down or any write is made
    (storage, QEMU machine versions, CPUs and memory, mapping for the node, mdev types, romfile, cloud-init formats,
    the VM's lock, the API user's privileges for the new and the old values); a refused input changes nothing.
  - Setting C(machine) needs C(VM.Config.HWType), C(bios) needs C(VM.Config.Options), C(efidisk0) needs C(VM.Config.Disk)
    and C(Datastore.AllocateSpace) on its storage; a recreate also needs C(VM.Backup), C(VM.Allocate), C(VM.Clone) on the
    template and C(Datastore.AllocateSpace) on O(backup_storage). An API token with these privileges is enough.
  - An in-place run killed between the shutdown and the start leaves the VM stopped; running it again completes the
    config but does not know the VM ran before (M(homelab.gpu_passthrough.pve_vm_power) starts it).
  - Any failure of a recreate after the destroy names the backup and the C(qmrestore) command to restore it.
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

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import vm as pve_vm
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.client import pve_module, session_from_module
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.hostpci import entry_argument_spec


def run(module):
    p = module.params
    pve_vm.check_q35_machine(p["machine"])
    service = pve_vm.VmService(session_from_module(module), warn=module.warn, shutdown_timeout=p["shutdown_timeout"])
    if p["conversion"] == "recreate":
        result = pve_vm.Recreate(service, p, module.check_mode).run()
        if result is not None:
            return result
    vm = service.find(p["vmid"], p["name"], p["node"])
    wanted = pve_vm.desired_hostpci(service.api, p["hostpci"], vm["node"], vm["config"])
    desired = pve_vm.q35_desired(p, vm["config"], wanted)
    steps = service.converge(vm, desired, module.check_mode, start=p["start"], inputs=pve_vm.Q35_INPUTS)
    return pve_vm.result_of(service, vm, steps, module.check_mode, module._diff)


def main():
    argument_spec = dict(
        vmid=dict(type="int"),
        name=dict(type="str"),
        node=dict(type="str"),
        machine=dict(type="str", default="q35"),
        efidisk_storage=dict(type="str"),
        efitype=dict(type="str", default="4m", choices=["2m", "4m"]),
        pre_enrolled_keys=dict(type="bool"),
        replace_efidisk=dict(type="bool", default=False),
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
        recreate_drop_disks=dict(type="list", elements="str", default=[]),
        hostpci=dict(type="list", elements="dict", default=[], options=dict(slot=dict(type="int"), **entry_argument_spec())),
        shutdown_timeout=dict(type="int", default=180),
        start=dict(type="bool", default=True),
    )
    module = pve_module(
        argument_spec,
        ranges=dict(vmid=option_checks.VMID, template=option_checks.VMID, cores=option_checks.CORES,
                    memory=option_checks.MEMORY_MIB, shutdown_timeout=option_checks.SHUTDOWN_TIMEOUT,
                    **{"hostpci.slot": option_checks.HOSTPCI_SLOT}),
        empty_means_default=("node",),
        required_one_of=[("vmid", "name")],
    )
    option_checks.exit_with(module, lambda: run(module))


if __name__ == "__main__":
    main()
