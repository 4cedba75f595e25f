"""ZeroMQ publish inputs over real sockets: PUSH → PULL, PUB → SUB, subscription
forwarding seen on a real XPUB, and bad messages that harm nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import zmq
import zmq.asyncio

from p8core import ConfigError, PublishError, PublishFormat, PublishItem, hookimpl
from p8core.app import App
from p8core.codec.tnetstring import dumps
from p8core.testing import Running, run_p8

pytestmark = pytest.mark.anyio

Endpoints = Callable[[], str]


class Probe(PublishFormat):
    """Format ``probe``: keeps ``content`` as bytes, whichever input it came from."""

    name = "probe"

    def parse(self, raw: Mapping[str, object], where: str) -> bytes:
        content = raw.get("content")
        if isinstance(content, str):
            return content.encode()
        if isinstance(content, bytes):
            return content
        raise PublishError(f"{where} contains 'content' with wrong type")


class ProbePlugin:
    @hookimpl
    def p8_register_formats(self) -> list[PublishFormat]:
        return [Probe()]


class Recorder:
    """A hub subscriber that records what reaches it."""

    format = "probe"

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.arrived = anyio.Event()

    def deliver(self, item: PublishItem) -> None:
        self.got.append(item.formats["probe"])  # type: ignore[arg-type]
        self.arrived.set()

    async def next(self) -> bytes:
        with anyio.fail_after(5):
            while not self.got:
                self.arrived = anyio.Event()
                await self.arrived.wait()
        return self.got.pop(0)


@asynccontextmanager
async def p8_with(settings: dict[str, Any]) -> AsyncIterator[Running]:
    config = {"plugins": {"zmq_pubsub": {"command": "", **settings}}}
    async with run_p8(config, plugins=[ProbePlugin()]) as p8:
        yield p8


def subscribe(p8: Running, channel: str) -> Recorder:
    recorder = Recorder()
    p8.app.hub.subscribe(channel, recorder, p8.app.clock())
    return recorder


async def test_push_to_pull_tnetstring_json_and_bare(ctx: zmq.asyncio.Context,
                                                     free_endpoint: Endpoints) -> None:
    pull = free_endpoint()
    async with p8_with({"pull": pull, "sub": []}) as p8:
        recorder = subscribe(p8, "c")
        push = ctx.socket(zmq.PUSH)
        push.connect(pull)
        item = {"channel": "c", "formats": {"probe": {"content": b"\x00\xffbinary"}}}
        await push.send(b"T" + dumps(item))
        assert await recorder.next() == b"\x00\xffbinary", "tnetstring content is binary-safe"
        await push.send(dumps({"channel": "c", "probe": {"content": "bare"}}))
        assert await recorder.next() == b"bare"
        await push.send(b"J" + json.dumps({"channel": "c", "formats": {
            "probe": {"content": "json"}}}).encode())
        assert await recorder.next() == b"json"
        assert p8.app.telemetry.publishes.get(("zmq-pull", "probe")) == 3
        push.close(linger=0)


async def test_malformed_messages_are_rejected_without_harm(ctx: zmq.asyncio.Context,
                                                            free_endpoint: Endpoints) -> None:
    pull = free_endpoint()
    async with p8_with({"pull": pull, "sub": []}) as p8:
        recorder = subscribe(p8, "c")
        push = ctx.socket(zmq.PUSH)
        push.connect(pull)
        bad = [b"Jnot json", b"J[1]", b"Tgarbage", b"T" + dumps({"formats": {}}),
               b"T" + dumps({"channel": "c", "formats": {"probe": {"content": 5}}})]
        for message in bad:
            await push.send(message)
        await push.send_multipart([b"two", b"frames"])
        await push.send(b"T" + dumps({"channel": "c", "probe": {"content": "still fine"}}))
        assert await recorder.next() == b"still fine"
        assert recorder.got == []
        assert p8.app.metrics.publishes_rejected == 6, "every bad message is counted once"
        push.close(linger=0)


async def test_pub_to_bound_sub_follows_the_hub_on_a_real_xpub(
        ctx: zmq.asyncio.Context, free_endpoint: Endpoints) -> None:
    sub = free_endpoint()
    async with p8_with({"pull": "", "sub": [sub]}) as p8:
        xpub = ctx.socket(zmq.XPUB)
        xpub.connect(sub)
        recorder = subscribe(p8, "news")
        with anyio.fail_after(5):
            assert await xpub.recv() == b"\x01news"
        await xpub.send_multipart([b"news", dumps({"probe": {"content": "x"}})])
        assert await recorder.next() == b"x"
        assert p8.app.telemetry.publishes.get(("zmq-sub", "probe")) == 1
        await xpub.send_multipart([b"other", dumps({"probe": {"content": "no"}})])
        p8.app.hub.unsubscribe("news", recorder, p8.app.clock())
        with anyio.fail_after(5):
            assert await xpub.recv() == b"\x00news"
        xpub.close(linger=0)


async def test_sub_connects_to_binding_publishers(ctx: zmq.asyncio.Context) -> None:
    xpub = ctx.socket(zmq.XPUB)
    port = xpub.bind_to_random_port("tcp://127.0.0.1")
    async with p8_with({"pull": "", "sub": [f"tcp://127.0.0.1:{port}"],
                        "sub_connect": True}) as p8:
        recorder = subscribe(p8, "room")
        with anyio.fail_after(5):
            assert await xpub.recv() == b"\x01room"
        await xpub.send_multipart([b"room", b"J" + json.dumps(
            {"channel": "ignored", "probe": {"content": "hi"}}).encode()])
        assert await recorder.next() == b"hi", "frame 0 is the channel"
    xpub.close(linger=0)


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"plugins\.zmq_pubsub\.pull: 'localhost:5560' is not"):
        App.from_raw({"plugins": {"zmq_pubsub": {"pull": "localhost:5560"}}})
    with pytest.raises(ConfigError, match=r"plugins\.zmq_pubsub\.sub: expected a list"):
        App.from_raw({"plugins": {"zmq_pubsub": {"sub": "tcp://127.0.0.1:1"}}})


async def test_an_endpoint_in_use_stops_start_up(ctx: zmq.asyncio.Context) -> None:
    taken = ctx.socket(zmq.PULL)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    with pytest.raises(BaseExceptionGroup) as info:
        async with p8_with({"pull": f"tcp://127.0.0.1:{port}", "sub": []}):
            await anyio.sleep(1)
    assert "zmq_pubsub: cannot bind" in str(info.value.exceptions)
    taken.close(linger=0)
