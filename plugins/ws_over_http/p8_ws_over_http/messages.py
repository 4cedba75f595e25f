"""Client WebSockets backed by a connector's WebSocket sessions, message by message.

A route whose target's connector is a :class:`~p8core.WebSocketConnector` (``zhttp+…``)
gets a :class:`MessageConnection`: the client's handshake opens a session with the
backend, and messages, pings and closes pass both ways. The session machine is the one
WebSocket-over-HTTP uses, told that the backend pushes: the GRIP extension, the route's
``sub`` channels and publishes work alike, and so do close handshakes and failures.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final

from p8core import (
    BackendWebSocket,
    OriginError,
    OriginRequest,
    OriginResponse,
    OriginTimeout,
    WebSocketConnector,
    WebSocketMessage,
)
from p8core.proxy.routes import Route
from p8core.server.connection import ClientRequest, ConnectionGone, HttpConnection

from .connection import ClientConnection
from .events import WsEvent, close_content, parse_close
from .handshake import Handshake
from .session import BackendResponse, SendRequest
from .settings import WsSettings

if TYPE_CHECKING:
    from p8core.app import App

REJECT_BODY_MAX: Final = 100_000
_EVENT_KINDS: Final = {"TEXT": "text", "BINARY": "binary", "PING": "ping", "PONG": "pong"}
_KIND_EVENTS: Final = {kind: name for name, kind in _EVENT_KINDS.items()}


class MessageConnection(ClientConnection):
    """One client WebSocket carried by a connector's WebSocket session."""

    __slots__ = ("backend", "secure")

    pushes = True

    def __init__(self, app: App, settings: WsSettings, conn: HttpConnection,
                 request: ClientRequest, route: Route, handshake: Handshake) -> None:
        super().__init__(app, settings, conn, request, route, handshake)
        self.headers.append((b"upgrade", b"websocket"))
        self.secure = request.ssl
        self.backend: BackendWebSocket | None = None

    async def _request(self, action: SendRequest) -> None:
        """Open the session (the OPEN), or send the events of one request as messages."""
        if action.opening:
            await self._open()
            return
        backend = self.backend
        assert backend is not None, "events for a session that is not open"
        try:
            for event in action.events:
                if event.type == "DISCONNECT":
                    await backend.aclose()
                else:
                    await backend.send(_message(event))
        except OriginError as e:
            self._do(self.session.on_request_failed(str(e), retryable=False))
        except Exception:
            self._crashed("ws_request_failed")
        else:
            self._do(self.session.on_sent())

    async def _open(self) -> None:
        """Ask the route's targets in turn until one decides; a timeout tries no other."""
        app, route = self.app, self.route
        headers = list(self.headers)
        if self.grip:
            headers += app.proxy.grip_headers(route)
        failure = (502, "no target of the route carries WebSockets")
        for target in route.targets:
            connector = app.connector(target, route)
            if not isinstance(connector, WebSocketConnector):
                continue
            request = OriginRequest(b"GET", self.path, headers, route=route, secure=self.secure)
            try:
                opened = await connector.open_websocket(
                    request, timeout=app.config.proxy.backend_timeout)
            except OriginTimeout as e:
                failure = (e.status_hint, str(e))
                break
            except OriginError as e:
                failure = (e.status_hint, str(e))
                continue
            except Exception:
                self._crashed("ws_open_failed")
                return
            self.target = target
            if isinstance(opened, OriginResponse):
                self._do(self.session.on_refused(await _rejection(opened)))
                return
            self.backend = opened
            self._do(self.session.on_accepted(tuple(opened.headers)))
            self.app.spawn(self._receive, opened)
            return
        self._do(self.session.on_open_failed(*failure))

    async def _receive(self, backend: BackendWebSocket) -> None:
        """Hand the backend's messages to the session until its close or its failure;
        the next is taken once the client's connection has taken the last."""
        try:
            while not self.session.finished:
                message = await backend.receive()
                self._do(self.session.on_backend_events([_event(message)]))
                if message.kind == "close":
                    return
                with contextlib.suppress(ConnectionGone):
                    await self.conn.drain()
        except OriginError as e:
            self._do(self.session.on_backend_failed(str(e)))
        except Exception:
            self._crashed("ws_backend_failed")

    def _cleanup(self) -> None:
        super()._cleanup()
        if self.backend is not None:
            self.app.spawn(self.backend.aclose)


async def _rejection(resp: OriginResponse) -> BackendResponse:
    """The response that refused a handshake, with up to :data:`REJECT_BODY_MAX` of body."""
    try:
        body = await resp.read(REJECT_BODY_MAX)
    except OriginError:
        body = b""
    finally:
        await resp.aclose()
    if body is None:
        body = resp.prefix[:REJECT_BODY_MAX]
    return BackendResponse(resp.status, resp.reason, tuple(resp.headers), body)


def _message(event: WsEvent) -> WebSocketMessage:
    """A client's event as the backend gets it."""
    if event.type == "CLOSE":
        code, _ = parse_close(event.content)
        return WebSocketMessage("close", event.content[2:], code)
    return WebSocketMessage(_EVENT_KINDS[event.type], event.content)


def _event(message: WebSocketMessage) -> WsEvent:
    """A backend's message as the session takes it; a close code that does not fit in
    two bytes counts as none."""
    if message.kind == "close":
        code = message.code if message.code is not None and 0 <= message.code <= 0xFFFF else None
        return WsEvent("CLOSE", close_content(code, message.data))
    return WsEvent(_KIND_EVENTS[message.kind], message.data)
