"""What proves proxmox_gpu_prep on a lab VM.

The lab VM's stand-in GPU is a bochs-display (function 0, class 0380) and an
intel-hda (function 1, class 0403) behind one pcie-root-port. Debian's kernel turns
the IOMMU on by itself when QEMU's intel-iommu is present, so IOMMU groups alone
prove nothing: the kernel command line, the kernel log, the vfio-pci binding and
the boot count do.
"""

from __future__ import annotations

import os
import re

import pytest
import yaml

REQUIRED_ARGS = ("intel_iommu=on", "iommu=pt")
STAND_IN_DISPLAY = ("0x1234", "0x1111")  # bochs-display
BOOT_LINE = re.compile(r"^\s*-?\d+\s+[0-9a-f]{32}\s", re.MULTILINE)


def _flavour(host) -> str:
    """The platform's lab image flavour, from molecule's merged scenario config."""
    with open(os.environ["MOLECULE_FILE"]) as fh:
        platforms = yaml.safe_load(fh)["platforms"]
    name = host.backend.get_hostname()
    for platform in platforms:
        if platform["name"] == name:
            return platform["flavour"]
    raise AssertionError(f"platform {name} not in {os.environ['MOLECULE_FILE']}")


def _pci(host) -> dict[str, dict[str, str]]:
    """address -> vendor, device, class, IOMMU group, driver ('' when none)."""
    out = host.check_output(
        "for d in /sys/bus/pci/devices/*; do "
        "g=$(readlink $d/iommu_group); r=$(readlink $d/driver); "
        "printf '%s %s %s %s %s %s\\n' ${d##*/} $(cat $d/vendor) $(cat $d/device) $(cat $d/class) "
        '"${g##*/}" "${r##*/}"; done'
    )
    devices = {}
    for line in out.splitlines():
        address, vendor, device, klass, group, driver = line.split(" ")
        devices[address] = {"vendor": vendor, "device": device, "class": klass, "group": group, "driver": driver}
    return devices


@pytest.fixture(scope="module")
def stand_in(host) -> list[tuple[str, dict[str, str]]]:
    """The stand-in GPU's display and audio functions, in that order."""
    devices = _pci(host)
    displays = [a for a, d in devices.items() if (d["vendor"], d["device"]) == STAND_IN_DISPLAY and d["class"].startswith("0x0380")]
    assert len(displays) == 1, f"one bochs-display expected: {devices}"
    display = displays[0]
    slot = display.rsplit(".", 1)[0]
    audio = [a for a, d in devices.items() if a.startswith(slot + ".") and a != display and d["class"].startswith("0x0403")]
    assert len(audio) == 1, f"one audio function next to {display} expected: {devices}"
    return [(display, devices[display]), (audio[0], devices[audio[0]])]


def test_kernel_cmdline_carries_iommu_args(host):
    args = host.file("/proc/cmdline").content_string.split()
    for arg in REQUIRED_ARGS:
        assert arg in args, f"{arg} missing from /proc/cmdline: {args}"


def test_kernel_log_shows_iommu_on_in_passthrough_mode(host):
    log = host.check_output("journalctl -k -b 0 -o cat --no-pager")
    assert "DMAR: IOMMU enabled" in log
    assert "Default domain type: Passthrough (set via kernel command line)" in log


def test_stand_in_functions_share_one_iommu_group(stand_in):
    groups = {facts["group"] for _address, facts in stand_in}
    assert len(groups) == 1 and "" not in groups, f"one IOMMU group expected: {stand_in}"


def test_stand_in_functions_are_bound_to_vfio_pci(host, stand_in):
    for address, _facts in stand_in:
        driver = host.file(f"/sys/bus/pci/devices/{address}/driver")
        assert driver.is_symlink, f"{address} has no driver"
        assert os.path.basename(driver.linked_to) == "vfio-pci", f"{address} is on {driver.linked_to}"


