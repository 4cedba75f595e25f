"""Held connections and the garbage collector: freezing the heap is safe and reversible."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio
import pytest

from p8core.server.connection import HttpConnection
from p8core.testing import Running, publish, run_p8

pytestmark = pytest.mark.anyio

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _hold(p8: Running, path: str) -> Stream:
    """Open a request p8 holds; a stream's head arrives at once, a long-poll's not."""
    reader, writer = await asyncio.open_connection("127.0.0.1", p8.bound.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    if path == "/stream":
        with anyio.fail_after(5):
            await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    with anyio.fail_after(seconds):
        while not condition():
            await anyio.sleep(0.05)


def _connections_alive() -> int:
    return sum(isinstance(o, HttpConnection) for o in gc.get_objects())


@contextmanager
def _collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@asynccontextmanager
async def _held(p8: Running, path: str, count: int) -> AsyncIterator[list[Stream]]:
    streams = [await _hold(p8, path) for _ in range(count)]
    try:
        yield streams
    finally:
        for _, writer in streams:
            writer.close()


@pytest.mark.parametrize("path", ["/stream", "/response"])
async def test_ended_holds_are_freed_without_the_collector(path: str) -> None:
    """Frozen objects are only ever freed by reference counting, so a hold that ends must
    leave no reference cycle behind."""
    async with run_p8({"server": {"gc_freeze_step": 0}}) as p8:
        with _collector_off():
            baseline = _connections_alive()
            async with _held(p8, path, 10):
                await _until(lambda: p8.app.hub.subscriber_count("test") == 10)
                assert _connections_alive() == baseline + 10
            await _until(lambda: _connections_alive() == baseline)


async def test_heap_is_frozen_while_held_and_released_when_they_go() -> None:
    async with run_p8({"server": {"gc_freeze_step": 20}}) as p8:
        async with _held(p8, "/stream", 30) as streams:
            await _until(lambda: gc.get_freeze_count() > 0)
            await publish(p8, {"channel": "test",
                               "formats": {"http-stream": {"content": "after freeze\n"}}})
            for reader, _ in streams:
                assert b"after freeze\n" in await reader.readuntil(b"after freeze\n")
        await _until(lambda: gc.get_freeze_count() == 0)
