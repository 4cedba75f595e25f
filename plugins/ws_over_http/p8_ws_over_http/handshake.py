"""The client's WebSocket handshake (RFC 6455 §4.2), and frame boundaries in a relayed
byte stream (sans-I/O)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, final

from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token

from p8core.grip.instructions import split_header_list
from p8core.server.connection import ClientRequest

from .events import MEDIA_TYPE

__all__ = [
    "FrameTracker",
    "Handshake",
    "HandshakeError",
    "check_handshake",
    "is_upgrade",
    "negotiate",
    "sends_events",
    "switching_headers",
]

Headers = list[tuple[bytes, bytes]]

_VERSION: Final = b"13"


class HandshakeError(ValueError):
    """A handshake the proxy refuses; the client gets ``status`` and ``headers``."""

    def __init__(self, status: int, message: str, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []


@final
@dataclass(frozen=True, slots=True)
class Handshake:
    """What the proxy keeps of a valid handshake."""

    key: bytes
    extensions: tuple[str, ...]
    """The extension elements the client offered, as written."""


def _tokens(request: ClientRequest, name: bytes) -> set[str]:
    return {t.lower() for n, v in request.headers if n == name
            for t in split_header_list(v.decode("latin-1"))}


def is_upgrade(request: ClientRequest) -> bool:
    """Whether ``request`` asks for a WebSocket (``Upgrade: websocket``)."""
    return "websocket" in _tokens(request, b"upgrade")


def sends_events(request: ClientRequest) -> bool:
    """Whether a plain request carries WebSocket-over-HTTP events itself."""
    value = request.header(b"content-type")
    return value is not None and value.split(b";", 1)[0].strip().lower() == MEDIA_TYPE


def check_handshake(request: ClientRequest) -> Handshake:
    """Check an upgrade request against RFC 6455 §4.2.1.

    :raises HandshakeError: 400, or 426 with ``Sec-WebSocket-Version: 13`` for a version
        the proxy does not speak.
    """
    if request.method != b"GET":
        raise HandshakeError(400, "a WebSocket handshake must be a GET")
    if request.http_version != b"1.1":
        raise HandshakeError(400, "a WebSocket handshake needs HTTP/1.1")
    if "upgrade" not in _tokens(request, b"connection"):
        raise HandshakeError(400, "Connection does not list upgrade")
    if any(n == b"transfer-encoding" or (n == b"content-length" and v.strip() != b"0")
           for n, v in request.headers):
        raise HandshakeError(400, "a WebSocket handshake has no body")
    if request.header(b"sec-websocket-version") != _VERSION:
        raise HandshakeError(426, "unsupported WebSocket version",
                             [(b"sec-websocket-version", _VERSION)])
    keys = [v for n, v in request.headers if n == b"sec-websocket-key"]
    if len(keys) != 1 or not _valid_key(keys[0]):
        raise HandshakeError(400, "missing or bad Sec-WebSocket-Key")
    offers = tuple(element for n, v in request.headers if n == b"sec-websocket-extensions"
                   for element in split_header_list(v.decode("latin-1")) if element)
    return Handshake(keys[0].strip(), offers)


def _valid_key(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except binascii.Error:
        return False


def negotiate(offers: Sequence[str], compression: bool) -> tuple[list[Extension], bytes | None]:
    """Agree on permessage-deflate (the one extension the proxy runs itself).

    :returns: the extensions for the connection and the ``Sec-WebSocket-Extensions`` value
        for the 101, if any.
    """
    if not compression:
        return [], None
    deflate = PerMessageDeflate()
    header = server_extensions_handshake(offers, [deflate])
    return ([deflate] if deflate.enabled() else []), header


def switching_headers(key: bytes, extensions: bytes | None) -> Headers:
    """The headers of a 101 that accepts the handshake with ``key``."""
    headers = [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
               (b"sec-websocket-accept", generate_accept_token(key))]
    if extensions:
        headers.append((b"sec-websocket-extensions", extensions))
    return headers


@final
class FrameTracker:
    """Follows the frames in a byte stream without buffering them: whether the stream is
    between two frames, and whether a close frame went by."""

    __slots__ = ("_head", "_left", "closed")

    def __init__(self) -> None:
        self._head = bytearray()   # an incomplete frame header
        self._left = 0             # payload bytes of the current frame still to come
        self.closed = False

    @property
    def at_boundary(self) -> bool:
        return not self._head and not self._left

    def feed(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n:
            if self._left:
                step = min(self._left, n - pos)
                self._left -= step
                pos += step
                continue
            self._head.append(data[pos])
            pos += 1
            size = _header_size(self._head)
            if size is None or len(self._head) < size:
                continue
            head = self._head
            if head[0] & 0x0F == 0x8:
                self.closed = True
            length = head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(head[2:4], "big")
            elif length == 127:
                length = int.from_bytes(head[2:10], "big")
            self._left = length
            self._head = bytearray()


def _header_size(head: bytearray) -> int | None:
    """The full size of a frame header once its first two bytes are known."""
    if len(head) < 2:
        return None
    length = head[1] & 0x7F
    extra = 2 if length == 126 else 8 if length == 127 else 0
    return 2 + extra + (4 if head[1] & 0x80 else 0)
