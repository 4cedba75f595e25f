"""Hook wiring of the history plugin: keep what the hub sends, replay it at hold start."""

from __future__ import annotations

from collections.abc import Sequence

import pluggy
import structlog

from p8core import ConfigError, ConfigSection, Hold, PublishItem, hookimpl
from p8core.app import App
from p8core.plugins import collect_named

from . import hookspecs
from .memory import MemoryStore
from .resume import resume
from .settings import HistorySettings, parse_settings
from .store import HistoryStore

log = structlog.get_logger(component="history")


class History:
    """The history of one app: records every item its hub sends, replays at hold start.

    Registered with the app's plugin manager by :func:`p8_configure` when history is on.
    """

    def __init__(self, app: App, store: HistoryStore, settings: HistorySettings) -> None:
        self.app, self.store, self.settings = app, store, settings

    def record(self, item: PublishItem) -> None:
        """The hub sent ``item`` (its ``on_sent``)."""
        self.store.append(item, self.app.clock())

    @hookimpl
    def p8_hold_replay(self, hold: Hold, format: str) -> list[PublishItem]:
        found = resume(self.store, hold, format, self.app.clock(),
                       use_last_event_id=self.settings.last_event_id)
        events = self.app.telemetry.plugin_events
        if found.served:
            events.add(("history", "replay_served"), found.served)
        if found.missed:
            events.add(("history", "replay_missed"), found.missed)
        if found.served or found.missed:
            log.debug("history_resume", peer=hold.request.peer, items=len(found.items),
                      served=found.served, missed=found.missed)
        return found.items


@hookimpl
def p8_config_sections() -> list[ConfigSection]:
    return [ConfigSection("history", parse_settings)]


@hookimpl
def p8_add_hookspecs(pluginmanager: pluggy.PluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def p8_history_stores() -> Sequence[type[HistoryStore]]:
    return [MemoryStore]


@hookimpl
def p8_configure(app: App) -> None:
    """Turn history on when ``max_items`` asks for it; otherwise do nothing at all."""
    config = app.config
    settings: HistorySettings = config.plugins.section("history")
    if not settings.max_items:
        return
    if config.server.worker_count > 1:
        raise ConfigError(config.source, "server.workers",
                          "[plugins.history] keeps what one process sent: it needs "
                          "workers = 1 (or max_items = 0)")
    stores: dict[str, type[HistoryStore]] = collect_named(
        app.pm, "p8_history_stores", lambda s: [s.name], "history store", config=config)
    kind = stores.get(settings.store)
    if kind is None:
        raise ConfigError(config.source, "plugins.history.store",
                          f"no enabled plugin offers a history store {settings.store!r} "
                          f"(offered: {', '.join(sorted(stores))})")
    history = History(app, kind(settings), settings)
    app.hub.on_sent.append(history.record)
    app.pm.register(history, name="history.store")
