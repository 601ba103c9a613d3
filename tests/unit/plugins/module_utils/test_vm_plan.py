# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_plan: minimal ordered steps, convergence, disk safety, permissions, diff."""

import os
from urllib.parse import quote

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import plan as vm_plan
from ansible_collections.homelab.gpu_passthrough.tests.unit import output_readers

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBzq7pJd0Yw8oN6vQm3sXo4tJfZ2HqkQy1U9n8bW5Yp admin@workstation"

# A k3s agent as the blog's Terraform left it: i440fx + SeaBIOS, cloud-init on ide2, one disk.
K3S_AGENT = {
    "agent": "1",
    "boot": "order=scsi0;ide2;net0",
    "cipassword": "**********",
    "ciuser": "ubuntu",
    "cores": "4",
    "cpu": "host",
    "ide2": "local-lvm:vm-120-cloudinit,media=cdrom",
    "ipconfig0": "ip=192.168.1.120/24,gw=192.168.1.1",
    "memory": "8192",
    "meta": "creation-qemu=9.0.2,ctime=1731054484",
    "name": "k3s-agent-1",
    "nameserver": "192.168.1.1",
    "net0": "virtio=BC:24:11:5A:7E:01,bridge=vmbr0,firewall=1",
    "numa": "0",
    "ostype": "l26",
    "scsi0": "local-lvm:vm-120-disk-0,discard=on,iothread=1,size=64G,ssd=1",
    "scsihw": "virtio-scsi-single",
    "smbios1": "uuid=6f1c3f4e-2a0b-4c55-9d1e-0f3b2c1d4e5f",
    "sockets": "1",
    "sshkeys": quote(SSH_KEY + "\n", safe=""),
    "vmgenid": "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a",
    "digest": "2c8a1f0e9d7b6a5c4e3d2b1a0f9e8d7c6b5a4f3e",
}

CONVERT = {
    "machine": "q35",
    "bios": "ovmf",
    "efidisk0": {"storage": "local-lvm", "efitype": "4m", "pre_enrolled_keys": False},
}
ATTACH = {"hostpci": {0: {"host": "0000:00:02.0", "pcie": True}}}


def converge(current, desired, **kwargs):
    steps = vm_plan.plan(current, desired, **kwargs)
    return steps, vm_plan.apply_plan(current, steps, vmid=120)


def test_in_place_conversion_of_a_stopped_vm():
    steps = vm_plan.plan(K3S_AGENT, CONVERT)
    assert steps == [
        {
            "action": "set_config",
            "config": {"machine": "q35", "bios": "ovmf", "efidisk0": "local-lvm:1,efitype=4m,pre-enrolled-keys=0"},
            "digest": K3S_AGENT["digest"],
        }
    ]


def test_in_place_conversion_keeps_disks_mac_and_boot_order():
    _steps, after = converge(K3S_AGENT, CONVERT)
    for key in ("scsi0", "ide2", "net0", "boot", "name", "smbios1", "vmgenid", "sshkeys", "ipconfig0"):
        assert after[key] == K3S_AGENT[key], key
    assert after["efidisk0"] == "local-lvm:vm-120-disk-1,efitype=4m,pre-enrolled-keys=0"
    assert (after["machine"], after["bios"]) == ("q35", "ovmf")
    assert not any(key.startswith("unused") for key in after)


def test_running_vm_is_shut_down_changed_and_started():
    steps = vm_plan.plan(K3S_AGENT, dict(CONVERT, **ATTACH), running=True)
    assert [s["action"] for s in steps] == ["shutdown", "set_config", "start"]
    assert steps[1]["config"] == {
        "machine": "q35",
        "bios": "ovmf",
        "efidisk0": "local-lvm:1,efitype=4m,pre-enrolled-keys=0",
        "hostpci0": "0000:00:02.0,pcie=1",
    }


def test_running_vm_without_restart_leaves_changes_pending():
    steps = vm_plan.plan(K3S_AGENT, CONVERT, running=True, restart=False)
    assert [s["action"] for s in steps] == ["set_config"]
    assert steps[0]["pending_until_restart"] == ["bios", "efidisk0", "machine"]


