"""``zhttp+tcp://…`` targets: streamed sessions over PUSH, ROUTER and SUB (``zhttp.md`` §4).

p8 binds three sockets: PUSH (the first packet of each session, shared among handlers),
ROUTER (later packets, to the handler that took the session) and SUB (every packet from
handlers, addressed to p8's instance address). Each request is an
:class:`~.session.HttpSession`, each client WebSocket a :class:`~.wssession.WsSession`;
this module only moves their packets, bytes and messages. Bodies and messages stream both
ways under credits, so neither side holds more than a window of the other's.
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

import anyio
import zmq
import zmq.asyncio
from anyio.abc import TaskGroup

from p8core import (
    BackendWebSocket,
    BufferedResponse,
    OriginError,
    OriginRequest,
    OriginResponse,
    WebSocketConnector,
    WebSocketMessage,
)

from .base import Socket, ZmqConnector, log
from .packets import Packet, PacketError, decode, encode, split_address
from .session import (
    Accepted,
    Action,
    Body,
    End,
    Failed,
    Head,
    HttpSession,
    Message,
    Rejected,
    Send,
    StreamSession,
)
from .targets import client_headers, mentioned_id, request_headers, request_uri, stream_endpoints
from .wssession import WsSession

FIRST_BODY_MAX: Final = 200_000
"""The most request body the first packet carries; the rest waits for the handler's credits."""
PART_MAX: Final = 65_536
"""The most request body one later packet carries."""
TICK_SECONDS: Final = 5.0
"""How often sessions are checked for keep-alives and expiry."""


class Exchange(ABC):
    """A session in progress, as its connector sees it: the packets waiting for the
    handler, and the tasks waiting for the session to change."""

    def __init__(self, connector: StreamConnector, session: StreamSession) -> None:
        self.connector, self.session = connector, session
        self.error: str | None = None
        self.ended = False
        self.backlog: deque[Packet] = deque()
        """Packets waiting for the handler's ROUTER connection, in order."""
        self._waiters: list[anyio.Event] = []

    @property
    @abstractmethod
    def answered(self) -> bool:
        """The handler answered the first packet (a response head, a decision)."""

    def take(self, actions: Sequence[Action]) -> list[Packet]:
        """Apply the session's actions; returns the packets to send."""
        sends: list[Packet] = []
        for action in actions:
            if isinstance(action, Send):
                sends.append(action.packet)
            elif isinstance(action, End):
                self.ended = True
            elif isinstance(action, Failed):
                self.fail(action.reason)
            else:
                self._apply(action)
        self._wake()
        return sends

    @abstractmethod
    def _apply(self, action: Action) -> None:
        """Apply an action particular to this kind of session."""

    def fail(self, reason: str) -> None:
        """The exchange is over before its end."""
        if self.error is None and not self.ended:
            self.error = reason
        self._wake()

    async def until(self, ready: Callable[[], bool]) -> None:
        """Wait until ``ready()``; re-checked whenever the session changes."""
        while not ready():
            event = anyio.Event()
            self._waiters.append(event)
            await event.wait()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for event in waiters:
            event.set()

    @abstractmethod
    async def aclose(self) -> None:
        """End the exchange, cancelling the session if it is still open."""

    async def _cancel(self) -> None:
        """Cancel the session if it is still open, and forget it."""
        await self.connector.act(self, self.session.cancel())
        self.connector.forget(self)


