"""WebSocket clients backed by ``zhttp+…`` targets: sessions over streaming mode, with a
pyzmq handler on one side and a ``websockets`` client through p8 on the other."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import zmq.asyncio
from p8_zhttp_backend.session import WINDOW
from p8_zhttp_backend.testing import Packet, StreamHandler, streaming
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State

from p8core.testing import Running, publish

pytestmark = pytest.mark.anyio

PLUGINS = ("zhttp_backend", "ws_over_http")
ACCEPT = {"code": 101, "reason": b"Switching Protocols"}


def ws_url(p8: Running, path: str = "/zs/ws") -> str:
    return f"ws://127.0.0.1:{p8.bound.port}{path}"


@asynccontextmanager
async def session(p8: Running, handler: StreamHandler, *, credits: int = WINDOW,
                  headers: list[list[bytes]] | None = None, path: str = "/zs/ws",
                  **options: Any) -> AsyncIterator[tuple[ClientConnection, Packet]]:
    """A client WebSocket that ``handler`` accepts, granting ``credits``. Leaving it
    closes the client, and the handler answers the close."""
    first: Packet = {}

    async def accept() -> None:
        first.update(await handler.first())
        await handler.send(first[b"id"], **ACCEPT, headers=headers or [], credits=credits)

    async with anyio.create_task_group() as tg:
        tg.start_soon(accept)
        async with connect(ws_url(p8, path), **options) as ws:
            yield ws, first
            if ws.state is State.OPEN:
                tg.start_soon(answer_close, handler, first[b"id"])


async def answer_close(handler: StreamHandler, rid: bytes) -> None:
    """Echo p8's close, skipping what comes before it."""
    while (packet := await handler.next()).get(b"type") != b"close":
        pass
    await handler.send(rid, type=b"close", code=packet.get(b"code"), body=packet.get(b"body"))


async def message_from_p8(handler: StreamHandler, rid: bytes) -> tuple[bytes, bytes]:
    """The next whole message p8 sends (its fragments joined): content type and bytes.
    Fragments beyond the credits granted so far make the handler grant more."""
    parts: list[bytes] = []
    kind = b""
    while True:
        packet = await handler.next()
        assert packet[b"id"] == rid
        assert b"type" not in packet, packet
        kind = kind or packet[b"content-type"]
        parts.append(packet.get(b"body", b""))
        if not packet.get(b"more"):
            return kind, b"".join(parts)
        await handler.send(rid, type=b"credit", credits=len(parts[-1]))


async def send_large(handler: StreamHandler, rid: bytes, data: bytes, credits: int) -> None:
    """Send ``data`` as one binary message in fragments, within p8's credits (waiting
    for its credit packets)."""
    part, offset = 50_000, 0
    while offset < len(data):
        while credits < min(part, len(data) - offset):
            packet = await handler.next()
            assert packet[b"type"] == b"credit"
            credits += packet[b"credits"]
        piece = data[offset:offset + min(part, credits)]
        offset += len(piece)
        credits -= len(piece)
        await handler.send(rid, content_type=b"binary", body=piece, more=offset < len(data))


