"""Finding, enabling and checking plugins; collecting what they register.

One ``pluggy.PluginManager`` per application, never a module-level one. Plugins are found
through entry points of group ``p8``; the built-in plugin is always registered.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar, cast

import pluggy

from . import builtin, hookspecs
from .errors import ConfigError, PluginError

T = TypeVar("T")

BUILTIN = "p8core.builtin"


def make_plugin_manager(enabled: Sequence[str] | None, source: str,
                        extra: Sequence[object] = ()) -> pluggy.PluginManager:
    """A plugin manager with the built-in plugin and the enabled installed plugins.

    :param enabled: entry-point names to load; ``None`` loads every installed plugin.
    :param source: the config file, for messages.
    :param extra: plugin objects registered as well (embedding p8, tests).
    :raises ConfigError: an enabled name is not installed.
    :raises PluginError: a plugin fails to import or implements an unknown ``p8_*`` hook.
    """
    pm = pluggy.PluginManager("p8")
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name=BUILTIN)
    installed = {ep.name for ep in entry_points(group="p8")}
    if enabled is not None:
        if missing := sorted(set(enabled) - installed):
            raise ConfigError(source, "plugins.enabled", f"not installed: {', '.join(missing)}")
        for name in installed - set(enabled):
            pm.set_blocked(name)
    try:
        pm.load_setuptools_entrypoints("p8")
        for plugin in extra:
            pm.register(plugin, name=getattr(plugin, "__name__", type(plugin).__name__))
        pm.hook.p8_add_hookspecs.call_historic(kwargs={"pluginmanager": pm})
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginError(f"plugin {pm.get_name(e.plugin)!r}: {e}") from None
    except ImportError as e:
        raise PluginError(f"a plugin failed to import: {e}") from None
    if os.environ.get("P8_TRACE_HOOKS"):
        pm.trace.root.setwriter(print)
        pm.enable_tracing()
    return pm


def collect_named(pm: pluggy.PluginManager, hook: str, key: Callable[[T], Iterable[str]],
                  what: str, **kwargs: Any) -> dict[str, T]:
    """Call a ``p8_register_*`` hook and index its offers by name.

    :param key: the names an offer is registered under (a hold mode's name, a connector's
        schemes).
    :param what: what a name is, for messages ("hold mode", "scheme").
    :raises PluginError: two plugins offer the same name.
    """
    caller = getattr(pm.hook, hook)
    found: dict[str, tuple[T, str]] = {}
    for impl in caller.get_hookimpls():
        owner = impl.plugin_name
        result = impl.function(**{a: kwargs[a] for a in impl.argnames})
        for offer in result or ():
            for name in key(offer):
                if name in found:
                    raise PluginError(
                        f"{what} {name!r} is registered by both {found[name][1]!r} and {owner!r}")
                found[name] = (offer, owner)
    return {name: offer for name, (offer, _) in found.items()}


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What ``p8 plugins`` shows about one plugin."""

    name: str
    distribution: str
    version: str
    enabled: bool
    registers: Mapping[str, tuple[str, ...]]


def describe_plugins(pm: pluggy.PluginManager, config: Any) -> list[PluginInfo]:
    """Every installed plugin (enabled or not) and, when enabled, what it registers."""
    offers: dict[str, dict[str, tuple[str, ...]]] = {}
    hooks: dict[str, Callable[[Any], Iterable[str]]] = {
        "p8_register_hold_modes": lambda o: [f"hold mode {o.name}"],
        "p8_register_formats": lambda o: [f"format {o.name}"],
        "p8_register_connectors": lambda o: [f"scheme {s}" for s in o.schemes],
        "p8_register_transports": lambda o: [f"transport {o.name}"],
        "p8_register_commands": lambda o: [f"command {o.name}"],
    }
    for hook, label in hooks.items():
        for impl in getattr(pm.hook, hook).get_hookimpls():
            result = impl.function(**{a: {"config": config}[a] for a in impl.argnames})
            names = tuple(n for o in result or () for n in label(o))
            offers.setdefault(impl.plugin_name, {})[hook] = names
    for impl in pm.hook.p8_services.get_hookimpls():
        offers.setdefault(impl.plugin_name, {})["p8_services"] = ("services",)
    for impl in pm.hook.p8_config_sections.get_hookimpls():
        sections = cast(Iterable[Any], impl.function())
        names = tuple(f"[plugins.{s.name}]" for s in sections)
        offers.setdefault(impl.plugin_name, {})["p8_config_sections"] = names
    infos = [PluginInfo(BUILTIN, "p8core", _version("p8core"), True, offers.get(BUILTIN, {}))]
    for ep in sorted(entry_points(group="p8"), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        infos.append(PluginInfo(ep.name, dist, version, not pm.is_blocked(ep.name),
                                offers.get(ep.name, {})))
    return infos


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)
