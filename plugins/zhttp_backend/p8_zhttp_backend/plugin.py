"""Hook wiring of the zhttp_backend plugin: ZeroMQ backends over ZHTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from p8core import ConfigSection, Connector, hookimpl
from p8core.app import App

from .base import serve_targets
from .reqmode import ReqConnector
from .settings import parse_settings
from .streaming import StreamConnector


@hookimpl
def p8_config_sections() -> list[ConfigSection]:
    return [ConfigSection("zhttp_backend", parse_settings)]


@hookimpl
def p8_register_connectors() -> list[type[Connector]]:
    return [ReqConnector, StreamConnector]


@hookimpl
def p8_services(app: App) -> list[Callable[[], Awaitable[None]]]:
    if not app.role.serves_clients:
        return []  # a supervisor proxies nothing
    return [partial(serve_targets, app)]
