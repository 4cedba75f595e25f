"""``GET /metrics``, ``/healthz`` and ``/readyz`` on the control listener."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .prometheus import exposition

if TYPE_CHECKING:
    from ..app import App

__all__ = ["Answer", "answer"]

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
"""Status, body and headers (the content type first)."""

_TEXT = (b"content-type", b"text/plain")
EXPOSITION = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
"""The Prometheus text format every scraper reads."""


def answer(app: App, method: bytes, path: str) -> Answer | None:
    """The answer to a request for one of these paths; ``None`` for any other path.

    ``/healthz`` answers 200 while the process serves requests at all; ``/readyz`` 200 once
    the listeners are bound and the plugin services started, 503 before and while stopping.
    """
    if path not in ("/metrics", "/healthz", "/readyz"):
        return None
    if method != b"GET":
        return 405, b"Method not allowed: %s.\n" % method, [_TEXT, (b"allow", b"GET")]
    if path == "/metrics":
        return 200, exposition(app), [EXPOSITION]
    if path == "/healthz" or app.telemetry.ready:
        return 200, b"OK\n", [_TEXT]
    return 503, b"Not ready.\n", [_TEXT]
