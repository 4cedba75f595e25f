"""The WebSocket-over-HTTP event encoding, ``application/websocket-events`` (sans-I/O).

A body is a sequence of events, each ``NAME\\r\\n`` or ``NAME <hex size>\\r\\n<content>\\r\\n``:

    OPEN\\r\\n
    TEXT 5\\r\\nhello\\r\\n
    CLOSE 2\\r\\n\\x03\\xe8\\r\\n

Parsing is strict (a type line without ``\\r\\n`` or a size that is not hex makes the whole
body invalid) and ignores event names it does not know. :class:`Decoder` takes the body in
pieces of any size; :func:`decode` takes it whole. Both raise :class:`EventsError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, final

__all__ = [
    "EVENT_TYPES",
    "MEDIA_TYPE",
    "Decoder",
    "EventsError",
    "WsEvent",
    "close_content",
    "decode",
    "encode",
    "parse_close",
]

#: The content type of every WebSocket-over-HTTP request and valid response.
MEDIA_TYPE: Final = b"application/websocket-events"

#: The events this codec returns; other names are skipped while decoding.
EVENT_TYPES: Final = frozenset({"OPEN", "TEXT", "BINARY", "PING", "PONG", "CLOSE",
                                "DISCONNECT"})

# A type line is a short name and at most eight hex digits; anything longer is garbage.
_MAX_LINE: Final = 64
_MAX_SIZE_DIGITS: Final = 8
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_CRLF: Final = b"\r\n"


class EventsError(ValueError):
    """A body that is not a valid sequence of WebSocket-over-HTTP events."""


@final
@dataclass(frozen=True, slots=True)
class WsEvent:
    """One event: its type (``"TEXT"``, ...) and content (empty when it has none).

    ``TEXT`` content is the UTF-8 bytes of the message; ``CLOSE`` content is a 2-byte
    big-endian code followed by the UTF-8 reason, or empty for "no status code".
    """

    type: str
    content: bytes = b""


def close_content(code: int | None, reason: str | bytes = b"") -> bytes:
    """The content of a ``CLOSE`` event: nothing without a code, else code and reason."""
    if code is None:
        return b""
    text = reason.encode() if isinstance(reason, str) else reason
    return struct.pack("!H", code) + text


def parse_close(content: bytes) -> tuple[int | None, str]:
    """Code and reason of a ``CLOSE`` event; fewer than 2 bytes mean "no status code"."""
    if len(content) < 2:
        return None, ""
    return struct.unpack("!H", content[:2])[0], content[2:].decode("utf-8", "replace")


def _encode_one(event: WsEvent) -> bytes:
    name = event.type.encode("ascii")
    if not event.content:
        return name + _CRLF
    return b"%s %x\r\n%s\r\n" % (name, len(event.content), event.content)


def encode(events: Iterable[WsEvent]) -> bytes:
    """The body carrying ``events``; empty content is written without a size, as Pushpin
    does (``TEXT\\r\\n``)."""
    return b"".join(_encode_one(e) for e in events)


@final
class Decoder:
    """Turns body bytes into events as they arrive, in pieces of any size."""

    __slots__ = ("_buffer", "_pending", "_pos")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pos = 0
        # The type line read, waiting for its content: (name, size).
        self._pending: tuple[str, int] | None = None

    def feed(self, data: bytes) -> list[WsEvent]:
        """Take more of the body; return the events it completes.

        :raises EventsError: the bytes so far cannot start a valid body.
        """
        self._buffer += data
        events: list[WsEvent] = []
        buf = self._buffer
        while True:
            pending = self._pending
            if pending is None:
                end = buf.find(_CRLF, self._pos)
                if end < 0:
                    if len(buf) - self._pos > _MAX_LINE + 1:
                        raise EventsError("event type line without CRLF")
                    break
                pending = _type_line(bytes(buf[self._pos:end]))
                self._pos = end + 2
                if pending[1] < 0:
                    self._emit(events, pending[0], b"")
                    continue
                self._pending = pending
            name, size = pending
            if len(buf) - self._pos < size + 2:
                break
            start = self._pos
            if buf[start + size:start + size + 2] != _CRLF:
                raise EventsError(f"{name} content of {size} bytes not followed by CRLF")
            self._pos = start + size + 2
            self._pending = None
            self._emit(events, name, bytes(buf[start:start + size]))
        if self._pos:
            del buf[:self._pos]
            self._pos = 0
        return events

    def finish(self) -> None:
        """The body is complete.

        :raises EventsError: it ended inside an event.
        """
        if self._pending is not None or self._buffer:
            raise EventsError("body ends inside an event")

    @staticmethod
    def _emit(events: list[WsEvent], name: str, content: bytes) -> None:
        if name in EVENT_TYPES:
            events.append(WsEvent(name, content))


def _type_line(line: bytes) -> tuple[str, int]:
    """``(name, size)`` of a type line; size -1 when the event has no size part."""
    if len(line) > _MAX_LINE:
        raise EventsError("event type line too long")
    name, sep, size = line.partition(b" ")
    if not name or any(c <= 0x20 or c >= 0x7F for c in name):
        raise EventsError(f"bad event name {bytes(name)!r}")
    if not sep:
        return name.decode("ascii"), -1
    if not size or len(size) > _MAX_SIZE_DIGITS or not _HEX.issuperset(size):
        raise EventsError(f"bad event size {bytes(size)!r}")
    return name.decode("ascii"), int(size, 16)


def decode(body: bytes) -> list[WsEvent]:
    """The events of a whole body.

    :raises EventsError: the body is not a valid sequence of events.
    """
    decoder = Decoder()
    events = decoder.feed(body)
    decoder.finish()
    return events
