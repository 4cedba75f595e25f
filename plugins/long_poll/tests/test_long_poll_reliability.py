"""Reliability end to end (grip.md §7, publishing.md §6): retries on a prev-id gap at start
and while holding, with ``Grip-Last`` as the backend sees it; hints; recover; the update on
a channel's first subscription; and the subscription linger between polls."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from p8core.testing import Reply, Running, SeenRequest, publish, run_origin, run_p8

pytestmark = pytest.mark.anyio


def p8_config(target: str, **extra: Any) -> dict[str, Any]:
    return {"plugins": {"enabled": ["long_poll"]}, "routes": [{"target": target, **extra}]}


async def subscribed(p8: Running, channel: str, count: int = 1) -> None:
    while p8.app.hub.subscriber_count(channel) < count:
        await anyio.sleep(0.005)


def item(channel: str, body: str, *, id: str | None = None, prev_id: str | None = None,
         **fmt: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"channel": channel,
                           "formats": {"http-response": {"body": body, **fmt}}}
    if id is not None:
        out["id"] = id
    if prev_id is not None:
        out["prev-id"] = prev_id
    return out


class Feed:
    """A backend as gripcontrol users write one: messages 1..n on a channel; a poll
    ``?last=k`` gets the messages after k at once, or holds with ``prev-id=k``."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.messages: list[str] = []

    def __call__(self, req: SeenRequest) -> Reply:
        last = int(req.target.partition(b"last=")[2] or 0)
        if last < len(self.messages):
            return Reply(200, [("Content-Type", "text/plain")],
                         "".join(self.messages[last:]).encode())
        return Reply(200, [("Grip-Hold", "response"),
                           ("Grip-Channel", f"{self.channel}; prev-id={last}")], b"")

    def item(self, n: int) -> dict[str, Any]:
        return item(self.channel, f"{n}\n", id=str(n), prev_id=str(n - 1))


async def poll(client: httpx.AsyncClient, url: str, out: list[httpx.Response]) -> None:
    out.append(await client.get(url))


async def test_a_backend_behind_the_hub_at_start_is_asked_again_with_grip_last() -> None:
    # grip.md §7.2: published id=5 earlier; the backend answers prev-id=3; p8 re-requests
    # with Grip-Last: rl; last-id=3, the channel named as the backend names it.
    def backend(req: SeenRequest) -> Reply:
        if req.header(b"grip-last"):
            return Reply(200, [], b"4\n5\n")
        prev = "4" if req.target == b"/current" else "3"
        return Reply(200, [("Grip-Hold", "response"), ("Grip-Channel", f"rl; prev-id={prev}")])

    async with run_origin(backend) as origin, \
            run_p8(p8_config(origin.target, prefix="pp-")) as p8, \
            httpx.AsyncClient() as client:
        answers: list[httpx.Response] = []
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(poll, client, f"{p8.url}/current", answers)
                await subscribed(p8, "pp-rl")
                await publish(p8, item("pp-rl", "5\n", id="5", prev_id="4"))
            assert p8.app.hub.last_id("pp-rl") == "5"
            answers.append(await client.get(f"{p8.url}/behind"))
        assert [a.text for a in answers] == ["5\n", "4\n5\n"]
        retried = origin.requests[-1]
        assert (retried.target, retried.header(b"grip-last")) == (b"/behind", b"rl; last-id=3")
        assert retried.header(b"grip-sig"), "a retry is signed like any backend request"
        assert p8.app.hub.last_id("pp-rl") is None, "the conflicting last id is forgotten"


async def test_an_item_that_does_not_follow_the_prev_id_is_a_retry_instead() -> None:
    # grip.md §7.2: hold prev-id=6, item id=8 prev-id=7 → the backend is asked again with
    # Grip-Last: pm; last-id=6. A matching item (prev-id=5 then id=6) is delivered.
    def backend(req: SeenRequest) -> Reply:
        if req.header(b"grip-last") == b"pm; last-id=6":
            return Reply(200, [], b"7\n8\n")
        prev = req.target.rpartition(b"/")[2].decode()
        return Reply(200, [("Grip-Hold", "response"), ("Grip-Channel", f"pm; prev-id={prev}")])

    async with run_origin(backend) as origin, run_p8(p8_config(origin.target)) as p8, \
            httpx.AsyncClient() as client:
        answers: list[httpx.Response] = []
        with anyio.fail_after(5):
            for prev, published in (("5", item("pm", "6\n", id="6", prev_id="5")),
                                    ("6", item("pm", "8\n", id="8", prev_id="7"))):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(poll, client, f"{p8.url}/since/{prev}", answers)
                    await subscribed(p8, "pm")
                    # publish, not park: the hub's own ordering is not what is tested here
                    await publish(p8, {**published, "no-seq": True})
        assert [a.text for a in answers] == ["6\n", "7\n8\n"]
        assert [r.header(b"grip-last") for r in origin.requests] == [None, None, b"pm; last-id=6"]


