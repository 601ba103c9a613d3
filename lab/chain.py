# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole chain on this machine: playbooks/site.yml against two lab VMs and the API stand-ins.

  lab/chain [up] [--twice] [--no-k8s] [--no-setup] [--reuse]
      Stop what a previous up left running (unless --reuse), install the collection from the working tree (tools/setup.sh --test), boot a host VM
      (chain-pve: grub flavour, vIOMMU, the stand-in GPU) and a worker VM (chain-k3s) with
      lab/vm, start the Proxmox API simulator with one node read from the host VM and a VM 120
      for the worker, start the Kubernetes stand-in, write an inventory, run site.yml once (the
      rolling chain: one window for VM 120 around the host VM's reboot; the node is read again
      from the host VM when it has rebooted), print the timeline and a line per link and write
      .cache/lab/chain/summary.json. --twice then runs `verify`.
  lab/chain verify      run the whole site.yml once more: changed=0, no reboot of the host VM, no restart
                        of VM 120 in the simulator
  lab/chain down        stop what `up` started: both VMs, the simulator and the stand-in
  lab/chain status      print summary.json

Real here: the host VM's boot loader, kernel command line, IOMMU, vfio-pci binding and reboot;
the worker VM's packages and vainfo. Simulated: the Proxmox VE API (tests/pvesim; its node
carries the host VM's real PCI devices and IOMMU groups) and Kubernetes (tests/k8ssim; the
node's Ready follows the simulated VM). The stand-in GPU (bochs-display) has no video engine,
so VA-API is expected to be unavailable in the worker, with the role's diagnosis.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

# the package beside this file (lab/chainlab), also when this file is loaded by its path
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from chainlab import ChainError  # noqa: E402  pylint: disable=wrong-import-position
from chainlab.commands import cmd_down, cmd_status, cmd_up, cmd_verify  # noqa: E402  pylint: disable=wrong-import-position


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab/chain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command_name")
    up = sub.add_parser("up", help="boot, simulate, run site.yml, summarise (the default)")
    for target in (p, up):
        target.add_argument("--twice", action="store_true", help="then run site.yml again and check that nothing changes")
        target.add_argument("--no-k8s", action="store_true", help="no Kubernetes stand-in: no drain, no labels")
        target.add_argument("--no-setup", action="store_true", help="use the collection as installed (ANSIBLE_COLLECTIONS_PATH)")
        target.add_argument("--reuse", action="store_true", help="keep the VMs and simulators of a previous up instead of starting fresh")
    up.set_defaults(func=cmd_up)
    sub.add_parser("verify", help="run site.yml again: changed=0, no reboot, no VM restart").set_defaults(func=cmd_verify)
    sub.add_parser("down", help="stop everything up started").set_defaults(func=cmd_down)
    sub.add_parser("status", help="print the last summary").set_defaults(func=cmd_status)
    p.set_defaults(func=cmd_up)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ChainError as exc:
        print(f"lab/chain: {exc}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as exc:
        print(f"lab/chain: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
