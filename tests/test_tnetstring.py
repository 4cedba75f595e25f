"""The tnetstring codec: Pushpin's examples, round trips, and one error type for junk."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p8core.codec.tnetstring import TNetStringError, dumps, loads

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner) | st.dictionaries(st.binary(), inner),
    max_leaves=30,
)


def test_the_spec_example() -> None:
    encoded = b"49:7:channel,1:c,11:http-stream,16:7:content,3:hi\n,}}"
    assert loads(encoded) == {b"channel": b"c", b"http-stream": {b"content": b"hi\n"}}
    assert dumps({"channel": "c", "http-stream": {"content": "hi\n"}}) == encoded


def test_scalars() -> None:
    assert dumps(None) == b"0:~" and loads(b"0:~") is None
    assert dumps(True) == b"4:true!" and loads(b"5:false!") is False
    assert dumps(-12) == b"3:-12#" and loads(b"3:-12#") == -12
    assert loads(b"3:1.5^") == 1.5
    assert dumps([1, b"a"]) == b"8:1:1#1:a,]"


@given(values)
def test_round_trip(value: object) -> None:
    assert loads(dumps(value)) == value


@given(st.binary(max_size=200))
def test_junk_raises_one_error_type(data: bytes) -> None:
    with contextlib.suppress(TNetStringError):
        loads(data)


@pytest.mark.parametrize("bad", [b"", b"5:abc,", b"3:abc", b"3:abc?", b"x:abc,", b"01:a,",
                                 b"3:abc,extra", b"4:1:a,}", b"5:maybe!", b"1:x~",
                                 b"99999999999999:a,", b"4:1:a#}"])
def test_malformed(bad: bytes) -> None:
    with pytest.raises(TNetStringError):
        loads(bad)


def test_depth_is_bounded() -> None:
    deep = b"0:]"
    for _ in range(100):
        deep = b"%d:%s]" % (len(deep), deep)
    with pytest.raises(TNetStringError, match="nested too deeply"):
        loads(deep)
