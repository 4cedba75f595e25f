"""WebSocket clients through p8, end to end: real sockets, a scripted WebSocket-over-HTTP
backend, publishes through the control API and gripcontrol."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import gripcontrol
import h11
import httpx
import pytest
from gripcontrol import GripPubControl, WebSocketMessageFormat
from p8_ws_over_http.events import WsEvent, decode, encode
from p8_ws_over_http.transport import WebSocketTransport
from pubcontrol import Item
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from p8core.commands import CommandError
from p8core.testing import Reply, Running, SeenRequest, publish, run_origin, run_p8, scrape

pytestmark = pytest.mark.anyio

MEDIA = "application/websocket-events"
Script = Callable[[SeenRequest, list[WsEvent]], Reply | None]


def woh(*events: WsEvent, headers: Sequence[tuple[str, str]] = (), grip: bool = True) -> Reply:
    base = [("Content-Type", MEDIA)] + ([("Sec-WebSocket-Extensions", "grip")] if grip else [])
    return Reply(200, [*base, *headers], encode(events))


def text(data: str | bytes) -> WsEvent:
    return WsEvent("TEXT", data.encode() if isinstance(data, str) else data)


class Backend:
    """A WebSocket-over-HTTP backend: echoes with ``m:``, answers pings, acknowledges
    closes; a client message ``do <json>`` comes back as control message ``c:<json>``.
    ``script`` may answer a request instead. Every request is kept with its events."""

    def __init__(self, script: Script | None = None, *,
                 opening: Sequence[WsEvent] = (), open_headers: Sequence[tuple[str, str]] = (),
                 grip: bool = True) -> None:
        self.script, self.opening, self.open_headers = script, opening, open_headers
        self.grip = grip
        self.seen: list[tuple[SeenRequest, list[WsEvent]]] = []

    def __call__(self, request: SeenRequest) -> Reply:
        events = decode(request.body)
        self.seen.append((request, events))
        if self.script is not None and (reply := self.script(request, events)) is not None:
            return reply
        out: list[WsEvent] = []
        headers: Sequence[tuple[str, str]] = ()
        for event in events:
            if event.type == "OPEN":
                out += [event, *self.opening]
                headers = self.open_headers
            elif event.type in ("TEXT", "BINARY"):
                if event.content.startswith(b"do "):
                    out.append(text(b"c:" + event.content[3:]))
                else:
                    out.append(WsEvent(event.type, b"m:" + event.content))
            elif event.type == "PING":
                out.append(WsEvent("PONG", event.content))
            elif event.type == "CLOSE":
                out.append(event)
        return woh(*out, headers=headers, grip=self.grip)

    @property
    def events(self) -> list[WsEvent]:
        return [e for _, events in self.seen for e in events]

    async def wait_for(self, event: WsEvent) -> None:
        while event not in self.events:
            await anyio.sleep(0.01)


def config(target: str, *, settings: dict[str, Any] | None = None,
           **route: Any) -> dict[str, Any]:
    plugins: dict[str, Any] = {"enabled": ["ws_over_http"]}
    if settings:
        plugins["ws_over_http"] = settings
    return {"plugins": plugins,
            "routes": [{"target": target, "over_http": True, **route}]}


def ws_url(p8: Running, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{p8.bound.port}{path}"


async def until(check: Callable[[], bool]) -> None:
    while not check():
        await anyio.sleep(0.01)


async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the connection closes; the close code and reason the client received."""
    with pytest.raises(ConnectionClosed):
        while True:
            await ws.recv()
    return ws.close_code, ws.close_reason


def publish_ws(p8: Running, channel: str, **fmt: Any) -> Any:
    return publish(p8, {"channel": channel, "formats": {"ws-message": fmt}})


# ---- the protocol ---------------------------------------------------------------------------

