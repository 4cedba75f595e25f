"""SIGTERM with 5,000 held streams: p8, as its own process, ends every stream with its last
chunk and exits within 5 seconds.

The clients run on an event loop of their own, without the debug mode of the async tests
(which makes opening 5,000 connections ten times slower).
"""

from __future__ import annotations

import contextlib
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream

from p8core.testing import free_port

HELD = 5000
LAST_CHUNK = b"0\r\n\r\n"


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < HELD * 2 + 200:
        pytest.skip(f"needs {HELD * 2 + 200} file descriptors; the hard limit is {hard}")
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))



async def _wait_listening(port: int) -> None:
    while True:
        with contextlib.suppress(OSError):
            await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
            return
        await anyio.sleep(0.05)


async def _hold(port: int, streams: list[SocketStream], limiter: anyio.CapacityLimiter) -> None:
    async with limiter:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        streams.append(stream)
        await stream.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"[stream opened]\n" not in received:
            received += await stream.receive()


async def _read_to_end(stream: SocketStream, ends: list[bytes]) -> None:
    received = b""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
        while True:
            received += await stream.receive()
    ends.append(received[-len(LAST_CHUNK):])


async def _hold_then_terminate(port: int, proc: subprocess.Popen[bytes],
                               ) -> tuple[float, list[bytes]]:
    """Hold ``HELD`` streams, send SIGTERM; how long p8 took to exit, and how each stream
    ended."""
    streams: list[SocketStream] = []
    try:
        with anyio.fail_after(30):
            await _wait_listening(port)
            limiter = anyio.CapacityLimiter(500)
            async with anyio.create_task_group() as tg:
                for _ in range(HELD):
                    tg.start_soon(_hold, port, streams, limiter)
        ends: list[bytes] = []
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for stream in streams:
                    tg.start_soon(_read_to_end, stream, ends)
                signalled = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                while proc.poll() is None:
                    await anyio.sleep(0.01)
                exited = time.monotonic() - signalled
        return exited, ends
    finally:
        for stream in streams:
            await stream.aclose()


def test_sigterm_with_5000_held_streams_ends_them_all_and_exits_within_5_s(
        tmp_path: Path) -> None:
    _raise_fd_limit()
    port = free_port()
    config = tmp_path / "p8.toml"
    config.write_text(f'[server]\nlisten = ["127.0.0.1:{port}"]\n'
                      '[control]\nlisten = "127.0.0.1:0"\n[plugins]\nenabled = ["http_stream"]\n')
    p8 = Path(sys.executable).with_name("p8")
    with (tmp_path / "p8.log").open("wb") as log:
        proc = subprocess.Popen([str(p8), "run", "--config", str(config),
                                 "--log-level", "warning"], stdout=log, stderr=log)
        try:
            exited, ends = anyio.run(_hold_then_terminate, port, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == 0, (tmp_path / "p8.log").read_text()
    assert exited < 5, f"p8 took {exited:.1f} s to exit"
    assert len(ends) == HELD
    assert ends.count(LAST_CHUNK) == HELD, "every stream ends with its last chunk"
