"""``zhttpreq+tcp://…`` targets: one packet each way over DEALER ↔ REP (``zhttp.md`` §3).

p8 binds a DEALER socket; handlers connect REP (or REQ-compatible) sockets, and ZeroMQ
shares the requests among them. Each request is one ``T`` packet with the whole body;
the reply with the same ``id`` is the whole response. Replies are matched by ``id``, so
a late or unknown reply is dropped, and a malformed one fails only its own request.
"""

from __future__ import annotations

import uuid
from typing import Final

import anyio
import zmq
import zmq.asyncio
from anyio.abc import TaskGroup

from p8core import (
    BufferedResponse,
    OriginError,
    OriginRequest,
    OriginResponse,
    RequestTooLarge,
)

from .base import Socket, ZmqConnector, log
from .packets import (
    Packet,
    PacketError,
    ResponseHead,
    content_length,
    decode,
    encode,
    has_no_body,
    response_head,
)
from .targets import client_headers, mentioned_id, request_headers, request_uri

MAX_BODY: Final = 1_000_000
"""The largest request body sent, and response body accepted (``max-size``), in req mode."""


class _Waiter:
    """A request waiting for its reply: the reply's head and body, or why it failed."""

    __slots__ = ("arrived", "body", "error", "head")

    def __init__(self) -> None:
        self.arrived = anyio.Event()
        self.head: ResponseHead | None = None
        self.body = b""
        self.error: str | None = None

    def fail(self, reason: str) -> None:
        if not self.arrived.is_set():
            self.error = reason
            self.arrived.set()


class ReqConnector(ZmqConnector):
    """Sends each request to one ``zhttpreq+tcp://HOST:PORT`` (or ``+ipc://PATH``) target."""

    schemes = ("zhttpreq+tcp", "zhttpreq+ipc")

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self._dealer: Socket | None = None
        self._waiting: dict[bytes, _Waiter] = {}

    def endpoints(self) -> list[str]:
        return [self.spec]

    def _bind(self, ctx: zmq.asyncio.Context) -> None:
        # An unlimited queue: a send fails only when no handler is connected at all.
        self._dealer = self._socket(ctx, zmq.DEALER, self.spec, {zmq.SNDHWM: 0})

    def _serve(self, tg: TaskGroup) -> None:
        tg.start_soon(self._receive_loop)

    def _fail_all(self, reason: str) -> None:
        for waiter in self._waiting.values():
            waiter.fail(reason)

    async def request(self, req: OriginRequest, *, timeout: float) -> OriginResponse:
        """Send ``req`` as one packet and return its reply.

        ``timeout`` bounds the wait for the reply once the request is sent; a handler is
        waited for up to ``handler_wait`` before anything of the body is read.

        :raises OriginError: no handler connected (502), a malformed or failed reply (502),
            a request body over 1 MB (413).
        :raises OriginTimeout: no reply within ``timeout``.
        """
        await self._until_running(timeout)
        dealer = self._dealer
        assert dealer is not None
        await self._until_handler(dealer, timeout)
        body = await _read_body(req)
        ident = str(uuid.uuid4()).encode()
        packet = Packet(id=ident, from_=self.instance, method=req.method,
                        uri=request_uri(req), headers=request_headers(req, len(body)),
                        body=body, max_size=MAX_BODY)
        waiter = self._waiting[ident] = _Waiter()
        try:
            await self._send_first(dealer, [b"", encode(packet)], timeout)
            with anyio.move_on_after(timeout):
                await waiter.arrived.wait()
        finally:
            del self._waiting[ident]
        if waiter.error is not None:
            raise OriginError(waiter.error)
        head = waiter.head
        if head is None:
            raise self._timed_out()
        if has_no_body(req.method, head.code):
            return BufferedResponse(head.code, client_headers(head, None), b"", head.reason)
        return BufferedResponse(head.code, client_headers(head, len(waiter.body)),
                                waiter.body, head.reason)

    async def _receive_loop(self) -> None:
        dealer = self._dealer
        assert dealer is not None
        while True:
            frames = await dealer.recv_multipart()
            try:
                self._on_reply(frames)
            except Exception:
                log.exception("zhttp_reply_failed", target=self.target)

    def _on_reply(self, frames: list[bytes]) -> None:
        """Match a reply to its request; a malformed one fails that request, if known."""
        raw = frames[-1]
        try:
            if len(frames) != 2 or frames[0]:
                raise PacketError(f"reply is not [empty frame, packet] ({len(frames)} "
                                  "frames)")
            packet = decode(raw)
            if not isinstance(packet.id, bytes):
                raise PacketError("a req-mode reply has a single 'id'")
        except PacketError as e:
            ident = e.id or mentioned_id(raw, self._waiting)
            self._reject(ident, str(e))
            return
        waiter = self._waiting.get(packet.id)
        if waiter is None:
            log.debug("zhttp_reply_dropped", target=self.target, id=packet.id, why="unknown id")
            return
        if packet.type == b"error":
            condition = (packet.condition or b"undefined").decode("latin-1")
            log.warning("zhttp_reply_error", target=self.target, id=packet.id,
                        condition=condition)
            waiter.fail(f"the zhttp handler at {self.target} answered with error "
                        f"{condition!r}")
            return
        try:
            waiter.head, waiter.body = _reply(packet)
        except PacketError as e:
            self._reject(packet.id, str(e))
            return
        waiter.arrived.set()

    def _reject(self, ident: bytes | None, problem: str) -> None:
        log.warning("zhttp_reply_rejected", target=self.target, id=ident, reason=problem)
        waiter = self._waiting.get(ident) if ident is not None else None
        if waiter is not None:
            waiter.fail(f"malformed reply from the zhttp handler at {self.target}: {problem}")


def _reply(packet: Packet) -> tuple[ResponseHead, bytes]:
    """The response a req-mode reply carries.

    :raises PacketError: it is not one complete data packet with a valid head.
    """
    if packet.type is not None:
        raise PacketError(f"a {packet.type.decode('latin-1')!r} packet is not a reply")
    if packet.more:
        raise PacketError("'more' is true, but req mode takes the whole response in one "
                          "packet")
    if len(packet.body) > MAX_BODY:
        raise PacketError(f"body of {len(packet.body)} bytes exceeds max-size ({MAX_BODY})")
    head = response_head(packet)
    content_length(head)
    return head, packet.body


async def _read_body(req: OriginRequest) -> bytes:
    """The whole request body, which req mode sends in one packet.

    :raises RequestTooLarge: it is longer than :data:`MAX_BODY`.
    """
    if req.content_length is not None and req.content_length > MAX_BODY:
        raise RequestTooLarge(f"request body larger than {MAX_BODY} bytes, the most a "
                              "zhttpreq target takes")
    parts: list[bytes] = []
    size = 0
    async for chunk in req.body:
        size += len(chunk)
        if size > MAX_BODY:
            raise RequestTooLarge(f"request body larger than {MAX_BODY} bytes, the most a "
                                  "zhttpreq target takes")
        parts.append(chunk)
    return b"".join(parts)
