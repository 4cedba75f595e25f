"""A fast WebSocket-over-HTTP echo origin: ``python -m bench.woh_origin --port PORT``.

asyncio Protocols with h11, keep-alive, nothing else. A request with
``Content-Type: application/websocket-events`` is answered with events: ``OPEN`` → ``OPEN``,
``TEXT``/``BINARY`` → the same message back, ``PING`` → ``PONG``, ``CLOSE`` → ``CLOSE``.
Any other request gets ``200 ok``. An ``OPEN`` of a path with ``?channel=NAME`` also turns
on the GRIP extension (``message-prefix=""``) and subscribes the connection to ``NAME``, so
published ``ws-message`` items reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

import h11

EVENTS = b"application/websocket-events"
ECHO = {b"OPEN": b"OPEN", b"TEXT": b"TEXT", b"BINARY": b"BINARY", b"PING": b"PONG",
        b"CLOSE": b"CLOSE"}


def decode_events(body: bytes) -> list[tuple[bytes, bytes]]:
    events, at = [], 0
    while at < len(body):
        eol = body.index(b"\r\n", at)
        name, _, size = body[at:eol].partition(b" ")
        at = eol + 2
        content = b""
        if size:
            n = int(size, 16)
            content, at = body[at:at + n], at + n + 2
        events.append((name, content))
    return events


def encode_events(events: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + (b" %x\r\n%s\r\n" % (len(c), c) if c else b"\r\n")
                    for name, c in events)


def answer(target: bytes, content_type: bytes | None, body: bytes,
           ) -> tuple[list[tuple[bytes, bytes]], bytes]:
    if content_type != EVENTS:
        return [(b"content-type", b"text/plain")], b"ok\n"
    events = decode_events(body)
    out = [(ECHO[name], content) for name, content in events if name in ECHO]
    headers = [(b"content-type", EVENTS)]
    channel = parse_qs(urlsplit(target).query).get(b"channel")
    if channel and (b"OPEN", b"") in events:
        headers.append((b"sec-websocket-extensions", b'grip; message-prefix=""'))
        out.append((b"TEXT", b'c:{"type": "subscribe", "channel": "%s"}' % channel[0]))
    return headers, encode_events(out)


class Origin(asyncio.Protocol):
    def __init__(self) -> None:
        self.conn = h11.Connection(h11.SERVER)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []
        self.content_type: bytes | None = None
        self.target = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                self.transport.close()  # type: ignore[union-attr]
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self.body = []
                self.target = event.target
                self.content_type = next((v for k, v in event.headers
                                          if k == b"content-type"), None)
            elif isinstance(event, h11.Data):
                self.body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                headers, body = answer(self.target, self.content_type, b"".join(self.body))
                headers.append((b"content-length", b"%d" % len(body)))
                self.transport.write(  # type: ignore[union-attr]
                    conn.send(h11.Response(status_code=200, headers=headers))
                    + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    self.transport.close()  # type: ignore[union-attr]
                    return
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()  # type: ignore[union-attr]
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Origin, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.woh_origin")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port))
    except ImportError:
        asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
