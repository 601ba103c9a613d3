"""kubernetes_node_name as the roles call it: hostvars[inventory_hostname], the inventory hostname and the role's own
deprecated variable."""

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
