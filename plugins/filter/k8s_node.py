# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The kubernetes_node_name and kubernetes_connection filters over module_utils.k8s_node; documented in
kubernetes_node_name.yml and kubernetes_connection.yml next to this file."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import k8s_node

display = Display()


def _apply(rule, variables, inventory_hostname, warn):
    """A rule of module_utils.k8s_node with its deprecations shown once per message (Display deduplicates them)."""
    try:
        found = rule(variables, inventory_hostname)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    if warn:
        for message in found["deprecations"]:
            display.deprecated(message, version=k8s_node.REMOVED_IN, collection_name=k8s_node.COLLECTION)
    return found


def resolve(variables, inventory_hostname, warn=True):
    """module_utils.k8s_node.resolve, its deprecations shown."""
    return _apply(k8s_node.resolve, variables, inventory_hostname, warn)


def connection(variables, inventory_hostname, warn=True):
    """module_utils.k8s_node.connection, its deprecations shown."""
    return _apply(k8s_node.connection, variables, inventory_hostname, warn)


def _variables(name, host_vars, inventory_hostname, context, keys, deprecated):
    """(inventory hostname, the rule's variables) from a filter's input, its first argument and its keywords."""
    if not isinstance(host_vars, Mapping):
        raise AnsibleFilterError("%s expects hostvars[inventory_hostname] as input, got %s"
                                 % (name, type(host_vars).__name__))
    host = inventory_hostname or host_vars.get("inventory_hostname")
    if not host:
        raise AnsibleFilterError("%s needs the inventory hostname as its first argument" % name)
    unknown = set(context) - set(deprecated)
    if unknown:
        raise AnsibleFilterError("%s: unknown keyword(s) %s; only the deprecated %s may be given"
                                 % (name, ", ".join(sorted(unknown)), ", ".join(deprecated)))
    variables = {key: host_vars.get(key) for key in keys}
    # a role's own deprecated variable may come from its role parameters, which hostvars does not hold
    variables.update({key: value for key, value in context.items() if value not in (None, "")})
    return host, variables


def kubernetes_node_name(host_vars, inventory_hostname=None, **context):
    host, variables = _variables("kubernetes_node_name", host_vars, inventory_hostname, context,
                                 (k8s_node.VARIABLE,) + k8s_node.DEPRECATED + k8s_node.VM_NAMES, k8s_node.DEPRECATED)
    return resolve(variables, host)["name"]


def kubernetes_connection(host_vars, inventory_hostname=None, **context):
    host, variables = _variables("kubernetes_connection", host_vars, inventory_hostname, context,
                                 k8s_node.CONNECTION_VARIABLES + k8s_node.CONNECTION_DEPRECATED,
                                 k8s_node.CONNECTION_DEPRECATED)
    return connection(variables, host)["connection"]


class FilterModule:
    """The Kubernetes node of a k3s agent and the connection to its cluster."""

    def filters(self):
        return {"kubernetes_node_name": kubernetes_node_name, "kubernetes_connection": kubernetes_connection}
