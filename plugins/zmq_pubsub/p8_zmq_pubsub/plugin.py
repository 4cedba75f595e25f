"""Hook wiring of the zmq_pubsub plugin: publishing over ZeroMQ PULL and SUB."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from p8core import ConfigSection, hookimpl
from p8core.app import App

from .inputs import ZmqInputs
from .settings import parse_settings


@hookimpl
def p8_config_sections() -> list[ConfigSection]:
    return [ConfigSection("zmq_pubsub", parse_settings)]


@hookimpl
def p8_services(app: App) -> list[Callable[[], Awaitable[None]]]:
    if not app.role.takes_publishes:
        return []  # a worker: its supervisor takes the publishes
    return [ZmqInputs(app, app.config.plugins.section("zmq_pubsub")).run]
