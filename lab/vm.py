"""Throwaway lab VMs: Debian 12 or 13 on q35 + OVMF + vIOMMU with a stand-in GPU.

  lab/vm up NAME --flavour FLAVOUR [--memory MIB] [--timeout SECONDS]
      Build the image if needed (lab/build-image), boot a qcow2 overlay of it,
      wait for SSH and print the connection facts as JSON (also written to
      .cache/lab/vms/NAME/connection.json). Re-running it for a running VM
      prints the same facts. FLAVOUR: grub or systemd-boot (Debian 12),
      trixie-systemd-boot (Debian 13), grub-worker (grub with ffmpeg).
  lab/vm down NAME          stop the VM and remove its overlay (a missing VM is fine);
                            the serial log moves to .cache/lab/logs/NAME.serial.log
  lab/vm ssh NAME -- CMD    run a command in the VM as root
  lab/vm info NAME          print the connection facts of a running VM
  lab/vm list               names of the VMs with state under .cache/lab/vms

The stand-in GPU is bochs-display (function 0, class 0380) plus intel-hda
(function 1, class 0403) behind one pcie-root-port: one IOMMU group.
KVM is used only when /proc/cpuinfo advertises vmx or svm, TCG otherwise.

A guest reboot is a cold restart: QEMU runs with -no-reboot under a small
supervisor (this script, detached) that starts it again with the same disk,
firmware variables and SSH port when QMP reports a guest reset. A warm reset
after Linux ran with the vIOMMU on can leave OVMF stuck before the boot menu.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

LAB_DIR = os.path.dirname(os.path.realpath(__file__))
REPO_DIR = os.path.dirname(LAB_DIR)
CACHE_DIR = os.environ.get("LAB_CACHE") or os.path.join(REPO_DIR, ".cache", "lab")
VMS_DIR = os.path.join(CACHE_DIR, "vms")
LOGS_DIR = os.path.join(CACHE_DIR, "logs")
KEY_FILE = os.path.join(CACHE_DIR, "ssh", "id_ed25519")
# The image flavours of lab/build-image (its FLAVOURS): [<suite>-]<boot loader>[-worker], bookworm unprefixed.
FLAVOURS = ("grub", "grub-worker", "systemd-boot", "trixie-systemd-boot")
USER = "root"
ADDRESS = "127.0.0.1"
OVMF_CANDIDATES = (
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
)
SSH_OPTIONS = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
]  # fmt: skip
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class LabError(Exception):
    """A failure with a message for the user."""


def log(msg: str) -> None:
    print(f"[vm] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------- pure logic
def cpu_virt_flags(cpuinfo: str) -> set[str]:
    """The hardware virtualisation flags (vmx, svm) in a /proc/cpuinfo text."""
    found: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            found.update({"vmx", "svm"} & set(value.split()))
    return found


def choose_accel(cpuinfo: str, kvm_usable: bool = True) -> str:
    """'kvm' when the CPU advertises vmx/svm and /dev/kvm is usable, else 'tcg'.

    /dev/kvm alone proves nothing: a paravirtual KVM module provides it without
    vmx/svm, and OVMF and Debian's kernel do not run under it.
    """
    return "kvm" if kvm_usable and cpu_virt_flags(cpuinfo) else "tcg"


def qemu_command(
    *,
    name: str,
    accel: str,
    memory_mib: int,
    ovmf_code: str,
    ovmf_vars: str,
    disk: str,
    port: int,
    serial_log: str,
    qmp_socket: str,
    pidfile: str,
) -> list[str]:
    """The QEMU command line for one lab VM."""
    if accel == "kvm":
        machine = ["-machine", "q35,kernel-irqchip=split", "-accel", "kvm", "-cpu", "host"]
    else:
        machine = ["-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max"]
    return [
        "qemu-system-x86_64",
        "-name", f"lab-{name}",
        "-nodefaults",
        *machine,
        "-smp", "2",
        "-m", str(memory_mib),
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={ovmf_code}",
        "-drive", f"if=pflash,format=raw,unit=1,file={ovmf_vars}",
        "-device", "intel-iommu,intremap=on,caching-mode=on",
        # The stand-in GPU: display at function 0, audio at function 1, one group.
        "-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
        "-device", "bochs-display,bus=rp1,addr=0.0,multifunction=on",
        "-device", "intel-hda,bus=rp1,addr=0.1",
        "-drive", f"file={disk},if=none,id=disk0,format=qcow2,cache=unsafe,discard=unmap",
        "-device", "virtio-blk-pci,drive=disk0,bootindex=1",
        "-netdev", f"user,id=net0,hostfwd=tcp:{ADDRESS}:{port}-:22",
        "-device", "virtio-net-pci,netdev=net0,romfile=",
        "-device", "virtio-rng-pci",
        "-display", "none",
        "-chardev", f"file,id=serial0,path={serial_log},append=on",
        "-serial", "chardev:serial0",
        "-qmp", f"unix:{qmp_socket},server=on,wait=off",
        "-pidfile", pidfile,
        "-no-reboot",
    ]  # fmt: skip


# ------------------------------------------------------------------- helpers
def vm_dir(name: str) -> str:
    if not NAME_RE.match(name):
        raise LabError(f"bad VM name {name!r}: use letters, digits, '.', '_' and '-'")
    return os.path.join(VMS_DIR, name)


@contextlib.contextmanager
def locked(name: str):
    os.makedirs(VMS_DIR, exist_ok=True)
    with open(os.path.join(VMS_DIR, f".{name}.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def read_json(path: str) -> dict | None:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _pid_from(pidfile: str, *markers: bytes) -> int | None:
    """The pid in pidfile if that process is alive and its command line holds every marker."""
    try:
        with open(pidfile) as fh:
            pid = int(fh.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except (OSError, ValueError):
        return None
    return pid if all(m in cmdline for m in markers) else None


def qemu_pid(directory: str) -> int | None:
    """The pid of this VM's QEMU if it is alive (and really is this VM's QEMU)."""
    return _pid_from(os.path.join(directory, "qemu.pid"), os.path.join(directory, "disk.qcow2").encode())


def supervisor_pid(directory: str) -> int | None:
    """The pid of this VM's supervisor if it is alive."""
    name = os.path.basename(directory).encode()
    return _pid_from(os.path.join(directory, "supervisor.pid"), b"_supervise", name)


