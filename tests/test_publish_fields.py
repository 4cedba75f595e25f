"""Fields of publish format objects: the checks every format plugin shares."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p8core import PublishError
from p8core.codec.b64 import decode_base64
from p8core.pubsub.fields import (
    as_bytes,
    as_text,
    filter_names,
    from_base64,
    text,
    tnetstring_input,
    to_bytes,
    wrong_type,
)

WHERE = "'http-stream'"


def test_lenient_base64() -> None:
    assert decode_base64("aGVsbG8=") == b"hello"
    assert decode_base64("aGVsbG8") == b"hello"
    assert decode_base64("a GV*sb\nG8==") == b"hello"
    assert decode_base64("a") == b""
    assert decode_base64("") == b""
    assert decode_base64(b"aGk=\n") == b"hi"
    assert decode_base64("a\u00e9Gk\ud800") == b"hi", "what is not ASCII is skipped too"


@given(st.one_of(st.text(), st.binary()))
def test_lenient_base64_never_fails(data: str | bytes) -> None:
    assert isinstance(decode_base64(data), bytes)


def test_wrong_type() -> None:
    assert str(wrong_type(WHERE, "content")) == "'http-stream' contains 'content' with wrong type"


def test_tnetstring_input() -> None:
    assert tnetstring_input({"content": b"x", "action": "send"})
    assert not tnetstring_input({"content": "x", "content-filters": [b"x"]})
    assert not tnetstring_input({})


def test_text() -> None:
    assert text("a") == "a"
    assert text("\u00e9".encode()) == "\u00e9"
    assert text(b"\xff") is None
    assert text(b"\xff", "replace") == "\ufffd"
    assert text(1) is None
    assert text(None) is None
    assert as_text(b"close", "action", WHERE) == "close"
    with pytest.raises(PublishError, match=r"^'http-stream' contains 'action' with wrong type$"):
        as_text(1, "action", WHERE)
    with pytest.raises(PublishError, match="'reason' with wrong type"):
        as_text(b"\xff", "reason", WHERE)
    assert as_text(b"\xff", "reason", WHERE, "replace") == "\ufffd"


def test_bytes() -> None:
    assert to_bytes("\u00e9") == "\u00e9".encode()
    assert to_bytes(b"\xff") == b"\xff"
    assert to_bytes(["x"]) is None
    assert as_bytes("x", "body", WHERE) == b"x"
    with pytest.raises(PublishError, match=r"^'http-stream' contains 'body' with wrong type$"):
        as_bytes(5, "body", WHERE)


def test_from_base64() -> None:
    assert from_base64("aGk=", "content-bin", WHERE) == b"hi"
    for value in (b"aGk=", 1, None):
        with pytest.raises(PublishError,
                           match=r"^'http-stream' contains 'content-bin' with wrong type$"):
            from_base64(value, "content-bin", WHERE)


def test_filter_names() -> None:
    assert filter_names(["var-subst", b"build-id"], WHERE) == ("var-subst", "build-id")
    assert filter_names([], WHERE) == ()
    listed = r"^'http-stream' contains 'content-filters' with wrong type$"
    for value in ("var-subst", None, {"a": 1}, [1], [b"\xff"]):
        with pytest.raises(PublishError, match=listed):
            filter_names(value, WHERE)
    assert filter_names([b"\xff"], WHERE, errors="replace") == ("\ufffd",)
    with pytest.raises(PublishError, match=listed):
        filter_names("x", WHERE, element_error="element")
    with pytest.raises(PublishError, match=r"^element$"):
        filter_names(["x", 1], WHERE, element_error="element")