def test_running_vm_hot_changes_need_no_restart():
    desired = {"ciuser": "k3s", "nameserver": "192.168.1.53 1.1.1.1", "sshkeys": SSH_KEY + "\nssh-ed25519 AAAAother second@host\n"}
    steps = vm_plan.plan(K3S_AGENT, desired, running=True)
    assert [s["action"] for s in steps] == ["set_config"]
    assert steps[0]["config"]["sshkeys"] == quote(desired["sshkeys"], safe="")


def test_running_vm_memory_hotplug_depends_on_hotplug_features():
    assert [s["action"] for s in vm_plan.plan(K3S_AGENT, {"memory": 12288}, running=True)] == ["shutdown", "set_config", "start"]
    hot = dict(K3S_AGENT, hotplug="network,disk,usb,memory,cpu")
    assert [s["action"] for s in vm_plan.plan(hot, {"memory": 12288}, running=True)] == ["set_config"]


def test_pending_non_hotplug_keys_cause_a_restart_even_without_changes():
    after = vm_plan.apply_plan(K3S_AGENT, vm_plan.plan(K3S_AGENT, CONVERT))
    assert vm_plan.plan(after, CONVERT, running=True) == []
    assert vm_plan.plan(after, CONVERT, running=True, pending=["machine", "bios"]) == [{"action": "shutdown"}, {"action": "start"}]
    assert vm_plan.plan(after, CONVERT, running=True, pending=["ciuser"]) == []


def test_adding_hostpci0_to_a_converted_vm():
    converted = dict(K3S_AGENT, machine="q35", bios="ovmf", efidisk0="local-lvm:vm-120-disk-1,efitype=4m,pre-enrolled-keys=0,size=4M")
    steps = vm_plan.plan(converted, ATTACH)
    assert steps == [{"action": "set_config", "config": {"hostpci0": "0000:00:02.0,pcie=1"}, "digest": K3S_AGENT["digest"]}]


@pytest.mark.parametrize(
    "desired",
    [
        CONVERT,
        dict(CONVERT, **ATTACH),
        dict(CONVERT, cores=6, memory=12288, ciuser="k3s", sshkeys=SSH_KEY, ipconfig0="ip=192.168.1.121/24,gw=192.168.1.1", nameserver="1.1.1.1"),
        {"hostpci": {0: "mapping=igpu,pcie=1", 1: "0000:00:1f.3"}, "machine": "q35"},
        {"machine": "pc-q35-9.2+pve1", "bios": "ovmf", "efidisk0": {"storage": "local-zfs", "pre_enrolled_keys": True}},
        {"net0": "virtio,bridge=vmbr1,firewall=1", "cores": 2},
    ],
)
def test_plan_after_apply_is_empty(desired):
    steps, after = converge(K3S_AGENT, desired)
    assert steps
    assert vm_plan.plan(after, desired) == []
    assert vm_plan.plan(after, desired, running=True) == []


def test_no_op_when_already_converged_with_equivalent_spellings():
    current = dict(
        K3S_AGENT,
        machine="pc-q35-9.2+pve1",
        bios="ovmf",
        efidisk0="local-lvm:vm-120-disk-1,efitype=4m,size=4M",
        hostpci0="host=0000:00:02.0,pcie=on,rombar=1",
    )
    desired = dict(
        CONVERT,
        hostpci={0: "00:02.0,pcie=1,x-vga=0"},
        cores="4",
        memory=8192,
        sshkeys=SSH_KEY,
        nameserver="192.168.1.1",
        ipconfig0="gw=192.168.1.1,ip=192.168.1.120/24",
        boot="order=scsi0;ide2;net0",
        cipassword="secret",
        net0="virtio,bridge=vmbr0,firewall=1",
    )
    assert vm_plan.plan(current, desired, running=True) == []


def test_defaults_count_as_absent_values():
    assert vm_plan.plan(K3S_AGENT, {"bios": "seabios", "machine": "pc"}) == []
    assert vm_plan.plan(dict(K3S_AGENT, efidisk0="local-lvm:vm-120-disk-1"), {"efidisk0": {"efitype": "2m"}}) == []


def test_versionless_machine_accepts_pinned_version_but_versioned_does_not():
    current = dict(K3S_AGENT, machine="pc-q35-8.1")
    assert vm_plan.plan(current, {"machine": "q35"}) == []
    steps = vm_plan.plan(current, {"machine": "pc-q35-9.2+pve1"})
    assert steps[0]["config"] == {"machine": "pc-q35-9.2+pve1"}
    steps = vm_plan.plan(current, {"machine": "q35,viommu=intel"})
    assert steps[0]["config"] == {"machine": "pc-q35-8.1,viommu=intel"}  # the pinned version is kept