def alive(directory: str) -> bool:
    return supervisor_pid(directory) is not None or qemu_pid(directory) is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


def ovmf_files() -> tuple[str, str]:
    code, vars_ = os.environ.get("LAB_OVMF_CODE"), os.environ.get("LAB_OVMF_VARS")
    if code and vars_:
        return code, vars_
    for code, vars_ in OVMF_CANDIDATES:
        if os.path.exists(code) and os.path.exists(vars_):
            return code, vars_
    raise LabError("OVMF firmware not found (Debian package ovmf; tools/setup.sh --test installs it)")


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def pick_accel() -> str:
    forced = os.environ.get("LAB_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    try:
        with open("/proc/cpuinfo") as fh:
            cpuinfo = fh.read()
    except OSError:
        cpuinfo = ""
    return choose_accel(cpuinfo, kvm_usable())


def ssh_base(port: int) -> list[str]:
    return ["ssh", *SSH_OPTIONS, "-i", KEY_FILE, "-p", str(port), f"{USER}@{ADDRESS}"]


def ssh_ready(port: int) -> bool:
    cmd = ["ssh", *SSH_OPTIONS, "-o", "ConnectTimeout=5", "-i", KEY_FILE, "-p", str(port), f"{USER}@{ADDRESS}", "true"]
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return "(no serial log)"


def stop(directory: str) -> bool:
    """Stop this VM's supervisor and QEMU; True if either was running."""
    pids = [pid for pid in (qemu_pid(directory), supervisor_pid(directory)) if pid is not None]
    if not pids:
        return False
    with contextlib.suppress(OSError):
        open(os.path.join(directory, "stop"), "w").close()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and alive(directory):
        time.sleep(0.2)
    for pid in (qemu_pid(directory), supervisor_pid(directory)):
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    return True


def follow_qmp(sock_path: str, proc: subprocess.Popen) -> str | None:
    """Follow QEMU's QMP events until it exits; the reason of its last SHUTDOWN event."""
    sock = None
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        candidate = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            candidate.connect(sock_path)
        except OSError:
            candidate.close()
            time.sleep(0.2)
            continue
        sock = candidate
        break
    if sock is None:
        return None
    reason = None
    with sock, sock.makefile("rw") as fh:
        fh.readline()  # greeting
        fh.write('{"execute": "qmp_capabilities"}\n')
        fh.flush()
        for line in fh:
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if msg.get("event") == "SHUTDOWN":
                    reason = msg.get("data", {}).get("reason")
    return reason


def build_image(flavour: str) -> str:
    proc = subprocess.run([os.path.join(LAB_DIR, "build-image"), "--flavour", flavour], stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"lab/build-image --flavour {flavour} failed (exit {proc.returncode})")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines or not os.path.exists(lines[-1]):
        raise LabError("lab/build-image printed no image path")
    return lines[-1]


# ------------------------------------------------------------------ commands
def cmd_up(args: argparse.Namespace) -> int:
    directory = vm_dir(args.name)
    with locked(args.name):
        facts = read_json(os.path.join(directory, "connection.json"))
        if alive(directory) and facts:
            if facts.get("flavour") != args.flavour:
                raise LabError(f"VM {args.name} runs flavour {facts.get('flavour')}; 'lab/vm down {args.name}' first")
            if ssh_ready(facts["port"]):
                log(f"{args.name} already running on port {facts['port']}")
                print(json.dumps(facts, indent=2))
                return 0
            log(f"{args.name} is running but SSH does not answer: restarting it")
        stop(directory)
        shutil.rmtree(directory, ignore_errors=True)

        image = build_image(args.flavour)
        os.makedirs(directory)
        disk = os.path.join(directory, "disk.qcow2")
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", os.path.realpath(image), disk],
            check=True,
        )
        code, vars_template = ovmf_files()
        ovmf_vars = os.path.join(directory, "OVMF_VARS.fd")
        shutil.copyfile(vars_template, ovmf_vars)
        accel = pick_accel()
        serial_log = os.path.join(directory, "serial.log")
        started = time.monotonic()
        port = 0
        supervisor = None
        for attempt in range(5):
            port = free_port()
            cmd = qemu_command(
                name=args.name,
                accel=accel,
                memory_mib=args.memory,
                ovmf_code=code,
                ovmf_vars=ovmf_vars,
                disk=disk,
                port=port,
                serial_log=serial_log,
                qmp_socket=os.path.join(directory, "qmp.sock"),
                pidfile=os.path.join(directory, "qemu.pid"),
            )
            with open(os.path.join(directory, "qemu.json"), "w") as fh:
                json.dump({"cmd": cmd}, fh)
            with open(os.path.join(directory, "qemu.cmdline"), "w") as fh:
                fh.write(" ".join(cmd) + "\n")
            supervisor = subprocess.Popen(
                [sys.executable, os.path.realpath(__file__), "_supervise", args.name],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            # Up once QEMU has run for a moment; a supervisor that ends this early means QEMU failed.
            t0 = time.monotonic()
            while supervisor.poll() is None and not (qemu_pid(directory) and time.monotonic() - t0 > 2):
                time.sleep(0.2)
            if supervisor.poll() is None:
                break
            err = tail(os.path.join(directory, "supervisor.log"), 10)
            if "hostfwd" in err or "forwarding" in err:
                log(f"port {port} taken, retrying ({attempt + 1}/5)")
                continue
            raise LabError(f"qemu failed to start:\n{err}")
        else:
            raise LabError("qemu could not forward an SSH port")
        log(f"{args.name}: qemu ({accel}) started, SSH on {ADDRESS}:{port}; waiting for SSH")

        deadline = started + args.timeout
        while True:
            if not alive(directory):
                raise LabError(f"qemu of {args.name} exited during boot; serial log:\n{tail(serial_log)}")
            if ssh_ready(port):
                break
            if time.monotonic() > deadline:
                stop(directory)
                raise LabError(f"no SSH from {args.name} within {args.timeout} s; serial log:\n{tail(serial_log)}")
            time.sleep(2)
        boot_seconds = round(time.monotonic() - started, 1)
        facts = {
            "instance": args.name,
            "flavour": args.flavour,
            "address": ADDRESS,
            "port": port,
            "user": USER,
            "identity_file": KEY_FILE,
            "accel": accel,
            "pid": supervisor.pid,
            "image": os.path.realpath(image),
            "serial_log": serial_log,
            "boot_seconds": boot_seconds,
        }
        with open(os.path.join(directory, "connection.json"), "w") as fh:
            json.dump(facts, fh, indent=2)
            fh.write("\n")
        log(f"{args.name}: SSH up after {boot_seconds} s")
        print(json.dumps(facts, indent=2))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    directory = vm_dir(args.name)
    with locked(args.name):
        was_running = stop(directory)
        existed = os.path.isdir(directory)
        # Keep the serial console of the last run for post-mortems.
        serial_log = os.path.join(directory, "serial.log")
        if os.path.exists(serial_log):
            os.makedirs(LOGS_DIR, exist_ok=True)
            shutil.move(serial_log, os.path.join(LOGS_DIR, f"{args.name}.serial.log"))
        shutil.rmtree(directory, ignore_errors=True)
    log(f"{args.name}: {'stopped and removed' if was_running else 'removed' if existed else 'not present'}")
    return 0


def running_facts(name: str) -> dict:
    directory = vm_dir(name)
    facts = read_json(os.path.join(directory, "connection.json"))
    if not facts or not alive(directory):
        raise LabError(f"VM {name} is not running (lab/vm up {name} --flavour ...)")
    return facts


def cmd_ssh(args: argparse.Namespace) -> int:
    facts = running_facts(args.name)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    cmd = ssh_base(facts["port"])
    if not command:
        cmd.insert(1, "-t")
    os.execvp("ssh", [*cmd, *command])
    return 0  # not reached


def cmd_info(args: argparse.Namespace) -> int:
    print(json.dumps(running_facts(args.name), indent=2))
    return 0


def cmd_supervise(args: argparse.Namespace) -> int:
    """Run QEMU; start it again (a cold boot) each time the guest reboots."""
    directory = vm_dir(args.name)
    cmd = read_json(os.path.join(directory, "qemu.json"))["cmd"]
    stop_flag = os.path.join(directory, "stop")
    with open(os.path.join(directory, "supervisor.pid"), "w") as fh:
        fh.write(f"{os.getpid()}\n")
    current: list[subprocess.Popen] = []

    def on_term(_signum, _frame):
        with contextlib.suppress(OSError):
            open(stop_flag, "w").close()
        if current and current[0].poll() is None:
            current[0].terminate()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with open(os.path.join(directory, "supervisor.log"), "a", buffering=1) as out:
        boots = 0
        while True:
            boots += 1
            out.write(f"{time.strftime('%H:%M:%S')} boot {boots}: starting qemu\n")
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, "qmp.sock"))
            current[:] = [subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)]
            reason = follow_qmp(os.path.join(directory, "qmp.sock"), current[0])
            rc = current[0].wait()
            out.write(f"{time.strftime('%H:%M:%S')} qemu exited (rc {rc}, shutdown reason {reason})\n")
            if os.path.exists(stop_flag) or reason != "guest-reset":
                return rc
            out.write(f"{time.strftime('%H:%M:%S')} guest rebooted: cold restart\n")


