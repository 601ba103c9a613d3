"""kubernetes_node_name and kubernetes_connection as the roles call them: hostvars[inventory_hostname], the inventory
hostname and the role's own deprecated variables."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.gpu_passthrough.plugins.filter import k8s_node as plugin

FILTER = plugin.FilterModule().filters()["kubernetes_node_name"]


@pytest.fixture
def deprecations(monkeypatch):
    found = []
    monkeypatch.setattr(plugin.display, "deprecated",
                        lambda msg, version=None, collection_name=None, **_kw: found.append((msg, version, collection_name)))
    return found


def test_the_rule_through_the_filter(deprecations):
    assert FILTER({"inventory_hostname": "k3s-agent-1"}) == "k3s-agent-1"
    assert FILTER({"name": "agent-vm-1"}, "k3s-agent-1") == "agent-vm-1"
    assert FILTER({"name": "agent-vm-1", "kubernetes_node_name": "k3s-agent-1.lan"}, "k3s-agent-1") == "k3s-agent-1.lan"
    assert deprecations == []


def test_a_role_parameter_alias_counts_and_warns(deprecations):
    # the role's own variable (defaults null, or a role parameter hostvars does not hold)
    assert FILTER({"name": "vm"}, "k3s-agent-1", gpu_worker_node_name=None) == "vm"
    assert deprecations == []
    assert FILTER({"name": "vm"}, "k3s-agent-1", gpu_worker_node_name="agent-1.lan") == "agent-1.lan"
    assert deprecations == [("k3s-agent-1: gpu_worker_node_name is deprecated; set the host variable "
                             "kubernetes_node_name instead (same value: agent-1.lan)", "0.2.0", "homelab.gpu_passthrough")]


def test_the_new_variable_wins_over_a_role_parameter_alias(deprecations):
    assert FILTER({"kubernetes_node_name": "n1"}, "k3s-agent-1", gpu_vm_kubernetes_node="old") == "n1"
    assert "ignored" in deprecations[0][0]


def test_errors():
    with pytest.raises(AnsibleFilterError, match="expects hostvars"):
        FILTER("k3s-agent-1")
    with pytest.raises(AnsibleFilterError, match="needs the inventory hostname"):
        FILTER({})
    with pytest.raises(AnsibleFilterError, match="unknown keyword"):
        FILTER({}, "k3s-agent-1", name="x")
    with pytest.raises(AnsibleFilterError, match="name different Kubernetes nodes"):
        FILTER({"gpu_vm_kubernetes_node": "a"}, "k3s-agent-1", gpu_worker_node_name="b")


# ------------------------------------------------------------------ kubernetes_connection
CONNECTION = plugin.FilterModule().filters()["kubernetes_connection"]


def test_the_connection_through_the_filter(deprecations):
    assert CONNECTION({"inventory_hostname": "k3s-agent-1"}) == {}
    assert CONNECTION({"kubernetes_kubeconfig": "/k3s.yaml"}, "k3s-agent-1") == {"kubeconfig": "/k3s.yaml"}
    assert CONNECTION({"kubernetes_kubeconfig": "/k3s.yaml", "kubernetes_context": "homelab", "name": "vm"},
                      "k3s-agent-1") == {"kubeconfig": "/k3s.yaml", "context": "homelab"}
    assert deprecations == []


def test_a_role_parameter_old_name_counts_and_warns(deprecations):
    # the role's own variable: its default null is not set, a role parameter hostvars does not hold is
    assert CONNECTION({}, "k3s-agent-1", gpu_vm_kubeconfig=None, gpu_vm_kube_context=None) == {}
    assert deprecations == []
    assert CONNECTION({}, "k3s-agent-1", gpu_worker_kubeconfig="/k3s.yaml", gpu_worker_kube_context="") == {
        "kubeconfig": "/k3s.yaml"}
    assert deprecations == [("k3s-agent-1: gpu_worker_kubeconfig is deprecated; set the host variable "
                             "kubernetes_kubeconfig instead (same value: /k3s.yaml)", "0.2.0", "homelab.gpu_passthrough")]


def test_the_other_roles_old_name_comes_from_hostvars(deprecations):
    # gpu_worker's filter call sees gpu_vm's inventory value: the two must agree
    assert CONNECTION({"gpu_vm_kubeconfig": "/k3s.yaml"}, "k3s-agent-1", gpu_worker_kubeconfig="/k3s.yaml") == {
        "kubeconfig": "/k3s.yaml"}
    assert len(deprecations) == 2
    with pytest.raises(AnsibleFilterError, match="gpu_vm_kubeconfig=/a and gpu_worker_kubeconfig=/b name different "
                                                 "kubeconfigs"):
        CONNECTION({"gpu_vm_kubeconfig": "/a"}, "k3s-agent-1", gpu_worker_kubeconfig="/b")


def test_the_new_variables_win_over_a_role_parameter(deprecations):
    assert CONNECTION({"kubernetes_kubeconfig": "/k3s.yaml"}, "k3s-agent-1", gpu_vm_kubeconfig="/old.yaml") == {
        "kubeconfig": "/k3s.yaml"}
    assert "ignored" in deprecations[0][0]


def test_connection_errors():
    with pytest.raises(AnsibleFilterError, match="kubernetes_connection expects hostvars"):
        CONNECTION("k3s-agent-1")
    with pytest.raises(AnsibleFilterError, match="kubernetes_connection needs the inventory hostname"):
        CONNECTION({})
    with pytest.raises(AnsibleFilterError, match="kubernetes_connection: unknown keyword"):
        CONNECTION({}, "k3s-agent-1", kubernetes_kubeconfig="/x")
    with pytest.raises(AnsibleFilterError, match="kubernetes_connection: unknown keyword"):
        CONNECTION({}, "k3s-agent-1", gpu_worker_node_name="x")
