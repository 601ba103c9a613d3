"""In-process simulator for pytest: `with running_simulator(tmp_path) as sim:` yields a `SimHandle`."""

import contextlib
import os

from .server import Simulator
from .state import default_state


class SimHandle:
    """What a test needs: URLs, CA file, state access, counters and fault controls."""

    def __init__(self, sim):
        self.sim = sim
        self.host = "127.0.0.1"
        self.port = sim.port
        self.base_url = sim.base_url
        self.api_url = sim.api_url
        self.ca_path = sim.ca_path
        self.state_path = sim.state_path
        self.admin_prefix = sim.admin_prefix

    # state
    @property
    def data(self):
        """The live state document (read; change it through `update`)."""
        return self.sim.data

    def update(self, func):
        """Run `func(data)` under the state lock and save the state file."""
        return self.sim.update(func)

    def snapshot(self):
        """A deep copy of the state."""
        return self.sim.state.snapshot()

    def vm(self, vmid):
        """The VM record (node, status, config, pending) or None."""
        return self.sim.data["vms"].get(str(vmid))

    def wait_tasks(self, timeout=10.0):
        """Wait until no task is running."""
        return self.sim.wait_tasks(timeout)

    # counters
    def counters(self):
        """{"endpoints": {...}, "reads", "writes", "writes_without_auth"}"""
        return self.sim.counters.snapshot()

    def reset_counters(self):
        """Counters back to zero."""
        self.sim.counters.reset()

    # faults
    def add_fault(self, kind, method="*", path=".*", **kwargs):
        """See `Simulator.add_fault`."""
        return self.sim.add_fault(kind, method, path, **kwargs)

    def fail(self, method, path, times=1, status=500, message=None, skip=0):
        """HTTP error `status` for matching requests."""
        return self.sim.add_fault("error", method, path, times=times, status=status, message=message, skip=skip)

    def drop(self, method, path, times=1, skip=0):
        """Close matching connections without a response."""
        return self.sim.add_fault("drop", method, path, times=times, skip=skip)

    def latency(self, seconds):
        """Add `seconds` to every request (0 turns it off)."""
        self.sim.set_latency(seconds)

    def clear_faults(self):
        """Remove every injected fault."""
        self.sim.clear_faults()

    # release and API schema
    @property
    def pve_version(self):
        """The simulated release ("9.1" or "8.2")."""
        return self.sim.pve_version

    def set_pve_version(self, version):
        """Follow another release: its API schema and its GET /version answer."""
        return self.sim.set_pve_version(version)

    def schema_violations(self, clear=False):
        """The requests the API schema refused so far: [{"method", "path", "status", "message", "errors"}];
        `clear` forgets them (a test that sends invalid requests on purpose)."""
        return self.sim.schema_violations(clear=clear)

    def set_task_duration(self, seconds, task_type=None):
        """Simulated task run time, for all tasks or one type (e.g. `qmstart`)."""
        def change(data):
            if task_type:
                data["settings"]["task_durations"][task_type] = seconds
            else:
                data["settings"]["task_duration"] = seconds
        self.sim.update(change)


@contextlib.contextmanager
def running_simulator(directory, state=None, task_duration=0.02, nodes=("pve1", "pve2", "pve3"), cert_dir=None, pve_version=None,
                      allow_schema_violations=False):
    """Start a simulator with its state file (and certificate, unless `cert_dir`) in `directory`; yields a `SimHandle`.

    `pve_version` ("9.1" default, "8.2") picks the API schema every request is checked against and GET /version.
    On leaving, a request the schema refused fails the test unless `allow_schema_violations` (or the test
    cleared them with `schema_violations(clear=True)`): what the simulator accepts, Proxmox VE accepts.
    """
    os.makedirs(str(directory), exist_ok=True)
    state_path = os.path.join(str(directory), "pvesim-state.json")
    initial = state if state is not None else default_state(nodes=nodes)
    sim = Simulator(state_path=state_path, initial_state=initial, port=0, cert_dir=str(cert_dir or directory), task_duration=task_duration,
                    pve_version=pve_version)
    sim.start()
    body_failed = True
    try:
        yield SimHandle(sim)
        body_failed = False
    finally:
        sim.stop()
    violations = sim.schema_violations()
    if violations and not body_failed and not allow_schema_violations:
        raise AssertionError("the Proxmox VE %s API schema refused %d request(s) to the simulator:\n%s" % (
            sim.pve_version, len(violations),
            "\n".join("%s %s -> %s %s" % (v["method"], v["path"], v["status"], v["errors"] or v["message"]) for v in violations)))
