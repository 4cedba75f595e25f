"""The ``response`` hold mode without sockets: playbooks of events in, actions out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from p8_long_poll.format import HttpResponseFormat
from p8_long_poll.hold import TIMEOUT, ResponseHold

from p8core import Channel, HeldRequest, Hold, Instruct, PublishItem
from p8core.hold import ArmTimer, Finish, ForgetLastId, Retry, SendBody, SendHead
from p8core.proxy.routes import Route

STORED_HEADERS = ((b"Content-Type", b"text/plain"), (b"X-Foo", b"bar"), (b"X-Keep", b"k"))


def make_hold(*channels: Channel, timeout: int = 55, status: int = 200,
              reason: bytes = b"OK", headers: Sequence[tuple[bytes, bytes]] = STORED_HEADERS,
              body: bytes = b"nothing yet\n", meta: Mapping[str, str] | None = None,
              last_ids: Mapping[str, str | None] | None = None, prefix: str = "",
              method: bytes = b"GET") -> ResponseHold:
    instruct = Instruct(hold="response", channels=channels or (Channel("c"),),
                        timeout=timeout, meta=meta or {}, status=status, reason=reason,
                        headers=tuple(headers), body=body)
    request = HeldRequest(method, b"/poll", ((b"host", b"example.com"),), b"")
    route = Route(targets=("test",), prefix=prefix)
    return ResponseHold(Hold(instruct, request, route, last_ids or {}))


def item(channel: str = "c", *, id: str | None = None, prev_id: str | None = None,
         meta: Mapping[str, str] | None = None, **fmt: Any) -> PublishItem:
    parsed = HttpResponseFormat().parse(fmt, "'http-response'")
    return PublishItem(channel, {"http-response": parsed}, id, prev_id, meta or {})


def answer(status: int, reason: bytes, headers: Sequence[tuple[bytes, bytes]],
           body: bytes) -> list[object]:
    head = SendHead(status, tuple(headers), reason, content_length=len(body))
    return [head, SendBody(body), Finish()] if body else [head, Finish()]


# ---- timeout -----------------------------------------------------------------------------

def test_start_arms_the_timeout_and_the_timer_sends_the_stored_response() -> None:
    mode = make_hold()
    assert list(mode.start()) == [ArmTimer(55, TIMEOUT)]
    assert list(mode.on_timer(TIMEOUT)) == answer(200, b"OK", STORED_HEADERS, b"nothing yet\n")
    assert mode.on_timer(TIMEOUT) == () and mode.on_item(item(body="late")) == ()


@pytest.mark.parametrize("scale", [1.0, 0.02])
def test_the_timeout_is_the_instructions_times_the_scale(scale: float) -> None:
    mode = make_hold(timeout=8)
    mode.timeout_scale = scale
    assert list(mode.start()) == [ArmTimer(8 * scale, TIMEOUT)]


def test_the_stored_response_keeps_grip_status_and_an_empty_body() -> None:
    mode = make_hold(status=299, reason=b"Custom Thing", body=b"")
    mode.start()
    assert list(mode.on_timer(TIMEOUT)) == answer(299, b"Custom Thing", STORED_HEADERS, b"")


def test_a_status_http_cannot_send_times_out_as_502() -> None:
    mode = make_hold(status=99, reason=b"Undefined Reason")
    mode.start()
    head, body, finish = mode.on_timer(TIMEOUT)
    assert isinstance(head, SendHead) and head.status == 502
    assert body == SendBody(b"Invalid Grip-Status code 99.\n") and finish == Finish()


def test_other_timer_keys_are_ignored() -> None:
    mode = make_hold()
    mode.start()
    assert mode.on_timer("something-else") == ()


# ---- delivery ----------------------------------------------------------------------------

def test_an_item_answers_with_headers_merged_as_pushpin_does() -> None:
    # grip.md §5.1: start from the stored headers, drop the names the item sets, then add
    # the item's (an object's members in key order).
    mode = make_hold()
    mode.start()
    got = mode.on_item(item(code=201, headers={"X-Foo": "new", "Content-Type":
                                               "application/json"}, body='{"a":1}\n'))
    assert list(got) == answer(201, b"Created", [(b"X-Keep", b"k"),
                                                 (b"Content-Type", b"application/json"),
                                                 (b"X-Foo", b"new")], b'{"a":1}\n')


def test_header_names_merge_in_any_case_and_repeated_names_are_kept() -> None:
    mode = make_hold()
    mode.start()
    got = mode.on_item(item(headers=[["x-foo", "1"], ["X-FOO", "2"]], body=""))
    assert list(got) == answer(200, b"OK", [(b"Content-Type", b"text/plain"), (b"X-Keep", b"k"),
                                            (b"x-foo", b"1"), (b"X-FOO", b"2")], b"")


def test_exactly_one_item_is_delivered() -> None:
    mode = make_hold()
    mode.start()
    assert len(mode.on_item(item(body="one"))) == 3
    assert mode.on_item(item(body="two")) == ()
    assert mode.on_timer(TIMEOUT) == () and mode.on_update() == ()


def test_body_patch_patches_the_stored_body() -> None:
    mode = make_hold(body=b'{"items": [], "more": true}\n')
    mode.start()
    got = mode.on_item(item(**{"body-patch": [{"op": "add", "path": "/items/-", "value": 1},
                                              {"op": "remove", "path": "/more"}]}))
    assert list(got)[1] == SendBody(b'{"items":[1]}\n')


def test_a_failed_body_patch_sends_an_empty_body() -> None:
    mode = make_hold(body=b"plain text\n")
    mode.start()
    got = mode.on_item(item(**{"body-patch": [{"op": "remove", "path": "/x"}]}))
    assert list(got) == answer(200, b"OK", STORED_HEADERS, b"")


def test_an_answer_to_head_has_a_length_and_no_body() -> None:
    mode = make_hold(method=b"HEAD")
    mode.start()
    assert list(mode.on_item(item(body="12345"))) == [
        SendHead(200, STORED_HEADERS, b"OK", content_length=5), Finish()]


@pytest.mark.parametrize("code", [204, 304])
def test_a_204_or_304_has_no_body_and_no_length(code: int) -> None:
    mode = make_hold()
    mode.start()
    head, finish = mode.on_item(item(code=code, body="ignored"))
    assert isinstance(head, SendHead) and (head.status, head.content_length) == (code, None)
    assert finish == Finish()


def test_close_items_mean_nothing_and_other_channels_are_ignored() -> None:
    mode = make_hold(Channel("c", "1"))
    mode.start()
    assert mode.on_item(item(action="close")) == ()
    assert mode.on_item(item("elsewhere", body="x")) == ()
    assert mode.on_item(PublishItem("c", {"http-stream": object()})) == ()
    assert len(mode.on_item(item(id="2", prev_id="1", body="x"))) == 3


def test_after_the_client_left_nothing_happens() -> None:
    mode = make_hold()
    mode.start()
    mode.on_close()
    assert mode.on_item(item(body="x")) == () and mode.on_timer(TIMEOUT) == ()


# ---- reliability (grip.md §7) ------------------------------------------------------------

def test_at_start_a_channel_behind_the_hub_is_forgotten_and_retried_at_once() -> None:
    mode = make_hold(Channel("pp-a", "3"), Channel("pp-b", "7"), Channel("pp-c"), prefix="pp-",
                     last_ids={"pp-a": "5", "pp-b": "7", "pp-c": "9"})
    assert list(mode.start()) == [
        ForgetLastId(("pp-a",)),
        Retry(((b"Grip-Last", b"a; last-id=3"), (b"Grip-Last", b"b; last-id=7")), urgent=True)]
    assert mode.on_item(item("pp-a", body="x")) == ()


@pytest.mark.parametrize("last_ids", [{}, {"c": None}, {"c": "3"}])
def test_at_start_an_unknown_or_matching_last_id_holds(last_ids: dict[str, str | None]) -> None:
    mode = make_hold(Channel("c", "3"), last_ids=last_ids)
    assert list(mode.start()) == [ArmTimer(55, TIMEOUT)]


def test_an_item_that_follows_the_prev_id_is_delivered() -> None:
    mode = make_hold(Channel("c", "5"))
    mode.start()
    assert list(mode.on_item(item(id="6", prev_id="5", body="six\n")))[1] == SendBody(b"six\n")


@pytest.mark.parametrize("prev_id", ["7", None])
def test_an_item_that_does_not_follow_is_a_rate_limited_retry(prev_id: str | None) -> None:
    mode = make_hold(Channel("c", "6"))
    mode.start()
    assert list(mode.on_item(item(id="8", prev_id=prev_id, body="eight\n"))) == [
        ForgetLastId(("c",)), Retry(((b"Grip-Last", b"c; last-id=6"),), urgent=False)]


def test_a_channel_without_prev_id_takes_any_item() -> None:
    mode = make_hold(Channel("c"))
    mode.start()
    assert len(mode.on_item(item(id="8", prev_id="7", body="x"))) == 3


def test_a_filtered_item_still_moves_the_channels_prev_id_on() -> None:
    mode = make_hold(Channel("c", "1", ("skip-self",)), meta={"user": "alice"})
    mode.start()
    assert mode.on_item(item(id="2", prev_id="1", meta={"sender": "alice"}, body="own")) == ()
    assert list(mode.on_item(item(id="3", prev_id="2", body="3")))[1] == SendBody(b"3")


def test_a_hint_retries_at_once_whatever_its_ids() -> None:
    mode = make_hold(Channel("c", "4"))
    mode.start()
    assert list(mode.on_item(item(action="hint"))) == [
        Retry(((b"Grip-Last", b"c; last-id=4"),), urgent=True)]
    assert make_hold().on_item(item(action="hint")) == [Retry((), urgent=True)]


def test_an_update_is_a_rate_limited_retry() -> None:
    mode = make_hold(Channel("c", "4"), Channel("d"))
    mode.start()
    assert list(mode.on_update()) == [Retry(((b"Grip-Last", b"c; last-id=4"),), urgent=False)]
    assert mode.on_item(item(body="x")) == ()


def test_grip_last_quotes_ids_that_need_it() -> None:
    mode = make_hold(Channel("c", "a b;c"))
    assert list(mode.on_update()) == [
        Retry(((b"Grip-Last", b'c; last-id="a b;c"'),), urgent=False)]


# ---- filters (grip.md §8) ----------------------------------------------------------------

def test_var_subst_applies_to_the_body_with_the_subscriptions_meta() -> None:
    mode = make_hold(Channel("c", None, ("var-subst",)), meta={"user": "alice"})
    mode.start()
    assert list(mode.on_item(item(body="hello %(user)s\n")))[1] == SendBody(b"hello alice\n")


def test_a_filter_error_answers_500() -> None:
    mode = make_hold(Channel("c", None, ("var-subst",)))
    mode.start()
    head, body, _ = mode.on_item(item(body="%(user)s"))
    assert isinstance(head, SendHead) and head.status == 500
    assert body == SendBody(b"No such variable 'user' at position 7\n")


def test_build_id_renders_the_ids_before_the_item() -> None:
    mode = make_hold(Channel("c", "7", ("build-id",)), Channel("d", "2"),
                     meta={"id_format": "%(c)s.%(d)s"})
    mode.start()
    got = mode.on_item(item(id="8", prev_id="7", body="id=%I %(x)I",
                            **{"content-filters": ["build-id"]}))
    assert list(got)[1] == SendBody(b"id=7.2 x")
    broken = make_hold(Channel("c", None, ("build-id",)))
    broken.start()
    head, body, _ = broken.on_item(item(body="%I"))
    assert isinstance(head, SendHead) and head.status == 500
    assert body == SendBody(b"no sub meta 'id_format'\n")


def test_content_filters_must_agree_with_the_subscriptions() -> None:
    sub = (Channel("c", None, ("skip-self", "var-subst")),)
    agreeing = make_hold(*sub, meta={"user": "al"})
    agreeing.start()
    got = agreeing.on_item(item(body="%(user)s", **{"content-filters": ["var-subst"]}))
    assert list(got)[1] == SendBody(b"al")
    for listed in ([], ["build-id"], ["var-subst", "var-subst"]):
        mode = make_hold(*sub, meta={"user": "al"})
        mode.start()
        head, body, _ = mode.on_item(item(body="x", **{"content-filters": listed}))
        assert isinstance(head, SendHead) and head.status == 500
        assert isinstance(body, SendBody) and body.data.startswith(b"Content filters do not")
    plain = make_hold()
    plain.start()
    head, _, _ = plain.on_item(item(body="x", **{"content-filters": ["var-subst"]}))
    assert isinstance(head, SendHead) and head.status == 500
    accepted = make_hold()
    accepted.start()
    assert len(accepted.on_item(item(body="x", **{"content-filters": []}))) == 3
