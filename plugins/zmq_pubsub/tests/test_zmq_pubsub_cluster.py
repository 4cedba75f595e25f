"""Three p8 instances, one XPUB publisher: a publish reaches every client exactly once,
whichever instance it is connected to."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest
import zmq
import zmq.asyncio

from p8core.app import App
from p8core.codec.tnetstring import dumps
from p8core.testing import run_p8

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif("stream" not in App.from_raw({}).hold_modes,
                       reason="needs the http_stream plugin"),
]

NODES = 3
CLIENTS_PER_NODE = 4


async def _open_stream(port: int) -> anyio.abc.SocketStream:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    await stream.send(b"GET /stream?channel=news HTTP/1.1\r\nHost: x\r\n\r\n")
    head = b""
    while b"[stream opened]\n" not in head:
        head += await stream.receive()
    return stream


async def test_three_instances_one_publisher_every_client_once() -> None:
    ctx = zmq.asyncio.Context()
    xpub = ctx.socket(zmq.XPUB)
    xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
    port = xpub.bind_to_random_port("tcp://127.0.0.1")
    config = {"plugins": {"zmq_pubsub": {"pull": "", "sub": [f"tcp://127.0.0.1:{port}"],
                                         "sub_connect": True, "command": ""}}}
    try:
        async with AsyncExitStack() as stack:
            nodes = [await stack.enter_async_context(run_p8(config)) for _ in range(NODES)]
            with anyio.fail_after(10):
                clients = [await _open_stream(node.bound.port)
                           for node in nodes for _ in range(CLIENTS_PER_NODE)]
                for _ in range(NODES):
                    assert await xpub.recv() == b"\x01news", "each node subscribes once"
                await xpub.send_multipart([b"news", dumps({"http-stream": {"content": "x!\n"}})])
                for client in clients:
                    got = b""
                    while b"x!\n" not in got:
                        got += await client.receive()
                    assert got.count(b"x!\n") == 1
                with anyio.move_on_after(0.3):
                    extra = await clients[0].receive()
                    pytest.fail(f"a client got more than one copy: {extra!r}")
            for client in clients:
                await client.aclose()
    finally:
        xpub.close(linger=0)
        ctx.term()
