"""k8s_node: the one rule naming an agent's Kubernetes node (plan, drain, labels, uncordon) and the one naming its
cluster (kubernetes_kubeconfig, kubernetes_context)."""

import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import k8s_node

HOST = "k3s-agent-1"


def name(**variables):
    return k8s_node.resolve(variables, HOST)


@pytest.mark.parametrize(("variables", "expected", "source"), [
    ({}, HOST, "inventory_hostname"),
    ({"gpu_vm_name": "vm-gpu-1"}, "vm-gpu-1", "gpu_vm_name"),
    # the tfvars name comes before gpu_vm_name, as playbooks/gpu_vm.yml maps them
    ({"name": "agent-vm-1", "gpu_vm_name": "vm-gpu-1"}, "agent-vm-1", "name"),
    ({"name": "agent-vm-1", "gpu_vm_kubernetes_node": "old-drain"}, "old-drain", "gpu_vm_kubernetes_node"),
    ({"name": "agent-vm-1", "gpu_worker_node_name": "old-label"}, "old-label", "gpu_worker_node_name"),
    ({"name": "agent-vm-1", "gpu_vm_kubernetes_node": "n1.lan", "gpu_worker_node_name": "n1.lan"}, "n1.lan",
     "gpu_vm_kubernetes_node"),
    ({"kubernetes_node_name": "k3s-agent-1.home.arpa", "name": "agent-vm-1", "gpu_vm_kubernetes_node": "old",
      "gpu_worker_node_name": "older"}, "k3s-agent-1.home.arpa", "kubernetes_node_name"),
    # empty and null values are not set (inventory "" or a variable that rendered empty)
    ({"kubernetes_node_name": "", "name": None, "gpu_vm_name": "  ", "gpu_worker_node_name": None}, HOST,
     "inventory_hostname"),
    ({"kubernetes_node_name": " spaced.lan "}, "spaced.lan", "kubernetes_node_name"),
])
def test_precedence_and_defaults(variables, expected, source):
    found = name(**variables)
    assert (found["name"], found["source"]) == (expected, source), found


def test_no_deprecation_without_the_old_names():
    assert name()["deprecations"] == []
    assert name(kubernetes_node_name="n1", name="vm")["deprecations"] == []


def test_an_alias_is_honoured_with_a_deprecation_naming_the_new_variable():
    found = name(gpu_worker_node_name="agent-1.lan")
    assert found["name"] == "agent-1.lan"
    assert found["deprecations"] == [
        "k3s-agent-1: gpu_worker_node_name is deprecated; set the host variable kubernetes_node_name instead "
        "(same value: agent-1.lan)"]
    both = name(gpu_vm_kubernetes_node="agent-1.lan", gpu_worker_node_name="agent-1.lan")
    assert [m.split(" is ")[0] for m in both["deprecations"]] == ["k3s-agent-1: gpu_vm_kubernetes_node",
                                                                  "k3s-agent-1: gpu_worker_node_name"]
    assert all("kubernetes_node_name" in m for m in both["deprecations"])


def test_an_alias_next_to_the_new_variable_is_ignored_and_said_so():
    found = name(kubernetes_node_name="n1.lan", gpu_vm_kubernetes_node="other")
    assert found["name"] == "n1.lan"
    assert found["deprecations"] == ["k3s-agent-1: gpu_vm_kubernetes_node is deprecated and ignored, "
                                     "kubernetes_node_name (n1.lan) names the Kubernetes node; remove "
                                     "gpu_vm_kubernetes_node"]


def test_aliases_naming_two_nodes_are_refused():
    # the defect itself: one run would drain one node and label another
    with pytest.raises(ValueError, match="gpu_vm_kubernetes_node=drained and gpu_worker_node_name=labelled name "
                                         "different Kubernetes nodes") as found:
        name(gpu_vm_kubernetes_node="drained", gpu_worker_node_name="labelled")
    assert "kubernetes_node_name" in str(found.value) and "kubectl get nodes" in str(found.value)


def test_non_text_values():
    assert name(kubernetes_node_name=42)["name"] == "42"
    with pytest.raises(ValueError, match="k3s-agent-1: kubernetes_node_name must be a string, got dict"):
        name(kubernetes_node_name={"a": 1})


def test_described():
    assert k8s_node.described("kubernetes_node_name") == "kubernetes_node_name"
    assert k8s_node.described("gpu_worker_node_name") == "gpu_worker_node_name (deprecated: kubernetes_node_name)"
    assert k8s_node.described("name") == "kubernetes_node_name not set: the VM name (name)"
    assert k8s_node.described("inventory_hostname") == "kubernetes_node_name not set: the inventory hostname"


# ------------------------------------------------------------------ the connection to the cluster
def connection(**variables):
    return k8s_node.connection(variables, HOST)


def test_nothing_set_gives_no_option_so_kubernetes_core_defaults_apply():
    assert connection() == {"connection": {}, "sources": {}, "deprecations": []}
    # empty and null values are not set
    found = connection(kubernetes_kubeconfig="", kubernetes_context=None, gpu_vm_kubeconfig="  ",
                       gpu_worker_kube_context="")
    assert found == {"connection": {}, "sources": {}, "deprecations": []}


def test_the_new_variables_name_the_connection():
    found = connection(kubernetes_kubeconfig="~/.kube/homelab.yaml", kubernetes_context="homelab")
    assert found["connection"] == {"kubeconfig": "~/.kube/homelab.yaml", "context": "homelab"}
    assert found["sources"] == {"kubeconfig": "kubernetes_kubeconfig", "context": "kubernetes_context"}
    assert found["deprecations"] == []
    # only what is set: module_defaults leave the context to the kubeconfig's current one
    assert connection(kubernetes_kubeconfig="/k3s.yaml")["connection"] == {"kubeconfig": "/k3s.yaml"}
    assert connection(kubernetes_context="homelab")["connection"] == {"context": "homelab"}


