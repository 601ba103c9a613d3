#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vainfo_facts
short_description: Prove VA-API works on each render node with vainfo
version_added: 0.1.0
description:
  - Finds the DRM render nodes (C(renderD*)) under O(dri_dir), runs
    C(vainfo --display drm --device <node>) for each of them (or only for O(device)) with
    C(LANG=C) and C(LC_ALL=C), and returns the parsed output as C(ansible_facts.vainfo).
  - A missing C(vainfo) binary or a missing render node is reported in the facts with a hint,
    not as a task failure, so a play can print the diagnosis and decide what to do.
  - For an Intel GPU it also reads the GuC and HuC state the kernel reports for that GPU, RV(ansible_facts.vainfo.uc),
    from C(gt*/uc/guc_info) and C(huc_info) under O(debugfs_dir) (readable by root only), else from the kernel log
    (C(dmesg), else C(journalctl -k -b)).
  - Read-only. C(vainfo) only queries the driver, so the module also runs in check mode.
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
options:
  device:
    description:
      - Only probe this render node, for example C(/dev/dri/renderD128) or a
        C(/dev/dri/by-path/...-render) link.
      - By default every C(renderD*) node in O(dri_dir) is probed.
      - An empty string means the same as leaving the option out.
    type: path
  vainfo_path:
    description:
      - Path of the C(vainfo) binary.
      - By default C(vainfo) is looked up on E(PATH) and in the usual sbin directories.
      - An empty string means the same as leaving the option out.
    type: path
  dri_dir:
    description:
      - Directory holding the DRM device nodes.
      - Render nodes are found by name (C(renderD*)); their owner, group and mode are read with C(stat).
      - An empty string means the same as leaving the option out.
    type: path
    default: /dev/dri
  driver_name:
    description:
      - Sets E(LIBVA_DRIVER_NAME) for the C(vainfo) runs, for example C(iHD) to keep libva
        from choosing C(i965) or a BMC's C(ast) driver.
      - By default the variable is not set and libva picks the driver itself.
      - An empty string means the same as leaving the option out.
    type: str
  sysfs_dir:
    description:
      - Where sysfs is mounted; the PCI device behind each render node is read from
        C(<sysfs_dir>/class/drm) to find the passed-through GPU (RV(ansible_facts.vainfo.gpu)).
      - An empty string means the same as leaving the option out.
    type: path
    default: /sys
  pci_address:
    description:
      - The passed-through GPU's PCI address in the guest, for example C(0000:01:00.0).
      - By default the render node of a known Intel GPU wins, never that of an emulated display.
      - An empty string means the same as leaving the option out.
    type: str
  debugfs_dir:
    description:
      - Where debugfs is mounted; the GuC/HuC state is read from C(<debugfs_dir>/dri/<card>/gt*/uc/huc_info) and
        C(guc_info) (or C(dri/<PCI address>/...) on newer kernels).
      - When it is not mounted or not readable (debugfs needs root), the kernel log is read instead.
      - An empty string means the same as leaving the option out.
    type: path
    default: /sys/kernel/debug
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
notes:
  - Needs C(vainfo) from the C(vainfo) package (Debian/Ubuntu) or C(libva-utils) (Fedora, Arch).
  - Run it as root (O(debugfs_dir) and C(dmesg) need it) for the GuC/HuC state to be read rather than left C(unknown).
  - The remote user must be able to open the render node (member of the C(render) group, or root).
seealso:
  - name: libva-utils
    description: The project that ships C(vainfo).
    link: https://github.com/intel/libva-utils
"""

EXAMPLES = r"""
- name: Probe every render node
  homelab.gpu_passthrough.vainfo_facts:

- name: Probe one node with the Intel media driver forced
  homelab.gpu_passthrough.vainfo_facts:
    device: /dev/dri/renderD128
    driver_name: iHD

