"""Backend connectors: how a request reaches a route's target and its answer comes back.

A connector is registered for one or more target schemes (``http``, ``https``, ``test``,
``zhttp+tcp``, ...) through ``p8_register_connectors``. The core builds one instance per
distinct target and calls :meth:`Connector.request` for every proxied request to it.

A connector may also carry WebSocket sessions message by message: a
:class:`WebSocketConnector` opens a :class:`BackendWebSocket` for a client's handshake, and
the client transport relays messages between the two.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Final, final

from .errors import P8Error

if TYPE_CHECKING:
    from .proxy.routes import Route

Headers = list[tuple[bytes, bytes]]


class OriginError(P8Error):
    """The backend could not be reached or broke off; the client gets ``status_hint``."""

    status_hint = 502


class OriginTimeout(OriginError):
    """The backend did not answer within ``[proxy] backend_timeout``."""

    status_hint = 504


class RequestTooLarge(OriginError):
    """The client's request body is larger than p8 or the connector passes on."""

    status_hint = 413


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


@dataclass(slots=True)
class OriginRequest:
    """A request as the core hands it to a connector.

    ``target`` is the request-target (path and query), ``headers`` already carry ``Host``
    and every header the proxy adds or removes. ``body`` yields the request body in chunks
    as the client sends it; ``content_length`` is its length when the client gave one
    (``None`` means chunked or unknown; ``0`` means no body).
    """

    method: bytes
    target: bytes
    headers: Headers
    body: AsyncIterator[bytes] = field(default_factory=_no_body)
    content_length: int | None = 0
    route: Route | None = None
    """The route that chose this target (its options, for connectors that need them)."""
    secure: bool = False
    """The client connected over TLS (a backend that sees absolute URIs gets ``https://``
    or ``wss://``)."""


class OriginResponse(ABC):
    """A backend response whose head has arrived; the body is read with :meth:`chunks`."""

    status: int
    reason: bytes
    headers: Headers
    content_length: int | None

    @abstractmethod
    def chunks(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives; ends at the end of the body.

        :raises OriginError: the backend broke off mid-body.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Release the response; an unread body makes its connection unusable again."""

    async def read(self, limit: int) -> bytes | None:
        """Read the whole body, or return ``None`` as soon as it exceeds ``limit`` bytes.

        After ``None`` the bytes read so far are in :attr:`prefix` and the rest is still
        available from :meth:`chunks`.
        """
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                self.prefix = b"".join(parts)
                return None
        return b"".join(parts)

    prefix: bytes = b""


class BufferedResponse(OriginResponse):
    """A response whose whole body is already in memory (the test handler, a ZHTTP reply).

    ``headers`` are sent as given: without a ``Content-Length`` the client connection
    chooses the framing.
    """

    def __init__(self, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes,
                 reason: bytes = b"") -> None:
        self.status, self.reason, self.headers = status, reason, list(headers)
        self.body = body
        self.content_length = len(body)

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.body:
            yield self.body

    async def aclose(self) -> None:
        return None


class Connector(ABC):
    """Sends requests to one target; registered by scheme via ``p8_register_connectors``.

    Subclasses set ``schemes`` (the part of ``target`` before ``://``, or the whole target
    for scheme-only targets such as ``test``) and are built once per target string.
    """

    schemes: ClassVar[tuple[str, ...]]

    def __init__(self, target: str) -> None:
        self.target = target

    @classmethod
    def options(cls, route: Route | None) -> Hashable:
        """The route options this connector depends on; routes that agree share one
        instance per target. Most connectors depend on none."""
        return None

    @classmethod
    def open(cls, target: str, route: Route | None) -> Connector:
        """Build the connector for ``target`` as ``route`` configures it."""
        return cls(target)

    @abstractmethod
    async def request(self, req: OriginRequest, *, timeout: float) -> OriginResponse:
        """Send ``req`` and return once the response head has arrived.

        :param timeout: seconds allowed to connect and receive the response head.
        :raises OriginTimeout: nothing arrived within ``timeout``.
        :raises OriginError: the target refused, was unreachable or answered garbage.
        """

    async def aclose(self) -> None:
        """Release pooled connections; called once at shutdown."""
        return None


MESSAGE_KINDS: Final = frozenset({"text", "binary", "ping", "pong", "close"})


@final
@dataclass(frozen=True, slots=True)
class WebSocketMessage:
    """One whole WebSocket message, or a control frame, between p8 and a backend.

    ``kind`` is one of :data:`MESSAGE_KINDS`. ``data`` is the payload (UTF-8 for text);
    for ``close`` it is the reason, and ``code`` the close code (``None``: no code).
    """

    kind: str
    data: bytes = b""
    code: int | None = None


class BackendWebSocket(ABC):
    """A WebSocket session the backend accepted; messages go both ways until a close.

    ``headers`` and ``reason`` are those of the backend's ``101`` response.
    """

    headers: Headers
    reason: bytes

    @abstractmethod
    async def send(self, message: WebSocketMessage) -> None:
        """Send one message; waits while the backend's flow control holds it back.

        :raises OriginError: the session is over (the backend failed or went away).
        """

    @abstractmethod
    async def receive(self) -> WebSocketMessage:
        """The backend's next message; nothing follows a ``close``.

        :raises OriginError: the backend broke off the session without a close.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """End the session; a backend still in it is told it was abandoned."""


class WebSocketConnector(Connector):
    """A connector whose target can also back WebSocket clients, message by message.

    The client transport checks for this class: a route whose target's connector is one
    relays each client WebSocket through :meth:`open_websocket`.
    """

    @abstractmethod
    async def open_websocket(self, req: OriginRequest, *,
                             timeout: float) -> BackendWebSocket | OriginResponse:
        """Send the client's handshake ``req`` (a ``GET`` without body, its ``Upgrade`` and
        ``Sec-WebSocket-*`` headers kept) and return once the backend decided.

        :param timeout: seconds allowed to reach the backend and receive its decision.
        :returns: the open session after a ``101``, or the response that refused it.
        :raises OriginTimeout: no decision within ``timeout``.
        :raises OriginError: the target refused, was unreachable or answered garbage.
        """


def target_scheme(target: str) -> str:
    """The scheme a target string selects its connector by (``test`` for ``test``)."""
    return target.split("://", 1)[0].lower() if "://" in target else target.lower()
