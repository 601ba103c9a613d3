"""The simulator's cluster status, corosync nodelist and HA resources through proxmoxer."""

import pytest
from proxmoxer import ProxmoxAPI, ResourceException

from pvesim.fixture import running_simulator


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pvesim-cert")


def _api(handle, token=False):
    if token:
        return ProxmoxAPI("127.0.0.1", port=handle.port, user="automation@pve", token_name="ansible",
                          token_value="0b2f8f4e-5d1c-4c53-9d0f-6f1b1c2a3e4d", verify_ssl=handle.ca_path, timeout=10)
    return ProxmoxAPI("127.0.0.1", port=handle.port, user="root@pam", password="rootpass", verify_ssl=handle.ca_path, timeout=10)


def test_three_nodes_quorate_until_two_are_gone(tmp_path, cert_dir):
    with running_simulator(tmp_path, cert_dir=cert_dir) as sim:
        api = _api(sim)
        rows = api.cluster.status.get()
        assert rows[0] == {"type": "cluster", "id": "cluster", "name": "homelab", "nodes": 3, "quorate": 1, "version": 4}
        assert [(r["name"], r["online"], r["nodeid"]) for r in rows[1:]] == [("pve1", 1, 1), ("pve2", 1, 2), ("pve3", 1, 3)]
        assert [(n["node"], n["quorum_votes"]) for n in api.cluster.config.nodes.get()] == [
            ("pve1", "1"), ("pve2", "1"), ("pve3", "1")]

        def one_down(data):
            data["nodes"]["pve3"]["status"] = "offline"
        sim.update(one_down)
        assert api.cluster.status.get()[0]["quorate"] == 1

        def two_down(data):
            data["nodes"]["pve2"]["status"] = "offline"
        sim.update(two_down)
        status = api.cluster.status.get()
        assert status[0]["quorate"] == 0 and [r["online"] for r in status[1:]] == [1, 0, 0]
        # the token user (PVEAuditor on /) may read it too
        assert _api(sim, token=True).cluster.status.get()[0]["quorate"] == 0


def test_votes_ha_resources_and_override(tmp_path, cert_dir):
    with running_simulator(tmp_path, cert_dir=cert_dir) as sim:
        def setup(data):
            data["cluster"] = {"votes": {"pve1": 2}, "ha_resources": {
                "vm:130": {"group": "media"}, "ct:200": {"state": "ignored"}}}
        sim.update(setup)
        api = _api(sim)
        assert [n["quorum_votes"] for n in api.cluster.config.nodes.get()] == ["2", "1", "1"]
        rows = api.cluster.ha.resources.get()
        assert [(r["sid"], r["type"], r["state"]) for r in rows] == [("ct:200", "ct", "ignored"), ("vm:130", "vm", "started")]
        assert rows[1]["group"] == "media"
        assert [r["sid"] for r in api.cluster.ha.resources.get(type="vm")] == ["vm:130"]
        # the schema's enumeration refuses it before the handler runs, as PVE's API server does
        with pytest.raises(ResourceException) as err:
            api.cluster.ha.resources.get(type="qemu")
        assert err.value.status_code == 400
        assert [(v["path"], v["errors"]) for v in sim.schema_violations(clear=True)] == [
            ("/cluster/ha/resources", {"type": "value 'qemu' does not have a value in the enumeration 'ct, vm'"})]

        def lost(data):
            data["cluster"]["quorate"] = False
        sim.update(lost)
        assert api.cluster.status.get()[0]["quorate"] == 0


def test_standalone_node(tmp_path, cert_dir):
    with running_simulator(tmp_path, nodes=("pve1",), cert_dir=cert_dir) as sim:
        api = _api(sim)
        assert api.cluster.status.get() == [{"type": "node", "id": "node/pve1", "name": "pve1", "nodeid": 0,
                                             "ip": "192.168.1.11", "local": 1, "online": 1, "level": ""}]
        assert api.cluster.config.nodes.get() == []
        assert api.cluster.ha.resources.get() == []
