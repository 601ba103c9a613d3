# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: convert three k3s agent VMs to q35 + OVMF + efidisk0 + hostpci0 against pvesim.

Job A uses this collection (pve_vm_q35 with its hostpci option), job B community.proxmox from the ansible package
(proxmox_kvm; proxmox_disk is probed for efidisk0). Both run as real ansible-playbook processes against a fresh
simulator with per-request latency. Printed per job: wall time, requests (reads/writes, per VM) and the delay
between a task's end and the first status poll that saw it stopped. Not a test: run it with
``python bench/run.py`` after ``tools/setup.sh`` and ``. tools/env.sh``. See bench/README.md.
"""

import argparse
import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from pvesim.fixture import running_simulator  # noqa: E402  pylint: disable=wrong-import-position

GIB = 1 << 30
PASSWORD = "rootpass"
GPU = "0000:00:02.0"
TARGET_REQUEST_SHARE = 0.5
TARGET_NOTICE = 0.3
OUR_MODULE = os.path.join("ansible_collections", "homelab", "gpu_passthrough", "plugins", "modules", "pve_vm_q35.py")

# The three agents: one per node, each node with its own iGPU at 00:02.0 (pvesim's default M920q-like hosts).
AGENTS = (
    {"name": "k3s-agent-1", "vmid": 120, "node": "pve1", "mac": "BC:24:11:5A:7E:01", "ip": "192.168.1.120"},
    {"name": "k3s-agent-2", "vmid": 121, "node": "pve2", "mac": "BC:24:11:5A:7E:02", "ip": "192.168.1.121"},
    {"name": "k3s-agent-3", "vmid": 122, "node": "pve3", "mac": "BC:24:11:5A:7E:03", "ip": "192.168.1.122"},
)

# Simulated run time of tasks (seconds) by type, "default" for the others. A list is used in turn, task after task
# of that type: the ends then fall at different points of a once-a-second polling cycle, as real tasks do (whole
# seconds would line up with the anchor's polls and hide its delay).
PROFILES = {
    "short": {"default": 0.05},
    "guest": {"default": 0.1, "qmshutdown": [2.2, 2.5, 2.8], "qmstop": [0.9, 1.2, 1.5], "qmstart": [0.9, 1.2, 1.5]},
}
PROFILE_TEXT = {
    "short": "every task 0.05 s (pvesim's default)",
    "guest": "qmshutdown 2.2/2.5/2.8 s, qmstart 0.9/1.2/1.5 s in turn, other tasks 0.1 s",
}


# ------------------------------------------------------------------------------------------------
# simulator state and instrumentation
# ------------------------------------------------------------------------------------------------


def add_agents(state):
    """The blog's k3s agents as Terraform left them: i440fx + SeaBIOS, scsi0, net0 with a fixed MAC, ide2 cloud-init, running."""
    now = time.time()
    for agent in AGENTS:
        vmid, node = agent["vmid"], agent["node"]
        for suffix, size in (("disk-0", 32 * GIB), ("cloudinit", 4 << 20)):
            state["volumes"].append({"volid": "local-lvm:vm-%d-%s" % (vmid, suffix), "storage": "local-lvm", "node": node,
                                     "vmid": vmid, "size": size, "format": "raw", "content": "images", "ctime": 1731054484})
        state["vms"][str(vmid)] = {
            "node": node,
            "status": "running",
            "pid": 4000 + vmid,
            "started_at": now - 600,
            "reserved_pci": [],
            "pending": {},
            "config": {
                "agent": "1",
                "boot": "order=scsi0;ide2;net0",
                "ciuser": "ubuntu",
                "cores": "4",
                "cpu": "host",
                "ide2": "local-lvm:vm-%d-cloudinit,media=cdrom" % vmid,
                "ipconfig0": "ip=%s/24,gw=192.168.1.1" % agent["ip"],
                "memory": "8192",
                "meta": "creation-qemu=9.0.2,ctime=1731054484",
                "name": agent["name"],
                "nameserver": "192.168.1.1",
                "net0": "virtio=%s,bridge=vmbr0,firewall=1" % agent["mac"],
                "ostype": "l26",
                "scsi0": "local-lvm:vm-%d-disk-0,discard=on,iothread=1,size=32G,ssd=1" % vmid,
                "scsihw": "virtio-scsi-single",
                "smbios1": "uuid=6f1c3f4e-2a0b-4c55-9d1e-0f3b2c1d4%03d" % vmid,
                "sockets": "1",
                "vmgenid": "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1%03d" % vmid,
            },
        }


