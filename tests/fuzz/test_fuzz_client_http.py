"""Fuzzing what clients send: raw bytes and nearly-HTTP requests (odd methods, targets,
versions, header names and values, framing, WebSocket handshakes) to every kind of route.
p8 answers each with a status other than 500, or closes, and never hangs."""

from __future__ import annotations

import socket
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

FUZZ = settings(settings.get_profile("p8-fuzz"))

words = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=24)
methods = st.sampled_from(["GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "CONNECT",
                           "PATCH", "get", ""]) | words
targets = st.sampled_from(["/", "/bystander/", "/bystander/stream", "/bystander/response",
                           "/ws/x", "/zhttp/x", "/grip", "*", "http://h/x",
                           "/bystander/stream?channel=a,b", "/%00", "/" + "a" * 9000]) | words
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", "", "http/1.1"])
NAMES = ["Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Expect",
         "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
         "Sec-WebSocket-Protocol", "Grip-Sig", "Accept", "Content-Type", "X-Forwarded-For",
         "Grip-Hold"]
names = st.sampled_from(NAMES) | words
values = st.sampled_from(["", "chunked", "gzip, chunked", "websocket", "Upgrade",
                          "100-continue", "13", "8", "-1", "0", "5", "99999999999999999999",
                          "close", "keep-alive", "dGhlIHNhbXBsZSBub25jZQ==",
                          "permessage-deflate; client_max_window_bits=99", "grip",
                          "application/websocket-events", "stream"]) | words
headers = st.lists(st.tuples(names, st.sampled_from([": ", ":", " : ", ""]), values),
                   max_size=8)
bodies = st.binary(max_size=64) | st.lists(
    st.tuples(st.sampled_from(["0", "5", "ff", "zz", "-1", "10000000000"]), st.binary(max_size=8)),
    max_size=3).map(lambda chunks: b"".join(
        size.encode() + b"\r\n" + data + b"\r\n" for size, data in chunks))


@st.composite
def garbled(draw: st.DrawFn) -> bytes:
    """Anything shaped roughly like a request."""
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    line = f"{draw(methods)} {draw(targets)} {draw(versions)}".encode("utf-8", "replace")
    lines = [line] + [f"{n}{sep}{v}".encode("utf-8", "replace")
                      for n, sep, v in draw(headers)]
    return eol.join(lines) + eol + eol + draw(bodies)


@st.composite
def plausible(draw: st.DrawFn) -> bytes:
    """A well-formed request line and Host, with odd headers and framing around them."""
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "OPTIONS"]))
    target = draw(st.sampled_from(["/", "/bystander/stream", "/bystander/response", "/ws/x",
                                   "/zhttp/x", "/grip?x=%ff"]))
    lines = [f"{method} {target} HTTP/1.1", "Host: fuzz"]
    if draw(st.booleans()):
        lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
    known = st.sampled_from(NAMES)
    lines += [f"{n}: {v}" for n, v in draw(st.lists(st.tuples(known, values), max_size=6))]
    head = "\r\n".join(lines).encode("utf-8", "replace") + b"\r\n\r\n"
    return head + draw(bodies)


@FUZZ
@given(data=plausible() | garbled() | st.binary(max_size=300))
@example(data=b"HEAD / HTTP/1.0\r\n\r\n")  # no Host to pass on; no body in the answer
@example(data=b"HEAD /bystander/stream HTTP/1.1\r\nHost: fuzz\r\n\r\n")
@example(data=b"HEAD /zhttp/x HTTP/1.1\r\nHost: fuzz\r\n\r\nzz\r\n")  # then garbage
@example(data=b"CONNECT ! HTTP/1.1\n\n")
def test_any_client_bytes_get_an_answer_or_a_close_never_a_500(fuzz_stack: Any,
                                                                data: bytes) -> None:
    with fuzz_stack.connect() as sock:
        sock.sendall(data)
        received = fuzz_stack.read(sock, 0.05)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        while chunk := sock.recv(65536):  # a hung connection times out here
            received += chunk
    assert 500 not in fuzz_stack.statuses(received), received
    assert b"Traceback" not in received
    fuzz_stack.check()
