# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option values checked when a module starts, before it reads, sends or writes anything.

* Every number option (``type: int`` or ``float``, suboptions included) has a declared ``Range``; a value outside it
  is refused naming the option, the value and the range. A number option without a declared range is a bug of the
  module and fails it, so no new option slips through unchecked.
* An empty string given to a string or path option (suboptions and list elements included) is refused, unless the
  module declares that for this option it means the documented default (``empty_means_default``): then the option
  becomes what it is when left out. An empty string never reaches a request or a file.

Modules declare both next to their argument spec and build their ``AnsibleModule`` with ``checked_module``.
"""

from __future__ import annotations

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError

NUMBER_TYPES = ("int", "float")
STRING_TYPES = ("str", "path")


class Range:
    """The valid values of a number option: ``minimum``..``maximum`` (either may be None), with a word on why."""

    def __init__(self, minimum=None, maximum=None, why=None, example=None):
        self.minimum = minimum
        self.maximum = maximum
        self.why = why
        self.example = example

    def __repr__(self):
        return "Range(%r, %r)" % (self.minimum, self.maximum)

    def text(self):
        """``at least 1``, ``at most 9``, ``1..65535``: the words the modules' documentation uses."""
        if self.maximum is None:
            return "at least %s" % self.minimum
        if self.minimum is None:
            return "at most %s" % self.maximum
        return "%s..%s" % (self.minimum, self.maximum)

    def contains(self, value):
        if self.minimum is not None and value < self.minimum:
            return False
        return self.maximum is None or value <= self.maximum

    def outside(self):
        """A value just outside the range (below it, or above when there is no minimum), for tests."""
        return self.minimum - 1 if self.minimum is not None else self.maximum + 1


# pve-common src/PVE/JSONSchema.pm pve_verify_vmid: 100 .. 999999999
VMID = Range(100, 999999999, why="Proxmox VE VM ids are 100 to 999999999", example=120)
# qemu-server src/PVE/QemuServer/PCI.pm $MAX_HOSTPCI_DEVICES = 16: hostpci0 .. hostpci15
HOSTPCI_SLOT = Range(0, 15, why="Proxmox VE has the slots 0 to 15, hostpci0 to hostpci15", example=0)
# qemu-server: cores minimum 1, memory (current) minimum 16 MiB; the node's CPUs and memory are checked against the node
CORES = Range(1, why="CPU cores per socket", example=2)
MEMORY_MIB = Range(16, why="MiB of memory, Proxmox VE's minimum is 16", example=4096)
TCP_PORT = Range(1, 65535, why="a TCP port", example=8006)
# Proxmox VE accepts 0 too (its shutdown `timeout` minimum): no grace, a guest still running is stopped hard
SHUTDOWN_TIMEOUT = Range(0, why="seconds the guest gets to shut down before it is stopped hard", example=180)
REQUEST_TIMEOUT = Range(1, why="seconds each API request may take", example=30)


def _option_error(name, value, message, fix):
    return PassthroughError("%s=%r %s" % (name, value, message), fix=fix, details={"option": name, "value": value})


def _declared(name):
    """``hostpci[2].slot`` -> ``hostpci.slot``: declarations name suboptions without list indexes."""
    return re.sub(r"\[\d+\]", "", name)


def _check_number(name, value, spec, ranges):
    rule = ranges.get(_declared(name))
    if rule is None:
        raise ValueError("number option %s has no declared range (option_checks.Range)" % _declared(name))
    if value is None or isinstance(value, bool) or rule.contains(value):
        return
    why = " (%s)" % rule.why if rule.why else ""
    default = spec.get("default")
    example = rule.example if rule.example is not None else default
    within = "" if rule.minimum is None or rule.maximum is None else "within "
    raise _option_error(name, value, "is out of range: it must be %s%s%s; nothing was sent or changed." % (within, rule.text(), why),
                        "set %s to a number %s%s%s, or leave it out%s." % (
                            name, within, rule.text(), ", e.g. %s" % example if example is not None else "",
                            " for the default %s" % default if default is not None else ""))


def _refuse_empty(name, default=None, expects=None, required=False):
    leave_out = "" if required else ", or leave it out%s" % (" for the default %r" % default if default not in (None, "", [], {}) else "")
    raise _option_error(name, "", "is an empty string, which this option refuses; nothing was sent or changed.",
                        "give %s %s%s (a variable that rendered empty is the usual cause)." % (name, expects or "a value", leave_out))


def _check_options(params, argument_spec, ranges, empty_means_default, prefix, expects):
    for key, spec in argument_spec.items():
        name = prefix + key
        value = params.get(key)
        kind = spec.get("type", "str")
        elements = spec.get("elements")
        if kind in NUMBER_TYPES:
            _check_number(name, value, spec, ranges)
        elif kind in STRING_TYPES and value == "":
            if _declared(name) not in empty_means_default:
                _refuse_empty(name, spec.get("default"), expects.get(_declared(name)), spec.get("required", False))
            # left out, the option has its default
            params[key] = spec.get("default")
        if elements in NUMBER_TYPES and _declared(name) not in ranges:
            raise ValueError("number option %s has no declared range (option_checks.Range)" % _declared(name))
        if kind != "list" or not isinstance(value, list):
            if kind == "dict" and spec.get("options") and isinstance(value, dict):
                _check_options(value, spec["options"], ranges, empty_means_default, name + ".", expects)
            continue
        for index, item in enumerate(value):
            item_name = "%s[%d]" % (name, index)
            if elements in NUMBER_TYPES:
                _check_number(item_name, item, {}, {_declared(item_name): ranges[_declared(name)]})
            elif elements in STRING_TYPES and item == "":
                _refuse_empty(item_name, expects=expects.get(_declared(name)))  # an empty item has no default to stand for
            elif elements == "dict" and spec.get("options") and isinstance(item, dict):
                _check_options(item, spec["options"], ranges, empty_means_default, item_name + ".", expects)


def check(params, argument_spec, ranges=None, empty_means_default=(), expects=None):
    """Check ``params`` (a module's, after Ansible's own checks) against ``argument_spec``: numbers within their
    ``ranges`` (``{"option": Range, "list_option.suboption": Range}``); an empty string refused unless the option is
    named in ``empty_means_default`` (same naming), where it is replaced by the option's default. ``expects`` says
    what a refused option takes (``{"option": "a plain shell variable name"}``), for the fix.
    Raises PassthroughError for the first offending option; ValueError for a number option without a range."""
    _check_options(params, argument_spec, dict(ranges or {}), frozenset(empty_means_default), "", dict(expects or {}))
    return params


def checked_module(argument_spec, ranges=None, empty_means_default=(), expects=None, **kwargs):
    """``AnsibleModule(argument_spec=..., **kwargs)`` whose params passed ``check``; fails the module otherwise, before
    the module does anything."""
    module = AnsibleModule(argument_spec=argument_spec, **kwargs)
    try:
        check(module.params, argument_spec, ranges, empty_means_default, expects)
    except PassthroughError as err:
        module.fail_json(**err.to_result())
    return module


def exit_with(module, produce):
    """Exit ``module`` with the result ``produce()`` returns; a PassthroughError fails it with its message and fix."""
    try:
        result = produce()
    except PassthroughError as err:
        module.fail_json(**err.to_result())
    module.exit_json(**result)
