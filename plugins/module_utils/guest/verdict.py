# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest link: judge what vainfo_facts found, name the GPU, and work out the node labels.

Pure Python, standard library only. ``diagnose`` turns the ``vainfo`` facts into one verdict
``{ok, link, message, fix, line, ...}`` whose ``link`` (an id of module_utils/links.py; ``line`` shows its title)
says where the chain is broken:

``vm_config``     VM config: no render node in the guest, the GPU never reached the VM (hostpciN)
``guest_driver``  guest driver: a render node exists, but VA-API does not work on it or lacks a required codec

``scan_drm`` reads the DRM nodes of ``/sys/class/drm`` with their PCI devices and ``choose_gpu``
picks the render node of the passed-through GPU (never an emulated display's); a GPU in
``gpu_capabilities`` is judged against what its generation must offer, any other against
the required codecs. ``node_labels`` decides which labels the Kubernetes node gets: only what was
detected and proven, and it removes the labels the collection set before that are no longer true.
"""

from __future__ import annotations

import os
import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import links, pci_ids
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import capabilities as gpu_capabilities
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.vainfo import (
    CAPABILITIES,
    DEFAULT_REQUIRED,
    codec_report,
)

LINK_VM_CONFIG = links.check("vm_config")
LINK_GUEST_DRIVER = links.check("guest_driver")

NON_FREE_PACKAGE = "intel-media-va-driver-non-free"
INSTALL_FIX = (
    "install %s (Debian non-free, Ubuntu multiverse; the gpu_worker role does it with gpu_worker_manage_packages)" % NON_FREE_PACKAGE
)
NO_RENDER_NODE = "no render node in the VM: the GPU is not passed through"
NO_RENDER_NODE_FIX = "check hostpci0 in the VM config (qm config <vmid>) and `lspci -nnk` in the VM"
NO_VAINFO_FIX = "install the vainfo package (gpu_worker_manage_packages: true) or point gpu_worker_vainfo_path at it"
ACCESS_FIX = "run the check as root or add the user to the `render` and `video` groups (gpu_worker_users)"

# Kubernetes label syntax (k8s.io/apimachinery validation): a value is at most 63 characters.
_LABEL_VALUE_RE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_LABEL_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$")


def _dedup(items):
    return list(dict.fromkeys(i for i in items if i))


def _verdict(ok, link, message, fix, **details):
    result = {"ok": bool(ok), "link": None if ok else link, "message": message, "fix": None if ok else fix}
    result.update(details)
    return result


def _line(verdict):
    if verdict["ok"]:
        return "ok   %s" % verdict["message"]
    return "FAIL %s: %s — fix: %s" % (links.title(verdict["link"]), verdict["message"], verdict["fix"])


def _judge_failed_run(node, result, wanted):
    """A vainfo run that did not get as far as listing profiles."""
    error = result.get("error") or "vainfo failed"
    names = _dedup(result.get("drivers_attempted_names") or [])
    lowered = error.lower()
    if "open the given device" in lowered or "drm display" in lowered:
        return LINK_GUEST_DRIVER, "vainfo cannot open %s (%s)" % (node, error), ACCESS_FIX
    if names and wanted and wanted.lower() not in [n.lower() for n in names]:
        return (
            LINK_GUEST_DRIVER,
            "libva picked the `%s` driver for %s, not %s (%s): vainfo reports no codecs" % ("/".join(names), node, wanted, error),
            "set LIBVA_DRIVER_NAME=%s (gpu_worker_driver_name) and %s; a `%s` driver means %s is not the passed-through "
            "Intel GPU — check `lspci -nnk` in the VM" % (wanted, INSTALL_FIX, names[0], node),
        )
    if names and not result.get("init_functions"):
        return (
            LINK_GUEST_DRIVER,
            "libva could not load the %s driver for %s (%s): vainfo reports no codecs" % ("/".join(names), node, error),
            INSTALL_FIX,
        )
    if names:
        return (
            LINK_GUEST_DRIVER,
            "the %s driver failed to initialise on %s (%s): vainfo reports no codecs" % ("/".join(names), node, error),
            "%s, and check that %s belongs to the passed-through Intel GPU (`lspci -nnk` in the VM shows it with "
            "`Kernel driver in use: i915`)" % (INSTALL_FIX, node),
        )
    return LINK_GUEST_DRIVER, "libva found no VA-API driver for %s (%s): vainfo reports no codecs" % (node, error), INSTALL_FIX


def _codec_fix(missing, driver_name):
    encoders = [name for name in missing if name.endswith("_encode")]
    if encoders and (driver_name or "").lower() == "ihd":
        return (
            "the encoders come with %s (the free build of the Intel media driver has no HEVC encode); with it installed "
            "and still missing, this GPU generation cannot do %s — drop it from gpu_worker_required_codecs"
            % (NON_FREE_PACKAGE, ", ".join(missing))
        )
    return "%s; a GPU generation without %s cannot be fixed in the guest — drop it from gpu_worker_required_codecs" % (
        INSTALL_FIX,
        ", ".join(missing),
    )


def judge_node(node, result, required=None, driver_name="iHD"):
    """The verdict for one render node's parsed vainfo run (an entry of ``vainfo.results``)."""
    result = result if isinstance(result, dict) else {}
    required = list(DEFAULT_REQUIRED if required is None else required)
    codecs = codec_report(result, required)
    details = {
        "node": node,
        "driver": result.get("driver"),
        "driver_name": result.get("driver_name"),
        "driver_version": result.get("driver_version"),
        "codecs": codecs,
    }
    wanted = driver_name or None
    if result.get("status") != "ok":
        link, message, fix = _judge_failed_run(node, result, wanted)
        return _verdict(False, link, message, fix, **details)
    used = result.get("driver_name") or result.get("driver") or "unknown"
    if wanted and used.lower() != wanted.lower():
        return _verdict(
            False, LINK_GUEST_DRIVER,
            "libva uses the `%s` driver on %s, not %s" % (used, node, wanted),
            "set LIBVA_DRIVER_NAME=%s for the transcoder (gpu_worker_driver_name) and %s" % (wanted, INSTALL_FIX),
            **details
        )
    if not result.get("profiles"):
        return _verdict(
            False, LINK_GUEST_DRIVER, "vainfo lists no profiles on %s (driver %s)" % (node, used), INSTALL_FIX, **details
        )
    if codecs["unknown"]:
        return _verdict(
            False, LINK_GUEST_DRIVER,
            "unknown codec names in gpu_worker_required_codecs: %s" % ", ".join(codecs["unknown"]),
            "use names from: %s" % ", ".join(CAPABILITIES),
            **details
        )
    version = result.get("driver_version")
    driver_text = "%s %s" % (used, version) if version else used
    if codecs["missing"]:
        return _verdict(
            False, LINK_GUEST_DRIVER,
            "VA-API works on %s (%s) but lacks %s" % (node, driver_text, ", ".join(codecs["missing"])),
            _codec_fix(codecs["missing"], result.get("driver_name")),
            **details
        )
    return _verdict(
        True, None,
        "VA-API ok on %s: %s with %s" % (node, driver_text, ", ".join(codecs["present"]) or "no codec required"),
        None,
        **details
    )


def _driver_text(result):
    used = result.get("driver_name") or result.get("driver") or "unknown"
    version = result.get("driver_version")
    return "%s %s" % (used, version) if version else used


def _codec_phrase(offered):
    parts = []
    for codec in gpu_capabilities.CODECS:
        facts = offered.get(codec) or {}
        directions = (["decode"] if facts.get("decode") else []) + (
            ["encode (%s)" % facts["encode"]] if facts.get("encode", "no") != "no" else [])
        if directions:
            parts.append("%s %s" % (codec, " + ".join(directions)))
    return ", ".join(parts) or "no codec"


def judge_generation(node, result, caps, required=None, driver_name="iHD", non_free=False, huc=None):
    """The verdict for the passed GPU's render node, against what its generation must offer."""
    result = result if isinstance(result, dict) else {}
    if required is None:
        by_codec = gpu_capabilities.pairs_by_codec(caps, non_free=non_free, huc=huc)
        wanted = [name for name in ("%s_%s" % (codec, kind) for codec, entry in by_codec.items()
                                    for kind in ("decode", "encode") if entry[kind]) if name in CAPABILITIES]
    else:
        wanted = list(required)
    base = judge_node(node, result, wanted, driver_name)
    missing = gpu_capabilities.missing_capabilities(
        caps, result.get("profiles") or {}, result.get("driver_name") or driver_name, non_free=non_free, huc=huc)
    hard = [m for m in missing if not m["partial"]]
    notes = ["%s: %s is not listed (%s) — %s" % (m["capability"], ", ".join(m["missing"]), m["cause"], m["fix"])
             for m in missing if m["partial"]]
    details = {
        "expected_profiles": ["%s/%s" % pair for pair in gpu_capabilities.expected_profiles(caps, non_free, huc)],
        "missing_capabilities": missing,
        "offered": gpu_capabilities.offered(result.get("profiles") or {}),
        "notes": notes,
    }
    base.update(details)
    if result.get("status") != "ok" or base["codecs"]["unknown"]:
        return base
    if hard:
        names = [m["capability"] for m in hard]
        causes = _dedup(m["cause"] for m in hard)
        fixes = _dedup(m["fix"] for m in hard)
        verdict = _verdict(
            False, LINK_GUEST_DRIVER,
            "VA-API works on %s (%s) but lacks %s that %s offers: %s" % (
                node, _driver_text(result), ", ".join(names), caps["name"], "; ".join(causes)),
            "; ".join(fixes),
            **{k: v for k, v in base.items() if k not in ("ok", "link", "message", "fix")}
        )
        return verdict
    if not base["ok"]:
        return base
    base["message"] = "VA-API ok on %s: %s offers what %s has: %s" % (
        node, _driver_text(result), caps["name"], _codec_phrase(details["offered"]))
    return base


def _huc_from_facts(gpu):
    """i915's enable_guc as read from sysfs: 2 and 3 load HuC, -1 leaves it to the kernel's default."""
    value = (gpu or {}).get("enable_guc")
    if value in (None, "", -1, "-1"):
        return None
    try:
        return int(value) in (2, 3)
    except (TypeError, ValueError):
        return None


def diagnose(facts, required=None, driver_name="iHD", non_free=False, huc=None):
    """One verdict for the guest from the ``vainfo`` facts of ``vainfo_facts``.

    Returns ``{ok, link, message, fix, line, render_nodes, node, driver, driver_name, driver_version,
    codecs, nodes, gpu, capabilities, notes, ...}``: ``link`` is None when ok, ``vm_config`` when there
    is no render node and ``guest_driver`` otherwise. With ``facts["gpu"]`` (the passed GPU found in
    sysfs) only its render node counts, judged against its generation when ``gpu_capabilities``
    knows it; otherwise ``node`` is the first render node that passes ``required`` (None: the default
    H.264/HEVC decode and encode), else the first probed. ``huc`` None takes what sysfs says.
    """
    facts = facts if isinstance(facts, dict) else {}
    if isinstance(required, str):
        required = [required]
    render_nodes = list(facts.get("render_nodes") or [])
    results = facts.get("results") or {}
    gpu = facts.get("gpu") if isinstance(facts.get("gpu"), dict) else None
    caps = gpu_capabilities.lookup(gpu.get("pci_id")) if gpu else None
    fallback = list(DEFAULT_REQUIRED if required is None else required)
    empty = {
        "render_nodes": render_nodes,
        "node": None,
        "driver": None,
        "driver_name": None,
        "driver_version": None,
        "codecs": codec_report({}, fallback),
        "nodes": {},
    }
    notes = []
    if not render_nodes and not results:
        verdict = _verdict(False, LINK_VM_CONFIG, NO_RENDER_NODE, NO_RENDER_NODE_FIX, **empty)
    elif not results:
        hint = facts.get("hint") or "vainfo did not run"
        if "vainfo" in hint:
            verdict = _verdict(False, LINK_GUEST_DRIVER, "vainfo is not installed: %s" % hint, NO_VAINFO_FIX, **empty)
        else:
            verdict = _verdict(False, LINK_VM_CONFIG, hint, NO_RENDER_NODE_FIX, **empty)
    else:
        chosen_node = gpu.get("node") if gpu else None
        nodes = {}
        for node, result in results.items():
            if caps and node == chosen_node:
                nodes[node] = judge_generation(node, result, caps, required, driver_name, non_free,
                                               _huc_from_facts(gpu) if huc is None else huc)
            else:
                nodes[node] = judge_node(node, result, fallback, driver_name)
        if chosen_node in nodes:
            chosen = nodes[chosen_node]
        else:
            passing = [n for n, v in nodes.items() if v["ok"]]
            chosen = nodes[passing[0]] if passing else nodes[next(iter(nodes))]
        verdict = dict(chosen)
        verdict["render_nodes"] = render_nodes
        verdict["nodes"] = nodes
        notes.extend(verdict.get("notes") or [])
        if gpu and not caps:
            notes.insert(0, "GPU %s is not in the capability table: judged by %s only, not by its generation" % (
                gpu.get("pci_id"), ", ".join(fallback)))
        elif gpu is None and "gpu" in facts:
            notes.insert(0, "no render node belongs to a PCI GPU: judged by %s only, not by a generation" % ", ".join(
                fallback))
    verdict["gpu"] = gpu
    verdict["capabilities"] = caps
    verdict["notes"] = notes
    if "offered" not in verdict:
        node_result = results.get(verdict.get("node")) or {}
        verdict["offered"] = gpu_capabilities.offered(node_result.get("profiles") or {}) if node_result.get(
            "status") == "ok" else None
    verdict["line"] = _line(verdict)
    return verdict


# Vendors of the displays a hypervisor emulates (QEMU std/bochs, virtio-gpu, QXL, Cirrus, VMware SVGA).
EMULATED_DISPLAY_VENDORS = {"1234": "QEMU/bochs display", "1af4": "virtio-gpu", "1b36": "QEMU QXL",
                            "1013": "Cirrus VGA", "15ad": "VMware SVGA"}
_DRM_NODE_RE = re.compile(r"^(card|renderD)([0-9]+)$")
_PCI_ADDRESS_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("ascii", "replace").strip()
    except OSError:
        return None


def scan_drm(sysfs_dir="/sys"):
    """The DRM nodes of ``<sysfs_dir>/class/drm`` with the PCI device behind each.

    Returns a list (numeric order, cards first) of ``{name, kind ("card"/"render"), number,
    pci_address, vendor, device, pci_id, class, driver, boot_vga}``; fields a node does not have
    (vgem has no PCI device) are None. Never raises on a missing or odd tree.
    """
    base = os.path.join(sysfs_dir, "class", "drm")
    try:
        names = os.listdir(base)
    except OSError:
        return []
    found = []
    for name in names:
        match = _DRM_NODE_RE.match(name)
        if not match:
            continue
        device_dir = os.path.join(base, name, "device")
        real = os.path.realpath(device_dir)
        address = os.path.basename(real).lower()
        vendor, device = pci_ids.hex_id(_read(os.path.join(device_dir, "vendor"))), pci_ids.hex_id(_read(os.path.join(device_dir, "device")))
        pci_class = _read(os.path.join(device_dir, "class"))
        driver_link = os.path.join(device_dir, "driver")
        driver = os.path.basename(os.path.realpath(driver_link)) if os.path.lexists(driver_link) else None
        found.append({
            "name": name,
            "kind": "card" if match.group(1) == "card" else "render",
            "number": int(match.group(2)),
            "pci_address": address if _PCI_ADDRESS_RE.match(address) else None,
            "vendor": vendor,
            "device": device,
            "pci_id": "%s:%s" % (vendor, device) if vendor and device else None,
            "class": pci_class.lower().replace("0x", "") if pci_class else None,
            "driver": driver,
            "boot_vga": _read(os.path.join(device_dir, "boot_vga")) == "1",
        })
    found.sort(key=lambda n: (n["kind"] != "card", n["number"]))
    return found


def read_enable_guc(sysfs_dir="/sys"):
    """i915's enable_guc parameter (-1 auto, 0..3), or None when i915 is not loaded."""
    value = _read(os.path.join(sysfs_dir, "module", "i915", "parameters", "enable_guc"))
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def choose_gpu(drm, dri_dir="/dev/dri", pci_address=None, enable_guc=None):
    """The render node of the passed-through GPU, from ``scan_drm`` entries.

    ``pci_address``: the GPU's address in the VM, when known. Otherwise the render node whose PCI
    device is a GPU in ``gpu_capabilities`` wins, then any Intel display device, then any other
    PCI display that is not an emulated one (bochs, virtio-gpu, QXL, ...). Returns ``{node,
    render_node, card, pci_address, pci_id, vendor, device, class, driver, known, enable_guc,
    skipped}`` or None; ``skipped`` says why each other render node was not chosen.
    """
    renders = [n for n in drm or [] if n.get("kind") == "render"]
    cards = {n.get("pci_address"): n["name"] for n in drm or [] if n.get("kind") == "card" and n.get("pci_address")}
    wanted = pci_address.lower() if pci_address else None
    if wanted and wanted.count(":") == 1:
        wanted = "0000:" + wanted

    def rank(entry):
        if not entry.get("pci_id"):
            return None, "no PCI device (a software node such as vgem)"
        if wanted:
            return (0, None) if entry.get("pci_address") == wanted else (None, "not the GPU at %s" % wanted)
        if entry["vendor"] in EMULATED_DISPLAY_VENDORS:
            return None, "the emulated display (%s)" % EMULATED_DISPLAY_VENDORS[entry["vendor"]]
        if gpu_capabilities.lookup(entry["pci_id"]):
            return 0, None
        if entry["vendor"] == gpu_capabilities.INTEL_VENDOR:
            return 1, None
        return 2, None

    ranked, skipped = [], []
    for entry in renders:
        score, why = rank(entry)
        if score is None:
            skipped.append({"node": os.path.join(dri_dir, entry["name"]), "pci_id": entry.get("pci_id"), "why": why})
        else:
            ranked.append((score, entry["number"], entry))
    if not ranked:
        return None
    ranked.sort(key=lambda item: item[:2])
    best = ranked[0][2]
    for _score, _number, entry in ranked[1:]:
        skipped.append({"node": os.path.join(dri_dir, entry["name"]), "pci_id": entry["pci_id"],
                        "why": "another GPU; %s is preferred" % best["name"]})
    return {
        "node": os.path.join(dri_dir, best["name"]),
        "render_node": best["name"],
        "card": cards.get(best.get("pci_address")),
        "pci_address": best.get("pci_address"),
        "pci_id": best["pci_id"],
        "vendor": best["vendor"],
        "device": best["device"],
        "class": best.get("class"),
        "driver": best.get("driver"),
        "known": gpu_capabilities.lookup(best["pci_id"]) is not None,
        "enable_guc": enable_guc,
        "skipped": skipped,
    }


def gpu_facts(sysfs_dir="/sys", dri_dir="/dev/dri", pci_address=None):
    """What ``vainfo_facts`` adds as ``ansible_facts.vainfo.gpu``: ``choose_gpu`` over this sysfs."""
    return choose_gpu(scan_drm(sysfs_dir), dri_dir, pci_address, read_enable_guc(sysfs_dir))


def _check_label(key, value):
    prefix, slash, name = key.rpartition("/")
    if not _LABEL_NAME_RE.match(name) or (slash and not _DNS_SUBDOMAIN_RE.match(prefix)):
        raise ValueError("%r is not a valid Kubernetes label key (prefix/name, name up to 63 characters of [-A-Za-z0-9_.])" % key)
    if not isinstance(value, str) or not _LABEL_VALUE_RE.match(value):
        raise ValueError(
            "%r=%r: a Kubernetes label value is a string of up to 63 characters of [-A-Za-z0-9_.], "
            "starting and ending with a letter or digit" % (key, value)
        )


LABEL_PREFIX = "gpu.homelab.io"
# The annotation listing the label keys the collection set, so a later run removes only those.
MANAGED_ANNOTATION = LABEL_PREFIX + "/managed-labels"
NFD_GPU_LABEL = "intel.feature.node.kubernetes.io/gpu"
NFD_DEVICE_LABEL = "gpu.intel.com/device-id.%s-%s.present"


def capability_labels(offered, caps=None, prefix=LABEL_PREFIX):
    """``<prefix>/<codec>-decode`` / ``-encode`` = ``"true"`` for what vainfo lists, plus generation and platform."""
    labels = {}
    for codec in gpu_capabilities.CODECS:
        facts = (offered or {}).get(codec) or {}
        if facts.get("decode"):
            labels["%s/%s-decode" % (prefix, codec)] = "true"
        if facts.get("encode", "no") != "no":
            labels["%s/%s-encode" % (prefix, codec)] = "true"
    if caps:
        labels["%s/generation" % prefix] = caps["generation"]
        labels["%s/platform" % prefix] = caps["platform"]
    return labels


def nfd_labels(gpu):
    """The labels NFD's Intel GPU rule sets (vendor 8086, display class 03xx), for the Intel device plugin's selector."""
    pci_class = (gpu or {}).get("class") or ""
    if not gpu or gpu.get("vendor") != gpu_capabilities.INTEL_VENDOR or not pci_class.startswith("03"):
        return {}
    return {NFD_GPU_LABEL: "true", NFD_DEVICE_LABEL % (pci_class[:4], gpu["device"]): "true"}


def node_labels(gpu, names=None, override=None, gpu_key="gpu", cpu_tier=None, extra=None, verified=True, current=None,
                offered=None, caps=None, nfd=False, streams=None, managed=None, prefix=LABEL_PREFIX):
    """The labels the node should carry, what a merge patch must change, and why some are not there.

    ``gpu``: what ``choose_gpu`` found (or None). ``names``: PCI id -> label value.
    ``override``: a label value used instead of the name (still only for a detected GPU).
    ``verified``: False keeps the GPU label off (VA-API did not pass the checks).
    ``offered``: codec -> {decode, encode} as vainfo lists it on the GPU's node (None: not proven):
    the capability labels under ``prefix``; ``caps`` adds generation and platform; ``nfd`` the NFD
    labels; ``streams``: scenario -> real-time streams measured, as ``<prefix>/streams-<scenario>``.
    ``current``: the labels the node has now; ``managed``: the keys the collection set before (the
    node's ``MANAGED_ANNOTATION``). A key set before (or under ``prefix``, or ``gpu_key``) and no
    longer wanted is removed (None in ``changes``); any other label is left alone.
    Returns ``{labels, changes, removed, managed, gpu_label, notes}``. Raises ValueError on an invalid key or value.
    """
    labels = {}
    notes = []
    value = None
    if not gpu:
        notes.append("no GPU detected (no render node with a PCI device in sysfs): no `%s` label" % gpu_key)
    elif not verified:
        notes.append("GPU %s detected, but VA-API did not pass the checks: no `%s` label" % (gpu.get("pci_id"), gpu_key))
    elif override:
        value = str(override)
    else:
        table = {pci_ids.vendor_device(k) or str(k).lower(): v for k, v in (names or {}).items()}
        value = table.get(gpu.get("pci_id"))
        if value is None:
            notes.append(
                "GPU %s has no name in gpu_worker_gpu_label_names: no `%s` label — add it there or set gpu_worker_gpu_label"
                % (gpu.get("pci_id"), gpu_key)
            )
        else:
            value = str(value)
    if value is not None:
        labels[gpu_key] = value
    if gpu and offered:
        labels.update(capability_labels(offered, caps, prefix))
    if gpu and nfd:
        labels.update(nfd_labels(gpu))
    for scenario, count in (streams or {}).items():
        if count is not None and gpu:
            labels["%s/streams-%s" % (prefix, scenario)] = str(int(count))
    if cpu_tier not in (None, ""):
        labels["cpu-tier"] = str(cpu_tier)
    for key, extra_value in (extra or {}).items():
        labels[str(key)] = extra_value if isinstance(extra_value, str) else str(extra_value)
    for key, label_value in labels.items():
        _check_label(key, label_value)
    current = current or {}
    owned = set(managed or []) | {gpu_key} | {k for k in current if k.startswith(prefix + "/")}
    removed = sorted(k for k in owned if k in current and k not in labels)
    for key in removed:
        notes.append("removed %s=%s: set by this collection before and no longer true" % (key, current[key]))
    changes = {k: v for k, v in labels.items() if current.get(k) != v}
    changes.update({k: None for k in removed})
    return {"labels": labels, "changes": changes, "removed": removed, "managed": ",".join(sorted(labels)),
            "gpu_label": value, "notes": notes}
