"""Fuzzing what arrives over ZeroMQ: tnetstring (and JSON) publishes on the PULL input, and
ZHTTP replies from a req-mode handler. A bad publish is counted and logged, never dropped
silently; a bad reply gives the client a 502 with its reason."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from p8core.codec import tnetstring

FUZZ = settings(settings.get_profile("p8-fuzz"))

names = st.sampled_from([b"channel", b"id", b"prev-id", b"formats", b"meta", b"no-seq",
                         b"size", b"http-stream", b"http-response", b"ws-message", b"content",
                         b"content-bin", b"action", b"type", b"code", b"reason", b"body",
                         b"headers", b"close", b"send", b"fuzz", b"more", b"seq", b"credits",
                         b"from", b"max-size", b"condition"]) | st.binary(max_size=6)
scalars = (st.none() | st.booleans() | st.integers(-(2**66), 2**66)
           | st.floats(allow_nan=False) | names | st.binary(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(names, inner, max_size=5), max_leaves=16)
items = st.fixed_dictionaries({b"channel": st.just(b"fuzz") | values}, optional={
    b"formats": st.dictionaries(st.sampled_from([b"http-stream", b"http-response",
                                                 b"ws-message"]) | names,
                                st.dictionaries(names, values, max_size=4) | values,
                                max_size=3),
    b"id": values, b"prev-id": values, b"meta": values, b"no-seq": values})


def corrupt(data: bytes, cut: int, junk: bytes) -> bytes:
    """``data`` cut short (or not, when ``cut`` is past its end) with ``junk`` after it."""
    return data[:cut] + junk


tnetstrings = st.one_of(items, values).map(tnetstring.dumps)
payloads = st.one_of(
    tnetstrings,
    tnetstrings.map(lambda t: b"T" + t),
    st.builds(corrupt, tnetstrings, st.integers(0, 200), st.binary(max_size=4)),
    st.recursive(st.none() | st.integers() | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=8), inner, max_size=3)).map(
        lambda v: b"J" + json.dumps(v).encode()),
    st.binary(max_size=64),
)


@FUZZ
@given(payload=payloads)
def test_pull_input_takes_or_counts_every_message(fuzz_stack: Any, payload: bytes) -> None:
    metrics = fuzz_stack.p8.app.metrics
    seen = metrics.publishes_accepted + metrics.publishes_rejected
    marker = f"after {seen}\n"
    with fuzz_stack.victims():
        fuzz_stack.push.send(payload)
        fuzz_stack.push.send(b"J" + json.dumps({"channel": "bystander", "formats": {
            "http-stream": {"content": marker}}}).encode())
        fuzz_stack.portal.call(fuzz_stack.bystander.expect, marker.encode())
    assert metrics.publishes_accepted + metrics.publishes_rejected == seen + 2, \
        "each message is published or counted as rejected"
    fuzz_stack.check()


header_pairs = st.lists(st.tuples(
    st.sampled_from([b"Grip-Hold", b"Grip-Channel", b"Content-Type", b"Content-Length",
                     b"Grip-Status", b"X-A"]) | names,
    st.sampled_from([b"stream", b"response", b"fuzz", b"text/plain", b"5", b"0 x"]) | names,
).map(list), max_size=4)


@st.composite
def zhttp_replies(draw: st.DrawFn) -> Any:
    """A reply builder: a well-formed reply to the request's id, some of whose fields may
    be replaced by values of any type, and whose bytes may be cut or extended (never into
    the id, so that p8 can tell which request failed)."""
    fields: dict[bytes, Any] = {b"code": draw(st.sampled_from([200, 200, 404, 99, 1000])),
                                b"reason": b"OK", b"headers": draw(header_pairs),
                                b"body": draw(st.binary(max_size=20))}
    fields.update(draw(st.dictionaries(names.filter(lambda n: n != b"id"), values,
                                       max_size=2)))
    cut = draw(st.none() | st.integers(0, 200))
    junk = draw(st.binary(max_size=4))
    prefix = draw(st.sampled_from([b"T", b"T", b"T", b"", b"X"]))

    def reply(rid: bytes) -> bytes:
        encoded = tnetstring.dumps({b"id": rid, **fields})
        if cut is None:
            return prefix + encoded
        return prefix + corrupt(encoded, encoded.index(rid) + len(rid) + cut, junk)
    return reply


@FUZZ
@given(reply=zhttp_replies())
def test_zhttp_replies_of_any_shape_answer_the_client_cleanly(fuzz_stack: Any,
                                                               reply: Any) -> None:
    fuzz_stack.script.zhttp = reply
    with fuzz_stack.connect() as sock:
        sock.sendall(b"GET /zhttp/x HTTP/1.1\r\nHost: fuzz\r\n\r\n")
        received = fuzz_stack.read(sock, 0.2, lambda data: b"\r\n\r\n" in data)
    assert 500 not in fuzz_stack.statuses(received), received
    fuzz_stack.check()
