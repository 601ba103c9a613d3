# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # Connection and authentication options of the pve_* modules.
    DOCUMENTATION = r"""
options:
  api_host:
    description:
      - Name or address of a Proxmox VE node whose API (pveproxy) the module talks to.
      - Uses the E(PROXMOX_HOST) environment variable if not set.
      - An empty string is refused.
    type: str
    required: true
  api_port:
    description:
      - Port of the Proxmox VE API. When not set, C(8006).
      - Uses the E(PROXMOX_PORT) environment variable if not set.
      - Valid values are 1..65535; any other value is refused before anything is sent or changed.
    type: int
  api_user:
    description:
      - The user with its realm, for example V(root@pam) or V(automation@pve).
      - With an API token this is the user the token belongs to.
      - Uses the E(PROXMOX_USER) environment variable if not set.
      - An empty string is refused.
    type: str
    required: true
  api_password:
    description:
      - The user's password; the module logs in and works with a ticket.
      - Only V(root@pam) with its password may attach raw PCI devices (C(hostpciN) with a C(host) address).
      - Uses the E(PROXMOX_PASSWORD) environment variable if not set.
      - Mutually exclusive with O(api_token_id).
      - An empty string is refused.
    type: str
  api_token_id:
    description:
      - The name of an API token of O(api_user), for example V(ansible) for the token C(automation@pve!ansible).
      - Proxmox VE sees a token as C(user@realm!name), which is never C(root@pam), so a token cannot attach raw PCI
        devices; use a cluster PCI mapping instead.
      - Uses the E(PROXMOX_TOKEN_ID) environment variable if not set.
      - An empty string is refused.
    type: str
  api_token_secret:
    description:
      - The secret (UUID) of the API token O(api_token_id).
      - Uses the E(PROXMOX_TOKEN_SECRET) environment variable if not set.
      - An empty string is refused.
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of the API.
      - A fresh Proxmox VE cluster uses a self-signed certificate; give its CA with O(ca_path) rather than turning this off.
      - Uses the E(PROXMOX_VALIDATE_CERTS) environment variable if not set.
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file with the CA certificate(s) to verify the API's certificate with, such as a copy of
        C(/etc/pve/pve-root-ca.pem) from a cluster node.
      - Without it the system's CA store is used.
      - Uses the E(PROXMOX_CA_PATH) environment variable if not set.
      - An empty string means the same as leaving the option out.
    type: path
  api_timeout:
    description:
      - Seconds to wait for each API request.
      - Valid values are at least 1; any other value is refused before anything is sent or changed.
    type: int
    default: 30
notes:
  - Requests that only read are retried on connection errors and server errors with a short backoff; writes are sent once.
  - Option names and meaning follow the community.proxmox collection, so inventories and environment variables carry over.
requirements:
  - proxmoxer >= 2.0
  - requests
"""
