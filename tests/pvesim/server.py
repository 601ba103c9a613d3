"""HTTPS front end: authentication, CSRF, JSON envelopes, fault injection, request counters, admin channel."""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from . import rules, schema
from .api import Api, Ctx, match_route
from .rules import ApiError
from .state import State
from .tasks import TaskManager
from .tls import ensure_certificate

API_PREFIX = "/api2/json"
TICKET_LIFETIME = 7200
SCHEMA_LOG_LIMIT = 200
# handlers that take the VM lock themselves before the state lock (lock order: VM lock, then state lock)
NO_STATE_LOCK = {"qemu_config_put", "qemu_config_post"}


class FaultRule:
    """One injected fault: matches a method (or `*`) and a regex searched in the API path (after /api2/json)."""

    def __init__(self, kind, method="*", path=".*", times=1, skip=0, status=500, message=None, delay=0.0):
        if kind not in ("error", "drop", "latency"):
            raise ValueError("fault kind must be error, drop or latency")
        self.kind = kind
        self.method = method.upper()
        self.path = path
        self.regex = re.compile(path)
        self.times = times
        self.skip = skip
        self.status = status
        self.message = message
        self.delay = delay
        self.hits = 0

    def matches(self, method, path):
        """Whether this rule applies to the request (and consumes one use if it does)."""
        if self.method not in ("*", method) or not self.regex.search(path):
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        return True

    def as_dict(self):
        """The rule as JSON-able data."""
        return {"kind": self.kind, "method": self.method, "path": self.path, "times": self.times, "skip": self.skip,
                "status": self.status, "message": self.message, "delay": self.delay, "hits": self.hits}


