"""When a stream fetches its next link (``Grip-Link: <...>; rel=next``, grip.md §6), sans-I/O.

A link is fetched every ``timeout`` seconds while the stream stays open, except that a
period in which every subscribed channel delivered something is skipped (the stream is
visibly live); at once on a ``hint`` item, a prev-id gap or an update (first subscription,
``/recover``). One fetch runs at a time: asking again meanwhile fetches once more after it.
A failed fetch (no answer, or a non-2xx one) is retried after 1, 2, 4, 8 and 16 seconds
(``retry_delay`` doubled each time) plus a random part of up to ``jitter`` seconds; after
``retry_max`` retries the stream gives up.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Final

from p8core import Action, ArmTimer, NextLink
from p8core.grip.instructions import grip_last_headers
from p8core.hold import CancelTimer, Fetch

__all__ = ["LINK_TIMER", "MIN_LINK_TIMEOUT", "RETRY_TIMER", "NextLinkState"]

LINK_TIMER: Final = "next-link"
RETRY_TIMER: Final = "next-link-retry"
MIN_LINK_TIMEOUT: Final = 1.0
"""Seconds; ``timeout=0`` would otherwise fetch without pause."""


class NextLinkState:
    """The next link of one stream, its period, and the fetch in progress."""

    __slots__ = (
        "active",
        "again",
        "fetching",
        "jitter",
        "link",
        "random",
        "retries",
        "retry_delay",
        "retry_max",
        "timing",
    )

    def __init__(self, link: NextLink | None, *, retry_delay: float, retry_max: int,
                 jitter: float, random: Callable[[], float]) -> None:
        self.link = link
        self.retry_delay, self.retry_max = retry_delay, retry_max
        self.jitter, self.random = jitter, random
        self.fetching = False
        self.retries = 0
        self.again = False
        self.timing = False
        #: Channels that delivered something during the current period.
        self.active: set[str] = set()

    def period(self) -> list[Action]:
        """Start a new period: the link is fetched when it ends, unless it was live."""
        self.active.clear()
        if self.link is None:
            timing, self.timing = self.timing, False
            return [CancelTimer(LINK_TIMER)] if timing else []
        self.timing = True
        return [ArmTimer(max(float(self.link.timeout), MIN_LINK_TIMEOUT), LINK_TIMER)]

    def delivered(self, channel: str) -> None:
        """A published item was written for ``channel``."""
        if self.link is not None:
            self.active.add(channel)

    def period_ended(self, channels: Collection[str],
                     prev_ids: Mapping[str, str]) -> list[Action]:
        """The period's timer fired: fetch, or skip a period when every channel of
        ``channels`` delivered during it."""
        self.timing = False
        if self.fetching or self.link is None:
            return []
        if channels and all(channel in self.active for channel in channels):
            return self.period()
        return self.fetch(prev_ids, urgent=False)

    def fetch(self, prev_ids: Mapping[str, str], *, urgent: bool = True) -> list[Action]:
        """Fetch the link, sending ``Grip-Last`` for each channel in ``prev_ids``: at once
        when ``urgent``, else within the proxy's rate for updates (grip.md §7.4): periods,
        gaps and updates are not urgent; a hint and the next piece of a chain are.

        Nothing happens without a link; during a fetch, another one follows it.
        """
        if self.link is None:
            return []
        if self.fetching:
            self.again = True
            return []
        self.fetching = True
        self.retries = 0
        timing, self.timing = self.timing, False
        cancel: list[Action] = [CancelTimer(LINK_TIMER)] if timing else []
        return [*cancel, self._request(prev_ids, urgent)]

    def retry(self, prev_ids: Mapping[str, str]) -> list[Action]:
        """The retry timer fired: send the request again."""
        if not self.fetching or self.link is None:
            return []
        return [self._request(prev_ids)]

    def failed(self) -> list[Action] | None:
        """The fetch failed: the retry to wait for, or ``None`` when none is left."""
        if self.retries >= self.retry_max:
            self.fetching = False
            return None
        delay = self.retry_delay * 2 ** self.retries + self.random() * self.jitter
        self.retries += 1
        return [ArmTimer(delay, RETRY_TIMER)]

    def succeeded(self, link: NextLink | None) -> bool:
        """The fetch succeeded and its answer names ``link`` next.

        :returns: whether another fetch was asked for meanwhile.
        """
        self.fetching = False
        self.retries = 0
        self.link = link
        again, self.again = self.again, False
        return again

    def _request(self, prev_ids: Mapping[str, str], urgent: bool = True) -> Fetch:
        assert self.link is not None
        return Fetch(self.link.url, tuple(grip_last_headers(prev_ids)), urgent)
