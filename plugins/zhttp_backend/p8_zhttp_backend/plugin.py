"""Hook wiring of the zhttp_backend plugin: ZeroMQ backends over ZHTTP."""

from __future__ import annotations
