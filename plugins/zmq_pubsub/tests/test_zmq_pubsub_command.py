"""The command socket over real ZeroMQ: ZRPC from REQ and DEALER clients, and pubcontrol
finding the publish sockets through ``get-zmq-uris``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import tnetstring
import zmq
import zmq.asyncio
from gripcontrol import HttpStreamFormat
from p8_http_stream.testing import open_stream
from pubcontrol import Item, PubControl

from p8core.testing import Running, run_p8

pytestmark = pytest.mark.anyio

Endpoints = Callable[[], str]


@asynccontextmanager
async def p8_with(settings: dict[str, Any]) -> AsyncIterator[Running]:
    config = {"plugins": {"enabled": ["zmq_pubsub", "http_stream"], "zmq_pubsub": settings}}
    async with run_p8(config) as p8:
        yield p8


async def call(sock: zmq.asyncio.Socket, request: Any) -> Any:
    """Send one ZRPC request (a tnetstring, or raw bytes as given) and decode the answer."""
    await sock.send(request if isinstance(request, bytes) else tnetstring.dumps(request))
    with anyio.fail_after(5):
        return tnetstring.loads(await sock.recv())


async def test_get_zmq_uris_and_zrpc_answers(ctx: zmq.asyncio.Context,
                                             free_endpoint: Endpoints) -> None:
    pull, sub, command = free_endpoint(), free_endpoint(), free_endpoint()
    async with p8_with({"pull": pull, "sub": [sub], "command": command}):
        req = ctx.socket(zmq.REQ)
        req.connect(command)
        assert await call(req, {b"id": b"1", b"method": b"get-zmq-uris"}) == {
            b"id": b"1", b"success": True, b"value": {
                b"publish-pull": pull.encode(), b"publish-sub": sub.encode(),
                b"command": command.encode()}}
        assert await call(req, {b"method": b"nope"}) == {
            b"success": False, b"condition": b"method-not-found"}, "no id, none echoed"
        assert (await call(req, b"not a tnetstring"))[b"condition"] == b"bad-format"
        assert (await call(req, {b"method": b"recover", b"args": b"x"}))[b"condition"] == (
            b"bad-format")
        assert await call(req, {b"id": 2, b"method": b"recover"}) == {
            b"id": 2, b"success": True, b"value": None}
        req.close(linger=0)

        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(command)
        await dealer.send_multipart([b"", tnetstring.dumps({b"method": b"get-zmq-uris"})])
        with anyio.fail_after(5):
            empty, answer = await dealer.recv_multipart()
        assert empty == b"" and tnetstring.loads(answer)[b"success"] is True
        dealer.close(linger=0)


async def test_get_zmq_uris_lists_only_what_others_can_reach(
        ctx: zmq.asyncio.Context, free_endpoint: Endpoints) -> None:
    command = free_endpoint()
    async with p8_with({"pull": "", "sub": ["tcp://127.0.0.1:1"], "sub_connect": True,
                        "command": command}):
        req = ctx.socket(zmq.REQ)
        req.connect(command)
        answer = await call(req, {b"method": b"get-zmq-uris"})
        assert answer[b"value"] == {b"command": command.encode()}
        req.close(linger=0)


async def test_publish_and_conncheck_commands_reach_clients(
        ctx: zmq.asyncio.Context, free_endpoint: Endpoints) -> None:
    command = free_endpoint()
    async with p8_with({"pull": "", "sub": [], "command": command}) as p8, \
            open_stream(p8.bound.port, "/stream?channel=cmd") as client:
        req = ctx.socket(zmq.REQ)
        req.connect(command)
        with anyio.fail_after(5):
            await client.read_until(b"[stream opened]\n")
        item = {b"channel": b"cmd", b"formats": {b"http-stream": {b"content": b"\xffhi\n"}}}
        assert await call(req, {b"method": b"publish", b"args": {b"items": [item]}}) == {
            b"success": True, b"value": None}
        with anyio.fail_after(5):
            assert (await client.read_until(b"hi\n")).endswith(b"\xffhi\n")
        bad = await call(req, {b"method": b"publish", b"args": {b"items": [{b"x": 1}]}})
        assert bad == {b"success": False, b"condition": b"bad-request",
                       b"value": b"Invalid format: publish item object does not contain "
                                 b"'channel'"}
        assert p8.app.telemetry.publishes.get(("command", "http-stream")) == 1
        [open_id] = p8.app.telemetry.connections
        answer = await call(req, {b"method": b"conncheck",
                                  b"args": {b"ids": [open_id.encode(), b"gone:1"]}})
        assert answer == {b"success": True, b"value": [open_id.encode()]}
        assert (await call(req, {b"method": b"conncheck"}))[b"condition"] == b"bad-request"
        req.close(linger=0)


async def test_pubcontrol_discovers_the_pull_socket(free_endpoint: Endpoints) -> None:
    pull, command = free_endpoint(), free_endpoint()
    async with p8_with({"pull": pull, "sub": [], "command": command}) as p8, \
            open_stream(p8.bound.port, "/stream?channel=found") as client:
        with anyio.fail_after(5):
            await client.read_until(b"[stream opened]\n")
        publisher = PubControl({"zmq_uri": command})

        def send() -> None:
            publisher.publish("found", Item(HttpStreamFormat("discovered\n")), blocking=True)

        try:
            await anyio.to_thread.run_sync(send)
            with anyio.fail_after(5):
                await client.read_until(b"discovered\n")
        finally:
            await anyio.to_thread.run_sync(publisher.close)
        assert p8.app.telemetry.publishes.get(("zmq-pull", "http-stream")) == 1
