"""Long-polling end to end over real sockets: a backend answers ``Grip-Hold: response``, a
client waits, a publish (or the timeout) answers it, and its connection serves on."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from gripcontrol import GripPubControl, HttpResponseFormat

from p8core.testing import Reply, Running, SeenRequest, publish, run_origin, run_p8

pytestmark = pytest.mark.anyio

HOLD = [("Grip-Hold", "response"), ("Grip-Channel", "c")]


def p8_config(target: str | None = None, *, scale: float | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"plugins": {"enabled": ["long_poll"]}}
    if scale is not None:
        config["plugins"]["long_poll"] = {"timeout_scale": scale}
    if target is not None:
        config["routes"] = [{"target": target, "debug": True}]
    return config


async def subscribed(p8: Running, channel: str, count: int = 1) -> None:
    while p8.app.hub.subscriber_count(channel) < count:
        await anyio.sleep(0.005)


def response_item(channel: str = "c", **fmt: Any) -> dict[str, Any]:
    return {"channel": channel, "formats": {"http-response": fmt}}


async def test_a_publish_answers_the_held_request_with_headers_merged(connect: Any) -> None:
    # grip.md §5.1, the example as written there.
    stored = Reply(200, [("Content-Type", "text/plain"), ("X-Foo", "bar"), ("X-Keep", "k"),
                         *HOLD], b"timed out\n")
    async with run_origin(lambda r: stored) as origin, run_p8(p8_config(origin.target)) as p8, \
            connect(p8.bound.port) as conn:
        with anyio.fail_after(5):
            await conn.send("/poll")
            await subscribed(p8, "c")
            resp = await publish(p8, response_item(
                code=201, headers={"X-Foo": "new", "Content-Type": "application/json",
                                   "Grip-Foo": "dropped"}, body='{"a":1}\n'))
            assert resp.status_code == 200
            got = await conn.receive()
        assert (got.status, got.reason, got.body) == (201, b"Created", b'{"a":1}\n')
        assert got.headers == [(b"x-keep", b"k"), (b"content-type", b"application/json"),
                               (b"x-foo", b"new"), (b"content-length", b"8")]
        assert not p8.app.held and p8.app.hub.subscriber_count("c") == 0
        assert p8.app.hub.is_subscribed("c"), "a long-poll's channel lingers"


async def test_the_timeout_answer_then_the_connection_serves_the_next_poll(connect: Any) -> None:
    # The one test that waits for the real minimum: Grip-Timeout 0 is raised to 5 s.
    stored = Reply(200, [("Grip-Status", "299 Custom Thing"), ("X-A", "1"),
                         ("Grip-Timeout", "0"), *HOLD], b"nothing new\n")
    asked: list[float] = []

    def reply(req: SeenRequest) -> Reply:
        asked.append(anyio.current_time())
        return stored

    async with run_origin(reply) as origin, run_p8(p8_config(origin.target)) as p8, \
            connect(p8.bound.port) as conn:
        with anyio.fail_after(10):
            got = await conn.request("/poll")
        # The channel's first subscription retried the request after ~1 s (grip.md §7.3);
        # the timeout runs from the hold the last answer started.
        assert len(asked) == 2 and 0.9 < asked[1] - asked[0] < 2
        assert 5 <= anyio.current_time() - asked[-1] < 6
        assert (got.status, got.reason, got.body) == (299, b"Custom Thing", b"nothing new\n")
        assert got.headers == [(b"x-a", b"1"), (b"content-length", b"12")]
        with anyio.fail_after(5):
            await conn.send("/poll")
            await subscribed(p8, "c")
            await publish(p8, response_item(body="next\n"))
            assert (await conn.receive()).body == b"next\n"
        assert len(origin.requests) == 3


async def test_grip_timeout_default_and_bounds() -> None:
    timeouts = {b"/t0": "0", b"/t3": "3", b"/t5": "5", b"/t8": "8", b"/default": None,
                b"/negative": "-1", b"/words": "soon"}

    asked: dict[str, float] = {}
    elapsed: dict[str, float] = {}

    def reply(req: SeenRequest) -> Reply:
        asked[req.target.decode()] = anyio.current_time()
        value = timeouts[req.target]
        return Reply(200, [*HOLD, *([("Grip-Timeout", value)] if value else [])], b"late\n")

    async def timed(client: httpx.AsyncClient, p8: Running, path: str) -> None:
        resp = await client.get(f"{p8.url}{path}")
        assert (resp.status_code, resp.text) == (200, "late\n")
        # From the backend's last answer: the first-subscription update may retry a hold.
        elapsed[path] = anyio.current_time() - asked[path]

    # Scaled: 0.1 turns the 5 s minimum into 0.5 s; 0.02 the 55 s default into 1.1 s.
    async with run_origin(reply) as origin, \
            run_p8(p8_config(origin.target, scale=0.1)) as tenth, \
            run_p8(p8_config(origin.target, scale=0.02)) as fiftieth, \
            httpx.AsyncClient() as client:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for path in ("/t0", "/t3", "/t5", "/t8"):
                    tg.start_soon(timed, client, tenth, path)
                tg.start_soon(timed, client, fiftieth, "/default")
            for path in ("/negative", "/words"):
                resp = await client.get(f"{tenth.url}{path}")
                assert resp.status_code == 502
            assert resp.text == ("Failed to parse accept instructions: "
                                 "failed to parse Grip-Timeout\n")
            resp = await client.get(f"{tenth.url}/negative")
            assert resp.text == ("Failed to parse accept instructions: "
                                 "Grip-Timeout has invalid value\n")
    # Never early; late by the timer wheel's 0.1 s and the machine's load.
    for path in ("/t0", "/t3", "/t5"):
        assert 0.5 <= elapsed[path] < 1.0, "below 5 s is raised to 5 s"
    assert 0.8 <= elapsed["/t8"] < 1.3
    assert 1.1 <= elapsed["/default"] < 1.6, "55 s by default"


async def test_body_patch_patches_the_stored_body() -> None:
    stored = Reply(200, [("Content-Type", "application/json"), *HOLD],
                   b'{"cursor": 1, "items": ["a"]}\n')
    async with run_origin(lambda r: stored) as origin, run_p8(p8_config(origin.target)) as p8, \
            httpx.AsyncClient() as client:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                results: list[httpx.Response] = []

                async def poll() -> None:
                    results.append(await client.get(f"{p8.url}/items"))

                tg.start_soon(poll)
                await subscribed(p8, "c")
                await publish(p8, response_item(**{"body-patch": [
                    {"op": "replace", "path": "/cursor", "value": 2},
                    {"op": "add", "path": "/items/-", "value": "b"}]}))
        (resp,) = results
        assert resp.headers["content-type"] == "application/json"
        assert resp.content == b'{"cursor":2,"items":["a","b"]}\n'


async def test_keep_alive_after_answers_head_included_and_close_honoured(connect: Any) -> None:
    async with run_origin(lambda r: Reply(200, HOLD, b"")) as origin, \
            run_p8(p8_config(origin.target)) as p8, connect(p8.bound.port) as conn:
        with anyio.fail_after(5):
            for n, method in enumerate(["GET", "HEAD", "GET", "GET"]):
                await conn.send(f"/poll/{n}", method=method)
                await subscribed(p8, "c")
                await publish(p8, response_item(body=f"answer {n}\n"))
                got = await conn.receive()
                assert got.header(b"content-length") == b"9"
                assert got.body == (b"" if method == "HEAD" else f"answer {n}\n".encode())
            await conn.send("/poll/last", headers=[("Connection", "close")])
            await subscribed(p8, "c")
            await publish(p8, response_item(body="bye\n"))
            assert (await conn.receive()).body == b"bye\n"
            assert await conn.closed_by_peer()
        assert [r.method for r in origin.requests] == [b"GET", b"HEAD", b"GET", b"GET", b"GET"]


async def test_the_builtin_response_target(connect: Any) -> None:
    # 0.01: the 55 s default is 0.55 s, over before the first-subscription update.
    async with run_p8(p8_config(scale=0.01)) as p8, connect(p8.bound.port) as conn:
        with anyio.fail_after(5):
            await conn.send("/response?channel=lp")
            await subscribed(p8, "lp")
            await publish(p8, response_item("lp", body="hello\n"))
            got = await conn.receive()
            assert (got.status, got.body) == (200, b"hello\n")
            assert got.headers == [(b"content-type", b"text/plain"), (b"content-length", b"6")]
            # Channel "test" by default; nothing is published, so the timeout answers.
            got = await conn.request("/response")
            assert (got.status, got.body) == (200, b"nothing for now\n")


async def test_every_waiting_client_gets_the_publish_and_a_leaver_unsubscribes_at_once(
        connect: Any) -> None:
    clients = 50
    async with run_origin(lambda r: Reply(200, HOLD, b"")) as origin, \
            run_p8(p8_config(origin.target)) as p8, \
            httpx.AsyncClient(limits=httpx.Limits(max_connections=clients)) as client:
        answers: list[httpx.Response] = []

        async def poll() -> None:
            answers.append(await client.get(f"{p8.url}/poll"))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for _ in range(clients):
                    tg.start_soon(poll)
                await subscribed(p8, "c", clients)
                await publish(p8, response_item(code=202, body="for everyone\n"))
            assert [(a.status_code, a.text) for a in answers] == [(202, "for everyone\n")] * clients
            assert p8.app.hub.subscriber_count("c") == 0

            async with connect(p8.bound.port) as leaver:
                await leaver.send("/poll")
                await subscribed(p8, "c")
            left = anyio.current_time()
            while p8.app.hub.subscriber_count("c"):
                await anyio.sleep(0.001)
        assert anyio.current_time() - left < 0.5
        assert not p8.app.held


async def test_delivery_and_content_filters() -> None:
    hold = [("Grip-Hold", "response"), ("Grip-Set-Meta", 'user="alice"'),
            ("Grip-Channel", "room; filter=skip-self; filter=var-subst")]
    async with run_origin(lambda r: Reply(200, hold, b"")) as origin, \
            run_p8(p8_config(origin.target)) as p8, httpx.AsyncClient() as client:
        answers: list[httpx.Response] = []

        async def poll() -> None:
            answers.append(await client.get(f"{p8.url}/room"))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(poll)
                await subscribed(p8, "room")
                own = response_item("room", body="my own words\n")
                await publish(p8, {**own, "meta": {"sender": "alice"}})
                other = response_item("room", body="hi %(user)s, 100%%\n")
                await publish(p8, {**other, "meta": {"sender": "bob"}})
        assert [a.text for a in answers] == ["hi alice, 100%\n"]


async def test_publish_errors_are_pushpins() -> None:
    async with run_p8(p8_config()) as p8:
        cases = [({"action": "refresh"}, "Invalid format: \n"),
                 ({"code": 1000, "body": ""},
                  "Invalid format: 'http-response' contains 'code' with invalid value\n"),
                 ({"headers": [["X-A"]], "body": ""},
                  "Invalid format: headers contains list with wrong number of elements\n"),
                 ({"code": 200},
                  "Invalid format: 'http-response' does not contain 'body', 'body-bin', or "
                  "'body-patch'\n")]
        for fmt, message in cases:
            resp = await publish(p8, response_item(**fmt))
            assert (resp.status_code, resp.text) == (400, message)


async def test_publishing_with_gripcontrol_reaches_waiting_clients() -> None:
    async with run_origin(lambda r: Reply(200, HOLD, b"")) as origin, \
            run_p8(p8_config(origin.target)) as p8, httpx.AsyncClient() as client:
        pub = GripPubControl({"control_uri": p8.control_url})
        answers: list[httpx.Response] = []

        async def poll() -> None:
            answers.append(await client.get(f"{p8.url}/g"))

        formats = [HttpResponseFormat(code=202, reason="Accepted Here",
                                      headers={"X-G": "1"}, body="from gripcontrol\n"),
                   HttpResponseFormat(body=b"\xff\x00binary")]
        for fmt in formats:
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(poll)
                    await subscribed(p8, "c")
                    await anyio.to_thread.run_sync(
                        lambda f=fmt: pub.publish_http_response("c", f, blocking=True))
        first, second = answers
        assert (first.status_code, first.reason_phrase, first.text) == (
            202, "Accepted Here", "from gripcontrol\n")
        assert first.headers["x-g"] == "1"
        assert second.content == b"\xff\x00binary", "binary bodies go as body-bin"
