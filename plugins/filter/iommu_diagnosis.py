# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters over the passthrough chain; documented in the sidecar files iommu_diagnosis.yml,
iommu_report_lines.yml and iommu_summary.yml next to this file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.diagnosis import (
    diagnose,
    format_lines,
    summarize,
)


def _facts(value):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError("iommu_diagnosis expects the ansible_facts.iommu dictionary, got %s" % type(value).__name__)
    return dict(value)


def _parts(value, name):
    if isinstance(value, Mapping):
        # facts given directly: diagnose with the defaults
        return diagnose(_facts(value))
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise AnsibleFilterError("%s expects the list from iommu_diagnosis, got %s" % (name, type(value).__name__))
    parts = []
    for item in value:
        if not isinstance(item, Mapping) or "part" not in item or "ok" not in item:
            raise AnsibleFilterError("%s expects the list from iommu_diagnosis; %r is not one of its parts" % (name, item))
        parts.append(dict(item))
    return parts


def iommu_diagnosis(facts, cmdline=None, expected_driver="vfio-pci", group=True, reboot_pending=False,
                    iommu_pt=True, driver_mode="vfio_ids"):
    if cmdline is not None and not isinstance(cmdline, Mapping):
        raise AnsibleFilterError("iommu_diagnosis: cmdline must be a dict of kernel arguments, got %s" % type(cmdline).__name__)
    if driver_mode not in ("vfio_ids", "blacklist"):
        raise AnsibleFilterError("iommu_diagnosis: driver_mode must be vfio_ids or blacklist, got %r" % (driver_mode,))
    return diagnose(
        _facts(facts),
        cmdline=None if cmdline is None else dict(cmdline),
        expected_driver=expected_driver or None,
        group=bool(group),
        reboot_pending=bool(reboot_pending),
        iommu_pt=bool(iommu_pt),
        driver_mode=driver_mode,
    )


def iommu_report_lines(parts, summary=False):
    return format_lines(_parts(parts, "iommu_report_lines"), summary=bool(summary))


def iommu_summary(parts):
    return summarize(_parts(parts, "iommu_summary"))


class FilterModule:
    """Diagnose the IOMMU/vfio passthrough chain from iommu facts."""

    def filters(self):
        return {
            "iommu_diagnosis": iommu_diagnosis,
            "iommu_report_lines": iommu_report_lines,
            "iommu_summary": iommu_summary,
        }
