# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gpu_worker_diagnosis / gpu_worker_labels filters as the role calls them."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.gpu_passthrough.plugins.filter.gpu_worker import FilterModule

FILTERS = FilterModule().filters()


def test_registered_names():
    assert sorted(FILTERS) == ["gpu_worker_diagnosis", "gpu_worker_labels"]


def test_diagnosis_takes_one_codec_name_or_a_list():
    facts = {"render_nodes": [], "results": {}}
    assert FILTERS["gpu_worker_diagnosis"](facts, required="hevc_encode")["codecs"]["missing"] == ["hevc_encode"]
    assert FILTERS["gpu_worker_diagnosis"](facts, required=("h264_decode",))["codecs"]["missing"] == ["h264_decode"]
    with pytest.raises(AnsibleFilterError, match="required"):
        FILTERS["gpu_worker_diagnosis"](facts, required=5)
    with pytest.raises(AnsibleFilterError, match="dict"):
        FILTERS["gpu_worker_diagnosis"]("nope")


def test_diagnosis_takes_non_free_and_huc():
    facts = {"render_nodes": [], "results": {}}
    assert FILTERS["gpu_worker_diagnosis"](facts, non_free="true", huc=None)["link"] == "vm_config"
    with pytest.raises(AnsibleFilterError, match="huc"):
        FILTERS["gpu_worker_diagnosis"](facts, huc="maybe")


def test_labels_from_the_gpu_fact():
    gpu = {"node": "/dev/dri/renderD128", "pci_id": "8086:3e92", "vendor": "8086", "device": "3e92", "class": "030000"}
    result = FILTERS["gpu_worker_labels"](gpu, names={"8086:3e92": "intel-uhd-630"}, cpu_tier="i5-8500t",
                                          current={"cpu-tier": "i5-8500t", "gpu.homelab.io/av1-decode": "true"},
                                          offered={"h264": {"decode": True, "encode": "lp"}}, nfd="yes",
                                          managed="cpu-tier,gpu")
    assert result["gpu"] == gpu
    assert result["labels"] == {"gpu": "intel-uhd-630", "cpu-tier": "i5-8500t", "gpu.homelab.io/h264-decode": "true",
                                "gpu.homelab.io/h264-encode": "true", "intel.feature.node.kubernetes.io/gpu": "true",
                                "gpu.intel.com/device-id.0300-3e92.present": "true"}
    assert result["changes"]["gpu.homelab.io/av1-decode"] is None and "cpu-tier" not in result["changes"]
    assert FILTERS["gpu_worker_labels"](None)["labels"] == {}


def test_labels_errors_are_filter_errors():
    with pytest.raises(AnsibleFilterError, match="label value"):
        FILTERS["gpu_worker_labels"](None, extra={"gpu": "two words"})
    with pytest.raises(AnsibleFilterError, match="ansible_facts.vainfo.gpu"):
        FILTERS["gpu_worker_labels"]("renderD128 0x8086 0x3e92")
