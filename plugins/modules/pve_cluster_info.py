#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pve_cluster_info
short_description: Read a Proxmox VE cluster's quorum, votes, HA resources and guests per node
version_added: 0.1.0
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
description:
  - Reads what a rolling change of the cluster's nodes must know before it reboots one - whether the cluster is
    quorate, each node's corosync votes and whether it is online, the HA-managed guests, and every VM and
    container per node with its status.
  - Only reads (C(GET /cluster/status), C(GET /cluster/config/nodes), C(GET /cluster/ha/resources),
    C(GET /cluster/resources?type=vm)); never changes anything.
  - A standalone node (not in a cluster) is reported as quorate with C(standalone=true).
extends_documentation_fragment:
  - homelab.gpu_passthrough.pve_auth
attributes:
  check_mode:
    description: The module only reads; it runs the same in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
options:
  guests:
    description:
      - Also list the guests of every node (C(GET /cluster/resources?type=vm)).
    type: bool
    default: true
notes:
  - Needs C(Sys.Audit) on C(/) (C(PVEAuditor) has it); guests are listed as far as the user may see them
    (C(VM.Audit)).
  - The votes of a QDevice are not reported by these calls; give them to the fleet plan yourself
    (C(site_qdevice_votes) in C(playbooks/site.yml)).
requirements:
  - proxmoxer >= 2.0
  - requests
seealso:
  - module: homelab.gpu_passthrough.pve_vm_q35
"""

EXAMPLES = r"""
- name: Read the cluster before a rolling run
  homelab.gpu_passthrough.pve_cluster_info:
    api_host: pve1.example.lan
    api_user: root@pam
    api_password: "{{ vault_pve_root_password }}"
  register: pve

- name: Stop when the cluster is not quorate
  ansible.builtin.assert:
    that: pve.cluster.quorate
    fail_msg: "cluster {{ pve.cluster.name }} is not quorate"
"""

RETURN = r"""
cluster:
  description: The cluster and its nodes.
  returned: always
  type: dict
  contains:
    name:
      description: The cluster name; null on a standalone node.
      type: str
    quorate:
      description: Whether the cluster has quorum (always true on a standalone node).
      type: bool
    standalone:
      description: The node is not in a cluster.
      type: bool
    expected_votes:
      description: The sum of the nodes' votes (a QDevice's votes not included).
      type: int
    nodes:
      description: The nodes, by name.
      type: list
      elements: dict
      contains:
        name:
          description: The node name.
          type: str
        nodeid:
          description: The corosync node id (0 on a standalone node).
          type: int
        online:
          description: Whether the node is online.
          type: bool
        local:
          description: Whether it is the node that answered.
          type: bool
        votes:
          description: Its corosync C(quorum_votes).
          type: int
  sample:
    name: homelab
    quorate: true
    standalone: false
    expected_votes: 3
    nodes:
      - {name: pve1, nodeid: 1, online: true, local: true, votes: 1}
ha_resources:
  description: The HA resources.
  returned: always
  type: list
  elements: dict
  contains:
    sid:
      description: The resource id, V(vm:120) or V(ct:200).
      type: str
    type:
      description: V(vm) or V(ct).
      type: str
    vmid:
      description: The guest's VMID.
      type: int
    state:
      description: The requested state (V(started), V(stopped), V(disabled), V(ignored)).
      type: str
    group:
      description: The HA group, if any.
      type: str
guests:
  description: Per node, its VMs and containers.
  returned: when O(guests=true)
  type: dict
  sample:
    pve1:
      - {vmid: 120, name: k3s-agent-1, type: qemu, status: running, template: false, ha_state: null}
      - {vmid: 130, name: jellyfin, type: lxc, status: running, template: false, ha_state: started}
"""

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.client import pve_module, session_from_module
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.cluster import read_cluster


def main():
    argument_spec = dict(guests=dict(type="bool", default=True))
    module = pve_module(
        argument_spec,
    )
    option_checks.exit_with(module, lambda: dict(read_cluster(session_from_module(module),
                                                              guests=module.params["guests"]), changed=False))


if __name__ == "__main__":
    main()
