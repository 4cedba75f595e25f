"""Publish format ``ws-message`` (``publishing.md`` §1.3), parsed and framed once per publish.

Frames from server to client are unmasked, so a message without per-connection compression
is the same bytes for every client: :meth:`WsMessageFormat.parse` encodes that frame once,
and each WebSocket subscriber writes it as is. A connection with permessage-deflate encodes
the message itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, final

from wsproto.frame_protocol import FrameProtocol

from p8core import PublishError, PublishFormat
from p8core.pubsub.fields import as_bytes, as_text, filter_names, from_base64, text, wrong_type

from .control import MESSAGE_TYPES

__all__ = ["WsMessage", "WsMessageFormat", "frame_message"]

ACTIONS: Final = ("send", "close", "hint", "refresh")

# Close codes a server may put in a close frame (RFC 6455 §7.4): 1004-1006 and 1015 are
# reserved, below 1000 and above 4999 are not codes.
_UNSENDABLE_CODES: Final = frozenset({1004, 1005, 1006, 1015})


@final
@dataclass(frozen=True, slots=True)
class WsMessage:
    """One parsed ``ws-message``.

    ``kind`` and ``content`` are the message for ``send``; ``frame`` is that message as one
    unmasked, uncompressed frame. ``code`` and ``reason`` go with ``close``.
    """

    action: str = "send"
    kind: str = "text"
    content: bytes = b""
    frame: bytes = b""
    code: int | None = None
    reason: str = ""
    content_filters: tuple[str, ...] | None = None


def frame_message(kind: str, content: bytes) -> bytes:
    """One final, unmasked frame without extensions carrying a whole message."""
    proto = FrameProtocol(client=False, extensions=[])
    if kind == "text":
        return bytes(proto.send_data(content.decode("utf-8", "replace")))
    if kind == "binary":
        return bytes(proto.send_data(content))
    if kind == "ping":
        return bytes(proto.ping(content))
    return bytes(proto.pong(content))


class WsMessageFormat(PublishFormat):
    """Format ``ws-message``: ``content``/``content-bin``, ``type``, ``action``, ``code``,
    ``reason``, ``content-filters``. Messages are Pushpin's, word for word."""

    name = "ws-message"

    def parse(self, raw: Mapping[str, object], where: str) -> WsMessage:
        action = text(raw.get("action", "send"))
        if action is None or action not in ACTIONS:
            raise PublishError("")
        filters: tuple[str, ...] | None = None
        if "content-filters" in raw:
            filters = filter_names(raw["content-filters"], where)
        if action == "close":
            return WsMessage("close", code=self._code(raw, where),
                             reason=self._reason(raw, where), content_filters=filters)
        if action != "send":
            return WsMessage(action, content_filters=filters)

        content: bytes | None = None
        default_kind = "text"
        if "content-bin" in raw:
            value = raw["content-bin"]
            if isinstance(value, bytes):
                content = value  # a tnetstring input gives the binary content itself
            else:
                content = from_base64(value, "content-bin", where)
            default_kind = "binary"
        elif "content" in raw:
            content = as_bytes(raw["content"], "content", where)

        kind = text(raw.get("type", default_kind))
        if kind is None or kind not in MESSAGE_TYPES:
            raise PublishError(f"{where} contains 'type' with unknown value")
        if content is None:
            if kind in ("text", "binary"):
                raise PublishError(f"{where} does not contain 'content' or 'content-bin'")
            content = b""
        if kind in ("ping", "pong") and len(content) > 125:
            raise PublishError(f"{where} contains 'content' with invalid value")
        return WsMessage("send", kind, content, frame_message(kind, content),
                         content_filters=filters)

    @staticmethod
    def _code(raw: Mapping[str, object], where: str) -> int | None:
        code = raw.get("code")
        if code is None:
            return None
        if isinstance(code, bytes) and code.isdigit():
            code = int(code)
        if isinstance(code, bool) or not isinstance(code, int):
            raise wrong_type(where, "code")
        if not 1000 <= code <= 4999 or code in _UNSENDABLE_CODES:
            raise PublishError(f"{where} contains 'code' with invalid value")
        return code

    @staticmethod
    def _reason(raw: Mapping[str, object], where: str) -> str:
        return as_text(raw.get("reason", ""), "reason", where)
