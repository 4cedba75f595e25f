"""Which items a new hold missed, from a store: sans-I/O, one call per hold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from p8core import Hold, PublishItem

from .store import HistoryStore

__all__ = ["Resume", "last_event_id", "resume"]


@dataclass(slots=True)
class Resume:
    """What a hold gets from history, and how many of its resume points were held."""

    items: list[PublishItem] = field(default_factory=list)
    served: int = 0
    missed: int = 0


def last_event_id(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The client's ``Last-Event-ID`` (an SSE reconnect), if it sent a non-empty one."""
    for name, value in headers:
        if name.lower() == b"last-event-id":
            text = value.decode("utf-8", "replace").strip()
            return text or None
    return None


def resume(store: HistoryStore, hold: Hold, format: str, now: float, *,
           use_last_event_id: bool) -> Resume:
    """The items each channel of ``hold`` missed, oldest first, channel after channel.

    A channel with a backend ``prev-id`` resumes after it, provided the items chain on
    from it as the hold would take them live (each ``prev-id`` the id before); else it is
    a miss, left to the backend's recovery. Channels without one resume after the
    client's ``Last-Event-ID`` (one miss when no channel holds it). Only items carrying
    ``format`` count.
    """
    result = Resume()
    event_id = last_event_id(hold.request.headers) if use_last_event_id else None
    event_id_held: bool | None = None
    for channel in hold.instruct.channels:
        if channel.prev_id is not None:
            found = store.items_after(channel.name, channel.prev_id, now)
            chain = None if found is None else _chain(found, channel.prev_id, format)
            if chain is None:
                result.missed += 1
            else:
                result.served += 1
                result.items += chain
        elif event_id is not None:
            found = store.items_after(channel.name, event_id, now)
            if found is not None:
                result.items += [item for item in found if format in item.formats]
            event_id_held = bool(event_id_held) or found is not None
    if event_id_held is not None:
        result.served += event_id_held
        result.missed += not event_id_held
    return result


def _chain(items: Sequence[PublishItem], prev_id: str | None,
           format: str) -> list[PublishItem] | None:
    """``items`` in ``format`` if each follows the one before, starting at ``prev_id``."""
    chain: list[PublishItem] = []
    for item in items:
        if format not in item.formats:
            continue
        if prev_id is not None and item.prev_id != prev_id:
            return None
        prev_id = item.id
        chain.append(item)
    return chain
