"""Delivery feedback: the verbose publish answer counts the receivers each item really
reached, by format, and says why an item was not delivered; ``GET /channels/<name>``."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from p8_http_stream.testing import open_stream
from p8_ws_over_http.events import WsEvent, encode
from websockets.asyncio.client import connect

from p8core.testing import Reply, Running, SeenRequest, run_origin, run_p8

pytestmark = pytest.mark.anyio

GRIP = ["http_stream", "long_poll", "ws_over_http"]
OPENING = encode([WsEvent("OPEN"), WsEvent("TEXT", b'c:{"type": "subscribe", '
                                                   b'"channel": "mix"}')])


def woh(request: SeenRequest) -> Reply:
    """A WebSocket-over-HTTP backend subscribing each client to ``mix``."""
    return Reply(200, [("Content-Type", "application/websocket-events"),
                       ("Sec-WebSocket-Extensions", "grip")], OPENING)


def item(channel: str, content: str, **fields: Any) -> dict[str, Any]:
    return {"channel": channel, "formats": {
        "http-stream": {"content": content + "\n"},
        "http-response": {"body": content + "\n"},
        "ws-message": {"content": content}}, **fields}


async def verbose(client: httpx.AsyncClient, *items: dict[str, Any]) -> Any:
    resp = await client.post("/publish/?verbose=1", json={"items": items})
    assert (resp.status_code, resp.headers["content-type"]) == (200, "application/json")
    return resp.json()


async def subscribers(p8: Running, channel: str, n: int) -> None:
    while p8.app.hub.subscriber_count(channel) != n:
        await anyio.sleep(0.01)


async def test_counts_match_the_clients_that_received_it() -> None:
    async with run_origin(woh) as origin:
        with anyio.fail_after(10):
            ws_route = {"path_prefix": "/ws", "target": origin.target, "over_http": True}
            config = {"plugins": {"enabled": GRIP}, "routes": [ws_route, {"target": "test"}]}
            async with run_p8(config) as p8, \
                    httpx.AsyncClient(base_url=p8.control_url) as control, \
                    httpx.AsyncClient(base_url=p8.url) as http, \
                    open_stream(p8.bound.port, "/stream?channel=mix") as s1, \
                    open_stream(p8.bound.port, "/stream?channel=mix") as s2, \
                    connect(f"ws://127.0.0.1:{p8.bound.port}/ws") as w1, \
                    connect(f"ws://127.0.0.1:{p8.bound.port}/ws") as w2, \
                    connect(f"ws://127.0.0.1:{p8.bound.port}/ws") as w3:
                polls: list[httpx.Response] = []
                async with anyio.create_task_group() as tg:
                    for _ in range(2):
                        tg.start_soon(lambda: _poll(http, polls))
                    await subscribers(p8, "mix", 7)
                    answer = await verbose(control, item("mix", "one", id="1"))
                assert answer == {"message": "Published", "items": [{
                    "channel": "mix", "id": "1", "result": "delivered", "receivers": 7,
                    "by_format": {"http-response": 2, "http-stream": 2, "ws-message": 3}}]}
                assert [(r.status_code, r.text) for r in polls] == [(200, "one\n")] * 2
                for stream in (s1, s2):
                    assert await stream.read_until(b"one\n") == b"[stream opened]\none\n"
                for ws in (w1, w2, w3):
                    assert await ws.recv() == "one"

                await subscribers(p8, "mix", 5)  # the long-polls have their answer
                second = await verbose(control, item("mix", "two", id="2"),
                                       item("nobody", "three"))
                assert [(i["receivers"], i["by_format"]) for i in second["items"]] == [
                    (5, {"http-stream": 2, "ws-message": 3}), (0, {})]
                for ws in (w1, w2, w3):
                    assert await ws.recv() == "two"


async def _poll(http: httpx.AsyncClient, into: list[httpx.Response]) -> None:
    into.append(await http.get("/response?channel=mix"))


async def test_duplicate_parked_and_dropped_items_are_reported() -> None:
    async with run_p8({"plugins": {"enabled": ["http_stream"]}}) as p8, \
            httpx.AsyncClient(base_url=p8.control_url) as control, \
            open_stream(p8.bound.port, "/stream?channel=seq") as stream:
        with anyio.fail_after(10):
            await stream.read_until(b"[stream opened]\n")
            first = await verbose(control, item("seq", "a", id="a"), item("seq", "a", id="a"),
                                  item("seq", "late", id="d", **{"prev-id": "c"}))
            assert [(i["id"], i["result"], i["receivers"]) for i in first["items"]] == [
                ("a", "delivered", 1), ("a", "duplicate", 0), ("d", "parked", 0)]
            second = await verbose(control, item("seq", "other", id="x", **{"prev-id": "c"}))
            assert second["items"][0]["result"] == "dropped", "c already has a parked follower"
            assert await stream.read_until(b"a\n") == b"[stream opened]\na\n"


async def test_items_waiting_for_message_rate_are_reported_delayed() -> None:
    config = {"plugins": {"enabled": ["http_stream"]}, "pubsub": {"message_rate": 1}}
    async with run_p8(config) as p8, \
            httpx.AsyncClient(base_url=p8.control_url) as control, \
            open_stream(p8.bound.port, "/stream?channel=r") as stream:
        with anyio.fail_after(10):
            await stream.read_until(b"[stream opened]\n")
            answer = await verbose(control, item("r", "now"), item("r", "later"))
            assert [i["result"] for i in answer["items"]] == ["delivered", "delayed"]
            assert await stream.read_until(b"later\n") == b"[stream opened]\nnow\nlater\n"


async def test_a_parked_item_released_by_the_same_publish_is_delivered() -> None:
    async with run_p8({"plugins": {"enabled": ["http_stream"]}}) as p8, \
            httpx.AsyncClient(base_url=p8.control_url) as control, \
            open_stream(p8.bound.port, "/stream?channel=seq") as stream:
        with anyio.fail_after(10):
            await stream.read_until(b"[stream opened]\n")
            await verbose(control, item("seq", "a", id="a"))
            answer = await verbose(control, item("seq", "c", id="c", **{"prev-id": "b"}),
                                   item("seq", "b", id="b", **{"prev-id": "a"}))
            assert [(i["id"], i["result"], i["receivers"]) for i in answer["items"]] == [
                ("c", "delivered", 1), ("b", "delivered", 1)]
            assert await stream.read_until(b"c\n") == b"[stream opened]\na\nb\nc\n"


async def test_answers_without_opting_in_are_unchanged() -> None:
    body = {"items": [item("c", "x")]}
    async with run_p8({"plugins": {"enabled": ["http_stream"]}}) as p8, \
            httpx.AsyncClient(base_url=p8.control_url) as control:
        with anyio.fail_after(10):
            for target, headers in (("/publish/", {}), ("/publish/?verbose=0", {}),
                                    ("/publish/", {"Accept": "text/plain"})):
                resp = await control.post(target, json=body, headers=headers)
                assert (resp.status_code, resp.headers["content-type"], resp.content) == (
                    200, "text/plain", b"Published\n")
            by_accept = await control.post("/publish/", json=body,
                                           headers={"Accept": "application/json"})
            assert by_accept.json()["items"][0]["result"] == "delivered"
            bad = await control.post("/publish/?verbose=1", json={"items": [{}]})
            assert (bad.status_code, bad.headers["content-type"]) == (400, "text/plain")


async def test_get_channel_counts_subscribers_before_during_and_after() -> None:
    config = {"plugins": {"enabled": ["http_stream", "long_poll"]},
              "pubsub": {"subscription_linger": 60}}
    async with run_p8(config) as p8, \
            httpx.AsyncClient(base_url=p8.control_url) as control, \
            httpx.AsyncClient(base_url=p8.url) as http:
        with anyio.fail_after(10):
            empty = {"channel": "a b/é", "subscribed": False, "subscribers": 0, "by_format": {},
                     "lingering": False}
            channel, url = "a b/é", "/channels/a%20b%2F%C3%A9"
            resp = await control.get(url)
            assert (resp.status_code, resp.json()) == (200, empty)
            async with anyio.create_task_group() as tg:
                polls: list[httpx.Response] = []
                tg.start_soon(lambda: _get(http, "/response?channel=a%20b/%C3%A9", polls))
                async with open_stream(p8.bound.port, "/stream?channel=a%20b/%C3%A9") as s:
                    await s.read_until(b"[stream opened]\n")
                    await subscribers(p8, channel, 2)
                    assert (await control.get(url)).json() == {
                        **empty, "subscribed": True, "subscribers": 2,
                        "by_format": {"http-response": 1, "http-stream": 1}}
                await subscribers(p8, channel, 1)  # the stream's client left
                assert (await control.get(url)).json()["by_format"] == {"http-response": 1}
                tg.cancel_scope.cancel()  # and the long-poll's
            await subscribers(p8, channel, 0)
            assert (await control.get(url)).json() == {
                **empty, "subscribed": True, "lingering": True}, "a response hold lingers"
            wrong = await control.post("/channels/x")
            assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET")
            assert (await control.get("/channels/%FF")).status_code == 400
            assert (await control.get("/channels/")).status_code == 404


async def _get(http: httpx.AsyncClient, target: str, into: list[httpx.Response]) -> None:
    into.append(await http.get(target))


async def test_channel_view_asks_for_the_publish_credentials() -> None:
    async with run_p8({"control": {"key": "s3cret"}, "plugins": {"enabled": []}}) as p8, \
            httpx.AsyncClient(base_url=p8.control_url) as control:
        with anyio.fail_after(10):
            assert (await control.get("/channels/x")).status_code == 401
            assert (await control.get("/healthz")).status_code == 200, "health stays public"
