"""Command line: python -m pvesim --state FILE [--port 0] [--ready-file F] (run from tests/)."""

import argparse
import json
import os
import signal
import sys
import threading

from .server import Simulator


def main(argv=None):
    """Start the simulator and serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="pvesim", description="Proxmox VE API simulator (HTTPS on 127.0.0.1)")
    parser.add_argument("--state", required=True, help="state JSON file (created with a default homelab if missing)")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--ready-file", help="write {port, base_url, api_url, ca_path, admin_prefix, pid} here once listening")
    parser.add_argument("--cert-dir", help="where the self-signed certificate goes (default: next to the state file)")
    parser.add_argument("--task-duration", type=float, help="simulated task run time in seconds")
    parser.add_argument("--admin-token", help="secret part of the admin side-channel path (default: random)")
    parser.add_argument("--pve-version", choices=("9.1", "8.2"),
                        help="Proxmox VE release to follow: API schema and GET /version "
                             "(default: PVESIM_PVE_VERSION, else the state's setting, 9.1 in a new state)")
    args = parser.parse_args(argv)

    sim = Simulator(state_path=args.state, port=args.port, cert_dir=args.cert_dir, task_duration=args.task_duration,
                    admin_token=args.admin_token, pve_version=args.pve_version)
    sim.start()
    info = {"port": sim.port, "base_url": sim.base_url, "api_url": sim.api_url, "ca_path": sim.ca_path,
            "admin_prefix": sim.admin_prefix, "pid": os.getpid(), "pve_version": sim.pve_version}
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
        os.replace(tmp, args.ready_file)
    sys.stdout.write("pvesim listening on %s (ca: %s)\n" % (sim.base_url, sim.ca_path))
    sys.stdout.flush()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
