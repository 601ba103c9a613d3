# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The settings Jellyfin's Intel hardware acceleration page prescribes for one node, from what the node proved.

Pure Python, standard library only. ``settings(caps, profiles, huc, render_node, render_group)`` takes the
GPU's generation (``capabilities.lookup``), the profiles vainfo lists on its render node, the HuC state
the guest's kernel reports (``guest.uc``) and the render node with its group, and returns Jellyfin's
transcoding settings under the names of its ``EncodingOptions`` (``encoding.xml``, the dashboard's
Playback > Transcoding page): only what the node can do is switched on, and the Intel low-power
encoders never where HuC is not loaded.

Source (facts only): Jellyfin's Intel page, https://jellyfin.org/docs/general/post-install/transcoding/hardware-acceleration/intel
(jellyfin/jellyfin.org:docs/general/post-install/transcoding/hardware-acceleration/intel.md):

- "Acceleration Methods": on Linux QSV is preferred on mainstream GPUs (Broadwell and newer), VA-API for
  older ones; ICL/JSL/EHL and older lose QSV support as MediaSDK is deprecated.
- "Tone-mapping Methods": hardware HDR/DV tone mapping on all Intel GPUs that have HEVC 10-bit decoding;
  OpenCL supports Dolby Vision P5 and tuning, QSV VPP has poor tuning options and limited GPU models.
- "Low-Power Encoding" / "LP Mode Hardware Support": Gen 9.x LP is H.264 only; JSL/EHL, DG2/Arc A-series,
  MTL and newer LP only; LP encoding needs the HuC firmware; "Configure And Verify LP Mode On Linux":
  check GuC/HuC in dmesg or debugfs, "Now you can safely enable the Intel Low-Power encoder".
- "Configure On Linux Host" and "Kubernetes": the render node (renderD128, renderD129 for a second GPU)
  and the render group's id as ``supplementalGroups``; "Enable QSV or VA-API in Jellyfin and uncheck the
  unsupported codecs".
