"""Hook wiring of the zhttp_backend plugin: ZeroMQ backends over ZHTTP (zhttp+tcp://, zhttpreq+tcp:// targets)."""

from __future__ import annotations
