"""Worker tasks with UPIDs, simulated durations, VM locks and task logs."""

import threading
import time

from . import rules


class TaskContext:
    """What a running task can do: log lines and warnings (each `warn` counts towards `TASK WARNINGS: n`)."""

    def __init__(self, record):
        self.record = record
        self.warnings = 0

    def log(self, line):
        """Append one line to the task log."""
        self.record["log"].append(line)

    def warn(self, message):
        """Log a warning the way a worker's `warn` shows up (`WARN: …`) and count it."""
        self.warnings += 1
        self.record["log"].append("WARN: " + message)


class TaskManager:
    """Runs tasks in threads; one lock per VM serializes tasks and synchronous config writes on the same VM.

    The per-VM lock mirrors qemu-server's `lock_config` flock (`src/PVE/QemuConfig.pm`, `/var/lock/qemu-server/
    lock-<vmid>.conf`); config `lock` values (backup, clone, create) are set by the task bodies themselves.
    """

    def __init__(self, state):
        self.state = state
        self._vm_locks = {}
        self._guard = threading.Lock()
        self._threads = []

    def vm_lock(self, vmid):
        """The flock stand-in for one VM."""
        with self._guard:
            return self._vm_locks.setdefault(str(vmid), threading.RLock())

    def acquire_vm(self, vmid, timeout=None):
        """Take the VM's config lock or fail like `lock_file` does on timeout.

        Follows pve-common `src/PVE/Tools.pm` (`lock_file_full`: "can't lock file '<file>' - got timeout").
        """
        if timeout is None:
            timeout = float(self.state.data["settings"].get("lock_timeout", 10.0))
        lock = self.vm_lock(vmid)
        if not lock.acquire(timeout=timeout):
            raise rules.die("can't lock file '/var/lock/qemu-server/lock-%s.conf' - got timeout" % vmid)
        return lock

    def duration(self, task_type):
        """Simulated run time of a task type (settings `task_durations[type]`, else `task_duration`)."""
        settings = self.state.data["settings"]
        return float(settings.get("task_durations", {}).get(task_type, settings.get("task_duration", 0.05)))

    def create(self, node, task_type, task_id, user, finish, begin=None, vmid=None, on_error=None):
        """Start a worker and return its UPID.

        `begin(ctx)` runs at once (under the state lock), then the task sleeps its duration holding the VM lock
        (if `vmid`), then `finish(ctx)` runs under the state lock. An `ApiError` from either ends the task with
        `TASK ERROR: <text>`; `on_error(ctx)` can undo half-done work.
        The UPID follows pve-common `src/PVE/UPID.pm` (`encode`); pstart is in clock ticks (HZ 100) since the
        simulated boot, like `/proc/<pid>/stat` field 22.
        """
        with self.state.lock:
            data = self.state.data
            pid = data["next_pid"]
            data["next_pid"] = pid + 1
            now = time.time()
            pstart = int((now - data["boot_time"]) * 100)
            starttime = int(now)
            upid = rules.upid_encode(node, pid, pstart, starttime, task_type, "" if task_id is None else task_id, user)
            record = {"upid": upid, "node": node, "pid": pid, "pstart": pstart, "starttime": starttime, "type": task_type,
                      "id": "" if task_id is None else str(task_id), "user": user, "status": "running", "log": []}
            data["tasks"][upid] = record
            self.state.save()
        thread = threading.Thread(target=self._run, args=(record, begin, finish, vmid, on_error), daemon=True,
                                  name="pvesim-task-%s" % pid)
        self._threads.append(thread)
        thread.start()
        return upid

    def _run(self, record, begin, finish, vmid, on_error):
        ctx = TaskContext(record)
        error = None
        lock = None
        try:
            if vmid is not None:
                lock = self.acquire_vm(vmid, timeout=60.0)
            if begin is not None:
                with self.state.lock:
                    begin(ctx)
            time.sleep(self.duration(record["type"]))
            with self.state.lock:
                finish(ctx)
        except rules.ApiError as exc:
            error = exc.task_text()
        except Exception as exc:  # pylint: disable=broad-except
            error = "internal simulator error: %r" % (exc,)
        if error and on_error is not None:
            with self.state.lock:
                try:
                    on_error(ctx)
                except Exception as exc:  # pylint: disable=broad-except
                    ctx.warn("cleanup failed: %r" % (exc,))
        if lock is not None:
            lock.release()
        with self.state.lock:
            record["log"].append(rules.task_final_line(error, ctx.warnings))
            record["status"] = "stopped"
            record["exitstatus"] = rules.task_exitstatus(record["log"][-1])
            record["endtime"] = int(time.time())
            self.state.save()

    def wait_all(self, timeout=10.0):
        """Wait for every task thread started so far (tests, shutdown)."""
        end = time.time() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, end - time.time()))
