"""The ``stream`` hold mode without sockets: playbooks of events in, actions out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from p8_http_stream.format import HttpStreamFormat
from p8_http_stream.hold import StreamHold
from p8_http_stream.keepalive import KEEP_ALIVE_TIMER as KA
from p8_http_stream.nextlink import LINK_TIMER as LINK
from p8_http_stream.nextlink import RETRY_TIMER as RETRY

from p8core import Finish, Hold, HoldMode, PublishItem, SendBody, SendHead, Subscribe, Unsubscribe
from p8core.app import App
from p8core.grip.instructions import parse_instruct
from p8core.hold import ArmTimer, CancelTimer, Fetch, Fetched, ForgetLastId, HeldRequest, Report
from p8core.proxy.routes import Route

URL = "http://example.com/stream"
ROUTE = Route(targets=("test",))
HEAD = SendHead(200, ((b"Content-Type", b"text/plain"),), b"OK")
FORMAT = HttpStreamFormat()


def stream(*headers: tuple[str, str], body: bytes = b"", route: Route = ROUTE,
           last_ids: Mapping[str, str | None] | None = None,
           mode: type[StreamHold] = StreamHold) -> StreamHold:
    """A stream mode for a backend answer with ``headers`` and ``body``; its random part
    is always 0.5 (of a 1 s jitter)."""
    raw = [(n.encode(), v.encode()) for n, v in headers]
    if not any(n.lower() == b"content-type" for n, _ in raw):
        raw.insert(0, (b"Content-Type", b"text/plain"))
    instruct = parse_instruct(200, b"OK", raw, body, request_url=URL,
                              channel_prefix=route.prefix)
    request = HeldRequest(b"GET", b"/stream", ((b"host", b"example.com"),), b"")
    return mode(Hold(instruct, request, route, dict(last_ids or {})), random=lambda: 0.5)


def item(channel: str, content: str | None = "x", *, id: str | None = None,
         prev_id: str | None = None, meta: Mapping[str, str] | None = None,
         action: str | None = None, content_filters: list[str] | None = None) -> PublishItem:
    raw: dict[str, Any] = {}
    if content is not None:
        raw["content"] = content
    if action is not None:
        raw["action"] = action
    if content_filters is not None:
        raw["content-filters"] = content_filters
    return PublishItem(channel, {"http-stream": FORMAT.parse(raw, "'http-stream'")}, id, prev_id,
                       dict(meta or {}))


def answer(*headers: tuple[str, str], body: bytes = b"", status: int = 200) -> Fetched:
    return Fetched(status, b"OK", tuple((n.encode(), v.encode()) for n, v in headers), body)


def last(channel: str, last_id: str, *, urgent: bool = True) -> Fetch:
    return Fetch(URL + "/next", ((b"Grip-Last", f"{channel}; last-id={last_id}".encode()),),
                 urgent)


HOLD = ("Grip-Hold", "stream")
LINKED = ("Grip-Link", "</stream/next>; rel=next; timeout=30")
NEXT = Fetch(URL + "/next")
NEXT_LOW = Fetch(URL + "/next", urgent=False)
"""The next link fetched within the proxy's update rate: a period, an update or a gap."""


def test_start_writes_the_response_and_waits() -> None:
    mode = stream(HOLD, ("Grip-Channel", "test"), body=b"welcome to the stream\n")
    assert mode.start() == [HEAD, SendBody(b"welcome to the stream\n")]
    hello = item("test", "hello there\n")
    (sent,) = mode.on_item(hello)
    assert sent == SendBody(b"hello there\n")
    assert isinstance(sent, SendBody)
    assert sent.data is hello.formats["http-stream"].content, (  # type: ignore[attr-defined]
        "the bytes parsed once per publish, not copied per subscriber")
    assert mode.on_item(item("test", "")) == [], "an empty chunk cannot be written"
    assert mode.on_item(PublishItem("test", {"other": 1})) == ()
    assert mode.on_item(item("test", None, action="close")) == [Finish()]
    assert mode.on_item(item("test", "late\n")) == (), "nothing after the end"


