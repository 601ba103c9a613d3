# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Proxmox VE connection the roles send: the rule (pve/client.py) and the lookup over it, in a real play."""

import json
import os
import subprocess
import sys

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import client
from installed_collection import skip_unless_installed


def test_only_the_options_that_are_set():
    found = client.connection({
        "gpu_vm_proxmox_api_host": "pve1.lan", "gpu_vm_proxmox_api_port": 8006, "gpu_vm_proxmox_api_user": "",
        "gpu_vm_proxmox_api_token_id": None, "gpu_vm_proxmox_validate_certs": False, "gpu_vm_proxmox_ca_path": "  ",
        "proxmox_api_host": "not ours",
    })
    assert found == {"api_host": "pve1.lan", "api_port": 8006, "validate_certs": False}


def test_every_option_is_one_of_the_modules():
    assert {option for option, _variable in client.CONNECTION_VARIABLES} <= set(client.AUTH_ARGUMENT_SPEC)
    assert [variable for _option, variable in client.CONNECTION_VARIABLES] == [
        "gpu_vm_proxmox_" + option for option, _variable in client.CONNECTION_VARIABLES]


PLAY = """
- hosts: agent
  gather_facts: false
  vars:
    gpu_vm_proxmox_api_user: "{{ 'automation' ~ '@pve' }}"
    gpu_vm_proxmox_validate_certs: false
  tasks:
    - name: Play and inventory variables
      ansible.builtin.debug:
        msg: "{{ lookup('homelab.gpu_passthrough.proxmox_connection') | to_json }}"
    - name: A task variable overrides, an empty one unsets
      vars:
        gpu_vm_proxmox_api_host: pve2.lan
        gpu_vm_proxmox_api_token_secret: ""
      ansible.builtin.debug:
        msg: "{{ lookup('homelab.gpu_passthrough.proxmox_connection') | to_json }}"
    - name: Terms are refused
      ansible.builtin.debug:
        msg: "{{ lookup('homelab.gpu_passthrough.proxmox_connection', 'api_host') }}"
      ignore_errors: true
"""


@skip_unless_installed("plugins", "lookup", "proxmox_connection.py")
def test_the_lookup_reads_every_level_of_variables(tmp_path):
    (tmp_path / "inventory.yml").write_text(
        "all:\n  hosts:\n    agent:\n      ansible_connection: local\n      ansible_python_interpreter: %s\n"
        "      gpu_vm_proxmox_api_host: pve1.lan\n      gpu_vm_proxmox_api_token_id: ansible\n"
        "      gpu_vm_proxmox_api_token_secret: s3cret\n" % sys.executable)
    (tmp_path / "play.yml").write_text(PLAY)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOCALHOST_WARNING="false")
    run = subprocess.run(["ansible-playbook", "-i", "inventory.yml", "play.yml"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tasks = json.loads(run.stdout[run.stdout.index("{"):])["plays"][0]["tasks"]
    results = [task["hosts"]["agent"] for task in tasks]
    assert json.loads(results[0]["msg"]) == {
        "api_host": "pve1.lan", "api_user": "automation@pve", "api_token_id": "ansible", "api_token_secret": "s3cret",
        "validate_certs": False}
    assert json.loads(results[1]["msg"]) == {
        "api_host": "pve2.lan", "api_user": "automation@pve", "api_token_id": "ansible", "validate_certs": False}
    assert results[2].get("failed") and "takes no terms" in results[2]["msg"]
