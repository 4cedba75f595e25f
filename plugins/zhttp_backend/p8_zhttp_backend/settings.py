"""``[plugins.zhttp_backend]``: how the ZHTTP connectors behave."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p8core import parse_table


@dataclass(frozen=True, slots=True)
class ZhttpSettings:
    """Settings shared by every ``zhttp+…`` and ``zhttpreq+…`` target."""

    handler_wait: float = 2.0
    """Seconds a request waits for a handler to be connected before it fails with 502
    (bounded by ``[proxy] backend_timeout``); covers handlers that restart."""
    max_message: int = 16_777_216
    """The largest WebSocket message a streaming handler may send; a larger one ends the
    session (the client gets close code 1011)."""


def parse_settings(table: Mapping[str, Any], source: str, prefix: str) -> ZhttpSettings:
    """Parse the table; unknown keys and wrong types are config errors."""
    return parse_table(ZhttpSettings, table, source, prefix)
