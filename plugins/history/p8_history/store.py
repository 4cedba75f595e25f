"""What a history store is: the interface behind ``[plugins.history] store``.

A store keeps, per channel, the items the hub sent, oldest first, within the configured
bounds, and answers "what came after this id?". Plugins offer stores through the
``p8_history_stores`` hook (:mod:`p8_history.hookspecs`); ``memory`` is built in.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from p8core import PublishItem

from .settings import HistorySettings

__all__ = ["HistoryStore", "payload_bytes"]


class HistoryStore(ABC):
    """Per-channel histories of published items, bounded by :class:`HistorySettings`.

    Its methods are plain calls made on the event loop (``append`` for every item the hub
    sends): they must not block. Eviction always takes a channel's oldest items, so that
    a store holding an id also holds every item sent on that channel after it.
    """

    #: The name ``[plugins.history] store`` selects it by.
    name: ClassVar[str]

    def __init__(self, settings: HistorySettings) -> None:
        self.settings = settings

    @abstractmethod
    def append(self, item: PublishItem, now: float) -> None:
        """Keep ``item`` as the newest of its channel, evicting what the bounds require.

        :param now: the monotonic time, for ``max_age``.
        """

    @abstractmethod
    def items_after(self, channel: str, item_id: str, now: float) -> list[PublishItem] | None:
        """The items sent on ``channel`` after the one with id ``item_id``, oldest first.

        :returns: ``None`` when the history does not reach back to that id (never held,
            evicted, or older than ``max_age``); an empty list when it is the newest.
        """

    @abstractmethod
    def sizes(self) -> Mapping[str, int]:
        """How much is kept now: ``channels``, ``items`` and ``bytes`` (of payload)."""


def payload_bytes(value: object) -> int:
    """The bytes of a parsed format payload: the lengths of every ``bytes`` and ``str`` in
    it, through dataclasses, sequences and mappings (format plugins parse into those)."""
    if isinstance(value, bytes | bytearray | str):
        return len(value)
    if isinstance(value, Mapping):
        return sum(payload_bytes(k) + payload_bytes(v) for k, v in value.items())
    if isinstance(value, tuple | list | frozenset | set):
        return sum(payload_bytes(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(payload_bytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 0
