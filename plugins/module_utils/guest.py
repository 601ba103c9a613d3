# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest link: judge what vainfo_facts found, name the GPU, and work out the node labels.

Pure Python, standard library only. ``diagnose`` turns the ``vainfo`` facts into one verdict
``{ok, link, message, fix, line, ...}`` whose ``link`` says where the chain is broken:

``VM config``     no render node in the guest: the GPU never reached the VM (hostpciN)
``guest driver``  a render node exists, but VA-API does not work on it or lacks a required codec

``gpu_from_sysfs`` reads the PCI ids of the render nodes from ``/sys/class/drm`` reads, and
``node_labels`` decides which labels the Kubernetes node gets: only what was detected.
"""

from __future__ import annotations

import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.vainfo import (
    CAPABILITIES,
    DEFAULT_REQUIRED,
    codec_report,
)

LINK_VM_CONFIG = "VM config"
LINK_GUEST_DRIVER = "guest driver"

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
_HEX_ID_RE = re.compile(r"^(?:0x)?([0-9a-f]{1,4})$")
_PCI_ID_RE = re.compile(r"^([0-9a-f]{4}):([0-9a-f]{4})$")


def _dedup(items):
    return list(dict.fromkeys(i for i in items if i))


def _verdict(ok, link, message, fix, **details):
    result = {"ok": bool(ok), "link": None if ok else link, "message": message, "fix": None if ok else fix}
    result.update(details)
    return result


def _line(verdict):
    if verdict["ok"]:
        return "ok   %s" % verdict["message"]
    return "FAIL %s: %s — fix: %s" % (verdict["link"], verdict["message"], verdict["fix"])


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


def diagnose(facts, required=None, driver_name="iHD"):
    """One verdict for the guest from the ``vainfo`` facts of ``vainfo_facts``.

    Returns ``{ok, link, message, fix, line, render_nodes, node, driver, driver_name, driver_version,
    codecs, nodes}``: ``link`` is None when ok, ``VM config`` when there is no render node and
    ``guest driver`` otherwise; ``node`` is the render node the verdict is about (the first that
    passes, else the first probed), ``nodes`` holds the verdict of every probed node.
    """
    facts = facts if isinstance(facts, dict) else {}
    required = list(DEFAULT_REQUIRED if required is None else ([required] if isinstance(required, str) else required))
    render_nodes = list(facts.get("render_nodes") or [])
    results = facts.get("results") or {}
    empty = {
        "render_nodes": render_nodes,
        "node": None,
        "driver": None,
        "driver_name": None,
        "driver_version": None,
        "codecs": codec_report({}, required),
        "nodes": {},
    }
    if not render_nodes and not results:
        verdict = _verdict(False, LINK_VM_CONFIG, NO_RENDER_NODE, NO_RENDER_NODE_FIX, **empty)
    elif not results:
        hint = facts.get("hint") or "vainfo did not run"
        if "vainfo" in hint:
            verdict = _verdict(False, LINK_GUEST_DRIVER, "vainfo is not installed: %s" % hint, NO_VAINFO_FIX, **empty)
        else:
            verdict = _verdict(False, LINK_VM_CONFIG, hint, NO_RENDER_NODE_FIX, **empty)
    else:
        nodes = {node: judge_node(node, result, required, driver_name) for node, result in results.items()}
        passing = [n for n, v in nodes.items() if v["ok"]]
        chosen = nodes[passing[0]] if passing else nodes[next(iter(nodes))]
        verdict = dict(chosen)
        verdict["render_nodes"] = render_nodes
        verdict["nodes"] = nodes
    verdict["line"] = _line(verdict)
    return verdict


def hex_id(value):
    """``0x8086``/``8086`` -> ``8086``; None when it is no 16-bit hex id."""
    if value is None:
        return None
    match = _HEX_ID_RE.match(str(value).strip().lower())
    return match.group(1).zfill(4) if match else None


def pci_id(value):
    """``8086:3E92`` -> ``8086:3e92``; None when it is not a vendor:device pair."""
    match = _PCI_ID_RE.match(str(value or "").strip().lower())
    return "%s:%s" % match.groups() if match else None


def gpu_from_sysfs(text):
    """The GPU behind the render nodes, from lines ``renderD128 0x8086 0x3e92``.

    Each line names a render node of ``<sysfs>/class/drm`` with the contents of its ``device/vendor``
    and ``device/device`` files (``-`` when a file is missing). Returns ``{pci_id, node, vendor,
    device}`` for the first render node (in numeric order) with both ids, or None: a render node
    without a PCI device (``vgem``, a software node) is no GPU.
    """
    found = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) != 3 or not re.match(r"^renderD[0-9]+$", fields[0]):
            continue
        vendor, device = hex_id(fields[1]), hex_id(fields[2])
        if vendor and device:
            found.append((int(fields[0][len("renderD"):]), fields[0], vendor, device))
    if not found:
        return None
    _number, node, vendor, device = min(found)
    return {"pci_id": "%s:%s" % (vendor, device), "node": node, "vendor": vendor, "device": device}


def _check_label(key, value):
    prefix, slash, name = key.rpartition("/")
    if not _LABEL_NAME_RE.match(name) or (slash and not _DNS_SUBDOMAIN_RE.match(prefix)):
        raise ValueError("%r is not a valid Kubernetes label key (prefix/name, name up to 63 characters of [-A-Za-z0-9_.])" % key)
    if not isinstance(value, str) or not _LABEL_VALUE_RE.match(value):
        raise ValueError(
            "%r=%r: a Kubernetes label value is a string of up to 63 characters of [-A-Za-z0-9_.], "
            "starting and ending with a letter or digit" % (key, value)
        )


def node_labels(gpu, names=None, override=None, gpu_key="gpu", cpu_tier=None, extra=None, verified=True, current=None):
    """The labels the node should carry, and why some are not there.

    ``gpu``: what ``gpu_from_sysfs`` found (or None). ``names``: PCI id -> label value.
    ``override``: a label value used instead of the name (still only for a detected GPU).
    ``verified``: False keeps the GPU label off (VA-API did not pass the checks).
    ``current``: the labels the node has now; ``changes`` lists what a merge patch must set.
    Returns ``{labels, changes, gpu_label, notes}``. Raises ValueError on an invalid key or value.
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
        table = {pci_id(k) or str(k).lower(): v for k, v in (names or {}).items()}
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
    if cpu_tier not in (None, ""):
        labels["cpu-tier"] = str(cpu_tier)
    for key, extra_value in (extra or {}).items():
        labels[str(key)] = extra_value if isinstance(extra_value, str) else str(extra_value)
    for key, label_value in labels.items():
        _check_label(key, label_value)
    current = current or {}
    if gpu_key not in labels and gpu_key in current:
        notes.append(
            "the node still carries %s=%s from before; it is left as it is (kubectl label node <node> %s-)"
            % (gpu_key, current[gpu_key], gpu_key)
        )
    changes = {k: v for k, v in labels.items() if current.get(k) != v}
    return {"labels": labels, "changes": changes, "gpu_label": value, "notes": notes}
