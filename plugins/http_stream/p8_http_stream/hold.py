"""Hold mode ``stream`` (grip.md §5.2, §6, §7.5, §8): an HTTP response that stays open.

The backend's response goes to the client at once, framed by the core (chunked for
HTTP/1.1); then every ``http-stream`` item published on the hold's channels is written
as it arrives, keep-alives fill the silences and next links continue the stream from the
backend. Sans-I/O: events in, :mod:`p8core.hold` actions out.

Per channel the mode keeps the prev-id the backend gave (``Grip-Channel: c; prev-id=7``):
an item must follow it (its ``prev-id`` equal to it), and then its ``id`` becomes the
channel's prev-id. An item that does not follow reveals a gap: it is not written, the
hub forgets the channel's last id, and the next link is fetched with ``Grip-Last`` so the
backend can fill the gap. While a next link is being fetched, items wait (at most
``queue_max``) and are written after the linked body, those that do not follow the new
prev-ids first dropped.
"""

from __future__ import annotations

import random as _random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, Final

from p8core import (
    Action,
    Config,
    Finish,
    Hold,
    HoldMode,
    Instruct,
    InstructionError,
    PublishItem,
    SendBody,
    SendHead,
    Subscribe,
    Unsubscribe,
)
from p8core.grip.filters import (
    FilterError,
    agrees,
    content_filters,
    filter_message,
    filter_response,
)
from p8core.grip.instructions import Channel, is_grip_response, parse_instruct
from p8core.hold import Fetched, ForgetLastId, Report
from p8core.pubsub.patterns import subscribed_as

from .format import StreamMessage
from .keepalive import KEEP_ALIVE_TIMER, KeepAliveTimer
from .nextlink import LINK_TIMER, RETRY_TIMER, NextLinkState
from .settings import StreamSettings

__all__ = ["FORMAT", "StreamHold", "configured"]

FORMAT: Final = "http-stream"
_DEFAULTS: Final = StreamSettings()
_TEXT: Final = ((b"content-type", b"text/plain"),)


class _Subscription:
    """What the stream knows of one of its channels."""

    __slots__ = ("content_filters", "filters", "prev_id")

    def __init__(self, channel: Channel) -> None:
        self.update(channel)

    def update(self, channel: Channel) -> None:
        """Take the prev-id and filters of ``channel`` (new instructions)."""
        self.prev_id: str | None = channel.prev_id
        self.filters: tuple[str, ...] = channel.filters
        self.content_filters = content_filters(channel.filters)


