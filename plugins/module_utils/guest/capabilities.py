# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an Intel GPU generation can transcode, and the VA-API profiles vainfo must list for it.

Pure Python, standard library only. ``lookup("8086:3e92")`` gives the platform of a PCI id with its
codecs; ``expected_profiles(caps)`` the (profile, entrypoint) pairs the Intel media driver (iHD)
lists on that platform; ``missing_capabilities`` names what a vainfo run lacks, with the likely
cause and its fix. An id that is not in the table gives ``None``: never a guess.

Sources (facts only, each platform row names its own):

- media-driver README: intel/media-driver:README.md, "Decoding/Encoding Features" (per platform
  column: D decode, E low-power VDEnc encode, Es PAK + shader encode; the free-kernel build has no Es)
- media-driver features: intel/media-driver:docs/media_features.md, "Hardware Encoding, Low Power
  Encoding (VDEnc/Huc)" (the MTLx, LNL and BMG columns, AV1 encode, no VP9 encode on LNL/BMG)
- Jellyfin Intel page: jellyfin/jellyfin.org:docs/general/post-install/transcoding/hardware-acceleration/intel.md,
  "Select GPU Hardware" (HEVC 10-bit from Gen 9.5, AV1 decode from Gen 12, AV1 encode from DG2/MTL)
  and "LP Mode Hardware Support" (Gen 9.x LP encode is H.264 only; JSL/EHL, DG2 and later LP only;
  GuC/HuC on by default on DG1, ADL-P, 13th/14th gen and Arc; xe driver from Battlemage/Lunar Lake)
