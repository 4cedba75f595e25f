"""The I/O shell: WebSocket clients, proxied as WebSocket-over-HTTP, as messages of a
connector's WebSocket sessions, or relayed to a WebSocket backend.

:class:`WebSocketTransport` claims WebSocket handshakes (and plain requests that carry
WebSocket-over-HTTP events themselves, which an ``over_http`` route refuses). On an
``over_http`` route a :class:`WohConnection` runs the connection; on a route whose target's
connector is a :class:`~p8core.WebSocketConnector` (a ``zhttp+…`` target) a
:class:`~.messages.MessageConnection` does. Both share the client side
(:mod:`.connection`). Other routes get their handshake relayed to the backend over TCP,
and the bytes piped both ways.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import anyio
import h11
import structlog
from anyio.abc import ByteStream, TaskGroup
from wsproto.frame_protocol import FrameProtocol

from p8core import (
    ClientTransport,
    OriginError,
    OriginRequest,
    OriginTimeout,
    WebSocketConnector,
)
from p8core.proxy.headers import response_headers
from p8core.proxy.routes import Route
from p8core.server.connection import ClientRequest, ConnectionGone, HttpConnection

from .connection import BAD_GATEWAY_BODY, ClientConnection, forwarded_headers, target_path
from .events import MEDIA_TYPE
from .handshake import (
    FrameTracker,
    Handshake,
    HandshakeError,
    check_handshake,
    is_upgrade,
    sends_events,
)
from .messages import MessageConnection
from .session import BackendResponse, SendRequest
from .settings import WsSettings

if TYPE_CHECKING:
    from p8core.app import App

log = structlog.get_logger(component="ws_over_http")

REJECT_BODY_MAX: Final = 100_000
RECEIVE_SIZE: Final = 65_536
DIRECT_EVENTS_BODY: Final = b"Client not allowed to send WebSocket events directly.\n"


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
        conn.route = route
        try:
            handshake = check_handshake(request)
        except HandshakeError as e:
            _respond_and_close(conn, e.status, f"{e}\n".encode(), e.headers)
            return False
        if not isinstance(await conn.next_event(), h11.EndOfMessage):
            _respond_and_close(conn, 400, b"a WebSocket handshake has no body\n")
            return False
        if route.over_http:
            woh = WohConnection(app, self.settings, conn, request, route, handshake)
            self.connections[woh.cid] = woh
            try:
                await woh.run()
            finally:
                self.connections.pop(woh.cid, None)
        elif isinstance(app.connector(route.targets[0], route), WebSocketConnector):
            await MessageConnection(app, self.settings, conn, request, route, handshake).run()
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


# ---- WebSocket-over-HTTP ---------------------------------------------------------------------

async def _body(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


class WohConnection(ClientConnection):
    """One client WebSocket proxied as WebSocket-over-HTTP: each of its session's requests
    is a ``POST`` to the backend."""

    __slots__ = ()

    def __init__(self, app: App, settings: WsSettings, conn: HttpConnection,
                 request: ClientRequest, route: Route, handshake: Handshake) -> None:
        super().__init__(app, settings, conn, request, route, handshake)
        self.headers += [(b"accept", MEDIA_TYPE), (b"connection-id", self.cid.encode()),
                         (b"content-type", MEDIA_TYPE)]

    # ---- requests to the backend ----------------------------------------------------------

    async def _request(self, action: SendRequest) -> None:
        """Send one request and hand the answer to the session."""
        try:
            result = await self._exchange(action)
        except Exception:
            self._crashed("ws_request_failed")
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
                with app.telemetry.origin_call("ws-over-http", target) as call:
                    resp = await app.connector(target, route).request(
                        request, timeout=app.config.proxy.backend_timeout)
                    call.status = resp.status
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
    headers = forwarded_headers(app, request, route, trusted=not grip and not route.no_grip,
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
                    method=b"GET", target=target_path(route, request), headers=headers))
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

