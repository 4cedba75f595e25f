"""The fuzz tests' p8: one per module, run in a background thread so that hypothesis drives
it from plain (synchronous) tests, with everything a fuzz case may need around it.

Around p8 run: a raw HTTP origin that answers what the test scripts (byte for byte), a
ZHTTP req-mode handler, a ZeroMQ PUSH socket to p8's PULL input, and a bystander stream.
After every example, :meth:`Stack.check` proves that nothing was logged with a traceback and
that the bystander still receives its publishes.

``make test`` runs each fuzz test with the ``fuzz-quick`` profile; ``make fuzz`` sets
``HYPOTHESIS_PROFILE=fuzz`` for many more examples.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import pytest
import structlog
import zmq
from anyio.abc import SocketStream
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings

from p8core.codec import tnetstring
from p8core.testing import Bystander, Running, free_port, run_p8

_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
settings.register_profile("fuzz-quick", max_examples=25, **_COMMON)
settings.register_profile("fuzz", max_examples=1000, **_COMMON)
settings.register_profile(
    "p8-fuzz",
    settings.get_profile("fuzz" if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
                         else "fuzz-quick"))

STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")

WAIT = 5.0
"""Seconds any single step of a fuzz case may take before the case counts as hung."""

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
WOH_HEADERS = (b"HTTP/1.1 200 OK\r\nContent-Type: application/websocket-events\r\n"
               b"Sec-WebSocket-Extensions: grip\r\n")
VICTIM_OPEN = b'OPEN\r\nTEXT 2a\r\nc:{"type": "subscribe", "channel": "fuzz"}\r\n'


def woh_response(body: bytes) -> bytes:
    """A WebSocket-over-HTTP answer carrying ``body`` (encoded events)."""
    return WOH_HEADERS + b"Content-Length: %d\r\n\r\n" % len(body) + body


VICTIM_REQUESTS = (
    b"GET /bystander/stream?channel=fuzz HTTP/1.1\r\nHost: v\r\n\r\n",
    b"GET /bystander/response?channel=fuzz HTTP/1.1\r\nHost: v\r\n\r\n",
    b"GET /ws/victim HTTP/1.1\r\nHost: v\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
)


def zhttp_reply(rid: bytes) -> bytes:
    """A plain 200 reply packet to request ``rid``."""
    return b"T" + tnetstring.dumps({b"id": rid, b"code": 200, b"reason": b"OK",
                                    b"headers": [], b"body": b"ok\n"})


@dataclass
class Script:
    """What the origin and the ZHTTP handler answer next.

    ``http`` is sent verbatim to every request, except to WebSocket-over-HTTP requests for
    ``/ws/victim``, which subscribe that connection to channel ``fuzz``. ``zhttp`` turns
    the request packet's id into the handler's reply.
    """

    http: bytes = OK_RESPONSE
    zhttp: Callable[[bytes], bytes] = zhttp_reply



async def _read_request(stream: SocketStream) -> tuple[bytes, bytes]:
    """A request's head and (Content-Length) body, read off the wire."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += await stream.receive()
    return head, body


def _origin(script: Script) -> Callable[[SocketStream], Any]:
    async def serve(stream: SocketStream) -> None:
        async with stream:
            try:
                head, body = await _read_request(stream)
                if head.split(b" ", 2)[1:2] == [b"/ws/victim"]:
                    answer = woh_response(VICTIM_OPEN if body.startswith(b"OPEN") else b"")
                else:
                    answer = script.http
                await stream.send(answer)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    return serve


def _zhttp_handler(endpoint: str, script: Script, stop: threading.Event) -> None:
    """A req-mode handler: a REP socket answering each request with ``script.zhttp``."""
    ctx = zmq.Context.instance()
    with ctx.socket(zmq.REP) as rep:
        rep.setsockopt(zmq.LINGER, 0)
        rep.connect(endpoint)
        while not stop.is_set():
            if not rep.poll(50):
                continue
            packet = rep.recv()
            rid = tnetstring.loads(packet[1:])[b"id"]
            rep.send(script.zhttp(rid))


