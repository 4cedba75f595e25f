"""Wildcard channels across instances: two p8 whose SUB inputs connect to one real XPUB
publisher; a pattern subscribes the SUB socket to its prefix, and only matching items
reach the pattern's subscribers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
import zmq
import zmq.asyncio
from p8_http_stream.testing import StreamClient

from p8core.testing import Running, run_p8

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def instance(xpub_port: int) -> AsyncIterator[Running]:
    zmq_settings = {"command": "", "pull": "", "sub_connect": True,
                    "sub": [f"tcp://127.0.0.1:{xpub_port}"]}
    config = {"plugins": {"enabled": ["http_stream", "zmq_pubsub"],
                          "zmq_pubsub": zmq_settings},
              "routes": [{"target": "test", "wildcard": True}]}
    async with run_p8(config) as p8:
        yield p8


async def send(xpub: zmq.asyncio.Socket, *channels: str) -> None:
    for channel in channels:
        content = {"formats": {"http-stream": {"content": f"<{channel}>"}}}
        await xpub.send_multipart([channel.encode(), b"J" + json.dumps(content).encode()])


async def subscriptions(xpub: zmq.asyncio.Socket, count: int) -> set[bytes]:
    return {await xpub.recv() for _ in range(count)}


async def test_a_pattern_subscribes_its_prefix_on_the_xpub(ctx: zmq.asyncio.Context) -> None:
    xpub = ctx.socket(zmq.XPUB)
    port = xpub.bind_to_random_port("tcp://127.0.0.1")
    async with instance(port) as first, instance(port) as second:
        with anyio.fail_after(5):
            exact = await StreamClient.connect(first.bound.port, "/stream?channel=news.a")
            pattern = await StreamClient.connect(second.bound.port, "/stream?channel=news.*")
            assert await exact.chunk() == await pattern.chunk() == b"[stream opened]\n"
            assert await subscriptions(xpub, 2) == {b"\x01news.a", b"\x01news."}
            await send(xpub, "news.a", "newsroom", "news.b.c", "sports.x", "news", "news.ab",
                       "news.end")
            assert (await pattern.read_until(b"<news.end>")
                    == b"[stream opened]\n<news.a><news.b.c><news.ab><news.end>")
            await send(xpub, "news.a")
            assert await exact.read_until(b"<news.a>") == b"[stream opened]\n<news.a>"
            # news.ab got past the SUB filter news.a, but not to news.a's subscriber.
            assert await exact.chunk() == b"<news.a>" and exact.received.count(b"<") == 2
            await pattern.aclose()
            assert await xpub.recv() == b"\x00news."
            await exact.aclose()
            assert await xpub.recv() == b"\x00news.a"
    xpub.close(linger=0)
