"""Hook wiring of the ws_over_http plugin: WebSocket clients, WebSocket-over-HTTP, and the
publish format ``ws-message``."""

from __future__ import annotations

from p8core import (
    ClientTransport,
    Command,
    Config,
    ConfigSection,
    PublishFormat,
    hookimpl,
)

from .format import WsMessageFormat
from .refresh import Refresh
from .settings import parse_settings
from .transport import WebSocketTransport


@hookimpl
def p8_config_sections() -> list[ConfigSection]:
    return [ConfigSection("ws_over_http", parse_settings)]


@hookimpl
def p8_register_formats() -> list[PublishFormat]:
    return [WsMessageFormat()]


@hookimpl
def p8_register_transports(config: Config) -> list[ClientTransport]:
    return [WebSocketTransport(config.plugins.section("ws_over_http"))]


@hookimpl
def p8_register_commands() -> list[Command]:
    return [Refresh()]
