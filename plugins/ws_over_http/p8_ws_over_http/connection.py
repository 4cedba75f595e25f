"""The client side of a proxied WebSocket: what WebSocket-over-HTTP and message backends
share.

A :class:`ClientConnection` reads the client's frames (wsproto) into its
:class:`~.session.Session`, carries out the actions the session returns (messages and close
frames to the client, subscriptions, timers) and is the hub's subscriber for the
connection: a publish is a plain call that writes frames without waiting. How the
session's requests reach the backend is up to the subclass: HTTP requests
(:class:`~.transport.WohConnection`) or the messages of a connector's WebSocket session
(:class:`~.messages.MessageConnection`).
"""

from __future__ import annotations

import random
import uuid
from abc import ABC, abstractmethod
from functools import partial
from typing import TYPE_CHECKING, ClassVar, Final

import anyio
import h11
import structlog
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason

from p8core import PublishItem
from p8core.proxy.headers import request_headers
from p8core.proxy.routes import Route, rewrite_path
from p8core.server.connection import ClientRequest, HttpConnection

from .control import grip_extension
from .format import WsMessage
from .handshake import Handshake, negotiate, switching_headers
from .session import (
    CHANNEL_REFUSED,
    SUBSCRIPTION_REFUSED,
    Accept,
    Action,
    ArmTimer,
    CancelTimer,
    CloseClient,
    DropClient,
    Finished,
    Join,
    Leave,
    Note,
    Reject,
    SendMessage,
    SendRequest,
    Session,
    SessionSettings,
)
from .settings import WsSettings

if TYPE_CHECKING:
    from p8core.app import App

log = structlog.get_logger(component="ws_over_http")

FORMAT: Final = "ws-message"
FRAME_SIZE: Final = 16_384
"""Messages relayed from a backend are split into frames of at most this many bytes."""
QUEUE_HIGH: Final = 1_000_000
"""Client message bytes waiting for the backend before the client is read no further."""
BAD_GATEWAY_BODY: Final = b"Error while proxying to origin.\n"
# Client headers never forwarded as they are (§2): the proxy sets its own.
_DROP_CLIENT_HEADERS: Final = frozenset({b"accept", b"connection-id", b"content-type",
                                         b"content-length", b"sec-websocket-extensions"})


def target_path(route: Route, request: ClientRequest) -> bytes:
    """The path and query a backend is asked for, after the route's rewriting."""
    path, _, query = request.target.decode("latin-1").partition("?")
    return (rewrite_path(route, path) + (f"?{query}" if query else "")).encode("latin-1")


