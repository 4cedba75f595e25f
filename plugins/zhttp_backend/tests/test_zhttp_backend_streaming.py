"""``zhttp+…`` targets over real ZeroMQ sockets: streaming handlers written with pyzmq
(:mod:`p8_zhttp_backend.testing`)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import zmq
import zmq.asyncio
from p8_zhttp_backend.session import WINDOW
from p8_zhttp_backend.testing import Packet, StreamHandler, config, streaming
from structlog.testing import capture_logs

from p8core.app import App
from p8core.testing import publish, run_p8

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def opened(client: httpx.AsyncClient, url: str, handler: StreamHandler,
                 **head: Any) -> AsyncIterator[tuple[httpx.Response, Packet]]:
    """A streamed GET of ``url`` that ``handler`` answers with ``head`` (more to come)."""
    first: Packet = {}

    async def respond() -> None:
        first.update(await handler.first())
        await handler.send(first[b"id"], **head)

    async with anyio.create_task_group() as tg:
        tg.start_soon(respond)
        async with client.stream("GET", url, headers={"X-Custom": "yes"}) as resp:
            yield resp, first


async def read_until(chunks: AsyncIterator[bytes], expected: bytes) -> None:
    received = b""
    while len(received) < len(expected):
        received += await anext(chunks)
    assert received == expected


async def test_zhttp_backend_stream_response_in_parts(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async with (streaming(ctx, free_ports) as (p8, [handler], _),
                httpx.AsyncClient() as client):
        with anyio.fail_after(5):
            async with opened(client, f"{p8.url}/zs/stream?x=1", handler, code=200,
                              reason=b"OK", body=b"part1\n", more=True, credits=1000,
                              headers=[[b"Content-Type", b"text/plain"]]) as (resp, first):
                rid = first[b"id"]
                chunks = resp.aiter_raw()
                await read_until(chunks, b"part1\n")
                credit = await handler.next()
                assert credit == {b"from": handler.p8, b"id": rid, b"seq": 1,
                                  b"type": b"credit", b"credits": 6}
                await handler.send(rid, body=b"part2\n", more=True)
                await read_until(chunks, b"part2\n")
                await handler.send(rid, body=b"end\n")
                await read_until(chunks, b"end\n")
                assert [chunk async for chunk in chunks] == []
            assert resp.status_code == 200
            assert resp.headers["content-type"] == "text/plain"
            assert resp.headers["transfer-encoding"] == "chunked"
    assert first[b"from"] == handler.p8
    assert (first[b"seq"], first[b"stream"], first[b"credits"]) == (0, True, WINDOW)
    assert (first[b"method"], first[b"uri"]) == (b"GET", f"{p8.url}/zs/stream?x=1".encode())
    headers = dict(first[b"headers"])
    assert headers[b"x-custom"] == b"yes"
    assert b"grip-sig" in headers and b"grip-feature" in headers
    for absent in (b"body", b"more", b"type"):
        assert absent not in first


async def test_zhttp_backend_stream_large_response_beyond_the_window(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    size, part = 1_000_000, 50_000
    payload = hashlib.sha256(b"seed").digest() * (size // 32) + b"tail"
    waits = 0

    async def serve(handler: StreamHandler) -> None:
        nonlocal waits
        first = await handler.first()
        rid, credits = first[b"id"], first[b"credits"]
        await handler.send(rid, code=200, more=True,
                           headers=[[b"Content-Length", b"%d" % len(payload)]])
        offset = 0
        while offset < len(payload):
            while credits < part and credits < len(payload) - offset:
                packet = await handler.next()
                assert packet[b"type"] == b"credit"
                credits += packet[b"credits"]
                waits += 1
            data = payload[offset:offset + min(part, credits)]
            offset += len(data)
            credits -= len(data)
            await handler.send(rid, body=data, more=offset < len(payload))

    async with (streaming(ctx, free_ports) as (p8, [handler], _),
                httpx.AsyncClient() as client, anyio.create_task_group() as tg):
        tg.start_soon(serve, handler)
        with anyio.fail_after(10):
            resp = await client.get(f"{p8.url}/big")
    assert resp.status_code == 200
    assert resp.headers["content-length"] == str(len(payload))
    assert resp.content == payload
    assert waits >= (len(payload) - WINDOW) // WINDOW, "the handler had to wait for credits"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_zhttp_backend_stream_large_request_beyond_the_window(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int], chunked: bool) -> None:
    upload = bytes(range(256)) * 4000  # 1 024 000 bytes
    grant = 100_000
    received: list[Packet] = []

    async def serve(handler: StreamHandler) -> None:
        first = await handler.first()
        received.append(first)
        rid = first[b"id"]
        await handler.send(rid, type=b"credit", credits=grant)
        more = first.get(b"more", False)
        while more:
            packet = await handler.next()
            received.append(packet)
            assert len(packet.get(b"body", b"")) <= grant
            more = packet.get(b"more", False)
            if packet.get(b"body"):
                await handler.send(rid, type=b"credit", credits=len(packet[b"body"]))
        body = b"".join(p.get(b"body", b"") for p in received)
        await handler.send(rid, code=200, body=hashlib.sha256(body).hexdigest().encode())

    async def content() -> AsyncIterator[bytes]:
        for i in range(0, len(upload), 30_000):
            yield upload[i:i + 30_000]

    async with (streaming(ctx, free_ports) as (p8, [handler], _),
                httpx.AsyncClient() as client, anyio.create_task_group() as tg):
        tg.start_soon(serve, handler)
        with anyio.fail_after(10):
            resp = await client.post(f"{p8.url}/upload",
                                     content=content() if chunked else upload)
    assert (resp.status_code, resp.text) == (200, hashlib.sha256(upload).hexdigest())
    first = received[0]
    assert first[b"more"] is True and len(first[b"body"]) <= 200_000
    assert [p[b"seq"] for p in received[1:]] == list(range(1, len(received)))
    lengths = dict(first[b"headers"]).get(b"content-length")
    assert lengths == (None if chunked else b"1024000")
    if chunked:
        assert received[-1].get(b"body", b"") == b"" and b"more" not in received[-1]


async def test_zhttp_backend_stream_handlers_share_the_load(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async def serve(handler: StreamHandler) -> None:
        while True:
            first = await handler.first()
            await handler.send(first[b"id"], code=200, body=handler.name)

    async with (streaming(ctx, free_ports, handlers=2) as (p8, handlers, _),
                httpx.AsyncClient() as client, anyio.create_task_group() as tg):
        for handler in handlers:
            tg.start_soon(serve, handler)
        with anyio.fail_after(5):
            seen: set[bytes] = set()
            while len(seen) < 2:  # until both PULL sockets have connected
                seen.add((await client.get(p8.url)).content)
            answers = [(await client.get(p8.url)).content for _ in range(6)]
        tg.cancel_scope.cancel()
    assert sorted(answers) == [b"handler-1"] * 3 + [b"handler-2"] * 3, "dealt in turn"


async def test_zhttp_backend_stream_no_handler_is_502(free_ports: Callable[[int], int]) -> None:
    target = f"zhttp+tcp://127.0.0.1:{free_ports(3)}"
    async with run_p8(config(target, handler_wait=0.2)) as p8, httpx.AsyncClient() as client:
        with anyio.fail_after(5):
            resp = await client.get(p8.url)
    assert (resp.status_code, resp.text) == (502, f"no zhttp handler connected to {target}\n")


async def test_zhttp_backend_stream_no_answer_in_time_is_504(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async with (streaming(ctx, free_ports, timeout=0.3) as (p8, [handler], target),
                httpx.AsyncClient() as client):
        with anyio.fail_after(5):
            resp = await client.get(p8.url)
            await handler.first()
    assert (resp.status_code, resp.text) == (
        504, f"timed out waiting for the zhttp handler at {target}\n")


async def test_zhttp_backend_stream_failures_fail_only_their_request(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async def serve(handler: StreamHandler) -> None:
        while True:
            first = await handler.first()
            rid, path = first[b"id"], first[b"uri"].rsplit(b"/", 1)[1]
            if path == b"error":
                await handler.send(rid, type=b"error", condition=b"remote-connection-failed")
            elif path == b"field":
                await handler.send(rid, code=b"200")
            elif path == b"json":
                await handler.send_raw(b'J{"id": "%s", "seq": 0}' % rid)
            elif path == b"garbage":
                await handler.send_raw(b"\xff\x00")
                await handler.send(rid, code=200, body=b"after garbage\n")
            else:
                await handler.send(rid, code=200, body=b"fine\n")

    with capture_logs() as logs:
        async with (streaming(ctx, free_ports) as (p8, [handler], target),
                    httpx.AsyncClient() as client, anyio.create_task_group() as tg):
            tg.start_soon(serve, handler)
            failed = f"the zhttp handler at {target} failed the request: "
            expected = {
                "error": failed + "the handler answered with error 'remote-connection-failed'",
                "field": failed + "malformed packet: 'code' must be an integer",
                "json": failed + "malformed packet: JSON packets are not accepted: send 'T' "
                                 "and a tnetstring",
                "garbage": "after garbage",
                "fine": "fine",
            }
            with anyio.fail_after(5):
                for path, text in expected.items():
                    resp = await client.get(f"{p8.url}/{path}")
                    status = 200 if path in ("garbage", "fine") else 502
                    assert (resp.status_code, resp.text) == (status, text + "\n"), path
            tg.cancel_scope.cancel()
    rejected = [e for e in logs if e["event"] == "zhttp_packet_rejected"]
    assert [e["reason"] for e in rejected] == [
        "'code' must be an integer", "JSON packets are not accepted: send 'T' and a tnetstring",
        "packet does not start with 'T' (got b'\\xff')"]


async def test_zhttp_backend_stream_out_of_order_packet_cancels(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async with (streaming(ctx, free_ports) as (p8, [handler], _),
                httpx.AsyncClient() as client):
        with anyio.fail_after(5):
            async with opened(client, f"{p8.url}/x", handler, code=200, body=b"part1\n",
                              more=True) as (resp, first):
                rid = first[b"id"]
                chunks = resp.aiter_raw()
                await read_until(chunks, b"part1\n")
                assert (await handler.next())[b"type"] == b"credit"
                handler.seq[rid] += 1
                await handler.send(rid, body=b"skipped a seq\n", more=True)
                assert (await handler.next()) == {b"from": handler.p8, b"id": rid, b"seq": 2,
                                                  b"type": b"cancel"}
                with pytest.raises(httpx.RemoteProtocolError):
                    async for _ in chunks:
                        pass


async def test_zhttp_backend_stream_client_gone_cancels(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async with streaming(ctx, free_ports) as (p8, [handler], _):
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
            await stream.send(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
            rid = (await handler.first())[b"id"]
            await handler.send(rid, code=200, body=b"part1\n", more=True)
            assert b"part1" in await stream.receive()
            await stream.aclose()
            packet = await handler.next()
            while packet[b"type"] != b"cancel":
                await handler.send(rid, body=b"more\n", more=True)
                packet = await handler.next()
            assert packet == {b"from": handler.p8, b"id": rid, b"seq": packet[b"seq"],
                              b"type": b"cancel"}


@pytest.mark.skipif("stream" not in App.from_raw({}).hold_modes,
                    reason="the stream hold mode (http_stream plugin) is not installed")
async def test_zhttp_backend_stream_grip_hold(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async with (streaming(ctx, free_ports, plugins=("zhttp_backend", "http_stream"))
                as (p8, [handler], _), httpx.AsyncClient() as client):
        with anyio.fail_after(5):
            async with opened(client, f"{p8.url}/hold", handler, code=200,
                              body=b"[opened]\n", headers=[[b"Grip-Hold", b"stream"],
                                                            [b"Grip-Channel", b"zs"]]) as (
                    resp, _):
                chunks = resp.aiter_raw()
                await read_until(chunks, b"[opened]\n")
                await publish(p8, {"channel": "zs",
                                   "formats": {"http-stream": {"content": "news\n"}}})
                await read_until(chunks, b"news\n")
            assert "grip-hold" not in resp.headers


async def test_zhttp_backend_stream_over_ipc(ctx: zmq.asyncio.Context, tmp_path: Path) -> None:
    spec = f"ipc://{tmp_path}/zs"
    endpoints = (f"{spec}-out", f"{spec}-out-stream", f"{spec}-in")
    async with (run_p8(config(f"zhttp+{spec}")) as p8, httpx.AsyncClient() as client):
        handler = StreamHandler(ctx, endpoints)
        try:
            with anyio.fail_after(5):
                await handler.ready()
                async with anyio.create_task_group() as tg:
                    async def serve() -> None:
                        first = await handler.first()
                        await handler.send(first[b"id"], code=200, body=b"over ipc\n")

                    tg.start_soon(serve)
                    resp = await client.get(p8.url)
        finally:
            handler.close()
    assert (resp.status_code, resp.text) == (200, "over ipc\n")
