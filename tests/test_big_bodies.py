"""100 MB through the proxy in each direction while p8's memory stays flat.

p8 runs as its own process so that its peak memory (VmHWM) is its own.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import h11
import httpx
import pytest
from anyio.abc import SocketStream

pytestmark = pytest.mark.anyio

SIZE = 100 * 1024 * 1024
CHUNK = b"0123456789abcdef" * 4096  # 64 KiB
# p8 idles near 35 MB and peaked at 39 MB here; buffering either body would pass 135 MB.
PEAK_LIMIT_KB = 64 * 1024


async def _stream_origin(stream: SocketStream) -> None:
    """POST: answers the body's length and sha256; GET: sends SIZE bytes."""
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive(262_144))
                continue
            break
        assert isinstance(event, h11.Request)
        if event.method == b"POST":
            size, digest = 0, hashlib.sha256()
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    conn.receive_data(await stream.receive(262_144))
                elif isinstance(ev, h11.Data):
                    size += len(ev.data)
                    digest.update(ev.data)
                else:
                    break
            body = f"{size} {digest.hexdigest()}".encode()
            await stream.send(conn.send(h11.Response(
                status_code=200, headers=[("content-length", str(len(body)))])) or b"")
            await stream.send(conn.send(h11.Data(data=body)) or b"")
        else:
            await stream.send(conn.send(h11.Response(
                status_code=200, headers=[("content-length", str(SIZE))])) or b"")
            for _ in range(SIZE // len(CHUNK)):
                await stream.send(conn.send(h11.Data(data=CHUNK)) or b"")
        await stream.send(conn.send(h11.EndOfMessage()) or b"")


@asynccontextmanager
async def p8_process(tmp_path: Path, origin_port: int) -> AsyncIterator[tuple[int, str]]:
    port = await _free_port()
    (tmp_path / "p8.toml").write_text(
        f'[server]\nlisten = ["127.0.0.1:{port}"]\n[control]\nlisten = "127.0.0.1:0"\n'
        f'[plugins]\nenabled = []\n[[routes]]\ntarget = "http://127.0.0.1:{origin_port}"\n')
    proc = await anyio.open_process(
        [sys.executable, "-m", "p8core.cli", "run", "--config", str(tmp_path / "p8.toml"),
         "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with anyio.fail_after(15):
            while True:
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await anyio.sleep(0.05)
        yield port, f"/proc/{proc.pid}/status"
    finally:
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            await proc.wait()
        await proc.aclose()


async def _free_port() -> int:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
    await listener.aclose()
    return port


def _peak_kb(status_path: str) -> int:
    for line in Path(status_path).read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
async def test_100_mb_up_and_down_with_flat_memory(tmp_path: Path) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    origin_port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, _stream_origin)
        async with p8_process(tmp_path, origin_port) as (port, status), \
                httpx.AsyncClient(timeout=60) as client:
            async def upload() -> AsyncIterator[bytes]:
                for _ in range(SIZE // len(CHUNK)):
                    yield CHUNK

            expected = hashlib.sha256()
            for _ in range(SIZE // len(CHUNK)):
                expected.update(CHUNK)
            with anyio.fail_after(120):
                up = await client.post(f"http://127.0.0.1:{port}/up", content=upload(),
                                       headers={"content-length": str(SIZE)})
                assert up.text == f"{SIZE} {expected.hexdigest()}"
                received = 0
                async with client.stream("GET", f"http://127.0.0.1:{port}/down") as down:
                    async for chunk in down.aiter_raw():
                        received += len(chunk)
                assert received == SIZE
            peak = _peak_kb(status)
            assert peak < PEAK_LIMIT_KB, f"p8 peaked at {peak} KB for 100 MB bodies"
        tg.cancel_scope.cancel()
