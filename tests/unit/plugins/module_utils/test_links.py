"""links: the chain's vocabulary, the stage selection by tags and the site.yml summary rows."""

import ast
import copy
import os

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import links
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import verdict as guest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host import diagnosis, pci
from test_diagnosis import CASES, GPU, HEALTHY, NO_IOMMU, _change, _set_driver
from test_guest import FIXTURES as VAINFO_FIXTURES
from test_guest import _facts as _vainfo_facts
from test_guest import _gpu_facts
from test_pci import LISTINGS, root_for

AGENT = "k3s-agent-1"

VM_OK = {"ok": True, "vmid": 120, "node": "pve-1", "machine": "q35", "bios": "ovmf",
         "efidisk0": "local-lvm:vm-120-disk-1,efitype=4m", "hostpci": {"hostpci0": "0000:00:02.0,pcie=1"},
         "hostpci_wanted": {"hostpci0": "0000:00:02.0,pcie=1"}, "pending": [], "plan": []}
WORKER_OK = {"ok": True, "link": None, "message": "iHD 24.1: H.264 and HEVC encode", "render_nodes": ["/dev/dri/renderD128"],
             "fix": None, "labels": {"gpu.intel.com/present": "true", "gpu.intel.com/hevc": "true"},
             "label_notes": [], "labels_changed": False}


def test_the_links_in_chain_order():
    assert links.IDS == ("firmware", "cmdline", "group", "binding", "proxmox_node", "vm_config", "drain",
                         "guest_driver", "labels")
    assert len({link.title for link in links.LINKS}) == len(links.LINKS)
    # the places beside the chain are link ids too, each once, with a title of its own
    assert len(set(links.ALL_IDS)) == len(links.ALL_IDS) and set(links.IDS) < set(links.ALL_IDS)
    assert len({links.title(link_id) for link_id in links.ALL_IDS}) == len(links.ALL_IDS)
    # every part of the diagnosis belongs to one host link, and every diagnosed link has a part
    assert {link for _part, _title, link in diagnosis.PARTS} == set(links.DIAGNOSED) <= set(links.IDS)


def test_unknown_link_is_refused():
    with pytest.raises(ValueError, match="unknown link 'iommu'.*firmware, cmdline.*input, file, bootloader"):
        links.title("iommu")
    # a title is for display, never an id
    with pytest.raises(ValueError, match="unknown link 'VM config'"):
        links.check("VM config")
    with pytest.raises(ValueError, match="unknown link 'bios'"):
        raise PassthroughError("the firmware has no IOMMU", link="bios")
    for link_id in links.ALL_IDS:
        assert PassthroughError("broken", link=link_id).to_result()["link"] == link_id


@pytest.mark.parametrize(("run", "skip", "expected"), [
    (["all"], [], {"host": True, "vm": True, "guest": True}),
    ([], [], {"host": True, "vm": True, "guest": True}),
    (["host"], [], {"host": True, "vm": False, "guest": False}),
    (["cmdline"], [], {"host": True, "vm": False, "guest": False}),
    (["reboot", "gpu_vm_drain"], [], {"host": True, "vm": True, "guest": False}),
    (["labels"], [], {"host": False, "vm": False, "guest": True}),
    (["gpu_worker_labels"], [], {"host": False, "vm": False, "guest": True}),
    (["all"], ["host"], {"host": False, "vm": True, "guest": True}),
    (["all"], ["labels"], {"host": True, "vm": True, "guest": False}),
    (["vm"], ["vm"], {"host": False, "vm": False, "guest": False}),
    (["summary_only"], [], {"host": False, "vm": False, "guest": False}),
])
def test_selected_stages(run, skip, expected):
    assert links.selected_stages(run, skip) == expected


@pytest.mark.parametrize(("value", "default", "expected"), [
    (None, True, True), (None, False, False), ("false", True, False), ("yes", False, True), ("True", False, True),
    (1, False, True), (0, True, False), ("0", True, False), (False, True, False),
])
def test_to_bool_reads_inventory_strings(value, default, expected):
    assert links.to_bool(value, default) is expected


def test_healthy_host_gives_four_ok_rows():
    rows = links.host_rows("pve-1", diagnosis.diagnose(copy.deepcopy(HEALTHY)))
    assert [(r["id"], r["link"], r["status"]) for r in rows] == [
        ("firmware", "BIOS/IOMMU", "ok"), ("cmdline", "cmdline", "ok"), ("group", "group", "ok"), ("binding", "binding", "ok")]
    assert all(r["fix"] is None and r["host"] == "pve-1" for r in rows)
    # firmware and IOMMU-on are one row: both details, in order
    parts = {p["part"]: p for p in diagnosis.diagnose(copy.deepcopy(HEALTHY))}
    assert rows[0]["detail"] == parts["firmware"]["detail"] + "; " + parts["iommu"]["detail"]


