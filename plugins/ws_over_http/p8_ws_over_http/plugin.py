"""Hook wiring of the ws_over_http plugin: WebSocket clients, WebSocket-over-HTTP."""

from __future__ import annotations
