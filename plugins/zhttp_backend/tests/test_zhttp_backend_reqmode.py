"""``zhttpreq+…`` targets over real ZeroMQ sockets: REP handlers written with pyzmq."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import zmq
import zmq.asyncio
from structlog.testing import capture_logs

from p8core import ConfigError, P8Error
from p8core.app import App
from p8core.codec import tnetstring
from p8core.testing import publish, run_p8, scrape

pytestmark = pytest.mark.anyio

Answer = Callable[[dict[bytes, Any]], "dict[bytes, Any] | bytes | None"]


def config(target: str, *, plugins: tuple[str, ...] = ("zhttp_backend",),
           timeout: float | None = None, handler_wait: float = 0.3) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "plugins": {"enabled": list(plugins), "zhttp_backend": {"handler_wait": handler_wait}},
        "routes": [{"target": target, "debug": True}],  # error answers give the reason
    }
    if timeout is not None:
        raw["proxy"] = {"backend_timeout": timeout}
    return raw


class RepHandler:
    """A REP handler: each request is decoded and answered by ``answer`` (``None``: no reply)."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str, answer: Answer) -> None:
        self.sock = ctx.socket(zmq.REP)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        self.answer = answer
        self.seen: list[dict[bytes, Any]] = []

    async def serve(self) -> None:
        while True:
            raw = await self.sock.recv()
            assert raw[:1] == b"T"
            req = tnetstring.loads(raw[1:])
            assert isinstance(req, dict)
            self.seen.append(req)
            reply = self.answer(req)
            if reply is None:
                await anyio.sleep_forever()
            await self.sock.send(reply if isinstance(reply, bytes)
                                 else b"T" + tnetstring.dumps(reply))


