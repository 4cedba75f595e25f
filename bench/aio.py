"""Cheap asyncio clients for the load generators: raw sockets, no HTTP library.

Every published payload is ``@<time.time_ns()>\\n`` (in a stream, a long-poll body or a
WebSocket message), so a receiver finds its messages with one regex over the raw bytes —
chunk framing (hex sizes, CRLF) never contains ``@`` — and computes publish→delivery
latency without decoding anything else. All processes run on one machine, so the wall
clock (``time.time_ns``) is shared.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

HOST = "127.0.0.1"
SOURCES = tuple(f"127.0.0.{i}" for i in range(2, 52))
"""Source addresses for many connections: with one, connect() spends most of its time
searching the ephemeral ports for a free one once thousands are taken."""
OPEN_CONCURRENCY = 100
"""Streams opened at once. Pushpin 1.36 answers some opens with 500 from 200 at once on."""
MESSAGE = re.compile(rb"@(\d+)\n")


def stamp() -> str:
    """A payload carrying the current time: ``@<ns>\\n``."""
    return f"@{time.time_ns()}\n"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of ``values`` (unsorted), or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


def latency_summary(ns: Sequence[int]) -> dict[str, float | None]:
    """p50/p99/max in milliseconds of latencies given in nanoseconds."""
    ms = [v / 1e6 for v in ns]
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else None}


class Sink:
    """Collects the ``@<ns>`` messages all receivers of a scenario see."""

    def __init__(self, by_stamp: bool = False) -> None:
        self.count = 0
        self.latencies = array("q")
        self.per_stamp: defaultdict[bytes, int] | None = defaultdict(int) if by_stamp else None
        self.last_at = 0
        self.closed = 0

    def feed(self, stamps: list[bytes], now: int) -> None:
        self.count += len(stamps)
        self.last_at = now
        lat = self.latencies
        for s in stamps:
            lat.append(now - int(s))
        if self.per_stamp is not None:
            for s in stamps:
                self.per_stamp[s] += 1


class StreamClient(asyncio.Protocol):
    """One held HTTP stream (``GET path``): opened once ``[stream opened]`` has arrived."""

    def __init__(self, request: bytes, sink: Sink) -> None:
        self.request = request
        self.sink = sink
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.is_open = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        if not self.is_open:
            self.buf += data
            if not self.buf.startswith(b"HTTP/1.1 200"):
                if len(self.buf) >= 12:
                    self._fail(f"status {self.buf[:40]!r}")
                return
            at = self.buf.find(b"opened]")
            if at < 0:
                return
            self.is_open = True
            data, self.buf = self.buf[at + 7:], b""
            if not self.opened.done():
                self.opened.set_result(None)
        elif self.buf:
            data = self.buf + data
        end = data.rfind(b"\n") + 1
        self.buf = data[end:]
        if end:
            found = MESSAGE.findall(data, 0, end)
            if found:
                self.sink.feed(found, now)

    def _fail(self, why: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before opening: {exc!r}"))
        elif self.is_open:
            self.sink.closed += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Opened:
    """The outcome of :func:`open_streams`."""

    def __init__(self) -> None:
        self.clients: list[StreamClient] = []
        self.failures: Counter[str] = Counter()
        self.seconds = 0.0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def report(self) -> dict[str, Any]:
        return {"opened": len(self.clients), "failures": self.failed,
                "why": dict(self.failures.most_common(5)), "seconds": self.seconds}


async def open_streams(port: int, paths: Iterable[str], sink: Sink, *, concurrency: int,
                       timeout: float) -> Opened:
    """Open a stream per path, ``concurrency`` at a time."""
    loop = asyncio.get_running_loop()
    out = Opened()
    todo = enumerate(paths)

    async def worker() -> None:
        for i, path in todo:
            request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
            client: StreamClient | None = None
            try:
                async with asyncio.timeout(timeout):
                    _, client = await loop.create_connection(
                        partial(StreamClient, request, sink), HOST, port,
                        local_addr=(SOURCES[i % len(SOURCES)], 0))
                    await client.opened
                out.clients.append(client)
            except (TimeoutError, OSError, ConnectionError) as e:
                out.failures[f"{type(e).__name__}: {e}"[:80]] += 1
                if client is not None and client.transport is not None:
                    client.transport.abort()

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    out.seconds = time.monotonic() - t0
    return out


async def post(port: int, path: str, body: bytes, *, timeout: float = 30.0) -> int:
    """POST ``body`` (JSON) on a fresh connection; the response status."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    try:
        writer.write(b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
                     b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (path.encode(), len(body), body))
        line = await asyncio.wait_for(reader.readline(), timeout)
        await asyncio.wait_for(reader.read(), timeout)
        return int(line.split(b" ", 2)[1]) if line else 0
    finally:
        writer.close()


def publish_body(items: Iterable[tuple[str, str, dict[str, Any]]]) -> bytes:
    """``{"items": [...]}`` from (channel, format name, format object) triples."""
    return json.dumps({"items": [{"channel": c, "formats": {f: obj}} for c, f, obj in items]},
                      separators=(",", ":")).encode()


