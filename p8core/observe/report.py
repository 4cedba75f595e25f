"""Running totals of one p8 process at one moment, for periodic reports (the stats
socket's ``report`` message, spec ``stats.md`` §1): a reporter keeps the previous
:class:`Totals` and reports the difference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import App

__all__ = ["Totals", "totals"]


@dataclass(frozen=True, slots=True)
class Totals:
    """Cumulative counts since start-up; every field only grows."""

    connection_seconds: float
    requests: int
    items_received: int
    deliveries: int
    http_response_deliveries: int
    head_bytes_received: int
    body_bytes_received: int
    head_bytes_sent: int
    body_bytes_sent: int


def totals(app: App) -> Totals:
    """The totals of ``app`` now."""
    telemetry, stats, traffic = app.telemetry, app.hub.stats, app.telemetry.traffic
    return Totals(
        connection_seconds=telemetry.connection_seconds(),
        requests=app.metrics.requests,
        items_received=app.metrics.items_published,
        deliveries=stats.delivered,
        http_response_deliveries=stats.delivered_by_format.get("http-response", 0),
        head_bytes_received=traffic.head_received,
        body_bytes_received=traffic.received - traffic.head_received,
        head_bytes_sent=traffic.head_sent,
        body_bytes_sent=traffic.sent - traffic.head_sent,
    )
