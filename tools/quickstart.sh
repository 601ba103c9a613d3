#!/usr/bin/env bash
# Fresh Debian machine -> everything installed -> the doctor playbook run against this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
# shellcheck source=tools/env.sh
. tools/env.sh
exec ansible-playbook -i localhost, -c local playbooks/doctor.yml "$@"
