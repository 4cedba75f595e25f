"""The stats socket: Pushpin's ``conn``, ``sub``, ``message`` and ``report`` messages, built
sans-I/O by StatsBook and sent over a real PUB socket; decoded with tnetstring3 as Pushpin's
monitoring scripts do."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import tnetstring
import zmq
import zmq.asyncio
from anyio.streams.text import TextReceiveStream
from p8_http_stream.testing import open_stream
from p8_zmq_pubsub.stats import StatsBook

from p8core import ConfigError, PublishItem
from p8core.app import App
from p8core.observe.report import Totals
from p8core.proxy.routes import Route
from p8core.testing import publish, run_p8

pytestmark = pytest.mark.anyio

ZERO = Totals(0.0, 0, 0, 0, 0, 0, 0, 0, 0)
Message = tuple[str, dict[str, Any]]


def decode(raw: bytes) -> Message:
    """``<type> T<tnetstring>`` or ``<type> J<json>``, keys and strings as text."""
    kind, _, payload = raw.partition(b" ")
    if payload[:1] == b"J":
        return kind.decode(), json.loads(payload[1:])
    assert payload[:1] == b"T"
    return kind.decode(), _text(tnetstring.loads(payload[1:]))


def _text(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.decode(): _text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class Conn:
    id: str
    transport_name: str = "http"
    peer: str = "127.0.0.1"
    ssl: bool = False
    route: Route | None = None


class Hub:
    """Subscriber counts by format, as the book reads them from the real hub."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self.lingering: set[str] = set()

    def subscriber_counts(self, channel: str) -> dict[str, int]:
        return dict(self.counts.get(channel, {}))

    def is_subscribed(self, channel: str) -> bool:
        return channel in self.counts or channel in self.lingering


def book(**overrides: Any) -> StatsBook:
    options: dict[str, Any] = {"fmt": "tnetstring", "connection_ttl": 120,
                               "subscription_ttl": 60, "max_pending": 100, "now": 0.0,
                               "totals": ZERO}
    return StatsBook("p8_1", **{**options, **overrides})


def flush(stats: StatsBook, now: float, hub: Hub | None = None) -> list[Message]:
    return [decode(m) for m in stats.flush(now, hub or Hub())]


def test_connections_are_announced_refreshed_and_withdrawn() -> None:
    stats = book()
    quick, kept = Conn("p8_1:1"), Conn("p8_1:2", "websocket", "10.0.0.9", True,
                                       Route(("test",), id="chat"))
    stats.opened(quick)
    stats.closed(quick)
    stats.opened(kept)
    assert flush(stats, 1.0) == [("conn", {
        "id": "p8_1:2", "type": "ws", "peer-address": "10.0.0.9", "ssl": True, "route": "chat",
        "ttl": 120, "from": "p8_1"})], "a connection gone before the flush goes unmentioned"
    assert flush(stats, 90.0) == []
    assert [m[1]["id"] for m in flush(stats, 91.0)] == ["p8_1:2"], "refreshed at 3/4 of ttl"
    plain = Conn("p8_1:3", route=Route(("test",)))
    stats.opened(plain)
    stats.closed(kept)
    assert flush(stats, 92.0) == [
        ("conn", {"id": "p8_1:2", "unavailable": True, "from": "p8_1"}),
        ("conn", {"id": "p8_1:3", "type": "http", "peer-address": "127.0.0.1", "ttl": 120,
                  "from": "p8_1"})], "no route field without an explicit route id"
    assert flush(stats, 200.0)[0][1]["id"] == "p8_1:3"


def test_subscriptions_follow_counts_and_response_mode_lingers() -> None:
    stats, hub = book(), Hub()
    hub.counts["c"] = {"http-stream": 2, "http-response": 1}
    stats.changed("c")
    stats.changed("c")
    assert flush(stats, 0.0, hub) == [
        ("sub", {"mode": "response", "channel": "c", "subscribers": 1, "ttl": 60,
                 "from": "p8_1"}),
        ("sub", {"mode": "stream", "channel": "c", "subscribers": 2, "ttl": 60,
                 "from": "p8_1"})], "one message per channel and mode, however many changes"
    hub.counts["c"] = {"http-stream": 2}
    hub.lingering.add("c")
    stats.changed("c")
    assert flush(stats, 1.0, hub) == [("sub", {
        "mode": "response", "channel": "c", "subscribers": 0, "ttl": 60, "from": "p8_1"})]
    assert [m[1]["mode"] for m in flush(stats, 45.0, hub)] == ["response", "stream"]
    del hub.counts["c"]
    hub.lingering.clear()
    stats.changed("c")
    assert flush(stats, 46.0, hub) == [
        ("sub", {"mode": "response", "channel": "c", "unavailable": True, "from": "p8_1"}),
        ("sub", {"mode": "stream", "channel": "c", "unavailable": True, "from": "p8_1"})]
    assert flush(stats, 200.0, hub) == [], "a withdrawn channel is not refreshed"