async def test_ws_every_event_type_both_ways() -> None:
    def script(request: SeenRequest, events: list[WsEvent]) -> Reply | None:
        if text("ping me") in events:
            return woh(WsEvent("PING", b"hb"))
        return None

    backend = Backend(script)
    async with run_origin(backend) as origin, run_p8(config(origin.target)) as p8, \
            connect(ws_url(p8)) as ws:
        with anyio.fail_after(5):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"
            await ws.send("")
            assert await ws.recv() == ""
            await ws.send(["frag", "mented"])  # one message in two frames
            assert await ws.recv() == "fragmented"
            pong = await ws.ping(b"pp")
            await pong
            await ws.pong(b"po")
            await backend.wait_for(WsEvent("PONG", b"po"))
            await ws.send("ping me")
            await backend.wait_for(WsEvent("PONG", b"hb"))
    assert backend.events[:7] == [WsEvent("OPEN"), text("hello"), WsEvent("BINARY", b"\x00\x01"),
                                  WsEvent("TEXT"), text("fragmented"), WsEvent("PING", b"pp"),
                                  WsEvent("PONG", b"po")]
    assert backend.seen[3][0].body == b"TEXT\r\n", "an empty message has no size"


async def test_ws_requests_carry_the_connection_and_its_meta() -> None:
    backend = Backend(open_headers=[("Set-Meta-User", "alice"), ("X-Custom", "1"),
                                    ("Sec-WebSocket-Protocol", "chat")])
    async with run_origin(backend) as origin, \
            run_p8(config(origin.target, path_prefix="/api", replace_beg="/v1")) as p8, \
            connect(ws_url(p8, "/api/ws?q=1"), subprotocols=["chat"],
                    additional_headers={"Meta-User": "mallory", "Cookie": "a=b",
                                        "Connection-Id": "forged", "Grip-Sig": "forged"}) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.headers["x-custom"] == "1"
        assert "set-meta-user" not in ws.response.headers
        with anyio.fail_after(5):
            await ws.send("one")
            assert await ws.recv() == "one"
            await ws.send("two")
            assert await ws.recv() == "two"
    requests = [r for r, _ in backend.seen]
    ids = {r.header(b"connection-id") for r in requests}
    assert len(ids) == 1
    uuid.UUID(ids.pop().decode())
    for r in requests:
        assert (r.method, r.target) == (b"POST", b"/v1/ws?q=1")
        assert r.header(b"content-type") == r.header(b"accept") == MEDIA.encode()
        assert r.header(b"sec-websocket-extensions") == b"grip"
        assert r.header(b"sec-websocket-protocol") == b"chat"
        assert r.header(b"sec-websocket-key") and r.header(b"cookie") == b"a=b"
        assert r.header(b"upgrade") is None and r.header(b"connection") is None
        assert gripcontrol.validate_sig(r.header(b"grip-sig").decode(), "changeme")
    assert requests[0].header(b"meta-user") is None, "the client cannot set meta"
    assert [r.header(b"meta-user") for r in requests[1:]] == [b"alice"] * (len(requests) - 1)


async def test_ws_a_megabyte_each_way() -> None:
    big = "x" * 1_048_576
    async with run_origin(Backend()) as origin, \
            run_p8(config(origin.target, settings={"max_response_body": 2_000_000})) as p8, \
            connect(ws_url(p8), max_size=None) as ws:
        with anyio.fail_after(10):
            await ws.send(big)
            assert await ws.recv() == big


# ---- closing ------------------------------------------------------------------------------

async def test_ws_client_close_code_reaches_the_backend_and_back() -> None:
    backend = Backend()
    async with run_origin(backend) as origin, run_p8(config(origin.target)) as p8:
        async with connect(ws_url(p8)) as ws:
            with anyio.fail_after(5):
                await ws.close(4000, "bye")
        assert (ws.close_code, ws.close_reason) == (4000, "bye")
        assert backend.events[-1] == WsEvent("CLOSE", b"\x0f\xa0bye")
        with anyio.fail_after(5):
            await until(lambda: not p8.app.transports[0].connections)


