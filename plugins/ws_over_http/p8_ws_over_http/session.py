"""One proxied client WebSocket: the state machine (sans-I/O).

The shell reports what happens — the client's messages and close frames, the backend's
answers, timers, publishes — and carries out the actions returned: requests to the backend,
messages and close frames to the client, subscriptions, timers. One request is in flight at
a time; client events that arrive meanwhile wait in order and go out together in the next
request (``ws-over-http.md`` §2-§5). Nothing here reads a clock or does I/O; the random
jitter comes from the ``random`` callable the shell passes in.

The backend is either a WebSocket-over-HTTP backend, whose events come in the responses
to requests, or (with ``SessionSettings.pushes``) a WebSocket session a connector opened:
a request is then a send of its events, and the backend's events arrive on their own
(:meth:`Session.on_backend_events`). The GRIP extension works the same with both.

Two sides end separately. The client side is open until its close handshake completes or
the client is dropped; the backend side is done after its last request. :class:`Finished`
comes once both are over.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, final

from p8core.grip.filters import FilterError, agrees, content_filters, delivers, filter_content
from p8core.pubsub.patterns import pattern_problem, subscribed_as

from .control import (
    CONTROL_PREFIX,
    ControlError,
    Detach,
    FlushDelayed,
    KeepAlive,
    OutMessage,
    SendDelayed,
    SessionId,
    SetMeta,
    Subscribe,
    Unsubscribe,
    grip_extension,
    parse_control,
)
from .events import MEDIA_TYPE, EventsError, WsEvent, close_content, decode, encode, parse_close
from .format import WsMessage

__all__ = [
    "CHANNEL_REFUSED",
    "SUBSCRIPTION_REFUSED",
    "Accept",
    "Action",
    "ArmTimer",
    "BackendResponse",
    "CancelTimer",
    "CloseClient",
    "DropClient",
    "Finished",
    "Join",
    "Leave",
    "Note",
    "Reject",
    "SendMessage",
    "SendRequest",
    "Session",
    "SessionSettings",
]

Headers = tuple[tuple[bytes, bytes], ...]

INTERNAL_ERROR: Final = 1011
REJECT_BODY_MAX: Final = 100_000
BAD_GATEWAY_BODY: Final = b"Error while proxying to origin.\n"
_REASONS: Final = {502: b"Bad Gateway", 504: b"Gateway Timeout"}

# Timer keys.
OPEN_TIMER: Final = "open"            # a deferred OPEN is asked again
KEEP_ALIVE_TIMER: Final = "keep-alive"  # Keep-Alive-Interval: an empty request
RETRY_TIMER: Final = "retry"
CLIENT_KEEP_ALIVE_TIMER: Final = "ws-keep-alive"  # the keep-alive control message
DELAYED_TIMER: Final = "delayed"
CLOSE_TIMER: Final = "close"          # a close handshake that takes too long

# Notes of refused subscriptions, counted by the shell.
SUBSCRIPTION_REFUSED: Final = "subscription_refused"  # over max_subscriptions
CHANNEL_REFUSED: Final = "channel_refused"            # name over max_channel_name

# Response headers that never reach the client's 101 (§3.2), besides hop-by-hop ones.
_NOT_ACCEPT_HEADERS: Final = frozenset({
    b"content-length", b"content-type", b"keep-alive-interval", b"sec-websocket-extensions",
    b"sec-websocket-accept", b"connection", b"keep-alive", b"transfer-encoding", b"upgrade",
    b"te", b"trailer", b"proxy-connection"})
_NOT_REJECT_HEADERS: Final = frozenset({
    b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te",
    b"trailer", b"proxy-connection"})
_SET_META: Final = b"set-meta-"


# ---- inputs ------------------------------------------------------------------------------

@final
@dataclass(frozen=True, slots=True)
class BackendResponse:
    """The backend's answer to one request. ``complete`` is false when the body passed the
    size limit; ``body`` then holds what was read."""

    status: int
    reason: bytes = b""
    headers: Headers = ()
    body: bytes = b""
    complete: bool = True

    def values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name]


@final
@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What a session needs to know of its route and of the plugin's settings."""

    grip: bool = True
    """Offer and interpret the GRIP extension (false for ``no_grip`` routes and trusted
    clients, whose extension passes through)."""
    channel_prefix: str = ""
    implicit_channels: tuple[str, ...] = ()
    max_subscriptions: int = 20
    max_channel_name: int = 1024
    wildcard: bool = False
    """The route's ``wildcard``: a channel ending with ``*`` is a pattern."""
    one_event: bool = False
    max_batch: int = 200_000
    retries: int = 5
    retry_delay: float = 1.0
    jitter: float = 1.0
    keep_alive_min: float = 20.0
    close_timeout: float = 5.0
    pushes: bool = False
    """The backend is a WebSocket session (a connector's): requests are sends, its events
    arrive on their own, and it answers a client's close whenever it does."""


