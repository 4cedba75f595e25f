"""The application object: configuration, plugins and shared state of one p8 process."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import pluggy
import structlog

from .config import Config, ConfigSection, build_config, enabled_plugins, load_raw
from .connector import Connector, target_scheme
from .errors import ConfigError, PublishError
from .grip.sig import Signer, Verifier
from .hold import HoldMode
from .metrics import Metrics
from .plugins import collect_named, make_plugin_manager
from .proxy.routes import Route, Router
from .pubsub.hub import Hub
from .pubsub.items import PublishFormat, PublishItem, parse_publish_body
from .server.held import HeldExchange
from .server.listeners import tls_context
from .server.publish_auth import PublishAuth, load_verifier
from .transport import ClientTransport

if TYPE_CHECKING:
    from .server.connection import HttpConnection
    from .server.proxying import Proxy
    from .server.timers import TimerWheel

log = structlog.get_logger(component="app")

FIRST_SUBSCRIPTION_DELAY = 1.0


class Role(enum.Enum):
    """The part of p8 one process plays: all of it, or one side of ``[server] workers``."""

    SINGLE = "single"
    SUPERVISOR = "supervisor"
    """The control API, the publish inputs and the workers; no client listeners."""
    WORKER = "worker"
    """Client listeners and held connections; publishes arrive from the supervisor."""

    @property
    def serves_clients(self) -> bool:
        return self is not Role.SUPERVISOR

    @property
    def takes_publishes(self) -> bool:
        return self is not Role.WORKER


class Forwarder(Protocol):
    """Where a supervisor's accepted publishes go instead of its own hub: its workers."""

    def forward(self, items: Sequence[PublishItem]) -> None:
        """Pass items on, in order, each to every worker that listens to its channel."""
        ...

    def recover(self) -> None:
        """Run the recover command in every worker."""
        ...


