"""The wire between a supervisor and its workers: what travels on the ZeroMQ sockets.

Supervisor → workers (XPUB → SUB): an item is two frames, its topic and the pickled
:class:`~p8core.pubsub.items.PublishItem` (parsed once, by the supervisor); a command is
one frame. A worker subscribes to the commands and to the topic of each channel its
clients listen to. A topic ends with ``0xff``, a byte UTF-8 never uses, so one channel's
topic is never the prefix of another's and ZeroMQ's prefix matching is exact.

Workers → supervisor (PUSH → PULL): a JSON status now and then.

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


def topic(channel: str) -> bytes:
    """The topic of ``channel``'s items."""
    return ITEM + channel.encode() + _END


def channel_of(topic: bytes) -> str | None:
    """The channel of an item topic; ``None`` for anything else (the commands)."""
    if topic[:1] != ITEM or topic[-1:] != _END:
        return None
    return topic[1:-1].decode()


def endpoints(run_dir: Path) -> tuple[str, str]:
    """The bus and status endpoints of a supervisor whose run directory is ``run_dir``."""
    return f"ipc://{run_dir / 'bus'}", f"ipc://{run_dir / 'status'}"
