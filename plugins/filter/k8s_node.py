# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The kubernetes_node_name filter over module_utils.k8s_node; documented in kubernetes_node_name.yml next to this
file."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import k8s_node

display = Display()


def resolve(variables, inventory_hostname, warn=True):
    """module_utils.k8s_node.resolve with its deprecations shown once per message (Display deduplicates them)."""
    try:
        found = k8s_node.resolve(variables, inventory_hostname)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    if warn:
        for message in found["deprecations"]:
            display.deprecated(message, version=k8s_node.REMOVED_IN, collection_name=k8s_node.COLLECTION)
    return found


def kubernetes_node_name(host_vars, inventory_hostname=None, **context):
    if not isinstance(host_vars, Mapping):
        raise AnsibleFilterError("kubernetes_node_name expects hostvars[inventory_hostname] as input, got %s"
                                 % type(host_vars).__name__)
    host = inventory_hostname or host_vars.get("inventory_hostname")
    if not host:
        raise AnsibleFilterError("kubernetes_node_name needs the inventory hostname as its first argument")
    unknown = set(context) - set(k8s_node.DEPRECATED)
    if unknown:
        raise AnsibleFilterError("kubernetes_node_name: unknown keyword(s) %s; only the deprecated %s may be given"
                                 % (", ".join(sorted(unknown)), ", ".join(k8s_node.DEPRECATED)))
    variables = {key: host_vars.get(key) for key in (k8s_node.VARIABLE,) + k8s_node.DEPRECATED + k8s_node.VM_NAMES}
    # a role's own deprecated variable may come from its role parameters, which hostvars does not hold
    variables.update({key: value for key, value in context.items() if value not in (None, "")})
    return resolve(variables, host)["name"]


class FilterModule:
    """The Kubernetes node of a k3s agent."""

    def filters(self):
        return {"kubernetes_node_name": kubernetes_node_name}
