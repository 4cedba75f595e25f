"""The WebSocket-over-HTTP state machine, as playbooks: inputs in, actions out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from p8_ws_over_http.events import MEDIA_TYPE, WsEvent, encode
from p8_ws_over_http.format import WsMessageFormat
from p8_ws_over_http.session import (
    Accept,
    Action,
    ArmTimer,
    BackendResponse,
    CancelTimer,
    CloseClient,
    DropClient,
    Finished,
    Join,
    Leave,
    Note,
    Reject,
    SendMessage,
    SendRequest,
    Session,
    SessionSettings,
)

TYPE = (b"content-type", MEDIA_TYPE)
GRIP = (b"sec-websocket-extensions", b"grip")


def ok(*events: WsEvent, headers: tuple[tuple[bytes, bytes], ...] = ()) -> BackendResponse:
    return BackendResponse(200, b"OK", (TYPE, *headers), encode(events))


def text(data: bytes | str) -> WsEvent:
    return WsEvent("TEXT", data.encode() if isinstance(data, str) else data)


def requests(actions: list[Action]) -> list[SendRequest]:
    return [a for a in actions if isinstance(a, SendRequest)]


def bodies(actions: list[Action]) -> list[bytes]:
    return [a.body for a in requests(actions)]


def sent(actions: list[Action]) -> list[tuple[str, bytes]]:
    return [(a.kind, a.data) for a in actions if isinstance(a, SendMessage)]


def of(actions: list[Action], kind: type) -> list[object]:
    return [a for a in actions if isinstance(a, kind)]


def opened(*events: WsEvent, grip: bool = True, headers: tuple[tuple[bytes, bytes], ...] = (),
           **settings: object) -> tuple[Session, list[Action]]:
    """A session whose backend accepted with ``events`` after OPEN."""
    session = Session(SessionSettings(**settings))  # type: ignore[arg-type]
    session.start()
    extra = (GRIP, *headers) if grip else headers
    return session, session.on_response(ok(WsEvent("OPEN"), *events, headers=extra))


def message(**raw: object) -> object:
    return WsMessageFormat().parse(raw, "'ws-message'")


# ---- opening (§4.1) -------------------------------------------------------------------------

def test_start_asks_the_backend_with_open() -> None:
    assert Session(SessionSettings()).start() == [
        SendRequest(b"OPEN\r\n", (), opening=True, events=(WsEvent("OPEN"),))]


def test_an_accepting_backend_gets_the_client_a_101_with_its_headers() -> None:
    session, actions = opened(
        text("m:welcome"), text('c:{"type": "subscribe", "channel": "all"}'),
        headers=((b"X-Custom", b"1"), (b"Sec-WebSocket-Protocol", b"chat"),
                 (b"Keep-Alive-Interval", b"30"), (b"Set-Meta-User", b"alice"),
                 (b"Content-Length", b"99")))
    accept = actions[0]
    assert accept == Accept(((b"X-Custom", b"1"), (b"Sec-WebSocket-Protocol", b"chat")))
    assert Join("all") in actions
    assert sent(actions) == [("text", b"welcome")]
    assert ArmTimer("keep-alive", 30.0) in actions
    assert session.meta == {b"user": b"alice"}
    assert session.accepted and session.client_open


@pytest.mark.parametrize("resp", [
    BackendResponse(403, b"Forbidden", ((b"X-R", b"1"), (b"Content-Length", b"8")),
                    b"go away\n"),
    BackendResponse(200, b"OK", ((b"content-type", b"text/plain"),), b"plain\n"),
    BackendResponse(200, b"OK", ((b"content-type", MEDIA_TYPE + b"; charset=utf-8"),),
                    b"OPEN\r\n"),
])
def test_any_other_answer_is_passed_to_the_client_as_a_refusal(resp: BackendResponse) -> None:
    session = Session(SessionSettings())
    session.start()
    actions = session.on_response(resp)
    passed = tuple((n, v) for n, v in resp.headers if n.lower() != b"content-length")
    assert Reject(resp.status, resp.reason, passed, resp.body) in actions
    assert actions[-1] == Finished()


def test_a_refusal_body_is_capped() -> None:
    session = Session(SessionSettings())
    session.start()
    reject = of(session.on_response(BackendResponse(400, b"", (), b"x" * 200_000)), Reject)[0]
    assert isinstance(reject, Reject) and len(reject.body) == 100_000


@pytest.mark.parametrize("resp", [
    ok(),                                        # no events, no keep-alive
    ok(text("hi")),                              # first event is not OPEN
    BackendResponse(200, b"", (TYPE,), b"OPEN"),  # not events
    BackendResponse(200, b"", (TYPE,), b"OPEN\r\n", complete=False),
])
def test_an_unusable_accept_is_a_502(resp: BackendResponse) -> None:
    session = Session(SessionSettings())
    session.start()
    actions = session.on_response(resp)
    reject = of(actions, Reject)[0]
    assert isinstance(reject, Reject)
    assert (reject.status, reject.body) == (502, b"Error while proxying to origin.\n")


def test_a_failed_open_request_is_a_502_without_retries() -> None:
    session = Session(SessionSettings())
    session.start()
    actions = session.on_request_failed("cannot reach", retryable=True)
    assert [a.status for a in of(actions, Reject)] == [502]  # type: ignore[attr-defined]
    assert not of(actions, ArmTimer)


def test_a_backend_can_defer_its_answer_with_a_keep_alive() -> None:
    session = Session(SessionSettings())
    session.start()
    actions = session.on_response(ok(headers=((b"Keep-Alive-Interval", b"5"),)))
    assert ArmTimer("open", 20.0) in actions, "5 s is raised to the 20 s minimum"
    assert not session.accepted
    assert session.on_timer("open") == [
        SendRequest(b"OPEN\r\n", (), opening=True, events=(WsEvent("OPEN"),))]
    assert of(session.on_response(ok(WsEvent("OPEN"))), Accept)


# ---- messages and batching (§2, §4.2) -------------------------------------------------------

def test_messages_wait_while_a_request_is_in_flight_then_go_together_in_order() -> None:
    session, _ = opened()
    assert bodies(session.on_message("text", b"msg0")) == [b"TEXT 4\r\nmsg0\r\n"]
    for data in (b"msg1", b"msg2", b"msg3"):
        assert session.on_message("text", data) == []
    assert session.on_message("ping", b"pp") == []
    assert session.queued_bytes == 14
    after = session.on_response(ok())
    assert bodies(after) == [
        b"TEXT 4\r\nmsg1\r\nTEXT 4\r\nmsg2\r\nTEXT 4\r\nmsg3\r\nPING 2\r\npp\r\n"]
    assert session.queued_bytes == 0


def test_every_kind_of_client_message_becomes_its_event() -> None:
    session, _ = opened(one_event=True)
    got = []
    for kind, data in (("text", b"t"), ("binary", b"\x00b"), ("ping", b""), ("pong", b"p")):
        got += bodies(session.on_message(kind, data))
        got += bodies(session.on_response(ok()))
    assert got == [b"TEXT 1\r\nt\r\n", b"BINARY 2\r\n\x00b\r\n", b"PING\r\n", b"PONG 1\r\np\r\n"]


def test_one_event_sends_one_event_per_request() -> None:
    session, _ = opened(one_event=True)
    session.on_message("text", b"a")
    session.on_message("text", b"b")
    session.on_message("text", b"c")
    assert bodies(session.on_response(ok())) == [b"TEXT 1\r\nb\r\n"]
    assert bodies(session.on_response(ok())) == [b"TEXT 1\r\nc\r\n"]


def test_a_request_carries_at_most_max_batch_bytes_of_messages() -> None:
    session, _ = opened(max_batch=10)
    session.on_message("text", b"first")
    for data in (b"12345", b"67890", b"abc", b"x" * 30):
        session.on_message("binary", data)
    assert bodies(session.on_response(ok())) == [b"BINARY 5\r\n12345\r\nBINARY 5\r\n67890\r\n"]
    assert bodies(session.on_response(ok())) == [b"BINARY 3\r\nabc\r\n"]
    assert bodies(session.on_response(ok())) == [b"BINARY 1e\r\n" + b"x" * 30 + b"\r\n"]


def test_backend_events_reach_the_client_in_order() -> None:
    _, actions = opened(text("m:one"), WsEvent("BINARY", b"m:\x00\x01"),
                              WsEvent("PING", b"p"), WsEvent("PONG"), text("m:two"))
    assert sent(actions) == [("text", b"one"), ("binary", b"\x00\x01"), ("ping", b"p"),
                             ("pong", b""), ("text", b"two")]


# ---- response headers (§3.2) ----------------------------------------------------------------

def test_set_meta_headers_come_back_as_meta_headers_until_emptied() -> None:
    session, _ = opened(headers=((b"Set-Meta-User", b"alice"), (b"set-meta-room", b"r1"),
                                 (b"Set-Meta-", b"nameless")))
    first = requests(session.on_message("text", b"x"))[0]
    assert first.meta == ((b"meta-user", b"alice"), (b"meta-room", b"r1"))
    session.on_message("text", b"y")
    second = requests(session.on_response(ok(headers=((b"Set-Meta-User", b""),))))[0]
    assert second.meta == ((b"meta-room", b"r1"),)


@pytest.mark.parametrize(("value", "armed"), [
    (b"5", 20.0), (b"20", 20.0), (b"45", 45.0), (b"0", None), (b"-3", None), (b"soon", None)])
def test_keep_alive_interval_is_clamped_or_off(value: bytes, armed: float | None) -> None:
    session, actions = opened(headers=((b"Keep-Alive-Interval", value),))
    if armed is None:
        assert CancelTimer("keep-alive") in actions
        assert session.keep_alive_interval is None
    else:
        assert ArmTimer("keep-alive", armed) in actions
        assert bodies(session.on_timer("keep-alive")) == [b""], "an empty request"


def test_keep_alive_interval_minimum_is_a_setting() -> None:
    _, actions = opened(headers=((b"Keep-Alive-Interval", b"1"),), keep_alive_min=0.5)
    assert ArmTimer("keep-alive", 1.0) in actions


def test_a_later_response_may_change_the_interval_and_one_without_it_keeps_it() -> None:
    session, _ = opened(headers=((b"Keep-Alive-Interval", b"30"),))
    session.on_message("text", b"x")
    assert ArmTimer("keep-alive", 30.0) in session.on_response(ok())
    session.on_message("text", b"y")
    assert CancelTimer("keep-alive") in session.on_response(
        ok(headers=((b"Keep-Alive-Interval", b"0"),)))


def test_refresh_sends_an_empty_request_or_the_queue_now() -> None:
    session, _ = opened()
    assert bodies(session.refresh()) == [b""]
    assert session.refresh() == [], "one request in flight"
    assert bodies(session.on_response(ok())) == [b""], "the refresh was remembered"


# ---- closing (§4.3) ---------------------------------------------------------------------

def test_the_client_closes_and_the_backend_acknowledges() -> None:
    session, _ = opened()
    assert bodies(session.on_client_close(1000, "")) == [b"CLOSE 2\r\n\x03\xe8\r\n"]
    actions = session.on_response(ok(WsEvent("CLOSE", b"\x03\xe8")))
    assert CloseClient(1000, "") in actions
    assert actions[-1] == Finished()


def test_a_client_close_the_backend_ignores_is_an_unclean_disconnect() -> None:
    session, _ = opened()
    session.on_client_close(4000, "bye")
    actions = session.on_response(ok())
    assert CloseClient(4000, "bye") in actions, "the client still gets its reply"
    assert bodies(actions) == [b"DISCONNECT\r\n"]
    assert session.on_response(ok(text("m:ignored"))) == [Finished()]


def test_with_a_keep_alive_the_backend_may_acknowledge_a_client_close_later() -> None:
    session, _ = opened(headers=((b"Keep-Alive-Interval", b"20"),))
    actions = session.on_client_close(1000, "")
    assert ArmTimer("close", 5.0) in actions
    assert of(session.on_response(ok()), CloseClient) == []
    session.on_timer("keep-alive")
    assert CloseClient(1000, "") in session.on_response(ok(WsEvent("CLOSE", b"\x03\xe8")))


def test_the_backend_closes_and_the_client_reply_is_reported() -> None:
    session, actions = opened(WsEvent("CLOSE", b"\x03\xe8bye"))
    assert CloseClient(1000, "bye") in actions
    assert session.on_message("text", b"late") == [], "nothing goes out once closing"
    reply = session.on_client_close(1001, "")
    assert bodies(reply) == [b"CLOSE 2\r\n\x03\xe9\r\n"]
    assert session.on_response(ok()) == [Finished()]


def test_a_detach_while_the_client_closes() -> None:
    session, _ = opened(one_event=True)
    session.on_message("text", b"x")
    session.on_client_close(None, "")  # waits behind the message
    actions = session.on_response(ok(control('{"type": "detach"}')))
    assert CloseClient(None, "") in actions, "no echo will come: p8 replies to the client"
    assert bodies(actions) == [b"CLOSE\r\n"], "the client's close, without code"
    assert bodies(session.on_response(ok())) == [b"CLOSE\r\n"], "then the detach's own"
    assert session.on_response(ok()) == [Finished()]


def test_a_close_without_code_stays_without_code() -> None:
    session, actions = opened(WsEvent("CLOSE"))
    assert CloseClient(None, "") in actions
    assert bodies(session.on_client_close(None, "")) == [b"CLOSE\r\n"]


def test_a_vanished_client_is_reported_with_disconnect() -> None:
    session, _ = opened()
    session.on_message("text", b"in flight")
    session.on_message("text", b"queued")
    assert session.on_client_gone()[-1:] == [CancelTimer("keep-alive")]
    after = session.on_response(ok(text("m:nobody hears this")))
    assert bodies(after) == [b"TEXT 6\r\nqueued\r\nDISCONNECT\r\n"]
    assert sent(after) == []
    assert session.on_response(ok()) == [Finished()]


def test_a_client_leaving_before_the_answer_gets_disconnect_if_accepted() -> None:
    session = Session(SessionSettings())
    session.start()
    session.on_client_gone()
    actions = session.on_response(ok(WsEvent("OPEN")))
    assert not of(actions, Accept)
    assert bodies(actions) == [b"DISCONNECT\r\n"]
    refused = Session(SessionSettings())
    refused.start()
    refused.on_client_gone()
    assert refused.on_response(BackendResponse(403)) == [Finished()]


@pytest.mark.parametrize("event", [WsEvent("DISCONNECT"), WsEvent("OPEN")])
def test_disconnect_or_a_second_open_drops_the_client(event: WsEvent) -> None:
    _, actions = opened(text("m:before"), event, text("m:after"))
    assert sent(actions) == [("text", b"before")]
    assert DropClient() in actions
    assert actions[-1] == Finished()


# ---- failures (§4.4) --------------------------------------------------------------------

@pytest.mark.parametrize("resp", [
    BackendResponse(500, b"", (TYPE,), b""),
    BackendResponse(200, b"", ((b"content-type", b"text/plain"),), b"TEXT\r\n"),
    BackendResponse(200, b"", (TYPE,), b"TEXT 9\r\nx\r\n"),
    BackendResponse(200, b"", (TYPE,), b"", complete=False),
])
def test_a_bad_answer_on_an_open_connection_closes_the_client_with_1011(
        resp: BackendResponse) -> None:
    session, _ = opened()
    session.on_message("text", b"hi")
    actions = session.on_response(resp)
    assert CloseClient(1011, "") in actions
    assert not requests(actions)
    assert session.on_client_close(1011, "") == [CancelTimer("close"), Finished()]


def test_unreached_backends_are_retried_on_schedule_then_the_client_is_closed() -> None:
    session, _ = opened()
    first = requests(session.on_message("text", b"hi"))[0]
    delays = []
    for _ in range(5):
        actions = session.on_request_failed("cannot reach", retryable=True)
        timer = of(actions, ArmTimer)[0]
        assert isinstance(timer, ArmTimer) and timer.key == "retry"
        delays.append(timer.seconds)
        session.on_message("text", b"meanwhile")
        assert session.on_timer("retry") == [first], "the same request again"
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert CloseClient(1011, "") in session.on_request_failed("cannot reach", retryable=True)


def test_retry_jitter_and_base_delay_are_settings() -> None:
    session = Session(SessionSettings(retry_delay=0.1, jitter=1.0), random=lambda: 0.5)
    session.start()
    session.on_response(ok(WsEvent("OPEN")))
    session.on_message("text", b"x")
    assert ArmTimer("retry", 0.6) in session.on_request_failed("x", retryable=True)


def test_a_backend_that_was_reached_is_not_retried() -> None:
    session, _ = opened()
    session.on_message("text", b"hi")
    assert CloseClient(1011, "") in session.on_request_failed("timed out", retryable=False)


# ---- the GRIP extension (§5) --------------------------------------------------------------

def test_without_the_extension_messages_pass_unchanged() -> None:
    _, actions = opened(text('c:{"type": "subscribe", "channel": "x"}'), text("plain"),
                        grip=False)
    assert sent(actions) == [("text", b'c:{"type": "subscribe", "channel": "x"}'),
                             ("text", b"plain")]
    assert not of(actions, Join)


def test_with_the_extension_prefixed_messages_pass_and_others_are_dropped() -> None:
    _, actions = opened(text("m:echo"), text("not prefixed"), WsEvent("BINARY", b"bin"),
                        text("c:{bad json"))
    assert sent(actions) == [("text", b"echo")]
    assert [n.event for n in of(actions, Note)] == [  # type: ignore[attr-defined]
        "message_dropped", "message_dropped", "control_ignored"]


@pytest.mark.parametrize(("header", "events", "passed"), [
    (b'grip; message-prefix="> "', ["> hi", "other"], [b"hi"]),
    (b'grip; message-prefix=""', ["> hi", "other"], [b"> hi", b"other"]),
    (b"permessage-deflate, grip", ["m:> hi", "other"], [b"> hi"]),
])
def test_the_message_prefix_is_negotiated(header: bytes, events: list[str],
                                          passed: list[bytes]) -> None:
    headers = ((b"sec-websocket-extensions", header),)
    _, actions = opened(*map(text, events), grip=False, headers=headers)
    assert sent(actions) == [("text", p) for p in passed]


def test_a_grip_extension_of_a_trusted_client_passes_through_to_the_101() -> None:
    headers = ((b"Sec-WebSocket-Extensions", b'grip; message-prefix="x"'),)
    session = Session(SessionSettings(grip=False))
    session.start()
    actions = session.on_response(ok(WsEvent("OPEN"), text("c:raw"), headers=headers))
    assert actions[0] == Accept(((b"sec-websocket-extensions", b'grip; message-prefix="x"'),))
    assert sent(actions) == [("text", b"c:raw")]
    assert session.message_prefix is None


def control(body: str) -> WsEvent:
    return text("c:" + body)


def test_subscribe_and_unsubscribe_apply_the_route_prefix() -> None:
    session, actions = opened(control('{"type": "subscribe", "channel": "room"}'),
                              channel_prefix="pp-")
    assert Join("pp-room") in actions
    session.on_message("text", b"x")
    after = session.on_response(ok(control('{"type": "unsubscribe", "channel": "room"}'),
                                   control('{"type": "unsubscribe", "channel": "never"}')))
    assert of(after, Leave) == [Leave("pp-room")]


def test_implicit_channels_need_no_backend_and_cannot_be_left() -> None:
    session, actions = opened(control('{"type": "unsubscribe", "channel": "news"}'),
                              grip=False, implicit_channels=("news",), channel_prefix="p-")
    assert Join("news") in actions and not of(actions, Leave)
    assert session.channels == {"news": ()}


def test_subscriptions_beyond_the_maximum_are_refused() -> None:
    subs = [control(f'{{"type": "subscribe", "channel": "c{i}"}}') for i in range(4)]
    _, actions = opened(*subs, max_subscriptions=3)
    assert of(actions, Join) == [Join("c0"), Join("c1"), Join("c2")]
    assert Note("subscription_refused", "c3: over the limit", warning=True) in actions


def test_set_meta_feeds_the_delivery_filters() -> None:
    session, _ = opened(
        control('{"type": "subscribe", "channel": "chat", "filters": ["skip-self"]}'),
        control('{"type": "set-meta", "name": "user", "value": "alice"}'))
    hello = message(content="hi")
    assert session.on_publish("chat", {"sender": "alice"}, hello) == []  # type: ignore[arg-type]
    assert sent(session.on_publish("chat", {"sender": "bob"}, hello)) == [  # type: ignore[arg-type]
        ("text", b"hi")]
    session.on_message("text", b"x")
    session.on_response(ok(control('{"type": "set-meta", "name": "user"}')))
    assert session.subscription_meta == {}
    assert sent(session.on_publish("chat", {"sender": "alice"}, hello))  # type: ignore[arg-type]


def test_skip_users_and_require_sub_filters() -> None:
    session, _ = opened(
        control('{"type": "subscribe", "channel": "a", "filters": ["skip-users", '
                '"require-sub"]}'),
        control('{"type": "set-meta", "name": "user", "value": "carol"}'))
    hi = message(content="hi")
    assert session.on_publish("a", {"skip_users": "bob, carol"}, hi) == []  # type: ignore[arg-type]
    assert session.on_publish("a", {"require_sub": "b"}, hi) == []  # type: ignore[arg-type]
    assert sent(session.on_publish("a", {"require_sub": "a"}, hi))  # type: ignore[arg-type]


def test_var_subst_fills_in_subscription_meta() -> None:
    session, _ = opened(
        control('{"type": "subscribe", "channel": "a", "filters": ["var-subst"]}'),
        control('{"type": "set-meta", "name": "user", "value": "alice"}'))
    greeting = message(content="hi %(user)s 100%%")
    assert sent(session.on_publish("a", {}, greeting)) == [  # type: ignore[arg-type]
        ("text", b"hi alice 100%")]
    unknown = message(content="%(nope)s")
    assert not sent(session.on_publish("a", {}, unknown))  # type: ignore[arg-type]
    mismatch = message(content="x", **{"content-filters": ["build-id"]})
    assert not sent(session.on_publish("a", {}, mismatch))  # type: ignore[arg-type]


def test_build_id_and_the_content_filter_agreement() -> None:
    session, _ = opened(
        control('{"type": "subscribe", "channel": "a", "filters": ["build-id", "skip-self"]}'),
        control('{"type": "set-meta", "name": "id_format", "value": "x"}'))
    given = message(content="id %(7)I", **{"content-filters": ["build-id"]})
    assert sent(session.on_publish("a", {}, given)) == [("text", b"id 7")]  # type: ignore[arg-type]
    no_ids = message(content="%I")
    assert session.on_publish("a", {}, no_ids) == [  # type: ignore[arg-type]
        Note("publish_skipped", "filter error: No ID specified and no default ID in context "
                                "at position 1")]
    other = message(content="x", **{"content-filters": ["var-subst"]})
    assert session.on_publish("a", {}, other) == [  # type: ignore[arg-type]
        Note("publish_skipped", "content filters differ")]


def test_keep_alive_control_message_sends_while_idle() -> None:
    session, actions = opened(
        control('{"type": "keep-alive", "content": "KA!", "timeout": 2}'))
    assert ArmTimer("ws-keep-alive", 2.0) in actions
    assert session.on_timer("ws-keep-alive") == [SendMessage("text", b"KA!"),
                                                 ArmTimer("ws-keep-alive", 2.0)]
    published = session.on_publish("x", {}, message(content="p"))  # type: ignore[arg-type]
    assert ArmTimer("ws-keep-alive", 2.0) in published, "data resets the idle timer"
    session.on_message("text", b"x")
    off = session.on_response(ok(control('{"type": "keep-alive"}')))
    assert CancelTimer("ws-keep-alive") in off
    assert session.on_timer("ws-keep-alive") == []


def test_keep_alive_interval_mode_and_binary_content() -> None:
    session, _ = opened(control('{"type": "keep-alive", "content-bin": "AAE=", '
                                '"message-type": "binary", "timeout": 3, "mode": "interval"}'),
                        jitter=1.0)
    published = session.on_publish("x", {}, message(content="p"))  # type: ignore[arg-type]
    assert not of(published, ArmTimer), "interval mode does not reset on data"
    assert session.on_timer("ws-keep-alive")[0] == SendMessage("binary", b"\x00\x01")


def test_send_delayed_and_flush_delayed() -> None:
    session, actions = opened(
        control('{"type": "send-delayed", "content": "later", "timeout": 0.5}'))
    assert ArmTimer("delayed", 0.5) in actions and not sent(actions)
    assert sent(session.on_timer("delayed")) == [("text", b"later")]
    assert session.on_timer("delayed") == []
    session.on_message("text", b"x")
    actions = session.on_response(ok(
        control('{"type": "send-delayed", "content": "one"}'),
        control('{"type": "send-delayed", "content": "two", "message-type": "ping"}'),
        control('{"type": "flush-delayed"}')))
    assert sent(actions) == [("text", b"one"), ("ping", b"two")]


def test_detach_closes_toward_the_backend_and_keeps_the_client() -> None:
    session, actions = opened(
        control('{"type": "subscribe", "channel": "news"}'), control('{"type": "detach"}'),
        text("m:after detach"))
    assert bodies(actions) == [b"CLOSE\r\n"]
    assert sent(actions) == []
    assert session.on_message("text", b"ignored") == []
    assert session.on_response(ok(text("m:ignored"))) == []
    assert sent(session.on_publish("news", {}, message(content="still")))  # type: ignore[arg-type]
    assert session.on_client_close(1000, "") == [CloseClient(1000, ""), CancelTimer("close"),
                                                 Finished()]


def test_session_control_message_keeps_the_id() -> None:
    session, _ = opened(control('{"type": "session", "id": "s-1"}'))
    assert session.session_id == "s-1"


@pytest.mark.parametrize("body", [
    "[]", '{"type": 1}', '{"type": "dance"}', '{"type": "subscribe"}',
    '{"type": "subscribe", "channel": ""}', '{"type": "subscribe", "channel": "a", "filters": 1}',
    '{"type": "set-meta", "value": "x"}', '{"type": "keep-alive", "content": "x", "timeout": 0}',
    '{"type": "keep-alive", "content": "x", "mode": "sometimes"}',
    '{"type": "keep-alive", "content-bin": "!!"}', '{"type": "send-delayed"}',
    '{"type": "send-delayed", "content": "x", "message-type": "shout"}', '{"type": "session"}',
])
def test_invalid_control_messages_are_ignored(body: str) -> None:
    session, actions = opened(control(body))
    assert of(actions, Note) and not of(actions, Join) and not sent(actions)
    assert session.client_open


# ---- publishes (§6) ---------------------------------------------------------------------

def test_a_published_message_carries_its_frame() -> None:
    session, _ = opened()
    msg = message(content="hi")
    assert session.on_publish("a", {}, msg) == [  # type: ignore[arg-type]
        SendMessage("text", b"hi", b"\x81\x02hi")]


def test_a_published_close_closes_the_client_and_tells_the_backend() -> None:
    session, _ = opened()
    actions = session.on_publish(  # type: ignore[arg-type]
        "a", {}, message(action="close", code=4001, reason="pub-close"))
    assert CloseClient(4001, "pub-close") in actions
    assert bodies(actions) == [b"CLOSE\r\n"]
    assert session.on_client_close(4001, "pub-close") == [CancelTimer("close")]
    assert session.on_response(ok()) == [Finished()]


def test_a_published_refresh_asks_the_backend() -> None:
    session, _ = opened()
    assert bodies(session.on_publish("a", {}, message(action="refresh"))) == [  # type: ignore[arg-type]
        b""]


def test_a_close_handshake_that_hangs_drops_the_client() -> None:
    session, _ = opened(WsEvent("CLOSE", b"\x03\xe8"))
    assert session.on_timer("close")[:1] == [DropClient()]
    assert session.finished


# ---- any interleaving keeps the rules ---------------------------------------------------

backend_events = st.sampled_from([
    text("m:hi"), WsEvent("PING"), WsEvent("CLOSE", b"\x03\xe8"), WsEvent("DISCONNECT"),
    control('{"type": "detach"}'), control('{"type": "subscribe", "channel": "c"}'),
    control('{"type": "keep-alive", "content": "ka", "timeout": 1}'),
    control('{"type": "send-delayed", "content": "later"}')])
answers = st.one_of(
    st.builds(lambda evs, ka: ok(*evs, headers=((b"Keep-Alive-Interval", ka),)),
              st.lists(backend_events, max_size=3), st.sampled_from([b"0", b"20"])),
    st.just(BackendResponse(500)), st.just("unreached"), st.just("timeout"))
inputs = st.one_of(
    st.tuples(st.just("message"), st.sampled_from(["text", "binary", "ping", "pong"])),
    st.tuples(st.just("close"), st.sampled_from([None, 1000, 4000])),
    st.tuples(st.just("gone"), st.none()), st.tuples(st.just("error"), st.none()),
    st.tuples(st.just("answer"), answers), st.tuples(st.just("timer"), st.integers(0, 9)),
    st.tuples(st.just("publish"), st.sampled_from(["send", "close", "refresh"])),
    st.tuples(st.just("refresh"), st.none()))


@given(st.sampled_from([ok(WsEvent("OPEN")), ok(WsEvent("OPEN"), headers=((GRIP),)),
                        ok(headers=((b"Keep-Alive-Interval", b"20"),)),
                        BackendResponse(403)]),
       st.lists(inputs, max_size=40), st.booleans())
def test_any_interleaving_keeps_the_rules(first: BackendResponse,
                                          steps: list[tuple[str, object]],
                                          one_event: bool) -> None:
    session = Session(SessionSettings(one_event=one_event, retries=2))
    in_flight = 1
    timers: set[str] = set()
    closes = finished = 0
    closed = False

    def apply(actions: list[Action]) -> None:
        nonlocal in_flight, closes, finished, closed
        for action in actions:
            assert finished == 0, f"{action} after Finished"
            if isinstance(action, SendRequest):
                in_flight += 1
                assert in_flight == 1, "one request in flight"
            elif isinstance(action, ArmTimer):
                timers.add(action.key)
            elif isinstance(action, CancelTimer):
                timers.discard(action.key)
            elif isinstance(action, CloseClient):
                closes += 1
                closed = True
                assert closes == 1, "one close frame per connection"
            elif isinstance(action, SendMessage):
                assert not closed, "nothing after the close frame"
            elif isinstance(action, DropClient | Reject):
                closed = True
            elif isinstance(action, Finished):
                finished += 1

    session.start()
    in_flight = 0  # the OPEN is answered at once
    apply(session.on_response(first))
    for kind, arg in steps:
        if kind == "message":
            apply(session.on_message(str(arg), b"data"))
        elif kind == "close":
            apply(session.on_client_close(arg, ""))  # type: ignore[arg-type]
        elif kind == "gone":
            apply(session.on_client_gone())
        elif kind == "error":
            apply(session.on_client_error(1002, "bad frame"))
        elif kind == "answer" and in_flight:
            in_flight = 0
            if arg in ("unreached", "timeout"):
                apply(session.on_request_failed(str(arg), retryable=arg == "unreached"))
            else:
                apply(session.on_response(arg))  # type: ignore[arg-type]
        elif kind == "timer" and timers:
            key = sorted(timers)[int(arg) % len(timers)]  # type: ignore[call-overload]
            timers.discard(key)
            apply(session.on_timer(key))
        elif kind == "publish":
            apply(session.on_publish("c", {}, message(  # type: ignore[arg-type]
                action=arg, **({"content": "p"} if arg == "send" else {}))))
        elif kind == "refresh":
            apply(session.refresh())
    assert session.finished == (finished == 1)


# ---- a backend that pushes (a connector's WebSocket session) --------------------------------

def pushed(headers: tuple[tuple[bytes, bytes], ...] = (GRIP,)) -> tuple[Session, list[Action]]:
    """A session whose pushing backend accepted with ``headers``."""
    session = Session(SessionSettings(pushes=True))
    session.start()
    return session, session.on_accepted(headers)


def test_a_pushing_backend_is_sent_events_and_pushes_its_own() -> None:
    session, actions = pushed(headers=(GRIP, (b"sec-websocket-protocol", b"chat")))
    assert of(actions, Accept) == [Accept(((b"sec-websocket-protocol", b"chat"),))]
    [request] = requests(session.on_message("text", b"hi"))
    assert request.events == (text("hi"),)
    assert requests(session.on_message("binary", b"\x00")) == []  # one at a time
    [request] = requests(session.on_sent())
    assert request.events == (WsEvent("BINARY", b"\x00"),)
    assert session.on_sent() == []
    assert sent(session.on_backend_events([text("m:hello"), text("dropped")])) == [
        ("text", b"hello")]


def test_a_pushing_backend_answers_the_clients_close_later_or_not_at_all() -> None:
    session, _ = pushed()
    actions = session.on_client_close(4001, "bye")
    [request] = requests(actions)
    assert request.events == (WsEvent("CLOSE", b"\x0f\xa1bye"),)
    assert ArmTimer("close", 5.0) in actions
    assert session.on_sent() == []
    actions = session.on_backend_events([WsEvent("CLOSE", b"\x0f\xa1bye")])
    assert CloseClient(4001, "bye") in actions and Finished() in actions

    session, _ = pushed()
    session.on_client_close(1000, "")
    session.on_sent()
    actions = session.on_timer("close")
    assert CloseClient(1000, "") in actions
    assert [r.events for r in requests(actions)] == [(WsEvent("DISCONNECT"),)]


def test_a_pushing_backend_that_breaks_off_closes_the_client_with_1011() -> None:
    session, _ = pushed()
    actions = session.on_backend_failed("the handler cancelled the session")
    assert CloseClient(1011, "") in actions
    assert session.on_client_close(1011, "") == [CancelTimer("close"), Finished()]


def test_a_pushing_backend_that_cannot_be_asked_gives_its_status_and_reason() -> None:
    session = Session(SessionSettings(pushes=True))
    session.start()
    assert of(session.on_open_failed(504, "timed out"), Reject) == [
        Reject(504, b"Gateway Timeout", ((b"content-type", b"text/plain"),), b"timed out\n")]
    session = Session(SessionSettings(pushes=True))
    session.start()
    refusal = BackendResponse(403, b"Forbidden", ((b"content-length", b"2"),), b"no")
    assert of(session.on_refused(refusal), Reject) == [Reject(403, b"Forbidden", (), b"no")]
