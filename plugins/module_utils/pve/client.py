# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Proxmox VE API session of the collection's modules, on top of proxmoxer.

* Authentication with a password (ticket) or an API token, with the option names and meaning of
  community.proxmox (``api_user`` like ``automation@pve``, ``api_token_id`` the token's name like
  ``ansible``), so inventories move over unchanged.
* Certificate checks on by default; a self-signed cluster works with ``ca_path``.
* ``get``/``post``/``put``/``delete`` take an API path such as ``/nodes/pve1/qemu/120/config`` and
  return the ``data`` of the answer. Reads (GET) are retried on transient failures (connection
  errors, 5xx) with a short backoff; writes are never retried.
* ``wait_task`` follows a UPID until the task stops, polling fast first and backing off, and fails
  at once with the task's exit status text.
* Every failure is a ``PassthroughError`` carrying Proxmox's own message and a fix.
"""

from __future__ import annotations

import os
import time
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils import option_checks
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve.config import config_from_pending

try:
    import requests
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import AuthenticationError, ResourceException
except ImportError:
    HAS_PROXMOXER = False
    PROXMOXER_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PROXMOXER = True
    PROXMOXER_IMPORT_ERROR = None

DEFAULT_PORT = 8006
ROOT = "root@pam"

AUTH_ARGUMENT_SPEC = dict(
    api_host=dict(type="str", required=True, fallback=(env_fallback, ["PROXMOX_HOST"])),
    api_port=dict(type="int", fallback=(env_fallback, ["PROXMOX_PORT"])),
    api_user=dict(type="str", required=True, fallback=(env_fallback, ["PROXMOX_USER"])),
    api_password=dict(type="str", no_log=True, fallback=(env_fallback, ["PROXMOX_PASSWORD"])),
    api_token_id=dict(type="str", no_log=False, fallback=(env_fallback, ["PROXMOX_TOKEN_ID"])),
    api_token_secret=dict(type="str", no_log=True, fallback=(env_fallback, ["PROXMOX_TOKEN_SECRET"])),
    validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["PROXMOX_VALIDATE_CERTS"])),
    ca_path=dict(type="path", fallback=(env_fallback, ["PROXMOX_CA_PATH"])),
    api_timeout=dict(type="int", default=30),
)
# option_checks declarations of the options above
AUTH_RANGES = {"api_port": option_checks.TCP_PORT, "api_timeout": option_checks.REQUEST_TIMEOUT}
# an empty ca_path is the system's CA store, as when it is left out; every other empty auth option is refused
AUTH_EMPTY_MEANS_DEFAULT = ("ca_path",)
AUTH_REQUIRED_ONE_OF = [("api_password", "api_token_id")]
AUTH_REQUIRED_TOGETHER = [("api_token_id", "api_token_secret")]
AUTH_MUTUALLY_EXCLUSIVE = [("api_password", "api_token_id")]


def pve_module(argument_spec, ranges=None, empty_means_default=(), required_one_of=(), required_together=(),
               mutually_exclusive=(), **kwargs):
    """The AnsibleModule of a ``pve_*`` module: its own options and the connection options (the ``pve_auth`` doc
    fragment) with their constraints, every option checked before any request (``option_checks``); check mode is
    supported by every one of them."""
    spec = dict(argument_spec)
    spec.update(AUTH_ARGUMENT_SPEC)
    return option_checks.checked_module(
        spec,
        ranges=dict(AUTH_RANGES, **(ranges or {})),
        empty_means_default=AUTH_EMPTY_MEANS_DEFAULT + tuple(empty_means_default),
        required_one_of=AUTH_REQUIRED_ONE_OF + list(required_one_of),
        required_together=AUTH_REQUIRED_TOGETHER + list(required_together),
        mutually_exclusive=AUTH_MUTUALLY_EXCLUSIVE + list(mutually_exclusive),
        supports_check_mode=True,
        **kwargs
    )


# The inventory variables that name the Proxmox VE connection of the roles' API calls (the module_defaults of the
# collection's proxmox action group), one per option of AUTH_ARGUMENT_SPEC the roles pass. The lookup
# proxmox_connection reads them for the gpu_vm and site roles.
CONNECTION_VARIABLES = (
    ("api_host", "gpu_vm_proxmox_api_host"),
    ("api_port", "gpu_vm_proxmox_api_port"),
    ("api_user", "gpu_vm_proxmox_api_user"),
    ("api_password", "gpu_vm_proxmox_api_password"),
    ("api_token_id", "gpu_vm_proxmox_api_token_id"),
    ("api_token_secret", "gpu_vm_proxmox_api_token_secret"),
    ("validate_certs", "gpu_vm_proxmox_validate_certs"),
    ("ca_path", "gpu_vm_proxmox_ca_path"),
)


def connection(variables):
    """The module options named by ``variables`` (variable name -> value), only those that are set.

    An unset, null or empty variable leaves its option to the module (its environment fallback, then its
    default), so ``PROXMOX_*`` in AWX credentials still apply; ``validate_certs: false`` is a value, kept.
    """
    options = {}
    for option, variable in CONNECTION_VARIABLES:
        value = (variables or {}).get(variable)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        options[option] = value
    return options


FIX_TLS = (
    "give the cluster's CA certificate with 'ca_path: <your cluster CA, /etc/pve/pve-root-ca.pem on a node>' "
    "(or PROXMOX_CA_PATH), or turn the check off with 'validate_certs: false' on a network you control."
)

# Reads are tried this often in all; the pauses between the tries.
READ_ATTEMPTS = 3
READ_BACKOFF = (0.1, 0.4)
# Task polling: the first look after POLL_FIRST, then pauses of half the run time so far, at most
# POLL_MAX (so a VM start or shutdown is noticed within a quarter second), and POLL_MAX_LONG once a
# task has run POLL_LONG_AFTER seconds (backups, clones), where a second's delay does not matter.
POLL_FIRST = 0.05
POLL_FACTOR = 0.5
POLL_MAX = 0.25
POLL_LONG_AFTER = 60.0
POLL_MAX_LONG = 2.0
# HTTP statuses of a read worth another try: server errors and PVE's proxy errors, not "not implemented".
_TRANSIENT_SKIP = (501,)


def task_ok(exitstatus):
    """pve-common: src/PVE/UPID.pm status_is_error: only ``OK`` and ``WARNINGS: <n>`` are success."""
    if exitstatus == "OK":
        return True
    return isinstance(exitstatus, str) and exitstatus.startswith("WARNINGS: ") and exitstatus[len("WARNINGS: "):].strip().isdigit()


def upid_node(upid):
    """The node of a UPID ``UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:`` (pve-common UPID.pm)."""
    parts = str(upid).split(":")
    if len(parts) < 8 or parts[0] != "UPID" or not parts[1]:
        raise PassthroughError(
            "%r is not a Proxmox task id (UPID)." % (upid,),
            fix="pass the string a Proxmox API call returned, shaped UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:.",
            link="input",
        )
    return parts[1]


def _clean(params):
    """Drop None values, write booleans as 1/0 (what PVE's schema expects)."""
    out = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = 1 if value else 0
        out[key] = value
    return out


class PveSession:
    """One authenticated connection to a Proxmox VE cluster."""

    def __init__(self, api_host, api_user, api_password=None, api_token_id=None, api_token_secret=None, api_port=None,
                 validate_certs=True, ca_path=None, api_timeout=30):
        if not HAS_PROXMOXER:
            raise PassthroughError(
                "The Python library proxmoxer (and requests) is needed to talk to the Proxmox API.",
                fix="install it on the host that runs the module: pip install proxmoxer requests.",
                link="input",
            )
        if not api_host:
            raise PassthroughError("api_host is empty.", fix="set api_host (or PROXMOX_HOST) to a cluster node's name or address.")
        if not api_user:
            raise PassthroughError("api_user is empty.", fix="set api_user (or PROXMOX_USER), e.g. root@pam or automation@pve.")
        if "@" not in api_user:
            raise PassthroughError(
                "api_user %r has no realm: Proxmox VE names a user user@realm." % api_user,
                fix="write the realm too: 'root@pam' for the root account, 'automation@pve' for a Proxmox VE user.",
                details={"option": "api_user", "value": api_user},
            )
        if api_port is not None and not 0 < int(api_port) < 65536:
            raise PassthroughError(
                "api_port %r is not a TCP port." % api_port,
                fix="set api_port to 1..65535; pveproxy listens on 8006.",
                details={"option": "api_port", "value": api_port},
            )
        if validate_certs and ca_path and not os.path.isfile(ca_path):
            raise PassthroughError(
                "ca_path %r is not a file on the host that runs the module." % ca_path,
                fix="copy the cluster CA (/etc/pve/pve-root-ca.pem on a node) there, or give its path; ca_path is read on the "
                    "managed host, not the controller, unless the task is delegated to localhost.",
                details={"option": "ca_path", "value": ca_path},
            )
        token_name = api_token_id
        if token_name and "!" in token_name:
            # A full token id 'user@realm!name' is accepted too; its user part must agree with api_user.
            token_user, _sep, token_name = token_name.partition("!")
            if token_user != api_user:
                raise PassthroughError(
                    "api_token_id %r belongs to %s, but api_user is %s." % (api_token_id, token_user, api_user),
                    fix="set api_token_id to the token's name only (e.g. 'ansible') and api_user to its user.",
                )
        if api_password is None and not (token_name and api_token_secret):
            raise PassthroughError(
                "No credentials for %s: neither api_password nor api_token_id with api_token_secret is set." % api_user,
                fix="set api_password (PROXMOX_PASSWORD), or api_token_id and api_token_secret (PROXMOX_TOKEN_ID, PROXMOX_TOKEN_SECRET).",
            )
        self.api_host = api_host
        self.api_port = int(api_port) if api_port else DEFAULT_PORT
        self.api_user = api_user
        self._password = api_password
        self.token_name = token_name if api_password is None else None
        self._token_secret = api_token_secret
        self.validate_certs = bool(validate_certs)
        self.ca_path = ca_path
        self.api_timeout = api_timeout or 30
        self._api = None
        self._pci_devices = {}
        self.request_count = {"reads": 0, "writes": 0, "logins": 0}
        if not self.validate_certs:
            try:
                requests.packages.urllib3.disable_warnings()
            except AttributeError:
                pass

    # ------------------------------------------------------------------ identity
    @property
    def authid(self):
        """What PVE sees as the user: ``root@pam`` or ``user@realm!tokenid`` for a token."""
        if self.token_name:
            return "%s!%s" % (self.api_user, self.token_name)
        return self.api_user

    @property
    def is_root(self):
        return self.authid == ROOT

    @property
    def url(self):
        return "https://%s:%d/api2/json" % (self.api_host, self.api_port)

    def _verify(self):
        if not self.validate_certs:
            return False
        return self.ca_path or True

    # ------------------------------------------------------------------ errors
    def _tls_error(self, exc):
        return PassthroughError(
            "The TLS certificate of the Proxmox API at %s could not be verified (%s)." % (self.url, _short(exc)),
            fix=FIX_TLS,
            link="input",
        )

    def _connection_error(self, method, path, exc):
        return PassthroughError(
            "Cannot reach the Proxmox API at %s (%s %s): %s." % (self.url, method, path, _short(exc)),
            fix="check api_host/api_port (PROXMOX_HOST/PROXMOX_PORT), that pveproxy runs on the node and that the port is reachable; "
                "raise api_timeout if the cluster is slow.",
            link="input",
            details={"transient": True},
        )

    def _api_error(self, method, path, exc):
        status = getattr(exc, "status_code", None)
        text = (getattr(exc, "content", None) or str(exc)).strip()
        errors = getattr(exc, "errors", None)
        message = "Proxmox API %s %s failed: %s %s" % (method, path, status, text)
        if errors:
            if isinstance(errors, dict):
                message += " (%s)" % "; ".join("%s: %s" % (k, str(v).strip()) for k, v in sorted(errors.items()))
            else:
                message += " (%s)" % str(errors).strip()
        details = {"status": status, "pve_message": text}
        if status == 401:
            return PassthroughError(
                message + ".",
                fix="check api_user, api_token_id and api_token_secret: a token is given as its name (e.g. 'ansible') with its user in api_user.",
                link="input",
                details=details,
            )
        if status == 403:
            return PassthroughError(
                message + ".",
                fix="grant %s the privilege named above on that path (Datacenter > Permissions), or use a user that has it." % self.authid,
                link="input",
                details=details,
            )
        if status == 400:
            return PassthroughError(message + ".", fix="correct the parameter named above.", link="input", details=details)
        details["transient"] = bool(status and status >= 500 and status not in _TRANSIENT_SKIP)
        return PassthroughError(message + ".", fix="see Proxmox's message above; the cluster's task log and journal have details.",
                                link="vm_config", details=details)

    # ------------------------------------------------------------------ connection
    def _connect(self):
        if self._api is not None:
            return self._api
        kwargs = dict(port=self.api_port, user=self.api_user, verify_ssl=self._verify(), timeout=self.api_timeout)
        if self.token_name:
            kwargs.update(token_name=self.token_name, token_value=self._token_secret)
        else:
            kwargs.update(password=self._password)
        last = None
        for attempt in range(READ_ATTEMPTS):
            if attempt:
                time.sleep(READ_BACKOFF[min(attempt - 1, len(READ_BACKOFF) - 1)])
            try:
                if not self.token_name:
                    self.request_count["logins"] += 1
                self._api = ProxmoxAPI(self.api_host, backend="https", **kwargs)
                return self._api
            except requests.exceptions.SSLError as exc:
                raise self._tls_error(exc) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                last = self._connection_error("POST", "/access/ticket", exc)
            except AuthenticationError as exc:
                text = str(exc)
                if " code: 5" in text:
                    last = PassthroughError("Login to %s failed: %s." % (self.url, text), fix="retry later; the API answered a server error.", link="input")
                    continue
                raise PassthroughError(
                    "Authentication failed for %s at %s (%s)." % (self.api_user, self.url, text),
                    fix="check api_user (with its realm, e.g. root@pam) and api_password.",
                    link="input",
                ) from None
        raise last

    def _call(self, method, path, params):
        api = self._connect()
        resource = api(str(path).strip("/"))
        params = _clean(params)
        is_read = method == "GET"
        attempts = READ_ATTEMPTS if is_read else 1
        for attempt in range(attempts):
            if attempt:
                time.sleep(READ_BACKOFF[min(attempt - 1, len(READ_BACKOFF) - 1)])
            self.request_count["reads" if is_read else "writes"] += 1
            final = attempt == attempts - 1
            try:
                if method == "GET":
                    return resource.get(**params)
                if method == "POST":
                    return resource.post(**params)
                if method == "PUT":
                    return resource.put(**params)
                return resource.delete(**params)
            except requests.exceptions.SSLError as exc:
                raise self._tls_error(exc) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if final:
                    raise self._connection_error(method, path, exc) from None
            except ResourceException as exc:
                status = getattr(exc, "status_code", 0) or 0
                if final or status < 500 or status in _TRANSIENT_SKIP:
                    raise self._api_error(method, path, exc) from None
        raise PassthroughError("unreachable", link="input")  # pragma: no cover

    # ------------------------------------------------------------------ verbs
    def get(self, path, /, **params):
        """GET ``path`` (retried on transient failures); returns the answer's ``data``."""
        return self._call("GET", path, params)

    def post(self, path, /, **params):
        """POST ``path`` once; returns ``data`` (a UPID for asynchronous calls)."""
        return self._call("POST", path, params)

    def put(self, path, /, **params):
        """PUT ``path`` once; returns ``data``."""
        return self._call("PUT", path, params)

    def delete(self, path, /, **params):
        """DELETE ``path`` once; returns ``data``."""
        return self._call("DELETE", path, params)

    # ------------------------------------------------------------------ tasks
    def vm_state(self, node, vmid):
        """``{"status", "lock", "config", "pending"}`` of a VM in two reads.

        ``config`` is what ``GET .../config`` answers (pending values shown as set, pending deletions
        gone, ``digest`` included), built from ``GET .../pending``, whose rows carry the current value,
        the pending one and the ``digest`` (qemu-server PVE/API2/Qemu.pm ``vm_pending``, pve-guest-common
        PVE/GuestHelpers.pm ``config_with_pending_array``); ``pending`` lists the keys with a pending
        value or deletion.
        """
        status = self.get("/nodes/%s/qemu/%s/status/current" % (node, vmid)) or {}
        config, pending = self.vm_config(node, vmid)
        return {"status": status.get("status", "stopped"), "lock": status.get("lock"), "config": config, "pending": pending}

    def vm_config(self, node, vmid):
        """(config, pending keys) of a VM in one read; see ``vm_state``."""
        return config_from_pending(self.get("/nodes/%s/qemu/%s/pending" % (node, vmid)) or [])

    def pci_devices(self, node):
        """``GET /nodes/{node}/hardware/pci`` with no class left out (pve-manager PVE/API2/Hardware/PCI.pm hides
        bridges and memory controllers by default); read once per node and session."""
        if node not in self._pci_devices:
            self._pci_devices[node] = self.get("/nodes/%s/hardware/pci" % node, **{"pci-class-blacklist": ""}) or []
        return self._pci_devices[node]

    def wait_task(self, upid, timeout=600):
        """Wait for a task to stop; returns its status dict.

        Polls ``GET /nodes/{node}/tasks/{upid}/status`` (pve-manager PVE/API2/Tasks.pm) after 0.05 s,
        then pausing half the time waited so far (0.05 s to 0.25 s; up to 2 s after a minute), so
        short tasks cost one read and VM power tasks are noticed within a quarter second.
        Raises ``PassthroughError`` (link ``vm_config``) with the task's
        exit status text when it is not ``OK``/``WARNINGS: n``, and when ``timeout`` seconds pass.
        """
        node = upid_node(upid)
        path = "/nodes/%s/tasks/%s/status" % (node, upid)
        started = time.monotonic()
        deadline = started + timeout
        # A task is never done when its UPID comes back: the first read waits a little.
        time.sleep(min(POLL_FIRST, max(timeout, 0)))
        while True:
            status = self.get(path) or {}
            if status.get("status") == "stopped":
                exitstatus = status.get("exitstatus")
                if task_ok(exitstatus):
                    return status
                raise PassthroughError(
                    "Proxmox task %s (%s %s on %s) failed: %s" % (upid, status.get("type", "?"), status.get("id", ""), node, exitstatus),
                    fix="see the task log (Datacenter > Tasks, or GET %s/log) and correct the cause named above." % path[: -len("/status")],
                    link="vm_config",
                    details={"upid": upid, "exitstatus": exitstatus},
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PassthroughError(
                    "Proxmox task %s on %s still runs after %s s." % (upid, node, timeout),
                    fix="wait for it to finish (or stop it in the task list) and run again; raise the timeout for slow operations.",
                    link="vm_config",
                    details={"upid": upid},
                )
            ran = time.monotonic() - started
            pause = min(max(POLL_FIRST, ran * POLL_FACTOR), POLL_MAX if ran < POLL_LONG_AFTER else POLL_MAX_LONG)
            time.sleep(min(pause, remaining))


def _short(exc):
    """The useful part of a requests/urllib3 error text."""
    text = str(exc)
    for marker in ("certificate verify failed", "CERTIFICATE_VERIFY_FAILED", "hostname mismatch", "Connection refused",
                   "Connection aborted", "RemoteDisconnected", "timed out", "Name or service not known"):
        if marker in text:
            text = text[text.find(marker):]
            break
    for end in (" (_ssl.c", "'))", "\")"):
        if end in text:
            text = text[: text.find(end)]
    return text[:300].strip(" '\"")


def session_from_module(module):
    """A ``PveSession`` from an AnsibleModule built with ``AUTH_ARGUMENT_SPEC``; fails the module without proxmoxer."""
    if not HAS_PROXMOXER:
        module.fail_json(msg=missing_required_lib("proxmoxer"), exception=PROXMOXER_IMPORT_ERROR)
    p = module.params
    return PveSession(
        api_host=p["api_host"],
        api_user=p["api_user"],
        api_password=p.get("api_password"),
        api_token_id=p.get("api_token_id"),
        api_token_secret=p.get("api_token_secret"),
        api_port=p.get("api_port"),
        validate_certs=p.get("validate_certs", True),
        ca_path=p.get("ca_path"),
        api_timeout=p.get("api_timeout") or 30,
    )
