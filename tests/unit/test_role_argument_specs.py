# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role's meta/argument_specs.yml (entry point ``main``) tells the truth about its defaults/main.yml.

The rules, per option of the ``main`` entry point:

* it is named ``<role>_...`` and has a description (suboptions too);
* it is in defaults/main.yml, or it is ``required: true``, or it may be absent: then every use of it in the
  role's tasks, handlers, templates and vars is guarded (``| default(...)`` or ``is [not] defined``), because
  argument spec validation checks values but never sets them;
* a ``required`` option has no entry in defaults/main.yml (a default would make ``required`` meaningless), and an
  option absent from defaults/main.yml documents no ``default`` (nothing would supply it);
* an option in defaults/main.yml documents the same ``default`` (a null default is documented by leaving
  ``default`` out), and its ``type`` (``str`` when left out) matches the default's Python type, list elements
  included, with the default among the ``choices`` when there are choices.

And every variable of defaults/main.yml is an option. Roles are found by globbing ``roles/*/tasks/main.yml``.
"""

from __future__ import annotations

import glob
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Python types a default of each argument spec type may have (bool is an int subclass: never taken for one).
TYPES = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "raw": (object,),
}
_SOURCE_DIRS = ("tasks", "handlers", "templates", "vars")


def role_names():
    return sorted(os.path.basename(os.path.dirname(os.path.dirname(p))) for p in glob.glob(os.path.join(ROOT, "roles", "*", "tasks", "main.yml")))


def _load(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_role(role):
    base = os.path.join(ROOT, "roles", role)
    defaults = _load(os.path.join(base, "defaults", "main.yml"))
    specs = _load(os.path.join(base, "meta", "argument_specs.yml"))
    sources = {}
    for sub in _SOURCE_DIRS:
        for path in sorted(glob.glob(os.path.join(base, sub, "**", "*"), recursive=True)):
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    sources[os.path.relpath(path, base)] = handle.read()
    return defaults, specs, sources


def _type_ok(value, type_name):
    allowed = TYPES.get(type_name)
    if allowed is None:
        return False
    if isinstance(value, bool) and bool not in allowed and object not in allowed:
        return False
    return isinstance(value, allowed)


def _undocumented(options, where):
    problems = []
    for name, option in (options or {}).items():
        option = option or {}
        description = option.get("description")
        if isinstance(description, list):
            description = " ".join(str(line) for line in description)
        if not (description and str(description).strip()):
            problems.append("%s%s: no description" % (where, name))
        problems.extend(_undocumented(option.get("options"), "%s%s." % (where, name)))
    return problems


def _unguarded_uses(name, sources):
    """Places that read ``name`` without ``| default(...)`` or ``is [not] defined``."""
    use = re.compile(r"(?<![\w.])%s(?!\w)" % re.escape(name))
    guarded = re.compile(r"(?<![\w.])%s\s*(?:\|\s*(?:default|d)\s*\(|is\s+(?:not\s+)?defined\b)" % re.escape(name))
    found = []
    for path, text in sources.items():
        for lineno, line in enumerate(text.splitlines(), 1):
            if use.search(line) and len(use.findall(line)) > len(guarded.findall(line)):
                found.append("%s:%d" % (path, lineno))
    return found


def problems(role, defaults, specs, sources):
    """Every way the argument spec and defaults/main.yml of ``role`` disagree, as readable lines."""
    out = []
    if specs is None:
        return ["meta/argument_specs.yml is missing"]
    main = ((specs or {}).get("argument_specs") or {}).get("main")
    if main is None:
        return ["meta/argument_specs.yml has no entry point 'main'"]
    options = main.get("options") or {}
    defaults = defaults or {}
    if not isinstance(defaults, dict):
        return ["defaults/main.yml is not a mapping of variables"]

    out.extend(_undocumented(options, ""))
    for name in sorted(set(options) | set(defaults)):
        if not name.startswith(role + "_"):
            out.append("%s: not prefixed with %s_" % (name, role))

    for name in sorted(set(defaults) - set(options)):
        out.append("%s: in defaults/main.yml but not declared in meta/argument_specs.yml" % name)

    for name, option in sorted(options.items()):
        option = option or {}
        type_name = option.get("type", "str")
        if type_name not in TYPES:
            out.append("%s: type %r is not one of %s" % (name, type_name, ", ".join(sorted(TYPES))))
        if name not in defaults:
            if "default" in option:
                out.append("%s: documents default %r but defaults/main.yml has no value for it" % (name, option["default"]))
            if not option.get("required"):
                unguarded = _unguarded_uses(name, sources)
                if unguarded:
                    out.append(
                        "%s: neither in defaults/main.yml nor required, but used without default()/is defined at %s"
                        % (name, ", ".join(unguarded))
                    )
            continue
        value = defaults[name]
        if option.get("required"):
            out.append("%s: required: true, yet defaults/main.yml gives it %r" % (name, value))
        if value is None:
            if option.get("default") is not None:
                out.append("%s: documents default %r, defaults/main.yml has null" % (name, option["default"]))
            continue
        if "default" not in option:
            out.append("%s: defaults/main.yml has %r, meta/argument_specs.yml documents no default" % (name, value))
        elif option["default"] != value or type(option["default"]) is not type(value):
            out.append("%s: documented default %r differs from defaults/main.yml %r" % (name, option["default"], value))
        if type_name in TYPES and not _type_ok(value, type_name):
            out.append("%s: type %s, but the default %r is a %s" % (name, type_name, value, type(value).__name__))
        elements = option.get("elements")
        if elements and isinstance(value, list):
            for item in value:
                if not _type_ok(item, elements):
                    out.append("%s: elements %s, but the default holds %r" % (name, elements, item))
        if option.get("choices") and value not in option["choices"]:
            out.append("%s: the default %r is not among the choices %r" % (name, value, option["choices"]))
    return out


def test_roles_are_found():
    # The existing roles at least; a new role is picked up by the same glob.
    assert {"proxmox_gpu_prep", "gpu_vm"} <= set(role_names())


@pytest.mark.parametrize("role", role_names())
def test_argument_specs_match_defaults(role):
    found = problems(role, *load_role(role))
    assert not found, "roles/%s:\n  %s" % (role, "\n  ".join(found))


# The checker itself, on small made-up roles, so that a rule cannot silently stop biting.
SPEC_OK = {
    "argument_specs": {
        "main": {
            "options": {
                "demo_name": {"description": "A name.", "type": "str", "default": "x"},
                "demo_count": {"description": "A count.", "type": "int", "default": 3},
                "demo_flag": {"description": "A flag.", "type": "bool", "default": False},
                "demo_items": {"description": "Items.", "type": "list", "elements": "str", "default": []},
                "demo_optional": {"description": "Null default.", "type": "str"},
                "demo_id": {"description": "Required.", "type": "int", "required": True},
                "demo_absent": {"description": "May be absent.", "type": "str"},
            }
        }
    }
}
DEFAULTS_OK = {"demo_name": "x", "demo_count": 3, "demo_flag": False, "demo_items": [], "demo_optional": None}
SOURCES_OK = {"tasks/main.yml": "x: \"{{ demo_absent | default(omit) }}\"\ny: \"{{ demo_id }}\"\n"}


def _spec_with(name, **changes):
    spec = yaml.safe_load(yaml.safe_dump(SPEC_OK))
    option = spec["argument_specs"]["main"]["options"].setdefault(name, {"description": "New.", "type": "str"})
    for key, value in changes.items():
        if value is None:
            option.pop(key, None)
        else:
            option[key] = value
    return spec


def test_checker_accepts_a_consistent_role():
    assert problems("demo", DEFAULTS_OK, SPEC_OK, SOURCES_OK) == []


@pytest.mark.parametrize(
    ("defaults", "spec", "sources", "expected"),
    [
        (dict(DEFAULTS_OK, demo_extra=1), SPEC_OK, SOURCES_OK, "demo_extra: in defaults/main.yml but not declared"),
        (DEFAULTS_OK, _spec_with("demo_count", default=4), SOURCES_OK, "demo_count: documented default 4 differs"),
        (DEFAULTS_OK, _spec_with("demo_count", default=None), SOURCES_OK, "demo_count: defaults/main.yml has 3, meta/argument_specs.yml documents no"),
        (dict(DEFAULTS_OK, demo_count="3"), _spec_with("demo_count", default="3"), SOURCES_OK, "demo_count: type int, but the default '3' is a str"),
        (dict(DEFAULTS_OK, demo_flag=0), _spec_with("demo_flag", default=0), SOURCES_OK, "demo_flag: type bool, but the default 0 is a int"),
        (dict(DEFAULTS_OK, demo_count=True), _spec_with("demo_count", default=True), SOURCES_OK, "demo_count: type int, but the default True is a bool"),
        (dict(DEFAULTS_OK, demo_items=[1]), _spec_with("demo_items", default=[1]), SOURCES_OK, "demo_items: elements str, but the default holds 1"),
        (DEFAULTS_OK, _spec_with("demo_name", description=None), SOURCES_OK, "demo_name: no description"),
        (DEFAULTS_OK, _spec_with("other_name", description="x"), SOURCES_OK, "other_name: not prefixed with demo_"),
        (DEFAULTS_OK, _spec_with("demo_gone", default="y"), SOURCES_OK, "demo_gone: documents default 'y' but defaults/main.yml has no value"),
        (DEFAULTS_OK, SPEC_OK, {"tasks/main.yml": "x: \"{{ demo_absent }}\"\n"}, "demo_absent: neither in defaults/main.yml nor required"),
        (dict(DEFAULTS_OK, demo_id=1), SPEC_OK, SOURCES_OK, "demo_id: required: true, yet defaults/main.yml gives it 1"),
        (DEFAULTS_OK, _spec_with("demo_name", choices=["a", "b"]), SOURCES_OK, "demo_name: the default 'x' is not among the choices"),
        (DEFAULTS_OK, _spec_with("demo_optional", default="z"), SOURCES_OK, "demo_optional: documents default 'z', defaults/main.yml has null"),
        (DEFAULTS_OK, {"argument_specs": {"other": {}}}, SOURCES_OK, "has no entry point 'main'"),
        (DEFAULTS_OK, None, SOURCES_OK, "meta/argument_specs.yml is missing"),
    ],
)
def test_checker_reports(defaults, spec, sources, expected):
    found = problems("demo", defaults, spec, sources)
    assert any(expected in line for line in found), found


def test_checker_reads_suboption_descriptions():
    spec = _spec_with("demo_items", type="list", elements="dict", options={"slot": {"type": "int"}})
    assert "demo_items.slot: no description" in problems("demo", DEFAULTS_OK, spec, SOURCES_OK)
