# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters for site.yml's chain summary over module_utils.links; documented in the sidecar files chain_summary.yml,
chain_summary_lines.yml, chain_selected.yml and link_title.yml next to this file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import k8s_node
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.diagnosis import diagnose
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.links import (
    chain_summary as _chain_summary,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.links import (
    selected_stages,
    summary_lines,
    title,
    to_bool,
)


def _tags(value, name):
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise AnsibleFilterError("chain_selected: %s must be a list of tags, got %s" % (name, type(value).__name__))
    return [str(tag) for tag in value]


def chain_selected(run_tags, skip_tags=None, check_mode=False):
    stages = selected_stages(_tags(run_tags, "run_tags") or ["all"], _tags(skip_tags, "skip_tags"))
    if to_bool(check_mode):
        # --check stops after the fleet plan
        return dict.fromkeys(stages, False)
    return stages


def _plain(value):
    """A hostvars value as plain dicts and lists (None stays None)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _diagnosis(hostvars):
    facts = _plain((hostvars.get("ansible_facts") or {}).get("iommu"))
    if not isinstance(facts, dict) or "target" not in facts:
        return None
    driver_mode = hostvars.get("proxmox_gpu_prep_driver_mode") or "vfio_ids"
    if driver_mode not in ("vfio_ids", "blacklist"):
        raise AnsibleFilterError("chain_summary: proxmox_gpu_prep_driver_mode must be vfio_ids or blacklist, got %r"
                                 % (driver_mode,))
    return diagnose(facts, group=to_bool(hostvars.get("proxmox_gpu_prep_group"), True),
                    reboot_pending=to_bool(hostvars.get("proxmox_gpu_prep_reboot_pending")),
                    iommu_pt=to_bool(hostvars.get("proxmox_gpu_prep_iommu_pt"), True), driver_mode=driver_mode)


def _node_name(hv, name):
    """The agent's Kubernetes node by the collection's one rule; the plan and the roles warned about deprecations."""
    try:
        return k8s_node.resolve(hv, name)["name"]
    except ValueError as exc:
        # the plan refused this already; the summary still prints its rows
        return "? (%s)" % exc


def chain_summary(hostvars, groups, limit=None, run_tags=None, skip_tags=None, check_mode=False,
                  host_group="proxmox_hosts", agent_group="k3s_gpu_agents"):
    if not isinstance(hostvars, Mapping) or not isinstance(groups, Mapping):
        raise AnsibleFilterError("chain_summary expects hostvars as input and groups as its first argument")
    allowed = None if limit is None else {str(name) for name in limit}

    def members(group):
        return [str(h) for h in groups.get(group) or [] if allowed is None or str(h) in allowed]

    hosts = [{"name": h, "diagnosis": _diagnosis(hostvars[h])} for h in members(host_group)]
    agents = []
    for name in members(agent_group):
        hv = hostvars[name]
        agents.append({
            "name": name,
            "vm_report": _plain(hv.get("gpu_vm_report")),
            "worker_report": _plain(hv.get("gpu_worker_report")),
            "label_node": hv.get("gpu_worker_label_node", True),
            "node_name": _node_name(hv, name),
        })
    return _chain_summary(hosts, agents, chain_selected(run_tags, skip_tags, check_mode))


def chain_summary_lines(rows):
    if not isinstance(rows, Sequence) or isinstance(rows, str):
        raise AnsibleFilterError("chain_summary_lines expects the list from chain_summary, got %s" % type(rows).__name__)
    for row in rows:
        if not isinstance(row, Mapping) or not {"host", "status", "link", "detail"} <= set(row):
            raise AnsibleFilterError("chain_summary_lines expects the rows from chain_summary; %r is not one" % (row,))
    return summary_lines([dict(row) for row in rows])


def link_title(link_id):
    if link_id is None:
        return None
    try:
        return title(link_id)
    except ValueError as exc:
        raise AnsibleFilterError("link_title: %s" % exc) from None


class FilterModule:
    """The chain summary of site.yml."""

    def filters(self):
        return {
            "chain_selected": chain_selected,
            "chain_summary": chain_summary,
            "chain_summary_lines": chain_summary_lines,
            "link_title": link_title,
        }
