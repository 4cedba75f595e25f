"""Many streams at once: fan-out in order with nothing lost, and subscriptions that go
with their clients."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import httpx
import pytest
from anyio.abc import SocketStream

from p8core.testing import Running, run_p8

pytestmark = pytest.mark.anyio

CONFIG = {"plugins": {"enabled": ["http_stream"]}, "routes": [{"target": "test"}]}


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    """Without asyncio's debug mode, whose checks of every callback make these five
    times slower; the other tests keep it."""
    return ("asyncio", {"debug": False})


async def _wait_for(condition: Callable[[], bool]) -> None:
    while not condition():
        await anyio.sleep(0.02)


async def _open(p8: Running, count: int, target: str) -> list[SocketStream]:
    """``count`` raw connections, each holding ``target`` of the built-in test backend."""
    streams = []
    for n in range(count):
        stream = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
        await stream.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.format(n=n).encode())
        streams.append(stream)
    return streams


def dechunk(response: bytes) -> bytes:
    """The body of a whole chunked response, each chunk's size checked."""
    head, _, rest = response.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    body = bytearray()
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        assert rest[size:size + 2] == b"\r\n"
        body += rest[:size]
        rest = rest[size + 2:]
    return bytes(body)


async def test_a_thousand_streams_get_fifty_messages_each_in_order() -> None:
    streams, messages = 1000, 50
    expected = b"[stream opened]\n" + b"".join(b"message %02d\n" % n for n in range(messages))
    last_chunk = b"message %02d\n\r\n" % (messages - 1)
    async with run_p8(CONFIG) as p8, httpx.AsyncClient() as http:
        hub = p8.app.hub
        with anyio.fail_after(30):
            clients = await _open(p8, streams, "/stream?channel=load")
            await _wait_for(lambda: hub.subscriber_count("load") == streams)
            bodies: list[bytes] = []

            async def read(stream: SocketStream) -> None:
                # Every 0.1 s, whatever arrived meanwhile: 50,000 wake-ups of this
                # process's own 1,000 readers would cost more than p8's fan-out.
                got = bytearray()
                async with stream:
                    while not got.endswith(last_chunk):
                        got += await stream.receive()
                        await anyio.sleep(0.1)
                bodies.append(dechunk(bytes(got)))

            async with anyio.create_task_group() as tg:
                for client in clients:
                    tg.start_soon(read, client)
                for n in range(messages):
                    item = {"channel": "load",
                            "formats": {"http-stream": {"content": f"message {n:02}\n"}}}
                    resp = await http.post(f"{p8.control_url}/publish/", json={"items": [item]})
                    assert resp.status_code == 200
        assert len(bodies) == streams
        assert all(body == expected for body in bodies), "every message, once, in order"
        assert hub.stats.delivered == streams * messages
        assert p8.app.metrics.slow_clients_closed == 0


async def test_five_thousand_dropped_streams_leave_the_hub_empty() -> None:
    """Each stream holds a shared channel and one of its own; closing the clients ends
    every subscription at once. 5,000 streams use 10,000 descriptors in this process
    (client and server ends), half the 20,000 allowed here."""
    streams = 5000
    async with run_p8(CONFIG) as p8:
        hub, app = p8.app.hub, p8.app
        with anyio.fail_after(40):
            clients = await _open(p8, streams, "/stream?channel=crowd&channel=solo-{n}")
            await _wait_for(lambda: hub.subscriber_count("crowd") == streams)
            assert hub.channels() == streams + 1 and len(app.held) == streams
            for client in clients:
                await client.aclose()
            await _wait_for(lambda: hub.channels() == 0)
        assert hub.subscriber_count("crowd") == 0 and hub.subscriber_count("solo-0") == 0
        assert not app.held
