"""Delivery feedback: what one publish did with each of its items, as the hub reports it.

Sans-I/O. A :class:`Feedback` listens to the hub only while its own publish runs (the hub
is synchronous, so nothing else is delivered meanwhile): the per-format counts come from
the hub's fan-out itself (``on_delivered``), the reasons an item was held back from
``on_withheld``. A publish that asks for no feedback costs the hub nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..listeners import listening
from .items import PublishItem

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["FORWARDED_NOTE", "Feedback"]

FORWARDED_NOTE = ("[server] workers > 1: the workers hold the subscribers and deliver on "
                  "their own; the supervisor does not count them")
"""Why a supervisor's answers have no subscriber counts."""


class _Outcome:
    """One item's fate: ``delivered`` (now; the counts say to whom), ``duplicate``,
    ``parked``, ``dropped`` (could not be parked), ``delayed`` (``message_rate``) or
    ``forwarded`` (to the workers, which count on their own)."""

    __slots__ = ("by_format", "item", "result")

    def __init__(self, item: PublishItem) -> None:
        self.item = item
        self.result = "delivered"
        self.by_format: dict[str, int] = {}


class Feedback:
    """The per-item report of one publish, filled in while it runs."""

    def __init__(self) -> None:
        self.outcomes: list[_Outcome] = []
        self._by_item: dict[int, _Outcome] = {}
        self.forwarded = False
        """The items went to workers: no counts are known here."""

    @contextmanager
    def following(self, items: Sequence[PublishItem], hub: Hub, *,
                  forwarded: bool) -> Iterator[None]:
        """Hear what ``hub`` does with ``items`` while the block runs.

        :param forwarded: the items go to workers, not to ``hub``'s subscribers.
        """
        self.forwarded = forwarded
        self.outcomes = [_Outcome(item) for item in items]
        self._by_item = {id(o.item): o for o in self.outcomes}
        with listening((hub.on_delivered, self.delivered), (hub.on_withheld, self.withheld)):
            yield
        for outcome in self.outcomes:
            if outcome.result == "parked" and not hub.is_parked(outcome.item):
                outcome.result = "delivered"  # a later item of the same publish released it
            elif forwarded and outcome.result == "delivered":
                outcome.result = "forwarded"

    def delivered(self, item: PublishItem, fmt: str, count: int) -> None:
        """The hub handed ``item`` to ``count`` subscribers taking ``fmt``."""
        outcome = self._by_item.get(id(item))
        if outcome is not None and outcome.item is item:
            outcome.by_format[fmt] = outcome.by_format.get(fmt, 0) + count

    def withheld(self, item: PublishItem, reason: str) -> None:
        """``item`` was not delivered now, for ``reason`` (the outcome's ``result``)."""
        outcome = self._by_item.get(id(item))
        if outcome is not None and outcome.item is item:
            outcome.result = reason

    def report(self) -> dict[str, Any]:
        """The JSON of the verbose publish answer, without its ``message``."""
        items: list[dict[str, Any]] = []
        for o in self.outcomes:
            unknown = o.result == "forwarded"
            items.append({
                "channel": o.item.channel,
                "id": o.item.id,
                "result": o.result,
                "receivers": None if unknown else sum(o.by_format.values()),
                "by_format": None if unknown else dict(sorted(o.by_format.items())),
            })
        answer: dict[str, Any] = {"items": items}
        if self.forwarded:
            answer["receivers_unknown"] = FORWARDED_NOTE
        return answer
