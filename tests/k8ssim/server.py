"""A small Kubernetes API server stand-in: discovery, nodes, pods, PodDisruptionBudgets and evictions, in memory,
with a request log.

Enough of the API for the ``kubernetes`` Python client (typed ``CoreV1Api`` and the dynamic client that
kubernetes.core uses): ``k8s_info``, ``k8s`` (get, patch), ``k8s_drain`` (cordon, list pods on a node, evict,
uncordon). Only ``127.0.0.1`` is ever bound.
"""

import copy
import datetime
import json
import math
import os
import re
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.5+k3s1",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-09-10T00:00:00Z",
    "goVersion": "go1.24.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# The resources this server serves, as /api/v1 lists them (name, kind, namespaced, verbs).
CORE_RESOURCES = [
    {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
     "verbs": ["get", "list"], "shortNames": ["ns"]},
    {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
     "verbs": ["get", "list", "patch", "update"], "shortNames": ["no"]},
    {"name": "nodes/status", "singularName": "", "namespaced": False, "kind": "Node", "verbs": ["get", "patch"]},
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
     "verbs": ["create", "delete", "get", "list"], "shortNames": ["po"], "categories": ["all"]},
    {"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy", "version": "v1",
     "kind": "Eviction", "verbs": ["create"]},
]

PATCH_TYPES = (
    "application/strategic-merge-patch+json",
    "application/merge-patch+json",
    "application/json-patch+json",
)


class ApiError(Exception):
    """An API error answered as a ``Status`` object."""

    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = None

    def status(self):
        answer = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            answer["details"] = self.details
        return answer


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch: dicts merge, null deletes, everything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target, patch, path=()):
    """Strategic merge patch for what nodes carry: like a merge patch, but ``status.conditions`` merge by ``type``
    and ``spec.taints`` by ``key``; ``$patch``/``$retainKeys`` directives are not supported."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    merge_keys = {("status", "conditions"): "type", ("spec", "taints"): "key"}
    for key, value in patch.items():
        where = path + (key,)
        if value is None:
            result.pop(key, None)
        elif where in merge_keys and isinstance(value, list) and isinstance(result.get(key), list):
            merge_key = merge_keys[where]
            items = [copy.deepcopy(i) for i in result[key]]
            for item in value:
                index = next((n for n, old in enumerate(items) if old.get(merge_key) == item.get(merge_key)), None)
                if index is None:
                    items.append(copy.deepcopy(item))
                else:
                    items[index] = strategic_merge_patch(items[index], item)
            result[key] = items
        else:
            result[key] = strategic_merge_patch(result.get(key), value, where)
    return result


def _pointer(path):
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")] if path else []


def json_patch(target, operations):
    """RFC 6902 operations add, replace, remove and test on dicts and lists."""
    doc = copy.deepcopy(target)
    for op in operations:
        parts = _pointer(op.get("path", ""))
        if not parts:
            raise ApiError(422, "Invalid", "json patch on the whole object is not supported")
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        kind = op.get("op")
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise ApiError(422, "Invalid", "replace operation does not apply: doc is missing path: %s" % op["path"])
                parent[last] = op["value"]
        elif kind == "remove":
            try:
                del parent[int(last) if isinstance(parent, list) else last]
            except (KeyError, IndexError) as exc:
                raise ApiError(422, "Invalid", "remove operation does not apply: doc is missing path: %s" % op["path"]) from exc
        elif kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise ApiError(422, "Invalid", "testing value %s failed" % op["path"])
        else:
            raise ApiError(422, "Invalid", "unsupported json patch operation %r" % kind)
    return doc


def _label_match(labels, selector):
    """Equality-based label selectors (``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``), comma-separated."""
    labels = labels or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = re.split("==?", term, maxsplit=1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field_value(obj, field):
    value = obj
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def _field_match(obj, selector):
    """Field selectors as the API server supports them for pods and nodes: ``f=v``, ``f==v``, ``f!=v``."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            field, value = term.split("!=", 1)
            if _field_value(obj, field.strip()) == value.strip():
                return False
        else:
            field, value = re.split("==?", term, maxsplit=1)
            if _field_value(obj, field.strip()) != value.strip():
                return False
    return True


