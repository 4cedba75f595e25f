"""Hook wiring of the http_stream plugin: hold mode ``stream``, format ``http-stream``."""

from __future__ import annotations

from p8core import Config, ConfigSection, HoldMode, PublishFormat, hookimpl

from .format import HttpStreamFormat
from .hold import configured
from .settings import parse_settings


@hookimpl
def p8_config_sections() -> list[ConfigSection]:
    return [ConfigSection("http_stream", parse_settings)]


@hookimpl
def p8_register_formats() -> list[PublishFormat]:
    return [HttpStreamFormat()]


@hookimpl
def p8_register_hold_modes(config: Config) -> list[type[HoldMode]]:
    return [configured(config)]
