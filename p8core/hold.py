"""Hold modes and the actions they return.

A hold mode is the sans-I/O state machine of one held client exchange (a long-poll, a
stream, ...). The core calls its methods on events and carries out the actions it returns:
writing the response head and body, arming its timer, (un)subscribing channels, finishing
the exchange, or handing the request back to the backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    """(Re)arm the hold's timer named ``key``: ``on_timer(key)`` runs after ``seconds``.

    A hold may keep several timers (a keep-alive, a next-link period); arming a key again
    replaces its pending timer.
    """

    seconds: float
    key: str = ""


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Drop the pending timer named ``key``, if any."""

    key: str = ""


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
    what the client gets, a new hold included. An ``urgent`` retry (a ``hint``) goes out at
    once; others wait their turn under a process-wide rate limit (grip.md §7.4) while the
    hold stays in place, so a publish that arrives first still answers it.
    """

    headers: Headers = ()
    urgent: bool = True


@dataclass(frozen=True, slots=True)
class Fetch:
    """GET ``url`` for the hold (a next link) with ``headers`` plus the proxy's own
    (``Grip-Sig``, ``Grip-Feature``); the answer comes to ``on_fetched``.

    A URL on the request's own scheme, host and port goes through the hold's route; any
    other goes out over the network. Only one fetch per hold runs at a time: a second
    ``Fetch`` while one is in flight is dropped. An ``urgent`` fetch (a ``hint``) goes out
    at once; others (periodic, gaps, updates) share the retries' rate limit (grip.md §7.4).
    """

    url: str
    headers: Headers = ()
    urgent: bool = True


@dataclass(frozen=True, slots=True)
class ForgetLastId:
    """Make the hub forget the last delivered id of ``channels`` (a gap was seen)."""

    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Report:
    """Tell the operator why the exchange is going wrong (a bad next link, a filter
    error): logged as a warning with the mode, the client and the route."""

    problem: str


Action = (SendHead | SendBody | ArmTimer | CancelTimer | Subscribe | Unsubscribe | Finish
          | Retry | Fetch | ForgetLastId | Report)


@dataclass(frozen=True, slots=True)
class Fetched:
    """The answer to a :class:`Fetch`: a response, or ``error`` when there was none.

    ``body`` is the whole body, at most ``[proxy] max_grip_body`` bytes; a larger one is
    an error.
    """

    status: int = 0
    reason: bytes = b""
    headers: Headers = ()
    body: bytes = b""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HeldRequest:
    """The client request behind a hold, as the backend received it."""

    method: bytes
    target: bytes
    headers: Headers
    body: bytes
    peer: str = ""
    ssl: bool = False

    @property
    def url(self) -> str:
        """The absolute URL the client asked for, from its Host header."""
        host = next((v for n, v in self.headers if n == b"host"), b"localhost")
        scheme = "https" if self.ssl else "http"
        return f"{scheme}://{host.decode('latin-1')}{self.target.decode('latin-1')}"


@dataclass(frozen=True, slots=True)
class Hold:
    """Everything a hold mode knows at start: the instruction, the request, the route, and
    the hub's last delivered id of each of the instruction's channels (``None``: unknown)."""

    instruct: Instruct
    request: HeldRequest
    route: Route
    last_ids: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The absolute URL of the client request (next links resolve against it)."""
        return self.request.url


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

    def on_timer(self, key: str) -> Sequence[Action]:
        """The timer named ``key`` armed by :class:`ArmTimer` fired."""
        return ()

    def on_fetched(self, fetched: Fetched) -> Sequence[Action]:
        """The answer to this hold's :class:`Fetch` arrived (or the fetch failed)."""
        return ()

    def on_update(self) -> Sequence[Action]:
        """The exchange should refresh from the backend: ``/recover`` was called, or a
        channel it holds just got its first subscriber (a publish may have been missed)."""
        return ()

    def on_close(self) -> None:
        """The client went away; nothing more can be written. Release what the mode holds."""
        return None
