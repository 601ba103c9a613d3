# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vfio_bind run through main() against fake roots: what it writes to the file and to sysfs, and when not."""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.pci import MANAGED_HEADER
from ansible_collections.homelab.gpu_passthrough.plugins.modules import vfio_bind
from ansible_collections.homelab.gpu_passthrough.tests.unit.conftest import FIXTURES
from ansible_collections.homelab.gpu_passthrough.tests.unit.plugins.modules.module_runner import run_module
from ansible_collections.homelab.gpu_passthrough.tests.unit.sysfs_builder import build_root, kernel_probe, read, set_driver

CONF = os.path.join("etc", "modprobe.d", "vfio.conf")
IGPU = "0000:00:02.0"


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def run(capsys, root, check_mode=False, diff=False, **args):
    args["root"] = root
    return run_module(capsys, vfio_bind.main, args, check_mode=check_mode, diff=diff)


def snapshot(root):
    """Every regular file and symlink under root with its content or target."""
    state = {}
    for directory, _dirs, files in os.walk(root):
        for name in files + _dirs:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                state[path] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    state[path] = handle.read()
    return state


def warnings(result):
    """Warning texts; ansible-core 2.19 wraps each in an event record."""
    texts = []
    for warning in result.get("warnings", []):
        texts.append(warning["event"]["msg"] if isinstance(warning, dict) else warning)
    return texts


def softdep_lines(root):
    return [line for line in read(root, CONF).splitlines() if line.startswith("softdep")]


def device_file(root, address, name):
    return read(root, "sys", "bus", "pci", "devices", address, name)


@pytest.fixture
def alderlake(tmp_path):
    return build_root(
        tmp_path,
        fixture("iommu/loop-tab-format-alderlake-4680-12th-gen-sorted.txt"),
        lspci=fixture("lspci/nnk-alderlake-4680-igpu-i915-host-rx560-vfio-pci.txt"),
        cmdline="ro quiet intel_iommu=on iommu=pt",
    )


@pytest.fixture
def amd(tmp_path):
    return build_root(
        tmp_path,
        fixture("iommu/loop-tab-format-amd-ryzen-matisse-glob-order.txt"),
        acpi_table="IVRS",
        devices={"0000:2d:00.0": {"driver": "amdgpu"}, "0000:2d:00.1": {"driver": "snd_hda_intel"}},
    )


def test_check_mode_writes_nothing(capsys, alderlake):
    before = snapshot(alderlake)
    result = run(capsys, alderlake, check_mode=True, diff=True, devices=["00:02.0"])
    assert (result["changed"], result["conf_changed"], result["initramfs_update_required"]) == (True, True, True)
    assert result["bound"] == {IGPU: "vfio-pci"}
    assert "options vfio-pci ids=8086:4680" in result["diff"]["after"]
    assert result["diff"]["before"] == ""
    assert snapshot(alderlake) == before


def test_run_writes_file_and_sysfs_then_is_idempotent(capsys, alderlake):
    result = run(capsys, alderlake, devices=["8086:4680"])
    assert (result["changed"], result["conf_changed"], result["initramfs_update_required"]) == (True, True, True)
    assert (result["devices"], result["ids"]) == ([IGPU], ["8086:4680"])
    lines = read(alderlake, CONF).splitlines()
    assert lines[0] == MANAGED_HEADER
    assert "options vfio-pci ids=8086:4680" in lines
    assert "softdep i915 pre: vfio-pci" in lines
    assert device_file(alderlake, IGPU, "driver_override") == "vfio-pci"
    assert read(alderlake, "sys/bus/pci/drivers/i915/unbind") == IGPU
    assert read(alderlake, "sys/bus/pci/drivers_probe") == IGPU
    # The fake sysfs has no kernel behind it, so the module sees the old driver and says so.
    assert any(IGPU in w and "i915" in w for w in warnings(result))

    kernel_probe(alderlake)
    again = run(capsys, alderlake, devices=["8086:4680"])
    assert (again["changed"], again["conf_changed"], again["initramfs_update_required"]) == (False, False, False)
    assert again["bound"] == {IGPU: "vfio-pci"}
    assert warnings(again) == []


def test_after_reboot_the_original_driver_comes_from_the_file(capsys, alderlake):
    run(capsys, alderlake, devices=[IGPU])
    written = read(alderlake, CONF)
    # A reboot: ids= hands the device to vfio-pci before i915 loads; nothing was written to sysfs.
    set_driver(alderlake, IGPU, "vfio-pci")
    with open(os.path.join(alderlake, "sys/bus/pci/devices", IGPU, "driver_override"), "w") as handle:
        handle.write("(null)\n")
    result = run(capsys, alderlake, devices=[IGPU], diff=True)
    assert result["changed"] is False
    assert result["diff"]["before"] == result["diff"]["after"] == written
    assert read(alderlake, CONF) == written


