"""``[plugins.ws_over_http]``: limits and timings of WebSocket connections."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p8core import ConfigError, parse_table


@dataclass(frozen=True, slots=True)
class WsSettings:
    """Defaults follow Pushpin 1.36."""

    compression: bool = True
    """Accept permessage-deflate when a client offers it."""
    max_message: int = 16_777_216
    """Largest message a client may send, in bytes; a bigger one closes with 1009."""
    max_batch: int = 200_000
    """Message bytes per WebSocket-over-HTTP request (a bigger message goes alone)."""
    max_response_body: int = 1_000_000
    """Largest WebSocket-over-HTTP response body accepted from a backend."""
    keep_alive_min: float = 20.0
    """A backend's ``Keep-Alive-Interval`` below this is raised to it."""
    retries: int = 5
    """Retries of a WebSocket-over-HTTP request that did not reach the backend."""
    retry_delay: float = 1.0
    """Delay before the first retry; each next one waits twice as long."""
    jitter: float = 1.0
    """Random seconds (up to this) added to retry delays and taken from keep-alives."""
    close_timeout: float = 5.0
    """Seconds a close handshake may take before the connection is dropped."""


def parse_settings(table: Mapping[str, Any], source: str, prefix: str) -> WsSettings:
    """Parse and check the table."""
    settings = parse_table(WsSettings, table, source, prefix)
    for key in ("max_message", "max_batch", "max_response_body"):
        if getattr(settings, key) < 1:
            raise ConfigError(source, f"{prefix}.{key}", "must be at least 1")
    return settings
