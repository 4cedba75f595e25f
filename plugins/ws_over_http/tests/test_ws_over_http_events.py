"""The WebSocket-over-HTTP event codec, without sockets."""

from __future__ import annotations

import gripcontrol
import pytest
from hypothesis import given
from hypothesis import strategies as st
from p8_ws_over_http.events import (
    Decoder,
    EventsError,
    WsEvent,
    close_content,
    decode,
    encode,
    parse_close,
)

SPEC_EXAMPLE = b"OPEN\r\nTEXT 5\r\nhello\r\nCLOSE 2\r\n\x03\xe8\r\n"


def feed_bytewise(body: bytes) -> list[WsEvent]:
    decoder = Decoder()
    events: list[WsEvent] = []
    for i in range(len(body)):
        events += decoder.feed(body[i:i + 1])
    decoder.finish()
    return events


def test_the_spec_example_decodes_and_encodes_back() -> None:
    events = [WsEvent("OPEN"), WsEvent("TEXT", b"hello"), WsEvent("CLOSE", b"\x03\xe8")]
    assert decode(SPEC_EXAMPLE) == events
    assert encode(events) == SPEC_EXAMPLE


def test_empty_content_is_written_without_a_size_and_read_either_way() -> None:
    assert encode([WsEvent("TEXT"), WsEvent("BINARY"), WsEvent("PING"), WsEvent("CLOSE")]) == (
        b"TEXT\r\nBINARY\r\nPING\r\nCLOSE\r\n")
    assert decode(b"BINARY 0\r\n\r\nTEXT\r\n") == [WsEvent("BINARY"), WsEvent("TEXT")]


def test_sizes_are_hex_in_either_case() -> None:
    body = b"TEXT A\r\n0123456789\r\nBINARY a\r\n0123456789\r\n"
    assert [e.content for e in decode(body)] == [b"0123456789"] * 2
    assert encode([WsEvent("TEXT", b"x" * 26)]).startswith(b"TEXT 1a\r\n")


def test_unknown_event_names_are_skipped() -> None:
    assert decode(b"HELLO\r\nFOO 3\r\nabc\r\nPING\r\n") == [WsEvent("PING")]


@pytest.mark.parametrize("body", [
    b"TEXT",                       # no CRLF after the type line
    b"TEXT 5\r\nhello",            # content without its CRLF
    b"TEXT 5\r\nhelloXX",          # something else after the content
    b"TEXT 5\nhello\r\n",          # LF only
    b"TEXT zz\r\nab\r\n",          # size not hex
    b"TEXT -1\r\n",                # sign
    b"TEXT \r\n",                  # empty size
    b"TEXT 123456789\r\n",         # absurd size
    b"\r\n",                       # empty name
    b"TE XT 1\r\nx\r\n",           # too many parts
    b"T\x00XT\r\n",                # control byte in the name
    b"OPEN\r\nTEXT 3\r\nab",       # cut short
    b"X" * 100 + b"\r\n",          # a type line that never ends
])
def test_malformed_bodies_raise_events_error(body: bytes) -> None:
    with pytest.raises(EventsError):
        decode(body)
    with pytest.raises(EventsError):
        feed_bytewise(body)


def test_close_content_round_trips() -> None:
    assert close_content(1000) == b"\x03\xe8"
    assert close_content(4001, "pub-close") == b"\x0f\xa1pub-close"
    assert close_content(None, "ignored") == b""
    assert parse_close(b"\x03\xe8bye") == (1000, "bye")
    assert parse_close(b"") == (None, "")
    assert parse_close(b"\x03") == (None, ""), "fewer than 2 bytes: no status code"


def test_compatible_with_gripcontrol() -> None:
    theirs = gripcontrol.encode_websocket_events([
        gripcontrol.WebSocketEvent("OPEN"),
        gripcontrol.WebSocketEvent("TEXT", "héllo"),
        gripcontrol.WebSocketEvent("CLOSE", b"\x03\xe8"),
    ])
    assert decode(theirs) == [WsEvent("OPEN"), WsEvent("TEXT", "héllo".encode()),
                              WsEvent("CLOSE", b"\x03\xe8")]
    back = gripcontrol.decode_websocket_events(encode([WsEvent("TEXT", b"hi"),
                                                       WsEvent("PING")]))
    assert [(e.type, e.content) for e in back] == [("TEXT", b"hi"), ("PING", None)]


event_types = st.sampled_from(["OPEN", "TEXT", "BINARY", "PING", "PONG", "CLOSE",
                               "DISCONNECT"])
events_lists = st.lists(st.builds(WsEvent, event_types, st.binary(max_size=300)), max_size=12)


@given(events_lists)
def test_decode_inverts_encode(events: list[WsEvent]) -> None:
    assert decode(encode(events)) == events


@given(events_lists, st.data())
def test_any_split_of_the_body_gives_the_same_events(events: list[WsEvent],
                                                     data: st.DataObject) -> None:
    body = encode(events)
    assert feed_bytewise(body) == events
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=5)))
    decoder = Decoder()
    got: list[WsEvent] = []
    for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
        got += decoder.feed(body[start:end])
    decoder.finish()
    assert got == events


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_events_error(body: bytes) -> None:
    try:
        whole = decode(body)
    except EventsError:
        with pytest.raises(EventsError):
            feed_bytewise(body)
        return
    assert feed_bytewise(body) == whole


@given(events_lists, st.binary(min_size=1, max_size=20))
def test_a_damaged_tail_is_an_events_error_or_more_events(events: list[WsEvent],
                                                          junk: bytes) -> None:
    body = encode(events) + junk
    try:
        decoded = decode(body)
    except EventsError:
        return
    assert decoded[:len(events)] == events
