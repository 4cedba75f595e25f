"""Hold modes and the actions they return.

A hold mode is the sans-I/O state machine of one held client exchange (a long-poll, a
stream, ...). The core calls its methods on events and carries out the actions it returns:
writing the response head and body, arming its timer, (un)subscribing channels, finishing
the exchange, or handing the request back to the backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .grip.instructions import Instruct
from .proxy.routes import Route
from .pubsub.items import PublishItem

Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class SendHead:
    """Write the response status line and headers.

    ``content_length`` ``None`` means the body streams until :class:`Finish` (chunked for
    HTTP/1.1 clients, close-delimited for HTTP/1.0).
    """

    status: int
    headers: Headers = ()
    reason: bytes = b""
    content_length: int | None = None


@dataclass(frozen=True, slots=True)
class SendBody:
    """Write a piece of the response body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ArmTimer:
    """(Re)arm the hold's single timer: ``on_timer`` runs after ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Subscribe the exchange to more channels (already prefixed by the route)."""

    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Leave some of the exchange's channels."""

    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Finish:
    """End the response; the client connection stays open for its next request."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Send the original request to the backend again with ``headers`` added.

    The hold ends (its subscriptions are dropped) and the backend's new answer decides
    what the client gets, a new hold included.
    """

    headers: Headers = ()


Action = SendHead | SendBody | ArmTimer | Subscribe | Unsubscribe | Finish | Retry


@dataclass(frozen=True, slots=True)
class HeldRequest:
    """The client request behind a hold, as the backend received it."""

    method: bytes
    target: bytes
    headers: Headers
    body: bytes
    peer: str = ""
    ssl: bool = False


@dataclass(frozen=True, slots=True)
class Hold:
    """Everything a hold mode knows at start: the instruction, the request, the route."""

    instruct: Instruct
    request: HeldRequest
    route: Route


class HoldMode(ABC):
    """One held exchange, driven by the core; registered via ``p8_register_hold_modes``.

    ``name`` is the ``Grip-Hold`` value that selects it and ``format`` the publish format
    it receives. The core subscribes the exchange to the instruction's channels before
    :meth:`start` and unsubscribes it when the exchange ends. Methods return actions and
    never block, read a clock or do I/O.
    """

    name: ClassVar[str]
    format: ClassVar[str]
    linger: ClassVar[bool] = False
    """Whether channels this mode leaves linger (``subscription_linger``), as long-polls do."""

    def __init__(self, hold: Hold) -> None:
        self.hold = hold

    @abstractmethod
    def start(self) -> Sequence[Action]:
        """The exchange begins: what to write first, and when to wake up."""

    @abstractmethod
    def on_item(self, item: PublishItem) -> Sequence[Action]:
        """An item carrying this mode's ``format`` arrived on a subscribed channel."""

    def on_timer(self) -> Sequence[Action]:
        """The timer armed by :class:`ArmTimer` fired."""
        return ()

    def on_update(self) -> Sequence[Action]:
        """The exchange should refresh from the backend: ``/recover`` was called, or a
        channel it holds just got its first subscriber (a publish may have been missed)."""
        return ()

    def on_close(self) -> None:
        """The client went away; nothing more can be written. Release what the mode holds."""
        return None