async def test_a_hint_asks_the_backend_again_at_once() -> None:
    answers = iter([Reply(200, [("Grip-Hold", "response"), ("Grip-Channel", "h")], b"wait\n"),
                    Reply(200, [("X-Fresh", "1")], b"fresh state\n")])
    async with run_origin(lambda r: next(answers)) as origin, \
            run_p8(p8_config(origin.target)) as p8, httpx.AsyncClient() as client:
        got: list[httpx.Response] = []
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(poll, client, f"{p8.url}/state?x=1", got)
                await subscribed(p8, "h")
                hinted = anyio.current_time()
                await publish(p8, {"channel": "h", "formats": {"http-response": {
                    "action": "hint"}}})
        assert anyio.current_time() - hinted < 0.5
        (resp,) = got
        assert (resp.text, resp.headers["x-fresh"]) == ("fresh state\n", "1")
        first, second = origin.requests
        assert second.target == first.target == b"/state?x=1"
        assert second.header(b"grip-last") is None, "no channel had a prev-id"


async def test_recover_asks_the_backend_again_for_every_hold() -> None:
    feed = Feed("rc")
    async with run_origin(feed) as origin, run_p8(p8_config(origin.target)) as p8, \
            httpx.AsyncClient() as client:
        got: list[httpx.Response] = []
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(poll, client, f"{p8.url}/feed?last=0", got)
                await subscribed(p8, "rc", 3)
                feed.messages.append("missed\n")  # stored, never published
                resp = await client.post(f"{p8.control_url}/recover")
                assert resp.text == "Updated\n"
        assert [r.text for r in got] == ["missed\n"] * 3
        grip_last = [r.header(b"grip-last") for r in origin.requests]
        assert grip_last == [None] * 3 + [b"rc; last-id=0"] * 3


class RacingFeed(Feed):
    """A feed whose next message, once ``race`` is set, is published between its hold
    answer and the moment p8 subscribes the held request: the race a long-poll survives."""

    def __init__(self, channel: str) -> None:
        super().__init__(channel)
        self.p8: Running | None = None
        self.race = False

    async def __call__(self, req: SeenRequest) -> Reply:  # type: ignore[override]
        reply = super().__call__(req)
        if self.race and not req.header(b"grip-last"):
            assert self.p8 is not None
            self.race = False
            self.messages.append(f"{len(self.messages) + 1}\n")
            assert (await publish(self.p8, self.item(len(self.messages)))).status_code == 200
        return reply


async def test_a_channels_first_subscription_asks_the_backend_again_a_second_later() -> None:
    # grip.md §7.3: a message published after the backend's answer but before the channel
    # was subscribed reached no one; the update a second later finds it.
    feed = RacingFeed("fs")
    feed.race = True
    async with run_origin(feed) as origin, run_p8(p8_config(origin.target)) as p8, \
            httpx.AsyncClient() as client:
        feed.p8 = p8
        with anyio.fail_after(5):
            started = anyio.current_time()
            resp = await client.get(f"{p8.url}/feed?last=0")
        assert resp.text == "1\n"
        assert 0.9 < anyio.current_time() - started < 2
        assert [r.header(b"grip-last") for r in origin.requests] == [None, b"fs; last-id=0"]


@pytest.mark.parametrize("linger", [60, 0])
async def test_a_repoll_does_not_miss_what_was_published_in_between(linger: int) -> None:
    # publishing.md §6: after an answer the channel lingers, with its last id, so a re-poll
    # whose backend is already behind is asked again at once. Without linger, the hub has
    # forgotten the id and only the first-subscription update (~1 s later) saves the poll.
    feed = RacingFeed("ln")
    async with run_origin(feed) as origin:
        config = {**p8_config(origin.target), "pubsub": {"subscription_linger": linger}}
        async with run_p8(config) as p8, httpx.AsyncClient() as client:
            feed.p8 = p8
            first: list[httpx.Response] = []
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(poll, client, f"{p8.url}/feed?last=0", first)
                    await subscribed(p8, "ln")
                    feed.messages.append("1\n")
                    await publish(p8, feed.item(1))
                assert first[0].text == "1\n"
                assert p8.app.hub.is_subscribed("ln") is bool(linger)
                assert p8.app.hub.subscriber_count("ln") == 0
                feed.race = True
                started = anyio.current_time()
                second = await client.get(f"{p8.url}/feed?last=1")
                took = anyio.current_time() - started
            assert second.text == "2\n"
            retry = origin.requests[-1]
            assert retry.header(b"grip-last") == b"ln; last-id=1"
            if linger:
                assert took < 0.8, "the gap was seen at once from the lingering last id"
            else:
                assert took > 0.9, "only the first-subscription update found the gap"
