"""The wire between a supervisor and its workers: what travels on the ZeroMQ sockets.

Supervisor → workers (XPUB → SUB), one frame per message: an item is its channel's topic,
the item's number on that channel (8 bytes) and the pickled
:class:`~p8core.pubsub.items.PublishItem` (parsed once, by the supervisor); a command is
its name. A worker subscribes to the commands and to the topic of each channel its
clients listen to. A topic ends with ``0xff``, a byte UTF-8 never uses, so one channel's
topic is never the prefix of another's and ZeroMQ's prefix matching is exact. A pattern
``news.*`` is subscribed as the topic's start without the ``0xff`` (``cnews.``), which
every ``news.`` channel's topic begins with. The numbers let a worker that fell too far
behind (ZeroMQ drops what its queue cannot hold) count what it missed; an item sent only
for patterns has number 0 and is not counted.

Workers → supervisor (PUSH → PULL): a JSON status now and then, every few times with the
worker's Prometheus text (``metrics``) for the supervisor's ``/metrics``.

Both ends run the same code from the same installation, so pickle carries the items; the
sockets live in a private run directory only this user can enter.
"""

from __future__ import annotations

from pathlib import Path

from ..pubsub.patterns import WILDCARD, pattern_prefix

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


def subscription_topic(name: str) -> bytes:
    """What a worker subscribes to for its hub's subscription ``name``: a channel's topic,
    or the start of the topics a pattern matches."""
    prefix = pattern_prefix(name)
    return topic(name) if prefix is None else ITEM + prefix.encode()


def subscription_of(topic: bytes) -> tuple[str, bool] | None:
    """The channel or pattern name of a subscribed topic and whether it is a pattern;
    ``None`` for anything else (the commands)."""
    if topic[:1] != ITEM:
        return None
    if topic[-1:] == _END:
        return topic[1:-1].decode(), False
    return topic[1:].decode() + WILDCARD, True


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