def test_status_and_headers_come_from_the_instruction() -> None:
    mode = stream(HOLD, ("Grip-Channel", "test"), ("Grip-Status", "299 Custom Thing"),
                  ("X-A", "1"), ("Content-Length", "99"))
    assert mode.start() == [SendHead(299, ((b"Content-Type", b"text/plain"), (b"X-A", b"1")),
                                     b"Custom Thing")]


def test_idle_keep_alive_restarts_on_each_write() -> None:
    mode = stream(HOLD, ("Grip-Channel", "test"),
                  ("Grip-Keep-Alive", r"ping\n; format=cstring; timeout=2"))
    assert mode.start() == [HEAD, ArmTimer(1.5, KA)], "2 s less the jitter"
    assert mode.on_item(item("test", "a")) == [SendBody(b"a"), ArmTimer(1.5, KA)]
    assert mode.on_timer(KA) == [SendBody(b"ping\n"), ArmTimer(1.5, KA)]


def test_interval_keep_alive_ignores_writes() -> None:
    mode = stream(HOLD, ("Grip-Channel", "test"),
                  ("Grip-Keep-Alive", "cGluZw==; format=base64; timeout=3; mode=interval"))
    assert mode.start() == [HEAD, ArmTimer(2.5, KA)]
    assert mode.on_item(item("test", "a")) == [SendBody(b"a")]
    assert mode.on_timer(KA) == [SendBody(b"ping"), ArmTimer(2.5, KA)]


def test_keep_alive_jitter_is_up_to_a_second() -> None:
    values = iter([0.0, 0.999, 0.25])
    instruct = parse_instruct(200, b"", [(b"Grip-Hold", b"stream"),
                                         (b"Grip-Keep-Alive", b"x; timeout=1")], b"",
                              request_url=URL)
    request = HeldRequest(b"GET", b"/", (), b"")
    mode = StreamHold(Hold(instruct, request, ROUTE), random=lambda: next(values))
    waits = [a.seconds for a in [*mode.start(), *mode.on_timer(KA), *mode.on_timer(KA)]
             if isinstance(a, ArmTimer)]
    assert waits == pytest.approx([1.0, 0.001, 0.75])
    settings = App.from_raw({"plugins": {"enabled": ["http_stream"],
                                         "http_stream": {"jitter": 0}}})
    exact: type[StreamHold] = settings.hold_modes["stream"]  # type: ignore[assignment]
    mode = exact(Hold(instruct, request, ROUTE), random=lambda: 0.9)
    assert mode.start() == [SendHead(200, (), b"OK"), ArmTimer(1.0, KA)]


def test_json_keep_alive_is_interval() -> None:
    body = (b'{"hold": {"mode": "stream", "channels": [{"name": "j"}],'
            b' "keep-alive": {"content": ":\\n\\n", "timeout": 4}},'
            b' "response": {"body": "open\\n"}}')
    mode = stream(("Content-Type", "application/grip-instruct"), body=body)
    assert mode.start() == [SendHead(200, (), b"OK"), SendBody(b"open\n"), ArmTimer(3.5, KA)]
    assert mode.on_item(item("j", "a")) == [SendBody(b"a")]


def test_next_link_period_fetch_and_skip() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a, b"), LINKED)
    assert mode.start() == [HEAD, ArmTimer(30, LINK)]
    mode.on_item(item("a"))
    assert mode.on_timer(LINK) == [NEXT_LOW], "b was quiet: fetch"
    mode.on_fetched(answer(HOLD, ("Grip-Channel", "a, b"), LINKED))
    mode.on_item(item("a"))
    mode.on_item(item("b"))
    assert mode.on_timer(LINK) == [ArmTimer(30, LINK)], "every channel was live: skip"
    assert mode.on_timer(LINK) == [NEXT_LOW], "the skip lasts one period"


def test_link_without_channels_is_fetched_every_period() -> None:
    mode = stream(HOLD, ("Grip-Link", "</stream/next>; rel=next; timeout=0"))
    assert mode.start() == [HEAD, ArmTimer(1.0, LINK)], "timeout=0 waits the 1 s minimum"
    assert mode.on_timer(LINK) == [NEXT_LOW]


