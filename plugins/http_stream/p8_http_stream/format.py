"""Publish format ``http-stream``: what a stream hold writes for each item.

Parsed once per publish, with Pushpin 1.36's checks and messages word for word
(``spec/publishing.md`` §1.2), into a :class:`StreamMessage` whose ``content`` is already
the bytes to write, shared by every subscriber.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from p8core import PublishError, PublishFormat

__all__ = ["ACTIONS", "HttpStreamFormat", "StreamMessage", "decode_base64"]

#: ``action`` values; ``send`` is the default.
ACTIONS: Final = ("send", "close", "hint")

_B64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_B64: Final = bytes(b for b in range(256) if b not in _B64_ALPHABET)


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One parsed ``http-stream`` format object.

    ``content`` is what ``send`` writes (empty for ``close`` and ``hint``).
    ``content_filters`` is ``None`` when the item did not say which content filters it
    was prepared for, else the names in order (grip.md §8).
    """

    action: str = "send"
    content: bytes = b""
    content_filters: tuple[str, ...] | None = None


def decode_base64(text: str) -> bytes:
    """Decode base64 leniently, as Pushpin does: characters outside the alphabet (padding
    included) are skipped and leftover bits dropped. Never fails."""
    data = text.encode("utf-8").translate(None, _NOT_B64)
    extra = len(data) % 4
    if extra == 1:
        data = data[:-1]
    elif extra:
        data += b"=" * (4 - extra)
    try:
        return base64.b64decode(data)
    except binascii.Error:  # pragma: no cover - the input is clean by construction
        return b""


def _text(value: object) -> str | None:
    """A string value, from JSON (``str``) or a tnetstring input (UTF-8 ``bytes``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


class HttpStreamFormat(PublishFormat):
    """Format ``http-stream``: ``content``/``content-bin``, ``action``, ``content-filters``."""

    name = "http-stream"

    def parse(self, raw: Mapping[str, object], where: str) -> StreamMessage:
        """Check and prepare one ``http-stream`` object.

        Items from tnetstring inputs (any value arriving as ``bytes``) carry raw
        ``content``; ``content-bin`` exists only for JSON inputs, as in Pushpin.

        :raises PublishError: with Pushpin's message; an unknown ``action`` gives an
            empty message, as Pushpin answers ``Invalid format: ``.
        """
        action = "send"
        raw_action = raw.get("action")
        if raw_action is not None:
            text = _text(raw_action)
            if text is None:
                raise PublishError(f"{where} contains 'action' with wrong type")
            if text not in ACTIONS:
                raise PublishError("")
            action = text
        if action != "send":
            return StreamMessage(action)

        filters: tuple[str, ...] | None = None
        if "content-filters" in raw:
            raw_filters = raw["content-filters"]
            if not isinstance(raw_filters, list):
                raise PublishError(f"{where} contains 'content-filters' with wrong type")
            names: list[str] = []
            for value in raw_filters:
                name = _text(value)
                if name is None:
                    raise PublishError("content-filters contains element with wrong type")
                names.append(name)
            filters = tuple(names)

        tnetstring = any(isinstance(value, bytes) for value in raw.values())
        if "content-bin" in raw and not tnetstring:
            content_bin = raw["content-bin"]
            if not isinstance(content_bin, str):
                raise PublishError(f"{where} contains 'content-bin' with wrong type")
            return StreamMessage("send", decode_base64(content_bin), filters)
        if "content" in raw:
            content = raw["content"]
            if isinstance(content, str):
                return StreamMessage("send", content.encode("utf-8"), filters)
            if isinstance(content, bytes):
                return StreamMessage("send", content, filters)
            raise PublishError(f"{where} contains 'content' with wrong type")
        if tnetstring:
            raise PublishError(f"{where} does not contain 'content'")
        raise PublishError(f"{where} does not contain 'content' or 'content-bin'")
