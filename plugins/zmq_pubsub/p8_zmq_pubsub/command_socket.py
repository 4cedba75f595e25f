"""The command socket: a bound ROUTER answering ZRPC requests from REQ (or DEALER)
clients, such as pubcontrol's discovery of the publish sockets."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
import zmq
import zmq.asyncio

from p8core import Command
from p8core.app import App

from .settings import ZmqSettings
from .sockets import bind
from .zrpc import answer

log = structlog.get_logger(component="zmq_pubsub")


class GetZmqUris(Command):
    """``get-zmq-uris``: where this process takes publishes and commands (publishing.md
    §3.4). Only the sockets that are on; ``publish-sub`` only when p8 binds it."""

    name = "get-zmq-uris"

    def __init__(self, settings: ZmqSettings) -> None:
        self.settings = settings

    def run(self, app: App, args: Mapping[str, object]) -> dict[str, str]:
        s = self.settings
        uris = {"publish-pull": s.pull} if s.pull else {}
        if s.sub and not s.sub_connect:
            uris["publish-sub"] = s.sub[0]
        if s.command:
            uris["command"] = s.command
        return uris


async def serve_commands(app: App, settings: ZmqSettings) -> None:
    """Bind the command socket and answer each request in turn until cancelled."""
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.ROUTER)
    try:
        sock.sndhwm = sock.rcvhwm = settings.hwm
        bind(sock, settings.command)
        log.info("command_socket_ready", command=settings.command)
        while True:
            frames = await sock.recv_multipart(copy=True)
            if len(frames) < 2:
                continue  # no envelope: nobody to answer
            # REQ clients put an empty frame between the routing envelope and the request.
            envelope, request = frames[:-1], frames[-1]
            await sock.send_multipart([*envelope, answer(request, app)])
    finally:
        sock.close(linger=0)
        ctx.term()