def test_linked_answer_appends_its_body_and_replaces_the_instructions() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a, b"), LINKED,
                  ("Grip-Keep-Alive", "k; timeout=10"), body=b"first\n")
    assert mode.start() == [HEAD, SendBody(b"first\n"), ArmTimer(9.5, KA), ArmTimer(30, LINK)]
    assert mode.on_update() == [CancelTimer(LINK), NEXT_LOW]
    linked = answer(HOLD, ("Grip-Channel", "b, c"), ("X-Ignored", "1"),
                    ("Grip-Link", "<third>; rel=next; timeout=5"),
                    ("Grip-Keep-Alive", "k2; timeout=4; mode=interval"), body=b"second\n",
                    status=201)
    assert mode.on_fetched(linked) == [
        SendBody(b"second\n"), Unsubscribe(("a",)), Subscribe(("c",)), ArmTimer(3.5, KA),
        ArmTimer(5, LINK)]
    assert mode.on_item(item("a", "gone")) == [], "no longer subscribed"
    assert mode.on_item(item("c", "new")) == [SendBody(b"new")]
    assert mode.on_timer(KA) == [SendBody(b"k2"), ArmTimer(3.5, KA)]
    assert mode.on_timer(LINK) == [Fetch("http://example.com/stream/third", urgent=False)], (
        "relative links resolve against the link they came from")


def test_same_keep_alive_timing_keeps_the_pending_wait() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a"), LINKED,
                  ("Grip-Keep-Alive", "k; timeout=10; mode=interval"))
    mode.start()
    mode.on_update()
    assert mode.on_fetched(answer(HOLD, ("Grip-Channel", "a"), LINKED,
                                  ("Grip-Keep-Alive", "k2; timeout=10; mode=interval"),
                                  body=b"b")) == [SendBody(b"b"), ArmTimer(30, LINK)]
    assert mode.on_timer(KA) == [SendBody(b"k2"), ArmTimer(9.5, KA)]
    mode.on_update()
    assert mode.on_fetched(answer(HOLD, ("Grip-Channel", "a"), LINKED)) == [
        CancelTimer(KA), ArmTimer(30, LINK)], "no keep-alive any more"


def test_linked_answer_without_hold_or_link_ends_the_stream() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a"), LINKED)
    mode.start()
    mode.on_item(item("a", None, action="hint"))
    assert mode.on_fetched(answer(body=b"the end\n")) == [
        SendBody(b"the end\n"), Unsubscribe(("a",)), Finish()]
    assert mode.on_item(item("a")) == ()


def test_linked_answer_without_hold_but_a_link_goes_on_at_once() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a"), LINKED)
    mode.start()
    mode.on_update()
    assert mode.on_fetched(answer(("Grip-Link", "</page/2>; rel=next"), body=b"p1\n")) == [
        SendBody(b"p1\n"), Unsubscribe(("a",)), Fetch("http://example.com/page/2")]
    assert mode.on_fetched(answer(HOLD, ("Grip-Channel", "a"), body=b"p2\n")) == [
        SendBody(b"p2\n"), Subscribe(("a",))]
    assert mode.on_item(item("a", "live\n")) == [SendBody(b"live\n")]


def test_no_hold_with_a_link_streams_without_subscriptions() -> None:
    mode = stream(("Grip-Channel", "ignored"), ("Grip-Link", "</page/2>; rel=next"),
                  body=b"p1\n")
    assert mode.start() == [HEAD, SendBody(b"p1\n"), Unsubscribe(("ignored",)),
                            Fetch("http://example.com/page/2")]
    assert mode.on_fetched(answer(body=b"p2\n")) == [SendBody(b"p2\n"), Finish()]


@pytest.mark.parametrize(("fetched", "reason"), [
    (answer(("Grip-Hold", "response"), ("Grip-Channel", "a")),
     "Next link returned non-stream hold."),
    (answer(("Grip-Hold", "sse")), "Next link returned non-stream hold."),
    (answer(("Grip-Hold", "stream"), ("Grip-Keep-Alive", " ")), "Grip-Keep-Alive cannot be empty"),
    (answer(HOLD, ("Grip-Channel", "a; prev-id=3")),
     "channel 'a' specifies prev-id, but no next link found"),
])
def test_bad_linked_answers_end_the_stream(fetched: Fetched, reason: str) -> None:
    mode = stream(HOLD, ("Grip-Channel", "a"), LINKED)
    mode.start()
    mode.on_update()
    assert mode.on_fetched(fetched)[-1] == Finish()
    assert mode.error == reason
    debug = stream(HOLD, ("Grip-Channel", "a"), LINKED, route=Route(("test",), debug=True))
    debug.start()
    debug.on_update()
    assert debug.on_fetched(fetched)[-2:] == [SendBody(f"\n\n{reason}\n".encode()), Finish()]


