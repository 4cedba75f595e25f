"""``[plugins.webhook]``: where occupancy events go, how they are signed and retried."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p8core import ConfigError, parse_table

__all__ = ["WebhookSettings", "parse_settings"]


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The table's keys and their defaults; without ``url`` the plugin does nothing."""

    url: str = ""
    """Where events are POSTed (``http://`` or ``https://``); empty turns the plugin off."""
    key: str = ""
    """The key of the ``Grip-Sig`` header, in ``sig_key`` syntax; empty: ``[proxy]
    sig_key``."""
    iss: str = ""
    """The ``iss`` claim of the ``Grip-Sig`` header; empty: ``[proxy] sig_iss``."""
    timeout: float = 5.0
    """Seconds one POST may take."""
    max_attempts: int = 5
    """POSTs of one batch before its events are given up (and counted ``failed``)."""
    backoff: float = 0.5
    """Seconds before the first retry; each further retry waits twice as long."""
    max_backoff: float = 30.0
    """The longest wait between two attempts."""
    queue_max: int = 10_000
    """Events waiting to be sent; when full, the oldest is dropped (counted ``dropped``)."""
    batch_max: int = 100
    """Events in one POST at most."""


def parse_settings(table: Mapping[str, Any], source: str, prefix: str) -> WebhookSettings:
    """Parse and check the table.

    :raises ConfigError: an unknown key, a wrong type, a URL that is not HTTP, or a bound
        below 1.
    """
    settings = parse_table(WebhookSettings, table, source, prefix)
    if settings.url and not settings.url.startswith(("http://", "https://")):
        raise ConfigError(source, f"{prefix}.url",
                          f"{settings.url!r} is not an http:// or https:// URL")
    for key in ("max_attempts", "queue_max", "batch_max"):
        if getattr(settings, key) < 1:
            raise ConfigError(source, f"{prefix}.{key}", "must be at least 1")
    if settings.timeout <= 0:
        raise ConfigError(source, f"{prefix}.timeout", "must be positive")
    return settings
