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
from .proxy.routes import Route, duplicate_condition, parse_routes_file, route_from_toml

T = TypeVar("T")

DEFAULT_SOURCE = "<defaults>"
DEFAULT_ROUTES = (Route(targets=("test",), source="default route"),)


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
    max_connections: int = 50_000
    client_buffer_size: int = 8192
    write_buffer_max: int = 1_048_576
    """Bytes a held connection may have unsent before it is closed as too slow."""
    shutdown_grace: float = 3.0
    workers: int | str = 1
    """Processes serving clients: a number, or ``"auto"`` for one per CPU."""
    reuse_port: bool = True
    """Workers bind their own listeners with SO_REUSEPORT (where the platform has it);
    otherwise they share listening sockets the supervisor made."""
    worker_queue: int = 100_000
    """Items queued for one worker, at most; beyond that publishes to its channels are
    dropped and counted."""

    @property
    def addresses(self) -> tuple[Address, ...]:
        return tuple(parse_address(a, "", "") for a in self.listen)

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
    max_body: int = 1_000_000
    max_headers: int = 10_000

    @property
    def address(self) -> Address:
        return parse_address(self.listen, "", "")


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """``[proxy]``: how requests reach backends."""

    sig_iss: str = "pushpin"
    sig_key: str = "changeme"
    upstream_key: str = ""
    backend_timeout: float = 30.0
    routes_file: str = ""
    debug: bool = False
    x_forwarded_for: tuple[str, ...] = ()
    max_grip_body: int = 100_000


@dataclass(frozen=True, slots=True)
class PubsubConfig:
    """``[pubsub]``: ordering, de-duplication and subscription bounds (Pushpin's names)."""

    id_cache_ttl: float = 60.0
    message_wait: int = 5000
    """Milliseconds an out-of-order item waits for its predecessor."""
    subscription_linger: float = 60.0
    connection_subscription_max: int = 20


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
    for i, text in enumerate(server.listen):
        parse_address(text, source, f"server.listen[{i}]")
    if not server.listen:
        raise ConfigError(source, "server.listen", "needs at least one address")
    if server.workers != "auto" and not (isinstance(server.workers, int) and server.workers):
        raise ConfigError(source, "server.workers",
                          f'expected a number of processes (1 or more) or "auto", '
                          f"got {server.workers!r}")
    control = parse_table(ControlConfig, _table(raw, "control", source), source, "control")
    parse_address(control.listen, source, "control.listen")
    proxy = parse_table(ProxyConfig, _table(raw, "proxy", source), source, "proxy")
    for i, rule in enumerate(proxy.x_forwarded_for):
        kind, _, n = rule.partition(":")
        if not (rule == "append" or (kind == "truncate" and n.isdigit())):
            raise ConfigError(source, f"proxy.x_forwarded_for[{i}]",
                              f"{rule!r} is neither 'append' nor 'truncate:N'")
    pubsub = parse_table(PubsubConfig, _table(raw, "pubsub", source), source, "pubsub")
    plugins = _parse_plugins(_table(raw, "plugins", source), source, sections)
    routes = _parse_routes(raw, source, base_dir, proxy.routes_file)
    return Config(server, control, proxy, pubsub, plugins, routes, source, base_dir)


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
