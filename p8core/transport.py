"""Client transports: plugins that take over a client connection (a WebSocket upgrade)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .app import App
    from .server.connection import ClientRequest, HttpConnection


class ClientTransport(ABC):
    """Claims client requests before they are proxied; registered via
    ``p8_register_transports``."""

    name: ClassVar[str]

    @abstractmethod
    def claims(self, request: ClientRequest) -> bool:
        """Whether this transport serves ``request`` (called for every client request)."""

    @abstractmethod
    async def serve(self, app: App, conn: HttpConnection, request: ClientRequest) -> bool:
        """Serve the claimed request on ``conn``.

        :returns: True when the connection may go on with its next HTTP request, False when
            the transport keeps (or closed) the connection.
        """
