"""Counters and gauges of one p8 process."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(slots=True)
class Metrics:
    """Plain integer counters; cheap to bump on hot paths.

    ``rejected_*`` count inputs refused by a limit or as malformed, one counter per reason;
    ``origin_*`` count backend faults.
    """

    connections: int = 0
    connections_refused: int = 0
    """Client connections over ``[server] max_connections`` (answered 503)."""
    requests: int = 0
    requests_proxied: int = 0
    holds_started: int = 0
    holds_failed: int = 0
    slow_clients_closed: int = 0
    """Connections closed because their unsent bytes passed ``[server] write_buffer_max``."""
    publishes_accepted: int = 0
    publishes_rejected: int = 0
    """Publishes refused as invalid (400), from any input."""
    publishes_unauthorized: int = 0
    """Publishes refused for a missing or wrong credential (401)."""
    items_published: int = 0
    formats_ignored: int = 0
    publishes_delayed: int = 0
    """Items queued because ``[pubsub] message_rate`` was used up."""

    rejected_bad_request: int = 0
    """Requests that are not valid HTTP/1.x (400)."""
    rejected_head_too_large: int = 0
    """Request heads over ``client_buffer_size`` (431) or ``[control] max_headers`` (400)."""
    rejected_head_timeout: int = 0
    """Request heads begun and not finished within ``[server] head_timeout`` (408)."""
    rejected_body_timeout: int = 0
    """Request bodies begun that then sent nothing for ``[server] body_timeout`` (408)."""
    idle_connections_closed: int = 0
    """Keep-alive connections closed after ``[server] head_timeout`` without a request."""
    rejected_body_too_large: int = 0
    """Client request bodies over ``[server] max_request_body`` or a connector's limit (413)."""
    rejected_publish_too_large: int = 0
    """Publish bodies over ``[control] max_body`` (413)."""
    rejected_publish_rate: int = 0
    """Publishes refused because ``[pubsub] message_hwm`` deliveries were waiting (429)."""
    rejected_subscriptions: int = 0
    """Subscriptions over ``[pubsub] connection_subscription_max``."""
    rejected_channel_name: int = 0
    """Channel names over ``[pubsub] max_channel_name``, published or subscribed to, and
    patterns with a ``*`` before their end on a ``wildcard`` route."""
    rejected_ws_message_too_large: int = 0
    """Client WebSocket messages over the plugin's ``max_message`` (close 1009)."""

    origin_failures: int = 0
    """Backend requests that failed: unreachable, refused, or an invalid answer (502)."""
    origin_timeouts: int = 0
    """Backends that did not answer within ``[proxy] backend_timeout`` (504)."""
    origin_broke_off: int = 0
    """Backend responses cut off mid-body (the client connection is closed)."""
    clients_gone_mid_response: int = 0
    """Clients that went away while a backend response was relayed to them."""

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
