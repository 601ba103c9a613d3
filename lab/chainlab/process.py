# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Process control for lab/chain: commands with the lab's environment, SSH into the lab VMs (lab/vm), the
stand-ins as background services with pid files, ansible-playbook runs, the JSON files the lab keeps."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time

from . import CHAIN_DIR, COLLECTION, LAB_DIR, LOG_DIR, REPO_DIR, VENV_BIN, WORKER_VM, ChainError, progress, timeline_path
from .verdicts import count_boots, recap


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = VENV_BIN + os.pathsep + e.get("PATH", "")
    e.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(REPO_DIR, ".cache", "collections"))
    e.update(
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_HOST_KEY_CHECKING="0",
        ANSIBLE_PIPELINING="1",
        ANSIBLE_TIMEOUT="60",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        # kubernetes.core keeps its discovery cache under TMPDIR
        TMPDIR=os.path.join(CHAIN_DIR, "tmp"),
    )
    return e


def collection_dir(environment: dict[str, str]) -> str:
    for path in environment["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep):
        candidate = os.path.join(path, COLLECTION)
        if os.path.isfile(os.path.join(candidate, "playbooks", "site.yml")):
            return candidate
    raise ChainError("homelab.gpu_passthrough with playbooks/site.yml is not installed; run tools/setup.sh --test")


def run(cmd: list[str], *, log: str | None = None, check: bool = True, timeout: float | None = None, input_text: str | None = None,
        cwd: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env())
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ChainError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}):\n{tail}")
    return proc


def vm_up(name: str) -> subprocess.Popen:
    log = open(os.path.join(LOG_DIR, f"vm-{name}.log"), "a", encoding="utf-8")  # noqa: SIM115  closed with the process
    return subprocess.Popen([os.path.join(LAB_DIR, "vm"), "up", name, "--flavour", "grub"], stdout=subprocess.PIPE, stderr=log,
                            text=True, env=env())


def ssh(name: str, command: str, input_text: str | None = None, timeout: float = 120) -> str:
    return run([os.path.join(LAB_DIR, "vm"), "ssh", name, "--", command], input_text=input_text, timeout=timeout).stdout


PROBE = r"""
import json, os, subprocess
def rd(p):
    try:
        with open(p) as fh:
            return fh.read().strip()
    except OSError:
        return None
def link(p):
    return os.path.basename(os.readlink(p)) if os.path.islink(p) else None
root = "/sys/bus/pci/devices"
devices = []
for addr in sorted(os.listdir(root)):
    d = os.path.join(root, addr)
    devices.append({"id": addr, "class": rd(d + "/class"), "vendor": rd(d + "/vendor"), "device": rd(d + "/device"),
                    "subsystem_vendor": rd(d + "/subsystem_vendor"), "subsystem_device": rd(d + "/subsystem_device"),
                    "iommu_group": link(d + "/iommu_group"), "driver": link(d + "/driver")})
try:
    lspci = subprocess.run(["lspci", "-nnmm", "-D"], capture_output=True, text=True).stdout
except OSError:
    lspci = ""
listing = lambda p: sorted(os.listdir(p)) if os.path.isdir(p) else []
mem = [l for l in (rd("/proc/meminfo") or "").splitlines() if l.startswith("MemTotal:")]
ip = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout.split()
route = subprocess.run(["ip", "-4", "route", "show", "default"], capture_output=True, text=True).stdout.split()
nets = [n for n in listing("/sys/class/net") if n != "lo"]
print(json.dumps({
    "devices": devices, "lspci": lspci, "iommu_class": listing("/sys/class/iommu"),
    "iommu_groups": listing("/sys/kernel/iommu_groups"), "nproc": os.cpu_count(),
    "mem_bytes": int(mem[0].split()[1]) * 1024 if mem else 0, "cmdline": rd("/proc/cmdline"),
    "boot_id": rd("/proc/sys/kernel/random/boot_id"), "hostname": rd("/etc/hostname"),
    "ip_cidr": ip[ip.index("inet") + 1] if "inet" in ip else None,
    "gateway": route[route.index("via") + 1] if "via" in route else None,
    "mac": rd("/sys/class/net/%s/address" % nets[0]) if nets else None,
    "uuid": rd("/sys/class/dmi/id/product_uuid"),
}))
"""