async def test_ws_backend_close_code_reaches_the_client_and_its_reply_the_backend() -> None:
    def script(request: SeenRequest, events: list[WsEvent]) -> Reply | None:
        if text("close me") in events:
            return woh(text("m:last words"), WsEvent("CLOSE", b"\x0f\xa1server"))
        return None

    backend = Backend(script)
    async with run_origin(backend) as origin, run_p8(config(origin.target)) as p8, \
            connect(ws_url(p8)) as ws:
        with anyio.fail_after(5):
            await ws.send("close me")
            assert await ws.recv() == "last words"
            assert await closed(ws) == (4001, "server")
            await backend.wait_for(WsEvent("CLOSE", b"\x0f\xa1server"))
    assert backend.seen[-1][1] == [WsEvent("CLOSE", b"\x0f\xa1server")]


async def test_ws_published_close_and_disconnect() -> None:
    backend = Backend(opening=[text('c:{"type": "subscribe", "channel": "room"}')])
    async with run_origin(backend) as origin, run_p8(config(origin.target)) as p8:
        async with connect(ws_url(p8)) as ws:
            with anyio.fail_after(5):
                await until(lambda: p8.app.hub.subscriber_count("room") == 1)
                await publish_ws(p8, "room", action="close", code=4001, reason="pub-close")
                assert await closed(ws) == (4001, "pub-close")
                await backend.wait_for(WsEvent("CLOSE"))
        async with connect(ws_url(p8)) as ws:
            with anyio.fail_after(5):
                await ws.send("hi")
                assert await ws.recv() == "hi"
                ws.transport.abort()
                await backend.wait_for(WsEvent("DISCONNECT"))
                await until(lambda: p8.app.hub.subscriber_count("room") == 0)


# ---- refusal and failure ------------------------------------------------------------------

async def test_ws_backend_refusal_reaches_the_client() -> None:
    def refuse(request: SeenRequest, events: list[WsEvent]) -> Reply:
        return Reply(403, [("X-R", "1"), ("Content-Type", "text/plain")], b"go away\n")

    async with run_origin(Backend(refuse)) as origin, run_p8(config(origin.target)) as p8:
        with pytest.raises(InvalidStatus) as info:
            await connect(ws_url(p8))
    response = info.value.response
    assert (response.status_code, response.headers["x-r"], response.body) == (
        403, "1", b"go away\n")


async def test_ws_unreachable_or_unusable_backend_is_a_502() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    async with run_p8(config(f"http://127.0.0.1:{port}")) as p8:
        with pytest.raises(InvalidStatus) as info:
            await connect(ws_url(p8))
    assert (info.value.response.status_code, info.value.response.body) == (
        502, b"Error while proxying to origin.\n")
    async with run_origin(Backend(lambda r, e: woh(text("no open")))) as origin, \
            run_p8(config(origin.target)) as p8:
        with pytest.raises(InvalidStatus) as info:
            await connect(ws_url(p8))
    assert info.value.response.status_code == 502


async def test_ws_backend_failure_closes_the_client_with_1011() -> None:
    def fail(request: SeenRequest, events: list[WsEvent]) -> Reply | None:
        return Reply(500, [], b"oops") if text("boom") in events else None

    async with run_origin(Backend(fail)) as origin, run_p8(config(origin.target)) as p8, \
            connect(ws_url(p8)) as ws:
        with anyio.fail_after(5):
            await ws.send("boom")
            assert (await closed(ws))[0] == 1011