def test_messages_reports_json_and_the_bound() -> None:
    stats = book(fmt="json", max_pending=3)
    item = PublishItem("c", {}, id="i1")
    stats.delivered(item, "http-stream", 3)
    stats.delivered(item, "ws-message", 0)
    stats.delivered(PublishItem("d", {}), "ws-message", 1)
    later = replace(ZERO, connection_seconds=150.0, items_received=5, deliveries=9,
                    http_response_deliveries=2, head_bytes_received=10, body_bytes_sent=70)
    stats.report(10.0, later, peak=4)
    assert flush(stats, 10.0) == [
        ("message", {"channel": "c", "item-id": "i1", "transport": "http-stream", "count": 3,
                     "from": "p8_1"}),
        ("message", {"channel": "d", "transport": "ws-message", "count": 1, "from": "p8_1"}),
        ("report", {"connections": 4, "minutes": 2, "received": 5, "sent": 9,
                    "http-response-sent": 2, "duration": 10000,
                    "client-header-bytes-received": 10, "client-header-bytes-sent": 0,
                    "client-content-bytes-received": 0, "client-content-bytes-sent": 70,
                    "from": "p8_1"})]
    stats.report(20.0, replace(later, connection_seconds=190.0), peak=1)
    assert flush(stats, 20.0)[0][1]["minutes"] == 1, "connection-minutes carry over periods"
    for n in range(5):
        stats.delivered(item, "http-stream", n + 1)
    assert [m[1]["count"] for m in flush(stats, 21.0)] == [3, 4, 5]
    assert stats.dropped == 2, "the oldest messages beyond the bound are dropped and counted"


def test_activity_and_counts_say_what_happened_since_the_last_flush() -> None:
    stats = book(totals=replace(ZERO, requests=10, deliveries=100))
    stats.activity(12, 105)
    stats.activity(12, 105)
    stats.activity(12, 107)
    assert flush(stats, 1.0) == [
        ("activity", {"count": 7, "from": "p8_1"}),
        ("counts", {"requests-received": 2, "from": "p8_1"}),
        ("activity", {"count": 2, "from": "p8_1"})]


def test_settings_are_checked() -> None:
    for key, value, problem in (("stats", "localhost:1", "is not a ZeroMQ endpoint"),
                                ("command", "5563", "is not a ZeroMQ endpoint"),
                                ("stats_format", "xml", "is not one of tnetstring, json"),
                                ("stats_report_interval", 0, "must be positive")):
        with pytest.raises(ConfigError, match=rf"plugins\.zmq_pubsub\.{key}: .*{problem}"):
            App.from_raw({"plugins": {"zmq_pubsub": {key: value}}})


async def receive(sub: zmq.asyncio.Socket, wanted: Callable[[Message], bool]) -> Message:
    """The next message ``wanted`` accepts (others are skipped)."""
    with anyio.fail_after(5):
        while not wanted(message := decode(await sub.recv())):
            pass
    return message