- name: Fail with the diagnosis when VA-API is not usable
  ansible.builtin.assert:
    that: ansible_facts.vainfo.available
    fail_msg: "{{ ansible_facts.vainfo.hint }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to the host.
  returned: always
  type: dict
  contains:
    vainfo:
      description: What vainfo reported, per render node.
      returned: always
      type: dict
      contains:
        render_nodes:
          description: The render nodes found in O(dri_dir), in numeric order.
          returned: always
          type: list
          elements: str
          sample: [/dev/dri/renderD128]
        devices:
          description: Owner, group and octal mode of each render node found, and of O(device).
          returned: always
          type: dict
          sample:
            /dev/dri/renderD128:
              owner: root
              group: render
              mode: "0660"
        results:
          description:
            - The parsed vainfo output per probed node.
            - Each holds C(status) (C(ok) or C(failed)), C(va_api_version), C(driver),
              C(driver_name), C(driver_version), C(profiles) (profile to entrypoints),
              C(h264_decode), C(h264_encode), C(hevc_decode), C(hevc_encode) (HEVC Main with
              EncSlice or EncSliceLP), C(error_code), C(error), and details such as
              C(drivers_tried), C(open_returns), C(libva_version) and C(unrecognized_lines).
            - A run that exits non-zero is C(failed) even when it printed a driver.
          returned: always
          type: dict
          sample:
            /dev/dri/renderD128:
              status: ok
              va_api_version: "1.17"
              driver: Intel iHD driver for Intel(R) Gen Graphics - 23.1.1 ()
              driver_name: iHD
              driver_version: 23.1.1
              profiles:
                VAProfileHEVCMain: [VAEntrypointVLD, VAEntrypointEncSlice]
              h264_decode: true
              h264_encode: true
              hevc_decode: true
              hevc_encode: true
              error_code: null
              error: null
        available:
          description: Whether vainfo succeeded on at least one probed node.
          returned: always
          type: bool
          sample: true
        hint:
          description: What to do when C(available) is false (names the broken link and the fix), otherwise null.
          returned: always
          type: str
          sample: "no render node: the VM has no GPU — check hostpci in the VM config and `lspci` in the guest"
        gpu:
          description:
            - The passed-through GPU and its render node, chosen by the PCI device sysfs shows behind each
              render node (never an emulated display such as bochs or virtio-gpu); null when no render node
              has a PCI device.
            - Holds C(node), C(render_node), C(card), C(pci_address), C(pci_id), C(vendor), C(device),
              C(class), C(driver), C(known) (in the collection's capability table), C(enable_guc)
              (i915's parameter, null without i915) and C(skipped) (the other render nodes and why).
          returned: always
          type: dict
          sample:
            node: /dev/dri/renderD128
            render_node: renderD128
            card: card1
            pci_address: "0000:01:00.0"
            pci_id: "8086:3e92"
            vendor: "8086"
            device: "3e92"
            class: "030000"
            driver: i915
            known: true
            enable_guc: -1
            skipped: []
        uc:
          description:
            - The GuC and HuC state the guest's kernel reports for the GPU of RV(ansible_facts.vainfo.gpu); null when
              there is no Intel GPU.
            - C(guc) and C(huc) are each one of C(authenticated) (HuC only), C(loaded), C(not loaded),
              C(not supported), C(firmware missing), C(failed), C(wedged) or C(unknown).
            - C(source) says where the HuC state came from, C(debugfs) or C(kernel log); C(parameter) when neither
              knew it and only i915's C(enable_guc) is left to judge by.
            - C(firmware) holds per firmware its C(path), C(version) (found), C(wanted) and C(status) (the kernel's
              word), or null; C(detail) says what was read and why a state is unknown; C(notes) what else matters
              (GuC submission not available, an SR-IOV VF); C(seen) the kernel log lines that decided.
          returned: always
          type: dict
          sample:
            guc: loaded
            huc: authenticated
            source: kernel log
            sources: {guc: kernel log, huc: kernel log}
            firmware:
              guc: {path: i915/tgl_guc_70.bin, version: 70.20.0, wanted: null, status: null}
              huc: {path: i915/tgl_huc.bin, version: 7.9.3, wanted: null, status: authenticated}
            detail: "HuC authenticated (i915/tgl_huc.bin 7.9.3), read from kernel log; GuC loaded (i915/tgl_guc_70.bin 70.20.0), read from kernel log"
            notes: []
            seen: ["i915 0000:00:02.0: [drm] GT0: HuC: authenticated for all workloads!"]
            debugfs_files: []
            enable_guc: 3
"""

# Ansible modules import below their documentation blocks.
import grp
import os
import pwd
import re
import stat

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import uc
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.vainfo import parse
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.verdict import gpu_facts

HINT_NO_RENDER_NODE = "no render node: the VM has no GPU — check hostpci in the VM config and `lspci` in the guest"
HINT_NO_VAINFO = "install the `vainfo` package"

_RENDER_NODE_RE = re.compile(r"^renderD(\d+)$")


def find_render_nodes(dri_dir):
    """Paths of the renderD* entries in dri_dir, in numeric order; [] when dri_dir is missing."""
    try:
        names = os.listdir(dri_dir)
    except OSError:
        return []
    numbered = []
    for name in names:
        match = _RENDER_NODE_RE.match(name)
        if match:
            numbered.append((int(match.group(1)), name))
    return [os.path.join(dri_dir, name) for number, name in sorted(numbered)]


def describe_node(path):
    """Owner, group and octal mode of a device node (only stat is needed), or None if absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return {"owner": owner, "group": group, "mode": "%04o" % stat.S_IMODE(st.st_mode)}


def failure_hint(results):
    """A hint for the first failed result, naming the likely broken link and its fix."""
    for node, result in results.items():
        if result.get("status") == "ok":
            continue
        names = [n for n in result.get("drivers_attempted_names", []) if n]
        error = result.get("error") or "vainfo failed"
        if "open the given device" in error:
            return "%s: cannot open %s — add the user to the `render` group (and `video`) or run as root" % (error, node)
        if "display" in error:
            return (
                "%s: vainfo could not open %s as a DRM display — check it is the passed-through GPU's render node "
                "and the user can open it (`render` group)" % (error, node)
            )
        if names and not set(names) & {"iHD", "i965", "radeonsi", "r600", "nouveau", "nvidia", "virtio_gpu"}:
            return (
                "%s: libva chose the `%s` driver, which has no video support (a BMC or display-only GPU) — "
                "set driver_name (LIBVA_DRIVER_NAME) to `iHD` for Intel and check the GPU is passed through" % (error, names[0])
            )
        if "i965" in names and "iHD" not in names:
            return (
                "%s: libva tried only the old `i965` driver — install intel-media-va-driver-non-free and "
                "set driver_name (LIBVA_DRIVER_NAME) to `iHD`" % error
            )
        if names:
            return (
                "%s: the %s driver failed to initialise on %s — check the user can open the node "
                "(`render` group), that the installed driver supports this GPU, and `dmesg` for i915 errors"
                % (error, "/".join(dict.fromkeys(names)), node)
            )
        return (
            "%s: libva found no VA-API driver for %s — install intel-media-va-driver-non-free (Intel) "
            "or mesa-va-drivers (AMD)" % (error, node)
        )
    return None


def run_vainfo(module, vainfo, node, driver_name):
    env = {"LANG": "C", "LC_ALL": "C"}
    if driver_name:
        env["LIBVA_DRIVER_NAME"] = driver_name
    # Bytes, decoded with replacement: drivers print what they like, and odd bytes must not fail the facts.
    rc, out, err = module.run_command([vainfo, "--display", "drm", "--device", node], environ_update=env, encoding=None)
    # libva writes its "libva info:" lines to stderr, before vainfo prints to stdout.
    result = parse((err or b"") + b"\n" + (out or b""))
    if rc != 0 and result["status"] == "ok":
        result["status"] = "failed"
        result["error"] = "vainfo exited with code %d" % rc
    return result


# dmesg first; journalctl -k where dmesg is refused (kernel.dmesg_restrict) or absent.
KERNEL_LOG_COMMANDS = (("dmesg",), ("journalctl", "-k", "-b", "--no-pager", "-q"))


def read_kernel_log(module):
    """The kernel log of this boot as text, or None when no command could read it."""
    for command in KERNEL_LOG_COMMANDS:
        binary = module.get_bin_path(command[0], opt_dirs=["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        if not binary:
            continue
        rc, out, _err = module.run_command([binary] + list(command[1:]), environ_update={"LANG": "C", "LC_ALL": "C"},
                                           encoding=None)
        if rc == 0 and out:
            return out.decode("utf-8", "replace")
    return None


def read_uc(module, gpu, debugfs_dir):
    """GuC/HuC of the passed Intel GPU: debugfs, else the kernel log; None for no GPU or another vendor."""
    if not gpu or gpu.get("vendor") != "8086":
        return None
    parsed, files, problem = uc.read_debugfs(debugfs_dir, gpu.get("card"), gpu.get("pci_address"))
    log = None
    if parsed is None or uc.huc_present(parsed["huc"]["state"]) is None:
        text = read_kernel_log(module)
        log = uc.parse_kernel_log(text, gpu.get("pci_address")) if text is not None else None
        if text is None:
            problem = "%s; the kernel log is not readable (dmesg and journalctl -k failed: run as root)" % (
                problem or "debugfs gave no HuC state")
    return uc.combine(parsed, log, gpu.get("enable_guc"), files, problem)


def main():
    module = option_checks.checked_module(
        dict(
            device=dict(type="path"),
            vainfo_path=dict(type="path"),
            dri_dir=dict(type="path", default="/dev/dri"),
            driver_name=dict(type="str"),
            sysfs_dir=dict(type="path", default="/sys"),
            pci_address=dict(type="str"),
            debugfs_dir=dict(type="path", default="/sys/kernel/debug"),
        ),
        empty_means_default=("device", "vainfo_path", "dri_dir", "driver_name", "sysfs_dir", "pci_address", "debugfs_dir"),
        supports_check_mode=True,
    )
    params = module.params

    render_nodes = find_render_nodes(params["dri_dir"])
    devices = {}
    for node in render_nodes:
        described = describe_node(node)
        if described is not None:
            devices[node] = described

    targets = render_nodes
    hint = None
    if params["device"]:
        targets = [params["device"]]
        described = describe_node(params["device"])
        if described is None:
            targets = []
            hint = "render node %s does not exist (found: %s) — %s" % (
                params["device"],
                ", ".join(render_nodes) or "none",
                HINT_NO_RENDER_NODE,
            )
        else:
            devices[params["device"]] = described
    elif not render_nodes:
        hint = HINT_NO_RENDER_NODE

    vainfo = params["vainfo_path"] or module.get_bin_path("vainfo", opt_dirs=["/usr/sbin", "/sbin"])
    if not vainfo or not os.path.isfile(vainfo) or not os.access(vainfo, os.X_OK):
        vainfo = None
        if hint is None:
            hint = HINT_NO_VAINFO

    results = {}
    if vainfo:
        for node in targets:
            results[node] = run_vainfo(module, vainfo, node, params["driver_name"])

    available = any(r["status"] == "ok" for r in results.values())
    if not available and hint is None:
        hint = failure_hint(results)

    gpu = gpu_facts(params["sysfs_dir"], params["dri_dir"], params["pci_address"])
    facts = {
        "render_nodes": render_nodes,
        "devices": devices,
        "results": results,
        "available": available,
        "hint": None if available else hint,
        "gpu": gpu,
        "uc": read_uc(module, gpu, params["debugfs_dir"]),
    }
    module.exit_json(changed=False, ansible_facts={"vainfo": facts})


if __name__ == "__main__":
    main()