def test_existing_efidisk_of_another_type_is_kept_without_replace():
    current = dict(K3S_AGENT, machine="q35", bios="ovmf", efidisk0="local-lvm:vm-120-disk-1,size=528K")
    assert vm_plan.plan(current, CONVERT) == []


def test_efidisk_replaced_only_with_replace_old_volume_kept_as_unused():
    current = dict(K3S_AGENT, machine="q35", bios="ovmf", efidisk0="local-lvm:vm-120-disk-1,size=528K")
    steps, after = converge(current, dict(CONVERT, efidisk0=dict(CONVERT["efidisk0"], replace=True)))
    assert steps[0]["config"] == {"efidisk0": "local-lvm:1,efitype=4m,pre-enrolled-keys=0"}
    assert after["efidisk0"] == "local-lvm:vm-120-disk-2,efitype=4m,pre-enrolled-keys=0"
    assert after["unused0"] == "local-lvm:vm-120-disk-1"


def test_efidisk_needs_a_storage_when_created():
    with pytest.raises(PassthroughError) as info:
        vm_plan.plan(K3S_AGENT, {"bios": "ovmf", "efidisk0": {"efitype": "4m"}})
    assert "efidisk0" in info.value.message and "storage" in info.value.fix


def test_net_without_mac_keeps_the_current_mac():
    steps = vm_plan.plan(K3S_AGENT, {"net0": "virtio,bridge=vmbr1"})
    assert steps[0]["config"] == {"net0": "virtio=BC:24:11:5A:7E:01,bridge=vmbr1"}


def test_delete_hostpci_slot_and_keys():
    current = dict(K3S_AGENT, hostpci0="0000:00:02.0", hostpci1="0000:00:1f.3", tags="gpu")
    steps = vm_plan.plan(current, {"hostpci": {1: None, 5: None}, "delete": ["tags"], "cores": 6})
    assert steps == [
        {"action": "set_config", "config": {"cores": "6"}, "digest": K3S_AGENT["digest"]},
        {"action": "delete", "keys": ["hostpci1", "tags"], "digest": None},
    ]
    only_delete = vm_plan.plan(current, {"hostpci": {0: None}})
    assert only_delete == [{"action": "delete", "keys": ["hostpci0"], "digest": K3S_AGENT["digest"]}]


@pytest.mark.parametrize(
    ("desired", "refused"),
    [
        ({"delete": ["scsi0"]}, "delete scsi0 (local-lvm:vm-120-disk-0"),
        ({"ide2": None}, "delete ide2 (local-lvm:vm-120-cloudinit,media=cdrom)"),
        ({"scsi0": "local-lvm:32"}, "replace scsi0 (local-lvm:vm-120-disk-0"),
        ({"unused0": None, "machine": "q35"}, "delete unused0 (local-lvm:vm-120-disk-7)"),
    ],
)
def test_refuses_to_touch_disks(desired, refused):
    current = dict(K3S_AGENT, unused0="local-lvm:vm-120-disk-7")
    with pytest.raises(PassthroughError) as info:
        vm_plan.plan(current, desired, running=True)
    assert refused in info.value.message
    assert info.value.link == "vm_config"
    assert "disks" in info.value.fix


def test_disk_option_change_on_same_volume_and_new_disk_are_not_refused():
    steps = vm_plan.plan(K3S_AGENT, {"scsi0": "local-lvm:vm-120-disk-0,discard=on,iothread=1,size=64G,ssd=1,cache=writeback", "scsi1": "local-lvm:16"})
    assert set(steps[0]["config"]) == {"scsi0", "scsi1"}


def test_token_with_raw_host_fails_before_any_step():
    with pytest.raises(PassthroughError) as info:
        vm_plan.plan(K3S_AGENT, dict(CONVERT, **ATTACH), user="automation@pve!ansible")
    assert "only root can set 'hostpci0' config for non-mapped devices" in info.value.message
    assert "mapping" in info.value.fix and "root@pam" in info.value.fix


