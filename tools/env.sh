# shellcheck shell=bash
# Source this file to use the project's .venv and the collection installed by tools/setup.sh.
_gp_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_gp_root/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$_gp_root/.cache/collections"
export ANSIBLE_ROLES_PATH="$_gp_root/.cache/collections/ansible_collections/homelab/gpu_passthrough/roles"
unset _gp_root
