# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/chain's parts: where the lab lives and what it is made of (this file), process control (``process``), the
API stand-ins fed from the lab VMs (``simulators``), the verdicts keyed on link ids (``verdicts``) and the commands
up, verify, down and status (``commands``). lab/chain.py is the command line.

Standard library only; the collection's own code (the links, the timeline) is imported from this tree through
tools/collection_tree.py.
"""

from __future__ import annotations

import os
import sys
import time

LAB_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
REPO_DIR = os.path.dirname(LAB_DIR)
# the collection's code, imported from this tree (tools/collection_tree.py)
sys.path.insert(0, os.path.join(REPO_DIR, "tools"))
import collection_tree  # noqa: E402  pylint: disable=wrong-import-position

collection_tree.importable()

CACHE_DIR = os.environ.get("LAB_CACHE") or os.path.join(REPO_DIR, ".cache", "lab")
CHAIN_DIR = os.path.join(CACHE_DIR, "chain")
LOG_DIR = os.path.join(CHAIN_DIR, "logs")
SUMMARY = os.path.join(CHAIN_DIR, "summary.json")
VENV_BIN = os.path.join(REPO_DIR, ".venv", "bin")
COLLECTION = os.path.join("ansible_collections", "homelab", "gpu_passthrough")

HOST_VM = "chain-pve"
WORKER_VM = "chain-k3s"
VMID = 120

started = time.monotonic()


class ChainError(Exception):
    """A failure with a message for the user."""


def progress(msg: str) -> None:
    print(f"[chain {int(time.monotonic() - started):4d}s] {msg}", flush=True)


def timeline_path(name: str) -> str:
    """Where the site.yml run `name` writes its timeline (-e site_timeline_file)."""
    return os.path.join(CHAIN_DIR, f"site-timeline-{name}.json")
