"""Every request checked against the real Proxmox VE API schema, as PVE's API server checks it.

The schema is the JSON derived from pve-docs `api-viewer/apidata.js` in `api-schema/` beside this file
(`schema-9.1.json`, `schema-8.2.json`, their sources in its README; `PVESIM_SCHEMA_DIR` points elsewhere).
A request for a path or method the API lacks is answered 501 "Method '<METHOD> <path>' not implemented" (pve-manager `PVE/HTTPServer.pm`,
`rest_handler`; pve-common `src/PVE/RESTHandler.pm`, `find_handler`). Its parameters, path parameters included,
are checked as pve-common `src/PVE/RESTHandler.pm` `handle` does (`$normalize_legacy_param_formats`, then
`PVE::JSONSchema::validate`) with the texts of pve-common `src/PVE/JSONSchema.pm` (`check_object`, `check_prop`,
`check_type`, `check_format`, `parse_property_string`, `parse_boolean`, the `pve_verify_*` formats); a failure
is HTTP 400 "Parameter verification failed." with `errors` per parameter (`validate`, pve-common
`src/PVE/Exception.pm`).
"""

import functools
import ipaddress
import json
import os
import re

from .rules import ApiError, param_exc

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "api-schema")
DEFAULT_PVE_VERSION = "9.1"
SCHEMA_VERSIONS = ("9.1", "8.2")

# GET /version per release: pve-manager's version of the schema's time, repoid = its bump commit (16 hex digits)
RELEASES = {
    "9.1": {"version": "9.1.9", "release": "9.1", "repoid": "ee7bad0a3d154679"},
    "8.2": {"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"},
}

# `name[n]` options and their count: qemu-server `src/PVE/QemuServer.pm` ($MAX_NETS, $MAX_SERIAL_PORTS,
# $MAX_PARALLEL_PORTS; ipconfig per net), `QemuServer/Drive.pm` ($MAX_*_DISKS, $MAX_UNUSED_DISKS),
# `QemuServer/PCI.pm` ($MAX_HOSTPCI_DEVICES), `QemuServer/USB.pm` ($MAX_USB_DEVICES), `QemuServer/Memory.pm`
# ($MAX_NUMA), `QemuServer/Virtiofs.pm` ($MAX_VIRTIOFS); the same in 8.2 and 9.1
INDEX_LIMITS = {"net": 32, "ipconfig": 32, "hostpci": 16, "ide": 4, "scsi": 31, "virtio": 16, "sata": 6, "unused": 256,
                "serial": 4, "parallel": 3, "usb": 14, "numa": 8, "virtiofs": 10}
INDEXED_RE = re.compile(r"^([a-z][a-z_-]*?)(\d+)$")

# below these paths the rest of the URI is one path parameter (volume IDs contain '/'): pve-storage
# `src/PVE/API2/Storage/Status.pm` mounts `{storage}/content` with `fragmentDelimiter => ''`
GREEDY_PREFIXES = (("nodes", "{node}", "storage", "{storage}", "content"),)

# value checks of formats apidata.js gives only as typetext (key names, no values): qemu-server
# `src/PVE/QemuServer/Network.pm` ($ipconfig_fmt) and `src/PVE/QemuServer/PCI.pm` ($hostpci_fmt, $PCIRE)
_PCIRE = r"(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?"
_HEX_ID = {"pattern": r"^0x[0-9a-fA-F]{4}$"}
TYPETEXT_VALUES = {
    "pve-qm-ipconfig": {"ip": {"format": "pve-ipv4-config"}, "gw": {"format": "ipv4", "requires": "ip"},
                        "ip6": {"format": "pve-ipv6-config"}, "gw6": {"format": "ipv6", "requires": "ip6"}},
    "pve-qm-hostpci": {"host": {"pattern": "%s(;%s)*" % (_PCIRE, _PCIRE)}, "mapping": {"format": "pve-configid"},
                       "romfile": {"pattern": "[^,;]+"}, "mdev": {"pattern": r"[^/\.:]+"}, "vendor-id": _HEX_ID,
                       "device-id": _HEX_ID, "sub-vendor-id": _HEX_ID, "sub-device-id": _HEX_ID},
}

UNDEFINED = "property is not defined in schema and the schema does not allow additional properties"
MISSING = "property is missing and it is not optional"


class _FormatDie(Exception):
    """A `die` inside a format check; `str()` is the text PVE puts after "invalid format - "."""


def schema_dir():
    """`PVESIM_SCHEMA_DIR`, else `api-schema/` beside this file: the schema ships with the repository
    (`tools/refresh-pve-schema` copies a newer derivation in)."""
    return os.environ.get("PVESIM_SCHEMA_DIR") or SCHEMA_DIR


