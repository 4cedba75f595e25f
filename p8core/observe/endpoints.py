"""``GET /metrics``, ``/healthz`` and ``/readyz`` on the control listener."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..server.views import Answer, ControlView
from .prometheus import exposition

if TYPE_CHECKING:
    from ..app import App

__all__ = ["observation_views"]

_TEXT = (b"content-type", b"text/plain")
EXPOSITION = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
"""The Prometheus text format every scraper reads."""


def observation_views(app: App) -> dict[str, ControlView]:
    """The views of ``app``'s metrics and health, answered without credentials.

    ``/healthz`` answers 200 while the process serves requests at all; ``/readyz`` 200 once
    the listeners are bound and the plugin services started, 503 before and while stopping.
    """
    def metrics(rest: str) -> Answer:
        return 200, exposition(app), [EXPOSITION]

    def healthz(rest: str) -> Answer:
        return 200, b"OK\n", [_TEXT]

    def readyz(rest: str) -> Answer:
        if app.telemetry.ready:
            return 200, b"OK\n", [_TEXT]
        return 503, b"Not ready.\n", [_TEXT]

    return {"/metrics": ControlView(metrics, public=True),
            "/healthz": ControlView(healthz, public=True),
            "/readyz": ControlView(readyz, public=True)}
