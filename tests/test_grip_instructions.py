"""GRIP instruction parsing (grip.md §1, §3): headers, JSON form, and every error message."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p8core.errors import InstructionError
from p8core.grip.instructions import (
    Channel,
    Instruct,
    KeepAlive,
    NextLink,
    get_param,
    grip_last_headers,
    has_param,
    is_grip_response,
    parse_header_params,
    parse_instruct,
    parse_param_list,
    split_header_list,
    status_reason,
    strip_grip_headers,
)

URL = "http://example.com/stream/start?x=1"
JSON_TYPE = (b"Content-Type", b"application/grip-instruct")


def parse(*headers: tuple[str, str], status: int = 200, reason: bytes = b"OK",
          body: bytes = b"", **kw: object) -> Instruct:
    raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    return parse_instruct(status, reason, raw, body, request_url=URL, **kw)  # type: ignore[arg-type]


def parse_json(doc: object, *headers: tuple[bytes, bytes], status: int = 200,
               **kw: object) -> Instruct:
    body = json.dumps(doc).encode()
    return parse_instruct(status, b"OK", [JSON_TYPE, *headers], body,
                          request_url=URL, **kw)  # type: ignore[arg-type]


def fails(message: str, *headers: tuple[str, str], **kw: object) -> None:
    with pytest.raises(InstructionError) as info:
        parse(*headers, **kw)  # type: ignore[arg-type]
    assert str(info.value) == message


def json_fails(message: str, doc: object, *headers: tuple[bytes, bytes],
               status: int = 200) -> None:
    with pytest.raises(InstructionError) as info:
        parse_json(doc, *headers, status=status)
    assert str(info.value) == message


# ---- recognising ------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "expected"), [
    ([(b"Grip-Hold", b"stream")], True),
    ([(b"grip-channel", b"a")], True),
    ([(b"GRIP-ANYTHING", b"")], True),
    ([(b"Content-Type", b"application/grip-instruct")], True),
    ([(b"content-type", b"application/grip-instruct; charset=utf-8")], True),
    ([(b"Content-Type", b" application/grip-instruct ")], True),
    ([(b"Content-Type", b"Application/Grip-Instruct")], False),
    ([(b"Content-Type", b"text/plain"), (b"Content-Type", b"application/grip-instruct")],
     False),
    ([(b"Content-Type", b"text/plain"), (b"X-Grip-Hold", b"stream")], False),
    ([(b"Grip", b"x"), (b"Gripe-", b"x")], False),
    ([], False),
])
def test_is_grip_response(headers: Sequence[tuple[bytes, bytes]], expected: bool) -> None:
    assert is_grip_response(headers) is expected


def test_strip_grip_headers_keeps_order_and_case() -> None:
    headers = [(b"Host", b"h"), (b"Grip-Sig", b"x"), (b"grip-last", b"a"), (b"X-Grip", b"k")]
    assert strip_grip_headers(headers) == [(b"Host", b"h"), (b"X-Grip", b"k")]


# ---- parameter syntax --------------------------------------------------------------------

@pytest.mark.parametrize(("value", "parts"), [
    ("", []),
    ("a", ["a"]),
    ("a, b ,c", ["a", "b", "c"]),
    ("a,", ["a"]),
    ("a,,b", ["a", "", "b"]),
    ('a; x="1,2", b', ['a; x="1,2"', "b"]),
    ('a; x="q \\" ,", b', ['a; x="q \\" ,"', "b"]),
    ('a; x="open, b', ['a; x="open, b']),
])
def test_split_header_list(value: str, parts: list[str]) -> None:
    assert split_header_list(value) == parts


def test_parse_header_params() -> None:
    first, params = parse_header_params(' first ; name=value; Q="q \\" v;x" junk ; flag; e=')
    assert first == "first"
    assert params == (("name", "value"), ("Q", 'q " v;x'), ("flag", None), ("e", ""))
    assert get_param(params, "q") == 'q " v;x'
    assert get_param(params, "flag") is None and has_param(params, "FLAG")
    assert get_param(params, "missing") is None and not has_param(params, "missing")


def test_parse_header_params_first_part_is_verbatim() -> None:
    assert parse_header_params('"x=y"') == ('"x=y"', ())
    assert parse_header_params("<http://a/b?c=d>; rel=next") == (
        "<http://a/b?c=d>", (("rel", "next"),))


@pytest.mark.parametrize("value", ['a; x="open', 'a; x="ends in \\'])
def test_parse_header_params_rejects_open_quotes(value: str) -> None:
    with pytest.raises(ValueError):
        parse_header_params(value)


def test_parse_param_list_parses_the_first_element_too() -> None:
    assert parse_param_list('user="alice"; x') == (("user", "alice"), ("x", None))


# ---- plain header form --------------------------------------------------------------------

def test_no_hold_response_is_the_backend_response() -> None:
    got = parse(("Content-Type", "text/plain"), ("Grip-Channel", "x"), body=b"hello\n")
    assert got.hold is None
    assert got.status == 200 and got.reason == b"OK"
    assert got.headers == ((b"Content-Type", b"text/plain"),)
    assert got.body == b"hello\n"
    assert got.channels == (Channel("x"),)
    assert got.timeout == 55 and got.keep_alive is None and got.next_link is None
    assert dict(got.meta) == {} and got.dropped_channels == 0


def test_framing_and_grip_headers_are_removed() -> None:
    got = parse(("Content-Length", "5"), ("Connection", "close, X-Hop"), ("X-Hop", "1"),
                ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"), ("TE", "x"),
                ("Trailer", "x"), ("Upgrade", "x"), ("Proxy-Authenticate", "x"),
                ("X-Kept", "k"), ("Grip-Hold", "stream"), ("grip-unknown", "z"))
    assert got.headers == ((b"X-Kept", b"k"),)


def test_empty_reason_gets_the_standard_phrase() -> None:
    assert parse(status=404, reason=b"").reason == b"Not Found"
    assert parse(status=404, reason=b"Gone Fishing").reason == b"Gone Fishing"


@pytest.mark.parametrize("hold", ["response", "stream", "sse", "my-plugin-mode"])
def test_any_hold_name_is_accepted(hold: str) -> None:
    assert parse(("Grip-Hold", hold)).hold == hold


def test_hold_uses_first_occurrence_only() -> None:
    assert parse(("grip-hold", " stream "), ("Grip-Hold", "response")).hold == "stream"


def test_empty_hold_is_an_error() -> None:
    fails("Grip-Hold must be set to either 'response' or 'stream'", ("Grip-Hold", " "))


def test_channels_with_params_and_repeats() -> None:
    got = parse(("Grip-Channel", "news, user-123; prev-id=7; filter=skip-self; "
                                 "FILTER=var-subst"),
                ("grip-channel", 'third; Prev-Id="a;b"'))
    assert got.channels == (
        Channel("news"),
        Channel("user-123", "7", ("skip-self", "var-subst")),
        Channel("third", "a;b"),
    )


def test_channel_names_are_utf8() -> None:
    got = parse_instruct(200, b"OK", [(b"Grip-Channel", "caf\u00e9".encode())], b"",
                         request_url=URL)
    assert got.channels == (Channel("caf\u00e9"),)


def test_empty_prev_id_means_none() -> None:
    assert parse(("Grip-Channel", "a; prev-id=; filter")).channels == (Channel("a"),)


def test_empty_list_headers_add_nothing() -> None:
    got = parse(("Grip-Channel", ""), ("Grip-Set-Meta", ""), ("Grip-Link", ""))
    assert (got.channels, dict(got.meta), got.next_link) == ((), {}, None)


@pytest.mark.parametrize("value", [",", "a, ,b", "; prev-id=1", 'a; prev-id="x'])
def test_bad_channel(value: str) -> None:
    fails("failed to parse Grip-Channel", ("Grip-Channel", value))


def test_channel_prefix_duplicates_and_limit() -> None:
    got = parse(("Grip-Channel", "a, b; prev-id=1, a; prev-id=9, c, d"),
                channel_prefix="pp-", max_channels=2)
    assert got.channels == (Channel("pp-a"), Channel("pp-b", "1"))
    assert got.dropped_channels == 2


def test_channel_limit_zero_drops_all() -> None:
    got = parse(("Grip-Channel", "a, b"), max_channels=0)
    assert got.channels == () and got.dropped_channels == 2


@pytest.mark.parametrize(("value", "timeout"), [
    ("0", 5), ("3", 5), ("5", 5), ("8", 8), ("+60", 60), (" 120 ", 120),
])
def test_timeout(value: str, timeout: int) -> None:
    assert parse(("Grip-Timeout", value)).timeout == timeout


@pytest.mark.parametrize("value", ["", "abc", "1.5", "1e3", "0x10", "99999999999", "1_0"])
def test_timeout_not_a_number(value: str) -> None:
    fails("failed to parse Grip-Timeout", ("Grip-Timeout", value))


def test_timeout_negative() -> None:
    fails("Grip-Timeout has invalid value", ("Grip-Timeout", "-1"))


def test_timeout_first_occurrence_only() -> None:
    assert parse(("Grip-Timeout", "30"), ("Grip-Timeout", "x")).timeout == 30


# ---- Grip-Keep-Alive ----------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("ping", KeepAlive(b"ping", 55, "idle")),
    ("  ping  ; timeout=2", KeepAlive(b"ping", 2, "idle")),
    ("ping; format=raw; mode=interval", KeepAlive(b"ping", 55, "interval")),
    ("ping; mode=idle; timeout=0", KeepAlive(b"ping", 1, "idle")),
    ("ping\\n; format=cstring; timeout=2", KeepAlive(b"ping\n", 2, "idle")),
    ("a\\\\b\\r\\n\\x41\\x7e\\qz; format=cstring", KeepAlive(b"a\\b\r\nA~z", 55, "idle")),
    ("\\xFF\\x00; format=cstring", KeepAlive(b"\xff\x00", 55, "idle")),
    ("cGluZzsK; format=base64", KeepAlive(b"ping;\n", 55, "idle")),
    ("cGluZw; format=base64", KeepAlive(b"ping", 55, "idle")),
    ("pi\u00e9; format=raw", KeepAlive(b"pi\xe9", 55, "idle")),
])
def test_keep_alive(value: str, expected: KeepAlive) -> None:
    assert parse(("Grip-Keep-Alive", value)).keep_alive == expected


def test_keep_alive_first_occurrence_only() -> None:
    got = parse(("Grip-Keep-Alive", "a, b"), ("Grip-Keep-Alive", "c"))
    assert got.keep_alive == KeepAlive(b"a, b")


def test_keep_alive_that_decodes_to_nothing_is_dropped() -> None:
    assert parse(("Grip-Keep-Alive", "\\q; format=cstring")).keep_alive is None
    assert parse(("Grip-Keep-Alive", "===; format=base64")).keep_alive is None


@pytest.mark.parametrize(("value", "message"), [
    ("", "Grip-Keep-Alive cannot be empty"),
    ("; format=raw", "Grip-Keep-Alive cannot be empty"),
    ("x; format=x", "no such Grip-Keep-Alive format 'x'"),
    ("x; format=hex", "no such Grip-Keep-Alive format 'hex'"),
    ("x; mode=sometimes", "no such Grip-Keep-Alive mode 'sometimes'"),
    ("x; timeout=soon", "failed to parse Grip-Keep-Alive timeout value"),
    ("x; timeout", "failed to parse Grip-Keep-Alive timeout value"),
    ("x; timeout=-1", "Grip-Keep-Alive timeout has invalid value"),
    ("abc\\; format=cstring", "failed to parse Grip-Keep-Alive cstring format"),
    ("\\x4; format=cstring", "failed to parse Grip-Keep-Alive cstring format"),
    ("\\xZZ; format=cstring", "failed to parse Grip-Keep-Alive cstring format"),
    ("\\x+1; format=cstring", "failed to parse Grip-Keep-Alive cstring format"),
    ('x; format="raw', "failed to parse Grip-Keep-Alive"),
])
def test_keep_alive_errors(value: str, message: str) -> None:
    fails(message, ("Grip-Keep-Alive", value))


# ---- Grip-Link ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("</stream/next?cursor=abc>; rel=next; timeout=120",
     NextLink("http://example.com/stream/next?cursor=abc", 120)),
    ("<next?c=1>; rel=next", NextLink("http://example.com/stream/next?c=1", 120)),
    ("<?c=2>; rel=next; timeout=3", NextLink("http://example.com/stream/start?c=2", 3)),
    ("<//other.example:8080/x>; rel=next", NextLink("http://other.example:8080/x", 120)),
    ("<https://b.example/y#frag>; REL=\"next\"", NextLink("https://b.example/y", 120)),
    ("<http://c.example/z>; rel=next; timeout=0", NextLink("http://c.example/z", 0)),
])
def test_next_link(value: str, expected: NextLink) -> None:
    assert parse(("Grip-Link", value)).next_link == expected


def test_links_without_rel_next_are_ignored() -> None:
    got = parse(("Grip-Link", "no-brackets-no-params, </a>; rel=prev, </b>; x=y, </c>; rel=gone"))
    assert got.next_link is None


def test_last_next_link_wins() -> None:
    got = parse(("Grip-Link", "</a>; rel=next"), ("Grip-Link", "</b>; rel=next; timeout=9"))
    assert got.next_link == NextLink("http://example.com/b", 9)


@pytest.mark.parametrize(("value", "message"), [
    ("/x; rel=next", "failed to parse Grip-Link value"),
    ("<>; rel=next", "failed to parse Grip-Link value"),
    ("</x; rel=next", "failed to parse Grip-Link value"),
    ('</x>; rel="next', "failed to parse Grip-Link value"),
    ("<http://[::1/x>; rel=next", "Grip-Link contains invalid link"),
    ("<http://h:port/x>; rel=next", "Grip-Link contains invalid link"),
    ("</a b>; rel=next", "Grip-Link contains invalid link"),
    ("<ftp://h/x>; rel=next", "Grip-Link contains invalid link"),
    ("</x>; rel=next; timeout=abc", "failed to parse Grip-Link timeout value"),
    ("</x>; rel=next; timeout=-2", "Grip-Link timeout has invalid value"),
])
def test_link_errors(value: str, message: str) -> None:
    fails(message, ("Grip-Link", value))


# ---- Grip-Status, Grip-Set-Meta, Grip-Expose-Headers ------------------------------------------

@pytest.mark.parametrize(("value", "status", "reason"), [
    ("201", 201, b"Created"),
    ("299 Custom Thing", 299, b"Custom Thing"),
    ("404", 404, b"Not Found"),
    ("299", 299, b"Undefined Reason"),
    ("0", 0, b"Undefined Reason"),
])
def test_grip_status(value: str, status: int, reason: bytes) -> None:
    got = parse(("Grip-Status", value), status=200, reason=b"Backend Reason")
    assert (got.status, got.reason) == (status, reason)


def test_empty_grip_status_is_ignored() -> None:
    got = parse(("Grip-Status", ""), status=202, reason=b"Yes")
    assert (got.status, got.reason) == (202, b"Yes")


@pytest.mark.parametrize("value", ["abc", "1000", "-1", "20x Bad", " Created"])
def test_grip_status_errors(value: str) -> None:
    fails("Grip-Status contains invalid status code", ("Grip-Status", value))


def test_status_reason() -> None:
    assert status_reason(200) == b"OK"
    assert status_reason(503) == b"Service Unavailable"
    assert status_reason(999) == b"Undefined Reason"


def test_set_meta() -> None:
    got = parse(("Grip-Set-Meta", 'user="alice", greeting=hi'),
                ("grip-set-meta", 'flag, q="a, b; c"; ignored=1, user=bob'))
    assert dict(got.meta) == {"user": "bob", "greeting": "hi", "flag": "", "q": "a, b; c"}


@pytest.mark.parametrize("value", [",", "a=1,,b=2", "=x", "; x=1"])
def test_set_meta_empty(value: str) -> None:
    fails("Grip-Set-Meta cannot be empty", ("Grip-Set-Meta", value))


def test_set_meta_unterminated_quote() -> None:
    fails("failed to parse Grip-Set-Meta", ("Grip-Set-Meta", 'a="x'))


def test_expose_headers_keeps_only_those_listed() -> None:
    got = parse(("Content-Type", "text/plain"), ("X-A", "a"), ("x-b", "b"), ("X-C", "c"),
                ("Grip-Expose-Headers", "X-A"), ("grip-expose-headers", "X-B, Content-Length"),
                ("Content-Length", "3"))
    assert got.headers == ((b"X-A", b"a"), (b"x-b", b"b"))


def test_empty_expose_headers_keeps_everything() -> None:
    got = parse(("X-A", "a"), ("Grip-Expose-Headers", ""))
    assert got.headers == ((b"X-A", b"a"),)


def test_meta_is_read_only() -> None:
    got = parse(("Grip-Set-Meta", "a=1"))
    assert isinstance(got.meta, MappingProxyType)
    with pytest.raises(TypeError):
        got.meta["a"] = "2"  # type: ignore[index]
    hash(got)
    assert got == parse(("Grip-Set-Meta", "a=1"))


def test_instruct_copies_a_meta_dict() -> None:
    meta = {"a": "1"}
    instruct = Instruct(meta=meta)
    meta["a"] = "2"
    assert dict(instruct.meta) == {"a": "1"}


# ---- JSON form ------------------------------------------------------------------------------

def test_json_instruct_full() -> None:
    doc = {
        "hold": {
            "mode": "stream",
            "channels": [{"name": "news", "prev-id": "7", "filters": ["skip-self"]}],
            "timeout": 60,
            "keep-alive": {"content": "\n", "timeout": 20},
            "meta": {"user": "alice"},
        },
        "response": {
            "code": 200, "reason": "OK",
            "headers": {"Content-Type": "text/plain"},
            "body": "welcome\n",
        },
    }
    got = parse_json(doc, channel_prefix="pp-")
    assert got.hold == "stream"
    assert got.channels == (Channel("pp-news", "7", ("skip-self",)),)
    assert got.timeout == 60
    assert got.keep_alive == KeepAlive(b"\n", 20, "interval")
    assert dict(got.meta) == {"user": "alice"}
    assert (got.status, got.reason) == (200, b"OK")
    assert got.headers == ((b"Content-Type", b"text/plain"),)
    assert got.body == b"welcome\n"


def test_json_bare_response_resets_reason() -> None:
    got = parse_json({"response": {"code": 201, "body": "no hold instruct\n"}})
    assert got.hold is None
    assert (got.status, got.reason, got.headers, got.body) == (
        201, b"Created", (), b"no hold instruct\n")


def test_json_code_and_custom_reason() -> None:
    got = parse_json({"response": {"code": 299.0, "reason": "Custom"}})
    assert (got.status, got.reason) == (299, b"Custom")


def test_json_missing_body_is_empty() -> None:
    got = parse_json({})
    assert (got.hold, got.status, got.reason, got.headers, got.body) == (
        None, 200, b"OK", (), b"")


def test_json_discards_http_headers_but_reads_grip_headers() -> None:
    got = parse_json({"hold": {"channels": [{"name": "b"}]}},
                     (b"X-Dropped", b"1"), (b"Grip-Status", b"203"),
                     (b"Grip-Link", b"</n>; rel=next"), (b"Grip-Channel", b"a"),
                     (b"Grip-Set-Meta", b"x=1"), (b"Grip-Timeout", b"30"))
    assert got.hold == "response"
    assert [c.name for c in got.channels] == ["a", "b"]
    assert (got.status, got.reason) == (203, b"Non-Authoritative Information")
    assert got.next_link == NextLink("http://example.com/n", 120)
    assert dict(got.meta) == {"x": "1"} and got.timeout == 30
    assert got.headers == ()


def test_json_header_list_shape_and_filtering() -> None:
    got = parse_json({"response": {"headers": [
        ["X-A", "1"], ["X-A", "2"], ["Content-Length", "9"], ["Grip-Foo", "x"],
        ["Connection", "close"], ["Content-Type", "text/plain"]]}})
    assert got.headers == ((b"X-A", b"1"), (b"X-A", b"2"), (b"Content-Type", b"text/plain"))


def test_json_body_bin_wins_over_body() -> None:
    data = bytes(range(256))
    got = parse_json({"response": {"body-bin": base64.b64encode(data).decode(),
                                   "body": "ignored"}})
    assert got.body == data


def test_json_keep_alive_content_bin_and_minimum() -> None:
    got = parse_json({"hold": {"mode": "stream", "channels": [],
                               "keep-alive": {"content-bin": "AAE=", "timeout": 0}}})
    assert got.keep_alive == KeepAlive(b"\x00\x01", 1, "interval")


def test_json_keep_alive_without_content_is_none() -> None:
    got = parse_json({"hold": {"mode": "stream", "channels": [],
                               "keep-alive": {"timeout": 5}}})
    assert got.keep_alive is None


def test_json_timeout_minimum_and_plugin_mode() -> None:
    got = parse_json({"hold": {"mode": "sse", "channels": [], "timeout": 1}})
    assert (got.hold, got.timeout) == ("sse", 5)


def test_json_channels_are_limited() -> None:
    got = parse_json({"hold": {"channels": [{"name": str(i)} for i in range(25)]}})
    assert len(got.channels) == 20 and got.dropped_channels == 5


def test_json_form_needs_status_200() -> None:
    with pytest.raises(InstructionError) as info:
        parse_instruct(404, b"Not Found", [JSON_TYPE], b"{}", request_url=URL)
    assert str(info.value) == "response code for application/grip-instruct content must be 200"


@pytest.mark.parametrize("body", [b"", b"{", b"\xff{}", b'{"a": NaN}', b"[" * 100_000])
def test_json_not_json(body: bytes) -> None:
    with pytest.raises(InstructionError) as info:
        parse_instruct(200, b"OK", [JSON_TYPE], body, request_url=URL)
    assert str(info.value) == "failed to parse application/grip-instruct content as JSON"


@pytest.mark.parametrize(("doc", "message"), [
    ([], "instruct must be an object"),
    ("x", "instruct must be an object"),
    ({"hold": []}, "instruct contains 'hold' with wrong type"),
    ({"hold": {"mode": "", "channels": []}},
     "hold 'mode' must be set to either 'response' or 'stream'"),
    ({"hold": {"mode": 1, "channels": []}}, "hold contains 'mode' with wrong type"),
    ({"hold": {}}, "hold does not contain 'channels'"),
    ({"hold": {"channels": {}}}, "hold contains 'channels' with wrong type"),
    ({"hold": {"channels": ["a"]}}, "channel is not an object"),
    ({"hold": {"channels": [{}]}}, "channel does not contain 'name'"),
    ({"hold": {"channels": [{"name": 1}]}}, "channel contains 'name' with wrong type"),
    ({"hold": {"channels": [{"name": ""}]}}, "channel contains 'name' with invalid value"),
    ({"hold": {"channels": [{"name": "a", "prev-id": 1}]}},
     "channel contains 'prev-id' with wrong type"),
    ({"hold": {"channels": [{"name": "a", "filters": "x"}]}},
     "channel contains 'filters' with wrong type"),
    ({"hold": {"channels": [{"name": "a", "filters": [1]}]}},
     "filters contains value with wrong type"),
    ({"hold": {"channels": [], "timeout": "5"}}, "hold contains 'timeout' with wrong type"),
    ({"hold": {"channels": [], "timeout": 1.5}}, "hold contains 'timeout' with wrong type"),
    ({"hold": {"channels": [], "timeout": True}}, "hold contains 'timeout' with wrong type"),
    ({"hold": {"channels": [], "timeout": -1}}, "hold contains 'timeout' with invalid value"),
    ({"hold": {"channels": [], "keep-alive": "x"}},
     "hold contains 'keep-alive' with wrong type"),
    ({"hold": {"channels": [], "keep-alive": {"content": 1}}},
     "keep-alive contains 'content' with wrong type"),
    ({"hold": {"channels": [], "keep-alive": {"content-bin": 1}}},
     "keep-alive contains 'content-bin' with wrong type"),
    ({"hold": {"channels": [], "keep-alive": {"content": "x", "timeout": "1"}}},
     "keep-alive contains 'timeout' with wrong type"),
    ({"hold": {"channels": [], "keep-alive": {"content": "x", "timeout": -1}}},
     "keep-alive contains 'timeout' with invalid value"),
    ({"hold": {"channels": [], "meta": []}}, "hold contains 'meta' with wrong type"),
    ({"hold": {"channels": [], "meta": {"user": 1}}}, "'meta' contains 'user' with wrong type"),
    ({"response": "x"}, "instruct contains 'response' with wrong type"),
    ({"response": {"code": "200"}}, "response contains 'code' with wrong type"),
    ({"response": {"code": 1000}}, "response contains 'code' with invalid value"),
    ({"response": {"reason": 1}}, "response contains 'reason' with wrong type"),
    ({"response": {"reason": "a\r\nX: y"}}, "response contains 'reason' with invalid value"),
    ({"response": {"headers": "x"}}, "response contains 'headers' with wrong type"),
    ({"response": {"headers": ["x"]}}, "headers contains element with wrong type"),
    ({"response": {"headers": [["a"]]}}, "headers contains list with wrong number of elements"),
    ({"response": {"headers": [[1, "v"]]}}, "header contains name element with wrong type"),
    ({"response": {"headers": [["n", 1]]}}, "header contains value element with wrong type"),
    ({"response": {"headers": {"n": 1}}}, "headers contains 'n' with wrong type"),
    ({"response": {"headers": {"a b": "v"}}}, "headers contains invalid name 'a b'"),
    ({"response": {"headers": {"X": "a\nb"}}}, "headers contains 'X' with invalid value"),
    ({"response": {"body": 1}}, "response contains 'body' with wrong type"),
    ({"response": {"body-bin": 1}}, "response contains 'body-bin' with wrong type"),
])
def test_json_errors(doc: object, message: str) -> None:
    json_fails(message, doc)


# ---- Grip-Last ------------------------------------------------------------------------------

def test_grip_last_headers() -> None:
    got = grip_last_headers({"n1": "5", "n2": "a;b", "n3": 'q"', "n4": "", "n5": "x y",
                             "caf\u00e9": "1", "bad": "a\r\nInjected: 1"})
    assert got == [
        (b"Grip-Last", b"n1; last-id=5"),
        (b"Grip-Last", b'n2; last-id="a;b"'),
        (b"Grip-Last", b'n3; last-id="q\\""'),
        (b"Grip-Last", b'n4; last-id=""'),
        (b"Grip-Last", b'n5; last-id="x y"'),
        (b"Grip-Last", "caf\u00e9; last-id=1".encode()),
    ]


def test_grip_last_round_trips_through_the_parser() -> None:
    ids = {"a": "plain", "b": 'q"u;o,t e\\d'}
    for (_, value), (channel, last_id) in zip(grip_last_headers(ids), ids.items(), strict=True):
        name, params = parse_header_params(value.decode())
        assert name == channel and get_param(params, "last-id") == last_id


# ---- property: parses, or raises InstructionError --------------------------------------------

_GRIP_NAMES = ["Grip-Hold", "Grip-Channel", "Grip-Timeout", "Grip-Keep-Alive", "Grip-Link",
               "Grip-Status", "Grip-Set-Meta", "Grip-Expose-Headers", "Grip-Other",
               "Content-Type", "Content-Length", "Connection", "X-Plain"]
_value_text = st.text(alphabet=st.sampled_from(list(';,="\\<> /:?#[]%+-.abcnrx019\t\u00e9\xff')),
                      max_size=40)
_header = st.tuples(
    st.sampled_from(_GRIP_NAMES).flatmap(
        lambda n: st.sampled_from([n, n.lower(), n.upper()])).map(str.encode),
    st.one_of(_value_text, st.sampled_from(["application/grip-instruct", "stream",
                                           "response", "</x>; rel=next", "a; prev-id=1"]))
    .map(lambda v: v.encode("latin-1", "replace")),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["hold", "response", "mode", "channels", "name", "prev-id", "filters",
                         "timeout", "keep-alive", "content", "content-bin", "meta", "code",
                         "reason", "headers", "body", "body-bin", "x"]), inner, max_size=6),
    max_leaves=20,
)
_body = st.one_of(st.binary(max_size=30),
                  _json.map(lambda d: json.dumps(d).encode()))


@settings(max_examples=400, deadline=None)
@given(headers=st.lists(_header, max_size=8), body=_body,
       status=st.sampled_from([200, 200, 404]),
       url=st.sampled_from([URL, "https://h.example", "not a url", ""]))
def test_parse_instruct_parses_or_raises_instruction_error(
        headers: list[tuple[bytes, bytes]], body: bytes, status: int, url: str) -> None:
    try:
        got = parse_instruct(status, b"", headers, body, request_url=url)
    except InstructionError:
        return
    assert isinstance(got, Instruct)
    assert all(not n.lower().startswith(b"grip-") for n, _ in got.headers)
    assert got.timeout >= 5 and got.reason


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=40))
def test_param_parsers_only_raise_value_error(value: str) -> None:
    for element in split_header_list(value):
        try:
            parse_header_params(element)
            parse_param_list(element)
        except ValueError:
            pass
