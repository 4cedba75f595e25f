"""The hooks the history plugin adds (through ``p8_add_hookspecs``), for other plugins."""

# Specs have no bodies: pluggy only reads their signatures and docstrings.
# mypy: disable-error-code="empty-body"
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from p8core import hookspec

if TYPE_CHECKING:
    from p8core import Config

    from .store import HistoryStore


@hookspec
def p8_history_stores(config: Config) -> Sequence[type[HistoryStore]]:
    """Offer history stores, keyed by ``HistoryStore.name`` (``[plugins.history] store``).

    Only the selected store is built, once, with the ``[plugins.history]`` settings. A
    plugin implementing this hook needs the ``history`` plugin enabled.

    :param config: the loaded configuration, for the store's own settings.
    :returns: ``HistoryStore`` subclasses; a name offered by two plugins stops start-up.
    """
