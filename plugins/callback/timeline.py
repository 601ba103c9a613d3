# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The callback homelab.gpu_passthrough.timeline: what a run reports, fed to module_utils/chain/timeline.py's Recorder,
written to the timeline file."""

# the documentation comes before the imports, as ansible-test expects
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
name: timeline
type: aggregate
short_description: Write the rolling chain's timeline of a playbook run
version_added: 0.1.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Records what the rolling chain of C(playbooks/site.yml) does on which node and when, and writes it as a JSON
    object whose C(events) list holds C(t) (epoch seconds), C(node), C(guest), C(event) and C(detail) per event
    (C(plugins/module_utils/chain/timeline.py) documents the events and their rules; C(lab/chain) prints the downtime
    windows they show).
  - The fleet plan is read from the C(site_plan) fact when a task sets it; when the plan is ok, one C(plan) event per
    node is recorded.
  - "A task declares the event it ends with in a task variable whose name ends in C(_timeline_event), for example
    C(gpu_vm_timeline_event: guest_stop); the event is recorded when the task ends ok on a host the plan rolls. A task
    declaring C(host_reboot) records C(host_reboot) when it starts and C(host_up) when it ends."
  - The variables of an C(import_tasks) statement are its tasks' variables, so a declaration there counts for each task it
    imports; a declaration on a dynamic C(include_tasks) or C(include_role) statement counts for nothing, as the
    statement ends before its tasks run.
  - The first failure of a node whose turn has begun records C(failed) (a failure with C(ignore_errors) does not);
    when a play, or the next serial batch of one, starts, and when the run ends, every node the batch began is
    C(done) unless one of them failed.
  - The file is this run's timeline; it replaces the file of an earlier run at the first event, and it is written
    whole after every event (to a file beside it, then renamed), so a run that is stopped leaves a readable timeline.
  - Writes nothing in check mode, and nothing when no file is named.
  - C(playbooks/site.yml) enables this callback by itself (C(playbooks/callback_plugins/site_timeline.py)); enabling it
    in C(callbacks_enabled) as well records each event once.
requirements:
  - Enable it in C(callbacks_enabled) (ini C([defaults] callbacks_enabled), env C(ANSIBLE_CALLBACKS_ENABLED)), or run
    C(playbooks/site.yml), which enables it.
  - The file named by the extra variable C(site_timeline_file) or by O(path).
options:
  path:
    description:
      - The timeline file to write.
      - The extra variable C(site_timeline_file) (C(-e site_timeline_file=PATH)) takes precedence.
      - When neither is set, nothing is recorded.
    type: path
    env:
      - name: GPU_PASSTHROUGH_TIMELINE_FILE
    ini:
      - section: callback_timeline
        key: path
notes:
  - Only the events of hosts the fleet plan names as rolling members (C(site_plan.rolling.members)) are recorded; the
    member's C(node) is the event's node, and an agent's C(vmid) its guest.
"""

import os
import tempfile
import time
import weakref

from ansible import context
from ansible.playbook.task_include import TaskInclude
from ansible.plugins.callback import CallbackBase
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.chain import timeline

IMPORT_TASKS = ("import_tasks", "ansible.builtin.import_tasks", "ansible.legacy.import_tasks")


def _host_name(host):
    return str(host.get_name() if hasattr(host, "get_name") else host)


def _task_id(task):
    return getattr(task, "_uuid", None)


def _declared(task):
    """The event a task declares with a ``*_timeline_event`` variable (raw, not templated): its own, or one on the
    ``import_tasks`` that imported it. An include statement declares nothing: its result comes before its tasks ran."""
    if isinstance(task, TaskInclude):
        return None
    imported_with = []
    parent = getattr(task, "_parent", None)
    while parent is not None:
        action = getattr(parent, "action", None)
        if action is not None:
            if action not in IMPORT_TASKS:
                break
            imported_with.append(getattr(parent, "vars", None))
        parent = getattr(parent, "_parent", None)
    return timeline.marker(getattr(task, "vars", None), imported_with)


class CallbackModule(CallbackBase):
    """Feeds what a playbook run reports to ``timeline.Recorder`` and writes its events."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "homelab.gpu_passthrough.timeline"
    CALLBACK_NEEDS_ENABLED = True

    # The instance that records this run: the callback may be loaded twice (enabled by name and by site.yml's
    # callback_plugins); the first one that starts records, any other stays silent.
    _writer = None

    def __init__(self, display=None, options=None):
        super().__init__(display=display, options=options)
        self._recording = None
        self._recorder = None
        self._path = None
        self._write_failed = False

    # -- which instance records, and where

    def _claim(self):
        if self._recording is None:
            owner = CallbackModule._writer() if CallbackModule._writer is not None else None
            if owner is None:
                CallbackModule._writer = weakref.ref(self)
            self._recording = owner is None or owner is self
            if not self._recording:
                self.disabled = True
        return self._recording

    def _where(self, play):
        """The file named by the extra variable site_timeline_file, else by the option path; None in check mode."""
        if context.CLIARGS.get("check"):
            return None
        manager = play.get_variable_manager() if hasattr(play, "get_variable_manager") else None
        path = (getattr(manager, "extra_vars", None) or {}).get("site_timeline_file")
        if path in (None, ""):
            path = self.get_option("path")
        return None if path in (None, "") else os.path.abspath(os.path.expanduser(str(path)))

    # -- writing

    def _record(self, new):
        if not new or self._path is None:
            return
        directory = os.path.dirname(self._path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(self._path), dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(timeline.dump(self._recorder.events))
                os.chmod(tmp, 0o644)
                os.replace(tmp, self._path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            if not self._write_failed:
                self._write_failed = True
                self._display.warning("homelab.gpu_passthrough.timeline: cannot write the timeline %s: %s. Fix: point "
                                      "site_timeline_file at a writable file in an existing directory"
                                      % (self._path, exc))

    # -- what the run reports

    def v2_playbook_on_start(self, playbook):
        self._claim()

    def v2_playbook_on_play_start(self, play):
        if not self._claim():
            return
        if self._recorder is None:
            self._path = self._where(play)
            self._recorder = timeline.Recorder()
        self._record(self._recorder.play_start(getattr(play, "_uuid", None)))

    def v2_runner_on_start(self, host, task):
        if self._recorder is not None and self._path is not None:
            self._recorder.task_start(_host_name(host), _task_id(task), _declared(task), time.time())

    def v2_runner_on_ok(self, result):
        if self._recorder is not None and self._path is not None:
            task = result._task
            self._record(self._recorder.ok(_host_name(result._host), result._result, _declared(task), _task_id(task),
                                           time.time()))

    def v2_runner_on_skipped(self, result):
        if self._recorder is not None and self._path is not None:
            self._recorder.skipped(_host_name(result._host), _task_id(result._task), time.time())

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if self._recorder is not None and self._path is not None:
            self._record(self._recorder.failed(_host_name(result._host), result._task.get_name(),
                                               result._result.get("msg", ""), _task_id(result._task),
                                               ignore_errors=ignore_errors, t=time.time()))

    def v2_runner_on_unreachable(self, result):
        self.v2_runner_on_failed(result)

    def v2_playbook_on_stats(self, stats):
        if self._recorder is not None and self._path is not None:
            self._record(self._recorder.stats())
        if CallbackModule._writer is not None and CallbackModule._writer() is self:
            CallbackModule._writer = None
