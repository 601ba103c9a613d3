# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k8ssim: the patch and selector rules in-process, and kubernetes.core's k8s, k8s_info and k8s_drain against it."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from k8ssim.fixture import running_k8ssim
from k8ssim.server import ApiError, json_patch, merge_patch, strategic_merge_patch


def test_merge_patch_deletes_with_null_and_replaces_lists():
    node = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"taints": [{"key": "x"}]}}
    patched = merge_patch(node, {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"taints": [{"key": "y"}]}})
    assert patched == {"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"taints": [{"key": "y"}]}}
    assert node["metadata"]["labels"] == {"a": "1", "b": "2"}


def test_strategic_merge_patch_merges_conditions_by_type():
    node = {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]}}
    patched = strategic_merge_patch(node, {"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert patched["status"]["conditions"] == [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}]


def test_json_patch_operations():
    node = {"metadata": {"labels": {"a": "1"}}, "spec": {}}
    patched = json_patch(node, [{"op": "add", "path": "/metadata/labels/gpu.intel.com~1i915", "value": "true"},
                                {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
                                {"op": "add", "path": "/spec/unschedulable", "value": True}])
    assert patched == {"metadata": {"labels": {"a": "2", "gpu.intel.com/i915": "true"}}, "spec": {"unschedulable": True}}
    with pytest.raises(ApiError):
        json_patch(node, [{"op": "remove", "path": "/metadata/labels/missing"}])


def _request(k8s, method, path, body=None, content_type="application/json", token=True):
    import ssl  # pylint: disable=import-outside-toplevel
    import urllib.error  # pylint: disable=import-outside-toplevel
    import urllib.request  # pylint: disable=import-outside-toplevel

    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = "Bearer %s" % k8s.token
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(k8s.url + path, data=data, headers=headers, method=method)
    context = ssl.create_default_context(cafile=k8s.ca_path)
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_http_rules(tmp_path):
    with running_k8ssim(tmp_path) as k8s:
        k8s.cluster.add_node("n1")
        k8s.cluster.add_pod("web-1", "n1")
        k8s.cluster.add_pod("web-2", "n2", namespace="media")
        assert _request(k8s, "GET", "/api/v1/nodes/n1", token=False)[0] == 401
        status, body = _request(k8s, "GET", "/api/v1/nodes/nope")
        assert (status, body["reason"], body["kind"]) == (404, "NotFound", "Status")
        status, body = _request(k8s, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn2")
        assert status == 200 and [p["metadata"]["name"] for p in body["items"]] == ["web-2"]
        status, body = _request(k8s, "GET", "/api/v1/namespaces/default/pods")
        assert [p["metadata"]["name"] for p in body["items"]] == ["web-1"]
        status, _body = _request(k8s, "PATCH", "/api/v1/nodes/n1", {"spec": {"unschedulable": True}}, "text/plain")
        assert status == 415
        status, body = _request(k8s, "PATCH", "/api/v1/nodes/n1", {"spec": {"unschedulable": True}}, "application/merge-patch+json")
        assert status == 200 and body["spec"]["unschedulable"] is True
        status, _body = _request(k8s, "POST", "/api/v1/namespaces/media/pods/web-2/eviction",
                                 {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-2", "namespace": "media"}})
        assert status == 201 and "media/web-2" not in k8s.dump()["pods"]
        assert [e["action"] for e in k8s.requests()][-2:] == ["cordon", "evict"]
        k8s.dump_json(str(tmp_path / "dump.json"))
        assert json.loads((tmp_path / "dump.json").read_text())["nodes"]["n1"]["spec"]["unschedulable"] is True


def _have_kubernetes_core():
    try:
        import ansible_collections.kubernetes.core  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        import kubernetes  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return False
    return shutil.which("ansible-playbook") is not None


@pytest.mark.skipif(not _have_kubernetes_core(), reason="needs ansible-playbook, kubernetes.core (the ansible package) and the kubernetes client")
def test_kubernetes_core_modules(tmp_path):
    with running_k8ssim(tmp_path / "k8s") as k8s:
        k8s.cluster.add_node("k3s-agent-1", ready=False)
        k8s.cluster.add_node("k3s-agent-2")
        k8s.cluster.add_pod("jellyfin-6d4cf56db6-x", "k3s-agent-1", namespace="media")
        k8s.cluster.add_pod("redis-0", "k3s-agent-1", owner_kind="StatefulSet", owner_name="redis", empty_dir=True)
        k8s.cluster.add_pod("svclb-traefik-a", "k3s-agent-1", namespace="kube-system", owner_kind="DaemonSet")
        k8s.cluster.add_pod("jellyfin-6d4cf56db6-y", "k3s-agent-2", namespace="media")
        # the node turns Ready once it has been read (NotReady) for the first time
        k8s.set_ready_source(lambda name: bool(k8s.requests("get_node")) if name == "k3s-agent-1" else None)
        auth = {"kubeconfig": k8s.kubeconfig}
        node = dict(auth, name="k3s-agent-1")
        tasks = [
            {"kubernetes.core.k8s_info": dict(auth, kind="Node", name="k3s-agent-1", wait=True, wait_sleep=1, wait_timeout=30,
                                              wait_condition={"type": "Ready", "status": "True"}), "register": "ready"},
            {"kubernetes.core.k8s": dict(auth, kind="Node", name="k3s-agent-1", state="patched",
                                         definition={"metadata": {"labels": {"gpu.intel.com/i915": "true"}}})},
            {"kubernetes.core.k8s_drain": dict(node, state="cordon")},
            {"kubernetes.core.k8s_info": dict(auth, kind="Node", name="k3s-agent-1"), "register": "cordoned"},
            {"kubernetes.core.k8s_drain": dict(node, state="uncordon")},
            {"kubernetes.core.k8s_drain": dict(node, delete_options={"ignore_daemonsets": True, "delete_emptydir_data": True}),
             "register": "drained"},
            {"ansible.builtin.debug": {"msg": "RESULT<{{ {'ready': ready, 'cordoned': cordoned, 'drained': drained} | to_json | b64encode }}>"}},
        ]
        play = tmp_path / "play.json"
        play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", TMPDIR=str(tmp_path))
        proc = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local",
                               "-e", "ansible_python_interpreter=%s" % sys.executable, str(play)],
                              env=env, capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        result = json.loads(base64.b64decode(re.search(r"RESULT<([A-Za-z0-9+/=]+)>", proc.stdout).group(1)))

        # k8s_info waited for Ready
        ready = result["ready"]["resources"][0]["status"]["conditions"]
        assert {"type": "Ready", "status": "True"}.items() <= ready[-1].items()
        assert result["cordoned"]["resources"][0]["spec"]["unschedulable"] is True

        state = k8s.dump()
        agent = state["nodes"]["k3s-agent-1"]
        assert agent["metadata"]["labels"]["gpu.intel.com/i915"] == "true"
        assert agent["metadata"]["labels"]["kubernetes.io/hostname"] == "k3s-agent-1"
        # drained: cordoned again and left so; the normal and emptyDir pods evicted, the DaemonSet pod and the other node's pod kept
        assert agent["spec"]["unschedulable"] is True
        assert not state["nodes"]["k3s-agent-2"]["spec"].get("unschedulable")
        assert sorted(state["pods"]) == ["kube-system/svclb-traefik-a", "media/jellyfin-6d4cf56db6-y"]
        assert result["drained"]["changed"] is True

        log = [(e["action"], e.get("name") or e["node"]) for e in k8s.requests() if e["action"] in ("cordon", "uncordon", "evict", "patch_node", "list_pods")]
        assert log == [("patch_node", "k3s-agent-1"), ("cordon", "k3s-agent-1"), ("uncordon", "k3s-agent-1"), ("cordon", "k3s-agent-1"),
                       ("list_pods", "k3s-agent-1"), ("evict", "jellyfin-6d4cf56db6-x"), ("evict", "redis-0")]
        patch = k8s.requests("patch_node")[0]
        assert patch["content_type"] == "application/strategic-merge-patch+json"
        # the wait really waited: the node was read while NotReady, and the answer came from a later read
        became_ready = [t for t, name, ready in k8s.transitions if name == "k3s-agent-1" and ready]
        assert became_ready and k8s.requests("get_node")[0]["time"] < became_ready[0] < patch["time"]


EVICT = {"apiVersion": "policy/v1", "kind": "Eviction"}


def test_budget_status_int_and_percent(tmp_path):
    with running_k8ssim(tmp_path) as k8s:
        for index in range(4):
            k8s.cluster.add_pod("web-%d" % index, "n%d" % (index % 2), namespace="media", labels={"app": "web"},
                                ready=index != 3)
        k8s.cluster.add_pod("db-0", "n0", namespace="media", labels={"app": "db"})
        k8s.cluster.add_budget("web-min2", "media", {"app": "web"}, min_available=2)
        k8s.cluster.add_budget("web-max50", "other", {"app": "web"}, max_unavailable="50%")
        status, body = _request(k8s, "POST", "/apis/policy/v1/namespaces/media/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db"},
            "spec": {"minAvailable": "100%", "selector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["db"]}]}}})
        assert status == 201 and body["status"]["disruptionsAllowed"] == 0
        status, body = _request(k8s, "GET", "/apis/policy/v1/namespaces/media/poddisruptionbudgets/web-min2")
        # 4 pods, 3 healthy, 2 wanted: one disruption allowed
        assert status == 200 and {k: body["status"][k] for k in ("expectedPods", "currentHealthy", "desiredHealthy",
                                                                 "disruptionsAllowed")} == {
            "expectedPods": 4, "currentHealthy": 3, "desiredHealthy": 2, "disruptionsAllowed": 1}
        status, body = _request(k8s, "GET", "/apis/policy/v1/poddisruptionbudgets")
        assert status == 200 and body["kind"] == "PodDisruptionBudgetList" and body["apiVersion"] == "policy/v1"
        assert [(b["metadata"]["namespace"], b["metadata"]["name"]) for b in body["items"]] == [
            ("media", "db"), ("media", "web-min2"), ("other", "web-max50")]
        # the other namespace's budget selects no pod
        assert body["items"][2]["status"]["expectedPods"] == 0
        # maxUnavailable 50% of 4 pods: 2 may be down, so 2 wanted healthy
        k8s.cluster.add_budget("web-max50", "media2", {}, max_unavailable="50%")
        for index in range(4):
            k8s.cluster.add_pod("p-%d" % index, "n0", namespace="media2")
        assert k8s.cluster.budget("media2", "web-max50")["status"]["desiredHealthy"] == 2
        assert k8s.cluster.budget("media2", "web-max50")["status"]["disruptionsAllowed"] == 2
        # neither or both of minAvailable / maxUnavailable is invalid
        status, body = _request(k8s, "POST", "/apis/policy/v1/namespaces/media/poddisruptionbudgets",
                                {"metadata": {"name": "bad"}, "spec": {"selector": {}}})
        assert status == 422 and body["reason"] == "Invalid"
        status, body = _request(k8s, "POST", "/apis/policy/v1/namespaces/media/poddisruptionbudgets",
                                {"metadata": {"name": "db"}, "spec": {"minAvailable": 1}})
        assert status == 409 and body["reason"] == "AlreadyExists"
        assert _request(k8s, "GET", "/apis/policy/v1/namespaces/media/poddisruptionbudgets/nope")[0] == 404


def test_eviction_respects_the_budget(tmp_path):
    with running_k8ssim(tmp_path) as k8s:
        k8s.cluster.add_pod("jellyfin-0", "k3s-agent-1", namespace="media", labels={"app": "jellyfin"})
        k8s.cluster.add_pod("web-a", "k3s-agent-1", namespace="media", labels={"app": "web"})
        k8s.cluster.add_pod("web-b", "k3s-agent-2", namespace="media", labels={"app": "web"})
        k8s.cluster.add_pod("sick", "k3s-agent-1", namespace="media", labels={"app": "sick"}, ready=False)
        k8s.cluster.add_pod("sick-ok", "k3s-agent-2", namespace="media", labels={"app": "sick"}, ready=False)
        k8s.cluster.add_budget("jellyfin", "media", {"app": "jellyfin"}, min_available=1)
        k8s.cluster.add_budget("web", "media", {"app": "web"}, max_unavailable=1)
        k8s.cluster.add_budget("sick", "media", {"app": "sick"}, min_available=1)

        status, body = _request(k8s, "POST", "/api/v1/namespaces/media/pods/jellyfin-0/eviction", EVICT)
        assert status == 429 and body["reason"] == "TooManyRequests"
        assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
        assert body["details"]["causes"] == [{"reason": "DisruptionBudget",
                                              "message": "The disruption budget jellyfin needs 1 healthy pods and has 1 currently"}]
        assert "media/jellyfin-0" in k8s.dump()["pods"]
        # dry run is judged the same way
        assert _request(k8s, "POST", "/api/v1/namespaces/media/pods/jellyfin-0/eviction?dryRun=All", EVICT)[0] == 429

        # one of two web pods may go, the second then not
        assert _request(k8s, "POST", "/api/v1/namespaces/media/pods/web-a/eviction", EVICT)[0] == 201
        assert _request(k8s, "POST", "/api/v1/namespaces/media/pods/web-b/eviction", EVICT)[0] == 429

        # an unhealthy pod of an unhealthy budget stays (IfHealthyBudget), with AlwaysAllow it may go
        assert _request(k8s, "POST", "/api/v1/namespaces/media/pods/sick/eviction", EVICT)[0] == 429
        k8s.cluster.budgets[("media", "sick")]["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
        assert _request(k8s, "POST", "/api/v1/namespaces/media/pods/sick/eviction", EVICT)[0] == 201

        # two budgets over one pod: the API server refuses to choose
        k8s.cluster.add_budget("web-too", "media", {"app": "web"}, min_available=0)
        status, body = _request(k8s, "POST", "/api/v1/namespaces/media/pods/web-b/eviction", EVICT)
        assert status == 500 and "more than one PodDisruptionBudget" in body["message"]
        assert [e["action"] for e in k8s.requests()][-1] == "evict"
        assert "create_budget" not in [e["action"] for e in k8s.requests()]
        assert sorted(k8s.dump()["budgets"]) == ["media/jellyfin", "media/sick", "media/web", "media/web-too"]


@pytest.mark.skipif(not _have_kubernetes_core(), reason="needs ansible-playbook, kubernetes.core (the ansible package) and the kubernetes client")
def test_k8s_drain_is_held_by_a_budget(tmp_path):
    with running_k8ssim(tmp_path / "k8s") as k8s:
        k8s.cluster.add_node("k3s-agent-1")
        k8s.cluster.add_pod("jellyfin-0", "k3s-agent-1", namespace="media", labels={"app": "jellyfin"})
        k8s.cluster.add_budget("jellyfin", "media", {"app": "jellyfin"}, min_available=1)
        auth = {"kubeconfig": k8s.kubeconfig}
        tasks = [
            {"kubernetes.core.k8s_info": dict(auth, api_version="policy/v1", kind="PodDisruptionBudget",
                                              namespace="media"), "register": "budgets"},
            {"kubernetes.core.k8s_drain": dict(auth, name="k3s-agent-1", delete_options={"wait_timeout": 3,
                                                                                         "wait_sleep": 1}),
             "register": "drained", "ignore_errors": True},
            {"ansible.builtin.debug": {"msg": "RESULT<{{ {'budgets': budgets, 'drained': drained} | to_json | b64encode }}>"}},
        ]
        play = tmp_path / "play.json"
        play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", TMPDIR=str(tmp_path))
        proc = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local",
                               "-e", "ansible_python_interpreter=%s" % sys.executable, str(play)],
                              env=env, capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        result = json.loads(base64.b64decode(re.search(r"RESULT<([A-Za-z0-9+/=]+)>", proc.stdout).group(1)))
        budget = result["budgets"]["resources"][0]
        assert budget["metadata"]["name"] == "jellyfin" and budget["status"]["disruptionsAllowed"] == 0
        assert result["drained"].get("failed") is True, result["drained"]
        assert "disruption budget" in json.dumps(result["drained"]), result["drained"]
        assert "media/jellyfin-0" in k8s.dump()["pods"]
        assert k8s.requests("evict") and all(e["status"] == 429 for e in k8s.requests("evict"))