async def test_zhttp_backend_websocket_messages_both_ways(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    big_up = hashlib.sha256(b"up").digest() * 100                  # 3,200 bytes
    big_down = hashlib.sha256(b"down").digest() * 15_625 + b"end"  # 500,003 bytes
    async with streaming(ctx, free_ports, plugins=PLUGINS) as (p8, [handler], _):
        with anyio.fail_after(10):
            async with session(p8, handler, credits=1000, path="/zs/ws?x=1",
                               subprotocols=["chat"],
                               headers=[[b"Sec-WebSocket-Protocol", b"chat"]]) as (ws, first):
                rid = first[b"id"]
                assert ws.subprotocol == "chat"
                await ws.send("hi")
                assert await message_from_p8(handler, rid) == (b"text", b"hi")
                await ws.send(b"\x00\x01")
                assert await message_from_p8(handler, rid) == (b"binary", b"\x00\x01")
                # Larger than the 1,000 credits the handler granted: it comes in parts.
                await ws.send(big_up)
                assert await message_from_p8(handler, rid) == (b"binary", big_up)

                await handler.send(rid, content_type=b"text", body="héllo".encode())
                assert await ws.recv() == "héllo"
                await handler.send(rid, body=b"plain")  # no content-type: text
                assert await ws.recv() == "plain"
                await handler.send(rid, content_type=b"binary", body=b"\xff")
                assert await ws.recv() == b"\xff"
                # Larger than the window p8 granted: p8 grants more as it arrives.
                async with anyio.create_task_group() as tg:
                    tg.start_soon(send_large, handler, rid, big_down, first[b"credits"])
                    assert await ws.recv() == big_down
    assert b"method" not in first
    assert first[b"uri"] == f"{ws_url(p8)}?x=1".encode()
    assert (first[b"seq"], first[b"credits"]) == (0, WINDOW)
    headers = {name.lower(): value for name, value in first[b"headers"]}
    assert headers[b"upgrade"] == b"websocket"
    assert headers[b"sec-websocket-version"] == b"13"
    assert headers[b"sec-websocket-protocol"] == b"chat"
    assert headers[b"sec-websocket-extensions"] == b"grip"
    assert b"sec-websocket-key" in headers and b"grip-sig" in headers


async def test_zhttp_backend_websocket_client_close_reaches_the_handler(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async with streaming(ctx, free_ports, plugins=PLUGINS) as (p8, [handler], _):
        with anyio.fail_after(5):
            async with session(p8, handler) as (ws, first):
                rid = first[b"id"]

                async def answer() -> None:
                    close = await handler.next()
                    assert (close[b"type"], close[b"code"], close[b"body"]) == (
                        b"close", 4001, b"bye")
                    await handler.send(rid, type=b"close", code=4001, body=b"bye")

                async with anyio.create_task_group() as tg:
                    tg.start_soon(answer)
                    await ws.close(4001, "bye")
            assert (ws.close_code, ws.close_reason) == (4001, "bye")


async def test_zhttp_backend_websocket_handler_close_reaches_the_client(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async with streaming(ctx, free_ports, plugins=PLUGINS) as (p8, [handler], _):
        with anyio.fail_after(5):
            async with session(p8, handler) as (ws, first):
                rid = first[b"id"]
                await handler.send(rid, type=b"ping", body=b"are you there")
                pong = await handler.next()  # the client answered the ping
                assert (pong[b"type"], pong.get(b"body")) == (b"pong", b"are you there")
                await handler.send(rid, type=b"close", code=4003, body=b"bye")
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4003, "bye")
                reply = await handler.next()
                assert (reply[b"type"], reply[b"code"], reply[b"body"]) == (
                    b"close", 4003, b"bye")


async def test_zhttp_backend_websocket_grip_extension(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    subscribe = json.dumps({"type": "subscribe", "channel": "room"}).encode()
    async with streaming(ctx, free_ports, plugins=PLUGINS, route={"sub": ["all"]}) as (
            p8, [handler], _):
        with anyio.fail_after(5):
            async with session(p8, handler,
                               headers=[[b"Sec-WebSocket-Extensions", b"grip"]]) as (ws, first):
                rid = first[b"id"]
                await handler.send(rid, content_type=b"text", body=b"c:" + subscribe)
                await handler.send(rid, content_type=b"text", body=b"m:welcome")
                await handler.send(rid, content_type=b"text", body=b"no prefix: dropped")
                assert await ws.recv() == "welcome"  # so the subscription is in place
                await publish(p8, {"channel": "room",
                                   "formats": {"ws-message": {"content": "to the room"}}})
                assert await ws.recv() == "to the room"
                await publish(p8, {"channel": "all",
                                   "formats": {"ws-message": {"content": "to all"}}})
                assert await ws.recv() == "to all"
                assert "grip" not in ws.response.headers.get("sec-websocket-extensions", "")


async def test_zhttp_backend_websocket_handshake_failures(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async with streaming(ctx, free_ports, plugins=PLUGINS, timeout=0.5) as (p8, [handler], _):
        with anyio.fail_after(5):
            # The handler refuses: the client gets its response.
            async def refuse() -> None:
                first = await handler.first()
                await handler.send(first[b"id"], type=b"error", condition=b"rejected",
                                   code=403, reason=b"Forbidden", body=b"go away\n",
                                   headers=[[b"Content-Type", b"text/plain"]])

            async with anyio.create_task_group() as tg:
                tg.start_soon(refuse)
                with pytest.raises(InvalidStatus) as refused:
                    await connect(ws_url(p8))
            assert refused.value.response.status_code == 403
            assert refused.value.response.body == b"go away\n"

            # The handler takes the handshake and never answers: 504.
            with pytest.raises(InvalidStatus) as late:
                await connect(ws_url(p8))
            assert late.value.response.status_code == 504
            assert b"timed out waiting for the zhttp handler" in late.value.response.body
            await handler.first()

            # No handler at all: 502.
            handler.close()
            with pytest.raises(InvalidStatus) as none:
                await connect(ws_url(p8))
            assert none.value.response.status_code == 502
            assert b"no zhttp handler connected" in none.value.response.body


async def test_zhttp_backend_websocket_broken_sessions_close_1011_alone(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async with streaming(ctx, free_ports, plugins=PLUGINS) as (p8, [handler], _):
        with anyio.fail_after(5), capture_logs() as logs:
            async with (session(p8, handler) as (kept, first_kept),
                        session(p8, handler) as (cancelled, first_cancelled),
                        session(p8, handler) as (garbled, first_garbled)):
                await handler.send(first_cancelled[b"id"], type=b"cancel")
                with pytest.raises(ConnectionClosed) as closed:
                    await cancelled.recv()
                assert closed.value.rcvd.code == 1011

                await handler.send(first_garbled[b"id"], content_type=b"morse", body=b"...")
                with pytest.raises(ConnectionClosed) as closed:
                    await garbled.recv()
                assert closed.value.rcvd.code == 1011
                assert (await handler.next())[b"type"] == b"cancel"

                await kept.send("still here")
                assert await message_from_p8(handler, first_kept[b"id"]) == (
                    b"text", b"still here")
                await handler.send(first_kept[b"id"], content_type=b"text", body=b"yes")
                assert await kept.recv() == "yes"
    assert any(e["event"] == "backend_failed" for e in logs)


async def test_zhttp_backend_websocket_handler_gone_closes_1011(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    async with streaming(ctx, free_ports, plugins=PLUGINS) as (p8, [gone], target):
        with anyio.fail_after(5):
            async with session(p8, gone) as (ws, _first):
                gone.close()
                # ZeroMQ learns of the disconnect asynchronously: a message sent before it
                # does is lost with the handler, so the client goes on talking, as one would.
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await ws.send("anyone?")
                        with anyio.move_on_after(0.2):
                            await ws.recv()
                assert closed.value.rcvd.code == 1011
            # A handler that connects afterwards takes the next client.
            port = int(target.rpartition(":")[2])
            endpoints = tuple(f"tcp://127.0.0.1:{port + i}" for i in range(3))
            back = StreamHandler(ctx, endpoints, b"handler-2")  # type: ignore[arg-type]
            try:
                await back.ready()
                async with session(p8, back) as (ws, first):
                    await ws.send("hello")
                    assert await message_from_p8(back, first[b"id"]) == (b"text", b"hello")
            finally:
                back.close()
