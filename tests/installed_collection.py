# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where tools/setup.sh installed homelab.gpu_passthrough, for tests that run the real ansible-playbook."""

import os

import pytest

COLLECTION = os.path.join("ansible_collections", "homelab", "gpu_passthrough")


def installed_collection(*inside):
    """The first homelab.gpu_passthrough under ANSIBLE_COLLECTIONS_PATH that has the file ``inside`` (path parts
    within the collection), or None."""
    for base in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep):
        if base and os.path.isfile(os.path.join(base, COLLECTION, *inside)):
            return os.path.join(base, COLLECTION)
    return None


def skip_unless_installed(*inside):
    """A skip mark for a test module that needs the installed collection with ``inside``."""
    return pytest.mark.skipif(
        installed_collection(*inside) is None,
        reason="homelab.gpu_passthrough with %s is not installed under ANSIBLE_COLLECTIONS_PATH; run tools/setup.sh "
               "and . tools/env.sh" % "/".join(inside),
    )