def normalize_version(version):
    """'9.1'/'8.2' (also '9', '8', '9.1.9', '8.2.4'); anything else is refused."""
    text = str(version or DEFAULT_PVE_VERSION).strip()
    for known in SCHEMA_VERSIONS:
        if text == known or text == known.split(".", maxsplit=1)[0] or text.startswith(known + "."):
            return known
    raise ValueError("pve_version must be one of %s, not %r" % (", ".join(SCHEMA_VERSIONS), version))


@functools.cache
def load(version=DEFAULT_PVE_VERSION):
    """The `ApiSchema` of one release, read once per process."""
    version = normalize_version(version)
    path = os.path.join(schema_dir(), "schema-%s.json" % version)
    with open(path, encoding="utf-8") as handle:
        return ApiSchema(json.load(handle), version)


_TYPETEXT_KEY_RE = re.compile(r"(\[?)(,?)(\[?)([a-z][a-z0-9_-]*)=(\]?)(<[^>]*>|\S+?)\]?(?=\s|$)")


def keys_from_typetext(typetext):
    """A property-string format read from a `typetext` such as `[[host=]<ID>] [,pcie=<1|0>] ,mode=<a|b>`:
    key names, the default key (`[key=]`, optional as `[[key=]...]`), optional keys (`[,key=...]`), booleans
    (`<1|0>`), enums (`<a|b>`) and integers. apidata.js gives `pve-qm-hostpci`, `pve-qm-ipconfig` and
    `pve-vm-cpu-conf` only this way."""
    fmt = {}
    for match in _TYPETEXT_KEY_RE.finditer(typetext):
        outer, _comma, default_open, key, default_close, value = match.groups()
        spec = {"type": "string"}
        inner = value[1:-1] if value.startswith("<") else value
        if inner == "1|0":
            spec["type"] = "boolean"
        elif inner == "integer":
            spec["type"] = "integer"
        elif re.fullmatch(r"[a-z0-9][a-z0-9.-]*(\|[a-z0-9][a-z0-9.-]*)+", inner):
            spec["enum"] = inner.split("|")
        if default_close:
            spec["default_key"] = 1
            if default_open:
                spec["optional"] = 1
        elif outer:
            spec["optional"] = 1
        fmt[key] = spec
    return fmt


