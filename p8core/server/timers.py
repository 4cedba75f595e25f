"""One shared timer wheel for every hold's timer, instead of a timer per connection."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable


class TimerWheel:
    """Runs callbacks after a delay, at ``resolution`` granularity, on one asyncio timer.

    Each owner has at most one pending timer: arming again replaces it. Callbacks run in
    the event loop and must not block.
    """

    def __init__(self, resolution: float = 0.1) -> None:
        self.resolution = resolution
        self._slots: dict[int, dict[object, Callable[[], None]]] = {}
        self._due: dict[object, int] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._next_slot = math.inf

    def __len__(self) -> int:
        return len(self._due)

    def arm(self, owner: object, seconds: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` about ``seconds`` from now, replacing ``owner``'s pending timer."""
        self.cancel(owner)
        loop = asyncio.get_running_loop()
        slot = math.ceil((loop.time() + max(seconds, 0.0)) / self.resolution)
        self._slots.setdefault(slot, {})[owner] = callback
        self._due[owner] = slot
        if slot < self._next_slot:
            if self._handle is not None:
                self._handle.cancel()
            self._next_slot = slot
            self._handle = loop.call_at(slot * self.resolution, self._fire)

    def cancel(self, owner: object) -> None:
        """Drop ``owner``'s pending timer, if any."""
        slot = self._due.pop(owner, None)
        if slot is not None:
            bucket = self._slots[slot]
            del bucket[owner]
            if not bucket:
                del self._slots[slot]

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        now_slot = math.floor(loop.time() / self.resolution + 1e-9)
        self._handle, self._next_slot = None, math.inf
        for slot in sorted(s for s in self._slots if s <= now_slot):
            # The bucket stays in place while its callbacks run: one may cancel or re-arm
            # another owner due in this same slot. Owners armed meanwhile wait for the
            # next run.
            bucket = self._slots.get(slot)
            if bucket is None:
                continue
            for owner in list(bucket):
                callback = bucket.pop(owner, None)
                if callback is None:
                    continue  # cancelled by an earlier callback
                del self._due[owner]
                callback()
            if not bucket and self._slots.get(slot) is bucket:
                del self._slots[slot]
        if self._handle is not None:  # a callback armed a timer: rescheduled below
            self._handle.cancel()
            self._handle, self._next_slot = None, math.inf
        if self._slots:
            self._next_slot = min(self._slots)
            self._handle = loop.call_at(self._next_slot * self.resolution, self._fire)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._slots.clear()
        self._due.clear()
