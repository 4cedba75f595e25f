"""The TOML configuration: parsed into frozen dataclasses, every key checked.

Unknown keys, wrong types and bad values stop start-up with a ``ConfigError`` naming the
file, the key and the reason. Defaults live in the dataclasses, so p8 runs without a file.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .proxy.headers import PROTO_MODES
from .proxy.routes import Route, duplicate_condition, parse_routes_file, route_from_toml

T = TypeVar("T")

DEFAULT_SOURCE = "<defaults>"
UNIX_PATH_MAX = 107
"""Longest Unix socket path the kernel takes (``sun_path`` less its final NUL)."""
DEFAULT_ROUTES = (Route(targets=("test",), source="default route"),)
MIN_RELOAD_INTERVAL = 0.1


@dataclass(frozen=True, slots=True)
class Address:
    """A ``host:port`` to listen on (``[::1]:7999`` for IPv6)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, source: str, key: str) -> Address:
    """Parse ``host:port``; a bare port means every interface."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "0.0.0.0", text
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(source, key, f"{text!r} is not a host:port address")
    return Address(host, int(port))


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """``[server]``: the client-facing listeners and their bounds."""

    listen: tuple[str, ...] = ("0.0.0.0:7999",)
    """Addresses for plain HTTP clients: ``host:port``, ``[::1]:7999`` or a bare port
    (every IPv4 interface)."""
    tls_listen: tuple[str, ...] = ()
    """Addresses for HTTPS clients, written as ``listen``; needs ``tls_cert``."""
    tls_cert: str = ""
    """PEM file with the certificate chain for ``tls_listen``, relative to the config
    file's directory."""
    tls_key: str = ""
    """PEM file with the certificate's private key; empty: it is in ``tls_cert``."""
    tls_cert_dir: str = ""
    """A directory of per-host certificates, relative to the config file's directory: a
    client that names host H (SNI) gets ``H.crt`` (key in ``H.key`` or the same file), or
    else ``*.<H's parent domain>.crt``; other clients get ``tls_cert``. Read at start."""
    unix_listen: tuple[str, ...] = ()
    """Unix socket paths for clients (e.g. a front web server on the same machine),
    relative to the config file's directory."""
    unix_mode: int = 0o666
    """Permissions of the ``unix_listen`` sockets; ``0o660`` lets only the owner and group
    connect."""
    max_connections: int = 50_000
    """Client connections beyond this are answered ``503`` and closed."""
    client_buffer_size: int = 8192
    """Largest client request head, in bytes."""
    head_timeout: float = 30.0
    """Seconds a client may take to send a whole request head, counted from when the
    connection opens or its previous response ends: one that began a head gets ``408``, an
    idle keep-alive connection is closed (``0``: no limit). Also applies to the control
    API."""
    body_timeout: float = 30.0
    """Seconds a client may send nothing of a request body it began (a declared length or
    chunks still to come): it then gets ``408`` and the connection closes (``0``: no
    limit). A slow upload that keeps sending is never cut. Also applies to the control
    API."""
    write_buffer_max: int = 1_048_576
    """Bytes a held connection may have unsent before it is closed as too slow."""
    max_request_body: int = 1_073_741_824
    """Largest client request body passed to a backend; a bigger one gets 413."""
    shutdown_grace: float = 3.0
    """Seconds to wait for connections to close on SIGTERM or SIGINT."""
    gc_freeze_step: int = 1000
    """Freeze the heap after this many new connections, keeping full garbage collections
    short while many are held (``0``: never)."""
    reload_watch: bool = False
    """Reload when the config file or its routes file changes (SIGHUP always reloads)."""
    reload_interval: float = 1.0
    """Seconds between two looks at the files' modification times."""
    workers: int | str = 1
    """Processes serving clients: a number, or ``"auto"`` for one per CPU."""
    reuse_port: bool = True
    """With workers: each binds its own TCP listeners with SO_REUSEPORT (where the platform
    has it) and the kernel spreads connections; otherwise they share the supervisor's
    listening sockets (Unix sockets are always shared)."""
    worker_queue: int = 100_000
    """With workers: items queued for one worker, at most; a worker further behind misses
    the items beyond (and counts them), the others do not."""

    @property
    def worker_count(self) -> int:
        """``workers`` as a number: ``"auto"`` is the CPUs this process may run on."""
        if isinstance(self.workers, int):
            return self.workers
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """``[control]``: the HTTP control API (``POST /publish/``)."""

    listen: str = "127.0.0.1:5561"
    """Address of the control API."""
    max_body: int = 1_000_000
    """Largest publish body, in bytes; a larger one gets ``400``."""
    max_headers: int = 10_000
    """Largest control request head, in bytes."""
    key: str = ""
    """Publishers must authenticate with this key (see ``server.publish_auth``)."""
    iss: str = ""
    """The ``iss`` a publisher's JWT must carry; empty accepts any."""

    @property
    def address(self) -> Address:
        return parse_address(self.listen, "", "")


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """``[proxy]``: how requests reach backends."""

    sig_iss: str = "pushpin"
    """``iss`` claim of the ``Grip-Sig`` JWT sent to backends."""
    sig_key: str = "changeme"
    """Grip-Sig key: a plain HMAC secret (HS256), ``base64:<b64>``, or ``file:<pem>``
    (ES256/RS256, needs ``cryptography``); ``""`` sends no Grip-Sig."""
    upstream_key: str = ""
    """A client whose ``Grip-Sig`` verifies with this key is a trusted GRIP proxy: its
    ``Grip-*`` headers pass through and GRIP responses are relayed to it unprocessed."""
    backend_timeout: float = 30.0
    """Seconds to wait for a backend to answer; when they run out, the client gets
    ``504``."""
    routes_file: str = ""
    """A Pushpin routes file, relative to the config file's directory."""
    debug: bool = False
    """Every route is a ``debug`` route: error answers give the reason, and streams that
    end on an error write it first."""
    auto_cross_origin: bool = False
    """Every route is an ``aco`` route: CORS headers, and JSON-P for GET requests with a
    callback."""
    x_forwarded_for: tuple[str, ...] = ()
    """``"append"`` (add the client's address) and ``"truncate:N"`` (keep the last N hops),
    applied in order; empty passes the client's header unchanged."""
    x_forwarded_for_trusted: tuple[str, ...] = ()
    """The same rules, for trusted clients (upstream proxies whose ``Grip-Sig`` checks out
    against ``upstream_key``)."""
    set_x_forwarded_protocol: str = "proto-only"
    """For a client connected over TLS, tell the backend: ``"proto-only"`` sends
    ``X-Forwarded-Proto: https`` (``wss`` for WebSockets), ``"both"`` also the legacy
    ``X-Forwarded-Protocol``, ``"off"`` nothing. Unless off, copies sent by the client are
    removed."""
    accept_x_forwarded_protocol: bool = False
    """Believe a client's ``X-Forwarded-Proto`` (or ``-Protocol``) of ``https``/``wss``: the
    request counts as TLS for route matching (``ssl = true``), links and the header above.
    Only for clients that all come through a proxy you run."""
    max_grip_body: int = 100_000
    """Largest backend GRIP response body (larger: ``502``), and largest client body kept
    for retries."""