class StreamResponse(Exchange, OriginResponse):
    """One streamed HTTP exchange: the response body received, the upload."""

    session: HttpSession

    def __init__(self, connector: StreamConnector, session: HttpSession) -> None:
        super().__init__(connector, session)
        self.status, self.reason = 0, b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.has_head = False
        self._parts: deque[bytes] = deque()
        self._upload: anyio.CancelScope | None = None
        self._uploading = False
        self._uploaded = anyio.Event()

    @property
    def answered(self) -> bool:
        return self.has_head

    def _apply(self, action: Action) -> None:
        if isinstance(action, Body):
            self._parts.append(action.data)
        elif isinstance(action, Head):
            head = action.head
            self.status, self.reason = head.code, head.reason
            self.headers = client_headers(head, action.length)
            self.content_length = action.length
            self.has_head = True

    def start_upload(self, tg: TaskGroup, body: AsyncIterator[bytes], pending: bytes,
                     length: int | None, sent: int) -> None:
        """Send the rest of the request body, in a task, as the handler grants credits."""
        self._upload = anyio.CancelScope()
        tg.start_soon(self.connector.upload, self, self._upload, body, pending, length, sent)

    def upload_begins(self) -> bool:
        """Called first by the upload task: False when the upload was stopped before."""
        if self._upload is None or self._upload.cancel_called:
            return False
        self._uploading = True
        return True

    def uploaded(self) -> None:
        self._uploaded.set()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives, granting the handler credits for what was taken."""
        while True:
            if self._parts:
                data = self._parts.popleft()
                yield data
                await self.connector.act(self, self.session.consumed(len(data),
                                                                     time.monotonic()))
            elif self.error is not None:
                raise OriginError(f"the zhttp handler at {self.connector.target} broke off "
                                  f"the response: {self.error}")
            elif self.ended:
                return
            else:
                await self.until(lambda: bool(self._parts) or self.ended
                                 or self.error is not None)

    async def aclose(self) -> None:
        """Cancel the session if it is still open; stop the upload and wait for it."""
        await self._cancel()
        if self._upload is not None:
            self._upload.cancel()
            # Once begun, the upload reads the client's body: it must be over before the
            # connection reads again. One that never began reads nothing.
            if self._uploading:
                await self._uploaded.wait()


class WsExchange(Exchange, BackendWebSocket):
    """One client WebSocket carried to a handler: the decision, then messages."""

    session: WsSession

    def __init__(self, connector: StreamConnector, session: WsSession) -> None:
        super().__init__(connector, session)
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.accepted = False
        self.rejection: BufferedResponse | None = None
        self._messages: deque[Message] = deque()

    @property
    def answered(self) -> bool:
        return self.accepted or self.rejection is not None

    def _apply(self, action: Action) -> None:
        if isinstance(action, Message):
            self._messages.append(action)
        elif isinstance(action, Accepted):
            self.headers, self.reason = list(action.head.headers), action.head.reason
            self.accepted = True
        elif isinstance(action, Rejected):
            head = action.head
            self.rejection = BufferedResponse(head.code, client_headers(head, len(action.body)),
                                              action.body, head.reason)

    async def send(self, message: WebSocketMessage) -> None:
        """Send ``message``; a text or binary one in fragments of at most the credits the
        handler granted, waiting for more as needed."""
        session, connector = self.session, self.connector
        if message.kind not in ("text", "binary"):
            self._check_open()
            await connector.act(self, [session.send(message, time.monotonic())])
            return
        data, offset = message.data, 0
        while True:
            if offset < len(data):
                await self.until(lambda: not session.sending or session.send_credits > 0)
            self._check_open()
            size = min(len(data) - offset, session.send_credits, PART_MAX)
            piece = WebSocketMessage(message.kind, data[offset:offset + size])
            offset += size
            more = offset < len(data)
            await connector.act(self, [session.send(piece, time.monotonic(), more=more)])
            if not more:
                return

    def _check_open(self) -> None:
        if not self.session.sending:
            raise OriginError(f"the WebSocket session with the zhttp handler at "
                              f"{self.connector.target} is over: "
                              f"{self.error or 'closed'}")

    async def receive(self) -> WebSocketMessage:
        """The handler's next message, granting it credits for it once taken."""
        await self.until(lambda: bool(self._messages) or self.ended
                         or self.error is not None)
        if not self._messages:
            raise OriginError(f"the zhttp handler at {self.connector.target} broke off the "
                              f"WebSocket session: {self.error or 'it is over'}")
        taken = self._messages.popleft()
        if taken.size:
            await self.connector.act(self, self.session.consumed(taken.size, time.monotonic()))
        return taken.message

    async def aclose(self) -> None:
        """Cancel the session if it is still open; a task waiting in :meth:`receive` gets
        an :class:`OriginError`."""
        await self._cancel()
        self.fail("the session was closed")


