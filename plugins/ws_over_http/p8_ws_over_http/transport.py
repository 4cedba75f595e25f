"""The I/O shell: WebSocket clients, proxied as WebSocket-over-HTTP or relayed to a
WebSocket backend.

:class:`WebSocketTransport` claims WebSocket handshakes (and plain requests that carry
WebSocket-over-HTTP events themselves, which an ``over_http`` route refuses). On an
``over_http`` route a :class:`WohConnection` runs the connection: it feeds the client's
frames (wsproto) and the backend's answers into its :class:`~.session.Session` and carries
out the actions it returns. It is also the hub's subscriber for the connection: a publish
is a plain call that writes frames without waiting. Other routes get their handshake
relayed to the backend over TCP, and the bytes piped both ways.
"""

from __future__ import annotations

import contextlib
import random
import ssl
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import anyio
import h11
import structlog
from anyio.abc import ByteStream, TaskGroup
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason, FrameProtocol

from p8core import ClientTransport, OriginError, OriginRequest, OriginTimeout, PublishItem
from p8core.proxy.headers import request_headers, response_headers
from p8core.proxy.routes import Route, rewrite_path
from p8core.server.connection import ClientRequest, ConnectionGone, HttpConnection

from .control import grip_extension
from .events import MEDIA_TYPE
from .format import WsMessage
from .handshake import (
    FrameTracker,
    Handshake,
    HandshakeError,
    check_handshake,
    is_upgrade,
    negotiate,
    sends_events,
    switching_headers,
)
from .session import (
    Accept,
    Action,
    ArmTimer,
    BackendResponse,
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
REJECT_BODY_MAX: Final = 100_000
RECEIVE_SIZE: Final = 65_536
DIRECT_EVENTS_BODY: Final = b"Client not allowed to send WebSocket events directly.\n"
BAD_GATEWAY_BODY: Final = b"Error while proxying to origin.\n"
# Client headers never forwarded as they are (§2): the proxy sets its own.
_DROP_CLIENT_HEADERS: Final = frozenset({b"accept", b"connection-id", b"content-type",
                                         b"content-length", b"sec-websocket-extensions"})


class WebSocketTransport(ClientTransport):
    """Serves WebSocket clients; one instance per app."""

    name = "websocket"

    def __init__(self, settings: WsSettings) -> None:
        self.settings = settings
        self.connections: dict[str, WohConnection] = {}
        """Open WebSocket-over-HTTP connections by Connection-Id."""

    def claims(self, request: ClientRequest) -> bool:
        return is_upgrade(request) or sends_events(request)

    async def serve(self, app: App, conn: HttpConnection, request: ClientRequest) -> bool:
        if not is_upgrade(request):
            return await self._direct_events(app, conn, request)
        route = app.router.match(request.host, request.path, websocket=True, ssl=request.ssl)
        if route is None:
            _respond_and_close(conn, 502, f"No route for host: {request.host}\n".encode())
            return False
        try:
            handshake = check_handshake(request)
        except HandshakeError as e:
            _respond_and_close(conn, e.status, f"{e}\n".encode(), e.headers)
            return False
        if not isinstance(await conn.next_event(), h11.EndOfMessage):
            _respond_and_close(conn, 400, b"a WebSocket handshake has no body\n")
            return False
        if route.over_http:
            woh = WohConnection(app, self, conn, request, route, handshake)
            self.connections[woh.cid] = woh
            try:
                await woh.run()
            finally:
                self.connections.pop(woh.cid, None)
        else:
            await relay(app, conn, request, route)
        return False

    def refresh(self, *, cid: str | None = None, channel: str | None = None) -> int:
        """Make connections send a request to their backend now (the ``refresh`` command):
        the one with Connection-Id ``cid``, or those subscribed to ``channel``.

        :returns: how many connections were asked.
        """
        if cid is not None:
            targets = [c for c in (self.connections.get(cid),) if c is not None]
        else:
            targets = [c for c in self.connections.values() if channel in c.joined]
        for woh in targets:
            woh.refresh()
        return len(targets)

    async def _direct_events(self, app: App, conn: HttpConnection,
                             request: ClientRequest) -> bool:
        """A plain request with WebSocket-over-HTTP events: refused on ``over_http`` routes
        unless the client is a trusted proxy, else proxied as usual."""
        route = app.router.match(request.host, request.path, websocket=False, ssl=request.ssl)
        if route is not None and route.over_http and not app.proxy.is_trusted(request):
            conn.respond(403, DIRECT_EVENTS_BODY)
            log.info("direct_events_refused", path=request.path, peer=request.peer)
            return True
        return await app.proxy.handle(conn, request)


def _respond_and_close(conn: HttpConnection, status: int, body: bytes,
                       headers: list[tuple[bytes, bytes]] | None = None) -> None:
    conn.respond(status, body, [(b"content-type", b"text/plain"), *(headers or []),
                                (b"connection", b"close")])
    conn.close()


def _target_path(route: Route, request: ClientRequest) -> bytes:
    path, _, query = request.target.decode("latin-1").partition("?")
    return (rewrite_path(route, path) + (f"?{query}" if query else "")).encode("latin-1")


def _forwarded_headers(app: App, request: ClientRequest, route: Route, *, trusted: bool,
                       drop: frozenset[bytes], drop_meta: bool,
                       added: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The client's handshake headers as a backend sees them (``grip.md`` §2.2), without
    ``drop``, and without ``Meta-*`` when ``drop_meta``."""
    kept = [(n, v) for n, v in request.headers
            if n not in drop and not (drop_meta and n.startswith(b"meta-"))]
    return request_headers(kept, trusted=trusted, overrides=route.headers,
                           host=route.as_host.encode() if route.as_host else None,
                           peer=request.peer, xff_rules=app.config.proxy.x_forwarded_for,
                           added=added)


# ---- WebSocket-over-HTTP ---------------------------------------------------------------------

async def _body(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


class WohConnection:
    """One client WebSocket proxied as WebSocket-over-HTTP; the hub's subscriber for it."""

    __slots__ = ("app", "cid", "conn", "decided", "deflate", "grip", "handshake", "headers",
                 "joined", "log", "path", "room", "route", "session", "settings", "target",
                 "timers", "transport", "ws")

    format: Final = FORMAT

    def __init__(self, app: App, transport: WebSocketTransport, conn: HttpConnection,
                 request: ClientRequest, route: Route, handshake: Handshake) -> None:
        self.app, self.transport, self.conn = app, transport, conn
        self.route, self.handshake = route, handshake
        self.settings = settings = transport.settings
        self.cid = str(uuid.uuid4())
        trusted = not route.no_grip and app.proxy.is_trusted(request)
        self.grip = not route.no_grip and not trusted
        self.session = Session(SessionSettings(
            grip=self.grip, channel_prefix=route.prefix, implicit_channels=route.sub,
            max_subscriptions=app.config.pubsub.connection_subscription_max,
            one_event=route.one_event, max_batch=settings.max_batch,
            retries=settings.retries, retry_delay=settings.retry_delay,
            jitter=settings.jitter, keep_alive_min=settings.keep_alive_min,
            close_timeout=settings.close_timeout), random.random)
        if self.grip:
            extensions = [(b"sec-websocket-extensions", b"grip")]
        else:
            # The extension of a trusted client (an upstream proxy) passes through.
            offered = grip_extension([e.encode("latin-1") for e in handshake.extensions])
            extensions = ([(b"sec-websocket-extensions", offered[1].encode("latin-1"))]
                          if offered else [])
        self.headers = _forwarded_headers(app, request, route, trusted=trusted,
                                          drop=_DROP_CLIENT_HEADERS, drop_meta=True,
                                          added=extensions)
        self.headers += [(b"accept", MEDIA_TYPE), (b"connection-id", self.cid.encode()),
                         (b"content-type", MEDIA_TYPE)]
        self.path = _target_path(route, request)
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
            self.log.exception("ws_failed")
            self.conn.abort()
            self._cleanup()
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
            self.app.hub.subscribe(action.channel, self, self.app.clock())
        elif isinstance(action, Leave):
            self.joined.discard(action.channel)
            self.app.hub.unsubscribe(action.channel, self, self.app.clock())
        elif isinstance(action, Accept):
            self._accept(action)
        elif isinstance(action, Reject):
            self._reject(action)
        elif isinstance(action, DropClient):
            self.conn.abort()
        elif isinstance(action, Note):
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
            app.hub.unsubscribe(channel, self, now)
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

    # ---- requests to the backend ----------------------------------------------------------

    async def _request(self, action: SendRequest) -> None:
        """Send one request and hand the answer to the session."""
        try:
            result = await self._exchange(action)
        except Exception:
            self.log.exception("ws_request_failed")
            self.conn.abort()
            self._cleanup()
            return
        if isinstance(result, BackendResponse):
            self._do(self.session.on_response(result))
        else:
            reason, retryable = result
            self._do(self.session.on_request_failed(reason, retryable=retryable))

    async def _exchange(self, action: SendRequest) -> BackendResponse | tuple[str, bool]:
        app, route = self.app, self.route
        # What the backend said last goes to the client before the backend is asked again.
        with contextlib.suppress(ConnectionGone):
            await self.conn.drain()
        headers = list(self.headers)
        if self.grip:
            headers += app.proxy.grip_headers(route)
        headers += action.meta
        targets = route.targets if action.opening else (self.target,)
        for i, target in enumerate(targets):
            request = OriginRequest(b"POST", self.path, headers, _body(action.body),
                                    len(action.body), route)
            try:
                resp = await app.connector(target, route).request(
                    request, timeout=app.config.proxy.backend_timeout)
            except OriginTimeout as e:
                return str(e), False
            except OriginError as e:
                if i + 1 < len(targets):
                    continue
                return str(e), True
            self.target = target
            try:
                body = await resp.read(self.settings.max_response_body)
                complete = body is not None
                if body is None:
                    body = resp.prefix
            except OriginError as e:
                return str(e), False
            finally:
                await resp.aclose()
            return BackendResponse(resp.status, resp.reason, tuple(resp.headers), body,
                                   complete)
        raise AssertionError("a route has at least one target")


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


# ---- WebSocket backends (no over_http) -----------------------------------------------------

async def relay(app: App, conn: HttpConnection, request: ClientRequest, route: Route) -> None:
    """Relay the handshake to the route's backend over TCP and pipe the bytes both ways.

    The client's extensions go to the backend untouched, since the frames pass through
    as they are. A backend that goes away between frames leaves the client a close frame
    with code 1011.
    """
    bound = log.bind(peer=request.peer, route=route.route_id)
    grip = not route.no_grip and not app.proxy.is_trusted(request)
    added = app.proxy.grip_headers(route) if grip else []
    headers = _forwarded_headers(app, request, route, trusted=not grip and not route.no_grip,
                                 drop=frozenset({b"content-length", b"connection-id"}),
                                 drop_meta=False, added=added)
    headers += [(b"upgrade", b"websocket"), (b"connection", b"Upgrade")]
    timeout = app.config.proxy.backend_timeout
    stream: ByteStream | None = None
    for target in route.targets:
        try:
            with anyio.fail_after(timeout):
                stream = await _connect(target, route.insecure)
            break
        except (OSError, TimeoutError, ValueError, anyio.BrokenResourceError) as e:
            bound.warning("ws_backend_unreachable", target=target, reason=str(e))
    if stream is None:
        _respond_and_close(conn, 502, BAD_GATEWAY_BODY)
        return
    async with stream:
        backend = h11.Connection(h11.CLIENT)
        try:
            with anyio.fail_after(timeout):
                await stream.send(backend.send(h11.Request(
                    method=b"GET", target=_target_path(route, request), headers=headers))
                    + (backend.send(h11.EndOfMessage()) or b""))
                head = await _response_head(backend, stream)
        except (OSError, TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError,
                h11.ProtocolError) as e:
            bound.warning("ws_backend_failed", reason=str(e) or type(e).__name__)
            _respond_and_close(conn, 502, BAD_GATEWAY_BODY)
            return
        if head.status_code != 101:
            body = await _rejection_body(backend, stream)
            kept = [(n, v) for n, v in response_headers(head.headers.raw_items())
                    if n != b"content-length"]
            conn.respond(head.status_code, body, [*kept, (b"connection", b"close")],
                         head.reason)
            conn.close()
            bound.info("ws_rejected", status=head.status_code)
            return
        conn.write(conn.h11.send(h11.InformationalResponse(
            status_code=101, headers=head.headers.raw_items(), reason=head.reason)))
        bound.debug("ws_relayed")
        await _pipe(conn, stream, conn.h11.trailing_data[0], backend.trailing_data[0])


async def _connect(target: str, insecure: bool) -> ByteStream:
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"WebSockets cannot be used with target {target!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "http":
        return await anyio.connect_tcp(parts.hostname, port)
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return await anyio.connect_tcp(parts.hostname, port, tls=True, ssl_context=context,
                                   tls_hostname=parts.hostname)


async def _response_head(backend: h11.Connection,
                         stream: ByteStream) -> h11.Response | h11.InformationalResponse:
    while True:
        event = backend.next_event()
        if event is h11.NEED_DATA:
            backend.receive_data(await stream.receive(RECEIVE_SIZE))
        elif isinstance(event, h11.Response) or (
                isinstance(event, h11.InformationalResponse) and event.status_code == 101):
            return event
        elif not isinstance(event, h11.InformationalResponse):
            raise anyio.EndOfStream


async def _rejection_body(backend: h11.Connection, stream: ByteStream) -> bytes:
    body = bytearray()
    try:
        while len(body) < REJECT_BODY_MAX:
            event = backend.next_event()
            if event is h11.NEED_DATA:
                backend.receive_data(await stream.receive(RECEIVE_SIZE))
            elif isinstance(event, h11.Data):
                body += event.data
            else:
                break
    except (OSError, anyio.EndOfStream, anyio.BrokenResourceError, h11.ProtocolError):
        pass
    return bytes(body[:REJECT_BODY_MAX])


async def _pipe(conn: HttpConnection, stream: ByteStream, to_backend: bytes,
                to_client: bytes) -> None:
    frames = FrameTracker()

    async def upstream(tg: TaskGroup) -> None:
        try:
            if to_backend:
                await stream.send(to_backend)
            while data := await conn.receive():
                await stream.send(data)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        tg.cancel_scope.cancel()

    async def downstream(tg: TaskGroup) -> None:
        try:
            if to_client:
                frames.feed(to_client)
                conn.write(to_client)
            while True:
                data = await stream.receive(RECEIVE_SIZE)
                frames.feed(data)
                conn.write(data)
                await conn.drain()
        except (anyio.EndOfStream, OSError, anyio.BrokenResourceError, ConnectionGone):
            pass
        if not frames.closed and frames.at_boundary and not conn.closed:
            conn.write(bytes(FrameProtocol(client=False, extensions=[]).close(1011)))
        tg.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(upstream, tg)
            tg.start_soon(downstream, tg)
    finally:
        conn.close()

