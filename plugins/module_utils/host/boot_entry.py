# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the boot loader will boot next, and whether that command line is safe to reboot into.

Pure core (standard library only): the ``boot_entry_info`` module reads the files and mounts
the ESPs; everything here parses and judges text.

GRUB
    ``grub-mkconfig`` (grub2 ``util/grub.d/00_header.in``) writes ``set default="N"`` (or a
    title, an id, or a ``>`` path through submenus such as ``1>2``) in the ``else`` branch of
    ``if [ "${next_entry}" ]``; with ``GRUB_DEFAULT=saved`` it writes ``set default="${saved_entry}"``
    and the value comes from ``grubenv``. A one-shot ``next_entry`` in ``grubenv``
    (``grub-reboot``) wins over both. Each level of a path is matched against the entries of
    that level, ``menuentry`` and ``submenu`` alike, by position, title or ``$menuentry_id_option`` id.
    The kernel arguments are what follows the kernel path on the entry's ``linux`` line.

systemd-boot
    Loader entries are ``loader/entries/*.conf`` on the ESP (or XBOOTLDR); ``options`` lines
    are joined with spaces (Boot Loader Specification). The entry booted is the one-shot EFI
    variable ``LoaderEntryOneShot``, else ``LoaderEntryDefault``, else the first entry matching
    the ``default`` glob of ``loader/loader.conf``, else the first entry; entries are ordered
    newest version first.

proxmox-boot-tool
    ``/etc/kernel/proxmox-boot-uuids`` lists the ESPs it keeps in sync (proxmox-kernel-helper
    ``src/proxmox-boot/functions``, ``loop_esp_list``); ``refresh`` writes every one of them, so
    each must carry the arguments: one left behind is what the firmware may boot.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shlex

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.cmdline import (
    carries,
    has_root,
    parse,
    render_arg,
    version_key,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.files import read_lenient, under

LINUX_COMMANDS = ("linux", "linuxefi", "linux16")
KERNEL_IMAGE_PREFIXES = ("vmlinuz-", "vmlinux-", "bzImage-")
# kmod's module file suffixes (kmod libkmod-module.c: .ko, compressed .ko.gz, .ko.xz, .ko.zst)
MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
MODULES_DIR = "/lib/modules"

FIX_GRUB = "Run update-grub, check GRUB_DEFAULT in /etc/default/grub (and grub-editenv list for saved_entry), then run the role again."
FIX_PBT = "Run proxmox-boot-tool refresh (proxmox-boot-tool status lists the ESPs; proxmox-boot-tool clean drops ones that are gone), then run the role again."
FIX_SYSTEMD_BOOT = (
    "Run kernel-install add <version> /boot/vmlinuz-<version> for the kernel of that entry "
    "(bootctl list shows the entries and the default), then run the role again."
)


# --------------------------------------------------------------------------- grub.cfg


def _words(line):
    """Shell-like words of a grub.cfg line; None when its quotes do not close."""
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError:
        return None


def _entry_head(words):
    """``(title, id)`` of a ``menuentry``/``submenu`` line given as words."""
    title = words[1] if len(words) > 1 else ""
    entry_id = None
    for index, word in enumerate(words[:-1]):
        if word in ("$menuentry_id_option", "--id"):
            entry_id = words[index + 1]
    return title, entry_id


def parse_grub_cfg(text):
    """Menu tree of a ``grub.cfg``: ``{"default": [values of set default=], "entries": [...]}``.

    Each entry is ``{"kind": "menuentry"|"submenu", "title", "id", "linux": line or None,
    "children": [...]}``. Blocks that are not menu entries (``function``, ``if``) are walked
    through; their menu entries count at the level they appear in, as GRUB counts them.
    """
    root = {"kind": "submenu", "title": None, "id": None, "linux": None, "children": []}
    stack = [root]
    defaults = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head = line.split(None, 1)[0]
        if head in ("menuentry", "submenu") and line.endswith("{"):
            words = _words(line[:-1]) or [head]
            title, entry_id = _entry_head(words)
            node = {"kind": head, "title": title, "id": entry_id, "linux": None, "children": []}
            stack[-1]["children"].append(node)
            stack.append(node)
            continue
        if line.endswith("{"):
            stack.append(None)  # function body or other block: not a menu level
            continue
        if line == "}":
            if len(stack) > 1:
                stack.pop()
            continue
        menu = next((n for n in reversed(stack) if n is not None), root)
        if head in LINUX_COMMANDS and menu["kind"] == "menuentry" and menu["linux"] is None:
            menu["linux"] = line
        elif head == "set" and stack[-1] is root:
            match = re.match(r"set\s+default=(.*)$", line)
            if match:
                words = _words(match.group(1))
                defaults.append(words[0] if words else "")
    return {"default": defaults, "entries": root["children"]}


def parse_grubenv(text):
    """``grubenv`` (``key=value`` lines padded with ``#``) -> dict."""
    values = {}
    for line in (text or "").splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key] = value
    return values


def grub_default(cfg, env=None):
    """The default entry selector GRUB uses: ``(selector, how it was chosen)``."""
    env = env or {}
    if env.get("next_entry"):
        return env["next_entry"], "next_entry in grubenv (grub-reboot)"
    chosen = [d for d in cfg["default"] if "${next_entry}" not in d and d != "$next_entry"]
    value = chosen[-1] if chosen else "0"
    if value in ("${saved_entry}", "$saved_entry"):
        saved = env.get("saved_entry") or "0"
        return saved, "saved_entry=%s in grubenv (GRUB_DEFAULT=saved)" % saved
    return value, "set default=%s in grub.cfg" % (value or '""')


def _pick(children, part):
    if part.isdigit():
        index = int(part)
        return children[index] if index < len(children) else None
    for node in children:
        if part in (node["title"], node["id"]):
            return node
    return None


def resolve_grub_entry(cfg, selector):
    """The menu entry ``selector`` (``N``, title, id or a ``>`` path) names; None when it names none."""
    children = cfg["entries"]
    node = None
    for part in (selector or "0").split(">"):
        node = _pick(children, part.strip())
        if node is None:
            return None
        children = node["children"]
    if node is not None and node["kind"] == "submenu":
        return None  # GRUB opens a submenu instead of booting it
    return node


def linux_image(line):
    """The kernel image path of a ``linux`` line (its second word), or None."""
    tokens = parse(line or "")
    return tokens[1] if len(tokens) > 1 else None


def kernel_version(image, version=None):
    """The kernel version (the name of its ``/lib/modules/<version>/``) an entry boots: a loader entry's ``version``
    field when given, else what follows ``vmlinuz-`` in the image's file name (``/boot/vmlinuz-6.8.12-4-pve``,
    proxmox-boot-tool's ``/EFI/proxmox/6.8.12-4-pve/vmlinuz-6.8.12-4-pve``). None when neither names one (a bare
    ``/vmlinuz`` link)."""
    if version and str(version).strip():
        return str(version).strip()
    name = os.path.basename(str(image or "").replace("\\", "/"))
    for prefix in KERNEL_IMAGE_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return None


def linux_args(line):
    """The kernel arguments of a ``linux`` line: everything after the kernel path."""
    tokens = parse(line or "")
    return " ".join(tokens[2:])


def grub_entry(cfg_text, env_text=None, where="/boot/grub/grub.cfg"):
    """The GRUB entry that boots next as ``{"where", "name", "cmdline", "problem", "chosen_by"}``."""
    cfg = parse_grub_cfg(cfg_text)
    selector, how = grub_default(cfg, parse_grubenv(env_text))
    entry = resolve_grub_entry(cfg, selector)
    found = {"where": where, "name": None, "cmdline": None, "problem": None, "chosen_by": how, "kernel": None}
    if entry is None:
        titles = ", ".join(repr(n["title"]) for n in cfg["entries"]) or "none"
        found["problem"] = "the default %r (%s) names no bootable menu entry (top-level entries: %s)" % (selector, how, titles)
    elif entry["linux"] is None:
        found["name"] = entry["title"]
        found["problem"] = "menu entry %r has no linux line" % entry["title"]
    else:
        found["name"] = entry["title"]
        found["cmdline"] = linux_args(entry["linux"])
        found["kernel"] = kernel_version(linux_image(entry["linux"]))
    return found


# --------------------------------------------------------------------------- systemd-boot


def parse_loader_entry(text):
    """A Boot Loader Specification entry -> ``{"title", "version", "linux", "options", "sort_key"}``."""
    fields = {"title": None, "version": None, "linux": None, "sort_key": None}
    options = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        if key == "options":
            options.append(value)
        elif key in ("title", "version", "linux"):
            fields[key] = value
        elif key == "sort-key":
            fields["sort_key"] = value
    fields["options"] = " ".join(options) if options else None
    return fields


def parse_loader_conf(text):
    """``loader.conf`` -> dict of its keys (the last value wins)."""
    values = {}
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        values[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return values


def _entry_version(name, fields):
    if fields.get("version"):
        return fields["version"]
    match = re.search(r"(\d+\.\d+[^/]*?)(?:\.conf)?$", name)
    return match.group(1) if match else ""


def order_entries(entries):
    """Loader entries (``{name: text}``) in systemd-boot's menu order: newest version first."""
    parsed = [(name, parse_loader_entry(text)) for name, text in entries.items()]
    parsed.sort(key=lambda item: (version_key(_entry_version(*item)), item[0]), reverse=True)
    return parsed


def systemd_boot_entry(entries, loader_conf=None, efi_default=None, efi_oneshot=None, where="ESP", efi_last_booted=None):
    """The loader entry booted next as ``{"where", "name", "cmdline", "problem", "chosen_by"}``.

    ``entries`` maps entry file names (``proxmox-6.8.12-4-pve.conf``) to their text. ``default
    @saved`` in ``loader.conf`` means the entry booted last (``LoaderEntryLastBooted``).
    """
    ordered = order_entries(entries or {})
    found = {"where": where, "name": None, "cmdline": None, "problem": None, "chosen_by": None, "kernel": None}
    if not ordered:
        found["problem"] = "no loader entry in loader/entries"
        return found
    pattern = None
    for value, how in ((efi_oneshot, "EFI variable LoaderEntryOneShot"), (efi_default, "EFI variable LoaderEntryDefault")):
        if value:
            pattern, found["chosen_by"] = value, "%s=%s" % (how, value)
            break
    if pattern is None:
        default = parse_loader_conf(loader_conf).get("default")
        if default == "@saved" and efi_last_booted:
            pattern, found["chosen_by"] = efi_last_booted, "default @saved in loader.conf: LoaderEntryLastBooted=%s" % efi_last_booted
        elif default and default != "@saved":
            pattern, found["chosen_by"] = default, "default %s in loader.conf" % default
    chosen = None
    if pattern is not None:
        for name, fields in ordered:
            if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name[: -len(".conf")] if name.endswith(".conf") else name, pattern):
                chosen = (name, fields)
                break
        if chosen is None:
            found["problem"] = "%s matches no loader entry (entries: %s)" % (found["chosen_by"], ", ".join(n for n, _f in ordered))
            return found
    else:
        chosen = ordered[0]
        found["chosen_by"] = "newest entry (loader.conf names no default)"
    name, fields = chosen
    found["name"] = name
    found["kernel"] = kernel_version(fields["linux"], fields["version"])
    if fields["options"] is None:
        found["problem"] = "loader entry %s has no options line" % name
    else:
        found["cmdline"] = fields["options"]
    return found


def read_efi_string(data):
    """An EFI variable from efivarfs (4 attribute bytes, then UTF-16LE, NUL-terminated)."""
    if not data or len(data) < 4:
        return None
    text = data[4:].decode("utf-16-le", errors="replace")
    return text.split("\x00", 1)[0] or None


def read_pbt_uuids(text):
    """The ESP UUIDs of ``/etc/kernel/proxmox-boot-uuids`` (one per line; blank and ``#`` lines skipped)."""
    return [ln.strip() for ln in (text or "").splitlines() if ln.strip() and not ln.strip().startswith("#")]


# --------------------------------------------------------------------------- the kernel's modules


def module_name(name):
    """A module name as modprobe compares it: ``-`` and ``_`` are the same (kmod ``modname_normalize``)."""
    return str(name).replace("-", "_")


def check_module_specs(specs, option="modules"):
    """Refuse a module spec that is not ``name`` or ``dir/.../name`` relative to ``/lib/modules/<version>/`` (for
    example ``updates/dkms/i915``: the module must be there, where dkms installs its builds)."""
    for spec in specs or []:
        text = str(spec)
        parts = text.split("/")
        if not text or text.startswith("/") or any(part in ("", ".", "..") for part in parts) \
                or not re.match(r"^[A-Za-z0-9_-]+$", parts[-1]):
            raise PassthroughError(
                "%s: %r is not a kernel module name; nothing was read." % (option, spec),
                fix="give %s a module name like vfio-pci, or a path below /lib/modules/<version>/ ending in one, like "
                    "updates/dkms/i915 (where dkms installs its builds)." % option,
                link="input", details={"option": option, "value": spec})


def find_modules(files, builtin_text, wanted):
    """Which of ``wanted`` a kernel has: ``{spec: where}``.

    ``files`` are the paths of the module files under ``/lib/modules/<version>/`` (relative), ``builtin_text`` that
    kernel's ``modules.builtin`` (the modules built into the image, one path per line). ``where`` is the module file's
    relative path, ``builtin`` when the image has it, None when the kernel lacks it. A spec ``dir/name`` only counts a
    file below ``dir/`` (not a builtin): dkms installs to ``updates/dkms/``, and the stock module of the same name
    is not the build the mode needs.
    """
    by_name = {}
    for path in sorted(files or []):
        base = os.path.basename(path)
        for suffix in MODULE_SUFFIXES:
            if base.endswith(suffix):
                by_name.setdefault(module_name(base[: -len(suffix)]), []).append(path)
                break
    builtin = set()
    for line in (builtin_text or "").splitlines():
        base = os.path.basename(line.strip())
        if base.endswith(".ko"):
            builtin.add(module_name(base[:-3]))
    found = {}
    for spec in wanted or []:
        directory, _slash, name = str(spec).rpartition("/")
        paths = by_name.get(module_name(name), [])
        if directory:
            paths = [path for path in paths if path.startswith(directory.rstrip("/") + "/")]
        if paths:
            found[spec] = paths[0]
        elif not directory and module_name(name) in builtin:
            found[spec] = "builtin"
        else:
            found[spec] = None
    return found


def read_kernel_modules(root, version, wanted):
    """``find_modules`` for the kernel ``version`` installed under ``root``; None when it has no
    ``/lib/modules/<version>/`` (the kernel's modules are not installed)."""
    base = under(root, os.path.join(MODULES_DIR, version))
    if not version or not os.path.isdir(base):
        return None
    files = []
    for directory, _dirs, names in os.walk(base):
        files.extend(os.path.relpath(os.path.join(directory, name), base) for name in names
                     if name.endswith(MODULE_SUFFIXES))
    return find_modules(files, read_lenient(os.path.join(base, "modules.builtin")), wanted)


def fix_modules(kernels, missing):
    """What to run when entries boot ``kernels`` that lack ``missing`` (module specs)."""
    versions = " ".join(sorted(set(kernels)))
    steps = []
    if any("/" in spec for spec in missing):
        steps.append("build the dkms modules for the kernel it boots: dkms autoinstall -k <version> for each of %s "
                     "(dkms status lists what is built for which kernel)" % versions)
    if any("/" not in spec for spec in missing):
        steps.append("install the complete kernel package of %s (its /lib/modules/<version>/ lacks modules)" % versions)
    steps.append("or boot a kernel that has them (proxmox-boot-tool kernel pin <version>, or GRUB_DEFAULT), then "
                 "run the role again")
    return "; ".join(steps) + "."


# --------------------------------------------------------------------------- judgement


def missing_args(cmdline, present=None, absent=None):
    """What ``cmdline`` lacks: ``(missing present args as text, absent entries still there)``."""
    missing = [render_arg(k, v) for k, v in (present or {}).items() if not carries(cmdline, {k: v}, [])]
    unwanted = [e for e in (absent or []) if not carries(cmdline, {}, [e])]
    return missing, unwanted


def judge(entries, present=None, absent=None, fix=FIX_GRUB, modules=()):
    """Whether every entry the boot loader may boot carries ``root=`` and the wanted arguments, and boots a kernel
    that has the wanted ``modules``.

    ``entries`` are what ``grub_entry``/``systemd_boot_entry`` return (one per ESP with proxmox-boot-tool); with
    ``modules``, each has ``modules`` (what ``read_kernel_modules`` found for its kernel, None when the kernel's
    modules are not installed). Returns ``{"ok", "msg", "fix", "entries"}``; each entry gains ``ok``, ``missing``,
    ``unwanted`` and, with ``modules``, ``missing_modules``. ``msg`` names every bad entry, where it is and what it
    holds.
    """
    problems = []
    judged = []
    lacking = {}
    for entry in entries or []:
        entry = dict(entry)
        label = "%s entry %s" % (entry["where"], entry["name"]) if entry.get("name") else entry["where"]
        entry["missing"], entry["unwanted"] = [], []
        if entry.get("problem"):
            problems.append("%s: %s" % (label, entry["problem"]))
        elif not has_root(entry["cmdline"]):
            problems.append("%s has no root= argument (its command line: %r)" % (label, entry["cmdline"]))
        else:
            entry["missing"], entry["unwanted"] = missing_args(entry["cmdline"], present, absent)
            if entry["missing"] or entry["unwanted"]:
                what = []
                if entry["missing"]:
                    what.append("lacks %s" % " ".join(entry["missing"]))
                if entry["unwanted"]:
                    what.append("still has %s" % " ".join(entry["unwanted"]))
                problems.append("%s %s (its command line: %r)" % (label, " and ".join(what), entry["cmdline"]))
        modules_ok = True
        if modules and not entry.get("problem"):
            kernel = entry.get("kernel")
            have = entry.get("modules")
            if not kernel:
                entry["missing_modules"] = list(modules)
                problems.append("%s boots a kernel whose version its image path does not name, so its modules "
                                "(%s) cannot be checked" % (label, ", ".join(modules)))
            elif have is None:
                entry["missing_modules"] = list(modules)
                problems.append("%s boots kernel %s, which has no %s/%s/" % (label, kernel, MODULES_DIR, kernel))
            else:
                entry["missing_modules"] = [spec for spec in modules if not have.get(spec)]
                if entry["missing_modules"]:
                    problems.append("%s boots kernel %s, which lacks %s" % (
                        label, kernel, ", ".join("%s (no %s)" % (spec, _module_file_text(kernel, spec))
                                                 for spec in entry["missing_modules"])))
            modules_ok = not entry["missing_modules"]
            if not modules_ok:
                lacking.setdefault(kernel or "<unknown>", set()).update(entry["missing_modules"])
        entry["ok"] = (not entry.get("problem") and has_root(entry["cmdline"]) and not entry["missing"]
                       and not entry["unwanted"] and modules_ok)
        judged.append(entry)
    if not judged:
        problems.append("no boot entry was found to read back")
    ok = not problems
    if ok:
        wanted = " ".join([render_arg(k, v) for k, v in (present or {}).items()] + ["no %s" % e for e in absent or []])
        msg = "Every boot entry carries root=%s: %s." % (
            " and " + wanted if wanted else "",
            "; ".join("%s entry %s (%s)" % (e["where"], e["name"], e["cmdline"]) for e in judged),
        )
        if modules:
            msg += " Each boots a kernel with %s: %s." % (", ".join(modules), "; ".join(
                "%s (%s)" % (e["kernel"], ", ".join("%s %s" % (spec, e["modules"][spec]) for spec in modules))
                for e in judged))
        return {"ok": True, "msg": msg, "fix": None, "entries": judged}
    # the command line is wrong, or only the kernel lacks modules: each has its own fix
    cmdline_bad = not judged or any(e.get("problem") or not has_root(e.get("cmdline")) or e["missing"] or e["unwanted"]
                                    for e in judged)
    if not lacking:
        return {"ok": False, "msg": "The boot loader would not boot the wanted command line: %s." % "; ".join(problems),
                "fix": fix, "entries": judged}
    modules_fix = fix_modules(lacking, sorted(set().union(*lacking.values())))
    if cmdline_bad:
        return {"ok": False, "msg": "The boot loader would not boot the wanted command line: %s." % "; ".join(problems),
                "fix": "%s Then %s" % (fix, modules_fix), "entries": judged}
    return {"ok": False, "msg": "The boot loader would boot a kernel without the modules it needs: %s." % "; ".join(problems),
            "fix": modules_fix[0].upper() + modules_fix[1:], "entries": judged}


def _module_file_text(kernel, spec):
    directory, _slash, name = str(spec).rpartition("/")
    where = "%s/%s/%s" % (MODULES_DIR, kernel, directory + "/" if directory else "")
    return "%s.ko under %s" % (name, where) if directory else "%s.ko under %s nor in its modules.builtin" % (name, where)


# --------------------------------------------------------------------------- reading a host

PBT_UUIDS_FILE = "/etc/kernel/proxmox-boot-uuids"
GRUB_CFG = "/boot/grub/grub.cfg"
ESP_PATHS = ("/efi", "/boot/efi", "/boot")
LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"  # systemd-boot's vendor GUID for its EFI variables


def _loader_files(esp_dirs):
    entries = {}
    loader_conf = None
    seen = set()
    for esp in esp_dirs:
        real = os.path.realpath(esp)
        if real in seen:
            continue
        seen.add(real)
        for path in sorted(glob.glob(os.path.join(esp, "loader", "entries", "*.conf"))):
            text = read_lenient(path)
            if text is not None:
                entries.setdefault(os.path.basename(path), text)
        if loader_conf is None:
            loader_conf = read_lenient(os.path.join(esp, "loader", "loader.conf"))
    return entries, loader_conf


def _efi_variable(root, name):
    try:
        with open(under(root, "/sys/firmware/efi/efivars/%s-%s" % (name, LOADER_GUID)), "rb") as handle:
            return read_efi_string(handle.read())
    except OSError:
        return None


def _systemd_boot(root, esp_dirs, where, efi=True):
    entries, loader_conf = _loader_files(esp_dirs)
    return systemd_boot_entry(
        entries,
        loader_conf,
        efi_default=_efi_variable(root, "LoaderEntryDefault") if efi else None,
        efi_oneshot=_efi_variable(root, "LoaderEntryOneShot") if efi else None,
        where=where,
        efi_last_booted=_efi_variable(root, "LoaderEntryLastBooted") if efi else None,
    )


def _grub(cfg_path, where):
    text = read_lenient(cfg_path)
    if text is None:
        return {"where": where, "name": None, "cmdline": None, "problem": "it does not exist, or this user cannot read it (become: true)", "chosen_by": None,
                "kernel": None}
    return grub_entry(text, read_lenient(os.path.join(os.path.dirname(cfg_path), "grubenv")), where=where)


def _has_loader_entries(esp_dirs):
    return any(glob.glob(os.path.join(esp, "loader", "entries", "*.conf")) for esp in esp_dirs)


def read_boot_entries(root="/", bootloader="auto", grub_cfg=GRUB_CFG, esp_paths=ESP_PATHS, open_esp=None, modules=()):
    """Read what the host boots next: ``{"bootloader", "managed_by", "entries", "fix"}``; with ``modules``, each entry
    also says which of them its kernel has (``read_kernel_modules``).

    ``open_esp(uuid)`` is a context manager yielding the directory of a proxmox-boot-tool ESP
    (mounted if need be) or None when that ESP cannot be found.
    """
    found = _read_boot_entries(root, bootloader, grub_cfg, esp_paths, open_esp)
    if modules:
        for entry in found["entries"]:
            entry["modules"] = read_kernel_modules(root, entry.get("kernel"), modules) if entry.get("kernel") else None
    return found


def _read_boot_entries(root, bootloader, grub_cfg, esp_paths, open_esp):
    uuids = read_pbt_uuids(read_lenient(under(root, PBT_UUIDS_FILE)))
    if uuids and open_esp is not None:
        entries = []
        kinds = set()
        for uuid in uuids:
            where = "ESP %s" % uuid
            with open_esp(uuid) as esp:
                if esp is None:
                    entries.append({"where": where, "name": None, "cmdline": None, "chosen_by": None, "kernel": None,
                                    "problem": "listed in %s but not found or not mountable (/dev/disk/by-uuid/%s)" % (PBT_UUIDS_FILE, uuid)})
                elif bootloader != "grub" and _has_loader_entries([esp]):
                    kinds.add("systemd-boot")
                    entries.append(_systemd_boot(root, [esp], where, efi=len(uuids) == 1))
                else:
                    kinds.add("grub")
                    entries.append(_grub(os.path.join(esp, "grub", "grub.cfg"), where))
        chosen = kinds.pop() if len(kinds) == 1 else (bootloader if bootloader != "auto" else "mixed")
        return {"bootloader": chosen, "managed_by": "proxmox-boot-tool", "entries": entries, "fix": FIX_PBT}
    esp_dirs = [under(root, p) for p in esp_paths]
    cfg_path = under(root, grub_cfg)
    if bootloader == "auto":
        bootloader = "systemd-boot" if _has_loader_entries(esp_dirs) and not os.path.isfile(cfg_path) else "grub"
    if bootloader == "grub":
        return {"bootloader": "grub", "managed_by": None, "entries": [_grub(cfg_path, grub_cfg)], "fix": FIX_GRUB}
    found = [p for p, d in zip(esp_paths, esp_dirs) if os.path.isdir(os.path.join(d, "loader"))]
    where = "ESP %s" % ", ".join(found) if found else "ESP (none of %s has loader/)" % ", ".join(esp_paths)
    return {"bootloader": "systemd-boot", "managed_by": None, "entries": [_systemd_boot(root, esp_dirs, where)], "fix": FIX_SYSTEMD_BOOT}