@asynccontextmanager
async def flaky_origin(backend: Backend, drops: int) -> AsyncIterator[str]:
    """An origin that hangs up on the first ``drops`` requests carrying a message (the
    backend is not reached, as far as p8 can tell), then answers through ``backend``."""
    dropped = 0

    async def serve(stream: anyio.abc.SocketStream) -> None:
        nonlocal dropped
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        conn.receive_data(await stream.receive())
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                    continue
                if isinstance(event, h11.Request):
                    request = SeenRequest(event.method, event.target, list(event.headers), b"")
                elif isinstance(event, h11.Data):
                    request.body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    if dropped < drops and b"TEXT" in request.body:
                        dropped += 1
                        return
                    reply = backend(request)
                    # One request per connection: every attempt of p8 is a new connection.
                    headers = [*reply.headers, ("Content-Length", str(len(reply.body))),
                               ("Connection", "close")]
                    await stream.send(conn.send(h11.Response(status_code=reply.status,
                                                             headers=headers))
                                      + conn.send(h11.Data(data=reply.body))
                                      + conn.send(h11.EndOfMessage()))
                    return
                else:
                    return

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        yield f"http://127.0.0.1:{port}"
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(("drops", "delivered"), [(2, True), (3, False)])
async def test_ws_unreached_backend_is_retried_then_the_client_closed(
        drops: int, delivered: bool) -> None:
    settings = {"retry_delay": 0.05, "jitter": 0.0, "retries": 2}
    backend = Backend()
    async with flaky_origin(backend, drops) as target, \
            run_p8(config(target, settings=settings)) as p8, connect(ws_url(p8)) as ws:
        with anyio.fail_after(5):
            started = anyio.current_time()
            await ws.send("anyone?")
            if delivered:
                assert await ws.recv() == "anyone?"
            else:
                assert (await closed(ws))[0] == 1011
            assert anyio.current_time() - started >= 0.15, "two retries: 0.05 + 0.1 s"
    assert backend.events.count(text("anyone?")) == int(delivered)


# ---- the GRIP extension -------------------------------------------------------------------

async def test_ws_subscribe_unsubscribe_with_the_route_prefix() -> None:
    backend = Backend()
    async with run_origin(backend) as origin, run_p8(config(origin.target, prefix="pp-")) as p8, \
            connect(ws_url(p8)) as ws:
        with anyio.fail_after(5):
            await ws.send('do {"type": "subscribe", "channel": "room"}')
            await until(lambda: p8.app.hub.subscriber_count("pp-room") == 1)
            await publish_ws(p8, "room", content="not for us")
            await publish_ws(p8, "pp-room", content="for us")
            assert await ws.recv() == "for us"
            await ws.send('do {"type": "unsubscribe", "channel": "room"}')
            await until(lambda: p8.app.hub.subscriber_count("pp-room") == 0)


async def test_ws_implicit_subscriptions_and_no_grip_routes() -> None:
    backend = Backend(grip=False)
    async with run_origin(backend) as origin, \
            run_p8(config(origin.target, sub=["news"], no_grip=True)) as p8, \
            connect(ws_url(p8)) as ws:
        with anyio.fail_after(5):
            await until(lambda: p8.app.hub.subscriber_count("news") == 1)
            await publish_ws(p8, "news", content="extra")
            assert await ws.recv() == "extra"
            await ws.send('do {"type": "subscribe", "channel": "x"}')
            assert await ws.recv() == 'c:{"type": "subscribe", "channel": "x"}'
    request = backend.seen[0][0]
    assert request.header(b"grip-sig") is None
    assert request.header(b"sec-websocket-extensions") is None


async def test_ws_detach_keeps_the_client_and_its_subscriptions() -> None:
    backend = Backend(opening=[text('c:{"type": "subscribe", "channel": "news"}')])
    async with run_origin(backend) as origin, run_p8(config(origin.target)) as p8, \
            connect(ws_url(p8)) as ws:
        with anyio.fail_after(5):
            await ws.send('do {"type": "detach"}')
            await backend.wait_for(WsEvent("CLOSE"))
            count = len(backend.seen)
            await ws.send("into the void")
            await publish_ws(p8, "news", content="still here")
            assert await ws.recv() == "still here"
        assert len(backend.seen) == count


