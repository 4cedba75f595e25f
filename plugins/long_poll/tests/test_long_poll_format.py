"""The ``http-response`` format: defaults, Pushpin's messages word for word, the quirks p8
keeps or drops, and a Hypothesis property (parses, or raises PublishError)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from p8_long_poll.format import HttpResponse, HttpResponseFormat
from p8_long_poll.jsonpatch import patch_body

from p8core import PublishError
from p8core.pubsub.items import from_tnetstring, parse_publish_body

WHERE = "'http-response'"


def parse(**raw: Any) -> HttpResponse:
    return HttpResponseFormat().parse(raw, WHERE)


def fails(message: str, **raw: Any) -> None:
    with pytest.raises(PublishError) as info:
        parse(**raw)
    assert str(info.value) == message


def test_defaults() -> None:
    assert parse(body="hi\n") == HttpResponse("send", 200, b"OK", (), frozenset(), b"hi\n")
    got = parse(code=201, reason="", body="")
    assert (got.code, got.reason, got.body) == (201, b"Created", b"")
    assert parse(code=299, body="").reason == b"Undefined Reason"
    assert parse(code=404, reason="Gone Fishing", body="").reason == b"Gone Fishing"
    assert parse(action="send", body="x", action_ignored=1).action == "send"


def test_body_bin_takes_precedence_then_body_then_body_patch() -> None:
    encoded = base64.b64encode(b"\x00\xffbin").decode()
    assert parse(**{"body-bin": encoded, "body": "text"}).body == b"\x00\xffbin"
    # Qt's decoder skips what is not base64, padding included.
    assert parse(**{"body-bin": "aGk=\n"}).body == b"hi"
    assert parse(**{"body-bin": "aGk"}).body == b"hi"
    got = parse(body="text", **{"body-patch": [{"op": "remove", "path": "/a"}]})
    assert (got.body, got.patched) == (b"text", False)
    got = parse(**{"body-patch": [{"op": "remove", "path": "/a"}]})
    assert got.patched and patch_body(b'{"a":1,"b":2}\n', got.patch) == b'{"b":2}\n'


def test_a_patch_that_does_not_compile_is_accepted_and_empties_the_body() -> None:
    got = parse(**{"body-patch": [{"op": "nope"}]})
    assert got.patched and got.patch is None
    assert patch_body(b'{"a":1}', got.patch) == b""


def test_headers_as_pairs_or_object() -> None:
    got = parse(headers=[["X-A", "1"], ["X-A", "2"], ["Content-Type", "text/x"]], body="")
    assert got.headers == ((b"X-A", b"1"), (b"X-A", b"2"), (b"Content-Type", b"text/x"))
    assert got.names == {b"x-a", b"content-type"}
    # An object's members come in key order, as Pushpin reads JSON objects.
    got = parse(headers={"X-Foo": "new", "Content-Type": "application/json"}, body="")
    assert got.headers == ((b"Content-Type", b"application/json"), (b"X-Foo", b"new"))


def test_grip_and_framing_headers_are_dropped() -> None:
    got = parse(headers=[["Grip-Expose-Headers", "X-A"], ["grip-foo", "x"], ["X-Keep", "k"],
                         ["Content-Length", "99"], ["Transfer-Encoding", "chunked"],
                         ["Connection", "close"], ["Keep-Alive", "5"]], body="")
    assert got.headers == ((b"X-Keep", b"k"),)
    assert got.names == {b"x-keep"}


def test_header_values_are_trimmed() -> None:
    assert parse(headers={"X-A": "  spaced out\t"}, body="").headers == ((b"X-A",
                                                                          b"spaced out"),)


@pytest.mark.parametrize(("message", "raw"), [
    ("'http-response' contains 'action' with wrong type", {"action": 1, "body": ""}),
    ("", {"action": "refresh", "body": ""}),
    ("'http-response' contains 'code' with wrong type", {"code": [200], "body": ""}),
    ("'http-response' contains 'code' with wrong type", {"code": True, "body": ""}),
    ("'http-response' contains 'code' with wrong type", {"code": 200.5, "body": ""}),
    ("'http-response' contains 'code' with invalid value", {"code": 1000, "body": ""}),
    ("'http-response' contains 'code' with invalid value", {"code": -1, "body": ""}),
    ("'http-response' contains 'reason' with wrong type", {"reason": 5, "body": ""}),
    ("'http-response' contains 'reason' with invalid value", {"reason": "a\r\nb", "body": ""}),
    ("headers contains element with wrong type", {"headers": ["X-A: 1"], "body": ""}),
    ("headers contains list with wrong number of elements",
     {"headers": [["X-A", "1", "2"]], "body": ""}),
    ("header contains name element with wrong type", {"headers": [[1, "1"]], "body": ""}),
    ("header contains value element with wrong type", {"headers": [["X-A", 1]], "body": ""}),
    ("headers contains 'X-A' with wrong type", {"headers": {"X-B": 1, "X-A": 2}, "body": ""}),
    ("'http-response' contains 'headers' with wrong type", {"headers": "X-A: 1", "body": ""}),
    ("headers contains invalid name 'X A'", {"headers": [["X A", "1"]], "body": ""}),
    ("headers contains invalid name ''", {"headers": [["", "1"]], "body": ""}),
    ("headers contains 'X-A' with invalid value", {"headers": [["X-A", "1\r\nX-B: 2"]],
                                                   "body": ""}),
    ("'http-response' contains 'body-bin' with wrong type", {"body-bin": 1}),
    ("'http-response' contains 'body' with wrong type", {"body": 1}),
    ("'http-response' contains 'body-patch' with wrong type", {"body-patch": {"op": "add"}}),
    ("'http-response' does not contain 'body', 'body-bin', or 'body-patch'", {}),
    ("'http-response' does not contain 'body', 'body-bin', or 'body-patch'", {"body": None}),
    ("'http-response' contains 'content-filters' with wrong type",
     {"content-filters": "var-subst", "body": ""}),
    ("'http-response' contains 'content-filters' with wrong type",
     {"content-filters": [1], "body": ""}),
])
def test_pushpin_messages(message: str, raw: dict[str, Any]) -> None:
    fails(message, **raw)


def test_code_quirk_strings_are_read_as_numbers_and_zero_is_refused() -> None:
    # Pushpin 1.36 reads a code string as Qt's toInt does: "201" is 201, "abc" is 0, which
    # it then sends. p8 reads strings the same way but refuses codes below 200, which no
    # HTTP/1.1 server can send as a final response.
    assert parse(code="201", body="").code == 201
    assert parse(code=" 404 ", body="").code == 404
    assert parse(code=201.0, body="").code == 201
    fails("'http-response' contains 'code' with invalid value", code="abc", body="")
    fails("'http-response' contains 'code' with invalid value", code=0, body="")
    fails("'http-response' contains 'code' with invalid value", code=199, body="")
    assert parse(code=999, body="").code == 999


def test_unknown_action_is_rejected_with_an_empty_message_through_the_control_api() -> None:
    body = b'{"items":[{"channel":"c","formats":{"http-response":{"action":"refresh"}}}]}'
    with pytest.raises(PublishError) as info:
        parse_publish_body(body, {"http-response": HttpResponseFormat()})
    assert str(info.value) == "Invalid format: "


def test_hint_and_close_need_no_body_and_ignore_the_rest() -> None:
    assert parse(action="hint", code="not checked") == HttpResponse("hint")
    assert parse(action="close").action == "close"
    assert parse(action="hint", **{"content-filters": ["var-subst"]}).content_filters == (
        "var-subst",)


def test_null_counts_as_absent() -> None:
    got = parse(action=None, code=None, reason=None, headers=None, body="x",
                **{"content-filters": None})
    assert got == HttpResponse(body=b"x")


def test_tnetstring_items_carry_bytes() -> None:
    item = from_tnetstring({b"channel": b"c", b"http-response": {
        b"code": 201, b"reason": b"Made", b"body": b"\xff\x00raw",
        b"headers": [[b"X-A", b"1"]], b"content-filters": [b"var-subst"]}})
    assert isinstance(item, dict)
    got = parse(**item["http-response"])
    assert got == HttpResponse("send", 201, b"Made", ((b"X-A", b"1"),), frozenset({b"x-a"}),
                               b"\xff\x00raw", content_filters=("var-subst",))
    patch = parse(**{"body-patch": [{"op": b"add", "path": b"/a", "value": b"v"}]})
    assert patch_body(b"{}", patch.patch) == b'{"a":"v"}'
    # tnetstring inputs have no body-bin: the item lacks a body, in that input's words.
    fails("'http-response' does not contain 'body' or 'body-patch'", **{"body-bin": b"aGk="})


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)
fields = st.sampled_from(["action", "code", "reason", "headers", "body", "body-bin",
                          "body-patch", "content-filters"])
field_values = (json_values | st.sampled_from(["send", "hint", "close", "200", "abc", "aGk="])
                | st.lists(st.lists(st.text(max_size=6) | st.binary(max_size=4), max_size=3),
                           max_size=3)
                | st.binary(max_size=8))


@given(st.dictionaries(fields, field_values, max_size=6))
def test_parse_returns_a_response_or_raises_publish_error(raw: dict[str, Any]) -> None:
    try:
        got = parse(**raw)
    except PublishError:
        return
    assert isinstance(got, HttpResponse)
    assert 200 <= got.code <= 999
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in got.headers)