@dataclass(frozen=True, slots=True)
class PubsubConfig:
    """``[pubsub]``: ordering, de-duplication and subscription bounds (Pushpin's names)."""

    id_cache_ttl: float = 60.0
    """Seconds a published ``(channel, id)`` is remembered so a repeat is dropped; ``0``
    turns this off."""
    message_wait: int = 5000
    """Milliseconds an item whose ``prev-id`` does not match waits for its predecessor."""
    subscription_linger: float = 60.0
    """Seconds a channel stays subscribed after its last long-poll client left."""
    connection_subscription_max: int = 20
    """Channels one held connection may subscribe to; the rest are ignored."""
    max_channel_name: int = 1024
    """Longest channel name, in characters, that may be published to or subscribed to."""
    message_rate: int = 0
    """Deliveries per second, all channels together; 0 means unlimited."""
    message_hwm: int = 25_000
    """Deliveries that may wait for ``message_rate``; publishes beyond them get 429."""


@dataclass(frozen=True, slots=True)
class ConfigSection:
    """A ``[plugins.<name>]`` table owned by a plugin, and the parser that checks it."""

    name: str
    parse: Callable[[Mapping[str, Any], str, str], object]
    """Called with the raw table, the file name and the table's dotted name (for messages);
    returns a frozen dataclass or raises ``ConfigError``. ``parse_table`` does it all."""


