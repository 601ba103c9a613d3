# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GuC and HuC as the kernel that drives the GPU reports them: debugfs first, the kernel log otherwise.

``i915.enable_guc=2`` says HuC *should* load; the firmware may still be missing, fail authentication or
the GPU be wedged. This module reads what happened. Pure parsing (``parse_debugfs``,
``parse_kernel_log``, ``combine``) plus one reader of a debugfs tree (``read_debugfs``); it never
raises on odd or partial text: what it cannot place stays ``unknown``, with the lines it saw.

Formats (facts only):

- debugfs ``dri/<minor>/gt<N>/uc/huc_info`` and ``guc_info``: torvalds/linux
  drivers/gpu/drm/i915/gt/uc/intel_huc.c ``intel_huc_load_status`` ("HuC not supported", "HuC disabled",
  else the firmware dump and "HuC status: 0x..."), intel_uc_fw.c ``intel_uc_fw_dump`` ("<GuC|HuC>
  firmware: <path>", "status: <repr>", "version: wanted X.Y[.Z], found X.Y[.Z]", "uCode: N bytes"),
  intel_uc_fw.h ``intel_uc_fw_status_repr`` (N/A, UNINITIALIZED, DISABLED, SELECTED, MISSING, ERROR,
  AVAILABLE, INIT FAIL, LOADABLE, LOAD FAIL, FAIL (older), TRANSFERRED, RUNNING; HuC RUNNING is
  ``intel_huc_is_authenticated``); the xe driver prints the same layout (PRELOADED on a VF). Kernels
  before 4.17 have ``dri/<minor>/i915_huc_load_status`` and ``i915_guc_load_status`` (Jellyfin's Intel page).
- kernel log: "GuC/HuC firmware <path> version <v>" once loaded, "HuC: authenticated[ for all
  workloads]!" (older kernels "authenticated:yes"), "<fw> firmware <path>: fetch failed -ENOENT" and
  "Direct firmware load for <path> failed with error -2" (missing), "Enabling uc failed (-5)",
  "... wedged", "Incompatible option enable_guc=N - GuC submission is N/A" / "- HuC is not supported!",
  "GuC/HuC firmware PRELOADED" inside an SR-IOV VF.
"""

from __future__ import annotations

import glob
import os
import re

AUTHENTICATED = "authenticated"
LOADED = "loaded"
NOT_LOADED = "not loaded"
NOT_SUPPORTED = "not supported"
FIRMWARE_MISSING = "firmware missing"
FAILED = "failed"
WEDGED = "wedged"
UNKNOWN = "unknown"

STATES = (AUTHENTICATED, LOADED, NOT_LOADED, NOT_SUPPORTED, FIRMWARE_MISSING, FAILED, WEDGED, UNKNOWN)
# HuC states under which the media driver can use HuC, and those under which it cannot.
HUC_PRESENT = (AUTHENTICATED, LOADED)
HUC_ABSENT = (NOT_LOADED, NOT_SUPPORTED, FIRMWARE_MISSING, FAILED, WEDGED)

SOURCE_DEBUGFS = "debugfs"
SOURCE_KERNEL_LOG = "kernel log"
SOURCE_PARAMETER = "parameter"

# When several lines speak of one firmware, the stronger word wins (a wedged GPU runs nothing;
# an authentication printed after the load message is the later, better news).
_RANK = {UNKNOWN: 0, NOT_LOADED: 1, NOT_SUPPORTED: 2, LOADED: 3, FAILED: 4, FIRMWARE_MISSING: 5, AUTHENTICATED: 6,
         WEDGED: 7}

# intel_uc_fw_status_repr -> state, per firmware (HuC RUNNING means authenticated; GuC RUNNING runs).
_STATUS = {
    "N/A": NOT_SUPPORTED,
    "UNINITIALIZED": NOT_LOADED,
    "DISABLED": NOT_LOADED,
    "SELECTED": NOT_LOADED,
    "AVAILABLE": NOT_LOADED,
    "LOADABLE": NOT_LOADED,
    "MISSING": FIRMWARE_MISSING,
    "ERROR": FAILED,
    "INIT FAIL": FAILED,
    "LOAD FAIL": FAILED,
    "FAIL": FAILED,
    "TRANSFERRED": LOADED,
    "PRELOADED": LOADED,
}
_STATUS_WHY = {
    "ERROR": "the firmware file was rejected (invalid format or version)",
    "INIT FAIL": "preparing the firmware for the load failed",
    "LOAD FAIL": "the firmware failed to load or authenticate",
    "FAIL": "the firmware failed to load or authenticate",
    "DISABLED": "disabled by the driver's parameters (i915.enable_guc)",
    "MISSING": "the firmware file is not installed",
    "PRELOADED": "loaded by the host (SR-IOV VF)",
}

_KINDS = ("guc", "huc")
_MAX_SEEN = 20


def _empty(kind_state=UNKNOWN):
    return {"state": kind_state, "path": None, "version": None, "wanted": None, "status": None, "why": None}


def _better(current, new):
    return new if _RANK.get(new["state"], 0) >= _RANK.get(current["state"], 0) else current


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# ---- debugfs -----------------------------------------------------------------------------------

_FW_LINE_RE = re.compile(r"\b(GuC|HuC) firmware(?: wanted)?:\s*(\S*)", re.I)
_STATUS_RE = re.compile(r"^\s*status:\s*(.+?)\s*$", re.I)
_VERSION_RE = re.compile(r"version:\s*wanted\s+([0-9.]+)\s*,\s*found\s+([0-9.]+)", re.I)
_NOT_SUPPORTED_RE = re.compile(r"\b(GuC|HuC) not supported", re.I)
_DISABLED_RE = re.compile(r"\b(GuC|HuC) disabled", re.I)


def parse_debugfs(text):
    """``guc_info``/``huc_info`` text (one file or several pasted together) -> ``{"guc": {...}, "huc": {...}}``.

    Each entry: ``state`` (one of STATES), ``path`` (the firmware file), ``version`` (found),
    ``wanted``, ``status`` (the kernel's word) and ``why``; a firmware the text does not mention stays
    ``unknown``.
    """
    result = {kind: _empty() for kind in _KINDS}
    current = None
    for raw in _text(text).splitlines():
        line = raw.rstrip()
        match = _NOT_SUPPORTED_RE.search(line)
        if match and "firmware" not in line.lower():
            kind = match.group(1).lower()
            found = dict(_empty(NOT_SUPPORTED), status="not supported", why="this GPU has no %s" % match.group(1))
            result[kind] = _better(result[kind], found)
            current = None
            continue
        match = _DISABLED_RE.search(line)
        if match and "firmware" not in line.lower():
            kind = match.group(1).lower()
            found = dict(_empty(NOT_LOADED), status="disabled", why=_STATUS_WHY["DISABLED"])
            result[kind] = _better(result[kind], found)
            current = None
            continue
        match = _FW_LINE_RE.search(line)
        if match:
            current = match.group(1).lower()
            if "wanted:" not in line.lower() or not result[current]["path"]:
                result[current]["path"] = match.group(2) or result[current]["path"]
            continue
        if current is None:
            continue
        match = _STATUS_RE.match(line)
        if match:
            word = match.group(1).upper()
            state = _STATUS.get(word)
            if word == "RUNNING":
                state = AUTHENTICATED if current == "huc" else LOADED
            entry = dict(result[current], status=match.group(1), why=_STATUS_WHY.get(word))
            entry["state"] = state or UNKNOWN
            result[current] = entry
            continue
        match = _VERSION_RE.search(line)
        if match:
            result[current]["wanted"], result[current]["version"] = match.group(1), match.group(2)
    return result


# ---- kernel log --------------------------------------------------------------------------------

_DEVICE_RE = re.compile(r"\b(?:i915|xe) ([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]):", re.I)
_LOADED_RE = re.compile(r"\b(GuC|HuC) firmware (\S+) version (\S+)(.*)$", re.I)
_PRELOADED_RE = re.compile(r"\b(GuC|HuC) firmware PRELOADED\b", re.I)
_AUTH_RE = re.compile(r"\bHuC:? (?:is )?authenticated\b", re.I)
_FETCH_FAILED_RE = re.compile(r"\b(GuC|HuC) firmware (\S+?):? fetch failed(.*)$", re.I)
_DIRECT_LOAD_RE = re.compile(r"Direct firmware load for (\S*(guc|huc)\S*) failed with error (-?\w+)", re.I)
_UC_FAILED_RE = re.compile(r"\b(?:Enabling|Initializing) uc failed\s*\(?(-?\w+)?", re.I)
# "GuC error state capture buffer maybe small" is a harmless notice: only a failure word counts.
_KIND_FAILED_RE = re.compile(r"\b(GuC|HuC)\b[^\n]*?\bfail(?:ed|ure|s)?\b(.*)$", re.I)
_WEDGED_RE = re.compile(r"\bwedged\b", re.I)
_INCOMPATIBLE_RE = re.compile(r"Incompatible option enable_guc=(-?\d+)\s*-\s*(GuC submission is N/A|HuC is not supported)",
                              re.I)
_VF_RE = re.compile(r"Running in SR-IOV VF mode", re.I)
_MISSING_RE = re.compile(r"ENOENT|(?<![\w-])-2(?![\w.])", re.I)


def _is_missing(rest):
    """-ENOENT (errno 2): the file is not there; any other error is a failure."""
    return bool(_MISSING_RE.search(rest or ""))


def parse_kernel_log(text, pci_address=None):
    """The kernel log (dmesg, ``dmesg -T``, journalctl) -> ``{"guc": {...}, "huc": {...}, "notes": [], "seen": []}``.

    Only lines of ``pci_address`` count when a line names its device (an SR-IOV host logs its VFs too);
    lines without a device (older kernels' ``[drm]`` lines) count for every GPU. ``seen`` holds the
    lines that decided, ``notes`` what else matters (GuC submission not available, an SR-IOV VF).
    """
    wanted = (pci_address or "").lower() or None
    if wanted and wanted.count(":") == 1:
        wanted = "0000:" + wanted
    result = {kind: _empty() for kind in _KINDS}
    notes, seen = [], []

    def note(kind, state, line, **fields):
        if state != UNKNOWN:
            before, entry = result[kind], dict(_empty(state), **fields)
            result[kind] = dict(_better(before, entry))
            for key in ("path", "version"):
                result[kind][key] = result[kind][key] or entry[key] or before[key]
        if len(seen) < _MAX_SEEN and line not in seen:
            seen.append(line)

    for raw in _text(text).splitlines():
        line = raw.strip()
        if not line:
            continue
        device = _DEVICE_RE.search(line)
        if wanted and device and device.group(1).lower() != wanted:
            continue
        if _VF_RE.search(line):
            notes.append("the GPU runs as an SR-IOV VF: the host loads GuC and HuC for it")
            note("guc", UNKNOWN, line)
            continue
        match = _INCOMPATIBLE_RE.search(line)
        if match:
            if match.group(2).lower().startswith("huc"):
                note("huc", NOT_SUPPORTED, line, why="enable_guc=%s asks for HuC, which this GPU lacks" % match.group(1))
            else:
                notes.append("enable_guc=%s asks for GuC submission, which this GPU lacks (no SR-IOV on it)"
                             % match.group(1))
                note("guc", UNKNOWN, line)
            continue
        if _WEDGED_RE.search(line) and ("gpu" in line.lower() or "declaring" in line.lower() or "i915" in line.lower()
                                        or "xe " in line.lower()):
            for kind in _KINDS:
                note(kind, WEDGED, line, why="the GPU is wedged: the kernel stopped using it")
            continue
        match = _PRELOADED_RE.search(line)
        if match:
            note(match.group(1).lower(), LOADED, line, status="PRELOADED", why=_STATUS_WHY["PRELOADED"])
            continue
        match = _FETCH_FAILED_RE.search(line)
        if match:
            kind = match.group(1).lower()
            missing = _is_missing(match.group(3))
            note(kind, FIRMWARE_MISSING if missing else FAILED, line, path=match.group(2),
                 why=_STATUS_WHY["MISSING"] if missing else "the firmware file could not be read%s" % match.group(3))
            continue
        match = _DIRECT_LOAD_RE.search(line)
        if match:
            missing = _is_missing(match.group(3))
            note(match.group(2).lower(), FIRMWARE_MISSING if missing else FAILED, line, path=match.group(1),
                 why=_STATUS_WHY["MISSING"] if missing else "loading the firmware file failed (%s)" % match.group(3))
            continue
        match = _UC_FAILED_RE.search(line)
        if match:
            code = match.group(1) or "?"
            for kind in _KINDS:
                note(kind, FAILED, line, why="the driver could not start GuC/HuC (error %s)" % code)
            continue
        if _AUTH_RE.search(line):
            note("huc", AUTHENTICATED, line, status="authenticated")
            continue
        match = _LOADED_RE.search(line)
        if match:
            kind, tail = match.group(1).lower(), match.group(4).lower()
            state = LOADED
            if kind == "huc" and "authenticated:yes" in tail.replace(" ", ""):
                state = AUTHENTICATED
            elif kind == "huc" and "authenticated:no" in tail.replace(" ", ""):
                state = FAILED
            note(kind, state, line, path=match.group(2), version=match.group(3).rstrip(",;"),
                 why="the firmware did not authenticate" if state == FAILED else None)
            continue
        match = _KIND_FAILED_RE.search(line)
        if match:
            kind = match.group(1).lower()
            missing = _is_missing(match.group(2))
            note(kind, FIRMWARE_MISSING if missing else FAILED, line,
                 why=_STATUS_WHY["MISSING"] if missing else "the kernel logged a %s failure" % match.group(1))
    result["notes"] = list(dict.fromkeys(notes))
    result["seen"] = seen
    return result


# ---- reading debugfs ---------------------------------------------------------------------------

def _read(path):
    with open(path, "rb") as handle:
        return handle.read(65536).decode("utf-8", "replace")


def _dri_dirs(debugfs_dir, card, pci_address):
    """The debugfs dirs of this GPU: ``dri/<pci address>`` (newer kernels) and ``dri/<card minor>``."""
    base = os.path.join(debugfs_dir, "dri")
    dirs = []
    if pci_address:
        dirs.append(os.path.join(base, pci_address))
    match = re.match(r"^card(\d+)$", card or "")
    if match:
        dirs.append(os.path.join(base, match.group(1)))
    return dirs


def _belongs(directory, pci_address):
    """False only when the dir's ``name`` file names another device (``i915 dev=0000:00:02.0 ...``)."""
    try:
        name = _read(os.path.join(directory, "name"))
    except OSError:
        return True
    found = re.findall(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", name.lower())
    return not (pci_address and found and pci_address.lower() not in found)


def read_debugfs(debugfs_dir="/sys/kernel/debug", card=None, pci_address=None):
    """``guc_info``/``huc_info`` of every GT of the GPU (or the pre-4.17 files) -> ``(parsed, files, problem)``.

    ``parsed`` as ``parse_debugfs`` (None when no file was read), ``files`` the paths read, ``problem``
    why nothing was read (debugfs not mounted, not readable without root) or None.
    """
    problem = None
    for directory in _dri_dirs(debugfs_dir, card, pci_address):
        if not os.path.isdir(directory) or not _belongs(directory, pci_address):
            continue
        paths = sorted(glob.glob(os.path.join(directory, "gt*", "uc", "guc_info"))
                       + glob.glob(os.path.join(directory, "gt*", "uc", "huc_info")))
        paths += [p for p in (os.path.join(directory, "i915_guc_load_status"),
                              os.path.join(directory, "i915_huc_load_status")) if os.path.exists(p)]
        parsed, files = {kind: _empty() for kind in _KINDS}, []
        for path in paths:
            try:
                text = _read(path)
            except OSError as exc:
                problem = "%s is not readable (%s): read it as root" % (path, exc.strerror or exc)
                continue
            files.append(path)
            one = parse_debugfs(text)
            for kind in _KINDS:
                # A media GT (gt1 on Meteor Lake) carries the HuC the primary GT does not support.
                if one[kind]["state"] != UNKNOWN and (parsed[kind]["state"] in (UNKNOWN, NOT_SUPPORTED)):
                    parsed[kind] = one[kind]
        if files:
            return parsed, files, None
    if problem is None:
        if not os.path.isdir(os.path.join(debugfs_dir, "dri")):
            problem = "debugfs is not mounted at %s (or not readable)" % debugfs_dir
        else:
            problem = "no guc_info/huc_info under %s/dri for %s" % (debugfs_dir, pci_address or card or "this GPU")
    return None, [], problem


# ---- the answer --------------------------------------------------------------------------------

def _firmware(entry):
    if not entry or not (entry.get("path") or entry.get("version")):
        return None
    return {"path": entry.get("path"), "version": entry.get("version"), "wanted": entry.get("wanted"),
            "status": entry.get("status")}


def combine(debugfs=None, kernel_log=None, enable_guc=None, debugfs_files=None, debugfs_problem=None):
    """One answer per GPU from what was read: ``{guc, huc, source, firmware, detail, notes, seen, enable_guc}``.

    Per firmware, debugfs wins where it knows the state, else the kernel log. ``source`` says where the
    HuC state came from (``debugfs``, ``kernel log``), ``parameter`` when neither knew it and only
    i915's ``enable_guc`` is there to judge by, None when nothing was read at all.
    """
    debugfs = debugfs or {}
    log = kernel_log or {}
    chosen, sources = {}, {}
    for kind in _KINDS:
        from_fs = debugfs.get(kind) or _empty()
        from_log = log.get(kind) or _empty()
        if from_fs.get("state", UNKNOWN) != UNKNOWN:
            chosen[kind], sources[kind] = dict(from_fs), SOURCE_DEBUGFS
            for key in ("path", "version"):
                chosen[kind][key] = chosen[kind].get(key) or from_log.get(key)
        elif from_log.get("state", UNKNOWN) != UNKNOWN:
            chosen[kind], sources[kind] = dict(from_log), SOURCE_KERNEL_LOG
        else:
            chosen[kind], sources[kind] = dict(_empty(), path=from_fs.get("path") or from_log.get("path"),
                                               version=from_fs.get("version") or from_log.get("version")), None
    source = sources["huc"] or sources["guc"]
    if source is None and enable_guc is not None:
        source = SOURCE_PARAMETER
    parts = []
    for kind, title in (("huc", "HuC"), ("guc", "GuC")):
        entry = chosen[kind]
        if entry["state"] == UNKNOWN:
            continue
        text = "%s %s" % (title, entry["state"])
        if entry.get("path"):
            text += " (%s%s)" % (entry["path"], " %s" % entry["version"] if entry.get("version") else "")
        if entry.get("why"):
            text += ": %s" % entry["why"]
        parts.append("%s, read from %s" % (text, sources[kind]))
    if chosen["huc"]["state"] == UNKNOWN:
        where = []
        if debugfs_problem:
            where.append(debugfs_problem)
        if kernel_log is not None:
            where.append("the kernel log has no HuC line (rotated out, or the driver never tried HuC)")
        judged = ("judged by i915.enable_guc=%s" % enable_guc) if enable_guc is not None else \
            "judged by the generation's default"
        parts.append("HuC state unknown (%s): %s" % ("; ".join(where) or "nothing read", judged))
    seen = list(log.get("seen") or [])
    return {
        "guc": chosen["guc"]["state"],
        "huc": chosen["huc"]["state"],
        "source": source,
        "sources": sources,
        "firmware": {kind: _firmware(chosen[kind]) for kind in _KINDS},
        "detail": "; ".join(parts),
        "notes": list(log.get("notes") or []),
        "seen": seen,
        "debugfs_files": list(debugfs_files or []),
        "enable_guc": enable_guc,
    }


def huc_present(uc):
    """True when the read HuC state lets the media driver use HuC, False when it does not, None when unknown.

    ``uc``: a ``combine`` result or just its HuC state.
    """
    state = uc.get("huc") if isinstance(uc, dict) else uc
    if state in HUC_PRESENT:
        return True
    if state in HUC_ABSENT:
        return False
    return None
