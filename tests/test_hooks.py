"""Each hook, exercised end to end by a plugin defined right here: the hooks suffice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

from p8core import (
    Action,
    ArmTimer,
    BufferedResponse,
    ClientTransport,
    ConfigError,
    ConfigSection,
    Connector,
    Finish,
    HoldMode,
    OriginRequest,
    OriginResponse,
    PluginError,
    PublishError,
    PublishFormat,
    PublishItem,
    SendBody,
    SendHead,
    hookimpl,
    hookspec,
    parse_table,
)
from p8core.app import App
from p8core.testing import Reply, publish, run_origin, run_p8

pytestmark = pytest.mark.anyio


@dataclass(frozen=True, slots=True)
class DemoSettings:
    greeting: str = "hello"
    repeat: int = 1


class DemoSections:
    @hookimpl
    def p8_config_sections(self) -> list[ConfigSection]:
        return [ConfigSection("demo", lambda t, s, p: parse_table(DemoSettings, t, s, p))]


async def test_hook_p8_config_sections() -> None:
    app = App.from_raw({"plugins": {"demo": {"greeting": "hi"}}}, "p8.toml",
                       plugins=[DemoSections()])
    assert app.config.plugins.section("demo") == DemoSettings(greeting="hi")
    assert App.from_raw({}, plugins=[DemoSections()]).config.plugins.section("demo") == (
        DemoSettings())
    with pytest.raises(ConfigError, match=r"^p8.toml: plugins.demo.colour: unknown key$"):
        App.from_raw({"plugins": {"demo": {"colour": 1}}}, "p8.toml", plugins=[DemoSections()])
    with pytest.raises(ConfigError, match=r"^p8.toml: plugins.demo.repeat: expected an integer"):
        App.from_raw({"plugins": {"demo": {"repeat": "x"}}}, "p8.toml",
                     plugins=[DemoSections()])
    with pytest.raises(ConfigError, match=r"^p8.toml: plugins.other: no enabled plugin owns"):
        App.from_raw({"plugins": {"other": {}}}, "p8.toml", plugins=[DemoSections()])


class Shout(PublishFormat):
    """Format ``shout``: ``{"text": ...}``, upper-cased once per publish."""

    name = "shout"
    parsed = 0

    def parse(self, raw: Mapping[str, object], where: str) -> bytes:
        text = raw.get("text")
        if not isinstance(text, str):
            raise PublishError(f"'{self.name}' contains 'text' with wrong type")
        Shout.parsed += 1
        return text.upper().encode() + b"\n"


class Loud(HoldMode):
    """Hold mode ``loud``: a stream of shouts, ended by ``BYE``; a dot every 0.2 s idle."""

    name = "loud"
    format = "shout"

    def start(self) -> Sequence[Action]:
        return [SendHead(200, ((b"content-type", b"text/plain"),)),
                SendBody(self.hold.instruct.body), ArmTimer(0.2)]

    def on_item(self, item: PublishItem) -> Sequence[Action]:
        data: bytes = item.formats["shout"]  # type: ignore[assignment]
        return [SendBody(data), Finish()] if data == b"BYE\n" else [SendBody(data)]

    def on_timer(self, key: str) -> Sequence[Action]:
        return [SendBody(b"."), ArmTimer(0.2)]


class LoudPlugin:
    @hookimpl
    def p8_register_formats(self) -> list[PublishFormat]:
        return [Shout()]

    @hookimpl
    def p8_register_hold_modes(self) -> list[type[HoldMode]]:
        return [Loud]


def _hold_loud(channel: str) -> Reply:
    return Reply(200, [("Grip-Hold", "loud"), ("Grip-Channel", channel)], b"ready\n")


async def test_hook_p8_register_hold_modes() -> None:
    async with run_origin(lambda r: _hold_loud("room")) as origin, \
            run_p8({"routes": [{"target": origin.target}]}, plugins=[LoudPlugin()]) as p8, \
            httpx.AsyncClient() as client, \
            client.stream("GET", f"{p8.url}/x") as resp:
        assert resp.status_code == 200
        assert "grip-hold" not in resp.headers
        chunks = resp.aiter_raw()
        with anyio.fail_after(5):
            assert await anext(chunks) == b"ready\n"
            assert (await publish(p8, {"channel": "room", "formats": {
                "shout": {"text": "hey"}}})).status_code == 200
            received = b""
            while b"HEY\n" not in received:
                received += await anext(chunks)
            assert set(received.replace(b"HEY\n", b"")) <= {ord(".")}
            await publish(p8, {"channel": "room", "formats": {"shout": {"text": "bye"}}})
            rest = b"".join([c async for c in chunks])
        assert rest.endswith(b"BYE\n"), "Finish ends the response after the last chunk"
        assert not p8.app.held and p8.app.hub.subscriber_count("room") == 0


async def test_hook_p8_register_formats() -> None:
    async with run_origin(lambda r: _hold_loud("fan")) as origin, \
            run_p8({"routes": [{"target": origin.target}]}, plugins=[LoudPlugin()]) as p8, \
            httpx.AsyncClient() as client:
        bad = await publish(p8, {"channel": "fan", "formats": {"shout": {"text": 5}}})
        assert (bad.status_code, bad.text) == (
            400, "Invalid format: 'shout' contains 'text' with wrong type\n")
        async with client.stream("GET", f"{p8.url}/a") as one, \
                client.stream("GET", f"{p8.url}/b") as two:
            streams = [one.aiter_raw(), two.aiter_raw()]
            with anyio.fail_after(5):
                for s in streams:
                    assert await anext(s) == b"ready\n"
                before = Shout.parsed
                await publish(p8, {"channel": "fan", "formats": {"shout": {"text": "x"}}})
                for s in streams:
                    got = b""
                    while b"X\n" not in got:
                        got += await anext(s)
        assert Shout.parsed == before + 1, "a format is parsed once, whatever the fan-out"


class Echo(Connector):
    """Target ``echo://<anything>``: answers with the request line it got."""

    schemes = ("echo",)

    async def request(self, req: OriginRequest, *, timeout: float) -> OriginResponse:
        body = b"".join([c async for c in req.body])
        return BufferedResponse(200, [(b"x-target", self.target.encode())],
                                req.method + b" " + req.target + b" " + body)