@dataclass(frozen=True, slots=True)
class PluginsConfig:
    """``[plugins]``: which installed plugins run, and their parsed tables."""

    enabled: tuple[str, ...] | None = None
    """Entry-point names of the plugins to load (absent: every installed plugin); the
    built-in plugin always loads."""
    sections: Mapping[str, object] = field(default_factory=lambda: types.MappingProxyType({}))

    def section(self, name: str) -> Any:
        """The parsed ``[plugins.<name>]`` table (its parser's defaults when absent)."""
        return self.sections[name]


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration of one p8 process."""

    server: ServerConfig = ServerConfig()
    control: ControlConfig = ControlConfig()
    proxy: ProxyConfig = ProxyConfig()
    pubsub: PubsubConfig = PubsubConfig()
    plugins: PluginsConfig = PluginsConfig()
    routes: tuple[Route, ...] = DEFAULT_ROUTES
    source: str = DEFAULT_SOURCE
    base_dir: Path = Path(".")


def _type_name(tp: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0]).split(' ', 1)[1]}s"
    return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))


def _coerce(value: object, tp: Any, source: str, key: str) -> object:
    """Check ``value`` against the annotation ``tp``; return it in the dataclass's shape."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(tp):
            if arg is not type(None):
                try:
                    return _coerce(value, arg, source, key)
                except ConfigError:
                    continue
        raise ConfigError(source, key, f"expected {_type_name(tp)}")
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(source, key, f"expected {_type_name(tp)}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_coerce(v, item_tp, source, f"{key}[{i}]") for i, v in enumerate(value))
    ok = (
        isinstance(value, bool) if tp is bool
        else isinstance(value, int | float) and not isinstance(value, bool) if tp is float
        else isinstance(value, int) and not isinstance(value, bool) if tp is int
        else isinstance(value, tp)
    )
    if not ok:
        raise ConfigError(source, key, f"expected {_type_name(tp)}, got {value!r}")
    return float(value) if tp is float else value  # type: ignore[arg-type]


def parse_table(cls: type[T], table: Mapping[str, Any], source: str, prefix: str) -> T:
    """Build dataclass ``cls`` from a TOML table, rejecting unknown keys and wrong types.

    Numbers must be non-negative. Plugins use this for their own sections.

    :param prefix: the table's dotted name, for messages (``plugins.zmq_pubsub``).
    :raises ConfigError: naming ``source`` and the full key.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, object] = {}
    for name, value in table.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in names:
            raise ConfigError(source, key, "unknown key")
        coerced = _coerce(value, hints[name], source, key)
        if isinstance(coerced, int | float) and not isinstance(coerced, bool) and coerced < 0:
            raise ConfigError(source, key, "must not be negative")
        values[name] = coerced
    return cls(**values)


def _table(raw: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(source, name, "expected a table")
    return value


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; a missing file or bad syntax is a ConfigError naming the file."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(str(path), "-", f"cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), "-", f"invalid TOML: {e}") from None


def enabled_plugins(raw: Mapping[str, Any], source: str) -> tuple[str, ...] | None:
    """The ``[plugins] enabled`` list, or ``None`` for "every installed plugin"."""
    value = _table(raw, "plugins", source).get("enabled")
    if value is None:
        return None
    result = _coerce(value, tuple[str, ...], source, "plugins.enabled")
    return typing.cast(tuple[str, ...], result)


_TOP_LEVEL = {"server", "control", "proxy", "pubsub", "plugins", "routes"}


def build_config(raw: Mapping[str, Any], source: str, base_dir: Path,
                 sections: Sequence[ConfigSection]) -> Config:
    """Turn a parsed TOML document into a :class:`Config`.

    :param sections: the ``[plugins.<name>]`` tables the enabled plugins declared.
    :raises ConfigError: the first problem found, naming file and key.
    """
    for name in raw:
        if name not in _TOP_LEVEL:
            raise ConfigError(source, name, "unknown table")
    server = parse_table(ServerConfig, _table(raw, "server", source), source, "server")
    check_listeners(server, source)
    if server.reload_interval < MIN_RELOAD_INTERVAL:
        raise ConfigError(source, "server.reload_interval",
                          f"must be at least {MIN_RELOAD_INTERVAL} seconds")
    if server.workers != "auto" and not (isinstance(server.workers, int) and server.workers):
        raise ConfigError(source, "server.workers",
                          f'expected a number of processes (1 or more) or "auto", '
                          f"got {server.workers!r}")
    control = parse_table(ControlConfig, _table(raw, "control", source), source, "control")
    parse_address(control.listen, source, "control.listen")
    proxy = parse_table(ProxyConfig, _table(raw, "proxy", source), source, "proxy")
    for key in ("x_forwarded_for", "x_forwarded_for_trusted"):
        for i, rule in enumerate(getattr(proxy, key)):
            kind, _, n = rule.partition(":")
            if not (rule == "append" or (kind == "truncate" and n.isdigit())):
                raise ConfigError(source, f"proxy.{key}[{i}]",
                                  f"{rule!r} is neither 'append' nor 'truncate:N'")
    if proxy.set_x_forwarded_protocol not in PROTO_MODES:
        raise ConfigError(source, "proxy.set_x_forwarded_protocol",
                          f"expected one of {', '.join(map(repr, PROTO_MODES))}, "
                          f"got {proxy.set_x_forwarded_protocol!r}")
    pubsub = parse_table(PubsubConfig, _table(raw, "pubsub", source), source, "pubsub")
    plugins = _parse_plugins(_table(raw, "plugins", source), source, sections)
    routes = _parse_routes(raw, source, base_dir, proxy.routes_file)
    return Config(server, control, proxy, pubsub, plugins, routes, source, base_dir)


def check_listeners(server: ServerConfig, source: str) -> None:
    """Check ``[server]``'s addresses and the keys that go with them.

    :raises ConfigError: a bad address, no listener at all, ``tls_listen`` without
        ``tls_cert``, or a Unix socket path that is empty, too long or a bad mode.
    """
    for key in ("listen", "tls_listen"):
        for i, text in enumerate(getattr(server, key)):
            parse_address(text, source, f"server.{key}[{i}]")
    if not (server.listen or server.tls_listen or server.unix_listen):
        raise ConfigError(source, "server.listen",
                          "needs at least one address (or tls_listen, unix_listen)")
    if server.tls_listen and not server.tls_cert:
        raise ConfigError(source, "server.tls_cert", "required with tls_listen")
    for i, path in enumerate(server.unix_listen):
        if not path or len(path.encode()) > UNIX_PATH_MAX:
            raise ConfigError(source, f"server.unix_listen[{i}]",
                              f"must be a path of 1 to {UNIX_PATH_MAX} bytes")
    if server.unix_mode > 0o777:
        raise ConfigError(source, "server.unix_mode", "must be a file mode such as 0o660")


def _parse_plugins(table: Mapping[str, Any], source: str,
                   sections: Sequence[ConfigSection]) -> PluginsConfig:
    owners = {s.name: s for s in sections}
    parsed: dict[str, object] = {}
    for name, value in table.items():
        if name == "enabled":
            continue
        if name not in owners:
            raise ConfigError(source, f"plugins.{name}", "no enabled plugin owns this table")
        if not isinstance(value, dict):
            raise ConfigError(source, f"plugins.{name}", "expected a table")
    for name, section in owners.items():
        value = table.get(name, {})
        parsed[name] = section.parse(value, source, f"plugins.{name}")
    return PluginsConfig(enabled_plugins({"plugins": table}, source),
                         types.MappingProxyType(parsed))


def _parse_routes(raw: Mapping[str, Any], source: str, base_dir: Path,
                  routes_file: str) -> tuple[Route, ...]:
    tables = raw.get("routes", [])
    if not isinstance(tables, list):
        raise ConfigError(source, "routes", "expected an array of tables ([[routes]])")
    routes: list[Route] = []
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            raise ConfigError(source, f"routes[{i}]", "expected a table")
        routes.append(route_from_toml(table, source, f"routes[{i}]"))
    if routes_file:
        path = base_dir / routes_file
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(source, "proxy.routes_file",
                              f"cannot read {path}: {e.strerror}") from None
        routes.extend(parse_routes_file(text, str(path)))
    if (pair := duplicate_condition(routes)) is not None:
        first, second = routes[pair[0]], routes[pair[1]]
        raise ConfigError(second.source, "condition",
                          f"same host, proto, ssl and path_prefix as {first.source}")
    return tuple(routes) if routes else DEFAULT_ROUTES


def load_raw(path: Path | None) -> tuple[dict[str, Any], str, Path]:
    """The raw TOML of ``path`` with its name for messages and its directory."""
    if path is None:
        return {}, DEFAULT_SOURCE, Path(".")
    return read_toml(path), str(path), path.resolve().parent
