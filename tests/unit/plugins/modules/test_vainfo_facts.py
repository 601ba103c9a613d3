# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vainfo_facts end to end: main() with a tmp dri_dir and a fake vainfo that prints real fixtures.

The module only needs the render nodes' names (renderD*) and what os.stat says about them, so
plain files stand in for the device nodes. The fake vainfo is a shell script that picks a fixture
by its --device argument, writes libva's lines to stderr and the rest to stdout as the real tool
does, exits 1 on a failed run, and records its arguments and environment for the assertions.
"""

import json
import os
import stat

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.modules import vainfo_facts
from ansible_collections.homelab.gpu_passthrough.tests.unit.plugins.modules.module_runner import run_module

FIXTURE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "vainfo"))
with open(os.path.join(FIXTURE_DIR, "expected.json"), encoding="utf-8") as handle:
    EXPECTED = json.load(handle)

OK_FIXTURE = "ihd-23.1.1-nonfree-k3s-node-profile-indent-stripped.txt"
FREE_FIXTURE = "ihd-kabylake-hd630-proxmox-host-21.1.1-free.txt"
AST_FIXTURE = "fail-jellyfin-ffmpeg-aspeed-bmc-ast-driver.txt"
NOGPU_FIXTURE = "fail-vaGetDriverNames-failed-nvidia-host.txt"

FAKE_VAINFO = """#!/bin/sh
log="{log}"
dev=""
prev=""
for a in "$@"; do
  [ "$prev" = "--device" ] && dev="$a"
  prev="$a"
done
printf 'args=%s\\nLANG=%s\\nLC_ALL=%s\\nLIBVA_DRIVER_NAME=%s\\n' "$*" "$LANG" "$LC_ALL" "${{LIBVA_DRIVER_NAME-<unset>}}" >> "$log"
case "$(basename "$dev")" in
{cases}
  *) echo "Failed to open the given device!"; exit 1 ;;