async def test_ws_keep_alive_and_delayed_messages() -> None:
    async with run_origin(Backend()) as origin, \
            run_p8(config(origin.target, settings={"jitter": 0.0})) as p8, \
            connect(ws_url(p8)) as ws:
        with anyio.fail_after(5):
            await ws.send('do {"type": "keep-alive", "content": "KA!", "timeout": 0.2}')
            assert await ws.recv() == "KA!"
            assert await ws.recv() == "KA!"
            await ws.send('do {"type": "keep-alive"}')
            await ws.send('do {"type": "send-delayed", "content-bin": "AAE=", '
                          '"message-type": "binary", "timeout": 0.2}')
            started = anyio.current_time()
            assert await ws.recv() == b"\x00\x01"
            assert anyio.current_time() - started >= 0.15
            await ws.send('do {"type": "send-delayed", "content": "now", "timeout": 30}')
            await ws.send('do {"type": "flush-delayed"}')
            assert await ws.recv() == "now"


async def test_ws_set_meta_and_skip_self_and_session() -> None:
    backend = Backend(opening=[
        text('c:{"type": "subscribe", "channel": "chat", "filters": ["skip-self"]}'),
        text('c:{"type": "set-meta", "name": "user", "value": "alice"}'),
        text('c:{"type": "session", "id": "s-42"}')])
    async with run_origin(backend) as origin, run_p8(config(origin.target)) as p8, \
            connect(ws_url(p8)) as ws:
        with anyio.fail_after(5):
            await until(lambda: p8.app.hub.subscriber_count("chat") == 1)
            await publish(p8, {"channel": "chat", "meta": {"sender": "alice"},
                               "formats": {"ws-message": {"content": "own echo"}}})
            await publish(p8, {"channel": "chat", "meta": {"sender": "bob"},
                               "formats": {"ws-message": {"content": "from bob"}}})
            assert await ws.recv() == "from bob"
        transport = p8.app.transports[0]
        assert isinstance(transport, WebSocketTransport)
        (woh_conn,) = transport.connections.values()
        assert woh_conn.session.session_id == "s-42"


# ---- publishing ---------------------------------------------------------------------------

async def test_ws_publish_with_gripcontrol() -> None:
    backend = Backend(opening=[text('c:{"type": "subscribe", "channel": "all"}')])
    async with run_origin(backend) as origin, run_p8(config(origin.target)) as p8, \
            connect(ws_url(p8)) as ws:
        pub = GripPubControl({"control_uri": p8.control_url})
        with anyio.fail_after(5):
            await until(lambda: p8.app.hub.subscriber_count("all") == 1)
            await anyio.to_thread.run_sync(
                lambda: pub.publish("all", Item(WebSocketMessageFormat("hi there"))))
            assert await ws.recv() == "hi there"
            await anyio.to_thread.run_sync(
                lambda: pub.publish("all", Item(WebSocketMessageFormat(b"\x00\xff",
                                                                       binary=True))))
            assert await ws.recv() == b"\x00\xff"
            await anyio.to_thread.run_sync(lambda: pub.publish(
                "all", Item(WebSocketMessageFormat(action="close", code=4002))))
            assert (await closed(ws))[0] == 4002


async def test_ws_refresh_asks_the_backend_now() -> None:
    def script(request: SeenRequest, events: list[WsEvent]) -> Reply | None:
        return woh(text("m:refreshed!")) if request.body == b"" else None

    backend = Backend(script, opening=[text('c:{"type": "subscribe", "channel": "r"}')])
    async with run_origin(backend) as origin, run_p8(config(origin.target)) as p8, \
            connect(ws_url(p8)) as ws:
        with anyio.fail_after(5):
            await until(lambda: p8.app.hub.subscriber_count("r") == 1)
            await publish_ws(p8, "r", action="refresh")
            assert await ws.recv() == "refreshed!"
            transport = p8.app.transports[0]
            assert isinstance(transport, WebSocketTransport)
            (cid,) = transport.connections
            refresh = p8.app.commands["refresh"]
            assert refresh.run(p8.app, {"cid": cid.encode()}) is None
            assert await ws.recv() == "refreshed!"
            assert refresh.run(p8.app, {"channel": "r"}) is None
            assert await ws.recv() == "refreshed!"
            refresh.run(p8.app, {"channel": "nobody"})
            for args, condition in (({"cid": "no-such-id"}, "item-not-found"),
                                    ({}, "bad-request")):
                with pytest.raises(CommandError) as info:
                    refresh.run(p8.app, args)
                assert info.value.condition == condition
    empty = [r.header(b"content-length") for r, _ in backend.seen if not r.body]
    assert empty == [b"0"] * 3