class StreamHold(HoldMode):
    """``Grip-Hold: stream``; also runs a response without a hold that has a next link.

    Class attributes carry the settings (:func:`configured` sets them from the config).

    :param random: a float in [0, 1) per call, for the jitter of keep-alives and retries;
        tests pass a fixed one.
    """

    name = "stream"
    format = FORMAT

    max_channels: ClassVar[int] = 20
    """Channels kept from a next link's instructions (``connection_subscription_max``)."""
    debug: ClassVar[bool] = False
    """Append the reason to a stream that ends in error (``[proxy] debug``; routes also
    have their own ``debug``)."""
    retry_delay: ClassVar[float] = _DEFAULTS.retry_delay
    retry_max: ClassVar[int] = _DEFAULTS.retry_max
    jitter: ClassVar[float] = _DEFAULTS.jitter
    queue_max: ClassVar[int] = _DEFAULTS.queue_max

    def __init__(self, hold: Hold, *, random: Callable[[], float] | None = None) -> None:
        super().__init__(hold)
        rand = random or _random.random
        instruct = hold.instruct
        self.meta: Mapping[str, str] = instruct.meta
        self.subscriptions: dict[str, _Subscription] = {}
        self.keep_alive = KeepAliveTimer(instruct.keep_alive, jitter=self.jitter, random=rand)
        self.link = NextLinkState(instruct.next_link, retry_delay=self.retry_delay,
                                  retry_max=self.retry_max, jitter=self.jitter, random=rand)
        #: Items that arrived during a next-link fetch, or ``None`` when not fetching.
        self.queue: deque[PublishItem] | None = None
        self.ended = False
        #: Why the stream ended in error, if it did.
        self.error: str | None = None

    # ---- events -----------------------------------------------------------------------

    def start(self) -> Sequence[Action]:
        instruct = self.hold.instruct
        if not 200 <= instruct.status <= 999:
            # Grip-Status may name a code (0-199) an HTTP/1.1 server cannot send.
            self.ended = True
            reason = f"Invalid Grip-Status code {instruct.status}."
            body = f"{reason}\n".encode()
            return [Report(reason), SendHead(502, _TEXT, b"Bad Gateway", len(body)),
                    SendBody(body), Finish()]
        out: list[Action] = [SendHead(instruct.status, instruct.headers, instruct.reason)]
        out += self._write_response(instruct)
        if self.ended:
            return out
        if instruct.hold is None:
            # No hold but a next link: a stream continued by the backend alone, whose
            # channels are not subscribed (grip.md §5.3, §6).
            if instruct.channels:
                out.append(Unsubscribe(tuple(c.name for c in instruct.channels)))
            if self.link.link is None:
                self.ended = True
                return [*out, Finish()]
            out += self._fetch()
            return out
        out += self._hold(instruct, first=True)
        return out

    def on_item(self, item: PublishItem) -> Sequence[Action]:
        message = item.formats.get(FORMAT)
        if not isinstance(message, StreamMessage) or self.ended:
            return ()
        queue = self.queue
        if queue is not None:
            if len(queue) < self.queue_max:
                queue.append(item)
            return ()
        return self._deliver(item, message)

    def on_timer(self, key: str) -> Sequence[Action]:
        if self.ended:
            return ()
        if key == KEEP_ALIVE_TIMER:
            return self.keep_alive.fire()
        if key == LINK_TIMER:
            return self._fetching(self.link.period_ended(self.subscriptions, self._prev_ids()))
        if key == RETRY_TIMER:
            return self.link.retry(self._prev_ids())
        return ()

    def on_fetched(self, fetched: Fetched) -> Sequence[Action]:
        if self.ended or not self.link.fetching:
            return ()
        if fetched.error is not None or not 200 <= fetched.status < 300:
            retry = self.link.failed()
            return retry if retry is not None else self._fail("Failed to retrieve next link.")
        assert self.link.link is not None
        try:
            instruct = self._parse(fetched, self.link.link.url)
        except InstructionError as e:
            self.link.succeeded(None)
            return self._fail(str(e))
        again = self.link.succeeded(instruct.next_link)
        if instruct.hold not in (None, self.name):
            return self._fail("Next link returned non-stream hold.")
        out = self._write_response(instruct)
        if self.ended:
            return out
        if instruct.hold is not None:
            out += self._hold(instruct, first=False, wrote=bool(out))
        elif instruct.next_link is not None:
            # Keep going without subscriptions: fetch the next piece at once (which also
            # serves an update asked for meanwhile).
            if out:
                out += self.keep_alive.wrote()
            out += self._unsubscribe_all()
            self.queue = None
            return [*out, *self._fetch()]
        else:
            self.ended = True
            return [*out, *self._unsubscribe_all(), Finish()]
        if again and not self.ended:
            out += self._fetch()
        return out

    def on_update(self) -> Sequence[Action]:
        return self._fetch(urgent=False) if not self.ended else ()

    def on_close(self) -> None:
        self.ended = True
        self.queue = None

    # ---- the stream -------------------------------------------------------------------

    def _hold(self, instruct: Instruct, *, first: bool, wrote: bool = False) -> list[Action]:
        """Adopt a stream hold's instructions: the initial ones, or a next link's."""
        if instruct.next_link is None:
            for channel in instruct.channels:
                if channel.prev_id is not None:
                    name = channel.name.removeprefix(self.hold.route.prefix)
                    return self._fail(f"channel '{name}' specifies prev-id, but no next "
                                      "link found")
        out: list[Action] = []
        wanted = {channel.name: channel for channel in instruct.channels}
        subscriptions = self.subscriptions
        if not first:
            gone = tuple(name for name in subscriptions if name not in wanted)
            new = tuple(name for name in wanted if name not in subscriptions)
            for name in gone:
                del subscriptions[name]
            if gone:
                out.append(Unsubscribe(gone))
            if new:
                out.append(Subscribe(new))
        for name, channel in wanted.items():
            known = subscriptions.get(name)
            if known is None:
                subscriptions[name] = _Subscription(channel)
            else:
                known.update(channel)
        self.meta = instruct.meta
        if first:
            out += self.keep_alive.start()
        else:
            out += self.keep_alive.replace(instruct.keep_alive, wrote=wrote)
        out += self.link.period()
        if first:
            # A prev-id behind what the hub already delivered: fetch what was missed
            # (grip.md §7.5). Only at the first hold; later, queued items may resolve it.
            last_ids = self.hold.last_ids
            behind = tuple(name for name, sub in subscriptions.items()
                           if sub.prev_id is not None
                           and last_ids.get(name) not in (None, sub.prev_id))
            if behind:
                out.append(ForgetLastId(behind))
                out += self._fetch(urgent=False)
        else:
            out += self._release_queue()
        return out

    def _release_queue(self) -> list[Action]:
        """A fetch is over: write what waited, after dropping the leading items that do
        not follow the new prev-ids."""
        queue, self.queue = self.queue, None
        if not queue:
            return []
        subscriptions = self.subscriptions
        while queue:
            item = queue[0]
            name = subscribed_as(subscriptions, item.channel)
            if name is not None and (name != item.channel
                                     or subscriptions[name].prev_id in (None, item.prev_id)):
                break
            queue.popleft()
        out: list[Action] = []
        while queue and self.queue is None and not self.ended:
            item = queue.popleft()
            message = item.formats.get(FORMAT)
            if isinstance(message, StreamMessage):
                out += self._deliver(item, message)
        return out

    def _deliver(self, item: PublishItem, message: StreamMessage) -> list[Action]:
        """Check, filter and act on one item for a subscribed channel."""
        channel = item.channel
        name = subscribed_as(self.subscriptions, channel)
        if name is None:
            return []
        sub = self.subscriptions[name]
        # An item that came through a pattern (``news.*``) is not sequenced.
        sequenced = name == channel and sub.prev_id is not None
        if sequenced and item.prev_id != sub.prev_id:
            # A gap: what the backend sent does not lead to this item (grip.md §7.5).
            return [ForgetLastId((channel,)), *self._fetch(urgent=False)]
        content: bytes | None = message.content
        if sub.filters or message.content_filters:
            listed = message.content_filters
            if listed is not None and not agrees(listed, sub.content_filters):
                return self._fail(f"content filter mismatch: subscription="
                                  f"{','.join(sub.content_filters)} message={','.join(listed)}")
            try:
                content = filter_message(sub.filters, message.content, self.meta, item.meta,
                                         self._all_prev_ids())
            except FilterError as e:
                return self._fail(f"filter error: {e}")
        if sequenced:
            sub.prev_id = item.id
        if content is None:
            return []
        action = message.action
        if action == "send":
            self.link.delivered(name)
            out = self.keep_alive.wrote()
            if content:
                out.insert(0, SendBody(content))
            return out
        if action == "hint":
            return self._fetch()
        self.ended = True
        return [Finish()]

    def _fetch(self, *, urgent: bool = True) -> list[Action]:
        """Fetch the next link (if there is one); items wait until it is done. Gaps and
        updates are not ``urgent``: they wait their turn in the proxy's update rate."""
        return self._fetching(self.link.fetch(self._prev_ids(), urgent=urgent))

    def _fetching(self, actions: list[Action]) -> list[Action]:
        if self.link.fetching and self.queue is None:
            self.queue = deque()
        return actions

    def _write_response(self, instruct: Instruct) -> list[Action]:
        """The body of the initial response or of a next link, through the channels'
        response filters."""
        body = instruct.body
        if not body:
            return []
        filters = [f for c in instruct.channels for f in c.filters]
        if filters:
            try:
                body = filter_response(filters, body, instruct.meta,
                                       {c.name: c.prev_id for c in instruct.channels})
            except FilterError as e:
                return self._fail(f"filter error: {e}")
        return [SendBody(body)] if body else []

    def _parse(self, fetched: Fetched, url: str) -> Instruct:
        if not is_grip_response(fetched.headers):
            return Instruct(body=fetched.body)
        return parse_instruct(fetched.status, fetched.reason, fetched.headers, fetched.body,
                              request_url=url, channel_prefix=self.hold.route.prefix,
                              max_channels=self.max_channels)

    def _unsubscribe_all(self) -> list[Action]:
        names = tuple(self.subscriptions)
        self.subscriptions.clear()
        return [Unsubscribe(names)] if names else []

    def _prev_ids(self) -> dict[str, str]:
        """The channels with a prev-id: they go in ``Grip-Last``."""
        return {name: sub.prev_id for name, sub in self.subscriptions.items()
                if sub.prev_id is not None}

    def _all_prev_ids(self) -> dict[str, str | None]:
        return {name: sub.prev_id for name, sub in self.subscriptions.items()}

    def _fail(self, reason: str) -> list[Action]:
        """End the stream in error; the reason is appended in debug mode (grip.md §5.2)."""
        self.ended = True
        self.error = reason
        self.queue = None
        if self.debug or self.hold.route.debug:
            return [Report(reason), SendBody(f"\n\n{reason}\n".encode()), Finish()]
        return [Report(reason), Finish()]


def configured(config: Config) -> type[StreamHold]:
    """:class:`StreamHold` with the settings of ``config`` (``[plugins.http_stream]``,
    ``[pubsub] connection_subscription_max``, ``[proxy] debug``)."""
    settings: StreamSettings = config.plugins.section("http_stream")
    return type("StreamHold", (StreamHold,), {
        "__module__": __name__,
        "max_channels": config.pubsub.connection_subscription_max,
        "debug": config.proxy.debug,
        "retry_delay": settings.retry_delay,
        "retry_max": settings.retry_max,
        "jitter": settings.jitter,
        "queue_max": settings.queue_max,
    })
