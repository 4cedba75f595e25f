"""The application object: configuration, plugins and shared state of one p8 process."""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import httpx
import pluggy
import structlog

from .commands import Command
from .config import Config, ConfigSection, build_config, enabled_plugins, load_raw
from .connector import Connector, target_scheme
from .errors import ConfigError, PublishBusy, PublishError
from .grip.sig import Signer, Verifier
from .hold import HoldMode
from .metrics import Metrics
from .observe.endpoints import observation_views
from .observe.telemetry import Telemetry
from .plugins import collect_named, make_plugin_manager
from .proxy.routes import Route, Router
from .pubsub.feedback import Feedback
from .pubsub.hub import Hub
from .pubsub.items import (
    ParsedPublish,
    PublishFormat,
    PublishItem,
    parse_items,
    parse_publish_body,
)
from .pubsub.rate import DeliveryRate
from .server.held import HeldExchange
from .server.listeners import tls_context
from .server.publish_auth import PublishAuth, load_verifier
from .server.views import ControlView, channel_view
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
        self.commands: Mapping[str, Command] = collect_named(
            pm, "p8_register_commands", lambda c: [c.name], "command", config=config)
        self.connectors: dict[tuple[str, Hashable], Connector] = {}
        self.config_path: Path | None = None
        """The file the config came from (what a reload reads); None for none."""
        self.hub: Hub = Hub()
        self.role = Role.SINGLE
        self.router: Router
        self.signer: Signer | None
        self.verifier: Verifier | None
        self.publish_auth: PublishAuth | None
        self._route_signers: dict[tuple[str, str], Signer] = {}
        self.reconfigure(config)
        self.tls = tls_context(config)
        self.metrics: Metrics = Metrics()
        self.telemetry = Telemetry()
        pubsub = config.pubsub
        self.rate = (DeliveryRate(pubsub.message_rate, pubsub.message_hwm)
                     if pubsub.message_rate else None)
        self._rate_wakeup: anyio.Event | None = None
        self.held: set[HeldExchange] = set()
        self.clients: set[HttpConnection] = set()
        """Open client connections (the server adds and removes them)."""
        self.forwarder: Forwarder | None = None
        self.on_sighup: list[Callable[[], None]] = []
        """Called on each SIGHUP once this process has reloaded (a supervisor passes the
        signal on to its workers)."""
        self.worker_metrics: Callable[[], dict[str, str]] | None = None
        """A supervisor's: the Prometheus text each worker last reported, by worker."""
        self.control_views: dict[str, ControlView] = {
            **observation_views(self),
            "/channels/": channel_view(self.hub, lambda: self.forwarder is not None)}
        """The control API's answers to ``GET``, by path (see ``server/views.py``)."""
        self.clock: Callable[[], float] = time.monotonic
        self.spawn: Callable[..., Any] = _not_running
        self._http_client: httpx.AsyncClient | None = None
        self.proxy: Proxy
        self.timers: TimerWheel
        pm.hook.p8_configure(app=self)

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
            # Not found: a route a reload removed, for an exchange held since. Its signer is
            # built once and kept until the next reload rebuilds the table from the routes.
            found = (self._route_signers.get((iss, key))
                     or _signer(self.config, iss, key, "sig_key"))
            if found is not None:
                self._route_signers[(iss, key)] = found
            return found
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

    def publish_body(self, body: bytes, feedback: Feedback | None = None) -> int:
        """Parse and publish a control-API body; all items or none.

        :param feedback: filled in with what happened to each item (verbose answers).
        :returns: the number of items published.
        :raises PublishError: the body or an item is invalid, or (``PublishBusy``) too
            many deliveries are waiting; nothing was published.
        """
        return self._publish_all(lambda: parse_publish_body(body, self.formats), "http",
                                 "Invalid format: ", feedback)

    def publish_items(self, raws: object, *, input: str,
                      feedback: Feedback | None = None) -> int:
        """Validate and publish a decoded ``items`` list (see ``from_tnetstring``); all
        items or none.

        :param input: where the items came from, for metrics (``command``).
        :param feedback: filled in with what happened to each item.
        :returns: the number of items published.
        :raises PublishError: ``Invalid format: ...``; nothing was published.
        """
        return self._publish_all(lambda: parse_items(raws, self.formats), input,
                                 "Invalid format: ", feedback)

    def _publish_all(self, parse: Callable[[], ParsedPublish], input: str,
                     prefix: str, feedback: Feedback | None = None) -> int:
        """Parse and check (counting a rejection), then publish what was parsed.

        :param prefix: starts the reason of a refused channel name, as the input words it.
        """
        received = time.perf_counter()
        try:
            parsed = parse()
            self._check_channels(parsed.items, prefix)
        except PublishError:
            self.metrics.publishes_rejected += 1
            raise
        self.publish(parsed.items, input=input, received=received, feedback=feedback)
        self.metrics.formats_ignored += parsed.ignored_formats
        return len(parsed.items)

    def publish_item(self, raw: object, *, channel: str | None = None,
                     input: str = "zmq") -> None:
        """Validate and publish one decoded item (the ZeroMQ inputs' path).

        :param channel: overrides the item's own channel (the SUB input's first frame).
        :param input: where the item came from, for metrics (``zmq-pull``, ``zmq-sub``).
        :raises PublishError: the item is invalid, or (``PublishBusy``) too many
            deliveries are waiting; nothing was published.
        """
        def parse() -> ParsedPublish:
            item, ignored = PublishItem.from_json(raw, self.formats, channel=channel)
            return ParsedPublish((item,), ignored)

        self._publish_all(parse, input, "")

    def _check_channels(self, items: Sequence[PublishItem], prefix: str) -> None:
        """Refuse channel names over ``max_channel_name`` (``prefix`` starts the reason)."""
        limit = self.config.pubsub.max_channel_name
        for item in items:
            if len(item.channel) > limit:
                self.metrics.rejected_channel_name += 1
                raise PublishError(f"{prefix}publish item object contains 'channel' longer "
                                   f"than {limit} characters")

    def publish(self, items: Sequence[PublishItem], *, input: str = "api",
                received: float | None = None, feedback: Feedback | None = None) -> None:
        """Hand already-parsed items to the hub, in order, within ``message_rate`` (a
        supervisor forwards them to its workers, which do).

        :param input: where the items came from, for metrics (``api`` when not said).
        :param received: ``time.perf_counter()`` when the publish arrived; the time until
            its fan-out is done feeds the publish latency histogram.
        :param feedback: filled in with what happened to each item.
        :raises PublishBusy: ``message_hwm`` deliveries are waiting; nothing was published.
        """
        forwarded = self.forwarder is not None
        with (contextlib.nullcontext() if feedback is None
              else feedback.following(items, self.hub, forwarded=forwarded)):
            if self.forwarder is not None:
                self.forwarder.forward(items)
            else:
                self._deliver(items, input, received, feedback)
        self.metrics.publishes_accepted += 1
        self.metrics.items_published += len(items)

    def deliver_forwarded(self, items: Sequence[PublishItem]) -> None:
        """Fan out items a supervisor accepted and forwarded (a worker's bus): like
        :meth:`publish`, without counting them again as received.

        :raises PublishBusy: ``message_hwm`` deliveries are waiting; nothing was delivered.
        """
        self._deliver(items, None, None, None)

    def _deliver(self, items: Sequence[PublishItem], input: str | None,
                 received: float | None, feedback: Feedback | None) -> None:
        """:param input: where the items came from, counted by format; None: not counted."""
        now = self.clock()
        started = time.perf_counter() if received is None else received
        rate = self.rate
        weights = [max(self.hub.receivers(item), 1) for item in items] if rate else []
        if rate is not None and not rate.admits(sum(weights)):
            self.metrics.rejected_publish_rate += 1
            raise PublishBusy(f"Too many deliveries waiting: {rate.pending} "
                              f"(message_hwm {rate.hwm}).")
        counts = self.telemetry.publishes.counts
        delivered = 0
        for i, item in enumerate(items):
            if input is not None:
                for fmt in item.formats:
                    key = (input, fmt)
                    counts[key] = counts.get(key, 0) + 1
            if rate is None or rate.offer(item, weights[i], now):
                delivered += self.hub.publish(item, now)
            else:
                self.metrics.publishes_delayed += 1
                if feedback is not None:
                    feedback.withheld(item, "delayed")
        if rate is not None and rate.waiting and self._rate_wakeup is not None:
            self._rate_wakeup.set()
        if delivered:
            self.telemetry.publish_latency.observe(time.perf_counter() - started)

    async def release_delayed(self) -> None:
        """Deliver the items waiting for ``message_rate`` as it allows (run by the server)."""
        rate = self.rate
        if rate is None:
            return
        while True:
            self._rate_wakeup = anyio.Event()
            if not rate.waiting:
                await self._rate_wakeup.wait()
            while rate.waiting:
                await anyio.sleep(rate.interval)
                now = self.clock()
                for item in rate.release(now):
                    self.hub.publish(item, now)

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
