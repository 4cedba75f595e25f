"""``[plugins.long_poll]``: settings of the long-polling plugin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p8core import ConfigError, parse_table

__all__ = ["LongPollSettings", "parse_settings"]


@dataclass(frozen=True, slots=True)
class LongPollSettings:
    """The table's keys and their defaults."""

    timeout_scale: float = 1.0
    """Multiplies every response-hold timeout (``Grip-Timeout``, default 55 s, at least
    5 s). For tests only: 0.02 turns the 5 s minimum into 0.1 s."""


def parse_settings(table: Mapping[str, Any], source: str, prefix: str) -> LongPollSettings:
    """Parse and check the table.

    :raises ConfigError: an unknown key, a wrong type, or a ``timeout_scale`` of 0.
    """
    settings = parse_table(LongPollSettings, table, source, prefix)
    if settings.timeout_scale <= 0:
        raise ConfigError(source, f"{prefix}.timeout_scale", "must be greater than 0")
    return settings
