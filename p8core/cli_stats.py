"""``p8 stats``: p8's counters from the control API's ``/metrics``, as a terminal table;
with ``--watch``, redrawn every few seconds with per-second rates."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["add_parser", "read_samples", "render", "run"]

DEFAULT_URL = "http://localhost:5561"
CLEAR = "\x1b[H\x1b[2J"


def add_parser(sub: Any) -> None:
    """Add ``stats`` to the ``p8`` subcommands."""
    stats = sub.add_parser("stats", help="show live counters from the control API's /metrics")
    stats.add_argument("--url", default=DEFAULT_URL, help=f"control API (default {DEFAULT_URL})")
    stats.add_argument("-w", "--watch", type=float, metavar="SECONDS",
                       help="redraw every SECONDS, with rates per second")


def read_samples(text: str) -> dict[str, float]:
    """``name{label=value,…}`` → value for every p8 sample of an exposition; histogram
    buckets are left out (their ``_count`` and ``_sum`` stay)."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("p8_"):
            continue
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created")):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sample.labels.items())
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def render(now: Mapping[str, float], before: Mapping[str, float] | None = None,
           seconds: float = 0.0) -> str:
    """The table: one row per sample, and a rate column when ``before`` is given."""
    width = max((len(name) for name in now), default=6)
    head = f"{'metric':<{width}}  {'value':>14}" + (f"  {'per s':>10}" if before else "")
    lines = [head]
    for name, value in now.items():
        line = f"{name:<{width}}  {_number(value):>14}"
        if before is not None and seconds > 0 and name in before:
            line += f"  {_number((value - before[name]) / seconds):>10}"
        lines.append(line)
    return "\n".join(lines)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.4g}"


def run(args: argparse.Namespace) -> int:
    """Print the table once, or redraw it until interrupted with ``--watch``."""
    url = args.url.rstrip("/") + "/metrics"
    try:
        before, then = _fetch(url), time.monotonic()
        if args.watch is None:
            print(render(before))
            return 0
        print(CLEAR + render(before), flush=True)
        while True:
            time.sleep(args.watch)
            now, at = _fetch(url), time.monotonic()
            print(CLEAR + render(now, before, at - then), flush=True)
            before, then = now, at
    except KeyboardInterrupt:
        return 0
    except (httpx.HTTPError, ValueError) as e:
        print(f"Error: cannot read {url}: {e}", file=sys.stderr)
        return 1


def _fetch(url: str) -> dict[str, float]:
    resp = httpx.get(url)
    resp.raise_for_status()
    return read_samples(resp.text)
