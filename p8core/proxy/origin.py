"""The ``http``/``https`` origin connector: a pooled HTTP/1.1 client on h11 and asyncio.

This is p8's hot path to the backend, so it avoids per-request tasks and extra copies:
a request without a body, or with a small body of known length (read first), is one
send and one or a few receives on a pooled connection. Only a larger or chunked body
runs a second task, so that an early response (a 413 sent before the whole body was
read) is seen while the body is still being uploaded.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Hashable
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import anyio
import h11

from ..connector import Connector, OriginError, OriginRequest, OriginResponse, OriginTimeout
from .stream import OriginStream, open_origin_stream

if TYPE_CHECKING:
    from .routes import Route

_RECEIVE_SIZE: Final = 65536
_MAX_HEAD_SIZE: Final = 65536
# A request body of known length up to this size is read first and sent with the head.
_BUFFER_LIMIT: Final = 65536
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# Methods whose request never carries a body unless the caller gives a length.
_BODYLESS_METHODS: Final = frozenset({b"HEAD", b"TRACE"})
# Methods that get ``Content-Length: 0`` when they have no body (nginx answers 411 otherwise).
_LENGTH_REQUIRED_METHODS: Final = frozenset({b"POST", b"PUT", b"PATCH"})
_FRAMING_HEADERS: Final = frozenset({b"content-length", b"transfer-encoding"})
_STREAM_ERRORS: Final = (
    anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError,
)

_Head = h11.Response | h11.InformationalResponse


class _Conn:
    """One TCP (or TLS) connection to the origin and its h11 state."""

    __slots__ = ("h11", "idle_since", "stream")

    def __init__(self, stream: OriginStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD_SIZE)
        self.idle_since = 0.0


class _Stale(Exception):
    """A reused connection failed before any response byte arrived: safe to retry."""


class _Upload:
    """What the body-sending task of one request reports back to the request."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BaseException | None = None


