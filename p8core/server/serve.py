"""Listeners, the task group, services and shutdown of one p8 process."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus

from ..app import App
from .connection import ClientRequest, HttpConnection
from .control import ControlApi
from .proxying import Proxy
from .timers import TimerWheel

log = structlog.get_logger(component="server")

TICK_SECONDS = 1.0
BACKLOG = 4096

Task = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Bound:
    """The ports p8 actually listens on (useful with port 0)."""

    client: tuple[int, ...]
    control: int

    @property
    def port(self) -> int:
        """The first client port."""
        return self.client[0]


class Refuse(asyncio.Protocol):
    """Answers a connection over ``max_connections`` with 503 and closes it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        body = b"Too many connections.\n"
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        transport.close()


async def serve(app: App, *, client_sockets: Sequence[socket.socket] = (),
                services: Sequence[Task] = (),
                task_status: TaskStatus[Bound] = anyio.TASK_STATUS_IGNORED) -> None:
    """Run p8 until cancelled: client and control listeners, the hub's ticker, and every
    plugin service. On cancellation, stop listening, end held responses cleanly and close.

    ``app.role`` picks the listeners: a supervisor opens no client listener, a worker no
    control API.

    :param client_sockets: listening sockets for the clients, used instead of binding
        ``[server] listen`` (a worker's).
    :param services: async callables run beside the plugins' (the supervisor's workers, a
        worker's link to its supervisor).
    """
    loop = asyncio.get_running_loop()
    cfg = app.config
    app.proxy, app.timers = Proxy(app), TimerWheel()
    control = ControlApi(app)
    clients = app.clients
    servers: list[asyncio.Server] = []

    async def client_handler(conn: HttpConnection, req: ClientRequest) -> bool:
        for transport in app.transports:
            if transport.claims(req):
                return await transport.serve(app, conn, req)
        return await app.proxy.handle(conn, req)

    def client_factory() -> asyncio.Protocol:
        if len(clients) >= cfg.server.max_connections:
            app.metrics.connections_refused += 1
            return Refuse()
        conn = HttpConnection(client_handler, tg.start_soon,
                              max_header_size=cfg.server.client_buffer_size,
                              on_close=clients.discard)
        clients.add(conn)
        app.metrics.connections += 1
        return conn

    def control_factory() -> asyncio.Protocol:
        return HttpConnection(control.handle, tg.start_soon,
                              max_header_size=cfg.control.max_headers,
                              on_close=_ignore, head_too_large=400)

    async with anyio.create_task_group() as tg:
        app.spawn = partial(_spawn_guarded, tg)
        try:
            if client_sockets:
                for sock in client_sockets:
                    servers.append(await loop.create_server(client_factory, sock=sock,
                                                            backlog=BACKLOG))
            elif app.role.serves_clients:
                for address in cfg.server.addresses:
                    servers.append(await _listen(loop, client_factory, address.host,
                                                 address.port))
            if app.role.takes_publishes:
                caddr = cfg.control.address
                servers.append(await _listen(loop, control_factory, caddr.host, caddr.port))
            tg.start_soon(_tick, app)
            tg.start_soon(app.proxy.run_updates)
            for offered in app.pm.hook.p8_services(app=app):
                for service in offered:
                    tg.start_soon(service)
            for service in services:
                tg.start_soon(service)
            ports = tuple(s.sockets[0].getsockname()[1] for s in servers)
            bound = (Bound(client=ports[:-1], control=ports[-1]) if app.role.takes_publishes
                     else Bound(client=ports, control=0))
            log.info("listening", client=[str(a) for a in cfg.server.addresses],
                     ports=list(bound.client), control=bound.control)
            task_status.started(bound)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await _shutdown(app, servers, clients)


async def _listen(loop: asyncio.AbstractEventLoop, factory: Callable[[], asyncio.Protocol],
                  host: str, port: int) -> asyncio.Server:
    """Listen with a kernel accept queue that takes bursts (accepting in batches)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return await loop.create_server(factory, host, port, family=family, backlog=BACKLOG,
                                    reuse_address=True)


async def _tick(app: App) -> None:
    """Once a second: release parked items, expire lingering channels and the id cache."""
    while True:
        await anyio.sleep(TICK_SECONDS)
        app.hub.tick(app.clock())


async def _shutdown(app: App, servers: list[asyncio.Server],
                    clients: set[HttpConnection]) -> None:
    for server in servers:
        server.close()
    for conn in list(clients):
        if conn.on_shutdown is not None:
            conn.on_shutdown()
        conn.close()
    with anyio.move_on_after(app.config.server.shutdown_grace):
        for server in servers:
            await server.wait_closed()
    with anyio.move_on_after(1):
        await app.aclose()
    app.timers.close()
    log.info("stopped")


def _spawn_guarded(tg: TaskGroup, func: Callable[..., Awaitable[object]],
                   *args: object) -> None:
    """Start a background task whose failure is logged instead of stopping the server."""

    async def guarded() -> None:
        try:
            await func(*args)
        except Exception:
            log.exception("task_failed", task=getattr(func, "__qualname__", repr(func)))

    tg.start_soon(guarded)


def _ignore(conn: HttpConnection) -> None:
    return None
