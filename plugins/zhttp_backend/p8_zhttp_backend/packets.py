"""ZHTTP packets: ``T`` + a tnetstring dict, as frozen dataclasses (``zhttp.md`` §1-§2).

Sans-I/O: :func:`encode` and :func:`decode` turn a :class:`Packet` into the bytes of one
ZeroMQ frame and back; :func:`response_head` checks the status line and headers of a
response before they reach a client. Anything malformed raises :class:`PacketError`.
Unknown fields are ignored (a newer peer may send more); unknown ``type`` values are not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from p8core.codec.tnetstring import TNetStringError, Value, dumps, loads

Header = tuple[bytes, bytes]
Headers = tuple[Header, ...]

PACKET_TYPES: Final = frozenset({
    b"error", b"credit", b"keep-alive", b"cancel", b"handoff-start", b"handoff-proceed",
    b"close", b"ping", b"pong",
})
"""Every ``type`` a packet may have; an absent ``type`` means a data packet."""

_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE: Final = re.compile(rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?")
_REASON: Final = re.compile(rb"[\t \x21-\x7e\x80-\xff]*")


class PacketError(ValueError):
    """Bytes that are not a well-formed ZHTTP packet, or a response a client cannot get.

    ``id`` is the packet's session id when it could be read, so that the session it
    belongs to can be failed rather than left waiting.
    """

    def __init__(self, problem: str, id: bytes | None = None) -> None:
        super().__init__(problem)
        self.id = id


@dataclass(frozen=True, slots=True)
class Addressed:
    """One entry of a list-form ``id``: a session and the ``seq`` of this packet in it."""

    id: bytes
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Packet:
    """One ZHTTP packet; fields left at their defaults are not sent.

    ``from_`` is the wire field ``from``, ``multi`` is ``ext.multi``; ``id`` is a session
    id or, in the list form a ``multi`` peer may use, several sessions with their ``seq``.
    """

    id: bytes | tuple[Addressed, ...]
    from_: bytes | None = None
    seq: int | None = None
    type: bytes | None = None
    condition: bytes | None = None
    credits: int | None = None
    more: bool = False
    stream: bool = False
    multi: bool = False
    method: bytes | None = None
    uri: bytes | None = None
    code: int | None = None
    reason: bytes | None = None
    headers: Headers = ()
    body: bytes = b""
    content_type: bytes | None = None
    max_size: int | None = None

    def each(self) -> tuple[Packet, ...]:
        """This packet once per session it addresses, each with a plain ``id``."""
        if isinstance(self.id, bytes):
            return (self,)
        return tuple(replace(self, id=ref.id, seq=ref.seq) for ref in self.id)


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A response's status line and headers, checked; header names are lowercase."""

    code: int
    reason: bytes
    headers: Headers

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lowercase), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


# ---- encoding ---------------------------------------------------------------------------

def encode(packet: Packet) -> bytes:
    """The frame for ``packet``: ``T`` followed by its tnetstring dict."""
    out: dict[bytes, Value] = {}
    if isinstance(packet.id, bytes):
        out[b"id"] = packet.id
    else:
        out[b"id"] = [_ref_dict(ref) for ref in packet.id]
    if packet.from_ is not None:
        out[b"from"] = packet.from_
    _put(out, b"seq", packet.seq)
    _put(out, b"type", packet.type)
    _put(out, b"condition", packet.condition)
    _put(out, b"credits", packet.credits)
    if packet.more:
        out[b"more"] = True
    if packet.stream:
        out[b"stream"] = True
    if packet.multi:
        out[b"ext"] = {b"multi": True}
    _put(out, b"method", packet.method)
    _put(out, b"uri", packet.uri)
    _put(out, b"code", packet.code)
    _put(out, b"reason", packet.reason)
    if packet.headers:
        out[b"headers"] = [[name, value] for name, value in packet.headers]
    if packet.body:
        out[b"body"] = packet.body
    _put(out, b"content-type", packet.content_type)
    _put(out, b"max-size", packet.max_size)
    return b"T" + dumps(out)


def _ref_dict(ref: Addressed) -> Value:
    entry: dict[bytes, Value] = {b"id": ref.id}
    _put(entry, b"seq", ref.seq)
    return entry


def _put(out: dict[bytes, Value], key: bytes, value: bytes | int | None) -> None:
    if value is not None:
        out[key] = value


# ---- decoding ---------------------------------------------------------------------------

def decode(frame: bytes) -> Packet:
    """Parse one frame (``T`` + tnetstring dict) into a :class:`Packet`.

    :raises PacketError: the frame is not a ZHTTP packet, or a field has the wrong type.
    """
    if not frame:
        raise PacketError("empty packet")
    if frame[:1] != b"T":
        if frame[:1] == b"J":
            raise PacketError("JSON packets are not accepted: send 'T' and a tnetstring")
        raise PacketError(f"packet does not start with 'T' (got {frame[:1]!r})")
    try:
        raw = loads(frame[1:])
    except TNetStringError as e:
        raise PacketError(f"not a tnetstring: {e}") from None
    if not isinstance(raw, dict):
        raise PacketError("packet is not a tnetstring dict")
    id_value = raw.get(b"id")
    known_id = id_value if isinstance(id_value, bytes) else None
    try:
        return _packet(raw)
    except PacketError as e:
        raise PacketError(str(e), known_id) from None


