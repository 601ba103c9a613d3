# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type of the collection's core: what broke, where, and how to fix it."""

from __future__ import annotations

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import links as chain_links


class PassthroughError(Exception):
    """A failure the user can act on.

    ``message`` says what is wrong and names the offending input,
    ``fix`` says what to do about it, ``link`` is where it broke: an id of ``module_utils/links.py`` (a link of
    the chain, or ``input``, ``file``, ``bootloader``); any other value raises ValueError.
    """

    def __init__(self, message, fix=None, link="input", details=None):
        self.link = chain_links.check(link)
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.details = details or {}

    def __str__(self):
        if self.fix:
            return "%s Fix: %s" % (self.message, self.fix)
        return self.message

    def to_result(self):
        """Keyword arguments for ``AnsibleModule.fail_json``."""
        result = {"msg": str(self), "link": self.link, "fix": self.fix}
        result.update(self.details)
        return result
