"""pve_cluster: cluster status, votes, HA resources and guests from API rows; the read over a recording session."""

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import fleet
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import cluster as pve_cluster

STATUS = [
    {"type": "cluster", "id": "cluster", "name": "homelab", "nodes": 3, "quorate": 1, "version": 7},
    {"type": "node", "id": "node/pve2", "name": "pve2", "nodeid": 2, "ip": "192.168.1.12", "local": 0, "online": 1, "level": ""},
    {"type": "node", "id": "node/pve1", "name": "pve1", "nodeid": 1, "ip": "192.168.1.11", "local": 1, "online": 1, "level": "c"},
    {"type": "node", "id": "node/pve3", "name": "pve3", "nodeid": 3, "ip": "192.168.1.13", "local": 0, "online": 0, "level": ""},
]
NODELIST = [{"node": "pve1", "name": "pve1", "nodeid": "1", "quorum_votes": "2", "ring0_addr": "192.168.1.11"},
            {"node": "pve2", "name": "pve2", "nodeid": "2", "quorum_votes": "1"},
            {"node": "pve3", "name": "pve3", "nodeid": "3"}]
HA = [{"sid": "vm:130", "type": "vm", "state": "started", "group": "media", "digest": "x"},
      {"sid": "ct:200", "type": "ct", "state": "ignored"}, {"sid": "121"}]
RESOURCES = [
    {"id": "qemu/120", "type": "qemu", "vmid": 120, "node": "pve1", "name": "k3s-agent-1", "status": "running", "template": 0},
    {"id": "qemu/130", "type": "qemu", "vmid": 130, "node": "pve1", "name": "jellyfin", "status": "running"},
    {"id": "lxc/200", "type": "lxc", "vmid": 200, "node": "pve2", "name": "router", "status": "running"},
    {"id": "qemu/9000", "type": "qemu", "vmid": 9000, "node": "pve2", "name": "tmpl", "status": "stopped", "template": 1},
    {"id": "storage/pve1/local", "type": "storage", "node": "pve1"},
]


def test_status_and_votes():
    cluster = pve_cluster.parse_status(STATUS, NODELIST)
    assert cluster == {"name": "homelab", "quorate": True, "standalone": False, "expected_votes": 4, "nodes": [
        {"name": "pve1", "nodeid": 1, "online": True, "local": True, "votes": 2},
        {"name": "pve2", "nodeid": 2, "online": True, "local": False, "votes": 1},
        {"name": "pve3", "nodeid": 3, "online": False, "local": False, "votes": 1}]}
    lost = pve_cluster.parse_status([dict(STATUS[0], quorate=0)] + STATUS[1:])
    assert lost["quorate"] is False and lost["expected_votes"] == 3


def test_standalone():
    cluster = pve_cluster.parse_status([{"type": "node", "name": "pve1", "nodeid": 0, "online": 1, "local": 1}])
    assert cluster["standalone"] is True and cluster["quorate"] is True and cluster["name"] is None
    # the fleet plan lets a standalone node reboot
    assert fleet.quorum(cluster)["standalone"] is True


def test_ha_and_guests():
    ha = pve_cluster.parse_ha(HA)
    assert ha == [{"sid": "vm:121", "type": "vm", "vmid": 121, "state": "started", "group": None},
                  {"sid": "vm:130", "type": "vm", "vmid": 130, "state": "started", "group": "media"},
                  {"sid": "ct:200", "type": "ct", "vmid": 200, "state": "ignored", "group": None}]
    guests = pve_cluster.parse_guests(RESOURCES, ha)
    assert sorted(guests) == ["pve1", "pve2"]
    assert [(g["vmid"], g["type"], g["ha_state"]) for g in guests["pve1"]] == [(120, "qemu", None), (130, "qemu", "started")]
    assert [(g["vmid"], g["template"], g["ha_state"]) for g in guests["pve2"]] == [(200, False, "ignored"), (9000, True, None)]


class RecordingSession:
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def get(self, path, **params):
        self.calls.append(("GET", path, params))
        return self.answers[path]


def test_read_cluster_only_reads():
    session = RecordingSession({"/cluster/status": STATUS, "/cluster/config/nodes": NODELIST, "/cluster/ha/resources": HA,
                                "/cluster/resources": RESOURCES})
    result = pve_cluster.read_cluster(session)
    assert session.calls == [("GET", "/cluster/status", {}), ("GET", "/cluster/config/nodes", {}),
                             ("GET", "/cluster/ha/resources", {}), ("GET", "/cluster/resources", {"type": "vm"})]
    assert result["cluster"]["expected_votes"] == 4 and len(result["ha_resources"]) == 3 and "pve1" in result["guests"]
    # a standalone node has no nodelist to read; without guests no resources either
    alone = RecordingSession({"/cluster/status": STATUS[2:3], "/cluster/ha/resources": []})
    assert pve_cluster.read_cluster(alone, guests=False) == {
        "cluster": {"name": None, "quorate": True, "standalone": True, "expected_votes": 1,
                    "nodes": [{"name": "pve1", "nodeid": 1, "online": True, "local": True, "votes": 1}]},
        "ha_resources": []}
    assert [c[1] for c in alone.calls] == ["/cluster/status", "/cluster/ha/resources"]
