"""``[plugins.zmq_pubsub]``: where the ZeroMQ publish inputs, the command socket and the
stats socket listen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p8core import ConfigError, parse_table

ENDPOINT_SCHEMES = ("tcp://", "ipc://", "inproc://")
STATS_FORMATS = ("tnetstring", "json")


@dataclass(frozen=True, slots=True)
class ZmqSettings:
    """The sockets; an empty ``pull``, ``sub``, ``command`` or ``stats`` turns it off."""

    pull: str = "tcp://127.0.0.1:5560"
    """Where the PULL input binds: PUSH one item per message (``J`` + JSON, ``T`` +
    tnetstring, or a bare tnetstring); ``""`` turns it off."""
    sub: tuple[str, ...] = ("tcp://127.0.0.1:5562",)
    """Where the SUB input binds (or connects, with ``sub_connect``): PUB the channel and
    the item as two frames; ``[]`` turns it off."""
    sub_connect: bool = False
    """Connect the SUB socket to publishers that bind, instead of binding it."""
    hwm: int = 101_000
    """High-water mark of each socket, in messages."""
    command: str = "tcp://127.0.0.1:5563"
    """The command socket (ZRPC over ROUTER): Pushpin's ``command_spec``."""
    stats: str = ""
    """The stats socket (PUB): Pushpin's ``stats_spec``."""
    stats_format: str = "tnetstring"
    """How stats messages are encoded: ``tnetstring`` (Pushpin's default) or ``json``."""
    stats_connection_ttl: int = 120
    """Seconds a ``conn`` message stays valid; open connections are re-announced every
    three quarters of it."""
    stats_subscription_ttl: int = 60
    """Seconds a ``sub`` message stays valid; live subscriptions are re-announced every
    three quarters of it."""
    stats_report_interval: float = 10.0
    """Seconds between two ``report`` messages."""


def parse_settings(table: Mapping[str, Any], source: str, prefix: str) -> ZmqSettings:
    """Parse and check the table; every endpoint must be a ZeroMQ address."""
    settings = parse_table(ZmqSettings, table, source, prefix)
    endpoints = [(key, spec) for key in ("pull", "command", "stats")
                 if (spec := getattr(settings, key))]
    endpoints += [(f"sub[{i}]", spec) for i, spec in enumerate(settings.sub)]
    for key, spec in endpoints:
        if not spec.startswith(ENDPOINT_SCHEMES):
            raise ConfigError(source, f"{prefix}.{key}",
                              f"{spec!r} is not a ZeroMQ endpoint (tcp://, ipc://)")
    if settings.stats_format not in STATS_FORMATS:
        raise ConfigError(source, f"{prefix}.stats_format",
                          f"{settings.stats_format!r} is not one of {', '.join(STATS_FORMATS)}")
    for key in ("stats_connection_ttl", "stats_subscription_ttl", "stats_report_interval"):
        if not getattr(settings, key) > 0:
            raise ConfigError(source, f"{prefix}.{key}", "must be positive")
    return settings
