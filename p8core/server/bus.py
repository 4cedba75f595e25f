"""The wire between a supervisor and its workers: what travels on the ZeroMQ sockets.

Supervisor → workers (XPUB → SUB), one frame per message: an item is its channel's topic,
the item's number on that channel (8 bytes) and the pickled
:class:`~p8core.pubsub.items.PublishItem` (parsed once, by the supervisor); a command is
its name. A worker subscribes to the commands and to the topic of each channel its
clients listen to. A topic ends with ``0xff``, a byte UTF-8 never uses, so one channel's
topic is never the prefix of another's and ZeroMQ's prefix matching is exact. The numbers
let a worker that fell too far behind (ZeroMQ drops what its queue cannot hold) count
what it missed.

Workers → supervisor (PUSH → PULL): a JSON status now and then, every few times with the
worker's Prometheus text (``metrics``) for the supervisor's ``/metrics``.

Both ends run the same code from the same installation, so pickle carries the items; the
sockets live in a private run directory only this user can enter.
"""

from __future__ import annotations

from pathlib import Path

ITEM = b"c"
COMMANDS = b"!"
RECOVER = COMMANDS + b"recover"
_END = b"\xff"

STATUS_INTERVAL = 0.5
"""Seconds between two status reports of a worker."""
METRICS_EVERY = 4
"""A worker's Prometheus text rides on every this many status reports."""


def topic(channel: str) -> bytes:
    """The topic of ``channel``'s items."""
    return ITEM + channel.encode() + _END


def channel_of(topic: bytes) -> str | None:
    """The channel of an item topic; ``None`` for anything else (the commands)."""
    if topic[:1] != ITEM or topic[-1:] != _END:
        return None
    return topic[1:-1].decode()


def item_message(channel: str, number: int, item: bytes) -> bytes:
    """The message carrying ``channel``'s item (pickled) number ``number``."""
    return topic(channel) + number.to_bytes(8, "big") + item


def item_of(message: bytes) -> tuple[str, int, bytes] | None:
    """The channel, number and pickled item of an item message; ``None`` for a command."""
    if message[:1] != ITEM:
        return None
    end = message.index(_END)
    return (message[1:end].decode(), int.from_bytes(message[end + 1:end + 9], "big"),
            message[end + 9:])


def endpoints(run_dir: Path) -> tuple[str, str]:
    """The bus and status endpoints of a supervisor whose run directory is ``run_dir``."""
    return f"ipc://{run_dir / 'bus'}", f"ipc://{run_dir / 'status'}"
