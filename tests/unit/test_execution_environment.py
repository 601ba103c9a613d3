# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""meta/execution-environment.yml and collections/requirements.yml against what the collection declares.

meta/execution-environment.yml is read both as an ansible-builder 3 definition and by ansible-builder's
introspection of installed collections, which takes ``dependencies.python``/``system`` as paths relative to the
collection root (released ansible-builder fails on an inline list there).
"""

from __future__ import annotations

import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EE_FILE = os.path.join(ROOT, "meta", "execution-environment.yml")
V3_SECTIONS = {"additional_build_files", "additional_build_steps", "build_arg_defaults", "dependencies", "images", "options", "version"}


def _yaml(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def requirement_names(lines):
    """{normalized project name: requirement line} of pip requirement lines (comments and options skipped)."""
    names = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        names[re.sub(r"[-_.]+", "-", match.group(0)).lower()] = line
    return names


def _read_lines(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return handle.read().splitlines()


@pytest.fixture(scope="module")
def ee():
    return _yaml("meta", "execution-environment.yml")


def test_is_an_ansible_builder_3_definition(ee):
    assert isinstance(ee, dict)
    assert ee.get("version") == 3
    assert set(ee) <= V3_SECTIONS, set(ee) - V3_SECTIONS
    assert ee["images"]["base_image"]["name"]
    assert "ansible-core" in ee["dependencies"]["ansible_core"]["package_pip"]
    assert "ansible-runner" in ee["dependencies"]["ansible_runner"]["package_pip"]


def test_ansible_core_floor_is_requires_ansible(ee):
    floor = re.search(r">=\s*([0-9][0-9.]*)", ee["dependencies"]["ansible_core"]["package_pip"])
    requires = re.search(r">=\s*([0-9][0-9.]*)", _yaml("meta", "runtime.yml")["requires_ansible"])
    assert floor and requires
    assert floor.group(1).split(".")[:2] == requires.group(1).split(".")[:2]


@pytest.mark.parametrize("entry", ["python", "system"])
def test_requirement_files_resolve_for_introspection(ee, entry):
    value = ee["dependencies"].get(entry)
    if value is None:
        return
    assert isinstance(value, str), "%s must be a file path: ansible-builder's introspection of installed collections reads only a path" % entry
    assert not os.path.isabs(value) and not value.startswith("..")
    assert os.path.isfile(os.path.join(ROOT, value)), "%s: %s is not a file at the collection root" % (entry, value)


def test_every_python_requirement_is_covered(ee):
    wanted = requirement_names(_read_lines("requirements.txt"))
    assert wanted, "requirements.txt lists nothing"
    python = ee["dependencies"].get("python")
    assert python, "meta/execution-environment.yml installs no Python packages"
    given = requirement_names(_read_lines(python) if isinstance(python, str) else python)
    assert set(wanted) <= set(given), "missing from the execution environment: %s" % sorted(set(wanted) - set(given))
    for name, line in wanted.items():
        assert given[name].replace(" ", "") == line.replace(" ", ""), "%s: %r in requirements.txt, %r in the EE" % (name, line, given[name])


def _collections(value):
    if isinstance(value, str):
        value = _yaml(os.path.relpath(os.path.join(os.path.dirname(EE_FILE), value), ROOT))
    return {entry["name"]: entry for entry in (value or {}).get("collections", [])}


def test_galaxy_dependencies_are_installed(ee):
    dependencies = _yaml("galaxy.yml").get("dependencies") or {}
    assert dependencies
    for where, installed in (
        ("meta/execution-environment.yml", _collections(ee["dependencies"].get("galaxy"))),
        ("collections/requirements.yml", _collections(_yaml("collections", "requirements.yml"))),
    ):
        for name, version in dependencies.items():
            assert name in installed, "%s does not install %s" % (where, name)
            assert str(installed[name].get("version", "*")) == str(version), "%s: %s %r, galaxy.yml %r" % (
                where, name, installed[name].get("version"), version)


def test_project_sync_installs_this_checkout():
    # AWX runs ansible-galaxy from the project directory, so "." is the synced checkout itself.
    entries = _yaml("collections", "requirements.yml")["collections"]
    assert {"name": ".", "type": "dir"} in entries
    assert os.path.isfile(os.path.join(ROOT, "galaxy.yml"))
