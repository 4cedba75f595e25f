"""The webhook service: hears the hub's occupancy changes and POSTs them, in batches,
signed, retried with back-off, from a bounded queue that never holds up the hub."""

from __future__ import annotations

import time

import anyio
import httpx
import structlog

from p8core import ConfigError
from p8core.app import App
from p8core.grip.sig import Signer

from .events import OCCUPIED, VACATED, Event, EventQueue, backoff, body
from .settings import WebhookSettings

__all__ = ["Webhook", "signer_for"]

log = structlog.get_logger(component="webhook")

PLUGIN = "webhook"


def signer_for(app: App, settings: WebhookSettings) -> Signer | None:
    """The ``Grip-Sig`` signer: the table's key and iss, else ``[proxy]``'s; ``None``
    when neither has a key (the POSTs go unsigned).

    :raises ConfigError: the key cannot be used.
    """
    proxy = app.config.proxy
    key, iss = settings.key or proxy.sig_key, settings.iss or proxy.sig_iss
    if not key:
        return None
    try:
        return Signer(iss, key, base_dir=app.config.base_dir)
    except ValueError as e:
        where = "plugins.webhook.key" if settings.key else "proxy.sig_key"
        raise ConfigError(app.config.source, where, str(e)) from None


class Webhook:
    """Sends ``app``'s occupancy events to ``settings.url``; :meth:`run` is the service."""

    def __init__(self, app: App, settings: WebhookSettings) -> None:
        """Start hearing the hub's occupancy changes; :meth:`run` sends them.

        :raises ConfigError: the signing key cannot be used.
        """
        self.app, self.settings = app, settings
        self.signer = signer_for(app, settings)
        self.queue = EventQueue(settings.queue_max)
        self._wakeup: anyio.Event | None = None
        app.hub.on_subscribed.append(self.occupied)
        app.hub.on_unsubscribed.append(self.vacated)

    def occupied(self, channel: str) -> None:
        """The hub's ``on_subscribed``: queue a ``channel-occupied`` event."""
        self._put(Event(OCCUPIED, channel, time.time()))

    def vacated(self, channel: str) -> None:
        """The hub's ``on_unsubscribed``: queue a ``channel-vacated`` event."""
        self._put(Event(VACATED, channel, time.time()))

    def _put(self, event: Event) -> None:
        if self.queue.put(event):
            self._count("dropped")
        if self._wakeup is not None:
            self._wakeup.set()

    async def run(self) -> None:
        """Send queued events, oldest first, until cancelled; then stop hearing the hub."""
        hub, settings = self.app.hub, self.settings
        log.info("webhook_ready", url=settings.url, signed=self.signer is not None)
        try:
            async with httpx.AsyncClient(timeout=settings.timeout) as client:
                while True:
                    while not self.queue.events:
                        self._wakeup = anyio.Event()
                        await self._wakeup.wait()
                    await self._send(client, self.queue.take(settings.batch_max))
        finally:
            hub.on_subscribed.remove(self.occupied)
            hub.on_unsubscribed.remove(self.vacated)

    async def _send(self, client: httpx.AsyncClient, events: list[Event]) -> None:
        """POST ``events`` until one attempt succeeds or ``max_attempts`` failed."""
        s = self.settings
        payload = body(events)
        for attempt in range(1, s.max_attempts + 1):
            failure = await self._post(client, payload)
            if failure is None:
                self._count("sent", len(events))
                return
            if attempt == s.max_attempts:
                break
            delay = backoff(attempt, s.backoff, s.max_backoff)
            log.warning("webhook_retrying", reason=failure, attempt=attempt, retry_in=delay)
            self._count("retried")
            await anyio.sleep(delay)
        log.warning("webhook_failed", reason=failure, events=len(events),
                    attempts=s.max_attempts)
        self._count("failed", len(events))

    async def _post(self, client: httpx.AsyncClient, payload: bytes) -> str | None:
        """One attempt; ``None`` on a 2xx answer, else why it failed."""
        headers = {"Content-Type": "application/json"}
        if self.signer is not None:
            headers["Grip-Sig"] = self.signer.token(time.time())
        try:
            resp = await client.post(self.settings.url, content=payload, headers=headers)
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return None if resp.is_success else f"status {resp.status_code}"

    def _count(self, event: str, n: int = 1) -> None:
        self.app.telemetry.plugin_events.add((PLUGIN, event), n)