def selector_match(selector, labels):
    """A LabelSelector object (``matchLabels``, ``matchExpressions``) against ``labels``; an empty one selects all."""
    labels = labels or {}
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def scaled(value, total):
    """An IntOrString budget value against ``total`` pods; percentages round up, as the disruption controller's
    ``intstr.GetScaledValueFromIntOrPercent(..., roundUp=true)`` does."""
    if isinstance(value, str) and value.endswith("%"):
        return int(math.ceil(int(value[:-1]) * total / 100.0))
    return int(value)


def pod_healthy(pod):
    """Running with its Ready condition True (the disruption controller's ``IsPodReady``)."""
    if pod["status"].get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
        return False
    ready = [c for c in pod["status"].get("conditions") or [] if c.get("type") == "Ready"]
    return not ready or ready[-1].get("status") == "True"


class Cluster:
    """The in-memory objects: nodes, namespaces and pods, with a resourceVersion counter."""

    def __init__(self):
        self.lock = threading.RLock()
        self.revision = 100
        self.nodes = {}
        self.pods = {}  # (namespace, name) -> pod
        self.budgets = {}  # (namespace, name) -> PodDisruptionBudget (status computed on read)
        # (namespace, kind, name) -> {"replicas", "labels"}: the pods' controllers, whose scale a budget with
        # maxUnavailable or a percentage counts (an evicted pod is still one of its controller's replicas)
        self.controllers = {}
        self.namespaces = {"default": self._namespace("default"), "kube-system": self._namespace("kube-system")}

    def bump(self, obj):
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        return obj

    def _meta(self, name, namespace=None, labels=None, annotations=None):
        meta = {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": _now(), "labels": dict(labels or {})}
        if namespace:
            meta["namespace"] = namespace
        if annotations:
            meta["annotations"] = dict(annotations)
        return meta

    def _namespace(self, name):
        self.revision += 1
        return {"kind": "Namespace", "apiVersion": "v1",
                "metadata": dict(self._meta(name), resourceVersion=str(self.revision)),
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}

    def add_node(self, name, labels=None, ready=True, unschedulable=False, address=None):
        """A node like a k3s agent registers it; ``ready`` sets the Ready condition."""
        node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                       "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                       "node.kubernetes.io/instance-type": "k3s"}
        node_labels.update(labels or {})
        node = {
            "kind": "Node", "apiVersion": "v1",
            "metadata": self._meta(name, labels=node_labels, annotations={"k3s.io/node-args": "[\"agent\"]"}),
            "spec": {"podCIDR": "10.42.%d.0/24" % (len(self.nodes) + 1), "providerID": "k3s://%s" % name},
            "status": {
                "conditions": [],
                "addresses": [{"type": "InternalIP", "address": address or "192.168.1.%d" % (120 + len(self.nodes))},
                              {"type": "Hostname", "address": name}],
                "nodeInfo": {"architecture": "amd64", "bootID": str(uuid.uuid4()),
                             "containerRuntimeVersion": "containerd://2.0.5-k3s2", "kernelVersion": "6.8.0-85-generic",
                             "kubeProxyVersion": SERVER_VERSION["gitVersion"], "kubeletVersion": SERVER_VERSION["gitVersion"],
                             "machineID": uuid.uuid4().hex, "operatingSystem": "linux", "osImage": "Ubuntu 24.04.3 LTS",
                             "systemUUID": str(uuid.uuid4())},
                "capacity": {"cpu": "4", "memory": "8029684Ki", "pods": "110"},
                "allocatable": {"cpu": "4", "memory": "8029684Ki", "pods": "110"},
            },
        }
        if unschedulable:
            node["spec"]["unschedulable"] = True
        with self.lock:
            self.nodes[name] = self.bump(node)
            self.set_ready(name, ready)
        return node

    def set_ready(self, name, ready):
        """Set the node's Ready condition (True/False) as the node lifecycle controller or kubelet would."""
        with self.lock:
            node = self.nodes[name]
            conditions = [c for c in node["status"]["conditions"] if c["type"] != "Ready"]
            previous = next((c for c in node["status"]["conditions"] if c["type"] == "Ready"), None)
            status = "True" if ready else "False"
            stamp = _now()
            changed_at = previous["lastTransitionTime"] if previous and previous["status"] == status else stamp
            conditions.append({
                "type": "Ready", "status": status, "lastHeartbeatTime": stamp, "lastTransitionTime": changed_at,
                "reason": "KubeletReady" if ready else "KubeletNotReady",
                "message": "kubelet is posting ready status" if ready else "container runtime network not ready",
            })
            node["status"]["conditions"] = conditions
            self.bump(node)

    def add_pod(self, name, node, namespace="default", owner_kind="ReplicaSet", owner_name=None, labels=None,
                empty_dir=False, phase="Running", annotations=None, ready=True):
        """A pod scheduled on ``node``; ``owner_kind`` None makes an unmanaged pod; ``ready`` its Ready condition."""
        meta = self._meta(name, namespace=namespace, labels=labels, annotations=annotations)
        if owner_kind:
            meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner_name or name.rsplit("-", 1)[0],
                                        "uid": str(uuid.uuid4()), "controller": True, "blockOwnerDeletion": True}]
        volumes = [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
        if empty_dir:
            volumes.append({"name": "scratch", "emptyDir": {}})
        pod = {
            "kind": "Pod", "apiVersion": "v1", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
                     "volumes": volumes, "restartPolicy": "Always"},
            "status": {"phase": phase, "podIP": "10.42.0.%d" % (len(self.pods) + 10),
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
        }
        with self.lock:
            self.namespaces.setdefault(namespace, self._namespace(namespace))
            self.pods[(namespace, name)] = self.bump(pod)
            if owner_kind and owner_kind not in ("DaemonSet", "Node"):
                owner = meta["ownerReferences"][0]["name"]
                controller = self.controllers.setdefault((namespace, owner_kind, owner), {"replicas": 0, "labels": {}})
                controller["replicas"] += 1
                controller["labels"] = dict(labels or {})
        return pod

    def add_budget(self, name, namespace="default", match_labels=None, match_expressions=None, min_available=None,
                   max_unavailable=None, unhealthy_pod_eviction_policy=None):
        """A policy/v1 PodDisruptionBudget; exactly one of ``min_available``/``max_unavailable`` (int or "N%")."""
        spec = {"selector": {}}
        if match_labels:
            spec["selector"]["matchLabels"] = dict(match_labels)
        if match_expressions:
            spec["selector"]["matchExpressions"] = list(match_expressions)
        if min_available is not None:
            spec["minAvailable"] = min_available
        if max_unavailable is not None:
            spec["maxUnavailable"] = max_unavailable
        if unhealthy_pod_eviction_policy:
            spec["unhealthyPodEvictionPolicy"] = unhealthy_pod_eviction_policy
        return self.create_budget({"metadata": {"name": name, "namespace": namespace}, "spec": spec}, namespace)

    def create_budget(self, body, namespace):
        """Validate and store a PodDisruptionBudget as ``POST .../poddisruptionbudgets`` does."""
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", "PodDisruptionBudget.policy \"\" is invalid: metadata.name: Required value: name or "
                           "generateName is required")
        if ("minAvailable" in spec) == ("maxUnavailable" in spec):
            raise ApiError(422, "Invalid", 'PodDisruptionBudget.policy "%s" is invalid: spec: Invalid value: '
                           '"minAvailable and maxUnavailable cannot be both set"' % name if "minAvailable" in spec else
                           'PodDisruptionBudget.policy "%s" is invalid: spec: Required value: minAvailable or '
                           'maxUnavailable' % name)
        with self.lock:
            if (namespace, name) in self.budgets:
                raise ApiError(409, "AlreadyExists", 'poddisruptionbudgets.policy "%s" already exists' % name)
            self.namespaces.setdefault(namespace, self._namespace(namespace))
            budget = {"kind": "PodDisruptionBudget", "apiVersion": "policy/v1",
                      "metadata": dict(self._meta(name, namespace=namespace, labels=meta.get("labels")), generation=1),
                      "spec": copy.deepcopy(spec), "status": {}}
            self.budgets[(namespace, name)] = self.bump(budget)
            return self.budget(namespace, name)

    def budget_pods(self, budget):
        namespace = budget["metadata"]["namespace"]
        return [pod for (ns, _name), pod in sorted(self.pods.items())
                if ns == namespace and selector_match(budget["spec"].get("selector"), pod["metadata"].get("labels"))]

    def budget(self, namespace, name):
        """The budget with its status as the disruption controller computes it (kubernetes pkg/controller/disruption):
        expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed = max(currentHealthy - desiredHealthy, 0)."""
        with self.lock:
            budget = copy.deepcopy(self.budgets[(namespace, name)])
            pods = self.budget_pods(budget)
            spec = budget["spec"]
            healthy = sum(1 for pod in pods if pod_healthy(pod))
            if isinstance(spec.get("minAvailable"), int):
                expected = len(pods)
            else:
                # the scale of the pods' controllers (kubernetes pkg/controller/disruption getExpectedScale)
                selector = spec.get("selector")
                expected = sum(c["replicas"] for (ns, _kind, _name), c in self.controllers.items()
                               if ns == namespace and selector_match(selector, c["labels"]))
                expected += sum(1 for pod in pods if not pod["metadata"].get("ownerReferences"))
            if "minAvailable" in spec:
                desired = scaled(spec["minAvailable"], expected)
            else:
                desired = max(expected - scaled(spec["maxUnavailable"], expected), 0)
            budget["status"] = {"observedGeneration": budget["metadata"]["generation"], "expectedPods": expected,
                                "currentHealthy": healthy, "desiredHealthy": desired,
                                "disruptionsAllowed": max(healthy - desired, 0),
                                "conditions": [{"type": "DisruptionAllowed",
                                                "status": "True" if healthy > desired else "False",
                                                "reason": "SufficientPods" if healthy > desired else "InsufficientPods",
                                                "message": "", "observedGeneration": 1,
                                                "lastTransitionTime": budget["metadata"]["creationTimestamp"]}]}
            return budget

    def dump(self):
        """A JSON-able deep copy: {"nodes": {name: node}, "pods": {"ns/name": pod}, "budgets": {"ns/name": budget},
        "namespaces": [...]}."""
        with self.lock:
            return copy.deepcopy({
                "nodes": self.nodes,
                "pods": {"%s/%s" % key: pod for key, pod in sorted(self.pods.items())},
                "budgets": {"%s/%s" % key: self.budget(*key) for key in sorted(self.budgets)},
                "namespaces": sorted(self.namespaces),
            })


