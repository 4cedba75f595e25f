"""The control listener's /metrics, /healthz and /readyz: every metric moves when its event
happens, seen through a real scrape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketStream
from prometheus_client.parser import text_string_to_metric_families

from p8core import Action, HoldMode, PublishItem, SendBody, SendHead, hookimpl
from p8core.app import App
from p8core.observe.endpoints import observation_views
from p8core.testing import Reply, Running, Samples, publish, run_origin, run_p8, scrape

pytestmark = pytest.mark.anyio

ROUTE = "*,*,*,*"
GRIP = {"plugins": {"enabled": ["http_stream", "long_poll"]}}


def request(path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode()


async def hold(p8: Running, path: str, first: bytes = b"") -> SocketStream:
    """A raw client whose request the test target holds; returns once ``first`` arrived."""
    stream = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
    await stream.send(request(path))
    got = b""
    with anyio.fail_after(5):
        while first not in got:
            got += await stream.receive()
    return stream


async def until(p8: Running, check: Any) -> Samples:
    """Scrape until ``check(samples)`` holds (a closed socket is noticed asynchronously)."""
    with anyio.fail_after(5):
        while not check(samples := await scrape(p8)):
            await anyio.sleep(0.02)
    return samples


async def test_health_readiness_and_exposition() -> None:
    async with run_p8(GRIP) as p8, httpx.AsyncClient() as client:
        health = await client.get(f"{p8.control_url}/healthz")
        ready = await client.get(f"{p8.control_url}/readyz")
        assert (health.status_code, health.text) == (200, "OK\n")
        assert (ready.status_code, ready.text) == (200, "OK\n")
        resp = await client.get(f"{p8.control_url}/metrics")
        assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
        names = {f.name for f in text_string_to_metric_families(resp.text)}
        assert {"p8_connections", "p8_deliveries", "p8_origin_request_duration_seconds",
                "process_resident_memory_bytes"} <= names
        assert Samples(resp.text)("p8_ready") == 1
        refused = await client.post(f"{p8.control_url}/metrics")
        assert (refused.status_code, refused.headers["allow"]) == (405, "GET")
        app = p8.app
    assert not app.telemetry.ready, "not ready once stopping"
    assert observation_views(App.from_raw(GRIP))["/readyz"].answer("") == (
        503, b"Not ready.\n", [(b"content-type", b"text/plain")]), "nor before listening"


async def test_connections_holds_subscriptions_and_deliveries_move() -> None:
    async with run_p8(GRIP) as p8:
        before = await scrape(p8)
        assert before("p8_connections", transport="http", route=ROUTE) == 0
        stream = await hold(p8, "/stream?channel=a", b"[stream opened]\n")
        poll = await hold(p8, "/response?channel=b")
        m = await until(p8, lambda m: m("p8_held_connections", mode="response") == 1)
        assert m("p8_connections", transport="http", route=ROUTE) == 2
        assert m("p8_connections_accepted_total") == 2
        assert m("p8_requests_total") == 2
        assert m("p8_held_connections", mode="stream") == 1
        assert m("p8_held_connections", mode="response") == 1
        assert m("p8_holds_started_total") == 2
        assert m("p8_subscriptions", format="http-stream") == 1
        assert m("p8_subscriptions", format="http-response") == 1
        assert m("p8_channels") == 2
        assert m("p8_origin_requests_total", kind="proxy", scheme="test", outcome="2xx") == 2
        assert m("p8_origin_request_duration_seconds_count", kind="proxy") == 2
        heads = len(request("/stream?channel=a") + request("/response?channel=b"))
        assert m("p8_client_bytes_total", direction="in", part="head") == heads
        assert m("p8_client_bytes_total", direction="in", part="body") == 0
        assert m("p8_publish_delivery_seconds_count") == 0

        for channel in ("a", "b"):
            assert (await publish(p8, {"channel": channel, "formats": {
                "http-stream": {"content": "one\n"},
                "http-response": {"body": "one\n"}}})).status_code == 200
        async with stream, poll:
            m = await until(p8, lambda m: m("p8_held_connections", mode="response") == 0)
            assert m("p8_items_received_total", input="http", format="http-stream") == 2
            assert m("p8_items_received_total", input="http", format="http-response") == 2
            assert m("p8_deliveries_total", format="http-stream") == 1
            assert m("p8_deliveries_total", format="http-response") == 1
            assert m("p8_publish_requests_accepted_total") == 2
            assert m("p8_publish_delivery_seconds_count") == 2
            out = m("p8_client_bytes_total", direction="out", part="body")
            assert out >= len(b"[stream opened]\none\n") + len(b"one\n")
        m = await until(p8, lambda m: m("p8_connections", transport="http", route=ROUTE) == 0)
        assert m("p8_held_connections", mode="stream") == 0
        assert m("p8_subscriptions", format="http-stream") == 0
        bad = await publish(p8, {"channel": "a"})
        assert bad.status_code == 400
        assert (await scrape(p8))("p8_publish_requests_rejected_total") == 1


async def test_origin_requests_by_outcome() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    closed_port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    async with run_origin(lambda r: Reply(500, body=b"broken\n")) as origin, \
            run_p8({"plugins": {"enabled": []}, "routes": [
                {"path_prefix": "/down", "target": f"http://127.0.0.1:{closed_port}"},
                {"target": origin.target}]}) as p8, httpx.AsyncClient() as client:
        assert (await client.get(f"{p8.url}/x")).status_code == 500
        assert (await client.get(f"{p8.url}/down")).status_code == 502
        m = await scrape(p8)
        assert m("p8_origin_requests_total", kind="proxy", scheme="http", outcome="5xx") == 1
        assert m("p8_origin_requests_total", kind="proxy", scheme="http", outcome="error") == 1
        assert m("p8_origin_request_duration_seconds_count", kind="proxy") == 2
        assert m("p8_requests_proxied_total") == 1


class Faulty(HoldMode):
    """Hold mode ``faulty``: opens a stream, then fails on the first item."""

    name = "faulty"
    format = "http-stream"

    def start(self) -> Sequence[Action]:
        return [SendHead(200, ((b"content-type", b"text/plain"),)), SendBody(b"ready\n")]

    def on_item(self, item: PublishItem) -> Sequence[Action]:
        raise RuntimeError("a bug in a hold mode")


class FaultyPlugin:
    @hookimpl
    def p8_register_hold_modes(self) -> list[type[HoldMode]]:
        return [Faulty]


async def test_drops_by_reason() -> None:
    reply = Reply(200, [("Grip-Hold", "faulty"), ("Grip-Channel", "f")], b"ready\n")
    config = {"plugins": {"enabled": ["http_stream"]}, "server": {"max_connections": 2},
              "routes": [{"path_prefix": "/faulty", "target": "ORIGIN"}, {"target": "test"}]}
    async with run_origin(lambda r: reply) as origin:
        config["routes"][0]["target"] = origin.target  # type: ignore[index]
        async with run_p8(config, plugins=[FaultyPlugin()]) as p8:
            faulty = await hold(p8, "/faulty", b"ready\n")
            stream = await hold(p8, "/stream?channel=s", b"[stream opened]\n")
            refused = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
            async with faulty, stream, refused:
                with anyio.fail_after(5):
                    assert b"503" in await refused.receive()
                await publish(p8, {"channel": "f", "http-stream": {"content": "x"}})
                for item in ({"id": "1"}, {"id": "1"},  # the repeat is a duplicate
                             {"id": "3", "prev-id": "2"}, {"id": "4", "prev-id": "2"}):
                    await publish(p8, {"channel": "s", "http-stream": {"content": "y"}, **item})
                m = await until(p8, lambda m: m("p8_drops_total", reason="error") == 1)
                assert m("p8_drops_total", reason="limit") == 1
                assert m("p8_drops_total", reason="duplicate") == 1
                assert m("p8_drops_total", reason="out_of_order") == 1
                assert m("p8_items_parked_total") == 1
                assert m("p8_drops_total", reason="slow_consumer") == 0


async def test_a_slow_consumer_is_a_drop() -> None:
    config = {**GRIP, "server": {"write_buffer_max": 1}}
    async with run_p8(config) as p8:
        stalled = await hold(p8, "/stream?channel=big", b"[stream opened]\n")
        async with stalled:
            content = "z" * 500_000
            with anyio.fail_after(10):
                while (await scrape(p8))("p8_drops_total", reason="slow_consumer") == 0:
                    resp = await publish(p8, {"channel": "big",
                                              "http-stream": {"content": content}})
                    assert resp.status_code == 200
