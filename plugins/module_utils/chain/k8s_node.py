# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes node of a k3s agent and the connection to its cluster: one family of variables, one rule each.

The fleet plan, gpu_vm's drain and uncordon and gpu_worker's labels all name an agent's node with ``resolve`` and
reach its cluster with ``connection``, so one run cannot drain one node and label another, nor read the Nodes of one
cluster and label through another. Pure Python, standard library only.

The node, first match wins (an empty value counts as not set):

1. the host variable ``kubernetes_node_name``;
2. the deprecated ``gpu_vm_kubernetes_node`` or ``gpu_worker_node_name`` (both set: they must agree);
3. the VM name: ``name`` (the Terraform tfvars name), else ``gpu_vm_name``;
4. the inventory hostname.

The default is the VM name because k3s names its node after the machine's hostname, which cloud-init sets from the
VM name, and the drain has always used it; without a VM name the inventory hostname is the VM name as well
(playbooks/gpu_vm.yml).

The connection, per kubernetes.core option (``kubeconfig``, ``context``), first match wins:

1. the host variable ``kubernetes_kubeconfig`` / ``kubernetes_context``;
2. the deprecated ``gpu_vm_kubeconfig`` or ``gpu_worker_kubeconfig`` / ``gpu_vm_kube_context`` or
   ``gpu_worker_kube_context`` (both set: they must agree);
3. not set: the option is left out and kubernetes.core's own defaults apply (``K8S_AUTH_KUBECONFIG``, then
   ``~/.kube/config``; the kubeconfig's current context).
"""

from __future__ import annotations

import os

VARIABLE = "kubernetes_node_name"
# the variables the rule replaces, in the order they are honoured; removed in REMOVED_IN
DEPRECATED = ("gpu_vm_kubernetes_node", "gpu_worker_node_name")
VM_NAMES = ("name", "gpu_vm_name")
REMOVED_IN = "0.2.0"
COLLECTION = "homelab.gpu_passthrough"

# the connection: kubernetes.core option -> the host variable naming it and the variables it replaces, in the order
# they are honoured (removed in REMOVED_IN)
CONNECTION = {
    "kubeconfig": ("kubernetes_kubeconfig", ("gpu_vm_kubeconfig", "gpu_worker_kubeconfig")),
    "context": ("kubernetes_context", ("gpu_vm_kube_context", "gpu_worker_kube_context")),
}
CONNECTION_VARIABLES = tuple(variable for variable, _old in CONNECTION.values())
CONNECTION_DEPRECATED = tuple(key for _variable, old in CONNECTION.values() for key in old)
# per option, in messages: what a value names, what two values are, what the fix sets the variable to
_CONNECTION_WORDS = {
    "kubeconfig": ("the kubeconfig", "kubeconfigs", "the kubeconfig of the cluster the agent joined"),
    "context": ("the kubeconfig context", "kubeconfig contexts", "the context of the cluster the agent joined"),
}


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


def _same_path(value):
    # a kubeconfig is a path on the controller: ~/x and /home/me/x, a/b and a//b are one file
    return os.path.normpath(os.path.expanduser(value))


def _pick(variables, host, variable, deprecated, names, conflict, same=None):
    """The value of ``variable``, else of its ``deprecated`` aliases: ``(value, source, deprecations)``, ``(None,
    None, [])`` when none is set.

    ``names``: what the value names in a message ("the Kubernetes node"); ``conflict``: the rest of the error when
    the aliases disagree, after "<aliases> name different "; ``same``: what two values are compared by (the value).
    """
    chosen = _get(variables, variable, host)
    aliases = [(key, _get(variables, key, host)) for key in deprecated]
    aliases = [(key, value) for key, value in aliases if value is not None]
    if chosen is not None:
        deprecations = ["%s: %s is deprecated and ignored, %s (%s) names %s; remove %s"
                        % (host, key, variable, chosen, names, key) for key, _value in aliases]
        return chosen, variable, deprecations
    if not aliases:
        return None, None, []
    if len({(same or str)(value) for _key, value in aliases}) > 1:
        raise ValueError("%s: %s name different %s" % (host, " and ".join("%s=%s" % item for item in aliases), conflict))
    deprecations = ["%s: %s is deprecated; set the host variable %s instead (same value: %s)"
                    % (host, key, variable, value) for key, value in aliases]
    return aliases[0][1], aliases[0][0], deprecations


def resolve(variables, inventory_hostname):
    """``{name, source, deprecations}`` for the agent ``inventory_hostname`` whose variables are ``variables``.

    ``source`` is the variable the name came from (``inventory_hostname`` for the last fallback);
    ``deprecations`` the messages for deprecated variables that are set. Raises ValueError when the deprecated
    variables name different nodes: the drain and the labels would go to different nodes.
    """
    host = str(inventory_hostname)
    variables = variables or {}
    chosen, source, deprecations = _pick(
        variables, host, VARIABLE, DEPRECATED, "the Kubernetes node",
        "Kubernetes nodes; the drain and the labels would go to different nodes. Fix: set the host variable %s to "
        "the node's name as kubectl get nodes lists it and remove both" % VARIABLE)
    if chosen is not None:
        return {"name": chosen, "source": source, "deprecations": deprecations}
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


def connection(variables, inventory_hostname):
    """``{connection, sources, deprecations}`` for the agent ``inventory_hostname`` whose variables are ``variables``.

    ``connection``: the kubernetes.core options ``kubeconfig`` and ``context`` that are set, and only those, so
    that module_defaults leave the others to kubernetes.core's own defaults; ``sources``: the variable each came
    from; ``deprecations``: the messages for deprecated variables that are set. Raises ValueError when two
    deprecated variables name different kubeconfigs or contexts: the drain and the labels would go to different
    clusters.
    """
    host = str(inventory_hostname)
    variables = variables or {}
    found = {"connection": {}, "sources": {}, "deprecations": []}
    for option, (variable, deprecated) in CONNECTION.items():
        names, plural, fix = _CONNECTION_WORDS[option]
        value, source, deprecations = _pick(
            variables, host, variable, deprecated, names,
            "%s; the drain and the labels would go to different clusters. Fix: set the host variable %s to %s and "
            "remove both" % (plural, variable, fix),
            same=_same_path if option == "kubeconfig" else None)
        found["deprecations"].extend(deprecations)
        if value is not None:
            found["connection"][option] = value
            found["sources"][option] = source
    return found
