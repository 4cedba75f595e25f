"""One publish reaching several instances: ``p8 publish --spec a,b`` and gripcontrol with
several proxies, as a publisher reaches a cluster whose nodes do not share a bus."""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack

import anyio
import gripcontrol
import pytest

from p8core.testing import Running, run_p8

pytestmark = pytest.mark.anyio

P8 = [sys.executable, "-m", "p8core.cli"]
NO_ZMQ = {"plugins": {"enabled": ["http_stream"]}}


async def stream(p8: Running, channel: str) -> anyio.abc.SocketStream:
    conn = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
    await conn.send(f"GET /stream?channel={channel} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    got = b""
    while b"[stream opened]\n" not in got:
        got += await conn.receive()
    return conn


async def receive(conn: anyio.abc.SocketStream, text: bytes) -> None:
    got = b""
    while text not in got:
        got += await conn.receive()
    assert got.count(text) == 1


async def test_p8_publish_spec_publishes_to_each_instance() -> None:
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(run_p8(NO_ZMQ)) for _ in range(2)]
        with anyio.fail_after(10):
            clients = [await stream(node, "c") for node in nodes]
            spec = ",".join(node.control_url for node in nodes)
            done = await anyio.run_process([*P8, "publish", "--spec", spec, "c", "both"])
            assert done.stdout == b"Published\n"
            for client in clients:
                await receive(client, b"both\n")

            down = "http://127.0.0.1:9"  # nothing listens on the discard port
            failed = await anyio.run_process(
                [*P8, "publish", "--spec", f"{down},{nodes[1].control_url}", "c", "one"],
                check=False)
            assert failed.returncode == 1
            assert failed.stderr.decode().startswith(f"Error: {down}: ")
            await receive(clients[1], b"one\n")
            for client in clients:
                await client.aclose()


async def test_gripcontrol_with_several_proxies_reaches_each_instance() -> None:
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(run_p8(NO_ZMQ)) for _ in range(3)]
        pub = gripcontrol.GripPubControl([{"control_uri": node.control_url} for node in nodes])
        with anyio.fail_after(10):
            clients = [await stream(node, "g") for node in nodes]
            await anyio.to_thread.run_sync(
                lambda: pub.publish_http_stream("g", "from gripcontrol\n", blocking=True))
            for client in clients:
                await receive(client, b"from gripcontrol\n")
                await client.aclose()
        pub.close()
