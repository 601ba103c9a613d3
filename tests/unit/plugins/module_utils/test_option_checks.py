# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""option_checks: number ranges and empty strings, over options, suboptions and list items."""

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError

SPEC = {
    "vmid": {"type": "int"},
    "timeout": {"type": "int", "default": 180},
    "node": {"type": "str"},
    "root": {"type": "path", "default": "/"},
    "names": {"type": "list", "elements": "str"},
    "items": {"type": "list", "elements": "dict", "options": {"slot": {"type": "int"}, "host": {"type": "str"}}},
}
RANGES = {"vmid": option_checks.VMID, "timeout": option_checks.SHUTDOWN_TIMEOUT, "items.slot": option_checks.HOSTPCI_SLOT}


def params(**given):
    out = {key: spec.get("default") for key, spec in SPEC.items()}
    out.update(given)
    return out


def refused(**given):
    with pytest.raises(PassthroughError) as info:
        option_checks.check(params(**given), SPEC, RANGES, empty_means_default=("node",))
    return info.value


@pytest.mark.parametrize(("given", "option", "words"), [
    ({"vmid": 99}, "vmid", "within 100..999999999"),
    ({"vmid": 10 ** 9}, "vmid", "within 100..999999999"),
    ({"timeout": -1}, "timeout", "at least 0"),
    ({"items": [{"slot": 1, "host": "a"}, {"slot": 16, "host": "b"}]}, "items[1].slot", "within 0..15"),
])
def test_numbers_outside_their_range(given, option, words):
    err = refused(**given)
    value = err.details["value"]
    assert err.details["option"] == option and "%s=%r" % (option, value) in err.message and words in err.message
    assert err.fix.startswith("set %s to a number" % option) and err.link == "input"


def test_numbers_inside_and_unset_pass():
    # the edges are valid: the lowest VMID, a shutdown timeout of 0 (as Proxmox VE accepts it), slot 15
    checked = option_checks.check(params(vmid=100, timeout=0, items=[{"slot": 15, "host": "a"}, {"slot": None, "host": "b"}]), SPEC, RANGES)
    assert checked["vmid"] == 100 and checked["timeout"] == 0 and checked["items"][0]["slot"] == 15


@pytest.mark.parametrize(("given", "option"), [({"root": ""}, "root"), ({"names": ["a", ""]}, "names[1]"),
                                               ({"items": [{"host": ""}]}, "items[0].host")])
def test_empty_strings_are_refused(given, option):
    err = refused(**given)
    assert err.details == {"option": option, "value": ""} and "empty string" in err.message and "leave it out" in err.fix


def test_empty_string_declared_as_the_default_becomes_the_default():
    checked = option_checks.check(params(node=""), SPEC, RANGES, empty_means_default=("node", "root"))
    assert checked["node"] is None
    assert option_checks.check(params(root=""), SPEC, RANGES, empty_means_default=("root",))["root"] == "/"


def test_expects_names_what_the_option_takes():
    with pytest.raises(PassthroughError) as info:
        option_checks.check(params(root=""), SPEC, RANGES, expects={"root": "a directory such as /mnt/host"})
    assert "give root a directory such as /mnt/host" in info.value.fix and "the default '/'" in info.value.fix


def test_a_number_option_without_a_range_is_a_bug():
    with pytest.raises(ValueError, match="items.slot has no declared range"):
        option_checks.check(params(items=[{"slot": 1}]), SPEC, {"vmid": option_checks.VMID, "timeout": option_checks.VMID})


def test_range_words():
    assert option_checks.Range(1).text() == "at least 1" and option_checks.Range(maximum=9).text() == "at most 9"
    assert option_checks.Range(1, 65535).text() == "1..65535" and option_checks.Range(1, 65535).outside() == 0
    assert option_checks.Range(maximum=9).outside() == 10
