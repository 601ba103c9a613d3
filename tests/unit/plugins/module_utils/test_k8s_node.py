"""k8s_node: the one rule naming an agent's Kubernetes node (plan, drain, labels, uncordon)."""

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