- PCI ids: torvalds/linux:include/drm/intel/i915_pciids.h (the INTEL_<platform>_IDS macros)
- Sharing (GVT-g, SR-IOV): SRC_GVT, SRC_SRIOV_DKMS, SRC_SRIOV_XE below
"""

from __future__ import annotations

import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import uc

CODECS = ("h264", "hevc", "hevc10", "vp9", "av1")
ENCODE_MODES = ("no", "lp", "full", "both")

ENTRYPOINT_DECODE = "VAEntrypointVLD"
ENTRYPOINT_LP = "VAEntrypointEncSliceLP"
ENTRYPOINT_FULL = "VAEntrypointEncSlice"

# The profile that proves a codec; H.264 is proven by both Main and High, as transcoders use High.
CODEC_PROFILES = {
    "h264": ("VAProfileH264Main", "VAProfileH264High"),
    "hevc": ("VAProfileHEVCMain",),
    "hevc10": ("VAProfileHEVCMain10",),
    "vp9": ("VAProfileVP9Profile0",),
    "av1": ("VAProfileAV1Profile0",),
}

CODEC_TITLES = {"h264": "H.264", "hevc": "HEVC", "hevc10": "HEVC 10-bit", "vp9": "VP9", "av1": "AV1"}

NON_FREE_PACKAGE = "intel-media-va-driver-non-free"
FIRMWARE_PACKAGE = "firmware-misc-nonfree (Debian 12) / firmware-intel-graphics (Debian 13) / linux-firmware (Ubuntu)"

_SRC_README = "intel/media-driver:README.md Decoding/Encoding Features, %s column"
_SRC_FEATURES = "intel/media-driver:docs/media_features.md Low Power Encoding (VDEnc/Huc), %s column"
_SRC_JELLYFIN = "jellyfin/jellyfin.org:docs/general/post-install/transcoding/hardware-acceleration/intel.md %s"
_SRC_IDS = "torvalds/linux:include/drm/intel/i915_pciids.h %s"

SRC_GVT = ("torvalds/linux:drivers/gpu/drm/i915/intel_gvt.c is_supported_device (later intel_gvt_get_device_type): "
           "Broadwell, Skylake, Kaby Lake, Broxton (Apollo Lake), Coffee Lake, Comet Lake; any other device logs "
           "\"Unsupported device. GVT-g is disabled\"")
SRC_SRIOV_DKMS = ("strongtz/i915-sriov-dkms:drivers/gpu/drm/i915/i915_pci.c has_sriov (tgl_info, adl_s_info, adl_p_info, "
                  "mtl_info: Tiger Lake, Alder Lake-S/P/N, Raptor Lake-S/P/U, Meteor Lake, Arrow Lake) and "
                  "drivers/gpu/drm/xe/xe_pci.c has_sriov (ats_m_desc)")
SRC_SRIOV_XE = "upstream xe SR-IOV physical function support for Battlemage from Linux 6.17"


def _codecs(h264, hevc, hevc10, vp9, av1):
    """Each argument: (decode, encode mode)."""
    return {name: {"decode": bool(value[0]), "encode": value[1]}
            for name, value in zip(CODECS, (h264, hevc, hevc10, vp9, av1))}


_NO = (False, "no")
_D = (True, "no")

# Codec rows shared by the platforms of one media-driver column.
_BDW = _codecs((True, "full"), _NO, _NO, _NO, _NO)
_SKL = _codecs((True, "both"), (True, "full"), _NO, _NO, _NO)
_BXT = _codecs((True, "both"), (True, "full"), _D, _D, _NO)
_KBLX = _codecs((True, "both"), (True, "full"), (True, "full"), _D, _NO)
_ICL = _codecs((True, "both"), (True, "both"), (True, "both"), (True, "lp"), _NO)
_JSL = _codecs((True, "lp"), (True, "lp"), (True, "lp"), (True, "lp"), _NO)
_TGL = _codecs((True, "both"), (True, "both"), (True, "both"), (True, "lp"), _D)
_DG2 = _codecs((True, "lp"), (True, "lp"), (True, "lp"), (True, "lp"), (True, "lp"))
_XE2 = _codecs((True, "lp"), (True, "lp"), (True, "lp"), _D, (True, "lp"))

# platform -> facts. ``huc_default``: the kernel driver loads HuC by itself (i915 enable_guc=3 by
# default, or the xe driver); elsewhere HuC needs i915.enable_guc=2. ``lp_needs_huc``: codecs whose
# low-power entrypoint the driver lists only with HuC loaded (VP9 VDEnc rate control runs on HuC).
# ``gvt``: i915 offers GVT-g mediated devices (SRC_GVT); ``sriov``: where SR-IOV virtual functions come
# from, ``i915-sriov-dkms`` (SRC_SRIOV_DKMS) or the upstream ``xe`` driver (SRC_SRIOV_XE), None: nowhere.
PLATFORMS = {
    "broadwell": dict(generation="8", name="Broadwell", codecs=_BDW, kernel_driver="i915",
                      huc_default=False, lp_needs_huc=(), source=_SRC_README % "BDW", ids="INTEL_BDW_IDS",
                      gvt=True, sriov=None),
    "skylake": dict(generation="9", name="Skylake", codecs=_SKL, kernel_driver="i915",
                    huc_default=False, lp_needs_huc=(), source=_SRC_README % "SKL", ids="INTEL_SKL_IDS",
                    gvt=True, sriov=None),
    "apollolake": dict(generation="9", name="Apollo Lake", codecs=_BXT, kernel_driver="i915",
                       huc_default=False, lp_needs_huc=(), source=_SRC_README % "BXT/APL", ids="INTEL_BXT_IDS",
                       gvt=True, sriov=None),
    "geminilake": dict(generation="9.5", name="Gemini Lake", codecs=_KBLX, kernel_driver="i915",
                       huc_default=False, lp_needs_huc=(),
                       source=_SRC_JELLYFIN % "Transcode HEVC (HEVC 10-bit on Gemini Lake), with the KBLx column of "
                       + _SRC_README % "KBLx", ids="INTEL_GLK_IDS",
                       gvt=False, sriov=None),
    "kabylake": dict(generation="9.5", name="Kaby Lake", codecs=_KBLX, kernel_driver="i915",
                     huc_default=False, lp_needs_huc=(), source=_SRC_README % "KBLx", ids="INTEL_KBL_IDS",
                     gvt=True, sriov=None),
    "amberlake": dict(generation="9.5", name="Amber Lake", codecs=_KBLX, kernel_driver="i915",
                      huc_default=False, lp_needs_huc=(), source=_SRC_README % "KBLx",
                      ids="INTEL_AML_KBL_GT2_IDS, INTEL_AML_CFL_GT2_IDS",
                      gvt=True, sriov=None),
    "coffeelake": dict(generation="9.5", name="Coffee Lake", codecs=_KBLX, kernel_driver="i915",
                       huc_default=False, lp_needs_huc=(), source=_SRC_README % "KBLx", ids="INTEL_CFL_IDS",
                       gvt=True, sriov=None),
    "whiskeylake": dict(generation="9.5", name="Whiskey Lake", codecs=_KBLX, kernel_driver="i915",
                        huc_default=False, lp_needs_huc=(), source=_SRC_README % "KBLx", ids="INTEL_WHL_IDS",
                        gvt=True, sriov=None),
    "cometlake": dict(generation="9.5", name="Comet Lake", codecs=_KBLX, kernel_driver="i915",
                      huc_default=False, lp_needs_huc=(), source=_SRC_README % "KBLx", ids="INTEL_CML_IDS",
                      gvt=True, sriov=None),
    "icelake": dict(generation="11", name="Ice Lake", codecs=_ICL, kernel_driver="i915",
                    huc_default=False, lp_needs_huc=("vp9",), source=_SRC_README % "ICL", ids="INTEL_ICL_IDS",
                    gvt=False, sriov=None),
    "elkhartlake": dict(generation="11", name="Elkhart Lake", codecs=_JSL, kernel_driver="i915",
                        huc_default=False, lp_needs_huc=("vp9",), source=_SRC_README % "EHL/JSL", ids="INTEL_EHL_IDS",
                        gvt=False, sriov=None),
    "jasperlake": dict(generation="11", name="Jasper Lake", codecs=_JSL, kernel_driver="i915",
                       huc_default=False, lp_needs_huc=("vp9",), source=_SRC_README % "EHL/JSL", ids="INTEL_JSL_IDS",
                       gvt=False, sriov=None),
    "tigerlake": dict(generation="12", name="Tiger Lake", codecs=_TGL, kernel_driver="i915",
                      huc_default=False, lp_needs_huc=("vp9",), source=_SRC_README % "TGL/RKL", ids="INTEL_TGL_IDS",
                      gvt=False, sriov="i915-sriov-dkms"),
    "rocketlake": dict(generation="12", name="Rocket Lake", codecs=_TGL, kernel_driver="i915",
                       huc_default=False, lp_needs_huc=("vp9",), source=_SRC_README % "TGL/RKL", ids="INTEL_RKL_IDS",
                       gvt=False, sriov=None),
    "dg1": dict(generation="12", name="DG1 (Iris Xe MAX)", codecs=_TGL, kernel_driver="i915",
                huc_default=True, lp_needs_huc=("vp9",), source=_SRC_README % "DG1/SG1", ids="INTEL_DG1_IDS",
                gvt=False, sriov=None),
    "alderlake-s": dict(generation="12", name="Alder Lake-S", codecs=_TGL, kernel_driver="i915",
                        huc_default=False, lp_needs_huc=("vp9",),
                        source=_SRC_README % "TGL/RKL" + "; Gen 12: " + _SRC_JELLYFIN % "LP Mode Hardware Support",
                        ids="INTEL_ADLS_IDS",
                        gvt=False, sriov="i915-sriov-dkms"),
    "alderlake-p": dict(generation="12", name="Alder Lake-P", codecs=_TGL, kernel_driver="i915",
                        huc_default=True, lp_needs_huc=("vp9",),
                        source=_SRC_README % "TGL/RKL" + "; Gen 12: " + _SRC_JELLYFIN % "LP Mode Hardware Support",
                        ids="INTEL_ADLP_IDS",
                        gvt=False, sriov="i915-sriov-dkms"),
    "alderlake-n": dict(generation="12", name="Alder Lake-N", codecs=_TGL, kernel_driver="i915",
                        huc_default=True, lp_needs_huc=("vp9",),
                        source=_SRC_README % "TGL/RKL" + "; Gen 12: " + _SRC_JELLYFIN % "LP Mode Hardware Support",
                        ids="INTEL_ADLN_IDS",
                        gvt=False, sriov="i915-sriov-dkms"),
    "raptorlake-s": dict(generation="12", name="Raptor Lake-S", codecs=_TGL, kernel_driver="i915",
                         huc_default=True, lp_needs_huc=("vp9",),
                         source=_SRC_README % "TGL/RKL" + "; Gen 12: " + _SRC_JELLYFIN % "LP Mode Hardware Support",
                         ids="INTEL_RPLS_IDS",
                         gvt=False, sriov="i915-sriov-dkms"),
    "raptorlake-p": dict(generation="12", name="Raptor Lake-P/U", codecs=_TGL, kernel_driver="i915",
                         huc_default=True, lp_needs_huc=("vp9",),
                         source=_SRC_README % "TGL/RKL" + "; Gen 12: " + _SRC_JELLYFIN % "LP Mode Hardware Support",
                         ids="INTEL_RPLP_IDS, INTEL_RPLU_IDS",
                         gvt=False, sriov="i915-sriov-dkms"),
    "alchemist": dict(generation="12.5", name="Arc A-series (Alchemist, DG2)", codecs=_DG2, kernel_driver="i915",
                      huc_default=True, lp_needs_huc=(), source=_SRC_FEATURES % "DG2/ATSM", ids="INTEL_DG2_IDS",
                      gvt=False, sriov=None),
    "ats-m": dict(generation="12.5", name="Data Center GPU Flex (ATS-M)", codecs=_DG2, kernel_driver="i915",
                  huc_default=True, lp_needs_huc=(), source=_SRC_FEATURES % "DG2/ATSM", ids="INTEL_ATS_M_IDS",
                  gvt=False, sriov="i915-sriov-dkms"),
    "meteorlake": dict(generation="12.7", name="Meteor Lake (Core Ultra)", codecs=_DG2, kernel_driver="i915",
                       huc_default=True, lp_needs_huc=(), source=_SRC_FEATURES % "MTLx", ids="INTEL_MTL_IDS",
                       gvt=False, sriov="i915-sriov-dkms"),
    "arrowlake": dict(generation="12.7", name="Arrow Lake (Core Ultra 200)", codecs=_DG2, kernel_driver="i915",
                      huc_default=True, lp_needs_huc=(), source=_SRC_FEATURES % "MTLx", ids="INTEL_ARL_IDS",
                      gvt=False, sriov="i915-sriov-dkms"),
    "lunarlake": dict(generation="20", name="Lunar Lake (Xe2)", codecs=_XE2, kernel_driver="xe",
                      huc_default=True, lp_needs_huc=(), source=_SRC_FEATURES % "LNL", ids="INTEL_LNL_IDS",
                      gvt=False, sriov=None),
    "battlemage": dict(generation="20", name="Arc B-series (Battlemage, Xe2)", codecs=_XE2, kernel_driver="xe",
                       huc_default=True, lp_needs_huc=(), source=_SRC_FEATURES % "BMG", ids="INTEL_BMG_IDS",
                       gvt=False, sriov="xe"),
}

# Device ids per platform, from the kernel's macros named in each row's ``ids``.
DEVICE_IDS = {
    "broadwell": "1602 1606 160a 160b 160d 160e 1612 1616 161a 161b 161d 161e 1622 1626 162a 162b 162d 162e "
                 "1632 1636 163a 163b 163d 163e",
    "skylake": "1902 1906 190a 190b 190e 1912 1913 1915 1916 1917 191a 191b 191d 191e 1921 1923 1926 1927 "
               "192a 192b 192d 1932 193a 193b 193d",
    "apollolake": "0a84 1a84 1a85 5a84 5a85",
    "geminilake": "3184 3185",
    "kabylake": "5902 5906 5908 590a 590b 590e 5912 5913 5915 5916 5917 591a 591b 591d 591e 5921 5923 5926 "
                "5927 593b",
    "amberlake": "591c 87c0 87ca",
    "coffeelake": "3e90 3e91 3e92 3e93 3e94 3e96 3e98 3e99 3e9a 3e9b 3e9c 3ea5 3ea6 3ea7 3ea8 3ea9",
    "whiskeylake": "3ea0 3ea1 3ea2 3ea3 3ea4",
    "cometlake": "9b21 9b41 9ba2 9ba4 9ba5 9ba8 9baa 9bac 9bc2 9bc4 9bc5 9bc6 9bc8 9bca 9bcc 9be6 9bf6",
    "icelake": "8a50 8a51 8a52 8a53 8a54 8a56 8a57 8a58 8a59 8a5a 8a5b 8a5c 8a5d 8a70 8a71",
    "elkhartlake": "4541 4551 4555 4557 4570 4571",
    "jasperlake": "4e51 4e55 4e57 4e61 4e71",
    "tigerlake": "9a40 9a49 9a59 9a60 9a68 9a70 9a78 9ac0 9ac9 9ad9 9af8",
    "rocketlake": "4c80 4c8a 4c8b 4c8c 4c90 4c9a",
    "dg1": "4905 4906 4907 4908 4909",
    "alderlake-s": "4680 4682 4688 468a 468b 4690 4692 4693",
    "alderlake-p": "46a0 46a1 46a2 46a3 46a6 46a8 46aa 462a 4626 4628 46b0 46b1 46b2 46b3 46c0 46c1 46c2 46c3",
    "alderlake-n": "46d0 46d1 46d2 46d3 46d4",
    "raptorlake-s": "a780 a781 a782 a783 a788 a789 a78a a78b",
    "raptorlake-p": "a720 a7a0 a7a8 a7aa a7ab a721 a7a1 a7a9 a7ac a7ad",
    "alchemist": "5690 5691 5692 56a0 56a1 56a2 56be 56bf 5693 5694 5695 56a5 56a6 56b0 56b1 56ba 56bb 56bc "
                 "56bd 5696 5697 56a3 56a4 56b2 56b3",
    "ats-m": "56c0 56c1 56c2",
    "meteorlake": "7d40 7d45 7d55 7d60 7dd5",
    "arrowlake": "7d41 7d51 7d67 7dd1 b640",
    "lunarlake": "6420 64a0 64b0",
    "battlemage": "e202 e20b e20c e20d e212",
}

INTEL_VENDOR = "8086"

_ID_TO_PLATFORM = {}
for _platform, _ids in DEVICE_IDS.items():
    for _device in _ids.split():
        _ID_TO_PLATFORM["%s:%s" % (INTEL_VENDOR, _device)] = _platform

_PCI_ID_RE = re.compile(r"^(?:0x)?([0-9a-f]{1,4})\s*:\s*(?:0x)?([0-9a-f]{1,4})$")


def normalize_pci_id(value):
    """``8086:3E92`` / ``0x8086:0x3e92`` -> ``8086:3e92``; None when it is no vendor:device pair."""
    match = _PCI_ID_RE.match(str(value or "").strip().lower())
    if not match:
        return None
    return "%s:%s" % (match.group(1).zfill(4), match.group(2).zfill(4))


def lookup(pci_id):
    """The platform facts of a GPU, or None when the id is not in the table.

    Returns ``{pci_id, vendor, platform, generation, name, codecs, kernel_driver, firmware, source, ids_source,
    sharing}``;
    ``codecs`` maps each of CODECS to ``{"decode": bool, "encode": "no"|"lp"|"full"|"both"}``,
    ``firmware`` says what HuC is needed for (``huc``), whether the kernel loads it by itself
    (``huc_default``), the parameter that makes i915 load it (``param``), and the codecs whose
    low-power encoder appears only with it (``lp_needs_huc``). ``sharing`` says whether i915 offers GVT-g
    (``gvt``), where SR-IOV virtual functions come from (``sriov``: ``i915-sriov-dkms``, ``xe`` or None) and the
    sources of both (``source``).
    """
    key = normalize_pci_id(pci_id)
    platform = _ID_TO_PLATFORM.get(key) if key else None
    if platform is None:
        return None
    row = PLATFORMS[platform]
    codecs = {name: dict(value) for name, value in row["codecs"].items()}
    has_lp = any(c["encode"] in ("lp", "both") for c in codecs.values())
    return {
        "pci_id": key,
        "vendor": "intel",
        "platform": platform,
        "generation": row["generation"],
        "name": "Intel %s (Gen %s)" % (row["name"], row["generation"]),
        "codecs": codecs,
        "kernel_driver": row["kernel_driver"],
        "firmware": {
            "huc": "low-power encoding rate control (CBR/VBR)" if has_lp else None,
            "huc_default": row["huc_default"],
            "param": None if row["kernel_driver"] == "xe" or row["huc_default"] else "i915.enable_guc=2",
            "lp_needs_huc": list(row["lp_needs_huc"]),
        },
        "source": row["source"],
        "ids_source": _SRC_IDS % row["ids"],
        "sharing": {
            "gvt": row["gvt"],
            "sriov": row["sriov"],
            "source": "; ".join([SRC_GVT] + ([SRC_SRIOV_XE if row["sriov"] == "xe" else SRC_SRIOV_DKMS] if row["sriov"] else [])),
        },
    }


def _entrypoints(mode, non_free):
    entrypoints = []
    if mode in ("lp", "both"):
        entrypoints.append(ENTRYPOINT_LP)
    # PAK + shader encode comes only with the full-feature (non-free) build.
    if mode in ("full", "both") and non_free:
        entrypoints.append(ENTRYPOINT_FULL)
    return entrypoints


def expected_profiles(caps, non_free=False, huc=None):
    """The (profile, entrypoint) pairs vainfo must list for ``caps`` (a ``lookup`` result).

    By default the pairs every build of the Intel media driver lists without extra firmware:
    decode and low-power encode. ``non_free=True`` adds the PAK + shader encoders of the
    full-feature build (intel-media-va-driver-non-free); ``huc=True`` (HuC loaded) adds the
    low-power encoders listed only with HuC, ``huc=None`` adds them where the kernel loads HuC by
    default; a HuC state read from the kernel (``guest.uc``) decides when it is known. An empty list for None.
    """
    if not caps:
        return []
    pairs = []
    for entry in pairs_by_codec(caps, non_free=non_free, huc=huc).values():
        for pair in entry["decode"] + entry["encode"]:
            if pair not in pairs:
                pairs.append(pair)
    return pairs


def _huc_loaded(caps, huc):
    """HuC usable: the state the kernel reports when known, else the boolean given, else the generation's default.

    ``huc``: True/False (i915's ``enable_guc`` or the user's setting), a HuC state read by ``guest.uc``
    (``authenticated``, ``firmware missing``, ...) or its whole ``uc.combine`` answer; with the state
    unknown, the answer's ``enable_guc`` decides, else the generation's default.
    """
    if isinstance(huc, dict):
        read = uc.huc_present(huc)
        # State unknown: i915's enable_guc decides (2 and 3 load HuC), -1 or none leaves it to the generation.
        huc = read if read is not None else _enable_guc_loads_huc(huc.get("enable_guc"))
    elif isinstance(huc, str):
        huc = uc.huc_present(huc)
    if huc is None:
        return bool((caps.get("firmware") or {}).get("huc_default"))
    return bool(huc)


def _enable_guc_loads_huc(value):
    try:
        value = int(value)
    except (TypeError, ValueError):
        return None
    return None if value < 0 else value in (2, 3)


def huc_loaded(caps, huc=None):
    """Whether HuC is usable on the GPU of ``caps`` (see ``_huc_loaded``)."""
    return _huc_loaded(caps or {}, huc)


def huc_reason(huc):
    """The HuC state read from the kernel as a phrase (``firmware missing, read from the kernel log``), or None."""
    if isinstance(huc, dict) and uc.huc_present(huc) is not None:
        return "%s, read from %s" % (huc.get("huc"), huc.get("source") or "the kernel")
    if isinstance(huc, str) and uc.huc_present(huc) is not None:
        return huc
    return None


def pairs_by_codec(caps, non_free=False, huc=None):
    """codec -> {"decode": [pairs], "encode": [pairs]} as ``expected_profiles`` counts them."""
    result = {}
    needs_huc = set((caps.get("firmware") or {}).get("lp_needs_huc") or [])
    with_huc = _huc_loaded(caps, huc)
    for codec in CODECS:
        facts = (caps.get("codecs") or {}).get(codec) or {"decode": False, "encode": "no"}
        profiles = CODEC_PROFILES[codec]
        decode = [(p, ENTRYPOINT_DECODE) for p in profiles] if facts.get("decode") else []
        entrypoints = _entrypoints(facts.get("encode") or "no", non_free)
        if codec in needs_huc and not with_huc:
            entrypoints = [e for e in entrypoints if e != ENTRYPOINT_LP]
        encode = [(p, e) for p in profiles for e in entrypoints]
        result[codec] = {"decode": decode, "encode": encode}
    return result


def listed_pairs(profiles):
    """The set of (profile, entrypoint) pairs of a ``vainfo.parse`` ``profiles`` mapping."""
    return {(profile, entry) for profile, entries in (profiles or {}).items() for entry in entries or []}


def offered(profiles):
    """codec -> {"decode": bool, "encode": "no"|"lp"|"full"|"both"} as vainfo lists it."""
    pairs = listed_pairs(profiles)
    result = {}
    for codec in CODECS:
        names = CODEC_PROFILES[codec]
        decode = any((p, ENTRYPOINT_DECODE) in pairs for p in names)
        lp = any((p, ENTRYPOINT_LP) in pairs for p in names)
        full = any((p, ENTRYPOINT_FULL) in pairs for p in names)
        result[codec] = {"decode": decode, "encode": "both" if lp and full else "lp" if lp else "full" if full else "no"}
    return result


def _cause(caps, codec, kind, entrypoints, driver_name, non_free, huc=None):
    """(cause, fix) for a codec the hardware has that vainfo does not list."""
    title = CODEC_TITLES[codec]
    firmware = caps.get("firmware") or {}
    if driver_name and driver_name.lower() != "ihd":
        return (
            "libva loaded the `%s` driver, not the Intel media driver (iHD)" % driver_name,
            "set LIBVA_DRIVER_NAME=iHD (gpu_worker_driver_name) and install %s" % NON_FREE_PACKAGE,
        )
    if kind == "encode" and entrypoints == [ENTRYPOINT_FULL]:
        return (
            "the free build of the Intel media driver has no shader (PAK) encoders, so no %s encode on Gen %s"
            % (title, caps.get("generation")),
            "install %s (Debian non-free, Ubuntu multiverse; gpu_worker_manage_packages does it)" % NON_FREE_PACKAGE,
        )
    if kind == "encode":
        if caps.get("kernel_driver") == "xe":
            fix = "install the GuC/HuC firmware (%s) and reboot; the xe driver loads it by itself" % FIRMWARE_PACKAGE
        elif firmware.get("param"):
            fix = "install the GuC/HuC firmware (%s), set %s (modprobe.d or the kernel command line) and reboot" % (
                FIRMWARE_PACKAGE, firmware["param"])
        else:
            fix = "install the GuC/HuC firmware (%s) and reboot; check `dmesg | grep -i huc` shows it authenticated" % (
                FIRMWARE_PACKAGE)
        read = huc_reason(huc)
        if read and uc.huc_present(huc) is False:
            return ("the low-power (VDEnc) %s encoder needs HuC, and the kernel reports HuC %s" % (title, read), fix)
        return (
            "the low-power (VDEnc) %s encoder needs the HuC firmware loaded by the kernel" % title,
            fix,
        )
    return (
        "the installed Intel media driver does not know this GPU's %s decoder (a driver older than %s), "
        "or vainfo ran on a render node of another GPU" % (title, caps.get("name")),
        "install a newer %s (Debian: from backports) and probe the render node whose sysfs device is the "
        "passed-through GPU" % NON_FREE_PACKAGE,
    )


def missing_capabilities(caps, profiles, driver_name="iHD", non_free=False, huc=None):
    """What the hardware offers and vainfo does not list: one entry per codec and direction.

    Each entry: ``{codec, kind ("decode"/"encode"), capability ("av1_decode"), missing (pairs),
    partial, cause, fix}``, in CODECS order, decode before encode; ``partial`` is True when vainfo
    lists the codec in that direction by another entrypoint (low-power encode without the shader one).
    """
    if not caps:
        return []
    pairs = listed_pairs(profiles)
    result = []
    for codec, entry in pairs_by_codec(caps, non_free=non_free, huc=huc).items():
        for kind in ("decode", "encode"):
            missing = [pair for pair in entry[kind] if pair not in pairs]
            if not missing:
                continue
            entrypoints = sorted({e for _p, e in missing})
            cause, fix = _cause(caps, codec, kind, entrypoints, driver_name, non_free, huc)
            result.append({
                "codec": codec,
                "kind": kind,
                "capability": "%s_%s" % (codec, kind),
                "missing": ["%s/%s" % pair for pair in missing],
                "partial": len(missing) < len(entry[kind]),
                "cause": cause,
                "fix": fix,
            })
    return result


def capability_names(caps):
    """``h264_decode``, ``hevc_encode``, ... the hardware has (a ``lookup`` result)."""
    names = []
    for codec in CODECS:
        facts = (caps or {}).get("codecs", {}).get(codec) or {}
        if facts.get("decode"):
            names.append("%s_decode" % codec)
        if facts.get("encode", "no") != "no":
            names.append("%s_encode" % codec)
    return names