class Counters:
    """Per-endpoint request counters, split into reads (GET) and writes (POST/PUT/DELETE)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_endpoint = {}
        self.schema_violations = 0

    def count(self, method, endpoint):
        """Count one request."""
        kind = "reads" if method == "GET" else "writes"
        with self.lock:
            entry = self.by_endpoint.setdefault(endpoint, {"reads": 0, "writes": 0})
            entry[kind] += 1

    def count_violation(self):
        """Count one request the API schema refused."""
        with self.lock:
            self.schema_violations += 1

    def snapshot(self):
        """{"endpoints": {"METHOD /template": {"reads", "writes"}}, "reads", "writes", "writes_without_auth",
        "schema_violations"}."""
        with self.lock:
            endpoints = {k: dict(v) for k, v in self.by_endpoint.items()}
            violations = self.schema_violations
        reads = sum(v["reads"] for v in endpoints.values())
        writes = sum(v["writes"] for v in endpoints.values())
        auth = endpoints.get("POST /access/ticket", {}).get("writes", 0)
        return {"endpoints": endpoints, "reads": reads, "writes": writes, "writes_without_auth": writes - auth,
                "schema_violations": violations}

    def reset(self):
        """Start counting from zero."""
        with self.lock:
            self.by_endpoint = {}
            self.schema_violations = 0


def _sign(secret, text):
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode().rstrip("=")


class Simulator:  # pylint: disable=too-many-instance-attributes
    """The simulator: state, tasks, API and the HTTPS server on 127.0.0.1."""

    def __init__(self, state_path=None, initial_state=None, port=0, cert_dir=None, task_duration=None, admin_token=None,
                 pve_version=None):
        self.state_path = state_path
        self.state = State(state_path, initial_state)
        if task_duration is not None:
            self.state.data["settings"]["task_duration"] = task_duration
            self.state.save()
        pve_version = pve_version or os.environ.get("PVESIM_PVE_VERSION")
        if pve_version:
            self.set_pve_version(pve_version)
        self.schema_log = []  # the requests the API schema refused, cumulative (counters are reset by tests)
        self.schema_log_lock = threading.Lock()
        self.tasks = TaskManager(self.state)
        self.api = Api(self.state, self.tasks)
        self.counters = Counters()
        self.faults = []
        self.faults_lock = threading.Lock()
        self.admin_token = admin_token or secrets.token_hex(12)
        self.port = port
        base_dir = os.path.dirname(os.path.abspath(state_path)) if state_path else os.getcwd()
        self.cert_dir = cert_dir or base_dir
        self.ca_path, self.key_path = ensure_certificate(self.cert_dir)
        self.httpd = None
        self.thread = None

    # ---------------------------------------------------------------- lifecycle
    def start(self):
        """Bind 127.0.0.1:<port> (0 = a free one) and serve in a background thread."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_path, self.key_path)
        self.httpd = _Server(("127.0.0.1", self.port), _Handler, context, self)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="pvesim-http")
        self.thread.start()
        return self

    def stop(self):
        """Stop serving and let running tasks finish (briefly)."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        self.tasks.wait_all(timeout=5.0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self):
        """https://127.0.0.1:<port>"""
        return "https://127.0.0.1:%d" % self.port

    @property
    def api_url(self):
        """https://127.0.0.1:<port>/api2/json"""
        return self.base_url + API_PREFIX

    @property
    def admin_prefix(self):
        """Path prefix of the admin side-channel."""
        return "/_pvesim/%s" % self.admin_token

    # ---------------------------------------------------------------- state access
    @property
    def data(self):
        """The live state document (hold `state.lock` while changing it, or use `update`)."""
        return self.state.data

    def update(self, func):
        """Run `func(data)` under the state lock and save."""
        with self.state.lock:
            result = func(self.state.data)
            self.state.save()
            return result

    def wait_tasks(self, timeout=10.0):
        """Wait until no task is running."""
        end = time.time() + timeout
        while time.time() < end:
            with self.state.lock:
                if not any(t["status"] == "running" for t in self.state.data["tasks"].values()):
                    return True
            time.sleep(0.01)
        return False

    # ---------------------------------------------------------------- API schema and version
    @property
    def pve_version(self):
        """The simulated release, "9.1" or "8.2": the schema requests are checked against and GET /version."""
        return schema.normalize_version(self.data["settings"].get("pve_version"))

    def set_pve_version(self, version):
        """Follow another release: its schema and its GET /version answer."""
        version = schema.normalize_version(version)
        schema.load(version)

        def change(data):
            data["settings"]["pve_version"] = version
            data["version"] = dict(schema.RELEASES[version])
        self.update(change)
        return version

    def check_schema(self, method, rel, params):
        """The `ApiError` PVE answers when its API schema refuses `method rel` with `params` (logged and
        counted), else None."""
        error = schema.load(self.pve_version).check_request(method, rel, params)
        if error is not None:
            self.counters.count_violation()
            with self.schema_log_lock:
                if len(self.schema_log) < SCHEMA_LOG_LIMIT:
                    self.schema_log.append({"method": method, "path": rel, "status": error.status,
                                            "message": error.message.rstrip("\n"), "errors": error.errors or {}})
        return error

    def schema_violations(self, clear=False):
        """The requests the API schema refused so far (method, path, status, message, errors)."""
        with self.schema_log_lock:
            log = list(self.schema_log)
            if clear:
                self.schema_log = []
        return log

    # ---------------------------------------------------------------- faults and counters
    def add_fault(self, kind, method="*", path=".*", times=1, skip=0, status=500, message=None, delay=0.0):
        """Inject a fault: `error` (HTTP `status`, default 500), `drop` (close the connection without a response)
        or `latency` (sleep `delay` seconds); applies `times` times (None = always) after `skip` matching requests."""
        rule = FaultRule(kind, method, path, times, skip, status, message, delay)
        with self.faults_lock:
            self.faults.append(rule)
        return rule

    def clear_faults(self):
        """Remove every injected fault."""
        with self.faults_lock:
            self.faults = []

    def set_latency(self, seconds):
        """Add `seconds` to every API request."""
        self.update(lambda data: data["settings"].__setitem__("latency", float(seconds)))

    def fault_for(self, method, path):
        """The faults that apply to this request (latency ones first)."""
        with self.faults_lock:
            hits = [rule for rule in self.faults if rule.matches(method, path)]
        return sorted(hits, key=lambda r: r.kind != "latency")

    # ---------------------------------------------------------------- auth
    def make_ticket(self, user):
        """`PVE:<user>:<hex time>::<signature>` and a CSRF token `<hex time>:<signature>`.

        Shapes follow pve-common `src/PVE/Ticket.pm` (`assemble_rsa_ticket`, `assemble_csrf_prevention_token`);
        the signature here is an HMAC with the simulator's secret.
        """
        stamp = "%08X" % int(time.time())
        plain = "PVE:%s:%s" % (user, stamp)
        ticket = "%s::%s" % (plain, _sign(self.data["secret"], plain))
        csrf = "%s:%s" % (stamp, _sign(self.data["secret"], "%s:%s" % (stamp, user)))
        return ticket, csrf

    def verify_ticket(self, ticket):
        """The user of a valid, unexpired ticket, else None (pve-access-control `AccessControl.pm`, `verify_ticket`)."""
        match = re.match(r"^(PVE:(\S+):([0-9A-F]{8}))::(\S+)$", ticket or "")
        if not match:
            return None
        if not hmac.compare_digest(_sign(self.data["secret"], match.group(1)), match.group(4)):
            return None
        age = time.time() - int(match.group(3), 16)
        if age < -300 or age > TICKET_LIFETIME:
            return None
        user = match.group(2)
        info = self.data["access"]["users"].get(user)
        if info is None or not rules.parse_boolean(info.get("enable", 1)):
            return None
        return user

    def verify_csrf(self, user, token):
        """Valid CSRF token for `user` (pve-common `src/PVE/Ticket.pm`, `verify_csrf_prevention_token`)."""
        match = re.match(r"^([A-Z0-9]{8}):(\S+)$", token or "")
        if not match:
            return False
        if not hmac.compare_digest(_sign(self.data["secret"], "%s:%s" % (match.group(1), user)), match.group(2)):
            return False
        age = time.time() - int(match.group(1), 16)
        return -300 < age < TICKET_LIFETIME

    def verify_token(self, value):
        """`user@realm!tokenid=secret` → the token id, else None; the token id is the identity for permission
        checks (pve-access-control `src/PVE/AccessControl.pm`, `verify_token`; pve-manager `PVE/HTTPServer.pm`)."""
        match = re.match(r"^(.*)=(.*)$", value or "")
        if not match or "!" not in match.group(1):
            return None
        tokenid, secret = match.group(1), match.group(2)
        user, name = tokenid.split("!", 1)
        info = self.data["access"]["users"].get(user)
        if info is None or not rules.parse_boolean(info.get("enable", 1)):
            return None
        token = info.get("tokens", {}).get(name)
        if token is None:
            return None
        if token.get("expire") and int(token["expire"]) < time.time():
            return None
        if not hmac.compare_digest(str(token.get("secret", "")), secret):
            return None
        return tokenid

    def check_password(self, username, password):
        """Password (or a valid ticket as password) for an enabled pam/pve user."""
        info = self.data["access"]["users"].get(username)
        if info is None or not rules.parse_boolean(info.get("enable", 1)):
            return False
        if password.startswith("PVE:") and self.verify_ticket(password) == username:
            return True
        return hmac.compare_digest(str(info.get("password", "")), password)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, handler, context, sim):
        self.ssl_context = context
        self.sim = sim
        super().__init__(address, handler)

    def finish_request(self, request, client_address):
        """TLS handshake in the worker thread, so a slow or failing client does not block accepting others."""
        request.settimeout(15)
        try:  # headers and body go out in separate writes; without this Nagle + delayed ACK add ~40 ms per request
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, socket.timeout, OSError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    timeout = 30

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        if os.environ.get("PVESIM_LOG"):
            super().log_message(format, *args)

    def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
        self.dispatch("GET")

    def do_POST(self):  # noqa: N802  pylint: disable=invalid-name
        self.dispatch("POST")

    def do_PUT(self):  # noqa: N802  pylint: disable=invalid-name
        self.dispatch("PUT")

    def do_DELETE(self):  # noqa: N802  pylint: disable=invalid-name
        self.dispatch("DELETE")

    # ---------------------------------------------------------------- plumbing
    @property
    def sim(self):
        """The simulator this server belongs to."""
        return self.server.sim

    def read_body(self):
        """Body bytes (Content-Length)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def parse_params(self, query, body):
        """Query and form/JSON body parameters; repeated keys become lists."""
        params = {}
        sources = [parse_qs(query, keep_blank_values=True)]
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body:
            if ctype == "application/json":
                loaded = json.loads(body.decode("utf-8") or "{}")
                sources.append({k: (v if isinstance(v, list) else [v]) for k, v in loaded.items()})
            else:
                sources.append(parse_qs(body.decode("utf-8"), keep_blank_values=True))
        for source in sources:
            for key, values in source.items():
                values = ["1" if v is True else "0" if v is False else str(v) for v in values]
                if key in params:
                    existing = params[key] if isinstance(params[key], list) else [params[key]]
                    params[key] = existing + values
                else:
                    params[key] = values[0] if len(values) == 1 else values
        params.pop("_dc", None)
        return params

    def send_json(self, status, payload, reason=None, headers=None):
        """Write a JSON response; errors close the connection as PVE's server does (keep-alive off for >= 400)."""
        body = json.dumps(payload).encode("utf-8")
        reason = (reason or "OK").split("\n")[0].encode("ascii", "replace").decode("ascii")
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def send_error_response(self, exc):
        """`{"data": null, "message": …[, "errors": {…}]}` with the message's first line as HTTP reason.

        Follows pve-http-server `PVE/APIServer/Formatter/Standard.pm` (`prepare_response_data` for json) and
        `PVE/APIServer/AnyEvent.pm` (`response`).
        """
        payload = {"data": None, "message": exc.message}
        if exc.errors:
            payload["errors"] = exc.errors
        self.send_json(exc.status, payload, reason=exc.message)

    def send_auth_failure(self, message):
        """401 with the reason text and an empty body, after the configured delay (PVE waits 3 s).

        Follows pve-http-server `PVE/APIServer/AnyEvent.pm` (`authenticate_and_handle_request`).
        """
        delay = float(self.sim.data["settings"].get("auth_failure_delay", 0.0))
        if delay:
            time.sleep(delay)
        self.send_response(401, message)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()

    def refused_by_schema(self, method, rel, params):
        """Answer as PVE does when its API schema refuses the request (before any handler runs)."""
        error = self.sim.check_schema(method, rel, params)
        if error is None:
            return False
        self.send_error_response(error)
        return True

    def drop(self):
        """Close the connection without any response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---------------------------------------------------------------- request flow
    def dispatch(self, method):  # pylint: disable=too-many-return-statements,too-many-branches
        """Admin channel, counters, faults, auth, CSRF, routing, handler, envelope."""
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if path.startswith(self.sim.admin_prefix + "/") or path == self.sim.admin_prefix:
            self.admin(method, path[len(self.sim.admin_prefix):], self.read_body())
            return
        if not path.startswith(API_PREFIX + "/") and path != API_PREFIX:
            self.read_body()
            self.send_json(501, {"data": None, "message": "no such uri\n"}, reason="no such uri")
            return
        rel = path[len(API_PREFIX):].rstrip("/") or "/"
        route = match_route(method, rel)
        endpoint = "%s %s" % (method, route[0] if route else rel)
        self.sim.counters.count(method, endpoint)
        latency = float(self.sim.data["settings"].get("latency", 0.0) or 0.0)
        if latency:
            time.sleep(latency)
        for rule in self.sim.fault_for(method, rel):
            if rule.kind == "latency":
                time.sleep(rule.delay)
            elif rule.kind == "drop":
                self.drop()
                return
            else:
                self.read_body()
                message = rule.message or "Internal Server Error (injected fault)"
                self.send_error_response(ApiError(rule.status, message))
                return
        body = self.read_body()
        try:
            params = self.parse_params(parts.query, body)
        except (ValueError, UnicodeDecodeError):
            self.send_error_response(rules.param_exc({"body": "unable to parse request body"}))
            return
        if rel == "/access/ticket" and method == "POST":
            if not self.refused_by_schema(method, rel, params):
                self.create_ticket(params)
            return
        identity, token = self.authenticate(method)
        if identity is None or self.refused_by_schema(method, rel, params):
            return
        if route is None or route[1] is None:
            self.send_error_response(ApiError(501, "Method '%s %s' not implemented" % (method, rel)))
            return
        _template, name, path_params = route
        for key, value in path_params.items():
            if key in params and params[key] != value:
                self.send_error_response(rules.param_exc({key: "duplicate parameter (already defined in URI) with conflicting values!"}))
                return
            params.pop(key, None)
        ctx = Ctx(identity, rules.Permissions(self.sim.data["access"]), params, token=token)
        handler = getattr(self.sim.api, name)
        try:
            if name in NO_STATE_LOCK:
                result = handler(ctx, path_params)
            else:
                with self.sim.state.lock:
                    try:
                        result = handler(ctx, path_params)
                    finally:
                        if method != "GET":
                            self.sim.state.save()
        except ApiError as exc:
            self.send_error_response(exc)
            return
        except Exception as exc:  # pylint: disable=broad-except
            self.send_error_response(ApiError(500, "internal simulator error: %r" % (exc,)))
            return
        self.send_json(200, {"data": result})

    def authenticate(self, method):
        """Ticket (cookie `PVEAuthCookie`, or in `Authorization`) or API token; writes with a ticket need the
        `CSRFPreventionToken` header. Returns (identity, is_token) or (None, None) after answering 401.

        Follows pve-http-server `PVE/APIServer/AnyEvent.pm` (`authenticate_and_handle_request`) and pve-manager
        `PVE/HTTPServer.pm` (`auth_handler`: "No ticket", "Authentication failed!", CSRF skipped for tokens;
        pve-common `src/PVE/Ticket.pm`: "Permission denied - invalid csrf token").
        """
        cookie = self.headers.get("Cookie") or ""
        auth_header = self.headers.get("Authorization") or ""
        ticket = None
        for part in cookie.split(";"):
            key, _sep, value = part.strip().partition("=")
            if key == "PVEAuthCookie":
                ticket = unquote(value)
        if ticket is None and auth_header.startswith("PVEAuthCookie="):
            ticket = unquote(auth_header[len("PVEAuthCookie="):])
        if ticket is None and auth_header.startswith("PVEAPIToken="):
            tokenid = self.sim.verify_token(auth_header[len("PVEAPIToken="):])
            if tokenid is None:
                self.send_auth_failure("Authentication failed!")
                return None, None
            return tokenid, True
        if ticket is None:
            self.send_auth_failure("No ticket")
            return None, None
        user = self.sim.verify_ticket(ticket)
        if user is None:
            self.send_auth_failure("Authentication failed!")
            return None, None
        if method != "GET" and not self.sim.verify_csrf(user, self.headers.get("CSRFPreventionToken")):
            self.send_auth_failure("Permission denied - invalid csrf token")
            return None, None
        return user, False

    def create_ticket(self, params):
        """POST /access/ticket: username (+ optional realm) and password → ticket, CSRFPreventionToken, cap;
        failure is 401 "authentication failure".

        Follows pve-access-control `src/PVE/API2/AccessControl.pm` (`create_ticket`).
        """
        username = params.get("username", "")
        if params.get("realm") and "@" not in username:
            username = "%s@%s" % (username, params["realm"])
        password = params.get("password", "")
        if not isinstance(username, str) or not isinstance(password, str) or not self.sim.check_password(username, password):
            self.send_error_response(ApiError(401, "authentication failure"))
            return
        ticket, csrf = self.sim.make_ticket(username)
        perms = rules.Permissions(self.sim.data["access"])
        cap = {}
        for group, path in (("vms", "/vms"), ("storage", "/storage"), ("nodes", "/nodes"), ("access", "/access"), ("dc", "/"),
                            ("sdn", "/sdn"), ("mapping", "/mapping")):
            cap[group] = {p: 1 for p in sorted(perms.permissions(username, path))}
        data = {"username": username, "ticket": ticket, "CSRFPreventionToken": csrf, "cap": cap}
        if self.sim.data.get("cluster_name") and perms.check(username, "/", ["Sys.Audit"], noerr=True):
            data["clustername"] = self.sim.data["cluster_name"]
        self.send_json(200, {"data": data})

    # ---------------------------------------------------------------- admin side-channel
    def admin(self, method, sub, body):  # pylint: disable=too-many-branches
        """`/_pvesim/<token>/…`: state (GET, PUT), nodes/<name> (PUT: one node), faults (GET, POST, DELETE), counters (GET, DELETE),
        settings (POST; `pve_version` switches the release), latency (POST {"seconds"}), wait (POST),
        schema (GET: release and refused requests, DELETE: forget them)."""
        sim = self.sim
        try:
            payload = json.loads(body.decode("utf-8")) if body else {}
        except ValueError:
            self.send_json(400, {"error": "invalid JSON"}, reason="Bad Request")
            return
        sub = sub.rstrip("/")
        if sub == "/state" and method == "GET":
            result = sim.state.snapshot()
        elif sub == "/state" and method == "PUT":
            sim.state.replace(payload)
            result = None
        elif sub.startswith("/nodes/") and method == "PUT":
            # one node's record replaced under the state's lock: the guests' state is left as it is
            name = sub[len("/nodes/"):]
            result = sim.update(lambda data: data["nodes"].__setitem__(name, payload))
        elif sub == "/faults" and method == "GET":
            with sim.faults_lock:
                result = [rule.as_dict() for rule in sim.faults]
        elif sub == "/faults" and method == "POST":
            result = sim.add_fault(**payload).as_dict()
        elif sub == "/faults" and method == "DELETE":
            sim.clear_faults()
            result = None
        elif sub == "/counters" and method == "GET":
            result = sim.counters.snapshot()
        elif sub == "/counters" and method == "DELETE":
            sim.counters.reset()
            result = None
        elif sub == "/settings" and method == "POST":
            if "pve_version" in payload:
                try:
                    sim.set_pve_version(payload.pop("pve_version"))
                except ValueError as exc:
                    self.send_json(400, {"error": str(exc)}, reason="Bad Request")
                    return
            result = sim.update(lambda data: (data["settings"].update(payload), dict(data["settings"]))[1])
        elif sub == "/schema" and method == "GET":
            result = {"pve_version": sim.pve_version, "violations": sim.schema_violations()}
        elif sub == "/schema" and method == "DELETE":
            sim.schema_violations(clear=True)
            result = None
        elif sub == "/latency" and method == "POST":
            sim.set_latency(payload.get("seconds", 0))
            result = None
        elif sub == "/wait" and method == "POST":
            result = sim.wait_tasks(float(payload.get("timeout", 10)))
        else:
            self.send_json(404, {"error": "unknown admin call"}, reason="Not Found")
            return
        self.send_json(200, {"data": result})
