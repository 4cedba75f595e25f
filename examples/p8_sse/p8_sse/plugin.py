"""Hold mode ``sse`` (``Grip-Hold: sse``) and publish format ``sse``.

A backend answers ``Grip-Hold: sse`` and ``Grip-Channel: ...``; the client gets a
``text/event-stream`` that carries every item published with an ``sse`` format, and a
comment line as keep-alive. Settings: ``[plugins.sse] keep_alive = 20`` (seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from p8core import (
    Action,
    ArmTimer,
    Config,
    ConfigSection,
    Finish,
    HoldMode,
    PublishError,
    PublishFormat,
    PublishItem,
    SendBody,
    SendHead,
    hookimpl,
    parse_table,
)


@dataclass(frozen=True, slots=True)
class SseSettings:
    """``[plugins.sse]``."""

    keep_alive: float = 20.0
    """Seconds of silence after which a held event stream gets a comment line."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One event, encoded once per publish for every subscriber."""

    encoded: bytes
    close: bool = False


class SseFormat(PublishFormat):
    """Format ``sse``: ``{"data": "...", "event": "name"}`` or ``{"action": "close"}``."""

    name = "sse"

    def parse(self, raw: Mapping[str, object], where: str) -> SseEvent:
        if raw.get("action") == "close":
            return SseEvent(b"", close=True)
        data, event = raw.get("data"), raw.get("event")
        if not isinstance(data, str) or not isinstance(event, str | None):
            raise PublishError(f"{where}: 'data' must be a string, 'event' a string if given")
        head = [f"event: {event}"] if event else []
        lines = head + [f"data: {line}" for line in data.split("\n")]
        return SseEvent(("\n".join(lines) + "\n\n").encode())


class SseHold(HoldMode):
    """Hold mode ``sse``: an event stream with comment keep-alives."""

    name = "sse"
    format = "sse"
    keep_alive = SseSettings.keep_alive

    def start(self) -> Sequence[Action]:
        head = SendHead(200, ((b"content-type", b"text/event-stream"),
                              (b"cache-control", b"no-cache")))
        return [head, SendBody(self.hold.instruct.body), ArmTimer(self.keep_alive)]

    def on_item(self, item: PublishItem) -> Sequence[Action]:
        event: SseEvent = item.formats["sse"]  # type: ignore[assignment]
        if event.close:
            return [Finish()]
        return [SendBody(event.encoded), ArmTimer(self.keep_alive)]

    def on_timer(self, key: str) -> Sequence[Action]:
        return [SendBody(b": keep-alive\n\n"), ArmTimer(self.keep_alive)]


def _parse_settings(table: Mapping[str, Any], source: str, prefix: str) -> SseSettings:
    return parse_table(SseSettings, table, source, prefix)


@hookimpl
def p8_config_sections() -> list[ConfigSection]:
    return [ConfigSection("sse", _parse_settings)]


@hookimpl
def p8_register_formats() -> list[PublishFormat]:
    return [SseFormat()]


@hookimpl
def p8_register_hold_modes(config: Config) -> list[type[HoldMode]]:
    settings: SseSettings = config.plugins.section("sse")
    return [type("SseHold", (SseHold,), {"keep_alive": settings.keep_alive})]
