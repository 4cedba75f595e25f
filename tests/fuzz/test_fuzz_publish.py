"""Fuzzing the publish API: random JSON shapes, wrong types, huge strings, deep nesting,
invalid base64 and invalid UTF-8, published while a stream, a long-poll and a WebSocket
listen on the channel. Every answer is 200 or a 4xx with one line of reason."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import example, given, settings
from hypothesis import strategies as st

FUZZ = settings(settings.get_profile("p8-fuzz"))

FIELDS = ["content", "content-bin", "action", "type", "code", "reason", "body", "body-bin",
          "body-patch", "headers", "content-filters"]
TRICKY_STRINGS = st.sampled_from(["", "send", "close", "hint", "refresh", "text", "binary",
                                  "ping", "pong", "!!not base64!!", "YWJj", "YWJ", "\x00",
                                  "\ud800", "%I", "%(text)I", "skip-self", "build-id"])
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
           | TRICKY_STRINGS)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10) | TRICKY_STRINGS, inner,
                                             max_size=4), max_leaves=12)
headers = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=20)), max_size=4).map(
    lambda pairs: [list(p) for p in pairs]) | st.dictionaries(st.text(max_size=12),
                                                              json_values, max_size=3)
field_values = json_values | TRICKY_STRINGS | headers | st.integers(-2, 1_200)
format_objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), field_values,
                                 max_size=5)
items = st.fixed_dictionaries(
    {"channel": st.sampled_from(["fuzz", "elsewhere", ""]) | json_values},
    optional={
        "formats": st.dictionaries(
            st.sampled_from(["http-stream", "http-response", "ws-message"])
            | st.text(max_size=8), format_objects | json_values, max_size=3),
        "id": st.text(max_size=5) | json_values,
        "prev-id": st.text(max_size=5) | json_values,
        "meta": st.dictionaries(st.text(max_size=8), st.text(max_size=8) | json_values,
                                max_size=3),
        "no-seq": st.booleans() | json_values,
        "size": st.integers(-5, 10**12) | json_values,
        "http-stream": format_objects,
        "ws-message": format_objects,
    })


def _document(parts: list[Any]) -> bytes:
    return json.dumps({"items": parts}).encode()


huge_string = st.integers(0, 1_100_000).map(lambda n: _document(
    [{"channel": "fuzz", "formats": {"http-stream": {"content": "x" * n}}}]))
deep = st.integers(1, 50_000).map(lambda n: (
    '{"items": [{"channel": "fuzz", "formats": {"http-stream": {"content": '
    + "[" * n + "]" * n + "}}}]}").encode())
invalid_utf8 = st.binary(max_size=3).map(lambda junk: (
    b'{"items": [{"channel": "fuzz", "formats": {"http-stream": {"content": "\xff'
    + junk + b'"}}}]}'))
bodies = (st.lists(items, max_size=3).map(_document) | json_values.map(
    lambda v: json.dumps(v).encode()) | huge_string | deep | invalid_utf8
    | st.binary(max_size=200))


@FUZZ
@given(body=bodies)
@example(body=_document([{"channel": "fuzz", "formats": {"": {}}, "meta": {"\n": None}}]))
def test_publish_answers_are_200_or_a_one_line_4xx(fuzz_stack: Any, body: bytes) -> None:
    with fuzz_stack.victims(), httpx.Client(timeout=5) as client:
        resp = client.post(f"{fuzz_stack.p8.control_url}/publish/", content=body)
    assert resp.status_code in (200, 400, 413), (resp.status_code, resp.text)
    assert resp.text.endswith("\n") and "\n" not in resp.text[:-1], resp.text
    fuzz_stack.check()