class HttpConnector(Connector):
    """Forwards requests to one ``http://host:port`` or ``https://host:port`` target.

    Idle connections are kept in a LIFO pool of at most ``max_idle``; one idle longer
    than ``idle_timeout`` seconds is closed instead of reused. Active connections are
    not limited here. ``insecure`` turns off TLS certificate and host name checks.
    """

    schemes = ("http", "https")

    @classmethod
    def options(cls, route: Route | None) -> Hashable:
        return bool(route and route.insecure)

    @classmethod
    def open(cls, target: str, route: Route | None) -> HttpConnector:
        """A pool for ``target``; the route's ``insecure`` turns off TLS verification."""
        return cls(target, insecure=bool(route and route.insecure))

    def __init__(self, target: str, *, max_idle: int = 100, insecure: bool = False,
                 idle_timeout: float = 60.0) -> None:
        super().__init__(target)
        self.host, self.port, tls = _parse_target(target)
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self._ssl: ssl.SSLContext | None = _ssl_context(insecure) if tls else None
        self._idle: deque[_Conn] = deque()
        self._closed = False

    async def request(self, req: OriginRequest, *, timeout: float) -> OriginResponse:
        """Send ``req`` and return once the response head has arrived.

        Without a request body, ``timeout`` bounds connecting, sending and receiving the
        response head together. With a body, it bounds connecting, each write to the
        origin, and the wait for the head once the body is sent; waiting for the
        client's body chunks is not bounded here.
        """
        length = req.content_length
        has_body = length != 0 and not (length is None and req.method in _BODYLESS_METHODS)
        event = self._request_event(req, has_body)
        payload = b""
        if length is None or length > _BUFFER_LIMIT:
            if has_body:
                return await self._send_with_body(event, req.body, timeout)
        elif length:
            payload = await self._read_small_body(req.body, length)
        try:
            async with asyncio.timeout(timeout):
                return await self._send_buffered(event, payload)
        except TimeoutError:
            raise self._timed_out() from None

    async def aclose(self) -> None:
        """Close every idle connection; connections released later are closed too."""
        self._closed = True
        idle = list(self._idle)
        self._idle.clear()
        for conn in idle:
            _close(conn)

    def _request_event(self, req: OriginRequest, has_body: bool) -> h11.Request:
        """The h11 request event: the caller's headers plus the body framing p8 chose,
        and the target's ``Host`` when the client sent none (HTTP/1.0)."""
        headers = [(name, value) for name, value in req.headers
                   if name.lower() not in _FRAMING_HEADERS]
        if not any(name.lower() == b"host" for name, _ in headers):
            host = f"[{self.host}]" if ":" in self.host else self.host
            headers.insert(0, (b"Host", f"{host}:{self.port}".encode("idna")))
        if not has_body:
            if req.method in _LENGTH_REQUIRED_METHODS:
                headers.append((b"Content-Length", b"0"))
        elif req.content_length is None:
            headers.append((b"Transfer-Encoding", b"chunked"))
        else:
            headers.append((b"Content-Length", b"%d" % req.content_length))
        try:
            return h11.Request(method=req.method, target=req.target, headers=headers)
        except h11.LocalProtocolError as exc:
            raise OriginError(f"cannot send the request to {self.target}: {exc}") from None

    def _timed_out(self) -> OriginTimeout:
        return OriginTimeout(f"timed out waiting for {self.target}")

    async def _read_small_body(self, body: AsyncIterator[bytes], length: int) -> bytes:
        """Collect a body of known, small ``length``; it is sent with the head."""
        parts: list[bytes] = []
        size = 0
        async for chunk in body:
            parts.append(chunk)
            size += len(chunk)
            if size > length:
                break
        if size != length:
            raise OriginError(f"cannot send the request body to {self.target}: "
                              f"expected {length} bytes, got {size}")
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _send_buffered(self, event: h11.Request, payload: bytes) -> _Response:
        """A request whose body (if any) is in memory; a stale connection is retried once."""
        conn = self._take()
        if conn is not None:
            try:
                return await self._exchange(conn, event, None, 0.0, payload=payload,
                                            retryable=True)
            except _Stale:
                self._discard_idle(conn.idle_since)
        return await self._exchange(await self._connect(), event, None, 0.0, payload=payload,
                                    retryable=False)

    async def _send_with_body(self, event: h11.Request, body: AsyncIterator[bytes],
                              timeout: float) -> _Response:
        """A request with a body; a pooled connection is checked before it is used."""
        conn = self._take()
        if conn is not None:
            if _looks_alive(conn):
                try:
                    return await self._exchange(conn, event, body, timeout, retryable=True)
                except _Stale:
                    pass
            else:
                _close(conn)
            self._discard_idle(conn.idle_since)
        try:
            with anyio.fail_after(timeout):
                conn = await self._connect()
        except TimeoutError:
            raise self._timed_out() from None
        return await self._exchange(conn, event, body, timeout, retryable=False)

    async def _exchange(self, conn: _Conn, event: h11.Request, body: AsyncIterator[bytes] | None,
                        timeout: float, *, payload: bytes = b"", retryable: bool) -> _Response:
        """Send the request on ``conn`` and read the response head; close ``conn`` on error.

        The body is ``payload`` when ``body`` is None (sent with the head in one write),
        else streamed from ``body``. ``_Stale`` (only when ``retryable``) means nothing
        was received and no byte was taken from ``body``: the request can be repeated.
        """
        h = conn.h11
        try:
            try:
                if body is None:
                    data = h.send(event)
                    if payload:
                        data += h.send(h11.Data(data=payload))
                    h.send(h11.EndOfMessage())
                    await conn.stream.send(data)
                else:
                    with anyio.fail_after(timeout):
                        await conn.stream.send(h.send(event))
            except TimeoutError:
                raise self._timed_out() from None
            except _STREAM_ERRORS as exc:
                if retryable:
                    raise _Stale from None
                raise OriginError(f"cannot reach {self.target}: {_reason(exc)}") from None
            if body is None:
                head = await self._receive_head(conn, retryable=retryable)
            else:
                head = await self._upload(conn, body, timeout)
        except BaseException:
            _close(conn)
            raise
        return _Response(self, conn, head)

    async def _upload(self, conn: _Conn, body: AsyncIterator[bytes], timeout: float) -> _Head:
        """Stream ``body`` to the origin in a task while this one waits for the head.

        A head that arrives before the body is all sent ends the upload; the connection
        is then closed when the response is released.
        """
        h, stream = conn.h11, conn.stream
        upload = _Upload()
        wait = anyio.CancelScope()

        async def send(data: bytes) -> bool:
            try:
                with anyio.fail_after(timeout):
                    await stream.send(data)
            except TimeoutError:
                upload.error = self._timed_out()
                wait.cancel()
                return False
            except _STREAM_ERRORS:
                # The origin may have answered and closed: give the head time to arrive.
                wait.deadline = min(wait.deadline, anyio.current_time() + timeout)
                return False
            return True

        async def send_body() -> None:
            try:
                async for chunk in body:
                    if chunk and not await send(h.send(h11.Data(data=chunk))):
                        return
                tail = h.send(h11.EndOfMessage())
                if tail and not await send(tail):
                    return
            except h11.LocalProtocolError as exc:
                upload.error = OriginError(
                    f"cannot send the request body to {self.target}: {exc}")
                wait.cancel()
                return
            except Exception as exc:
                upload.error = exc
                wait.cancel()
                return
            wait.deadline = anyio.current_time() + timeout

        head: _Head | None = None
        failure: OriginError | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(send_body)
            try:
                with wait:
                    head = await self._receive_head(conn, retryable=False)
            except OriginError as exc:
                failure = exc
            tg.cancel_scope.cancel()
        if upload.error is not None:
            raise upload.error
        if failure is not None:
            raise failure
        if head is None:
            raise self._timed_out()
        return head

    async def _receive_head(self, conn: _Conn, *, retryable: bool) -> _Head:
        """Read up to the final response head (or a 101), skipping other 1xx heads."""
        h, stream = conn.h11, conn.stream
        received = False
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                raise OriginError(f"{self.target} sent an invalid response: {exc}") from None
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive(_RECEIVE_SIZE)
                except _STREAM_ERRORS as exc:
                    if retryable and not received:
                        raise _Stale from None
                    reason = _reason(exc)
                    if isinstance(exc, anyio.EndOfStream):
                        reason = "connection closed before a complete response head"
                    raise OriginError(f"cannot reach {self.target}: {reason}") from None
                received = True
                h.receive_data(data)
            elif type(event) is h11.Response:
                return event
            elif type(event) is h11.InformationalResponse:
                if event.status_code == 101:
                    return event
            else:
                raise OriginError(f"cannot reach {self.target}: connection closed")

    async def _connect(self) -> _Conn:
        """A new connection to the target (TLS for https)."""
        try:
            stream = await open_origin_stream(self.host, self.port, self._ssl)
        except OSError as exc:
            raise OriginError(f"cannot reach {self.target}: {_reason(exc)}") from None
        return _Conn(stream)

    def _take(self) -> _Conn | None:
        """The most recently used idle connection, unless it has been idle too long."""
        idle = self._idle
        if not idle:
            return None
        if time.monotonic() - idle[-1].idle_since <= self.idle_timeout:
            return idle.pop()
        expired = list(idle)
        idle.clear()
        for conn in expired:
            _close(conn)
        return None

    def _release(self, conn: _Conn) -> None:
        """Pool a connection that finished its exchange, closing the oldest if full."""
        if self._closed or self.max_idle <= 0:
            _close(conn)
            return
        idle = self._idle
        now = time.monotonic()
        conn.idle_since = now
        idle.append(conn)
        expired: list[_Conn] = []
        while idle and (len(idle) > self.max_idle
                        or now - idle[0].idle_since > self.idle_timeout):
            expired.append(idle.popleft())
        for old in expired:
            _close(old)

    def _discard_idle(self, since: float) -> None:
        """Close idle connections pooled no later than a stale one: likely stale too."""
        idle = self._idle
        expired: list[_Conn] = []
        while idle and idle[0].idle_since <= since:
            expired.append(idle.popleft())
        for old in expired:
            _close(old)


