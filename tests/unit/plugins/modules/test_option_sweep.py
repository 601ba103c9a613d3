# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module's options checked before anything is done: each number option outside its range and each string
option given an empty string, run through the module's main() against the Proxmox API simulator (whose counters show
that not one request arrived) and a temporary tree (which shows that no file changed).

The cases are read from the modules themselves, so an option added later is swept too; its documentation must say
what the check does."""

import importlib
import os
import sys
from unittest import mock

import pytest
import yaml

pytest.importorskip("proxmoxer")

_TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks  # noqa: E402
from ansible_collections.homelab.gpu_passthrough.tests.unit.plugins.modules.module_runner import run_module  # noqa: E402
from pvesim.fixture import running_simulator  # noqa: E402

MODULES_DIR = os.path.join(os.path.dirname(_TESTS), "plugins", "modules")
MODULES = sorted(name[:-3] for name in os.listdir(MODULES_DIR) if name.endswith(".py") and not name.startswith("_"))
PVE_MODULES = [name for name in MODULES if name.startswith("pve_")]
REFUSED_TEXT = "An empty string is refused"
DEFAULT_TEXT = "An empty string means the same as leaving the option out"


def module_of(name):
    return importlib.import_module("ansible_collections.homelab.gpu_passthrough.plugins.modules." + name)


class _Declared(Exception):
    pass


def declarations(name):
    """``(argument_spec, ranges, empty_means_default)`` the module hands to ``checked_module``."""
    seen = {}

    def record(argument_spec, ranges=None, empty_means_default=(), expects=None, **_kwargs):
        seen.update(spec=argument_spec, ranges=dict(ranges or {}), empty=tuple(empty_means_default))
        raise _Declared()

    with patch_module_args({}), mock.patch.object(option_checks, "checked_module", record), pytest.raises(_Declared):
        module_of(name).main()
    return seen["spec"], seen["ranges"], seen["empty"]


def walk(spec, prefix=""):
    """``(dotted name, spec)`` of every option and suboption."""
    for key, value in spec.items():
        yield prefix + key, value
        if value.get("options"):
            yield from walk(value["options"], prefix + key + ".")


def number_cases():
    cases = []
    for name in MODULES:
        spec, ranges, _empty = declarations(name)
        for option, value in walk(spec):
            if value.get("type") in option_checks.NUMBER_TYPES:
                rule = ranges[option]
                bad = {rule.outside()} | ({rule.minimum - 1000} if rule.minimum is not None else set())
                bad |= {rule.maximum + 1, rule.maximum * 10} if rule.maximum is not None else set()
                cases += [pytest.param(name, option, v, id="%s-%s=%s" % (name, option, v)) for v in sorted(bad)]
    return cases


def string_cases():
    cases = []
    for name in MODULES:
        spec, _ranges, empty = declarations(name)
        for option, value in walk(spec):
            kind, elements = value.get("type", "str"), value.get("elements")
            if kind in option_checks.STRING_TYPES:
                how = "default" if option in empty else "refused"
                cases.append(pytest.param(name, option, "", how, id="%s-%s-%s" % (name, option, how)))
            elif kind == "list" and elements in option_checks.STRING_TYPES:
                cases.append(pytest.param(name, option, [""], "refused", id="%s-%s-item" % (name, option)))
    return cases


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running_simulator(tmp_path_factory.mktemp("pvesim"), task_duration=0.02) as handle:
        def add_vm(data):
            data["vms"]["120"] = {"node": "pve1", "status": "running", "pending": {},
                                  "config": {"name": "k3s-agent-1", "memory": "4096", "cores": "2", "vmgenid": "1",
                                             "scsi0": "local-lvm:vm-120-disk-0,size=32G"}}
        handle.update(add_vm)
        yield handle


@pytest.fixture
def host(tmp_path):
    """A host tree the file modules read: os-release, sources, GRUB default file, an empty sysfs and /dev/dri."""
    root = tmp_path / "host"
    for directory in ("etc/default", "etc/apt/sources.list.d", "etc/modprobe.d", "sys/bus/pci/devices", "sys/kernel/iommu_groups",
                      "proc", "dev/dri", "boot/grub"):
        (root / directory).mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n")
    (root / "etc/apt/sources.list").write_text("deb http://deb.debian.org/debian bookworm main\n")
    (root / "etc/default/grub").write_text('GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n')
    (root / "proc/cmdline").write_text("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet\n")
    ffmpeg = tmp_path / "ffmpeg"
    ffmpeg.write_text("#!/bin/sh\ntouch %s/ffmpeg-ran\nexit 1\n" % tmp_path)
    ffmpeg.chmod(0o755)
    return root


def auth(sim, token=False):
    base = {"api_host": "127.0.0.1", "api_port": sim.port, "ca_path": sim.ca_path}
    if token:
        secret = sim.data["access"]["users"]["automation@pve"]["tokens"]["ansible"]["secret"]
        return dict(base, api_user="automation@pve", api_token_id="ansible", api_token_secret=secret)
    return dict(base, api_user="root@pam", api_password="rootpass")


# the required options of each module and an item of each list of dicts, so that only the swept option is wrong
def base_args(name, sim, root, option=None):
    tmp = os.path.dirname(str(root))
    token = option in ("api_token_id", "api_token_secret")
    pve = auth(sim, token=token)
    return {
        "apt_components": {"root": str(root)},
        "boot_entry_info": {"root": str(root)},
        "iommu_facts": {"root": str(root)},
        "kernel_cmdline": {"root": str(root), "present": {"intel_iommu": "on"}},
        "pve_cluster_info": pve,
        # host and mapping are mutually exclusive: sweeping one, the other is left out
        "pve_hostpci": dict(pve, vmid=120, node="pve1", **({} if option in ("host", "mapping") else {"host": "0000:00:02.0"})),
        "pve_pci_mapping": dict(pve, name="igpu", devices=[{"node": "pve1", "path": "0000:00:02.0"}]),
        "pve_vm_info": dict(pve, vmid=120),
        "pve_vm_power": dict(pve, vmid=120),
        "pve_vm_q35": dict(pve, vmid=120, hostpci=[{"host": "0000:00:02.0"}]),
        "transcode_probe": {"ffmpeg_path": os.path.join(tmp, "ffmpeg"), "scenarios": ["h264_1080p"], "paths": ["cpu"]},
        "vainfo_facts": {"dri_dir": str(root / "dev/dri"), "sysfs_dir": str(root / "sys")},
        "vfio_bind": {"root": str(root), "devices": ["0000:00:02.0"]},
    }[name]


def with_value(args, option, value):
    """``args`` with ``option`` (``hostpci.slot`` sets it in the first item) set to ``value``."""
    args = dict(args)
    if "." in option:
        parent, child = option.split(".", 1)
        items = [dict(item) for item in args.get(parent) or [{}]]
        items[0][child] = value
        args[parent] = items
    else:
        args[option] = value
    return args


def tree(root):
    found = {}
    for directory, dirs, files in os.walk(str(root)):
        for entry in dirs + files:
            path = os.path.join(directory, entry)
            if os.path.isdir(path):
                found[path] = None
                continue
            with open(path, "rb") as handle:
                found[path] = handle.read()
    return found


def assert_refused_untouched(capsys, sim, root, name, args, shown):
    """Run the module; it must fail naming ``shown``, with no request to the simulator and no file changed."""
    before = tree(os.path.dirname(str(root)))
    sim.reset_counters()
    result = run_module(capsys, module_of(name).main, args)
    assert result.get("failed") is True, result
    assert shown in result["msg"], result["msg"]
    counters = sim.counters()
    assert counters["reads"] == 0 and counters["writes"] == 0, counters["endpoints"]
    assert tree(os.path.dirname(str(root))) == before
    return result


# ------------------------------------------------------------------------------------------------ number options


def test_every_number_option_of_every_module_is_swept():
    swept = {(p.values[0], p.values[1]) for p in number_cases()}
    assert {("pve_vm_power", "shutdown_timeout"), ("pve_vm_q35", "hostpci.slot"), ("pve_hostpci", "slot"),
            ("pve_cluster_info", "api_port"), ("transcode_probe", "frames")} <= swept
    assert {name for name, _option in swept} >= set(PVE_MODULES) | {"transcode_probe"}


@pytest.mark.parametrize(("name", "option", "value"), number_cases())
def test_number_out_of_range_is_refused_before_anything(capsys, sim, host, name, option, value):
    args = with_value(base_args(name, sim, host), option, value)
    shown = option.replace(".", "[0].") if "." in option else option
    result = assert_refused_untouched(capsys, sim, host, name, args, "%s=%r" % (shown, value))
    assert "out of range" in result["msg"] and "Fix: set %s to a number" % shown in result["msg"]
    assert result["option"] == shown and result["value"] == value and result["link"] == "input"
    assert not os.path.exists(os.path.join(os.path.dirname(str(host)), "ffmpeg-ran"))


def test_negative_shutdown_timeout_never_reaches_the_vm(capsys, sim, host):
    for name in ("pve_vm_power", "pve_vm_q35", "pve_hostpci"):
        args = dict(base_args(name, sim, host), shutdown_timeout=-30, **({"state": "stopped"} if name == "pve_vm_power" else {}))
        result = assert_refused_untouched(capsys, sim, host, name, args, "shutdown_timeout=-30")
        assert "at least 0" in result["msg"]
    assert sim.vm(120)["status"] == "running"


def test_a_shutdown_timeout_of_0_is_valid_and_stops_the_guest(capsys, sim, host):
    # Proxmox VE accepts a shutdown timeout of 0: no grace, a guest still running is stopped hard
    args = dict(base_args("pve_vm_power", sim, host), shutdown_timeout=0, state="stopped")
    result = run_module(capsys, module_of("pve_vm_power").main, args)
    assert not result.get("failed"), result
    assert result["changed"] is True and sim.vm(120)["status"] == "stopped"


@pytest.mark.parametrize(("name", "option", "value"), [
    ("pve_vm_power", "shutdown_timeout", 0), ("pve_vm_info", "vmid", 120), ("pve_vm_info", "api_port", None),
    ("pve_vm_q35", "memory", 16), ("pve_vm_q35", "cores", 1), ("pve_vm_q35", "hostpci.slot", 15), ("pve_hostpci", "slot", 0),
])
def test_numbers_in_range_pass_the_check(capsys, sim, host, name, option, value):
    args = with_value(base_args(name, sim, host), option, value if value is not None else sim.port)
    result = run_module(capsys, module_of(name).main, args, check_mode=True)
    assert "out of range" not in result.get("msg", ""), result


# ------------------------------------------------------------------------------------------------ empty strings


def test_every_string_option_of_every_module_is_swept():
    swept = {(p.values[0], p.values[1]) for p in string_cases()}
    assert ("apt_components", "codename") in swept and ("pve_vm_q35", "hostpci.mapping") in swept
    assert {name for name, _option in swept} == set(MODULES)


@pytest.mark.parametrize(("name", "option", "value", "how"), string_cases())
def test_empty_string_is_refused_or_the_default(capsys, sim, host, name, option, value, how):
    args = with_value(base_args(name, sim, host, option), option, value)
    spec, _ranges, _empty = declarations(name)
    choices = dict(walk(spec))[option].get("choices")
    if how == "refused":
        shown = option.replace(".", "[0].") if "." in option else option
        result = assert_refused_untouched(capsys, sim, host, name, args, shown.split("[")[0] if choices else shown)
        if not choices:  # Ansible itself refuses a value outside the choices
            assert "empty string" in result["msg"] and "Fix:" in result["msg"] and result["option"].startswith(shown)
        return
    # means the default: the module goes on exactly as if the option had been left out
    left_out = dict(base_args(name, sim, host, option))
    left_out.pop(option, None)
    assert params_after_checks(name, args) == params_after_checks(name, left_out)


class _Checked(Exception):
    pass


def params_after_checks(name, args):
    """The params a module works with once ``checked_module`` passed them (the module itself does not run)."""
    real = option_checks.checked_module
    seen = {}

    def stop_after(*a, **kw):
        seen.update(real(*a, **kw).params)
        raise _Checked()

    with patch_module_args(args), mock.patch.object(option_checks, "checked_module", stop_after), pytest.raises(_Checked):
        module_of(name).main()
    return seen


# ------------------------------------------------------------------------------------------------ the documentation


def documented_options(name):
    """The options as Ansible documents them: the module's own with the collection's doc fragments merged in the
    way Ansible merges them (one level deep: an option the module documents too keeps the module's keys)."""
    doc = yaml.safe_load(module_of(name).DOCUMENTATION)
    options = dict(doc.get("options") or {})
    for slug in doc.get("extends_documentation_fragment") or []:
        if not slug.startswith("homelab.gpu_passthrough."):
            continue
        fragment, _dot, variable = slug[len("homelab.gpu_passthrough."):].partition(".")
        holder = importlib.import_module("ansible_collections.homelab.gpu_passthrough.plugins.doc_fragments." + fragment).ModuleDocFragment
        for key, value in yaml.safe_load(getattr(holder, (variable or "documentation").upper()))["options"].items():
            options[key] = dict(value, **options.get(key, {}))
    return options


def _description(options, dotted):
    parts = dotted.split(".")
    entry = options[parts[0]]
    for part in parts[1:]:
        entry = entry["suboptions"][part]
    text = entry["description"]
    return " ".join(text) if isinstance(text, list) else text


@pytest.mark.parametrize("name", MODULES)
def test_documentation_says_what_the_checks_do(name):
    spec, ranges, empty = declarations(name)
    options = documented_options(name)
    for option, value in walk(spec):
        text = _description(options, option)
        kind = value.get("type", "str")
        if kind in option_checks.NUMBER_TYPES:
            assert "Valid values are %s;" % ranges[option].text() in text, (option, text)
        elif kind in option_checks.STRING_TYPES and not value.get("choices") and value.get("default") != "":
            assert (DEFAULT_TEXT if option in empty else REFUSED_TEXT) in text, (option, text)
            assert (REFUSED_TEXT if option in empty else DEFAULT_TEXT) not in text, (option, text)


# ------------------------------------------------------------------------------------------------ ACL propagate bit


def scoped_token(data):
    """scoped@pve holds PVEVMUser on /vms/120 only, from an entry with propagate off; its token likewise (privsep)."""
    data["access"]["users"]["scoped@pve"] = {"password": "scopedpass", "enable": 1, "groups": [],
                                             "tokens": {"ansible": {"secret": "scoped-secret", "privsep": 1}}}
    data["access"]["acl"].append({"path": "/vms/120", "ugid": "scoped@pve", "roleid": "PVEVMUser", "propagate": 0})
    data["access"]["acl"].append({"path": "/vms/120", "ugid": "scoped@pve!ansible", "roleid": "PVEVMUser", "propagate": 0})


def test_token_granted_by_an_entry_without_propagate_runs_the_modules(capsys, tmp_path):
    with running_simulator(tmp_path / "pve", task_duration=0.02) as sim:
        sim.update(lambda data: data["vms"].__setitem__("120", {
            "node": "pve1", "status": "running", "pending": {},
            "config": {"name": "k3s-agent-1", "memory": "4096", "cores": "2", "vmgenid": "1", "machine": "q35", "bios": "ovmf",
                       "efidisk0": "local-lvm:vm-120-disk-1,efitype=4m,size=4M", "scsi0": "local-lvm:vm-120-disk-0,size=32G"}}))
        sim.update(scoped_token)
        scoped = {"api_host": "127.0.0.1", "api_port": sim.port, "ca_path": sim.ca_path, "api_user": "scoped@pve",
                  "api_token_id": "ansible", "api_token_secret": "scoped-secret"}
        info = run_module(capsys, module_of("pve_vm_info").main, dict(scoped, vmid=120, node="pve1"))
        assert info.get("failed") is not True and info["vm"]["status"] == "running", info
        stopped = run_module(capsys, module_of("pve_vm_power").main, dict(scoped, vmid=120, node="pve1", state="stopped", shutdown_timeout=5))
        assert stopped.get("failed") is not True and stopped["changed"] is True and stopped["status"] == "stopped", stopped
        assert sim.vm(120)["status"] == "stopped"
        # a privilege the entry does not give is still refused, before anything is written
        sim.reset_counters()
        refused = run_module(capsys, module_of("pve_vm_q35").main, dict(scoped, vmid=120, node="pve1", machine="q35,viommu=intel"))
        assert refused.get("failed") is True, refused
        assert "lacks" in refused["msg"] and "VM.Config" in refused["msg"] and "/vms/120" in refused["msg"]
        assert sim.counters()["writes_without_auth"] == 0