@asynccontextmanager
async def rep_handler(ctx: zmq.asyncio.Context, endpoint: str,
                      answer: Answer) -> AsyncIterator[RepHandler]:
    handler = RepHandler(ctx, endpoint, answer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(handler.serve)
        try:
            yield handler
        finally:
            tg.cancel_scope.cancel()
            handler.sock.close(linger=0)


def ok(req: dict[bytes, Any], body: bytes = b"ok\n") -> dict[bytes, Any]:
    return {b"id": req[b"id"], b"code": 200, b"reason": b"OK",
            b"headers": [[b"Content-Type", b"text/plain"]], b"body": body}


@pytest.mark.skipif("stream" not in App.from_raw({}).hold_modes,
                    reason="the stream hold mode (http_stream plugin) is not installed")
async def test_zhttp_backend_seed_example(ctx: zmq.asyncio.Context,
                                          free_ports: Callable[[int], int]) -> None:
    port = free_ports(1)

    def answer(req: dict[bytes, Any]) -> dict[bytes, Any]:
        return {b"id": req[b"id"], b"code": 200, b"reason": b"OK",
                b"headers": [[b"Grip-Hold", b"stream"], [b"Grip-Channel", b"test"],
                             [b"Content-Type", b"text/plain"]],
                b"body": b"welcome to the stream\n"}

    target = f"zhttpreq+tcp://127.0.0.1:{port}"
    async with (run_p8(config(target, plugins=("zhttp_backend", "http_stream"))) as p8,
                rep_handler(ctx, f"tcp://127.0.0.1:{port}", answer),
                httpx.AsyncClient() as client):
        with anyio.fail_after(5):
            async with client.stream("GET", f"{p8.url}/stream") as resp:
                assert resp.status_code == 200
                assert resp.headers["content-type"] == "text/plain"
                received = b""
                chunks = resp.aiter_raw()
                while received != b"welcome to the stream\n":
                    received += await anext(chunks)
                published = await publish(p8, {"channel": "test", "formats": {
                    "http-stream": {"content": "hello there\n"}}})
                assert published.status_code == 200
                received = b""
                while received != b"hello there\n":
                    received += await anext(chunks)


async def test_zhttp_backend_req_fields_both_ways(ctx: zmq.asyncio.Context,
                                                  free_ports: Callable[[int], int]) -> None:
    port = free_ports(1)
    upload = bytes(range(256)) * 3
    download = bytes(reversed(range(256))) + b"\r\n\x00"

    def answer(req: dict[bytes, Any]) -> dict[bytes, Any]:
        return {b"id": req[b"id"], b"code": 201, b"reason": b"Made It",
                b"headers": [[b"Content-Type", b"application/octet-stream"],
                             [b"X-Reply", b"one"], [b"X-Reply", b"two"],
                             [b"Content-Length", b"9999"], [b"Transfer-Encoding", b"chunked"]],
                b"body": download}

    async with (run_p8(config(f"zhttpreq+tcp://127.0.0.1:{port}")) as p8,
                rep_handler(ctx, f"tcp://127.0.0.1:{port}", answer) as handler):
        with anyio.fail_after(5):
            reader, writer = await anyio.connect_tcp("127.0.0.1", p8.bound.port), None
            async with reader:
                await reader.send(b"PUT /some/path?a=1&b=%20x HTTP/1.1\r\nHost: example.com\r\n"
                                  b"X-Dup: 1\r\nX-Dup: 2\r\nX-Custom: Value\r\n"
                                  b"Content-Length: 768\r\nConnection: close\r\n\r\n" + upload)
                raw = b""
                while True:
                    try:
                        raw += await reader.receive()
                    except anyio.EndOfStream:
                        break
    del writer
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 201 Made It"
    assert b"x-reply: one" in lines and b"x-reply: two" in lines
    assert b"content-length: %d" % len(download) in lines
    assert not any(line.startswith(b"transfer-encoding") for line in lines)
    assert body == download

    (req,) = handler.seen
    assert req[b"method"] == b"PUT"
    assert req[b"uri"] == b"http://example.com/some/path?a=1&b=%20x"
    assert req[b"body"] == upload
    assert req[b"max-size"] == 1_000_000
    assert req[b"from"].startswith(b"p8-proxy_")
    assert isinstance(req[b"id"], bytes) and req[b"id"]
    names = [name for name, _ in req[b"headers"]]
    values = {name: value for name, value in req[b"headers"]}
    assert [v for n, v in req[b"headers"] if n == b"x-dup"] == [b"1", b"2"]
    assert values[b"host"] == b"example.com"
    assert values[b"x-custom"] == b"Value"
    assert values[b"content-length"] == b"768"
    assert b"grip-sig" in names and b"grip-feature" in names
    assert b"connection" not in names
    for absent in (b"seq", b"type", b"stream", b"credits", b"ext"):
        assert absent not in req


async def test_zhttp_backend_req_get_and_head(ctx: zmq.asyncio.Context,
                                              free_ports: Callable[[int], int]) -> None:
    port = free_ports(1)

    def answer(req: dict[bytes, Any]) -> dict[bytes, Any]:
        return {b"id": req[b"id"], b"code": 200,
                b"headers": [[b"Content-Length", b"42"]],
                b"body": b"" if req[b"method"] == b"HEAD" else b"x" * 42}

    async with (run_p8(config(f"zhttpreq+tcp://127.0.0.1:{port}")) as p8,
                rep_handler(ctx, f"tcp://127.0.0.1:{port}", answer) as handler,
                httpx.AsyncClient() as client):
        with anyio.fail_after(5):
            got = await client.get(f"{p8.url}/")
            head = await client.head(f"{p8.url}/")
            metrics = await scrape(p8)
    assert metrics("p8_origin_requests_total", kind="proxy", scheme="zhttpreq+tcp",
                   outcome="2xx") == 2, "ZHTTP requests are counted by target scheme"
    assert (got.status_code, got.content, got.reason_phrase) == (200, b"x" * 42, "OK")
    assert (head.status_code, head.headers["content-length"], head.content) == (200, "42", b"")
    assert b"body" not in handler.seen[0]
    assert all(name != b"content-length" for name, _ in handler.seen[0][b"headers"])


async def test_zhttp_backend_req_two_handlers_share_the_load(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    port = free_ports(1)

    def named(name: bytes) -> Answer:
        return lambda req: ok(req, name)

    endpoint = f"tcp://127.0.0.1:{port}"
    async with (run_p8(config(f"zhttpreq+tcp://127.0.0.1:{port}")) as p8,
                rep_handler(ctx, endpoint, named(b"a")), rep_handler(ctx, endpoint, named(b"b")),
                httpx.AsyncClient() as client):
        with anyio.fail_after(5):
            seen: set[bytes] = set()
            while seen != {b"a", b"b"}:  # until both have connected
                seen.add((await client.get(p8.url)).content)
            answers: list[bytes] = []

            async def one() -> None:
                answers.append((await client.get(p8.url)).content)

            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(one)
    assert sorted(answers) == [b"a"] * 10 + [b"b"] * 10, "ZeroMQ deals requests in turn"


async def test_zhttp_backend_req_no_handler_is_502(free_ports: Callable[[int], int]) -> None:
    target = f"zhttpreq+tcp://127.0.0.1:{free_ports(1)}"
    async with run_p8(config(target, handler_wait=0.2)) as p8, httpx.AsyncClient() as client:
        with anyio.fail_after(5):
            started = time.monotonic()
            resp = await client.get(p8.url)
            metrics = await scrape(p8)
    assert metrics("p8_origin_requests_total", kind="proxy", scheme="zhttpreq+tcp",
                   outcome="error") == 1
    assert time.monotonic() - started >= 0.2
    assert resp.status_code == 502
    assert resp.text == f"no zhttp handler connected to {target}\n"


async def test_zhttp_backend_req_waits_for_a_handler_that_connects_late(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    port = free_ports(1)
    async with (run_p8(config(f"zhttpreq+tcp://127.0.0.1:{port}", handler_wait=3)) as p8,
                httpx.AsyncClient() as client, anyio.create_task_group() as tg):
        answers: list[httpx.Response] = []

        async def ask() -> None:
            answers.append(await client.get(p8.url))

        with anyio.fail_after(5):
            tg.start_soon(ask)
            await anyio.sleep(0.3)
            assert not answers
            async with rep_handler(ctx, f"tcp://127.0.0.1:{port}", ok):
                while not answers:
                    await anyio.sleep(0.01)
    assert (answers[0].status_code, answers[0].text) == (200, "ok\n")


async def test_zhttp_backend_req_no_answer_in_time_is_504(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    port = free_ports(1)
    target = f"zhttpreq+tcp://127.0.0.1:{port}"
    async with (run_p8(config(target, timeout=0.3)) as p8,
                rep_handler(ctx, f"tcp://127.0.0.1:{port}", lambda req: None) as handler,
                httpx.AsyncClient() as client):
        with anyio.fail_after(5):
            resp = await client.get(p8.url)
    assert resp.status_code == 504
    assert resp.text == f"timed out waiting for the zhttp handler at {target}\n"
    assert len(handler.seen) == 1


async def test_zhttp_backend_req_malformed_replies_fail_only_their_request(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    port = free_ports(1)
    target = f"zhttpreq+tcp://127.0.0.1:{port}"

    def answer(req: dict[bytes, Any]) -> dict[bytes, Any] | bytes:
        rid, path = req[b"id"], req[b"uri"].rsplit(b"/", 1)[1]
        replies: dict[bytes, dict[bytes, Any] | bytes] = {
            b"field": {b"id": rid, b"code": b"200"},
            b"json": b'J{"id": "%s", "code": 200}' % rid,
            b"more": {b"id": rid, b"code": 200, b"body": b"a", b"more": True},
            b"header": {b"id": rid, b"code": 200, b"headers": [[b"X-A", b"1\r\nX-B: 2"]]},
            b"nocode": {b"id": rid, b"body": b"hi"},
            b"credit": {b"id": rid, b"type": b"credit", b"credits": 10},
            b"error": {b"id": rid, b"type": b"error", b"condition": b"bad-request"},
            b"big": {b"id": rid, b"code": 200, b"body": b"x" * 1_000_001},
            b"garbage": b"\x00\xffnot a packet",
            b"other-id": {b"id": b"someone-else", b"code": 200},
        }
        return replies.get(path, ok(req))

    malformed = f"malformed reply from the zhttp handler at {target}: "
    expected = {
        "field": (502, malformed + "'code' must be an integer"),
        "json": (502, malformed + "JSON packets are not accepted: send 'T' and a tnetstring"),
        "more": (502, malformed + "'more' is true, but req mode takes the whole response in "
                                  "one packet"),
        "header": (502, malformed + "'headers[0]' (X-A) has an invalid value"),
        "nocode": (502, malformed + "response has no 'code'"),
        "credit": (502, malformed + "a 'credit' packet is not a reply"),
        "error": (502, f"the zhttp handler at {target} answered with error 'bad-request'"),
        "big": (502, malformed + "body of 1000001 bytes exceeds max-size (1000000)"),
        "garbage": (504, f"timed out waiting for the zhttp handler at {target}"),
        "other-id": (504, f"timed out waiting for the zhttp handler at {target}"),
        "fine": (200, "ok"),
    }
    with capture_logs() as logs:
        async with (run_p8(config(target, timeout=0.5)) as p8,
                    rep_handler(ctx, f"tcp://127.0.0.1:{port}", answer),
                    httpx.AsyncClient() as client):
            with anyio.fail_after(10):
                for path, (status, text) in expected.items():
                    resp = await client.get(f"{p8.url}/{path}")
                    assert (resp.status_code, resp.text) == (status, text + "\n"), path
    rejected = [e for e in logs if e["event"] == "zhttp_reply_rejected"]
    assert len(rejected) == 8
    assert all(e["log_level"] == "warning" and e["target"] == target for e in rejected)
    assert rejected[-1]["id"] is None, "garbage names no request"


async def test_zhttp_backend_req_body_too_large_is_413(
        ctx: zmq.asyncio.Context, free_ports: Callable[[int], int]) -> None:
    port = free_ports(1)
    async with (run_p8(config(f"zhttpreq+tcp://127.0.0.1:{port}")) as p8,
                rep_handler(ctx, f"tcp://127.0.0.1:{port}", ok) as handler,
                httpx.AsyncClient() as client):
        with anyio.fail_after(5):
            resp = await client.post(p8.url, content=b"x" * 1_000_001)
            fits = await client.post(p8.url, content=b"y" * 1_000_000)
    assert resp.status_code == 413
    assert "larger than 1000000 bytes" in resp.text
    assert fits.status_code == 200
    assert [len(req[b"body"]) for req in handler.seen] == [1_000_000]


async def test_zhttp_backend_req_over_ipc(ctx: zmq.asyncio.Context, tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/req"
    async with (run_p8(config(f"zhttpreq+{endpoint}")) as p8,
                rep_handler(ctx, endpoint, ok), httpx.AsyncClient() as client):
        with anyio.fail_after(5):
            resp = await client.get(p8.url)
    assert (resp.status_code, resp.text) == (200, "ok\n")


async def test_zhttp_backend_settings() -> None:
    section = App.from_raw({"plugins": {"zhttp_backend": {"handler_wait": 1}}}).config.plugins
    assert section.section("zhttp_backend").handler_wait == 1.0
    assert App.from_raw({}).config.plugins.section("zhttp_backend").handler_wait == 2.0
    with pytest.raises(ConfigError, match=r"plugins\.zhttp_backend\.wait: unknown key"):
        App.from_raw({"plugins": {"zhttp_backend": {"wait": 1}}}, "p8.toml")
    with pytest.raises(ConfigError, match=r"plugins\.zhttp_backend\.handler_wait: expected"):
        App.from_raw({"plugins": {"zhttp_backend": {"handler_wait": "x"}}}, "p8.toml")


async def test_zhttp_backend_bad_targets_stop_startup(free_ports: Callable[[int], int]) -> None:
    with pytest.raises(ExceptionGroup) as info, anyio.fail_after(5):
        async with run_p8(config("zhttpreq+tcp://127.0.0.1")):
            await anyio.sleep_forever()
    assert info.group_contains(P8Error, match=r"^zhttp_backend: bad target "
                               r"'zhttpreq\+tcp://127.0.0.1': expected tcp://HOST:PORT$")
    port = free_ports(3)
    with zmq.Context() as sync_ctx, sync_ctx.socket(zmq.PULL) as taken:
        taken.bind(f"tcp://127.0.0.1:{port + 1}")
        with pytest.raises(ExceptionGroup) as info, anyio.fail_after(5):
            async with run_p8(config(f"zhttp+tcp://127.0.0.1:{port}")):
                await anyio.sleep_forever()
    assert info.group_contains(P8Error, match=rf"^zhttp_backend: cannot bind "
                               rf"tcp://127.0.0.1:{port + 1} for target "
                               rf"zhttp\+tcp://127.0.0.1:{port}: Address already in use$")
