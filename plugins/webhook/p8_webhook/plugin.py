"""Hook wiring of the webhook plugin: channel occupancy events POSTed to a URL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from p8core import ConfigSection, hookimpl
from p8core.app import App

from .service import Webhook
from .settings import WebhookSettings, parse_settings


@hookimpl
def p8_config_sections() -> list[ConfigSection]:
    return [ConfigSection("webhook", parse_settings)]


@hookimpl
def p8_services(app: App) -> list[Callable[[], Awaitable[None]]]:
    settings: WebhookSettings = app.config.plugins.section("webhook")
    # With [server] workers, the supervisor's hub follows the channels some worker
    # listens to, so the events come from the supervisor, once for all workers.
    if not settings.url or not app.role.takes_publishes:
        return []
    return [Webhook(app, settings).run]