esac
grep -E '^(libva |error:)' "$f" >&2
grep -vE '^(libva |error:)' "$f"
if grep -q 'failed with error code' "$f"; then exit 1; fi
exit 0
"""


def make_vainfo(directory, mapping, name="vainfo"):
    """A fake vainfo printing mapping[basename of --device]; returns (path, log path)."""
    log = os.path.join(str(directory), name + ".log")
    cases = "\n".join('  %s) f="%s" ;;' % (node, os.path.join(FIXTURE_DIR, fixture)) for node, fixture in mapping.items())
    path = os.path.join(str(directory), name)
    with open(path, "w") as handle:
        handle.write(FAKE_VAINFO.format(log=log, cases=cases))
    os.chmod(path, 0o755)
    return path, log


def make_dri(directory, nodes, mode=0o660):
    dri = os.path.join(str(directory), "dri")
    os.makedirs(dri)
    for node in nodes:
        path = os.path.join(dri, node)
        with open(path, "w"):
            pass
        os.chmod(path, mode)
    return dri


def run(capsys, args):
    return run_module(capsys, vainfo_facts.main, args)


def read_log(log):
    runs = []
    with open(log) as handle:
        current = {}
        for line in handle.read().splitlines():
            key, _sep, value = line.partition("=")
            current[key] = value
            if key == "LIBVA_DRIVER_NAME":
                runs.append(current)
                current = {}
    return runs


def test_probes_every_render_node_in_numeric_order(tmp_path, capsys):
    # card0 and by-path are not render nodes; renderD129 sorts after renderD128 and before renderD1000.
    dri = make_dri(tmp_path, ["card0", "renderD129", "renderD128", "renderD1000"])
    os.makedirs(os.path.join(dri, "by-path"))
    vainfo, log = make_vainfo(tmp_path, {"renderD128": OK_FIXTURE, "renderD129": AST_FIXTURE, "renderD1000": FREE_FIXTURE})

    out = run(capsys, {"dri_dir": dri, "vainfo_path": vainfo})
    print(json.dumps(out, indent=1, sort_keys=True)[:3000])

    assert out["changed"] is False
    facts = out["ansible_facts"]["vainfo"]
    nodes = [os.path.join(dri, n) for n in ("renderD128", "renderD129", "renderD1000")]
    assert facts["render_nodes"] == nodes
    assert sorted(facts["devices"]) == sorted(nodes)
    assert sorted(facts["results"]) == sorted(nodes)

    ok = facts["results"][nodes[0]]
    want = EXPECTED[OK_FIXTURE]
    assert ok["status"] == "ok"
    assert ok["driver"] == want["driver_string"]
    assert ok["driver_name"] == want["driver_name"]
    assert ok["profiles"] == want["profiles"]
    # stderr and stdout both reach the parser
    assert ok["libva_info_version"] == want["libva_info_version"]
    assert ok["error_lines"] == want["error_lines"]
    assert (ok["h264_encode"], ok["hevc_encode"]) == (want["h264_encode"], want["hevc_main_encode"])

    ast = facts["results"][nodes[1]]
    assert ast["status"] == "failed"
    assert ast["error_code"] == EXPECTED[AST_FIXTURE]["error_code"]
    assert ast["drivers_tried"] == EXPECTED[AST_FIXTURE]["drivers_tried"]

    free = facts["results"][nodes[2]]
    assert free["hevc_encode"] is False and free["h264_encode"] is True

    assert facts["available"] is True
    assert facts["hint"] is None

    runs = read_log(log)
    assert [r["args"] for r in runs] == ["--display drm --device %s" % n for n in nodes]
    assert all(r["LANG"] == "C" and r["LC_ALL"] == "C" for r in runs)
    assert all(r["LIBVA_DRIVER_NAME"] == "<unset>" for r in runs)


def test_devices_report_owner_group_and_mode(tmp_path, capsys):
    dri = make_dri(tmp_path, ["renderD128"], mode=0o640)
    vainfo, _log = make_vainfo(tmp_path, {"renderD128": OK_FIXTURE})
    out = run(capsys, {"dri_dir": dri, "vainfo_path": vainfo})
    node = os.path.join(dri, "renderD128")
    info = out["ansible_facts"]["vainfo"]["devices"][node]
    st = os.stat(node)
    assert info["mode"] == "0640"
    assert info["owner"] in (str(st.st_uid), __import__("pwd").getpwuid(st.st_uid).pw_name)
    assert info["group"] in (str(st.st_gid), __import__("grp").getgrgid(st.st_gid).gr_name)
    assert stat.S_IMODE(st.st_mode) == 0o640


def test_device_option_probes_only_that_node_and_sets_driver_name(tmp_path, capsys):
    dri = make_dri(tmp_path, ["renderD128", "renderD129"])
    vainfo, log = make_vainfo(tmp_path, {"renderD128": AST_FIXTURE, "renderD129": OK_FIXTURE})
    node = os.path.join(dri, "renderD129")

    out = run(capsys, {"dri_dir": dri, "vainfo_path": vainfo, "device": node, "driver_name": "iHD"})

    facts = out["ansible_facts"]["vainfo"]
    assert list(facts["results"]) == [node]
    assert facts["results"][node]["driver_name"] == "iHD"
    assert facts["render_nodes"] == [os.path.join(dri, "renderD128"), node]
    runs = read_log(log)
    assert len(runs) == 1
    assert runs[0]["args"] == "--display drm --device " + node
    assert runs[0]["LIBVA_DRIVER_NAME"] == "iHD"


def test_missing_dev_dri_is_a_fact_with_the_hostpci_hint(tmp_path, capsys):
    vainfo, log = make_vainfo(tmp_path, {"renderD128": OK_FIXTURE})
    out = run(capsys, {"dri_dir": str(tmp_path / "no-such-dir"), "vainfo_path": vainfo, "sysfs_dir": str(tmp_path / "sys")})
    facts = out["ansible_facts"]["vainfo"]
    assert facts == {
        "gpu": None,
        "uc": None,
        "render_nodes": [],
        "devices": {},
        "results": {},
        "available": False,
        "hint": "no render node: the VM has no GPU — check hostpci in the VM config and `lspci` in the guest",
    }
    assert not os.path.exists(log)


def test_dri_without_render_nodes_gets_the_same_hint(tmp_path, capsys):
    dri = make_dri(tmp_path, ["card0"])
    vainfo, _log = make_vainfo(tmp_path, {})
    facts = run(capsys, {"dri_dir": dri, "vainfo_path": vainfo})["ansible_facts"]["vainfo"]
    assert facts["available"] is False
    assert facts["hint"] == vainfo_facts.HINT_NO_RENDER_NODE


def test_missing_vainfo_binary_is_a_fact_with_the_install_hint(tmp_path, capsys):
    dri = make_dri(tmp_path, ["renderD128"])
    out = run(capsys, {"dri_dir": dri, "vainfo_path": str(tmp_path / "bin" / "vainfo")})
    facts = out["ansible_facts"]["vainfo"]
    assert facts["render_nodes"] == [os.path.join(dri, "renderD128")]
    assert facts["results"] == {}
    assert facts["available"] is False
    assert facts["hint"] == "install the `vainfo` package"


def test_vainfo_is_found_on_path_by_default(tmp_path, capsys, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    make_vainfo(bindir, {"renderD128": FREE_FIXTURE})
    # First on PATH; the rest of PATH stays for the script's grep and basename.
    monkeypatch.setenv("PATH", str(bindir) + os.pathsep + os.environ.get("PATH", ""))
    dri = make_dri(tmp_path, ["renderD128"])
    facts = run(capsys, {"dri_dir": dri})["ansible_facts"]["vainfo"]
    assert facts["results"][os.path.join(dri, "renderD128")]["driver_version"] == EXPECTED[FREE_FIXTURE]["driver_version"]
    assert facts["available"] is True


def test_missing_device_option_node(tmp_path, capsys):
    dri = make_dri(tmp_path, ["renderD128"])
    vainfo, log = make_vainfo(tmp_path, {"renderD128": OK_FIXTURE})
    facts = run(capsys, {"dri_dir": dri, "vainfo_path": vainfo, "device": os.path.join(dri, "renderD130")})["ansible_facts"]["vainfo"]
    assert facts["results"] == {}
    assert facts["available"] is False
    assert "renderD130 does not exist" in facts["hint"]
    assert os.path.join(dri, "renderD128") in facts["hint"]
    assert not os.path.exists(log)


@pytest.mark.parametrize(
    "fixture, words",
    [
        (AST_FIXTURE, ["`ast`", "LIBVA_DRIVER_NAME", "iHD"]),
        (NOGPU_FIXTURE, ["no VA-API driver", "intel-media-va-driver-non-free"]),
        ("fail-i965-init-failed-display-drm-coffeelake-ubuntu1804.txt", ["i965", "intel-media-va-driver-non-free"]),
        ("fail-docker-ubuntu2004-ihd-init-failed-error1.txt", ["iHD driver failed to initialise", "render"]),
        ("fail-host-cant-connect-x-failed-to-initialize-display.txt", ["could not open", "`render` group"]),
    ],
)
def test_failed_runs_give_a_hint(tmp_path, capsys, fixture, words):
    dri = make_dri(tmp_path, ["renderD128"])
    vainfo, _log = make_vainfo(tmp_path, {"renderD128": fixture})
    facts = run(capsys, {"dri_dir": dri, "vainfo_path": vainfo})["ansible_facts"]["vainfo"]
    result = facts["results"][os.path.join(dri, "renderD128")]
    assert result["status"] == "failed"
    assert result["error"] == EXPECTED[fixture]["error_message"]
    assert facts["available"] is False
    assert facts["hint"].startswith(EXPECTED[fixture]["error_message"])
    for word in words:
        assert word in facts["hint"]


def test_unopenable_device_hint(tmp_path, capsys):
    dri = make_dri(tmp_path, ["renderD128"])
    vainfo, _log = make_vainfo(tmp_path, {})  # every device falls through to "Failed to open the given device!"
    facts = run(capsys, {"dri_dir": dri, "vainfo_path": vainfo})["ansible_facts"]["vainfo"]
    assert facts["results"][os.path.join(dri, "renderD128")]["error"] == "Failed to open the given device!"
    assert "`render` group" in facts["hint"]


def test_nonzero_exit_after_a_driver_line_is_a_failure(tmp_path, capsys):
    dri = make_dri(tmp_path, ["renderD128"])
    script = tmp_path / "vainfo"
    script.write_text(
        "#!/bin/sh\n"
        "echo 'vainfo: VA-API version: 1.20 (libva 2.20.1)'\n"
        "echo 'vainfo: Driver version: Intel iHD driver - 23.4.3 ()'\n"
        "kill -SEGV $$\n"
    )
    script.chmod(0o755)
    facts = run(capsys, {"dri_dir": dri, "vainfo_path": str(script)})["ansible_facts"]["vainfo"]
    result = facts["results"][os.path.join(dri, "renderD128")]
    assert result["status"] == "failed"
    assert result["driver_name"] == "iHD"
    assert result["error"].startswith("vainfo exited with code")
    assert facts["available"] is False


def test_check_mode_gives_the_same_facts(tmp_path, capsys):
    dri = make_dri(tmp_path, ["renderD128"])
    vainfo, _log = make_vainfo(tmp_path, {"renderD128": OK_FIXTURE})
    normal = run(capsys, {"dri_dir": dri, "vainfo_path": vainfo})
    checked = run(capsys, {"dri_dir": dri, "vainfo_path": vainfo, "_ansible_check_mode": True})
    assert checked["changed"] is False
    assert checked["ansible_facts"] == normal["ansible_facts"]


def test_odd_bytes_in_vainfo_output_give_facts_not_a_failure(tmp_path, capsys):
    with open(os.path.join(FIXTURE_DIR, OK_FIXTURE), "rb") as handle:
        data = handle.read()
    odd = os.path.join(str(tmp_path), "odd.txt")
    with open(odd, "wb") as handle:
        handle.write(data.replace(b"vainfo: Driver version:", b"vainfo: Driver version: \xff\xfe\xe9", 1))
    failing = os.path.join(str(tmp_path), "odd-fail.txt")
    with open(os.path.join(FIXTURE_DIR, NOGPU_FIXTURE), "rb") as handle:
        data = handle.read()
    with open(failing, "wb") as handle:
        handle.write(b"libva info: \xff\xfe driver said \x80\n" + data)
    dri = make_dri(tmp_path, ["renderD128", "renderD129"])
    vainfo, _log = make_vainfo(tmp_path, {"renderD128": odd, "renderD129": failing})
    out = run(capsys, {"dri_dir": dri, "vainfo_path": vainfo})
    assert "failed" not in out
    results = out["ansible_facts"]["vainfo"]["results"]
    assert results[os.path.join(dri, "renderD128")]["status"] == "ok"
    assert results[os.path.join(dri, "renderD128")]["h264_decode"] is True
    assert results[os.path.join(dri, "renderD129")]["status"] != "ok"
    assert "\ufffd" in json.dumps(results[os.path.join(dri, "renderD128")], ensure_ascii=False)
