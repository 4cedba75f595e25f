"""When a stream writes its keep-alive (``Grip-Keep-Alive``, grip.md §3.2), sans-I/O.

``idle`` mode writes the data after ``timeout`` seconds in which nothing was written,
so each write restarts the wait; ``interval`` mode writes it every ``timeout`` seconds
whatever else is written. Each wait is ``timeout`` minus a random part of up to
``jitter`` seconds (Pushpin: 0-999 ms), so many streams opened together spread out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from p8core import Action, ArmTimer, KeepAlive, SendBody
from p8core.hold import CancelTimer

__all__ = ["KEEP_ALIVE_TIMER", "KeepAliveTimer"]

KEEP_ALIVE_TIMER: Final = "keep-alive"


class KeepAliveTimer:
    """The keep-alive of one stream: which timer to arm, and what to write when it fires.

    :param random: returns a float in [0, 1); scaled by ``jitter`` it is taken off each wait.
    """

    __slots__ = ("armed", "config", "jitter", "random")

    def __init__(self, config: KeepAlive | None, *, jitter: float,
                 random: Callable[[], float]) -> None:
        self.config = config
        self.jitter = jitter
        self.random = random
        self.armed = False

    def wait(self) -> float:
        """Seconds until the next keep-alive: the timeout less the jitter, at least 0."""
        assert self.config is not None
        return max(self.config.timeout - self.random() * self.jitter, 0.0)

    def start(self) -> list[Action]:
        """The stream begins holding: arm the first wait, if there is a keep-alive."""
        if self.config is None:
            return []
        self.armed = True
        return [ArmTimer(self.wait(), KEEP_ALIVE_TIMER)]

    def wrote(self) -> list[Action]:
        """Data other than a keep-alive was written: idle mode starts waiting again."""
        config = self.config
        if self.armed and config is not None and config.mode == "idle":
            return [ArmTimer(self.wait(), KEEP_ALIVE_TIMER)]
        return []

    def fire(self) -> list[Action]:
        """The timer fired: write the keep-alive and wait again."""
        if self.config is None or not self.armed:
            return []
        return [SendBody(self.config.data), ArmTimer(self.wait(), KEEP_ALIVE_TIMER)]

    def replace(self, config: KeepAlive | None, *, wrote: bool = False) -> list[Action]:
        """New instructions (a next link's) hold the stream again, after writing a body
        if ``wrote``: keep the pending wait when its timing is unchanged and nothing
        restarts it (only the data may differ), else start over, or stop."""
        old, self.config = self.config, config
        if config is None:
            was_armed, self.armed = self.armed, False
            return [CancelTimer(KEEP_ALIVE_TIMER)] if was_armed else []
        if (self.armed and old is not None and (old.timeout, old.mode) == (config.timeout,
                                                                           config.mode)
                and not (wrote and config.mode == "idle")):
            return []
        return self.start()
