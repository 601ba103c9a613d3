# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters for the guest link; documented in the sidecar files gpu_worker_diagnosis.yml and
gpu_worker_labels.yml next to this file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import uc as guest_uc
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.verdict import (
    diagnose,
    node_labels,
)


def _mapping(value, name, what):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError("%s: %s must be a dict, got %s" % (name, what, type(value).__name__))
    return dict(value)


def _bool_or_none(value, name, what):
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1"):
        return True
    if str(value).lower() in ("false", "no", "0"):
        return False
    raise AnsibleFilterError("%s: %s must be true, false or null, got %r" % (name, what, value))


def gpu_worker_diagnosis(facts, required=None, driver_name="iHD", non_free=False, huc=None):
    facts = _mapping(facts, "gpu_worker_diagnosis", "the input (ansible_facts.vainfo)")
    if isinstance(required, str):
        required = [required]
    elif required is not None:
        if not isinstance(required, Sequence) or isinstance(required, bytes):
            raise AnsibleFilterError("gpu_worker_diagnosis: required must be a list of codec names, got %s" % type(required).__name__)
        required = [str(name) for name in required]
    huc = _bool_or_none(huc, "gpu_worker_diagnosis", "huc")
    # The HuC state the guest's kernel reports (vainfo_facts' uc) decides when huc is not set and the state is known;
    # an unknown state leaves the judgement to i915's enable_guc and the generation's default.
    read = facts.get("uc") if isinstance(facts.get("uc"), Mapping) else None
    if huc is None and read is not None and guest_uc.huc_present(read) is not None:
        huc = dict(read)
    verdict = diagnose(facts, required=required, driver_name=driver_name or None,
                       non_free=bool(_bool_or_none(non_free, "gpu_worker_diagnosis", "non_free")), huc=huc)
    verdict["uc"] = dict(read) if read is not None else None
    if read is not None and guest_uc.huc_present(read) is False:
        verdict["notes"] = list(verdict.get("notes") or []) + [
            "HuC %s (read from %s): the low-power encoders that need it are not expected, and Jellyfin's Intel "
            "low-power encoders must stay off — %s" % (read.get("huc"), read.get("source"), read.get("detail"))]
    return verdict


def gpu_worker_labels(gpu, names=None, override=None, key="gpu", cpu_tier=None, extra=None, verified=True, current=None,
                      offered=None, capabilities=None, nfd=False, streams=None, managed=None):
    if gpu is not None and not isinstance(gpu, Mapping):
        raise AnsibleFilterError("gpu_worker_labels expects the GPU of ansible_facts.vainfo.gpu (a dict or null), got %s"
                                 % type(gpu).__name__)
    if isinstance(managed, str):
        managed = [k for k in managed.split(",") if k]
    try:
        result = node_labels(
            dict(gpu) if gpu else None,
            names=_mapping(names, "gpu_worker_labels", "names"),
            override=override or None,
            gpu_key=key,
            cpu_tier=cpu_tier,
            extra=_mapping(extra, "gpu_worker_labels", "extra"),
            verified=bool(verified),
            current=_mapping(current, "gpu_worker_labels", "current"),
            offered=_mapping(offered, "gpu_worker_labels", "offered") or None,
            caps=_mapping(capabilities, "gpu_worker_labels", "capabilities") or None,
            nfd=bool(_bool_or_none(nfd, "gpu_worker_labels", "nfd")),
            streams=_mapping(streams, "gpu_worker_labels", "streams"),
            managed=list(managed or []),
        )
    except ValueError as exc:
        raise AnsibleFilterError("gpu_worker_labels: %s" % exc) from exc
    result["gpu"] = dict(gpu) if gpu else None
    return result


class FilterModule:
    """Judge VA-API in a guest and work out its Kubernetes node labels."""

    def filters(self):
        return {
            "gpu_worker_diagnosis": gpu_worker_diagnosis,
            "gpu_worker_labels": gpu_worker_labels,
        }
