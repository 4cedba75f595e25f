"""Server-Sent Events are plain streams: the backend sets ``text/event-stream`` and a
comment as keep-alive, publishers send whole events; an SSE parser reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx
import pytest

from p8core.testing import Reply, publish, run_origin, run_p8

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Event:
    """One dispatched event, or a comment line (``event`` is ``":"``)."""

    event: str
    data: str
    id: str | None = None


async def sse(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    """A small parser of the ``text/event-stream`` format (HTML Living Standard §9.2.6):
    fields accumulate until a blank line dispatches the event; comments are reported too,
    so a test can see keep-alives."""
    event, data, last_id = "", list[str](), None
    async for line in lines:
        if not line:
            if data:
                yield Event(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            yield Event(":", line[1:].lstrip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            last_id = value


def send(content: str) -> dict[str, object]:
    return {"channel": "events", "formats": {"http-stream": {"content": content}}}


async def test_server_sent_events() -> None:
    reply = Reply(200, [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                        ("Grip-Hold", "stream"), ("Grip-Channel", "events"),
                        ("Grip-Keep-Alive", r":\n\n; format=cstring; timeout=1")],
                  b"event: open\ndata: connected\n\n")
    async with run_origin(lambda r: reply) as origin, \
            run_p8({"plugins": {"enabled": ["http_stream"]},
                    "routes": [{"target": origin.target}]}) as p8, \
            httpx.AsyncClient() as client, \
            client.stream("GET", f"{p8.url}/events",
                          headers={"Accept": "text/event-stream"}) as resp:
        assert resp.headers["content-type"] == "text/event-stream"
        assert resp.headers["cache-control"] == "no-cache"
        events = sse(resp.aiter_lines())
        with anyio.fail_after(5):
            assert await anext(events) == Event("open", "connected")
            while p8.app.hub.subscriber_count("events") < 1:
                await anyio.sleep(0.01)
            await publish(p8, send("event: greeting\nid: 1\ndata: hello\n\n"),
                          send("data: line one\ndata: line two\n\n"))
            assert await anext(events) == Event("greeting", "hello", "1")
            assert await anext(events) == Event("message", "line one\nline two", "1")
            assert await anext(events) == Event(":", ""), "the keep-alive comment"
            await publish(p8, {"channel": "events",
                               "formats": {"http-stream": {"action": "close"}}})
            assert [e async for e in events if e.event != ":"] == []
