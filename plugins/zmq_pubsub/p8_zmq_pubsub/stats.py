"""The stats socket's messages, in Pushpin's wire format (spec ``stats.md`` §1), and p8's
own ``occupancy`` messages (a type name no Pushpin message starts with). Sans-I/O.

A :class:`StatsBook` hears about connections, subscription changes and deliveries as they
happen, and :meth:`StatsBook.flush` turns what changed since the last flush, and what is
due for a refresh, into messages ``<type> T<tnetstring>`` (or ``J<json>``). Refreshes come
every ¾ of the ttl the messages announce, so a listener can expire what it stops hearing of.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping
from typing import Protocol

from p8core import PublishItem
from p8core.codec.tnetstring import dumps
from p8core.observe.report import Totals
from p8core.observe.telemetry import ClientConnection

#: The ``mode`` of a ``sub`` message for each format; other formats use their own name.
MODES = {"http-response": "response", "http-stream": "stream", "ws-message": "ws"}
REFRESH = 0.75
"""A refresh is sent this fraction of the ttl after the last announcement."""


def encode(kind: str, fields: Mapping[str, object], fmt: str) -> bytes:
    """One stats message: its type, a space, then ``T`` + tnetstring or ``J`` + JSON."""
    payload = b"J" + json.dumps(fields).encode() if fmt == "json" else b"T" + dumps(fields)
    return kind.encode() + b" " + payload


class Subscriptions(Protocol):
    """What the book reads of the hub."""

    def subscriber_counts(self, channel: str) -> dict[str, int]: ...

    def is_subscribed(self, channel: str) -> bool: ...


class _Channel:
    """The ``sub`` state announced for one channel: subscribers by mode, next refresh."""

    __slots__ = ("due", "modes")

    def __init__(self, due: float) -> None:
        self.due = due
        self.modes: dict[str, int] = {}


class StatsBook:
    """What the stats socket announced, what changed since, and what falls due."""

    def __init__(self, source: str, *, fmt: str, connection_ttl: int, subscription_ttl: int,
                 max_pending: int, now: float, totals: Totals) -> None:
        """
        :param source: this process's name, the ``from`` of every message.
        :param max_pending: messages kept between flushes; beyond, the oldest are dropped.
        :param now: the time of the book's start, the start of the first report period.
        :param totals: the process's totals at ``now``.
        """
        self.source, self.fmt = source, fmt
        self.connection_ttl, self.subscription_ttl = connection_ttl, subscription_ttl
        self.pending: deque[bytes] = deque(maxlen=max_pending)
        self.dropped = 0
        """Messages dropped because ``max_pending`` were waiting."""
        self._opened: dict[str, ClientConnection] = {}
        self._conns: dict[str, tuple[float, ClientConnection]] = {}
        self._conns_due: deque[tuple[float, str]] = deque()
        self._changed: set[str] = set()
        self._channels: dict[str, _Channel] = {}
        self._channels_due: deque[tuple[float, str]] = deque()
        self._reported_at, self._reported = now, totals
        self._requests_seen, self._deliveries_seen = totals.requests, totals.deliveries

    # ---- events, as they happen -----------------------------------------------------------

    def opened(self, conn: ClientConnection) -> None:
        """A client connection opened; announced at the next flush, when its type is known."""
        self._opened[conn.id] = conn

    def closed(self, conn: ClientConnection) -> None:
        """A client connection closed; one never announced stays unmentioned."""
        if (self._opened.pop(conn.id, None) is None
                and self._conns.pop(conn.id, None) is not None):
            self._queue("conn", {"id": conn.id, "unavailable": True})

    def changed(self, channel: str) -> None:
        """A channel's subscribers changed, or its subscription ended."""
        self._changed.add(channel)

    def occupied(self, channel: str) -> None:
        """``channel`` got its first subscriber (it had none, not even a lingering one)."""
        self._queue("occupancy", {"channel": channel, "event": "occupied"})

    def vacated(self, channel: str) -> None:
        """``channel``'s last subscription ended (after ``subscription_linger``, if any)."""
        self._queue("occupancy", {"channel": channel, "event": "vacated"})

    def delivered(self, item: PublishItem, fmt: str, count: int) -> None:
        """An item reached ``count`` subscribers taking format ``fmt``."""
        if count:
            fields: dict[str, object] = {"channel": item.channel}
            if item.id is not None:
                fields["item-id"] = item.id
            self._queue("message", {**fields, "transport": fmt, "count": count})

    def activity(self, requests: int, deliveries: int) -> None:
        """Queue ``activity`` (client requests and deliveries) and ``counts`` (requests)
        for what happened since the last call; nothing when nothing did.

        :param requests: client requests received since start-up.
        :param deliveries: items written to subscribers since start-up.
        """
        new_requests = requests - self._requests_seen
        count = new_requests + deliveries - self._deliveries_seen
        self._requests_seen, self._deliveries_seen = requests, deliveries
        if count:
            self._queue("activity", {"count": count})
        if new_requests:
            self._queue("counts", {"requests-received": new_requests})

    # ---- flushing -------------------------------------------------------------------------

    def flush(self, now: float, hub: Subscriptions) -> list[bytes]:
        """The messages waiting: new and closed connections, changed subscriptions,
        deliveries, and the refreshes due at ``now``."""
        for conn in self._opened.values():
            self._announce(conn, now)
        self._opened.clear()
        due = self._conns_due
        while due and due[0][0] <= now:
            deadline, cid = due.popleft()
            entry = self._conns.get(cid)
            if entry is not None and entry[0] == deadline:
                self._announce(entry[1], now)
        for channel in self._changed:
            self._update(channel, hub, now)
        self._changed.clear()
        cdue = self._channels_due
        while cdue and cdue[0][0] <= now:
            deadline, channel = cdue.popleft()
            state = self._channels.get(channel)
            if state is not None and state.due == deadline:
                for mode, count in state.modes.items():
                    self._sub(channel, mode, count)
                self._schedule(channel, state, now)
        out = list(self.pending)
        self.pending.clear()
        return out

    def report(self, now: float, totals: Totals, peak: int) -> None:
        """Queue a ``report`` of the period since the last one (or since the start).

        :param peak: the most connections open at once during the period.
        """
        last = self._reported
        minutes = (math.floor(totals.connection_seconds / 60)
                   - math.floor(last.connection_seconds / 60))
        self._queue("report", {
            "connections": peak,
            "minutes": minutes,
            "received": totals.items_received - last.items_received,
            "sent": totals.deliveries - last.deliveries,
            "http-response-sent": totals.http_response_deliveries - last.http_response_deliveries,
            "duration": round((now - self._reported_at) * 1000),
            "client-header-bytes-received": totals.head_bytes_received - last.head_bytes_received,
            "client-header-bytes-sent": totals.head_bytes_sent - last.head_bytes_sent,
            "client-content-bytes-received": totals.body_bytes_received - last.body_bytes_received,
            "client-content-bytes-sent": totals.body_bytes_sent - last.body_bytes_sent,
        })
        self._reported_at, self._reported = now, totals

    # ---- internals ------------------------------------------------------------------------

    def _queue(self, kind: str, fields: dict[str, object]) -> None:
        if len(self.pending) == self.pending.maxlen:
            self.dropped += 1
        fields["from"] = self.source
        self.pending.append(encode(kind, fields, self.fmt))

    def _announce(self, conn: ClientConnection, now: float) -> None:
        fields: dict[str, object] = {
            "id": conn.id,
            "type": "http" if conn.transport_name == "http" else "ws",
            "peer-address": conn.peer,
        }
        if conn.ssl:
            fields["ssl"] = True
        if conn.route is not None and conn.route.id is not None:
            fields["route"] = conn.route.id
        fields["ttl"] = self.connection_ttl
        self._queue("conn", fields)
        deadline = now + REFRESH * self.connection_ttl
        self._conns[conn.id] = (deadline, conn)
        self._conns_due.append((deadline, conn.id))

    def _update(self, channel: str, hub: Subscriptions, now: float) -> None:
        """Announce what changed in ``channel``'s subscriber counts. A mode whose last
        subscriber left is withdrawn, except ``response`` while the channel lingers."""
        counts = {MODES.get(fmt, fmt): n for fmt, n in hub.subscriber_counts(channel).items()}
        lingering = hub.is_subscribed(channel)
        state = self._channels.get(channel)
        if state is None:
            if not counts:
                return
            state = self._channels[channel] = _Channel(0.0)
            self._schedule(channel, state, now)
        modes = state.modes
        for mode in sorted(modes.keys() | counts.keys()):
            count = counts.get(mode, 0)
            if count or (lingering and mode == "response"):
                if modes.get(mode) != count:
                    modes[mode] = count
                    self._sub(channel, mode, count)
            elif modes.pop(mode, None) is not None:
                self._queue("sub", {"mode": mode, "channel": channel, "unavailable": True})
        if not modes:
            del self._channels[channel]

    def _sub(self, channel: str, mode: str, count: int) -> None:
        self._queue("sub", {"mode": mode, "channel": channel, "subscribers": count,
                            "ttl": self.subscription_ttl})

    def _schedule(self, channel: str, state: _Channel, now: float) -> None:
        state.due = now + REFRESH * self.subscription_ttl
        self._channels_due.append((state.due, channel))