def test_pending_reboot_and_failure():
    facts = _set_driver(_change(HEALTHY, cmdline=["quiet"], passthrough_mode=False), GPU, "i915")
    rows = {r["id"]: r for r in links.host_rows("pve-1", diagnosis.diagnose(facts, reboot_pending=True))}
    assert rows["cmdline"]["status"] == "pending" and rows["binding"]["status"] == "pending"
    assert rows["cmdline"]["fix"]
    rows = {r["id"]: r for r in links.host_rows("pve-1", diagnosis.diagnose(facts))}
    assert rows["cmdline"]["status"] == "FAIL" and rows["binding"]["status"] == "FAIL"
    assert rows["firmware"]["status"] == "ok"
    # a row mixing a pending and a plain failure is a failure
    rows = {r["id"]: r for r in links.host_rows("pve-1", diagnosis.diagnose(copy.deepcopy(NO_IOMMU), reboot_pending=True))}
    assert rows["firmware"]["status"] == "FAIL"


@pytest.mark.parametrize(("selected", "status"), [(True, "FAIL"), (False, "skip")])
def test_host_not_reached(selected, status):
    rows = links.host_rows("pve-2", None, selected)
    assert [r["status"] for r in rows] == [status] * 4
    if selected:
        assert rows[0]["fix"] == "ansible-playbook playbooks/proxmox_gpu_prep.yml --limit pve-2"
        assert "did not reach this host" in rows[0]["detail"]
    else:
        assert rows[0]["fix"] is None and rows[0]["detail"] == "host link not selected (--tags/--skip-tags)"


def test_vm_row():
    row = links.vm_row(AGENT, VM_OK)
    assert row["status"] == "ok" and row["fix"] is None
    assert row["detail"] == ("VM 120 on pve-1: machine q35, bios ovmf, efidisk0 present, hostpci0=0000:00:02.0,pcie=1")
    todo = dict(VM_OK, ok="False", efidisk0=None, hostpci={}, plan=["set_machine", "add_efidisk"], pending=["machine"],
                hostpci_wanted={"hostpci0": "mapping=igpu,pcie=1"})
    row = links.vm_row(AGENT, todo)
    assert row["status"] == "FAIL"
    assert row["detail"].endswith("efidisk0 missing, no hostpciN; still to do: set_machine, add_efidisk; "
                                  "pending until a restart: machine")
    assert row["fix"] == "ansible-playbook playbooks/gpu_vm.yml --limit k3s-agent-1 (wanted: mapping=igpu,pcie=1)"
    assert links.vm_row(AGENT, None, selected=False)["status"] == "skip"
    assert links.vm_row(AGENT, None)["detail"] == "gpu_vm did not get through for this VM (see the errors above)"


def test_guest_rows():
    driver, label = links.guest_rows(AGENT, WORKER_OK, node_name="agent-1")
    assert driver["status"] == "ok" and driver["detail"] == "iHD 24.1: H.264 and HEVC encode; render nodes: /dev/dri/renderD128"
    assert label == {"id": "labels", "host": AGENT, "link": "label", "status": "ok", "fix": None,
                     "detail": "node agent-1: gpu.intel.com/present=true, gpu.intel.com/hevc=true"}
    broken = dict(WORKER_OK, ok=False, link="vm_config", message="no render node", render_nodes=[], fix="pass the GPU",
                  labels={}, label_notes=["node k3s-agent-1 not found in the cluster"])
    driver, label = links.guest_rows(AGENT, broken)
    assert driver["detail"] == "[VM config] no render node; render nodes: none" and driver["fix"] == "pass the GPU"
    assert label["status"] == "FAIL" and "kubernetes_node_name" in label["fix"]
    assert label["detail"] == "node k3s-agent-1: no labels (node k3s-agent-1 not found in the cluster)"
    assert links.guest_rows(AGENT, WORKER_OK, label_node="false")[1]["status"] == "skip"
    unlabelled = {k: v for k, v in WORKER_OK.items() if k != "labels_changed"}
    assert links.guest_rows(AGENT, unlabelled)[1]["fix"].endswith("--tags gpu_worker_labels --limit k3s-agent-1")
    assert [r["status"] for r in links.guest_rows(AGENT, None)] == ["FAIL", "FAIL"]
    assert [r["status"] for r in links.guest_rows(AGENT, None, selected=False)] == ["skip", "skip"]


