"""Commands: named operations on a running p8, as Pushpin's command socket offers them
(``recover``, ``conncheck``, ``publish``, …; spec ``stats.md`` §3).

Plugins offer commands through ``p8_register_commands``; whatever serves commands (the
ZeroMQ command socket of ``zmq_pubsub``) looks them up in ``app.commands`` by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from .errors import P8Error, PublishError
from .pubsub.feedback import Feedback
from .pubsub.items import from_tnetstring

if TYPE_CHECKING:
    from .app import App

__all__ = ["Command", "CommandError", "ConnCheck", "PublishCommand", "Recover"]


class CommandError(P8Error):
    """A command could not be carried out; answered as a failure with ``condition``."""

    def __init__(self, condition: str, value: object = None) -> None:
        """
        :param condition: ``bad-request``, ``item-not-found``, ``method-not-found``, …
        :param value: a detail for the caller, e.g. ``Invalid format: ...``.
        """
        super().__init__(f"{condition}: {value}" if value is not None else condition)
        self.condition, self.value = condition, value


class Command(ABC):
    """One named command; a single instance serves every call."""

    #: The method name callers use (``"recover"``); unique across plugins.
    name: ClassVar[str]

    @abstractmethod
    def run(self, app: App, args: Mapping[str, object]) -> object:
        """Carry the command out on ``app``.

        :param args: the call's arguments, string keys; strings inside may arrive as
            ``bytes`` (tnetstring callers), so accept both.
        :returns: the answer's value: ``None``, strings, numbers, lists or dicts of them.
        :raises CommandError: the call was bad or failed.
        """


def text(value: object) -> str | None:
    """``value`` as a string when it is one (``bytes`` decoded as UTF-8), else ``None``."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


class Recover(Command):
    """Forget every channel's last id and refresh every held exchange (``grip.md`` §7.6)."""

    name = "recover"

    def run(self, app: App, args: Mapping[str, object]) -> None:
        app.recover()


class ConnCheck(Command):
    """Which of the given connection ids (as in ``conn`` stats) are still open."""

    name = "conncheck"

    def run(self, app: App, args: Mapping[str, object]) -> list[str]:
        ids = args.get("ids")
        if not isinstance(ids, list):
            raise CommandError("bad-request", "'ids' must be a list of connection ids")
        found: list[str] = []
        for raw in ids:
            cid = text(raw)
            if cid is None:
                raise CommandError("bad-request", "'ids' must be a list of connection ids")
            if cid in app.telemetry.connections:
                found.append(cid)
        return found


class PublishCommand(Command):
    """Publish ``items``, all or none, as ``POST /publish/`` does (``publishing.md`` §4).
    With ``verbose`` true, answers what happened to each item, as ``?verbose=1`` does."""

    name = "publish"

    def run(self, app: App, args: Mapping[str, object]) -> dict[str, object] | None:
        if "items" not in args:
            raise CommandError("bad-request", "Invalid format: object does not contain 'items'")
        items = args["items"]
        raws = [from_tnetstring(i) for i in items] if isinstance(items, list) else items
        feedback = Feedback() if args.get("verbose") is True else None
        try:
            app.publish_items(raws, input="command", feedback=feedback)
        except PublishError as e:
            raise CommandError("bad-request", str(e)) from None
        return None if feedback is None else feedback.report()
