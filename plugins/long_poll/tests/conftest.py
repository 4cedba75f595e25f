"""A light HTTP/1.1 client for long-poll tests: one connection, request after request.

httpx hides which connection a request used; these tests need to see it (keep-alive after
an answer) and to run a thousand clients cheaply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import h11
import pytest
from anyio.abc import SocketStream


@dataclass
class Answer:
    """A response as the client received it; ``headers`` in order, names lowercased."""

    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name.lower()), None)

    @property
    def names(self) -> list[bytes]:
        return [n for n, _ in self.headers]


class ClientConnection:
    """One client connection to p8, driven by h11."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def send(self, target: str, *, method: str = "GET",
                   headers: Sequence[tuple[str, str]] = ()) -> None:
        """Send a request (no body); the answer comes from :meth:`receive`."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        data = self.h11.send(h11.Request(method=method, target=target,
                                         headers=[("Host", "p8.test"), *headers])) or b""
        data += self.h11.send(h11.EndOfMessage()) or b""
        await self.stream.send(data)

    async def receive(self) -> Answer:
        """The next whole response."""
        head = await self._next()
        assert isinstance(head, h11.Response), head
        body = bytearray()
        while isinstance(event := await self._next(), h11.Data):
            body += event.data
        assert isinstance(event, h11.EndOfMessage), event
        return Answer(head.status_code, bytes(head.reason), list(head.headers), bytes(body))

    async def request(self, target: str, *, method: str = "GET",
                      headers: Sequence[tuple[str, str]] = ()) -> Answer:
        await self.send(target, method=method, headers=headers)
        return await self.receive()

    async def closed_by_peer(self) -> bool:
        """Whether the server closes the connection (rather than sending anything)."""
        try:
            return await self.stream.receive() == b""
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return True

    async def _next(self) -> Any:
        while (event := self.h11.next_event()) is h11.NEED_DATA:
            try:
                self.h11.receive_data(await self.stream.receive(65536))
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                self.h11.receive_data(b"")
        return event


Connect = Callable[[int], AbstractAsyncContextManager[ClientConnection]]


@pytest.fixture
def connect() -> Connect:
    """``async with connect(port) as conn``: a client connection to p8 on ``port``."""

    @asynccontextmanager
    async def opened(port: int) -> AsyncIterator[ClientConnection]:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            yield ClientConnection(stream)

    return opened
