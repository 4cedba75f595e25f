"""A WebSocket session over streaming mode without sockets: packets in, actions out."""

from __future__ import annotations

from typing import Any

import pytest
from p8_zhttp_backend.packets import Packet, ResponseHead
from p8_zhttp_backend.session import Accepted, End, Failed, Message, Rejected, Send, State
from p8_zhttp_backend.wssession import WsSession

from p8core import WebSocketMessage

P8 = b"p8-proxy_1"
SID = b"w1"
HANDLER = b"handler-1"


def reply(seq: int, **fields: Any) -> Packet:
    fields.setdefault("from_", HANDLER)
    return Packet(id=SID, seq=seq, **fields)


def sent(actions: list[Any]) -> list[Packet]:
    return [a.packet for a in actions if isinstance(a, Send)]


def accepted(credits: int = 10, window: int = 1000,
             max_message: int = 10_000) -> tuple[WsSession, list[Any]]:
    session = WsSession(P8, SID, now=0.0, window=window, max_message=max_message)
    first = session.start(b"ws://example.com/ws", ((b"upgrade", b"websocket"),))
    assert first == Packet(id=SID, from_=P8, seq=0, credits=window,
                           uri=b"ws://example.com/ws", headers=((b"upgrade", b"websocket"),))
    actions = session.receive(reply(0, code=101, reason=b"Switching Protocols",
                                    headers=((b"Sec-WebSocket-Protocol", b"chat"),),
                                    credits=credits), 1.0)
    return session, actions


def test_the_handler_accepts_with_101_and_credits() -> None:
    session, actions = accepted(credits=10)
    assert actions == [Accepted(ResponseHead(101, b"Switching Protocols",
                                             ((b"sec-websocket-protocol", b"chat"),)))]
    assert session.send_credits == 10 and session.sending


def test_the_handler_rejects_with_a_response() -> None:
    session = WsSession(P8, SID, now=0.0)
    session.start(b"ws://example.com/ws", ())
    actions = session.receive(reply(0, type=b"error", condition=b"rejected", code=403,
                                    reason=b"Forbidden", body=b"no"), 1.0)
    assert actions == [Rejected(ResponseHead(403, b"Forbidden", ()), b"no")]
    assert session.state is State.DONE


@pytest.mark.parametrize("packet", [
    reply(0, code=200, body=b"not a WebSocket answer"),
    reply(0, type=b"close", code=1000),
])
def test_anything_else_before_the_decision_fails_the_session(packet: Packet) -> None:
    session = WsSession(P8, SID, now=0.0)
    session.start(b"ws://example.com/ws", ())
    actions = session.receive(packet, 1.0)
    assert isinstance(actions[-1], Failed)
    assert [p.type for p in sent(actions)] == [b"cancel"]


def test_messages_from_the_handler_and_their_fragments() -> None:
    session, _ = accepted(window=1000)
    assert session.receive(reply(1, content_type=b"binary", body=b"\x00"), 2.0) == [
        Message(WebSocketMessage("binary", b"\x00"), 1)]
    assert session.receive(reply(2, body=b"hi"), 2.0) == [Message(WebSocketMessage("text", b"hi"),
                                                                  2)]
    # A fragment is granted again at once, so that a message beyond the window arrives.
    part = session.receive(reply(3, content_type=b"text", body=b"a" * 600, more=True), 3.0)
    assert [(p.type, p.credits) for p in sent(part)] == [(b"credit", 600)]
    assert session.receive(reply(4, body=b"b" * 600), 3.0) == [
        Message(WebSocketMessage("text", b"a" * 600 + b"b" * 600), 600)]


def test_control_frames_and_the_close_handshake() -> None:
    session, _ = accepted()
    assert session.receive(reply(1, type=b"ping", body=b"p"), 2.0) == [
        Message(WebSocketMessage("ping", b"p"))]
    close = session.send(WebSocketMessage("close", b"bye", 4001), 3.0)
    assert close.packet == Packet(id=SID, from_=P8, seq=1, type=b"close", code=4001, body=b"bye")
    assert not session.sending and session.open
    assert session.receive(reply(2, type=b"close", code=4001, body=b"bye"), 4.0) == [
        Message(WebSocketMessage("close", b"bye", 4001)), End()]
    assert session.state is State.DONE


def test_messages_to_the_handler_take_its_credits() -> None:
    session, _ = accepted(credits=5)
    packet = session.send(WebSocketMessage("binary", b"abc"), 2.0, more=True).packet
    assert (packet.content_type, packet.body, packet.more, packet.seq) == (b"binary", b"abc",
                                                                          True, 1)
    assert not session.can_send(WebSocketMessage("binary", b"abc"))
    with pytest.raises(RuntimeError):
        session.send(WebSocketMessage("binary", b"abc"), 2.0)
    assert session.can_send(WebSocketMessage("ping", b"x" * 100))


@pytest.mark.parametrize(("packet", "problem"), [
    (reply(1, content_type=b"morse", body=b"..."), "unknown content-type"),
    (reply(1, content_type=b"binary", body=b"x" * 2001), "far more than its credits"),
    (reply(1, type=b"handoff-start"), "unexpected 'handoff-start' packet in a WebSocket"),
    (reply(1, type=b"error", condition=b"rejected"), "error 'rejected'"),
])
def test_bad_packets_after_the_decision_fail_the_session(packet: Packet, problem: str) -> None:
    session, _ = accepted(window=1000)
    actions = session.receive(packet, 2.0)
    assert isinstance(actions[-1], Failed) and problem in actions[-1].reason


def test_a_message_over_the_limit_fails_the_session() -> None:
    session, _ = accepted(window=1000, max_message=1500)
    session.receive(reply(1, content_type=b"binary", body=b"x" * 1000, more=True), 2.0)
    actions = session.receive(reply(2, body=b"x" * 600, more=True), 2.0)
    assert isinstance(actions[-1], Failed) and "over 1500 bytes" in actions[-1].reason
    assert [p.type for p in sent(actions)] == [b"cancel"]
