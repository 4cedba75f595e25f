"""The pooled HTTP/1.1 origin connector against real origins on loopback sockets."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import h11
import pytest
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSListener

from p8core.connector import OriginError, OriginRequest, OriginResponse, OriginTimeout
from p8core.proxy.origin import HttpConnector

pytestmark = pytest.mark.anyio

MB = 1024 * 1024
BLOCK = b"x" * 65536


# --- test origins --------------------------------------------------------------------------


@dataclass
class Seen:
    """A request as an origin received it (body kept up to 1 MB, sizes always)."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytearray = field(default_factory=bytearray)
    size: int = 0
    largest_data: int = 0


@dataclass
class Reply:
    """What the h11 origin answers; ``hang_up`` closes the connection afterwards silently."""

    status: int = 200
    headers: Sequence[tuple[bytes, bytes]] = ()
    body: Sequence[bytes] = ()
    chunked: bool = False
    hang_up: bool = False


Handler = Callable[[Seen], Awaitable[Reply]]


async def echo(seen: Seen) -> Reply:
    return Reply(headers=[(b"X-Reply", b"Yes")], body=[seen.method + b" " + bytes(seen.body)])


class H11Origin:
    """An HTTP/1.1 origin on h11 that counts connections and records requests."""

    def __init__(self, handler: Handler = echo) -> None:
        self.handler = handler
        self.connections = 0
        self.closed = 0
        self.requests: list[Seen] = []
        self.closed_event = anyio.Event()

    async def serve(self, stream: ByteStream) -> None:
        self.connections += 1
        h = h11.Connection(h11.SERVER)
        try:
            await self._exchanges(h, stream)
        except (anyio.BrokenResourceError, h11.ProtocolError):
            pass  # the client went away mid-exchange
        finally:
            await stream.aclose()
            self.closed += 1
            self.closed_event.set()
            self.closed_event = anyio.Event()

    async def _exchanges(self, h: h11.Connection, stream: ByteStream) -> None:
        while True:
            event = await _next_event(h, stream)
            if type(event) is not h11.Request:
                return
            seen = Seen(event.method, event.target, event.headers.raw_items())
            while type(data := await _next_event(h, stream)) is h11.Data:
                seen.size += len(data.data)
                seen.largest_data = max(seen.largest_data, len(data.data))
                if seen.size <= MB:
                    seen.body += data.data
            self.requests.append(seen)
            reply = await self.handler(seen)
            headers = list(reply.headers)
            if not reply.chunked and not any(n.lower() == b"content-length"
                                             for n, _ in headers):
                headers.append((b"Content-Length", b"%d" % sum(map(len, reply.body))))
            await stream.send(h.send(h11.Response(status_code=reply.status,
                                                  headers=headers)))
            if seen.method != b"HEAD":
                for chunk in reply.body:
                    await stream.send(h.send(h11.Data(data=chunk)))
            await stream.send(h.send(h11.EndOfMessage()))
            if reply.hang_up or h.our_state is not h11.DONE:
                return
            h.start_next_cycle()


async def _next_event(h: h11.Connection, stream: ByteStream) -> object:
    while (event := h.next_event()) is h11.NEED_DATA:
        try:
            h.receive_data(await stream.receive(65536))
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            h.receive_data(b"")
    return event


async def read_head(stream: ByteStream) -> bytes:
    """Raw origins: read up to the end of a request head (the body may follow)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    return data


@asynccontextmanager
async def serving(handler: Callable[[ByteStream], Awaitable[None]],
                  tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """Serve ``handler`` on a loopback port until the block exits."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port: int = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        if tls is None:
            tg.start_soon(listener.serve, handler)
        else:
            tg.start_soon(TLSListener(listener, tls, standard_compatible=False).serve, handler)
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


@asynccontextmanager
async def connector_for(port: int, **options: float) -> AsyncIterator[HttpConnector]:
    connector = HttpConnector(f"http://127.0.0.1:{port}", **options)  # type: ignore[arg-type]
    try:
        yield connector
    finally:
        await connector.aclose()


def get(path: bytes = b"/", method: bytes = b"GET") -> OriginRequest:
    return OriginRequest(method, path, [(b"Host", b"example.com")])


