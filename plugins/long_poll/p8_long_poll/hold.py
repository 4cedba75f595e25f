"""Hold mode ``response``: HTTP long-polling (grip.md §5.1, §7.2-§7.7, §8), sans-I/O.

The client's request waits, subscribed to the instruction's channels, until one
``http-response`` item arrives or the timeout passes; then it gets exactly one response:
the item's, or the stored timeout response. Either way the exchange ends and the client
connection goes on with its next request. Gaps in the ids (``prev-id``), ``hint`` items
and updates (first subscription, ``/recover``) hand the request back to the backend
instead (a retry), whose new answer decides what the client gets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from p8core import HoldMode, PublishItem
from p8core.grip.filters import FilterError, agrees, content_filters, delivers, filter_content
from p8core.grip.instructions import grip_last_headers
from p8core.hold import (
    Action,
    ArmTimer,
    Finish,
    ForgetLastId,
    Hold,
    Retry,
    SendBody,
    SendHead,
)
from p8core.pubsub.patterns import subscribed_as

from .format import FORMAT, HttpResponse
from .jsonpatch import patch_body

__all__ = ["TIMEOUT", "ResponseHold"]

#: The key of the hold's one timer.
TIMEOUT = "timeout"

Header = tuple[bytes, bytes]

_TEXT = ((b"Content-Type", b"text/plain"),)


class ResponseHold(HoldMode):
    """``Grip-Hold: response``: one answer per held request, then the exchange ends.

    ``timeout_scale`` multiplies the instruction's timeout (``[plugins.long_poll]``; 1
    outside tests).
    """

    name = "response"
    format = FORMAT
    linger = True
    timeout_scale: ClassVar[float] = 1.0

    @classmethod
    def scaled(cls, timeout_scale: float) -> type[ResponseHold]:
        """This mode with its timeouts multiplied by ``timeout_scale``."""
        if timeout_scale == cls.timeout_scale:
            return cls
        return type(cls.__name__, (cls,), {"timeout_scale": timeout_scale,
                                           "__module__": cls.__module__,
                                           "__qualname__": cls.__qualname__})

    def __init__(self, hold: Hold) -> None:
        super().__init__(hold)
        channels = hold.instruct.channels
        #: The id each channel is up to date with: the backend's ``prev-id``, then the
        #: ``id`` of each item that followed it.
        self.prev_ids: dict[str, str | None] = {c.name: c.prev_id for c in channels}
        self.filters: dict[str, tuple[str, ...]] = {c.name: c.filters for c in channels}
        self.done = False

    # ---- events -------------------------------------------------------------------------

    def start(self) -> Sequence[Action]:
        """Wait for an item or the timeout; retry at once if the backend is behind.

        grip.md §7.2: a channel whose ``prev-id`` is not the hub's last delivered id (when
        the hub knows one) missed something between the backend's answer and now.
        """
        last_ids = self.hold.last_ids
        behind = tuple(c.name for c in self.hold.instruct.channels
                       if c.prev_id is not None and last_ids.get(c.name) not in (None, c.prev_id))
        if behind:
            return self._retry(urgent=True, forget=behind)
        return [ArmTimer(self.hold.instruct.timeout * self.timeout_scale, TIMEOUT)]

    def on_item(self, item: PublishItem) -> Sequence[Action]:
        """Answer with the item, unless it does not follow the channel's ``prev-id`` (a
        gap: retry, rate-limited), a delivery filter drops it, or it is a ``hint`` (retry
        now). A ``close`` item means nothing to a response hold."""
        resp = item.formats.get(FORMAT)
        channel = item.channel
        name = subscribed_as(self.prev_ids, channel)
        if self.done or not isinstance(resp, HttpResponse) or name is None:
            return ()
        if resp.action == "hint":
            # A hint carries no content to keep in order: whatever its ids, the backend
            # is asked again, at once (grip.md §7.2).
            return self._retry(urgent=True)
        if resp.action != "send":
            return ()  # close
        # An item that came through a pattern (``news.*``) is not sequenced.
        expected = self.prev_ids[channel] if name == channel else None
        if expected is not None:
            # A channel with a prev-id takes only the item that follows it; an item
            # without prev-id does not follow it either.
            if item.prev_id != expected:
                return self._retry(urgent=False, forget=(channel,))
            self.prev_ids[channel] = item.id
        filters = self.filters[name]
        meta = self.hold.instruct.meta
        if not delivers(filters, meta, item.meta, self.prev_ids):
            return ()
        # build-id renders the ids the hold had before this item.
        ids = {**self.prev_ids, channel: expected} if name == channel else self.prev_ids
        return self._deliver(resp, filters, ids)

    def on_timer(self, key: str) -> Sequence[Action]:
        """The timeout passed: send the stored timeout response."""
        if self.done or key != TIMEOUT:
            return ()
        instruct = self.hold.instruct
        if not 200 <= instruct.status <= 999:
            # Grip-Status may name a code (0-199) an HTTP/1.1 server cannot send as a
            # final response.
            return self._respond(502, b"Bad Gateway", _TEXT,
                                 f"Invalid Grip-Status code {instruct.status}.\n".encode())
        return self._respond(instruct.status, instruct.reason, instruct.headers, instruct.body)

    def on_update(self) -> Sequence[Action]:
        """A channel just got its first subscriber, or ``/recover`` was called: a publish
        may have been missed, so ask the backend again (rate-limited)."""
        if self.done:
            return ()
        return self._retry(urgent=False)

    def on_close(self) -> None:
        self.done = True

    # ---- answers ------------------------------------------------------------------------

    def _deliver(self, resp: HttpResponse, filters: tuple[str, ...],
                 prev_ids: Mapping[str, str | None]) -> Sequence[Action]:
        """Build the client's response from the item and the stored response (§5.1),
        through the subscription's content filters (grip.md §8)."""
        instruct = self.hold.instruct
        listed = resp.content_filters
        if listed is not None and not agrees(listed, filters):
            # grip.md §8: the content was prepared for other filters than the
            # subscription's; sending it as is could be wrong.
            return self._respond(500, b"Internal Server Error", _TEXT,
                                 _mismatch(content_filters(filters), listed))
        body = patch_body(instruct.body, resp.patch) if resp.patched else resp.body
        try:
            body = filter_content(filters, body, instruct.meta, prev_ids)
        except FilterError as e:
            return self._respond(500, b"Internal Server Error", _TEXT, f"{e}\n".encode())
        # Start from the stored headers, drop every name the item sets, add the item's.
        headers = tuple(h for h in instruct.headers if h[0].lower() not in resp.names)
        return self._respond(resp.code, resp.reason, headers + resp.headers, body)

    def _respond(self, status: int, reason: bytes, headers: Sequence[Header],
                 body: bytes) -> Sequence[Action]:
        """The whole response with a fresh Content-Length, then the end of the exchange.

        No body goes with an answer to ``HEAD``, nor with 204 or 304 (which have no
        Content-Length either).
        """
        self.done = True
        if status in (204, 304):
            return [SendHead(status, tuple(headers), reason), Finish()]
        head = SendHead(status, tuple(headers), reason, content_length=len(body))
        if not body or self.hold.request.method == b"HEAD":
            return [head, Finish()]
        return [head, SendBody(body), Finish()]

    def _retry(self, *, urgent: bool, forget: tuple[str, ...] = ()) -> Sequence[Action]:
        """Hand the request back to the backend with ``Grip-Last`` for every channel that
        has a prev-id, named as the backend names it (without the route's ``prefix``)."""
        self.done = True
        prefix = self.hold.route.prefix
        last = {_unprefixed(name, prefix): prev
                for name, prev in self.prev_ids.items() if prev is not None}
        retry = Retry(tuple(grip_last_headers(last)), urgent)
        return [ForgetLastId(forget), retry] if forget else [retry]


def _unprefixed(channel: str, prefix: str) -> str:
    return channel[len(prefix):] if prefix and channel.startswith(prefix) else channel


def _mismatch(wanted: tuple[str, ...], given: tuple[str, ...]) -> bytes:
    def names(filters: tuple[str, ...]) -> str:
        return ", ".join(filters) or "none"

    return (f"Content filters do not match: the subscription has {names(wanted)}, "
            f"the item was prepared for {names(given)}.\n").encode()
