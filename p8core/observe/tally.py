"""Cheap accumulators for hot paths: counts by label and fixed-bucket histograms.

Bumping one is a dict update or a bisect and two adds; nothing locks or allocates per
observation. The Prometheus collector reads them at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

__all__ = ["LATENCY_BUCKETS", "Histogram", "LabelledCounts", "LabelledHistograms"]

LATENCY_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds in seconds for request and delivery latencies: 0.5 ms to 30 s."""


class LabelledCounts:
    """Running totals keyed by a tuple of label values (``("http", "2xx")``)."""

    __slots__ = ("counts", "labels")

    def __init__(self, *labels: str) -> None:
        """:param labels: the label names, in the order of each key's values."""
        self.labels = labels
        self.counts: dict[tuple[str, ...], int] = {}

    def add(self, key: tuple[str, ...], n: int = 1) -> None:
        """Count ``n`` more under ``key`` (one value per label)."""
        counts = self.counts
        counts[key] = counts.get(key, 0) + n

    def get(self, key: tuple[str, ...]) -> int:
        """The total of ``key`` so far (0 if never added to)."""
        return self.counts.get(key, 0)


class Histogram:
    """Observations counted in fixed buckets, with their sum (Prometheus' shape)."""

    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        """:param bounds: increasing upper bounds; an implicit ``+Inf`` bucket follows."""
        self.bounds = tuple(bounds)
        self.buckets = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation (in seconds, for the default bounds)."""
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> Iterator[tuple[str, int]]:
        """``(upper bound, observations at or below it)`` pairs, ending with ``+Inf``."""
        running = 0
        for bound, n in zip((*map(repr, self.bounds), "+Inf"), self.buckets, strict=True):
            running += n
            yield bound, running


class LabelledHistograms:
    """One :class:`Histogram` per key, made on first observation."""

    __slots__ = ("bounds", "histograms", "labels")

    def __init__(self, *labels: str, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.labels, self.bounds = labels, tuple(bounds)
        self.histograms: dict[tuple[str, ...], Histogram] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        """Count one observation under ``key``."""
        found = self.histograms.get(key)
        if found is None:
            found = self.histograms[key] = Histogram(self.bounds)
        found.observe(value)

    def items(self) -> Iterator[tuple[tuple[str, ...], Histogram]]:
        return iter(self.histograms.items())

