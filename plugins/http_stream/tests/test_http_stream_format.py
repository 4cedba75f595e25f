"""Format ``http-stream``: Pushpin's checks and messages, parsed once per publish."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from p8_http_stream.format import HttpStreamFormat, StreamMessage

from p8core import PublishError
from p8core.app import App
from p8core.pubsub.items import PublishItem, from_tnetstring
from p8core.testing import run_p8

FORMAT = HttpStreamFormat()


def parse(raw: dict[str, Any]) -> StreamMessage:
    return FORMAT.parse(raw, "'http-stream'")


@pytest.mark.parametrize(("raw", "parsed"), [
    ({"content": "hello there\n"}, StreamMessage("send", b"hello there\n")),
    ({"content": "h\u00e9"}, StreamMessage("send", "h\u00e9".encode())),
    ({"content": ""}, StreamMessage("send", b"")),
    ({"action": "send", "content": "x"}, StreamMessage("send", b"x")),
    ({"action": None, "content": "x"}, StreamMessage("send", b"x")),
    ({"content-bin": base64.b64encode(b"\x00\xff").decode()}, StreamMessage("send", b"\x00\xff")),
    ({"content-bin": "aGk=", "content": "ignored"}, StreamMessage("send", b"hi")),
    ({"content-bin": "aG k"}, StreamMessage("send", b"hi")),
    ({"content": "x", "content-filters": ["var-subst"]},
     StreamMessage("send", b"x", ("var-subst",))),
    ({"content": "x", "content-filters": []}, StreamMessage("send", b"x", ())),
    ({"action": "close"}, StreamMessage("close")),
    ({"action": "close", "content": 5, "content-filters": 7}, StreamMessage("close")),
    ({"action": "hint"}, StreamMessage("hint")),
])
def test_valid(raw: dict[str, Any], parsed: StreamMessage) -> None:
    assert parse(raw) == parsed


@pytest.mark.parametrize(("raw", "message"), [
    ({}, "'http-stream' does not contain 'content' or 'content-bin'"),
    ({"action": "send"}, "'http-stream' does not contain 'content' or 'content-bin'"),
    ({"content": 5}, "'http-stream' contains 'content' with wrong type"),
    ({"content": None}, "'http-stream' contains 'content' with wrong type"),
    ({"content": ["x"]}, "'http-stream' contains 'content' with wrong type"),
    ({"content-bin": 5}, "'http-stream' contains 'content-bin' with wrong type"),
    ({"action": 1, "content": "x"}, "'http-stream' contains 'action' with wrong type"),
    ({"action": "refresh"}, ""),
    ({"action": "Send", "content": "x"}, ""),
    ({"content": "x", "content-filters": "var-subst"},
     "'http-stream' contains 'content-filters' with wrong type"),
    ({"content": "x", "content-filters": [1]},
     "content-filters contains element with wrong type"),
])
def test_invalid(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(PublishError) as e:
        parse(raw)
    assert str(e.value) == message


def test_tnetstring_items_carry_raw_content_and_no_content_bin() -> None:
    known = {"http-stream": FORMAT}

    def item(payload: dict[bytes, Any]) -> PublishItem:
        raw = from_tnetstring({b"channel": b"c", b"http-stream": payload})
        return PublishItem.from_json(raw, known)[0]

    got = item({b"content": b"\xff\x00\n"})
    assert got.formats["http-stream"] == StreamMessage("send", b"\xff\x00\n")
    assert item({b"action": b"close"}).formats["http-stream"] == StreamMessage("close")
    with pytest.raises(PublishError, match=r"^'http-stream' does not contain 'content'$"):
        item({b"content-bin": b"aGk="})


@given(st.dictionaries(st.sampled_from(["action", "content", "content-bin", "content-filters",
                                        "other"]),
                       st.one_of(st.none(), st.text(), st.binary(), st.integers(),
                                 st.lists(st.one_of(st.text(), st.integers()), max_size=3),
                                 st.sampled_from(["send", "close", "hint"]))))
def test_parses_or_raises_publish_error(raw: dict[str, Any]) -> None:
    try:
        parsed = parse(raw)
    except PublishError:
        return
    assert parsed.action in ("send", "close", "hint")
    assert isinstance(parsed.content, bytes)




@pytest.mark.anyio
async def test_control_api_answers_with_pushpin_lines() -> None:
    cases = [
        ({"content": 5}, "Invalid format: 'http-stream' contains 'content' with wrong type\n"),
        ({"action": "bogus"}, "Invalid format: \n"),
        ({}, "Invalid format: 'http-stream' does not contain 'content' or 'content-bin'\n"),
    ]
    async with run_p8({"plugins": {"enabled": ["http_stream"]}}) as p8, \
            httpx.AsyncClient() as client:
        with anyio.fail_after(5):
            for payload, answer in cases:
                resp = await client.post(f"{p8.control_url}/publish/", json={"items": [
                    {"channel": "c", "formats": {"http-stream": payload}}]})
                assert (resp.status_code, resp.text) == (400, answer)
            resp = await client.post(f"{p8.control_url}/publish/", json={"items": [
                {"channel": "c", "http-stream": {"content": "top level, as gripcontrol sends"}}]})
            assert (resp.status_code, resp.text) == (200, "Published\n")


def test_registered_by_the_plugin() -> None:
    app = App.from_raw({"plugins": {"enabled": ["http_stream"]}})
    assert isinstance(app.formats["http-stream"], HttpStreamFormat)
