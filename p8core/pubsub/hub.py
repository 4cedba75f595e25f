"""The hub: channels -> subscribers, id de-duplication, prev-id ordering, fan-out.

Sans-I/O and synchronous: the shell calls ``publish`` for each parsed item and ``tick``
about once a second, passing the time in. The rules are ``spec/publishing.md`` §5 and §6,
modelled on Pushpin's sequencer.

Besides channels, subscribers may take *patterns* (``news.*``, :mod:`.patterns`): every
channel starting with the pattern's prefix. A pattern is known to listeners by its name
(``news.*``) and shares it with a channel of that literal name; ordering and
de-duplication stay per concrete channel.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from p8core.pubsub.items import PublishItem
from p8core.pubsub.patterns import PrefixTrie, pattern_prefix

__all__ = ["Hub", "HubStats", "Subscriber"]


class Subscriber(Protocol):
    """A held connection's end of the hub.

    Used as a dict key (hashed by identity unless it defines otherwise); its ``format``
    must not change while it is subscribed.
    """

    @property
    def format(self) -> str:
        """The one format name it takes (``"http-stream"``, ``"http-response"``, ...)."""
        ...

    def deliver(self, item: PublishItem) -> None:
        """Take one item: a plain call that must not block and must not raise.

        It may unsubscribe itself (or others) from the hub, e.g. to close on overflow.
        """
        ...


@dataclass(slots=True)
class HubStats:
    """Running counters of a hub; plain ints, read by the shell for metrics."""

    published: int = 0  # items handed to publish()
    delivered: int = 0  # (item, subscriber) deliveries
    delivered_by_format: dict[str, int] = field(default_factory=dict)  # the same, by format
    duplicates_dropped: int = 0  # dropped by the id cache
    parked: int = 0  # held back by prev-id ordering
    parked_dropped: int = 0  # not parked: same (channel, prev-id) already parked, or too many
    parked_released_late: int = 0  # delivered by tick() after message_wait


class _Group:
    """The subscribers of one channel taking one format, and a cached snapshot of them."""

    __slots__ = ("snapshot", "subs")

    def __init__(self) -> None:
        self.subs: dict[Subscriber, None] = {}
        self.snapshot: tuple[Subscriber, ...] | None = None

    def members(self) -> tuple[Subscriber, ...]:
        """The subscribers now, as a snapshot kept until the next change."""
        snapshot = self.snapshot
        if snapshot is None:
            snapshot = self.snapshot = tuple(self.subs)
        return snapshot


class _Parked:
    """An item waiting for its predecessor."""

    __slots__ = ("item",)

    def __init__(self, item: PublishItem) -> None:
        self.item = item


class Hub:
    """Channels, their subscribers, and the way of an item from ``publish`` to ``deliver``.

    A channel is *subscribed* while it has a subscriber or its subscription lingers
    (§6). Every time-driven state change happens in ``publish`` or ``tick`` at the ``now``
    passed in; deadlines are kept in queues in the order they fall due, so ``tick`` costs
    nothing when nothing is due.
    """

    def __init__(
        self,
        *,
        id_cache_ttl: float = 60.0,
        message_wait: float = 5.0,
        subscription_linger: float = 60.0,
        max_parked_per_channel: int = 100,
        max_last_ids: int = 1_000_000,
    ) -> None:
        """
        :param id_cache_ttl: seconds an item's ``(channel, id)`` is remembered to drop
            repeats; 0 turns de-duplication off.
        :param message_wait: seconds a parked item waits for its predecessor.
        :param subscription_linger: seconds a channel stays subscribed after its last
            subscriber left with ``linger=True``.
        :param max_parked_per_channel: parked items per channel; more are dropped.
        :param max_last_ids: channels whose last id is kept; least recently set evicted.
        """
        self.id_cache_ttl = id_cache_ttl
        self.message_wait = message_wait
        self.subscription_linger = subscription_linger
        self.max_parked_per_channel = max_parked_per_channel
        self.max_last_ids = max_last_ids

        self.stats = HubStats()
        #: Called with a channel when it becomes subscribed (its first subscriber arrived).
        self.on_subscribed: list[Callable[[str], None]] = []
        #: Called with a channel when it becomes unsubscribed (after any linger).
        self.on_unsubscribed: list[Callable[[str], None]] = []
        #: Called with a channel each time a subscriber joins or leaves it.
        self.on_changed: list[Callable[[str], None]] = []
        #: Called during each item's fan-out (released parked items too), once per format
        #: that has subscribers on the channel, with how many of them received it.
        self.on_delivered: list[Callable[[PublishItem, str, int], None]] = []
        #: Called when ``publish`` does not deliver an item now, with the reason:
        #: ``"duplicate"`` (its id was seen), ``"parked"`` (it waits for its prev-id) or
        #: ``"dropped"`` (it could not be parked).
        self.on_withheld: list[Callable[[PublishItem, str], None]] = []
        #: Called with each item that passed de-duplication and ordering, just before its
        #: fan-out (released parked items too), whether or not its channel has subscribers.
        self.on_sent: list[Callable[[PublishItem], None]] = []

        # channel -> format -> group; a channel is here only while it has a subscriber.
        self._channels: dict[str, dict[str, _Group]] = {}
        # Patterns: prefix -> format -> group while it has a subscriber, and the same
        # groups in a trie for matching a channel against every prefix at once.
        self._patterns: dict[str, dict[str, _Group]] = {}
        self._trie: PrefixTrie[dict[str, _Group]] = PrefixTrie()
        # Bumped by every removal, so a fan-out notices subscribers removed under it.
        self._removals = 0
        # Lingering channels: channel -> deadline, and the deadlines in order (stale
        # entries are skipped when they do not match the dict).
        self._linger: dict[str, float] = {}
        self._linger_queue: deque[tuple[float, str]] = deque()
        # Id cache: (channel, id) -> expiry, and the expiries in order.
        self._ids: dict[tuple[str, str], float] = {}
        self._id_queue: deque[tuple[float, tuple[str, str]]] = deque()
        # Ordering: last delivered id per channel (LRU), parked items by channel and
        # prev-id, and the park deadlines in order.
        self._last_ids: OrderedDict[str, str] = OrderedDict()
        self._parked: dict[str, dict[str, _Parked]] = {}
        self._park_queue: deque[tuple[float, str, str, _Parked]] = deque()

    # ---- subscriptions -------------------------------------------------------------

    def subscribe(
        self, channel: str, sub: Subscriber, now: float, *, wildcard: bool = False
    ) -> bool:
        """Add ``sub`` to ``channel``; O(1). Subscribing twice is a no-op.

        With ``wildcard`` (the route allows patterns), a ``channel`` ending with ``*`` is
        a pattern, subscribed in O(len(channel)).

        :returns: True when the channel had no subscriber before, not even a lingering
            one: the caller's cue for an update on first subscription.
        """
        prefix = pattern_prefix(channel) if wildcard else None
        first = False
        if prefix is not None:
            groups = self._patterns.get(prefix)
            if groups is None:
                groups = self._patterns[prefix] = {}
                self._trie.set(prefix, groups)
                first = channel not in self._channels and channel not in self._linger
        else:
            groups = self._channels.get(channel)
            if groups is None:
                groups = self._channels[channel] = {}
                first = (self._linger.pop(channel, None) is None
                         and not self._pattern_named(channel))
        fmt = sub.format
        group = groups.get(fmt)
        if group is None:
            group = groups[fmt] = _Group()
        if sub not in group.subs:
            group.subs[sub] = None
            group.snapshot = None
            for changed in self.on_changed:
                changed(channel)
        if first:
            for listener in self.on_subscribed:
                listener(channel)
        return first

    def unsubscribe(
        self, channel: str, sub: Subscriber, now: float, *, linger: bool = False,
        wildcard: bool = False,
    ) -> None:
        """Remove ``sub`` from ``channel``; O(1). Unknown pairs are ignored.

        When it was the channel's last subscriber, the channel becomes unsubscribed at once
        (parked items discarded, last id forgotten, ``on_unsubscribed`` called) unless
        ``linger`` (a response hold), which keeps it subscribed until
        ``now + subscription_linger``. ``wildcard`` as for :meth:`subscribe`; a pattern
        never lingers (it has no ordering state to keep).
        """
        prefix = pattern_prefix(channel) if wildcard else None
        if prefix is not None:
            if self._remove(self._patterns, prefix, channel, sub):
                self._trie.remove(prefix)
                if channel not in self._channels and channel not in self._linger:
                    for listener in self.on_unsubscribed:
                        listener(channel)
            return
        if not self._remove(self._channels, channel, channel, sub):
            return
        if linger and self.subscription_linger > 0:
            deadline = now + self.subscription_linger
            self._linger[channel] = deadline
            self._linger_queue.append((deadline, channel))
        else:
            self._unsubscribed(channel)

    def subscriber_count(self, channel: str) -> int:
        """How many subscribers ``channel`` has now (a lingering channel has none); for a
        name like ``news.*``, those of the pattern too."""
        return len(self.subscribers(channel))

    def subscriber_counts(self, channel: str) -> dict[str, int]:
        """How many subscribers ``channel`` has now, by format (patterns as above)."""
        counts: dict[str, int] = {}
        for groups in self._named(channel):
            for fmt, group in groups.items():
                counts[fmt] = counts.get(fmt, 0) + len(group.subs)
        return counts

    def subscriptions_by_format(self) -> dict[str, int]:
        """(channel, subscriber) pairs over every channel and pattern, by format;
        O(channels + patterns)."""
        counts: dict[str, int] = {}
        for groups in (*self._channels.values(), *self._patterns.values()):
            for fmt, group in groups.items():
                counts[fmt] = counts.get(fmt, 0) + len(group.subs)
        return counts

    def subscribers(self, channel: str) -> list[Subscriber]:
        """The current subscribers of ``channel`` (and of the pattern of that name),
        whatever their format, each once."""
        subs = {sub: None for groups in self._named(channel) for group in groups.values()
                for sub in group.subs}
        return list(subs)

    def receivers(self, item: PublishItem) -> int:
        """How many subscribers would take ``item`` now (one of its formats each), those
        of matching patterns included, each once."""
        groups = self._channels.get(item.channel)
        if self._patterns:
            matched = [*self._trie.matches(item.channel)]
            if groups is not None:
                matched.append(groups)
            return len({sub for groups in matched for fmt in item.formats
                        if (group := groups.get(fmt)) is not None for sub in group.subs})
        if groups is None:
            return 0
        return sum(len(group.subs) for fmt in item.formats
                   if (group := groups.get(fmt)) is not None)

    def has_pattern_for(self, channel: str) -> bool:
        """Whether some subscribed pattern matches ``channel``; O(len(channel)), nothing
        while no pattern is subscribed."""
        return bool(self._patterns) and next(self._trie.matches(channel), None) is not None

    def channels(self) -> int:
        """How many channels and patterns are subscribed, lingering channels included."""
        return len(self._channels) + len(self._linger) + len(self._patterns)

    def sizes(self) -> dict[str, int]:
        """How big each of the hub's tables is now: for metrics and leak checks;
        O(channels + patterns)."""
        return {
            "channels": len(self._channels),
            "subscribers": sum(len(g.subs) for groups in (*self._channels.values(),
                                                          *self._patterns.values())
                               for g in groups.values()),
            "lingering": len(self._linger),
            "ids_cached": len(self._ids),
            "last_ids": len(self._last_ids),
            "parked": sum(len(p) for p in self._parked.values()),
            "deadlines": len(self._linger_queue) + len(self._id_queue) + len(self._park_queue),
            "patterns": len(self._patterns),
            "pattern_nodes": self._trie.nodes - 1,
        }

    def is_subscribed(self, channel: str) -> bool:
        """Whether ``channel`` has a subscriber or a lingering subscription, or is the name
        of a subscribed pattern."""
        return (channel in self._channels or channel in self._linger
                or (bool(self._patterns) and self._pattern_named(channel)))

    # ---- last ids ------------------------------------------------------------------

    def last_id(self, channel: str) -> str | None:
        """The id of the last sequenced item delivered on ``channel``, if known."""
        return self._last_ids.get(channel)

    def forget_last_id(self, channel: str) -> None:
        """Forget ``channel``'s last id: its next item is delivered whatever its prev-id."""
        self._last_ids.pop(channel, None)

    def clear_last_ids(self) -> None:
        """Forget every last id (the recover command)."""
        self._last_ids.clear()

    # ---- publishing ----------------------------------------------------------------

    def publish(self, item: PublishItem, now: float) -> int:
        """Run one item through de-duplication and ordering, then fan it out (§5).

        :returns: the deliveries this call made: the item's receivers plus those of any
            parked items it released; 0 when it was dropped or parked.
        """
        self.stats.published += 1
        channel = item.channel
        sequenced = not item.no_seq and (channel in self._channels or channel in self._linger)

        if self.is_duplicate(item, now):
            return 0

        if not sequenced:
            return self._fan_out(item)

        prev_id = item.prev_id
        if prev_id is not None:
            last = self._last_ids.get(channel)
            if last is not None and last != prev_id:
                self._park(item, prev_id, now)
                return 0
        return self._send(item)

    def is_duplicate(self, item: PublishItem, now: float) -> bool:
        """Whether ``item`` repeats a ``(channel, id)`` seen in the last ``id_cache_ttl``
        seconds (counted as dropped); if not, its id is remembered. ``publish`` asks this
        first; a supervisor asks it for all its workers.
        """
        if item.id is None or self.id_cache_ttl <= 0:
            return False
        self._expire_ids(now)
        key = (item.channel, item.id)
        if key in self._ids:
            self.stats.duplicates_dropped += 1
            self._withheld(item, "duplicate")
            return True
        expiry = now + self.id_cache_ttl
        self._ids[key] = expiry
        self._id_queue.append((expiry, key))
        return False

    def tick(self, now: float) -> None:
        """Do what has fallen due: deliver parked items that waited ``message_wait`` (in
        the order they were parked), end expired lingering subscriptions, expire ids."""
        queue = self._park_queue
        while queue and queue[0][0] <= now:
            _, channel, prev_id, parked = queue.popleft()
            pending = self._parked.get(channel)
            if pending is None or pending.get(prev_id) is not parked:
                continue  # released or discarded already
            del pending[prev_id]
            if not pending:
                del self._parked[channel]
            self.stats.parked_released_late += 1
            self._send(parked.item)

        lqueue = self._linger_queue
        while lqueue and lqueue[0][0] <= now:
            deadline, channel = lqueue.popleft()
            if self._linger.get(channel) == deadline:
                del self._linger[channel]
                self._unsubscribed(channel)

        self._expire_ids(now)

    def is_parked(self, item: PublishItem) -> bool:
        """Whether ``item`` itself waits for its predecessor now."""
        pending = self._parked.get(item.channel)
        if pending is None or item.prev_id is None:
            return False
        parked = pending.get(item.prev_id)
        return parked is not None and parked.item is item

    # ---- internals -----------------------------------------------------------------

    def _unsubscribed(self, channel: str) -> None:
        """``channel`` has no subscription left: drop its ordering state, tell listeners
        (unless a pattern of that name is still subscribed)."""
        self._parked.pop(channel, None)
        self._last_ids.pop(channel, None)
        if not self._pattern_named(channel):
            for listener in self.on_unsubscribed:
                listener(channel)

    def _pattern_named(self, name: str) -> bool:
        """Whether ``name`` is the name of a subscribed pattern."""
        prefix = pattern_prefix(name)
        return prefix is not None and prefix in self._patterns

    def _named(self, name: str) -> list[dict[str, _Group]]:
        """The groups of the channel ``name`` and of the pattern ``name``."""
        prefix = pattern_prefix(name)
        pattern = self._patterns.get(prefix) if prefix is not None else None
        return [g for g in (self._channels.get(name), pattern) if g is not None]

    def _remove(self, table: dict[str, dict[str, _Group]], key: str, name: str,
                sub: Subscriber) -> bool:
        """Take ``sub`` out of ``table[key]`` (a channel's or a pattern's groups), telling
        ``on_changed`` about ``name``.

        :returns: True when that left ``key`` without any subscriber (its entry is gone).
        """
        groups = table.get(key)
        if groups is None:
            return False
        fmt = sub.format
        group = groups.get(fmt)
        if group is None or sub not in group.subs:
            return False
        del group.subs[sub]
        group.snapshot = None
        self._removals += 1
        for changed in self.on_changed:
            changed(name)
        if group.subs:
            return False
        del groups[fmt]
        if groups:
            return False
        del table[key]
        return True

    def _expire_ids(self, now: float) -> None:
        queue = self._id_queue
        ids = self._ids
        while queue and queue[0][0] <= now:
            expiry, key = queue.popleft()
            if ids.get(key) == expiry:
                del ids[key]

    def _set_last_id(self, channel: str, item_id: str | None) -> None:
        last_ids = self._last_ids
        if item_id is None:
            last_ids.pop(channel, None)
            return
        last_ids[channel] = item_id
        last_ids.move_to_end(channel)
        if len(last_ids) > self.max_last_ids:
            last_ids.popitem(last=False)

    def _park(self, item: PublishItem, prev_id: str, now: float) -> None:
        pending = self._parked.get(item.channel)
        if pending is None:
            pending = self._parked[item.channel] = {}
        if prev_id in pending or len(pending) >= self.max_parked_per_channel:
            self.stats.parked_dropped += 1
            if not pending:
                del self._parked[item.channel]
            self._withheld(item, "dropped")
            return
        parked = _Parked(item)
        pending[prev_id] = parked
        self._park_queue.append((now + self.message_wait, item.channel, prev_id, parked))
        self.stats.parked += 1
        self._withheld(item, "parked")

    def _withheld(self, item: PublishItem, reason: str) -> None:
        for listener in self.on_withheld:
            listener(item, reason)

    def _send(self, item: PublishItem) -> int:
        """Deliver a sequenced item, then the chain of parked items that follow it."""
        channel = item.channel
        self._set_last_id(channel, item.id)
        n = self._fan_out(item)
        next_id = item.id
        while next_id is not None:
            # Looked up afresh each time: a delivery may have unsubscribed the channel.
            pending = self._parked.get(channel)
            if pending is None:
                break
            parked = pending.pop(next_id, None)
            if parked is None:
                break
            if not pending:
                del self._parked[channel]
            follower = parked.item
            self._set_last_id(channel, follower.id)
            n += self._fan_out(follower)
            next_id = follower.id
        return n

    def _fan_out(self, item: PublishItem) -> int:
        """Hand ``item`` to each subscriber of its channel that takes one of its formats."""
        for sent in self.on_sent:
            sent(item)
        if self._patterns:
            matched = [*self._trie.matches(item.channel)]
            if matched:
                return self._fan_out_matching(item, matched)
        groups = self._channels.get(item.channel)
        n = 0
        if groups is not None:
            for fmt in item.formats:
                group = groups.get(fmt)
                if group is None:
                    continue
                snapshot = group.members()
                removals = self._removals
                skipped = 0
                for sub in snapshot:
                    # Only after a removal during this loop: skip subscribers now gone.
                    if self._removals != removals and sub not in group.subs:
                        skipped += 1
                        continue
                    sub.deliver(item)
                n += self._count(item, fmt, len(snapshot) - skipped)
        return n

    def _fan_out_matching(self, item: PublishItem, matched: list[dict[str, _Group]]) -> int:
        """``_fan_out`` for an item that ``matched`` some patterns (their groups): it goes
        to the subscribers of its channel and of those patterns, each once."""
        groups = self._channels.get(item.channel)
        if groups is not None:
            matched.insert(0, groups)
        n = 0
        for fmt in item.formats:
            fmt_groups = [group for groups in matched if (group := groups.get(fmt)) is not None]
            if not fmt_groups:
                continue
            seen: set[Subscriber] = set()
            removals = self._removals
            for group in fmt_groups:
                for sub in group.members():
                    if sub in seen or (self._removals != removals and sub not in group.subs):
                        continue
                    seen.add(sub)
                    sub.deliver(item)
            n += self._count(item, fmt, len(seen))
        return n

    def _count(self, item: PublishItem, fmt: str, got: int) -> int:
        """Count ``item``'s delivery to ``got`` subscribers taking ``fmt`` and tell the
        ``on_delivered`` listeners; returns ``got``."""
        stats = self.stats
        stats.delivered += got
        stats.delivered_by_format[fmt] = stats.delivered_by_format.get(fmt, 0) + got
        for listener in self.on_delivered:
            listener(item, fmt, got)
        return got
