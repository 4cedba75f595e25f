"""Listeners, the task group, services and shutdown of one p8 process."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, cast

import anyio
import structlog
from anyio.abc import TaskStatus

from ..app import App
from ..proxy.headers import says_secure
from .connection import ClientRequest, HttpConnection
from .control import ControlApi
from .heap import HeapFreezer
from .listeners import ClientSockets, Listeners, listen, open_client_listeners
from .proxying import Proxy
from .reload import Reloader
from .tasks import BackgroundTasks
from .timers import TimerWheel

log = structlog.get_logger(component="server")

TICK_SECONDS = 1.0

Task = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Bound:
    """The ports p8 actually listens on (useful with port 0)."""

    client: tuple[int, ...]
    control: int
    tls: tuple[int, ...] = ()

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


async def serve(app: App, *, client_sockets: ClientSockets | None = None,
                services: Sequence[Task] = (),
                task_status: TaskStatus[Bound] = anyio.TASK_STATUS_IGNORED) -> None:
    """Run p8 until cancelled: client and control listeners, the hub's ticker, and every
    plugin service. On cancellation, stop listening, end held responses cleanly and close.

    ``app.role`` picks the listeners: a supervisor opens no client listener, a worker no
    control API.

    :param client_sockets: listening sockets for the clients, used instead of binding
        ``[server]``'s addresses (a worker's, shared with the other workers).
    :param services: async callables run beside the plugins' (the supervisor's workers, a
        worker's link to its supervisor).
    """
    loop = asyncio.get_running_loop()
    cfg = app.config
    app.proxy, app.timers = Proxy(app), TimerWheel()
    control = ControlApi(app) if app.role.takes_publishes else None
    clients = app.clients
    listeners = Listeners()
    telemetry = app.telemetry

    async def client_handler(conn: HttpConnection, req: ClientRequest) -> bool:
        if (app.config.proxy.accept_x_forwarded_protocol and not req.ssl
                and says_secure(req.headers)):
            req = dataclasses.replace(req, ssl=True)
        for transport in app.transports:
            if transport.claims(req):
                conn.transport_name = transport.name
                return await transport.serve(app, conn, req)
        return await app.proxy.handle(conn, req)

    def client_closed(conn: HttpConnection) -> None:
        clients.discard(conn)
        telemetry.closed(conn)

    def client_factory(tls: bool) -> asyncio.Protocol:
        if len(clients) >= app.config.server.max_connections:
            app.metrics.connections_refused += 1
            return Refuse()
        conn = HttpConnection(client_handler, app.spawn,
                              max_header_size=app.config.server.client_buffer_size,
                              on_close=client_closed, metrics=app.metrics, ssl=tls,
                              traffic=telemetry.traffic,
                              head_timeout=app.config.server.head_timeout,
                              body_timeout=app.config.server.body_timeout)
        clients.add(conn)
        conn.id = telemetry.next_id()
        telemetry.opened(conn)
        app.metrics.connections += 1
        return conn

    def control_factory() -> asyncio.Protocol:
        assert control is not None, "only a process that takes publishes listens for them"
        return HttpConnection(control.handle, app.spawn,
                              max_header_size=app.config.control.max_headers,
                              on_close=_ignore, metrics=app.metrics, head_too_large=400,
                              head_timeout=app.config.server.head_timeout,
                              body_timeout=app.config.server.body_timeout)

    background = BackgroundTasks()
    async with anyio.create_task_group() as tg:
        app.spawn = background.spawn
        try:
            if app.role.serves_clients:
                listeners = await open_client_listeners(loop, cfg, client_factory, app.tls,
                                                        tg.start_soon, client_sockets)
            if control is not None:
                caddr = cfg.control.address
                listeners.servers.append(await listen(loop, control_factory, caddr.host,
                                                      caddr.port))
            tg.start_soon(_tick, app, clients)
            tg.start_soon(app.proxy.run_updates)
            if app.config_path is not None:
                tg.start_soon(Reloader(app, app.config_path).run)
            tg.start_soon(app.release_delayed)
            for offered in app.pm.hook.p8_services(app=app):
                for service in offered:
                    tg.start_soon(service)
            for service in services:
                tg.start_soon(service)
            control_port = listeners.servers[-1].sockets[0].getsockname()[1] if control else 0
            bound = Bound(client=tuple(listeners.ports), control=control_port,
                          tls=tuple(listeners.tls_ports))
            log.info("listening", client=list(cfg.server.listen), ports=list(bound.client),
                     tls=list(cfg.server.tls_listen), tls_ports=list(bound.tls),
                     unix=[str(p) for p in listeners.unix_paths], control=bound.control)
            task_status.started(bound)
            # One turn of the loop: each service runs up to its first wait, having bound
            # its sockets (or failed, which stops the server).
            await anyio.sleep(0)
            telemetry.ready = True
            await anyio.sleep_forever()
        finally:
            telemetry.ready = False
            with anyio.CancelScope(shield=True):
                await _shutdown(app, listeners, clients)
                await background.aclose()


async def _tick(app: App, clients: set[HttpConnection]) -> None:
    """Once a second: release parked items, expire lingering channels and the id cache,
    and let the heap freezer see how many connections are held."""
    freezer = HeapFreezer(app.config.server.gc_freeze_step)
    try:
        while True:
            await anyio.sleep(TICK_SECONDS)
            app.hub.tick(app.clock())
            freezer.observe(app.metrics.connections, len(clients))
    finally:
        freezer.release()


async def _shutdown(app: App, listeners: Listeners,
                    clients: set[HttpConnection]) -> None:
    listeners.close()
    for conn in list(clients):
        if conn.on_shutdown is not None:
            conn.on_shutdown()
        conn.close()
    with anyio.move_on_after(app.config.server.shutdown_grace):
        for server in listeners.servers:
            await server.wait_closed()
    with anyio.move_on_after(1):
        await app.aclose()
    app.timers.close()
    log.info("stopped")


def _ignore(conn: HttpConnection) -> None:
    return None