class TaskWatch:
    """Records, inside the simulator process, when each task stopped and when its status was polled.

    pvesim keeps only a whole-second ``endtime`` and no request log, so this wraps two of its callables on the
    running instance (the task runner and the task status handler); the simulator's files are not changed.
    """

    def __init__(self, simulator):
        self.lock = threading.Lock()
        self.ends = {}
        self.types = {}
        self.polls = {}
        self.active = True
        api = simulator.api
        tasks = simulator.tasks
        status_handler = api.task_status
        run_task = tasks._run  # pylint: disable=protected-access

        def task_status(ctx, path):
            result = status_handler(ctx, path)
            seen = time.time()
            with self.lock:
                if self.active:
                    self.polls.setdefault(path["upid"], []).append((seen, result.get("status")))
            return result

        def run(record, *args):
            try:
                run_task(record, *args)
            finally:
                ended = time.time()
                with self.lock:
                    self.ends[record["upid"]] = ended
                    self.types[record["upid"]] = record["type"]

        api.task_status = task_status
        tasks._run = run  # pylint: disable=protected-access

    def reset(self):
        """Forget what was recorded so far."""
        with self.lock:
            self.ends, self.types, self.polls = {}, {}, {}

    def notices(self):
        """[(task type, delay, polls)] for every task whose status was polled until it was seen stopped."""
        rows = []
        with self.lock:
            for upid, polls in self.polls.items():
                ended = self.ends.get(upid)
                seen = [when for when, status in polls if status == "stopped"]
                if ended is None or not seen:
                    continue
                rows.append((self.types.get(upid, "?"), max(0.0, seen[0] - ended), len(polls)))
        return rows


def set_durations(handle, profile):
    """Apply a task duration profile: the default through the settings, per-type lists through a wrapper."""
    profile = PROFILES[profile]
    handle.update(lambda data: data["settings"].__setitem__("task_duration", profile["default"]))
    tasks = handle.sim.tasks
    configured = tasks.duration
    counts = {}
    lock = threading.Lock()

    def duration(task_type):
        choices = profile.get(task_type)
        if not choices:
            return configured(task_type)
        with lock:
            index = counts.get(task_type, 0)
            counts[task_type] = index + 1
        return choices[index % len(choices)]

    tasks.duration = duration


# ------------------------------------------------------------------------------------------------
# playbooks
# ------------------------------------------------------------------------------------------------


def inventory(handle):
    """Three hosts (the agents) run on the controller; connection data for the simulator in group vars."""
    hosts = {a["name"]: {"vmid": a["vmid"], "pve_node": a["node"]} for a in AGENTS}
    return {"all": {"hosts": hosts, "vars": {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "pve_host": "127.0.0.1",
        "pve_port": handle.port,
        "pve_password": PASSWORD,
        "pve_ca": handle.ca_path,
    }}}


def _auth(extra, node=True):
    auth = {"api_host": "{{ pve_host }}", "api_port": "{{ pve_port }}", "api_user": "root@pam", "api_password": "{{ pve_password }}",
            "vmid": "{{ vmid }}"}
    if node:
        auth["node"] = "{{ pve_node }}"
    auth.update(extra)
    return auth


def _play(name, tasks):
    # serial: 1 as the gpu_vm role does it: one k3s node down at a time.
    return [{"name": name, "hosts": "all", "gather_facts": False, "serial": 1, "tasks": tasks}]


def ours_play():
    """Job A: pve_vm_q35 in place with efidisk0 (4m) and the iGPU as hostpci0 (raw address, pcie): one restart."""
    return _play("q35 + OVMF + hostpci0 with homelab.gpu_passthrough", [
        {"name": "Convert to q35 + OVMF with efidisk0 and attach the iGPU as hostpci0, in place",
         "homelab.gpu_passthrough.pve_vm_q35": _auth({"ca_path": "{{ pve_ca }}", "efidisk_storage": "local-lvm", "efitype": "4m",
                                                      "hostpci": [{"host": GPU, "pcie": True}]})},
    ])


