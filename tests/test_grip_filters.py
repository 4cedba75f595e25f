"""Subscription filters (grip.md §8) as plain functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p8core.grip.filters import (
    FilterError,
    agrees,
    build_id,
    content_filters,
    delivers,
    filter_content,
    filter_message,
    filter_response,
    render,
    var_subst,
)

META = {"user": "alice", "greet": "hi"}


def test_var_subst() -> None:
    assert var_subst(b"%(greet)s %(user)s 100%%", META) == b"hi alice 100%"
    assert var_subst(b"no directives", META) == b"no directives"
    assert var_subst(b"%(gr\\eet)s", META) == b"hi", "a backslash escapes inside a field"
    assert var_subst("%(user)s \u00e9".encode(), {"user": "\u00e9"}) == "\u00e9 \u00e9".encode()


@pytest.mark.parametrize(("content", "message"), [
    (b"hi %(who)s", "No such variable 'who' at position 9"),
    (b"%(greet)", "Expected directive after ')' at position 7"),
    (b"%d", "Unknown directive 'd' at position 1"),
    (b"%s", "Directive 's' requires argument at position 1"),
    (b"%(user)x", "Unknown directive 'x' at position 7"),
    (b"100%", "Expected directive after '%' at position 3"),
    (b"%(", "Expected character after '(' at position 1"),
    (b"%(user", "Unterminated field starting at position 1"),
    (b"%(user)", "Expected directive after ')' at position 6"),
    (b"%(us\\", "Expected character after '\\' at position 4"),
    (b"% x", "Unknown directive ' ' at position 1"),
])
def test_var_subst_errors(content: bytes, message: str) -> None:
    with pytest.raises(FilterError) as e:
        var_subst(content, META)
    assert str(e.value) == message


def test_build_id() -> None:
    meta = {"id_format": "%(a)s-%(b)s"}
    assert build_id(b"<%I>", meta, {"a": "1", "b": "2"}) == b"<1-2>"
    assert build_id(b"%(given)I %%", meta, {}) == b"given %"
    hexed = {"id_format": "%(a)s", "id_encoding": "hex"}
    assert build_id(b"%I/%(AB)I", hexed, {"a": "7"}) == b"37/4142"


@pytest.mark.parametrize(("meta", "prev_ids", "content", "message"), [
    ({}, {"a": "1"}, b"%I", "no sub meta 'id_format'"),
    ({"id_format": "%(b)s"}, {"a": "1"}, b"%I",
     "failed to render ID: No such variable 'b' at position 4"),
    ({"id_format": "%(a)s"}, {"a": None}, b"%I",
     "No ID specified and no default ID in context at position 1"),
    ({"id_format": "%(a)s", "id_encoding": "b64"}, {"a": "1"}, b"%I",
     "unsupported encoding: b64"),
    ({"id_format": "%(a)s"}, {"a": "1"}, b"%s", "Unknown directive 's' at position 1"),
])
def test_build_id_errors(meta: dict[str, str], prev_ids: dict[str, str | None],
                         content: bytes, message: str) -> None:
    with pytest.raises(FilterError) as e:
        build_id(content, meta, prev_ids)
    assert str(e.value) == message


def test_delivery_filters() -> None:
    channels = {"a": None, "b": "3"}

    def delivered(names: list[str], meta: dict[str, str], pub: dict[str, str]) -> bool:
        return filter_message(names, b"x", meta, pub, channels) is not None

    assert not delivered(["skip-self"], {"user": "u"}, {"sender": "u"})
    assert delivered(["skip-self"], {"user": "u"}, {"sender": "v"})
    assert delivered(["skip-self"], {}, {"sender": ""}), "no user: nobody to skip"
    assert not delivered(["skip-users"], {"user": "u"}, {"skip_users": "x, u ,y"})
    assert delivered(["skip-users"], {"user": "u"}, {"skip_users": "x,uu"})
    assert delivered(["skip-users"], {"user": ""}, {"skip_users": "x,,y"})
    assert delivered(["require-sub"], {}, {"require_sub": "b"})
    assert not delivered(["require-sub"], {}, {"require_sub": "c"})
    assert delivered(["require-sub"], {}, {})
    assert delivered(["unknown-filter"], {"user": "u"}, {"sender": "u"})


def test_delivers() -> None:
    alice = {"user": "alice"}
    assert not delivers(["skip-self"], alice, {"sender": "alice"}, ["c"])
    assert delivers(["skip-self"], alice, {"sender": "bob"}, ["c"])
    assert delivers(["skip-self"], {}, {"sender": ""}, ["c"])
    assert not delivers(["skip-users"], alice, {"skip_users": "bob, alice"}, ["c"])
    assert delivers(["skip-users"], alice, {"skip_users": "bob,alicia"}, ["c"])
    assert delivers(["skip-users"], {}, {"skip_users": ""}, ["c"])
    assert not delivers(["require-sub"], {}, {"require_sub": "d"}, ["c"])
    assert delivers(["require-sub"], {}, {"require_sub": "c"}, {"c": None})
    assert delivers(["require-sub"], {}, {}, ["c"]), "no channel named: nothing required"
    assert delivers([], alice, {"sender": "alice"}, ["c"])
    assert delivers(["no-such-filter"], alice, {"sender": "alice"}, ["c"])
    assert not delivers(["var-subst", "skip-users", "skip-self"], alice, {"sender": "alice"},
                        ["c"]), "every delivery filter counts"


def test_filter_content_runs_only_the_content_filters_in_order() -> None:
    meta = {"user": "u", "id_format": "%(a)s"}
    assert filter_content(["skip-self", "var-subst", "build-id"], b"%(user)s %%I", meta,
                          {"a": "9"}) == b"u 9"
    assert filter_content(["build-id", "var-subst"], b"%%(user)s", meta) == b"u", (
        "build-id makes %(user)s of %%(user)s, which var-subst then fills in")
    assert filter_content(["skip-self", "x"], b"%(nothing)s", meta) == b"%(nothing)s"
    with pytest.raises(FilterError, match=r"^No ID specified and no default ID in context"):
        filter_content(["build-id"], b"%I", meta)
    assert filter_content(["build-id"], b"%(given)I", meta) == b"given"


def test_the_agreement_rule() -> None:
    assert agrees(None, ["var-subst"]), "an item that lists none agrees with any"
    assert agrees(None, [])
    assert agrees((), ["skip-self"])
    assert agrees(("var-subst", "build-id"), ["var-subst", "skip-self", "build-id"])
    assert agrees(["var-subst"], ("var-subst",)), "the content filters themselves will do"
    assert not agrees(("build-id", "var-subst"), ["var-subst", "build-id"]), "order counts"
    assert not agrees((), ["var-subst"])
    assert not agrees(("var-subst",), [])
    assert not agrees(("var-subst", "var-subst"), ["var-subst"])
    assert not agrees(("skip-self",), ["skip-self"]), "only content filters are listed"


def test_filters_run_in_order_and_a_drop_stops_them() -> None:
    meta = {"user": "u", "id_format": "%(a)s"}
    assert filter_message(["var-subst", "build-id"], b"%(user)s %%I", meta, {},
                          {"a": "9"}) == b"u 9"
    assert filter_message(["skip-self", "var-subst"], b"%(missing)s", meta, {"sender": "u"},
                          {}) is None, "dropped before the failing filter"
    assert content_filters(["skip-self", "build-id", "x", "var-subst"]) == (
        "build-id", "var-subst")


def test_response_filters() -> None:
    meta = {"id_format": "%(a)s"}
    assert filter_response(["var-subst"], b"%(x)s", meta, {}) == b"%(x)s", (
        "var-subst is for messages only")
    assert filter_response(["build-id", "build-id"], b"%I", meta, {"a": "4"}) == b"4"


@given(st.binary(max_size=40))
def test_render_expands_or_raises_filter_error(template: bytes) -> None:
    try:
        out = render(template, lambda d, arg: b"<" + (arg or b"") + b">")
    except FilterError:
        return
    assert b"%" not in template.replace(b"%%", b"") or b"<" in out
