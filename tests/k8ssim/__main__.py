# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command line: python -m k8ssim --dir DIR [--cluster FILE] [--pvesim-state FILE --vm NODE=VMID ...] (run from tests/).

Serves HTTPS with a bearer token on 127.0.0.1 and writes DIR/kubeconfig. ``--cluster`` seeds nodes and pods from
``{"nodes": [{"name", "labels", "ready"}], "pods": [{"name", "node", "namespace", "owner_kind", "owner_name",
"empty_dir", "labels"}]}``. With ``--pvesim-state`` a node named in ``--vm`` is Ready while the simulator's VM runs
and has been up ``--boot-seconds``, so a VM restart through the Proxmox API shows as a node reboot (a new bootID).
``--dump FILE`` keeps the objects and the request log there (rewritten when they change and at exit).
"""

import argparse
import json
import os
import secrets
import signal
import sys
import threading
import time

from .fixture import write_kubeconfig
from .server import K8sSim


class PvesimVms:
    """The VMs of a pvesim state file, re-read when the file changes (pvesim replaces it atomically)."""

    def __init__(self, path):
        self.path = path
        self._stamp = None
        self._vms = {}
        self._lock = threading.Lock()

    def vms(self):
        with self._lock:
            try:
                stat = os.stat(self.path)
            except OSError:
                return self._vms
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if stamp != self._stamp:
                try:
                    with open(self.path, encoding="utf-8") as handle:
                        self._vms = json.load(handle).get("vms", {})
                    self._stamp = stamp
                except (OSError, ValueError):
                    pass
            return self._vms


def ready_source(vms, node_vmids, boot_seconds):
    """``func(node) -> bool | None``: None for nodes without a VM, else whether the VM runs and has booted."""

    def ready(node):
        vmid = node_vmids.get(node)
        if vmid is None:
            return None
        vm = vms.vms().get(str(vmid)) or {}
        return vm.get("status") == "running" and time.time() - (vm.get("started_at") or 0) >= boot_seconds

    return ready


def seed(cluster, spec):
    for node in spec.get("nodes", []):
        cluster.add_node(node["name"], labels=node.get("labels"), ready=node.get("ready", True), address=node.get("address"))
    for pod in spec.get("pods", []):
        cluster.add_pod(pod["name"], pod["node"], namespace=pod.get("namespace", "default"), owner_kind=pod.get("owner_kind", "ReplicaSet"),
                        owner_name=pod.get("owner_name"), labels=pod.get("labels"), empty_dir=pod.get("empty_dir", False))


def write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def snapshot(sim):
    log = [{k: e.get(k) for k in ("time", "method", "path", "status", "action", "node", "namespace", "name")} for e in sim.requests()]
    return {"cluster": sim.dump(), "requests": log, "transitions": [list(t) for t in sim.transitions]}


def main(argv=None):
    """Start the stand-in and serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="k8ssim", description="Kubernetes API stand-in (HTTPS on 127.0.0.1)")
    parser.add_argument("--dir", required=True, help="certificate and kubeconfig go here")
    parser.add_argument("--cluster", help="JSON file with the nodes and pods to start with")
    parser.add_argument("--pvesim-state", help="pvesim state file whose VMs drive the nodes' Ready condition")
    parser.add_argument("--vm", action="append", default=[], metavar="NODE=VMID", help="node NODE runs in VM VMID")
    parser.add_argument("--boot-seconds", type=float, default=1.0, help="how long after a VM start its node is Ready")
    parser.add_argument("--ready-file", help="write {url, port, kubeconfig, ca_path, pid} here once listening")
    parser.add_argument("--dump", help="keep the objects and the request log in this JSON file")
    args = parser.parse_args(argv)

    os.makedirs(args.dir, exist_ok=True)
    token = secrets.token_hex(16)
    sim = K8sSim(tls=True, cert_dir=args.dir, token=token)
    if args.cluster:
        with open(args.cluster, encoding="utf-8") as handle:
            seed(sim.cluster, json.load(handle))
    sim.start()
    sim.kubeconfig = write_kubeconfig(os.path.join(args.dir, "kubeconfig"), sim.url, token=token, ca_path=sim.ca_path)
    if args.pvesim_state:
        node_vmids = dict(item.split("=", 1) for item in args.vm)
        sim.set_ready_source(ready_source(PvesimVms(args.pvesim_state), node_vmids, args.boot_seconds), interval=0.5)
    if args.ready_file:
        write_json(args.ready_file, {"url": sim.url, "port": sim.port, "kubeconfig": sim.kubeconfig, "ca_path": sim.ca_path,
                                     "pid": os.getpid()})
    sys.stdout.write("k8ssim listening on %s (kubeconfig: %s)\n" % (sim.url, sim.kubeconfig))
    sys.stdout.flush()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    last = None
    while not stop.wait(1.0):
        if args.dump:
            current = snapshot(sim)
            text = json.dumps(current, sort_keys=True)
            if text != last:
                write_json(args.dump, current)
                last = text
    if args.dump:
        write_json(args.dump, snapshot(sim))
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
