"""Hook wiring of the zmq_pubsub plugin: publishing over ZeroMQ PULL and SUB, the command
socket and the stats socket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from p8core import Command, Config, ConfigSection, hookimpl
from p8core.app import App

from .command_socket import GetZmqUris, serve_commands
from .inputs import ZmqInputs
from .settings import ZmqSettings, parse_settings
from .stats_socket import publish_stats


@hookimpl
def p8_config_sections() -> list[ConfigSection]:
    return [ConfigSection("zmq_pubsub", parse_settings)]


@hookimpl
def p8_register_commands(config: Config) -> list[Command]:
    return [GetZmqUris(config.plugins.section("zmq_pubsub"))]


@hookimpl
def p8_services(app: App) -> list[Callable[[], Awaitable[None]]]:
    if not app.role.takes_publishes:
        return []  # a worker: its supervisor takes the publishes and answers commands
    settings: ZmqSettings = app.config.plugins.section("zmq_pubsub")
    services: list[Callable[[], Awaitable[None]]] = [ZmqInputs(app, settings).run]
    if settings.command:
        services.append(partial(serve_commands, app, settings))
    if settings.stats:
        services.append(partial(publish_stats, app, settings))
    return services
