# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every test imports the collection's code as ansible_collections.homelab.gpu_passthrough from this tree
(tools/collection_tree.py), without installing it."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import collection_tree  # noqa: E402  pylint: disable=wrong-import-position

collection_tree.importable()
