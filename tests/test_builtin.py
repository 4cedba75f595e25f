"""The built-in ``test`` target, answering as Pushpin's test handler does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from p8core.builtin import BuiltinTestConnector
from p8core.connector import OriginRequest
from p8core.proxy.routes import Route
from p8core.testing import run_p8

pytestmark = pytest.mark.anyio


async def _ask(target: bytes, body: bytes = b"", prefix: str = "") -> tuple[int, dict[bytes, bytes],
                                                                           bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        yield body

    route = Route(targets=("test",), path_prefix=prefix)
    resp = await BuiltinTestConnector("test").request(
        OriginRequest(b"GET", target, [], chunks(), len(body), route), timeout=1)
    return resp.status, dict(resp.headers), b"".join([c async for c in resp.chunks()])


async def test_answers() -> None:
    assert await _ask(b"/") == (200, {b"content-type": b"text/plain", b"content-length": b"37"},
                                b"Hello from the Pushpin test handler!\n")
    status, headers, body = await _ask(b"/response/?channel=a&channel=b")
    assert (status, headers[b"grip-hold"], headers[b"grip-channel"], body) == (
        200, b"response", b"a, b", b"nothing for now\n")
    status, headers, body = await _ask(b"/stream")
    assert (headers[b"grip-hold"], headers[b"grip-channel"], body) == (
        b"stream", b"test", b"[stream opened]\n")
    assert (await _ask(b"/other"))[::2] == (404, b"no such test resource\n")
    assert (await _ask(b"/", b"x" * 100_001))[::2] == (400, b"request too large\n")


async def test_route_prefix_is_removed_first() -> None:
    assert (await _ask(b"/t/stream", prefix="/t/"))[0] == 200
    assert (await _ask(b"/t", prefix="/t/"))[2] == b"Hello from the Pushpin test handler!\n"


async def test_served_on_the_default_route() -> None:
    async with run_p8() as p8, httpx.AsyncClient() as client:
        resp = await client.get(f"{p8.url}/")
        assert (resp.status_code, resp.text) == (200, "Hello from the Pushpin test handler!\n")
        assert resp.headers["content-length"] == "37"
        assert (await client.get(f"{p8.url}/nothing")).status_code == 404
