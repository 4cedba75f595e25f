"""One HTTP/1.x connection: an asyncio Protocol with h11 on top.

Bytes arrive through ``data_received`` and wait in a bounded buffer (reading pauses while
it is full); writes go straight to the transport without awaiting, and a writer that cares
about memory awaits :meth:`HttpConnection.drain`. A connection runs its request cycles in a
task spawned on demand, so a held exchange needs no task of its own.
"""

from __future__ import annotations

import asyncio
import http
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import h11
import structlog

from ..metrics import Metrics
from ..observe.telemetry import Traffic

if TYPE_CHECKING:
    from ..proxy.crossorigin import ResponseShaper
    from ..proxy.routes import Route

Headers = list[tuple[bytes, bytes]]

log = structlog.get_logger(component="connection")

READ_BUFFER_MAX = 262_144
DRAIN_MAX = 65_536
WRITE_HIGH_WATER = 262_144
CHUNKED_LINE = b"\r\ntransfer-encoding: chunked\r\n"
"""How a chunked response head names its framing (lower-cased)."""
LINGER_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A request head as received from a client."""

    method: bytes
    target: bytes
    headers: Headers
    http_version: bytes
    peer: str
    ssl: bool = False

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lowercase), or ``None``."""
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def host(self) -> str:
        """The Host header without port, lowercased."""
        raw = (self.header(b"host") or b"").decode("latin-1").lower()
        if raw.startswith("["):
            return raw[1:].split("]", 1)[0]
        return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw

    @property
    def path(self) -> str:
        return self.target.split(b"?", 1)[0].decode("latin-1")


def phrase(status: int) -> bytes:
    """The standard reason phrase of ``status`` (``b"Unknown"`` for unlisted codes)."""
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"


def _head_size(request: h11.Request) -> int:
    """The size of a request head as sent, near enough (h11 keeps no count): exact unless
    the client padded its header values with spaces."""
    # "<method> <target> HTTP/1.1\r\n", "<name>: <value>\r\n" each, then "\r\n".
    return (len(request.method) + len(request.target) + 14
            + sum(len(n) + len(v) + 4 for n, v in request.headers))


class ConnectionGone(Exception):
    """The client closed the connection (or it was closed under us)."""


Handler = Callable[["HttpConnection", ClientRequest], Awaitable[bool]]
"""Serves one request; returns False when something else (a hold) now owns the connection."""


class ReadTimeout(Exception):
    """The client did not send a whole request head within ``head_timeout``, or sent
    nothing of a request body it began for ``body_timeout``."""

    def __init__(self, part: str, seconds: float) -> None:
        super().__init__(f"Request {part} not received within {seconds:g}s.")
        self.part = part


