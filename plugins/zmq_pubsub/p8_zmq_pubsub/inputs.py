"""The ZeroMQ publish inputs: a PULL socket and SUB sockets feeding the hub.

The SUB socket subscribes to exactly the channels that have listeners here, following the
hub, so a publisher with an XPUB socket learns what each p8 instance wants.
"""

from __future__ import annotations

import anyio
import structlog
import zmq
import zmq.asyncio

from p8core import PublishError
from p8core.app import App
from p8core.pubsub.patterns import filter_prefix

from .payload import decode_payload
from .settings import ZmqSettings
from .sockets import bind

log = structlog.get_logger(component="zmq_pubsub")


class ZmqInputs:
    """Owns the ZeroMQ context and sockets of one p8 process; ``run`` is its service."""

    def __init__(self, app: App, settings: ZmqSettings) -> None:
        self.app, self.settings = app, settings

    async def run(self) -> None:
        """Bind or connect the sockets, then feed every message to the hub until cancelled."""
        ctx = zmq.asyncio.Context()
        sockets: list[zmq.asyncio.Socket] = []
        try:
            async with anyio.create_task_group() as tg:
                if self.settings.pull:
                    pull = self._socket(ctx, zmq.PULL, sockets)
                    bind(pull, self.settings.pull)
                    tg.start_soon(self._pull_loop, pull)
                if self.settings.sub:
                    sub = self._socket(ctx, zmq.SUB, sockets)
                    sub.sndhwm = 0  # subscription changes must never be dropped
                    for spec in self.settings.sub:
                        if self.settings.sub_connect:
                            sub.connect(spec)
                        else:
                            bind(sub, spec)
                    self._follow_hub(sub)
                    tg.start_soon(self._sub_loop, sub)
                log.info("zmq_inputs_ready", pull=self.settings.pull or None,
                         sub=list(self.settings.sub), sub_connect=self.settings.sub_connect)
        finally:
            for sock in sockets:
                sock.close(linger=0)
            ctx.term()

    def _socket(self, ctx: zmq.asyncio.Context, kind: int,
                sockets: list[zmq.asyncio.Socket]) -> zmq.asyncio.Socket:
        sock = ctx.socket(kind)
        sock.rcvhwm = self.settings.hwm
        sockets.append(sock)
        return sock

    def _follow_hub(self, sub: zmq.asyncio.Socket) -> None:
        """Subscribe ``sub`` to each channel while it has listeners in this process; to
        ``news.`` for a pattern ``news.*`` (ZeroMQ's filters match prefixes)."""
        hub = self.app.hub
        hub.on_subscribed.append(lambda name: sub.subscribe(filter_prefix(name).encode()))
        hub.on_unsubscribed.append(lambda name: sub.unsubscribe(filter_prefix(name).encode()))

    async def _pull_loop(self, pull: zmq.asyncio.Socket) -> None:
        while True:
            frames = await pull.recv_multipart(copy=True)
            if len(frames) != 1:
                self._reject("pull", f"received message with parts != 1 ({len(frames)})")
                continue
            self._publish("pull", frames[0], None)

    async def _sub_loop(self, sub: zmq.asyncio.Socket) -> None:
        while True:
            frames = await sub.recv_multipart(copy=True)
            if len(frames) != 2:
                self._reject("sub", f"received message with parts != 2 ({len(frames)})")
                continue
            channel = frames[0].decode(errors="replace")
            self._publish("sub", frames[1], channel)

    def _publish(self, source: str, payload: bytes, channel: str | None) -> None:
        try:
            raw = decode_payload(payload)
        except PublishError as e:
            self._reject(source, str(e))
            return
        try:
            self.app.publish_item(raw, channel=channel, input=f"zmq-{source}")
        except PublishError as e:
            log.warning("publish_rejected", input=source, reason=str(e))

    def _reject(self, source: str, reason: str) -> None:
        """A message that is not an item at all: logged and counted like a bad item."""
        self.app.metrics.publishes_rejected += 1
        log.warning("publish_rejected", input=source, reason=reason)
