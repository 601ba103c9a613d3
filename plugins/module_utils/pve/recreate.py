# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recreating a VM from a template, decided from what exists now, so an interrupted run can be run again.

Pure and stdlib-only. The steps of a recreate are::

    shutdown -> backup (vzdump) -> destroy -> clone (from the template, same vmid and name) -> configure -> start -> finish

Two marks carry what a later run needs to know across the destroy:

- the backup's notes (``vzdump --notes-template``, kept with the archive): the VM's config ``digest`` at backup
  time, net0's MAC address, its name and whether it was running;
- a line in the clone's ``description``: the template, the backup, the MAC to keep and what is still to do
  (``configure``, ``start``). ``finish`` removes the ``todo`` part; the line stays as a record.

``decide`` looks at the VM (present or not, its config digest, the mark), the marked backups and the options and
returns the remaining steps. It never returns ``destroy`` without a backup of the VM as it is now (one made in
this run, or a marked backup whose digest equals the VM's current digest while the VM is stopped) unless
``backup_before_recreate`` is false.
"""

from __future__ import annotations

import re

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.config import with_description_line
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.plan import NIC_MODELS, parse_net

MARK = "pve_vm_q35"
_NOTES_RE = re.compile(r"^%s recreate of VM (\d+):(.*)$" % MARK)
_LINE_RE = re.compile(r"^\[%s\] (.*)$" % MARK)
_FIELD_RE = re.compile(r"(\w+)=(\S*)")


def _fields(text):
    return dict(_FIELD_RE.findall(text or ""))


# ---------------------------------------------------------------------------------------------
# marks
# ---------------------------------------------------------------------------------------------


def backup_notes(vmid, digest, mac=None, name=None, running=False):
    """The notes given to vzdump for the backup taken before a recreate (one line, no template variables)."""
    parts = ["digest=%s" % digest]
    if mac:
        parts.append("mac=%s" % mac.upper())
    if name:
        parts.append("name=%s" % name)
    parts.append("running=%d" % (1 if running else 0))
    return "%s recreate of VM %s: %s" % (MARK, vmid, " ".join(parts))


def parse_backup_notes(notes, vmid=None):
    """``{"vmid", "digest", "mac", "name", "running"}`` from notes made by ``backup_notes``, else None."""
    for line in str(notes or "").splitlines():
        match = _NOTES_RE.match(line.strip())
        if not match:
            continue
        if vmid is not None and int(match.group(1)) != int(vmid):
            return None
        fields = _fields(match.group(2))
        if not fields.get("digest"):
            return None
        return {
            "vmid": int(match.group(1)),
            "digest": fields["digest"],
            "mac": fields.get("mac") or None,
            "name": fields.get("name") or None,
            "running": fields.get("running") == "1",
        }
    return None


def mark_line(template, backup=None, mac=None, todo=()):
    """The description line of a VM recreated from ``template``; ``todo`` lists steps still to do."""
    parts = ["recreated from template %s" % template, "backup=%s" % (backup or "none")]
    if mac:
        parts.append("mac=%s" % mac.upper())
    if todo:
        parts.append("todo=%s" % ",".join(todo))
    return "[%s] %s" % (MARK, " ".join(parts))


def parse_mark(description):
    """``{"template", "backup", "mac", "todo"}`` from the mark line in a description, else None."""
    for line in str(description or "").splitlines():
        match = _LINE_RE.match(line.strip())
        if not match:
            continue
        text = match.group(1)
        template = re.match(r"recreated from template (\d+)", text)
        fields = _fields(text)
        return {
            "template": int(template.group(1)) if template else None,
            "backup": None if fields.get("backup") in (None, "none") else fields["backup"],
            "mac": fields.get("mac") or None,
            "todo": [t for t in fields.get("todo", "").split(",") if t],
        }
    return None


def with_mark(description, line):
    """``description`` with its mark line replaced by ``line`` (appended when it has none)."""
    return with_description_line(description, lambda text: _LINE_RE.match(text.strip()), line)


def net_with_mac(value, mac):
    """A ``netN`` value with its MAC address set to ``mac`` (model, bridge and other options kept)."""
    if not value or not mac:
        return value
    parts = [p for p in str(value).split(",") if p.strip()]
    net = parse_net(value)
    out = []
    done = False
    for part in parts:
        key = part.split("=", 1)[0].strip()
        if key in NIC_MODELS and not done:
            out.append("%s=%s" % (key, mac.upper()))
            done = True
        elif key == "macaddr":
            out.append("macaddr=%s" % mac.upper())
            done = True
        else:
            out.append(part)
    if not done:
        out.insert(0, "%s=%s" % (net["model"] or "virtio", mac.upper()))
    return ",".join(out)


def mac_of(config, key="net0"):
    """The MAC address of ``config[key]`` or None."""
    value = (config or {}).get(key)
    return parse_net(value)["macaddr"] if value else None


# ---------------------------------------------------------------------------------------------
# deciding
# ---------------------------------------------------------------------------------------------


def newest_backup(backups, vmid, digest=None):
    """The newest backup of ``vmid`` marked by this module (optionally with config ``digest``), else None.

    ``backups``: storage content rows (``volid``, ``ctime``, ``notes``).
    """
    best = None
    for row in backups or ():
        info = parse_backup_notes(row.get("notes"), vmid)
        if info is None or (digest is not None and info["digest"] != digest):
            continue
        if best is None or (row.get("ctime") or 0, row["volid"]) > (best[0].get("ctime") or 0, best[0]["volid"]):
            best = (row, info)
    return best


def decide(vm, converted, template, backups, vmid, allow_recreate=False, backup_before_recreate=True, start=True):
    """What is left to do for ``conversion: recreate``.

    ``vm``: None when VM ``vmid`` does not exist, else ``{"status", "config"}`` (config with ``digest``).
    ``converted``: the VM already has the wanted machine, bios and efidisk0 (nothing a recreate would fix).
    ``template``: the template's vmid or None. ``backups``: backup rows of the backup storage for ``vmid``.

    Returns ``{"mode", "steps", "backup", "mac", "name", "warnings"}``: mode ``in_place`` (no recreate
    needed: the caller plans in place), ``resume`` (a clone of an earlier run still to be configured or
    started) or ``recreate``. ``backup`` is the volid of a reusable backup, if any.
    """
    result = {"mode": "in_place", "steps": [], "backup": None, "mac": None, "name": None, "running": False, "warnings": []}
    config = (vm or {}).get("config") or {}
    mark = parse_mark(config.get("description")) if vm else None

    if vm is not None and mark and mark["todo"]:
        running = vm.get("status") == "running"
        todo = [t for t in mark["todo"] if t in ("configure", "start")]
        steps = [{"action": "configure"}]
        if "start" in todo and start and not running:
            steps.append({"action": "start"})
        steps.append({"action": "finish"})
        result.update(mode="resume", steps=steps, backup=mark["backup"], mac=mark["mac"] or mac_of(config), name=config.get("name"))
        return result
    if vm is not None and converted:
        return result

    if not allow_recreate:
        raise PassthroughError(
            "conversion=recreate would destroy VM %s and clone it from a template, which needs allow_recreate=true." % vmid,
            fix="set allow_recreate: true to allow it (a vzdump backup is taken first unless backup_before_recreate: false), "
            "or use conversion: in_place, which keeps the VM and its disks.",
            link="input",
            details={"option": "allow_recreate"},
        )
    if template is None:
        raise PassthroughError(
            "conversion=recreate needs the template to clone VM %s from." % vmid,
            fix="set template to the vmid of a template that boots with UEFI (q35, OVMF).",
            link="input",
            details={"option": "template"},
        )
    if int(template) == int(vmid):
        raise PassthroughError(
            "template %s is the VM being recreated." % template,
            fix="set template to another VM's id.",
            link="input",
            details={"option": "template"},
        )

    steps = []
    if vm is None:
        found = newest_backup(backups, vmid)
        if found:
            row, info = found
            result.update(backup=row["volid"], mac=info["mac"], name=info["name"], running=info["running"])
        elif backup_before_recreate:
            result["warnings"].append(
                "VM %s does not exist and no backup of an earlier recreate of it was found; it is created from template %s." % (vmid, template)
            )
    else:
        running = vm.get("status") == "running"
        result.update(mac=mac_of(config), name=config.get("name"), running=running)
        if running:
            steps.append({"action": "shutdown"})
        if backup_before_recreate:
            reusable = None if running else newest_backup(backups, vmid, digest=config.get("digest"))
            if reusable:
                # the run that made it had shut the VM down: its notes say whether the VM ran before
                result["backup"] = reusable[0]["volid"]
                result["running"] = reusable[1]["running"]
            else:
                steps.append({"action": "backup"})
        steps.append({"action": "destroy"})
    steps.append({"action": "clone", "template": int(template)})
    steps.append({"action": "configure"})
    if result["running"] and start:
        steps.append({"action": "start"})
    steps.append({"action": "finish"})
    result.update(mode="recreate", steps=steps)
    return result


def clone_todo(steps):
    """The ``todo`` list the clone's mark starts with, from the recreate steps."""
    return [s["action"] for s in steps if s["action"] in ("configure", "start")]


def check_destroy(vmid, backup, backup_before_recreate):
    """Refuse to destroy without a backup unless the user turned backups off (a last guard before DELETE)."""
    if backup_before_recreate and not backup:
        raise PassthroughError(
            "Refusing to destroy VM %s: no backup of it was made or found." % vmid,
            fix="check the backup storage (backup_storage) and the vzdump task log, then run again.",
            link="vm_config",
        )
