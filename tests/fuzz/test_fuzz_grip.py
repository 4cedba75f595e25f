"""Fuzzing GRIP instructions: a backend answers with every Grip-* header carrying garbage
parameters, or with an application/grip-instruct body of any shape. The client gets the
backend's answer, a held response, or a 502 with a reason; never a 500."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

FUZZ = settings(settings.get_profile("p8-fuzz"))

text = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=16)
tokens = st.sampled_from(["stream", "response", "", "0", "1", "-1", "55", "99999999999",
                          "cstring", "base64", "raw", "utf-8", "next", "prev", "skip-self",
                          "build-id", "var-subst", "aGVsbG8=", "!!", '"quoted', '"a\\"b"',
                          "x=y", "<", ">", ";", ","]) | text
params = st.lists(st.tuples(st.sampled_from(["prev-id", "filter", "format", "timeout",
                                             "rel", "mode", "id"]) | text, tokens),
                  max_size=3).map(lambda ps: "".join(f"; {k}={v}" for k, v in ps))
urls = st.sampled_from(["/next", "next?x=1", "", "http://127.0.0.1:1/", "::", "http://[::1",
                        "/a b"])
element = st.one_of(
    st.tuples(tokens, params).map("".join),
    st.tuples(urls, params).map(lambda t: f"<{t[0]}>{t[1]}"),
    st.tuples(st.integers(-1, 1000), text).map(lambda t: f"{t[0]} {t[1]}"),
)
header_values = st.lists(element, min_size=1, max_size=3).map(", ".join)
small = st.integers(-2, 100).map(str)
PLAUSIBLE = {
    "Grip-Hold": st.sampled_from(["stream", "response"]),
    "Grip-Channel": st.tuples(st.sampled_from(["fuzz", "a", "b"]), params).map("".join),
    "Grip-Timeout": small,
    "Grip-Keep-Alive": st.tuples(tokens, params).map("".join),
    "Grip-Link": st.tuples(urls, params).map(lambda t: f"<{t[0]}>; rel=next{t[1]}"),
    "Grip-Set-Meta": st.tuples(text, text).map(lambda t: f"{t[0]}={t[1]}"),
    "Grip-Status": st.tuples(st.integers(0, 999), text).map(lambda t: f"{t[0]} {t[1]}"),
    "Grip-Expose-Headers": st.sampled_from(["Content-Type", "X-A, X-B", ""]),
    "Grip-Last": st.tuples(text, params).map("".join),
}
grip_headers = st.lists(st.sampled_from(list(PLAUSIBLE)).flatmap(
    lambda name: st.tuples(st.just(name), st.one_of(*[PLAUSIBLE[name]] * 3, header_values))),
    min_size=1, max_size=8)

scalars = st.none() | st.booleans() | st.integers(-(2**65), 2**65) | text | tokens
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(text | tokens, inner, max_size=3), max_leaves=10)
channel_objects = st.fixed_dictionaries({}, optional={
    "name": json_values, "prev-id": json_values, "filters": json_values})
instruct = st.fixed_dictionaries({}, optional={
    "hold": st.fixed_dictionaries({}, optional={
        "mode": st.sampled_from(["stream", "response"]) | json_values,
        "channels": st.lists(channel_objects, max_size=3) | json_values,
        "timeout": json_values, "keep-alive": json_values, "meta": json_values}),
    "response": st.fixed_dictionaries({}, optional={
        "code": json_values, "reason": json_values, "headers": json_values,
        "body": json_values, "body-bin": json_values}),
}) | json_values


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    headers = draw(grip_headers)
    if draw(st.booleans()):
        body = json.dumps(draw(instruct)).encode()
        headers.append(("Content-Type", draw(st.sampled_from(
            ["application/grip-instruct", "application/grip-instruct; charset=x"]))))
        status = draw(st.sampled_from([200, 200, 404]))
    else:
        body = draw(st.binary(max_size=40))
        status = draw(st.sampled_from([200, 204, 304, 404, 503]))
    lines = [f"HTTP/1.1 {status} Whatever"] + [f"{n}: {v}" for n, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


@FUZZ
@given(response=responses(), method=st.sampled_from(["GET", "POST", "HEAD"]))
@example(response=b"HTTP/1.1 200 OK\r\nGrip-Status: 0\r\nContent-Length: 0\r\n\r\n",
         method="GET")
@example(response=b"HTTP/1.1 200 OK\r\nGrip-Hold: stream\r\nGrip-Status: 99\r\n"
                  b"Content-Length: 0\r\n\r\n", method="GET")
def test_grip_instructions_with_garbage_give_a_clear_answer(fuzz_stack: Any, response: bytes,
                                                            method: str) -> None:
    fuzz_stack.script.http = response
    with fuzz_stack.connect() as sock:
        sock.sendall(f"{method} /grip HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 2\r\n\r\nhi"
                     .encode())
        received = fuzz_stack.read(sock, 0.05)
    assert 500 not in fuzz_stack.statuses(received), received
    fuzz_stack.check()
