"""The third-party example plugin (examples/p8_sse), installed for real by a fixture:
discovered through its entry point, configured in TOML, serving holds and publishes."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from p8core.app import App
from p8core.errors import ConfigError
from p8core.plugins import describe_plugins
from p8core.testing import Reply, publish, run_origin, run_p8

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sse_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``pip install`` the example into a private directory and put it on sys.path."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target),
                    str(ROOT / "examples" / "p8_sse")], check=True, capture_output=True)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.startswith("p8_sse")]:
        del sys.modules[name]


def test_discovered_and_listed(sse_installed: Path) -> None:
    app = App.from_raw({})
    info = {i.name: i for i in describe_plugins(app.pm, app.config)}["sse"]
    assert (info.distribution, info.version, info.enabled) == ("p8-sse", "0.1.0", True)
    assert info.registers["p8_register_hold_modes"] == ("hold mode sse",)
    assert info.registers["p8_register_formats"] == ("format sse",)
    assert "sse" in app.hold_modes and "sse" in app.formats
    listing = subprocess.run([sys.executable, "-m", "p8core.cli", "plugins"],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(sse_installed)})
    assert "sse (p8-sse 0.1.0, enabled)" in listing.stdout
    assert "hold mode sse" in listing.stdout


def test_disabled_by_the_enabled_list(sse_installed: Path) -> None:
    app = App.from_raw({"plugins": {"enabled": ["long_poll"]}})
    assert "sse" not in app.hold_modes
    with pytest.raises(ConfigError, match=r"plugins\.sse: no enabled plugin owns this table"):
        App.from_raw({"plugins": {"enabled": ["long_poll"], "sse": {"keep_alive": 1}}})
    with pytest.raises(ConfigError, match=r"plugins\.sse\.keep_alive: expected a number"):
        App.from_raw({"plugins": {"sse": {"keep_alive": "often"}}})


@pytest.mark.anyio
async def test_serves_an_event_stream(sse_installed: Path) -> None:
    hold = Reply(200, [("Grip-Hold", "sse"), ("Grip-Channel", "news")], b": welcome\n\n")
    config = {"plugins": {"sse": {"keep_alive": 0.2}}}
    async with run_origin(lambda r: hold) as origin:
        config["routes"] = [{"target": origin.target}]
        async with run_p8(config) as p8, httpx.AsyncClient() as client, \
                client.stream("GET", f"{p8.url}/events") as resp:
            assert resp.headers["content-type"] == "text/event-stream"
            chunks = resp.aiter_raw()
            with anyio.fail_after(5):
                assert await anext(chunks) == b": welcome\n\n"
                assert await anext(chunks) == b": keep-alive\n\n"
                bad = await publish(p8, {"channel": "news", "formats": {"sse": {"data": 1}}})
                assert bad.status_code == 400 and "'data' must be a string" in bad.text
                await publish(p8, {"channel": "news", "formats": {
                    "sse": {"data": "a\nb", "event": "tick"}}})
                got = b""
                while b"data: b\n\n" not in got:
                    got += await anext(chunks)
                assert b"event: tick\ndata: a\ndata: b\n\n" in got
                await publish(p8, {"channel": "news", "formats": {"sse": {"action": "close"}}})
                assert [c async for c in chunks if c != b": keep-alive\n\n"] == []
