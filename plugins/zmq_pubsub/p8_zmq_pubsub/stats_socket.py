"""The stats socket: a bound PUB socket sending Pushpin's ``conn``, ``sub``, ``message``,
``activity``, ``counts`` and ``report`` messages, so Pushpin's monitoring tools work against
p8 unchanged, and p8's ``occupancy`` messages (a channel's first subscriber came, its last
one went).

Events are only noted as they happen (a dict or set update); a flush every
``FLUSH_SECONDS`` encodes and sends what changed, so a burst of subscribers costs one
``sub`` message per channel, not one per subscriber.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import structlog
import zmq
import zmq.asyncio

from p8core.app import App
from p8core.listeners import listening
from p8core.observe.report import totals

from .settings import ZmqSettings
from .sockets import bind
from .stats import StatsBook

log = structlog.get_logger(component="zmq_pubsub")

FLUSH_SECONDS = 0.1


async def publish_stats(app: App, settings: ZmqSettings) -> None:
    """Bind the stats socket and send what happens until cancelled."""
    telemetry = app.telemetry
    book = StatsBook(telemetry.instance, fmt=settings.stats_format,
                     connection_ttl=settings.stats_connection_ttl,
                     subscription_ttl=settings.stats_subscription_ttl,
                     max_pending=settings.hwm, now=app.clock(), totals=totals(app))
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.PUB)
    try:
        sock.sndhwm = settings.hwm
        bind(sock, settings.stats)
        with _following(app, book):
            log.info("stats_socket_ready", stats=settings.stats, format=settings.stats_format)
            next_report = app.clock() + settings.stats_report_interval
            dropped = 0
            while True:
                await anyio.sleep(FLUSH_SECONDS)
                now = app.clock()
                if now >= next_report:
                    book.report(now, totals(app), telemetry.take_peak())
                    next_report = now + settings.stats_report_interval
                book.activity(app.metrics.requests, app.hub.stats.delivered)
                for message in book.flush(now, app.hub):
                    try:
                        sock.send(message, zmq.NOBLOCK)
                    except zmq.Again:
                        book.dropped += 1
                if book.dropped != dropped:
                    log.warning("stats_dropped", messages=book.dropped - dropped)
                    dropped = book.dropped
    finally:
        sock.close(linger=0)
        ctx.term()


@contextmanager
def _following(app: App, book: StatsBook) -> Iterator[None]:
    """Feed ``book`` the app's connection, subscription and delivery events meanwhile."""
    telemetry, hub = app.telemetry, app.hub
    for conn in telemetry.connections.values():
        book.opened(conn)
    with listening((telemetry.on_opened, book.opened), (telemetry.on_closed, book.closed),
                   (hub.on_changed, book.changed), (hub.on_unsubscribed, book.changed),
                   (hub.on_subscribed, book.occupied), (hub.on_unsubscribed, book.vacated),
                   (hub.on_delivered, book.delivered)):
        yield
