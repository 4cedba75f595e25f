"""Reconnecting clients resume from history over real sockets: a stream with
``Last-Event-ID``, a stream whose backend answers ``prev-id``, a long-poll; and the
backend's own recovery when history no longer reaches back."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from p8_history.testing import (
    CHANNEL,
    Publisher,
    ids,
    reconnect,
    sse_events,
    subscribers,
    take,
    take_through,
)

from p8core.testing import (
    Reply,
    Running,
    Samples,
    SeenRequest,
    publish,
    run_origin,
    run_p8,
    scrape,
)

pytestmark = pytest.mark.anyio

SSE = ("Content-Type", "text/event-stream")
NEXT = ("Grip-Link", "</events/next>; rel=next; timeout=120")


def replays(metrics: Samples, outcome: str) -> float:
    """Resumes history ``served`` or ``missed``, as /metrics counts them."""
    return metrics("p8_plugin_events_total", plugin="history", event=f"replay_{outcome}")


def history(max_items: int = 100, **more: object) -> dict[str, object]:
    return {"max_items": max_items, **more}


def config(origin_target: str, **settings: object) -> dict[str, object]:
    return {"plugins": {"history": history(**settings)},  # type: ignore[arg-type]
            "routes": [{"target": origin_target}]}


async def sse_hold(request: SeenRequest) -> Reply:
    """A backend that holds every request as an SSE stream on ``events``, thinking a
    little first, so that publishes go on while it does."""
    await anyio.sleep(0.1)
    return Reply(200, [SSE, ("Grip-Hold", "stream"), ("Grip-Channel", CHANNEL)],
                 b": opened\n\n")


async def drop_and_resume(p8: Running, client: httpx.AsyncClient, path: str,
                          headers: dict[str, str], pub: Publisher, *, others: int = 0) -> None:
    """The issue's scenario: a client sees 1-5 and drops; 50 items are published; it
    reconnects while publishes go on, and gets 6-55 first, then the live ones, each
    exactly once. ``others``: streams on the channel that stay connected."""
    async with client.stream("GET", f"{p8.url}/events") as resp:
        seen = ids(resp)
        await subscribers(p8, others + 1)
        await pub.batch(5)
        assert await take(seen, 5) == [1, 2, 3, 4, 5]
    await subscribers(p8, others)
    await pub.batch(50)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pub.keep_publishing, stop)
        async with client.stream("GET", f"{p8.url}{path}", headers=headers) as resp:
            seen = ids(resp)
            assert await take(seen, 50) == list(range(6, 56))
            with anyio.fail_after(5):
                while pub.last < 70:
                    await anyio.sleep(0.005)
            stop.set()
            await pub.stopped.wait()
            assert await take_through(seen, pub.last) == list(range(56, pub.last + 1))


async def test_stream_resumes_from_last_event_id() -> None:
    async with run_origin(sse_hold) as origin, run_p8(config(origin.target)) as p8, \
            httpx.AsyncClient(timeout=10) as client:
        await drop_and_resume(p8, client, "/events", {"Last-Event-ID": "5"}, Publisher(p8))
        metrics = await scrape(p8)
        assert replays(metrics, "served") == 1
        assert replays(metrics, "missed") == 0
        # The backend was asked once per connection: the missed items came from p8.
        assert [r.target for r in origin.requests] == [b"/events", b"/events"]


def prev_id_backend(pub: Publisher):  # type: ignore[no-untyped-def]
    """A backend that names the client's last id (``?last=``) as the channel's prev-id,
    with a next link that answers ``Grip-Last`` by writing what was missed itself."""

    def handle(request: SeenRequest) -> Reply:
        url = urlsplit(request.target.decode())
        hold = [SSE, ("Grip-Hold", "stream"), NEXT]
        last = request.header(b"grip-last")
        if url.path == "/events/next" and last is None:
            return Reply(200, [*hold, ("Grip-Channel", CHANNEL)])
        if url.path == "/events/next":
            since = int(last.decode().partition("last-id=")[2])
            body = sse_events(since + 1, pub.last)
            return Reply(200, [*hold, ("Grip-Channel", f"{CHANNEL}; prev-id={pub.last}")], body)
        since_query = parse_qs(url.query).get("last")
        channel = CHANNEL if since_query is None else f"{CHANNEL}; prev-id={since_query[0]}"
        return Reply(200, [*hold, ("Grip-Channel", channel)], b": opened\n\n")

    return handle


async def test_stream_resumes_from_backend_prev_id() -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        handle = None

        async def backend(request: SeenRequest) -> Reply:
            await anyio.sleep(0.1)
            assert handle is not None
            return handle(request)

        async with run_origin(backend) as origin, run_p8(config(origin.target)) as p8:
            pub = Publisher(p8, chained=True)
            handle = prev_id_backend(pub)
            # A stream that stays: the hub knows the channel's last id all along, which
            # the resumed prev-id is behind until the replay catches up.
            async with client.stream("GET", f"{p8.url}/events") as stays:
                await subscribers(p8, 1)
                await drop_and_resume(p8, client, "/events?last=5", {}, pub, others=1)
                assert await take(ids(stays), pub.last) == list(range(1, pub.last + 1))
            metrics = await scrape(p8)
            assert replays(metrics, "served") == 1
            assert replays(metrics, "missed") == 0
            # The backend was never asked for what the client missed (a refresh of the
            # channel's streams a second after its first subscription may come).
            asked = [r.header(b"grip-last") for r in origin.requests]
            assert f"{CHANNEL}; last-id=5".encode() not in asked


async def test_backend_recovers_what_history_no_longer_holds() -> None:
    """With 10 items kept, 50 missed ones are beyond history: nothing is replayed, the
    first live item reveals the gap and the next link is fetched with ``Grip-Last``, as
    without history; its body fills the gap, then the live items follow."""
    async with httpx.AsyncClient(timeout=10) as client:
        pub: Publisher
        async with run_origin(lambda r: prev_id_backend(pub)(r)) as origin, \
                run_p8(config(origin.target, max_items=10)) as p8:
            pub = Publisher(p8, chained=True)
            await pub.batch(55)
            async with client.stream("GET", f"{p8.url}/events?last=5") as resp:
                seen = ids(resp)
                await subscribers(p8, 1)
                await pub.batch(1)
                assert await take(seen, 51) == list(range(6, 57))
                await pub.batch(1)
                assert await take(seen, 1) == [57]
            nexts = [r for r in origin.requests if r.target == b"/events/next"]
            assert nexts[0].header(b"grip-last") == f"{CHANNEL}; last-id=5".encode()
            metrics = await scrape(p8)
            assert replays(metrics, "served") == 0
            assert replays(metrics, "missed") == 1


async def test_last_event_id_older_than_history_replays_nothing() -> None:
    async with run_origin(sse_hold) as origin, \
            run_p8(config(origin.target, max_items=10)) as p8, \
            httpx.AsyncClient(timeout=10) as client:
        pub = Publisher(p8)
        await pub.batch(30)
        assert await reconnect(p8, client, "/events", "5", pub) == [31]
        assert replays(await scrape(p8), "missed") == 1


async def test_items_older_than_max_age_are_not_replayed() -> None:
    async with run_origin(sse_hold) as origin, \
            run_p8(config(origin.target, max_age=60)) as p8, \
            httpx.AsyncClient(timeout=10) as client:
        pub = Publisher(p8)
        await pub.batch(10)
        clock = p8.app.clock
        p8.app.clock = lambda: clock() + 61
        await pub.batch(5)
        assert await reconnect(p8, client, "/events", "8", pub) == [16], \
            "items 9-15 are too old for history"
        async with client.stream("GET", f"{p8.url}/events",
                                 headers={"Last-Event-ID": "12"}) as resp:
            assert await take(ids(resp), 4) == [13, 14, 15, 16]


def long_poll_reply(request: SeenRequest) -> Reply:
    last = parse_qs(urlsplit(request.target.decode()).query)["last"][0]
    return Reply(200, [("Content-Type", "text/plain"), ("Grip-Hold", "response"),
                       ("Grip-Channel", f"lp; prev-id={last}")], b"nothing yet\n")


def lp_item(n: int) -> dict[str, object]:
    return {"channel": "lp", "id": str(n), "prev-id": str(n - 1),
            "formats": {"http-response": {"body": f"item {n}\n"}}}


async def test_long_poll_with_a_held_prev_id_is_answered_at_once() -> None:
    async with run_origin(long_poll_reply) as origin, run_p8(config(origin.target)) as p8, \
            httpx.AsyncClient(timeout=10) as client:
        assert (await publish(p8, *[lp_item(n) for n in range(1, 11)])).status_code == 200
        with anyio.fail_after(5):
            assert (await client.get(f"{p8.url}/lp?last=3")).text == "item 4\n"
            assert (await client.get(f"{p8.url}/lp?last=9")).text == "item 10\n"

            async def poll_newest() -> None:
                assert (await client.get(f"{p8.url}/lp?last=10")).text == "item 11\n"

            async with anyio.create_task_group() as tg:
                tg.start_soon(poll_newest)
                await subscribers(p8, 1, "lp")
                await publish(p8, lp_item(11))
        assert replays(await scrape(p8), "served") == 3
