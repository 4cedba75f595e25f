"""The occupancy webhook against a real local HTTP endpoint: signed batches of events,
retries with back-off, a bounded queue that drops its oldest events, and no effect at all
without a URL."""

from __future__ import annotations

import json
from typing import Any

import anyio
import jwt
import pytest
from p8_http_stream.testing import open_stream
from p8_webhook import plugin
from p8_webhook.events import Event, EventQueue, backoff
from p8_webhook.settings import parse_settings

from p8core import ConfigError, PublishItem
from p8core.app import App
from p8core.testing import Origin, Reply, SeenRequest, run_origin, run_p8

pytestmark = pytest.mark.anyio


class Listener:
    """A subscriber that takes nothing: it makes its channel occupied."""

    format = "http-stream"

    def deliver(self, item: PublishItem) -> None:
        pass


def config(url: str, **table: Any) -> dict[str, Any]:
    return {"plugins": {"enabled": ["http_stream", "webhook"],
                        "webhook": {"url": url, "backoff": 0.01, **table}}}


def events(request: SeenRequest) -> list[tuple[str, str]]:
    return [(e["event"], e["channel"]) for e in json.loads(request.body)["events"]]


async def posts(origin: Origin, n: int) -> list[SeenRequest]:
    """The first ``n`` requests the endpoint got, once it got them."""
    with anyio.fail_after(5):
        while len(origin.requests) < n:
            await anyio.sleep(0.01)
    return origin.requests[:n]


async def test_occupancy_events_arrive_signed() -> None:
    async with run_origin(lambda r: Reply(204)) as hook, \
            run_p8(config(f"{hook.target}/hook", key="s3cret", iss="p8-test")) as p8:
        async with open_stream(p8.bound.port, "/stream?channel=room") as client:
            await client.read_until(b"[stream opened]\n")
            [first] = await posts(hook, 1)
        [_, second] = await posts(hook, 2)
    assert (first.method, first.target) == (b"POST", b"/hook")
    assert first.header(b"content-type") == b"application/json"
    assert events(first) == [("channel-occupied", "room")]
    assert events(second) == [("channel-vacated", "room")]
    for request in (first, second):
        token = (request.header(b"grip-sig") or b"").decode()
        claims = jwt.decode(token, "s3cret", algorithms=["HS256"])
        assert claims["iss"] == "p8-test" and claims["exp"] > json.loads(
            request.body)["events"][0]["time"]
    assert p8.app.telemetry.plugin_events.get(("webhook", "sent")) == 2


async def test_a_failing_endpoint_is_retried_until_it_answers() -> None:
    answers = iter([Reply(503), Reply(500), Reply(200)])
    async with run_origin(lambda r: next(answers)) as hook, \
            run_p8({**config(hook.target), "proxy": {"sig_key": "from-proxy"}}) as p8:
        async with open_stream(p8.bound.port, "/stream?channel=flaky") as client:
            await client.read_until(b"[stream opened]\n")
            tries = await posts(hook, 3)
        counted = p8.app.telemetry.plugin_events
        assert [events(r) for r in tries] == [[("channel-occupied", "flaky")]] * 3
        jwt.decode((tries[2].header(b"grip-sig") or b"").decode(), "from-proxy",
                   algorithms=["HS256"], options={"verify_iss": False})
        assert (counted.get(("webhook", "retried")), counted.get(("webhook", "sent"))) == (2, 1)


async def test_events_are_given_up_after_max_attempts() -> None:
    async with run_origin(lambda r: Reply(502)) as hook, \
            run_p8(config(hook.target, max_attempts=2)) as p8:
        p8.app.hub.subscribe("lost", Listener(), 0.0)
        await posts(hook, 2)
        counted = p8.app.telemetry.plugin_events
        with anyio.fail_after(5):
            while not counted.get(("webhook", "failed")):
                await anyio.sleep(0.01)
        assert counted.get(("webhook", "sent")) == 0


async def test_a_full_queue_drops_its_oldest_events_and_counts_them() -> None:
    release = anyio.Event()

    async def slow(request: SeenRequest) -> Reply:
        await release.wait()
        return Reply(200)

    async with run_origin(slow) as hook, \
            run_p8(config(hook.target, queue_max=2)) as p8:
        p8.app.hub.subscribe("first", Listener(), 0.0)
        await posts(hook, 1)  # in flight: the queue is empty again
        for channel in ("a", "b", "c", "d"):
            p8.app.hub.subscribe(channel, Listener(), 0.0)
        assert p8.app.telemetry.plugin_events.get(("webhook", "dropped")) == 2
        release.set()
        [_, second] = await posts(hook, 2)
    assert events(second) == [("channel-occupied", "c"), ("channel-occupied", "d")]


async def test_without_a_url_nothing_listens_or_posts() -> None:
    async with run_p8({"plugins": {"enabled": ["http_stream", "webhook"]}}) as p8:
        assert plugin.p8_services(app=p8.app) == []
        async with open_stream(p8.bound.port, "/stream?channel=quiet") as client:
            await client.read_until(b"[stream opened]\n")
        assert p8.app.telemetry.plugin_events.counts == {}


def test_back_off_doubles_up_to_its_bound() -> None:
    assert [backoff(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_queue_keeps_the_newest() -> None:
    queue = EventQueue(2)
    dropped = [queue.put(Event("channel-occupied", c, 0.0)) for c in "xyz"]
    assert dropped == [False, False, True] and queue.dropped == 1
    assert [e.channel for e in queue.take(5)] == ["y", "z"]


@pytest.mark.parametrize(("table", "message"), [
    ({"url": "ftp://x"}, "plugins.webhook.url: 'ftp://x' is not an http:// or https:// URL"),
    ({"queue_max": 0}, "plugins.webhook.queue_max: must be at least 1"),
    ({"timeout": 0}, "plugins.webhook.timeout: must be positive"),
    ({"retries": 3}, "plugins.webhook.retries"),
])
def test_bad_settings_name_file_and_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(table, "p8.toml", "plugins.webhook")
    assert str(info.value).startswith(f"p8.toml: {message}")


def test_an_unusable_key_stops_start_up() -> None:
    app = App.from_raw(config("http://127.0.0.1:9", key="file:missing.pem"), "p8.toml")
    with pytest.raises(ConfigError, match=r"^p8.toml: plugins.webhook.key: "):
        plugin.p8_services(app=app)
