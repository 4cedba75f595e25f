"""The plugin off by default, its settings checked at start-up, and stores offered by
other plugins through ``p8_history_stores``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import pytest
from p8_history.memory import MemoryStore
from p8_history.store import HistoryStore
from p8_history.testing import Publisher, reconnect

from p8core import ConfigError, PluginError, PublishItem, hookimpl
from p8core.app import App
from p8core.testing import run_p8

pytestmark = pytest.mark.anyio


async def resumed_ids(raw: Mapping[str, Any], plugins: tuple[object, ...] = ()) -> list[int]:
    """Publish 1-10 with nobody listening, reconnect with ``Last-Event-ID: 5`` to the
    built-in test stream, publish 11: the ids the stream gets."""
    async with run_p8(raw, plugins=plugins) as p8, httpx.AsyncClient(timeout=10) as client:
        pub = Publisher(p8)
        await pub.batch(10)
        return await reconnect(p8, client, "/stream?channel=events", "5", pub)


@pytest.mark.parametrize("raw", [{}, {"plugins": {"history": {"max_items": 0}}}],
                         ids=["no table", "max_items = 0"])
async def test_without_max_items_nothing_is_kept_or_replayed(raw: dict[str, Any]) -> None:
    assert await resumed_ids(raw) == [11]
    app = App.from_raw(raw)
    assert app.hub.on_sent == []
    assert app.pm.get_plugin("history.store") is None


async def test_with_max_items_the_missed_items_come_first() -> None:
    assert await resumed_ids({"plugins": {"history": {"max_items": 10}}}) == \
        [6, 7, 8, 9, 10, 11]


@pytest.mark.parametrize(("table", "key", "problem"), [
    ({"max_items": -1}, "plugins.history.max_items", "must not be negative"),
    ({"max_items": "10"}, "plugins.history.max_items", "expected an integer"),
    ({"max_bytes": 0}, "plugins.history.max_bytes", "must be at least 1"),
    ({"max_channels": 0}, "plugins.history.max_channels", "must be at least 1"),
    ({"max_age": -5}, "plugins.history.max_age", "must not be negative"),
    ({"size": 3}, "plugins.history.size", "unknown key"),
    ({"store": ""}, "plugins.history.store", "must name a history store"),
    ({"max_items": 5, "store": "redis"}, "plugins.history.store",
     "no enabled plugin offers a history store 'redis' (offered: memory)"),
])
def test_bad_settings_stop_start_up(table: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        App.from_raw({"plugins": {"history": table}}, "p8.toml")
    assert (e.value.source, e.value.key) == ("p8.toml", key)
    assert problem in e.value.problem


def test_history_needs_a_single_process() -> None:
    with pytest.raises(ConfigError) as e:
        App.from_raw({"server": {"workers": 2}, "plugins": {"history": {"max_items": 5}}},
                     "p8.toml")
    assert str(e.value).startswith("p8.toml: server.workers: [plugins.history]")
    App.from_raw({"server": {"workers": 2}, "plugins": {"history": {"max_items": 0}}})


class CountingStore(MemoryStore):
    """The memory store, counting what it is given."""

    name = "counting"
    appended: ClassVar[list[PublishItem]] = []

    def append(self, item: PublishItem, now: float) -> None:
        self.appended.append(item)
        super().append(item, now)


class Stores:
    """A plugin offering stores."""

    def __init__(self, *stores: type[HistoryStore]) -> None:
        self.stores = stores

    @hookimpl
    def p8_history_stores(self) -> list[type[HistoryStore]]:
        return list(self.stores)


async def test_a_store_offered_by_another_plugin_is_selected_by_name() -> None:
    CountingStore.appended = []
    raw = {"plugins": {"history": {"max_items": 10, "store": "counting"}}}
    assert await resumed_ids(raw, (Stores(CountingStore),)) == [6, 7, 8, 9, 10, 11]
    assert [i.id for i in CountingStore.appended] == [str(n) for n in range(1, 12)]


def test_two_stores_of_one_name_stop_start_up() -> None:
    class Twin(MemoryStore):
        name = "memory"

    with pytest.raises(PluginError, match="history store 'memory' is registered by both"):
        App.from_raw({"plugins": {"history": {"max_items": 10}}}, plugins=[Stores(Twin)])
