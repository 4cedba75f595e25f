"""Every configurable limit, exceeded on purpose: the status and reason the client gets,
the counter that counts it, and a bystander stream that keeps receiving its publishes."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx
import pytest
from p8_ws_over_http.events import WsEvent, encode
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from p8core.testing import Bystander, Reply, SeenRequest, publish, run_origin, run_p8

pytestmark = pytest.mark.anyio

BYSTANDER_ROUTE = {"path_prefix": "/bystander/", "target": "test"}
PLUGINS = {"enabled": ["http_stream", "ws_over_http"]}


def config(origin: str, **tables: dict[str, Any]) -> dict[str, Any]:
    """Routes to ``origin`` (WebSockets over HTTP under /ws/) beside the bystander's."""
    return {"plugins": PLUGINS, **tables,
            "routes": [BYSTANDER_ROUTE, {"path_prefix": "/ws/", "target": origin,
                                         "over_http": True},
                       {"target": origin}]}


def hold(*channels: str) -> Reply:
    return Reply(200, [("Grip-Hold", "stream"), ("Grip-Channel", ", ".join(channels))],
                 b"held\n")


async def test_request_and_publish_bodies_over_their_limits_get_413() -> None:
    async with run_origin(lambda req: Reply(200, body=b"%d" % len(req.body))) as origin, \
            run_p8(config(origin.target, server={"max_request_body": 1000})) as p8, \
            Bystander.hold(p8, "/bystander/stream") as bystander, \
            httpx.AsyncClient(base_url=p8.url) as client:
        ok = await client.post("/up", content=b"x" * 1000)
        assert (ok.status_code, ok.text) == (200, "1000")
        declared = await client.post("/up", content=b"x" * 1001)
        assert (declared.status_code, declared.text) == (
            413, "Request body too large: over 1000 bytes.\n")

        async def chunked() -> Any:
            for _ in range(3):
                yield b"y" * 600

        streamed = await client.post("/up", content=chunked())
        assert (streamed.status_code, streamed.text) == (
            413, "Request body too large: over 1000 bytes.\n")
        huge = await client.post("/up", content=b"z" * 3_000_000)
        assert huge.status_code == 413, "the answer is not lost to a reset mid-upload"
        assert p8.app.metrics.rejected_body_too_large == 3
        assert len(origin.requests) == 1, "a declared oversized body never reaches the origin"
        published = await client.post(f"{p8.control_url}/publish/", content=b"{" * 3_000_000)
        assert (published.status_code, published.text) == (
            413, "Request body too large: over 1000000 bytes.\n")
        assert p8.app.metrics.rejected_publish_too_large == 1
        await bystander.check()


async def test_subscriptions_over_the_limit_and_long_channel_names_are_refused() -> None:
    long_name = "n" * 65
    replies = {"/many": hold(*(f"c{i}" for i in range(6))), "/long": hold(long_name, "short")}
    async with run_origin(lambda req: replies[req.target.decode()]) as origin, \
            run_p8(config(origin.target, pubsub={"connection_subscription_max": 4,
                                                 "max_channel_name": 64})) as p8, \
            Bystander.hold(p8, "/bystander/stream") as bystander, \
            httpx.AsyncClient(base_url=p8.url, timeout=5) as client:
        async with client.stream("GET", "/many") as many, \
                client.stream("GET", "/long") as long:
            assert p8.app.hub.subscriber_count("c3") == 1
            assert p8.app.hub.subscriber_count("c4") == 0
            assert p8.app.hub.subscriber_count("short") == 1
            assert p8.app.metrics.rejected_subscriptions == 2
            assert p8.app.metrics.rejected_channel_name == 1
            refused = await publish(p8, {"channel": long_name,
                                         "formats": {"http-stream": {"content": "x"}}})
            assert (refused.status_code, refused.text) == (
                400, "Invalid format: publish item object contains 'channel' longer than 64 "
                "characters\n")
            assert p8.app.metrics.rejected_channel_name == 2
            await many.aclose()
            await long.aclose()
        await bystander.check()


async def test_websocket_limits_message_size_subscriptions_and_names() -> None:
    def backend(req: SeenRequest) -> Reply:
        control = [{"type": "subscribe", "channel": name} for name in ("a", "b", "c", "d" * 10)]
        events = [WsEvent("OPEN")] + [WsEvent("TEXT", b"c:" + json.dumps(c).encode())
                                      for c in control]
        if b"OPEN" not in req.body:
            events = []
        return Reply(200, [("Content-Type", "application/websocket-events"),
                           ("Sec-WebSocket-Extensions", "grip")], encode(events))

    tables = {"pubsub": {"connection_subscription_max": 2, "max_channel_name": 9},
              "plugins": {**PLUGINS, "ws_over_http": {"max_message": 100}}}
    async with run_origin(backend) as origin, \
            run_p8(config(origin.target, **tables)) as p8, \
            Bystander.hold(p8, "/bystander/stream") as bystander:
        async with connect(f"ws://127.0.0.1:{p8.bound.port}/ws/") as ws:
            with anyio.fail_after(5):
                while p8.app.metrics.rejected_channel_name < 1:
                    await anyio.sleep(0.01)
            assert p8.app.hub.subscriber_count("b") == 1
            assert p8.app.hub.subscriber_count("c") == 0
            assert p8.app.metrics.rejected_subscriptions == 1
            await ws.send("x" * 101)
            with pytest.raises(ConnectionClosed) as closed:
                with anyio.fail_after(5):
                    await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert p8.app.metrics.rejected_ws_message_too_large == 1
        await bystander.check()