async def test_ws_connections_and_backend_requests_are_measured() -> None:
    backend = Backend()
    async with run_origin(backend) as origin, \
            run_p8(config(origin.target, id="chat")) as p8, connect(ws_url(p8)) as ws:
        with anyio.fail_after(5):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            m = await scrape(p8)
        assert m("p8_connections", transport="websocket", route="chat") == 1
        assert m("p8_origin_requests_total", kind="ws-over-http", scheme="http",
                 outcome="2xx") == 2
        assert m("p8_origin_request_duration_seconds_count", kind="ws-over-http") == 2
        assert m("p8_origin_requests_total", kind="proxy", scheme="http", outcome="2xx") == 0


async def test_ws_deferred_open_and_keep_alive_requests() -> None:
    asked: list[float] = []

    def script(request: SeenRequest, events: list[WsEvent]) -> Reply | None:
        asked.append(anyio.current_time())
        keep_alive = [("Keep-Alive-Interval", "1")]
        if len(asked) == 1:
            return woh(headers=keep_alive)  # not yet
        if len(asked) == 2:
            return woh(WsEvent("OPEN"), headers=keep_alive)
        return woh(text("m:kept alive")) if not events else None

    settings = {"keep_alive_min": 0.1}
    async with run_origin(Backend(script)) as origin, \
            run_p8(config(origin.target, settings=settings)) as p8:
        with anyio.fail_after(5):
            async with connect(ws_url(p8)) as ws:
                assert await ws.recv() == "kept alive"
    assert 0.9 < asked[1] - asked[0] < 1.5, "OPEN asked again after the interval"
    assert 0.9 < asked[2] - asked[1] < 1.5, "an empty request after an idle interval"


async def test_ws_slow_client_is_closed_and_counted_and_the_backend_told() -> None:
    backend = Backend(opening=[text('c:{"type": "subscribe", "channel": "bulk"}')])
    async with run_origin(backend) as origin, \
            run_p8({**config(origin.target), "server": {"write_buffer_max": 100_000}}) as p8:
        stalled = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
        async with stalled:
            await stalled.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                               b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            with anyio.fail_after(10):
                await until(lambda: p8.app.hub.subscriber_count("bulk") == 1)
                for _ in range(100):
                    await publish_ws(p8, "bulk", content="x" * 900_000)
                    if p8.app.metrics.slow_clients_closed:
                        break
                assert p8.app.metrics.slow_clients_closed == 1
                await backend.wait_for(WsEvent("DISCONNECT"))
                assert p8.app.hub.subscriber_count("bulk") == 0


# ---- the edges of the handshake --------------------------------------------------------------

async def test_ws_clients_get_1001_when_p8_stops() -> None:
    backend = Backend()
    async with run_origin(backend) as origin:
        async with run_p8(config(origin.target)) as p8:
            ws = await connect(ws_url(p8))
            with anyio.fail_after(5):
                await ws.send("hi")
                assert await ws.recv() == "hi"
        with anyio.fail_after(5):
            assert await closed(ws) == (1001, "server shutting down")


