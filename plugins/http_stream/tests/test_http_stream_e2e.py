"""Stream holds end to end: a real backend, p8 and clients on loopback sockets."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from gripcontrol import GripPubControl, HttpStreamFormat  # type: ignore[import-untyped]
from p8_http_stream.testing import Chunk, open_stream

from p8core.testing import Reply, Running, SeenRequest, publish, run_origin, run_p8

pytestmark = pytest.mark.anyio



def p8_config(target: str, *, debug: bool = False, **settings: Any) -> dict[str, Any]:
    """Only this plugin, one route to ``target``, ``[plugins.http_stream]`` settings."""
    route: dict[str, Any] = {"target": target}
    if debug:
        route["debug"] = True
    return {"plugins": {"enabled": ["http_stream"], "http_stream": settings},
            "routes": [route]}


def hold(*headers: tuple[str, str], body: bytes = b"") -> Reply:
    return Reply(200, [("Content-Type", "text/plain"), ("Grip-Hold", "stream"), *headers], body)


def item(channel: str, content: str, **fields: Any) -> dict[str, Any]:
    """A publish item; ``prev_id=`` and ``no_seq=`` stand for ``prev-id`` and ``no-seq``."""
    fields = {name.replace("_", "-"): value for name, value in fields.items()}
    return {"channel": channel, "formats": {"http-stream": {"content": content}}, **fields}


CLOSE = {"formats": {"http-stream": {"action": "close"}}}
HINT = {"formats": {"http-stream": {"action": "hint"}}}


class Recorder:
    """An origin handler: answers by path, and notes when each request came."""

    def __init__(self, answer: Callable[[SeenRequest], Reply]) -> None:
        self.answer = answer
        self.seen: list[tuple[float, SeenRequest]] = []

    def __call__(self, request: SeenRequest) -> Reply:
        self.seen.append((anyio.current_time(), request))
        return self.answer(request)

    def times(self, path: bytes) -> list[float]:
        return [at for at, r in self.seen if r.target == path]

    async def wait_for(self, path: bytes, count: int) -> None:
        while len(self.times(path)) < count:
            await anyio.sleep(0.01)


async def test_seed_example_end_to_end() -> None:
    reply = Reply(200, [("Content-Type", "text/plain"), ("Grip-Hold", "stream"),
                        ("Grip-Channel", "test")], b"welcome to the stream\n")
    body = b'{"items":[{"channel":"test","formats":{"http-stream":{"content":"hello there\\n"}}}]}'
    async with run_origin(lambda r: reply) as origin, run_p8(p8_config(origin.target)) as p8, \
            open_stream(p8.bound.port, "/stream") as client, httpx.AsyncClient() as http:
        with anyio.fail_after(5):
            head = await client.head()
            assert head.status_code == 200
            assert client.header(b"transfer-encoding") == b"chunked"
            assert client.header(b"content-type") == b"text/plain"
            assert not [n for n, _ in head.headers if n.startswith(b"grip-")]
            assert await client.chunk() == b"welcome to the stream\n"
            published = await http.post(f"{p8.control_url}/publish/", content=body)
            assert (published.status_code, published.text) == (200, "Published\n")
            assert await client.chunk() == b"hello there\n"
            await publish(p8, item("test", "still here\n"))
            assert await client.chunk() == b"still here\n"
        assert not client.ended and p8.app.hub.subscriber_count("test") == 1


async def test_builtin_test_target() -> None:
    config = {"plugins": {"enabled": ["http_stream"]}, "routes": [{"target": "test"}]}
    async with run_p8(config) as p8, open_stream(p8.bound.port, "/stream") as client, \
            open_stream(p8.bound.port, "/stream?channel=other&channel=test") as two:
        with anyio.fail_after(5):
            assert await client.chunk() == b"[stream opened]\n"
            assert await two.chunk() == b"[stream opened]\n"
            await publish(p8, item("test", "hello there\n"), item("other", "to two\n"))
            assert await client.chunk() == b"hello there\n"
            assert await two.chunk() == b"hello there\n"
            assert await two.chunk() == b"to two\n"


async def test_http_10_client_gets_a_close_delimited_stream() -> None:
    config = {"plugins": {"enabled": ["http_stream"]}, "routes": [{"target": "test"}]}
    async with run_p8(config) as p8:
        stream = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
        async with stream:
            await stream.send(b"GET /stream HTTP/1.0\r\nHost: x\r\n\r\n")
            got = b""
            with anyio.fail_after(5):
                while b"[stream opened]\n" not in got:
                    got += await stream.receive()
                await publish(p8, item("test", "raw\n"), CLOSE | {"channel": "test"})
                while True:
                    try:
                        got += await stream.receive()
                    except anyio.EndOfStream:
                        break
        head, _, rest = got.partition(b"\r\n\r\n")
        assert b"transfer-encoding" not in head.lower() and b"content-length" not in head.lower()
        assert rest == b"[stream opened]\nraw\n"


async def test_grip_status_expose_headers_and_json_instructions() -> None:
    def answer(request: SeenRequest) -> Reply:
        if request.target == b"/json":
            doc = {"hold": {"mode": "stream", "channels": [{"name": "j"}]},
                   "response": {"code": 202, "headers": {"X-J": "1"}, "body": "json\n"}}
            return Reply(200, [("Content-Type", "application/grip-instruct")],
                         json.dumps(doc).encode())
        return hold(("Grip-Channel", "h"), ("Grip-Status", "201"), ("X-Kept", "k"),
                    ("X-Dropped", "d"), ("Grip-Expose-Headers", "X-Kept"), body=b"headers\n")

    async with run_origin(answer) as origin, run_p8(p8_config(origin.target)) as p8, \
            open_stream(p8.bound.port, "/h") as h, \
            open_stream(p8.bound.port, "/json") as j:
        with anyio.fail_after(5):
            assert (await h.head()).status_code == 201
            assert {n for n, _ in (await h.head()).headers} == {b"x-kept", b"transfer-encoding"}
            assert await h.chunk() == b"headers\n"
            assert (await j.head()).status_code == 202
            assert j.header(b"x-j") == b"1"
            assert await j.chunk() == b"json\n"
            await publish(p8, item("j", "to json\n"), item("h", "to headers\n"))
            assert await j.chunk() == b"to json\n"
            assert await h.chunk() == b"to headers\n"


async def test_close_ends_the_response_and_the_connection_serves_on() -> None:
    async with run_origin(lambda r: hold(("Grip-Channel", "c"), body=b"open\n")) as origin, \
            run_p8(p8_config(origin.target)) as p8:
        stream = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
        async with stream:
            await stream.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            with anyio.fail_after(5):
                while b"open\n" not in got:
                    got += await stream.receive()
                await publish(p8, CLOSE | {"channel": "c"})
                while not got.endswith(b"0\r\n\r\n"):
                    got += await stream.receive()
                assert p8.app.hub.subscriber_count("c") == 0
                await stream.send(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
                again = b""
                while b"open\n" not in again:
                    again += await stream.receive()
                assert again.startswith(b"HTTP/1.1 200 ")


async def test_published_chunks_arrive_in_publish_order() -> None:
    async with run_origin(lambda r: hold(("Grip-Channel", "o"))) as origin, \
            run_p8(p8_config(origin.target)) as p8, open_stream(p8.bound.port) as client, \
            httpx.AsyncClient() as http:
        with anyio.fail_after(5):
            await client.head()
            while p8.app.hub.subscriber_count("o") < 1:
                await anyio.sleep(0.01)
            url = f"{p8.control_url}/publish/"
            await http.post(url, json={"items": [item("o", f"{n},") for n in range(50)]})
            for n in range(50, 100):
                await http.post(url, json={"items": [item("o", f"{n},")]})
            body = await client.read_until(b"99,")
        assert body == b"".join(f"{n},".encode() for n in range(100))


async def test_delivery_and_content_filters() -> None:
    reply = hold(("Grip-Channel", "f; filter=skip-self; filter=var-subst"),
                 ("Grip-Set-Meta", 'user="alice"'))
    async with run_origin(lambda r: reply) as origin, run_p8(p8_config(origin.target)) as p8, \
            open_stream(p8.bound.port) as client:
        with anyio.fail_after(5):
            await client.head()
            while p8.app.hub.subscriber_count("f") < 1:
                await anyio.sleep(0.01)
            await publish(p8, item("f", "own echo\n", meta={"sender": "alice"}),
                          item("f", "hi %(user)s\n", meta={"sender": "bob"}))
            assert await client.chunk() == b"hi alice\n"


# ---- keep-alives (grip.md §3.2) -----------------------------------------------------------

async def _chunk_times(p8: Running, mode: str, publish_at: float | None,
                       keep_alives: int) -> list[tuple[bytes, float]]:
    """The chunks of a stream, and when each arrived (seconds after the stream opened),
    until ``keep_alives`` keep-alives came."""
    async with open_stream(p8.bound.port, f"/{mode}") as client, \
            anyio.create_task_group() as tg:
        await client.head()
        opened = anyio.current_time()
        if publish_at is not None:
            async def later() -> None:
                await anyio.sleep(publish_at)
                await publish(p8, item(mode, "data\n"))
            tg.start_soon(later)
        chunks: list[tuple[bytes, float]] = []
        with anyio.fail_after(keep_alives + 3):
            while sum(c == b"ka\n" for c, _ in chunks) < keep_alives:
                chunk: Chunk = await client.chunk()
                chunks.append((bytes(chunk), chunk.at - opened))
    return chunks


def _keep_alive_answer(request: SeenRequest) -> Reply:
    mode = request.target.decode().strip("/")
    return hold(("Grip-Channel", mode),
                ("Grip-Keep-Alive", f"ka\\n; format=cstring; timeout=1; mode={mode}"))


async def test_keep_alive_timing_in_both_modes() -> None:
    """Jitter off: ``idle`` waits for a second of silence (the write at 0.5 s restarts
    the wait), ``interval`` writes every second whatever else is written."""
    found: dict[str, list[tuple[bytes, float]]] = {}

    async def watch(p8: Running, mode: str) -> None:
        found[mode] = await _chunk_times(p8, mode, 0.5, 2)

    async with run_origin(_keep_alive_answer) as origin, \
            run_p8(p8_config(origin.target, jitter=0)) as p8, anyio.create_task_group() as tg:
        tg.start_soon(watch, p8, "idle")
        tg.start_soon(watch, p8, "interval")
    # Each wait ends on the timer wheel's next 0.1 s.
    (data, wrote), (ka1, first), (ka2, second) = found["idle"]
    assert (data, ka1, ka2) == (b"data\n", b"ka\n", b"ka\n")
    assert first - wrote == pytest.approx(1.0, abs=0.25), "a second after the write"
    assert second - first == pytest.approx(1.0, abs=0.25)
    (data, wrote), (ka1, first), (ka2, second) = found["interval"]
    assert (data, ka1, ka2) == (b"data\n", b"ka\n", b"ka\n")
    assert first == pytest.approx(1.0, abs=0.25), "the write at 0.5 s changed nothing"
    assert second - first == pytest.approx(1.0, abs=0.25)


async def test_keep_alive_jitter_shortens_each_wait_by_up_to_a_second() -> None:
    async with run_origin(_keep_alive_answer) as origin, \
            run_p8(p8_config(origin.target)) as p8:
        chunks = await _chunk_times(p8, "interval", None, 2)
    gaps = [b - a for a, b in itertools.pairwise([0.0, *(at for _, at in chunks)])]
    assert all(0 <= gap <= 1.3 for gap in gaps), gaps


# ---- next links (grip.md §6) ---------------------------------------------------------------

async def test_next_link_is_fetched_every_period() -> None:
    def answer(request: SeenRequest) -> Reply:
        link = ("Grip-Link", "</next>; rel=next; timeout=1")
        return hold(link, body=b"tick\n" if request.target == b"/next" else b"start\n")

    recorder = Recorder(answer)
    async with run_origin(recorder) as origin, run_p8(p8_config(origin.target)) as p8, \
            open_stream(p8.bound.port, "/start") as client:
        with anyio.fail_after(6):
            assert await client.chunk() == b"start\n"
            opened = anyio.current_time()
            for _ in range(2):
                assert await client.chunk() == b"tick\n"
        times = [opened, *recorder.times(b"/next")]
        periods = [b - a for a, b in itertools.pairwise(times)]
        # Each period starts when the previous fetch is done, rounded up to the timer
        # wheel's 0.1 s.
        assert periods == pytest.approx([1.0, 1.0], abs=0.3)


async def test_first_subscription_update_fetches_with_grip_last() -> None:
    """grip.md §6: the first fetch ~1 s after subscribing (the update, with the period's
    own timer falling due at the same time), the next one period later. The request
    carries only Host, Grip-Sig, Grip-Feature and Grip-Last; no client header."""
    def answer(request: SeenRequest) -> Reply:
        return hold(("Grip-Channel", "u; prev-id=5"),
                    ("Grip-Link", "</n2?x=1>; rel=next; timeout=1"))

    recorder = Recorder(answer)
    async with run_origin(recorder) as origin, run_p8(p8_config(origin.target)) as p8, \
            open_stream(p8.bound.port, "/n1", host="example.com",
                        headers=[("Cookie", "secret"), ("Authorization", "Bearer x")]):
        with anyio.fail_after(6):
            await recorder.wait_for(b"/n2?x=1", 2)
        opened = recorder.seen[0][0]
        first, second = recorder.times(b"/n2?x=1")
        assert first - opened == pytest.approx(1.0, abs=0.3)
        assert second - first == pytest.approx(1.0, abs=0.3)
        fetch = recorder.seen[1][1]
        assert (fetch.method, fetch.body) == (b"GET", b"")
        assert sorted(n for n, _ in fetch.headers) == [
            b"grip-feature", b"grip-last", b"grip-sig", b"host"]
        assert fetch.header(b"grip-last") == b"u; last-id=5"
        assert fetch.header(b"host") == b"example.com"


async def test_a_live_stream_skips_link_periods() -> None:
    def answer(request: SeenRequest) -> Reply:
        return hold(("Grip-Channel", "live"), ("Grip-Link", "</next>; rel=next; timeout=1"))

    recorder = Recorder(answer)
    async with run_origin(recorder) as origin, run_p8(p8_config(origin.target)) as p8, \
            open_stream(p8.bound.port, "/start") as client, httpx.AsyncClient() as http:
        with anyio.fail_after(6):
            await client.head()
            opened = anyio.current_time()
            # Live through the period after the update fetch (~1.0-2.1 s), then quiet.
            while anyio.current_time() - opened < 1.8:
                await http.post(f"{p8.control_url}/publish/", json={"items": [item("live", ".")]})
                await anyio.sleep(0.1)
            await anyio.sleep(2.5 - (anyio.current_time() - opened))
            assert len(recorder.times(b"/next")) == 1, "only the first-subscription update"
            await recorder.wait_for(b"/next", 2)
        update, fetch = recorder.times(b"/next")
        assert update - opened == pytest.approx(1.0, abs=0.3)
        assert fetch - update == pytest.approx(2.1, abs=0.4), "the live period was skipped"


async def test_hint_fetches_at_once_and_the_body_is_appended() -> None:
    def answer(request: SeenRequest) -> Reply:
        link = ("Grip-Link", "</next>; rel=next; timeout=60")
        if request.target == b"/next":
            return hold(("Grip-Channel", "h"), link, body=b"from the link\n")
        return hold(("Grip-Channel", "h"), link, body=b"start\n")

    async with run_origin(Recorder(answer)) as origin, run_p8(p8_config(origin.target)) as p8, \
            open_stream(p8.bound.port, "/start") as client:
        with anyio.fail_after(5):
            assert await client.chunk() == b"start\n"
            while p8.app.hub.subscriber_count("h") < 1:
                await anyio.sleep(0.01)
            started = anyio.current_time()
            await publish(p8, HINT | {"channel": "h"})
            chunk = await client.chunk()
            assert chunk == b"from the link\n"
            assert chunk.at - started < 0.8, "before the first-subscription update"


async def test_a_gap_fetches_the_missed_items() -> None:
    """The backend keeps every item; one publish is lost on its way to p8. The stream
    notices the gap at the next item and gets the missing part from the next link."""
    store = ["1"]

    def answer(request: SeenRequest) -> Reply:
        link = ("Grip-Link", "</next>; rel=next; timeout=60")
        if request.target == b"/start":
            return hold(("Grip-Channel", "g; prev-id=1"), link, body=b"1\n")
        last_id = (request.header(b"grip-last") or b"").decode().partition("last-id=")[2]
        missed = store[store.index(last_id) + 1:]
        return hold(("Grip-Channel", f"g; prev-id={store[-1]}"), link,
                    body="".join(f"{m}\n" for m in missed).encode())

    async def send(item_id: str, *, lost: bool = False) -> None:
        store.append(item_id)
        if not lost:
            await publish(p8, item("g", f"{item_id}\n", id=item_id, prev_id=store[-2]))

    recorder = Recorder(answer)
    async with run_origin(recorder) as origin, \
            run_p8({**p8_config(origin.target), "pubsub": {"message_wait": 100}}) as p8, \
            open_stream(p8.bound.port, "/start") as client:
        with anyio.fail_after(6):
            assert await client.chunk() == b"1\n"
            await recorder.wait_for(b"/next", 1)  # the first-subscription update
            await send("2")
            await client.read_until(b"2\n")
            await send("3", lost=True)
            await send("4")
            await send("5")
            await client.read_until(b"5\n")
            await send("6")
            await client.read_until(b"6\n")
        assert client.received == b"1\n2\n3\n4\n5\n6\n", "nothing lost, nothing twice"
        fetches = [r for _, r in recorder.seen if r.target == b"/next"]
        assert [r.header(b"grip-last") for r in fetches] == [b"g; last-id=1", b"g; last-id=2"]


async def test_failed_fetches_are_retried_then_succeed() -> None:
    statuses = iter([500, 503, 200])

    def answer(request: SeenRequest) -> Reply:
        link = ("Grip-Link", "</next>; rel=next; timeout=60")
        if request.target == b"/next":
            status = next(statuses)
            if status != 200:
                return Reply(status, [("Content-Type", "text/plain")], b"error page\n")
            return hold(("Grip-Channel", "r"), link, body=b"finally\n")
        return hold(("Grip-Channel", "r"), link, body=b"start\n")

    recorder = Recorder(answer)
    async with run_origin(recorder) as origin, \
            run_p8(p8_config(origin.target, retry_delay=0.2, jitter=0)) as p8, \
            open_stream(p8.bound.port, "/start") as client:
        with anyio.fail_after(5):
            assert await client.chunk() == b"start\n"
            while p8.app.hub.subscriber_count("r") < 1:
                await anyio.sleep(0.01)
            await publish(p8, HINT | {"channel": "r"})
            assert await client.chunk() == b"finally\n"
        times = recorder.times(b"/next")
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps == pytest.approx([0.2, 0.4], abs=0.15), "1x then 2x the retry delay"


async def test_a_stream_whose_link_keeps_failing_ends() -> None:
    def answer(request: SeenRequest) -> Reply:
        if request.target == b"/next":
            return Reply(500, [], b"down\n")
        return hold(("Grip-Channel", "x"), ("Grip-Link", "</next>; rel=next"), body=b"start\n")

    recorder = Recorder(answer)
    async with run_origin(recorder) as origin, \
            run_p8(p8_config(origin.target, debug=True, retry_delay=0.02, jitter=0)) as p8, \
            open_stream(p8.bound.port, "/start") as client:
        with anyio.fail_after(6):
            assert await client.chunk() == b"start\n"
            await publish(p8, HINT | {"channel": "x"})
            body = await client.rest()
        assert body == b"start\n\n\nFailed to retrieve next link.\n"
        assert len(recorder.times(b"/next")) == 6, "the first try and 5 retries"
        assert p8.app.hub.subscriber_count("x") == 0 and not p8.app.held


async def test_a_link_answer_changes_the_channels() -> None:
    def answer(request: SeenRequest) -> Reply:
        link = ("Grip-Link", "</next>; rel=next; timeout=60")
        if request.target == b"/next":
            return hold(("Grip-Channel", "b, c"), link, body=b"moved\n")
        return hold(("Grip-Channel", "a, b"), link)

    async with run_origin(answer) as origin, run_p8(p8_config(origin.target)) as p8, \
            open_stream(p8.bound.port, "/start") as client:
        hub = p8.app.hub
        with anyio.fail_after(5):
            await client.head()
            while hub.subscriber_count("a") < 1:
                await anyio.sleep(0.01)
            await publish(p8, HINT | {"channel": "a"})
            assert await client.chunk() == b"moved\n"
            assert (hub.subscriber_count("a"), hub.subscriber_count("b"),
                    hub.subscriber_count("c")) == (0, 1, 1)
            await publish(p8, item("a", "old\n"), item("c", "new\n"))
            assert await client.chunk() == b"new\n"


async def test_no_hold_with_next_links_streams_until_a_plain_answer() -> None:
    pages = {b"/p1": (b"one\n", "</p2>"), b"/p2": (b"two\n", "</p3>"), b"/p3": (b"three\n", None)}

    def answer(request: SeenRequest) -> Reply:
        body, link = pages[request.target]
        headers = [("Content-Type", "text/plain")]
        if link:
            headers.append(("Grip-Link", f"{link}; rel=next"))
        return Reply(200, headers, body)

    async with run_origin(answer) as origin, run_p8(p8_config(origin.target)) as p8, \
            open_stream(p8.bound.port, "/p1") as client:
        with anyio.fail_after(5):
            assert await client.rest() == b"one\ntwo\nthree\n"
            assert client.header(b"transfer-encoding") == b"chunked"
        assert p8.app.metrics.holds_started == 1


async def test_a_response_hold_from_a_link_ends_the_stream() -> None:
    def answer(request: SeenRequest) -> Reply:
        if request.target == b"/next":
            return Reply(200, [("Grip-Hold", "response"), ("Grip-Channel", "z")], b"no\n")
        return hold(("Grip-Channel", "z"), ("Grip-Link", "</next>; rel=next"), body=b"s\n")

    async with run_origin(answer) as origin, \
            run_p8(p8_config(origin.target, debug=True)) as p8, \
            open_stream(p8.bound.port, "/start") as client:
        with anyio.fail_after(5):
            assert await client.chunk() == b"s\n"
            await publish(p8, HINT | {"channel": "z"})
            assert await client.rest() == b"s\n\n\nNext link returned non-stream hold.\n"


async def test_prev_id_without_a_link_ends_the_stream() -> None:
    reply = hold(("Grip-Channel", "p; prev-id=3"), body=b"hello\n")
    async with run_origin(lambda r: reply) as origin, \
            run_p8(p8_config(origin.target, debug=True)) as p8, \
            open_stream(p8.bound.port, "/") as client:
        with anyio.fail_after(5):
            assert await client.rest() == (
                b"hello\n\n\nchannel 'p' specifies prev-id, but no next link found\n")
        assert p8.app.hub.subscriber_count("p") == 0


# ---- slow clients and publishers --------------------------------------------------------

async def test_a_slow_stream_is_closed_and_counted_others_unharmed() -> None:
    reply = hold(("Grip-Channel", "bulk"), body=b"ready\n")
    async with run_origin(lambda r: reply) as origin, \
            run_p8({**p8_config(origin.target), "server": {"write_buffer_max": 200_000}}) as p8, \
            open_stream(p8.bound.port) as reader, httpx.AsyncClient() as http:
        stalled = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
        await stalled.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with stalled:
            with anyio.fail_after(10):
                assert await reader.chunk() == b"ready\n"
                while p8.app.hub.subscriber_count("bulk") < 2:
                    await anyio.sleep(0.01)
                text = "x" * 99_999 + "\n"
                for n in range(1, 61):
                    await http.post(f"{p8.control_url}/publish/",
                                    json={"items": [item("bulk", text)]})
                    while len(reader.received) < 6 + n * 100_000:
                        await reader.chunk()
                assert len(reader.received) == 6 + 60 * 100_000, "the reader got every item"
                assert p8.app.metrics.slow_clients_closed == 1
                assert p8.app.hub.subscriber_count("bulk") == 1


async def test_gripcontrol_publishes_to_streams() -> None:
    reply = hold(("Grip-Channel", "gc"), body=b"ready\n")
    async with run_origin(lambda r: reply) as origin, run_p8(p8_config(origin.target)) as p8, \
            open_stream(p8.bound.port) as client:
        pub = GripPubControl({"control_uri": p8.control_url})

        def send() -> None:
            pub.publish_http_stream("gc", "from gripcontrol\n", blocking=True)
            pub.publish_http_stream("gc", HttpStreamFormat(b"\x00binary\n"), blocking=True)
            pub.publish_http_stream("gc", HttpStreamFormat(close=True), blocking=True)

        with anyio.fail_after(5):
            assert await client.chunk() == b"ready\n"
            while p8.app.hub.subscriber_count("gc") < 1:
                await anyio.sleep(0.01)
            await anyio.to_thread.run_sync(send)
            assert await client.rest() == b"ready\nfrom gripcontrol\n\x00binary\n"


async def test_head_request_gets_the_head_and_the_connection_goes_on() -> None:
    """A HEAD response has no body: the stream ends with its head, unsubscribed, and the
    keep-alive connection serves the client's next request."""
    async with run_origin(lambda req: hold(("Grip-Channel", "h"), body=b"opened\n")) as origin, \
            run_p8(p8_config(origin.target)) as p8, httpx.AsyncClient() as client:
        head = await client.head(f"{p8.url}/s", timeout=5)
        assert (head.status_code, head.content) == (200, b"")
        assert p8.app.hub.subscriber_count("h") == 0
        with anyio.fail_after(5):
            async with client.stream("GET", f"{p8.url}/s") as resp:
                chunks = resp.aiter_raw()
                assert await anext(chunks) == b"opened\n"
                await publish(p8, item("h", "after head\n"))
                assert await anext(chunks) == b"after head\n"
        assert p8.app.metrics.connections == 1, "both requests on one connection"


async def test_relative_next_link_keeps_the_port_of_the_host_header() -> None:
    """``Host: 127.0.0.1:<port>``: a relative next link is fetched from p8's route on that
    port, not from port 80 of the same host."""
    def answer(request: SeenRequest) -> Reply:
        link = ("Grip-Link", "</next>; rel=next; timeout=1")
        return hold(link, body=b"tick\n" if request.target == b"/next" else b"start\n")

    async with run_origin(answer) as origin, run_p8(p8_config(origin.target)) as p8, \
            httpx.AsyncClient() as client, client.stream("GET", f"{p8.url}/start") as resp:
        chunks = resp.aiter_raw()
        with anyio.fail_after(5):
            assert await anext(chunks) == b"start\n"
            assert await anext(chunks) == b"tick\n"