def test_failed_fetches_are_retried_with_backoff_then_the_stream_ends() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a"), LINKED)
    mode.start()
    assert mode.on_item(item("a", None, action="hint")) == [CancelTimer(LINK), NEXT]
    delays = []
    for failure in [Fetched(error="refused"), answer(status=500), answer(status=503),
                    answer(status=302), answer(status=404)]:
        (timer,) = mode.on_fetched(failure)
        assert isinstance(timer, ArmTimer) and timer.key == RETRY
        delays.append(timer.seconds)
        assert mode.on_timer(RETRY) == [NEXT]
    assert delays == [1.5, 2.5, 4.5, 8.5, 16.5], "1, 2, 4, 8, 16 s plus the jitter"
    assert mode.on_fetched(answer(status=502, body=b"not written")) == [
        Report("Failed to retrieve next link."), Finish()]
    assert mode.error == "Failed to retrieve next link."


def test_a_retry_that_succeeds_writes_only_the_good_body() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a"), LINKED)
    mode.start()
    mode.on_update()
    assert mode.on_fetched(answer(status=500, body=b"error page")) == [ArmTimer(1.5, RETRY)]
    assert mode.on_timer(RETRY) == [NEXT]
    assert mode.on_fetched(answer(HOLD, ("Grip-Channel", "a"), LINKED, body=b"ok\n")) == [
        SendBody(b"ok\n"), ArmTimer(30, LINK)]
    mode.on_update()
    assert mode.on_fetched(answer(status=500)) == [ArmTimer(1.5, RETRY)], (
        "a success resets the backoff")


def test_hint_without_a_link_is_ignored() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a"))
    mode.start()
    assert mode.on_item(item("a", None, action="hint")) == []
    assert mode.on_update() == []


def test_items_wait_during_a_fetch_and_follow_the_linked_body() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a"), LINKED)
    mode.start()
    mode.on_update()
    assert mode.on_item(item("a", "1")) == ()
    assert mode.on_item(item("a", None, action="close")) == ()
    assert mode.on_fetched(answer(HOLD, ("Grip-Channel", "a"), LINKED, body=b"0")) == [
        SendBody(b"0"), ArmTimer(30, LINK), SendBody(b"1"), Finish()]


def test_queued_items_are_bounded() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a"), LINKED)
    mode.start()
    mode.on_update()
    for n in range(150):
        mode.on_item(item("a", f"{n},"))
    out = mode.on_fetched(answer(HOLD, ("Grip-Channel", "a"), LINKED))
    assert b"".join(a.data for a in out if isinstance(a, SendBody)) == b"".join(
        f"{n},".encode() for n in range(100))


def test_an_update_during_a_fetch_fetches_again_after_it() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a"), LINKED)
    mode.start()
    assert mode.on_update() == [CancelTimer(LINK), NEXT_LOW]
    assert mode.on_update() == []
    assert mode.on_item(item("a", None, action="hint")) == ()
    assert mode.on_fetched(answer(HOLD, ("Grip-Channel", "a"), LINKED)) == [
        ArmTimer(30, LINK), CancelTimer(LINK), NEXT]


# ---- prev-ids (grip.md §7.5) ------------------------------------------------------------

def test_items_must_follow_the_prev_id() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a; prev-id=5"), LINKED)
    mode.start()
    assert mode.on_item(item("a", "6", id="6", prev_id="5")) == [SendBody(b"6")]
    assert mode.on_item(item("a", "7", id="7", prev_id="6")) == [SendBody(b"7")]
    assert mode.on_item(item("a", "9", id="9", prev_id="8")) == [
        ForgetLastId(("a",)), CancelTimer(LINK), last("a", "7", urgent=False)], (
        "a gap: ask the backend")
    assert mode.on_item(item("a", "10", id="10", prev_id="9")) == (), "waits for the fetch"
    assert mode.on_fetched(answer(HOLD, ("Grip-Channel", "a; prev-id=9"), LINKED,
                                  body=b"8 9")) == [
        SendBody(b"8 9"), ArmTimer(30, LINK), SendBody(b"10")]
    assert mode.on_item(item("a", "no id")) == [
        ForgetLastId(("a",)), CancelTimer(LINK), last("a", "10", urgent=False)]


