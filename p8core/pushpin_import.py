"""``p8 import-pushpin``: a Pushpin ``pushpin.conf`` and routes file as one p8 TOML file.

:func:`import_pushpin` maps the parsed files to p8's tables, noting what could not be
carried over, and :func:`toml_document` writes them; only :func:`import_files` reads files.
Routes are read with p8's own routes-file parser and written back as ``[[routes]]``
tables, so whatever it writes, ``p8 check`` reads the same way. Keys are mapped as
``config-and-routes.md`` §4 suggests; Pushpin's internal ZeroMQ plumbing (``condure_*``,
``zurl_*``, ``handler_*_spec``, ...) has no counterpart and is left out without a note.
"""

from __future__ import annotations

import configparser
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Final

from .errors import ConfigError
from .proxy.routes import TOML_FIELDS, Route, parse_routes_file

__all__ = ["Imported", "import_files", "import_pushpin", "read_pushpin_conf", "toml_document"]

Conf = Mapping[str, Mapping[str, str]]
Tables = dict[str, dict[str, Any]]

_TCP_PORT: Final = re.compile(r"(tcp://[^:/\s,]+:)(\d+)")
_TEMPLATE: Final = re.compile(r"\{(rundir|ipc_prefix|libdir)\}")
_DEFAULT_ROUTE: Final = Route(targets=("",))


@dataclass
class Imported:
    """The TOML tables made from a Pushpin configuration, and what was left out."""

    tables: Tables = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def set(self, table: str, key: str, value: Any) -> None:
        self.tables.setdefault(table, {})[key] = value


def read_pushpin_conf(text: str, source: str) -> dict[str, dict[str, str]]:
    """Parse ``pushpin.conf`` (Qt's INI dialect: ``[section]``, ``key=value``, ``#``).

    :raises ConfigError: the file is not INI.
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False,
                                       comment_prefixes=("#", ";"), delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source)
    except configparser.Error as e:
        raise ConfigError(source, "-", f"not a Pushpin config file: {e.message}") from None
    return {name: dict(parser[name]) for name in parser.sections()}


class _Reader:
    """Reads values of one ``pushpin.conf``, with Pushpin's templating applied."""

    def __init__(self, conf: Conf, source: str, directory: PurePath) -> None:
        self.conf, self.source, self.directory = conf, source, directory
        self.used: set[tuple[str, str]] = set()
        glob = conf.get("global", {})
        runner = conf.get("runner", {})
        self.names = {"rundir": glob.get("rundir") or runner.get("rundir") or "run",
                      "ipc_prefix": glob.get("ipc_prefix", "pushpin-"),
                      "libdir": glob.get("libdir", "/usr/lib/pushpin")}
        self.port_offset = self._offset(glob.get("port_offset", "0"))
        self.used |= {("global", k) for k in ("rundir", "ipc_prefix", "libdir", "include",
                                              "port_offset")}
        self.used.add(("runner", "rundir"))

    def _offset(self, text: str) -> int:
        if not text.strip().isdigit():
            raise ConfigError(self.source, "global.port_offset", f"{text!r} is not a number")
        return int(text)

    def get(self, section: str, key: str) -> str | None:
        """The value with ``{rundir}``-style names filled in and ``tcp://`` ports offset;
        None when the key is absent or empty."""
        self.used.add((section, key))
        value = self.conf.get(section, {}).get(key, "").strip()
        if not value:
            return None
        value = _TEMPLATE.sub(lambda m: self.names[m.group(1)], value)
        if self.port_offset:
            value = _TCP_PORT.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + self.port_offset}",
                                  value)
        return value

    def items(self, section: str, key: str) -> list[str]:
        value = self.get(section, key)
        return [item.strip() for item in value.split(",") if item.strip()] if value else []

    def number(self, section: str, key: str) -> int | None:
        value = self.get(section, key)
        if value is None:
            return None
        if not value.isdigit():
            raise ConfigError(self.source, f"{section}.{key}", f"{value!r} is not a number")
        return int(value)

    def flag(self, section: str, key: str) -> bool | None:
        value = self.get(section, key)
        return None if value is None else value.lower() == "true"

    def path(self, value: str) -> str:
        """A path as Pushpin resolves it: relative to the config file's directory."""
        return str(self.directory / value)


def _listen(text: str) -> str:
    """Pushpin's ``[addr:]port`` as p8's ``host:port`` (every interface by default)."""
    return text if ":" in text else f"0.0.0.0:{text}"


def _copy(reader: _Reader, out: Imported, table: str, key: str, section: str, name: str,
          read: Callable[[_Reader, str, str], Any]) -> None:
    value = read(reader, section, name)
    if value is not None:
        out.set(table, key, value)