class _Response(OriginResponse):
    """A response read from a pooled connection; the body streams from :meth:`chunks`."""

    def __init__(self, connector: HttpConnector, conn: _Conn, head: _Head) -> None:
        self.status = head.status_code
        self.reason = head.reason
        self.headers = head.headers.raw_items()
        self.content_length = _content_length(head) if type(head) is h11.Response else 0
        self._connector = connector
        self._conn: _Conn | None = conn

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield body data as it arrives; ends at the end of the body."""
        conn = self._conn
        if conn is None:
            return
        h, stream = conn.h11, conn.stream
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                raise OriginError(
                    f"{self._connector.target} broke off the response: {exc}") from None
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive(_RECEIVE_SIZE)
                except anyio.EndOfStream:
                    data = b""
                except _STREAM_ERRORS as exc:
                    raise OriginError(f"{self._connector.target} broke off the response: "
                                      f"{_reason(exc)}") from None
                h.receive_data(data)
            elif type(event) is h11.Data:
                yield bytes(event.data)
            else:
                return

    async def aclose(self) -> None:
        """Pool the connection if the exchange completed and it may be kept alive."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        h = conn.h11
        if h.their_state is h11.SEND_BODY:
            # A body already in the buffer (or none at all, as for HEAD) still completes.
            try:
                while type(h.next_event()) is h11.Data:
                    pass
            except h11.RemoteProtocolError:
                pass
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            self._connector._release(conn)
        else:
            _close(conn)


