"""Helpers for testing streaming-mode (``zhttp+…``) handlers and p8 against each other.

:class:`StreamHandler` is a handler written with pyzmq: PULL (first packets), ROUTER (later
packets, with its own identity) and XPUB (its packets to p8); XPUB shows p8's
subscription, and so p8's address. :func:`streaming` runs p8 with one ``zhttp+tcp://``
route and connects handlers to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import zmq
import zmq.asyncio

from p8core.codec import tnetstring
from p8core.testing import Running, run_p8

Packet = dict[bytes, Any]


def config(target: str, *, plugins: tuple[str, ...] = ("zhttp_backend",),
           timeout: float | None = None, handler_wait: float = 0.3,
           route: dict[str, Any] | None = None) -> dict[str, Any]:
    """A p8 config with one ``debug`` route to ``target`` (error answers give their
    reason; more options in ``route``) and ``plugins`` enabled."""
    raw: dict[str, Any] = {
        "plugins": {"enabled": list(plugins), "zhttp_backend": {"handler_wait": handler_wait}},
        "routes": [{"target": target, "debug": True, **(route or {})}],
    }
    if timeout is not None:
        raw["proxy"] = {"backend_timeout": timeout}
    return raw


class StreamHandler:
    """One streaming-mode handler; ``seq`` is counted per session."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoints: tuple[str, str, str],
                 name: bytes = b"handler-1") -> None:
        self.name = name
        self.pull = ctx.socket(zmq.PULL)
        self.router = ctx.socket(zmq.ROUTER)
        self.router.routing_id = name
        self.xpub = ctx.socket(zmq.XPUB)
        for sock, endpoint in zip((self.pull, self.router, self.xpub), endpoints, strict=True):
            sock.linger = 0
            sock.connect(endpoint)
        self.p8 = b""
        self.seq: dict[bytes, int] = {}

    async def ready(self) -> None:
        """Wait for p8's subscription: from then on, what this handler publishes arrives."""
        message = await self.xpub.recv()
        assert message[:1] == b"\x01" and message.endswith(b" ")
        self.p8 = message[1:-1]

    async def first(self) -> Packet:
        raw = await self.pull.recv()
        return _decode(raw)

    async def next(self) -> Packet:
        """The next packet p8 sent through ROUTER."""
        sender, empty, raw = await self.router.recv_multipart()
        assert (sender, empty) == (self.p8, b"")
        return _decode(raw)

    async def send(self, rid: bytes, **fields: Any) -> None:
        seq = self.seq.get(rid, 0)
        self.seq[rid] = seq + 1
        packet = {b"from": self.name, b"id": rid, b"seq": seq,
                  **{key.replace("_", "-").encode(): value for key, value in fields.items()}}
        await self.send_raw(b"T" + tnetstring.dumps(packet))

    async def send_raw(self, payload: bytes) -> None:
        await self.xpub.send(self.p8 + b" " + payload)

    def close(self) -> None:
        for sock in (self.pull, self.router, self.xpub):
            sock.close(linger=0)


def _decode(raw: bytes) -> Packet:
    assert raw[:1] == b"T"
    packet = tnetstring.loads(raw[1:])
    assert isinstance(packet, dict)
    return packet


@asynccontextmanager
async def streaming(ctx: zmq.asyncio.Context, ports: Callable[[int], int], *,
                    handlers: int = 1, plugins: tuple[str, ...] = ("zhttp_backend",),
                    timeout: float | None = None, route: dict[str, Any] | None = None,
                    ) -> AsyncIterator[tuple[Running, list[StreamHandler], str]]:
    """p8 with a ``zhttp+tcp://`` route on free ``ports``, and ``handlers`` connected to
    it and ready: yields p8, the handlers and the target."""
    port = ports(3)
    target = f"zhttp+tcp://127.0.0.1:{port}"
    endpoints = tuple(f"tcp://127.0.0.1:{port + i}" for i in range(3))
    async with run_p8(config(target, plugins=plugins, timeout=timeout, route=route)) as p8:
        connected = [StreamHandler(ctx, endpoints, b"handler-%d" % i)  # type: ignore[arg-type]
                     for i in range(1, handlers + 1)]
        try:
            with anyio.fail_after(5):
                for handler in connected:
                    await handler.ready()
            yield p8, connected, target
        finally:
            for handler in connected:
                handler.close()