# ---- actions -----------------------------------------------------------------------------

@final
@dataclass(frozen=True, slots=True)
class SendRequest:
    """POST ``body`` (``events``, encoded) to the backend with ``meta`` as ``Meta-*``
    headers; the answer goes to :meth:`Session.on_response` or
    :meth:`Session.on_request_failed`. ``opening`` marks the OPEN request, which may try the
    route's other targets and is never retried. A backend that ``pushes`` is sent the
    ``events``; then :meth:`Session.on_sent` or :meth:`Session.on_request_failed` follows."""

    body: bytes
    meta: Headers = ()
    opening: bool = False
    events: tuple[WsEvent, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class Accept:
    """Complete the client's handshake with 101; ``headers`` come from the backend."""

    headers: Headers


@final
@dataclass(frozen=True, slots=True)
class Reject:
    """Answer the client's handshake with this response instead of a 101."""

    status: int
    reason: bytes
    headers: Headers
    body: bytes


@final
@dataclass(frozen=True, slots=True)
class SendMessage:
    """Send a message to the client; ``frame`` is it already framed, when published."""

    kind: str
    data: bytes
    frame: bytes | None = None


@final
@dataclass(frozen=True, slots=True)
class CloseClient:
    """Send a close frame to the client: it starts the close handshake, or completes the
    one the client started (then the shell closes the connection)."""

    code: int | None
    reason: str = ""


@final
@dataclass(frozen=True, slots=True)
class DropClient:
    """Drop the client connection without a close frame."""


@final
@dataclass(frozen=True, slots=True)
class Join:
    """Subscribe the connection to ``channel`` (already prefixed)."""

    channel: str


@final
@dataclass(frozen=True, slots=True)
class Leave:
    channel: str


@final
@dataclass(frozen=True, slots=True)
class ArmTimer:
    """Call :meth:`Session.on_timer` with ``key`` after ``seconds``, replacing that key's
    pending timer."""

    key: str
    seconds: float


@final
@dataclass(frozen=True, slots=True)
class CancelTimer:
    key: str


@final
@dataclass(frozen=True, slots=True)
class Note:
    """Something for the log: ``event`` is a constant snake_case name."""

    event: str
    detail: str = ""
    warning: bool = False


@final
@dataclass(frozen=True, slots=True)
class Finished:
    """Both sides are over: leave every channel, cancel timers, close the connection."""


Action = (SendRequest | Accept | Reject | SendMessage | CloseClient | DropClient | Join | Leave
          | ArmTimer | CancelTimer | Note | Finished)


class _Backend(enum.Enum):
    OPENING = "opening"          # OPEN sent (or deferred), no answer yet
    OPEN = "open"
    AWAIT_CLIENT_CLOSE = "await-client-close"  # it sent CLOSE; the client's reply is due
    FINAL = "final"              # its last event is queued or in flight
    DONE = "done"


class _Client(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING_LOCAL = "closing-local"    # we sent a close frame, waiting for the reply
    CLOSING_REMOTE = "closing-remote"  # it sent a close frame, we owe the reply
    CLOSED = "closed"


_OPEN_EVENT: Final = WsEvent("OPEN")
_KINDS: Final = {"TEXT": "text", "BINARY": "binary", "PING": "ping", "PONG": "pong"}
_EVENT_TYPES: Final = {kind: name for name, kind in _KINDS.items()}


class _Pending:
    """The request in flight: its events, encoded body and meta, and its attempts."""

    __slots__ = ("attempts", "body", "events", "meta")

    def __init__(self, events: tuple[WsEvent, ...], meta: Headers) -> None:
        self.events, self.meta = events, meta
        self.body = encode(events)
        self.attempts = 0

    def carries(self, event: WsEvent | None) -> bool:
        """Whether this very event (not an equal one) is in the request."""
        return any(e is event for e in self.events)


class Session:
    """The WebSocket-over-HTTP state machine of one client connection."""

    def __init__(self, settings: SessionSettings,
                 random: Callable[[], float] = lambda: 0.0) -> None:
        self.settings = settings
        self._random = random
        self._backend = _Backend.OPENING
        self._client = _Client.CONNECTING
        self.meta: dict[bytes, bytes] = {}
        """Connection meta from ``Set-Meta-*``, sent back as ``Meta-*``."""
        self.message_prefix: bytes | None = None
        """The GRIP message prefix once the backend accepted the extension."""
        self.keep_alive_interval: float | None = None
        self.queue: deque[WsEvent] = deque()
        self.queued_bytes = 0
        self._inflight: _Pending | None = None
        self._retrying = False
        self._want_request = False
        self._final: WsEvent | None = None
        self._client_close: WsEvent | None = None
        self.detached = False
        self.channels: dict[str, tuple[str, ...]] = {}
        """Subscribed channel -> its filters."""
        self.subscription_meta: dict[str, str] = {}
        self.session_id: str | None = None
        self._keep_alive: KeepAlive | None = None
        self._delayed: OutMessage | None = None
        self.finished = False

    # ---- state, for the shell -----------------------------------------------------------

    @property
    def accepted(self) -> bool:
        """The client got its 101."""
        return self._client is not _Client.CONNECTING

    @property
    def client_open(self) -> bool:
        return self._client is _Client.OPEN

    # ---- inputs -------------------------------------------------------------------------

    def start(self) -> list[Action]:
        """The client's handshake arrived: ask the backend with OPEN."""
        return [self._request((_OPEN_EVENT,), opening=True)]

    def on_response(self, resp: BackendResponse) -> list[Action]:
        """The backend answered the request in flight."""
        pending, self._inflight = self._inflight, None
        assert pending is not None, "a response without a request"
        if self._backend is _Backend.OPENING:
            return self._open_response(resp)
        if self._backend is not _Backend.OPEN:
            # FINAL: what the backend says now has no client to go to.
            if pending.carries(self._final):
                self._backend = _Backend.DONE
                return self._finish_if_over()
            return self._send_if_ready()
        problem = _invalid(resp)
        if problem is None:
            try:
                events = decode(resp.body)
            except EventsError as e:
                problem = f"bad events: {e}"
        if problem is not None:
            return self._fail(problem)
        actions = self._apply_headers(resp)
        actions += self._apply_events(events)
        if (self._backend is _Backend.OPEN and self._client is _Client.CLOSING_REMOTE
                and pending.carries(self._client_close) and self.keep_alive_interval is None):
            # The backend had its one chance to acknowledge the client's close.
            actions += self._echo_client_close()
            actions += self._end_backend(WsEvent("DISCONNECT"))
        actions += self._arm_keep_alive()
        actions += self._send_if_ready()
        return actions + self._finish_if_over()

    def on_request_failed(self, reason: str, *, retryable: bool) -> list[Action]:
        """The request in flight got no usable answer.

        :param retryable: the backend was not reached, or the request not wholly sent.
        """
        pending = self._inflight
        assert pending is not None, "a failure without a request"
        if self._backend is _Backend.OPENING:
            self._inflight = None
            return self._refuse(reason)
        if self._backend is not _Backend.OPEN:
            self._inflight = None
            self._backend = _Backend.DONE
            return [Note("backend_request_failed", reason), *self._finish_if_over()]
        if retryable and pending.attempts < self.settings.retries:
            delay = (self.settings.retry_delay * 2 ** pending.attempts
                     + self.settings.jitter * self._random())
            pending.attempts += 1
            self._retrying = True
            return [Note("backend_retry", f"{reason}; retry {pending.attempts} in {delay:.2f}s"),
                    ArmTimer(RETRY_TIMER, delay)]
        self._inflight = None
        return self._fail(reason)

    def on_accepted(self, headers: Headers) -> list[Action]:
        """A backend that pushes accepted the OPEN; ``headers`` are those of its 101."""
        self._inflight = None
        return self._opened(BackendResponse(101, headers=headers), ())

    def on_refused(self, resp: BackendResponse) -> list[Action]:
        """A backend that pushes refused the OPEN with ``resp``."""
        self._inflight = None
        self._backend = _Backend.DONE
        return self._rejected(resp)

    def on_open_failed(self, status: int, reason: str) -> list[Action]:
        """A backend that pushes could not be asked: the client gets ``status`` and
        ``reason`` (one line), unless it already left."""
        self._inflight = None
        return self._refuse(reason, status, f"{reason}\n".encode())

    def on_sent(self) -> list[Action]:
        """The request in flight reached a backend that pushes."""
        pending, self._inflight = self._inflight, None
        assert pending is not None, "a send without a request"
        if self._backend is _Backend.FINAL and pending.carries(self._final):
            self._backend = _Backend.DONE
        return self._send_if_ready() + self._finish_if_over()

    def on_backend_events(self, events: Sequence[WsEvent]) -> list[Action]:
        """Events a backend that pushes sent on its own."""
        if self._backend is not _Backend.OPEN:
            return []  # after its close, nothing it sends reaches the client
        return self._apply_events(events) + self._finish_if_over()

    def on_backend_failed(self, reason: str) -> list[Action]:
        """A backend that pushes broke off the session: an open client gets close 1011."""
        if self._backend is _Backend.OPEN:
            return self._fail(reason)
        if self._backend is _Backend.AWAIT_CLIENT_CLOSE:
            self._backend = _Backend.DONE
            return [Note("backend_gone", reason), *self._finish_if_over()]
        return []

    def on_message(self, kind: str, data: bytes) -> list[Action]:
        """A whole message from the client (``kind`` ``text``/``binary``/``ping``/``pong``)."""
        if self._client is not _Client.OPEN or self.detached:
            return []
        if self._backend is not _Backend.OPEN:
            return []
        self._enqueue(WsEvent(_EVENT_TYPES[kind], data))
        return self._send_if_ready()

    def on_client_close(self, code: int | None, reason: str) -> list[Action]:
        """The client sent a close frame: its own close, or the reply to ours."""
        if self._client is _Client.CLOSING_LOCAL:
            self._client = _Client.CLOSED
            actions: list[Action] = [CancelTimer(CLOSE_TIMER)]
            if self._backend is _Backend.AWAIT_CLIENT_CLOSE:
                actions += self._end_backend(WsEvent("CLOSE", close_content(code, reason)))
            return actions + self._finish_if_over()
        if self._client is not _Client.OPEN:
            return []
        self._client = _Client.CLOSING_REMOTE
        self._client_close = WsEvent("CLOSE", close_content(code, reason))
        if self._backend is _Backend.OPEN and not self.detached:
            self._enqueue(self._client_close)
            actions = self._send_if_ready()
            if self.keep_alive_interval is not None or self.settings.pushes:
                actions.append(ArmTimer(CLOSE_TIMER, self.settings.close_timeout))
            return actions
        return self._echo_client_close() + self._finish_if_over()

    def on_client_error(self, code: int, reason: str) -> list[Action]:
        """The client broke the protocol (or sent too big a message): close with ``code``;
        the backend hears DISCONNECT."""
        if self._client is not _Client.OPEN:
            return []
        actions = self._close_client(code, reason)
        return actions + self._end_backend(WsEvent("DISCONNECT")) + self._finish_if_over()

    def on_client_gone(self) -> list[Action]:
        """The client connection ended without (the rest of) a close handshake."""
        if self._client is _Client.CLOSED:
            return []
        self._client = _Client.CLOSED
        actions: list[Action] = [CancelTimer(CLOSE_TIMER), CancelTimer(CLIENT_KEEP_ALIVE_TIMER),
                                 CancelTimer(DELAYED_TIMER)]
        if self._backend is _Backend.OPEN:
            actions += self._end_backend(WsEvent("DISCONNECT"))
        elif self._backend is _Backend.AWAIT_CLIENT_CLOSE:
            self._backend = _Backend.DONE
        elif self._backend is _Backend.OPENING and self._inflight is None:
            # A deferred OPEN: nothing to tell a backend that has not accepted.
            self._backend = _Backend.DONE
            actions.append(CancelTimer(OPEN_TIMER))
        return actions + self._finish_if_over()

    def on_timer(self, key: str) -> list[Action]:
        """A timer armed by :class:`ArmTimer` fired."""
        if self.finished:
            return []
        if key == RETRY_TIMER:
            pending = self._inflight
            self._retrying = False
            if pending is None or self._backend is _Backend.DONE:
                return []
            return [SendRequest(pending.body, pending.meta, events=pending.events)]
        if key == OPEN_TIMER:
            if self._backend is _Backend.OPENING and self._client is _Client.CONNECTING:
                return [self._request((_OPEN_EVENT,), opening=True)]
            return []
        if key == KEEP_ALIVE_TIMER:
            if self._backend is _Backend.OPEN and self.keep_alive_interval is not None:
                self._want_request = True
                return self._send_if_ready()
            return []
        if key == CLIENT_KEEP_ALIVE_TIMER:
            ka = self._keep_alive
            if ka is None or ka.message is None or self._client is not _Client.OPEN:
                return []
            message = ka.message
            return [SendMessage(message.kind, message.data), self._arm_client_keep_alive(ka)]
        if key == DELAYED_TIMER:
            return self._flush_delayed()
        if key == CLOSE_TIMER:
            if self._client is _Client.CLOSING_REMOTE:
                actions = self._echo_client_close()
                if self._backend is _Backend.OPEN:
                    actions += self._end_backend(WsEvent("DISCONNECT"))
                return actions + self._finish_if_over()
            if self._client is _Client.CLOSING_LOCAL:
                return [DropClient(), *self.on_client_gone()]
        return []

    def on_publish(self, channel: str, meta: Mapping[str, str], msg: WsMessage) -> list[Action]:
        """An item published to ``channel`` (with publish ``meta``) in format ws-message."""
        if self._client is not _Client.OPEN:
            return []
        filters = self.channels.get(channel)
        if filters is None:  # through a pattern (``news.*``)
            name = subscribed_as(self.channels, channel)
            filters = self.channels[name] if name is not None else ()
        if msg.action == "send" and not filters and not msg.content_filters:
            return self._to_client(msg.kind, msg.content, msg.frame)  # the common case
        if filters and not delivers(filters, self.subscription_meta, meta, self.channels):
            return []
        if msg.action == "send":
            data = msg.content
            frame: bytes | None = msg.frame
            if not agrees(msg.content_filters, filters):
                return [Note("publish_skipped", "content filters differ")]
            if content_filters(filters):
                try:
                    data = filter_content(filters, data, self.subscription_meta)
                except FilterError as e:
                    return [Note("publish_skipped", f"filter error: {e}")]
                frame = None
            return self._to_client(msg.kind, data, frame)
        if msg.action == "close":
            actions = self._close_client(msg.code, msg.reason)
            if self._backend is _Backend.OPEN and not self.detached:
                actions += self._end_backend(WsEvent("CLOSE"))
            return actions + self._finish_if_over()
        if msg.action == "refresh":
            return self.refresh()
        return []

    def refresh(self) -> list[Action]:
        """Send a request now (an empty one if nothing waits): the ``refresh`` command."""
        if self._backend is not _Backend.OPEN:
            return []
        self._want_request = True
        return self._send_if_ready()

    # ---- the backend side ---------------------------------------------------------------

    def _request(self, events: tuple[WsEvent, ...], *, opening: bool = False) -> SendRequest:
        meta = () if opening else tuple((b"meta-" + k, v) for k, v in self.meta.items())
        pending = self._inflight = _Pending(events, meta)
        return SendRequest(pending.body, meta, opening, events)

    def _enqueue(self, event: WsEvent) -> None:
        self.queue.append(event)
        self.queued_bytes += len(event.content)

    def _send_if_ready(self) -> list[Action]:
        """The next request, if none is in flight and there is something to send."""
        if self._inflight is not None or self._retrying:
            return []
        if self._backend not in (_Backend.OPEN, _Backend.FINAL):
            return []
        if not self.queue and not self._want_request:
            return []
        batch: list[WsEvent] = []
        size = 0
        queue = self.queue
        while queue:
            event = queue[0]
            if batch and (self.settings.one_event
                          or size + len(event.content) > self.settings.max_batch):
                break
            batch.append(queue.popleft())
            size += len(event.content)
        self.queued_bytes -= size
        self._want_request = False
        return [self._request(tuple(batch))]

    def _end_backend(self, last: WsEvent) -> list[Action]:
        """Queue the backend's last event; no request follows the one carrying it. A
        client waiting for the backend to acknowledge its close gets the reply now."""
        self._final = last
        self._backend = _Backend.FINAL
        self._enqueue(last)
        return [*self._echo_client_close(), CancelTimer(KEEP_ALIVE_TIMER),
                *self._send_if_ready()]

    def _fail(self, reason: str) -> list[Action]:
        """The backend failed an open connection: the client gets close code 1011."""
        self._backend = _Backend.DONE
        self._retrying = False
        self.queue.clear()
        self.queued_bytes = 0
        actions: list[Action] = [Note("backend_failed", reason, warning=True),
                                 CancelTimer(KEEP_ALIVE_TIMER)]
        if self._client is _Client.OPEN:
            actions += self._close_client(INTERNAL_ERROR, "")
        elif self._client is _Client.CLOSING_REMOTE:
            actions.append(CloseClient(INTERNAL_ERROR, ""))
            self._client = _Client.CLOSED
        return actions + self._finish_if_over()

    def _refuse(self, reason: str, status: int = 502,
                body: bytes = BAD_GATEWAY_BODY) -> list[Action]:
        """The OPEN request failed: ``status`` for the client, unless it already left."""
        self._backend = _Backend.DONE
        actions: list[Action] = [Note("backend_failed", reason, warning=True)]
        if self._client is _Client.CONNECTING:
            actions.append(Reject(status, _REASONS.get(status, b""),
                                  ((b"content-type", b"text/plain"),), body))
        self._client = _Client.CLOSED
        return actions + self._finish_if_over()

    def _open_response(self, resp: BackendResponse) -> list[Action]:
        if resp.status != 200 or _content_type(resp) != MEDIA_TYPE:
            self._backend = _Backend.DONE
            return self._rejected(resp)
        if not resp.complete:
            return self._refuse("OPEN response too large")
        try:
            events = decode(resp.body)
        except EventsError as e:
            return self._refuse(f"bad events in the OPEN response: {e}")
        interval = _keep_alive_interval(resp, self.settings.keep_alive_min)
        if not events:
            if interval is None:
                return self._refuse("no events in the OPEN response")
            if self._client is not _Client.CONNECTING:
                self._backend = _Backend.DONE
                return self._finish_if_over()
            return [Note("open_deferred", f"asking again in {interval:g}s"),
                    ArmTimer(OPEN_TIMER, interval)]
        if events[0].type != "OPEN":
            return self._refuse(f"the OPEN response starts with {events[0].type}")
        return self._opened(resp, events[1:])

    def _rejected(self, resp: BackendResponse) -> list[Action]:
        """The backend refused the OPEN: the client gets its response, if still there."""
        if self._client is not _Client.CONNECTING:
            return self._finish_if_over()
        self._client = _Client.CLOSED
        passed = tuple((n, v) for n, v in resp.headers if n.lower() not in _NOT_REJECT_HEADERS)
        return [Note("backend_refused", f"status {resp.status}"),
                Reject(resp.status, resp.reason, passed, resp.body[:REJECT_BODY_MAX]),
                *self._finish_if_over()]

    def _opened(self, resp: BackendResponse, events: Sequence[WsEvent]) -> list[Action]:
        """The backend accepted with ``resp``; ``events`` came with it."""
        self._backend = _Backend.OPEN
        if self._client is not _Client.CONNECTING:
            # The client left while the backend was deciding.
            return self._end_backend(WsEvent("DISCONNECT"))
        self._client = _Client.OPEN
        headers = [(n, v) for n, v in resp.headers
                   if n.lower() not in _NOT_ACCEPT_HEADERS and not n.lower().startswith(_SET_META)]
        grip = grip_extension(resp.values(b"sec-websocket-extensions"))
        if grip is not None:
            if self.settings.grip:
                self.message_prefix = grip[0]
            else:
                headers.append((b"sec-websocket-extensions", grip[1].encode("latin-1")))
        actions: list[Action] = [Accept(tuple(headers))]
        for channel in self.settings.implicit_channels:
            actions += self._subscribe(channel, ())
        actions += self._apply_headers(resp)
        actions += self._apply_events(events)
        actions += self._arm_keep_alive()
        actions += self._send_if_ready()
        return actions + self._finish_if_over()

    def _apply_headers(self, resp: BackendResponse) -> list[Action]:
        for name, value in resp.headers:
            lower = name.lower()
            if lower.startswith(_SET_META) and len(lower) > len(_SET_META):
                key = lower[len(_SET_META):]
                if value:
                    self.meta[key] = value
                else:
                    self.meta.pop(key, None)
        if resp.values(b"keep-alive-interval"):
            self.keep_alive_interval = _keep_alive_interval(resp, self.settings.keep_alive_min)
        return []

    def _arm_keep_alive(self) -> list[Action]:
        if self._backend is not _Backend.OPEN:
            return []
        if self.keep_alive_interval is None:
            return [CancelTimer(KEEP_ALIVE_TIMER)]
        return [ArmTimer(KEEP_ALIVE_TIMER, self.keep_alive_interval)]

    def _apply_events(self, events: Sequence[WsEvent]) -> list[Action]:
        """The backend's events, in order (§3.3, §5.2)."""
        actions: list[Action] = []
        prefix = self.message_prefix
        for event in events:
            if self._backend is not _Backend.OPEN:
                break
            kind = _KINDS.get(event.type)
            if kind is not None:
                data = event.content
                if prefix is not None and kind in ("text", "binary"):
                    if kind == "text" and data.startswith(CONTROL_PREFIX):
                        actions += self._control(data[len(CONTROL_PREFIX):])
                        continue
                    if not data.startswith(prefix):
                        actions.append(Note("message_dropped", "no message prefix"))
                        continue
                    data = data[len(prefix):]
                actions += self._to_client(kind, data)
            elif event.type == "CLOSE":
                code, reason = parse_close(event.content)
                if self._client is _Client.OPEN:
                    actions += self._close_client(code, reason)
                    self._backend = _Backend.AWAIT_CLIENT_CLOSE
                    actions.append(CancelTimer(KEEP_ALIVE_TIMER))
                else:
                    if self._client is _Client.CLOSING_REMOTE:
                        actions.append(CloseClient(code, reason))
                        self._client = _Client.CLOSED
                        actions.append(CancelTimer(CLOSE_TIMER))
                    self._backend = _Backend.DONE
            else:  # DISCONNECT, or an OPEN on an open connection
                actions.append(DropClient())
                self._client = _Client.CLOSED
                self._backend = _Backend.DONE
        return actions

    # ---- the client side ----------------------------------------------------------------

    def _to_client(self, kind: str, data: bytes, frame: bytes | None = None) -> list[Action]:
        if self._client is not _Client.OPEN:
            return []
        send = SendMessage(kind, data, frame)
        ka = self._keep_alive
        if ka is not None and ka.mode == "idle":
            return [send, self._arm_client_keep_alive(ka)]
        return [send]

    def _close_client(self, code: int | None, reason: str) -> list[Action]:
        """Start the close handshake with the client."""
        if self._client is not _Client.OPEN:
            return []
        self._client = _Client.CLOSING_LOCAL
        return [CloseClient(code, reason), ArmTimer(CLOSE_TIMER, self.settings.close_timeout),
                CancelTimer(CLIENT_KEEP_ALIVE_TIMER), CancelTimer(DELAYED_TIMER)]

    def _echo_client_close(self) -> list[Action]:
        """Reply to the client's close frame with its own code."""
        if self._client is not _Client.CLOSING_REMOTE:
            return []
        self._client = _Client.CLOSED
        code, reason = parse_close(self._client_close.content if self._client_close else b"")
        return [CloseClient(code, reason), CancelTimer(CLOSE_TIMER)]

    def _arm_client_keep_alive(self, ka: KeepAlive) -> ArmTimer:
        jitter = min(self.settings.jitter * self._random(), ka.timeout / 2)
        return ArmTimer(CLIENT_KEEP_ALIVE_TIMER, ka.timeout - jitter)

    def _flush_delayed(self) -> list[Action]:
        message, self._delayed = self._delayed, None
        if message is None:
            return []
        return [CancelTimer(DELAYED_TIMER), *self._to_client(message.kind, message.data)]

    def _finish_if_over(self) -> list[Action]:
        if (self.finished or self._client is not _Client.CLOSED
                or self._backend is not _Backend.DONE or self._inflight is not None):
            return []
        self.finished = True
        return [Finished()]

    # ---- GRIP control messages (§5.3) ----------------------------------------------------

    def _control(self, payload: bytes) -> list[Action]:
        try:
            message = parse_control(payload)
        except ControlError as e:
            return [Note("control_ignored", str(e))]
        match message:
            case Subscribe(channel, filters):
                return self._subscribe(self.settings.channel_prefix + channel, filters)
            case Unsubscribe(channel):
                channel = self.settings.channel_prefix + channel
                if channel not in self.channels or channel in self.settings.implicit_channels:
                    return []
                del self.channels[channel]
                return [Leave(channel)]
            case SetMeta(name, value):
                if value is None:
                    self.subscription_meta.pop(name, None)
                else:
                    self.subscription_meta[name] = value
                return []
            case KeepAlive() as ka:
                if ka.message is None:
                    self._keep_alive = None
                    return [CancelTimer(CLIENT_KEEP_ALIVE_TIMER)]
                self._keep_alive = ka
                return [self._arm_client_keep_alive(ka)]
            case SendDelayed(delayed, timeout):
                actions = self._flush_delayed()
                self._delayed = delayed
                return [*actions, ArmTimer(DELAYED_TIMER, timeout)]
            case FlushDelayed():
                return self._flush_delayed()
            case Detach():
                self.detached = True
                return self._end_backend(WsEvent("CLOSE"))
            case SessionId(sid):
                self.session_id = sid
                return []
        raise AssertionError(f"unhandled control message {message!r}")  # pragma: no cover

    def _subscribe(self, channel: str, filters: tuple[str, ...]) -> list[Action]:
        if channel in self.channels:
            self.channels[channel] = filters
            return []
        if len(channel) > self.settings.max_channel_name:
            return [Note(CHANNEL_REFUSED, f"{channel[:64]}…: name longer than "
                         f"{self.settings.max_channel_name} characters", warning=True)]
        problem = pattern_problem(channel) if self.settings.wildcard else None
        if problem is not None:
            return [Note(CHANNEL_REFUSED, f"{channel}: {problem}", warning=True)]
        if len(self.channels) >= self.settings.max_subscriptions:
            return [Note(SUBSCRIPTION_REFUSED, f"{channel}: over the limit", warning=True)]
        self.channels[channel] = filters
        return [Join(channel)]


def _content_type(resp: BackendResponse) -> bytes | None:
    values = resp.values(b"content-type")
    return values[0] if len(values) == 1 else None


def _invalid(resp: BackendResponse) -> str | None:
    """Why a response to a request on an open connection is unusable, if it is (§3.1)."""
    if resp.status != 200:
        return f"status {resp.status}"
    if _content_type(resp) != MEDIA_TYPE:
        return "wrong content type"
    if not resp.complete:
        return "response body too large"
    return None


def _keep_alive_interval(resp: BackendResponse, minimum: float) -> float | None:
    """``Keep-Alive-Interval``: below ``minimum`` raised to it; 0, negative or unparsable
    (or absent) means off."""
    values = resp.values(b"keep-alive-interval")
    if not values:
        return None
    try:
        seconds = int(values[-1].strip())
    except ValueError:
        return None
    if seconds <= 0:
        return None
    return max(float(seconds), minimum)
