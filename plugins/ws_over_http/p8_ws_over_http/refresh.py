"""The ``refresh`` command: WebSocket-over-HTTP connections ask their backend now
(ws-over-http.md §4.5, stats.md §3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from p8core import Command, CommandError
from p8core.commands import text

from .transport import WebSocketTransport

if TYPE_CHECKING:
    from p8core.app import App


class Refresh(Command):
    """``{"cid": <Connection-Id>}`` refreshes that connection (``item-not-found`` if there
    is none); ``{"channel": <name>}`` refreshes every connection subscribed to it."""

    name = "refresh"

    def run(self, app: App, args: Mapping[str, object]) -> None:
        transport = next(t for t in app.transports if isinstance(t, WebSocketTransport))
        cid, channel = text(args.get("cid")), text(args.get("channel"))
        if cid is not None:
            if not transport.refresh(cid=cid):
                raise CommandError("item-not-found")
        elif channel is not None:
            transport.refresh(channel=channel)
        else:
            raise CommandError("bad-request", "'cid' or 'channel' required")