def probe(name: str) -> dict:
    return json.loads(ssh(name, "python3 -", input_text=PROBE))


def boots(name: str) -> int:
    return count_boots(ssh(name, "journalctl --list-boots --no-pager"))


def worker_packages() -> list[str]:
    out = ssh(WORKER_VM, "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' 2>/dev/null || true")
    wanted = re.compile(r"^(vainfo|intel-media-va-driver\S*|i965-va-driver\S*|mesa-va-drivers|libva\S*|intel-gpu-tools)$")
    return sorted(f"{p} {v}" for p, v, s in (line.split(" ", 2) for line in out.splitlines() if line.count(" ") >= 2)
                  if wanted.match(p) and s.startswith("ii"))


def pid_alive(pidfile: str, marker: str) -> int | None:
    try:
        with open(pidfile) as fh:
            pid = int(fh.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except (OSError, ValueError):
        return None
    return pid if marker.encode() in cmdline else None


def start_service(name: str, module: str, args: list[str], ready_file: str, timeout: float = 60) -> dict:
    """Start `python -m module` from tests/ in its own session, unless it runs already; its ready-file data."""
    pidfile = os.path.join(CHAIN_DIR, f"{name}.pid")
    if pid_alive(pidfile, module) and os.path.exists(ready_file):
        with open(ready_file) as fh:
            return json.load(fh)
    with contextlib.suppress(OSError):
        os.unlink(ready_file)
    python = os.path.join(VENV_BIN, "python") if os.path.exists(os.path.join(VENV_BIN, "python")) else sys.executable
    with open(os.path.join(LOG_DIR, f"{name}.log"), "a", encoding="utf-8") as log:
        proc = subprocess.Popen([python, "-m", module, *args, "--ready-file", ready_file], cwd=os.path.join(REPO_DIR, "tests"),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env())
    with open(pidfile, "w") as fh:
        fh.write(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while not os.path.exists(ready_file):
        if proc.poll() is not None:
            raise ChainError(f"{module} exited (rc {proc.returncode}); see {os.path.join(LOG_DIR, name + '.log')}")
        if time.monotonic() > deadline:
            raise ChainError(f"{module} did not get ready within {timeout} s")
        time.sleep(0.2)
    with open(ready_file) as fh:
        return json.load(fh)


def stop_service(name: str, marker: str) -> bool:
    pidfile = os.path.join(CHAIN_DIR, f"{name}.pid")
    pid = pid_alive(pidfile, marker)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pid_alive(pidfile, marker):
        time.sleep(0.2)
    if pid_alive(pidfile, marker):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.unlink(pidfile)
    return True


def read_json(path: str) -> dict | None:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def write_json(path: str, data) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)


def playbook(name: str, extra: list[str], timeout: float = 3600) -> dict:
    """Run site.yml, stream its PLAY lines as progress; {name, rc, seconds, recap, log}."""
    environment = env()
    site = os.path.join(collection_dir(environment), "playbooks", "site.yml")
    log = os.path.join(LOG_DIR, f"site-{name}.log")
    cmd = ["ansible-playbook", "-i", os.path.join(CHAIN_DIR, "inventory.yml"), site,
           "-e", "site_summary_file=" + os.path.join(CHAIN_DIR, f"site-summary-{name}.json"),
           "-e", "site_timeline_file=" + timeline_path(name), *extra]
    t0 = time.monotonic()
    output = []
    with open(log, "w", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, cwd=REPO_DIR)
        assert proc.stdout is not None
        deadline = t0 + timeout
        for line in proc.stdout:
            fh.write(line)
            fh.flush()
            output.append(line)
            if line.startswith("PLAY [") and "RECAP" not in line:
                progress("  " + line.strip().strip("*").strip())
            if time.monotonic() > deadline:
                proc.kill()
        rc = proc.wait()
    text = "".join(output)
    result = {"name": name, "command": " ".join(cmd[:4] + extra), "rc": rc, "seconds": round(time.monotonic() - t0, 1),
              "recap": recap(text), "log": log}
    if rc != 0:
        failed = [line.strip() for line in output if line.startswith(("fatal:", "failed:")) or "FAILED!" in line][-3:]
        result["error"] = "\n".join(failed) or "\n".join(line.rstrip() for line in output[-15:])
    return result
