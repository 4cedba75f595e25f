"""Route options that change what p8 does around a request: signing keys, log levels."""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

from p8core.app import App
from p8core.errors import ConfigError
from p8core.testing import run_p8

pytestmark = pytest.mark.anyio


def test_a_bad_route_sig_key_stops_start_up_naming_the_route() -> None:
    config = {"routes": [{"target": "test", "sig_iss": "me", "sig_key": "file:missing.pem"}]}
    with pytest.raises(ConfigError) as info:
        App.from_raw(config, "p8.toml")
    assert (info.value.source, info.value.key) == ("p8.toml: routes[0]", "sig_key")


async def test_route_log_level_sets_the_level_of_its_request_lines() -> None:
    config = {"plugins": {"enabled": []},
              "routes": [{"path_prefix": "/health", "target": "test", "log_level": "debug"},
                         {"target": "test"}]}
    async with run_p8(config) as p8, httpx.AsyncClient() as client:
        with capture_logs() as logs:
            await client.get(f"{p8.url}/health")
            await client.get(f"{p8.url}/")
    levels = [(e["path"], e["log_level"]) for e in logs if e["event"] == "request"]
    assert levels == [("/health", "debug"), ("/", "info")]


def test_a_route_signer_outlives_its_route_until_the_next_reload() -> None:
    app = App.from_raw({"routes": [{"target": "test", "sig_iss": "me", "sig_key": "s1"}]})
    signer = app.route_signer("me", "s1")
    assert signer is not None and signer is app.route_signer("me", "s1")
    # A reload drops the route; an exchange held from before still signs its requests,
    # with one signer built for it, not one per request.
    app.reconfigure(App.from_raw({"routes": [{"target": "test"}]}).config)
    kept = app.route_signer("me", "s1")
    assert kept is not None and kept is app.route_signer("me", "s1")
    assert app.route_signer(None, None) is app.signer
