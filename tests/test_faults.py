"""Faults around p8, each caused on purpose: backends that are down, reset, answer garbage,
hang or vanish; clients that vanish or read too slowly (SIGTERM: test_shutdown.py). Each
test checks the client's answer, the counter, and a bystander stream that keeps receiving
its publishes."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
import zmq
import zmq.asyncio
from anyio.abc import SocketAttribute, SocketStream

from p8core.testing import Bystander, free_port, publish, run_p8

pytestmark = pytest.mark.anyio

BYSTANDER_ROUTE = {"path_prefix": "/bystander/", "target": "test"}
GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)



@asynccontextmanager
async def raw_origin(serve: Callable[[bytes, SocketStream], Awaitable[None]],
                     ) -> AsyncIterator[str]:
    """A backend that reads a request head and lets ``serve`` (given the request line)
    write whatever it wants on the raw connection."""
    async def handle(stream: SocketStream) -> None:
        async with stream:
            with contextlib.suppress(*GONE):
                head = b""
                while b"\r\n\r\n" not in head:
                    head += await stream.receive()
                await serve(head.split(b"\r\n", 1)[0], stream)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        tg.cancel_scope.cancel()


async def reset(stream: SocketStream) -> None:
    """Close with a TCP reset instead of a FIN."""
    stream.extra(SocketAttribute.raw_socket).setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


def config(*routes: dict[str, Any], **tables: Any) -> dict[str, Any]:
    """Debug routes, so that error answers give their reason."""
    return {"plugins": {"enabled": ["http_stream"]}, "proxy": {"debug": True}, **tables,
            "routes": [BYSTANDER_ROUTE, *routes]}


async def test_backend_down_garbage_and_hanging_get_502_502_504() -> None:
    async def serve(line: bytes, stream: SocketStream) -> None:
        if b"/garbage" in line:
            await stream.send(b"SPDY/9 what\r\n\r\n")
        else:
            await anyio.sleep_forever()

    async with raw_origin(serve) as origin, \
            run_p8(config({"path_prefix": "/down", "target": f"http://127.0.0.1:{free_port()}"},
                          {"target": origin},
                          proxy={"backend_timeout": 0.5, "debug": True})) as p8, \
            Bystander.hold(p8, "/bystander/stream") as bystander, \
            httpx.AsyncClient(base_url=p8.url, timeout=5) as client:
        down = await client.get("/down")
        assert down.status_code == 502 and down.text.startswith("cannot reach http://")
        garbage = await client.get("/garbage")
        assert garbage.status_code == 502 and "sent an invalid response" in garbage.text
        hang = await client.get("/hang")
        assert (hang.status_code, hang.text) == (504, f"timed out waiting for {origin}\n")
        assert (p8.app.metrics.origin_failures, p8.app.metrics.origin_timeouts) == (2, 1)
        await bystander.check()


async def test_backend_reset_mid_body() -> None:
    """A plain response cut off by a reset ends the client connection; a GRIP response cut
    off the same way gets 502."""
    async def serve(line: bytes, stream: SocketStream) -> None:
        grip = b"Grip-Hold: stream\r\n" if b"/grip" in line else b""
        await stream.send(b"HTTP/1.1 200 OK\r\n" + grip + b"Content-Length: 100000\r\n\r\n"
                          + b"x" * 1000)
        await anyio.sleep(0.05)
        await reset(stream)

    async with raw_origin(serve) as origin, run_p8(config({"target": origin})) as p8, \
            Bystander.hold(p8, "/bystander/stream") as bystander, \
            httpx.AsyncClient(base_url=p8.url, timeout=5) as client:
        received = b""
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream("GET", "/plain") as plain:
                async for chunk in plain.aiter_raw():
                    received += chunk
        assert received == b"x" * 1000
        grip = await client.get("/grip")
        assert grip.status_code == 502 and "broke off" in grip.text
        assert (p8.app.metrics.origin_broke_off, p8.app.metrics.origin_failures) == (1, 1)
        await bystander.check()


async def test_zhttp_handler_vanishes() -> None:
    """A handler that takes a request and disappears: that client gets 504, the next one
    (no handler left) 502."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    routes = [{"path_prefix": "/z", "target": f"zhttpreq+tcp{endpoint[3:]}"}]
    raw = {"plugins": {"enabled": ["http_stream", "zhttp_backend"],
                       "zhttp_backend": {"handler_wait": 0.2}},
           "proxy": {"backend_timeout": 0.5, "debug": True},
           "routes": [BYSTANDER_ROUTE, *routes]}
    ctx = zmq.asyncio.Context()
    try:
        async with run_p8(raw) as p8, Bystander.hold(p8, "/bystander/stream") as bystander, \
                httpx.AsyncClient(base_url=p8.url, timeout=5) as client:
            handler = ctx.socket(zmq.REP)
            handler.connect(endpoint)

            async def take_one_and_vanish() -> None:
                await handler.recv()
                handler.close(linger=0)

            async with anyio.create_task_group() as tg:
                tg.start_soon(take_one_and_vanish)
                first = await client.get("/z")
            assert (first.status_code, first.text) == (
                504, f"timed out waiting for the zhttp handler at {routes[0]['target']}\n")
            second = await client.get("/z")
            assert (second.status_code, second.text) == (
                502, f"no zhttp handler connected to {routes[0]['target']}\n")
            assert (p8.app.metrics.origin_timeouts, p8.app.metrics.origin_failures) == (1, 1)
            await bystander.check()
    finally:
        ctx.destroy(linger=0)