def _packet(raw: Mapping[bytes, Value]) -> Packet:
    ext = raw.get(b"ext", {})
    if not isinstance(ext, dict):
        raise PacketError("'ext' must be a dict")
    multi = _flag(ext, b"multi", "ext.multi")
    kind = _optional_bytes(raw, b"type")
    if kind is not None and kind not in PACKET_TYPES:
        raise PacketError(f"unknown packet type {kind[:40]!r}")
    return Packet(
        id=_id(raw),
        from_=_optional_bytes(raw, b"from"),
        seq=_count(raw, b"seq"),
        type=kind,
        condition=_optional_bytes(raw, b"condition"),
        credits=_count(raw, b"credits"),
        more=_flag(raw, b"more", "more"),
        stream=_flag(raw, b"stream", "stream"),
        multi=multi,
        method=_optional_bytes(raw, b"method"),
        uri=_optional_bytes(raw, b"uri"),
        code=_integer(raw, b"code"),
        reason=_optional_bytes(raw, b"reason"),
        headers=_headers(raw),
        body=_optional_bytes(raw, b"body") or b"",
        content_type=_optional_bytes(raw, b"content-type"),
        max_size=_count(raw, b"max-size"),
    )


def _id(raw: Mapping[bytes, Value]) -> bytes | tuple[Addressed, ...]:
    value = raw.get(b"id")
    if isinstance(value, bytes):
        if not value:
            raise PacketError("'id' is empty")
        return value
    if value is None:
        raise PacketError("'id' is missing")
    if not isinstance(value, list) or not value:
        raise PacketError("'id' must be a string or a non-empty list of {id, seq}")
    refs: list[Addressed] = []
    for index, entry in enumerate(value):
        where = f"id[{index}]"
        if not isinstance(entry, dict):
            raise PacketError(f"'{where}' must be a dict")
        ref_id = entry.get(b"id")
        if not isinstance(ref_id, bytes) or not ref_id:
            raise PacketError(f"'{where}.id' must be a non-empty string")
        refs.append(Addressed(ref_id, _count(entry, b"seq", f"{where}.seq")))
    return tuple(refs)


def _optional_bytes(raw: Mapping[bytes, Value], key: bytes) -> bytes | None:
    value = raw.get(key)
    if value is None or isinstance(value, bytes):
        return value
    raise PacketError(f"'{key.decode()}' must be a string")


def _integer(raw: Mapping[bytes, Value], key: bytes, where: str | None = None) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PacketError(f"'{where or key.decode()}' must be an integer")
    return value


def _count(raw: Mapping[bytes, Value], key: bytes, where: str | None = None) -> int | None:
    value = _integer(raw, key, where)
    if value is not None and value < 0:
        raise PacketError(f"'{where or key.decode()}' must not be negative")
    return value


def _flag(raw: Mapping[bytes, Value], key: bytes, where: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise PacketError(f"'{where}' must be true or false")
    return value


def _headers(raw: Mapping[bytes, Value]) -> Headers:
    value = raw.get(b"headers")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PacketError("'headers' must be a list of [name, value]")
    headers: list[Header] = []
    for index, pair in enumerate(value):
        if (not isinstance(pair, list) or len(pair) != 2
                or not isinstance(pair[0], bytes) or not isinstance(pair[1], bytes)):
            raise PacketError(f"'headers[{index}]' must be [name, value], both strings")
        headers.append((pair[0], pair[1]))
    return tuple(headers)


# ---- responses --------------------------------------------------------------------------

def response_head(packet: Packet, *, switching: bool = False) -> ResponseHead:
    """The checked status line and headers of the first data packet of a response.

    ``code`` is required and must be a final HTTP status (200-999), or 101 with
    ``switching`` (a WebSocket handshake accepted); header names must be tokens and values
    must not hold line breaks or other control characters, because they go out to an
    HTTP client as they are.

    :raises PacketError: naming the offending field.
    """
    ident = packet.id if isinstance(packet.id, bytes) else None
    code = packet.code
    if code is None:
        raise PacketError("response has no 'code'", ident)
    if switching:
        if code != 101:
            raise PacketError(f"'code' {code} does not accept a WebSocket handshake (101)",
                              ident)
    elif not 200 <= code <= 999:
        raise PacketError(f"'code' {code} is not a final HTTP status (200-999)", ident)
    reason = packet.reason or b""
    if not _REASON.fullmatch(reason):
        raise PacketError("'reason' holds a control character", ident)
    headers: list[Header] = []
    for index, (name, value) in enumerate(packet.headers):
        if not _TOKEN.fullmatch(name):
            raise PacketError(f"'headers[{index}]' has an invalid name {name[:40]!r}", ident)
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise PacketError(f"'headers[{index}]' ({name.decode()}) has an invalid value",
                              ident)
        headers.append((name.lower(), value))
    return ResponseHead(code, reason, tuple(headers))


def has_no_body(method: bytes, code: int) -> bool:
    """Whether a response to ``method`` with status ``code`` carries no body at all."""
    return method == b"HEAD" or code in (204, 304)


def content_length(head: ResponseHead) -> int | None:
    """The response's ``Content-Length``, or None when it has none.

    :raises PacketError: the header is not a decimal number, or appears with two values.
    """
    values = {value for name, value in head.headers if name == b"content-length"}
    if not values:
        return None
    if len(values) > 1:
        raise PacketError("conflicting Content-Length headers")
    (value,) = values
    if not value.isdigit() or len(value) > 18:
        raise PacketError(f"invalid Content-Length {value[:40]!r}")
    return int(value)


def split_address(frame: bytes) -> tuple[bytes, bytes]:
    """Split an addressed PUB/SUB frame ``<address> T<tnetstring>`` at its first space.

    :raises PacketError: the frame has no address part.
    """
    address, space, rest = frame.partition(b" ")
    if not space or not address:
        raise PacketError("addressed packet has no '<address> ' prefix")
    return address, rest
