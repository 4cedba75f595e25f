"""The supervisor of ``[server] workers``: starts the workers, restarts those that die,
passes every publish on to them once, and answers for them on the control API.

The supervisor keeps the control API, the publish inputs (the plugin services that run
where ``app.role.takes_publishes``) and the signals; the workers keep the client listeners.
Each accepted item is sent once on an XPUB socket, in a private run directory; a worker's
SUB socket subscribes to exactly the channels its clients listen to, so ZeroMQ hands an
item only to the workers that want it, in the order the supervisor accepted it. The XPUB
socket tells the supervisor which channels some worker wants; its own hub holds a
stand-in subscriber for each, so a SUB input (zmq_pubsub) subscribes upstream for them.

Where the hub's rules run: de-duplication by id here, once for every worker and for every
item, listened to or not, as one process does. Ordering by prev-id in each worker: it
depends on the channels the worker has subscribed and their last ids, which only the
worker knows, and each worker sees its channels' items in the same order.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import socket
import tempfile
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog
import zmq
import zmq.asyncio

from ..app import App, Role
from ..config import Address, Config, parse_address
from ..errors import ConfigError, P8Error
from ..pubsub.items import PublishItem
from . import bus
from .listeners import ClientSockets, bind_client_sockets, bind_tcp
from .views import ControlView, json_answer
from .workers import WorkerPlan, lifeline_closed, run_worker

log = structlog.get_logger(component="supervisor")

STOP_MARGIN = 2.0
"""Seconds a stopping worker gets beyond ``shutdown_grace`` before it is killed."""
QUICK_EXIT = 1.0
"""A worker that dies sooner than this after starting is restarted with a growing delay."""
MAX_RESTART_DELAY = 5.0


@dataclass
class Worker:
    """One worker slot: the process now in it, and what the supervisor knows about it."""

    index: int
    process: BaseProcess | None = None
    pid: int | None = None
    ready: bool = False
    """It has reported at least once since it was (re)started."""
    restarts: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    metrics: str = ""
    """Its Prometheus text, as it last reported it."""

    def report(self) -> dict[str, Any]:
        return {**self.status, "worker": self.index, "pid": self.pid, "ready": self.ready,
                "restarts": self.restarts}


class _WorkersListen:
    """The supervisor hub's subscriber for every channel some worker listens to.

    It receives nothing (items go to the workers over the bus); it makes the channel
    subscribed, so the hub's subscription listeners follow the workers.
    """

    format = "workers"

    def deliver(self, item: PublishItem) -> None:
        """Never called: the supervisor publishes nothing to its own hub."""


class SharedListeners:
    """The client listening sockets the workers share, held by the supervisor while it runs.

    With SO_REUSEPORT each worker binds its own TCP sockets and the kernel spreads
    connections over them; the supervisor holds a bound, not listening, socket per TCP
    address, which keeps the port (resolving port 0) but takes no connections. Without it,
    and for Unix sockets always, the supervisor listens and every worker inherits the
    sockets.
    """

    def __init__(self, config: Config) -> None:
        server = config.server
        self.reuse_port = server.reuse_port and hasattr(socket, "SO_REUSEPORT")
        self.inherited = bind_client_sockets(config, tcp=not self.reuse_port)
        self.reserved = ClientSockets()
        try:
            for texts, reserved in ((server.listen, self.reserved.plain),
                                    (server.tls_listen, self.reserved.tls)):
                for text in texts if self.reuse_port else ():
                    reserved.append(_reserve(parse_address(text, "", "")))
        except BaseException:
            self.close()
            raise

    @property
    def ports(self) -> list[int]:
        return [s.getsockname()[1] for s in (*self.reserved.plain, *self.inherited.plain)]

    @property
    def tls_ports(self) -> list[int]:
        return [s.getsockname()[1] for s in (*self.reserved.tls, *self.inherited.tls)]

    def close(self) -> None:
        """Close every socket and remove the Unix socket files."""
        for sock in self.inherited.unix:
            Path(sock.getsockname()).unlink(missing_ok=True)
        self.inherited.close()
        self.reserved.close()


def _reserve(address: Address) -> socket.socket:
    """A socket that keeps ``address``'s port for the workers' SO_REUSEPORT sockets.

    :raises P8Error: the port is taken; a plain bind comes first, so that a port someone
        else holds, even with SO_REUSEPORT (a p8 already running there), is refused
        instead of shared with them.
    """
    with bind_tcp(address.host, address.port, listening=False) as probe:
        port = probe.getsockname()[1]
    return bind_tcp(address.host, port, reuse_port=True, listening=False)


class Supervisor:
    """Runs ``[server] workers`` worker processes for ``app``, which becomes the
    supervisor: :meth:`run` is its service, :meth:`hangup` its SIGHUP."""

    def __init__(self, app: App, log_level: str = "info") -> None:
        self.app, self.log_level = app, log_level
        if app.config_path is None:
            raise ConfigError(app.config.source, "server.workers",
                              "workers read the config from a file; pass --config")
        self.config_path = app.config_path.resolve()
        app.role = Role.SUPERVISOR
        app.forwarder = self
        app.control_views["/workers"] = ControlView(lambda rest: json_answer(self.view()))
        app.worker_metrics = self.metrics
        app.on_sighup.append(self.hangup)
        self.workers = [Worker(i) for i in range(1, app.config.server.worker_count + 1)]
        self._numbers: dict[str, int] = {}
        """The number of the last item sent, per channel some worker listens to."""
        self._bus: zmq.asyncio.Socket | None = None
        self._bus_sync: zmq.Socket[bytes]  # the same socket, used without asyncio
        self._listening = _WorkersListen()
        self._forks = _forkserver(app)

    # ---- the service ------------------------------------------------------------------

    async def run(self) -> None:
        """Start the workers and keep them running until cancelled; then stop them all."""
        cfg = self.app.config
        listeners = SharedListeners(cfg)
        run_dir = Path(tempfile.mkdtemp(prefix="p8-"))
        ctx = zmq.asyncio.Context()
        xpub, pull = ctx.socket(zmq.XPUB), ctx.socket(zmq.PULL)
        try:
            bus_endpoint, status_endpoint = bus.endpoints(run_dir)
            # A worker that falls worker_queue items behind misses the next ones (and
            # counts them), rather than holding up every other worker.
            xpub.sndhwm = cfg.server.worker_queue
            xpub.bind(bus_endpoint)
            pull.bind(status_endpoint)
            self._bus, self._bus_sync = xpub, zmq.Socket.shadow(xpub.underlying)
            log.info("workers_starting", workers=len(self.workers), ports=listeners.ports,
                     tls_ports=listeners.tls_ports, reuse_port=listeners.reuse_port,
                     run_dir=str(run_dir))
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._follow_subscriptions, xpub)
                tg.start_soon(self._collect_status, pull)
                for worker in self.workers:
                    plan = WorkerPlan(worker.index, str(self.config_path), bus_endpoint,
                                      status_endpoint, _addresses(listeners.reserved.plain),
                                      _addresses(listeners.reserved.tls), self.log_level)
                    tg.start_soon(self._keep_running, worker, plan, listeners.inherited)
        finally:
            self._bus = None
            xpub.close(linger=0)
            pull.close(linger=0)
            ctx.term()
            listeners.close()
            shutil.rmtree(run_dir, ignore_errors=True)

    async def _keep_running(self, worker: Worker, plan: WorkerPlan,
                            inherited: ClientSockets) -> None:
        """Run ``worker``, restarting it whenever it exits, until cancelled.

        A worker holds one end of a socket pair, its lifeline: the supervisor's end reads
        end-of-file once the worker is gone, however it went.

        :raises P8Error: the worker stopped on a config problem before it ever reported.
        """
        from ..cli import EXIT_USAGE  # not at the top: the forkserver imports this module

        quick_exits = 0
        while True:
            ours, theirs = socket.socketpair()
            process = self._forks.Process(target=run_worker, args=(plan, inherited, theirs),
                                          name=f"p8-worker-{worker.index}")
            # Shielded: a worker started is always stopped below. The first start waits
            # while the forkserver imports everything.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(process.start)
            theirs.close()
            worker.process, worker.pid = process, process.pid
            worker.ready, worker.status, worker.metrics = False, {}, ""
            started = anyio.current_time()
            gone = False
            try:
                await lifeline_closed(ours)
                gone = True
            finally:
                with anyio.CancelScope(shield=True):
                    if not gone:
                        await self._terminate(process, ours)
                    ours.close()
                    code = await _exit_code(process)
                    worker.process = None
            if code == EXIT_USAGE and not worker.ready:
                raise P8Error(f"worker {worker.index} could not start (its error is above)")
            worker.restarts += 1
            quick_exits = quick_exits + 1 if anyio.current_time() - started < QUICK_EXIT else 0
            delay = min(0.1 * 2 ** quick_exits, MAX_RESTART_DELAY) if quick_exits else 0.0
            log.warning("worker_exited", worker=worker.index, pid=worker.pid,
                        status=_exit_status(code), restart_in=delay)
            await anyio.sleep(delay)

    async def _terminate(self, process: BaseProcess, lifeline: socket.socket) -> None:
        """Stop a running worker: SIGTERM, and SIGKILL when it takes too long."""
        _signal(process, signal.SIGTERM)
        with anyio.move_on_after(self.app.config.server.shutdown_grace + STOP_MARGIN):
            await lifeline_closed(lifeline)
            return
        log.warning("worker_killed", pid=process.pid)
        _signal(process, signal.SIGKILL)

    async def _follow_subscriptions(self, xpub: zmq.asyncio.Socket) -> None:
        """Mirror the workers' channels (the first subscription of a channel, its last
        unsubscription, a dead worker's too) in the supervisor's hub."""
        while True:
            self._subscription(await xpub.recv())
            self._take_subscriptions()

    def _take_subscriptions(self) -> None:
        """Apply the subscription changes queued on the XPUB socket now. Also called after
        sending, which may have taken the wake-up meant for the receiving task."""
        while True:
            try:
                event = self._bus_sync.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._subscription(event)

    def _subscription(self, event: bytes) -> None:
        subscription = bus.subscription_of(event[1:])
        if subscription is None:
            return  # the workers' subscription to commands
        name, pattern = subscription
        if event[:1] == b"\x01":
            self.app.hub.subscribe(name, self._listening, self.app.clock(), wildcard=pattern)
        else:
            self.app.hub.unsubscribe(name, self._listening, self.app.clock(), wildcard=pattern)
            self._numbers.pop(name, None)

    async def _collect_status(self, pull: zmq.asyncio.Socket) -> None:
        by_index = {w.index: w for w in self.workers}
        while True:
            status = json.loads(await pull.recv())
            worker = by_index.get(status.get("worker"))
            if worker is not None and status.get("pid") == worker.pid:
                worker.metrics = status.pop("metrics", None) or worker.metrics
                worker.ready, worker.status = True, status

    # ---- signals and the control API --------------------------------------------------

    def hangup(self) -> None:
        """Pass SIGHUP on to every running worker."""
        for worker in self.workers:
            if worker.process is not None:
                _signal(worker.process, signal.SIGHUP)

    def metrics(self) -> dict[str, str]:
        """Each running worker's Prometheus text, by worker number."""
        return {str(w.index): w.metrics for w in self.workers if w.ready and w.metrics}

    def view(self) -> dict[str, Any]:
        """``GET /workers``: each worker's state and counters, and the repeats dropped."""
        return {"workers": [w.report() for w in self.workers],
                "duplicates_dropped": self.app.hub.stats.duplicates_dropped}

    # ---- app.forwarder ------------------------------------------------------------------

    def forward(self, items: Sequence[PublishItem]) -> None:
        """Send each item to the workers listening to its channel or to a pattern matching
        it, unless it is a repeat (every item's id counts, listened to or not)."""
        if self._bus is None:
            return  # not started: no worker listens yet
        self._take_subscriptions()
        hub, now, numbers = self.app.hub, self.app.clock(), self._numbers
        for item in items:
            if hub.is_duplicate(item, now):
                continue
            if hub.is_subscribed(item.channel):
                number = numbers[item.channel] = numbers.get(item.channel, 0) + 1
            elif hub.has_pattern_for(item.channel):
                number = 0  # for patterns only: not counted
            else:
                continue
            self._bus_sync.send(bus.item_message(
                item.channel, number, pickle.dumps(item, pickle.HIGHEST_PROTOCOL)))
        self._take_subscriptions()

    def recover(self) -> None:
        """Run the recover command in every worker."""
        if self._bus is not None:
            self._bus_sync.send(bus.RECOVER)


def _forkserver(app: App) -> ForkServerContext:
    """A multiprocessing context whose processes fork from a server that has imported p8,
    its enabled plugins and the event loop already."""
    forks = multiprocessing.get_context("forkserver")
    plugins = [p.__name__ for p in app.pm.get_plugins() if isinstance(p, types.ModuleType)]
    forks.set_forkserver_preload([__name__, *plugins, "zmq.asyncio", "uvloop"])
    return forks


async def _exit_code(process: BaseProcess) -> int | None:
    """The exit code the forkserver reports for an ended worker (``None``: unknown)."""
    with anyio.move_on_after(STOP_MARGIN):
        await anyio.wait_readable(process.sentinel)
    code = process.exitcode
    process.close()
    return code


def _addresses(sockets: list[socket.socket]) -> tuple[tuple[str, int], ...]:
    return tuple((s.getsockname()[0], s.getsockname()[1]) for s in sockets)


def _signal(process: BaseProcess, signum: int) -> None:
    """Send ``signum`` to ``process`` unless it has ended."""
    if process.pid is not None and process.exitcode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def _exit_status(code: int | None) -> str:
    if code is None:
        return "unknown"
    if code < 0:
        return signal.Signals(-code).name
    return f"exit {code}"