def anchor_play():
    """Job B: proxmox_kvm update (machine, bios, efidisk0 with update_unsafe, hostpci0), then stopped, then started.

    community.proxmox has no CA file option; validate_certs stays on and requests takes the simulator's CA from
    REQUESTS_CA_BUNDLE (set in the environment of the run).
    """
    kvm = "community.proxmox.proxmox_kvm"
    return _play("q35 + OVMF + hostpci0 with community.proxmox", [
        {"name": "Set machine, bios, efidisk0 and hostpci0 (pending until the VM restarts)",
         kvm: _auth({"validate_certs": True, "update": True, "update_unsafe": True, "machine": "q35", "bios": "ovmf",
                     "efidisk0": {"storage": "local-lvm", "format": "raw", "efitype": "4m", "pre_enrolled_keys": False},
                     "hostpci": {"hostpci0": "host=%s,pcie=1" % GPU}})},
        {"name": "Stop the VM (shutdown)", kvm: _auth({"validate_certs": True, "state": "stopped", "timeout": 300})},
        {"name": "Start the VM", kvm: _auth({"validate_certs": True, "state": "started", "timeout": 300})},
    ])


def probe_disk_play():
    """proxmox_disk asked for efidisk0 (what the issue names for it); expected to be refused."""
    return [{"name": "proxmox_disk efidisk0 probe", "hosts": "k3s-agent-1", "gather_facts": False, "tasks": [
        {"name": "Create efidisk0 with proxmox_disk", "community.proxmox.proxmox_disk": _auth({
            "validate_certs": True, "disk": "efidisk0", "storage": "local-lvm", "size": 1, "state": "present"}, node=False),
         "register": "probe", "ignore_errors": True},
        {"name": "Report", "ansible.builtin.debug": {"msg": "PROBE<{{ probe.msg | default('') | b64encode }}>"}},
    ]}]


