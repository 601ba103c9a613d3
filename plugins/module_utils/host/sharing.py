# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which ways of sharing a GPU can work on a host: ``passthrough`` (the whole device to one VM), ``gvt`` (GVT-g
mediated devices) and ``sriov`` (SR-IOV virtual functions).

Pure Python, standard library only. ``modes(pci_id, device=None, kernel=None)`` judges every mode from the
generation table (the ``gvt`` and ``sriov`` fields of ``guest/capabilities.py`` and their sources) and, when given,
from the live host: ``device`` is the GPU's entry of ``ansible_facts.iommu.devices`` (its ``mdev_types`` and
``sriov``), ``kernel`` the kernel release it runs or will boot (``6.8.12-4-pve``). A mode that cannot work says
why, the fix and the mode to use instead; ``require`` turns that into a refusal.

Facts it rests on (sources):

- GVT-g: only the platforms of i915's list (``capabilities.SRC_GVT``: Broadwell .. Comet Lake, Apollo Lake);
  Gemini Lake is not on it, and a Proxmox VE 5 host with one logs "Unsupported device. GVT-g is disabled" with
  ``i915.enable_gvt=1`` set (intel/gvt-linux#64). Nothing after Gen 9.5 has GVT-g.
- SR-IOV: virtual functions come from i915-sriov-dkms on Tiger Lake, Alder Lake, Raptor Lake, Meteor Lake and
  Arrow Lake (``capabilities.SRC_SRIOV_DKMS``), from upstream xe on Battlemage (``SRC_SRIOV_XE``). Gen 9.x has
  none: a Kaby Lake-R UHD 620 logs "Incompatible option enable_guc=3 - GuC submission is N/A"
  (strongtz/i915-sriov-dkms#218), a stock i915 "driver does not support SR-IOV configuration via sysfs"
  (strongtz/i915-sriov-dkms#30).
- i915-sriov-dkms needs Linux 6.1 or newer: its oldest line, the intel-lts-v6.1 branch, covers 6.1-6.7; releases
  2025.07.22 (6.8-6.12), 2026.03.05.1 (6.12-6.19) and 2026.05.06 (6.17-7.0) follow (its README).
- Writing more VFs to ``sriov_numvfs`` than ``sriov_totalvfs`` fails with ERANGE (``drivers/pci/iov.c``
  ``sriov_numvfs_store``); an i915 without SR-IOV support leaves the total at 0, as on an Alder Lake-S host whose
  ``echo 1 > sriov_numvfs`` said "Numerical result out of range" (strongtz/i915-sriov-dkms#389).
- The PF of a GPU whose VFs are enabled is never handed to a VM (i915-sriov-dkms README: "never touch the PF").
"""

from __future__ import annotations

import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import capabilities as gpu_capabilities

MODES = ("passthrough", "gvt", "sriov")

# The oldest kernel each source of virtual functions supports (see the module docstring).
SRIOV_MIN_KERNEL = {"i915-sriov-dkms": (6, 1), "xe": (6, 17)}

LAST_GVT_GENERATION = "9.5"

# What each mode does with the GPU, for the messages.
MODE_TITLES = {
    "passthrough": "can be passed whole to one VM",
    "gvt": "can be shared through GVT-g mediated devices",
    "sriov": "can be shared through SR-IOV virtual functions",
}

_RELEASE = re.compile(r"^\s*(\d+)\.(\d+)")


def kernel_version(release):
    """``6.8.12-4-pve`` -> ``(6, 8)``; None when it does not start with major.minor."""
    match = _RELEASE.match(str(release or ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


def _generation_number(generation):
    try:
        return float(generation)
    except (TypeError, ValueError):
        return None


def _live_mdev_types(device):
    types = (device or {}).get("mdev_types")
    return [t for t in types if isinstance(t, dict) and t.get("type")] if isinstance(types, list) else None


def _live_sriov(device):
    sriov = (device or {}).get("sriov")
    return sriov if isinstance(sriov, dict) else None


def _verdict(mode, gpu, ok, live=None, reason=None, fix=None, alternative=None, source=None):
    if ok:
        msg = "%s: %s %s%s" % (mode, gpu, MODE_TITLES[mode], " (%s)" % reason if reason else "")
    else:
        msg = "%s: %s %s -> %s" % (mode, gpu, reason, fix)
    return {
        "mode": mode,
        "ok": ok,
        "live": live,
        "reason": reason,
        "fix": None if ok else fix,
        "alternative": None if ok else alternative,
        "msg": msg,
        "source": source,
    }


def _passthrough(gpu, device):
    sriov = _live_sriov(device)
    enabled = (sriov or {}).get("num_vfs") or 0
    if enabled > 0:
        vfs = ", ".join(sriov.get("vfs") or []) or "its VFs"
        return _verdict(
            "passthrough", gpu, False, live=False,
            reason="has %d SR-IOV virtual functions enabled (%s); the PF is never handed to a VM while they exist" % (enabled, vfs),
            fix="use sriov (each agent gets a VF), or set sriov_numvfs to 0 (and drop it from /etc/sysfs.conf) first",
            alternative="sriov",
        )
    return _verdict("passthrough", gpu, True, live=None if device is None else True)


def _gvt(gpu, caps, sharing, device):
    types = _live_mdev_types(device)
    offered = [t["type"] for t in types or []]
    if offered:
        left = [t for t in types if (t.get("available_instances") or 0) > 0]
        note = "the live device offers %s" % ", ".join(offered)
        if not left:
            note += ", with no instance left (available_instances 0)"
        return _verdict("gvt", gpu, True, live=True, reason=note, source=gpu_capabilities.SRC_GVT)
    alternative = "sriov" if sharing.get("sriov") else "passthrough"
    if caps is None:
        return _verdict(
            "gvt", gpu, False, live=None if device is None else False,
            reason="is not in the generation table and offers no mediated device types (mdev_supported_types)",
            fix="use %s" % alternative, alternative=alternative, source=gpu_capabilities.SRC_GVT,
        )
    if not sharing.get("gvt"):
        generation = _generation_number(caps.get("generation"))
        if generation is not None and generation > float(LAST_GVT_GENERATION):
            why = "has no GVT-g (dropped after Gen %s)" % LAST_GVT_GENERATION
        else:
            why = "has no GVT-g (i915 leaves it out: \"Unsupported device. GVT-g is disabled\")"
        return _verdict("gvt", gpu, False, live=None if device is None else False, reason=why,
                        fix="use %s" % alternative, alternative=alternative, source=gpu_capabilities.SRC_GVT)
    live = None
    note = None
    if device is not None:
        live = False
        note = ("no mediated device types yet: i915.enable_gvt=1 and the kvmgt module are not in effect "
                "(the gvt mode sets both, then the host reboots)")
    return _verdict("gvt", gpu, True, live=live, reason=note, source=gpu_capabilities.SRC_GVT)


def _sriov(gpu, caps, sharing, device, kernel):
    sriov = _live_sriov(device)
    total = (sriov or {}).get("total_vfs")
    enabled = (sriov or {}).get("num_vfs") or 0
    route = sharing.get("sriov")
    alternative = "gvt" if sharing.get("gvt") else "passthrough"
    source = None
    if route:
        source = gpu_capabilities.SRC_SRIOV_XE if route == "xe" else gpu_capabilities.SRC_SRIOV_DKMS
    if isinstance(total, int) and total > 0:
        note = "the live driver offers %d VFs, %d enabled" % (total, enabled)
        return _verdict("sriov", gpu, True, live=True, reason=note, source=source)
    if not route:
        generation = _generation_number((caps or {}).get("generation"))
        if caps is None:
            why = "is not in the generation table and shows no SR-IOV virtual functions (sriov_totalvfs)"
        elif generation is not None and generation <= float(LAST_GVT_GENERATION):
            why = "has no SR-IOV (Gen %s has no GuC submission, so the i915.enable_guc=3 VFs need is N/A)" % caps["generation"]
        else:
            why = ("has no SR-IOV (VFs exist only on Tiger Lake, Alder Lake, Raptor Lake, Meteor Lake and Arrow Lake "
                   "iGPUs, Flex and Battlemage)")
        return _verdict("sriov", gpu, False, live=None if device is None else False, reason=why,
                        fix="use %s" % alternative, alternative=alternative, source=source)
    minimum = SRIOV_MIN_KERNEL[route]
    version = kernel_version(kernel)
    if kernel is not None and version is not None and version < minimum:
        return _verdict(
            "sriov", gpu, False, live=None if device is None else False,
            reason="needs Linux %d.%d or newer for %s, and the kernel is %s" % (minimum + (route, kernel)),
            fix="boot a kernel %d.%d or newer (or use %s)" % (minimum + (alternative,)),
            alternative=alternative, source=source,
        )
    live = None
    note = "VFs from %s" % route
    if device is not None:
        live = False
        if sriov is None:
            note += "; the live device shows no SR-IOV capability yet (no sriov_totalvfs)"
        elif total == 0:
            note += ("; the loaded driver allows no VFs (sriov_totalvfs 0): the stock i915 is loaded, %s with "
                     "i915.max_vfs is not in effect yet" % route)
        else:
            note += "; sriov_totalvfs could not be read"
    return _verdict("sriov", gpu, True, live=live, reason=note, source=source)


def modes(pci_id, device=None, kernel=None):
    """What each sharing mode can do for the GPU ``pci_id`` (``8086:46d1``).

    ``device``: the GPU's entry of ``ansible_facts.iommu.devices`` (None: judge the generation only). ``kernel``:
    the kernel release to judge against (None: not judged). Returns ``{pci_id, name, known, modes, possible}``:
    ``modes`` maps each of MODES to ``{mode, ok, live, reason, fix, alternative, msg, source}`` where ``ok`` says
    whether the mode can work, ``live`` whether the live device offers it now (None without ``device``),
    ``reason`` why not (or a note when it can), ``alternative`` the mode to use instead; ``possible`` lists the
    modes that can work, in MODES order. Live proof wins over the table: a device that offers mdev types can
    use gvt, one whose driver offers VFs can use sriov.
    """
    device = device if isinstance(device, dict) else None
    caps = gpu_capabilities.lookup(pci_id)
    key = gpu_capabilities.normalize_pci_id(pci_id) or str(pci_id)
    gpu = caps["name"] if caps else "GPU %s" % key
    sharing = (caps or {}).get("sharing") or {}
    judged = {
        "passthrough": _passthrough(gpu, device),
        "gvt": _gvt(gpu, caps, sharing, device),
        "sriov": _sriov(gpu, caps, sharing, device, kernel),
    }
    return {
        "pci_id": key,
        "name": gpu,
        "known": caps is not None,
        "modes": judged,
        "possible": [mode for mode in MODES if judged[mode]["ok"]],
    }


def require(mode, pci_id, device=None, kernel=None, option="mode"):
    """The verdict of ``mode`` when it can work; raise PassthroughError naming ``option``, the mode, the GPU and
    the fix when it cannot (or when ``mode`` is none of MODES)."""
    if mode not in MODES:
        raise PassthroughError(
            "%s=%r is not a sharing mode." % (option, mode),
            fix="Set %s to one of %s." % (option, ", ".join(MODES)),
        )
    verdict = modes(pci_id, device=device, kernel=kernel)["modes"][mode]
    if not verdict["ok"]:
        raise PassthroughError(
            "%s=%s: %s" % (option, mode, verdict["msg"]),
            fix=verdict["fix"],
            details={"alternative": verdict["alternative"]},
        )
    return verdict
