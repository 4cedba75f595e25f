"""The requester's side of one streamed session (``zhttp.md`` §4), sans-I/O.

:class:`StreamSession` keeps what every session shares: both ``seq`` counters, credits
both ways, keep-alives, expiry and cancels. An :class:`HttpSession` turns what the
handler sends into actions for its shell (the response head, body parts, the end, a
failure, packets to send back) and builds the packets p8 sends: the first one (through
PUSH), then request body parts, credits, keep-alives and a cancel (through ROUTER, to the
handler's ``from`` address). WebSocket sessions (:mod:`.wssession`) build on the same
base. Nothing here reads a clock: ``now`` is given.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import Final

from p8core import WebSocketMessage

from .packets import (
    Headers,
    Packet,
    PacketError,
    ResponseHead,
    content_length,
    has_no_body,
    response_head,
)

WINDOW: Final = 200_000
"""Response body bytes p8 lets a handler send ahead of what the client has taken."""
KEEP_ALIVE_INTERVAL: Final = 45.0
"""An idle session gets a keep-alive this often, so that the handler keeps it."""
SESSION_TIMEOUT: Final = 60.0
"""A session the handler sends nothing for in this long has expired."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``packet`` to the handler at :attr:`HttpSession.peer`."""

    packet: Packet


@dataclass(frozen=True, slots=True)
class Head:
    """The response's status line and headers arrived.

    ``length`` is the body's length when known (its ``Content-Length``, or the size of
    a body that came whole in the first packet); None for a body that streams, or for a
    response that has no body (to ``HEAD``, 204, 304).
    """

    head: ResponseHead
    length: int | None


@dataclass(frozen=True, slots=True)
class Body:
    """A part of the response body arrived."""

    data: bytes


@dataclass(frozen=True, slots=True)
class End:
    """The response is complete."""


@dataclass(frozen=True, slots=True)
class Failed:
    """The session is over without a complete response; ``reason`` is one line."""

    reason: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """The handler accepted a WebSocket handshake (code 101)."""

    head: ResponseHead


@dataclass(frozen=True, slots=True)
class Rejected:
    """The handler refused a WebSocket handshake with this response."""

    head: ResponseHead
    body: bytes


@dataclass(frozen=True, slots=True)
class Message:
    """A whole WebSocket message, or a control frame, from the handler. ``size`` of its
    bytes are granted back to the handler once the message is taken."""

    message: WebSocketMessage
    size: int = 0


Action = Send | Head | Body | End | Failed | Accepted | Rejected | Message


class State(Enum):
    OPEN = "open"
    DONE = "done"
    FAILED = "failed"


class StreamSession(ABC):
    """What every streamed session keeps: both ``seq`` counters, the handler's address,
    the credits it granted, and the times that drive keep-alives and expiry.

    :param instance: p8's address (``from``), which the handler publishes to.
    :param id: the session id, unique within ``instance``.
    :param now: the current time, in seconds of any monotonic clock.
    :param window: body or message bytes granted up front and kept available.
    """

    __slots__ = ("granted", "id", "in_seq", "instance", "last_received", "last_sent", "out_seq",
                 "peer", "received", "send_credits", "state", "ungranted", "unread", "window")

    what = "session"
    """What the session carries, for failure reasons."""

    def __init__(self, instance: bytes, id: bytes, now: float, window: int = WINDOW) -> None:
        self.instance, self.id, self.window = instance, id, window
        self.peer: bytes | None = None
        self.state = State.OPEN
        self.out_seq = 0
        self.in_seq = 0
        self.send_credits = 0
        self.granted = window
        self.received = 0
        self.unread = 0
        self.ungranted = 0
        self.last_sent = self.last_received = now

    @property
    def open(self) -> bool:
        return self.state is State.OPEN

    def consumed(self, size: int, now: float) -> list[Action]:
        """``size`` bytes received from the handler reached the client: grant them again.

        Credits go out in batches of a quarter window, or at once when nothing received
        is left unread, so that a handler waiting for credits never waits for long.
        """
        self.unread -= size
        self.ungranted += size
        if not self.open or self.peer is None or not self.ungranted:
            return []
        if self.ungranted < self.window // 4 and self.unread > 0:
            return []
        credits, self.ungranted = self.ungranted, 0
        self.granted += credits
        self.last_sent = now
        return [Send(self._next(type=b"credit", credits=credits))]

    def tick(self, now: float) -> list[Action]:
        """Expire a silent session; keep an idle one alive."""
        if not self.open:
            return []
        if now - self.last_received >= SESSION_TIMEOUT:
            return self._fail(f"no packet from the handler for {SESSION_TIMEOUT:g} s",
                              cancel=True)
        if self.peer is not None and now - self.last_sent >= KEEP_ALIVE_INTERVAL:
            self.last_sent = now
            return [Send(self._next(type=b"keep-alive"))]
        return []

    def cancel(self) -> list[Action]:
        """The session is no longer wanted: end it, telling the handler."""
        if not self.open:
            return []
        self.state = State.FAILED
        return [Send(self._next(type=b"cancel"))] if self.peer is not None else []

    def fail(self, reason: str) -> list[Action]:
        """End the session because of something wrong its shell found (a bad packet)."""
        if not self.open:
            return []
        return self._fail(reason, cancel=True)

    def lost(self) -> None:
        """The handler cannot be reached any more: the session is over, nothing to send."""
        if self.open:
            self.state = State.FAILED

    def receive(self, packet: Packet, now: float) -> list[Action]:
        """Take one packet addressed to this session (a plain ``id``)."""
        if not self.open:
            return []
        self.last_received = now
        if packet.seq != self.in_seq:
            return self._fail(f"packet out of order: seq {packet.seq}, expected {self.in_seq}",
                              cancel=True)
        self.in_seq += 1
        if self.peer is None:
            if not packet.from_:
                return self._fail("the handler's first packet has no 'from'", cancel=False)
            self.peer = packet.from_
        if packet.credits:
            self.send_credits += packet.credits
        kind = packet.type
        if kind is None:
            return self._data(packet)
        if kind in (b"credit", b"keep-alive"):
            return []
        if kind == b"error":
            return self._error(packet)
        if kind == b"cancel":
            return self._fail("the handler cancelled the session", cancel=False)
        return self._other(kind, packet)

    @abstractmethod
    def _data(self, packet: Packet) -> list[Action]:
        """A data packet, in order."""

    def _arrived(self, size: int) -> bool:
        """Count ``size`` bytes of body or messages from the handler; False when they go far
        beyond the credits it was granted."""
        self.received += size
        self.unread += size
        return self.received <= self.granted + self.window

    def _error(self, packet: Packet) -> list[Action]:
        """A ``type: error`` packet: the session failed."""
        condition = (packet.condition or b"undefined").decode("latin-1")
        return self._fail(f"the handler answered with error {condition!r}", cancel=False)

    def _other(self, kind: bytes, packet: Packet) -> list[Action]:
        """A packet of a ``type`` this kind of session does not expect."""
        return self._fail(f"unexpected {kind.decode('latin-1')!r} packet in "
                          f"{self.what}", cancel=True)

    def _next(self, **fields: object) -> Packet:
        packet = Packet(id=self.id, from_=self.instance, seq=self.out_seq,
                        **fields)  # type: ignore[arg-type]
        self.out_seq += 1
        return packet

    def _fail(self, reason: str, *, cancel: bool) -> list[Action]:
        self.state = State.FAILED
        actions: list[Action] = [Failed(reason)]
        if cancel and self.peer is not None:
            actions.insert(0, Send(self._next(type=b"cancel")))
        return actions


