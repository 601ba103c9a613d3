# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_recreate: what is left to do given what exists, marks that survive the destroy, and the backup guard."""

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import recreate as vm_recreate

MAC = "BC:24:11:5A:7E:01"
DIGEST = "2c8a1f0e9d7b6a5c4e3d2b1a0f9e8d7c6b5a4f3e"
CONFIG = {"name": "k3s-agent-1", "net0": "virtio=%s,bridge=vmbr0,firewall=1" % MAC, "scsi0": "local-lvm:vm-120-disk-0,size=32G",
          "digest": DIGEST}


def vm(status="stopped", **config):
    conf = dict(CONFIG)
    conf.update(config)
    return {"status": status, "config": conf}


def backup(volid="local:backup/vzdump-qemu-120-2026_01_01-10_00_00.vma.zst", ctime=1767261600, digest=DIGEST, running=True, vmid=120):
    return {"volid": volid, "ctime": ctime, "notes": vm_recreate.backup_notes(vmid, digest, MAC, "k3s-agent-1", running)}


def actions(decision):
    return [s["action"] for s in decision["steps"]]


def decide(vm_, backups=(), converted=False, **kwargs):
    kwargs.setdefault("allow_recreate", True)
    return vm_recreate.decide(vm_, converted, kwargs.pop("template", 9000), list(backups), 120, **kwargs)


# ---------------------------------------------------------------------------------------------
# marks
# ---------------------------------------------------------------------------------------------


def test_backup_notes_round_trip():
    notes = vm_recreate.backup_notes(120, DIGEST, MAC.lower(), "k3s-agent-1", True)
    assert "{{" not in notes and "\n" not in notes
    assert vm_recreate.parse_backup_notes(notes) == {"vmid": 120, "digest": DIGEST, "mac": MAC, "name": "k3s-agent-1", "running": True}
    assert vm_recreate.parse_backup_notes(notes, vmid=121) is None


@pytest.mark.parametrize("notes", [None, "", "nightly backup", "pve_vm_q35 recreate of VM 120: mac=%s" % MAC])
def test_foreign_or_incomplete_notes_are_not_ours(notes):
    assert vm_recreate.parse_backup_notes(notes) is None


def test_mark_line_round_trip_and_replacement():
    line = vm_recreate.mark_line(9000, "local:backup/x.vma.zst", MAC, ["configure", "start"])
    description = vm_recreate.with_mark("k3s agent\nrack 2", line)
    assert description.startswith("k3s agent\nrack 2\n")
    assert vm_recreate.parse_mark(description) == {"template": 9000, "backup": "local:backup/x.vma.zst", "mac": MAC, "todo": ["configure", "start"]}
    final = vm_recreate.with_mark(description, vm_recreate.mark_line(9000, "local:backup/x.vma.zst", MAC))
    assert final.count("[pve_vm_q35]") == 1 and final.startswith("k3s agent\nrack 2\n")
    assert vm_recreate.parse_mark(final)["todo"] == []
    assert vm_recreate.parse_mark(vm_recreate.mark_line(9000))["backup"] is None
    assert vm_recreate.parse_mark("just a description") is None
    assert vm_recreate.with_mark(None, line) == line


@pytest.mark.parametrize(
    "value, expected",
    [
        ("virtio=BC:24:11:00:90:00,bridge=vmbr0", "virtio=%s,bridge=vmbr0" % MAC),
        ("bridge=vmbr0,e1000=BC:24:11:00:90:00,firewall=1", "bridge=vmbr0,e1000=%s,firewall=1" % MAC),
        ("model=virtio,macaddr=BC:24:11:00:90:00,bridge=vmbr0", "model=virtio,macaddr=%s,bridge=vmbr0" % MAC),
        ("virtio,bridge=vmbr0", "virtio=%s,bridge=vmbr0" % MAC),
    ],
)
def test_net_with_mac_keeps_model_and_options(value, expected):
    assert vm_recreate.net_with_mac(value, MAC.lower()) == expected


def test_newest_marked_backup_wins_and_digest_filters():
    rows = [backup(ctime=1), backup(volid="local:backup/b", ctime=5), backup(volid="local:backup/c", ctime=9, digest="other"),
            {"volid": "local:backup/foreign", "ctime": 99, "notes": "weekly"}]
    assert vm_recreate.newest_backup(rows, 120)[0]["volid"] == "local:backup/c"
    assert vm_recreate.newest_backup(rows, 120, DIGEST)[0]["volid"] == "local:backup/b"
    assert vm_recreate.newest_backup(rows, 121) is None


