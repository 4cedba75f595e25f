"""Helpers for testing streams over real sockets: a client that reads a response chunk by
chunk (as the server framed it) and notes when each chunk arrived."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import h11
from anyio.abc import SocketStream

__all__ = ["Chunk", "StreamClient", "open_stream"]


class Chunk(bytes):
    """One chunk of a chunked body; ``at`` is when its last byte arrived (anyio time)."""

    at: float


class StreamClient:
    """A raw HTTP/1.1 client on one connection, for reading a held stream.

    Use :func:`open_stream` (or :meth:`connect`, then :meth:`aclose`), then :meth:`head`
    and :meth:`chunk` (or :meth:`read_until`).
    """

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)
        self.response: h11.Response | None = None
        self.ended = False
        self.received = bytearray()
        """Every body byte so far."""
        self._partial = bytearray()

    @classmethod
    async def connect(cls, port: int, target: str = "/", *, host: str = "example.com",
                   headers: Sequence[tuple[str, str]] = ()) -> StreamClient:
        """Connect to ``127.0.0.1:port`` and send ``GET target``."""
        stream = await anyio.connect_tcp("127.0.0.1", port)
        client = cls(stream)
        request = h11.Request(method="GET", target=target,
                              headers=[("Host", host), *headers])
        await stream.send(client.conn.send(request) + client.conn.send(h11.EndOfMessage()))
        return client

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def _event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.stream.receive(65536)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                data = b""
            self.conn.receive_data(data)

    async def head(self) -> h11.Response:
        """The response head."""
        while self.response is None:
            event = await self._event()
            if isinstance(event, h11.Response):
                self.response = event
            elif not isinstance(event, h11.InformationalResponse):
                raise AssertionError(f"expected a response head, got {event!r}")
        return self.response

    def header(self, name: bytes) -> bytes | None:
        """A header of the response head, by lowercase name."""
        assert self.response is not None
        return next((v for n, v in self.response.headers if n == name), None)

    async def chunk(self) -> Chunk:
        """The next whole chunk of the body.

        :raises EOFError: the body ended (``0\\r\\n\\r\\n``) or the connection closed.
        """
        await self.head()
        while not self.ended:
            event = await self._event()
            if isinstance(event, h11.Data):
                self._partial += event.data
                self.received += event.data
                # Without chunked framing (HTTP/1.0) every piece counts as a chunk.
                if event.chunk_end or self.header(b"transfer-encoding") != b"chunked":
                    chunk = Chunk(self._partial)
                    chunk.at = anyio.current_time()
                    self._partial.clear()
                    return chunk
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self.ended = True
            else:
                raise AssertionError(f"unexpected {event!r}")
        raise EOFError("the response ended")

    async def read_until(self, marker: bytes) -> bytes:
        """Read chunks until the body so far contains ``marker``; returns the whole body."""
        while marker not in self.received:
            await self.chunk()
        return bytes(self.received)

    async def rest(self) -> bytes:
        """Read to the end of the body; returns the whole body."""
        try:
            while True:
                await self.chunk()
        except EOFError:
            return bytes(self.received)


@asynccontextmanager
async def open_stream(port: int, target: str = "/", *, host: str = "example.com",
                      headers: Sequence[tuple[str, str]] = ()) -> AsyncIterator[StreamClient]:
    """A :class:`StreamClient` that sent ``GET target``, closed when the block exits."""
    client = await StreamClient.connect(port, target, host=host, headers=headers)
    try:
        yield client
    finally:
        await client.aclose()
