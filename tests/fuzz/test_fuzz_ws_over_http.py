"""Fuzzing the WebSocket-over-HTTP codec end to end: a backend answers a WebSocket client's
requests with events of any shape (broken framing, unknown names, bad sizes, control
messages with garbage) and odd headers. The client gets a 101 or an HTTP answer, never a
500, and an open connection ends with a close frame or a close, never a hang."""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

FUZZ = settings(settings.get_profile("p8-fuzz"))

HANDSHAKE = (b"GET /ws/fuzz HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")

text = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=12)
junk = st.sampled_from(["", "0", "-1", "1e9", "x", "stream", "fuzz", "aGk=", "!!"]) | text
controls = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "unsubscribe", "set-meta", "keep-alive",
                              "send-delayed", "flush-delayed", "detach", "session"]) | text},
    optional={"channel": st.sampled_from(["fuzz", "a"]) | junk, "name": junk, "value": junk,
              "content": junk, "content-bin": junk, "timeout": st.integers(-1, 3) | junk,
              "mode": junk, "message-type": junk, "id": junk, "filters": st.lists(junk)},
).map(lambda c: b"c:" + json.dumps(c).encode())
contents = controls | st.sampled_from([b"m:hello", b"hello", b"", b"c:", b"c:{"]) \
    | st.binary(max_size=12)


@st.composite
def event(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(["OPEN", "TEXT", "BINARY", "PING", "PONG", "CLOSE",
                                 "DISCONNECT", "OPEN", "TEXT", "NOPE", "text"]))
    content = draw(contents)
    if name == "CLOSE" and draw(st.booleans()):
        content = struct.pack("!H", draw(st.integers(0, 65535))) + draw(st.binary(max_size=4))
    size = draw(st.sampled_from([None, len(content), len(content), len(content) + 1, -1]))
    if size is None or not content:
        return name.encode() + b"\r\n"
    hex_size = f"{size:x}" if size >= 0 else "zz"
    ending = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b""]))
    return f"{name} {hex_size}\r\n".encode() + content + ending


headers = st.lists(st.sampled_from([
    "Content-Type: application/websocket-events", "Content-Type: text/plain",
    "Sec-WebSocket-Extensions: grip", 'Sec-WebSocket-Extensions: grip; message-prefix=""',
    "Sec-WebSocket-Extensions: grip; message-prefix=m:x", "Keep-Alive-Interval: 0",
    "Keep-Alive-Interval: -5", "Keep-Alive-Interval: x", "Set-Meta-User: alice",
    "Set-Meta-User: ", "Sec-WebSocket-Protocol: chat"]), max_size=5)


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from([200, 200, 200, 404, 101]))
    first = [b"OPEN\r\n"] if draw(st.booleans()) else []
    body = b"".join(first + draw(st.lists(event(), max_size=5)))
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/websocket-events",
             "Sec-WebSocket-Extensions: grip", *draw(headers), f"Content-Length: {len(body)}"]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def frame(opcode: int, payload: bytes) -> bytes:
    """A client frame, masked with the all-zero key (so the payload stays as it is)."""
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


@FUZZ
@given(answer=answers(), message=st.binary(max_size=20))
def test_backend_events_of_any_shape_reach_the_client_cleanly(fuzz_stack: Any, answer: bytes,
                                                              message: bytes) -> None:
    fuzz_stack.script.http = answer
    with fuzz_stack.connect() as sock:
        sock.sendall(HANDSHAKE)
        received = fuzz_stack.read(sock, 0.5, lambda data: b"\r\n\r\n" in data)
        statuses = fuzz_stack.statuses(received)
        assert statuses and 500 not in statuses, received
        if statuses[0] == 101:
            with contextlib.suppress(ConnectionError):
                sock.sendall(frame(0x2, message) + frame(0x8, struct.pack("!H", 1000)))
            fuzz_stack.read(sock, 0.05)
    fuzz_stack.check()
