# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: proxmox_connection
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
short_description: The Proxmox VE API options named by the inventory's gpu_vm_proxmox_* variables
version_added: 0.2.0
description:
  - Returns the options of the collection's C(homelab.gpu_passthrough.proxmox) action group (C(api_host),
    C(api_port), C(api_user), C(api_password), C(api_token_id), C(api_token_secret), C(validate_certs),
    C(ca_path)) that the variables C(gpu_vm_proxmox_api_host), C(gpu_vm_proxmox_api_port), C(gpu_vm_proxmox_api_user),
    C(gpu_vm_proxmox_api_password), C(gpu_vm_proxmox_api_token_id), C(gpu_vm_proxmox_api_token_secret),
    C(gpu_vm_proxmox_validate_certs) and C(gpu_vm_proxmox_ca_path) set where the lookup runs (inventory, play,
    role or task variables).
  - Only the options that are set; an unset, null or empty variable leaves the option to the module, so its
    C(PROXMOX_*) environment fallback (an AWX credential) and its default apply.
  - The one reader of these variables for the roles C(gpu_vm) and C(site).
notes:
  - Takes no terms.
"""

EXAMPLES = r"""
- name: Read the cluster with the agent's Proxmox VE settings
  module_defaults:
    group/homelab.gpu_passthrough.proxmox: "{{ lookup('homelab.gpu_passthrough.proxmox_connection') }}"
  homelab.gpu_passthrough.pve_cluster_info:
"""

RETURN = r"""
_raw:
  description: The options that are set, by option name.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import client


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("proxmox_connection takes no terms; it reads the gpu_vm_proxmox_* variables")
        variables = variables or {}
        named = {variable: self._templar.template(variables[variable])
                 for _option, variable in client.CONNECTION_VARIABLES if variable in variables}
        return [client.connection(named)]
