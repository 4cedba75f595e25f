"""The WebSocket chat of the README, for real: a stateless WebSocket-over-HTTP backend,
real WebSocket clients, publishes through the control API."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from p8_ws_over_http.events import WsEvent, decode, encode
from websockets.asyncio.client import connect

from p8core.testing import Reply, Running, SeenRequest, publish, run_origin, run_p8

pytestmark = pytest.mark.anyio

SUBSCRIBE_ALL = WsEvent("TEXT", b'c:{"type": "subscribe", "channel": "all"}')
HEADERS = [("Content-Type", "application/websocket-events"),
           ("Sec-WebSocket-Extensions", "grip")]


def chat_backend(p8: dict[str, Running]) -> Any:
    """Accepts everyone into channel ``all`` and publishes what anyone says to it."""

    async def handle(request: SeenRequest) -> Reply:
        events = decode(request.body)
        out = []
        if events and events[0].type == "OPEN":
            out += [WsEvent("OPEN"), SUBSCRIBE_ALL]
        for event in events:
            if event.type == "TEXT":
                said = event.content.decode()
                await publish(p8["running"], {"channel": "all",
                                              "formats": {"ws-message": {"content": said}}})
            elif event.type == "CLOSE":
                out.append(event)
        return Reply(200, HEADERS, encode(out))

    return handle


def config(target: str) -> dict[str, Any]:
    return {"plugins": {"enabled": ["ws_over_http"]},
            "routes": [{"target": target, "over_http": True}]}


async def until(check: Any) -> None:
    while not check():
        await anyio.sleep(0.01)


async def test_ws_chat_two_clients_hear_each_other() -> None:
    holder: dict[str, Running] = {}
    async with run_origin(chat_backend(holder)) as origin, run_p8(config(origin.target)) as p8:
        holder["running"] = p8
        url = f"ws://127.0.0.1:{p8.bound.port}/chat"
        # One client compresses (its frames are encoded for it), one does not (it gets the
        # frame encoded once per publish).
        async with connect(url) as alice, connect(url, compression=None) as bob:
            with anyio.fail_after(5):
                await until(lambda: p8.app.hub.subscriber_count("all") == 2)
                await alice.send("hi, I'm alice")
                assert await alice.recv() == "hi, I'm alice"
                assert await bob.recv() == "hi, I'm alice"
                await bob.send("hello alice")
                assert await bob.recv() == "hello alice"
                assert await alice.recv() == "hello alice"
        with anyio.fail_after(5):
            await until(lambda: p8.app.hub.subscriber_count("all") == 0)
    closes = [e for r in origin.requests for e in decode(r.body) if e.type == "CLOSE"]
    assert len(closes) == 2, "both clients' closes reached the backend"
