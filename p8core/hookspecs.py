"""Every hook p8 calls: the whole extension surface of the core.

Hooks are synchronous and register things; the async work lives in what they return, run
by the core in its own task group. Names offered through the ``p8_register_*`` hooks are
unique across plugins: an offer made twice stops start-up with a PluginError naming both.
Call hooks by keyword; an implementation may take any subset of a spec's arguments.
"""

# Specs have no bodies: pluggy only reads their signatures and docstrings.
# mypy: disable-error-code="empty-body"
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .app import App
    from .commands import Command
    from .config import Config, ConfigSection
    from .connector import Connector
    from .hold import Hold, HoldMode
    from .pubsub.items import PublishFormat, PublishItem
    from .transport import ClientTransport

hookspec = pluggy.HookspecMarker("p8")
hookimpl = pluggy.HookimplMarker("p8")

Service = Callable[[], Awaitable[None]]


# ---- start-up, before the config file is read -------------------------------------------

@hookspec(historic=True)
def p8_add_hookspecs(pluginmanager: pluggy.PluginManager) -> None:
    """Add hookspecs of a plugin's own, so that other plugins can extend it.

    Called once the enabled plugins are registered, before their hooks are checked: a
    plugin calls ``pluginmanager.add_hookspecs(module)`` with a module of ``@hookspec``
    functions (marked with ``pluggy.HookspecMarker("p8")``), and other plugins implement
    them with ``@hookimpl`` as they do the core's. Historic: a plugin registered later
    is called too.

    :param pluginmanager: the application's plugin manager.
    """


@hookspec
def p8_config_sections() -> Sequence[ConfigSection]:
    """Declare the ``[plugins.<name>]`` tables this plugin owns.

    Called once, before the config file is parsed. Each ``ConfigSection`` names its table
    and a parser that turns the raw TOML table into a frozen dataclass or raises
    ``ConfigError``; the result is available as ``config.plugins.section(name)``. A table
    that no enabled plugin declares is a config error.
    """


# ---- start-up, after the config is loaded (called once each, in this order) -------------

@hookspec
def p8_register_hold_modes(config: Config) -> Sequence[type[HoldMode]]:
    """Offer hold modes, keyed by ``HoldMode.name`` (the ``Grip-Hold`` value). Called at
    start and again after each reload; exchanges held then keep the class they started with.

    :param config: the loaded configuration, for plugin settings.
    :returns: ``HoldMode`` subclasses; a name offered by two plugins stops start-up.
    """


@hookspec
def p8_register_formats(config: Config) -> Sequence[PublishFormat]:
    """Offer publish formats, keyed by ``PublishFormat.name`` (a key of ``formats``).

    Each published item's format is parsed once by the instance offered here.

    :param config: the loaded configuration, for plugin settings.
    :returns: ``PublishFormat`` instances; a name offered by two plugins stops start-up.
    """


@hookspec
def p8_register_connectors(config: Config) -> Sequence[type[Connector]]:
    """Offer backend connectors, keyed by each of ``Connector.schemes``.

    A route's target selects its connector by scheme (``http``, ``test``, ...); the core
    builds one instance per distinct target.

    :param config: the loaded configuration, for plugin settings.
    :returns: ``Connector`` subclasses; a scheme offered by two plugins stops start-up.
    """


@hookspec
def p8_register_transports(config: Config) -> Sequence[ClientTransport]:
    """Offer client transports that may claim a request before it is proxied.

    Each client request is shown to the transports in registration order; the first whose
    ``claims`` answers true takes over the connection (a WebSocket upgrade, say).

    :param config: the loaded configuration, for plugin settings.
    :returns: ``ClientTransport`` instances; a ``name`` offered twice stops start-up.
    """


@hookspec
def p8_register_commands(config: Config) -> Sequence[Command]:
    """Offer commands, keyed by ``Command.name`` (a command socket method such as
    ``refresh``).

    Whatever serves commands (the ZeroMQ command socket) calls ``Command.run`` with the
    running app and the call's arguments; the core offers ``recover``, ``conncheck`` and
    ``publish``.

    :param config: the loaded configuration, for plugin settings.
    :returns: ``Command`` instances; a name offered by two plugins stops start-up.
    """


@hookspec
def p8_configure(app: App) -> None:
    """The application is built: set up per-application state, attach to ``app.hub``,
    check settings that span several tables.

    Called once per :class:`App`, before anything listens (``p8 check`` calls it too);
    ``app.role`` is not yet known. A plugin may register a per-application object of
    ``@hookimpl`` methods with ``app.pm.register``. Raising ``ConfigError`` stops start-up.

    :param app: the application: config, hub, metrics, plugin manager.
    """


# ---- running -----------------------------------------------------------------------------

@hookspec
def p8_hold_replay(app: App, hold: Hold, format: str) -> Sequence[PublishItem]:
    """Offer items a hold missed, delivered to it at once when it starts.

    Called as each hold starts, before its mode is built. The items go to the exchange in
    order (each offer after the other), right after the mode's ``start`` actions and
    before anything published later; ``format`` is the one the hold's mode takes. An item
    of a channel with a ``prev-id`` must follow it as a live item would (its ``prev-id``
    equal to the id before it). A channel with items offered here counts as up to date
    for the mode: its ``Hold.last_ids`` entry is ``None``.

    :param app: the running application.
    :param hold: the instruction, the client request and the route of the new hold.
    :param format: the publish format the hold takes (``http-stream``, ...).
    :returns: the items to deliver, oldest first; none when there is nothing to replay.
    """


@hookspec
def p8_services(app: App) -> Sequence[Service]:
    """Offer long-running async callables started with the server (inputs, timers).

    Called once the listeners are bound; each callable runs in the server's task group until
    shutdown cancels it. One that raises ``P8Error`` stops the server with that message.
    With ``[server] workers``, this is called in the supervisor and in every worker:
    ``app.role.takes_publishes`` says where publish inputs belong (the supervisor),
    ``app.role.serves_clients`` where what serves client requests does (each worker).

    :param app: the running application: hub, config, ``app.publish(...)``, metrics, role.
    :returns: zero-argument async callables.
    """
