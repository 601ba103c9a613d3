# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Add archive components (non-free, multiverse, ...) to APT source entries, in both formats.

Pure Python, standard library only. Only entries of the running release (suite ``<codename>`` or
``<codename>-<pocket>``) that already carry ``main`` are touched, so a third-party repository in
the same file keeps its components. Every other byte of the file is kept; applying twice changes
nothing.
"""

from __future__ import annotations

import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError

SUPPORTED = ("debian", "ubuntu")
_COMPONENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]*$")

_ONE_LINE_RE = re.compile(
    r"^(?P<head>[ \t]*deb(?:-src)?[ \t]+(?:\[[^\]\n]*\][ \t]+)?\S+[ \t]+(?P<suite>\S+))"
    r"(?P<components>(?:[ \t]+[^\s#]+)*)(?P<tail>[ \t]*(?:#.*)?)$"
)
_FIELD_RE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9-]*):(?P<value>.*)$")


def parse_os_release(text):
    """``/etc/os-release`` -> dict of its keys, quotes removed."""
    values = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def validate_components(components):
    """Refuse components that are not plain words: APT splits the field on whitespace ('non free' is two)."""
    if components is None:
        return
    if not components:
        raise PassthroughError(
            "components is an empty list, so there is nothing to add.",
            fix="List the components to add, e.g. [non-free], or leave components unset for the defaults.",
        )
    for component in components:
        if not isinstance(component, str) or not _COMPONENT_RE.match(component):
            raise PassthroughError(
                "Component %r is not a plain word (letters, digits and . + _ - only, no spaces); APT would read it as %s."
                % (component, "nothing" if not str(component or "").strip() else "%d component(s)" % len(str(component).split())),
                fix="Give each component as its own list item, e.g. [non-free, non-free-firmware].",
            )


def release_facts(text, path, components=None, codename=None):
    """``(distribution, version_id, codename)`` from os-release text, refusing what the module cannot handle.

    A missing os-release, or a distribution other than Debian or Ubuntu (Proxmox VE reports
    ``ID=debian``), is a failure naming the file and the fix, never a silent no-op, unless both
    the components and the codename are given, which is all the edit needs.
    """
    explicit = bool(components) and bool(codename)
    if text is None:
        if explicit:
            return "", None, codename
        raise PassthroughError(
            "%s does not exist or cannot be read, so the distribution and its release are unknown; nothing was changed." % path,
            fix="Point os_release at the host's os-release file, or give both components and codename.",
            link="file",
        )
    release = parse_os_release(text)
    distribution = release.get("ID", "").lower()
    if distribution not in SUPPORTED and not explicit:
        raise PassthroughError(
            "%s names the distribution %r (%s), whose components this module does not know; nothing was changed."
            % (path, distribution or "(no ID)", release.get("PRETTY_NAME") or "no PRETTY_NAME"),
            fix="Give components and codename explicitly (and deb822_sources if the host uses one), or run it on Debian, Proxmox VE or Ubuntu.",
            link="input",
        )
    codename = codename or release.get("VERSION_CODENAME") or release.get("UBUNTU_CODENAME") or None
    if not codename:
        raise PassthroughError(
            "%s has no VERSION_CODENAME, so the entries of the running release cannot be told apart." % path,
            fix="Give codename explicitly (for example bookworm or trixie).",
            link="input",
        )
    return distribution, release.get("VERSION_ID"), codename


def default_components(distribution, version_id=None):
    """The components the Intel media driver (non-free) and its dependencies need; [] for others."""
    distribution = (distribution or "").lower()
    if distribution == "debian":
        try:
            major = int(str(version_id or "").split(".", 1)[0])
        except ValueError:
            major = None  # testing/sid have no VERSION_ID and do have non-free-firmware
        return ["non-free"] if major is not None and major < 12 else ["non-free", "non-free-firmware"]
    if distribution == "ubuntu":
        return ["universe", "multiverse"]
    return []


def _suite_matches(suites, codename):
    if not codename:
        return True
    return any(s == codename or s.startswith(codename + "-") for s in suites)


def add_to_one_line(text, components, codename=None):
    """Append the missing ``components`` to the one-line entries (``sources.list``) of ``codename`` carrying main."""
    out = []
    for line in text.splitlines(True):
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        match = _ONE_LINE_RE.match(body)
        if match and not body.lstrip().startswith("#"):
            have = match.group("components").split()
            missing = [c for c in components if c not in have]
            if "main" in have and missing and _suite_matches([match.group("suite")], codename):
                body = "%s%s %s%s" % (match.group("head"), match.group("components"), " ".join(missing), match.group("tail"))
        out.append(body + ending)
    return "".join(out)


def _deb822_stanza(lines, components, codename):
    fields = {}
    for index, line in enumerate(lines):
        match = _FIELD_RE.match(line.rstrip("\r\n"))
        if match:
            fields[match.group("name").lower()] = (index, match.group("value"))
    if "components" not in fields or ("enabled" in fields and fields["enabled"][1].strip().lower() == "no"):
        return lines
    suites = fields.get("suites", (None, ""))[1].split()
    index, value = fields["components"]
    have = value.split()
    missing = [c for c in components if c not in have]
    if "main" not in have or not missing or not _suite_matches(suites, codename):
        return lines
    line = lines[index]
    body = line.rstrip("\r\n")
    lines = list(lines)
    lines[index] = "%s %s%s" % (body.rstrip(), " ".join(missing), line[len(body):])
    return lines


def add_to_deb822(text, components, codename=None):
    """Append the missing ``components`` to the Components field of the deb822 stanzas of ``codename`` carrying main."""
    out = []
    stanza = []
    for line in text.splitlines(True):
        if line.strip():
            stanza.append(line)
            continue
        out.extend(_deb822_stanza(stanza, components, codename))
        stanza = []
        out.append(line)
    out.extend(_deb822_stanza(stanza, components, codename))
    return "".join(out)


def add_components(text, components, codename=None, deb822=False):
    """Either format; ``deb822`` picks the parser (files ending in ``.sources``)."""
    if not components:
        return text
    if deb822:
        return add_to_deb822(text, list(components), codename)
    return add_to_one_line(text, list(components), codename)