class App:
    """One p8 process: the loaded config, what the plugins registered, the hub.

    Built by :meth:`from_file` (or :meth:`from_raw`); every registration problem is raised
    here, before anything listens.
    """

    def __init__(self, config: Config, pm: pluggy.PluginManager) -> None:
        self.config, self.pm = config, pm
        self.hold_modes: Mapping[str, type[HoldMode]]
        self.formats: Mapping[str, PublishFormat] = collect_named(
            pm, "p8_register_formats", lambda f: [f.name], "format", config=config)
        self.connector_types: Mapping[str, type[Connector]] = collect_named(
            pm, "p8_register_connectors", lambda c: c.schemes, "scheme", config=config)
        self.transports: list[ClientTransport] = list(collect_named(
            pm, "p8_register_transports", lambda t: [t.name], "transport",
            config=config).values())
        self.connectors: dict[tuple[str, Hashable], Connector] = {}
        self.config_path: Path | None = None
        """The file the config came from (what a reload reads); None for none."""
        self.hub = Hub()
        self.role = Role.SINGLE
        self.router: Router
        self.signer: Signer | None
        self.verifier: Verifier | None
        self.publish_auth: PublishAuth | None
        self._route_signers: dict[tuple[str, str], Signer] = {}
        self.reconfigure(config)
        self.tls = tls_context(config)
        self.metrics = Metrics()
        self.held: set[HeldExchange] = set()
        self.clients: set[HttpConnection] = set()
        """Open client connections (the server adds and removes them)."""
        self.forwarder: Forwarder | None = None
        self.on_sighup: list[Callable[[], None]] = []
        """Called on each SIGHUP once this process has reloaded (a supervisor passes the
        signal on to its workers)."""
        self.control_views: dict[str, Callable[[], object]] = {}
        """Read-only JSON answers of the control API by path (``GET /workers``)."""
        self.clock: Callable[[], float] = time.monotonic
        self.spawn: Callable[..., Any] = _not_running
        self._http_client: httpx.AsyncClient | None = None
        self.proxy: Proxy
        self.timers: TimerWheel

    @classmethod
    def from_file(cls, path: Path | None) -> App:
        """Load ``path`` (or the defaults), the enabled plugins, and check it all.

        :raises P8Error: a config or plugin problem, with file and key.
        """
        raw, source, base_dir = load_raw(path)
        app = cls.from_raw(raw, source, base_dir)
        app.config_path = path
        return app

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], source: str = "<config>",
                 base_dir: Path = Path("."), plugins: Sequence[object] = ()) -> App:
        """Like :meth:`from_file` for an already-parsed TOML document.

        :param plugins: plugin objects to register besides the installed ones.
        """
        pm = make_plugin_manager(enabled_plugins(raw, source), source, plugins)
        sections: list[ConfigSection] = [s for offered in pm.hook.p8_config_sections()
                                         for s in offered]
        return cls(build_config(raw, source, base_dir, sections), pm)

    def reconfigure(self, config: Config) -> None:
        """Check what ``config`` derives (routes, keys), then switch to it all at once.

        On a reload, routes, limits and keys apply to what comes next; exchanges held now
        keep the route they started on. Listeners and plugins were set up at start: the
        caller keeps those parts of ``config`` as they were.

        :raises ConfigError: a route target or a key cannot be used; nothing changed.
        """
        for route in config.routes:
            for target in route.targets:
                if target_scheme(target) not in self.connector_types:
                    raise ConfigError(route.source or config.source, "target",
                                      f"no enabled plugin handles targets like {target!r}")
        proxy = config.proxy
        signer = _signer(config, proxy.sig_iss, proxy.sig_key, "proxy.sig_key")
        route_signers = {(r.sig_iss, r.sig_key): _signer(config, r.sig_iss, r.sig_key,
                                                         "sig_key", r.source)
                         for r in config.routes if r.sig_iss and r.sig_key}
        verifier = (load_verifier(proxy.upstream_key, config, "proxy.upstream_key")
                    if proxy.upstream_key else None)
        publish_auth = PublishAuth.from_config(config)
        router = Router(config.routes)
        hold_modes: Mapping[str, type[HoldMode]] = collect_named(
            self.pm, "p8_register_hold_modes", lambda m: [m.name], "hold mode", config=config)
        self.config, self.router, self.hold_modes = config, router, hold_modes
        self.signer, self.verifier, self.publish_auth = signer, verifier, publish_auth
        self._route_signers = {k: v for k, v in route_signers.items() if v is not None}
        pubsub = config.pubsub
        # A worker's supervisor drops repeated ids, once for all its workers.
        self.hub.id_cache_ttl = 0 if self.role is Role.WORKER else pubsub.id_cache_ttl
        self.hub.message_wait = pubsub.message_wait / 1000
        self.hub.subscription_linger = pubsub.subscription_linger

    def route_signer(self, iss: str | None, key: str | None) -> Signer | None:
        """The signer for a route: its own when it sets both ``sig_iss`` and ``sig_key``."""
        if iss and key:
            found = self._route_signers.get((iss, key))
            return found or _signer(self.config, iss, key, "sig_key")
        return self.signer

    def http_client(self) -> httpx.AsyncClient:
        """A shared httpx client for requests off the hot path (links to other origins)."""
        if self._http_client is None:
            self._http_client = httpx.AsyncClient()
        return self._http_client

    async def aclose(self) -> None:
        """Release connectors and clients; called once at shutdown."""
        for connector in self.connectors.values():
            await connector.aclose()
        if self._http_client is not None:
            await self._http_client.aclose()

    def connector(self, target: str, route: Route | None = None) -> Connector:
        """The connector for ``target`` with ``route``'s connection options, built on first
        use and shared by every route with the same target and options."""
        kind = self.connector_types[target_scheme(target)]
        key = (target, kind.options(route))
        found = self.connectors.get(key)
        if found is None:
            found = kind.open(target, route)
            self.connectors[key] = found
        return found

    # ---- publishing ---------------------------------------------------------------------

    def publish_body(self, body: bytes) -> int:
        """Parse and publish a control-API body; all items or none.

        :returns: the number of items published.
        :raises PublishError: the body or an item is invalid; nothing was published.
        """
        try:
            parsed = parse_publish_body(body, self.formats)
        except PublishError:
            self.metrics.publishes_rejected += 1
            raise
        self.metrics.formats_ignored += parsed.ignored_formats
        self.publish(parsed.items)
        return len(parsed.items)

    def publish_item(self, raw: object, *, channel: str | None = None) -> None:
        """Validate and publish one decoded item (the ZeroMQ inputs' path).

        :param channel: overrides the item's own channel (the SUB input's first frame).
        :raises PublishError: the item is invalid; nothing was published.
        """
        try:
            item, ignored = PublishItem.from_json(raw, self.formats, channel=channel)
        except PublishError:
            self.metrics.publishes_rejected += 1
            raise
        self.metrics.formats_ignored += ignored
        self.publish([item])

    def publish(self, items: tuple[PublishItem, ...] | list[PublishItem]) -> None:
        """Hand already-parsed items to the hub (a supervisor: to its workers), in order."""
        if self.forwarder is not None:
            self.forwarder.forward(items)
        else:
            now = self.clock()
            for item in items:
                self.hub.publish(item, now)
        self.metrics.publishes_accepted += 1
        self.metrics.items_published += len(items)

    def first_subscription(self, channel: str) -> None:
        """A channel got its first subscriber: refresh its exchanges a second later, so a
        publish made before the subscription existed is not lost (grip.md §7.3)."""
        self.timers.arm(("first-subscription", channel), FIRST_SUBSCRIPTION_DELAY,
                        lambda: self._update_channel(channel))

    def _update_channel(self, channel: str) -> None:
        for exchange in self.hub.subscribers(channel):
            if isinstance(exchange, HeldExchange):
                exchange.update()

    def recover(self) -> None:
        """Forget every channel's last id and refresh every held exchange (``/recover``)."""
        if self.forwarder is not None:
            self.forwarder.recover()
            return
        self.hub.clear_last_ids()
        for exchange in list(self.held):
            exchange.update()


def _signer(config: Config, iss: str, key: str, what: str, source: str = "") -> Signer | None:
    """The signer for ``key`` as written in ``source`` (default: the config file) at
    ``what``; ``None`` for no key."""
    if not key:
        return None
    try:
        return Signer(iss, key, base_dir=config.base_dir)
    except ValueError as e:
        raise ConfigError(source or config.source, what, str(e)) from None


def _not_running(*args: object) -> None:
    raise RuntimeError("the app is not being served")
