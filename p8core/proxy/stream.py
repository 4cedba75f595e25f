"""A connection to an origin as an asyncio Protocol, with the byte-stream calls the origin
connector makes (``send``, ``receive``, ``abort``).

The connector sends and receives a few times per request on pooled connections; anyio's
socket streams add a cancellation checkpoint and a task lookup to each call, which this
thin stream does not need: a send is one ``transport.write`` (waiting only while the
transport's buffer is over its high-water mark), a receive takes what has arrived.
Failures raise anyio's stream exceptions, so callers handle both kinds alike.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import cast

import anyio

__all__ = ["OriginStream", "open_origin_stream"]

_READ_BUFFER_MAX = 262_144


class OriginStream(asyncio.Protocol):
    """One TCP (or TLS) connection to an origin."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._closed = False
        self._paused_reading = False
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    # ---- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _READ_BUFFER_MAX and self._transport is not None:
            self._paused_reading = True
            self._transport.pause_reading()
        self._wake(self._readable)

    def eof_received(self) -> bool:
        self._eof = True
        self._wake(self._readable)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        # A TLS origin that closes without close_notify ends its stream all the same.
        if exc is not None and not isinstance(exc, ssl.SSLEOFError):
            self._error = exc
        self._wake(self._readable)
        self._wake(self._writable)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake(self._writable)
        self._writable = None

    # ---- the stream -------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        """Write ``data``; wait only while the transport holds too much unsent.

        :raises anyio.ClosedResourceError: this end was closed.
        :raises anyio.BrokenResourceError: the origin closed or reset the connection.
        """
        transport = self._transport
        if self._closed or transport is None:
            raise anyio.ClosedResourceError
        if self._eof or transport.is_closing():
            raise anyio.BrokenResourceError from self._error
        transport.write(data)
        writable = self._writable
        if writable is not None:
            await writable
            if self._eof:
                raise anyio.BrokenResourceError from self._error

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """What has arrived, up to ``max_bytes`` (waiting for some).

        :raises anyio.EndOfStream: the origin closed the connection.
        :raises anyio.BrokenResourceError: it reset it.
        """
        while not self._buffer:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._eof:
                if self._error is not None:
                    raise anyio.BrokenResourceError from self._error
                raise anyio.EndOfStream
            self._readable = asyncio.get_running_loop().create_future()
            try:
                await self._readable
            finally:
                self._readable = None
        buffer = self._buffer
        if len(buffer) <= max_bytes:  # the usual case: one copy, no slice
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
        if self._paused_reading and self._transport is not None:
            self._paused_reading = False
            self._transport.resume_reading()
        return data

    def abort(self) -> None:
        """Close the connection at once, without waiting."""
        self._closed = True
        if self._transport is not None:
            self._transport.abort()

    @property
    def ended(self) -> bool:
        """Whether the origin closed or reset the connection, or this end closed it."""
        return self._eof or self._closed

    def raw_socket(self) -> socket.socket | None:
        """The connection's socket, for a non-blocking peek."""
        return self._transport.get_extra_info("socket") if self._transport else None

    @staticmethod
    def _wake(future: asyncio.Future[None] | None) -> None:
        if future is not None and not future.done():
            future.set_result(None)


async def open_origin_stream(host: str, port: int,
                             tls: ssl.SSLContext | None = None) -> OriginStream:
    """Connect to ``host:port`` (TLS with ``tls``, checking ``host``), trying each of its
    addresses in turn.

    :raises OSError: no address could be reached; the first address's error.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    first: OSError | None = None
    for family, _, proto, _, address in infos:
        try:
            _, stream = await loop.create_connection(
                OriginStream, str(address[0]), int(address[1]), family=family, proto=proto,
                ssl=tls, server_hostname=host if tls is not None else None)
        except OSError as exc:
            first = first or exc
            continue
        return stream
    raise first or OSError(f"no address for {host}")
