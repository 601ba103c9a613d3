# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel command lines: parse them, set and remove arguments, and find where they live.

Pure core (standard library only). ``host/bootloader.py`` reads the files and runs the
commands for the ``kernel_cmdline`` module; everything here only decides.

Tokens
    The kernel splits its command line on whitespace outside double quotes
    (``foo="a b"`` is one argument). Only double quotes group; a token keeps its exact text.
    The key of a token is the text before its first ``=`` (leading quote dropped); a token
    without ``=`` is a flag. Keys are compared literally, except that inside a module
    parameter (a key with a dot, such as ``vfio-pci.ids``) dashes and underscores are the same,
    as they are for the kernel (``kernel/params.c``, ``parameq``) and for modprobe; boot-time
    ``__setup`` options such as ``intel_iommu`` are matched exactly, so other keys stay literal.

``absent`` entries
    A bare key (``nomodeset``, ``iommu``) removes every token with that key, flag or
    ``key=value`` alike. An entry with a value (``iommu=soft``) removes only the tokens with
    that exact key and value.

Where the command line lives (Proxmox VE and Debian)
    GRUB hosts: ``GRUB_CMDLINE_LINUX_DEFAULT`` in ``/etc/default/grub``; ``update-grub``
    sources ``/etc/default/grub`` and then ``/etc/default/grub.d/*.cfg``, so the last
    assignment wins and a drop-in overrides the main file.
    systemd-boot hosts managed by proxmox-boot-tool: ``/etc/kernel/cmdline``. Facts relied on,
    from proxmox-kernel-helper: ``src/proxmox-boot/functions`` (the ESP list is
    ``/etc/kernel/proxmox-boot-uuids``); ``src/bin/proxmox-boot-tool`` (``status`` exits 2 when
    the ESP list is missing, prints ``System currently booted with uefi`` or ``... legacy bios``
    and one ``<UUID> is configured with: uefi (versions: ...)`` and/or ``grub (versions: ...)``
    line per ESP; ``refresh`` runs the kernel postinst hooks); ``src/proxmox-boot/zz-proxmox-boot``
    (``update_esps`` reads only the first line of ``/etc/kernel/cmdline``, requires ``root=`` in
    it, falls back to ``/proc/cmdline`` without ``initrd=`` when the file is missing, writes
    systemd-boot loader entries for uefi ESPs and runs ``update-grub`` for grub ESPs).
    pve-docs ``system-booting.adoc``: ZFS root on EFI uses systemd-boot, all else GRUB.
"""

from __future__ import annotations

import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError

GRUB_VARIABLE = "GRUB_CMDLINE_LINUX_DEFAULT"
GRUB_FILE = "/etc/default/grub"
KERNEL_CMDLINE_FILE = "/etc/kernel/cmdline"

BOOTLOADERS = ("grub", "systemd-boot")

_WS = " \t\n\r\v\f"


# --------------------------------------------------------------------------- tokens


def parse(line):
    """Split a command line into its arguments, exactly as written.

    Whitespace (newlines included, so wrapped lines are fine) separates arguments unless it is
    inside double quotes. Each returned token keeps its text byte for byte.
    """
    tokens = []
    current = []
    in_quote = False
    for char in line or "":
        if char == '"':
            in_quote = not in_quote
            current.append(char)
        elif char in _WS and not in_quote:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        tokens.append("".join(current))
    return tokens


def split_arg(token):
    """``(key, value)`` of one token; ``value`` is None for a flag, text after the first ``=``."""
    body = token[1:] if token.startswith('"') else token
    if "=" not in body:
        return body.rstrip('"'), None
    key, value = body.split("=", 1)
    return key, value


def unquote(value):
    """A value as the kernel hands it on: one leading and one trailing double quote dropped."""
    if value is None:
        return None
    if value.startswith('"'):
        value = value[1:]
    if value.endswith('"'):
        value = value[:-1]
    return value


def norm_key(key):
    """The identity of a key: module parameters treat ``-`` and ``_`` alike."""
    if "." in key:
        module, param = key.split(".", 1)
        return module.replace("-", "_") + "." + param.replace("-", "_")
    return key


def render_arg(key, value):
    """Text of one argument. ``True``, ``None`` and ``""`` make a bare flag; others use str()."""
    if value is True or value is None or value == "":
        return key
    return "%s=%s" % (key, value)


def _has_space_or_quote(text):
    return any(c in _WS for c in text) or '"' in text or "'" in text


# update-grub sources /etc/default/grub as shell and GRUB parses the linux line of grub.cfg as its own
# script language ($ expansion, \\ escapes, ; separators, { } blocks): an argument holding one of these
# would be run or reshaped instead of reaching the kernel.
_SHELL_TEXT = set("$`\\;&|<>(){}*?[]~#")


def _shell_text(text):
    """The first character of ``text`` that shells or GRUB would read as syntax, or None."""
    for char in text:
        if char in _SHELL_TEXT or (char not in _WS and (ord(char) < 0x20 or ord(char) == 0x7F)):
            return char
    return None


def _refuse_shell_text(what, text):
    char = _shell_text(text)
    if char is not None:
        raise PassthroughError(
            "%s %r contains %r, which update-grub (a shell) or GRUB's own parser would read as syntax, not as text." % (what, text, char),
            fix="Give plain kernel arguments: letters, digits and . , : = / + - _ @ % ! only.",
        )


def validate_args(present, absent):
    """Raise PassthroughError (link ``input``) for arguments that would break the line."""
    present = present or {}
    absent = absent or []
    if isinstance(present, dict):
        for key, value in present.items():
            if isinstance(key, str):
                _refuse_shell_text("Kernel argument name", key)
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                _refuse_shell_text("Value of kernel argument %r" % (key,), str(value))
    if isinstance(absent, (list, tuple)):
        for entry in absent:
            if isinstance(entry, str):
                _refuse_shell_text("Entry in absent", entry)
    if not isinstance(present, dict):
        raise PassthroughError("present must be a mapping of argument names to values, got %r." % (present,), fix="Write present as key: value pairs.")
    for key, value in present.items():
        if not isinstance(key, str) or not key or _has_space_or_quote(key) or "=" in key:
            raise PassthroughError(
                "Kernel argument name %r in present is not usable: it is empty or contains whitespace, a quote or '='." % (key,),
                fix="Give the bare argument name as the key and its value as the value, e.g. iommu: pt.",
            )
        if value is False:
            raise PassthroughError(
                "Kernel argument %r in present has the value false." % (key,),
                fix="Use true (or an empty value) for a flag such as nomodeset; to remove an argument list it under absent.",
            )
        if value is True or value is None:
            continue
        if isinstance(value, (dict, list, tuple)):
            raise PassthroughError(
                "Kernel argument %r in present has a %s value %r." % (key, type(value).__name__, value),
                fix="Give one string or number; for lists such as vfio-pci.ids join them with commas.",
            )
        text = str(value)
        quoted_whole = len(text) >= 2 and text.startswith('"') and text.endswith('"') and '"' not in text[1:-1]
        if "\n" in text or "\r" in text or (_has_space_or_quote(text) and not quoted_whole):
            raise PassthroughError(
                "Value %r of kernel argument %r contains whitespace or quotes that would break the command line." % (text, key),
                fix='Remove the whitespace, or wrap the whole value in double quotes ("a b") if the kernel should see one argument.',
            )
    if isinstance(absent, str) or not isinstance(absent, (list, tuple)):
        raise PassthroughError("absent must be a list of argument names, got %r." % (absent,), fix="Write absent as a YAML list.")
    present_keys = {norm_key(k) for k in present}
    for entry in absent:
        if not isinstance(entry, str) or not entry or _has_space_or_quote(entry):
            raise PassthroughError(
                "Entry %r in absent is not usable: it is empty or contains whitespace or a quote." % (entry,),
                fix="List bare names (nomodeset) or exact key=value arguments (iommu=soft).",
            )
        key = split_arg(entry)[0]
        if norm_key(key) in present_keys:
            raise PassthroughError(
                "Kernel argument %r is listed both in present and in absent." % (key,),
                fix="Keep it in one of the two lists.",
            )


def set_args(line, present, absent):
    """Return ``line`` with the arguments in ``present`` set and those in ``absent`` removed.

    Each key of ``present`` appears exactly once, with its value, where the key first stood
    (appended at the end, in the order given, when new); its other occurrences are dropped,
    whatever their value (``iommu=pti`` becomes ``iommu=pt``). Keys named in ``absent`` are
    removed (see the module docstring for how entries match). Every other token keeps its
    place and text, repeats included (``video=``, ``console=``). The result is one line,
    tokens separated by single spaces; applying the same change again returns it unchanged.
    """
    present = present or {}
    absent = absent or []
    validate_args(present, absent)
    wanted = {}
    order = []
    for key, value in present.items():
        norm = norm_key(key)
        if norm not in wanted:
            order.append(norm)
        wanted[norm] = render_arg(key, value)
    absent_keys = set()
    absent_exact = set()
    for entry in absent:
        key, value = split_arg(entry)
        if value is None:
            absent_keys.add(norm_key(key))
        else:
            absent_exact.add((norm_key(key), value))

    out = []
    placed = set()
    for token in parse(line):
        key, value = split_arg(token)
        norm = norm_key(key)
        if norm in wanted:
            if norm not in placed:
                out.append(wanted[norm])
                placed.add(norm)
            continue
        if norm in absent_keys:
            continue
        if value is not None and (norm, value) in absent_exact:
            continue
        out.append(token)
    for norm in order:
        if norm not in placed:
            out.append(wanted[norm])
    return " ".join(out)


def carries(line, present, absent):
    """Whether a (live) command line already carries the wanted arguments.

    True when the last occurrence of every ``present`` key has the wanted value (flags: the
    key is there) and no ``absent`` entry matches. Repeats are tolerated here, since the
    running command line is assembled from several sources (GRUB adds ``GRUB_CMDLINE_LINUX``).
    """
    present = present or {}
    last = {}
    for token in parse(line):
        key, value = split_arg(token)
        last[norm_key(key)] = token
    for key, value in present.items():
        token = last.get(norm_key(key))
        if token is None or split_arg(token)[1] != split_arg(render_arg(key, value))[1]:
            return False
    for entry in absent or []:
        key, value = split_arg(entry)
        for token in parse(line):
            tkey, tvalue = split_arg(token)
            if norm_key(tkey) == norm_key(key) and (value is None or tvalue == value):
                return False
    return True


def conflicting_tokens(line, present, absent):
    """Tokens of ``line`` that ``set_args`` would drop or rewrite (other values, absent entries)."""
    wanted = {norm_key(k): render_arg(k, v) for k, v in (present or {}).items()}
    found = []
    for token in parse(line):
        norm = norm_key(split_arg(token)[0])
        if norm in wanted:
            if token != wanted[norm]:
                found.append(token)
        elif not set_args(token, {}, absent):
            found.append(token)
    return found


# --------------------------------------------------------------------------- /etc/kernel/cmdline


def read_kernel_cmdline(text):
    """The command line held by ``/etc/kernel/cmdline``: all its lines joined as one."""
    return " ".join(parse(text or ""))


def write_kernel_cmdline(line):
    """File contents for ``/etc/kernel/cmdline``: one line and a newline."""
    return " ".join(parse(line)) + "\n"


def kernel_cmdline_needs_rewrite(text, line):
    """Whether the file must be written to hold ``line``.

    Yes when the arguments differ, or when the file spreads them over several lines
    (proxmox-boot-tool reads only the first line). Whitespace alone is left alone.
    """
    if parse(text or "") != parse(line):
        return True
    return len([ln for ln in (text or "").splitlines() if ln.strip()]) > 1


def check_quotes(line, path):
    """Refuse a command line whose double quotes do not pair up (link ``file``).

    The kernel reads an unpaired quote as running to the end of the line, so every argument
    appended after it would become part of that value instead of reaching the kernel.
    """
    if (line or "").count('"') % 2:
        opened = (line or "").rfind('"')
        raise PassthroughError(
            "The command line in %s has an unpaired double quote (%s...), so arguments added after it would be part of that value; "
            "nothing was changed." % (path, line[max(0, opened - 20) : opened + 20].strip()),
            fix="Close or remove the quote in %s, then run again." % path,
            link="file",
        )


# The arguments that say where the root file system is (boot=zfs: Proxmox VE's ZFS initramfs).
ROOT_KEYS = ("root", "rootfstype", "rootflags", "boot")


def has_root(line):
    """Whether ``line`` carries a ``root=`` with a value."""
    return any(split_arg(t)[0] == "root" and split_arg(t)[1] for t in parse(line or ""))


def plan_kernel_cmdline(before, live, present, absent, path=KERNEL_CMDLINE_FILE, take_root_from_live=False):
    """Plan the edit of ``/etc/kernel/cmdline``: ``(previous line, new line, changed, new file text)``.

    ``before`` is the file's text (None when missing: it is then seeded from the live line without
    the loader's arguments). The new line must carry ``root=``: kernel-install and
    proxmox-boot-tool copy the file into the loader entry as it is, and an entry without ``root=``
    does not boot (zz-proxmox-boot refuses it). With ``take_root_from_live`` the root arguments of
    the live line are put in front; otherwise the edit is refused.
    """
    live_args = strip_loader_args(live or "")
    if before is None:
        if "\ufffd" in live_args:
            raise PassthroughError(
                "%s does not exist and the running command line it would be seeded from has bytes that are not UTF-8." % path,
                fix="Write %s by hand (cat /proc/cmdline shows the running line), then run again." % path,
                link="file",
            )
        previous = ""
        new_line = set_args(live_args, present, absent)
    else:
        check_quotes(before, path)
        previous = read_kernel_cmdline(before)
        new_line = set_args(previous, present, absent)
    if not has_root(new_line):
        taken = [t for t in parse(live_args) if split_arg(t)[0] in ROOT_KEYS and split_arg(t)[0] not in [split_arg(x)[0] for x in parse(new_line)]]
        if take_root_from_live and has_root(" ".join(taken)):
            new_line = " ".join(taken + parse(new_line))
        else:
            state = "is empty" if before is not None and not previous else ("holds %r" % previous if before is not None else "does not exist")
            known = [t for t in parse(live_args) if split_arg(t)[0] == "root"]
            raise PassthroughError(
                "%s %s: no root= argument, and a boot entry written from it would not find the root file system; nothing was changed."
                % (path, state),
                fix="Put the root arguments back into %s (%s), or set take_root_from_live: true to copy them from /proc/cmdline."
                % (path, ("the running kernel has " + " ".join(known)) if known else "cat /proc/cmdline shows the running ones"),
                link="file",
            )
    changed = before is None or kernel_cmdline_needs_rewrite(before, new_line)
    return previous, new_line, changed, write_kernel_cmdline(new_line) if changed else before


def strip_loader_args(line):
    """A live command line without what the boot loader adds (``BOOT_IMAGE=``, ``initrd=``)."""
    return " ".join(t for t in parse(line) if split_arg(t)[0] not in ("BOOT_IMAGE", "initrd"))


# --------------------------------------------------------------------------- GRUB default files

_ASSIGN_RE = re.compile(r"(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)=")


class _Word:
    """One shell word as read from the text: its span, decoded value and quoting."""

    def __init__(self, start, end, value, style, dynamic, broken=None):
        self.start = start
        self.end = end
        self.value = value
        self.style = style  # "double", "single", "none" or "mixed"
        self.dynamic = dynamic  # contains $ or ` expansion
        self.broken = broken  # why the text cannot be kept exactly (unterminated quote, continuation)


def _read_word(text, i):
    """Read one shell word starting at ``i`` (enough of sh for /etc/default/grub)."""
    start = i
    n = len(text)
    value = []
    parts = []
    dynamic = False
    broken = None
    while i < n:
        c = text[i]
        if c in " \t\n;&|":
            break
        if c == "'":
            close = text.find("'", i + 1)
            if close < 0:
                broken = broken or "an unterminated single quote"
                close = n
            value.append(text[i + 1 : close])
            parts.append("single")
            i = close + 1
        elif c == '"':
            opened = i
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '$`"\\\n':
                    if text[i + 1] != "\n":
                        value.append(text[i + 1])
                    i += 2
                    continue
                if text[i] in "$`":
                    dynamic = True
                value.append(text[i])
                i += 1
            if i >= n:
                broken = "an unterminated double quote (opened at offset %d)" % opened
            parts.append("double")
            i += 1
        elif c == "`":
            close = text.find("`", i + 1)
            if close < 0:
                broken = broken or "an unterminated backquote"
                close = n
            value.append(text[i : close + 1])
            dynamic = True
            parts.append("none")
            i = close + 1
        elif c == "$" and text.startswith("$(", i):
            depth = 0
            j = i
            while j < n:
                if text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                broken = broken or "an unterminated $("
            value.append(text[i : j + 1])
            dynamic = True
            parts.append("none")
            i = j + 1
        elif c == "\\" and i + 1 < n:
            if text[i + 1] != "\n":
                value.append(text[i + 1])
            else:
                broken = broken or "a line continuation (backslash at the end of a line)"
            parts.append("none")
            i += 2
        else:
            if c == "$":
                dynamic = True
            value.append(c)
            parts.append("none")
            i += 1
    kinds = set(parts)
    if not parts:
        style = "none"
    elif len(kinds) == 1 and kinds != {"none"} and len(parts) == 1:
        style = parts[0]
    elif kinds == {"none"}:
        style = "none"
    else:
        style = "mixed"
    return _Word(start, min(i, n), "".join(value), style, dynamic, broken)


def grub_assignments(text, variable=GRUB_VARIABLE):
    """Every effective assignment of ``variable`` in a shell file, in order (comments skipped)."""
    return _scan(text, variable)[0]


def _scan(text, variable):
    """``(assignments of variable, words whose quotes never close)``."""
    found = []
    unterminated = []
    i = 0
    n = len(text)
    at_start = True
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
            continue
        if c in "\n;":
            at_start = True
            i += 1
            continue
        if c == "#":
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
            continue
        if at_start:
            match = _ASSIGN_RE.match(text, i)
            if match:
                word = _read_word(text, match.end())
                if match.group(1) == variable:
                    found.append(word)
                if word.broken and "unterminated" in word.broken:
                    unterminated.append(word)
                i = max(word.end, match.end())
                continue
        at_start = False
        word = _read_word(text, i)
        if word.broken and "unterminated" in word.broken:
            unterminated.append(word)
        i = max(word.end, i + 1)
    return found, unterminated


_SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate_grub_variable(name):
    """Refuse a GRUB variable name that is not a plain shell name (it is written as ``NAME=...``)."""
    if not isinstance(name, str) or not _SHELL_NAME.match(name):
        raise PassthroughError(
            "grub_variable %r is not a plain shell variable name, and update-grub sources the GRUB file as shell." % (name,),
            fix="Use a name of letters, digits and underscores such as GRUB_CMDLINE_LINUX_DEFAULT.",
            link="input",
        )


def check_grub_text(text, variable=GRUB_VARIABLE, path=None):
    """Refuse a GRUB file the editor cannot keep exactly (link ``file``).

    An unterminated quote anywhere makes ``update-grub`` read the following lines as part of that
    value (it would pull ``GRUB_TIMEOUT=5`` into the command line); a continuation or a value
    outside quotes in the assignment to edit joins shell words the editor would split. A quoted
    value spanning lines is fine: it is rewritten onto one line, the same arguments.
    """
    found, unterminated = _scan(text or "", variable)
    name = path or "the GRUB file"
    if unterminated:
        word = unterminated[0]
        line = text.count("\n", 0, word.start) + 1
        raise PassthroughError(
            "%s has %s on line %d (%s), so the shell would read the lines after it as part of that value; nothing was changed."
            % (name, word.broken, line, text[word.start :].split("\n", 1)[0].strip()),
            fix="Close the quote on line %d of %s (sh -n %s shows the error), then run again." % (line, name, name),
            link="file",
        )
    last = found[-1] if found else None
    if last is not None and not last.broken and re.match(r"[ \t]*\\\n", text[last.end :]):
        last.broken = "a line continuation after its value"
    if last is not None and last.broken:
        word = last
        line = text.count("\n", 0, word.start) + 1
        raise PassthroughError(
            "%s in %s has %s on line %d, which an edit cannot keep exactly; nothing was changed." % (variable, name, word.broken, line),
            fix='Write %s as one line, VALUE in double quotes (%s="quiet ..."), then run again.' % (variable, variable),
            link="file",
        )


def read_grub(text, variable=GRUB_VARIABLE, path=None):
    """Value of the last assignment of ``variable`` (shell semantics), or None if unset.

    Raises PassthroughError (link ``file``) when that value is built with shell expansion
    (``"$GRUB_CMDLINE_LINUX_DEFAULT iommu=pt"``), which cannot be edited as plain text.
    """
    check_grub_text(text or "", variable, path)
    found = grub_assignments(text or "", variable)
    if not found:
        return None
    last = found[-1]
    if last.dynamic:
        raise PassthroughError(
            "%s in %s is built with shell expansion (%s), so it cannot be edited safely." % (variable, path or "the GRUB file", text[last.start : last.end]),
            fix="Rewrite that assignment as a plain quoted string, or set the arguments there by hand.",
            link="file",
        )
    return last.value


_SAFE_BARE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def _quote_double(value):
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    return '"%s"' % escaped


def _encode(value, style):
    if style == "single" and "'" not in value:
        return "'%s'" % value
    if style == "none" and _SAFE_BARE.match(value):
        return value
    return _quote_double(value)


def write_grub(text, variable, new_value):
    """``text`` with the value of the last assignment of ``variable`` replaced by ``new_value``.

    Only that value changes; its quote style is kept (double, single, none; double quotes are
    used when the value needs them) and every other byte stays. When the variable is not
    assigned, ``VARIABLE="value"`` is appended on a line of its own.
    """
    text = text or ""
    validate_grub_variable(variable)
    check_grub_text(text, variable)
    found = grub_assignments(text, variable)
    if not found:
        prefix = text if not text or text.endswith("\n") else text + "\n"
        return "%s%s=%s\n" % (prefix, variable, _quote_double(new_value))
    last = found[-1]
    if last.dynamic:
        read_grub(text, variable)
    return text[: last.start] + _encode(new_value, last.style) + text[last.end :]


def grub_linux_conflicts(files, variable, present, absent):
    """Tokens of ``GRUB_CMDLINE_LINUX`` (last assignment over ``(path, text)`` files) that clash with the edit.

    The kernel gets ``GRUB_CMDLINE_LINUX`` besides ``GRUB_CMDLINE_LINUX_DEFAULT``, so an
    ``intel_iommu=off`` there defeats the edit; only asked when editing the latter.
    """
    if variable != GRUB_VARIABLE:
        return []
    value = None
    for path, text in files:
        try:
            found = read_grub(text, "GRUB_CMDLINE_LINUX", path=path)
        except PassthroughError:
            return []
        if found is not None:
            value = found
    return conflicting_tokens(value or "", present, absent)


def effective_grub_file(main, dropins, variable=GRUB_VARIABLE):
    """Path of the file whose assignment of ``variable`` update-grub ends up using.

    ``main`` is ``(path, text)`` of ``/etc/default/grub``; ``dropins`` are ``(path, text)`` of
    ``/etc/default/grub.d/*.cfg``, sourced after the main file in lexical order, so the last
    file that assigns the variable wins. When none does, the main file is the place to add it.
    """
    winner = main[0]
    for path, text in [main] + sorted(dropins, key=lambda item: item[0]):
        if grub_assignments(text or "", variable):
            winner = path
    return winner


# --------------------------------------------------------------------------- boot loader


_BOOTED_RE = re.compile(r"System currently booted with (uefi|legacy bios)")
_ESP_RE = re.compile(r"^\s*(\S+) is configured with:(.*)$")
_MODE_RE = re.compile(r"\b(uefi|grub) \(versions:")


def parse_pbt_status(text):
    """``proxmox-boot-tool status`` output -> ``{"booted": "uefi"|"legacy bios"|None, "esps": [...]}``.

    Each ESP is ``{"uuid": ..., "modes": ["uefi", "grub"]}`` (the modes listed on its line).
    """
    booted = None
    esps = []
    for line in (text or "").splitlines():
        match = _BOOTED_RE.search(line)
        if match:
            booted = match.group(1)
            continue
        match = _ESP_RE.match(line)
        if match:
            esps.append({"uuid": match.group(1), "modes": _MODE_RE.findall(match.group(2))})
    return {"booted": booted, "esps": esps}


def version_key(version):
    """A kernel version's sort key: numbers compare as numbers (6.8.12-10 after 6.8.12-9)."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", version or "") if p]


def detect_bootloader(
    bootloader="auto",
    pbt_present=False,
    pbt_status=None,
    kernel_cmdline_exists=False,
    grub_exists=False,
    kernel_versions=(),
    grub_file=GRUB_FILE,
    kernel_cmdline_file=KERNEL_CMDLINE_FILE,
):
    """Decide which boot loader holds the command line and how to apply a change.

    Inputs are what the module observed: whether ``proxmox-boot-tool`` exists and its
    ``status`` output (stdout and stderr), whether the ``/etc/kernel/cmdline`` and
    ``/etc/default/grub`` files exist, and the kernel versions found as ``/boot/vmlinuz-*``.
    ``bootloader`` (``auto``, ``grub``, ``systemd-boot``) forces the loader.

    Returns ``bootloader``, ``path`` (for GRUB the main default file; see
    ``effective_grub_file`` for drop-ins), ``refresh_command`` (list of argv lists),
    ``managed_by`` (``proxmox-boot-tool`` or None) and ``esps`` (parsed status).
    proxmox-boot-tool manages the ESPs when its status lists at least one; it is then the
    refresh command for uefi (systemd-boot) and grub ESPs alike. Otherwise GRUB is refreshed
    with ``update-grub`` and plain systemd-boot with ``kernel-install add`` per kernel, which
    reads ``/etc/kernel/cmdline`` for the loader entry.
    """
    if bootloader not in ("auto",) + BOOTLOADERS:
        raise PassthroughError("Unknown bootloader %r." % (bootloader,), fix="Use auto, grub or systemd-boot.", link="input")
    status = parse_pbt_status(pbt_status) if pbt_present else {"booted": None, "esps": []}
    managed = bool(status["esps"])
    looked_for = "proxmox-boot-tool with configured ESPs (proxmox-boot-tool status), %s and %s" % (kernel_cmdline_file, grub_file)

    chosen = bootloader
    if chosen == "auto":
        if managed:
            modes = set()
            for esp in status["esps"]:
                if status["booted"] == "legacy bios":
                    modes.add("grub")
                elif "uefi" in esp["modes"]:
                    modes.add("systemd-boot")
                elif "grub" in esp["modes"]:
                    modes.add("grub")
            if len(modes) != 1:
                raise PassthroughError(
                    "Cannot tell the boot loader: proxmox-boot-tool status lists ESPs configured as %s."
                    % (", ".join(sorted(modes)) or "neither uefi nor grub"),
                    fix="Set bootloader: grub or bootloader: systemd-boot explicitly (see proxmox-boot-tool status).",
                    link="bootloader",
                    details={"esps": status["esps"]},
                )
            chosen = modes.pop()
        elif kernel_cmdline_exists and grub_exists:
            raise PassthroughError(
                "Cannot tell the boot loader: both %s and %s exist and proxmox-boot-tool manages no ESP." % (kernel_cmdline_file, grub_file),
                fix="Set bootloader: grub or bootloader: systemd-boot explicitly (efibootmgr -v shows which one boots).",
                link="bootloader",
            )
        elif kernel_cmdline_exists:
            chosen = "systemd-boot"
        elif grub_exists:
            chosen = "grub"
        else:
            raise PassthroughError(
                "No boot loader configuration found: looked for %s." % looked_for,
                fix="Set bootloader: grub or bootloader: systemd-boot explicitly, or point grub_file / kernel_cmdline_file at the right files.",
                link="bootloader",
            )

    if managed:
        refresh = [["proxmox-boot-tool", "refresh"]]
    elif chosen == "grub":
        refresh = [["update-grub"]]
    else:
        versions = sorted(set(kernel_versions or ()), key=version_key)
        if not versions:
            raise PassthroughError(
                "systemd-boot without proxmox-boot-tool needs kernel-install per kernel, but no /boot/vmlinuz-* was found.",
                fix="Install a kernel, or set bootloader: grub if the host boots with GRUB.",
                link="bootloader",
            )
        refresh = [["kernel-install", "add", v, "/boot/vmlinuz-%s" % v] for v in versions]
    return {
        "bootloader": chosen,
        "path": grub_file if chosen == "grub" else kernel_cmdline_file,
        "refresh_command": refresh,
        "managed_by": "proxmox-boot-tool" if managed else None,
        "esps": status["esps"],
    }
