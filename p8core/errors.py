"""The errors a user can fix: each renders as one line, without a traceback."""

from __future__ import annotations

_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(32), 127)} | {10: "\\n", 13: "\\r"}


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped: an error's reason
    always answers in one line, whatever the input quoted in it held."""
    return text.translate(_CONTROL_ESCAPES)


class P8Error(Exception):
    """Something a user can fix; shown as one line, no traceback."""


class ConfigError(P8Error):
    """A bad configuration: names the file, the key and what is wrong with it."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source, self.key, self.problem = source, key, problem


class PublishError(P8Error):
    """A publish that cannot be accepted; the control API answers ``status_hint``."""

    status_hint = 400


class PublishBusy(PublishError):
    """A valid publish refused because too many deliveries are waiting (``message_hwm``)."""

    status_hint = 429


class InstructionError(P8Error):
    """The origin sent GRIP instructions p8 cannot follow; the client gets a 502."""

    status_hint = 502


class PluginError(P8Error):
    """A plugin problem: duplicate names, a bad hookimpl, a plugin not installed."""
