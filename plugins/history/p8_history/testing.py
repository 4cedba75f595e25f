"""Helpers for testing resume over real sockets: numbered SSE items, a publisher that
keeps going, a reader of the ids a stream receives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx

from p8core.testing import Running, publish

__all__ = ["CHANNEL", "Publisher", "ids", "reconnect", "sse_events", "sse_item",
           "subscribers", "take", "take_through"]

CHANNEL = "events"


def sse_item(n: int, *, chained: bool = False, channel: str = CHANNEL) -> dict[str, object]:
    """Item number ``n``: an SSE event with id ``n``; ``chained``: prev-id ``n - 1``."""
    item: dict[str, object] = {"channel": channel, "id": str(n), "formats": {
        "http-stream": {"content": f"id: {n}\ndata: item {n}\n\n"}}}
    if chained:
        item["prev-id"] = str(n - 1)
    return item


def sse_events(first: int, last: int) -> bytes:
    """Items ``first`` to ``last`` as a backend writes them itself (a next link's body)."""
    return b"".join(b"id: %d\ndata: item %d\n\n" % (n, n) for n in range(first, last + 1))


class Publisher:
    """Publishes numbered items, one after the other, counting from 1."""

    def __init__(self, running: Running, *, chained: bool = False) -> None:
        self.running, self.chained = running, chained
        self.last = 0
        self.stopped = anyio.Event()

    async def batch(self, count: int) -> None:
        """Publish the next ``count`` items in one request."""
        first = self.last + 1
        items = [sse_item(n, chained=self.chained) for n in range(first, first + count)]
        resp = await publish(self.running, *items)
        assert resp.status_code == 200, resp.text
        self.last += count

    async def keep_publishing(self, stop: anyio.Event) -> None:
        """One item at a time until ``stop`` is set; then ``stopped`` is set."""
        try:
            while not stop.is_set():
                await self.batch(1)
                await anyio.sleep(0.002)
        finally:
            self.stopped.set()


async def ids(resp: httpx.Response) -> AsyncIterator[int]:
    """The ids of the SSE events a streamed response receives, in order."""
    async for line in resp.aiter_lines():
        if line.startswith("id: "):
            yield int(line[4:])


async def take(seen: AsyncIterator[int], count: int) -> list[int]:
    """The next ``count`` ids (at most 5 s)."""
    with anyio.fail_after(5):
        return [await anext(seen) for _ in range(count)]


async def take_through(seen: AsyncIterator[int], last: int) -> list[int]:
    """The ids up to and including ``last`` (at most 5 s)."""
    got: list[int] = []
    with anyio.fail_after(5):
        while not got or got[-1] < last:
            got.append(await anext(seen))
    return got


async def reconnect(running: Running, client: httpx.AsyncClient, path: str,
                    last_event_id: str, publisher: Publisher) -> list[int]:
    """Open ``path`` with ``Last-Event-ID``, then publish one more item: the ids the stream
    gets up to and including that item."""
    async with client.stream("GET", f"{running.url}{path}",
                             headers={"Last-Event-ID": last_event_id}) as resp:
        seen = ids(resp)
        await subscribers(running, 1)
        await publisher.batch(1)
        return await take_through(seen, publisher.last)


async def subscribers(running: Running, count: int, channel: str = CHANNEL) -> None:
    """Wait until ``channel`` has ``count`` subscribers (at most 5 s)."""
    with anyio.fail_after(5):
        while running.app.hub.subscriber_count(channel) != count:
            await anyio.sleep(0.005)
