"""Pushpin's ``message_rate`` and ``message_hwm`` (publishing.md §5): a budget of
deliveries per second, and a bounded queue of the items waiting for it.

Sans-I/O: the shell passes the time in and hands what :meth:`DeliveryRate.release` returns
to the hub.
"""

from __future__ import annotations

from collections import deque

from .items import PublishItem

__all__ = ["BATCH_SECONDS", "DeliveryRate"]

BATCH_SECONDS = 0.025
"""Waiting items are released in batches this far apart (longer below 40 deliveries/s)."""


class DeliveryRate:
    """A token bucket of deliveries in front of the hub, shared by every channel.

    An item weighs as many deliveries as it has receivers (at least one). It goes at once
    when nothing is waiting and budget is left; the budget may then go into debt, so an
    item is never split between subscribers. Otherwise it waits, in publish order. Waiting
    items weigh at most ``hwm`` together, except that a publish is always taken when nothing
    waits.
    """

    __slots__ = ("allowance", "burst", "hwm", "interval", "pending", "rate", "updated",
                 "waiting")

    def __init__(self, rate: int, hwm: int) -> None:
        """
        :param rate: deliveries per second (at least 1).
        :param hwm: deliveries that may wait.
        """
        self.rate, self.hwm = rate, hwm
        self.interval = max(BATCH_SECONDS, 1 / rate)
        self.burst = rate * self.interval
        self.allowance = self.burst
        self.updated: float | None = None
        self.waiting: deque[tuple[PublishItem, int]] = deque()
        self.pending = 0
        """The weight of the waiting items."""

    def admits(self, weight: int) -> bool:
        """Whether a publish of ``weight`` deliveries may be taken, now or to wait."""
        return not self.waiting or self.pending + weight <= self.hwm

    def offer(self, item: PublishItem, weight: int, now: float) -> bool:
        """Take an admitted item: True when it may be delivered now, False when it waits."""
        self._refill(now)
        if not self.waiting and self.allowance > 0:
            self.allowance -= weight
            return True
        self.waiting.append((item, weight))
        self.pending += weight
        return False

    def release(self, now: float) -> list[PublishItem]:
        """The waiting items the budget allows now, in publish order."""
        self._refill(now)
        out: list[PublishItem] = []
        waiting = self.waiting
        while waiting and self.allowance > 0:
            item, weight = waiting.popleft()
            self.pending -= weight
            self.allowance -= weight
            out.append(item)
        return out

    def _refill(self, now: float) -> None:
        if self.updated is not None:
            self.allowance = min(self.burst,
                                 self.allowance + (now - self.updated) * self.rate)
        self.updated = now
