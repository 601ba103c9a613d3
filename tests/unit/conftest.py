"""Make the collection importable as ansible_collections.homelab.gpu_passthrough without installing it."""

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_TREE = os.path.join(_ROOT, ".cache", "pytest-collections")
_LINK = os.path.join(_TREE, "ansible_collections", "homelab", "gpu_passthrough")

if not os.path.islink(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink(_ROOT, _LINK)
if _TREE not in sys.path:
    sys.path.insert(0, _TREE)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
