"""Counters and gauges of one p8 process."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(slots=True)
class Metrics:
    """Plain integer counters; cheap to bump on hot paths."""

    connections: int = 0
    connections_refused: int = 0
    requests: int = 0
    requests_proxied: int = 0
    holds_started: int = 0
    slow_clients_closed: int = 0
    publishes_accepted: int = 0
    publishes_rejected: int = 0
    publishes_unauthorized: int = 0
    items_published: int = 0
    formats_ignored: int = 0

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