def forwarded_headers(app: App, request: ClientRequest, route: Route, *, trusted: bool,
                      drop: frozenset[bytes], drop_meta: bool,
                      added: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The client's handshake headers as a backend sees them (``grip.md`` §2.2), without
    ``drop``, and without ``Meta-*`` when ``drop_meta``."""
    kept = [(n, v) for n, v in request.headers
            if n not in drop and not (drop_meta and n.startswith(b"meta-"))]
    return request_headers(kept, trusted=trusted, overrides=route.headers,
                           host=route.as_host.encode() if route.as_host else None,
                           peer=request.peer, secure=request.ssl, websocket=True,
                           forwarding=app.config.proxy, added=added)


class ClientConnection(ABC):
    """One proxied client WebSocket, run by its :class:`~.session.Session`; the hub's
    subscriber for it. Subclasses carry the session's requests to their kind of backend.
    """

    __slots__ = ("app", "cid", "conn", "decided", "deflate", "grip", "handshake", "headers",
                 "joined", "log", "path", "room", "route", "session", "settings", "target",
                 "timers", "ws")

    format: Final = FORMAT
    pushes: ClassVar[bool] = False
    """The backend sends events on its own (:attr:`.session.SessionSettings.pushes`)."""

    def __init__(self, app: App, settings: WsSettings, conn: HttpConnection,
                 request: ClientRequest, route: Route, handshake: Handshake) -> None:
        self.app, self.conn = app, conn
        self.route, self.handshake = route, handshake
        self.settings = settings
        self.cid = str(uuid.uuid4())
        trusted = not route.no_grip and app.proxy.is_trusted(request)
        self.grip = not route.no_grip and not trusted
        self.session = Session(SessionSettings(
            grip=self.grip, channel_prefix=route.prefix, implicit_channels=route.sub,
            max_subscriptions=app.config.pubsub.connection_subscription_max,
            max_channel_name=app.config.pubsub.max_channel_name, wildcard=route.wildcard,
            one_event=route.one_event, max_batch=settings.max_batch,
            retries=settings.retries, retry_delay=settings.retry_delay,
            jitter=settings.jitter, keep_alive_min=settings.keep_alive_min,
            close_timeout=settings.close_timeout, pushes=self.pushes), random.random)
        if self.grip:
            extensions = [(b"sec-websocket-extensions", b"grip")]
        else:
            # The extension of a trusted client (an upstream proxy) passes through.
            offered = grip_extension([e.encode("latin-1") for e in handshake.extensions])
            extensions = ([(b"sec-websocket-extensions", offered[1].encode("latin-1"))]
                          if offered else [])
        self.headers = forwarded_headers(app, request, route, trusted=trusted,
                                         drop=_DROP_CLIENT_HEADERS, drop_meta=True,
                                         added=extensions)
        """The headers of every request to the backend (``Grip-Sig`` aside)."""
        self.path = target_path(route, request)
        self.target = route.targets[0]
        self.ws: Connection | None = None
        self.deflate = False
        self.joined: set[str] = set()
        self.timers: set[str] = set()
        self.decided = anyio.Event()
        self.room: anyio.Event | None = None
        self.log = log.bind(cid=self.cid, peer=request.peer, route=route.route_id)

    # ---- the connection's life ------------------------------------------------------------

    async def run(self) -> None:
        """Ask the backend, then read the client until the connection ends."""
        self.conn.on_gone = self._client_gone
        self.conn.on_shutdown = self._server_stopping
        self.log.debug("ws_requested", path=self.path.decode("latin-1"))
        self._do(self.session.start())
        await self.decided.wait()
        if self.ws is None:
            return
        try:
            await self._read(self.ws)
        finally:
            if not self.session.finished:
                self._do(self.session.on_client_gone())

    async def _read(self, ws: Connection) -> None:
        parts: list[bytes] = []
        size = 0
        conn = self.conn
        while not self.session.finished:
            for event in ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    data = (event.data.encode() if isinstance(event, TextMessage)
                            else bytes(event.data))
                    size += len(data)
                    if size > self.settings.max_message:
                        self.app.metrics.rejected_ws_message_too_large += 1
                        self._do(self.session.on_client_error(1009, "message too big"))
                        return
                    parts.append(data)
                    if event.message_finished:
                        kind = "text" if isinstance(event, TextMessage) else "binary"
                        message = parts[0] if len(parts) == 1 else b"".join(parts)
                        parts, size = [], 0
                        self._do(self.session.on_message(kind, message))
                else:
                    self._client_event(ws, event)
            if self.session.finished or ws.state is ConnectionState.CLOSED:
                return
            while self.session.queued_bytes > QUEUE_HIGH and not self._over:
                self.room = anyio.Event()
                await self.room.wait()
            data = await conn.receive()
            if _closed(ws):
                return
            ws.receive_data(data or None)

    def _client_event(self, ws: Connection, event: Event) -> None:
        if isinstance(event, Ping):
            self._do(self.session.on_message("ping", bytes(event.payload)))
        elif isinstance(event, Pong):
            self._do(self.session.on_message("pong", bytes(event.payload)))
        elif isinstance(event, CloseConnection):
            if event.code == CloseReason.ABNORMAL_CLOSURE:
                self._do(self.session.on_client_gone())
            elif ws.state is ConnectionState.OPEN:
                # wsproto reports a protocol error as a close it did not receive.
                self._do(self.session.on_client_error(event.code, event.reason or ""))
            else:
                code = None if event.code == CloseReason.NO_STATUS_RCVD else int(event.code)
                self._do(self.session.on_client_close(code, event.reason or ""))

    def _client_gone(self) -> None:
        self.decided.set()
        self._do(self.session.on_client_gone())

    def _server_stopping(self) -> None:
        """p8 is stopping: the client gets a close frame 1001 (going away)."""
        ws = self.ws
        if ws is not None and ws.state is ConnectionState.OPEN:
            self.conn.write(ws.send(CloseConnection(code=CloseReason.GOING_AWAY,
                                                    reason="server shutting down")))

    def deliver(self, item: PublishItem) -> None:
        """A publish for one of this connection's channels (called by the hub)."""
        msg = item.formats.get(FORMAT)
        if not isinstance(msg, WsMessage):
            return
        self._do(self.session.on_publish(item.channel, item.meta, msg))
        conn = self.conn
        if conn.unsent > self.app.config.server.write_buffer_max and not conn.closed:
            self.app.metrics.slow_clients_closed += 1
            self.log.warning("slow_client_closed", unsent=conn.unsent)
            conn.abort()

    def refresh(self) -> None:
        self._do(self.session.refresh())

    # ---- actions --------------------------------------------------------------------------

    def _do(self, actions: list[Action]) -> None:
        """Carry out the session's actions, in order; a failure ends this connection only."""
        try:
            for action in actions:
                self._action(action)
        except Exception:
            self._crashed("ws_failed")
        room = self.room
        if room is not None and (self.session.queued_bytes <= QUEUE_HIGH or self._over):
            self.room = None
            room.set()

    @property
    def _over(self) -> bool:
        """Nothing more will be read from the client."""
        return self.session.finished or self.conn.closed or not self.session.client_open

    def _action(self, action: Action) -> None:
        if isinstance(action, SendMessage):
            self._send_message(action)
        elif isinstance(action, SendRequest):
            self.app.spawn(self._request, action)
        elif isinstance(action, ArmTimer):
            self.timers.add(action.key)
            self.app.timers.arm((self, action.key), action.seconds,
                                partial(self._timer, action.key))
        elif isinstance(action, CancelTimer):
            if action.key in self.timers:
                self.timers.discard(action.key)
                self.app.timers.cancel((self, action.key))
        elif isinstance(action, CloseClient):
            self._close_client(action)
        elif isinstance(action, Join):
            self.joined.add(action.channel)
            self.app.hub.subscribe(action.channel, self, self.app.clock(),
                                   wildcard=self.route.wildcard)
        elif isinstance(action, Leave):
            self.joined.discard(action.channel)
            self.app.hub.unsubscribe(action.channel, self, self.app.clock(),
                                     wildcard=self.route.wildcard)
        elif isinstance(action, Accept):
            self._accept(action)
        elif isinstance(action, Reject):
            self._reject(action)
        elif isinstance(action, DropClient):
            self.conn.abort()
        elif isinstance(action, Note):
            if action.event == SUBSCRIPTION_REFUSED:
                self.app.metrics.rejected_subscriptions += 1
            elif action.event == CHANNEL_REFUSED:
                self.app.metrics.rejected_channel_name += 1
            if action.warning:
                self.log.warning(action.event, detail=action.detail)
            else:
                self.log.debug(action.event, detail=action.detail)
        elif isinstance(action, Finished):
            self._cleanup()
        else:  # pragma: no cover
            raise TypeError(f"unknown action {action!r}")

    def _timer(self, key: str) -> None:
        self.timers.discard(key)
        self._do(self.session.on_timer(key))

    def _accept(self, action: Accept) -> None:
        conn = self.conn
        if conn.closed:
            return
        extensions, header = negotiate(self.handshake.extensions, self.settings.compression)
        head = switching_headers(self.handshake.key, header) + list(action.headers)
        conn.write(conn.h11.send(h11.InformationalResponse(
            status_code=101, headers=head, reason=b"Switching Protocols")))
        self.deflate = bool(extensions)
        self.ws = Connection(ConnectionType.SERVER, extensions, conn.h11.trailing_data[0])
        self.log.debug("ws_opened", deflate=self.deflate)
        self.decided.set()

    def _reject(self, action: Reject) -> None:
        conn = self.conn
        self.decided.set()
        if conn.closed:
            return
        status, headers, reason = action.status, list(action.headers), action.reason
        if status < 200 or status in (204, 304):
            status, headers, reason = 502, [(b"content-type", b"text/plain")], b""
            body = BAD_GATEWAY_BODY
        else:
            body = action.body
        self.log.info("ws_rejected", status=status)
        conn.respond(status, body, [*headers, (b"connection", b"close")], reason)
        conn.close()

    def _send_message(self, action: SendMessage) -> None:
        ws = self.ws
        if ws is None or ws.state is not ConnectionState.OPEN:
            return
        if action.frame is not None and not self.deflate:
            self.conn.write(action.frame)
        else:
            self.conn.write(_encode(ws, action.kind, action.data))

    def _close_client(self, action: CloseClient) -> None:
        ws = self.ws
        if ws is None:
            self.conn.abort()
            return
        if ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            code: int = CloseReason.NO_STATUS_RCVD
            reason: str | None = None
            if action.code is not None and _sendable(action.code):
                code, reason = action.code, action.reason
            self.conn.write(ws.send(CloseConnection(code=code, reason=reason)))
        if ws.state is ConnectionState.CLOSED:
            self.conn.close()

    def _cleanup(self) -> None:
        """The session is over: leave the hub and the timer wheel, close the connection."""
        app = self.app
        now = app.clock()
        for channel in self.joined:
            app.hub.unsubscribe(channel, self, now, wildcard=self.route.wildcard)
        self.joined.clear()
        for key in self.timers:
            app.timers.cancel((self, key))
        self.timers.clear()
        self.conn.on_gone = self.conn.on_shutdown = None
        self.conn.close()
        self.decided.set()
        if self.room is not None:
            self.room.set()
        self.log.debug("ws_finished")

    def _crashed(self, event: str) -> None:
        """A bug broke this connection: log it, drop the client, end the connection."""
        self.log.exception(event)
        self.conn.abort()
        self._cleanup()

    @abstractmethod
    async def _request(self, action: SendRequest) -> None:
        """Carry out ``action`` (in a task of its own) and report the outcome to the
        session."""


def _sendable(code: int) -> bool:
    """Whether a close frame may carry ``code`` (RFC 6455 §7.4)."""
    return 1000 <= code <= 4999 and code not in (1004, 1005, 1006, 1015)


def _closed(ws: Connection) -> bool:
    return ws.state is ConnectionState.CLOSED


def _utf8_pieces(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of at most ``size`` bytes, never inside a UTF-8 sequence."""
    pieces: list[bytes] = []
    pos, n = 0, len(data)
    while pos < n:
        end = min(pos + size, n)
        while end < n and end > pos + 1 and data[end] & 0xC0 == 0x80:
            end -= 1
        pieces.append(data[pos:end])
        pos = end
    return pieces


def _encode(ws: Connection, kind: str, data: bytes) -> bytes:
    """One message for the client; a long one in frames of at most ``FRAME_SIZE`` bytes."""
    if kind == "ping":
        return ws.send(Ping(payload=data[:125]))
    if kind == "pong":
        return ws.send(Pong(payload=data[:125]))
    if len(data) <= FRAME_SIZE:
        pieces = [data]
    elif kind == "text":
        pieces = _utf8_pieces(data, FRAME_SIZE)
    else:
        pieces = [data[i:i + FRAME_SIZE] for i in range(0, len(data), FRAME_SIZE)]
    out = bytearray()
    last = len(pieces) - 1
    for i, piece in enumerate(pieces):
        if kind == "text":
            out += ws.send(TextMessage(data=piece.decode("utf-8", "replace"),
                                       message_finished=i == last))
        else:
            out += ws.send(BytesMessage(data=piece, message_finished=i == last))
    return bytes(out)
