"""The plugin system: discovery, enabling, duplicate names, bad hooks, the hook contracts."""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

import pluggy
import pytest

from p8core import HoldMode, PublishFormat, hookimpl, hookspecs
from p8core.app import App
from p8core.errors import ConfigError, PluginError
from p8core.plugins import collect_named, describe_plugins, make_plugin_manager

GRIP_PLUGINS = {"http_stream", "long_poll", "ws_over_http", "zhttp_backend", "zmq_pubsub"}


def test_every_grip_plugin_is_installed_in_group_p8() -> None:
    found = {ep.name: ep.dist.name for ep in entry_points(group="p8") if ep.dist}
    assert set(found) >= GRIP_PLUGINS
    assert found["long_poll"] == "p8-long-poll"
    assert found["zmq_pubsub"] == "p8-zmq-pubsub"


def test_all_installed_plugins_load_by_default() -> None:
    pm = make_plugin_manager(None, "p8.toml")
    assert {pm.get_name(p) for p in pm.get_plugins()} >= GRIP_PLUGINS
    assert pm.has_plugin("p8core.builtin")


def test_enabled_list_blocks_the_others() -> None:
    pm = make_plugin_manager(["long_poll"], "p8.toml")
    assert pm.has_plugin("long_poll")
    assert pm.is_blocked("http_stream")
    assert not pm.has_plugin("http_stream")
    assert pm.has_plugin("p8core.builtin"), "the essential plugin cannot be disabled"


def test_enabled_plugin_not_installed_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        make_plugin_manager(["long_poll", "nope", "also_nope"], "p8.toml")
    assert str(info.value) == "p8.toml: plugins.enabled: not installed: also_nope, nope"


def _mode(mode_name: str) -> type[HoldMode]:
    class Mode(HoldMode):
        name = mode_name
        format = "fmt"

        def start(self) -> Sequence[object]:  # type: ignore[override]
            return ()

        def on_item(self, item: object) -> Sequence[object]:  # type: ignore[override]
            return ()

    return Mode


def test_two_plugins_offering_one_hold_mode_stop_startup_naming_both() -> None:
    class First:
        @hookimpl
        def p8_register_hold_modes(self) -> list[type[HoldMode]]:
            return [_mode("stream")]

    class Second:
        @hookimpl
        def p8_register_hold_modes(self) -> list[type[HoldMode]]:
            return [_mode("stream")]

    pm = pluggy.PluginManager("p8")
    pm.add_hookspecs(hookspecs)
    pm.register(First(), name="first")
    pm.register(Second(), name="second")
    with pytest.raises(PluginError, match="hold mode 'stream' is registered by both "
                                          "'first' and 'second'"):
        collect_named(pm, "p8_register_hold_modes", lambda m: [m.name], "hold mode",
                      config=None)


def test_duplicate_format_is_reported_through_the_app() -> None:
    class Fmt(PublishFormat):
        name = "twice"

        def parse(self, raw: object, where: str) -> object:  # type: ignore[override]
            return raw

    class Doubler:
        @hookimpl
        def p8_register_formats(self) -> list[PublishFormat]:
            return [Fmt(), Fmt()]

    with pytest.raises(PluginError, match="format 'twice' is registered by both"):
        App.from_raw({}, plugins=[Doubler()])


def test_a_misspelt_hook_is_a_plugin_error() -> None:
    class Typo:
        @hookimpl
        def p8_register_hold_mode(self) -> list[object]:
            return []

    pm = pluggy.PluginManager("p8")
    pm.add_hookspecs(hookspecs)
    pm.register(Typo(), name="typo")
    with pytest.raises(pluggy.PluginValidationError, match="p8_register_hold_mode"):
        pm.check_pending()


def test_describe_plugins_lists_distribution_version_and_offers() -> None:
    app = App.from_raw({"plugins": {"enabled": ["long_poll"]}})
    infos = {i.name: i for i in describe_plugins(app.pm, app.config)}
    assert infos["p8core.builtin"].registers["p8_register_connectors"] == (
        "scheme http", "scheme https", "scheme test")
    assert infos["long_poll"].distribution == "p8-long-poll"
    assert infos["long_poll"].version == "0.1.0"
    assert infos["long_poll"].enabled
    assert not infos["http_stream"].enabled


SPECS = [name for name in dir(hookspecs) if name.startswith("p8_")]


@pytest.mark.parametrize("spec", SPECS)
def test_hook_spec_docstring_names_every_parameter(spec: str) -> None:
    func = getattr(hookspecs, spec)
    doc = inspect.getdoc(func) or ""
    assert doc, f"{spec} has no docstring"
    for param in inspect.signature(func).parameters:
        assert param in doc, f"{spec}'s docstring does not mention {param!r}"


def test_every_hook_spec_has_a_test() -> None:
    names = set()
    for path in [*Path(__file__).parent.glob("test_*.py"),
                 *Path(__file__).parent.parent.glob("plugins/*/tests/test_*.py")]:
        names |= set(re.findall(r"def (test_hook_p8_\w+)", path.read_text()))
    missing = [s for s in SPECS if f"test_hook_{s}" not in names]
    assert not missing, f"hooks without a test_hook_<spec> test: {missing}"