class HttpConnection(asyncio.Protocol):
    """A client connection speaking HTTP/1.x through h11."""

    # Slots: one of these lives for every client connection, held ones included.
    __slots__ = ("_buffer", "_chunked", "_eof", "_lingering", "_paused", "_read_due", "_read_late",
                 "_read_limit", "_read_part", "_read_since", "_read_timer", "_readable",
                 "_writable", "body_timeout", "closed", "h11", "handler", "head_timeout",
                 "head_too_large", "id", "max_header_size", "method", "metrics", "on_close",
                 "on_gone", "on_shutdown", "peer", "route", "shaper", "spawn", "ssl", "traffic",
                 "transport", "transport_name")

    def __init__(self, handler: Handler, spawn: Callable[..., Any], *,
                 max_header_size: int, on_close: Callable[[HttpConnection], None],
                 metrics: Metrics, ssl: bool = False, head_too_large: int = 431,
                 traffic: Traffic | None = None, head_timeout: float = 0.0,
                 body_timeout: float = 0.0) -> None:
        """
        :param head_timeout: seconds a client may take to send a whole request head,
            counted from when the connection waits for it (open, or the previous response
            done); ``0``: no limit.
        :param body_timeout: seconds a client may send nothing of a request body it
            began; ``0``: no limit.
        """
        self.handler, self.spawn, self.on_close = handler, spawn, on_close
        self.head_timeout, self.body_timeout = head_timeout, body_timeout
        self.metrics = metrics
        self.traffic = Traffic() if traffic is None else traffic
        """Where this connection counts the bytes it reads and writes."""
        self.id = ""
        """Set by the server when it tracks the connection (``Telemetry.next_id``)."""
        self.transport_name = "http"
        """``"http"``, or the name of the client transport that claimed the connection."""
        self.route: Route | None = None
        """The route of the latest request, once routed."""
        self.head_too_large = head_too_large
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
        self.max_header_size = max_header_size
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.ssl = ssl
        self.closed = False
        self.method = b""
        """The method of the request being served."""
        self.on_gone: Callable[[], None] | None = None
        """Called once when the client goes away while a hold owns the connection."""
        self.on_shutdown: Callable[[], None] | None = None
        """Called once when the server stops, just before it closes the connection: the
        owner of a long-lived exchange ends it cleanly (a last chunk, a close frame)."""
        self._chunked = False
        """The response being sent is chunked: body chunks are framed here, not by h11."""
        self.shaper: ResponseShaper | None = None
        """Reshapes what is written for the current request (CORS, JSON-P); reset for
        each request."""
        self._buffer = bytearray()
        self._eof = False
        self._read_late = False
        self._read_since: float | None = None
        self._read_limit = 0.0
        self._read_part = ""
        self._read_timer: asyncio.TimerHandle | None = None
        self._read_due = 0.0
        self._lingering = False
        self._paused = False
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    # ---- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else ""
        self.resume_cycle()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        self.traffic.received += len(data)
        self._buffer += data
        if len(self._buffer) > READ_BUFFER_MAX and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_read_timer()
        self._eof = True
        self._wake_reader()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        gone, self.on_gone = self.on_gone, None
        if gone is not None:
            gone()
        self.on_close(self)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # ---- reading ----------------------------------------------------------------------------

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    async def receive(self) -> bytes:
        """The bytes received so far (waiting for some); ``b""`` at end of stream."""
        while not self._buffer and not self._eof:
            if self._read_late:
                raise ReadTimeout(self._read_part, self._read_limit)
            self._readable = asyncio.get_running_loop().create_future()
            await self._readable
            self._readable = None
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def next_event(self) -> Any:
        """The next h11 event from the client, reading as needed."""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.receive())
                continue
            return event

    async def _timed_event(self, part: str, limit: float) -> Any:
        """The next h11 event of the request's ``part`` (``head``, ``body``), waiting at
        most ``limit`` seconds (``0``: no limit) for it.

        One timer per connection serves every wait: it is armed when a wait begins and
        none is pending, and when it fires it either ends a wait that is late or is armed
        again for the current wait's rest (so a busy keep-alive connection arms one about
        every ``head_timeout``, not one per request).

        :raises ReadTimeout: nothing that completes the event arrived in time.
        """
        event = self.h11.next_event()
        if event is not h11.NEED_DATA:
            return event
        if not limit:
            return await self.next_event()
        loop = asyncio.get_running_loop()
        self._read_since, self._read_limit, self._read_part = loop.time(), limit, part
        self._arm_read_timer(loop)
        try:
            return await self.next_event()
        finally:
            self._read_since = None
            self._read_late = False

    def _arm_read_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make sure a timer fires by the current wait's deadline (keeping an earlier one)."""
        assert self._read_since is not None
        due = self._read_since + self._read_limit
        if self._read_timer is not None:
            if self._read_due <= due:
                return
            self._read_timer.cancel()
        self._read_timer, self._read_due = loop.call_at(due, self._check_read), due

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _check_read(self) -> None:
        self._read_timer = None
        since = self._read_since
        if since is None:
            return
        loop = asyncio.get_running_loop()
        if since + self._read_limit > loop.time():
            self._arm_read_timer(loop)
        else:
            self._read_late = True
            self._wake_reader()

    async def body(self) -> AsyncIterator[bytes]:
        """Yield the current request's body as it arrives (answering ``Expect``)."""
        if self.h11.they_are_waiting_for_100_continue:
            self.write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        while True:
            event = await self._timed_event("body", self.body_timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise ConnectionGone()

    # ---- writing ----------------------------------------------------------------------------

    def write(self, data: bytes | None) -> None:
        """Queue bytes for the client without waiting."""
        if data and self.transport is not None and not self.closed:
            self.traffic.sent += len(data)
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark."""
        if self._writable is not None:
            await self._writable
        if self.closed:
            raise ConnectionGone()

    @property
    def unsent(self) -> int:
        """Bytes written but not yet taken by the kernel."""
        return self.transport.get_write_buffer_size() if self.transport else 0

    @property
    def head_only(self) -> bool:
        """The request being answered is ``HEAD``: its response ends with the head."""
        return self.method == b"HEAD"

    def send_head(self, status: int, headers: Headers, reason: bytes = b"") -> None:
        """Write the response head; h11 chooses the framing the headers leave open."""
        first = b""
        if self.shaper is not None:
            status, headers, reason, first = self.shaper.head(status, headers, reason)
        self._send_head(status, headers, reason)
        self._send_data(first)

    def send_data(self, data: bytes) -> None:
        """Write a piece of the response body, reshaped if the request asked for it."""
        if self.shaper is not None:
            data = self.shaper.body(data)
        self._send_data(data)

    def send_end(self) -> None:
        if self.shaper is not None:
            self._send_data(self.shaper.end())
        self._chunked = False
        self.write(self.h11.send(h11.EndOfMessage()))

    def respond(self, status: int, body: bytes, headers: Headers | None = None,
                reason: bytes = b"") -> None:
        """Write a whole response with a Content-Length."""
        head = list(headers) if headers is not None else [(b"content-type", b"text/plain")]
        if self.shaper is not None:
            status, head, reason, body = self.shaper.whole(status, head, reason, body)
        head.append((b"content-length", str(len(body)).encode()))
        self._send_head(status, head, reason)
        self._send_data(body)
        self.write(self.h11.send(h11.EndOfMessage()))

    def _send_head(self, status: int, headers: Headers, reason: bytes) -> None:
        head = self.h11.send(h11.Response(status_code=status, headers=headers,
                                          reason=reason or phrase(status)))
        self._chunked = head is not None and CHUNKED_LINE in head.lower()
        if head and not self.closed:
            self.traffic.head_sent += len(head)
        self.write(head)

    def _send_data(self, data: bytes) -> None:
        """Write body bytes as they are (none for ``HEAD``). Chunks are framed without h11,
        which keeps no state per chunk: this is the write each held stream does for
        every publish."""
        if not data or self.head_only:
            return
        if self._chunked:
            self.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.write(self.h11.send(h11.Data(data=data)))

    def close(self) -> None:
        """Close after what was written; a request body still arriving is first discarded
        (see :meth:`_linger`)."""
        transport = self.transport
        if transport is None or self.closed or self._lingering:
            return
        if self.h11.their_state is h11.SEND_BODY and not self._eof and transport.can_write_eof():
            self._linger(transport)
        else:
            transport.close()

    def _linger(self, transport: asyncio.Transport) -> None:
        """End our side but keep discarding the client's request body until it ends (or
        ``LINGER_SECONDS`` pass): closing on unread bytes would reset the connection, and
        the client could lose the answer (a 413, say) before reading it."""
        try:
            transport.write_eof()
        except OSError:  # the client is gone already
            transport.close()
            return
        self._lingering = True
        self._buffer.clear()
        if self._paused:
            self._paused = False
            transport.resume_reading()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # ---- request cycles ---------------------------------------------------------------------

    def resume_cycle(self) -> None:
        """Serve the connection's next requests in a new task."""
        self.spawn(self._cycles)

    def finish_exchange(self) -> None:
        """The current response is complete: go on with the next request, or close."""
        if not self.closed:
            self.resume_cycle()

    async def _cycles(self) -> None:
        try:
            while await self._ready_for_request():
                self.shaper = None
                self.method = b""
                event = await self._timed_event("head", self.head_timeout)
                if not isinstance(event, h11.Request):
                    break
                head_size = _head_size(event)
                if head_size > self.max_header_size:
                    raise h11.RemoteProtocolError("request head too large", 431)
                self.method = event.method
                self.traffic.head_received += head_size
                request = ClientRequest(event.method, event.target, list(event.headers),
                                        event.http_version, self.peer, self.ssl)
                if not await self.handler(self, request):
                    self._stop_read_timer()  # a hold owns the connection, maybe for long
                    return
        except h11.RemoteProtocolError as e:
            self._reject(e)
        except ReadTimeout as e:
            self._read_timed_out(e)
        except ConnectionGone:
            pass
        except Exception:
            log.exception("connection_failed", peer=self.peer)
            if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                self.respond(500, b"Internal error.\n", [(b"content-type", b"text/plain"),
                                                          (b"connection", b"close")])
        self.close()

    async def _ready_for_request(self) -> bool:
        """Ready h11 for the next request, skipping what the last one left of its body
        (up to ``DRAIN_MAX`` bytes). False when the connection cannot be reused."""
        if self.closed:
            return False
        conn = self.h11
        if conn.our_state is h11.IDLE and conn.their_state is h11.IDLE:
            return True
        drained = 0
        while conn.our_state is h11.DONE and conn.their_state is h11.SEND_BODY:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                drained += len(event.data)
                if drained > DRAIN_MAX:
                    return False
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        return False

    def _read_timed_out(self, e: ReadTimeout) -> None:
        """Answer ``408`` to a client that began a request head or body and stalled; one
        that sent nothing of a next request (an idle keep-alive connection) is just
        closed."""
        if e.part == "head" and not (self._buffer or self.h11.trailing_data[0]):
            self.metrics.idle_connections_closed += 1
            return
        if e.part == "head":
            self.metrics.rejected_head_timeout += 1
        else:
            self.metrics.rejected_body_timeout += 1
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.respond(408, f"{e}\n".encode(),
                         [(b"content-type", b"text/plain"), (b"connection", b"close")])

    def _reject(self, e: h11.RemoteProtocolError) -> None:
        """Answer a request h11 could not parse: 400, or 431 for an oversized head."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        if e.error_status_hint == 431:
            self.metrics.rejected_head_too_large += 1
            status, body = self.head_too_large, b"Request header too large.\n"
        else:
            self.metrics.rejected_bad_request += 1
            status, body = 400, f"Bad request: {e}\n".encode()
        self.respond(status, body,
                     [(b"content-type", b"text/plain"), (b"connection", b"close")])
