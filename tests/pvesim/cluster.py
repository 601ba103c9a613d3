"""Cluster status, corosync votes and HA resources: the endpoints the rolling chain's fleet plan reads.

State (all optional): ``data["cluster"] = {"votes": {node: n}, "quorate": bool, "ha_resources": {sid: {...}}}``;
a node's ``status`` in ``data["nodes"]`` says whether it is online. Without ``quorate`` the cluster is quorate while
the online nodes' votes are more than half of all votes (corosync votequorum). A state with one node is a
standalone node unless ``data["cluster"]`` is given.
"""

from .rules import param_exc

ROUTES = [
    ("GET", "/cluster/status", "cluster_status"),
    ("GET", "/cluster/config/nodes", "cluster_config_nodes"),
    ("GET", "/cluster/ha/resources", "ha_resources_index"),
]


class ClusterApi:
    """Handlers mixed into ``api.Api`` (``self.data`` is the state document)."""

    def _cluster(self):
        return self.data.get("cluster")

    def _clustered(self):
        return self._cluster() is not None or len(self.data["nodes"]) > 1

    def _votes(self):
        votes = (self._cluster() or {}).get("votes") or {}
        return {name: int(votes.get(name, 1)) for name in sorted(self.data["nodes"])}

    def quorate(self):
        """Whether the simulated cluster is quorate (``cluster.quorate`` overrides the arithmetic)."""
        cluster = self._cluster() or {}
        if "quorate" in cluster:
            return bool(cluster["quorate"])
        votes = self._votes()
        present = sum(v for name, v in votes.items() if self.data["nodes"][name].get("status", "online") == "online")
        return present * 2 > sum(votes.values())

    def cluster_status(self, ctx, _path):
        """GET /cluster/status (Sys.Audit on /): a ``cluster`` entry when clustered, then one ``node`` entry per node.

        pve-manager ``PVE/API2/Cluster.pm`` ``get_status`` (from ``PVE::Cluster::get_clinfo`` / ``get_members``).
        """
        ctx.check("/", ["Sys.Audit"])
        names = sorted(self.data["nodes"])
        rows = []
        clustered = self._clustered()
        if clustered:
            rows.append({"type": "cluster", "id": "cluster", "name": self.data.get("cluster_name") or "cluster",
                         "nodes": len(names), "quorate": 1 if self.quorate() else 0, "version": len(names) + 1})
        for index, name in enumerate(names, start=1):
            online = self.data["nodes"][name].get("status", "online") == "online"
            rows.append({"type": "node", "id": "node/%s" % name, "name": name, "nodeid": index if clustered else 0,
                         "ip": "192.168.1.%d" % (10 + index), "local": 1 if index == 1 else 0, "online": 1 if online else 0,
                         "level": ""})
        return rows

    def cluster_config_nodes(self, ctx, _path):
        """GET /cluster/config/nodes (Sys.Audit on /): the corosync nodelist; empty on a standalone node.

        pve-cluster ``src/PVE/API2/ClusterConfig.pm`` ``nodes``.
        """
        ctx.check("/", ["Sys.Audit"])
        if not self._clustered():
            return []
        return [{"node": name, "name": name, "nodeid": str(index), "quorum_votes": str(votes),
                 "ring0_addr": "192.168.1.%d" % (10 + index)}
                for index, (name, votes) in enumerate(self._votes().items(), start=1)]

    def ha_resources_index(self, ctx, _path):
        """GET /cluster/ha/resources (Sys.Audit on /), optional ``type`` vm|ct.

        pve-ha-manager ``src/PVE/API2/HA/Resources.pm`` ``index``; a resource's ``state`` defaults to ``started``.
        """
        ctx.check("/", ["Sys.Audit"])
        wanted = ctx.params.get("type")
        if wanted is not None and wanted not in ("ct", "vm"):
            raise param_exc({"type": "value '%s' does not have a value in the enumeration 'ct, vm'" % wanted})
        rows = []
        for sid, res in sorted(((self._cluster() or {}).get("ha_resources") or {}).items()):
            kind = sid.split(":", 1)[0]
            if wanted and kind != wanted:
                continue
            row = {"sid": sid, "type": kind, "state": res.get("state", "started"), "digest": "0" * 40}
            row.update({k: v for k, v in res.items() if k in ("group", "max_restart", "max_relocate", "comment")})
            rows.append(row)
        return rows
