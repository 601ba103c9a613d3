# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn the text ``vainfo`` prints into driver, profiles, entrypoints and codec capabilities.

Pure and stdlib-only. ``parse`` never raises: real output arrives with damaged pastes, missing
stderr, ``[...]`` elisions, truncated first characters and lines glued together, so every field
is recognised by its own content rather than by position or by an exact line prefix.
"""

import re

# Entrypoints that make a profile count as "can encode". FEI alone does not count.
ENCODE_ENTRYPOINTS = ("VAEntrypointEncSlice", "VAEntrypointEncSliceLP")
DECODE_ENTRYPOINT = "VAEntrypointVLD"

# Capability names codec_report understands; each is a boolean key of the parse result.
CAPABILITIES = ("h264_decode", "h264_encode", "hevc_decode", "hevc_encode", "av1_decode", "av1_encode")
DEFAULT_REQUIRED = ("h264_decode", "h264_encode", "hevc_decode", "hevc_encode")

# Known prefixes, for classifying lines (libva stderr, vainfo stdout, vainfo's own stderr).
_PREFIXES = ("libva info:", "libva error:", "error:", "vainfo:", "Trying display:")

# Where one logical line starts inside a physical one (pastes glue lines together). A bare
# "error:" starts a line unless it ends a word such as "libva error:".
_SPLIT_RE = re.compile(
    r"(?=libva info:|libva error:|vainfo:|Trying display:|(?<![A-Za-z] )(?<![A-Za-z])error:"
    r"|VAProfile\w+\s*(?::|/)\s*VAEntrypoint|va[A-Z]\w* failed with error code)"
)

_VAINFO_VERSION_RE = re.compile(r"VA-API version:\s*([0-9][0-9.]*)\s*(?:\(\s*libva\s+([^)\s]+)\s*\)?)?")
_LIBVA_VERSION_RE = re.compile(r"VA-API version\s+([0-9][0-9.]*)")
_DRIVER_RE = re.compile(r"Driver version:\s*(.*?)\s*$")
_REQUESTED_RE = re.compile(r"requested driver\s+'([^']*)'")
_TRYING_OPEN_RE = re.compile(r"Trying to open\s+(\S+)")
_INIT_FUNCTION_RE = re.compile(r"Found init function\s+(\S+)")
_OPEN_RETURNS_RE = re.compile(r"va_openDriver\(\)\s+returns\s+(-?\d+)")
_DISPLAY_RE = re.compile(r"Trying display:\s*(\w+)")
_PAIR_RE = re.compile(r"(VAProfile\w+)\s*(?::|/)\s*(VAEntrypoint\w+)")
_VA_ERROR_RE = re.compile(r"(va[A-Z]\w*) failed with error code\s+(-?\d+)\s*(?:\(([^)]*)\))?")
_DRIVER_SO_RE = re.compile(r"([^/\s]+)_drv_video\.so")
# vainfo's own fatal messages about the display (libva-utils common/va_display*.c).
_DISPLAY_FATAL_RE = re.compile(
    r"(failed to initialize display(?:\s+'[^']*')?|Failed to open the given device!?|Failed to a DRM display for the given device)"
)

_IHD_RE = re.compile(r"\s-\s*(\d\S*)(?:\s*\(([^)]*)\))?")
_I965_RE = re.compile(r"\bi965 driver\b(?:\s+for\s+(?:Intel\(R\)\s*)?(.*?))?\s+-\s+(\S+)")
_MESA_RE = re.compile(r"Mesa Gallium driver\s+(\S+)(?:\s+for\s+(.*))?")
_MESA_GPU_RE = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")


def _empty():
    return {
        # contract keys
        "status": "failed",
        "va_api_version": None,
        "driver": None,
        "driver_name": None,
        "driver_version": None,
        "profiles": {},
        "h264_encode": False,
        "hevc_encode": False,
        "h264_decode": False,
        "hevc_decode": False,
        "error_code": None,
        "error": None,
        # details
        "libva_version": None,
        "libva_info_version": None,
        "display_attempts": [],
        "requested_driver": None,
        "drivers_tried": [],
        "drivers_attempted_names": [],
        "init_functions": [],
        "open_returns": [],
        "driver_build": None,
        "i965_platform": None,
        "mesa_gpu": None,
        "mesa_extra": None,
        "h264_encode_entrypoints": [],
        "hevc_main_encode_entrypoints": [],
        "av1_decode": False,
        "av1_encode": False,
        "profile_count": 0,
        "pair_count": 0,
        "error_lines": [],
        "libva_error_lines": [],
        "unrecognized_lines": [],
    }


def _split_line(line):
    """Split one physical line into the logical lines glued into it."""
    starts = sorted(set(m.start() for m in _SPLIT_RE.finditer(line)) | {0})
    pieces = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(line)
        piece = line[start:end].strip()
        if piece:
            pieces.append(piece)
    return pieces


def _driver_so_name(path):
    match = _DRIVER_SO_RE.search(path)
    return match.group(1) if match else None


def _describe_driver(result):
    """Fill driver_name, driver_version and the per-family details from the driver string."""
    driver = result["driver"]
    name = None
    if driver:
        lowered = driver.lower()
        mesa = _MESA_RE.search(driver)
        if re.search(r"\biHD\b", driver):
            name = "iHD"
            ihd = _IHD_RE.search(driver)
            if ihd:
                result["driver_version"] = ihd.group(1)
                result["driver_build"] = ihd.group(2)
        elif re.search(r"\bi965\b", driver):
            name = "i965"
            i965 = _I965_RE.search(driver)
            if i965:
                result["i965_platform"] = i965.group(1) or None
                result["driver_version"] = i965.group(2)
        elif mesa:
            result["driver_version"] = mesa.group(1)
            name = _describe_mesa(result, mesa.group(2))
        elif "nvdec" in lowered or "nvidia" in lowered:
            name = "nvidia"
        elif "vdpau" in lowered:
            name = "vdpau"
        if result["driver_version"] is None:
            generic = re.search(r"\s-\s+(\d\S*)", driver)
            if generic:
                result["driver_version"] = generic.group(1)
    # The driver library libva opened last, when it returned 0, confirms or supplies the name.
    if result["drivers_tried"] and result["open_returns"] and result["open_returns"][-1] == 0:
        opened = _driver_so_name(result["drivers_tried"][-1])
        if opened:
            name = opened
    result["driver_name"] = name


def _describe_mesa(result, target):
    """Split a Mesa target such as 'AMD RAVEN (DRM 3.26.0, ...)'; return the driver name it implies."""
    if not target:
        return None
    gpu = _MESA_GPU_RE.match(target)
    if gpu:
        result["mesa_gpu"] = gpu.group(1) or None
        result["mesa_extra"] = gpu.group(2)
    else:
        result["mesa_gpu"] = target.strip() or None
    lowered = target.lower()
    if "radeonsi" in lowered:
        return "radeonsi"
    if "r600" in lowered:
        return "r600"
    if "amd" in lowered or "radeon" in lowered:
        return "radeonsi"
    if "nouveau" in lowered or re.match(r"nv[0-9a-f]", lowered):
        return "nouveau"
    if "virgl" in lowered:
        return "virtio_gpu"
    return None


def _capabilities(result):
    profiles = result["profiles"]
    h264_enc = []
    hevc_enc = []
    for profile, entrypoints in profiles.items():
        if profile.startswith("VAProfileH264"):
            if DECODE_ENTRYPOINT in entrypoints:
                result["h264_decode"] = True
            for entry in entrypoints:
                if entry in ENCODE_ENTRYPOINTS and entry not in h264_enc:
                    h264_enc.append(entry)
        if profile.startswith("VAProfileAV1"):
            if DECODE_ENTRYPOINT in entrypoints:
                result["av1_decode"] = True
            if any(entry in ENCODE_ENTRYPOINTS for entry in entrypoints):
                result["av1_encode"] = True
    hevc_main = profiles.get("VAProfileHEVCMain", [])
    for entry in hevc_main:
        if entry in ENCODE_ENTRYPOINTS and entry not in hevc_enc:
            hevc_enc.append(entry)
    result["hevc_decode"] = DECODE_ENTRYPOINT in hevc_main
    result["h264_encode_entrypoints"] = h264_enc
    result["hevc_main_encode_entrypoints"] = hevc_enc
    result["h264_encode"] = bool(h264_enc)
    result["hevc_encode"] = bool(hevc_enc)
    result["profile_count"] = len(profiles)
    result["pair_count"] = sum(len(entrypoints) for entrypoints in profiles.values())


def _classify(result, piece, recognised):
    for prefix in _PREFIXES:
        if piece.startswith(prefix):
            if prefix == "error:":
                result["error_lines"].append(piece)
            elif prefix == "libva error:":
                result["libva_error_lines"].append(piece)
            return
    if not recognised:
        result["unrecognized_lines"].append(piece)


def _read_piece(result, piece, state):
    """Record what one logical line says; return True when its content was recognised."""
    recognised = False

    va_error = _VA_ERROR_RE.search(piece)
    if va_error:
        recognised = True
        if state["va_error"] is None:
            state["va_error"] = (va_error.group(1), int(va_error.group(2)), va_error.group(3))

    pair = _PAIR_RE.search(piece)
    if pair:
        entrypoints = result["profiles"].setdefault(pair.group(1), [])
        if pair.group(2) not in entrypoints:
            entrypoints.append(pair.group(2))
        return True

    display = _DISPLAY_RE.search(piece)
    if display:
        result["display_attempts"].append(display.group(1))
        return True

    vainfo_version = _VAINFO_VERSION_RE.search(piece)
    if vainfo_version:
        result["va_api_version"] = vainfo_version.group(1).rstrip(".")
        if vainfo_version.group(2):
            result["libva_version"] = vainfo_version.group(2)
        return True

    driver = _DRIVER_RE.search(piece)
    if driver and driver.group(1):
        result["driver"] = driver.group(1)
        return True

    libva_version = _LIBVA_VERSION_RE.search(piece)
    if libva_version:
        result["libva_info_version"] = libva_version.group(1).rstrip(".")
        return True

    requested = _REQUESTED_RE.search(piece)
    if requested:
        result["requested_driver"] = requested.group(1)
        return True

    trying = _TRYING_OPEN_RE.search(piece)
    if trying:
        result["drivers_tried"].append(trying.group(1))
        name = _driver_so_name(trying.group(1))
        result["drivers_attempted_names"].append(name if name else trying.group(1))
        return True

    init_function = _INIT_FUNCTION_RE.search(piece)
    if init_function:
        result["init_functions"].append(init_function.group(1))
        return True

    open_returns = _OPEN_RETURNS_RE.search(piece)
    if open_returns:
        result["open_returns"].append(int(open_returns.group(1)))
        return True

    fatal = _DISPLAY_FATAL_RE.search(piece)
    if fatal:
        if state["display_error"] is None:
            state["display_error"] = fatal.group(1)
        return True

    return recognised


def parse(text):
    """Parse ``vainfo`` output (stdout and stderr, in any order) into a dict.

    Contract keys: status, va_api_version, driver, driver_name, driver_version, profiles,
    h264_encode, hevc_encode, h264_decode, hevc_decode, error_code, error. Further keys give
    the details: libva_version, libva_info_version, display_attempts, requested_driver,
    drivers_tried, drivers_attempted_names, init_functions, open_returns, driver_build,
    i965_platform, mesa_gpu, mesa_extra, h264_encode_entrypoints, hevc_main_encode_entrypoints,
    av1_decode, av1_encode, profile_count, pair_count, error_lines, libva_error_lines,
    unrecognized_lines. Never raises.
    """
    result = _empty()
    try:
        _parse_into(result, text)
    except Exception as exc:  # pylint: disable=broad-except
        # Last line of defence for the "never raises" promise; nothing above is expected to raise.
        result["status"] = "failed"
        result["error"] = "could not parse vainfo output: %s" % (exc,)
    return result


def _parse_into(result, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    elif text is None:
        text = ""
    elif not isinstance(text, str):
        text = str(text)
    state = {"va_error": None, "display_error": None}

    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        for piece in _split_line(raw):
            recognised = _read_piece(result, piece, state)
            _classify(result, piece, recognised)

    _describe_driver(result)
    _capabilities(result)

    va_error = state["va_error"]
    if va_error is not None:
        call, code, message = va_error
        result["error_code"] = code
        result["error"] = message if message is not None else "%s failed with error code %d" % (call, code)
    elif state["display_error"] is not None:
        result["error"] = state["display_error"]
    elif result["va_api_version"] or result["driver"] or result["profiles"]:
        result["status"] = "ok"
    elif result["libva_error_lines"]:
        result["error"] = result["libva_error_lines"][-1][len("libva error:"):].strip()
    else:
        result["error"] = "no VA-API version, driver or profile lines in the vainfo output"

    if result["status"] != "ok" and not result["driver"]:
        # No driver answered; what libva tried stays in drivers_tried / drivers_attempted_names.
        result["driver_name"] = None


def codec_report(parsed, required=None):
    """Say which required capabilities a parse result lacks.

    ``required`` is a list of names from CAPABILITIES (default: H.264 and HEVC decode and
    encode). Returns ``{"ok", "present", "missing", "unknown"}``: ``missing`` keeps the order of
    ``required``; names this module does not know are listed in ``unknown`` and make ``ok`` false.
    A failed vainfo run has no capabilities at all.
    """
    if required is None:
        required = DEFAULT_REQUIRED
    elif isinstance(required, str):
        required = [required]
    parsed = parsed if isinstance(parsed, dict) else {}
    usable = parsed.get("status") == "ok"
    present, missing, unknown = [], [], []
    for name in required:
        if name not in CAPABILITIES:
            if name not in unknown:
                unknown.append(name)
            continue
        bucket = present if usable and parsed.get(name) is True else missing
        if name not in bucket:
            bucket.append(name)
    return {"ok": not missing and not unknown, "present": present, "missing": missing, "unknown": unknown}