async def read_all(resp: OriginResponse) -> bytes:
    try:
        return b"".join([chunk async for chunk in resp.chunks()])
    finally:
        await resp.aclose()


async def body_of(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


# --- round trips ---------------------------------------------------------------------------


async def test_methods_round_trip_with_exact_headers() -> None:
    origin = H11Origin()
    headers = [(b"Host", b"example.com"), (b"X-Mixed-Case", b"v1"), (b"x-dup", b"a"),
               (b"X-Dup", b"b"), (b"Accept", b"*/*")]
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            for method in (b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS"):
                has_body = method in (b"POST", b"PUT", b"PATCH")
                payload = b"data-" + method if has_body else b""
                req = OriginRequest(method, b"/p?q=1", list(headers), body_of(payload),
                                    len(payload))
                resp = await conn.request(req, timeout=5)
                assert resp.status == 200
                assert resp.reason == b""
                assert (b"X-Reply", b"Yes") in resp.headers
                body = await read_all(resp)
                seen = origin.requests[-1]
                assert (seen.method, seen.target) == (method, b"/p?q=1")
                framing = [(b"Content-Length", b"%d" % len(payload))] if has_body else []
                assert seen.headers == headers + framing
                assert bytes(seen.body) == payload
                if method == b"HEAD":
                    assert body == b""
                    assert resp.content_length == len(b"HEAD ")
                else:
                    assert body == method + b" " + payload
                    assert resp.content_length == len(body)
            assert origin.connections == 1


async def test_empty_post_gets_content_length_zero() -> None:
    origin = H11Origin()
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            await read_all(await conn.request(get(method=b"POST"), timeout=5))
            assert origin.requests[0].headers == [(b"Host", b"example.com"),
                                                  (b"Content-Length", b"0")]


async def test_caller_framing_headers_are_replaced() -> None:
    origin = H11Origin()
    req = OriginRequest(b"POST", b"/", [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked"),
                                        (b"Content-Length", b"99")], body_of(b"abc"), 3)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            assert await read_all(await conn.request(req, timeout=5)) == b"POST abc"
            assert origin.requests[0].headers == [(b"Host", b"h"), (b"Content-Length", b"3")]


async def test_chunked_upload() -> None:
    origin = H11Origin()
    req = OriginRequest(b"POST", b"/up", [(b"Host", b"h")], body_of(b"one,", b"", b"two"), None)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            assert await read_all(await conn.request(req, timeout=5)) == b"POST one,two"
            seen = origin.requests[0]
            assert seen.headers == [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")]
            assert origin.connections == 1
            # The connection is reusable after a chunked upload.
            assert await read_all(await conn.request(get(), timeout=5)) == b"GET "
            assert origin.connections == 1


async def test_content_length_upload() -> None:
    origin = H11Origin()
    req = OriginRequest(b"PUT", b"/up", [(b"Host", b"h")], body_of(b"abc", b"defg"), 7)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            assert await read_all(await conn.request(req, timeout=5)) == b"PUT abcdefg"
            assert origin.requests[0].headers == [(b"Host", b"h"), (b"Content-Length", b"7")]


async def test_chunked_download() -> None:
    async def chunked(seen: Seen) -> Reply:
        return Reply(headers=[(b"Content-Type", b"text/plain")], body=[b"ab", b"cd", b"ef"],
                     chunked=True)

    origin = H11Origin(chunked)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            resp = await conn.request(get(), timeout=5)
            assert resp.content_length is None
            assert (b"Transfer-Encoding", b"chunked") in resp.headers
            assert await read_all(resp) == b"abcdef"
            await read_all(await conn.request(get(), timeout=5))
            assert origin.connections == 1


async def test_read_with_limit_then_stream_the_rest() -> None:
    payload = bytes(range(256)) * 1024

    async def big(seen: Seen) -> Reply:
        return Reply(body=[payload[:100_000], payload[100_000:]], chunked=True)

    origin = H11Origin(big)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            resp = await conn.request(get(), timeout=5)
            assert await resp.read(1000) is None
            assert resp.prefix + await read_all(resp) == payload
            resp = await conn.request(get(), timeout=5)
            assert await resp.read(len(payload)) == payload
            await resp.aclose()
            assert origin.connections == 1


async def test_close_delimited_download() -> None:
    async def http10(stream: ByteStream) -> None:
        async with stream:
            await read_head(stream)
            await stream.send(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            for _ in range(3):
                await stream.send(b"0123456789")

    with anyio.fail_after(5):
        async with serving(http10) as port, connector_for(port) as conn:
            resp = await conn.request(get(), timeout=5)
            assert resp.content_length is None
            assert await read_all(resp) == b"0123456789" * 3
            assert not conn._idle


async def test_informational_responses_are_skipped() -> None:
    async def hints(stream: ByteStream) -> None:
        async with stream:
            await read_head(stream)
            await stream.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                              b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
            await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with serving(hints) as port, connector_for(port) as conn:
            resp = await conn.request(get(), timeout=5)
            assert (resp.status, resp.reason) == (201, b"Created")
            assert await read_all(resp) == b"ok"


async def test_bodiless_responses_keep_the_connection() -> None:
    async def bodiless(seen: Seen) -> Reply:
        if seen.target == b"/204":
            return Reply(status=204)
        if seen.target == b"/304":
            return Reply(status=304, headers=[(b"ETag", b'"x"')])
        return Reply(headers=[(b"Content-Length", b"1234")])

    origin = H11Origin(bodiless)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            head = await conn.request(get(method=b"HEAD"), timeout=5)
            assert head.content_length == 1234
            await head.aclose()  # released without reading: nothing to read
            assert len(conn._idle) == 1
            for path, status in ((b"/204", 204), (b"/304", 304)):
                resp = await conn.request(get(path), timeout=5)
                assert resp.status == status
                assert await read_all(resp) == b""
            assert origin.connections == 1


# --- pooling -------------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_connection() -> None:
    origin = H11Origin()
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            for _ in range(3):
                assert await read_all(await conn.request(get(), timeout=5)) == b"GET "
            assert origin.connections == 1
            assert len(conn._idle) == 1


async def test_unread_body_closes_the_connection() -> None:
    async def big(seen: Seen) -> Reply:
        return Reply(body=[BLOCK] * 8)

    origin = H11Origin(big)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            resp = await conn.request(get(), timeout=5)
            await resp.aclose()
            assert not conn._idle
            await read_all(await conn.request(get(), timeout=5))
            assert origin.connections == 2


async def test_stale_pooled_connection_is_retried() -> None:
    async def hang_up(seen: Seen) -> Reply:
        return Reply(body=[b"ok"], hang_up=True)

    origin = H11Origin(hang_up)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            closed = origin.closed_event
            assert await read_all(await conn.request(get(), timeout=5)) == b"ok"
            assert len(conn._idle) == 1  # keep-alive as far as the client can tell
            await closed.wait()
            await anyio.sleep(0.05)
            assert await read_all(await conn.request(get(), timeout=5)) == b"ok"
            assert origin.connections == 2
            # A small body is read first, so it can be sent again on a fresh connection.
            await origin.closed_event.wait()
            await anyio.sleep(0.05)
            req = OriginRequest(b"POST", b"/", [(b"Host", b"h")], body_of(b"abc"), 3)
            assert await read_all(await conn.request(req, timeout=5)) == b"ok"
            assert origin.connections == 3
            assert bytes(origin.requests[-1].body) == b"abc"
            # A streamed body: the stale connection is noticed before the body is taken.
            await origin.closed_event.wait()
            await anyio.sleep(0.05)
            req = OriginRequest(b"POST", b"/", [(b"Host", b"h")], body_of(b"a", b"bc"), None)
            assert await read_all(await conn.request(req, timeout=5)) == b"ok"
            assert origin.connections == 4
            assert bytes(origin.requests[-1].body) == b"abc"


async def test_stale_connection_discards_older_idle_ones() -> None:
    async def hang_up(seen: Seen) -> Reply:
        return Reply(body=[b"ok"], hang_up=True)

    origin = H11Origin(hang_up)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            first = await conn.request(get(), timeout=5)
            second = await conn.request(get(), timeout=5)
            await read_all(first)
            await read_all(second)
            assert len(conn._idle) == 2
            while origin.closed < 2:
                await origin.closed_event.wait()
            await anyio.sleep(0.05)
            assert await read_all(await conn.request(get(), timeout=5)) == b"ok"
            assert origin.connections == 3  # one retry, not one per stale connection
            assert len(conn._idle) == 1


async def test_fresh_connection_closed_without_answer_is_not_retried() -> None:
    accepted = 0

    async def rude(stream: ByteStream) -> None:
        nonlocal accepted
        accepted += 1
        async with stream:
            await read_head(stream)

    with anyio.fail_after(5):
        async with serving(rude) as port, connector_for(port) as conn:
            with pytest.raises(OriginError, match=r"^cannot reach http://127\.0\.0\.1:\d+: "):
                await conn.request(get(), timeout=5)
            assert accepted == 1


async def test_idle_timeout_and_max_idle() -> None:
    origin = H11Origin()
    with anyio.fail_after(5):
        async with serving(origin.serve) as port:
            async with connector_for(port, idle_timeout=0.05) as conn:
                await read_all(await conn.request(get(), timeout=5))
                await anyio.sleep(0.1)
                await read_all(await conn.request(get(), timeout=5))
                assert origin.connections == 2
            async with connector_for(port, max_idle=1) as conn:
                first = await conn.request(get(), timeout=5)
                second = await conn.request(get(), timeout=5)
                await read_all(first)
                await read_all(second)
                assert len(conn._idle) == 1
                await origin.closed_event.wait()
            assert origin.closed >= 3


async def test_aclose_closes_idle_connections() -> None:
    origin = H11Origin()
    with anyio.fail_after(5):
        async with serving(origin.serve) as port:
            conn = HttpConnector(f"http://127.0.0.1:{port}")
            await read_all(await conn.request(get(), timeout=5))
            closed = origin.closed_event
            await conn.aclose()
            await closed.wait()
            assert origin.closed == 1


# --- failures ------------------------------------------------------------------------------


async def test_refused_port() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    await listener.aclose()
    with anyio.fail_after(5):
        async with connector_for(port) as conn:
            with pytest.raises(OriginError, match=r"cannot reach .*: Connection refused$"):
                await conn.request(get(), timeout=5)


async def test_origin_that_never_answers_times_out() -> None:
    async def silent(stream: ByteStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with serving(silent) as port, connector_for(port) as conn:
            start = anyio.current_time()
            with pytest.raises(OriginTimeout, match=r"^timed out waiting for http://127"):
                await conn.request(get(), timeout=0.3)
            assert 0.25 < anyio.current_time() - start < 1.5


async def test_origin_that_reads_the_body_but_never_answers_times_out() -> None:
    async def forever(seen: Seen) -> Reply:
        await anyio.sleep_forever()
        raise AssertionError

    origin = H11Origin(forever)
    req = OriginRequest(b"POST", b"/", [(b"Host", b"h")], body_of(b"abc"), None)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            with pytest.raises(OriginTimeout):
                await conn.request(req, timeout=0.3)
            assert origin.requests[0].body == b"abc"


async def test_origin_that_never_reads_the_body_times_out() -> None:
    async def deaf(stream: ByteStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    req = OriginRequest(b"POST", b"/", [(b"Host", b"h")], body_of(*[BLOCK] * 320), 320 * 65536)
    with anyio.fail_after(5):
        async with serving(deaf) as port, connector_for(port) as conn:
            with pytest.raises(OriginTimeout):
                await conn.request(req, timeout=0.3)


@pytest.mark.parametrize("framing", [b"Content-Length: 1000\r\n",
                                     b"Transfer-Encoding: chunked\r\n"])
async def test_origin_closing_mid_body(framing: bytes) -> None:
    async def partial(stream: ByteStream) -> None:
        async with stream:
            await read_head(stream)
            body = b"100\r\n" + b"y" * 100 if b"chunked" in framing else b"y" * 100
            await stream.send(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n" + body)

    with anyio.fail_after(5):
        async with serving(partial) as port, connector_for(port) as conn:
            resp = await conn.request(get(), timeout=5)
            got = b""
            with pytest.raises(OriginError, match="broke off the response"):
                async for chunk in resp.chunks():
                    got += chunk
            assert got == b"y" * 100
            await resp.aclose()
            assert not conn._idle


async def test_invalid_response_head() -> None:
    async def garbage(stream: ByteStream) -> None:
        async with stream:
            await read_head(stream)
            await stream.send(b"SMTP ready\r\n\r\n")

    with anyio.fail_after(5):
        async with serving(garbage) as port, connector_for(port) as conn:
            with pytest.raises(OriginError, match="sent an invalid response"):
                await conn.request(get(), timeout=5)


async def test_early_response_ends_the_upload() -> None:
    """The origin answers 413 while the client's body is still arriving."""

    async def refuse(stream: ByteStream) -> None:
        async with stream:
            await read_head(stream)
            await stream.send(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n"
                              b"Connection: close\r\n\r\nbig!")
            try:
                while True:
                    await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    body_taken = 0

    async def slow_body() -> AsyncIterator[bytes]:
        nonlocal body_taken
        body_taken += 1
        yield b"z" * 1000
        await anyio.sleep_forever()

    req = OriginRequest(b"POST", b"/", [(b"Host", b"h")], slow_body(), 10 * MB)
    with anyio.fail_after(5):
        async with serving(refuse) as port, connector_for(port) as conn:
            resp = await conn.request(req, timeout=5)
            assert resp.status == 413
            assert await read_all(resp) == b"big!"
            assert body_taken == 1
            assert not conn._idle


@pytest.mark.parametrize("length", [10, None])
async def test_body_iterator_errors_reach_the_caller(length: int | None) -> None:
    class ClientGone(Exception):
        pass

    async def failing_body() -> AsyncIterator[bytes]:
        yield b"abc"
        raise ClientGone

    origin = H11Origin()
    req = OriginRequest(b"POST", b"/", [(b"Host", b"h")], failing_body(), length)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            with pytest.raises(ClientGone):
                await conn.request(req, timeout=5)
            assert not conn._idle


@pytest.mark.parametrize("length", [2, 5, 100_000])
async def test_body_not_matching_its_length(length: int) -> None:
    origin = H11Origin()
    req = OriginRequest(b"PUT", b"/", [(b"Host", b"h")], body_of(b"abc"), length)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            with pytest.raises(OriginError, match="cannot send the request body"):
                await read_all(await conn.request(req, timeout=5))


def test_bad_targets() -> None:
    for target in ("ftp://x", "http://", "http://h:notaport", "http://h/path"):
        with pytest.raises(ValueError, match="bad origin target"):
            HttpConnector(target)
    conn = HttpConnector("https://api.internal")
    assert (conn.host, conn.port) == ("api.internal", 443)
    conn = HttpConnector("http://[::1]:8080")
    assert (conn.host, conn.port) == ("::1", 8080)
    assert HttpConnector("HTTP://Example.COM").port == 80


# --- streaming: flat memory ----------------------------------------------------------------


async def test_20mb_upload_and_download_stream_in_chunks() -> None:
    total = 20 * MB

    async def download(seen: Seen) -> Reply:
        return Reply(body=[BLOCK] * (total // len(BLOCK)))

    origin = H11Origin(download)
    req = OriginRequest(b"POST", b"/", [(b"Host", b"h")],
                        body_of(*[BLOCK] * (total // len(BLOCK))), total)
    with anyio.fail_after(5):
        async with serving(origin.serve) as port, connector_for(port) as conn:
            tracemalloc.start()
            try:
                resp = await conn.request(req, timeout=5)
                assert origin.requests[0].size == total
                assert origin.requests[0].largest_data <= MB
                size = largest = 0
                async for chunk in resp.chunks():
                    size += len(chunk)
                    largest = max(largest, len(chunk))
                await resp.aclose()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert size == total
            assert resp.content_length == total
            assert largest <= 65536
            assert peak < 4 * MB
            assert len(conn._idle) == 1


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture
def server_tls(tmp_path: Path) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_https_insecure_and_verified(server_tls: ssl.SSLContext) -> None:
    origin = H11Origin()
    with anyio.fail_after(5):
        async with serving(origin.serve, tls=server_tls) as port:
            conn = HttpConnector(f"https://127.0.0.1:{port}", insecure=True)
            try:
                for _ in range(2):
                    assert await read_all(await conn.request(get(), timeout=5)) == b"GET "
                assert origin.connections == 1
            finally:
                await conn.aclose()
            conn = HttpConnector(f"https://127.0.0.1:{port}")
            try:
                with pytest.raises(OriginError, match=r"cannot reach .*CERTIFICATE_VERIFY_FAILED"):
                    await conn.request(get(), timeout=5)
            finally:
                await conn.aclose()
