"""The GRIP WebSocket extension: its negotiation header and its control messages (sans-I/O).

With the extension on, a backend message ``c:{"type": "subscribe", "channel": "room"}``
is a control message for the proxy; :func:`parse_control` reads the JSON after ``c:``.
Invalid JSON, a non-object, an unknown type or an invalid field is a
:class:`ControlError`, which the session ignores (``ws-over-http.md`` §5.3).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, final

from p8core.grip.instructions import get_param, parse_header_params, split_header_list

__all__ = [
    "CONTROL_PREFIX",
    "DEFAULT_MESSAGE_PREFIX",
    "MESSAGE_TYPES",
    "ControlError",
    "ControlMessage",
    "Detach",
    "FlushDelayed",
    "KeepAlive",
    "OutMessage",
    "SendDelayed",
    "SessionId",
    "SetMeta",
    "Subscribe",
    "Unsubscribe",
    "grip_extension",
    "parse_control",
]

CONTROL_PREFIX: Final = b"c:"
DEFAULT_MESSAGE_PREFIX: Final = b"m:"
#: The kinds of message the proxy can send to a client.
MESSAGE_TYPES: Final = ("text", "binary", "ping", "pong")

DEFAULT_KEEP_ALIVE_TIMEOUT: Final = 55.0
DEFAULT_DELAY: Final = 1.0


class ControlError(ValueError):
    """A control message the proxy ignores, and why."""


@final
@dataclass(frozen=True, slots=True)
class OutMessage:
    """A message for the client: ``kind`` is one of :data:`MESSAGE_TYPES`."""

    kind: str
    data: bytes = b""


@final
@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: str
    filters: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str


@final
@dataclass(frozen=True, slots=True)
class SetMeta:
    """Subscription meta for publish filters; ``value`` ``None`` deletes ``name``."""

    name: str
    value: str | None


@final
@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Send ``message`` whenever the client was idle (``mode`` ``idle``) or every
    ``timeout`` seconds (``interval``); ``message`` ``None`` turns keep-alives off."""

    message: OutMessage | None
    timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT
    mode: str = "idle"


@final
@dataclass(frozen=True, slots=True)
class SendDelayed:
    message: OutMessage
    timeout: float = DEFAULT_DELAY


@final
@dataclass(frozen=True, slots=True)
class FlushDelayed:
    pass


@final
@dataclass(frozen=True, slots=True)
class Detach:
    pass


@final
@dataclass(frozen=True, slots=True)
class SessionId:
    id: str


ControlMessage = (Subscribe | Unsubscribe | SetMeta | KeepAlive | SendDelayed | FlushDelayed
                  | Detach | SessionId)


def parse_control(payload: bytes) -> ControlMessage:
    """Read one control message (the JSON after ``c:``).

    :raises ControlError: not JSON, not an object, an unknown ``type`` or a bad field.
    """
    try:
        raw = json.loads(payload)
    except (ValueError, RecursionError):
        raise ControlError("not JSON") from None
    if not isinstance(raw, dict):
        raise ControlError("not a JSON object")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise ControlError("no 'type' string")
    match kind:
        case "subscribe":
            return Subscribe(_channel(raw), _filters(raw))
        case "unsubscribe":
            return Unsubscribe(_channel(raw))
        case "set-meta":
            name = raw.get("name")
            if not isinstance(name, str) or not name:
                raise ControlError("set-meta needs a non-empty 'name'")
            value = raw.get("value")
            if value is not None and not isinstance(value, str):
                raise ControlError("set-meta 'value' must be a string")
            return SetMeta(name, value)
        case "keep-alive":
            message = _message(raw, required=False)
            timeout = _timeout(raw, DEFAULT_KEEP_ALIVE_TIMEOUT)
            mode = raw.get("mode", "idle")
            if mode not in ("idle", "interval"):
                raise ControlError("keep-alive 'mode' must be 'idle' or 'interval'")
            return KeepAlive(message, timeout, mode)
        case "send-delayed":
            message = _message(raw, required=True)
            assert message is not None
            return SendDelayed(message, _timeout(raw, DEFAULT_DELAY))
        case "flush-delayed":
            return FlushDelayed()
        case "detach":
            return Detach()
        case "session":
            sid = raw.get("id")
            if not isinstance(sid, str):
                raise ControlError("session needs an 'id' string")
            return SessionId(sid)
    raise ControlError(f"unknown type {kind!r}")


def _channel(raw: Mapping[str, object]) -> str:
    channel = raw.get("channel")
    if not isinstance(channel, str) or not channel:
        raise ControlError(f"{raw['type']} needs a non-empty 'channel'")
    return channel


def _filters(raw: Mapping[str, object]) -> tuple[str, ...]:
    filters = raw.get("filters", [])
    if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
        raise ControlError("'filters' must be a list of strings")
    return tuple(filters)


def _message(raw: Mapping[str, object], *, required: bool) -> OutMessage | None:
    """The message of a keep-alive or send-delayed: ``content-bin`` (base64) wins over
    ``content``; ``message-type`` defaults to ``text``."""
    kind = raw.get("message-type", "text")
    if kind not in MESSAGE_TYPES:
        raise ControlError(f"unknown 'message-type' {kind!r}")
    assert isinstance(kind, str)
    if "content-bin" in raw:
        content = raw["content-bin"]
        if not isinstance(content, str):
            raise ControlError("'content-bin' must be a base64 string")
        try:
            data = base64.b64decode(content, validate=True)
        except binascii.Error:
            raise ControlError("'content-bin' is not base64") from None
    elif "content" in raw:
        content = raw["content"]
        if not isinstance(content, str):
            raise ControlError("'content' must be a string")
        data = content.encode()
    elif required:
        raise ControlError("needs 'content' or 'content-bin'")
    else:
        return None
    if kind in ("ping", "pong") and len(data) > 125:
        raise ControlError("a ping or pong carries at most 125 bytes")
    return OutMessage(kind, data)


def _timeout(raw: Mapping[str, object], default: float) -> float:
    value = raw.get("timeout", default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ControlError("'timeout' must be a positive number of seconds")
    return float(value)


def grip_extension(values: Sequence[bytes]) -> tuple[bytes, str] | None:
    """Find the ``grip`` element among ``Sec-WebSocket-Extensions`` header values.

    :returns: its message prefix (``message-prefix``, default ``m:``) and the element as
        written, or ``None`` when ``grip`` is not there.
    """
    for value in values:
        for element in split_header_list(value.decode("latin-1")):
            try:
                name, params = parse_header_params(element)
            except ValueError:
                continue
            if name.lower() == "grip":
                prefix = get_param(params, "message-prefix")
                raw = DEFAULT_MESSAGE_PREFIX if prefix is None else prefix.encode("latin-1")
                return raw, element
    return None