# ---------------------------------------------------------------------------------------------
# deciding
# ---------------------------------------------------------------------------------------------


def test_running_vm_is_shut_down_backed_up_destroyed_cloned_and_started():
    decision = decide(vm("running"))
    assert decision["mode"] == "recreate"
    assert actions(decision) == ["shutdown", "backup", "destroy", "clone", "configure", "start", "finish"]
    assert decision["steps"][3]["template"] == 9000
    assert (decision["mac"], decision["name"], decision["backup"]) == (MAC, "k3s-agent-1", None)
    assert vm_recreate.clone_todo(decision["steps"]) == ["configure", "start"]


def test_a_running_vm_never_reuses_an_old_backup():
    assert "backup" in actions(decide(vm("running"), backups=[backup()]))


def test_stopped_vm_with_its_backup_from_an_interrupted_run_is_not_backed_up_again():
    decision = decide(vm("stopped"), backups=[backup(running=True)])
    assert actions(decision) == ["destroy", "clone", "configure", "start", "finish"]
    assert decision["backup"] == backup()["volid"]


def test_a_backup_of_another_config_is_not_reused():
    assert actions(decide(vm("stopped"), backups=[backup(digest="0" * 40)]))[0] == "backup"


def test_stopped_vm_stays_stopped_and_start_false_never_starts():
    assert "start" not in actions(decide(vm("stopped")))
    assert "start" not in actions(decide(vm("running"), start=False))


def test_without_backups_nothing_is_backed_up():
    assert actions(decide(vm("stopped"), backup_before_recreate=False)) == ["destroy", "clone", "configure", "finish"]


def test_vm_gone_after_destroy_is_cloned_with_what_the_backup_remembers():
    decision = decide(None, backups=[backup(running=True)])
    assert actions(decision) == ["clone", "configure", "start", "finish"]
    assert (decision["mac"], decision["name"], decision["backup"]) == (MAC, "k3s-agent-1", backup()["volid"])
    assert decision["warnings"] == []


def test_vm_gone_without_any_backup_warns():
    decision = decide(None)
    assert actions(decision) == ["clone", "configure", "finish"]
    assert decision["warnings"] and "no backup" in decision["warnings"][0]


def test_clone_of_an_interrupted_run_is_configured_and_started_not_recreated():
    line = vm_recreate.mark_line(9000, "local:backup/x", MAC, ["configure", "start"])
    decision = decide(vm("stopped", description=line, net0="virtio=BC:24:11:00:90:00,bridge=vmbr0"), converted=False)
    assert decision["mode"] == "resume"
    assert actions(decision) == ["configure", "start", "finish"]
    assert decision["mac"] == MAC and decision["backup"] == "local:backup/x"


def test_clone_already_running_only_finishes():
    line = vm_recreate.mark_line(9000, "local:backup/x", MAC, ["start"])
    assert actions(decide(vm("running", description=line), converted=True)) == ["configure", "finish"]


def test_converted_vm_needs_no_recreate_even_without_allow_recreate():
    decision = decide(vm("running"), converted=True, allow_recreate=False)
    assert decision["mode"] == "in_place" and decision["steps"] == []
    done = vm_recreate.mark_line(9000, "local:backup/x", MAC)
    assert decide(vm("running", description=done), converted=True)["mode"] == "in_place"


def test_recreate_without_allow_recreate_names_the_option():
    with pytest.raises(PassthroughError) as err:
        decide(vm("running"), allow_recreate=False)
    assert "allow_recreate" in str(err.value) and err.value.details["option"] == "allow_recreate"


@pytest.mark.parametrize("template", [None, 120])
def test_recreate_needs_another_vm_as_template(template):
    with pytest.raises(PassthroughError) as err:
        decide(vm("running"), template=template)
    assert err.value.details["option"] == "template"


def test_destroy_guard():
    with pytest.raises(PassthroughError, match="Refusing to destroy VM 120"):
        vm_recreate.check_destroy(120, None, True)
    vm_recreate.check_destroy(120, None, False)
    vm_recreate.check_destroy(120, "local:backup/x", True)