class EchoPlugin:
    @hookimpl
    def p8_register_connectors(self) -> list[type[Connector]]:
        return [Echo]


async def test_hook_p8_register_connectors() -> None:
    config = {"routes": [{"target": "echo://one", "path_prefix": "/e"}]}
    async with run_p8(config, plugins=[EchoPlugin()]) as p8, httpx.AsyncClient() as client:
        resp = await client.post(f"{p8.url}/e/x?y=1", content=b"body")
        assert resp.text == "POST /e/x?y=1 body"
        assert resp.headers["x-target"] == "echo://one"
    with pytest.raises(ConfigError, match="no enabled plugin handles targets like 'echo://one'"):
        App.from_raw(config)


class Teapot(ClientTransport):
    """Claims requests carrying ``X-Teapot`` and answers them itself."""

    name = "teapot"

    def claims(self, request: Any) -> bool:
        return request.header(b"x-teapot") is not None

    async def serve(self, app: App, conn: Any, request: Any) -> bool:
        conn.respond(418, b"short and stout\n")
        return True


class TeapotPlugin:
    @hookimpl
    def p8_register_transports(self) -> list[ClientTransport]:
        return [Teapot()]


async def test_hook_p8_register_transports() -> None:
    async with run_p8(plugins=[TeapotPlugin()]) as p8, httpx.AsyncClient() as client:
        claimed = await client.get(f"{p8.url}/", headers={"X-Teapot": "1"})
        assert (claimed.status_code, claimed.text) == (418, "short and stout\n")
        passed = await client.get(f"{p8.url}/")
        assert passed.text == "Hello from the Pushpin test handler!\n"


class Ticker:
    """A service publishing a shout every 50 ms through ``app.publish``."""

    ran = 0

    @hookimpl
    def p8_services(self, app: App) -> list[Any]:
        async def tick() -> None:
            while True:
                Ticker.ran += 1
                app.publish([PublishItem("svc", {"shout": b"TICK\n"})])
                await anyio.sleep(0.05)

        return [tick]


async def test_hook_p8_services() -> None:
    async with run_origin(lambda r: _hold_loud("svc")) as origin, \
            run_p8({"routes": [{"target": origin.target}]},
                   plugins=[LoudPlugin(), Ticker()]) as p8, \
            httpx.AsyncClient() as client, \
            client.stream("GET", f"{p8.url}/") as resp:
        got = b""
        with anyio.fail_after(5):
            async for chunk in resp.aiter_raw():
                got += chunk
                if b"TICK\n" in got:
                    break
    assert Ticker.ran >= 1


async def test_held_exchanges_end_cleanly_at_shutdown() -> None:
    async with run_origin(lambda r: _hold_loud("bye")) as origin, httpx.AsyncClient() as client:
        async with run_p8({"routes": [{"target": origin.target}]}, plugins=[LoudPlugin()]) as p8:
            resp = await client.send(client.build_request("GET", f"{p8.url}/"), stream=True)
            chunks = resp.aiter_raw()
            with anyio.fail_after(5):
                assert await anext(chunks) == b"ready\n"
        with anyio.fail_after(5):
            rest = b"".join([c async for c in chunks])
        assert set(rest) <= {ord(".")}, "the chunked body ends cleanly, no reset"
        await resp.aclose()


class Refreshing(Loud):
    """Like ``loud``, and says ``updated`` whenever p8 asks it to refresh."""

    name = "refreshing"

    def on_timer(self, key: str) -> Sequence[Action]:
        return ()

    def on_update(self) -> Sequence[Action]:
        return [SendBody(b"updated\n")]


class RefreshingPlugin:
    @hookimpl
    def p8_register_hold_modes(self) -> list[type[HoldMode]]:
        return [Refreshing]