async def test_message_rate_queues_up_to_message_hwm_then_answers_429() -> None:
    """With the budget of one batch, one item goes at once, the next five wait, a sixth is
    refused; the waiting ones arrive as time passes, in order. p8's clock stands still
    until the test moves it."""
    items = [{"channel": "r", "formats": {"http-stream": {"content": f"item {i}\n"}}}
             for i in range(7)]
    async with run_origin(lambda req: hold("r")) as origin, \
            run_p8(config(origin.target, pubsub={"message_rate": 40,
                                                 "message_hwm": 5})) as p8, \
            Bystander.hold(p8, "/bystander/stream") as bystander, \
            httpx.AsyncClient(base_url=p8.url, timeout=5) as client, \
            client.stream("GET", "/") as stream:
        now = [0.0]
        p8.app.clock = lambda: now[0]
        received: list[str] = []

        def text() -> str:
            return "".join(received)

        async def read() -> None:
            async for chunk in stream.aiter_text():
                received.append(chunk)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            with anyio.fail_after(5):
                while text() != "held\n":
                    await anyio.sleep(0.01)
                assert (await publish(p8, *items[:6])).status_code == 200
                refused = await publish(p8, items[6])
                assert (refused.status_code, refused.text) == (
                    429, "Too many deliveries waiting: 5 (message_hwm 5).\n")
                while text().count("\n") < 7:
                    now[0] += 1
                    await anyio.sleep(0.03)
            tg.cancel_scope.cancel()
        assert text() == "held\n" + "".join(f"item {i}\n" for i in range(6))
        assert p8.app.metrics.publishes_delayed == 5
        assert p8.app.metrics.rejected_publish_rate == 1
        p8.app.clock = time.monotonic
        await bystander.check()


async def _read_until_closed(stream: Any) -> bytes:
    """Everything the server sends until it closes the connection (within 5 s)."""
    data = b""
    with anyio.fail_after(5):
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return data


async def test_slow_or_idle_request_heads_are_closed_after_head_timeout() -> None:
    raw = {"plugins": PLUGINS, "server": {"head_timeout": 0.3},
           "routes": [BYSTANDER_ROUTE, {"target": "test"}]}
    async with run_p8(raw) as p8, Bystander.hold(p8, "/bystander/stream") as bystander:
        # A head trickled in, never finished: 408 with the reason, then closed.
        async with await anyio.connect_tcp("127.0.0.1", p8.bound.port) as slow:
            await slow.send(b"GET / HTTP/1.1\r\nHost: p8\r\n")
            await anyio.sleep(0.1)
            await slow.send(b"X-Slow: 1\r\n")
            answer = await _read_until_closed(slow)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert answer.endswith(b"Request head not received within 0.3s.\n")
        # A keep-alive connection that served a request and then stays silent: closed
        # without an answer.
        async with await anyio.connect_tcp("127.0.0.1", p8.bound.port) as idle:
            await idle.send(b"GET / HTTP/1.1\r\nHost: p8\r\n\r\n")
            answer = await _read_until_closed(idle)
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"Hello from the Pushpin test handler!\n")
        assert p8.app.metrics.rejected_head_timeout == 1
        assert p8.app.metrics.idle_connections_closed == 1
        # The bystander's stream, open far longer than the timeout, still receives.
        await bystander.check()


async def test_a_stalled_request_body_gets_408_and_a_slow_steady_one_goes_through() -> None:
    async with run_origin(lambda req: Reply(200, body=b"%d" % len(req.body))) as origin:
        raw = {"plugins": PLUGINS, "server": {"body_timeout": 0.3},
               "routes": [BYSTANDER_ROUTE, {"target": origin.target}]}
        async with run_p8(raw) as p8, Bystander.hold(p8, "/bystander/stream") as bystander:
            declared = (b"Content-Length: 100", b"x" * 10)  # read whole, then sent on
            chunked = (b"Transfer-Encoding: chunked", b"a\r\n" + b"x" * 10 + b"\r\n")
            for port, path, (head, part) in ((p8.bound.port, b"/up", declared),
                                             (p8.bound.port, b"/up", chunked),
                                             (p8.bound.control, b"/publish/", declared)):
                async with await anyio.connect_tcp("127.0.0.1", port) as stalled:
                    await stalled.send(b"POST %s HTTP/1.1\r\nHost: p8\r\n%s\r\n\r\n%s"
                                       % (path, head, part))
                    answer = await _read_until_closed(stalled)
                assert answer.startswith(b"HTTP/1.1 408 ")
                assert answer.endswith(b"Request body not received within 0.3s.\n")
            assert p8.app.metrics.rejected_body_timeout == 3
            assert not origin.requests, "no stalled body reached the origin whole"

            async def steady() -> Any:
                for _ in range(6):
                    yield b"y" * 100
                    await anyio.sleep(0.1)

            async with httpx.AsyncClient(base_url=p8.url, timeout=5) as client:
                slow = await client.post("/up", content=steady())
            assert (slow.status_code, slow.text) == (200, "600")
            await bystander.check()
