# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""examples/kubernetes: the Jellyfin manifests say what Jellyfin's docs ask for, with and without the device plugin."""

import os

import yaml

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "examples", "kubernetes")


def _deployment(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as handle:
        items = yaml.safe_load(handle)["items"]
    return next(i for i in items if i["kind"] == "Deployment")["spec"]["template"]["spec"]


def test_device_plugin_variant_asks_for_the_gpu_resource():
    spec = _deployment("jellyfin.yml")
    container = spec["containers"][0]
    assert container["resources"]["limits"]["gpu.intel.com/i915"] == "1"
    assert {"name": "LIBVA_DRIVER_NAME", "value": "iHD"} in container["env"]
    assert all(isinstance(gid, int) for gid in spec["securityContext"]["supplementalGroups"])
    assert not [v for v in spec["volumes"] if "hostPath" in v]


def test_no_plugin_variant_mounts_the_render_node_as_jellyfin_documents():
    spec = _deployment("jellyfin-no-plugin.yml")
    container = spec["containers"][0]
    assert container["securityContext"]["privileged"] is True
    assert "gpu.intel.com/i915" not in container["resources"].get("limits", {})
    render = next(v for v in spec["volumes"] if v["name"] == "render-device")
    assert render["hostPath"] == {"path": "/dev/dri/renderD128", "type": "CharDevice"}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "render-device")
    assert mount["mountPath"] == render["hostPath"]["path"]
    assert len(spec["securityContext"]["supplementalGroups"]) == 1
    assert spec["nodeSelector"] == {"gpu.homelab.io/h264-encode": "true"}