def test_queued_items_that_do_not_follow_the_new_prev_id_are_dropped() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a; prev-id=1, b"), LINKED)
    mode.start()
    mode.on_item(item("a", "3", id="3", prev_id="2"))
    for queued in [item("a", "3", id="3", prev_id="2"), item("a", "4", id="4", prev_id="3"),
                   item("b", "b1"), item("a", "5", id="5", prev_id="4")]:
        assert mode.on_item(queued) == ()
    assert mode.on_fetched(answer(HOLD, ("Grip-Channel", "a; prev-id=3"), LINKED,
                                  body=b"2 3")) == [
        SendBody(b"2 3"), Unsubscribe(("b",)), ArmTimer(30, LINK), SendBody(b"4"),
        SendBody(b"5")]


def test_a_prev_id_behind_the_hub_fetches_the_link_at_once() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a; prev-id=3, b; prev-id=1, c"), LINKED,
                  last_ids={"a": "5", "b": "1", "c": "9"})
    fetch = Fetch(URL + "/next", ((b"Grip-Last", b"a; last-id=3"),
                                  (b"Grip-Last", b"b; last-id=1")), urgent=False)
    assert mode.start() == [HEAD, ArmTimer(30, LINK), ForgetLastId(("a",)), CancelTimer(LINK),
                            fetch]


def test_prev_id_without_a_link_ends_the_stream() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a, b; prev-id=2"), body=b"hello\n")
    assert mode.start() == [
        HEAD, SendBody(b"hello\n"),
        Report("channel 'b' specifies prev-id, but no next link found"), Finish()]
    assert mode.error == "channel 'b' specifies prev-id, but no next link found"
    prefixed = stream(HOLD, ("Grip-Channel", "b; prev-id=2"), route=Route(("test",),
                                                                           prefix="pp-"))
    prefixed.start()
    assert prefixed.error == "channel 'b' specifies prev-id, but no next link found"


# ---- filters (grip.md §8) ---------------------------------------------------------------

def test_delivery_filters() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a; filter=skip-self; filter=skip-users, "
                         "b; filter=require-sub"), ("Grip-Set-Meta", 'user="alice"'))
    mode.start()
    assert mode.on_item(item("a", "x", meta={"sender": "alice"})) == []
    assert mode.on_item(item("a", "y", meta={"sender": "bob"})) == [SendBody(b"y")]
    assert mode.on_item(item("a", "z", meta={"skip_users": "carol, alice"})) == []
    assert mode.on_item(item("b", "b1", meta={"require_sub": "a"})) == [SendBody(b"b1")]
    assert mode.on_item(item("b", "b2", meta={"require_sub": "c"})) == []
    assert mode.on_item(item("b", None, action="close", meta={"require_sub": "c"})) == [], (
        "a dropped close does not close")


def test_var_subst_and_the_content_filter_agreement() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a; filter=var-subst"),
                  ("Grip-Set-Meta", 'user="alice", greet=hi'))
    mode.start()
    assert mode.on_item(item("a", "%(greet)s %(user)s 100%%")) == [SendBody(b"hi alice 100%")]
    assert mode.on_item(item("a", "%(greet)s", content_filters=["var-subst"])) == [
        SendBody(b"hi")]
    assert mode.on_item(item("a", "x", content_filters=[])) == [
        Report("content filter mismatch: subscription=var-subst message="), Finish()]
    assert mode.error == "content filter mismatch: subscription=var-subst message="
    plain = stream(HOLD, ("Grip-Channel", "a"))
    plain.start()
    assert plain.on_item(item("a", "%(x)s", content_filters=[])) == [SendBody(b"%(x)s")]
    assert plain.on_item(item("a", "x", content_filters=["var-subst"])) == [
        Report("content filter mismatch: subscription= message=var-subst"), Finish()]


