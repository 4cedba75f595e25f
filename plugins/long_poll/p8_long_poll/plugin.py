"""Hook wiring of the long_poll plugin: HTTP long-polling (Grip-Hold: response)."""

from __future__ import annotations

from p8core import Config, ConfigSection, HoldMode, PublishFormat, hookimpl

from .format import HttpResponseFormat
from .hold import ResponseHold
from .settings import LongPollSettings, parse_settings


@hookimpl
def p8_config_sections() -> list[ConfigSection]:
    return [ConfigSection("long_poll", parse_settings)]


@hookimpl
def p8_register_formats() -> list[PublishFormat]:
    return [HttpResponseFormat()]


@hookimpl
def p8_register_hold_modes(config: Config) -> list[type[HoldMode]]:
    settings: LongPollSettings = config.plugins.section("long_poll")
    return [ResponseHold.scaled(settings.timeout_scale)]
