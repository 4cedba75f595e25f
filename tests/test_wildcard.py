"""Wildcard channels end to end: a route with ``wildcard = true`` lets ``news.*`` hold
every channel starting with ``news.``, for streams, long-polls and WebSockets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from p8_http_stream.testing import open_stream
from p8_ws_over_http.events import WsEvent, decode, encode
from websockets.asyncio.client import connect

from p8core.testing import Reply, SeenRequest, publish, run_origin, run_p8

pytestmark = pytest.mark.anyio

PLUGINS = {"enabled": ["http_stream", "long_poll", "ws_over_http"]}
# Host "literal" reaches a route without the option, anything else the wildcard route.
ROUTES = [{"host": "literal", "target": "test"}, {"target": "test", "wildcard": True}]


def stream_item(channel: str) -> dict[str, Any]:
    return {"channel": channel, "formats": {"http-stream": {"content": f"<{channel}>"}}}


async def until(check: Callable[[], bool]) -> None:
    while not check():
        await anyio.sleep(0.01)


async def test_stream_gets_every_matching_channel_once_and_nothing_else() -> None:
    async with run_p8({"plugins": PLUGINS, "routes": ROUTES}) as p8, \
            open_stream(p8.bound.port, "/stream?channel=news.*&channel=news.a") as both, \
            open_stream(p8.bound.port, "/stream?channel=news.*", host="literal") as literal:
        with anyio.fail_after(5):
            assert await both.chunk() == await literal.chunk() == b"[stream opened]\n"
            assert p8.app.hub.subscriber_count("news.*") == 2
            channels = ("news.a", "news.b.c", "sports.x", "news", "newsroom", "news.*", "news.")
            await publish(p8, *(stream_item(c) for c in channels), stream_item("news.end"))
            body = await both.read_until(b"<news.end>")
            assert body == (b"[stream opened]\n<news.a><news.b.c><news.*><news.><news.end>")
            # Without the option, "news.*" is one channel like any other.
            assert await literal.read_until(b"<news.*>") == b"[stream opened]\n<news.*>"
    assert p8.app.hub.sizes()["patterns"] == 0


async def test_star_inside_a_name_is_refused_on_a_wildcard_route() -> None:
    async with run_p8({"plugins": PLUGINS, "routes": ROUTES}) as p8, \
            open_stream(p8.bound.port, "/stream?channel=news.*.x&channel=ok") as client:
        with anyio.fail_after(5):
            assert await client.chunk() == b"[stream opened]\n"
            assert p8.app.metrics.rejected_channel_name == 1
            await publish(p8, stream_item("news.*.x"), stream_item("ok"))
            assert await client.chunk() == b"<ok>"


async def test_long_poll_on_a_pattern_is_answered_by_a_matching_publish() -> None:
    item = {"channel": "scores.league.42",
            "formats": {"http-response": {"body": "2:1\n"}}}
    async with run_p8({"plugins": PLUGINS, "routes": ROUTES}) as p8, \
            httpx.AsyncClient() as client, anyio.create_task_group() as tg:
        answers: list[httpx.Response] = []

        async def poll() -> None:
            answers.append(await client.get(f"{p8.url}/response?channel=scores.*"))

        with anyio.fail_after(5):
            tg.start_soon(poll)
            await until(lambda: p8.app.hub.subscriber_count("scores.*") == 1)
            await publish(p8, {**item, "channel": "score"})
            await publish(p8, item)
            await until(lambda: bool(answers))
    assert (answers[0].status_code, answers[0].text) == (200, "2:1\n")


def _subscribing_backend(channel: str) -> Callable[[SeenRequest], Reply]:
    """A WebSocket-over-HTTP backend that subscribes each new client to ``channel``."""
    def answer(request: SeenRequest) -> Reply:
        out = [WsEvent("OPEN", b""), WsEvent(
            "TEXT", b'c:{"type": "subscribe", "channel": "%s"}' % channel.encode())]
        opening = any(e.type == "OPEN" for e in decode(request.body))
        return Reply(200, [("Content-Type", "application/websocket-events"),
                           ("Sec-WebSocket-Extensions", "grip")],
                     encode(out if opening else []))
    return answer


async def test_websocket_subscribed_to_a_pattern_by_its_backend() -> None:
    async with run_origin(_subscribing_backend("room.*")) as origin:
        routes = [{"target": origin.target, "over_http": True, "wildcard": True,
                   "prefix": "chat-"}]
        async with run_p8({"plugins": PLUGINS, "routes": routes}) as p8, \
                connect(f"ws://127.0.0.1:{p8.bound.port}/ws") as ws:
            with anyio.fail_after(5):
                await until(lambda: p8.app.hub.subscriber_count("chat-room.*") == 1)
                for channel in ("room.1", "chat-lobby", "chat-room.1", "chat-room.2.x"):
                    await publish(p8, {"channel": channel,
                                       "formats": {"ws-message": {"content": channel}}})
                assert [await ws.recv(), await ws.recv()] == ["chat-room.1", "chat-room.2.x"]
        assert p8.app.hub.sizes()["patterns"] == 0
