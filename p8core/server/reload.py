"""Hot reload: on SIGHUP, or when the config file or its routes file changes while
``[server] reload_watch`` is on, read the config again and switch to it without dropping a
connection.

Routes and every other limit, timeout and key in ``[server]``, ``[control]``, ``[proxy]`` and
``[pubsub]`` take effect for what comes next; held connections stay, on the route they
started on. Listen addresses and ``[plugins]`` were set up at start: a change to them is
logged as a warning naming the key and waits for a restart, while the rest is applied. A
config that does not load is rejected whole, with its reason logged, and the running one
stays in force.
"""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import structlog

from ..config import Config, ConfigSection, build_config, load_raw
from ..errors import P8Error

if TYPE_CHECKING:
    from ..app import App

log = structlog.get_logger(component="reload")

Stamp = tuple[int, int, int] | None

RESTART_KEYS = (("server", "listen"), ("server", "tls_listen"), ("server", "tls_cert"),
                ("server", "tls_key"), ("server", "tls_cert_dir"), ("server", "unix_listen"),
                ("server", "unix_mode"),
                ("server", "workers"), ("server", "reuse_port"), ("server", "worker_queue"),
                ("control", "listen"), ("pubsub", "message_rate"),
                ("pubsub", "message_hwm"))
"""Keys set up once at start: the listeners, the worker processes and their sockets, the
publish rate bucket."""


def restart_keys(old: Config, new: Config) -> list[str]:
    """The keys whose change needs a restart, as ``section.key`` names."""
    changed = [f"{section}.{key}" for section, key in RESTART_KEYS
               if getattr(getattr(old, section), key) != getattr(getattr(new, section), key)]
    if old.plugins.enabled != new.plugins.enabled:
        changed.append("plugins.enabled")
    changed += [f"plugins.{name}" for name in sorted(old.plugins.sections)
                if old.plugins.sections[name] != new.plugins.sections.get(name)]
    return changed


def keep_restart_keys(old: Config, new: Config) -> Config:
    """``new`` with the start-up keys and plugin settings of ``old``."""
    kept: dict[str, dict[str, object]] = {}
    for section, key in RESTART_KEYS:
        kept.setdefault(section, {})[key] = getattr(getattr(old, section), key)
    sections = {name: dataclasses.replace(getattr(new, name), **values)
                for name, values in kept.items()}
    return dataclasses.replace(new, plugins=old.plugins, **sections)


class Reloader:
    """Reloads one app from its config file."""

    def __init__(self, app: App, path: Path) -> None:
        self.app, self.path = app, path
        self.sections: list[ConfigSection] = [s for offered in app.pm.hook.p8_config_sections()
                                              for s in offered]
        self._stamps = self._look()

    def reload(self, trigger: str) -> bool:
        """Read the file and switch to it; False (and the reason logged) when it does not
        load, leaving the running config in force."""
        old = self.app.config
        try:
            raw, source, base_dir = load_raw(self.path)
            new = build_config(raw, source, base_dir, self.sections)
            pending = restart_keys(old, new)
            self.app.reconfigure(keep_restart_keys(old, new))
        except P8Error as e:
            log.error("reload_rejected", trigger=trigger, reason=str(e))
            return False
        for key in pending:
            log.warning("reload_needs_restart", key=key,
                        hint="this change takes effect after a restart")
        log.info("reloaded", trigger=trigger, routes=len(new.routes),
                 needs_restart=pending or None)
        return True

    async def run(self) -> None:
        """Reload on every SIGHUP, and on file changes while ``reload_watch`` is on."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._on_sighup)
            tg.start_soon(self._watch)

    async def _on_sighup(self) -> None:
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                self._stamps = self._look()
                self.reload("SIGHUP")
                for passed_on in self.app.on_sighup:
                    passed_on()

    async def _watch(self) -> None:
        """Look at the files' modification times every ``reload_interval`` seconds (read
        anew each time, so turning the watch on or off is itself reloadable)."""
        while True:
            await anyio.sleep(self.app.config.server.reload_interval)
            if not self.app.config.server.reload_watch:
                continue
            stamps = self._look()
            if stamps != self._stamps:
                self._stamps = stamps
                self.reload("file changed")

    def _files(self) -> list[Path]:
        files = [self.path]
        routes_file = self.app.config.proxy.routes_file
        if routes_file:
            files.append(self.app.config.base_dir / routes_file)
        return files

    def _look(self) -> list[Stamp]:
        return [_stamp(path) for path in self._files()]


def _stamp(path: Path) -> Stamp:
    """What tells a changed file apart: modification time, size, inode (None: missing)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino
