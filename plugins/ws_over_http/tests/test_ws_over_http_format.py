"""Format ``ws-message``: parsing, Pushpin's messages, frames encoded once."""

from __future__ import annotations

import json

import pytest
from gripcontrol import WebSocketMessageFormat
from p8_ws_over_http.format import WsMessage, WsMessageFormat
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, Ping, TextMessage

from p8core import PublishError
from p8core.pubsub.items import from_tnetstring, parse_publish_body

WHERE = "'ws-message'"


def parse(**raw: object) -> WsMessage:
    return WsMessageFormat().parse(raw, WHERE)


def client_reads(frame: bytes) -> list[object]:
    """What a client's wsproto makes of server bytes."""
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(frame)
    return list(client.events())


def test_text_is_the_default_and_its_frame_is_ready() -> None:
    msg = parse(content="héllo")
    assert (msg.action, msg.kind, msg.content) == ("send", "text", "héllo".encode())
    assert client_reads(msg.frame) == [TextMessage(data="héllo")]


def test_content_bin_is_base64_and_binary_by_default() -> None:
    msg = parse(**{"content-bin": "AAEC"})
    assert (msg.kind, msg.content) == ("binary", b"\x00\x01\x02")
    assert client_reads(msg.frame) == [BytesMessage(data=b"\x00\x01\x02")]
    assert parse(**{"content-bin": "AAEC", "type": "text", "content": "x"}).kind == "text"


def test_ping_and_pong_may_be_empty() -> None:
    assert client_reads(parse(type="ping").frame) == [Ping(payload=b"")]
    assert parse(type="pong", content="p").content == b"p"


def test_close_keeps_code_and_reason() -> None:
    assert parse(action="close", code=4001, reason="pub-close") == WsMessage(
        "close", code=4001, reason="pub-close")
    assert parse(action="close").code is None


def test_large_messages_get_a_long_length() -> None:
    msg = parse(content="x" * 70_000)
    assert client_reads(msg.frame) == [TextMessage(data="x" * 70_000)]


@pytest.mark.parametrize(("raw", "error"), [
    ({"content": 5}, "'ws-message' contains 'content' with wrong type"),
    ({"content-bin": 5}, "'ws-message' contains 'content-bin' with wrong type"),
    ({"content": "x", "type": "shout"}, "'ws-message' contains 'type' with unknown value"),
    ({}, "'ws-message' does not contain 'content' or 'content-bin'"),
    ({"type": "binary"}, "'ws-message' does not contain 'content' or 'content-bin'"),
    ({"action": "dance"}, ""),
    ({"action": "close", "code": "x"}, "'ws-message' contains 'code' with wrong type"),
    ({"action": "close", "code": 1005}, "'ws-message' contains 'code' with invalid value"),
    ({"action": "close", "code": 99}, "'ws-message' contains 'code' with invalid value"),
    ({"action": "close", "code": 1000, "reason": 1},
     "'ws-message' contains 'reason' with wrong type"),
    ({"type": "ping", "content": "x" * 126}, "'ws-message' contains 'content' with invalid value"),
    ({"content": "x", "content-filters": "var-subst"},
     "'ws-message' contains 'content-filters' with wrong type"),
])
def test_bad_formats_get_pushpins_message(raw: dict[str, object], error: str) -> None:
    with pytest.raises(PublishError) as info:
        WsMessageFormat().parse(raw, WHERE)
    assert str(info.value) == error


def test_hint_and_refresh_parse() -> None:
    assert parse(action="hint").action == "hint"
    assert parse(action="refresh").action == "refresh"


def test_tnetstring_items_give_bytes() -> None:
    raw = from_tnetstring({b"channel": b"c", b"formats": {b"ws-message": {
        b"content-bin": b"\xff\x00", b"type": b"binary"}}})
    msg = WsMessageFormat().parse(raw["formats"]["ws-message"], WHERE)  # type: ignore[index]
    assert (msg.kind, msg.content) == ("binary", b"\xff\x00")
    text = WsMessageFormat().parse({"content": b"hi", "action": b"send"}, WHERE)
    assert (text.kind, text.content) == ("text", b"hi")


def test_what_gripcontrol_publishes_parses() -> None:
    known = {"ws-message": WsMessageFormat()}
    for fmt, expected in [
        (WebSocketMessageFormat("hi"), ("send", "text", b"hi", None)),
        (WebSocketMessageFormat(b"\x00\x01", binary=True), ("send", "binary", b"\x00\x01", None)),
        (WebSocketMessageFormat(action="close", code=4001), ("close", "text", b"", 4001)),
    ]:
        exported = fmt.export()
        exported = {k: v.decode() if isinstance(v, bytes) else v for k, v in exported.items()}
        body = json.dumps({"items": [{"channel": "c", "formats": {"ws-message": exported}}]})
        item = parse_publish_body(body.encode(), known).items[0]
        msg = item.formats["ws-message"]
        assert isinstance(msg, WsMessage)
        assert (msg.action, msg.kind, msg.content, msg.code) == expected
