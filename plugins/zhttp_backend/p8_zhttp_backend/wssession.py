"""The requester's side of one WebSocket session over streaming mode (``zhttp.md`` §4.3),
sans-I/O.

The first packet carries the client's handshake with a ``ws://`` (or ``wss://``) URI and
no method. The handler accepts with a data packet of code 101, or refuses with
``type: error, condition: rejected`` and the response the client should get. Then
messages travel as data packets (``content-type`` ``text`` or ``binary``; ``more`` while
more fragments of the message follow), control frames as ``ping``, ``pong`` and
``close`` packets (the close code in ``code``, the reason in ``body``). Message bytes take
credits in both directions; control frames take none.
"""

from __future__ import annotations

from typing import Final

from p8core import WebSocketMessage

from .packets import Headers, Packet, PacketError, response_head
from .session import (
    WINDOW,
    Accepted,
    Action,
    End,
    Message,
    Rejected,
    Send,
    State,
    StreamSession,
)

MESSAGE_MAX: Final = 16_777_216
"""The largest message a handler may send in fragments, by default."""
_KINDS: Final = {None: "text", b"text": "text", b"binary": "binary"}
"""A data packet's ``content-type`` (absent means text) to the kind of its message."""


class WsSession(StreamSession):
    """One client WebSocket carried to a handler in streaming mode.

    :param max_message: the largest message the handler may send (in fragments); a larger
        one fails the session.
    """

    __slots__ = ("_kind", "_parts", "_size", "accepted", "closed_in", "closed_out",
                 "max_message")

    what = "a WebSocket session"

    def __init__(self, instance: bytes, id: bytes, now: float, window: int = WINDOW,
                 max_message: int = MESSAGE_MAX) -> None:
        super().__init__(instance, id, now, window)
        self.max_message = max_message
        self.accepted = False
        self.closed_in = False
        """The handler sent its close."""
        self.closed_out = False
        """p8 sent its close."""
        self._kind = "text"
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def sending(self) -> bool:
        """Whether messages may still be sent: accepted, open, and not closed by p8."""
        return self.open and self.accepted and not self.closed_out

    def can_send(self, message: WebSocketMessage) -> bool:
        """Whether ``message`` may be sent now; a text or binary one needs its size in
        credits."""
        if message.kind in ("text", "binary"):
            return self.sending and self.send_credits >= len(message.data)
        return self.sending

    # ---- what p8 sends ------------------------------------------------------------------

    def start(self, uri: bytes, headers: Headers) -> Packet:
        """The first packet, for PUSH: the client's handshake."""
        if self.out_seq:
            raise RuntimeError("session already started")
        return self._next(credits=self.window, uri=uri, headers=headers)

    def send(self, message: WebSocketMessage, now: float, *, more: bool = False) -> Send:
        """The packet for ``message``, or for a fragment of it when ``more`` follow.

        :raises RuntimeError: the session cannot take it (see :meth:`can_send`); callers
            cut text and binary messages to the credits they have.
        """
        if not self.can_send(message):
            raise RuntimeError("message sent without the handler's credits")
        self.last_sent = now
        kind, data = message.kind, message.data
        if kind == "close":
            self.closed_out = True
            if self.closed_in:
                self.state = State.DONE
            return Send(self._next(type=b"close", code=message.code, body=data))
        if kind in ("ping", "pong"):
            return Send(self._next(type=kind.encode(), body=data))
        self.send_credits -= len(data)
        return Send(self._next(content_type=kind.encode(), body=data, more=more))

    # ---- what the handler sends ---------------------------------------------------------

    def _data(self, packet: Packet) -> list[Action]:
        if not self.accepted:
            try:
                head = response_head(packet, switching=True)
            except PacketError as e:
                return self._fail(f"invalid handshake response: {e}", cancel=True)
            self.accepted = True
            return [Accepted(head)]
        if self.closed_in:
            return []
        kind = _KINDS.get(packet.content_type)
        if kind is None:
            return self._fail(f"unknown content-type {packet.content_type!r} "
                              "(expected text or binary)", cancel=True)
        body = packet.body
        if not self._arrived(len(body)):
            return self._fail("the handler sent far more than its credits allow",
                              cancel=True)
        if not self._parts and not packet.more:
            return [Message(WebSocketMessage(kind, body), len(body))]
        if not self._parts:
            self._kind = kind
        self._size += len(body)
        if self._size > self.max_message:
            return self._fail(f"the handler sent a message over {self.max_message} bytes",
                              cancel=True)
        self._parts.append(body)
        if packet.more:
            # Fragments wait here for the rest of their message: granted again at once,
            # so that a message larger than the window can arrive.
            return self.consumed(len(body), self.last_received)
        data, kind = b"".join(self._parts), self._kind
        self._parts, self._size = [], 0
        return [Message(WebSocketMessage(kind, data), len(body))]

    def _error(self, packet: Packet) -> list[Action]:
        if self.accepted or packet.condition != b"rejected":
            return super()._error(packet)
        try:
            head = response_head(packet)
        except PacketError as e:
            return self._fail(f"invalid rejection: {e}", cancel=False)
        self.state = State.DONE
        return [Rejected(head, packet.body)]

    def _other(self, kind: bytes, packet: Packet) -> list[Action]:
        if not self.accepted or kind not in (b"close", b"ping", b"pong"):
            return super()._other(kind, packet)
        if kind != b"close":
            return [] if self.closed_in else [Message(WebSocketMessage(kind.decode(),
                                                                       packet.body))]
        if self.closed_in:
            return []
        self.closed_in = True
        actions: list[Action] = [Message(WebSocketMessage("close", packet.body, packet.code))]
        if self.closed_out:
            self.state = State.DONE
            actions.append(End())
        return actions
