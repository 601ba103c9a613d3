# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""This tree, importable as ``ansible_collections.homelab.gpu_passthrough`` without installing it: a link to the tree
under ``.cache/pytest-collections`` (git-ignored), that directory first on ``sys.path``. The tests (tests/conftest.py),
the lab (lab/chain.py) and the benchmarks import the collection's code through it, never a file by its path."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE = os.path.join(ROOT, ".cache", "pytest-collections")
LINK = os.path.join(TREE, "ansible_collections", "homelab", "gpu_passthrough")


def importable():
    """Link the tree (once) and put it on ``sys.path``; the directory to use as ANSIBLE_COLLECTIONS_PATH."""
    if not os.path.islink(LINK):
        os.makedirs(os.path.dirname(LINK), exist_ok=True)
        try:
            os.symlink(ROOT, LINK)
        except FileExistsError:  # another process linked it first
            pass
    if TREE not in sys.path:
        sys.path.insert(0, TREE)
    return TREE
