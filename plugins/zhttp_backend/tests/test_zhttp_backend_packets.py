"""ZHTTP packets and targets without sockets: encoding, decoding, checks, endpoint names."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from p8_zhttp_backend.packets import (
    PACKET_TYPES,
    Addressed,
    Packet,
    PacketError,
    ResponseHead,
    content_length,
    decode,
    encode,
    response_head,
    split_address,
)
from p8_zhttp_backend.targets import (
    client_headers,
    mentioned_id,
    request_headers,
    request_uri,
    stream_endpoints,
    zmq_spec,
)

from p8core import OriginRequest
from p8core.codec.tnetstring import dumps

# ---- encode / decode --------------------------------------------------------------------

def test_decode_the_spec_reply_with_bytes_keys() -> None:
    frame = b"T" + dumps({
        b"id": b"r1", b"code": 200, b"reason": b"OK",
        b"headers": [[b"Grip-Hold", b"stream"], [b"Grip-Channel", b"test"]],
        b"body": b"welcome to the stream\n"})
    assert decode(frame) == Packet(
        id=b"r1", code=200, reason=b"OK",
        headers=((b"Grip-Hold", b"stream"), (b"Grip-Channel", b"test")),
        body=b"welcome to the stream\n")


def test_encode_omits_defaults_and_names_wire_fields() -> None:
    packet = Packet(id=b"s1", from_=b"p8", seq=0, stream=True, credits=200000, multi=True,
                    method=b"POST", uri=b"http://example.com/x", body=b"abc", more=True,
                    max_size=10, content_type=b"text")
    frame = encode(packet)
    assert frame.startswith(b"T")
    assert decode(frame) == packet
    bare = encode(Packet(id=b"s1", type=b"keep-alive"))
    assert bare == b"T" + dumps({b"id": b"s1", b"type": b"keep-alive"})


def test_list_form_ids_address_several_sessions() -> None:
    packet = decode(b"T" + dumps({b"from": b"h", b"type": b"keep-alive",
                                  b"id": [{b"id": b"a", b"seq": 3}, {b"id": b"b", b"seq": 7}]}))
    assert packet.id == (Addressed(b"a", 3), Addressed(b"b", 7))
    assert [(p.id, p.seq, p.type, p.from_) for p in packet.each()] == [
        (b"a", 3, b"keep-alive", b"h"), (b"b", 7, b"keep-alive", b"h")]
    assert Packet(id=b"x").each() == (Packet(id=b"x"),)


def test_unknown_fields_are_ignored() -> None:
    frame = b"T" + dumps({b"id": b"x", b"user-data": {b"k": [1, 2]}, b"ext": {b"quiet": True},
                          b"ignore-policies": True})
    assert decode(frame) == Packet(id=b"x")


@pytest.mark.parametrize(("frame", "message"), [
    (b"", "empty packet"),
    (b'J{"id": "x"}', "JSON packets are not accepted"),
    (b"X1:x,", "does not start with 'T'"),
    (b"T5:abc,", "not a tnetstring"),
    (b"T" + dumps([b"id"]), "not a tnetstring dict"),
    (b"T" + dumps({b"code": 200}), "'id' is missing"),
    (b"T" + dumps({b"id": b""}), "'id' is empty"),
    (b"T" + dumps({b"id": 5}), "'id' must be a string or a non-empty list"),
    (b"T" + dumps({b"id": [{b"seq": 1}]}), "'id[0].id' must be a non-empty string"),
    (b"T" + dumps({b"id": [b"x"]}), "'id[0]' must be a dict"),
    (b"T" + dumps({b"id": b"x", b"code": b"200"}), "'code' must be an integer"),
    (b"T" + dumps({b"id": b"x", b"code": True}), "'code' must be an integer"),
    (b"T" + dumps({b"id": b"x", b"seq": -1}), "'seq' must not be negative"),
    (b"T" + dumps({b"id": b"x", b"more": 1}), "'more' must be true or false"),
    (b"T" + dumps({b"id": b"x", b"type": b"bogus"}), "unknown packet type"),
    (b"T" + dumps({b"id": b"x", b"body": 3}), "'body' must be a string"),
    (b"T" + dumps({b"id": b"x", b"headers": {b"a": b"b"}}), "'headers' must be a list"),
    (b"T" + dumps({b"id": b"x", b"headers": [[b"a"]]}), "'headers[0]' must be [name, value]"),
    (b"T" + dumps({b"id": b"x", b"ext": b"multi"}), "'ext' must be a dict"),
])
def test_malformed_packets_raise_packet_error(frame: bytes, message: str) -> None:
    with pytest.raises(PacketError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode(frame)


def test_packet_error_keeps_the_id_it_could_read() -> None:
    with pytest.raises(PacketError) as info:
        decode(b"T" + dumps({b"id": b"r7", b"code": b"x"}))
    assert info.value.id == b"r7"
    with pytest.raises(PacketError) as info:
        decode(b"Tgarbage")
    assert info.value.id is None


byte_strings = st.binary(max_size=40)
ids = st.binary(min_size=1, max_size=40)
counts = st.none() | st.integers(min_value=0, max_value=2**40)
headers = st.lists(st.tuples(byte_strings, byte_strings), max_size=5).map(tuple)
packets = st.builds(
    Packet,
    id=ids | st.lists(st.builds(Addressed, ids, counts), min_size=1, max_size=4).map(tuple),
    from_=st.none() | byte_strings,
    seq=counts,
    type=st.none() | st.sampled_from(sorted(PACKET_TYPES)),
    condition=st.none() | byte_strings,
    credits=counts,
    more=st.booleans(),
    stream=st.booleans(),
    multi=st.booleans(),
    method=st.none() | byte_strings,
    uri=st.none() | byte_strings,
    code=st.none() | st.integers(min_value=-(2**40), max_value=2**40),
    reason=st.none() | byte_strings,
    headers=headers,
    body=st.binary(max_size=300),
    content_type=st.none() | byte_strings,
    max_size=counts,
)


@given(packets)
def test_property_encode_decode_round_trip(packet: Packet) -> None:
    assert decode(encode(packet)) == packet


@given(st.binary(max_size=200))
def test_property_arbitrary_bytes_decode_or_raise_packet_error(frame: bytes) -> None:
    with contextlib.suppress(PacketError):
        decode(frame)


tnet_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from([b"id", b"seq", b"code", b"headers", b"type", b"more",
                                       b"body", b"credits", b"ext", b"multi", b"from"]),
                      inner, max_size=6),
    max_leaves=15,
)


@given(tnet_values)
def test_property_any_tnetstring_decodes_or_raises_packet_error(value: object) -> None:
    try:
        packet = decode(b"T" + dumps(value))
    except PacketError:
        return
    assert decode(encode(packet)) == packet


@given(packets, st.integers(min_value=0, max_value=400))
def test_property_truncated_frames_raise_packet_error(packet: Packet, cut: int) -> None:
    frame = encode(packet)
    if cut >= len(frame):
        return
    with pytest.raises(PacketError):
        decode(frame[:cut])


# ---- responses --------------------------------------------------------------------------

def test_response_head_lowercases_names_and_strips_values() -> None:
    head = response_head(Packet(id=b"x", code=201, reason=b"Created",
                                headers=((b"Content-Type", b" text/plain "), (b"X-A", b""))))
    assert head == ResponseHead(201, b"Created",
                                ((b"content-type", b"text/plain"), (b"x-a", b"")))
    assert head.header(b"content-type") == b"text/plain"
    assert head.header(b"nope") is None
    assert response_head(Packet(id=b"x", code=200)).reason == b""


@pytest.mark.parametrize(("packet", "message"), [
    (Packet(id=b"x"), "response has no 'code'"),
    (Packet(id=b"x", code=101), "not a final HTTP status"),
    (Packet(id=b"x", code=1000), "not a final HTTP status"),
    (Packet(id=b"x", code=200, reason=b"O\r\nK"), "'reason' holds a control character"),
    (Packet(id=b"x", code=200, headers=((b"Bad Name", b"v"),)), "invalid name"),
    (Packet(id=b"x", code=200, headers=((b"X-A", b"a\r\nX-B: b"),)), "invalid value"),
    (Packet(id=b"x", code=200, headers=((b"X-A", b"\x00"),)), "invalid value"),
])
def test_response_head_rejects_what_a_client_must_not_get(packet: Packet, message: str) -> None:
    with pytest.raises(PacketError, match=message) as info:
        response_head(packet)
    assert info.value.id == b"x"


def test_content_length() -> None:
    def head(*values: bytes) -> ResponseHead:
        return ResponseHead(200, b"", tuple((b"content-length", v) for v in values))

    assert content_length(head()) is None
    assert content_length(head(b"12", b"12")) == 12
    with pytest.raises(PacketError, match="conflicting"):
        content_length(head(b"1", b"2"))
    with pytest.raises(PacketError, match="invalid Content-Length"):
        content_length(head(b"-1"))


def test_split_address() -> None:
    assert split_address(b"p8-proxy_1 T1:x,") == (b"p8-proxy_1", b"T1:x,")
    for bad in (b"T1:x,", b" T1:x,"):
        with pytest.raises(PacketError, match="no '<address> ' prefix"):
            split_address(bad)


# ---- targets ----------------------------------------------------------------------------

def test_zmq_spec_of_targets() -> None:
    assert zmq_spec("zhttpreq+tcp://127.0.0.1:10000") == "tcp://127.0.0.1:10000"
    assert zmq_spec("zhttp+tcp://*:10010") == "tcp://*:10010"
    assert zmq_spec("zhttp+ipc:///tmp/p8/x") == "ipc:///tmp/p8/x"
    for bad in ("zhttp+tcp://host", "zhttp+tcp://host:0", "zhttp+tcp://:80", "zhttp+udp://h:1",
                "zhttp+ipc://", "zhttp://h:1", "zhttpx+tcp://h:1", "zhttp+tcp://h:99999"):
        with pytest.raises(ValueError, match="bad target"):
            zmq_spec(bad)


def test_stream_endpoints_are_three_ports_or_three_paths() -> None:
    assert stream_endpoints("tcp://127.0.0.1:10010") == (
        "tcp://127.0.0.1:10010", "tcp://127.0.0.1:10011", "tcp://127.0.0.1:10012")
    assert stream_endpoints("ipc:///run/z") == (
        "ipc:///run/z-out", "ipc:///run/z-out-stream", "ipc:///run/z-in")
    with pytest.raises(ValueError, match="ports 65534-65536"):
        stream_endpoints("tcp://h:65534")


def test_request_uri_and_headers() -> None:
    req = OriginRequest(b"POST", b"/a?b=1", [(b"host", b"example.com"), (b"x-a", b"1"),
                                             (b"content-length", b"99")])
    assert request_uri(req) == b"http://example.com/a?b=1"
    assert request_headers(req, 3) == ((b"host", b"example.com"), (b"x-a", b"1"),
                                       (b"content-length", b"3"))
    assert request_headers(req, 0)[-1] == (b"content-length", b"0")
    assert request_headers(req, None) == ((b"host", b"example.com"), (b"x-a", b"1"))
    get = OriginRequest(b"GET", b"/", [])
    assert request_uri(get) == b"http://localhost/"
    assert request_headers(get, 0) == ()


def test_client_headers_take_framing_from_the_body() -> None:
    head = ResponseHead(200, b"", ((b"content-type", b"t"), (b"content-length", b"5"),
                                   (b"transfer-encoding", b"chunked")))
    assert client_headers(head, 2) == [(b"content-type", b"t"), (b"content-length", b"2")]
    assert client_headers(head, None) == [(b"content-type", b"t"), (b"content-length", b"5")]


def test_mentioned_id_needs_exactly_one_match() -> None:
    assert mentioned_id(b'J{"id": "abc-1"}', [b"abc-1", b"zzz"]) == b"abc-1"
    assert mentioned_id(b"garbage", [b"abc-1"]) is None
    assert mentioned_id(b"abc-1 abc-2", [b"abc-1", b"abc-2"]) is None