def test_token_cannot_replace_or_remove_a_raw_host_entry():
    current = dict(K3S_AGENT, machine="q35", hostpci0="0000:00:02.0,pcie=1")
    with pytest.raises(PassthroughError, match="non-mapped"):
        vm_plan.plan(current, {"hostpci": {0: "mapping=igpu,pcie=1"}}, user="automation@pve!ansible")
    with pytest.raises(PassthroughError, match="non-mapped"):
        vm_plan.plan(current, {"hostpci": {0: None}}, user="automation@pve!ansible")
    # an untouched raw entry does not stop other changes
    assert vm_plan.plan(current, {"cores": 6}, user="automation@pve!ansible")[0]["config"] == {"cores": "6"}


def test_token_with_mapping_and_root_with_raw_host_are_fine():
    steps = vm_plan.plan(K3S_AGENT, dict(CONVERT, hostpci={0: "mapping=igpu,pcie=1"}), user="automation@pve!ansible")
    assert steps[0]["config"]["hostpci0"] == "mapping=igpu,pcie=1"
    assert vm_plan.plan(K3S_AGENT, dict(CONVERT, **ATTACH), user="root@pam")[0]["config"]["hostpci0"] == "0000:00:02.0,pcie=1"


def test_args_is_root_only():
    with pytest.raises(PassthroughError, match="only root can set 'args' config"):
        vm_plan.plan(K3S_AGENT, {"args": "-cpu host"}, user="automation@pve")


def test_pcie_without_q35_is_refused_at_plan_time():
    with pytest.raises(PassthroughError) as info:
        vm_plan.plan(K3S_AGENT, ATTACH)
    assert "q35 machine model is not enabled" in info.value.message


def test_switching_to_q35_under_a_legacy_igd_entry_is_refused():
    current = output_readers.parse_vm_config(_read("qm/qm-config-100-win11-uhd630-legacy-igd-short-pci-address-empty-boot.txt"))["config"]
    with pytest.raises(PassthroughError) as info:
        vm_plan.plan(current, {"machine": "q35"})
    assert "legacy IGD assignment is not compatible with q35" in info.value.message
    assert info.value.details["problems"]


def test_fixture_config_already_matching_plans_nothing():
    current = output_readers.parse_vm_config(_read("qm/conf-103-plex-q35-ovmf-secureboot-ms-cert-2023-hostpci-pcie.txt"))["config"]
    desired = {
        "machine": "q35",
        "bios": "ovmf",
        "efidisk0": {"storage": "local-lvm", "efitype": "4m", "pre_enrolled_keys": True},
        "hostpci": {0: "0000:00:02.0,pcie=1"},
        "cores": 4,
        "memory": 8192,
    }
    assert vm_plan.plan(current, desired, running=True) == []
    assert vm_plan.plan(current, dict(desired, efidisk0={"storage": "local-lvm", "pre_enrolled_keys": False})) == []
    replace = {"storage": "local-lvm", "pre_enrolled_keys": False, "replace": True}
    assert vm_plan.plan(current, dict(desired, efidisk0=replace))[0]["config"] == {
        "efidisk0": "local-lvm:1,efitype=4m,pre-enrolled-keys=0"
    }


def test_diff_before_after():
    result = vm_plan.diff(K3S_AGENT, dict(CONVERT, **ATTACH))
    assert "digest" not in result["before"] and "digest" not in result["after"]
    assert result["before"]["scsi0"] == result["after"]["scsi0"]
    assert "machine" not in result["before"]
    changed = {k for k in set(result["before"]) | set(result["after"]) if result["before"].get(k) != result["after"].get(k)}
    assert changed == {"machine", "bios", "efidisk0", "hostpci0"}
    assert vm_plan.diff(result["after"], dict(CONVERT, **ATTACH)) == {"before": result["after"], "after": result["after"]}


@pytest.mark.parametrize(
    ("key", "restart"),
    [
        ("machine", True),
        ("bios", True),
        ("efidisk0", True),
        ("hostpci0", True),
        ("cores", True),
        ("vga", True),
        ("boot", True),
        ("ciuser", False),
        ("ipconfig0", False),
        ("sshkeys", False),
        ("name", False),
        ("tags", False),
        ("net0", False),
        ("memory", True),
    ],
)
def test_needs_restart(key, restart):
    assert vm_plan.needs_restart(key, K3S_AGENT) is restart


def test_hotplug_zero_makes_net_changes_pending():
    assert vm_plan.needs_restart("net0", dict(K3S_AGENT, hotplug="0")) is True


def _read(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()
