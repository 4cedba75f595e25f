"""Hot reload of a running ``p8 run``: SIGHUP or a watched file change switches routes and
limits without dropping a held connection; a bad config is rejected with its reason logged
and the running one stays in force."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process
from p8_http_stream.testing import StreamClient, open_stream

from p8core.app import App
from p8core.errors import ConfigError
from p8core.server.reload import Reloader, restart_keys
from p8core.testing import Reply, SeenRequest, run_origin

pytestmark = pytest.mark.anyio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def holds(channel: str) -> Callable[[SeenRequest], Reply]:
    """A backend that holds every request as a stream on ``channel``, saying so first."""
    reply = Reply(200, [("Grip-Hold", "stream"), ("Grip-Channel", channel)],
                  f"on {channel}\n".encode())
    return lambda request: reply


class P8Process:
    """``p8 run --config FILE`` in a subprocess, its log in a file."""

    def __init__(self, config: Path, process: Process, port: int, control: int) -> None:
        self.config, self.process = config, process
        self.port, self.control = port, control
        self.log = config.with_suffix(".log")

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [e for e in map(json.loads, lines) if e.get("event") == name]

    async def wait_event(self, name: str, count: int) -> list[dict[str, Any]]:
        with anyio.fail_after(10):
            while len(found := self.events(name)) < count:
                await anyio.sleep(0.05)
        return found

    async def publish(self, channel: str, content: str) -> None:
        item = {"channel": channel, "formats": {"http-stream": {"content": content}}}
        async with httpx.AsyncClient() as client:
            resp = await client.post(f"http://127.0.0.1:{self.control}/publish/",
                                     json={"items": [item]})
        assert resp.status_code == 200, resp.text


def config_text(port: int, control: int, body: str) -> str:
    return (f'[server]\nlisten = ["127.0.0.1:{port}"]\n{body}\n'
            f'[control]\nlisten = "127.0.0.1:{control}"\n'
            '[plugins]\nenabled = ["http_stream"]\n')


@asynccontextmanager
async def p8_process(tmp_path: Path, server_body: str, rest: str) -> AsyncIterator[P8Process]:
    port, control = free_port(), free_port()
    config = tmp_path / "p8.toml"
    config.write_text(config_text(port, control, server_body) + rest)
    with config.with_suffix(".log").open("wb") as log:
        process = await anyio.open_process(
            [sys.executable, "-m", "p8core.cli", "run", "--config", str(config)],
            stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    p8 = P8Process(config, process, port, control)
    try:
        await p8.wait_event("listening", 1)
        yield p8
    finally:
        process.terminate()
        with anyio.fail_after(10):
            await process.wait()
        await process.aclose()


async def first_line(p8: P8Process, path: str = "/") -> StreamClient:
    client = await StreamClient.connect(p8.port, path)
    await client.chunk()
    return client


async def test_sighup_switches_routes_and_held_streams_stay(tmp_path: Path) -> None:
    async with run_origin(holds("a")) as a, run_origin(holds("b")) as b, \
            p8_process(tmp_path, "", f'[[routes]]\ntarget = "{a.target}"\n') as p8:
        with anyio.fail_after(20):
            held = [await StreamClient.connect(p8.port, f"/{i}") for i in range(3)]
            assert [await c.chunk() for c in held] == [b"on a\n"] * 3

            moved = config_text(free_port(), p8.control, "max_connections = 100")
            p8.config.write_text(moved + f'[[routes]]\ntarget = "{b.target}"\n')
            p8.process.send_signal(signal.SIGHUP)
            (reloaded,) = await p8.wait_event("reloaded", 1)
            assert reloaded["trigger"] == "SIGHUP"
            (restart,) = p8.events("reload_needs_restart")
            assert restart["key"] == "server.listen", "the listener stays where it was"

            async with open_stream(p8.port, "/new") as new:
                assert await new.chunk() == b"on b\n", "new requests follow the new route"
                await p8.publish("a", "to the held\n")
                for client in held:
                    assert await client.chunk() == b"to the held\n"
                await p8.publish("b", "to the new\n")
                assert await new.chunk() == b"to the new\n"

            p8.config.write_text(moved + '[[routes]]\ntarget = "gopher://nowhere:70"\n')
            p8.process.send_signal(signal.SIGHUP)
            (rejected,) = await p8.wait_event("reload_rejected", 1)
            assert rejected["reason"].endswith(
                "target: no enabled plugin handles targets like 'gopher://nowhere:70'")
            async with open_stream(p8.port, "/after") as after:
                assert await after.chunk() == b"on b\n", "the running config stays"
            await p8.publish("a", "still here\n")
            for client in held:
                assert await client.chunk() == b"still here\n"
                await client.aclose()
        assert len(a.requests) == 3 and len(b.requests) == 2


async def test_a_watched_routes_file_reloads_when_it_changes(tmp_path: Path) -> None:
    routes = tmp_path / "routes"
    async with run_origin(holds("a")) as a, run_origin(holds("b")) as b:
        routes.write_text(f"* {a.target.removeprefix('http://')}\n")
        async with p8_process(tmp_path, "reload_watch = true\nreload_interval = 0.1",
                              '[proxy]\nroutes_file = "routes"\n') as p8:
            with anyio.fail_after(20):
                held = await StreamClient.connect(p8.port, "/held")
                assert await held.chunk() == b"on a\n"
                routes.write_text(f"* {b.target.removeprefix('http://')}\n")
                (reloaded,) = await p8.wait_event("reloaded", 1)
                assert reloaded["trigger"] == "file changed"
                async with open_stream(p8.port, "/new") as new:
                    assert await new.chunk() == b"on b\n"

                routes.write_text("* 127.0.0.1:1,nonsense\n")
                (rejected,) = await p8.wait_event("reload_rejected", 1)
                assert "routes" in rejected["reason"] and "nonsense" in rejected["reason"]
                async with open_stream(p8.port, "/after") as after:
                    assert await after.chunk() == b"on b\n"
                await p8.publish("a", "kept\n")
                assert await held.chunk() == b"kept\n"
                await held.aclose()


def test_reload_applies_limits_and_keys_and_rejects_what_does_not_load(
        tmp_path: Path) -> None:
    path = tmp_path / "p8.toml"
    path.write_text('[plugins]\nenabled = []\n[control]\nmax_body = 10\n')
    app = App.from_file(path)
    reloader = Reloader(app, path)
    path.write_text('[plugins]\nenabled = []\n[control]\nmax_body = 20\nkey = "k"\n'
                    '[pubsub]\nsubscription_linger = 5\n[proxy]\nsig_key = ""\n')
    assert reloader.reload("test")
    assert app.config.control.max_body == 20 and app.publish_auth is not None
    assert app.hub.subscription_linger == 5 and app.signer is None
    for bad in ('[control]\nmax_body = -1\n', '[control\n', '[proxy]\nupstream_key = "file:x"\n'):
        path.write_text('[plugins]\nenabled = []\n' + bad)
        assert not reloader.reload("test"), bad
        assert app.config.control.max_body == 20 and app.publish_auth is not None
    path.unlink()
    assert not reloader.reload("test")


def test_restart_keys_name_what_a_reload_cannot_change() -> None:
    old = App.from_raw({"plugins": {"enabled": ["zmq_pubsub"]}}).config
    new = App.from_raw({"server": {"listen": ["127.0.0.1:1"]},
                        "control": {"listen": "127.0.0.1:2", "max_body": 5},
                        "plugins": {"enabled": ["zmq_pubsub"],
                                    "zmq_pubsub": {"pull": ""}}}).config
    assert restart_keys(old, new) == ["server.listen", "control.listen", "plugins.zmq_pubsub"]
    assert restart_keys(old, old) == []


def test_reload_interval_has_a_floor() -> None:
    with pytest.raises(ConfigError, match=r"server\.reload_interval: must be at least 0\.1"):
        App.from_raw({"server": {"reload_interval": 0.01}, "plugins": {"enabled": []}})