async def publish(port: int, items: Sequence[tuple[str, str, dict[str, Any]]]) -> int:
    return await post(port, "/publish/", publish_body(items))


class LongPollClient(asyncio.Protocol):
    """Long-polls ``request`` in a loop on one keep-alive connection while ``running``."""

    def __init__(self, request: bytes, sink: Sink, state: LongPollState) -> None:
        self.request = request
        self.sink = sink
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.need: int | None = None
        self.head_end = 0
        self.close_after = False
        self.ok = False
        self.status = b""
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connected.set_result(None)
        self.poll()

    def poll(self) -> None:
        assert self.transport is not None
        self.waiting = True
        self.state.waiting += 1
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        self.buf += data
        while True:
            if self.need is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buf[:end].lower()
                self.head_end = end + 4
                at = head.find(b"content-length:")
                if at < 0:
                    self.state.error(f"no content-length: {head[:60]!r}")
                    self.transport.abort()  # type: ignore[union-attr]
                    return
                eol = head.find(b"\r\n", at)
                self.need = int(head[at + 15:eol if eol > 0 else len(head)])
                self.ok = head.startswith(b"http/1.1 200")
                self.status = self.buf[:self.buf.find(b"\r\n")]
                self.close_after = b"connection: close" in head
            if len(self.buf) < self.head_end + self.need:
                return
            body = self.buf[self.head_end:self.head_end + self.need]
            self.buf = self.buf[self.head_end + self.need:]
            self.need = None
            self.waiting = False
            self.state.waiting -= 1
            self.state.responses += 1
            found = MESSAGE.findall(body)
            if self.ok and found:
                self.sink.feed(found, now)
            else:
                self.state.error(f"{self.status!r} {body[:40]!r}")
            if self.close_after:
                self.transport.close()  # type: ignore[union-attr]
                return
            if self.state.running:
                self.poll()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.closed += 1
        if self.waiting:
            self.waiting = False
            self.state.waiting -= 1
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(repr(exc)))
        if not self.gone.done():
            self.gone.set_result(None)


class LongPollState:
    """Shared by all long-poll clients: how many wait, answers, errors, the stop switch."""

    def __init__(self) -> None:
        self.waiting = 0
        self.responses = 0
        self.errors = 0
        self.why: Counter[str] = Counter()
        self.closed = 0
        self.running = True

    def error(self, why: str) -> None:
        self.errors += 1
        self.why[why[:100]] += 1


# --- WebSocket -----------------------------------------------------------------------------

WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x1f\x8b\x3c\x55"


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked client frame (payload < 64 KiB)."""
    n = len(payload)
    head = bytes((0x80 | opcode, 0x80 | n)) if n < 126 else (
        bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big"))
    masked = (int.from_bytes(payload, "big")
              ^ int.from_bytes((MASK * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return head + MASK + masked


class WsEchoClient(asyncio.Protocol):
    """A WebSocket client that sends a message, waits for it back, and sends the next."""

    def __init__(self, path: bytes, on_rtt: Callable[[int], None], state: WsState) -> None:
        self.path = path
        self.on_rtt = on_rtt
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.idle: asyncio.Future[None] | None = None
        self.buf = b""
        self.is_open = False
        self.sent_at = 0
        self.expect = b""
        self.outstanding = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(  # type: ignore[union-attr]
            b"GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
            b"\r\n" % (self.path, WS_KEY))

    def send_next(self) -> None:
        self.sent_at = time.time_ns()
        self.expect = b"@%d" % self.sent_at
        self.outstanding = True
        self.state.sent += 1
        self.transport.write(ws_frame(self.expect))  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.is_open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(f"handshake: {buf[:40]!r}"))
                self.transport.abort()  # type: ignore[union-attr]
                return
            self.is_open = True
            buf = buf[end + 4:]
            self.opened.set_result(None)
        while len(buf) >= 2:
            n = buf[1] & 0x7F
            at = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, at = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, at = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < at + n:
                break
            opcode, payload, buf = buf[0] & 0x0F, buf[at:at + n], buf[at + n:]
            if opcode in (1, 2):
                self.on_message(payload)
            elif opcode == 9:
                self.transport.write(ws_frame(payload, 10))  # type: ignore[union-attr]
            elif opcode == 8:
                self.transport.close()  # type: ignore[union-attr]
        self.buf = buf

    def on_message(self, payload: bytes) -> None:
        if not self.outstanding or payload != self.expect:
            self.state.errors += 1
            return
        self.outstanding = False
        self.state.received += 1
        self.on_rtt(time.time_ns() - self.sent_at)
        if self.state.running:
            self.send_next()
        elif self.idle is not None and not self.idle.done():
            self.idle.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.closed += 1
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(repr(exc)))
        if self.idle is not None and not self.idle.done():
            self.idle.set_result(None)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"\x88\x82" + MASK + bytes(
                a ^ b for a, b in zip(b"\x03\xe8", MASK, strict=False)))
            self.transport.close()


class WsState:
    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.errors = 0
        self.closed = 0
        self.running = True