@pytest.mark.parametrize(("old", "option", "new"), [
    ("gpu_vm_kubeconfig", "kubeconfig", "kubernetes_kubeconfig"),
    ("gpu_worker_kubeconfig", "kubeconfig", "kubernetes_kubeconfig"),
    ("gpu_vm_kube_context", "context", "kubernetes_context"),
    ("gpu_worker_kube_context", "context", "kubernetes_context"),
])
def test_each_old_name_is_honoured_with_a_deprecation_naming_the_new_variable(old, option, new):
    found = connection(**{old: "/k3s.yaml" if option == "kubeconfig" else "homelab"})
    value = found["connection"][option]
    assert found["connection"] == {option: value} and found["sources"] == {option: old}
    assert found["deprecations"] == ["k3s-agent-1: %s is deprecated; set the host variable %s instead (same value: %s)"
                                     % (old, new, value)]


def test_both_roles_old_names_agreeing_are_honoured_each_with_its_deprecation():
    found = connection(gpu_vm_kubeconfig="/k3s.yaml", gpu_worker_kubeconfig="/k3s.yaml", gpu_vm_kube_context="homelab",
                       gpu_worker_kube_context="homelab")
    assert found["connection"] == {"kubeconfig": "/k3s.yaml", "context": "homelab"}
    assert found["sources"] == {"kubeconfig": "gpu_vm_kubeconfig", "context": "gpu_vm_kube_context"}
    assert [m.split(" is ")[0] for m in found["deprecations"]] == [
        "k3s-agent-1: gpu_vm_kubeconfig", "k3s-agent-1: gpu_worker_kubeconfig", "k3s-agent-1: gpu_vm_kube_context",
        "k3s-agent-1: gpu_worker_kube_context"]
    # one file written two ways is one file
    home = os.path.expanduser("~")
    same = connection(gpu_vm_kubeconfig="~/.kube/homelab.yaml", gpu_worker_kubeconfig=home + "/.kube//homelab.yaml")
    assert same["connection"] == {"kubeconfig": "~/.kube/homelab.yaml"}


def test_each_option_is_taken_on_its_own():
    # one role names the file, the other the context: both roles now use both
    found = connection(gpu_vm_kubeconfig="/k3s.yaml", gpu_worker_kube_context="homelab")
    assert found["connection"] == {"kubeconfig": "/k3s.yaml", "context": "homelab"}
    assert found["sources"] == {"kubeconfig": "gpu_vm_kubeconfig", "context": "gpu_worker_kube_context"}
    # the new kubeconfig, the old context
    found = connection(kubernetes_kubeconfig="/k3s.yaml", gpu_vm_kube_context="homelab")
    assert found["connection"] == {"kubeconfig": "/k3s.yaml", "context": "homelab"}
    assert found["deprecations"] == ["k3s-agent-1: gpu_vm_kube_context is deprecated; set the host variable "
                                     "kubernetes_context instead (same value: homelab)"]


def test_old_names_next_to_the_new_variables_are_ignored_and_said_so():
    found = connection(kubernetes_kubeconfig="/k3s.yaml", gpu_vm_kubeconfig="/a.yaml", gpu_worker_kubeconfig="/b.yaml",
                       kubernetes_context="homelab", gpu_worker_kube_context="other")
    assert found["connection"] == {"kubeconfig": "/k3s.yaml", "context": "homelab"}
    assert found["deprecations"] == [
        "k3s-agent-1: gpu_vm_kubeconfig is deprecated and ignored, kubernetes_kubeconfig (/k3s.yaml) names the "
        "kubeconfig; remove gpu_vm_kubeconfig",
        "k3s-agent-1: gpu_worker_kubeconfig is deprecated and ignored, kubernetes_kubeconfig (/k3s.yaml) names the "
        "kubeconfig; remove gpu_worker_kubeconfig",
        "k3s-agent-1: gpu_worker_kube_context is deprecated and ignored, kubernetes_context (homelab) names the "
        "kubeconfig context; remove gpu_worker_kube_context"]


def test_old_names_that_disagree_are_refused_naming_both_and_the_fix():
    # the drain would go to one cluster, the labels to another
    with pytest.raises(ValueError) as found:
        connection(gpu_vm_kubeconfig="/a", gpu_worker_kubeconfig="/b")
    assert str(found.value) == (
        "k3s-agent-1: gpu_vm_kubeconfig=/a and gpu_worker_kubeconfig=/b name different kubeconfigs; the drain and the "
        "labels would go to different clusters. Fix: set the host variable kubernetes_kubeconfig to the kubeconfig of "
        "the cluster the agent joined and remove both")
    with pytest.raises(ValueError, match="gpu_vm_kube_context=homelab and gpu_worker_kube_context=other name "
                                         "different kubeconfig contexts; .* set the host variable kubernetes_context"):
        connection(gpu_vm_kubeconfig="/k3s.yaml", gpu_vm_kube_context="homelab", gpu_worker_kube_context="other")
    # the new variable settles it
    assert connection(kubernetes_kubeconfig="/a", gpu_vm_kubeconfig="/a", gpu_worker_kubeconfig="/b")["connection"] \
        == {"kubeconfig": "/a"}


def test_connection_values_must_be_text():
    with pytest.raises(ValueError, match="k3s-agent-1: kubernetes_kubeconfig must be a string, got dict"):
        connection(kubernetes_kubeconfig={"apiVersion": "v1"})