def test_devices_already_on_vfio_without_a_file(capsys, alderlake):
    before = snapshot(alderlake)
    result = run(capsys, alderlake, devices=["04:00.0", "04:00.1"])
    assert result["bound"] == {"0000:04:00.0": "vfio-pci", "0000:04:00.1": "vfio-pci"}
    assert "options vfio-pci ids=1002:67ff,1002:aae0" in read(alderlake, CONF)
    assert softdep_lines(alderlake) == []
    assert sum("original driver" in w for w in warnings(result)) == 2
    after = snapshot(alderlake)
    assert [p for p in after if after[p] != before.get(p)] == [os.path.join(alderlake, CONF)]


def test_gpu_and_audio_get_their_own_softdeps(capsys, alderlake):
    result = run(capsys, alderlake, devices=["03:00.0", "03:00.1"])
    assert result["ids"] == ["1002:73df", "1002:ab28"]
    lines = read(alderlake, CONF).splitlines()
    assert [line for line in lines if line.startswith("softdep")] == ["softdep amdgpu pre: vfio-pci", "softdep snd_hda_intel pre: vfio-pci"]
    assert device_file(alderlake, "0000:03:00.0", "driver_override") == "vfio-pci"
    assert device_file(alderlake, "0000:03:00.1", "driver_override") == "vfio-pci"
    assert read(alderlake, "sys/bus/pci/drivers/amdgpu/unbind") == "0000:03:00.0"
    assert read(alderlake, "sys/bus/pci/drivers/snd_hda_intel/unbind") == "0000:03:00.1"


def test_shared_group_is_refused_and_nothing_changes(capsys, amd):
    before = snapshot(amd)
    result = run(capsys, amd, devices=["0000:2d:00.0"])
    assert result["failed"] is True
    assert "0000:2d:00.1" in result["msg"]
    assert "group: true" in result["msg"]
    assert result["group_devices"] == ["0000:2d:00.0", "0000:2d:00.1"]
    assert snapshot(amd) == before


def test_group_true_takes_the_hdmi_audio(capsys, amd):
    result = run(capsys, amd, devices=["1002:67df"], group=True)
    assert result["devices"] == ["0000:2d:00.0", "0000:2d:00.1"]
    assert device_file(amd, "0000:2d:00.1", "driver_override") == "vfio-pci"
    assert "options vfio-pci ids=1002:67df,1002:aaf0" in read(amd, CONF)


def test_unknown_device_fails_naming_it(capsys, amd):
    result = run(capsys, amd, devices=["0000:2d:00.0", "10de:1b81"], group=True)
    assert result["failed"] is True
    assert "10de:1b81" in result["msg"]
    assert not os.path.exists(os.path.join(amd, CONF))


def test_absent_undoes_it(capsys, alderlake):
    run(capsys, alderlake, devices=[IGPU])
    kernel_probe(alderlake)
    for name in ("sys/bus/pci/drivers_probe", "sys/bus/pci/drivers/vfio-pci/unbind"):
        with open(os.path.join(alderlake, name), "w"):
            pass

    result = run(capsys, alderlake, devices=[IGPU], state="absent")
    assert (result["changed"], result["conf_changed"], result["initramfs_update_required"]) == (True, True, True)
    assert not os.path.exists(os.path.join(alderlake, CONF))
    assert device_file(alderlake, IGPU, "driver_override") == "\n"
    assert read(alderlake, "sys/bus/pci/drivers/vfio-pci/unbind") == IGPU
    assert read(alderlake, "sys/bus/pci/drivers/vfio-pci/remove_id") == "8086 4680"
    assert read(alderlake, "sys/bus/pci/drivers_probe") == IGPU

    kernel_probe(alderlake)
    again = run(capsys, alderlake, devices=[IGPU], state="absent")
    assert again["changed"] is False
    assert again["bound"] == {IGPU: "i915"}


def test_absent_in_check_mode_writes_nothing(capsys, amd):
    run(capsys, amd, devices=["2d:00.0"], group=True)
    kernel_probe(amd)
    before = snapshot(amd)
    result = run(capsys, amd, check_mode=True, devices=["1002:67df"], group=True, state="absent")
    assert (result["changed"], result["conf_changed"]) == (True, True)
    assert result["devices"] == ["0000:2d:00.0", "0000:2d:00.1"]
    assert result["bound"] == {"0000:2d:00.0": None, "0000:2d:00.1": None}
    assert snapshot(amd) == before


def test_written_file_is_world_readable(capsys, alderlake):
    run(capsys, alderlake, devices=[IGPU], runtime=False)
    assert os.stat(os.path.join(alderlake, CONF)).st_mode & 0o777 == 0o666 & ~current_umask()


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_absent_keeps_the_other_devices(capsys, alderlake):
    run(capsys, alderlake, devices=[IGPU, "03:00.0", "03:00.1"])
    kernel_probe(alderlake)
    run(capsys, alderlake, devices=["03:00.0", "03:00.1"], state="absent")
    lines = read(alderlake, CONF).splitlines()
    assert "options vfio-pci ids=8086:4680" in lines
    assert [line for line in lines if line.startswith("softdep")] == ["softdep i915 pre: vfio-pci"]
    assert not any("1002:" in line for line in lines)


