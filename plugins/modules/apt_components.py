#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: apt_components
short_description: Add archive components such as non-free or multiverse to the distribution's APT sources
version_added: 0.1.0
description:
  - Appends the missing O(components) to the entries of the running release that carry C(main), in the
    one-line file O(sources_list) and in the deb822 file O(deb822_sources) (its C(Components) field).
  - Only entries whose suite is the release codename or C(<codename>-<pocket>) (updates, security, backports) are
    touched, so other repositories in the same file keep their components; comments, options such as
    C([signed-by=...]) and every other line stay as they are.
  - The distribution and codename come from O(os_release). By default Debian 12 and later get C(non-free) and
    C(non-free-firmware), Debian 11 C(non-free), Ubuntu C(universe) and C(multiverse).
  - A file that does not exist is skipped. Does not refresh the package lists; do that when the task reports a change.
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
options:
  components:
    description:
      - The components to add.
      - By default the ones the Intel media driver (non-free) and its dependencies come from, by distribution (see above).
    type: list
    elements: str
  codename:
    description: Release codename whose entries are edited; C(VERSION_CODENAME) from O(os_release) by default.
    type: str
  sources_list:
    description: The one-line sources file.
    type: path
    default: /etc/apt/sources.list
  deb822_sources:
    description:
      - The deb822 sources file of the distribution.
      - By default C(/etc/apt/sources.list.d/debian.sources) on Debian and C(/etc/apt/sources.list.d/ubuntu.sources) on Ubuntu.
    type: path
  os_release:
    description: The os-release file naming the distribution (C(ID), C(VERSION_ID), C(VERSION_CODENAME)).
    type: path
    default: /etc/os-release
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: debian
notes:
  - Third-party repositories conventionally live in their own files under C(/etc/apt/sources.list.d/); only the two
    distribution files are read.
"""

EXAMPLES = r"""
- name: Enable non-free (Debian) or universe and multiverse (Ubuntu)
  homelab.gpu_passthrough.apt_components:
  register: components

- name: Refresh the package lists when a component was added
  ansible.builtin.apt:
    update_cache: true
  when: components is changed

- name: Add contrib to a Debian 12 sources.list only
  homelab.gpu_passthrough.apt_components:
    components: [contrib]
    codename: bookworm
    deb822_sources: /nonexistent
"""

RETURN = r"""
distribution:
  description: C(ID) from O(os_release).
  returned: always
  type: str
  sample: debian
codename:
  description: The codename whose entries were considered.
  returned: always
  type: str
  sample: bookworm
components:
  description: The components that were wanted.
  returned: always
  type: list
  elements: str
  sample: [non-free, non-free-firmware]
files:
  description: The files that were (or in check mode would be) changed.
  returned: always
  type: list
  elements: str
  sample: [/etc/apt/sources.list]
"""

# Ansible modules import below their documentation blocks.
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.apt_sources import (
    add_components,
    default_components,
    parse_os_release,
)

DEB822_DEFAULTS = {
    "debian": "/etc/apt/sources.list.d/debian.sources",
    "ubuntu": "/etc/apt/sources.list.d/ubuntu.sources",
}


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _write(module, path, text):
    """Replace the file atomically, keeping its owner and mode."""
    tmp = "%s.gpu_passthrough.tmp" % path
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    st = os.stat(path)
    os.chmod(tmp, st.st_mode & 0o7777)
    try:
        os.chown(tmp, st.st_uid, st.st_gid)
    except PermissionError:
        pass
    module.atomic_move(tmp, path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            components=dict(type="list", elements="str"),
            codename=dict(type="str"),
            sources_list=dict(type="path", default="/etc/apt/sources.list"),
            deb822_sources=dict(type="path"),
            os_release=dict(type="path", default="/etc/os-release"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    release = parse_os_release(_read(params["os_release"]) or "")
    distribution = release.get("ID", "").lower()
    codename = params["codename"] or release.get("VERSION_CODENAME") or release.get("UBUNTU_CODENAME") or None
    components = params["components"]
    if components is None:
        components = default_components(distribution, release.get("VERSION_ID"))
    deb822 = params["deb822_sources"] or DEB822_DEFAULTS.get(distribution)

    changed_files = []
    diffs = []
    targets = [(params["sources_list"], False)]
    if deb822:
        targets.append((deb822, True))
    for path, is_deb822 in targets:
        before = _read(path)
        if before is None:
            continue
        after = add_components(before, components, codename=codename, deb822=is_deb822)
        if after == before:
            continue
        changed_files.append(path)
        diffs.append({"before_header": path, "after_header": path, "before": before, "after": after})
        if not module.check_mode:
            _write(module, path, after)

    result = {
        "changed": bool(changed_files),
        "distribution": distribution,
        "codename": codename,
        "components": list(components),
        "files": changed_files,
    }
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
