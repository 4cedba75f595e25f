"""Hook wiring of the ws_over_http plugin: WebSocket clients and WebSocket-over-HTTP (format ws-message)."""

from __future__ import annotations
