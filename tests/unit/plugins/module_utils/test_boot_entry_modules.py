# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel a boot entry boots and the modules that kernel has: never reboot into a kernel without the driver."""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import boot_entry as be

BOOT = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "boot")
WANTED = {"intel_iommu": "on", "iommu": "pt"}
# a Proxmox VE 8 kernel's layout (kmod's names: vfio-pci.ko, kvmgt.ko; i915 stock and the dkms build)
PVE_FILES = ["kernel/drivers/vfio/pci/vfio-pci.ko", "kernel/drivers/gpu/drm/i915/kvmgt.ko",
             "kernel/drivers/gpu/drm/i915/i915.ko", "kernel/drivers/gpu/drm/xe/xe.ko"]
DKMS_I915 = "updates/dkms/i915.ko"


def fixture(name):
    with open(os.path.join(BOOT, name), encoding="utf-8") as handle:
        return handle.read()


def put(root, path, text=""):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as handle:
        handle.write(text)


@pytest.mark.parametrize("entry, kernel", [
    (lambda: be.grub_entry(fixture("grub-cfg-debian12-pve8-ext4-submenu.cfg")), "6.8.12-4-pve"),
    (lambda: be.systemd_boot_entry({"proxmox-6.8.12-4-pve.conf": fixture("loader-entry-pve8-zfs-proxmox-6.8.12-4-pve.conf")}),
     "6.8.12-4-pve"),
    # kernel-install names the image plain 'linux' in a directory: the entry's version says which kernel it is
    (lambda: be.systemd_boot_entry({"debian-6.12.57+deb13-amd64.conf": fixture(
        "loader-entry-debian13-kernel-install-6.12.57+deb13-amd64.conf")}), "6.12.57+deb13-amd64"),
    (lambda: be.grub_entry("menuentry 'x' {\n linux /vmlinuz root=/dev/sda1 ro\n}\n"), None),
    (lambda: be.grub_entry("menuentry 'x' {\n linux /EFI/proxmox/6.5.13-6-pve/vmlinuz-6.5.13-6-pve root=ZFS=rpool\n}\n"),
     "6.5.13-6-pve"),
])
def test_each_entry_names_the_kernel_it_boots(entry, kernel):
    assert entry()["kernel"] == kernel


def test_a_module_is_found_by_modprobes_name_and_where_dkms_puts_it():
    builtin = "kernel/drivers/vfio/vfio.ko\nkernel/drivers/vfio/pci/vfio-pci-core.ko\n"
    found = be.find_modules(PVE_FILES + [DKMS_I915 + ".xz"], builtin,
                            ["vfio_pci", "kvmgt", "updates/i915", "updates/dkms/i915", "vfio", "vfio-pci-core", "nvidia"])
    assert found == {"vfio_pci": "kernel/drivers/vfio/pci/vfio-pci.ko", "kvmgt": "kernel/drivers/gpu/drm/i915/kvmgt.ko",
                     "updates/i915": "updates/dkms/i915.ko.xz", "updates/dkms/i915": "updates/dkms/i915.ko.xz",
                     "vfio": "builtin", "vfio-pci-core": "builtin", "nvidia": None}
    # the stock i915 is not the dkms build the mode needs
    assert be.find_modules(PVE_FILES, "", ["updates/i915"]) == {"updates/i915": None}


@pytest.mark.parametrize("spec", ["", "/lib/modules/x/i915", "updates/../i915", "updates//i915", "i915.ko", "updates/"])
def test_a_module_spec_that_names_no_module_is_refused(spec):
    with pytest.raises(PassthroughError) as caught:
        be.check_module_specs(["vfio-pci", spec])
    assert caught.value.details == {"option": "modules", "value": spec} and caught.value.fix


def _host(tmp_path, running, upgraded, dkms_for=()):
    """A Proxmox VE host whose grub.cfg boots ``upgraded`` next; ``dkms_for``: the kernels with the dkms build."""
    cfg = fixture("grub-cfg-debian12-pve8-ext4-submenu.cfg").replace("6.8.12-4-pve", upgraded)
    put(tmp_path, "/boot/grub/grub.cfg", cfg)
    for version in sorted({running, upgraded}):
        for path in PVE_FILES:
            put(tmp_path, "/lib/modules/%s/%s" % (version, path))
        put(tmp_path, "/lib/modules/%s/modules.builtin" % version, "kernel/drivers/vfio/vfio.ko\n")
    for version in dkms_for:
        put(tmp_path, "/lib/modules/%s/%s" % (version, DKMS_I915))


