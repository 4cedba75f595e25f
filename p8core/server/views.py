"""The control API's read-only answers to ``GET``: one registry, ``App.control_views``.

A view is registered by path: an exact path (``/metrics``, ``/workers``), or a prefix
ending in ``/`` (``/channels/``) whose view is called with the rest of the path,
URL-decoded. Views answer publishers only (the control API's credentials) unless
``public`` (health checks and scrapers).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from ..pubsub.feedback import FORWARDED_NOTE

if TYPE_CHECKING:
    from ..pubsub.hub import Hub

__all__ = ["Answer", "ControlView", "channel_view", "find_view", "json_answer"]

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
"""Status, body and headers (the content type first)."""


@dataclass(frozen=True, slots=True)
class ControlView:
    """A read-only answer of the control API."""

    answer: Callable[[str], Answer]
    """Makes the answer; takes the rest of the path after a prefix (``""`` for an exact
    path)."""
    public: bool = False
    """Answered without the publish credentials."""


def json_answer(value: object, status: int = 200) -> Answer:
    """``value`` as a JSON answer."""
    return status, json.dumps(value).encode() + b"\n", [(b"content-type", b"application/json")]


def find_view(views: Mapping[str, ControlView], path: str) -> tuple[ControlView, str] | None:
    """The view for ``path`` (as received, without its query) and the rest of the path.

    :raises ValueError: the rest is not UTF-8 once URL-decoded.
    """
    view = views.get(path)
    if view is not None:
        return view, ""
    head, slash, rest = path[1:].partition("/")
    view = views.get(f"/{head}/") if slash and rest else None
    if view is None:
        return None
    return view, unquote_to_bytes(rest.encode("latin-1")).decode("utf-8")


def channel_view(hub: Hub, forwarded: Callable[[], bool]) -> ControlView:
    """``GET /channels/<name>``: how many subscribers a channel has here, by format.

    An unknown channel is a channel without subscribers. A supervisor (``forwarded()``)
    knows only whether some worker listens to it.
    """
    def answer(channel: str) -> Answer:
        subscribed = hub.is_subscribed(channel)
        if forwarded():
            return json_answer({"channel": channel, "subscribed": subscribed,
                                "subscribers": None, "by_format": None, "lingering": None,
                                "subscribers_unknown": FORWARDED_NOTE})
        by_format = dict(sorted(hub.subscriber_counts(channel).items()))
        total = sum(by_format.values())
        return json_answer({"channel": channel, "subscribed": subscribed,
                            "subscribers": total, "by_format": by_format,
                            "lingering": subscribed and not total})

    return ControlView(answer)