def test_vfio_group_device_exists(host, stand_in):
    group = stand_in[0][1]["group"]
    assert host.run(f"test -c /dev/vfio/{group}").rc == 0, f"/dev/vfio/{group} is not a character device"


def test_exactly_two_boots(host):
    """First boot and the role's one reboot: the idempotence run did not reboot."""
    boots = BOOT_LINE.findall(host.check_output("journalctl --list-boots --no-pager"))
    assert len(boots) == 2, f"expected 2 boots, journal lists {len(boots)}"


def test_debian_release_is_the_flavours(host):
    """trixie-* flavours are Debian 13, the unprefixed ones Debian 12."""
    flavour = _flavour(host)
    expected = "trixie" if flavour.startswith("trixie-") else "bookworm"
    assert host.system_info.codename == expected, f"{flavour}: {host.system_info.codename}"


def test_bootloader_configuration_carries_the_args(host):
    flavour = _flavour(host)
    if flavour.endswith("systemd-boot"):
        assert not host.file("/etc/default/grub").exists
        cmdline = host.file("/etc/kernel/cmdline").content_string.split()
        for arg in REQUIRED_ARGS:
            assert arg in cmdline, f"{arg} missing from /etc/kernel/cmdline: {cmdline}"
        entries = host.check_output("grep -h '^options' /boot/efi/loader/entries/*.conf")
        for arg in REQUIRED_ARGS:
            assert arg in entries.split(), f"{arg} missing from the loader entry: {entries}"
    else:
        assert flavour.endswith("grub"), flavour
        assert not host.file("/etc/kernel/cmdline").exists
        default = host.file("/etc/default/grub").content_string
        values = " ".join(re.findall(r'^GRUB_CMDLINE_LINUX(?:_DEFAULT)?="([^"]*)"', default, re.MULTILINE)).split()
        for arg in REQUIRED_ARGS:
            assert arg in values, f"{arg} missing from /etc/default/grub: {values}"
        grub_cfg = host.file("/boot/grub/grub.cfg").content_string
        assert all(arg in grub_cfg for arg in REQUIRED_ARGS), "update-grub did not carry the args into grub.cfg"


def test_boot_entry_read_back_carries_root_and_the_args(host):
    """What the boot loader boots next, read back the way the role does before it reboots."""
    result = host.ansible(
        "homelab.gpu_passthrough.boot_entry_info", "present=" + ",".join(REQUIRED_ARGS), become=True, check=True
    )
    assert result["ok"] is True, result["msg"]
    # a flavour is [<suite>-]<boot loader>
    assert _flavour(host).endswith(result["bootloader"]), result["bootloader"]
    assert result["entries"] and all(entry["ok"] for entry in result["entries"]), result["entries"]
    for entry in result["entries"]:
        args = entry["cmdline"].split()
        assert any(arg.startswith("root=") for arg in args), entry
        for arg in REQUIRED_ARGS:
            assert arg in args, f"{arg} missing from {entry['where']} entry {entry['name']}: {args}"


def test_boot_entry_read_back_checks_the_modules_of_the_kernel_it_boots(host):
    """The kernel each entry boots, read from the entry, has vfio-pci in its /lib/modules; a dkms build it lacks
    (no i915-sriov-dkms on the lab host) is refused with the command that builds it."""
    running = host.check_output("uname -r")
    result = host.ansible(
        "homelab.gpu_passthrough.boot_entry_info",
        "present=" + ",".join(REQUIRED_ARGS) + " modules=vfio_pci,vfio_iommu_type1,updates/i915",
        become=True, check=True,
    )
    assert result["ok"] is False, result["msg"]
    for entry in result["entries"]:
        assert entry["kernel"] == running, entry
        assert entry["modules"]["vfio_pci"] and entry["modules"]["vfio_iommu_type1"], entry
        assert entry["missing_modules"] == ["updates/i915"], entry
    assert f"dkms autoinstall -k <version> for each of {running}" in result["fix"], result["fix"]
