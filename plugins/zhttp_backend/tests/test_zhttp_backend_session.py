"""The streamed HTTP session without sockets: packets in, actions out."""

from __future__ import annotations

from typing import Any

import pytest
from p8_zhttp_backend.packets import Packet, ResponseHead
from p8_zhttp_backend.session import (
    KEEP_ALIVE_INTERVAL,
    SESSION_TIMEOUT,
    Body,
    End,
    Failed,
    Head,
    HttpSession,
    Send,
)

P8 = b"p8-proxy_1"
SID = b"s1"
HANDLER = b"handler-1"


def started(method: bytes = b"GET", body: bytes = b"", more: bool = False,
            window: int = 1000) -> tuple[HttpSession, Packet]:
    session = HttpSession(P8, SID, now=0.0, window=window)
    first = session.start(method, b"http://example.com/x", ((b"host", b"example.com"),),
                          body, more)
    return session, first


def reply(seq: int, **fields: Any) -> Packet:
    fields.setdefault("from_", HANDLER)
    return Packet(id=SID, seq=seq, **fields)


def sent(actions: list[Any]) -> list[Packet]:
    return [a.packet for a in actions if isinstance(a, Send)]


def test_first_packet_carries_the_request_and_response_credits() -> None:
    session, first = started(b"POST", b"abc", more=True)
    assert first == Packet(id=SID, from_=P8, seq=0, stream=True, credits=1000, method=b"POST",
                           uri=b"http://example.com/x", headers=((b"host", b"example.com"),),
                           body=b"abc", more=True)
    assert session.peer is None and not session.can_send_body
    with pytest.raises(RuntimeError):
        session.start(b"GET", b"http://x/", (), b"", False)


def test_a_response_in_parts() -> None:
    session, _ = started()
    head = ResponseHead(200, b"OK", ((b"content-type", b"text/plain"),))
    assert session.receive(reply(0, code=200, reason=b"OK",
                                 headers=((b"Content-Type", b"text/plain"),),
                                 body=b"part1\n", more=True), 1.0) == [
        Head(head, None), Body(b"part1\n")]
    assert session.peer == HANDLER
    assert session.receive(reply(1, body=b"part2\n", more=True), 2.0) == [Body(b"part2\n")]
    assert session.receive(reply(2, body=b"end\n"), 3.0) == [Body(b"end\n"), End()]
    assert not session.open
    assert session.receive(reply(3, body=b"late"), 4.0) == []
    assert session.cancel() == []


def test_a_whole_response_in_one_packet_has_a_length() -> None:
    session, _ = started()
    actions = session.receive(reply(0, code=404, body=b"nope"), 1.0)
    assert actions == [Head(ResponseHead(404, b"", ()), 4), Body(b"nope"), End()]


def test_credits_go_back_as_the_client_takes_the_body() -> None:
    session, _ = started(window=1000)
    session.receive(reply(0, code=200, body=b"x" * 600, more=True), 1.0)
    session.receive(reply(1, body=b"y" * 400, more=True), 1.0)
    assert session.consumed(100, 2.0) == [], "batched until a quarter window"
    assert sent(session.consumed(500, 2.0)) == [
        Packet(id=SID, from_=P8, seq=1, type=b"credit", credits=600)]
    assert sent(session.consumed(400, 3.0)) == [
        Packet(id=SID, from_=P8, seq=2, type=b"credit", credits=400)], "nothing left unread"
    assert session.granted == 2000


def test_too_much_body_for_the_credits_cancels() -> None:
    session, _ = started(window=100)
    session.receive(reply(0, code=200, body=b"x" * 150, more=True), 1.0)
    actions = session.receive(reply(1, body=b"x" * 100, more=True), 1.0)
    assert sent(actions) == [Packet(id=SID, from_=P8, seq=1, type=b"cancel")]
    assert isinstance(actions[-1], Failed) and "credits" in actions[-1].reason


def test_request_body_waits_for_the_handler_and_its_credits() -> None:
    session, _ = started(b"POST", b"abc", more=True)
    with pytest.raises(RuntimeError):
        session.send_body(b"def", True, 1.0)
    assert session.receive(reply(0, type=b"credit", credits=5), 1.0) == []
    assert session.can_send_body and session.send_credits == 5
    assert session.send_body(b"defg", True, 1.0) == Send(
        Packet(id=SID, from_=P8, seq=1, body=b"defg", more=True))
    with pytest.raises(RuntimeError):
        session.send_body(b"hi", True, 1.0)
    session.receive(reply(1, type=b"keep-alive", credits=10), 2.0)
    assert session.send_credits == 11
    assert session.send_body(b"", False, 2.0).packet.seq == 2


