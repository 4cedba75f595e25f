"""Occupancy events, their bounded queue, and the back-off between attempts. Sans-I/O."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass

__all__ = ["OCCUPIED", "VACATED", "Event", "EventQueue", "backoff", "body"]

OCCUPIED = "channel-occupied"
VACATED = "channel-vacated"


@dataclass(frozen=True, slots=True)
class Event:
    """A channel got its first subscriber (``channel-occupied``) or lost its last one
    (``channel-vacated``) at ``time`` (Unix seconds)."""

    event: str
    channel: str
    time: float


class EventQueue:
    """Events waiting to be sent, at most ``limit``; the oldest make way for new ones."""

    __slots__ = ("dropped", "events", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.events: deque[Event] = deque()
        self.dropped = 0
        """Events dropped because ``limit`` were waiting."""

    def put(self, event: Event) -> bool:
        """Add ``event``; when full, drop the oldest waiting event first.

        :returns: whether an event was dropped.
        """
        full = len(self.events) >= self.limit
        if full:
            self.events.popleft()
            self.dropped += 1
        self.events.append(event)
        return full

    def take(self, most: int) -> list[Event]:
        """Remove and return up to ``most`` events, oldest first."""
        events = self.events
        return [events.popleft() for _ in range(min(most, len(events)))]


def backoff(attempt: int, first: float, most: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, …): ``first``,
    then twice as long each time, at most ``most``."""
    return min(first * 2.0 ** (attempt - 1), most)


def body(events: list[Event]) -> bytes:
    """The JSON a POST carries: ``{"events": [{"event", "channel", "time"}, …]}``."""
    return json.dumps({"events": [
        {"event": e.event, "channel": e.channel, "time": e.time} for e in events]}).encode()
