"""What one p8 process observes about itself: open connections, traffic, publishes,
origin requests, latencies, readiness. The core feeds it; metrics, health checks and
plugins (the stats socket) read it and listen to its connection events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from ..connector import target_scheme
from .tally import Histogram, LabelledCounts, LabelledHistograms

if TYPE_CHECKING:
    from ..proxy.routes import Route

__all__ = ["ClientConnection", "OriginCall", "Telemetry", "Traffic"]


class ClientConnection(Protocol):
    """What observers may read of an open client connection."""

    @property
    def id(self) -> str:
        """Unique in this process: ``<instance>:<serial>`` (the ``conn`` stats id)."""
        ...

    @property
    def transport_name(self) -> str:
        """``"http"``, or the name of the client transport that claimed it (``"websocket"``)."""
        ...

    @property
    def route(self) -> Route | None:
        """The route of its latest request; ``None`` before any was routed."""
        ...

    @property
    def peer(self) -> str:
        """The client's address."""
        ...

    @property
    def ssl(self) -> bool:
        """Whether the client connected over TLS."""
        ...


@dataclass(slots=True)
class Traffic:
    """Bytes to and from clients; the connection bumps these as it reads and writes."""

    received: int = 0
    sent: int = 0
    head_received: int = 0  # request heads, within ``received``
    head_sent: int = 0  # response heads, within ``sent``


class OriginCall:
    """Times one request to a backend; see :meth:`Telemetry.origin_call`."""

    __slots__ = ("kind", "scheme", "started", "status", "telemetry")

    def __init__(self, telemetry: Telemetry, kind: str, scheme: str) -> None:
        self.telemetry, self.kind, self.scheme = telemetry, kind, scheme
        self.status: int | None = None
        """Set inside the block once the response head arrived."""
        self.started = 0.0

    def __enter__(self) -> OriginCall:
        self.started = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        telemetry = self.telemetry
        status = self.status
        outcome = "error" if status is None else _STATUS_CLASSES.get(status // 100, "other")
        telemetry.origin_requests.add((self.kind, self.scheme, outcome))
        telemetry.origin_latency.observe((self.kind,), time.perf_counter() - self.started)


_STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}


class Telemetry:
    """The observations of one p8 process; ``app.telemetry``.

    Plugins append to ``on_opened`` and ``on_closed`` to follow client connections; each
    listener is a plain call that must not block and must not raise.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.instance = f"p8_{os.getpid()}"
        """This process's name in stats messages (``from``) and connection ids."""
        self.connections: dict[str, ClientConnection] = {}
        """Open client connections by id."""
        self.on_opened: list[Callable[[ClientConnection], None]] = []
        self.on_closed: list[Callable[[ClientConnection], None]] = []
        self.traffic = Traffic()
        self.publishes = LabelledCounts("input", "format")
        """Items received, by input (``http``, ``zmq-pull``, …) and format."""
        self.origin_requests = LabelledCounts("kind", "scheme", "outcome")
        """Requests to backends: ``proxy`` or ``ws-over-http``, target scheme, status
        class (``2xx``) or ``error`` when no response arrived."""
        self.origin_latency = LabelledHistograms("kind")
        """Seconds from sending a backend request to its response head."""
        self.publish_latency = Histogram()
        """Seconds from receiving a publish to having written it to every subscriber."""
        self.plugin_events = LabelledCounts("plugin", "event")
        """What plugins count of their own work, by plugin name and event."""
        self.ready = False
        """Listeners bound and plugin services started; false again while stopping."""
        self._serial = 0
        self._peak = 0
        self._connection_seconds = 0.0
        self._since = clock()

    # ---- connections --------------------------------------------------------------------

    def next_id(self) -> str:
        """A new connection id."""
        self._serial += 1
        return f"{self.instance}:{self._serial}"

    def opened(self, conn: ClientConnection) -> None:
        """A client connection was accepted (its ``id`` already set)."""
        self._integrate()
        self.connections[conn.id] = conn
        self._peak = max(self._peak, len(self.connections))
        for listener in self.on_opened:
            listener(conn)

    def closed(self, conn: ClientConnection) -> None:
        """A client connection is gone."""
        self._integrate()
        if self.connections.pop(conn.id, None) is not None:
            for listener in self.on_closed:
                listener(conn)

    def _integrate(self) -> None:
        now = self.clock()
        self._connection_seconds += len(self.connections) * (now - self._since)
        self._since = now

    def connection_seconds(self) -> float:
        """Seconds of connection time so far, summed over every client connection."""
        self._integrate()
        return self._connection_seconds

    def take_peak(self) -> int:
        """The most connections open at once since the last call; starts a new period."""
        peak, self._peak = self._peak, len(self.connections)
        return peak

    # ---- requests and publishes ---------------------------------------------------------

    def origin_call(self, kind: str, target: str) -> OriginCall:
        """A context manager timing one backend request; set ``status`` on the value it
        gives once the response head is in. Leaving the block without one counts an error.

        :param kind: ``"proxy"`` or ``"ws-over-http"``.
        :param target: the route target the request goes to.
        """
        return OriginCall(self, kind, target_scheme(target))
