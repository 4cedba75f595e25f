"""``[plugins.zmq_pubsub]``: where the ZeroMQ publish inputs listen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p8core import ConfigError, parse_table

ENDPOINT_SCHEMES = ("tcp://", "ipc://", "inproc://")


@dataclass(frozen=True, slots=True)
class ZmqSettings:
    """The PULL and SUB inputs; an empty ``pull`` or ``sub`` turns that input off."""

    pull: str = "tcp://127.0.0.1:5560"
    """Where the PULL input binds: PUSH one item per message (``J`` + JSON, ``T`` +
    tnetstring, or a bare tnetstring); ``""`` turns it off."""
    sub: tuple[str, ...] = ("tcp://127.0.0.1:5562",)
    """Where the SUB input binds (or connects, with ``sub_connect``): PUB the channel and
    the item as two frames; ``[]`` turns it off."""
    sub_connect: bool = False
    """Connect the SUB socket to publishers that bind, instead of binding it."""
    hwm: int = 101_000
    """Receive high-water mark of each input socket, in messages."""


def parse_settings(table: Mapping[str, Any], source: str, prefix: str) -> ZmqSettings:
    """Parse and check the table; every endpoint must be a ZeroMQ address."""
    settings = parse_table(ZmqSettings, table, source, prefix)
    endpoints = [("pull", settings.pull)] if settings.pull else []
    endpoints += [(f"sub[{i}]", spec) for i, spec in enumerate(settings.sub)]
    for key, spec in endpoints:
        if not spec.startswith(ENDPOINT_SCHEMES):
            raise ConfigError(source, f"{prefix}.{key}",
                              f"{spec!r} is not a ZeroMQ endpoint (tcp://, ipc://)")
    return settings
