# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters for the guest link; documented in the sidecar files gpu_worker_diagnosis.yml and
gpu_worker_labels.yml next to this file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import (
    diagnose,
    gpu_from_sysfs,
    node_labels,
)


def _mapping(value, name, what):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError("%s: %s must be a dict, got %s" % (name, what, type(value).__name__))
    return dict(value)


def gpu_worker_diagnosis(facts, required=None, driver_name="iHD"):
    facts = _mapping(facts, "gpu_worker_diagnosis", "the input (ansible_facts.vainfo)")
    if isinstance(required, str):
        required = [required]
    elif required is not None:
        if not isinstance(required, Sequence) or isinstance(required, bytes):
            raise AnsibleFilterError("gpu_worker_diagnosis: required must be a list of codec names, got %s" % type(required).__name__)
        required = [str(name) for name in required]
    return diagnose(facts, required=required, driver_name=driver_name or None)


def gpu_worker_labels(sysfs, names=None, override=None, key="gpu", cpu_tier=None, extra=None, verified=True, current=None):
    if sysfs is None:
        sysfs = ""
    if not isinstance(sysfs, str):
        raise AnsibleFilterError("gpu_worker_labels expects the text read from sysfs, got %s" % type(sysfs).__name__)
    gpu = gpu_from_sysfs(sysfs)
    try:
        result = node_labels(
            gpu,
            names=_mapping(names, "gpu_worker_labels", "names"),
            override=override or None,
            gpu_key=key,
            cpu_tier=cpu_tier,
            extra=_mapping(extra, "gpu_worker_labels", "extra"),
            verified=bool(verified),
            current=_mapping(current, "gpu_worker_labels", "current"),
        )
    except ValueError as exc:
        raise AnsibleFilterError("gpu_worker_labels: %s" % exc) from exc
    result["gpu"] = gpu
    return result


class FilterModule:
    """Judge VA-API in a guest and work out its Kubernetes node labels."""

    def filters(self):
        return {
            "gpu_worker_diagnosis": gpu_worker_diagnosis,
            "gpu_worker_labels": gpu_worker_labels,
        }
