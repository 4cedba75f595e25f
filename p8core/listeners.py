"""Listener lists (``hub.on_delivered``, ``telemetry.on_opened``, ...) joined for a while."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["listening"]

Listener = Callable[..., Any]


@contextmanager
def listening(*pairs: tuple[list[Listener], Listener]) -> Iterator[None]:
    """Append each listener to its list for the block's duration; remove it after."""
    for listeners, listener in pairs:
        listeners.append(listener)
    try:
        yield
    finally:
        for listeners, listener in pairs:
            listeners.remove(listener)
