"""p8 plugin ``history``: a bounded per-channel history of published items, from which
reconnecting clients resume (``Last-Event-ID``, a backend's ``prev-id``)."""

from .store import HistoryStore, payload_bytes

__all__ = ["HistoryStore", "payload_bytes"]
