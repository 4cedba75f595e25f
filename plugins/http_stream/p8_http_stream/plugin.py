"""Hook wiring of the http_stream plugin: HTTP streaming: Grip-Hold stream, format http-stream."""

from __future__ import annotations
