"""``[plugins.http_stream]``: the timing knobs of stream holds, Pushpin's values by default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p8core import ConfigError, parse_table

__all__ = ["StreamSettings", "parse_settings"]


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How stream holds retry next links, spread their timers and queue items."""

    retry_delay: float = 1.0
    """Seconds before the first retry of a failed next-link fetch; each further retry
    waits twice as long (1, 2, 4, 8, 16 s)."""
    retry_max: int = 5
    """Retries of a failed next-link fetch before the stream ends."""
    jitter: float = 1.0
    """Up to this many seconds, at random, are taken off each keep-alive wait and added
    to each retry delay (Pushpin: 0-999 ms). 0 makes both exact."""
    queue_max: int = 100
    """Items kept for a stream while its next link is being fetched; more are dropped."""


def parse_settings(table: Mapping[str, Any], source: str, prefix: str) -> StreamSettings:
    """Parse and check the table.

    :raises ConfigError: an unknown key, a wrong type, a negative number, or a jitter
        of more than one second.
    """
    settings = parse_table(StreamSettings, table, source, prefix)
    if settings.jitter > 1.0:
        raise ConfigError(source, f"{prefix}.jitter",
                          "must be at most 1 (second): keep-alive timeouts can be 1 s")
    return settings