@pytest.mark.parametrize("fmt", ["tnetstring", "json"])
async def test_stats_socket_reports_a_client_as_it_comes_and_goes(
        ctx: zmq.asyncio.Context, free_endpoint: Callable[[], str], fmt: str) -> None:
    endpoint = free_endpoint()
    config = {"plugins": {"enabled": ["zmq_pubsub", "http_stream"], "zmq_pubsub": {
        "pull": "", "sub": [], "command": "", "stats": endpoint, "stats_format": fmt,
        "stats_report_interval": 0.3}}}
    async with run_p8(config) as p8:
        sub = ctx.socket(zmq.SUB)
        sub.subscribe(b"")
        sub.connect(endpoint)
        await receive(sub, lambda m: m[0] == "report")  # connected: reports arrive
        source = p8.app.telemetry.instance
        async with open_stream(p8.bound.port, "/stream?channel=news") as client:
            await client.read_until(b"[stream opened]\n")
            conn = await receive(sub, lambda m: m[0] == "conn")
            [conn_id] = p8.app.telemetry.connections
            assert conn == ("conn", {"id": conn_id, "type": "http", "peer-address": "127.0.0.1",
                                     "ttl": 120, "from": source})
            assert await receive(sub, lambda m: m[0] == "sub") == ("sub", {
                "mode": "stream", "channel": "news", "subscribers": 1, "ttl": 60,
                "from": source})
            await publish(p8, {"channel": "news", "id": "n1",
                               "http-stream": {"content": "hello\n"}})
            assert await receive(sub, lambda m: m[0] == "message") == ("message", {
                "channel": "news", "item-id": "n1", "transport": "http-stream", "count": 1,
                "from": source})
            report = await receive(sub, lambda m: m[0] == "report" and m[1]["sent"] > 0)
            assert report[1]["received"] == 1 and report[1]["connections"] == 1
            assert report[1]["client-content-bytes-sent"] > len("hello\n")
        gone = [await receive(sub, lambda m: m[0] in ("sub", "conn")) for _ in range(2)]
        assert sorted(gone) == [
            ("conn", {"id": conn_id, "unavailable": True, "from": source}),
            ("sub", {"mode": "stream", "channel": "news", "unavailable": True,
                     "from": source})]
        async with httpx.AsyncClient() as plain:
            await plain.get(f"{p8.url}/")
        assert await receive(sub, lambda m: m[0] in ("activity", "counts")) == (
            "activity", {"count": 1, "from": source})
        assert await receive(sub, lambda m: m[0] == "counts") == (
            "counts", {"requests-received": 1, "from": source})
        sub.close(linger=0)


PUSHPIN_TOOLS = Path("/usr/share/doc/pushpin/examples/tools")


@pytest.mark.skipif(not (PUSHPIN_TOOLS / "monitorstats.py").exists(),
                    reason="Pushpin's example tools are not installed")
async def test_pushpins_own_tools_read_the_stats_and_command_sockets(
        free_endpoint: Callable[[], str]) -> None:
    stats, command = free_endpoint(), free_endpoint()
    config = {"plugins": {"enabled": ["zmq_pubsub", "http_stream"], "zmq_pubsub": {
        "pull": "", "sub": [], "command": command, "stats": stats,
        "stats_report_interval": 0.2}}}
    tool = [sys.executable, "-u", str(PUSHPIN_TOOLS / "monitorstats.py"), stats]
    async with run_p8(config) as p8, await anyio.open_process(tool) as monitor:
        assert monitor.stdout is not None
        lines = TextReceiveStream(monitor.stdout)
        seen = ""
        try:
            with anyio.fail_after(10):
                while "report {" not in seen:  # the monitor is connected
                    seen += await lines.receive()
                async with open_stream(p8.bound.port, "/stream?channel=mon") as client:
                    await client.read_until(b"[stream opened]\n")
                    while "'channel': 'mon', 'subscribers': 1" not in seen:
                        seen += await lines.receive()
                called = await anyio.run_process([
                    sys.executable, str(PUSHPIN_TOOLS / "command.py"), command, "get-zmq-uris"])
        finally:
            monitor.terminate()
    assert "conn {'id': 'p8_" in seen and "'type': 'http'" in seen
    assert "sub {'mode': 'stream', 'channel': 'mon', 'subscribers': 1, 'ttl': 60" in seen
    assert called.stdout.decode().splitlines()[-1] == (
        f"success: {{b'command': {command.encode()!r}}}")


async def test_occupancy_messages_mark_a_channels_first_and_last_subscriber(
        ctx: zmq.asyncio.Context, free_endpoint: Callable[[], str]) -> None:
    endpoint = free_endpoint()
    config = {"plugins": {"enabled": ["zmq_pubsub", "http_stream"], "zmq_pubsub": {
        "pull": "", "sub": [], "command": "", "stats": endpoint,
        "stats_report_interval": 0.1}}}
    async with run_p8(config) as p8:
        sub = ctx.socket(zmq.SUB)
        sub.subscribe(b"report ")
        sub.subscribe(b"occupancy ")
        sub.connect(endpoint)
        await receive(sub, lambda m: m[0] == "report")  # connected: reports arrive
        source = p8.app.telemetry.instance
        async with open_stream(p8.bound.port, "/stream?channel=room") as one, \
                open_stream(p8.bound.port, "/stream?channel=room") as two:
            for client in (one, two):
                await client.read_until(b"[stream opened]\n")
            assert await receive(sub, lambda m: m[0] != "report") == ("occupancy", {
                "channel": "room", "event": "occupied", "from": source})
        assert await receive(sub, lambda m: m[0] != "report") == ("occupancy", {
            "channel": "room", "event": "vacated", "from": source}), "once, for both"
        sub.close(linger=0)