"""

from __future__ import annotations

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import capabilities as gpu_capabilities

SOURCE = "https://jellyfin.org/docs/general/post-install/transcoding/hardware-acceleration/intel"

# Jellyfin's HardwareDecodingCodecs values, in the dashboard's order.
DECODE_CODECS = ("h264", "hevc", "mpeg2video", "vc1", "vp8", "vp9", "av1")

# Decoders outside the capability table, proven only by the profiles vainfo lists.
_VAINFO_ONLY = {
    "mpeg2video": ("VAProfileMPEG2Simple", "VAProfileMPEG2Main"),
    "vc1": ("VAProfileVC1Simple", "VAProfileVC1Main", "VAProfileVC1Advanced"),
    "vp8": ("VAProfileVP8Version0_3",),
}
_VP9_10BIT = ("VAProfileVP9Profile2",)
_HEVC_REXT_8_10 = ("VAProfileHEVCMain422_10", "VAProfileHEVCMain444", "VAProfileHEVCMain444_10")
_HEVC_REXT_12 = ("VAProfileHEVCMain12", "VAProfileHEVCMain422_12", "VAProfileHEVCMain444_12")


def _decodes(pairs, profiles):
    return any((profile, gpu_capabilities.ENTRYPOINT_DECODE) in pairs for profile in profiles)


def _modes(caps, codec):
    mode = ((caps.get("codecs") or {}).get(codec) or {}).get("encode") or "no"
    return mode in ("lp", "both"), mode in ("full", "both")


def _huc_text(caps, huc):
    read = gpu_capabilities.huc_reason(huc)
    if read:
        return read
    if isinstance(huc, bool):
        return "given (%s)" % ("loaded" if huc else "not loaded")
    default = (caps.get("firmware") or {}).get("huc_default")
    return "not read: the generation's default (%s)" % ("loaded by the kernel" if default else "not loaded")


def settings(caps, profiles=None, huc=None, render_node="/dev/dri/renderD128", render_group=None, non_free=True):
    """Jellyfin's Intel settings for one node.

    ``caps``: ``capabilities.lookup`` of the GPU (None: an unknown GPU, nothing is switched on).
    ``profiles``: the ``vainfo.parse`` profiles of its render node; decoders are switched on only when the
    generation has them and vainfo lists them (None: the generation alone decides, and the decoders the
    table does not know stay off). ``huc``: the HuC state read by ``guest.uc`` (or True/False, or None for
    the generation's default), as ``capabilities.huc_loaded`` takes it. ``non_free``: the shader (PAK)
    encoders are there (jellyfin-ffmpeg brings its own full Intel media driver).
    ``render_group``: ``{"name", "gid"}`` of the group owning the render node.

    Returns ``{gpu, platform, generation, encoding, render_node, render_group, supplemental_groups, huc
    ({loaded, judged_by}), notes, source}``; ``encoding`` holds Jellyfin's ``EncodingOptions`` names and values.
    """
    notes = []
    group = dict(render_group) if isinstance(render_group, dict) else None
    gid = group.get("gid") if group else None
    base = {
        "render_node": render_node,
        "render_group": group,
        "supplemental_groups": [gid] if gid is not None else [],
        "source": SOURCE,
    }
    if not caps:
        notes.append("the GPU is not in the capability table: no hardware acceleration is prescribed for it")
        return dict(base, gpu=None, platform=None, generation=None, encoding=None, huc=None, notes=notes)

    pairs = gpu_capabilities.listed_pairs(profiles) if profiles is not None else None
    codecs = caps.get("codecs") or {}

    def proven(codec):
        has = bool((codecs.get(codec) or {}).get("decode"))
        if not has or pairs is None:
            return has
        listed = _decodes(pairs, gpu_capabilities.CODEC_PROFILES[codec])
        if not listed:
            notes.append("%s decode: %s has it, but vainfo does not list it on %s — left off"
                         % (gpu_capabilities.CODEC_TITLES[codec], caps.get("name"), render_node))
        return listed

    decoding = []
    for codec in DECODE_CODECS:
        if codec in _VAINFO_ONLY:
            if pairs is not None and _decodes(pairs, _VAINFO_ONLY[codec]):
                decoding.append(codec)
        elif proven(codec):
            decoding.append(codec)
    if pairs is None:
        notes.append("no vainfo profiles given: MPEG-2, VC-1, VP8, VP9 10-bit and HEVC RExt decoding stay off "
                     "(the capability table does not cover them)")
    hevc10 = proven("hevc10")

    huc_ok = gpu_capabilities.huc_loaded(caps, huc)
    lp_h264, full_h264 = _modes(caps, "h264")
    lp_hevc, full_hevc = _modes(caps, "hevc")
    lp_av1, _full_av1 = _modes(caps, "av1")
    full_h264, full_hevc = full_h264 and non_free, full_hevc and non_free
    h264_encode = full_h264 or (lp_h264 and huc_ok)
    hevc_encode = full_hevc or (lp_hevc and huc_ok)
    av1_encode = lp_av1 and huc_ok
    if (lp_h264 or lp_hevc) and not huc_ok:
        notes.append("HuC is not loaded (%s): the Intel low-power encoders stay off%s; load HuC in the kernel that "
                     "drives the GPU (%s) to use them"
                     % (_huc_text(caps, huc),
                        ", and so does hardware encoding, as this GPU encodes in low-power mode only"
                        if not (full_h264 or full_hevc) else "",
                        (caps.get("firmware") or {}).get("param") or "install the GuC/HuC firmware"))
    generation = str(caps.get("generation") or "")
    try:
        major = float(generation)
    except ValueError:
        major = None
    if major is not None and major < 12:
        notes.append("Gen %s: QSV runs on the deprecated MediaSDK runtime on this generation; switch to VA-API "
                     "when QSV stops working (Jellyfin's Intel page, Acceleration Methods)" % generation)
    if hevc10:
        notes.append("tone mapping through OpenCL needs the OpenCL runtime (intel-opencl-icd, in Jellyfin's image); "
                     "QSV VPP tone mapping is left off: Jellyfin's page gives it poor tuning and limited GPU models")

    encoding = {
        "HardwareAccelerationType": "qsv",
        "VaapiDevice": render_node,
        "HardwareDecodingCodecs": decoding,
        "EnableDecodingColorDepth10Hevc": hevc10,
        "EnableDecodingColorDepth10Vp9": bool(pairs is not None and "vp9" in decoding and _decodes(pairs, _VP9_10BIT)),
        "EnableDecodingColorDepth10HevcRext": bool(pairs is not None and _decodes(pairs, _HEVC_REXT_8_10)),
        "EnableDecodingColorDepth12HevcRext": bool(pairs is not None and _decodes(pairs, _HEVC_REXT_12)),
        "EnableHardwareEncoding": bool(h264_encode),
        "EnableIntelLowPowerH264HwEncoder": bool(lp_h264 and huc_ok),
        "EnableIntelLowPowerHevcHwEncoder": bool(lp_hevc and huc_ok),
        "AllowHevcEncoding": bool(hevc_encode),
        "AllowAv1Encoding": bool(av1_encode),
        "EnableTonemapping": hevc10,
        "EnableVppTonemapping": False,
    }
    return dict(
        base,
        gpu=caps.get("name"),
        platform=caps.get("platform"),
        generation=caps.get("generation"),
        encoding=encoding,
        huc={"loaded": bool(huc_ok), "judged_by": _huc_text(caps, huc)},
        notes=notes,
    )
