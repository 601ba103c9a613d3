# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes node of a k3s agent: one variable, one default, one rule.

The fleet plan, gpu_vm's drain and uncordon and gpu_worker's labels all name an agent's node with ``resolve``, so
one run cannot drain one node and label another. Pure Python, standard library only.

The rule, first match wins (an empty value counts as not set):

1. the host variable ``kubernetes_node_name``;
2. the deprecated ``gpu_vm_kubernetes_node`` or ``gpu_worker_node_name`` (both set: they must agree);
3. the VM name: ``name`` (the Terraform tfvars name), else ``gpu_vm_name``;
4. the inventory hostname.

The default is the VM name because k3s names its node after the machine's hostname, which cloud-init sets from the
VM name, and the drain has always used it; without a VM name the inventory hostname is the VM name as well
(playbooks/gpu_vm.yml).
"""

from __future__ import annotations

VARIABLE = "kubernetes_node_name"
# the variables the rule replaces, in the order they are honoured; removed in REMOVED_IN
DEPRECATED = ("gpu_vm_kubernetes_node", "gpu_worker_node_name")
VM_NAMES = ("name", "gpu_vm_name")
REMOVED_IN = "0.2.0"
COLLECTION = "homelab.gpu_passthrough"


def _text(value):
    if value is None:
        return None
    if isinstance(value, (dict, list, tuple, set)):
        raise ValueError("must be a string, got %s" % type(value).__name__)
    text = str(value).strip()
    return text or None


def _get(variables, key, host):
    try:
        return _text(variables.get(key))
    except ValueError as exc:
        raise ValueError("%s: %s %s" % (host, key, exc)) from None


def resolve(variables, inventory_hostname):
    """``{name, source, deprecations}`` for the agent ``inventory_hostname`` whose variables are ``variables``.

    ``source`` is the variable the name came from (``inventory_hostname`` for the last fallback);
    ``deprecations`` the messages for deprecated variables that are set. Raises ValueError when the deprecated
    variables name different nodes: the drain and the labels would go to different nodes.
    """
    host = str(inventory_hostname)
    variables = variables or {}
    chosen = _get(variables, VARIABLE, host)
    aliases = [(key, _get(variables, key, host)) for key in DEPRECATED]
    aliases = [(key, value) for key, value in aliases if value is not None]
    deprecations = []
    if chosen is not None:
        deprecations = ["%s: %s is deprecated and ignored, %s (%s) names the Kubernetes node; remove %s"
                        % (host, key, VARIABLE, chosen, key) for key, _value in aliases]
        return {"name": chosen, "source": VARIABLE, "deprecations": deprecations}
    if aliases:
        if len({value for _key, value in aliases}) > 1:
            raise ValueError(
                "%s: %s name different Kubernetes nodes; the drain and the labels would go to different nodes. Fix: "
                "set the host variable %s to the node's name as kubectl get nodes lists it and remove both"
                % (host, " and ".join("%s=%s" % item for item in aliases), VARIABLE))
        deprecations = ["%s: %s is deprecated; set the host variable %s instead (same value: %s)"
                        % (host, key, VARIABLE, value) for key, value in aliases]
        return {"name": aliases[0][1], "source": aliases[0][0], "deprecations": deprecations}
    for key in VM_NAMES:
        value = _get(variables, key, host)
        if value is not None:
            return {"name": value, "source": key, "deprecations": []}
    return {"name": host, "source": "inventory_hostname", "deprecations": []}


def described(source):
    """How a plan message says where a node name came from."""
    if source == VARIABLE:
        return VARIABLE
    if source in DEPRECATED:
        return "%s (deprecated: %s)" % (source, VARIABLE)
    if source in VM_NAMES:
        return "%s not set: the VM name (%s)" % (VARIABLE, source)
    return "%s not set: the inventory hostname" % VARIABLE
