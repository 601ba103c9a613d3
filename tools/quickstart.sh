#!/usr/bin/env bash
# Fresh Debian machine -> everything installed -> the whole chain (playbooks/site.yml) on the local lab:
# a Proxmox-like host VM, a k3s worker VM and the API stand-ins (see lab/README.md). Run as root.
# Arguments go to lab/chain up (for example --twice); `lab/chain down` stops the lab.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh --test
exec lab/chain up --no-setup "$@"
