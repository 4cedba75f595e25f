"""Hook wiring of the long_poll plugin: HTTP long-polling (Grip-Hold: response)."""

from __future__ import annotations
