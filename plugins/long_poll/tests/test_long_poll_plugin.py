"""The plugin as p8 loads it: its entry point, what it registers, its config table."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from p8_long_poll.format import HttpResponseFormat
from p8_long_poll.hold import ResponseHold

from p8core import ConfigError
from p8core.app import App


def test_installed_under_its_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="p8") if ep.name == "long_poll"]
    assert ep.value == "p8_long_poll.plugin"


def test_registers_the_response_mode_and_the_http_response_format() -> None:
    app = App.from_raw({"plugins": {"enabled": ["long_poll"]}})
    assert app.hold_modes["response"] is ResponseHold
    assert isinstance(app.formats["http-response"], HttpResponseFormat)
    assert ResponseHold.linger and ResponseHold.format == "http-response"


def test_timeout_scale() -> None:
    app = App.from_raw({"plugins": {"enabled": ["long_poll"],
                                    "long_poll": {"timeout_scale": 0.5}}})
    mode = app.hold_modes["response"]
    assert issubclass(mode, ResponseHold) and mode.timeout_scale == 0.5
    assert ResponseHold.timeout_scale == 1.0


@pytest.mark.parametrize(("table", "message"), [
    ({"timeout_scale": 0}, "p8.toml: plugins.long_poll.timeout_scale: must be greater than 0"),
    ({"timeout_scale": -1}, "p8.toml: plugins.long_poll.timeout_scale: must not be negative"),
    ({"timeout_scale": "fast"}, "p8.toml: plugins.long_poll.timeout_scale: expected a number"),
    ({"min_timeout": 1}, "p8.toml: plugins.long_poll.min_timeout: unknown key"),
])
def test_config_errors_name_the_file_and_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        App.from_raw({"plugins": {"enabled": ["long_poll"], "long_poll": table}}, "p8.toml")
    assert str(info.value).startswith(message)