async def test_first_subscription_and_recover_reach_hold_modes() -> None:
    reply = Reply(200, [("Grip-Hold", "refreshing"), ("Grip-Channel", "new")], b"ready\n")
    async with run_origin(lambda r: reply) as origin, \
            run_p8({"routes": [{"target": origin.target}]},
                   plugins=[LoudPlugin(), RefreshingPlugin()]) as p8, \
            httpx.AsyncClient() as client, \
            client.stream("GET", f"{p8.url}/") as resp:
        chunks = resp.aiter_raw()
        with anyio.fail_after(5):
            assert await anext(chunks) == b"ready\n"
            started = anyio.current_time()
            assert await anext(chunks) == b"updated\n"
            assert 0.8 < anyio.current_time() - started < 2, "about 1 s after subscribing"
            await client.post(f"{p8.control_url}/recover")
            assert await anext(chunks) == b"updated\n"


async def test_a_slow_subscriber_is_closed_and_counted_others_unharmed() -> None:
    async with run_origin(lambda r: _hold_loud("bulk")) as origin, \
            run_p8({"server": {"write_buffer_max": 200_000},
                    "routes": [{"target": origin.target}]}, plugins=[LoudPlugin()]) as p8, \
            httpx.AsyncClient() as client:
        stalled = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
        await stalled.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with stalled, client.stream("GET", f"{p8.url}/") as reader:
            chunks = reader.aiter_raw()
            with anyio.fail_after(10):
                assert await anext(chunks) == b"ready\n"
                while p8.app.hub.subscriber_count("bulk") < 2:
                    await anyio.sleep(0.01)
                text = "x" * 99_999
                got = 0
                for _ in range(60):
                    await publish(p8, {"channel": "bulk", "formats": {"shout": {"text": text}}})
                    while got < (_ + 1) * 100_000:
                        got += len((await anext(chunks)).replace(b".", b""))
                assert got == 60 * 100_000, "the reading client got every item"
                assert p8.app.metrics.slow_clients_closed == 1
                assert p8.app.hub.subscriber_count("bulk") == 1


class Sent:
    """Keeps the channel of every item the hub sends; refuses ``max_channel_name = 3``."""

    @hookimpl
    def p8_configure(self, app: App) -> None:
        if app.config.pubsub.max_channel_name == 3:
            raise ConfigError(app.config.source, "pubsub.max_channel_name", "too short here")
        self.channels: list[str] = []
        app.hub.on_sent.append(lambda item: self.channels.append(item.channel))


async def test_hook_p8_configure() -> None:
    sent = Sent()
    async with run_p8(plugins=[LoudPlugin(), sent]) as p8:
        await publish(p8, {"channel": "nobody-listens", "formats": {"shout": {"text": "a"}}})
    assert sent.channels == ["nobody-listens"]
    with pytest.raises(ConfigError, match=r"^p8.toml: pubsub.max_channel_name: too short"):
        App.from_raw({"pubsub": {"max_channel_name": 3}}, "p8.toml", plugins=[Sent()])


class Rerun:
    """Replays the last shout of each channel to every new ``loud`` hold."""

    def __init__(self) -> None:
        self.last: dict[str, PublishItem] = {}

    @hookimpl
    def p8_configure(self, app: App) -> None:
        app.hub.on_sent.append(lambda item: self.last.__setitem__(item.channel, item))

    @hookimpl
    def p8_hold_replay(self, hold: Any, format: str) -> list[PublishItem]:
        return [self.last[c.name] for c in hold.instruct.channels
                if c.name in self.last and format in self.last[c.name].formats]


async def test_hook_p8_hold_replay() -> None:
    async with run_origin(lambda r: _hold_loud("room")) as origin, \
            run_p8({"routes": [{"target": origin.target}]},
                   plugins=[LoudPlugin(), Rerun()]) as p8, httpx.AsyncClient() as client:
        await publish(p8, {"channel": "room", "formats": {"shout": {"text": "missed"}}})
        async with client.stream("GET", f"{p8.url}/x") as resp:
            chunks = resp.aiter_raw()
            with anyio.fail_after(5):
                assert await anext(chunks) + await anext(chunks) == b"ready\nMISSED\n"


class Greeting:
    """A hookspec of a plugin's own (``p8_demo_greeting``), added through
    ``p8_add_hookspecs``."""

    @hookspec
    def p8_demo_greeting(self, name: str) -> str:  # type: ignore[empty-body]
        """Greet ``name``."""

    @hookimpl
    def p8_add_hookspecs(self, pluginmanager: Any) -> None:
        pluginmanager.add_hookspecs(Greeting)


class Greeter:
    @hookimpl
    def p8_demo_greeting(self, name: str) -> str:
        return f"hello {name}"


def test_hook_p8_add_hookspecs() -> None:
    app = App.from_raw({}, plugins=[Greeter(), Greeting()])
    assert app.pm.hook.p8_demo_greeting(name="p8") == ["hello p8"]
    with pytest.raises(PluginError, match="p8_demo_greeting"):
        App.from_raw({}, plugins=[Greeter()])
