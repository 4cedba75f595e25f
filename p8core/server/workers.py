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
import itertools
import json
import os
import pickle
import signal
import socket
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import structlog
import zmq
import zmq.asyncio

from ..app import App, Role
from ..errors import P8Error, PublishBusy
from ..observe.prometheus import exposition
from . import bus
from .listeners import ClientSockets, bind_tcp

log = structlog.get_logger(component="workers")

RECEIVE_BATCH = 100
"""Bus messages a worker takes in one turn of its event loop, at most."""


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """What the supervisor tells a worker."""

    index: int
    config: str
    """The config file, as an absolute path."""
    bus: str
    status: str
    plain: tuple[tuple[str, int], ...]
    """The ``listen`` addresses (ports resolved) to bind with SO_REUSEPORT, when the
    supervisor does not hand over its sockets."""
    tls: tuple[tuple[str, int], ...]
    """The same for ``tls_listen``."""
    log_level: str = "info"

    def sockets(self, inherited: ClientSockets) -> ClientSockets:
        """This worker's client sockets: those inherited, and its own beside the other
        workers' (SO_REUSEPORT).

        :raises P8Error: an address cannot be bound.
        """
        return ClientSockets(
            plain=[*inherited.plain, *(bind_tcp(*a, reuse_port=True) for a in self.plain)],
            tls=[*inherited.tls, *(bind_tcp(*a, reuse_port=True) for a in self.tls)],
            unix=inherited.unix)


class BusLink:
    """A worker's end of the bus: items and commands in, its status out."""

    def __init__(self, app: App, plan: WorkerPlan, lifeline: socket.socket) -> None:
        self.app, self.plan, self.lifeline = app, plan, lifeline
        self.numbers: dict[str, int] = {}
        """The number of the last item taken, per channel listened to."""
        self.items_missed = 0
        self.items_taken = 0

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
            hub.on_subscribed.append(lambda name: sub.subscribe(bus.subscription_topic(name)))
            hub.on_unsubscribed.append(partial(self._unsubscribed, sub))
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
        # What is queued already is read without asyncio's future per message, in batches
        # with a turn of the event loop in between for the clients' I/O.
        recv_queued = partial(zmq.Socket.shadow(sub.underlying).recv, zmq.NOBLOCK)
        while True:
            self._take(await sub.recv())
            for _ in range(RECEIVE_BATCH):
                try:
                    message = recv_queued()
                except zmq.Again:
                    break
                self._take(message)
            else:
                await anyio.sleep(0)

    def _unsubscribed(self, sub: zmq.asyncio.Socket, channel: str) -> None:
        sub.unsubscribe(bus.subscription_topic(channel))
        self.numbers.pop(channel, None)

    def _take(self, message: bytes) -> None:
        carried = bus.item_of(message)
        if carried is None:
            if message == bus.RECOVER:
                self.app.recover()
            return
        channel, number, item = carried
        # Counted only for a channel listened to by name: one that came through a
        # pattern alone leaves nothing behind here.
        last = self.numbers.get(channel)
        if number and self.app.hub.is_subscribed(channel):
            self.numbers[channel] = number
        if last is not None and number and number != last + 1:
            self.items_missed += number - last - 1
            log.warning("items_missed", channel=channel, missed=number - last - 1,
                        worker_queue=self.app.config.server.worker_queue)
        self.items_taken += 1
        try:
            self.app.deliver_forwarded([pickle.loads(item)])
        except PublishBusy as e:  # this worker's message_hwm: its clients miss the item
            self.items_missed += 1
            log.warning("items_missed", channel=channel, missed=1, reason=str(e))

    async def _report(self, push: zmq.asyncio.Socket) -> None:
        for n in itertools.count():
            status = self.status()
            if n % bus.METRICS_EVERY == 0:
                status["metrics"] = exposition(self.app).decode()
            with contextlib.suppress(zmq.Again):  # the supervisor is busy: next time
                await push.send(json.dumps(status).encode(), flags=zmq.NOBLOCK)
            await anyio.sleep(bus.STATUS_INTERVAL)

    def status(self) -> dict[str, object]:
        """What this worker reports: open connections, held exchanges, channels, counters."""
        app = self.app
        return {"worker": self.plan.index, "pid": os.getpid(),
                "connections_open": len(app.clients), "held": len(app.held),
                "channels": app.hub.channels(), "items_taken": self.items_taken,
                "items_missed": self.items_missed,
                **app.metrics.snapshot()}

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


def run_worker(plan: WorkerPlan, inherited: ClientSockets, lifeline: socket.socket) -> None:
    """Run one worker until it is told to stop; the exit code tells how it went.

    :param inherited: the listening sockets the supervisor shares with its workers.
    :param lifeline: closes when the supervisor is gone.
    """
    from ..cli import EXIT_USAGE, configure_logging, serve_until_signalled

    os.setsid()  # a terminal's Ctrl-C reaches the supervisor, which stops the workers
    # A SIGHUP passed on while this worker starts has nothing to reload yet (it reads the
    # config as it is); the reloader takes SIGHUP over once it runs.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    configure_logging(plan.log_level)
    structlog.contextvars.bind_contextvars(worker=plan.index)
    try:
        app = App.from_file(Path(plan.config))
        app.role = Role.WORKER
        app.reconfigure(app.config)  # what differs in a worker (no id cache)
        sys.exit(serve_until_signalled(app, client_sockets=plan.sockets(inherited),
                                       services=[BusLink(app, plan, lifeline).run]))
    except P8Error as e:
        print(f"p8: error: worker {plan.index}: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
