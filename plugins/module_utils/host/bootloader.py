# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel command line in a host's boot loader configuration: read it, plan an edit, write it (service layer).

``BootloaderConfig`` talks to the host below ``root``: it reads the GRUB defaults file and its drop-ins,
``/etc/kernel/cmdline``, ``/proc/cmdline`` and ``/boot/vmlinuz-*``, and runs ``proxmox-boot-tool status``.
Every decision (which boot loader, which file, the new line, whether it changed) is ``host/cmdline.py``'s;
every file access goes through ``host/files.py`` (paths confined to ``root``, refused edits, atomic writes).
The commands it runs and the backups it makes go through the callables it is given, the ``AnsibleModule``'s
in the ``kernel_cmdline`` module (``edit_kernel_cmdline``).
"""

from __future__ import annotations

import glob
import os

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.cmdline import (
    GRUB_FILE,
    GRUB_VARIABLE,
    KERNEL_CMDLINE_FILE,
    carries,
    check_quotes,
    detect_bootloader,
    effective_grub_file,
    grub_linux_conflicts,
    parse,
    plan_kernel_cmdline,
    read_grub,
    set_args,
    validate_args,
    validate_grub_variable,
    write_grub,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.files import (
    check_writable,
    confine,
    read_for_edit,
    read_lenient,
    under,
    write_atomic,
)

# Arguments that only make sense with a value: true here is YAML turning an unquoted on into a boolean.
VALUED_KEYS = ("intel_iommu", "amd_iommu", "iommu", "vfio-pci.ids", "vfio_pci.ids", "video", "i915.enable_gvt", "i915.enable_guc")
PBT_LOCATIONS = ("/usr/sbin/proxmox-boot-tool", "/usr/bin/proxmox-boot-tool", "/sbin/proxmox-boot-tool")


def refuse_boolean_values(present):
    """Refuse ``true`` for an argument that needs a value (link ``input``): YAML read an unquoted ``on`` as a boolean."""
    for key in present or {}:
        if present[key] is True and key in VALUED_KEYS:
            raise PassthroughError(
                "Kernel argument %r got the value true; YAML reads an unquoted on/yes as a boolean." % key,
                fix='Quote the value, e.g. %s: "on".' % key,
            )


class BootloaderConfig:
    """The boot loader configuration of the host below ``root``.

    ``find_binary(name)`` gives the path of a command on this host or None, ``run_command(argv)`` runs it and
    returns ``(rc, stdout, stderr)``, ``warn(text)`` passes a warning on, ``backup(path)`` copies a file and
    returns the copy's path (``AnsibleModule.get_bin_path``, ``run_command``, ``warn``, ``backup_local``).
    """

    def __init__(self, root="/", find_binary=None, run_command=None, warn=None, backup=None):
        self.root = root or "/"
        self.find_binary = find_binary or (lambda name: None)
        self.run_command = run_command
        self.warn = warn or (lambda text: None)
        self.backup = backup

    # ----------------------------------------------------------------------- reading the host

    def pbt_status(self, bootloader="auto"):
        """Whether proxmox-boot-tool exists, and its ``status`` output (stdout and stderr).

        Below another root it is looked for in the image only when the boot loader is to be detected, and is
        run as it is (not chrooted).
        """
        if self.root == "/":
            binary = self.find_binary("proxmox-boot-tool")
        elif bootloader != "auto":
            return False, None
        else:
            candidates = (under(self.root, c) for c in PBT_LOCATIONS)
            binary = next((p for p in candidates if self._inside(p) and os.access(p, os.X_OK)), None)
        if not binary:
            return False, None
        dummy, out, err = self.run_command([binary, "status"])
        return True, (out or "") + "\n" + (err or "")

    def _inside(self, path):
        try:
            confine(self.root, os.path.relpath(path, self.root), "proxmox-boot-tool")
        except PassthroughError:
            return False  # an image's absolute symlink (sbin -> /usr/sbin) points at the controller, not the image
        return True

    def kernel_versions(self):
        """The versions of the kernels in ``/boot`` (``vmlinuz-<version>``), without backups and dpkg leftovers."""
        versions = []
        for path in glob.glob(confine(self.root, "/boot", "root") + "/vmlinuz-*"):
            version = os.path.basename(path)[len("vmlinuz-") :]
            if version and not version.endswith((".old", ".bak")) and ".dpkg-" not in version:
                versions.append(version)
        return versions

    def live_cmdline(self):
        """The running kernel's command line (``/proc/cmdline``) as single-spaced arguments; None when unreadable."""
        live = read_lenient(confine(self.root, "/proc/cmdline", "root"))
        return " ".join(parse(live)) if live is not None else None

    # ----------------------------------------------------------------------- planning

    def plan(self, present=None, absent=None, bootloader="auto", grub_file=GRUB_FILE, grub_variable=GRUB_VARIABLE,
             kernel_cmdline_file=KERNEL_CMDLINE_FILE, take_root_from_live=False):
        """The edit that sets ``present`` and removes ``absent``, read from the host and decided, nothing written.

        Returns the ``kernel_cmdline`` module's result (``changed``, ``bootloader``, ``path``, ``cmdline``,
        ``previous_cmdline``, ``refresh_command``, ``live_cmdline``, ``reboot_required``, ``refresh_required``)
        with the file's text ``before`` (None when it does not exist) and ``after``.
        """
        present = present or {}
        absent = absent or []
        validate_args(present, absent)
        validate_grub_variable(grub_variable)
        refuse_boolean_values(present)
        grub_main = confine(self.root, grub_file, "grub_file")
        kc_path = confine(self.root, kernel_cmdline_file, "kernel_cmdline_file")
        for path, option in ((grub_main, "grub_file"), (kc_path, "kernel_cmdline_file")):
            if os.path.isdir(path):
                read_for_edit(path, option)  # refuses, naming the option
        pbt_present, pbt_status = self.pbt_status(bootloader)
        info = detect_bootloader(
            bootloader=bootloader,
            pbt_present=pbt_present,
            pbt_status=pbt_status,
            kernel_cmdline_exists=os.path.isfile(kc_path),
            grub_exists=os.path.isfile(grub_main),
            kernel_versions=self.kernel_versions(),
            grub_file=grub_file,
            kernel_cmdline_file=kernel_cmdline_file,
        )
        live = self.live_cmdline()
        if info["bootloader"] == "grub":
            target, before, after, previous, new_line, changed = self._plan_grub(grub_main, grub_variable, present, absent)
        else:
            target = kc_path
            before = read_for_edit(kc_path, "kernel_cmdline_file")
            previous, new_line, changed, after = plan_kernel_cmdline(before, live, present, absent, kc_path, take_root_from_live)
        reboot_required = changed if live is None else not carries(live, present, absent)
        return {
            "changed": changed,
            "bootloader": info["bootloader"],
            "path": target,
            "cmdline": new_line,
            "previous_cmdline": previous,
            "refresh_command": info["refresh_command"],
            "live_cmdline": live,
            "reboot_required": reboot_required,
            "refresh_required": changed or reboot_required,
            "before": before,
            "after": after,
        }

    def _plan_grub(self, grub_main, variable, present, absent):
        """``(target, before, after, previous line, new line, changed)`` of the GRUB file that holds ``variable`` last."""
        main_text = read_for_edit(grub_main, "grub_file")
        if main_text is None:
            raise PassthroughError(
                "The GRUB defaults file %s does not exist." % grub_main,
                fix="Install grub (grub-pc or grub-efi-amd64), or point grub_file at the file, or set bootloader: systemd-boot.",
                link="file",
            )
        dropins = [(path, read_lenient(path)) for path in sorted(glob.glob(os.path.join(grub_main + ".d", "*.cfg")))]
        dropins = [(path, text) for path, text in dropins if text is not None]
        target = effective_grub_file((grub_main, main_text), dropins, variable)
        if target != grub_main:
            confine(self.root, os.path.relpath(target, self.root), "grub_file drop-in")
        before = main_text if target == grub_main else read_for_edit(target, "grub_file drop-in")
        old_value = read_grub(before, variable, path=target)
        check_quotes(old_value, "%s (%s)" % (target, variable))
        new_line = set_args(old_value or "", present, absent)
        changed = old_value is None or parse(old_value) != parse(new_line)
        after = write_grub(before, variable, new_line) if changed else before
        for token in grub_linux_conflicts([(grub_main, main_text)] + dropins, variable, present, absent):
            self.warn("GRUB_CMDLINE_LINUX also holds '%s', which the kernel gets besides %s; edit it there." % (token, variable))
        return target, before, after, " ".join(parse(old_value or "")), new_line, changed

    # ----------------------------------------------------------------------- writing

    def apply(self, plan, backup=True):
        """Write ``plan["after"]`` over ``plan["path"]``; the path of the backup made, or None.

        Refused before anything (backup included) is written when the file cannot be replaced; a backup of a
        file left unchanged by a failed write is removed again.
        """
        target = plan["path"]
        check_writable(target)
        backup_file = self.backup(target) if backup and os.path.exists(target) else None
        try:
            write_atomic(target, plan["after"])
        except PassthroughError:
            if backup_file:
                os.unlink(backup_file)  # the file is unchanged, so is its copy
            raise
        return backup_file

    def edit(self, present=None, absent=None, bootloader="auto", grub_file=GRUB_FILE, grub_variable=GRUB_VARIABLE,
             kernel_cmdline_file=KERNEL_CMDLINE_FILE, take_root_from_live=False, backup=True, check_mode=False, diff=False):
        """Plan the edit and, unless ``check_mode``, write it: the ``kernel_cmdline`` module's result."""
        plan = self.plan(present, absent, bootloader, grub_file, grub_variable, kernel_cmdline_file, take_root_from_live)
        result = {key: value for key, value in plan.items() if key not in ("before", "after")}
        if plan["changed"] and diff:
            target = plan["path"]
            result["diff"] = {"before": plan["before"] or "", "after": plan["after"], "before_header": target, "after_header": target}
        if plan["changed"] and not check_mode:
            backup_file = self.apply(plan, backup)
            if backup_file:
                result["backup_file"] = backup_file
        return result


def edit_kernel_cmdline(module):
    """What the ``kernel_cmdline`` module does with its params, through the module's commands and backups."""
    p = module.params
    host = BootloaderConfig(p["root"], find_binary=module.get_bin_path, run_command=module.run_command, warn=module.warn,
                            backup=module.backup_local)
    return host.edit(p["present"], p["absent"], p["bootloader"], p["grub_file"], p["grub_variable"], p["kernel_cmdline_file"],
                     p["take_root_from_live"], backup=p["backup"], check_mode=module.check_mode, diff=module._diff)
