"""The ``memory`` history store: a ring per channel in this process's memory."""

from __future__ import annotations

from collections import OrderedDict, deque
from itertools import islice

from p8core import PublishItem

from .settings import HistorySettings
from .store import HistoryStore, payload_bytes

__all__ = ["MemoryStore"]


class _Ring:
    """One channel's items, oldest first, with an index from id to position.

    Positions count every item ever pushed, so the index survives evictions: the item
    numbered ``n`` sits at ``entries[n - first]``.
    """

    __slots__ = ("entries", "first", "ids", "size")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int, PublishItem]] = deque()  # (time, bytes, item)
        self.ids: dict[str, int] = {}
        self.first = 0
        self.size = 0

    def push(self, now: float, size: int, item: PublishItem) -> None:
        if item.id is not None:
            self.ids[item.id] = self.first + len(self.entries)
        self.entries.append((now, size, item))
        self.size += size

    def trim(self, max_items: int, max_bytes: int, max_age: float, now: float) -> None:
        """Evict the oldest items until the ring is within its bounds."""
        entries = self.entries
        while len(entries) > max_items or self.size > max_bytes:
            self._drop_oldest()
        if max_age:
            oldest = now - max_age
            while entries and entries[0][0] < oldest:
                self._drop_oldest()

    def after(self, item_id: str) -> list[PublishItem] | None:
        number = self.ids.get(item_id)
        if number is None:
            return None
        return [item for _, _, item in islice(self.entries, number - self.first + 1, None)]

    def _drop_oldest(self) -> None:
        _, size, item = self.entries.popleft()
        if item.id is not None and self.ids.get(item.id) == self.first:
            del self.ids[item.id]
        self.first += 1
        self.size -= size


class MemoryStore(HistoryStore):
    """Rings in memory, one per channel, the least recently published channel dropped
    first beyond ``max_channels``. Lost on restart; not shared between processes."""

    name = "memory"

    def __init__(self, settings: HistorySettings) -> None:
        super().__init__(settings)
        self._rings: OrderedDict[str, _Ring] = OrderedDict()

    def append(self, item: PublishItem, now: float) -> None:
        settings, rings, channel = self.settings, self._rings, item.channel
        size = sum(payload_bytes(payload) for payload in item.formats.values())
        ring = rings.get(channel)
        if size > settings.max_bytes:
            # It cannot be kept, so nothing before it may be resumed from either.
            rings.pop(channel, None)
            return
        if ring is None:
            ring = rings[channel] = _Ring()
            if len(rings) > settings.max_channels:
                rings.popitem(last=False)
        else:
            rings.move_to_end(channel)
        ring.push(now, size, item)
        ring.trim(settings.max_items, settings.max_bytes, settings.max_age, now)

    def items_after(self, channel: str, item_id: str, now: float) -> list[PublishItem] | None:
        ring = self._rings.get(channel)
        if ring is None:
            return None
        settings = self.settings
        ring.trim(settings.max_items, settings.max_bytes, settings.max_age, now)
        if not ring.entries:
            del self._rings[channel]
            return None
        return ring.after(item_id)

    def sizes(self) -> dict[str, int]:
        rings = self._rings.values()
        return {"channels": len(self._rings),
                "items": sum(len(ring.entries) for ring in rings),
                "bytes": sum(ring.size for ring in rings)}
