"""Routes: which origin a request goes to, from TOML ``[[routes]]`` or a Pushpin routes file.

Everything here is pure. :func:`route_from_toml` and :func:`parse_routes_file` turn a definition
into a :class:`Route` or raise :class:`~p8core.errors.ConfigError`; :class:`Router` applies
Pushpin's selection rules (``config-and-routes.md`` §3.4) to both, so a routes file moved from
Pushpin selects the same routes; :func:`rewrite_path` gives the path sent to the origin.

Target strings are ``"scheme://rest"`` (``http://host:port``, ``https://host:port``,
``zhttp+tcp://127.0.0.1:10010``, ``zhttpreq+tcp://...``) or a bare name such as ``"test"``;
the part before ``://`` picks the backend connector.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, final

from p8core.errors import ConfigError
from p8core.proxy.crossorigin import is_callback

__all__ = [
    "TOML_FIELDS",
    "Route",
    "Router",
    "duplicate_condition",
    "parse_routes_file",
    "request_host",
    "rewrite_path",
    "route_from_toml",
]


@final
@dataclass(frozen=True, slots=True)
class Route:
    """One route: a condition a request must meet, and where and how to forward it.

    The condition is ``host`` (``"*"`` or an exact lowercased host; ``""`` makes the route
    reachable only by id), ``proto`` (``"http"``/``"ws"``), ``ssl`` and ``path_prefix``.
    ``targets`` are tried in order when connecting fails. ``headers`` are applied in order:
    each replaces any request header of that name, an empty value only removes it.
    ``sig_key`` is kept as written (``base64:...`` is decoded by whoever signs).
    ``source`` says where the route was defined, for messages.
    """

    targets: tuple[str, ...]
    """Where requests go: ``"http://host:port"``, ``"https://host:port"``, ``"host:port"``
    (meaning ``http://``), ``"test"``, or another ``scheme://...`` offered by a plugin
    (``zhttp+tcp://...``, ``zhttpreq+tcp://...``). Several are tried in order when
    connecting fails."""
    host: str = "*"
    """``"*"`` or an exact host (no port, no partial wildcards); ``""`` makes the route
    reachable only by its id."""
    path_prefix: str = ""
    """Paths this route matches: empty (every path) or a prefix starting with ``/``."""
    proto: str | None = None
    """``"http"`` or ``"ws"`` (WebSocket handshakes); unset matches both."""
    ssl: bool | None = None
    """Match only TLS (true) or only plain (false) client connections; unset matches both."""
    id: str | None = None
    """The route's name; defaults to ``host,proto,ssl,path_prefix``."""
    over_http: bool = False
    """WebSocket clients reach the backend as WebSocket-over-HTTP requests."""
    one_event: bool = False
    """With ``over_http``: one WebSocket event per request."""
    prefix: str = ""
    """Prefix added to the channels this route's backend names."""
    replace_beg: str | None = None
    """Replaces a leading ``path_prefix`` in the path sent to the backend."""
    path_rem: int = 0
    """Characters removed from the start of the path sent to the backend (not with
    ``replace_beg``)."""
    as_host: str | None = None
    """The ``Host`` header sent to the backend."""
    headers: tuple[tuple[str, str], ...] = ()
    """Request headers to set, in order; an empty value only removes the header."""
    debug: bool = False
    """Error answers say what went wrong, and streams that end on an error write the
    reason first (else errors are ``Error while proxying to origin.``)."""
    no_grip: bool = False
    """Plain proxying: no ``Grip-Sig``, and GRIP instructions are not acted on."""
    sub: tuple[str, ...] = ()
    """Channels every WebSocket connection on this route is subscribed to."""
    wildcard: bool = False
    """A channel name ending with ``*`` (``news.*``) subscribes to every channel starting
    with the rest (after ``prefix``); a bare ``*`` to every channel. Elsewhere a ``*`` in a
    name is refused. Off: ``*`` is a plain character."""
    insecure: bool = False
    """Skip TLS certificate checks of an ``https://`` backend."""
    sig_iss: str | None = None
    """This route's ``Grip-Sig`` issuer (with ``sig_key``; else ``[proxy]``'s)."""
    sig_key: str | None = None
    """This route's ``Grip-Sig`` key, in ``[proxy] sig_key``'s syntax (with ``sig_iss``)."""
    aco: bool = False
    """Auto cross-origin: CORS headers on every answer, and JSON-P for GET requests with
    a callback parameter."""
    jsonp_mode: str = "extended"
    """``"extended"`` wraps status, headers and body as one object; ``"basic"`` wraps the
    body alone."""
    jsonp_cb: str = "callback"
    """Query parameter that names the JSON-P callback."""
    jsonp_body: str = ""
    """Query parameter whose value becomes a JSON request body; empty: ``_body`` is the
    body, as is."""
    jsonp_defcb: str = ""
    """Callback used when the request has ``jsonp_body`` but no callback parameter."""
    jsonp_defmethod: str = ""
    """Method of a JSON-P request without ``_method``; empty: GET (extended) or POST
    (basic)."""
    log_level: str = "info"
    """Level of this route's request log lines: ``"debug"``, ``"info"``, ``"warning"``
    or ``"error"``."""
    source: str = ""

    @property
    def route_id(self) -> str:
        """The explicit ``id``, else the default ``<host>,<proto>,<ssl>,<path_prefix>``.

        Unset parts are ``*`` and ``ssl`` is ``yes``/``no``, e.g. ``example.com,ws,*,/chat/``
        or ``*,*,*,*``. Pushpin 1.36 spells ``ssl`` as ``ssl``/``no-ssl`` with the meanings
        swapped (``ssl=no`` gives ``ssl``); p8 does not copy that.
        """
        if self.id is not None:
            return self.id
        ssl = "*" if self.ssl is None else ("yes" if self.ssl else "no")
        return ",".join((self.host or "*", self.proto or "*", ssl, self.path_prefix or "*"))


# ---- shared value rules -------------------------------------------------------------------


class _Invalid(Exception):
    """A value that breaks a route rule; the parser adds where it was (``at`` extends the key)."""

    def __init__(self, problem: str, at: str = "") -> None:
        super().__init__(problem)
        self.problem, self.at = problem, at


_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 header field name
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")  # RFC 3986 scheme
_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")  # a built-in target such as "test"
_NOT_IN_HOST: Final = frozenset(' \t/?#@,"[]')


def _host(value: str) -> str:
    """Normalise a route host: ``*``, or an exact name lowercased (IPv6 without brackets)."""
    if value == "*":
        return value
    name = value.lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
        if ":" not in name:
            raise _Invalid(f"{value!r} is not an IPv6 address")
    if not name:
        raise _Invalid("must not be empty")
    if "*" in name:
        raise _Invalid(f'{value!r}: partial wildcards are not supported; use "*" or an exact host')
    if any(c in _NOT_IN_HOST or not c.isprintable() for c in name):
        raise _Invalid(f"{value!r} is not a host name")
    if name.count(":") == 1:
        raise _Invalid(f"{value!r}: must not include a port (only the host is compared)")
    return name


def _path_prefix(value: str) -> str:
    """A path prefix is empty (matches every path) or starts with ``/``."""
    if value and not value.startswith("/"):
        raise _Invalid(f'{value!r}: must be empty or start with "/"')
    return value


def _host_port(value: str) -> str:
    """Check ``host:port`` (IPv6 as ``[addr]:port``); Pushpin's wording for the two errors."""
    if value.startswith("["):
        end = value.find("]")
        if end < 2 or value[end + 1 : end + 2] != ":":
            raise _Invalid(f"target bad format: {value!r} is not host:port")
        host, port = value[: end + 1], value[end + 2 :]
        bad_host = any(c in _NOT_IN_HOST for c in host[1:-1])
    else:
        host, sep, port = value.partition(":")
        if not sep:
            raise _Invalid(f"target bad format: {value!r} is not host:port")
        bad_host = any(c in _NOT_IN_HOST for c in host)
    if not host or bad_host or not host.isprintable():
        raise _Invalid(f"target bad format: {value!r} is not host:port")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise _Invalid(f"target invalid port: {port!r} in {value!r}")
    return f"{host}:{int(port)}"


def _header(name: str, value: str) -> tuple[str, str]:
    """A ``header`` override: a valid field name, a value without CR, LF or NUL."""
    if not _TOKEN.fullmatch(name):
        raise _Invalid(f"{name!r} is not a header name")
    if any(c in "\r\n\0" for c in value):
        raise _Invalid(f"value of {name!r} must not contain CR, LF or NUL")
    return (name, value)


def _not_empty(value: str) -> str:
    if not value:
        raise _Invalid("must not be empty")
    return value


def _route_host(value: str) -> str:
    """A route's host; empty stays empty (the route is reachable only by id)."""
    return _host(value) if value else ""


def _jsonp_mode(value: str) -> str:
    if value not in ("basic", "extended"):
        raise _Invalid("must be 'basic' or 'extended'")
    return value


def _callback_name(value: str) -> str:
    """A default JSON-P callback: empty (none) or a JavaScript name such as ``app.cb``."""
    if value and not is_callback(value.encode()):
        raise _Invalid(f"{value!r} is not a JavaScript function name")
    return value


def _method(value: str) -> str:
    if value and not _TOKEN.fullmatch(value):
        raise _Invalid(f"{value!r} is not an HTTP method")
    return value


_LOG_LEVELS: Final = ("error", "warning", "info", "debug")  # Pushpin's 0-3, in order


def _log_level(value: str) -> str:
    if value not in _LOG_LEVELS:
        raise _Invalid(f"must be one of {', '.join(map(repr, _LOG_LEVELS))}")
    return value


# A Route's field values while a parser collects them; list values become tuples in _build.
# Any, not object: each converter has checked its value's type, and Route(**values) needs it.
_Values = dict[str, Any]


def _build(values: _Values, source: str) -> Route:
    """Check the rules that span several fields, then make the Route.

    :raises _Invalid: no host and no id; or both ``path_rem`` and ``replace_beg``.
    """
    if not values.get("host", "*") and values.get("id") is None:
        raise _Invalid("a route with no host needs an id (it is reachable only by id)")
    if values.get("path_rem") and values.get("replace_beg") is not None:
        raise _Invalid(
            "path_rem and replace_beg cannot be combined "
            "(replace_beg already removes the path prefix)"
        )
    fields: _Values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return Route(**fields, source=source)


# ---- TOML [[routes]] ----------------------------------------------------------------------


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid("expected a string")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("expected a boolean (true or false)")
    return value


def _non_negative(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("expected an integer")
    if value < 0:
        raise _Invalid("must not be negative")
    return value


def _toml_proto(value: object) -> str:
    if value not in ("http", "ws"):
        raise _Invalid('expected "http" or "ws"')
    return _string(value)


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        raise _Invalid("expected a list of strings")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _Invalid("expected a string", at=f"[{index}]")
        if not item:
            raise _Invalid("must not be empty", at=f"[{index}]")
    return list(value)


def _toml_target(value: str) -> str:
    """``scheme://rest`` (scheme lowercased), ``host:port`` (meaning ``http://``) or a name."""
    if not value:
        raise _Invalid("must not be empty")
    scheme, sep, rest = value.partition("://")
    if sep and _SCHEME.fullmatch(scheme) and rest:
        return f"{scheme.lower()}://{rest}"
    if not sep and ":" in value:
        return "http://" + _host_port(value)
    if not sep and _NAME.fullmatch(value):
        return value
    raise _Invalid(
        f'{value!r} is not a target: expected "http://host:port", "host:port", '
        'another "scheme://..." or a name like "test"'
    )


def _toml_targets(value: object) -> list[str]:
    if isinstance(value, str):
        return [_toml_target(value)]
    if not isinstance(value, list):
        raise _Invalid("expected a string or a list of strings")
    if not value:
        raise _Invalid("must name at least one target")
    targets = []
    for index, item in enumerate(value):
        try:
            targets.append(_toml_target(_string(item)))
        except _Invalid as exc:
            raise _Invalid(exc.problem, at=f"[{index}]") from None
    return targets


def _toml_headers(value: object) -> list[tuple[str, str]]:
    if not isinstance(value, Mapping):
        raise _Invalid("expected a table of header names to values")
    headers = []
    for name, item in value.items():
        if not isinstance(item, str):
            raise _Invalid("expected a string", at=f".{name}")
        headers.append(_header(str(name), item))
    return headers


# Each ``[[routes]]`` key and the converter that checks its value; the key names the Route
# field, except ``target`` (field ``targets``).
_TOML_KEYS: Final[Mapping[str, Callable[[object], object]]] = {
    "host": lambda value: _route_host(_string(value)),
    "path_prefix": lambda value: _path_prefix(_string(value)),
    "target": _toml_targets,
    "proto": _toml_proto,
    "ssl": _boolean,
    "id": lambda value: _not_empty(_string(value)),
    "over_http": _boolean,
    "one_event": _boolean,
    "prefix": _string,
    "replace_beg": _string,
    "path_rem": _non_negative,
    "as_host": lambda value: _not_empty(_string(value)),
    "headers": _toml_headers,
    "debug": _boolean,
    "no_grip": _boolean,
    "sub": _strings,
    "wildcard": _boolean,
    "insecure": _boolean,
    "sig_iss": _string,
    "sig_key": _string,
    "aco": _boolean,
    "jsonp_mode": lambda value: _jsonp_mode(_string(value)),
    "jsonp_cb": lambda value: _not_empty(_string(value)),
    "jsonp_body": _string,
    "jsonp_defcb": lambda value: _callback_name(_string(value)),
    "jsonp_defmethod": lambda value: _method(_string(value)),
    "log_level": lambda value: _log_level(_string(value)),
}


TOML_FIELDS: Final[Mapping[str, str]] = {
    key: "targets" if key == "target" else key for key in _TOML_KEYS
}
"""Each ``[[routes]]`` key and the :class:`Route` field it sets."""


def route_from_toml(table: Mapping[str, object], source: str, key: str) -> Route:
    """Parse one ``[[routes]]`` table.

    ``target`` is a string or a list (tried in order on connect failure); ``"host:port"``
    means ``"http://host:port"``. The route's ``source`` becomes ``"<source>: <key>"``.

    :param table: the table as read by ``tomllib``.
    :param source: the file name, for messages.
    :param key: where the table is in the file, e.g. ``"routes[0]"``.
    :raises ConfigError: an unknown key, a value of the wrong type or out of range, or no target.
    """
    values: _Values = {}
    for name, value in table.items():
        try:
            convert = _TOML_KEYS.get(name)
            if convert is None:
                raise _Invalid("unknown key")
            values[TOML_FIELDS[name]] = convert(value)
        except _Invalid as exc:
            raise ConfigError(source, f"{key}.{name}{exc.at}", exc.problem) from None
    if "target" not in table:
        raise ConfigError(
            source, f"{key}.target", 'required, e.g. target = "http://127.0.0.1:8080"'
        )
    try:
        return _build(values, f"{source}: {key}")
    except _Invalid as exc:
        raise ConfigError(source, key, exc.problem) from None


# ---- Pushpin routes file ------------------------------------------------------------------

_Props = list[tuple[str, str | None]]  # (name, value); None for a flag written without "="

_UNSUPPORTED_CONDITION: Final = frozenset({"orig_headers", "sockjs", "sockjs_as_path"})
# Accepted and ignored: sessions need Pushpin's state service, without which (as in its
# stock configuration) Pushpin ignores the option too.
_IGNORED_CONDITION: Final = frozenset({"session"})
_UNSUPPORTED_TARGET: Final = frozenset(
    {"untrusted", "trust_connect_host", "ipc_file_mode", "client_cert", "client_key"}
)
_REPEATABLE: Final = frozenset({"header", "sub"})


def _tokenize(line: str) -> list[list[str]]:
    """Split a line into tokens, each a list of its comma-separated parts, quotes decoded.

    Tokens are separated by spaces (or tabs); ``#`` outside quotes ends the line; inside
    double quotes, spaces, commas, ``#`` and ``=`` are literal and ``\\\\`` and ``\\"`` are the
    only escapes.
    """
    tokens: list[list[str]] = []
    parts: list[str] = []
    buf: list[str] = []
    in_token = False
    i, end = 0, len(line)
    while i < end:
        c = line[i]
        if c == '"':
            i += 1
            while True:
                if i >= end:
                    raise _Invalid("unterminated quote")
                c = line[i]
                if c == "\\":
                    escaped = line[i + 1 : i + 2]
                    if not escaped:
                        raise _Invalid("unterminated quote")
                    if escaped not in ('"', "\\"):
                        raise _Invalid(f'bad escape \\{escaped} (only \\\\ and \\" are allowed)')
                    buf.append(escaped)
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    buf.append(c)
                    i += 1
            in_token = True
        elif c in " \t#":
            if in_token:
                parts.append("".join(buf))
                tokens.append(parts)
                parts, buf, in_token = [], [], False
            if c == "#":
                break
            i += 1
        elif c == ",":
            parts.append("".join(buf))
            buf, in_token = [], True
            i += 1
        else:
            buf.append(c)
            in_token = True
            i += 1
    if in_token:
        parts.append("".join(buf))
        tokens.append(parts)
    return tokens


def _section(parts: list[str]) -> tuple[str, _Props]:
    """A token's value and props; a first part with ``=`` is a prop and the value is empty."""
    if "=" in parts[0]:
        value, rest = "", parts
    else:
        value, rest = parts[0], parts[1:]
    props: _Props = []
    for part in rest:
        if not part:
            raise _Invalid("expecting an option after ','")
        name, sep, prop_value = part.partition("=")
        if not name:
            raise _Invalid(f"empty option name in {part!r}")
        props.append((name, prop_value if sep else None))
    return value, props


def _flag(name: str, value: str | None) -> bool:
    if value is not None:
        raise _Invalid("takes no value (it is a flag)")
    return True


def _valued(name: str, value: str | None) -> str:
    if value is None:
        raise _Invalid(f"needs a value ({name}=...)")
    return value


def _named(name: str, value: str | None) -> str:
    return _not_empty(_valued(name, value))


def _proto(name: str, value: str | None) -> str:
    if value not in ("http", "ws"):
        raise _Invalid("must be set to 'http' or 'ws'")
    return value


def _yes_no(name: str, value: str | None) -> bool:
    if value not in ("yes", "no"):
        raise _Invalid("must be set to 'yes' or 'no'")
    return value == "yes"


def _path_beg(name: str, value: str | None) -> str:
    path_beg = _valued(name, value)
    if not path_beg:
        raise _Invalid("cannot be empty")
    return _path_prefix(path_beg)


def _path_rem(name: str, value: str | None) -> int:
    text = _valued(name, value)
    if not (text.isascii() and text.isdigit()):
        raise _Invalid(f"{text!r} is not a non-negative integer")
    return int(text)


def _pushpin_log_level(name: str, value: str | None) -> str:
    """Pushpin's levels 0 (error) to 3 (debug); higher numbers mean debug too."""
    text = _valued(name, value)
    if not (text.isascii() and text.isdigit()):
        raise _Invalid(f"{text!r} is not a log level (0 to 3)")
    return _LOG_LEVELS[min(int(text), len(_LOG_LEVELS) - 1)]


def _header_prop(name: str, value: str | None) -> tuple[str, str]:
    header_name, colon, header_value = _valued(name, value).partition(":")
    if not colon or not header_name:
        raise _Invalid("must use format 'name:value'")
    return _header(header_name, header_value.lstrip(" "))


@dataclass(frozen=True, slots=True)
class _PropKind:
    """The props a routes-file condition or target accepts.

    ``convert`` maps each prop to its converter, which gets the prop's name (for messages)
    and its value (None for a flag); ``fields`` names the Route field a prop sets where that
    is not the prop's own name. ``unsupported`` props are errors; ``ignored`` ones are
    checked and then have no effect.
    """

    kind: str
    convert: Mapping[str, Callable[[str, str | None], object]]
    fields: Mapping[str, str]
    unsupported: frozenset[str]
    ignored: frozenset[str]


_CONDITION: Final = _PropKind(
    "condition",
    {
        "proto": _proto,
        "ssl": _yes_no,
        "path_beg": _path_beg,
        "id": _named,
        "prefix": _valued,
        "sig_iss": _valued,
        "sig_key": _valued,
        "as_host": _named,
        "path_rem": _path_rem,
        "replace_beg": _valued,
        "header": _header_prop,
        "debug": _flag,
        "no_grip": _flag,
        "aco": _flag,
        "jsonp_mode": lambda name, value: _jsonp_mode(_valued(name, value)),
        "jsonp_cb": _named,
        "jsonp_body": _valued,
        "jsonp_defcb": lambda name, value: _callback_name(_valued(name, value)),
        "jsonp_defmethod": lambda name, value: _method(_valued(name, value)),
        "log_level": _pushpin_log_level,
        "session": _flag,
    },
    {"path_beg": "path_prefix", "header": "headers"},
    _UNSUPPORTED_CONDITION,
    _IGNORED_CONDITION,
)
# A target's ``ssl`` picks its scheme; the other target props set Route fields.
_TARGET: Final = _PropKind(
    "target",
    {
        "ssl": _flag,
        "insecure": _flag,
        "over_http": _flag,
        "one_event": _flag,
        "host": _named,
        "sub": _named,
    },
    {"host": "as_host"},
    _UNSUPPORTED_TARGET,
    frozenset(),
)


def _apply_props(props: _Props, accepted: _PropKind, values: _Values) -> None:
    """Convert props in order into ``values``; repeatable ones are collected in a list.

    :raises _Invalid: an unsupported, unknown or repeated prop or a bad value, each named in
        the message.
    """
    seen: set[str] = set()
    for name, value in props:
        if name in accepted.unsupported:
            raise _Invalid(f"'{name}' is not supported by p8")
        if name in seen and name not in _REPEATABLE:
            raise _Invalid(f"'{name}' given more than once")
        seen.add(name)
        convert = accepted.convert.get(name)
        try:
            if convert is None:
                raise _Invalid(f"unknown {accepted.kind} option")
            converted = convert(name, value)
        except _Invalid as exc:
            raise _Invalid(f"{name}: {exc.problem}") from None
        if name in accepted.ignored:
            continue
        field = accepted.fields.get(name, name)
        if name in _REPEATABLE:
            values.setdefault(field, []).append(converted)
        else:
            values[field] = converted


def _pushpin_target(value: str, ssl: bool) -> str:
    """Map a routes-file target value to p8's target string."""
    if value == "test" or value.startswith(("zhttp/", "zhttpreq/")):
        if ssl:
            raise _Invalid(f"{value!r}: 'ssl' applies only to host:port targets")
        if value == "test":
            return value
        kind, _, spec = value.partition("/")
        if not spec:
            raise _Invalid(f"{value!r} needs a ZeroMQ spec, e.g. {kind}/tcp://127.0.0.1:10000")
        return f"{kind}+{spec}"
    return ("https://" if ssl else "http://") + _host_port(value)


def _parse_line(line: str, where: str) -> Route | None:
    """One routes-file line: None when blank or a comment; :raises _Invalid: a bad line."""
    tokens = _tokenize(line)
    if not tokens:
        return None
    if len(tokens) < 2:
        raise _Invalid("must specify condition and at least one target")
    value, props = _section(tokens[0])
    try:
        values: _Values = {"host": _route_host(value)}
    except _Invalid as exc:
        raise _Invalid(f"condition: {exc.problem}") from None
    _apply_props(props, _CONDITION, values)
    targets: list[str] = []
    for token in tokens[1:]:
        value, props = _section(token)
        options: _Values = {}
        _apply_props(props, _TARGET, options)
        ssl = options.pop("ssl", False)
        if not targets:
            # p8 holds these once per route: the first target's values apply to every
            # target, and (as in Pushpin) its host= overrides as_host.
            values.update(options)
        targets.append(_pushpin_target(value, ssl))
    values["targets"] = targets
    return _build(values, where)


def parse_routes_file(text: str, source: str) -> list[Route]:
    """Parse a Pushpin routes file (``config-and-routes.md`` §3.1-§3.3) into routes.

    Conditions map to ``host``/``path_prefix`` and the other Route fields; targets map to
    ``http://host:port`` (``https://`` with the ``ssl`` target prop), ``test``,
    ``zhttp+<spec>`` and ``zhttpreq+<spec>``. The target props ``over_http``, ``one_event``,
    ``insecure``, ``sub`` and ``host`` are held once per route: the first target's values
    apply to all its targets, and its ``host=`` replaces the route's ``as_host`` (as Pushpin
    applies a target's host after ``as_host``). Unlike Pushpin, which logs a bad line and
    skips it, any bad line stops the parse; so do options p8 does not support
    (``orig_headers``, ``sockjs*``, ``untrusted``, ...), unknown
    options, options repeated (other than ``header`` and ``sub``), flags given a value and
    ``path_rem`` together with ``replace_beg``. ``session`` is accepted and ignored, as a
    Pushpin without a state service does. ``log_level=N`` maps Pushpin's 0-3 to ``error``,
    ``warning``, ``info`` and ``debug``. A route's ``source`` is ``"<source>:<line>"``.

    :param text: the whole file.
    :param source: the file name, for messages.
    :raises ConfigError: with key ``"line N"`` for a bad line or a duplicate condition.
    """
    routes: list[Route] = []
    numbers: list[int] = []
    for number, line in enumerate(text.split("\n"), start=1):
        try:
            route = _parse_line(line.removesuffix("\r"), f"{source}:{number}")
        except _Invalid as exc:
            raise ConfigError(source, f"line {number}", exc.problem) from None
        if route is not None:
            routes.append(route)
            numbers.append(number)
    duplicate = duplicate_condition(routes)
    if duplicate is not None:
        earlier, later = duplicate
        raise ConfigError(
            source,
            f"line {numbers[later]}",
            f"duplicate condition, same as line {numbers[earlier]}",
        )
    return routes


def duplicate_condition(routes: Sequence[Route]) -> tuple[int, int] | None:
    """Find the first two routes with the same host, proto, ssl and path_prefix.

    Routes with no host (reachable only by id) have no condition and are never duplicates.

    :returns: the indexes ``(earlier, later)`` of the first such pair, or None.
    """
    seen: dict[tuple[str, str | None, bool | None, str], int] = {}
    for index, route in enumerate(routes):
        if not route.host:
            continue
        condition = (_host_key(route.host), route.proto, route.ssl, route.path_prefix)
        if condition in seen:
            return seen[condition], index
        seen[condition] = index
    return None


# ---- selection ----------------------------------------------------------------------------

# (websocket wanted: None = any, ssl wanted: None = any, path prefix, route)
_Candidate = tuple[bool | None, bool | None, str, Route]


def _host_key(host: str) -> str:
    """A route host as the Router indexes it: lowercased, IPv6 without brackets."""
    key = host.lower()
    return key[1:-1] if key.startswith("[") and key.endswith("]") else key


def request_host(host: str) -> str:
    """The host a request is routed by: its Host without the port, lowercased.

    ``"Example.COM:8080"`` gives ``"example.com"``, ``"[::1]:80"`` gives ``"::1"``.
    """
    if host.startswith("["):
        end = host.find("]")
        return (host[1:end] if end > 0 else host[1:]).lower()
    return host.partition(":")[0].lower()


def _candidates(group: list[tuple[int, Route]]) -> tuple[_Candidate, ...]:
    """Order one host's routes most specific first, so the first eligible one wins."""
    group.sort(
        key=lambda item: (
            item[1].proto is None,  # a route with proto beats one without
            -len(item[1].path_prefix),  # then the longer path prefix
            item[1].ssl is None,  # then a route with ssl beats one without
            item[0],  # then the earlier route
        )
    )
    return tuple(
        (None if r.proto is None else r.proto == "ws", r.ssl, r.path_prefix, r) for _, r in group
    )


@final
class Router:
    """Picks the route for a request, by Pushpin's rules (``config-and-routes.md`` §3.4).

    If any route names the request's host exactly, only those routes are candidates, else
    the ``"*"`` routes: there is no fallback from a host's routes to ``"*"``. A candidate is
    eligible when its proto (``ws`` for WebSocket handshakes, ``http`` for the rest), ssl and
    path prefix match. The most specific eligible route wins, compared in this order: a route
    with ``proto`` beats one without; a longer ``path_prefix`` wins; a route with ``ssl``
    beats one without; then the earlier route. Pushpin 1.36 compares field by field as it
    scans, so there a later route with ``ssl`` and a shorter prefix can beat an earlier one
    without ``ssl`` (a quirk marked [Q] in the spec); p8 does not copy that.

    Candidate lists are sorted once here, so :meth:`match` stops at the first eligible route.
    """

    __slots__ = ("_by_host", "_by_id", "_wildcard", "routes")

    routes: tuple[Route, ...]
    _by_host: dict[str, tuple[_Candidate, ...]]
    _wildcard: tuple[_Candidate, ...]
    _by_id: dict[str, Route | None]

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        groups: dict[str, list[tuple[int, Route]]] = {}
        for index, route in enumerate(self.routes):
            if route.host:  # a route without a host is reachable only by id
                groups.setdefault(_host_key(route.host), []).append((index, route))
        self._by_host = {host: _candidates(group) for host, group in groups.items()}
        self._wildcard = self._by_host.pop("*", ())
        self._by_id = {}
        for route in self.routes:
            route_id = route.route_id
            # An id used twice selects nothing (as in Pushpin), since either route could be meant.
            self._by_id[route_id] = None if route_id in self._by_id else route

    def match(
        self, host: str, path: str, *, websocket: bool = False, ssl: bool = False
    ) -> Route | None:
        """The route for a request, or None (the caller answers 502 ``No route for host``).

        :param host: the request's Host (a port and IPv6 brackets are allowed).
        :param path: the raw request path, as received.
        :param websocket: the request is a WebSocket handshake.
        :param ssl: the client connection is TLS.
        """
        candidates = self._by_host.get(request_host(host), self._wildcard)
        for want_ws, want_ssl, prefix, route in candidates:
            if (
                (want_ws is None or want_ws == websocket)
                and (want_ssl is None or want_ssl == ssl)
                and path.startswith(prefix)
            ):
                return route
        return None

    def by_id(self, route_id: str) -> Route | None:
        """The route with this :attr:`Route.route_id` (for ``Pushpin-Route``); None if unknown
        or if two routes share the id."""
        return self._by_id.get(route_id)


def rewrite_path(route: Route, path: str) -> str:
    """The path to send to the origin, as Pushpin rewrites it.

    With ``replace_beg``, a leading ``path_prefix`` is replaced by it (``path_prefix="/api/"``,
    ``replace_beg="/"``: ``/api/x`` becomes ``/x``); a path not starting with the prefix, which
    only a route chosen by id can get, is left alone. Otherwise ``path_rem`` removes that many
    leading characters. A rewritten path that does not start with ``/`` gets one. A query
    string is kept unchanged. Characters are bytes here: request paths are ASCII
    (percent-encoded), as Pushpin counts them.
    """
    if route.replace_beg is None and not route.path_rem:
        return path
    target, mark, query = path.partition("?")
    if route.replace_beg is not None:
        if not target.startswith(route.path_prefix):
            return path
        target = route.replace_beg + target[len(route.path_prefix) :]
    else:
        target = target[route.path_rem :]
    if not target.startswith("/"):
        target = "/" + target
    return target + mark + query