class StreamConnector(ZmqConnector, WebSocketConnector):
    """Streams requests to one ``zhttp+tcp://HOST:PORT`` (or ``+ipc://PATH``) target."""

    schemes = ("zhttp+tcp", "zhttp+ipc")

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.push_spec, self.router_spec, self.sub_spec = stream_endpoints(self.spec)
        self._push: Socket | None = None
        self._router: Socket | None = None
        self._sub: Socket | None = None
        self._exchanges: dict[bytes, Exchange] = {}

    def endpoints(self) -> list[str]:
        return [self.push_spec, self.router_spec, self.sub_spec]

    def _bind(self, ctx: zmq.asyncio.Context) -> None:
        # Unlimited queues: what p8 sends is bounded by credits and by the requests it
        # serves, and a full queue would otherwise drop a packet and break a session.
        self._push = self._socket(ctx, zmq.PUSH, self.push_spec, {zmq.SNDHWM: 0})
        # A send to a handler address that is not connected fails instead of vanishing.
        self._router = self._socket(ctx, zmq.ROUTER, self.router_spec, {
            zmq.ROUTING_ID: self.instance, zmq.ROUTER_MANDATORY: 1, zmq.SNDHWM: 0})
        self._sub = self._socket(ctx, zmq.SUB, self.sub_spec, {zmq.RCVHWM: 0})
        self._sub.subscribe(self.instance + b" ")

    def _serve(self, tg: TaskGroup) -> None:
        tg.start_soon(self._receive_loop)
        tg.start_soon(self._tick_loop)

    def _fail_all(self, reason: str) -> None:
        exchanges = list(self._exchanges.values())
        self._exchanges.clear()
        for exchange in exchanges:
            exchange.session.lost()
            exchange.fail(reason)

    def forget(self, exchange: Exchange) -> None:
        if self._exchanges.get(exchange.session.id) is exchange:
            del self._exchanges[exchange.session.id]

    # ---- a request ----------------------------------------------------------------------

    async def request(self, req: OriginRequest, *, timeout: float) -> OriginResponse:
        """Start a session for ``req``; return once the response head has arrived.

        ``timeout`` bounds the wait for the head once the first packet is sent; a
        handler is waited for up to ``handler_wait`` before anything of the body is read.
        The rest of the body streams on (under the handler's credits) while the
        response does.

        :raises OriginError: no handler connected, or the handler failed the session.
        :raises OriginTimeout: no response head within ``timeout``.
        """
        push = await self._push_ready(timeout)
        first, more, pending = await _first_part(req)
        session = HttpSession(self.instance, str(uuid.uuid4()).encode(), time.monotonic())
        packet = session.start(req.method, request_uri(req),
                               request_headers(req, req.content_length), first, more)
        exchange = StreamResponse(self, session)

        def started() -> None:
            if more:
                assert self._tg is not None
                exchange.start_upload(self._tg, req.body, pending, req.content_length,
                                      len(first))

        await self._begin(push, exchange, packet, timeout, started)
        return exchange

    async def open_websocket(self, req: OriginRequest, *,
                             timeout: float) -> BackendWebSocket | OriginResponse:
        """Carry a client's WebSocket handshake to a handler (``zhttp.md`` §4.3).

        :returns: the session once the handler accepted, or the response it refused with.
        :raises OriginError: no handler connected, or the handler failed the session.
        :raises OriginTimeout: no decision within ``timeout``.
        """
        push = await self._push_ready(timeout)
        session = WsSession(self.instance, str(uuid.uuid4()).encode(), time.monotonic(),
                            max_message=self.settings.max_message)
        packet = session.start(request_uri(req, websocket=True), request_headers(req, 0))
        exchange = WsExchange(self, session)
        await self._begin(push, exchange, packet, timeout)
        return exchange.rejection or exchange

    async def _push_ready(self, timeout: float) -> Socket:
        """The PUSH socket, once bound and with a handler connected to it."""
        await self._until_running(timeout)
        push = self._push
        assert push is not None and self._tg is not None
        await self._until_handler(push, timeout)
        return push

    async def _begin(self, push: Socket, exchange: Exchange, first: Packet, timeout: float,
                     started: Callable[[], None] = lambda: None) -> None:
        """Send ``first`` and wait (up to ``timeout``) for the handler to answer it;
        ``started`` runs once it is sent. On failure the session is cancelled.

        :raises OriginError: the handler failed the session.
        :raises OriginTimeout: no answer within ``timeout``.
        """
        self._exchanges[exchange.session.id] = exchange
        try:
            await self._send_first(push, [encode(first)], timeout)
            started()
            with anyio.move_on_after(timeout):
                await exchange.until(lambda: exchange.answered or exchange.error is not None)
            if not exchange.answered:
                if exchange.error is not None:
                    raise OriginError(f"the zhttp handler at {self.target} failed the "
                                      f"request: {exchange.error}")
                raise self._timed_out()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await exchange.aclose()
            raise

    async def upload(self, exchange: StreamResponse, scope: anyio.CancelScope,
                     body: AsyncIterator[bytes], pending: bytes, length: int | None,
                     sent: int) -> None:
        """Send the request body after the first packet, within the handler's credits.

        With a known ``length`` the last part says ``more: false``; otherwise an empty
        part ends the body once the client's body ends.
        """
        if not exchange.upload_begins():
            return
        session = exchange.session
        try:
            with scope:
                ended = False
                while session.open:
                    if not pending and not ended:
                        try:
                            pending = await anext(body)
                        except StopAsyncIteration:
                            ended = True
                        continue
                    if not pending:
                        await exchange.until(lambda: session.can_end_body or not session.open)
                        if session.can_end_body:
                            await self.act(exchange, [session.send_body(b"", False,
                                                                        time.monotonic())])
                        return
                    await exchange.until(lambda: session.can_send_body or not session.open)
                    if not session.can_send_body:
                        return
                    size = min(len(pending), session.send_credits, PART_MAX)
                    part, pending = pending[:size], pending[size:]
                    sent += size
                    more = length is None or sent < length
                    await self.act(exchange, [session.send_body(part, more, time.monotonic())])
                    if not more:
                        return
        except Exception as e:
            log.debug("zhttp_upload_failed", target=self.target, id=session.id, error=repr(e))
            await self.act(exchange, session.fail("the client's request body broke off"))
        finally:
            exchange.uploaded()

    # ---- packets ------------------------------------------------------------------------

    async def act(self, exchange: Exchange, actions: Sequence[Action]) -> None:
        """Carry out a session's actions: update the response, send packets to the handler.

        Waiters are woken even without actions: credits or the handler's address may have
        arrived.
        """
        packets = exchange.take(actions)
        if exchange.backlog:
            exchange.backlog.extend(packets)
        else:
            for index, packet in enumerate(packets):
                try:
                    await self._to_handler(exchange.session.peer, packet)
                except zmq.ZMQError as e:
                    if e.errno != zmq.EHOSTUNREACH or self._tg is None:
                        self._lost(exchange, e)
                        break
                    exchange.backlog.extend(packets[index:])
                    self._tg.start_soon(self._redeliver, exchange)
                    break
        if not exchange.session.open:
            self.forget(exchange)

    async def _redeliver(self, exchange: Exchange) -> None:
        """Send what waits for a handler whose ROUTER socket is still connecting.

        A handler's first packet can arrive (through PUB) before its ROUTER connection is
        complete; it gets ``handler_wait`` seconds to complete it.
        """
        backlog = exchange.backlog
        deadline = anyio.current_time() + self.settings.handler_wait
        while backlog:
            try:
                await self._to_handler(exchange.session.peer, backlog[0])
            except zmq.ZMQError as e:
                if e.errno != zmq.EHOSTUNREACH or anyio.current_time() >= deadline:
                    self._lost(exchange, e)
                    return
                await anyio.sleep(0.01)
            else:
                backlog.popleft()

    def _lost(self, exchange: Exchange, error: zmq.ZMQError) -> None:
        """The handler of ``exchange`` cannot be sent to: the exchange fails."""
        session = exchange.session
        reason = zmq.strerror(error.errno or 0)
        log.warning("zhttp_send_failed", target=self.target, id=session.id,
                    handler=session.peer, error=reason)
        session.lost()
        exchange.backlog.clear()
        exchange.fail(f"cannot reach the handler {session.peer!r}: {reason}")
        self.forget(exchange)

    async def _to_handler(self, peer: bytes | None, packet: Packet) -> None:
        router = self._router
        if router is None or peer is None:
            raise zmq.ZMQError(zmq.ENOTSOCK)
        await router.send_multipart([peer, b"", encode(packet)], flags=zmq.NOBLOCK)

    async def _receive_loop(self) -> None:
        sub = self._sub
        assert sub is not None
        while True:
            frames = await sub.recv_multipart()
            try:
                await self._on_frames(frames)
            except Exception:
                log.exception("zhttp_packet_failed", target=self.target)

    async def _on_frames(self, frames: list[bytes]) -> None:
        try:
            if len(frames) != 1:
                raise PacketError(f"expected one frame, got {len(frames)}")
            _, raw = split_address(frames[0])
            packet = decode(raw)
        except PacketError as e:
            ident = e.id or mentioned_id(b"".join(frames), self._exchanges)
            log.warning("zhttp_packet_rejected", target=self.target, id=ident, reason=str(e))
            exchange = self._exchanges.get(ident) if ident is not None else None
            if exchange is not None:
                await self.act(exchange, exchange.session.fail(f"malformed packet: {e}"))
            return
        now = time.monotonic()
        for each in packet.each():
            assert isinstance(each.id, bytes)
            exchange = self._exchanges.get(each.id)
            if exchange is None:
                log.debug("zhttp_packet_dropped", target=self.target, id=each.id,
                          why="unknown id")
                continue
            await self.act(exchange, exchange.session.receive(each, now))

    async def _tick_loop(self) -> None:
        while True:
            await anyio.sleep(TICK_SECONDS)
            now = time.monotonic()
            for exchange in list(self._exchanges.values()):
                try:
                    if actions := exchange.session.tick(now):
                        await self.act(exchange, actions)
                except Exception:
                    log.exception("zhttp_tick_failed", target=self.target)


async def _first_part(req: OriginRequest) -> tuple[bytes, bool, bytes]:
    """The body for the first packet, whether more follows, and what was read beyond it.

    A body of known length up to :data:`FIRST_BODY_MAX` goes whole in the first packet;
    otherwise the first chunk the client sent does (so a streamed upload starts at once).
    """
    length = req.content_length
    if length == 0:
        return b"", False, b""
    if length is not None and length <= FIRST_BODY_MAX:
        parts = [chunk async for chunk in req.body]
        return b"".join(parts), False, b""
    try:
        chunk = await anext(req.body)
    except StopAsyncIteration:
        return b"", False, b""
    first, rest = chunk[:FIRST_BODY_MAX], chunk[FIRST_BODY_MAX:]
    return first, not (length is not None and len(first) >= length), rest
