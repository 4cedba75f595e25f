"""The scenarios, one module each.

A scenario module has two halves:

- ``run(ctx, kind) -> list[Sample]`` runs in the harness: it starts the server ``kind``
  ("p8" or "pushpin") and whatever origin it needs, starts its load generator, reads CPU
  and memory from /proc at the marks the generator reports, and returns the measurements;
- ``async generate(params, control)`` runs in the load-generator process
  (``python -m bench.loadgen <module>``) on the load CPU.

Sizes come in three scales: ``smoke`` (the test suite), ``quick`` and ``full``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..harness import LOAD_CPU, SATURATED, Route, Server, server_cpus, start_server

T = TypeVar("T")

NAMES = ("idle_streams", "fanout_latency", "many_channels_throughput", "passthrough_rps",
         "ws_echo", "longpoll_cycle")


@dataclass
class Sample:
    """One measured value of one server."""

    scenario: str
    case: str  # e.g. "N=1000"; "" when the scenario has one case
    metric: str
    value: float | None
    unit: str
    better: str = ""  # "higher", "lower", or "" (informative, no ratio)
    load_util: float | None = None  # CPU share of one core used on the load CPU
    server_util: float | None = None  # CPU share of one core used by the server tree
    note: str = ""
    kind: str = ""  # "p8" or "pushpin", set by the runner

    @property
    def valid(self) -> bool:
        return self.load_util is None or self.load_util < SATURATED


def stream_losses(opened: dict[str, Any], done: dict[str, Any]) -> str:
    """Where lost deliveries come from: streams that never opened or that were closed."""
    parts = []
    if opened["failures"]:
        parts.append(f"{opened['failures']} streams failed to open {opened['why']}")
    if done["closed"]:
        parts.append(f"{done['closed']} streams closed by the server")
    return "; ".join(parts)


@dataclass
class Context:
    """What a scenario needs from the run: scale, pinning, a scratch directory, a logger."""

    scale: str  # "smoke", "quick" or "full"
    pin: bool
    workdir: Path
    log: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)
    profile: Path | None = None  # record p8 with py-spy during measurements, into here

    @property
    def load_cpu(self) -> int | None:
        return LOAD_CPU if self.pin else None

    def pick(self, smoke: T, quick: T, full: T) -> T:
        """The value for this run's scale."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.scale]

    def subdir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def server(self, kind: str, route: Route, name: str) -> Iterator[Server]:
        server = start_server(kind, self.subdir(f"{name}-{kind}"), route,
                              server_cpus(kind, self.pin))
        if kind.startswith("p8") and self.profile is not None:
            server.profile_to = self.profile / name
        try:
            yield server
        finally:
            server.stop()
