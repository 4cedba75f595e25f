"""Prometheus metrics, built at scrape time from the plain counters of one p8 process.

Hot paths only bump ints (``app.metrics``, ``hub.stats``, ``app.telemetry``); this collector
reads them when ``/metrics`` is asked for, so a scrape costs O(connections + channels) and a
delivery costs nothing extra.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

from .tally import Histogram, LabelledCounts

if TYPE_CHECKING:
    from ..app import App

__all__ = ["P8Collector", "exposition"]

WORKER_LABEL = "worker"
"""The label that tells a supervisor's workers apart in its ``/metrics``."""

#: Plain running totals: (name without ``_total``, help, how to read it).
COUNTERS: tuple[tuple[str, str, Callable[[App], int]], ...] = (
    ("p8_connections_accepted", "Client connections accepted",
     lambda app: app.metrics.connections),
    ("p8_requests", "Client requests received", lambda app: app.metrics.requests),
    ("p8_requests_proxied", "Client requests a backend answered",
     lambda app: app.metrics.requests_proxied),
    ("p8_holds_started", "Held exchanges started, by any hold mode",
     lambda app: app.metrics.holds_started),
    ("p8_publish_requests_accepted", "Publish requests accepted (each with one or more items)",
     lambda app: app.metrics.publishes_accepted),
    ("p8_publish_requests_rejected", "Publish requests or messages rejected as invalid",
     lambda app: app.metrics.publishes_rejected),
    ("p8_publish_formats_ignored", "Published formats that no enabled plugin owns",
     lambda app: app.metrics.formats_ignored),
    ("p8_items_parked", "Items held back to wait for their prev-id",
     lambda app: app.hub.stats.parked),
)

#: Why a connection or a delivery was dropped, and how to read the count.
DROPS: tuple[tuple[str, Callable[[App], int]], ...] = (
    ("slow_consumer", lambda app: app.metrics.slow_clients_closed),
    ("limit", lambda app: app.metrics.connections_refused),
    ("head_timeout", lambda app: app.metrics.rejected_head_timeout),
    ("body_timeout", lambda app: app.metrics.rejected_body_timeout),
    ("error", lambda app: app.metrics.holds_failed),
    ("duplicate", lambda app: app.hub.stats.duplicates_dropped),
    ("out_of_order", lambda app: app.hub.stats.parked_dropped),
)


class P8Collector(Collector):
    """Every p8 metric of one app, read from its counters on each scrape."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app, telemetry = self.app, self.app.telemetry
        yield _gauge("p8_connections", "Open client connections, by transport and route",
                     ("transport", "route"), Counter(
                         (c.transport_name, c.route.route_id if c.route else "")
                         for c in telemetry.connections.values()))
        yield _gauge("p8_held_connections", "Exchanges held open, by hold mode", ("mode",),
                     Counter((h.mode.name,) for h in app.held))
        yield _gauge("p8_subscriptions", "Subscriptions (channel, connection), by format",
                     ("format",), {(f,): n for f, n in app.hub.subscriptions_by_format().items()})
        yield _gauge("p8_channels", "Channels subscribed, lingering ones included", (),
                     {(): app.hub.channels()})
        yield _gauge("p8_ready", "1 when listeners are bound and plugin services started",
                     (), {(): int(telemetry.ready)})
        for name, text, read in COUNTERS:
            yield _counter(name, text, (), {(): read(app)})
        yield _labelled(telemetry.publishes, "p8_items_received",
                        "Published items accepted, by input and format")
        yield _counter("p8_deliveries", "Items written to subscribers, by format", ("format",),
                       {(f,): n for f, n in app.hub.stats.delivered_by_format.items()})
        yield _counter("p8_drops", "Connections or items dropped, by reason", ("reason",),
                       {(reason,): read(app) for reason, read in DROPS})
        yield _labelled(telemetry.plugin_events, "p8_plugin_events",
                        "Events plugins count, by plugin and event")
        yield _labelled(telemetry.origin_requests, "p8_origin_requests",
                        "Backend requests, by kind, target scheme and status class")
        traffic = telemetry.traffic
        yield _counter("p8_client_bytes", "Bytes to and from clients", ("direction", "part"), {
            ("in", "head"): traffic.head_received,
            ("in", "body"): traffic.received - traffic.head_received,
            ("out", "head"): traffic.head_sent,
            ("out", "body"): traffic.sent - traffic.head_sent})
        origin = HistogramMetricFamily("p8_origin_request_duration_seconds",
                                       "Seconds from a backend request to its response head",
                                       labels=("kind",))
        for key, hist in telemetry.origin_latency.items():
            origin.add_metric(list(key), list(hist.cumulative()), hist.sum)
        yield origin
        yield _histogram("p8_publish_delivery_seconds",
                         "Seconds from receiving a publish to writing it to every subscriber",
                         telemetry.publish_latency)


def _gauge(name: str, text: str, labels: tuple[str, ...],
           values: Mapping[tuple[str, ...], int]) -> Metric:
    return _family(GaugeMetricFamily(name, text, labels=labels), values)


def _counter(name: str, text: str, labels: tuple[str, ...],
             values: Mapping[tuple[str, ...], int]) -> Metric:
    return _family(CounterMetricFamily(name, text, labels=labels), values)


def _family(family: GaugeMetricFamily | CounterMetricFamily,
            values: Mapping[tuple[str, ...], int]) -> Metric:
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


def _labelled(counts: LabelledCounts, name: str, text: str) -> Metric:
    return _counter(name, text, counts.labels, counts.counts)


def _histogram(name: str, text: str, hist: Histogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, text)
    family.add_metric([], list(hist.cumulative()), hist.sum)
    return family


def exposition(app: App) -> bytes:
    """The text format of every p8 metric of ``app``, plus the process's own; a supervisor
    adds its workers' (as they last reported them), each sample labelled ``worker``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(P8Collector(app))
    registry.register(ProcessCollector(registry=None))
    if app.worker_metrics is None:
        return generate_latest(registry)
    merged = _Merged()
    merged.add(registry.collect(), "supervisor")
    for worker, text in app.worker_metrics().items():
        merged.add(text_string_to_metric_families(text), worker)
    return generate_latest(merged)


class _Merged(Collector):
    """Metric families of several processes, one family per name, every sample labelled
    with its process."""

    def __init__(self) -> None:
        self.families: dict[str, Metric] = {}

    def add(self, families: Iterable[Metric], process: str) -> None:
        for family in families:
            merged = self.families.get(family.name)
            if merged is None:
                merged = self.families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                merged.samples.append(sample._replace(
                    labels={**sample.labels, WORKER_LABEL: process}))

    def collect(self) -> Iterator[Metric]:
        return iter(self.families.values())
