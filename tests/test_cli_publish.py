"""``p8 publish`` as pushpin-publish: every format reaches its clients, over HTTP and
ZeroMQ; GRIP URLs carry credentials; the items match what pushpin-publish sends."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
import zmq
from p8_http_stream.testing import open_stream
from p8_ws_over_http.events import WsEvent, encode
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from p8core.cli import _parser, main
from p8core.cli_publish import build_item
from p8core.testing import Reply, SeenRequest, run_origin, run_p8

pytestmark = pytest.mark.anyio


async def p8_publish(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, bool, str]:
    """Run ``p8 publish ARGS`` (in a thread: it blocks); its exit code, whether it printed
    ``Published`` (among the log lines of the p8 running here), and its stderr."""
    code = await anyio.to_thread.run_sync(main, ["publish", *args])
    out, err = capsys.readouterr()
    return code, "Published" in out.splitlines(), err


def item(*args: str) -> dict[str, Any]:
    return build_item(_parser().parse_args(["publish", *args]))


def test_items_are_pushpin_publishs() -> None:
    # pushpin-publish --spec tcp://... somechan hi --id 9 -H "X-A: 1" -M k=v --sender me
    assert item("somechan", "hi", "--id", "9", "-H", "X-A: 1", "-M", "k=v",
                "--sender", "me") == {
        "channel": "somechan", "id": "9", "meta": {"k": "v", "sender": "me"},
        "formats": {"http-response": {"code": 200, "body": b"hi\n", "headers": [["X-A", "1"]]},
                    "http-stream": {"content": b"hi\n"}, "ws-message": {"content": b"hi"}}}
    assert item("c", "x", "--no-eol", "--no-seq", "--prev-id", "8", "--code", "404") == {
        "channel": "c", "prev-id": "8", "no-seq": True, "formats": {
            "http-response": {"code": 404, "body": b"x"}, "http-stream": {"content": b"x"},
            "ws-message": {"content": b"x"}}}
    assert item("c", '[{"op": "add", "path": "/a", "value": 1}]', "--patch", "--code", "201") == {
        "channel": "c", "formats": {"http-response": {
            "code": 201, "body-patch": [{"op": "add", "path": "/a", "value": 1}]}}}
    assert item("c", "--hint")["formats"] == {
        f: {"action": "hint"} for f in ("http-response", "http-stream", "ws-message")}
    assert item("c", "--close")["formats"] == {
        "http-stream": {"action": "close"}, "ws-message": {"action": "close"}}


async def test_bad_options_are_one_line_errors(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    spec = "http://127.0.0.1:9"
    for args, message in ((["c"], "must specify content"),
                          (["c", "x", "--code", "1000"],
                           "code must be an integer between 0 and 999"),
                          (["c", "{}", "--patch"], "patch content must be a JSON array"),
                          (["c", "x", "-M", "novalue"], "meta must be K=V: 'novalue'"),
                          (["c", "x", "-u", "me:pw", "--spec", "http://publish.example"],
                           "Authentication requires https"),
                          (["c", f"@{tmp_path}/missing"], "cannot read"),
                          (["c", "x", "--spec", "gopher://x"], "unsupported spec")):
        code, out, err = await p8_publish(capsys, "--spec", spec, *args)
        assert (code, out) == (1, False), args
        assert err.startswith(f"Error: {message}") and err.count("\n") == 1, err


async def test_every_format_reaches_its_clients(capsys: pytest.CaptureFixture[str]) -> None:
    opening = encode([WsEvent("OPEN"), WsEvent("TEXT", b'c:{"type": "subscribe", '
                                                       b'"channel": "all"}')])

    def woh(request: SeenRequest) -> Reply:
        return Reply(200, [("Content-Type", "application/websocket-events"),
                           ("Sec-WebSocket-Extensions", "grip")], opening)

    async with run_origin(woh) as origin, run_p8({
            "plugins": {"enabled": ["http_stream", "long_poll", "ws_over_http"]},
            "routes": [{"path_prefix": "/ws", "target": origin.target, "over_http": True},
                       {"target": "test"}]}) as p8, \
            open_stream(p8.bound.port, "/stream?channel=all") as stream, \
            connect(f"ws://127.0.0.1:{p8.bound.port}/ws") as ws, \
            httpx.AsyncClient() as client:
        with anyio.fail_after(5):
            await stream.read_until(b"[stream opened]\n")
            while p8.app.hub.subscriber_count("all") < 2:
                await anyio.sleep(0.01)
            async with anyio.create_task_group() as tg:
                poll: list[httpx.Response] = []

                async def long_poll() -> None:
                    poll.append(await client.get(f"{p8.url}/response?channel=all"))

                tg.start_soon(long_poll)
                while p8.app.hub.subscriber_count("all") < 3:
                    await anyio.sleep(0.01)
                assert await p8_publish(capsys, "--spec", p8.control_url, "all", "hello",
                                        "--code", "203", "-H", "X-Note: yes") == (
                    0, True, "")
            assert await stream.read_until(b"hello\n") == b"[stream opened]\nhello\n"
            assert await ws.recv() == "hello"
            [answer] = poll
            assert (answer.status_code, answer.text, answer.headers["x-note"]) == (
                203, "hello\n", "yes")
            assert (await p8_publish(capsys, "--spec", p8.control_url, "all", "--close"))[0] == 0
            assert await stream.rest() == b"[stream opened]\nhello\n", "and ended"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1005, "a close frame without a code"


async def test_zeromq_spec_pushes_a_tnetstring(capsys: pytest.CaptureFixture[str]) -> None:
    ctx = zmq.Context()
    probe = ctx.socket(zmq.PULL)
    pull = f"tcp://127.0.0.1:{probe.bind_to_random_port('tcp://127.0.0.1')}"
    probe.close(linger=0)
    ctx.term()
    config = {"plugins": {"enabled": ["http_stream", "zmq_pubsub"],
                          "zmq_pubsub": {"pull": pull, "sub": [], "command": ""}}}
    async with run_p8(config) as p8, open_stream(p8.bound.port, "/stream?channel=z") as stream:
        with anyio.fail_after(10):
            await stream.read_until(b"[stream opened]\n")
            assert await p8_publish(capsys, "--spec", pull, "z", "\u00e9t\u00e9") == (
                0, True, "")
            body = "[stream opened]\n\u00e9t\u00e9\n".encode()
            assert await stream.read_until("\u00e9t\u00e9".encode()) == body
    assert p8.app.telemetry.publishes.get(("zmq-pull", "http-stream")) == 1


async def test_grip_url_credentials_and_binary_content(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[Callable[[], Reply]] = [lambda: Reply(200, body=b"Published\n"),
                                          lambda: Reply(400, body=b"Invalid format: no\n")]
    async with run_origin(lambda r: answers.pop(0)()) as origin:
        key = base64.b64encode(b"\x00secret").decode()
        monkeypatch.setenv("GRIP_URL", f"{origin.target}/prefix/?iss=me&key=base64:{key}")
        (tmp_path / "blob").write_bytes(b"\xff\x00")
        assert await p8_publish(capsys, "c", f"@{tmp_path}/blob") == (0, True, "")
        assert await p8_publish(capsys, "c", "x") == (1, False, "Error: Invalid format: no\n")
    seen = origin.requests[0]
    assert seen.target == b"/prefix/publish/"
    auth = (seen.header(b"authorization") or b"").decode()
    assert auth.startswith("Bearer ")
    claims = jwt.decode(auth[7:], b"\x00secret", algorithms=["HS256"])
    assert claims["iss"] == "me"
    formats = json.loads(seen.body)["items"][0]["formats"]
    assert formats == {"http-response": {"code": 200, "body-bin": "/wA="},
                       "http-stream": {"content-bin": "/wA="},
                       "ws-message": {"content-bin": "/wA="}}, "@file adds no newline"