class Router:  # pylint: disable=too-few-public-methods
    """Maps (method, path, query, body) to an answer; every answer is (status, body)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.routes = [
            ("GET", r"/version/?", self.version),
            ("GET", r"/api/?", self.api_versions),
            ("GET", r"/apis/?", self.api_groups),
            ("GET", r"/api/v1/?", self.api_resources),
            ("GET", r"/apis/policy/v1/?", self.policy_resources),
            ("GET", r"/api/v1/namespaces/?", self.list_namespaces),
            ("GET", r"/api/v1/namespaces/(?P<name>[^/]+)/?", self.get_namespace),
            ("GET", r"/api/v1/nodes/?", self.list_nodes),
            ("GET", r"/api/v1/nodes/(?P<name>[^/]+)(?:/status)?/?", self.get_node),
            ("PATCH", r"/api/v1/nodes/(?P<name>[^/]+)(?P<sub>/status)?/?", self.patch_node),
            ("GET", r"/api/v1/pods/?", self.list_pods),
            ("GET", r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods/?", self.list_pods),
            ("GET", r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/?", self.get_pod),
            ("DELETE", r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/?", self.delete_pod),
            ("POST", r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/eviction/?", self.evict_pod),
            ("GET", r"/apis/policy/v1/poddisruptionbudgets/?", self.list_budgets),
            ("GET", r"/apis/policy/v1/namespaces/(?P<namespace>[^/]+)/poddisruptionbudgets/?", self.list_budgets),
            ("POST", r"/apis/policy/v1/namespaces/(?P<namespace>[^/]+)/poddisruptionbudgets/?", self.create_budget),
            ("GET", r"/apis/policy/v1/namespaces/(?P<namespace>[^/]+)/poddisruptionbudgets/(?P<name>[^/]+)/?",
             self.get_budget),
        ]

    def route(self, method, path):
        known_path = False
        for verb, pattern, handler in self.routes:
            found = re.fullmatch(pattern, path)
            if found:
                known_path = True
                if verb == method:
                    return handler, found.groupdict()
        if known_path:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # discovery
    def version(self, **_):
        return 200, dict(SERVER_VERSION)

    def api_versions(self, **_):
        return 200, {"kind": "APIVersions", "versions": ["v1"],
                     "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}

    def api_groups(self, **_):
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "policy", "versions": [{"groupVersion": "policy/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": "policy/v1", "version": "v1"}},
        ]}

    def api_resources(self, **_):
        return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": copy.deepcopy(CORE_RESOURCES)}

    def policy_resources(self, **_):
        return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "policy/v1", "resources": [
            {"name": "poddisruptionbudgets", "singularName": "poddisruptionbudget", "namespaced": True,
             "kind": "PodDisruptionBudget", "verbs": ["create", "get", "list"], "shortNames": ["pdb"]},
        ]}

    # helpers
    def _list(self, kind, items, query, api_version="v1"):
        labels = query.get("labelSelector")
        fields = query.get("fieldSelector")
        chosen = [copy.deepcopy(i) for i in items
                  if (not labels or _label_match(i["metadata"].get("labels"), labels))
                  and (not fields or _field_match(i, fields))]
        for item in chosen:
            # a list's items carry no kind/apiVersion, as the API server sends them
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return 200, {"kind": kind + "List", "apiVersion": api_version,
                     "metadata": {"resourceVersion": str(self.cluster.revision)}, "items": chosen}

    def _node(self, name):
        node = self.cluster.nodes.get(name)
        if node is None:
            raise ApiError(404, "NotFound", 'nodes "%s" not found' % name)
        return node

    def _pod(self, namespace, name):
        pod = self.cluster.pods.get((namespace, name))
        if pod is None:
            raise ApiError(404, "NotFound", 'pods "%s" not found' % name)
        return pod

    # namespaces
    def list_namespaces(self, query, **_):
        return self._list("Namespace", list(self.cluster.namespaces.values()), query)

    def get_namespace(self, name, **_):
        if name not in self.cluster.namespaces:
            raise ApiError(404, "NotFound", 'namespaces "%s" not found' % name)
        return 200, copy.deepcopy(self.cluster.namespaces[name])

    # nodes
    def list_nodes(self, query, **_):
        return self._list("Node", [self.cluster.nodes[n] for n in sorted(self.cluster.nodes)], query)

    def get_node(self, name, **_):
        return 200, copy.deepcopy(self._node(name))

    def patch_node(self, name, query, body, content_type, sub=None, **_):
        node = self._node(name)
        if content_type not in PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: "
                           + ", ".join(PATCH_TYPES))
        if content_type == "application/json-patch+json":
            if not isinstance(body, list):
                raise ApiError(400, "BadRequest", "json patch must be a list of operations")
            patched = json_patch(node, body)
        else:
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "merge patch must be an object")
            if sub:  # /status takes only the status
                body = {"status": body.get("status", {})}
            else:
                body = {k: v for k, v in body.items() if k != "status"}
            merge = strategic_merge_patch if content_type.startswith("application/strategic") else merge_patch
            patched = merge(node, body)
        patched["metadata"]["name"] = name
        patched["metadata"]["uid"] = node["metadata"]["uid"]
        if "dryRun" in query:
            return 200, patched
        self.cluster.nodes[name] = self.cluster.bump(patched)
        return 200, copy.deepcopy(patched)

    # pods
    def list_pods(self, query, namespace=None, **_):
        pods = [p for (ns, _name), p in sorted(self.cluster.pods.items()) if namespace is None or ns == namespace]
        return self._list("Pod", pods, query)

    def get_pod(self, namespace, name, **_):
        return 200, copy.deepcopy(self._pod(namespace, name))

    def delete_pod(self, namespace, name, query, **_):
        pod = copy.deepcopy(self._pod(namespace, name))
        if "dryRun" not in query:
            del self.cluster.pods[(namespace, name)]
        return 200, pod

    def evict_pod(self, namespace, name, query, body, **_):
        pod = self._pod(namespace, name)
        if not isinstance(body, dict) or body.get("kind") not in (None, "Eviction"):
            raise ApiError(400, "BadRequest", "an Eviction body is required")
        self._check_budgets(namespace, pod)
        if "dryRun" not in query:
            del self.cluster.pods[(namespace, name)]
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _check_budgets(self, namespace, pod):
        """The eviction subresource's budget rules (kubernetes pkg/registry/core/pod/storage/eviction.go): more than
        one budget is an error; a healthy pod needs a disruption left; an unhealthy one goes while the budget is
        healthy, or always with unhealthyPodEvictionPolicy AlwaysAllow."""
        matching = [key for key in sorted(self.cluster.budgets) if key[0] == namespace and selector_match(
            self.cluster.budgets[key]["spec"].get("selector"), pod["metadata"].get("labels"))]
        if not matching:
            return
        if len(matching) > 1:
            raise ApiError(500, "InternalError",
                           "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")
        budget = self.cluster.budget(*matching[0])
        status = budget["status"]
        if pod_healthy(pod):
            blocked = status["disruptionsAllowed"] <= 0
        else:
            blocked = (status["currentHealthy"] < status["desiredHealthy"]
                       and budget["spec"].get("unhealthyPodEvictionPolicy") != "AlwaysAllow")
        if blocked:
            err = ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.")
            err.details = {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget %s needs %d healthy pods "
                                       "and has %d currently" % (budget["metadata"]["name"], status["desiredHealthy"],
                                                                 status["currentHealthy"])}]}
            raise err

    # poddisruptionbudgets
    def list_budgets(self, query, namespace=None, **_):
        keys = [key for key in sorted(self.cluster.budgets) if namespace is None or key[0] == namespace]
        return self._list("PodDisruptionBudget", [self.cluster.budget(*key) for key in keys], query, "policy/v1")

    def get_budget(self, namespace, name, **_):
        if (namespace, name) not in self.cluster.budgets:
            raise ApiError(404, "NotFound", 'poddisruptionbudgets.policy "%s" not found' % name)
        return 200, self.cluster.budget(namespace, name)

    def create_budget(self, namespace, body, query, **_):
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a PodDisruptionBudget body is required")
        if "dryRun" in query:
            return 201, copy.deepcopy(body)
        return 201, self.cluster.create_budget(body, namespace)


def _summary(method, path, body):
    """A short name for what a request asked for (its status is logged apart): cordon, uncordon, evict, ..."""
    parts = path.strip("/").split("/")
    if method == "PATCH" and len(parts) >= 4 and parts[2] == "nodes":
        spec = body.get("spec") if isinstance(body, dict) else None
        if isinstance(spec, dict) and "unschedulable" in spec and len(body) == 1 and len(spec) == 1:
            return "cordon" if spec["unschedulable"] else "uncordon"
        return "patch_node"
    if method == "POST" and parts[-1] == "eviction":
        return "evict"
    if "poddisruptionbudgets" in parts:
        if method == "POST":
            return "create_budget"
        return "list_budgets" if parts[-1] == "poddisruptionbudgets" else "get_budget"
    if method == "DELETE" and "pods" in parts:
        return "delete_pod"
    if method == "GET" and len(parts) >= 3 and parts[2] == "nodes":
        return "get_node" if len(parts) >= 4 else "list_nodes"
    if method == "GET" and parts[-1] == "pods":
        return "list_pods"
    if method == "GET" and "pods" in parts:
        return "get_pod"
    if parts[0] in ("version", "api", "apis") and method == "GET":
        return "discovery"
    return "other"


class K8sSim:  # pylint: disable=too-many-instance-attributes
    """The server: ``start()``, ``stop()``, ``url``, ``cluster`` (objects), ``requests()`` (the log), ``dump()``.

    ``tls=True`` serves HTTPS with a self-signed certificate written to ``cert_dir`` (also the CA file);
    ``token`` (when set) is the bearer token every request must carry, else 401.
    """

    def __init__(self, tls=False, cert_dir=None, token=None):
        self.cluster = Cluster()
        self.router = Router(self.cluster)
        self.token = token
        self.tls = tls
        self.ca_path = None
        self._context = None
        if tls:
            # pylint: disable-next=import-outside-toplevel
            from pvesim.tls import ensure_certificate

            cert_path, key_path = ensure_certificate(cert_dir or os.getcwd(), name="k8ssim")
            self.ca_path = cert_path
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.load_cert_chain(cert_path, key_path)
        self._log = []
        self._log_lock = threading.Lock()
        self._ready_source = None
        self._ready_thread = None
        self._stopping = threading.Event()
        self.transitions = []
        self.kubeconfig = None
        self._server = None
        self._thread = None
        self.port = None

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def start(self):
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        if self._context is not None:
            self._server.socket = self._context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="k8ssim", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._ready_thread is not None:
            self._ready_thread.join(5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # readiness driven by something else (a simulated VM, say)
    def set_ready_source(self, func, interval=0.05):
        """``func(node_name) -> bool | None`` decides each node's Ready condition, asked every ``interval`` seconds
        and before each request (None leaves the node alone). A node coming back Ready gets a new ``bootID``,
        as a rebooted kubelet reports. Transitions are kept in ``transitions`` as (time, node, ready)."""
        self._ready_source = func
        if self._ready_thread is None:
            self._ready_thread = threading.Thread(target=self._ready_loop, args=(interval,), name="k8ssim-ready", daemon=True)
            self._ready_thread.start()

    def _ready_loop(self, interval):
        while not self._stopping.wait(interval):
            self.refresh_ready()

    def refresh_ready(self):
        source = self._ready_source
        if source is None:
            return
        with self.cluster.lock:
            for name, node in self.cluster.nodes.items():
                wanted = source(name)
                if wanted is None:
                    continue
                current = next((c["status"] == "True" for c in node["status"]["conditions"] if c["type"] == "Ready"), None)
                if current != bool(wanted):
                    if wanted:
                        node["status"]["nodeInfo"]["bootID"] = str(uuid.uuid4())
                    self.cluster.set_ready(name, bool(wanted))
                    self.transitions.append((time.time(), name, bool(wanted)))

    # log
    def record(self, entry):
        with self._log_lock:
            self._log.append(entry)

    def requests(self, action=None):
        """The request log, oldest first: dicts with time, method, path, query, status, action, node, namespace, name."""
        with self._log_lock:
            entries = [dict(e) for e in self._log]
        return [e for e in entries if action is None or e["action"] == action]

    def clear_requests(self):
        with self._log_lock:
            del self._log[:]

    def dump(self):
        return self.cluster.dump()

    def dump_json(self, path):
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.dump(), handle, indent=1, sort_keys=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, sim):
        self.sim = sim
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "k8ssim/1"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        if os.environ.get("K8SSIM_LOG"):
            super().log_message(format, *args)

    def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
        self._handle("GET")

    def do_POST(self):  # noqa: N802  pylint: disable=invalid-name
        self._handle("POST")

    def do_PATCH(self):  # noqa: N802  pylint: disable=invalid-name
        self._handle("PATCH")

    def do_PUT(self):  # noqa: N802  pylint: disable=invalid-name
        self._handle("PUT")

    def do_DELETE(self):  # noqa: N802  pylint: disable=invalid-name
        self._handle("DELETE")

    def _send(self, status, body):
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method):
        sim = self.server.sim
        split = urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        body = None
        status, answer = 500, {}
        try:
            if sim.token and self.headers.get("Authorization") != "Bearer %s" % sim.token:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if raw:
                try:
                    body = json.loads(raw.decode("utf-8"))
                except ValueError as exc:
                    raise ApiError(400, "BadRequest", "the request body is not JSON: %s" % exc) from exc
            sim.refresh_ready()
            handler, params = sim.router.route(method, path)
            with sim.cluster.lock:
                status, answer = handler(query=query, body=body, content_type=content_type, **params)
        except ApiError as err:
            status, answer = err.code, err.status()
        except Exception as exc:  # pylint: disable=broad-except
            status, answer = 500, ApiError(500, "InternalError", "k8ssim: %r" % exc).status()
        parts = path.strip("/").split("/")
        entry = {"time": time.time(), "method": method, "path": path, "query": query, "status": status,
                 "content_type": content_type, "body": body, "action": _summary(method, path, body),
                 "node": parts[3] if len(parts) >= 4 and parts[2] == "nodes" else None,
                 "namespace": parts[3] if len(parts) >= 4 and parts[2] == "namespaces" else None,
                 "name": parts[5] if len(parts) >= 6 and parts[4] == "pods" else None}
        if entry["action"] == "list_pods":
            found = re.search(r"spec\.nodeName==?([^,]+)", query.get("fieldSelector", ""))
            entry["node"] = found.group(1) if found else None
        sim.record(entry)
        self._send(status, answer)
