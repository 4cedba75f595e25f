"""The shell around a hold mode: carries out its actions on a client connection.

A held exchange is the hub's subscriber for its connection. Deliveries are plain calls that
write without blocking; a connection whose unsent bytes pass ``write_buffer_max`` is closed
as too slow and counted. No task runs while an exchange waits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import h11
import structlog

from ..hold import (
    Action,
    ArmTimer,
    CancelTimer,
    Fetch,
    Fetched,
    Finish,
    ForgetLastId,
    HoldMode,
    Report,
    Retry,
    SendBody,
    SendHead,
    Subscribe,
    Unsubscribe,
)
from ..pubsub.items import PublishItem
from ..pubsub.patterns import pattern_problem
from .connection import HttpConnection

if TYPE_CHECKING:
    from ..app import App

log = structlog.get_logger(component="hold")


class HeldExchange:
    """One client exchange run by a :class:`HoldMode`; the hub's subscriber."""

    __slots__ = ("app", "channels", "conn", "done", "fetching", "format", "mode", "timers")

    def __init__(self, app: App, conn: HttpConnection, mode: HoldMode) -> None:
        self.app, self.conn, self.mode = app, conn, mode
        self.format = mode.format
        self.channels: list[str] = []
        self.timers: dict[str, tuple[HeldExchange, str]] = {}
        self.done = False
        self.fetching = False

    def start(self, channels: Sequence[str], replay: Sequence[PublishItem] = ()) -> None:
        """Subscribe, run the mode's first actions, then deliver ``replay`` (items the
        client missed, see ``p8_hold_replay``) before anything published later."""
        self.app.held.add(self)
        self.conn.on_gone = self.client_gone
        self.conn.on_shutdown = self.shutdown
        self._subscribe(channels)
        self._event(self.mode.start)
        for item in replay:
            self.deliver(item)

    # ---- events -----------------------------------------------------------------------------

    def deliver(self, item: PublishItem) -> None:
        """A published item for this exchange's format (called by the hub)."""
        self._event(self.mode.on_item, item)

    def on_timer(self, key: str) -> None:
        self.timers.pop(key, None)
        self._event(self.mode.on_timer, key)

    def fetched(self, result: Fetched) -> None:
        """The answer to the mode's :class:`Fetch` (run by the proxy in a task)."""
        self.fetching = False
        self._event(self.mode.on_fetched, result)

    def update(self) -> None:
        """Ask the mode to refresh from the backend (recover, first subscription)."""
        self._event(self.mode.on_update)

    def fetch(self, action: Fetch) -> None:
        """Start the mode's fetch, unless one is already in flight."""
        if not self.done and not self.fetching:
            self.fetching = True
            self.app.spawn(self.app.proxy.fetch, self, action)

    def retry(self, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        """End the hold and send its request to the backend again."""
        if not self.done:
            self._end()
            self.app.spawn(self.app.proxy.retry, self.conn, self.mode.hold, headers)

    def client_gone(self) -> None:
        if not self.done:
            self._end()
            self.mode.on_close()

    def _event(self, handler: Callable[..., Sequence[Action]], *args: object) -> None:
        """Run a mode's event handler; a failing mode ends its own exchange only."""
        if self.done:
            return
        try:
            self.run(handler(*args))
        except Exception:
            self.app.metrics.holds_failed += 1
            log.exception("hold_failed", mode=self.mode.name, peer=self.conn.peer)
            self._end()
            self.conn.abort()

    def shutdown(self) -> None:
        """The server is stopping: end a streaming response with its last chunk."""
        if self.done:
            return
        self._end()
        if self.conn.h11.our_state is h11.SEND_BODY:
            self.conn.send_end()

    # ---- actions ----------------------------------------------------------------------------

    def run(self, actions: Sequence[Action]) -> None:
        """Carry out ``actions`` in order."""
        conn = self.conn
        for action in actions:
            if self.done:
                return
            if isinstance(action, SendBody):
                conn.send_data(action.data)
                if conn.unsent > self.app.config.server.write_buffer_max:
                    self.app.metrics.slow_clients_closed += 1
                    log.warning("slow_client_closed", peer=conn.peer, unsent=conn.unsent)
                    self._end()
                    conn.abort()
            elif isinstance(action, SendHead):
                headers = list(action.headers)
                if action.content_length is not None:
                    headers.append((b"content-length", str(action.content_length).encode()))
                conn.send_head(action.status, headers, action.reason)
                if conn.head_only:
                    self._finish()
            elif isinstance(action, ArmTimer):
                owner = self.timers.setdefault(action.key, (self, action.key))
                self.app.timers.arm(owner, action.seconds, partial(self.on_timer, action.key))
            elif isinstance(action, CancelTimer):
                if action.key in self.timers:
                    self.app.timers.cancel(self.timers.pop(action.key))
            elif isinstance(action, Fetch):
                if action.urgent:
                    self.fetch(action)
                else:
                    self.app.proxy.queue_update(self, partial(self.fetch, action))
            elif isinstance(action, ForgetLastId):
                for channel in action.channels:
                    self.app.hub.forget_last_id(channel)
            elif isinstance(action, Report):
                log.warning("hold_problem", mode=self.mode.name, problem=action.problem,
                            peer=conn.peer, route=self.mode.hold.route.route_id)
            elif isinstance(action, Subscribe):
                self._subscribe(action.channels)
            elif isinstance(action, Unsubscribe):
                self._unsubscribe(action.channels)
            elif isinstance(action, Finish):
                self._finish()
            elif isinstance(action, Retry):
                if action.urgent:
                    self.retry(action.headers)
                else:
                    self.app.proxy.queue_update(self, partial(self.retry, action.headers))
            else:
                raise TypeError(f"unknown hold action {action!r}")

    def _finish(self) -> None:
        """End the response and the exchange; the connection goes on with its next request."""
        self.conn.send_end()
        self._end()
        self.conn.finish_exchange()

    def _subscribe(self, channels: Sequence[str]) -> None:
        """Subscribe within ``connection_subscription_max`` and ``max_channel_name`` (and
        the pattern syntax on a wildcard route); the channels refused are logged and
        counted."""
        app = self.app
        hub, now, pubsub, metrics = app.hub, app.clock(), app.config.pubsub, app.metrics
        wildcard = self.mode.hold.route.wildcard
        for channel in channels:
            if channel in self.channels:
                continue
            problem = pattern_problem(channel) if wildcard else None
            if len(channel) > pubsub.max_channel_name:
                metrics.rejected_channel_name += 1
                log.warning("subscription_refused", peer=self.conn.peer,
                            reason=f"channel name longer than {pubsub.max_channel_name}")
            elif problem is not None:
                metrics.rejected_channel_name += 1
                log.warning("subscription_refused", peer=self.conn.peer, channel=channel,
                            reason=problem)
            elif len(self.channels) >= pubsub.connection_subscription_max:
                metrics.rejected_subscriptions += 1
                log.warning("subscription_refused", peer=self.conn.peer,
                            reason=f"over {pubsub.connection_subscription_max} channels")
            else:
                self.channels.append(channel)
                if hub.subscribe(channel, self, now, wildcard=wildcard):
                    app.first_subscription(channel)

    def _unsubscribe(self, channels: Sequence[str]) -> None:
        hub, now, linger = self.app.hub, self.app.clock(), self.mode.linger
        wildcard = self.mode.hold.route.wildcard
        for channel in channels:
            if channel in self.channels:
                self.channels.remove(channel)
                hub.unsubscribe(channel, self, now, linger=linger, wildcard=wildcard)

    def _end(self) -> None:
        """Leave the hub and the timer wheel; the exchange takes no more events."""
        self.done = True
        self.conn.on_gone = self.conn.on_shutdown = None
        self._unsubscribe(list(self.channels))
        for owner in self.timers.values():
            self.app.timers.cancel(owner)
        self.timers.clear()
        self.app.held.discard(self)
