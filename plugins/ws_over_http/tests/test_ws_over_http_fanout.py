"""Fan-out at scale: 500 WebSocket clients, each receiving 20 publishes in order."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from p8_ws_over_http.events import WsEvent, decode, encode
from websockets.asyncio.client import ClientConnection, connect

from p8core.testing import Reply, publish, run_origin, run_p8

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    # asyncio's debug mode triples the cost of every callback; a thousand sockets in one
    # process do not need its checks, which the other tests of this plugin run with.
    return ("asyncio", {"debug": False})


def backend(request: Any) -> Reply:
    """Accepts everyone into channel ``all``; acknowledges closes."""
    events = decode(request.body)
    out = [WsEvent("OPEN"), WsEvent("TEXT", b'c:{"type": "subscribe", "channel": "all"}')] \
        if events and events[0].type == "OPEN" else []
    out += [e for e in events if e.type == "CLOSE"]
    return Reply(200, [("Content-Type", "application/websocket-events"),
                       ("Sec-WebSocket-Extensions", "grip")], encode(out))


async def until(check: Any) -> None:
    while not check():
        await anyio.sleep(0.01)

async def test_ws_fan_out_500_clients_20_messages_each_in_order() -> None:
    clients_n, messages_n = 500, 20
    config = {"plugins": {"enabled": ["ws_over_http"]}}
    async with run_origin(backend) as origin, \
            run_p8({**config, "routes": [{"target": origin.target, "over_http": True}]}) as p8:
        url = f"ws://127.0.0.1:{p8.bound.port}/fan"
        received: list[list[str]] = [[] for _ in range(clients_n)]

        async def client(i: int, ready: anyio.Event, done: anyio.Event) -> None:
            # Every tenth client negotiates compression: its messages take the slow path.
            async with connect(url, compression="deflate" if i % 10 == 0 else None,
                               open_timeout=30) as ws:
                ready.set()
                await read(ws, received[i])
                done.set()

        async def read(ws: ClientConnection, into: list[str]) -> None:
            while len(into) < messages_n:
                message = await ws.recv()
                assert isinstance(message, str)
                into.append(message)

        with anyio.fail_after(40):
            async with anyio.create_task_group() as tg:
                events = [(anyio.Event(), anyio.Event()) for _ in range(clients_n)]
                for i, (ready, done) in enumerate(events):
                    tg.start_soon(client, i, ready, done)
                for ready, _ in events:
                    await ready.wait()
                await until(lambda: p8.app.hub.subscriber_count("all") == clients_n)
                for n in range(messages_n):
                    response = await publish(p8, {"channel": "all", "formats": {
                        "ws-message": {"content": f"message {n}"}}})
                    assert response.status_code == 200
                for _, done in events:
                    await done.wait()
        expected = [f"message {n}" for n in range(messages_n)]
        assert all(got == expected for got in received)
        assert p8.app.hub.stats.delivered == clients_n * messages_n