def run_playbook(workdir, handle, play, label):
    """Run ansible-playbook; (wall seconds, stdout). Fails loudly when the run fails."""
    inv_path = os.path.join(workdir, "inventory.json")
    play_path = os.path.join(workdir, "%s.json" % label)
    with open(inv_path, "w", encoding="utf-8") as handle_out:
        json.dump(inventory(handle), handle_out)
    with open(play_path, "w", encoding="utf-8") as handle_out:
        json.dump(play, handle_out)
    env = dict(os.environ)
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_HOST_KEY_CHECKING="0",
               ANSIBLE_DEPRECATION_WARNINGS="0", REQUESTS_CA_BUNDLE=handle.ca_path)
    command = ["ansible-playbook", "-i", inv_path, play_path]
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError("ansible-playbook %s failed (rc %d):\n%s\n%s" % (label, proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
    return wall, proc.stdout


def recap_changed(stdout):
    """Sum of changed= over the PLAY RECAP lines."""
    return sum(int(n) for n in re.findall(r"\bchanged=(\d+)", stdout))


# ------------------------------------------------------------------------------------------------
# jobs
# ------------------------------------------------------------------------------------------------


def end_state(handle):
    """Per VM: what the job should have reached, as comparable text."""
    rows = {}
    for agent in AGENTS:
        vm = handle.vm(agent["vmid"])
        conf = vm["config"]
        efi = conf.get("efidisk0", "")
        efi_opts = dict(part.split("=", 1) for part in efi.split(",")[1:] if "=" in part)
        rows[agent["name"]] = {
            "status": vm["status"],
            "machine": conf.get("machine", "(pc)"),
            "bios": conf.get("bios", "(seabios)"),
            "efidisk0": "%s efitype=%s size=%s" % (efi.split(":")[0] if efi else "-", efi_opts.get("efitype", "-"), efi_opts.get("size", "-")),
            "hostpci0": _hostpci_text(conf.get("hostpci0")),
            "pending": ",".join(sorted(vm["pending"])) or "-",
            "scsi0 kept": conf.get("scsi0", "").startswith("local-lvm:vm-%d-disk-0," % agent["vmid"]),
            "MAC kept": agent["mac"] in conf.get("net0", ""),
            "unused": len([k for k in conf if k.startswith("unused")]),
        }
    return rows


def _hostpci_text(value):
    """hostpci0 in one spelling: the default key's name dropped (PVE accepts both), options sorted."""
    if not value:
        return "-"
    parts = value.split(",")
    if parts[0].startswith("host="):
        parts[0] = parts[0][len("host="):]
    return ",".join(parts[:1] + sorted(parts[1:]))


def measure(handle, watch, workdir, play, label):
    """Run one playbook from zeroed counters; its figures."""
    handle.reset_counters()
    watch.reset()
    wall, stdout = run_playbook(workdir, handle, play, label)
    handle.wait_tasks(30)
    counters = handle.counters()
    notices = watch.notices()
    return {"label": label, "wall": wall, "counters": counters, "notices": notices, "changed": recap_changed(stdout),
            "state": end_state(handle)}


def job(profile, latency, which, parent):
    """A fresh simulator with the three agents; job A (ours, plus its re-run) or B (anchor, plus the proxmox_disk probe)."""
    workdir = tempfile.mkdtemp(prefix="%s-%s-" % (which, profile), dir=parent)
    results = {}
    with running_simulator(os.path.join(workdir, "pve"), task_duration=0.05) as handle:
        handle.update(add_agents)
        set_durations(handle, profile)
        watch = TaskWatch(handle.sim)
        handle.latency(latency)
        if which == "ours":
            results["run"] = measure(handle, watch, workdir, ours_play(), "ours")
            results["rerun"] = measure(handle, watch, workdir, ours_play(), "ours-rerun")
        else:
            before = json.dumps(handle.snapshot()["vms"], sort_keys=True)
            _wall, stdout = run_playbook(workdir, handle, probe_disk_play(), "probe")
            found = re.search(r"PROBE<([A-Za-z0-9+/=]*)>", stdout)
            message = _b64(found.group(1)) if found else "(no result)"
            untouched = json.dumps(handle.snapshot()["vms"], sort_keys=True) == before
            results["probe"] = {"message": message, "untouched": untouched}
            results["run"] = measure(handle, watch, workdir, anchor_play(), "anchor")
    return results


def _b64(text):
    return base64.b64decode(text).decode("utf-8", "replace")


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------


def _stats(values):
    if not values:
        return "-", "-"
    return "%.3f" % (sum(values) / len(values)), "%.3f" % max(values)


def summary_row(name, run):
    c = run["counters"]
    total = c["reads"] + c["writes"]
    delays = [d for _t, d, _n in run["notices"]]
    mean, worst = _stats(delays)
    return [name, "%.1f" % run["wall"], str(total), "%.1f" % (total / len(AGENTS)), str(c["reads"]), str(c["writes"]),
            str(c["writes_without_auth"]), str(len(delays)), mean, worst, str(run["changed"])]


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(widths[i]) if i == 0 else str(cell).rjust(widths[i]) for i, cell in enumerate(row)) for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def by_type(run):
    """{task type: [delays]} and {task type: [polls]}."""
    delays, polls = {}, {}
    for kind, delay, count in run["notices"]:
        delays.setdefault(kind, []).append(delay)
        polls.setdefault(kind, []).append(count)
    return delays, polls


def report(profile, latency, ours, anchor):
    out = []
    out.append("")
    out.append("=== profile %r: %s; %d ms latency on every request; 3 VMs, serial: 1" % (profile, PROFILE_TEXT[profile], round(latency * 1000)))
    header = ["job", "wall s", "requests", "per VM", "reads", "writes", "w/o login", "tasks waited", "notice mean s", "notice max s", "changed"]
    rows = [summary_row("A ours", ours["run"]), summary_row("A ours, re-run", ours["rerun"]), summary_row("B community.proxmox", anchor["run"])]
    out.append(table(header, rows))

    out.append("")
    out.append("notice delay by task type (mean / max s, status polls per task):")
    type_rows = []
    for name, run in (("A ours", ours["run"]), ("B community.proxmox", anchor["run"])):
        delays, polls = by_type(run)
        for kind in sorted(delays):
            mean, worst = _stats(delays[kind])
            type_rows.append([name, kind, str(len(delays[kind])), mean, worst, "%.1f" % (sum(polls[kind]) / len(polls[kind]))])
    out.append(table(["job", "task", "count", "mean s", "max s", "polls/task"], type_rows))

    out.append("")
    out.append("requests by endpoint (reads+writes):")
    endpoints = sorted(set(ours["run"]["counters"]["endpoints"]) | set(anchor["run"]["counters"]["endpoints"]),
                       key=lambda e: (e.split(" ", 1)[1], e))
    ep_rows = []
    for endpoint in endpoints:
        cells = [endpoint]
        for run in (ours["run"], ours["rerun"], anchor["run"]):
            entry = run["counters"]["endpoints"].get(endpoint, {"reads": 0, "writes": 0})
            cells.append(str(entry["reads"] + entry["writes"]))
        ep_rows.append(cells)
    out.append(table(["endpoint", "A", "A re-run", "B"], ep_rows))

    out.append("")
    out.append("end state:")
    state_rows = []
    for name, run in (("A", ours["run"]), ("B", anchor["run"])):
        for vm, row in run["state"].items():
            state_rows.append([name, vm] + [str(v) for v in row.values()])
    keys = list(next(iter(ours["run"]["state"].values())).keys())
    out.append(table(["job", "vm"] + keys, state_rows))
    same = ours["run"]["state"] == anchor["run"]["state"]
    out.append("A and B end states %s" % ("match" if same else "DIFFER (see above)"))
    probe = anchor["probe"]
    out.append("proxmox_disk for efidisk0: %s (%s); B sets efidisk0 with proxmox_kvm update_unsafe instead."
               % (probe["message"] or "(accepted)", "simulator state unchanged" if probe["untouched"] else "STATE CHANGED"))

    ours_total = ours["run"]["counters"]["reads"] + ours["run"]["counters"]["writes"]
    anchor_total = anchor["run"]["counters"]["reads"] + anchor["run"]["counters"]["writes"]
    share = ours_total / float(anchor_total) if anchor_total else float("inf")
    ours_delays = [d for _t, d, _n in ours["run"]["notices"]]
    worst = max(ours_delays) if ours_delays else 0.0
    mean = sum(ours_delays) / len(ours_delays) if ours_delays else 0.0
    rerun = ours["rerun"]["counters"]
    requests_ok = share <= TARGET_REQUEST_SHARE
    notice_ok = worst < TARGET_NOTICE
    idem_ok = rerun["writes_without_auth"] == 0 and ours["rerun"]["changed"] == 0
    out.append("")
    out.append("verdict [%s]: requests %d vs %d = %.0f%% of the anchor's (target <= %d%%): %s; notice delay mean %.3f s, max %.3f s "
               "(target < %.1f s): %s; re-run %d reads, %d writes besides %d logins, changed=%d: %s"
               % (profile, ours_total, anchor_total, share * 100, TARGET_REQUEST_SHARE * 100, "PASS" if requests_ok else "MISS",
                  mean, worst, TARGET_NOTICE, "PASS" if notice_ok else "MISS", rerun["reads"], rerun["writes_without_auth"],
                  rerun["writes"] - rerun["writes_without_auth"], ours["rerun"]["changed"], "PASS" if idem_ok else "MISS"))
    return "\n".join(out), requests_ok and notice_ok and idem_ok


def preflight():
    paths = [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
    if not any(os.path.isfile(os.path.join(p, OUR_MODULE)) for p in paths):
        sys.exit("homelab.gpu_passthrough is not installed under ANSIBLE_COLLECTIONS_PATH: run tools/setup.sh, then . tools/env.sh")
    if importlib.util.find_spec("ansible_collections.community.proxmox") is None:
        sys.exit("community.proxmox (from the ansible package) is not importable from %s" % sys.executable)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profile", choices=sorted(PROFILES) + ["all"], default="all", help="task duration profile (default: all)")
    parser.add_argument("--latency", type=float, default=0.02, help="simulated latency per request, seconds (default 0.02)")
    args = parser.parse_args(argv)
    preflight()
    profiles = sorted(PROFILES, reverse=True) if args.profile == "all" else [args.profile]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pve-bench-") as parent:
        for profile in profiles:
            ours = job(profile, args.latency, "ours", parent)
            anchor = job(profile, args.latency, "anchor", parent)
            text, _ok = report(profile, args.latency, ours, anchor)
            print(text, flush=True)
    print("\nbenchmark took %.0f s" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
