"""A Django app with django-grip behind p8: ``set_hold_stream`` holds the client, and the
app's own ``django_grip.publish`` reaches it through p8's control API."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from p8_http_stream.testing import open_stream

from p8core.testing import run_p8

pytestmark = pytest.mark.anyio

BACKEND = Path(__file__).with_name("django_backend.py")


@asynccontextmanager
async def django_backend() -> AsyncIterator[tuple[int, anyio.abc.Process]]:
    """Start the Django app in a subprocess; yields its port and the process, whose
    stdin wants the control API's URL."""
    if importlib.util.find_spec("django_grip") is None:  # it reads Django settings on import
        pytest.skip("django-grip is not installed (pip install -e '.[test]')")
    process = await anyio.open_process([sys.executable, str(BACKEND)])
    try:
        assert process.stdout is not None
        with anyio.fail_after(20):
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        yield int(line), process
    finally:
        process.terminate()
        await process.wait()
        await process.aclose()


async def test_django_grip_hold_stream_and_publish() -> None:
    async with django_backend() as (port, process):
        config = {"plugins": {"enabled": ["http_stream"]},
                  "routes": [{"target": f"http://127.0.0.1:{port}"}]}
        async with run_p8(config) as p8, httpx.AsyncClient() as http:
            assert process.stdin is not None
            await process.stdin.send(f"{p8.control_url}\n".encode())
            with anyio.fail_after(20):
                async with open_stream(p8.bound.port, "/stream") as client:
                    assert (await client.head()).status_code == 200
                    assert client.header(b"content-type") == b"text/plain"
                    assert await client.chunk() == b"welcome from django\n"
                    while p8.app.hub.subscriber_count("news") < 1:
                        await anyio.sleep(0.01)
                    sent = await http.get(f"{p8.url}/send", params={"text": "hello from django"})
                    assert (sent.status_code, sent.text) == (200, "sent\n")
                    assert await client.chunk() == b"hello from django\n"
                direct = await http.get(f"http://127.0.0.1:{port}/stream")
                assert direct.status_code == 400, "unsigned requests get no GRIP answer"
