"""Wildcard channels: ``news.*`` names every channel that starts with ``news.``.

Only a trailing ``*`` makes a pattern, and only on a route with ``wildcard = true``;
elsewhere ``*`` is a plain character of a channel name. A pattern's *prefix* is its name
without the ``*``; a bare ``*`` (prefix ``""``) matches every channel.

The prefixes live in a character trie, so the patterns matching a channel are found in
one walk along its name, whatever the number of patterns.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Generic, TypeVar

__all__ = ["WILDCARD", "PrefixTrie", "filter_prefix", "pattern_prefix", "pattern_problem",
           "subscribed_as"]

WILDCARD = "*"

V = TypeVar("V")


def pattern_prefix(channel: str) -> str | None:
    """The prefix of ``channel`` when it is a pattern (ends with ``*``), else ``None``."""
    return channel[:-1] if channel.endswith(WILDCARD) else None


def filter_prefix(name: str) -> str:
    """What a prefix-matching filter (a ZeroMQ SUB socket's) must let through for the
    hub's subscription ``name``: ``news.`` for ``news.*``, the name itself otherwise.

    A channel literally named ``news.*`` gets the same wider filter; the hub still
    delivers by exact name, so it only lets a little more through the socket.
    """
    prefix = pattern_prefix(name)
    return name if prefix is None else prefix


def pattern_problem(channel: str) -> str | None:
    """Why ``channel`` cannot be subscribed on a wildcard route (a ``*`` before its end),
    or ``None`` when it can."""
    if WILDCARD in channel[:-1]:
        return "'*' is allowed only at the end of a channel name"
    return None


def subscribed_as(names: Collection[str], channel: str) -> str | None:
    """Which of a subscriber's ``names`` brought it an item on ``channel``: ``channel``
    itself, else the longest pattern matching it; ``None`` for none. O(len(names)) on a
    miss, which only a pattern's deliveries take."""
    if channel in names:
        return channel
    best: str | None = None
    for name in names:
        prefix = pattern_prefix(name)
        if (prefix is not None and channel.startswith(prefix)
                and (best is None or len(name) > len(best))):
            best = name
    return best


class _Node(Generic[V]):
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[str, _Node[V]] = {}
        self.value: V | None = None


class PrefixTrie(Generic[V]):
    """Prefixes with a value each; :meth:`matches` finds those a name starts with in
    O(len(name)). Adding and removing a prefix is O(len(prefix)); removing prunes the
    nodes nothing needs any more."""

    __slots__ = ("_count", "_nodes", "_root")

    def __init__(self) -> None:
        self._root: _Node[V] = _Node()
        self._count = 0
        self._nodes = 1

    def __len__(self) -> int:
        """How many prefixes have a value."""
        return self._count

    @property
    def nodes(self) -> int:
        """How many nodes the trie holds (the root included): for leak checks."""
        return self._nodes

    def set(self, prefix: str, value: V) -> None:
        """Give ``prefix`` a value (replacing any it had)."""
        node = self._root
        for ch in prefix:
            child = node.children.get(ch)
            if child is None:
                child = node.children[ch] = _Node()
                self._nodes += 1
            node = child
        if node.value is None:
            self._count += 1
        node.value = value

    def remove(self, prefix: str) -> None:
        """Drop the value of ``prefix`` (if any) and the nodes left empty."""
        path = [self._root]
        for ch in prefix:
            child = path[-1].children.get(ch)
            if child is None:
                return
            path.append(child)
        node = path[-1]
        if node.value is None:
            return
        node.value = None
        self._count -= 1
        for depth in range(len(prefix), 0, -1):
            node = path[depth]
            if node.value is not None or node.children:
                break
            del path[depth - 1].children[prefix[depth - 1]]
            self._nodes -= 1

    def matches(self, name: str) -> Iterator[V]:
        """The values of the prefixes ``name`` starts with, shortest first."""
        node = self._root
        if node.value is not None:
            yield node.value
        for ch in name:
            child = node.children.get(ch)
            if child is None:
                return
            if child.value is not None:
                yield child.value
            node = child
