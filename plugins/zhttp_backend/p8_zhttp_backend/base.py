"""What both ZHTTP connectors share: sockets bound at start-up, the wait for a handler.

The plugin's service (:func:`serve_targets`) builds the connector of every ``zhttp+…`` and
``zhttpreq+…`` route target and runs it: :meth:`ZmqConnector.run` binds its sockets, so
that handlers can connect before the first request, and runs its receive loops until
shutdown. A target that cannot be bound stops start-up with a message naming it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping

import anyio
import structlog
import zmq
import zmq.asyncio
from anyio.abc import TaskGroup, TaskStatus

from p8core import Connector, OriginError, OriginTimeout, P8Error
from p8core.app import App
from p8core.connector import target_scheme

from .settings import ZhttpSettings
from .targets import instance_address, zmq_spec

log = structlog.get_logger(component="zhttp_backend")

Socket = zmq.asyncio.Socket
Frames = list[bytes]


class ZmqConnector(Connector):
    """A connector whose sockets live from :meth:`run` until shutdown.

    :raises ValueError: ``target`` is not a ZeroMQ target this connector understands.
    """

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.spec = zmq_spec(target)
        self.instance = instance_address()
        self.settings = ZhttpSettings()
        self._running = False
        self._closed = False
        self._ready: anyio.Event | None = None
        self._tg: TaskGroup | None = None
        self._sockets: list[Socket] = []

    # ---- lifetime ---------------------------------------------------------------------

    async def run(self, ctx: zmq.asyncio.Context, settings: ZhttpSettings, *,
                  task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Bind the sockets and serve until cancelled; reports started once bound.

        :raises P8Error: an endpoint cannot be bound.
        """
        self.settings = settings
        try:
            self._bind(ctx)
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._serve(tg)
                self._running = True
                self._ready_event().set()
                log.info("zhttp_target_bound", target=self.target, endpoints=self.endpoints())
                task_status.started()
        finally:
            self._shut(f"the connector for {self.target} stopped")

    async def aclose(self) -> None:
        """Stop serving and close the sockets; waiting requests fail with 502."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        self._shut(f"the connector for {self.target} is closed")

    def _shut(self, reason: str) -> None:
        self._running = False
        self._closed = True
        self._fail_all(reason)
        for sock in self._sockets:
            sock.close(linger=0)
        self._sockets.clear()
        if self._ready is not None:
            self._ready.set()

    def _ready_event(self) -> anyio.Event:
        if self._ready is None:
            self._ready = anyio.Event()
        return self._ready

    def _socket(self, ctx: zmq.asyncio.Context, kind: int, endpoint: str,
                options: Mapping[int, int | bytes] | None = None) -> Socket:
        """A socket of ``kind`` with ``options``, bound to ``endpoint``, closed at shutdown."""
        sock = ctx.socket(kind)
        sock.linger = 0
        for option, value in (options or {}).items():
            sock.set(option, value)
        self._sockets.append(sock)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as e:
            raise P8Error(f"zhttp_backend: cannot bind {endpoint} for target {self.target}: "
                          f"{zmq.strerror(e.errno or 0)}") from None
        return sock

    @abstractmethod
    def endpoints(self) -> list[str]:
        """The endpoints this connector binds."""

    @abstractmethod
    def _bind(self, ctx: zmq.asyncio.Context) -> None:
        """Create and bind the sockets (through :meth:`_socket`)."""

    @abstractmethod
    def _serve(self, tg: TaskGroup) -> None:
        """Start the receive loops (and anything else long-lived) in ``tg``."""

    @abstractmethod
    def _fail_all(self, reason: str) -> None:
        """Fail every request still waiting, with ``reason``."""

    # ---- per request ------------------------------------------------------------------

    async def _until_running(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for :meth:`run` to have bound the sockets."""
        if not self._running and not self._closed:
            with anyio.move_on_after(timeout):
                await self._ready_event().wait()
        if not self._running:
            raise OriginError(f"the connector for {self.target} is not running")

    async def _until_handler(self, sock: Socket, timeout: float) -> None:
        """Wait until ``sock`` has a handler to send to, for at most ``handler_wait``.

        :raises OriginError: no handler connected in that time.
        """
        events = sock.getsockopt(zmq.EVENTS)
        if isinstance(events, int) and events & zmq.POLLOUT:
            return
        wait = min(self.settings.handler_wait, timeout)
        if wait > 0:
            poller = zmq.asyncio.Poller()
            poller.register(sock, zmq.POLLOUT)
            if await poller.poll(int(wait * 1000)):
                return
        raise OriginError(f"no zhttp handler connected to {self.target}")

    async def _send_first(self, sock: Socket, frames: Frames, timeout: float) -> None:
        """Send the first message of an exchange, to whichever handler ZeroMQ picks."""
        for _ in range(2):
            try:
                await sock.send_multipart(frames, flags=zmq.NOBLOCK)
                return
            except zmq.Again:
                await self._until_handler(sock, timeout)
            except zmq.ZMQError as e:
                raise OriginError(f"cannot send to {self.target}: "
                                  f"{zmq.strerror(e.errno or 0)}") from None
        raise OriginError(f"no zhttp handler connected to {self.target}")

    def _timed_out(self) -> OriginTimeout:
        return OriginTimeout(f"timed out waiting for the zhttp handler at {self.target}")


async def serve_targets(app: App) -> None:
    """The plugin's service: run the connector of every ZHTTP route target until shutdown.

    :raises P8Error: a target is malformed or cannot be bound.
    """
    settings: ZhttpSettings = app.config.plugins.section("zhttp_backend")
    connectors: list[ZmqConnector] = []
    for route in app.config.routes:
        for target in route.targets:
            kind = app.connector_types.get(target_scheme(target))
            if kind is None or not issubclass(kind, ZmqConnector):
                continue
            try:
                connector = app.connector(target)
            except ValueError as e:
                raise P8Error(f"zhttp_backend: {e}") from None
            if isinstance(connector, ZmqConnector) and connector not in connectors:
                connectors.append(connector)
    if not connectors:
        return
    ctx = zmq.asyncio.Context()
    try:
        async with anyio.create_task_group() as tg:
            for connector in connectors:
                await tg.start(connector.run, ctx, settings)
    finally:
        for connector in connectors:
            connector._shut(f"the connector for {connector.target} stopped")
        ctx.destroy(linger=0)
