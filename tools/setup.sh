#!/usr/bin/env bash
# Install what the collection needs on a Debian 12/13 controller, into ./.venv,
# then build the collection and install the tarball offline into ./.cache/collections.
#   tools/setup.sh          controller only (ansible, proxmoxer, kubernetes client)
#   tools/setup.sh --test   also the test tools and the packages the lab VMs need
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_packages=(python3 python3-venv python3-pip git ca-certificates openssh-client)
if [ "$WITH_TEST" -eq 1 ]; then
  apt_packages+=(qemu-system-x86 qemu-utils ovmf debootstrap mtools dosfstools e2fsprogs fdisk
                 grub-efi-amd64-bin systemd-boot-efi shellcheck ffmpeg)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

reqs=(requirements.txt)
[ "$WITH_TEST" -eq 1 ] && reqs+=(tests/requirements-dev.txt)
stamp=".venv/.requirements-$(cat "${reqs[@]}" | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "== creating .venv (${reqs[*]})"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  [ "$WITH_TEST" -eq 1 ] || args+=("ansible-core>=2.16" "ansible>=9")
  .venv/bin/pip install -q --disable-pip-version-check "${args[@]}" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import ansible, proxmoxer, kubernetes" 
  touch "$stamp"
fi

echo "== building and installing the collection into .cache/collections"
mkdir -p .cache/dist .cache/collections
(
  flock 9
  rm -f .cache/dist/homelab-gpu_passthrough-*.tar.gz
  .venv/bin/ansible-galaxy collection build --force --output-path .cache/dist . >/dev/null
  ANSIBLE_COLLECTIONS_PATH="$PWD/.cache/collections" .venv/bin/ansible-galaxy collection install --offline --force --no-deps \
    -p .cache/collections .cache/dist/homelab-gpu_passthrough-*.tar.gz >/dev/null
) 9>.cache/setup.lock
echo "== ready: source tools/env.sh to use .venv and the installed collection"