# pushpin.conf keys that map one to one: (section, key) -> (p8 table, p8 key, reader)
_SAME: Final[Mapping[tuple[str, str], tuple[str, str, Callable[[_Reader, str, str], Any]]]] = {
    ("runner", "client_buffer_size"): ("server", "client_buffer_size", _Reader.number),
    ("runner", "client_maxconn"): ("server", "max_connections", _Reader.number),
    ("proxy", "debug"): ("proxy", "debug", _Reader.flag),
    ("proxy", "auto_cross_origin"): ("proxy", "auto_cross_origin", _Reader.flag),
    ("proxy", "accept_x_forwarded_protocol"):
        ("proxy", "accept_x_forwarded_protocol", _Reader.flag),
    ("proxy", "sig_iss"): ("proxy", "sig_iss", _Reader.get),
    ("proxy", "sig_key"): ("proxy", "sig_key", _Reader.get),
    ("proxy", "upstream_key"): ("proxy", "upstream_key", _Reader.get),
    ("handler", "push_in_http_max_headers_size"): ("control", "max_headers", _Reader.number),
    ("handler", "push_in_max_headers_size"): ("control", "max_headers", _Reader.number),
    ("handler", "push_in_http_max_body_size"): ("control", "max_body", _Reader.number),
    ("handler", "push_in_max_body_size"): ("control", "max_body", _Reader.number),
    ("handler", "message_wait"): ("pubsub", "message_wait", _Reader.number),
    ("handler", "id_cache_ttl"): ("pubsub", "id_cache_ttl", _Reader.number),
    ("handler", "subscription_linger"): ("pubsub", "subscription_linger", _Reader.number),
    ("handler", "connection_subscription_max"):
        ("pubsub", "connection_subscription_max", _Reader.number),
    ("handler", "message_rate"): ("pubsub", "message_rate", _Reader.number),
    ("handler", "message_hwm"): ("pubsub", "message_hwm", _Reader.number),
}

# pushpin.conf keys of the ZeroMQ command and stats sockets: [plugins.zmq_pubsub] keys.
_ZMQ_SOCKETS: Final[Mapping[tuple[str, str], tuple[str, Callable[[_Reader, str, str], Any]]]] = {
    ("handler", "command_spec"): ("command", _Reader.get),
    ("handler", "stats_spec"): ("stats", _Reader.get),
    ("handler", "stats_format"): ("stats_format", _Reader.get),
    ("global", "stats_connection_ttl"): ("stats_connection_ttl", _Reader.number),
    ("handler", "stats_subscription_ttl"): ("stats_subscription_ttl", _Reader.number),
    ("handler", "stats_report_interval"): ("stats_report_interval", _Reader.number),
}

# Keys with a reason why they are not carried over (noted when set).
_LEFT_OUT: Final[Mapping[tuple[str, str], str]] = {
    ("runner", "log_level"): "choose the level with `p8 run --log-level`",
    ("runner", "logdir"): "p8 logs to standard error; let the service manager keep it",
    ("proxy", "orig_headers_need_mark"): "not supported",
    ("proxy", "accept_pushpin_route"): "not supported",
    ("proxy", "log_from"): "p8's request lines do not log the client address",
    ("proxy", "log_user_agent"): "p8's request lines do not log the user agent",
    ("proxy", "sockjs_url"): "SockJS is not supported",
    ("proxy", "max_open_requests"): "not supported",
    ("proxy", "workers"): "not supported",
    ("proxy", "cdn_loop"): "not supported",
    ("handler", "message_block_size"): "not supported",
    ("proxy", "stats_report_interval"): "p8 reports at [handler] stats_report_interval",
    ("handler", "share_all"): "not supported",
    ("handler", "state_spec"): "sessions are not supported",
    ("proxy", "prometheus_port"): "not supported",
    ("handler", "prometheus_port"): "not supported",
}
# Pushpin's own plumbing and runner settings: nothing to carry over, nothing to say.
_INTERNAL: Final = re.compile(
    r"(services|.*_bin|.*_specs?|ipc_file_mode|updates_check|organization_name|"
    r"prometheus_prefix|routesfile)")


def _server(reader: _Reader, out: Imported) -> None:
    listen = [_listen(p) for p in reader.items("runner", "http_port")]
    tls = [_listen(p) for p in reader.items("runner", "https_ports")]
    unix = [reader.path(p) for p in reader.items("runner", "local_ports")]
    if listen or tls or unix:  # else p8's default listener
        out.set("server", "listen", listen)
    if tls:
        certs = reader.directory / "runner" / "certs"
        out.set("server", "tls_listen", tls)
        out.set("server", "tls_cert", str(certs / "default.crt"))
        out.set("server", "tls_key", str(certs / "default.key"))
        out.set("server", "tls_cert_dir", str(certs))
    if unix:
        out.set("server", "unix_listen", unix)


def _control(reader: _Reader, out: Imported) -> None:
    port = reader.number("handler", "push_in_http_port")
    if port is not None:
        addr = reader.get("handler", "push_in_http_addr") or "127.0.0.1"
        host = f"[{addr}]" if ":" in addr else addr
        out.set("control", "listen", f"{host}:{port + reader.port_offset}")