def cmd_list(_args: argparse.Namespace) -> int:
    if os.path.isdir(VMS_DIR):
        for name in sorted(os.listdir(VMS_DIR)):
            directory = os.path.join(VMS_DIR, name)
            if os.path.isdir(directory):
                state = "running" if alive(directory) else "stopped"
                print(f"{name}\t{state}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab/vm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command_name", required=True)
    up = sub.add_parser("up", help="boot a VM and wait for SSH")
    up.add_argument("name")
    up.add_argument("--flavour", choices=FLAVOURS, required=True)
    up.add_argument("--memory", type=int, default=2048, help="MiB (default 2048)")
    up.add_argument("--timeout", type=int, default=int(os.environ.get("LAB_BOOT_TIMEOUT", "300")), help="seconds to wait for SSH")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop a VM and remove its overlay")
    down.add_argument("name")
    down.set_defaults(func=cmd_down)
    ssh = sub.add_parser("ssh", help="run a command in a VM")
    ssh.add_argument("name")
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    ssh.set_defaults(func=cmd_ssh)
    info = sub.add_parser("info", help="connection facts of a running VM")
    info.add_argument("name")
    info.set_defaults(func=cmd_info)
    lst = sub.add_parser("list", help="VMs with state on disk")
    lst.set_defaults(func=cmd_list)
    sup = sub.add_parser("_supervise")
    sup.add_argument("name")
    sup.set_defaults(func=cmd_supervise)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except LabError as exc:
        print(f"lab/vm: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"lab/vm: {' '.join(map(str, exc.cmd))} failed (exit {exc.returncode})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
