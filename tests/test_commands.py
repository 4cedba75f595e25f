"""Commands: offered by plugins through ``p8_register_commands``, run against a live p8.
(The ZeroMQ command socket that serves them is tested with the zmq_pubsub plugin.)"""

from __future__ import annotations

from collections.abc import Mapping

import anyio
import pytest

from p8core import Command, CommandError, PluginError, PublishItem, hookimpl
from p8core.app import App
from p8core.plugins import describe_plugins
from p8core.testing import run_p8

pytestmark = pytest.mark.anyio

NO_PLUGINS = {"plugins": {"enabled": ["http_stream"]}}


class Echo(Command):
    name = "echo"

    def run(self, app: App, args: Mapping[str, object]) -> object:
        if "fail" in args:
            raise CommandError("bad-request", "asked to fail")
        return {"args": dict(args), "channels": app.hub.channels()}


class EchoPlugin:
    @hookimpl
    def p8_register_commands(self) -> list[Command]:
        return [Echo()]


class RecoverAgain:
    @hookimpl
    def p8_register_commands(self) -> list[Command]:
        class Recover(Echo):
            name = "recover"

        return [Recover()]


async def test_hook_p8_register_commands() -> None:
    app = App.from_raw(NO_PLUGINS, plugins=[EchoPlugin()])
    assert {"echo", "recover", "conncheck", "publish"} <= set(app.commands)
    assert app.commands["echo"].run(app, {"x": b"1"}) == {"args": {"x": b"1"}, "channels": 0}
    with pytest.raises(CommandError) as info:
        app.commands["echo"].run(app, {"fail": True})
    assert (info.value.condition, info.value.value) == ("bad-request", "asked to fail")
    listed = {i.name: i.registers for i in describe_plugins(app.pm, app.config)}
    assert listed["p8core.builtin"]["p8_register_commands"] == (
        "command recover", "command conncheck", "command publish")
    with pytest.raises(PluginError, match="command 'recover' is registered by both"):
        App.from_raw(NO_PLUGINS, plugins=[RecoverAgain()])


async def test_conncheck_names_the_connections_still_open() -> None:
    async with run_p8(NO_PLUGINS) as p8:
        conncheck = p8.app.commands["conncheck"]
        client = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
        with anyio.fail_after(5):
            while not p8.app.telemetry.connections:
                await anyio.sleep(0.01)
        [open_id] = p8.app.telemetry.connections
        assert open_id.startswith(f"{p8.app.telemetry.instance}:")
        assert conncheck.run(p8.app, {"ids": [open_id.encode(), b"p8_0:404"]}) == [open_id]
        await client.aclose()
        with anyio.fail_after(5):
            while conncheck.run(p8.app, {"ids": [open_id]}):
                await anyio.sleep(0.01)
        for bad in ({}, {"ids": b"x"}, {"ids": [1]}):
            with pytest.raises(CommandError, match="bad-request"):
                conncheck.run(p8.app, bad)


async def test_publish_takes_tnetstring_items_all_or_none() -> None:
    async with run_p8(NO_PLUGINS) as p8:
        app = p8.app
        publish = app.commands["publish"]
        item = {b"channel": b"c", b"formats": {b"http-stream": {b"content": b"\xff"}}}
        assert publish.run(app, {"items": [item, item]}) is None
        assert app.metrics.items_published == 2
        assert app.telemetry.publishes.counts == {("command", "http-stream"): 2}
        with pytest.raises(CommandError) as info:
            publish.run(app, {"items": [item, {b"formats": {}}]})
        assert (info.value.condition, info.value.value) == (
            "bad-request", "Invalid format: publish item object does not contain 'channel'")
        with pytest.raises(CommandError, match="object does not contain 'items'"):
            publish.run(app, {})
        assert app.metrics.items_published == 2, "nothing of a bad call was published"
        app.hub.subscribe("c", Quiet(), 0.0)
        assert publish.run(app, {"items": [item], "verbose": True}) == {"items": [{
            "channel": "c", "id": None, "result": "delivered", "receivers": 1,
            "by_format": {"http-stream": 1}}]}


class Quiet:
    format = "http-stream"

    def deliver(self, item: PublishItem) -> None:
        pass


async def test_recover_forgets_last_ids() -> None:
    app = App.from_raw(NO_PLUGINS)
    app.hub.subscribe("c", Quiet(), 0.0)
    app.hub.publish(PublishItem("c", {"http-stream": b""}, id="7"), 0.0)
    assert app.hub.last_id("c") == "7"
    assert app.commands["recover"].run(app, {}) is None
    assert app.hub.last_id("c") is None