def _zmq(reader: _Reader, out: Imported, plugin_tables: Collection[str]) -> None:
    table = "plugins.zmq_pubsub"
    pull = reader.get("handler", "push_in_spec")
    sub = (reader.items("handler", "push_in_sub_specs")
           + reader.items("handler", "push_in_sub_spec"))
    connect = reader.flag("handler", "push_in_sub_connect")
    if "zmq_pubsub" not in plugin_tables:
        if pull or sub:
            out.notes.append("[handler] push_in_spec, push_in_sub_specs: publishing over "
                             "ZeroMQ needs the plugin zmq_pubsub (p8-zmq-pubsub)")
        return
    out.set(table, "pull", pull or "")
    out.set(table, "sub", sub)
    if connect is not None:
        out.set(table, "sub_connect", connect)
    for (section, key), (name, read) in _ZMQ_SOCKETS.items():
        _copy(reader, out, table, name, section, key, read)


def import_pushpin(conf: Conf, source: str, directory: PurePath, routes_text: str | None,
                   routes_source: str, plugin_tables: Collection[str]) -> Imported:
    """Map a parsed ``pushpin.conf`` and a routes file to p8's tables and routes.

    :param directory: where ``pushpin.conf`` is; Pushpin's relative paths start there.
    :param routes_text: the routes file, or None to write no routes.
    :param plugin_tables: the ``[plugins.<name>]`` tables installed plugins own; a
        table for a plugin that is not installed is left out, with a note.
    :raises ConfigError: a value that cannot be read, or a routes line p8 cannot take.
    """
    reader = _Reader(conf, source, directory)
    out = Imported()
    _server(reader, out)
    _control(reader, out)
    for (section, key), (table, name, read) in _SAME.items():
        _copy(reader, out, table, name, section, key, read)
    for key in ("x_forwarded_for", "x_forwarded_for_trusted"):
        if rules := reader.items("proxy", key):
            out.set("proxy", key, rules)
    # Pushpin: "true" sends both headers, "proto-only" one, anything else (or no value,
    # its code default) none; p8's default is the shipped "proto-only".
    proto = (reader.get("proxy", "set_x_forwarded_protocol") or "").lower()
    out.set("proxy", "set_x_forwarded_protocol",
            {"true": "both", "proto-only": "proto-only"}.get(proto, "off"))
    _zmq(reader, out, plugin_tables)
    for section, keys in conf.items():
        for key, value in keys.items():
            reason = _LEFT_OUT.get((section, key))
            if reason and value.strip() and value.strip() != "false":
                out.notes.append(f"[{section}] {key} = {value.strip()}: {reason}")
            elif not reason and (section, key) not in reader.used and not _INTERNAL.fullmatch(key):
                out.notes.append(f"[{section}] {key} = {value.strip()}: unknown to p8, "
                                 f"left out")
    if routes_text is not None:
        out.routes = parse_routes_file(routes_text, routes_source)
    return out


# ---- writing TOML ---------------------------------------------------------------------------

def _string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, DEL aside)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _route_table(route: Route) -> list[str]:
    lines = ["[[routes]]"]
    for key, name in TOML_FIELDS.items():
        value = getattr(route, name)
        if name != "targets" and value == getattr(_DEFAULT_ROUTE, name):
            continue
        if name == "targets":
            value = value[0] if len(value) == 1 else list(value)
        if name == "headers":
            last = dict(value)  # a later header of the same name replaces an earlier one
            pairs = ", ".join(f"{_string(k)} = {_string(v)}" for k, v in last.items())
            lines.append(f"{key} = {{ {pairs} }}")
        else:
            lines.append(f"{key} = {_value(value)}")
    return lines


def toml_document(imported: Imported, header: str) -> str:
    """The TOML file: ``header`` and the notes as comments, then tables, then routes."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    if imported.notes:
        lines += ["#", "# Not carried over:"] + [f"#   - {note}" for note in imported.notes]
    for table, values in imported.tables.items():
        lines += ["", f"[{table}]"] + [f"{k} = {_value(v)}" for k, v in values.items()]
    for route in imported.routes:
        lines += ["", *_route_table(route)]
    return "\n".join(lines) + "\n"


def import_files(conf_path: Path, routes_path: Path | None,
                 plugin_tables: Collection[str]) -> tuple[str, list[str]]:
    """Read ``pushpin.conf`` and its routes file and make the TOML document.

    :param routes_path: the routes file; None: the one ``[proxy] routesfile`` names, if
        it exists.
    :returns: the TOML text and the notes about what was left out.
    :raises ConfigError: a file cannot be read or holds what p8 cannot take.
    """
    conf_text = _read(conf_path, "-")
    conf = read_pushpin_conf(conf_text, str(conf_path))
    directory = conf_path.resolve().parent
    if routes_path is None:
        named = conf.get("proxy", {}).get("routesfile", "").strip()
        candidate = directory / named if named else None
        routes_path = candidate if candidate is not None and candidate.is_file() else None
    routes_text = _read(routes_path, "-") if routes_path is not None else None
    imported = import_pushpin(conf, str(conf_path), directory, routes_text,
                              str(routes_path), plugin_tables)
    sources = f"{conf_path}" + (f" and {routes_path}" if routes_path is not None else "")
    header = f"p8 configuration written by `p8 import-pushpin` from {sources}."
    return toml_document(imported, header), imported.notes


def _read(path: Path, key: str) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise ConfigError(str(path), key, f"cannot read: {e.strerror}") from None
