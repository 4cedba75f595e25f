"""The essential plugin, always registered: HTTP(S) backends, the ``test`` target and
the core's commands."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs

from .commands import Command, ConnCheck, PublishCommand, Recover
from .connector import BufferedResponse, Connector, OriginRequest, OriginResponse
from .hookspecs import hookimpl
from .proxy.origin import HttpConnector

TEST_BODY_MAX = 100_000


class BuiltinTestConnector(Connector):
    """The built-in test backend (``target = "test"``), answering as Pushpin's does."""

    schemes = ("test",)

    async def request(self, req: OriginRequest, *, timeout: float) -> OriginResponse:
        size = 0
        async for chunk in req.body:
            size += len(chunk)
        if size > TEST_BODY_MAX:
            return _text(400, b"request too large\n")
        raw_path, _, query = req.target.decode("latin-1").partition("?")
        prefix = req.route.path_prefix.rstrip("/") if req.route else ""
        path = raw_path[len(prefix):] if raw_path.startswith(prefix) else raw_path
        path = path[:-1] if path.endswith("/") else path
        channels = parse_qs(query).get("channel") or ["test"]
        grip = b", ".join(c.encode() for c in channels)
        if path == "":
            return _text(200, b"Hello from the Pushpin test handler!\n")
        if path == "/response":
            return _text(200, b"nothing for now\n",
                         [(b"grip-hold", b"response"), (b"grip-channel", grip)])
        if path == "/stream":
            return _text(200, b"[stream opened]\n",
                         [(b"grip-hold", b"stream"), (b"grip-channel", grip)])
        return _text(404, b"no such test resource\n")


def _text(status: int, body: bytes,
          extra: Sequence[tuple[bytes, bytes]] = ()) -> BufferedResponse:
    head = [(b"content-type", b"text/plain"), *extra, (b"content-length", b"%d" % len(body))]
    return BufferedResponse(status, head, body)


@hookimpl
def p8_register_connectors() -> list[type[Connector]]:
    return [HttpConnector, BuiltinTestConnector]


@hookimpl
def p8_register_commands() -> list[Command]:
    return [Recover(), ConnCheck(), PublishCommand()]