def test_a_filter_error_ends_the_stream() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a; filter=var-subst"), route=Route(("t",), debug=True))
    mode.start()
    assert mode.on_item(item("a", "hi %(who)s")) == [
        Report("filter error: No such variable 'who' at position 9"),
        SendBody(b"\n\nfilter error: No such variable 'who' at position 9\n"), Finish()]


def test_build_id_in_bodies_and_items() -> None:
    mode = stream(HOLD, ("Grip-Channel", "a; prev-id=7; filter=build-id"), LINKED,
                  ("Grip-Set-Meta", 'id_format="a-%(a)s"'), body=b"id=%I\n")
    assert mode.start()[:2] == [HEAD, SendBody(b"id=a-7\n")]
    assert mode.on_item(item("a", "[%I] %(x)I", id="8", prev_id="7")) == [
        SendBody(b"[a-7] x")]
    hexed = stream(HOLD, ("Grip-Channel", "a; prev-id=7; filter=build-id"), LINKED,
                   ("Grip-Set-Meta", 'id_format="%(a)s", id_encoding=hex'), body=b"%I")
    assert hexed.start()[1] == SendBody(b"37")
    broken = stream(HOLD, ("Grip-Channel", "a; filter=build-id"), body=b"%I")
    assert broken.start() == [HEAD, Report("filter error: no sub meta 'id_format'"), Finish()]
    assert broken.error == "filter error: no sub meta 'id_format'"


# ---- the mode as the core sees it ---------------------------------------------------------

def test_registered_mode_takes_the_config() -> None:
    app = App.from_raw({"plugins": {"enabled": ["http_stream"], "http_stream": {
        "retry_delay": 0.25, "retry_max": 2, "jitter": 0.5, "queue_max": 3}},
        "pubsub": {"connection_subscription_max": 4}, "proxy": {"debug": True}})
    mode: type[HoldMode] = app.hold_modes["stream"]
    assert issubclass(mode, StreamHold) and mode.format == "http-stream"
    assert (mode.retry_delay, mode.retry_max, mode.jitter, mode.queue_max, mode.max_channels,
            mode.debug) == (0.25, 2, 0.5, 3, 4, True)
    assert app.formats["http-stream"].name == "http-stream"
    assert StreamHold.retry_delay == 1.0 and StreamHold.retry_max == 5


@pytest.mark.parametrize(("table", "message"), [
    ({"jitter": 2}, "<test>: plugins.http_stream.jitter: must be at most 1"),
    ({"retry_delay": -1}, "<test>: plugins.http_stream.retry_delay: must not be negative"),
    ({"retries": 3}, "<test>: plugins.http_stream.retries: unknown key"),
])
def test_bad_settings_are_refused(table: dict[str, Any], message: str) -> None:
    from p8core import ConfigError
    with pytest.raises(ConfigError, match=f"^{message}"):
        App.from_raw({"plugins": {"http_stream": table}}, "<test>")


def test_next_link_channels_are_capped() -> None:
    class Capped(StreamHold):
        max_channels = 2

    mode = stream(HOLD, ("Grip-Channel", "a"), LINKED, mode=Capped)
    mode.start()
    mode.on_update()
    out: Sequence[object] = mode.on_fetched(answer(HOLD, ("Grip-Channel", "a, b, c, d"), LINKED))
    assert Subscribe(("b",)) in out


def test_no_hold_and_no_link_is_just_a_response() -> None:
    mode = stream(("Grip-Channel", "a"), body=b"plain\n")
    assert mode.start() == [HEAD, SendBody(b"plain\n"), Unsubscribe(("a",)), Finish()]


def test_an_update_during_a_chain_of_links_adds_no_fetch() -> None:
    mode = stream(("Grip-Link", "</p2>; rel=next"), body=b"1")
    mode.start()
    assert mode.on_update() == []
    assert mode.on_fetched(answer(("Grip-Link", "</p3>; rel=next"), body=b"2")) == [
        SendBody(b"2"), Fetch("http://example.com/p3")]
    assert mode.on_fetched(answer(body=b"3")) == [SendBody(b"3"), Finish()]
