"""JSON Patch (RFC 6902) and JSON Pointer (RFC 6901): the RFCs' own examples, the error
cases, and patching a stored response body as grip.md §5.1 describes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from p8_long_poll.jsonpatch import (
    JsonPatchError,
    compile_patch,
    json_equal,
    parse_pointer,
    patch_body,
)


def apply(doc: Any, patch: Any) -> Any:
    return compile_patch(patch).apply(doc)


# RFC 6902 Appendix A, in order (A.13 is about duplicate JSON members, which a JSON parser
# resolves before a patch exists).
RFC_EXAMPLES = [
    ("A.1 adding an object member",
     {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ("A.2 adding an array element",
     {"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ("A.3 removing an object member",
     {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}],
     {"foo": "bar"}),
    ("A.4 removing an array element",
     {"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ("A.5 replacing a value",
     {"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ("A.6 moving a value",
     {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A.7 moving an array element",
     {"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ("A.8 testing a value: success",
     {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A.10 adding a nested member object",
     {"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A.11 ignoring unrecognized elements",
     {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
     {"foo": "bar", "baz": "qux"}),
    ("A.14 ~ escape ordering",
     {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}],
     {"/": 9, "~1": 10}),
    ("A.16 adding an array value",
     {"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
]


@pytest.mark.parametrize(("name", "doc", "patch", "expected"), RFC_EXAMPLES,
                         ids=[e[0].split()[0] for e in RFC_EXAMPLES])
def test_rfc_6902_examples(name: str, doc: Any, patch: Any, expected: Any) -> None:
    assert apply(doc, patch) == expected


@pytest.mark.parametrize(("doc", "patch"), [
    pytest.param({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], id="A.9"),
    pytest.param({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}],
                 id="A.12"),
    pytest.param({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}],
                 id="A.15"),
])
def test_rfc_6902_error_examples(doc: Any, patch: Any) -> None:
    with pytest.raises(JsonPatchError):
        apply(doc, patch)


def test_rfc_6901_pointers() -> None:
    doc = {"foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4, "i\\j": 5,
           'k"l': 6, " ": 7, "m~n": 8}
    cases = {"": doc, "/foo": ["bar", "baz"], "/foo/0": "bar", "/": 0, "/a~1b": 1,
             "/c%d": 2, "/e^f": 3, "/g|h": 4, "/i\\j": 5, '/k"l': 6, "/ ": 7, "/m~0n": 8}
    for pointer, value in cases.items():
        assert apply(doc, [{"op": "test", "path": pointer, "value": value}]) is doc
    assert parse_pointer("/a~1b/m~0n/~01") == ("a/b", "m~n", "~1")
    for bad in ("a", "/~2", "/x~"):
        with pytest.raises(JsonPatchError):
            parse_pointer(bad)


@pytest.mark.parametrize("patch", [
    {"op": "add"},                                           # not an array
    [["add", "/a", 1]],                                      # an operation not an object
    [{"path": "/a", "value": 1}],                            # no op
    [{"op": "frobnicate", "path": "/a"}],                    # unknown op
    [{"op": "add", "value": 1}],                             # no path
    [{"op": "add", "path": 5, "value": 1}],                  # path not a string
    [{"op": "add", "path": "a", "value": 1}],                # path not a pointer
    [{"op": "replace", "path": "/a"}],                       # no value
    [{"op": "move", "path": "/a"}],                          # no from
    [{"op": "move", "from": "/a", "path": "/a/b"}],          # into its own child
])
def test_malformed_patches_do_not_compile(patch: Any) -> None:
    with pytest.raises(JsonPatchError):
        compile_patch(patch)


@pytest.mark.parametrize("op", [
    {"op": "remove", "path": "/missing"},
    {"op": "replace", "path": "/missing", "value": 1},
    {"op": "remove", "path": "/list/2"},
    {"op": "add", "path": "/list/3", "value": 1},            # past the end
    {"op": "add", "path": "/list/01", "value": 1},           # leading zero
    {"op": "add", "path": "/list/-1", "value": 1},
    {"op": "replace", "path": "/list/-", "value": 1},        # "-" only for add
    {"op": "add", "path": "/s/x", "value": 1},               # into a string
    {"op": "copy", "from": "/missing", "path": "/x"},
    {"op": "move", "from": "/missing", "path": "/x"},
    {"op": "remove", "path": ""},
    {"op": "test", "path": "/t", "value": 1},                # true is not 1
    {"op": "test", "path": "/n", "value": False},            # null is not false
])
def test_operations_that_cannot_apply(op: Any) -> None:
    with pytest.raises(JsonPatchError):
        apply({"list": [1, 2], "s": "str", "t": True, "n": None}, [op])


def test_every_operation() -> None:
    doc = {"a": {"b": [1, 2]}, "n": None}
    patched = apply(doc, [
        {"op": "copy", "from": "/a/b", "path": "/c"},
        {"op": "add", "path": "/c/0", "value": 0},
        {"op": "add", "path": "/n", "value": {"x": 1}},          # add replaces a member
        {"op": "move", "from": "/a/b/1", "path": "/a/b/0"},
        {"op": "move", "from": "/a", "path": "/a"},              # a move to itself is a no-op
        {"op": "test", "path": "/c", "value": [0, 1.0, 2]},       # numbers compare by value
        {"op": "test", "path": "/n", "value": {"x": 1}},
    ])
    assert patched == {"a": {"b": [2, 1]}, "n": {"x": 1}, "c": [0, 1, 2]}
    assert apply({"a": 1}, [{"op": "replace", "path": "", "value": [1]}]) == [1]
    assert apply([1], [{"op": "add", "path": "", "value": {"new": "root"}}]) == {"new": "root"}


def test_a_compiled_patch_is_reusable_and_never_changed() -> None:
    patch = compile_patch([{"op": "add", "path": "/x", "value": {"deep": []}},
                           {"op": "add", "path": "/x/deep/-", "value": 1}])
    first, second = patch.apply({}), patch.apply({})
    assert first == second == {"x": {"deep": [1]}}
    first["x"]["deep"].append(2)
    assert patch.apply({}) == {"x": {"deep": [1]}}


def test_json_equal() -> None:
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal(1, True) and not json_equal(0, False) and not json_equal(0, None)
    assert not json_equal([1], [1, 2]) and not json_equal({"a": 1}, {"b": 1})
    assert not json_equal("1", 1) and not json_equal([], {})


# ---- patching a stored body (grip.md §5.1) -----------------------------------------------

def test_patch_body_is_compact_and_keeps_the_line_ending() -> None:
    patch = compile_patch([{"op": "replace", "path": "/count", "value": 2},
                           {"op": "add", "path": "/items/-", "value": "é"}])
    stored = b'{\n  "count": 1,\n  "items": ["a"]\n}'
    assert patch_body(stored, patch) == '{"count":2,"items":["a","é"]}'.encode()
    assert patch_body(stored + b"\n", patch).endswith(b"]}\n")
    assert patch_body(stored + b"\r\n", patch).endswith(b"]}\r\n")
    array = compile_patch([{"op": "remove", "path": "/0"}])
    assert patch_body(b"[1, 2]\n", array) == b"[2]\n"


@pytest.mark.parametrize("stored", [b"not json\n", b'"a string"', b"42", b"", b"\xff",
                                    b"[NaN]", b'{"count": 1'])
def test_patch_body_of_a_body_that_is_not_a_json_object_or_array_is_empty(stored: bytes) -> None:
    assert patch_body(stored, compile_patch([])) == b""


def test_patch_body_is_empty_when_the_patch_fails_or_did_not_compile() -> None:
    failing = compile_patch([{"op": "add", "path": "/count", "value": 2},
                             {"op": "test", "path": "/count", "value": 3}])
    assert patch_body(b'{"count": 1}\n', failing) == b""
    assert patch_body(b'{"count": 1}\n', None) == b""
    too_big = compile_patch([{"op": "add", "path": "/x", "value": float("inf")}])
    assert patch_body(b"{}", too_big) == b""


def test_patch_body_keeps_a_lone_surrogate_escaped() -> None:
    assert patch_body(b'["\\ud800"]', compile_patch([])) == b'["\\ud800"]'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=4),
    max_leaves=12)
pointers = st.lists(st.sampled_from(["a", "0", "1", "-", "~", "/", "", "01"]),
                    max_size=3).map(lambda ts: "".join(
                        "/" + t.replace("~", "~0").replace("/", "~1") for t in ts))
operations = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"]),
     "path": pointers},
    optional={"value": json_values, "from": pointers})


@given(doc=json_values, patch=st.lists(operations, max_size=5))
def test_patching_returns_a_json_value_or_raises_json_patch_error(doc: Any,
                                                                 patch: Any) -> None:
    try:
        result = compile_patch(patch).apply(json.loads(json.dumps(doc)))
    except JsonPatchError:
        return
    json.dumps(result)
