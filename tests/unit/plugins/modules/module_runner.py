# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's main() in the test process the way Ansible runs it: its own arguments, its own warnings."""

import json
from unittest import mock

import pytest
from ansible.module_utils import _internal as module_internal
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args


def run_module(capsys, main, args, check_mode=False, diff=False):
    """Call ``main`` with ``args``; return the JSON result it printed."""
    params = dict(args)
    if check_mode:
        params["_ansible_check_mode"] = True
    if diff:
        params["_ansible_diff"] = True
    # A module process starts with no warnings; in one test process they would pile up.
    for name in ("_global_warnings", "_global_deprecations"):
        store = getattr(module_warnings, name, None)
        if store is not None:
            store.clear()
    # Importing controller code anywhere in the test process (ansible.errors, for one) flags it as the
    # controller, and warnings then go to the display instead of the module result.
    with patch_module_args(params), mock.patch.object(module_internal, "is_controller", False), pytest.raises(SystemExit):
        main()
    return json.loads(capsys.readouterr().out)