class ApiSchema:
    """One release's API: path lookup over every path, parameter checks for the paths the subset describes."""

    def __init__(self, doc, version):
        self.version = version
        self.paths = doc["paths"]
        self.tree = {}
        self._patterns = {}
        self._required_by_method = {}
        templates = {template: set(methods) for template, methods in doc["all_methods"].items()}
        for template, methods in self.paths.items():
            templates.setdefault(template, set()).update(methods)
        for template, methods in templates.items():
            node = self.tree
            for comp in [c for c in template.split("/") if c]:
                if comp.startswith("{"):
                    node = node.setdefault("var", {"name": comp[1:-1]})
                else:
                    node = node.setdefault("fixed:" + comp, {})
            node["methods"] = methods
            node["template"] = template
        for methods in self.paths.values():
            for info in methods.values():
                for spec in (info.get("parameters") or {}).values():
                    values = TYPETEXT_VALUES.get(spec.get("format_name")) if spec.get("derived_from") == "typetext" else None
                    if values and isinstance(spec.get("format"), dict):
                        spec["format"] = {key: dict(sub, **values.get(key, {})) for key, sub in spec["format"].items()}

    # ------------------------------------------------------------------------------------------ lookup
    def lookup(self, method, rel):
        """(template, path params) of `method rel`, or None when the API has no such method there.

        Follows pve-common `src/PVE/RESTHandler.pm` (`find_handler`, `map_path_to_methods`): empty fragments
        skipped, one fixed name or one `{param}` per level."""
        stack = [c for c in rel.split("/") if c]
        node, params, walked = self.tree, {}, []
        while stack:
            comp = stack.pop(0)
            if "fixed:" + comp in node:
                node = node["fixed:" + comp]
                walked.append(comp)
            elif "var" in node:
                node = node["var"]
                walked.append("{%s}" % node["name"])
                if tuple(walked[:-1]) in GREEDY_PREFIXES and stack:
                    comp = "/".join([comp] + stack)
                    stack = []
                params[node["name"]] = comp
            else:
                return None
        if method not in node.get("methods", ()):
            return None
        return node["template"], params

    def method_info(self, template, method):
        """The schema of one method, or None for a path outside the subset."""
        return self.paths.get(template, {}).get(method)

    # ------------------------------------------------------------------------------------------ checks
    def check_request(self, method, rel, params):
        """None if PVE would accept the request's path and parameters, else the `ApiError` it would answer."""
        found = self.lookup(method, rel)
        if found is None:
            return ApiError(501, "Method '%s %s' not implemented" % (method, rel))
        template, path_params = found
        info = self.method_info(template, method)
        if info is None:
            return None
        merged = dict(params)
        merged.update(path_params)
        errors = self.check_parameters(info, merged)
        return param_exc(errors) if errors else None

    def check_parameters(self, info, params):
        """{parameter: message} for `params` against a method's `parameters` (pve-common `src/PVE/JSONSchema.pm`,
        `check_object` with the method's `additionalProperties`)."""
        props = info.get("parameters") or {}
        errors = {}
        given = {}
        for key, value in params.items():
            spec = self.property_spec(props, key)
            if spec is None:
                if not info.get("additionalProperties"):
                    _add(errors, key, UNDEFINED)
                continue
            given[key] = (_normalize_legacy(value, spec), spec)
        for key in self._required(info):
            if key not in given:
                _add(errors, key, MISSING)
        for key, (value, spec) in given.items():
            self.check_prop(value, spec, key, errors)
            requires = spec.get("requires")
            if isinstance(requires, str) and requires not in given:
                _add(errors, requires, self.requires_text(key))
        return errors

    def _required(self, info):
        """The non-optional parameters of a method (computed once per method)."""
        required = self._required_by_method.get(id(info))
        if required is None:
            required = [key for key, spec in (info.get("parameters") or {}).items() if "[n]" not in key and not spec.get("optional")]
            self._required_by_method[id(info)] = required
        return required

    def requires_text(self, key):
        """pve-common `src/PVE/JSONSchema.pm` `check_object`; reworded in 2025 (commit 0f0e791, PVE 9)."""
        if self.version == "8.2":
            return "missing property - '%s' requires this property" % key
        return "missing property required by '%s'" % key

    @staticmethod
    def property_spec(props, key):
        """The schema of `key`; `net0`/`hostpci3` match `net[n]`/`hostpci[n]` within the option's count."""
        spec = props.get(key)
        if spec is not None:
            return spec
        match = INDEXED_RE.match(key)
        if not match:
            return None
        base, index = match.group(1), match.group(2)
        spec = props.get(base + "[n]")
        if spec is None or (index != "0" and index.startswith("0")):
            return None
        if int(index) >= INDEX_LIMITS.get(base, 1 << 30):
            return None
        return spec

    def check_prop(self, value, spec, path, errors):
        """pve-common `src/PVE/JSONSchema.pm` `check_prop` for one value (string, or list for arrays)."""
        if spec.get("alias"):
            return
        if not _check_type(path, spec.get("type"), value, errors):
            return
        if isinstance(value, list):
            items = spec.get("items")
            if items:
                for index, element in enumerate(value):
                    self.check_prop(element, items, "%s[%d]" % (path, index), errors)
            return
        fmt = spec.get("format")
        if fmt is None and "typetext" in spec and "=<" in spec["typetext"] and spec.get("type") == "string":
            fmt = keys_from_typetext(spec["typetext"])
        if fmt:
            try:
                self.check_format(fmt, value, path)
            except _FormatDie as exc:
                _add(errors, path, "invalid format - %s" % exc)
                return
        pattern = spec.get("pattern")
        if pattern and not self._pattern(pattern).match(value):
            _add(errors, path, "value does not match the regex pattern")
            return
        if "maxLength" in spec and len(value) > spec["maxLength"]:
            _add(errors, path, "value may only be %s characters long" % spec["maxLength"])
            return
        if "minLength" in spec and len(value) < spec["minLength"]:
            _add(errors, path, "value must be at least %s characters long" % spec["minLength"])
            return
        if _NUMBER_RE.match(value):
            number = float(value)
            if "maximum" in spec and number > spec["maximum"]:
                _add(errors, path, "value must have a maximum value of %s" % _num(spec["maximum"]))
                return
            if "minimum" in spec and number < spec["minimum"]:
                _add(errors, path, "value must have a minimum value of %s" % _num(spec["minimum"]))
                return
        enum = spec.get("enum")
        if enum and value not in [str(e) for e in enum]:
            _add(errors, path, "value '%s' does not have a value in the enumeration '%s'" % (value, ", ".join(str(e) for e in enum)))

    def _pattern(self, pattern):
        """PVE anchors patterns: `m/^$pattern$/`."""
        compiled = self._patterns.get(pattern)
        if compiled is None:
            compiled = self._patterns[pattern] = re.compile("^(?:%s)$" % pattern)
        return compiled

    def check_format(self, fmt, value, path):
        """pve-common `src/PVE/JSONSchema.pm` `check_format`: a dict is a property string, a name is a
        registered format, `-list` splits first (`PVE::ParseUtils::split_list`), `-opt` allows empty."""
        if isinstance(fmt, dict):
            self.parse_property_string(fmt, value, path)
            return
        name, _sep, kind = fmt.rpartition("-")
        if kind not in ("list", "opt") or not name:
            name, kind = fmt, None
        verify = NAMED_FORMATS.get(name)
        if verify is None:  # named, but not defined by the schema: not checked
            return
        if kind == "list":
            for entry in _split_list(value):
                verify(entry)
        elif kind == "opt":
            if value:
                verify(value)
        else:
            verify(value)

    def parse_property_string(self, fmt, data, path):
        """pve-common `src/PVE/JSONSchema.pm` `parse_property_string`, then `check_object` without additional
        properties; sub-key errors read "format error" plus one "<path>.<key>: <message>" line each."""
        res = {}
        default_key = None
        for part in data.split(","):
            if not part.strip():
                continue
            match = re.match(r"^([^=]+)=(.+)$", part)
            if match:
                key, val = match.group(1), match.group(2)
                if key in res:
                    raise _FormatDie("duplicate key in comma-separated list property: %s\n" % key)
                spec = fmt.get(key)
                if spec and spec.get("alias"):
                    key_alias = spec.get("keyAlias")
                    if key_alias:
                        if key_alias in res:
                            raise _FormatDie("key alias '%s' is already defined\n" % key_alias)
                        res[key_alias] = key
                    key = spec["alias"]
                    spec = fmt.get(key)
                    if self.version != "8.2" and key in res:
                        raise _FormatDie("key '%s' is already defined (via alias)\n" % key)
                if not spec:
                    raise _FormatDie("invalid key in comma-separated list property: %s\n" % key)
                if spec.get("type") == "boolean":
                    val = _bool_text(val)
                res[key] = val
            elif "=" not in part:
                if default_key:
                    raise _FormatDie("duplicate key in comma-separated list property: %s\n" % default_key)
                for key, spec in fmt.items():
                    if spec.get("default_key"):
                        default_key = key
                        if res.get(key):
                            raise _FormatDie("duplicate key in comma-separated list property: %s\n" % default_key)
                        res[key] = _bool_text(part) if spec.get("type") == "boolean" and self.version != "8.2" else part
                        break
                if not default_key:
                    raise _FormatDie("value without key, but schema does not define a default key\n")
            else:
                raise _FormatDie("missing key in comma-separated list property\n")
        errors = {}
        for key, spec in fmt.items():
            if key in res:
                self.check_prop(res[key], spec, "%s.%s" % (path, key), errors)
                requires = spec.get("requires")
                if requires and requires not in res:
                    _add(errors, "%s.%s" % (path, requires), self.requires_text("%s.%s" % (path, key)))
            elif not spec.get("optional") and not spec.get("alias"):
                _add(errors, "%s.%s" % (path, key), MISSING)
        if errors:
            raise _FormatDie("format error\n" + "".join("%s: %s\n" % item for item in sorted(errors.items())))


