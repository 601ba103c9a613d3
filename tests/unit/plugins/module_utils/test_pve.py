"""PveSession against the Proxmox API simulator (tests/pvesim): auth, verbs, tasks, retries, TLS."""

import os
import sys
import time

import pytest

pytest.importorskip("proxmoxer")

_TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError  # noqa: E402
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import client as pve  # noqa: E402
from pvesim.fixture import running_simulator  # noqa: E402

VM = {
    "node": "pve1",
    "status": "stopped",
    "config": {"name": "k3s-agent-1", "memory": "4096", "cores": "2", "scsi0": "local-lvm:vm-120-disk-0,size=32G", "vmgenid": "1"},
    "pending": {},
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running_simulator(tmp_path_factory.mktemp("pvesim"), task_duration=0.02) as handle:
        def add_vm(data):
            data["vms"]["120"] = dict(VM, config=dict(VM["config"]), pending={})
            data["volumes"].append({"volid": "local-lvm:vm-120-disk-0", "storage": "local-lvm", "node": "pve1", "vmid": 120,
                                    "size": 34359738368, "format": "raw", "content": "images", "ctime": 0})
        handle.update(add_vm)
        yield handle


@pytest.fixture(autouse=True)
def clean(sim):
    sim.clear_faults()
    sim.set_task_duration(0.02)
    yield
    sim.clear_faults()
    sim.wait_tasks()


def root(sim, **kwargs):
    return pve.PveSession("127.0.0.1", "root@pam", api_password="rootpass", api_port=sim.port, ca_path=sim.ca_path, **kwargs)


def token(sim):
    secret = sim.data["access"]["users"]["automation@pve"]["tokens"]["ansible"]["secret"]
    return pve.PveSession("127.0.0.1", "automation@pve", api_token_id="ansible", api_token_secret=secret, api_port=sim.port, ca_path=sim.ca_path)


def test_password_auth_reads(sim):
    s = root(sim)
    assert s.authid == "root@pam"
    assert s.get("/version")["release"] == sim.pve_version
    assert {n["node"] for n in s.get("/nodes")} == {"pve1", "pve2", "pve3"}
    assert s.request_count["reads"] == 2 and s.request_count["writes"] == 0


def test_token_auth_and_authid(sim):
    s = token(sim)
    assert s.authid == "automation@pve!ansible"
    assert s.get("/nodes/pve1/qemu/120/config")["name"] == "k3s-agent-1"
    # a full token id is accepted too and means the same
    secret = sim.data["access"]["users"]["automation@pve"]["tokens"]["ansible"]["secret"]
    full = pve.PveSession("127.0.0.1", "automation@pve", api_token_id="automation@pve!ansible", api_token_secret=secret,
                          api_port=sim.port, ca_path=sim.ca_path)
    assert full.authid == "automation@pve!ansible"
    assert full.get("/version")["version"]


def test_wrong_token_secret_is_an_auth_error(sim):
    s = pve.PveSession("127.0.0.1", "automation@pve", api_token_id="ansible", api_token_secret="nope", api_port=sim.port, ca_path=sim.ca_path)
    with pytest.raises(PassthroughError) as exc:
        s.get("/version")
    assert exc.value.details["status"] == 401
    assert "api_token_secret" in exc.value.fix


def test_wrong_password(sim):
    s = pve.PveSession("127.0.0.1", "root@pam", api_password="wrong", api_port=sim.port, ca_path=sim.ca_path)
    with pytest.raises(PassthroughError) as exc:
        s.get("/version")
    assert "Authentication failed for root@pam" in exc.value.message


def test_missing_credentials():
    with pytest.raises(PassthroughError) as exc:
        pve.PveSession("127.0.0.1", "root@pam")
    assert "api_password" in exc.value.fix


def test_put_and_post_config(sim):
    s = root(sim)
    assert s.put("/nodes/pve1/qemu/120/config", description="via put") is None
    assert sim.vm(120)["config"]["description"] == "via put"
    upid = s.post("/nodes/pve1/qemu/120/config", cores=4)
    assert upid.startswith("UPID:pve1:")
    status = s.wait_task(upid, timeout=10)
    assert status["exitstatus"] == "OK"
    assert s.get("/nodes/pve1/qemu/120/config")["cores"] == 4
    assert s.request_count["writes"] == 2


def test_api_error_carries_pve_message(sim):
    s = root(sim)
    with pytest.raises(PassthroughError) as exc:
        s.put("/nodes/pve1/qemu/120/config", digest="0" * 40, cores=3)
    assert "checksum mismatch" in exc.value.message
    assert exc.value.link == "vm_config"


def test_wait_task_failure_text(sim):
    s = root(sim)
    sim.update(lambda d: d["vms"]["120"]["config"].__setitem__("hostpci0", "0000:00:02.0,pcie=1"))
    try:
        upid = s.post("/nodes/pve1/qemu/120/status/start")
        with pytest.raises(PassthroughError) as exc:
            s.wait_task(upid, timeout=10)
        assert "q35 machine model is not enabled" in exc.value.message
        assert exc.value.details["upid"] == upid
        assert exc.value.link == "vm_config"
    finally:
        sim.wait_tasks()
        sim.update(lambda d: d["vms"]["120"]["config"].pop("hostpci0", None))
    assert sim.vm(120)["status"] == "stopped"


def test_vm_state_reads_config_digest_and_pending_from_one_pending_read(sim):
    s = root(sim)
    sim.update(lambda d: d["vms"]["120"]["pending"].update({"machine": "q35", "delete": "vmgenid"}))
    try:
        config, pending = s.vm_config("pve1", 120)
        assert s.request_count["reads"] == 1
        plain = s.get("/nodes/pve1/qemu/120/config")
        assert config == plain  # GET .../config shows pending values as set, deletions gone, with the digest
        assert config["machine"] == "q35" and "vmgenid" not in config and config["digest"] == plain["digest"]
        assert pending == ["machine", "vmgenid"]
        state = s.vm_state("pve1", 120)
        assert state["status"] == "stopped" and state["config"] == plain and state["pending"] == pending
    finally:
        sim.update(lambda d: d["vms"]["120"].__setitem__("pending", {}))


def test_pci_devices_are_read_once_per_node(sim):
    s = root(sim)
    first = s.pci_devices("pve1")
    assert any(d["id"] == "0000:00:02.0" for d in first)
    assert s.pci_devices("pve1") is first
    assert s.request_count["reads"] == 1


def test_a_short_task_costs_one_status_read(sim):
    s = root(sim)
    sim.set_task_duration(0.01, "qmconfig")
    upid = s.post("/nodes/pve1/qemu/120/config", description="short")
    before = s.request_count["reads"]
    s.wait_task(upid, timeout=10)
    assert s.request_count["reads"] - before == 1


def test_wait_task_notices_within_300ms(sim):
    s = root(sim)
    sim.set_task_duration(0.2, "qmconfig")
    posted = time.monotonic()
    upid = s.post("/nodes/pve1/qemu/120/config", description="timed")
    s.wait_task(upid, timeout=10)
    # the task ran 0.2 s from the POST on; what is left over is the delay in noticing its end (plus request time)
    delay = time.monotonic() - posted - 0.2
    assert 0 <= delay < 0.3, delay
    assert sim.data["tasks"][upid]["status"] == "stopped"


def test_wait_task_timeout(sim):
    s = root(sim)
    sim.set_task_duration(1.0, "qmconfig")
    upid = s.post("/nodes/pve1/qemu/120/config", description="slow")
    started = time.monotonic()
    with pytest.raises(PassthroughError) as exc:
        s.wait_task(upid, timeout=0.3)
    assert time.monotonic() - started < 0.8
    assert "still runs" in exc.value.message


def test_bad_upid():
    s = pve.PveSession("127.0.0.1", "root@pam", api_password="x")
    with pytest.raises(PassthroughError):
        s.wait_task("not-a-upid")


def test_get_retried_after_500(sim):
    s = root(sim)
    s.get("/version")
    sim.reset_counters()
    sim.fail("GET", r"/qemu/120/config$")
    assert s.get("/nodes/pve1/qemu/120/config")["name"] == "k3s-agent-1"
    ep = sim.counters()["endpoints"]["GET /nodes/{node}/qemu/{vmid}/config"]
    assert ep["reads"] == 2
    assert s.request_count["reads"] == 3


def test_get_retried_after_dropped_connection(sim):
    s = root(sim)
    sim.drop("GET", r"/nodes/pve1/status$")
    assert s.get("/nodes/pve1/status") is not None


def test_get_gives_up_after_persistent_500(sim):
    s = root(sim)
    sim.fail("GET", r"/version$", times=None, message="backend down")
    with pytest.raises(PassthroughError) as exc:
        s.get("/version")
    assert "backend down" in exc.value.message
    assert s.request_count["reads"] == pve.READ_ATTEMPTS


def test_write_not_retried_on_500(sim):
    s = root(sim)
    s.get("/version")
    sim.reset_counters()
    sim.fail("PUT", r"/qemu/120/config$", message="injected write failure")
    with pytest.raises(PassthroughError) as exc:
        s.put("/nodes/pve1/qemu/120/config", description="never")
    assert "injected write failure" in exc.value.message
    assert sim.counters()["writes"] == 1
    assert sim.vm(120)["config"].get("description") != "never"


def test_write_not_retried_on_drop(sim):
    s = root(sim)
    s.get("/version")
    sim.reset_counters()
    sim.drop("PUT", r"/qemu/120/config$")
    with pytest.raises(PassthroughError) as exc:
        s.put("/nodes/pve1/qemu/120/config", description="dropped")
    assert "Cannot reach" in exc.value.message
    assert sim.counters()["writes"] == 1


def test_task_poll_survives_dropped_connection(sim):
    s = root(sim)
    upid = s.post("/nodes/pve1/qemu/120/config", description="poll")
    sim.drop("GET", r"/tasks/.*/status$")
    assert s.wait_task(upid, timeout=10)["exitstatus"] == "OK"


def test_tls_with_ca_path(sim):
    assert root(sim).get("/version")["version"]


def test_tls_without_ca_path_fails_with_fix(sim):
    s = pve.PveSession("127.0.0.1", "root@pam", api_password="rootpass", api_port=sim.port)
    with pytest.raises(PassthroughError) as exc:
        s.get("/version")
    text = str(exc.value)
    assert "could not be verified" in text
    assert "ca_path: <your cluster CA, /etc/pve/pve-root-ca.pem on a node>" in text
    assert "validate_certs: false" in text


def test_tls_check_off(sim):
    s = pve.PveSession("127.0.0.1", "root@pam", api_password="rootpass", api_port=sim.port, validate_certs=False)
    assert s.get("/version")["version"]


def test_connection_refused():
    s = pve.PveSession("127.0.0.1", "root@pam", api_password="x", api_port=1, api_timeout=2)
    with pytest.raises(PassthroughError) as exc:
        s.get("/version")
    assert "Cannot reach the Proxmox API" in exc.value.message


def test_task_ok():
    assert pve.task_ok("OK")
    assert pve.task_ok("WARNINGS: 2")
    assert not pve.task_ok("WARNINGS: x")
    assert not pve.task_ok("unexpected status")
    assert pve.upid_node("UPID:pve2:0000ABCD:00001234:65A1B2C3:qmstart:120:root@pam:") == "pve2"
