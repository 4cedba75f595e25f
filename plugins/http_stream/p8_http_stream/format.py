"""Publish format ``http-stream``: what a stream hold writes for each item.

Parsed once per publish, with Pushpin 1.36's checks and messages word for word
(``spec/publishing.md`` §1.2), into a :class:`StreamMessage` whose ``content`` is already
the bytes to write, shared by every subscriber.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from p8core import PublishError, PublishFormat
from p8core.pubsub.fields import (
    as_bytes,
    as_text,
    filter_names,
    from_base64,
    tnetstring_input,
)

__all__ = ["ACTIONS", "HttpStreamFormat", "StreamMessage"]

#: ``action`` values; ``send`` is the default.
ACTIONS: Final = ("send", "close", "hint")

_ELEMENT_WRONG_TYPE: Final = "content-filters contains element with wrong type"


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
            text = as_text(raw_action, "action", where)
            if text not in ACTIONS:
                raise PublishError("")
            action = text
        if action != "send":
            return StreamMessage(action)

        filters: tuple[str, ...] | None = None
        if "content-filters" in raw:
            filters = filter_names(raw["content-filters"], where,
                                   element_error=_ELEMENT_WRONG_TYPE)

        tnetstring = tnetstring_input(raw)
        if "content-bin" in raw and not tnetstring:
            return StreamMessage("send", from_base64(raw["content-bin"], "content-bin", where),
                                 filters)
        if "content" in raw:
            return StreamMessage("send", as_bytes(raw["content"], "content", where), filters)
        if tnetstring:
            raise PublishError(f"{where} does not contain 'content'")
        raise PublishError(f"{where} does not contain 'content' or 'content-bin'")