async def test_ws_handshake_errors() -> None:
    async with run_p8({"plugins": {"enabled": ["ws_over_http"]},
                       "routes": [{"host": "example.com", "target": "test"}]}) as p8:
        with pytest.raises(InvalidStatus) as info:
            await connect(ws_url(p8))
        assert info.value.response.status_code == 502
        async with httpx.AsyncClient() as client:
            resp = await client.get(f"{p8.url}/", headers={
                "Host": "example.com", "Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert resp.status_code == 426
        assert resp.headers["sec-websocket-version"] == "13"


async def test_ws_clients_may_not_send_events_to_over_http_routes_themselves() -> None:
    async with run_origin(lambda r: Reply(200, [], b"plain\n")) as origin, \
            run_p8({"plugins": {"enabled": ["ws_over_http"]}, "routes": [
                {"target": origin.target, "over_http": True, "path_prefix": "/ws"},
                {"target": origin.target}]}) as p8, httpx.AsyncClient() as client:
        events = {"Content-Type": MEDIA}
        refused = await client.post(f"{p8.url}/ws/x", content=b"OPEN\r\n", headers=events)
        assert (refused.status_code, refused.text) == (
            403, "Client not allowed to send WebSocket events directly.\n")
        passed = await client.post(f"{p8.url}/other", content=b"OPEN\r\n", headers=events)
        assert (passed.status_code, passed.text) == (200, "plain\n")
    assert [r.target for r in origin.requests] == [b"/other"]


# ---- WebSocket backends -------------------------------------------------------------------

async def test_ws_relay_to_a_websocket_backend() -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.http11 import Request, Response

    seen: list[Request] = []

    async def echo(conn: ServerConnection) -> None:
        seen.append(conn.request)  # type: ignore[arg-type]
        with contextlib.suppress(ConnectionClosed):
            async for message in conn:
                if message == "vanish":
                    conn.transport.abort()
                    return
                await conn.send(message)

    def check(conn: ServerConnection, request: Request) -> Response | None:
        if request.path.startswith("/private"):
            return conn.respond(403, "nope\n")
        return None

    async with serve(echo, "127.0.0.1", 0, process_request=check) as server:
        port = server.sockets[0].getsockname()[1]
        route = {"target": f"http://127.0.0.1:{port}", "path_prefix": "/api/",
                 "replace_beg": "/"}
        async with run_p8({"plugins": {"enabled": ["ws_over_http"]},
                           "routes": [route]}) as p8:
            with anyio.fail_after(5):
                async with connect(ws_url(p8, "/api/echo?x=1")) as ws:
                    await ws.send("hello")
                    assert await ws.recv() == "hello"
                    await ws.send(b"\x00" * 100_000)
                    assert await ws.recv() == b"\x00" * 100_000
                    await ws.close(4000, "done")
                assert (ws.close_code, ws.close_reason) == (4000, "done")
                async with connect(ws_url(p8, "/api/echo")) as ws:
                    await ws.send("vanish")
                    assert (await closed(ws))[0] == 1011
                with pytest.raises(InvalidStatus) as info:
                    await connect(ws_url(p8, "/api/private"))
                assert (info.value.response.status_code, info.value.response.body) == (
                    403, b"nope\n")
    assert seen[0].path == "/echo?x=1"
    assert gripcontrol.validate_sig(seen[0].headers["grip-sig"], "changeme")


async def test_ws_settings_are_checked() -> None:
    from p8core import ConfigError
    from p8core.app import App

    with pytest.raises(ConfigError, match=r"plugins\.ws_over_http\.retry_delay: expected a number"):
        App.from_raw({"plugins": {"ws_over_http": {"retry_delay": "soon"}}}, "p8.toml")
    with pytest.raises(ConfigError, match=r"plugins\.ws_over_http\.max_batch: must be at least 1"):
        App.from_raw({"plugins": {"ws_over_http": {"max_batch": 0}}}, "p8.toml")


def test_ws_long_messages_go_out_in_frames_of_16_kb() -> None:
    from p8_ws_over_http.connection import _encode
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import TextMessage

    message = ("é" * 10_000 + "x" * 3 + "€" * 10_000).encode()
    server, client = Connection(ConnectionType.SERVER), Connection(ConnectionType.CLIENT)
    client.receive_data(_encode(server, "text", message))
    frames = list(client.events())
    assert len(frames) == 4
    assert all(isinstance(f, TextMessage) for f in frames)
    assert all(len(f.data.encode()) <= 16_384 for f in frames)  # type: ignore[union-attr]
    assert "".join(f.data for f in frames).encode() == message  # type: ignore[union-attr]