def _close(conn: _Conn) -> None:
    """Close a connection at once."""
    conn.stream.abort()


def _looks_alive(conn: _Conn) -> bool:
    """Whether an idle connection has neither been closed by the origin nor sent bytes.

    One non-blocking ``MSG_PEEK`` on the socket; used before sending a request body,
    which cannot be replayed if the connection turns out to be stale.
    """
    if conn.stream.ended:
        return False
    raw = conn.stream.raw_socket()
    if raw is None:
        return True
    peek = socket.socket(raw.family, raw.type, raw.proto, raw.fileno())
    try:
        peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        peek.detach()
    return False


def _content_length(head: h11.Response) -> int | None:
    """The response's Content-Length (validated by h11), or None if chunked or absent."""
    length: int | None = None
    for name, value in head.headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            length = int(value)
    return length


def _reason(exc: BaseException) -> str:
    """One line saying why a connection attempt or transfer failed."""
    if isinstance(exc, anyio.EndOfStream):
        return "connection closed"
    if isinstance(exc, anyio.ClosedResourceError):
        return "connection closed"
    cause = exc.__cause__
    if isinstance(exc, anyio.BrokenResourceError):
        if cause is None:
            return "connection broken"
        exc = cause
    if isinstance(exc, ssl.SSLError):
        text = str(exc)
    elif isinstance(exc, socket.gaierror):
        text = exc.strerror or str(exc)
    elif isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        text = os.strerror(exc.errno)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _parse_target(target: str) -> tuple[str, int, bool]:
    """Host, port and whether TLS is used, from ``http(s)://host[:port]``."""
    try:
        parts = urlsplit(target)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad origin target {target!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"bad origin target {target!r}: expected http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"bad origin target {target!r}: a target has no path or query")
    return parts.hostname, port if port is not None else _DEFAULT_PORTS[scheme], scheme == "https"


def _ssl_context(insecure: bool) -> ssl.SSLContext:
    """A client TLS context offering HTTP/1.1; ``insecure`` skips verification."""
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context