def test_out_of_order_packet_cancels() -> None:
    session, _ = started()
    session.receive(reply(0, type=b"keep-alive"), 1.0)
    actions = session.receive(reply(2, body=b"x"), 1.0)
    assert actions == [Send(Packet(id=SID, from_=P8, seq=1, type=b"cancel")),
                       Failed("packet out of order: seq 2, expected 1")]


def test_first_packet_without_from_fails_without_cancel() -> None:
    session, _ = started()
    assert session.receive(Packet(id=SID, seq=0, code=200), 1.0) == [
        Failed("the handler's first packet has no 'from'")]


def test_error_and_cancel_from_the_handler_end_the_session() -> None:
    session, _ = started()
    assert session.receive(reply(0, type=b"error", condition=b"bad-request"), 1.0) == [
        Failed("the handler answered with error 'bad-request'")]
    session, _ = started()
    session.receive(reply(0, code=200, more=True), 1.0)
    assert session.receive(reply(1, type=b"cancel"), 1.0) == [
        Failed("the handler cancelled the session")]


def test_websocket_packets_are_not_http() -> None:
    session, _ = started()
    actions = session.receive(reply(0, type=b"ping"), 1.0)
    assert sent(actions)[0].type == b"cancel"
    assert actions[-1] == Failed("unexpected 'ping' packet in an HTTP session")


def test_invalid_head_cancels() -> None:
    session, _ = started()
    actions = session.receive(reply(0, body=b"no code"), 1.0)
    assert sent(actions)[0].type == b"cancel"
    assert actions[-1] == Failed("invalid response: response has no 'code'")
    session, _ = started()
    actions = session.receive(reply(0, code=200, headers=((b"Content-Length", b"x"),)), 1.0)
    assert actions[-1] == Failed("invalid response: invalid Content-Length b'x'")


def test_content_length_is_held_to() -> None:
    session, _ = started()
    actions = session.receive(reply(0, code=200, headers=((b"Content-Length", b"3"),),
                                    body=b"ab", more=True), 1.0)
    assert actions == [Head(ResponseHead(200, b"", ((b"content-length", b"3"),)), 3),
                       Body(b"ab")]
    actions = session.receive(reply(1, body=b"cd"), 1.0)
    assert actions[-1] == Failed("the handler sent more body than its Content-Length")
    session, _ = started()
    session.receive(reply(0, code=200, headers=((b"Content-Length", b"3"),), body=b"ab",
                          more=True), 1.0)
    assert session.receive(reply(1), 1.0) == [
        Failed("the response ended before its Content-Length")]


def test_head_responses_have_no_body() -> None:
    session, _ = started(b"HEAD")
    actions = session.receive(reply(0, code=200, headers=((b"Content-Length", b"10"),),
                                    body=b"dropped"), 1.0)
    assert actions == [Head(ResponseHead(200, b"", ((b"content-length", b"10"),)), None), End()]
    session, _ = started()
    assert session.receive(reply(0, code=204), 1.0) == [Head(ResponseHead(204, b"", ()), None),
                                                        End()]


def test_keep_alive_when_idle_and_expiry_when_silent() -> None:
    session, _ = started()
    assert session.tick(KEEP_ALIVE_INTERVAL) == [], "no handler address yet"
    session.receive(reply(0, code=200, more=True), 10.0)
    assert session.tick(KEEP_ALIVE_INTERVAL + 1) == [
        Send(Packet(id=SID, from_=P8, seq=1, type=b"keep-alive"))]
    assert session.tick(KEEP_ALIVE_INTERVAL + 2) == [], "just sent one"
    session.receive(reply(1, type=b"keep-alive"), 50.0)
    actions = session.tick(50.0 + SESSION_TIMEOUT)
    assert sent(actions) == [Packet(id=SID, from_=P8, seq=2, type=b"cancel")]
    assert actions[-1] == Failed("no packet from the handler for 60 s")
    assert session.tick(1000.0) == []


def test_cancel_and_lost() -> None:
    session, _ = started()
    assert session.cancel() == [], "nobody to tell yet"
    assert not session.open
    session, _ = started()
    session.receive(reply(0, code=200, more=True), 1.0)
    assert session.cancel() == [Send(Packet(id=SID, from_=P8, seq=1, type=b"cancel"))]
    session, _ = started()
    session.lost()
    assert not session.open and session.fail("x") == []
