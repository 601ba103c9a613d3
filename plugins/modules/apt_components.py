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
  - A file that does not exist is skipped (with a warning when neither exists). Does not refresh the package lists; do
    that when the task reports a change.
  - Each component must be a plain word (letters, digits, C(.+_-)); an empty list or a component with a space
    (C(non free)) is refused.
  - A file that is not UTF-8 is only refused when it would have to change; it is then left as it is. Files are
    replaced atomically, keeping their mode and owner, and no temporary file is left behind.
author: homelab.gpu_passthrough maintainers (@homelab-gpu-passthrough)
options:
  components:
    description:
      - The components to add.
      - By default the ones the Intel media driver (non-free) and its dependencies come from, by distribution (see above).
      - An empty string as an item is refused.
    type: list
    elements: str
  codename:
    description:
      - Release codename whose entries are edited; C(VERSION_CODENAME) from O(os_release) by default.
      - An empty string is refused.
    type: str
  sources_list:
    description:
      - The one-line sources file.
      - An empty string is refused.
    type: path
    default: /etc/apt/sources.list
  deb822_sources:
    description:
      - The deb822 sources file of the distribution.
      - By default C(/etc/apt/sources.list.d/debian.sources) on Debian and C(/etc/apt/sources.list.d/ubuntu.sources) on Ubuntu.
      - An empty string is refused.
    type: path
  os_release:
    description:
      - The os-release file naming the distribution (C(ID), C(VERSION_ID), C(VERSION_CODENAME)).
      - When it is missing, or names a distribution other than Debian (Proxmox VE included) or Ubuntu, the task fails
        naming the file and the fix, unless both O(components) and O(codename) are given.
      - An empty string is refused.
    type: path
    default: /etc/os-release
  root:
    description:
      - Directory the file options are read under; a path that leads outside it (C(..), a symlink) is refused. Meant for
        tests and images.
      - An empty string is refused.
    type: path
    default: /
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

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest.apt_sources import (
    add_components,
    default_components,
    release_facts,
    validate_components,
)
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.host.files import confine, read_for_edit, read_lenient, write_atomic

DEB822_DEFAULTS = {
    "debian": "/etc/apt/sources.list.d/debian.sources",
    "ubuntu": "/etc/apt/sources.list.d/ubuntu.sources",
}


def _plan(path, components, codename, deb822):
    """``(before, after)`` of one sources file; None when it does not exist.

    Bytes that are not UTF-8 are read with replacement; the file is refused only when it would
    have to be written, since a rewrite would not keep them.
    """
    if not os.path.lexists(path):
        return None
    option = "deb822_sources" if deb822 else "sources_list"
    before = read_lenient(path) if os.path.isfile(path) else None
    if before is None:
        read_for_edit(path, option)  # a directory or an unreadable file: refused, naming it
    after = add_components(before, components, codename=codename, deb822=deb822)
    if after != before and "\ufffd" in before:
        read_for_edit(path, option)  # refuses the bytes it could not keep
    return before, after


def run(module):
    p = module.params
    root = p["root"] or "/"
    validate_components(p["components"])
    os_release = confine(root, p["os_release"], "os_release")
    distribution, version_id, codename = release_facts(read_lenient(os_release), p["os_release"], p["components"], p["codename"])
    components = p["components"] or default_components(distribution, version_id)
    deb822 = p["deb822_sources"] or DEB822_DEFAULTS.get(distribution)
    targets = [(confine(root, p["sources_list"], "sources_list"), False)]
    if deb822:
        targets.append((confine(root, deb822, "deb822_sources"), True))
    planned = [(path, _plan(path, components, codename, is_deb822)) for path, is_deb822 in targets]
    if all(plan is None for _path, plan in planned):
        module.warn("None of %s exists, so no component was added." % ", ".join(path for path, _plan in planned))
    changed = [(path, plan) for path, plan in planned if plan is not None and plan[0] != plan[1]]
    if not module.check_mode:
        for path, (_before, after) in changed:
            write_atomic(path, after)
    result = {
        "changed": bool(changed),
        "distribution": distribution,
        "codename": codename,
        "components": list(components),
        "files": [path for path, _plan in changed],
    }
    if module._diff:
        result["diff"] = [{"before_header": path, "after_header": path, "before": before, "after": after} for path, (before, after) in changed]
    return result


def main():
    module = option_checks.checked_module(
        dict(
            components=dict(type="list", elements="str"),
            codename=dict(type="str"),
            sources_list=dict(type="path", default="/etc/apt/sources.list"),
            deb822_sources=dict(type="path"),
            os_release=dict(type="path", default="/etc/os-release"),
            root=dict(type="path", default="/"),
        ),
        supports_check_mode=True,
    )
    option_checks.exit_with(module, lambda: run(module))


if __name__ == "__main__":
    main()