def test_softdep_false_writes_none(capsys, alderlake):
    run(capsys, alderlake, devices=[IGPU])
    result = run(capsys, alderlake, devices=[IGPU], softdep=False, runtime=False)
    assert result["conf_changed"] is True
    assert softdep_lines(alderlake) == []
    assert "options vfio-pci ids=8086:4680" in read(alderlake, CONF)


def test_foreign_lines_survive_and_backup_is_kept(capsys, alderlake):
    path = os.path.join(alderlake, CONF)
    os.makedirs(os.path.dirname(path))
    original = "options vfio-pci ids=10de:13c2 disable_vga=1\nblacklist nouveau\n"
    with open(path, "w") as handle:
        handle.write(original)
    result = run(capsys, alderlake, devices=[IGPU], backup=True, runtime=False)
    text = read(path)
    assert "options vfio-pci ids=10de:13c2,8086:4680 disable_vga=1" in text
    assert "blacklist nouveau" in text.splitlines()
    assert read(result["backup_file"]) == original
    assert device_file(alderlake, IGPU, "driver_override") == "(null)\n"
    assert result["bound"] == {IGPU: "i915"}


def test_persistent_false_leaves_the_file_alone(capsys, alderlake):
    result = run(capsys, alderlake, devices=[IGPU], persistent=False)
    assert (result["conf_changed"], result["changed"]) == (False, True)
    assert not os.path.exists(os.path.join(alderlake, CONF))
    assert device_file(alderlake, IGPU, "driver_override") == "vfio-pci"


def test_without_iommu_only_the_file_is_written(capsys, tmp_path):
    root = build_root(tmp_path, None, lspci=fixture("lspci/nnk-alderlake-4680-igpu-i915-host-rx560-vfio-pci.txt"), acpi_table=None)
    result = run(capsys, root, devices=[IGPU])
    assert result["conf_changed"] is True
    assert device_file(root, IGPU, "driver_override") == "(null)\n"
    assert any("IOMMU" in w for w in warnings(result))


# ----------------------------------------------------------------- confined paths, odd bytes


@pytest.mark.parametrize("conf_path", ["../../outside.conf", "/etc/modprobe.d/../../../outside.conf"])
def test_conf_path_outside_root_is_refused(capsys, alderlake, conf_path):
    parent = os.path.dirname(str(alderlake))
    before = snapshot(parent)
    result = run(capsys, alderlake, devices=[IGPU], runtime=False, conf_path=conf_path)
    assert result["failed"] is True and "conf_path" in result["msg"] and "leads outside" in result["msg"]
    assert snapshot(parent) == before


def test_conf_path_symlink_out_of_root_is_refused(capsys, alderlake, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    target = os.path.join(str(outside), "vfio.conf")
    with open(target, "w") as handle:
        handle.write("# not ours\n")
    os.makedirs(os.path.join(alderlake, "etc", "modprobe.d"), exist_ok=True)
    os.symlink(target, os.path.join(alderlake, CONF))
    before = snapshot(alderlake)
    result = run(capsys, alderlake, devices=[IGPU], runtime=False)
    assert result["failed"] is True and "symlink" in result["msg"]
    assert snapshot(alderlake) == before and read(target) == "# not ours\n"


def test_conf_with_odd_bytes_is_read_and_only_refused_when_written(capsys, alderlake):
    os.makedirs(os.path.join(alderlake, "etc", "modprobe.d"), exist_ok=True)
    with open(os.path.join(alderlake, CONF), "wb") as handle:
        handle.write(b"# caf\xe9\n")
    before = snapshot(alderlake)
    result = run(capsys, alderlake, devices=[IGPU], runtime=False)
    assert result["failed"] is True and "not UTF-8" in result["msg"] and "line 1" in result["msg"]
    assert snapshot(alderlake) == before
    # only read (persistent: false): no failure
    assert "failed" not in run(capsys, alderlake, devices=[IGPU], runtime=False, persistent=False)


def test_conf_path_directory_is_refused(capsys, alderlake):
    os.makedirs(os.path.join(alderlake, CONF))
    before = snapshot(alderlake)
    result = run(capsys, alderlake, devices=[IGPU], runtime=False)
    assert result["failed"] is True and "is a directory" in result["msg"]
    assert snapshot(alderlake) == before


def test_failed_write_leaves_no_temp_file_and_no_backup(capsys, alderlake, monkeypatch):
    from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import files as host_files

    os.makedirs(os.path.join(alderlake, "etc", "modprobe.d"), exist_ok=True)
    with open(os.path.join(alderlake, CONF), "w") as handle:
        handle.write("# mine\n")
    before = snapshot(alderlake)

    def replace(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(host_files.os, "replace", replace)
    result = run(capsys, alderlake, devices=[IGPU], runtime=False, backup=True)
    assert result["failed"] is True and "chattr -i" in result["fix"]
    assert snapshot(alderlake) == before
