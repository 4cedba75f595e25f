"""Short full garbage collections while many connections are held.

A full collection visits every container object the process tracks, so with tens of
thousands of held connections it stops the event loop for hundreds of milliseconds. The
objects of a held connection live for minutes and are freed by reference counting when it
ends (its teardown makes no reference cycles), so the collector gains nothing by visiting
them again and again. :class:`HeapFreezer` moves them out of its sight with
:func:`gc.freeze` once enough new connections have arrived, and hands them back with
:func:`gc.unfreeze` when most of them have gone, so that cyclic garbage among them is still
reclaimed.
"""

from __future__ import annotations

import gc

import structlog

log = structlog.get_logger(component="heap")


class HeapFreezer:
    """Freezes the heap in steps of ``step`` new connections; ``step = 0`` disables it.

    Call :meth:`observe` periodically with the number of open connections. Each freeze is
    preceded by a collection of the objects not yet frozen, so garbage is not frozen, and
    that collection only visits what arrived since the previous step.
    """

    def __init__(self, step: int) -> None:
        self.step = step
        self.opened_at_freeze = 0
        self.open_at_freeze = 0
        """Open connections when the heap was last frozen (0: nothing frozen)."""

    def observe(self, opened: int, open_now: int) -> None:
        """Freeze once ``step`` connections were opened since the last freeze (while at
        least ``step`` are open); unfreeze once fewer than half of those held then are open.

        :param opened: connections opened since the start (a running count).
        :param open_now: connections open now.
        """
        if self.step <= 0:
            return
        if opened >= self.opened_at_freeze + self.step and open_now >= self.step:
            gc.collect()
            gc.freeze()
            self.opened_at_freeze, self.open_at_freeze = opened, open_now
            log.debug("heap_frozen", connections=open_now, objects=gc.get_freeze_count())
        elif open_now < self.open_at_freeze // 2:
            self.release()

    def release(self) -> None:
        """Hand every frozen object back to the collector (also at shutdown)."""
        if self.open_at_freeze:
            gc.unfreeze()
            log.debug("heap_unfrozen", was=self.open_at_freeze)
            self.open_at_freeze = 0