@dataclass
class Stack:
    """p8 and its surroundings, driven from the test's thread."""

    portal: BlockingPortal
    p8: Running
    bystander: Bystander
    script: Script
    push: zmq.Socket[bytes]
    logs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.p8.bound.port

    def check(self) -> None:
        """No traceback was logged since the last check, and the bystander still receives
        what is published to it."""
        failures = [e for e in self.logs if e.get("log_level") in ("error", "critical")]
        self.logs.clear()
        assert not failures, failures
        self.portal.call(self.bystander.check)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        sock.settimeout(WAIT)
        return sock

    @staticmethod
    def read(sock: socket.socket, idle: float,
             until: Callable[[bytes], bool] = lambda data: False) -> bytes:
        """What arrives until ``until`` holds, the connection ends (by a close or a reset),
        or nothing more comes for ``idle`` seconds."""
        sock.settimeout(idle)
        received = b""
        try:
            while not until(received) and (chunk := sock.recv(65536)):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received

    @staticmethod
    def statuses(data: bytes) -> list[int]:
        """The status codes of the HTTP responses in ``data``."""
        return [int(code) for code in STATUS_LINE.findall(data)]

    def wait_until(self, condition: Callable[[], bool]) -> None:
        """Poll ``condition`` in p8's thread until it holds; fail after ``WAIT`` seconds."""
        end = time.monotonic() + WAIT
        while not self.portal.call(condition):
            assert time.monotonic() < end, "timed out"
            time.sleep(0.002)

    @contextmanager
    def victims(self) -> Iterator[list[socket.socket]]:
        """A stream, a long-poll and a WebSocket subscribed to channel ``fuzz`` (closed
        after), for publishes to reach real connections of every kind."""
        hub = self.p8.app.hub
        self.wait_until(lambda: hub.subscriber_count("fuzz") == 0)  # the last ones left
        with ExitStack() as sockets:
            socks = [sockets.enter_context(self.connect()) for _ in VICTIM_REQUESTS]
            for sock, request in zip(socks, VICTIM_REQUESTS, strict=True):
                sock.sendall(request)
            self.wait_until(lambda: hub.subscriber_count("fuzz") == len(socks))
            yield socks


@pytest.fixture(scope="module")
def running_stack() -> Iterator[Stack]:
    script = Script()
    stop = threading.Event()
    zhttp_port, pull_port = free_port(), free_port()
    with start_blocking_portal("asyncio") as portal, ExitStack() as stack:
        listener = portal.call(partial(anyio.create_tcp_listener, local_host="127.0.0.1"))
        origin_port = listener.extra(anyio.abc.SocketAttribute.local_port)
        portal.start_task_soon(listener.serve, _origin(script))
        origin = f"http://127.0.0.1:{origin_port}"
        config = {
            "plugins": {"enabled": ["http_stream", "long_poll", "ws_over_http",
                                    "zhttp_backend", "zmq_pubsub"],
                        "zmq_pubsub": {"pull": f"tcp://127.0.0.1:{pull_port}", "sub": []}},
            "proxy": {"backend_timeout": 2.0},
            "routes": [{"path_prefix": "/bystander/", "target": "test"},
                       {"path_prefix": "/ws/", "target": origin, "over_http": True},
                       {"path_prefix": "/zhttp/",
                        "target": f"zhttpreq+tcp://127.0.0.1:{zhttp_port}"},
                       {"target": origin}],
        }
        p8 = stack.enter_context(portal.wrap_async_context_manager(run_p8(config)))
        bystander = stack.enter_context(portal.wrap_async_context_manager(
            Bystander.hold(p8, "/bystander/stream")))
        handler = threading.Thread(target=_zhttp_handler, daemon=True,
                                   args=(f"tcp://127.0.0.1:{zhttp_port}", script, stop))
        handler.start()
        stack.callback(handler.join)
        stack.callback(stop.set)
        push = stack.enter_context(zmq.Context.instance().socket(zmq.PUSH))
        push.setsockopt(zmq.LINGER, 0)
        push.connect(f"tcp://127.0.0.1:{pull_port}")
        yield Stack(portal, p8, bystander, script, push)
        portal.call(listener.aclose)


@pytest.fixture
def fuzz_stack(running_stack: Stack) -> Iterator[Stack]:
    """The module's stack, with the log captured so that each check can read it."""
    with structlog.testing.capture_logs() as logs:
        running_stack.logs = logs
        running_stack.script.http = OK_RESPONSE
        running_stack.script.zhttp = zhttp_reply
        yield running_stack
        running_stack.check()

