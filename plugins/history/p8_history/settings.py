"""``[plugins.history]``: settings of the history plugin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p8core import ConfigError, parse_table

__all__ = ["HistorySettings", "parse_settings"]


@dataclass(frozen=True, slots=True)
class HistorySettings:
    """The table's keys and their defaults. History is off until ``max_items`` is set."""

    max_items: int = 0
    """Items kept per channel, newest last; ``0`` turns history off (nothing is kept and
    p8 behaves as without the plugin)."""
    max_bytes: int = 262_144
    """Bytes of payload (contents, bodies, headers of every format) kept per channel; the
    oldest items go first. An item larger than this empties its channel's history."""
    max_age: float = 300.0
    """Seconds an item is kept; ``0`` keeps items until the other bounds push them out."""
    max_channels: int = 1000
    """Channels with a history; the one published to least recently is dropped first.
    At most ``max_channels`` times ``max_bytes`` bytes of payload are kept in all."""
    store: str = "memory"
    """Where the history is kept: the name of a store a plugin offers
    (``p8_history_stores``); ``memory`` is this process's memory."""
    last_event_id: bool = True
    """Resume from a client's ``Last-Event-ID`` header (SSE) when the backend gave the
    channel no ``prev-id``; false when the backend replays from it itself."""


def parse_settings(table: Mapping[str, Any], source: str, prefix: str) -> HistorySettings:
    """Parse and check the table.

    :raises ConfigError: an unknown key, a wrong type, a negative number, a
        ``max_channels`` or ``max_bytes`` of 0, or an empty ``store``.
    """
    settings = parse_table(HistorySettings, table, source, prefix)
    for key in ("max_bytes", "max_channels"):
        if getattr(settings, key) == 0:
            raise ConfigError(source, f"{prefix}.{key}", "must be at least 1")
    if not settings.store:
        raise ConfigError(source, f"{prefix}.store", "must name a history store")
    return settings