def test_an_upgraded_kernel_without_its_dkms_build_is_refused_with_the_command(tmp_path):
    _host(tmp_path, "6.8.12-4-pve", "6.8.12-8-pve", dkms_for=["6.8.12-4-pve"])
    modules = ["vfio-pci", "updates/i915"]
    found = be.read_boot_entries(str(tmp_path), modules=modules)
    verdict = be.judge(found["entries"], WANTED, fix=found["fix"], modules=modules)
    assert verdict["ok"] is False
    (entry,) = verdict["entries"]
    assert entry["kernel"] == "6.8.12-8-pve" and entry["missing"] == [] and entry["missing_modules"] == ["updates/i915"]
    assert entry["modules"] == {"vfio-pci": "kernel/drivers/vfio/pci/vfio-pci.ko", "updates/i915": None}
    assert "boots kernel 6.8.12-8-pve, which lacks updates/i915 (no i915.ko under /lib/modules/6.8.12-8-pve/updates/)" \
        in verdict["msg"]
    assert "dkms autoinstall -k <version> for each of 6.8.12-8-pve" in verdict["fix"] and "update-grub" not in verdict["fix"]


def test_the_kernel_with_its_build_is_ok_and_says_where_each_module_is(tmp_path):
    _host(tmp_path, "6.8.12-4-pve", "6.8.12-8-pve", dkms_for=["6.8.12-8-pve"])
    modules = ["vfio-pci", "kvmgt", "updates/i915", "vfio"]
    found = be.read_boot_entries(str(tmp_path), modules=modules)
    verdict = be.judge(found["entries"], WANTED, fix=found["fix"], modules=modules)
    assert verdict["ok"] is True and verdict["fix"] is None, verdict["msg"]
    assert verdict["entries"][0]["missing_modules"] == []
    assert "6.8.12-8-pve (vfio-pci kernel/drivers/vfio/pci/vfio-pci.ko, kvmgt kernel/drivers/gpu/drm/i915/kvmgt.ko, " \
           "updates/i915 updates/dkms/i915.ko, vfio builtin)" in verdict["msg"]


def test_a_kernel_whose_modules_are_not_installed_and_a_bad_command_line_each_get_their_fix(tmp_path):
    _host(tmp_path, "6.8.12-4-pve", "6.8.12-4-pve")
    put(tmp_path, "/boot/grub/grub.cfg", fixture("grub-cfg-debian12-pve8-ext4-before-update-grub.cfg").replace(
        "6.8.12-4-pve", "6.8.12-9-pve"))
    found = be.read_boot_entries(str(tmp_path), modules=["vfio-pci"])
    verdict = be.judge(found["entries"], WANTED, fix=found["fix"], modules=["vfio-pci"])
    assert verdict["ok"] is False and verdict["entries"][0]["modules"] is None
    assert "lacks intel_iommu=on iommu=pt" in verdict["msg"] and "which has no /lib/modules/6.8.12-9-pve/" in verdict["msg"]
    assert verdict["fix"].startswith(be.FIX_GRUB) and "install the complete kernel package of 6.8.12-9-pve" in verdict["fix"]


def test_without_modules_asked_nothing_about_modules_is_judged(tmp_path):
    _host(tmp_path, "6.8.12-4-pve", "6.8.12-8-pve")
    found = be.read_boot_entries(str(tmp_path))
    verdict = be.judge(found["entries"], WANTED, fix=found["fix"])
    assert verdict["ok"] is True and "modules" not in verdict["entries"][0]
    assert "missing_modules" not in verdict["entries"][0]


def test_an_entry_whose_kernel_cannot_be_told_is_refused_when_modules_are_asked():
    entry = be.grub_entry("menuentry 'x' {\n linux /vmlinuz root=/dev/sda1 ro intel_iommu=on iommu=pt\n}\n")
    assert be.judge([entry], WANTED)["ok"] is True
    verdict = be.judge([dict(entry, modules=None)], WANTED, modules=["kvmgt"])
    assert verdict["ok"] is False and "cannot be checked" in verdict["msg"]