async def test_client_vanishes_mid_write() -> None:
    """The backend's connection is closed too, and a held stream leaves its channel."""
    origin_gone = anyio.Event()

    async def serve(line: bytes, stream: SocketStream) -> None:
        if b"/stream" in line:
            await stream.send(b"HTTP/1.1 200 OK\r\nGrip-Hold: stream\r\nGrip-Channel: v\r\n"
                              b"Content-Length: 5\r\n\r\nheld\n")
            return
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
        try:
            while True:
                await stream.send(b"y" * 65536)
        finally:
            origin_gone.set()

    async with raw_origin(serve) as origin, run_p8(config({"target": origin})) as p8, \
            Bystander.hold(p8, "/bystander/stream") as bystander:
        for path in (b"/big", b"/stream"):
            client = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
            await client.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            await client.receive()
            await reset(client)
        with anyio.fail_after(5):
            await origin_gone.wait()
            while p8.app.hub.subscriber_count("v") or not p8.app.metrics.clients_gone_mid_response:
                await anyio.sleep(0.01)
        await bystander.check()


async def test_client_reading_slowly_is_closed_and_counted() -> None:
    """A client that stops reading is closed once ``write_buffer_max`` is passed; the
    bystander on the same channel receives every item."""
    async with run_p8(config(server={"write_buffer_max": 65536})) as p8, \
            Bystander.hold(p8, "/bystander/stream") as bystander:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", p8.bound.port))
        with stalled:
            stalled.sendall(b"GET /bystander/stream?channel=bystander HTTP/1.1\r\nHost: x\r\n\r\n")
            with anyio.fail_after(10):
                while p8.app.hub.subscriber_count("bystander") < 2:
                    await anyio.sleep(0.01)
                item = {"channel": "bystander", "formats": {
                    "http-stream": {"content": "z" * 99_999 + "\n"}}}
                for _ in range(80):
                    assert (await publish(p8, item)).status_code == 200
                    await bystander.expect(b"z" * 99_999 + b"\n")
                    if p8.app.metrics.slow_clients_closed:
                        break
        assert p8.app.metrics.slow_clients_closed == 1
        assert p8.app.hub.subscriber_count("bystander") == 1
        await bystander.check()
