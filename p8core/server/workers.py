"""A worker of ``[server] workers``: serves clients, takes its publishes from the supervisor.

The supervisor forks each worker from a process that has imported p8 and its plugins
already (multiprocessing's forkserver), so a worker starts in a fraction of a second, and
runs :func:`run_worker` in it. The worker reads the same config file, listens on the
shared client ports, subscribes the supervisor's bus to exactly the channels its clients
listen to, and reports its status every :data:`~p8core.server.bus.STATUS_INTERVAL`
seconds. It stops on SIGTERM or SIGINT as ``p8 run`` does, and by itself when its
supervisor is gone (the other end of its lifeline socket closes).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import structlog
import zmq
import zmq.asyncio

from ..app import App, Role
from ..errors import P8Error
from . import bus
from .serve import BACKLOG

log = structlog.get_logger(component="workers")


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """What the supervisor tells a worker."""

    index: int
    config: str
    """The config file, as an absolute path."""
    bus: str
    status: str
    listen: tuple[tuple[str, int], ...]
    """The client addresses (ports resolved) to bind with SO_REUSEPORT, unless the
    supervisor hands over its listening sockets."""
    log_level: str = "info"

    def sockets(self) -> list[socket.socket]:
        """Listening sockets of this worker's own beside the other workers'.

        :raises P8Error: an address cannot be bound.
        """
        sockets = []
        for host, port in self.listen:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                sockets.append(socket.create_server((host, port), family=family,
                                                    backlog=BACKLOG, reuse_port=True))
            except OSError as e:
                raise P8Error(f"cannot listen on {host}:{port}: {e.strerror}") from None
        return sockets


def process_status(app: App, index: int) -> dict[str, object]:
    """What a worker reports: open connections, held exchanges, channels and counters."""
    return {"worker": index, "pid": os.getpid(), "connections_open": len(app.clients),
            "held": len(app.held), "channels": app.hub.channels(),
            "duplicates_dropped": app.hub.stats.duplicates_dropped,
            **app.metrics.snapshot()}


class BusLink:
    """A worker's end of the bus: items and commands in, its status out."""

    def __init__(self, app: App, plan: WorkerPlan, lifeline: socket.socket) -> None:
        self.app, self.plan, self.lifeline = app, plan, lifeline

    async def run(self) -> None:
        """Connect to the supervisor and serve its bus until cancelled."""
        ctx = zmq.asyncio.Context()
        sub = ctx.socket(zmq.SUB)
        push = ctx.socket(zmq.PUSH)
        try:
            sub.rcvhwm = self.app.config.server.worker_queue
            sub.sndhwm = 0  # subscription changes must never be dropped
            sub.connect(self.plan.bus)
            sub.subscribe(bus.COMMANDS)
            hub = self.app.hub
            hub.on_subscribed.append(lambda channel: sub.subscribe(bus.topic(channel)))
            hub.on_unsubscribed.append(lambda channel: sub.unsubscribe(bus.topic(channel)))
            push.connect(self.plan.status)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._receive, sub)
                tg.start_soon(self._report, push)
                tg.start_soon(self._watch_supervisor)
        finally:
            sub.close(linger=0)
            push.close(linger=0)
            ctx.term()

    async def _receive(self, sub: zmq.asyncio.Socket) -> None:
        app = self.app
        while True:
            frames = await sub.recv_multipart()
            if frames[0] == bus.RECOVER:
                app.recover()
            elif len(frames) == 2:
                app.publish([pickle.loads(frames[1])])

    async def _report(self, push: zmq.asyncio.Socket) -> None:
        while True:
            status = json.dumps(process_status(self.app, self.plan.index)).encode()
            with contextlib.suppress(zmq.Again):  # the supervisor is busy: next time
                await push.send(status, flags=zmq.NOBLOCK)
            await anyio.sleep(bus.STATUS_INTERVAL)

    async def _watch_supervisor(self) -> None:
        """Stop like on SIGTERM once the supervisor's end of the lifeline closes."""
        await lifeline_closed(self.lifeline)
        log.warning("supervisor_gone")
        os.kill(os.getpid(), signal.SIGTERM)


async def lifeline_closed(lifeline: socket.socket) -> None:
    """Wait for end-of-file on a lifeline between a supervisor and a worker (neither end
    sends anything: it closes when its process is gone)."""
    lifeline.setblocking(False)
    while True:
        await anyio.wait_readable(lifeline)
        with contextlib.suppress(BlockingIOError):
            if not lifeline.recv(64):
                return


def run_worker(plan: WorkerPlan, inherited: list[socket.socket],
               lifeline: socket.socket) -> None:
    """Run one worker until it is told to stop; the exit code tells how it went.

    :param inherited: the supervisor's listening sockets, when it shares them.
    :param lifeline: closes when the supervisor is gone.
    """
    from ..cli import EXIT_USAGE, configure_logging, serve_until_signalled

    os.setsid()  # a terminal's Ctrl-C reaches the supervisor, which stops the workers
    configure_logging(plan.log_level)
    structlog.contextvars.bind_contextvars(worker=plan.index)
    try:
        app = App.from_file(Path(plan.config))
        app.role = Role.WORKER
        app.hub.id_cache_ttl = 0  # the supervisor drops repeats, once for every worker
        sys.exit(serve_until_signalled(app, client_sockets=inherited or plan.sockets(),
                                       services=[BusLink(app, plan, lifeline).run]))
    except P8Error as e:
        print(f"p8: error: worker {plan.index}: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
