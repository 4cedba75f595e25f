"""Publish items and the body of POST /publish/: parsing and Pushpin's exact messages."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p8core.errors import PublishError
from p8core.pubsub.items import ParsedPublish, PublishFormat, PublishItem, parse_publish_body


class StreamFormat(PublishFormat):
    """A small stand-in for the http-stream plugin: pre-encodes ``content``."""

    name: ClassVar[str] = "http-stream"

    def __init__(self) -> None:
        self.calls = 0

    def parse(self, raw: Mapping[str, object], where: str) -> object:
        self.calls += 1
        action = raw.get("action", "send")
        if action == "close":
            return "close"
        if action != "send":
            raise PublishError("")
        content = raw.get("content")
        if content is None:
            raise PublishError(f"{where} does not contain 'content' or 'content-bin'")
        if not isinstance(content, str):
            raise PublishError(f"{where} contains 'content' with wrong type")
        return content.encode()  # plain UTF-8: lone surrogates would raise here


class ResponseFormat(PublishFormat):
    """A stand-in for http-response: requires ``body``."""

    name: ClassVar[str] = "http-response"

    def parse(self, raw: Mapping[str, object], where: str) -> object:
        body = raw.get("body")
        if not isinstance(body, str):
            raise PublishError(f"{where} does not contain 'body', 'body-bin', or 'body-patch'")
        return body.encode()


class SseFormat(PublishFormat):
    """A third-party format, unknown to Pushpin."""

    name: ClassVar[str] = "sse"

    def parse(self, raw: Mapping[str, object], where: str) -> object:
        data = raw.get("data")
        if not isinstance(data, str):
            raise PublishError(f"{where} contains 'data' with wrong type")
        return f"data: {data}\n\n".encode()


def known(*formats: PublishFormat) -> dict[str, PublishFormat]:
    return {f.name: f for f in formats}


KNOWN = known(StreamFormat(), ResponseFormat(), SseFormat())


def item_error(raw: object) -> str:
    with pytest.raises(PublishError) as e:
        PublishItem.from_json(raw, KNOWN)
    return str(e.value)


def body_error(body: bytes | object) -> str:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(PublishError) as e:
        parse_publish_body(data, KNOWN)
    return str(e.value)


def stream(content: str = "x\n") -> dict[str, object]:
    return {"http-stream": {"content": content}}


# ---- items: what is accepted ------------------------------------------------------------


def test_full_item() -> None:
    raw = {
        "channel": "news",
        "id": "42",
        "prev-id": "41",
        "meta": {"sender": "alice"},
        "size": 7,
        "no-seq": True,
        "formats": {
            "http-response": {"body": "{}\n"},
            "http-stream": {"content": "data: 42\n\n"},
        },
    }
    item, ignored = PublishItem.from_json(raw, KNOWN)
    assert ignored == 0
    assert item == PublishItem(
        channel="news",
        formats={"http-response": b"{}\n", "http-stream": b"data: 42\n\n"},
        id="42",
        prev_id="41",
        meta={"sender": "alice"},
        no_seq=True,
        size=7,
    )


def test_minimal_item_defaults() -> None:
    item, ignored = PublishItem.from_json({"channel": "", "formats": stream()}, KNOWN)
    assert (item.channel, item.id, item.prev_id, item.no_seq, item.size) == (
        "",
        None,
        None,
        False,
        None,
    )
    assert item.meta == {}
    assert ignored == 0


def test_each_format_parsed_once_per_item() -> None:
    fmt = StreamFormat()
    body = {"items": [{"channel": "a", "formats": stream()}, {"channel": "b", **stream()}]}
    parse_publish_body(json.dumps(body).encode(), known(fmt))
    assert fmt.calls == 2


def test_top_level_formats_as_gripcontrol_sends_them() -> None:
    raw = {
        "channel": "c",
        "id": "1",
        "http-stream": {"content": "hi\n"},
        "http-response": {"body": ""},
    }
    item, ignored = PublishItem.from_json(raw, KNOWN)
    assert item.formats == {"http-response": b"", "http-stream": b"hi\n"}
    assert ignored == 0


def test_top_level_lookup_takes_any_enabled_format() -> None:
    item, ignored = PublishItem.from_json({"channel": "c", "sse": {"data": "1"}}, KNOWN)
    assert item.formats == {"sse": b"data: 1\n\n"}
    assert ignored == 0


def test_top_level_unknown_keys_are_not_formats() -> None:
    assert item_error({"channel": "c", "whatever": {"content": "x"}}) == "no formats specified"


def test_top_level_standard_format_without_plugin_is_ignored_and_counted() -> None:
    item, ignored = PublishItem.from_json(
        {"channel": "c", "ws-message": {"content": "x"}, **stream()}, KNOWN
    )
    assert item.formats == {"http-stream": b"x\n"}
    assert ignored == 1


def test_top_level_is_not_read_when_formats_is_present() -> None:
    item, ignored = PublishItem.from_json(
        {"channel": "c", "formats": stream("a"), "http-response": {"nobody": 1}}, KNOWN
    )
    assert item.formats == {"http-stream": b"a"}
    assert ignored == 0


def test_unknown_formats_ignored_and_counted() -> None:
    raw = {"channel": "c", "formats": {"ws-message": {"content": "x"}, "zz": 5, **stream()}}
    item, ignored = PublishItem.from_json(raw, KNOWN)
    assert item.formats == {"http-stream": b"x\n"}
    assert ignored == 2


def test_item_with_only_unknown_formats_is_accepted() -> None:
    item, ignored = PublishItem.from_json({"channel": "c", "formats": {"zz": {}}}, KNOWN)
    assert item.formats == {}
    assert ignored == 1


def test_null_optional_fields_count_as_absent() -> None:
    raw = {"channel": "c", "id": None, "prev-id": None, "meta": None, "formats": None, **stream()}
    item, _ = PublishItem.from_json(raw, KNOWN)
    assert (item.id, item.prev_id, item.meta) == (None, None, {})
    assert item.formats == {"http-stream": b"x\n"}


def test_size_as_integral_float() -> None:
    item, _ = PublishItem.from_json({"channel": "c", "size": 5.0, **stream()}, KNOWN)
    assert item.size == 5


def test_channel_argument_replaces_the_items_own() -> None:
    item, _ = PublishItem.from_json({"formats": stream()}, KNOWN, channel="frame0")
    assert item.channel == "frame0"
    item, _ = PublishItem.from_json({"channel": 5, "formats": stream()}, KNOWN, channel="frame0")
    assert item.channel == "frame0"


# ---- items: Pushpin's messages ----------------------------------------------------------


@pytest.mark.parametrize("raw", [[], "x", 1, None, True])
def test_not_an_object(raw: object) -> None:
    assert item_error(raw) == "publish item object is not an object"


def test_channel_missing() -> None:
    assert item_error({"formats": stream()}) == "publish item object does not contain 'channel'"


@pytest.mark.parametrize("channel", [5, None, ["c"], {"c": 1}])
def test_channel_wrong_type(channel: object) -> None:
    msg = item_error({"channel": channel, "formats": stream()})
    assert msg == "publish item object contains 'channel' with wrong type"


@pytest.mark.parametrize("key", ["id", "prev-id"])
@pytest.mark.parametrize("value", [5, True, ["1"], {}])
def test_ids_wrong_type(key: str, value: object) -> None:
    msg = item_error({"channel": "c", key: value, "formats": stream()})
    assert msg == f"publish item object contains '{key}' with wrong type"


@pytest.mark.parametrize("formats", [[], "http-stream", 1, True])
def test_formats_wrong_type(formats: object) -> None:
    msg = item_error({"channel": "c", "formats": formats})
    assert msg == "publish item object contains 'formats' with wrong type"


@pytest.mark.parametrize(
    "raw",
    [
        {"channel": "c"},
        {"channel": "c", "formats": {}},
        {"channel": "c", "formats": None},
        {"channel": "c", "id": "1", "meta": {}},
    ],
)
def test_no_formats_specified(raw: object) -> None:
    assert item_error(raw) == "no formats specified"


@pytest.mark.parametrize("value", [None, "x", [], 5])
def test_format_not_an_object(value: object) -> None:
    assert item_error({"channel": "c", "formats": {"http-stream": value}}) == (
        "'http-stream' is not an object"
    )


def test_top_level_format_not_an_object() -> None:
    assert item_error({"channel": "c", "sse": "data"}) == "'sse' is not an object"


def test_plugin_message_is_passed_through() -> None:
    msg = item_error({"channel": "c", "formats": {"http-stream": {"content": 5}}})
    assert msg == "'http-stream' contains 'content' with wrong type"


@pytest.mark.parametrize("meta", [[], "x", 1])
def test_meta_wrong_type(meta: object) -> None:
    msg = item_error({"channel": "c", "meta": meta, "formats": stream()})
    assert msg == "publish item object contains 'meta' with wrong type"


def test_meta_value_wrong_type_names_the_smallest_key() -> None:
    msg = item_error({"channel": "c", "meta": {"z": 1, "ok": "s", "b": None}, "formats": stream()})
    assert msg == "'meta' contains 'b' with wrong type"


@pytest.mark.parametrize("size", ["5", True, 1.5, None, [1]])
def test_size_wrong_type(size: object) -> None:
    msg = item_error({"channel": "c", "size": size, "formats": stream()})
    assert msg == "publish item object contains 'size' with wrong type"


@pytest.mark.parametrize("size", [-1, -3.0])
def test_size_negative(size: object) -> None:
    msg = item_error({"channel": "c", "size": size, "formats": stream()})
    assert msg == "publish item object contains 'size' with invalid value"


@pytest.mark.parametrize("no_seq", [1, 0, "true", None])
def test_no_seq_must_be_a_bool(no_seq: object) -> None:
    msg = item_error({"channel": "c", "no-seq": no_seq, "formats": stream()})
    assert msg == "publish item object contains 'no-seq' with wrong type"


def test_checks_run_in_pushpins_order() -> None:
    # channel, id, prev-id, formats, each format (Pushpin's order), meta, size, no-seq
    assert item_error({"id": 1}) == "publish item object does not contain 'channel'"
    assert item_error({"channel": "c", "id": 1, "prev-id": 2}) == (
        "publish item object contains 'id' with wrong type"
    )
    assert item_error({"channel": "c", "prev-id": 2}) == (
        "publish item object contains 'prev-id' with wrong type"
    )
    assert item_error({"channel": "c", "meta": 1}) == "no formats specified"
    bad_both = {"http-stream": {"content": 1}, "http-response": {}}
    assert item_error({"channel": "c", "formats": bad_both}) == (
        "'http-response' does not contain 'body', 'body-bin', or 'body-patch'"
    )
    bad_fmt = {"channel": "c", "meta": 1, "size": -1, "formats": {"http-stream": {}}}
    assert item_error(bad_fmt) == "'http-stream' does not contain 'content' or 'content-bin'"
    assert item_error({"channel": "c", "meta": 1, "size": -1, **stream()}) == (
        "publish item object contains 'meta' with wrong type"
    )
    assert item_error({"channel": "c", "no-seq": 1, "size": -1, **stream()}) == (
        "publish item object contains 'size' with invalid value"
    )


# ---- the body ---------------------------------------------------------------------------


def test_body_with_items() -> None:
    body = {"items": [{"channel": "a", **stream("1")}, {"channel": "b", "formats": stream("2")}]}
    parsed = parse_publish_body(json.dumps(body).encode(), KNOWN)
    assert [(i.channel, i.formats["http-stream"]) for i in parsed.items] == [
        ("a", b"1"),
        ("b", b"2"),
    ]
    assert parsed.ignored_formats == 0


def test_empty_items() -> None:
    assert parse_publish_body(b'{"items": []}', KNOWN) == ParsedPublish((), 0)


def test_ignored_formats_summed_over_items() -> None:
    body = {
        "items": [
            {"channel": "a", "formats": {"ws-message": {}, **stream()}},
            {"channel": "b", "formats": {"x": 1, "y": 2}},
        ]
    }
    assert parse_publish_body(json.dumps(body).encode(), KNOWN).ignored_formats == 3


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"{",
        b"nope",
        b'{"items": []} x',
        b'{"items": [1,]}',
        b'{"items": "\xff"}',  # not UTF-8
        '{"items": []}'.encode("utf-16"),
        b'\xef\xbb\xbf{"items": []}',  # UTF-8 BOM
        b'{"items": [], "n": NaN}',
        b'{"items": [], "n": -Infinity}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_body_not_json(body: bytes) -> None:
    assert body_error(body) == "Body is not valid JSON."


@pytest.mark.parametrize("doc", [[], "x", 1, None, [{"items": []}]])
def test_body_not_an_object(doc: object) -> None:
    assert body_error(doc) == "Invalid format."


def test_body_without_items() -> None:
    assert body_error({"item": []}) == "Invalid format: object does not contain 'items'"


@pytest.mark.parametrize("items", [{}, "x", None, 1])
def test_items_wrong_type(items: object) -> None:
    assert body_error({"items": items}) == (
        "Invalid format: object contains 'items' with wrong type"
    )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (1, "publish item object is not an object"),
        ({"channel": "c"}, "no formats specified"),
        (
            {"channel": "c", "id": 5, **stream()},
            "publish item object contains 'id' with wrong type",
        ),
        ({"channel": "c", "meta": {"k": 1}, **stream()}, "'meta' contains 'k' with wrong type"),
        (
            {"channel": "c", "http-stream": {"content": 5}},
            "'http-stream' contains 'content' with wrong type",
        ),
        ({"channel": "c", "http-stream": {"action": "nope"}}, ""),
    ],
)
def test_item_messages_are_prefixed(item: object, message: str) -> None:
    assert body_error({"items": [item]}) == f"Invalid format: {message}"


def test_all_or_nothing() -> None:
    fmt = StreamFormat()
    body = {"items": [{"channel": "a", **stream()}, {"channel": "b", **stream()}, {"channel": 1}]}
    with pytest.raises(PublishError) as e:
        parse_publish_body(json.dumps(body).encode(), known(fmt))
    assert str(e.value) == "Invalid format: publish item object contains 'channel' with wrong type"
    assert fmt.calls == 2  # parsed, but nothing is returned to publish


def test_non_ascii_and_escapes() -> None:
    body = '{"items": [{"channel": "caf\\u00e9", "http-stream": {"content": "\\ud83d\\ude00 ü"}}]}'
    (item,) = parse_publish_body(body.encode(), KNOWN).items
    assert item.channel == "café"
    assert item.formats["http-stream"] == "😀 ü".encode()


def test_lone_surrogates_become_replacement_characters() -> None:
    body = (
        '{"items": [{"channel": "a\\ud800", "meta": {"k\\udfff": "v"},'
        ' "http-stream": {"content": "x\\udc00y"}}]}'
    )
    (item,) = parse_publish_body(body.encode(), KNOWN).items
    assert item.channel == "a\ufffd"
    assert item.meta == {"k\ufffd": "v"}
    assert item.formats["http-stream"] == "x\ufffdy".encode()


def test_formats_order_survives_surrogate_repair() -> None:
    body = '{"items": [{"channel": "\\ud800", "formats": {"zz": 1, "sse": {"data": "d"}}}]}'
    (item,) = parse_publish_body(body.encode(), KNOWN).items
    assert list(item.formats) == ["sse"]


# ---- properties -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
item_keys = st.sampled_from(
    [
        "channel",
        "id",
        "prev-id",
        "meta",
        "formats",
        "size",
        "no-seq",
        "http-stream",
        "http-response",
        "ws-message",
        "sse",
        "content",
        "body",
        "data",
        "action",
    ]
)
item_like = st.recursive(
    json_values,
    lambda inner: st.dictionaries(item_keys | st.text(), inner, max_size=6),
    max_leaves=30,
)


def parses_or_publish_error(body: bytes) -> None:
    try:
        result = parse_publish_body(body, KNOWN)
    except PublishError:
        return
    assert isinstance(result, ParsedPublish)
    for item in result.items:
        assert isinstance(item.channel, str)


@given(st.binary(max_size=200))
def test_property_arbitrary_bytes(body: bytes) -> None:
    parses_or_publish_error(body)


@given(json_values)
def test_property_arbitrary_json_document(doc: object) -> None:
    parses_or_publish_error(json.dumps(doc).encode())


@given(st.lists(item_like, max_size=4))
def test_property_arbitrary_items(items: list[object]) -> None:
    parses_or_publish_error(json.dumps({"items": items}).encode())


tricky_text = st.text(max_size=20) | st.lists(
    st.sampled_from(["a", "\\", '"', "\ud800", "\udc00", "\ud83d", "\ude00", "\U0001f600"]),
    max_size=8,
).map("".join)


@given(tricky_text)
def test_property_arbitrary_strings_in_items(s: str) -> None:
    doc = {"items": [{"channel": s, "id": s, "meta": {s: s}, "http-stream": {"content": s}}]}
    parses_or_publish_error(json.dumps(doc).encode())
    parses_or_publish_error(json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass"))