# ---------------------------------------------------------------------------------------------- helpers

_NUMBER_RE = re.compile(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?\Z")
_INTEGER_RE = re.compile(r"^[+-]?\d+\Z")


def _add(errors, path, message):
    """pve-common `src/PVE/JSONSchema.pm` `add_error`: a second message for the same path is joined by a literal
    backslash-n."""
    errors[path] = errors[path] + "\\n" + message if path in errors else message


def _num(value):
    return str(int(value)) if float(value).is_integer() else str(value)


def _bool_text(value):
    """`parse_boolean`: 1|on|yes|true and 0|off|no|false (any case) become 1/0, anything else stays."""
    lowered = value.lower()
    if lowered in ("1", "on", "yes", "true"):
        return "1"
    if lowered in ("0", "off", "no", "false"):
        return "0"
    return value


def _normalize_legacy(value, spec):
    """pve-common `src/PVE/RESTHandler.pm` `$normalize_legacy_param_formats`: repeated values of a `-list`
    string are joined by ',', a single value of an array becomes a one-element list."""
    fmt = spec.get("format")
    if isinstance(value, list) and spec.get("type") == "string" and isinstance(fmt, str) and fmt.endswith("-list") and value:
        return ",".join(value)
    if not isinstance(value, list) and spec.get("type") == "array" and value not in ("", "0"):
        return [value]
    return value


def _check_type(path, vtype, value, errors):
    """pve-common `src/PVE/JSONSchema.pm` `check_type`: top-level booleans only as 1/0 (JSON true/false arrive
    as 1/0), integers and numbers by Perl's `is_integer`/`is_number`."""
    if isinstance(value, list):
        if vtype in (None, "array", "any"):
            return True
        _add(errors, path, "type check ('%s') failed - got ARRAY" % vtype)
        return False
    if vtype == "array":
        _add(errors, path, "type check ('array') failed")
        return False
    if vtype == "boolean" and value not in ("1", "0"):
        _add(errors, path, "type check ('boolean') failed - got '%s'" % value)
        return False
    if vtype == "integer" and not _INTEGER_RE.match(value):
        _add(errors, path, "type check ('integer') failed - got '%s'" % value)
        return False
    if vtype == "number" and not _NUMBER_RE.match(value):
        _add(errors, path, "type check ('number') failed - got '%s'" % value)
        return False
    return True


def _split_list(text):
    """pve-common `src/PVE/ParseUtils.pm` `split_list`: NUL-separated, else by ',', ';' and whitespace."""
    if "\0" in text:
        return text.split("\0")
    return re.sub(r"[,;]", " ", text).split()


def _verifier(regex, message, flags=0):
    compiled = re.compile(regex, flags)

    def verify(value):
        if not compiled.match(value):
            raise _FormatDie((message % value if "%s" in message else message) + "\n")
    return verify


def _verify_id(kind):
    """pve-common `src/PVE/JSONSchema.pm` `parse_id`."""
    def verify(value):
        if len(value) < 2:
            raise _FormatDie("%s ID '%s' cannot be shorter than 2 characters\n" % (kind, value))
        if not re.match(r"^[a-z][a-z0-9\-_.]*[a-z0-9]\Z", value, re.I):
            raise _FormatDie("%s ID '%s' contains illegal characters\n" % (kind, value))
    return verify


def _verify_ip(version, message, config_words=None):
    """pve-common `src/PVE/JSONSchema.pm` `pve_verify_ipv4`/`ipv6`, and with `config_words` the
    `pve_verify_ipv4_config`/`ipv6_config` forms (a word, or an address with a prefix of 8 up to the maximum)."""
    def verify(value):
        if config_words is not None:
            if value in config_words:
                return
            address, sep, prefix = value.partition("/")
            limit = 32 if version == 4 else 128
            if not sep or not prefix.isdigit() or not 7 < int(prefix) <= limit:
                raise _FormatDie(message)
            value = address
        try:
            parsed = ipaddress.ip_address(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.version != version or "%" in value:
            raise _FormatDie(message)
    return verify


def _verify_disk_size(value):
    """pve-common `src/PVE/JSONSchema.pm` `pve_verify_disk_size` over `parse_size`."""
    if not re.match(r"^(\d+(\.\d+)?)([KMGT](?:iB)?)?\Z", value):
        raise _FormatDie("value does not look like a valid disk size: %s\n" % value)


# The registered formats the schema names (pve-common `src/PVE/JSONSchema.pm`, `register_format` and the
# `pve_verify_*` subs); other names are not defined by the schema and pass unchecked.
NAMED_FORMATS = {
    "string": lambda value: None,
    "urlencoded": _verifier(r"^[-%a-zA-Z0-9_.!~*'()]*\Z", "invalid urlencoded string: %s"),
    "pve-configid": _verifier(r"^[a-z][a-z0-9_-]+\Z", "invalid configuration ID '%s'", re.I),
    "pve-vmid": _verifier(r"^[1-9][0-9]{2,8}\Z", "value does not look like a valid VM ID"),
    "pve-node": _verifier(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\Z", "value does not look like a valid node name"),
    "pve-storage-id": _verify_id("storage"),
    "pve-bridge-id": _verifier(r"^[-_.\w\d]+\Z", "invalid bridge ID '%s'"),
    "mac-addr": _verifier(r"^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}\Z", "value does not look like a valid unicast MAC address", re.I),
    "disk-size": _verify_disk_size,
    "ipv4": _verify_ip(4, "value does not look like a valid IPv4 address\n"),
    "ipv6": _verify_ip(6, "value does not look like a valid IPv6 address\n"),
    "pve-ipv4-config": _verify_ip(4, "value does not look like a valid ipv4 network configuration\n", ("dhcp", "manual")),
    "pve-ipv6-config": _verify_ip(6, "value does not look like a valid ipv6 network configuration\n", ("auto", "dhcp", "manual")),
    "pve-tag": _verifier(r"^[a-z0-9_][a-z0-9_\-+.]*\Z", "invalid characters in tag", re.I),
}