def test_chain_summary_order_and_selection():
    rows = links.chain_summary(
        [{"name": "pve-1", "diagnosis": diagnosis.diagnose(copy.deepcopy(HEALTHY))}, {"name": "pve-2", "diagnosis": None}],
        [{"name": AGENT, "vm_report": VM_OK, "worker_report": None}],
        {"host": True, "vm": True, "guest": False})
    assert [(r["host"], r["id"], r["status"]) for r in rows] == [
        ("pve-1", "firmware", "ok"), ("pve-1", "cmdline", "ok"), ("pve-1", "group", "ok"), ("pve-1", "binding", "ok"),
        ("pve-2", "firmware", "FAIL"), ("pve-2", "cmdline", "FAIL"), ("pve-2", "group", "FAIL"), ("pve-2", "binding", "FAIL"),
        (AGENT, "vm_config", "ok"), (AGENT, "guest_driver", "skip"), (AGENT, "labels", "skip")]
    assert all(set(r) == {"id", "host", "link", "status", "detail", "fix"} for r in rows)


def test_summary_lines():
    rows = [links._row("pve-1", "cmdline", "ok", "live"), links._row(AGENT, "vm_config", "FAIL", "VM 120", "run gpu_vm")]
    assert links.summary_lines(rows) == [
        "pve-1        ok      cmdline       live",
        "k3s-agent-1  FAIL    VM config     VM 120 -- fix: run gpu_vm",
    ]
    assert links.summary_lines([links._row("a", "drain", "skip", "x")]) == ["a     skip    drain         x"]


# ------------------------------------------------------------------ every link a verdict or error carries is an id
def _guest_verdicts():
    """The guest verdict over every vainfo fixture, as the role asks and with any driver, alone and as a known GPU."""
    yield guest.diagnose(None)
    yield guest.diagnose({"render_nodes": ["/dev/dri/renderD128"], "results": {}, "hint": "install the `vainfo` package"})
    yield guest.diagnose({"render_nodes": [], "results": {}, "hint": "no render node: the VM has no GPU"})
    for name in sorted(os.listdir(VAINFO_FIXTURES)):
        yield guest.diagnose(_vainfo_facts(name))
        yield guest.diagnose(_vainfo_facts(name), driver_name=None, required=["av1_encode"])
        for pci_id in ("8086:3e92", "8086:5912", "8086:46a6"):
            yield guest.diagnose(_gpu_facts(name, pci_id), non_free=True)


def test_every_guest_verdict_names_a_link_id_and_shows_its_title():
    seen = set()
    for verdict in _guest_verdicts():
        for judged in [verdict] + list((verdict.get("nodes") or {}).values()):
            if judged["ok"]:
                assert judged["link"] is None
                continue
            seen.add(links.check(judged["link"]))
        if not verdict["ok"]:
            assert verdict["line"].startswith("FAIL %s: " % links.title(verdict["link"]))
    assert seen == {"vm_config", "guest_driver"}


def _host_diagnoses(tmp_path):
    for _name, facts, kwargs, _ok, _pending in CASES:
        yield diagnosis.diagnose(copy.deepcopy(facts), **kwargs)
    for name in sorted(LISTINGS):
        try:
            facts = pci.scan(root_for(tmp_path / name.replace("/", "_"), name), device="auto")
        except PassthroughError as exc:
            links.check(exc.link)
            continue
        yield diagnosis.diagnose(facts)
        yield diagnosis.diagnose(facts, reboot_pending=True)


def test_every_diagnosis_part_names_a_host_link(tmp_path):
    for parts in _host_diagnoses(tmp_path):
        assert {part["link"] for part in parts} == set(links.DIAGNOSED)
        # the summary's rows are the parts' links, shown by title
        rows = links.host_rows("pve-1", parts)
        assert [(row["id"], row["link"]) for row in rows] == [(lid, links.title(lid)) for lid in links.DIAGNOSED]


def _link_literals(path):
    """Every literal a source file gives a ``link``: keyword arguments, parameter defaults, links.check/title calls."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "link" and isinstance(keyword.value, ast.Constant):
                    yield keyword.value.value
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("check", "title") and node.args \
                    and isinstance(node.args[0], ast.Constant):
                yield node.args[0].value
        elif isinstance(node, ast.FunctionDef):
            named = node.args.args[len(node.args.args) - len(node.args.defaults):]
            for arg, default in zip(named, node.args.defaults):
                if arg.arg == "link" and isinstance(default, ast.Constant):
                    yield default.value


def test_every_link_the_code_pins_a_failure_on_is_an_id():
    plugins = os.path.dirname(os.path.dirname(os.path.abspath(links.__file__)))
    found = {}
    for top, _dirs, files in os.walk(plugins):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(top, name)
                for value in _link_literals(path):
                    found.setdefault(value, os.path.relpath(path, plugins))
    unknown = {value: where for value, where in found.items() if value not in links.ALL_IDS}
    assert not unknown, "link values that module_utils/links.py does not declare: %s" % unknown
    # the sweep reads the code: it finds the places beside the chain as well as chain links
    assert {"input", "file", "bootloader", "vm_config"} <= set(found)