class HttpSession(StreamSession):
    """One HTTP request/response exchanged with a handler in streaming mode."""

    __slots__ = ("expected", "head", "method", "no_body")

    what = "an HTTP session"

    def __init__(self, instance: bytes, id: bytes, now: float, window: int = WINDOW) -> None:
        super().__init__(instance, id, now, window)
        self.method = b""
        self.head: ResponseHead | None = None
        self.no_body = False
        self.expected: int | None = None

    @property
    def can_send_body(self) -> bool:
        """Whether request body may be sent now: the handler is known and granted credits."""
        return self.open and self.peer is not None and self.send_credits > 0

    @property
    def can_end_body(self) -> bool:
        """Whether an empty last body packet may be sent now (it takes no credits)."""
        return self.open and self.peer is not None

    # ---- what p8 sends ------------------------------------------------------------------

    def start(self, method: bytes, uri: bytes, headers: Headers, body: bytes,
              more: bool) -> Packet:
        """The first packet, for PUSH: the request head and the first part of its body."""
        if self.out_seq:
            raise RuntimeError("session already started")
        self.method = method
        return self._next(stream=True, credits=self.window, method=method, uri=uri,
                          headers=headers, body=body, more=more)

    def send_body(self, data: bytes, more: bool, now: float) -> Send:
        """A request body packet; ``data`` must fit the handler's credits."""
        if not (self.can_end_body and len(data) <= self.send_credits):
            raise RuntimeError("request body sent without the handler's credits")
        self.send_credits -= len(data)
        self.last_sent = now
        return Send(self._next(body=data, more=more))

    # ---- what the handler sends ---------------------------------------------------------

    def _data(self, packet: Packet) -> list[Action]:
        actions: list[Action] = []
        if self.head is None:
            try:
                head = response_head(packet)
                declared = content_length(head)
            except PacketError as e:
                return self._fail(f"invalid response: {e}", cancel=True)
            self.head = head
            self.no_body = has_no_body(self.method, head.code)
            self.expected = None if self.no_body else declared
            length = self.expected
            if length is None and not self.no_body and not packet.more:
                length = len(packet.body)
            actions.append(Head(head, length))
        # A body to HEAD, or with 204 or 304, cannot reach the client: it is dropped.
        if (body := packet.body) and not self.no_body:
            within = self._arrived(len(body))
            if self.expected is not None and self.received > self.expected:
                return [*actions, *self._fail("the handler sent more body than its "
                                              "Content-Length", cancel=True)]
            if not within:
                return [*actions, *self._fail("the handler sent far more body than its "
                                              "credits allow", cancel=True)]
            actions.append(Body(body))
        if not packet.more:
            if self.expected is not None and self.received != self.expected:
                return [*actions, *self._fail("the response ended before its "
                                              "Content-Length", cancel=False)]
            self.state = State.DONE
            actions.append(End())
        return actions
