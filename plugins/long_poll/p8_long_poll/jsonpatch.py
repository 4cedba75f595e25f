"""JSON Patch (RFC 6902) over JSON Pointers (RFC 6901), on plain Python JSON values.

A patch is compiled once (:func:`compile_patch`) and applied to as many documents as
needed (:meth:`Patch.apply`). Applying never changes the patch, and it changes the document
it is given in place: pass a private copy. Sans-I/O, standard library only.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

__all__ = ["JsonPatchError", "Patch", "compile_patch", "json_equal", "parse_pointer", "patch_body"]

JsonValue = object
"""A value as :func:`json.loads` returns it: dict, list, str, int, float, bool or None."""

_OPS = ("add", "remove", "replace", "move", "copy", "test")


class JsonPatchError(ValueError):
    """A patch is malformed, or one of its operations cannot be applied."""


# ---- JSON Pointer (RFC 6901) ---------------------------------------------------------------

def parse_pointer(pointer: str) -> tuple[str, ...]:
    """Split a JSON Pointer into its reference tokens, unescaped.

    ``""`` is the whole document; otherwise each token follows a ``/``. ``~1`` stands for
    ``/`` and ``~0`` for ``~``, undone in that order (RFC 6901 §4: ``~01`` is ``~1``).

    :raises JsonPatchError: the pointer is not empty and does not start with ``/``, or a
        ``~`` is not followed by ``0`` or ``1``.
    """
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise JsonPatchError(f"pointer {pointer!r} does not start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        at = token.find("~")
        while at >= 0:
            if token[at + 1:at + 2] not in ("0", "1"):
                raise JsonPatchError(f"pointer {pointer!r} has a bad '~' escape")
            at = token.find("~", at + 2)
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in tokens)


def _index(token: str, size: int, *, append: bool) -> int:
    """The array index ``token`` names. ``-`` (past the end) only when ``append``.

    RFC 6901 §4: an index is ``0`` or digits without a leading zero.
    """
    if append and token == "-":
        return size
    if not token.isascii() or not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise JsonPatchError(f"{token!r} is not an array index")
    index = int(token)
    if index > size or (index == size and not append):
        raise JsonPatchError(f"array index {index} is out of range")
    return index


def _parent(doc: JsonValue, tokens: tuple[str, ...]) -> JsonValue:
    """The container holding the value ``tokens`` points at (``tokens`` not empty)."""
    node = doc
    for token in tokens[:-1]:
        node = _child(node, token)
    if not isinstance(node, dict | list):
        raise JsonPatchError("the target's parent is not an object or an array")
    return node


def _child(node: JsonValue, token: str) -> JsonValue:
    if isinstance(node, dict):
        if token not in node:
            raise JsonPatchError(f"member {token!r} does not exist")
        return node[token]
    if isinstance(node, list):
        return node[_index(token, len(node), append=False)]
    raise JsonPatchError(f"cannot descend into a scalar at {token!r}")


def _get(doc: JsonValue, tokens: tuple[str, ...]) -> JsonValue:
    node = doc
    for token in tokens:
        node = _child(node, token)
    return node


# ---- equality for "test" (RFC 6902 §4.6) ---------------------------------------------------

def json_equal(a: JsonValue, b: JsonValue) -> bool:
    """Whether two JSON values are equal as RFC 6902 §4.6 defines it.

    Numbers compare by value (``1`` equals ``1.0``), but never equal a boolean; objects
    compare member by member whatever their order; arrays element by element.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    return False


# ---- operations -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Op:
    op: str
    path: tuple[str, ...]
    value: JsonValue = None
    source: tuple[str, ...] = ()


def _member(raw: dict[str, object], name: str, where: str) -> object:
    if name not in raw:
        raise JsonPatchError(f"{where} has no {name!r}")
    return raw[name]


def _pointer_member(raw: dict[str, object], name: str, where: str) -> tuple[str, ...]:
    value = _member(raw, name, where)
    if not isinstance(value, str):
        raise JsonPatchError(f"{where}: {name!r} is not a string")
    return parse_pointer(value)


def _compile_op(raw: object, where: str) -> _Op:
    if not isinstance(raw, dict):
        raise JsonPatchError(f"{where} is not an object")
    op = _member(raw, "op", where)
    if op not in _OPS:
        raise JsonPatchError(f"{where}: unknown op {op!r}")
    path = _pointer_member(raw, "path", where)
    if op in ("add", "replace", "test"):
        return _Op(op, path, value=_member(raw, "value", where))  # null is a value
    if op in ("move", "copy"):
        source = _pointer_member(raw, "from", where)
        # RFC 6902 §4.4: a location cannot be moved into one of its children.
        if op == "move" and len(source) < len(path) and path[:len(source)] == source:
            raise JsonPatchError(f"{where}: cannot move a value into one of its children")
        return _Op(op, path, source=source)
    return _Op(op, path)


def _add(doc: JsonValue, path: tuple[str, ...], value: JsonValue) -> JsonValue:
    if not path:
        return value
    parent, last = _parent(doc, path), path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    else:
        assert isinstance(parent, list)
        parent.insert(_index(last, len(parent), append=True), value)
    return doc


def _remove(doc: JsonValue, path: tuple[str, ...]) -> JsonValue:
    """Remove the value at ``path`` from ``doc``; returns it."""
    if not path:
        raise JsonPatchError("cannot remove the whole document")
    parent, last = _parent(doc, path), path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError(f"member {last!r} does not exist")
        return parent.pop(last)
    assert isinstance(parent, list)
    return parent.pop(_index(last, len(parent), append=False))


def _replace(doc: JsonValue, path: tuple[str, ...], value: JsonValue) -> JsonValue:
    if not path:
        return value
    parent, last = _parent(doc, path), path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError(f"member {last!r} does not exist")
        parent[last] = value
    else:
        assert isinstance(parent, list)
        parent[_index(last, len(parent), append=False)] = value
    return doc


@dataclass(frozen=True, slots=True)
class Patch:
    """A compiled JSON Patch: a sequence of checked operations."""

    ops: tuple[_Op, ...]

    def apply(self, doc: JsonValue) -> JsonValue:
        """Apply every operation in order; the document may be changed in place.

        :returns: the patched document (a new root when an operation replaced it).
        :raises JsonPatchError: an operation failed; ``doc`` may then be half patched.
        """
        for op in self.ops:
            if op.op == "add":
                doc = _add(doc, op.path, copy.deepcopy(op.value))
            elif op.op == "remove":
                _remove(doc, op.path)
            elif op.op == "replace":
                doc = _replace(doc, op.path, copy.deepcopy(op.value))
            elif op.op == "move":
                if op.source != op.path:
                    doc = _add(doc, op.path, _remove(doc, op.source))
                else:
                    _get(doc, op.source)  # must still exist
            elif op.op == "copy":
                doc = _add(doc, op.path, copy.deepcopy(_get(doc, op.source)))
            elif not json_equal(_get(doc, op.path), op.value):
                raise JsonPatchError("test failed")
        return doc


def compile_patch(raw: object) -> Patch:
    """Check a patch document (a JSON array of operation objects) and compile it.

    Members an operation does not use are ignored (RFC 6902 §4, Appendix A.11).

    :raises JsonPatchError: not an array, or an operation lacks a member it needs, has an
        unknown ``op``, or a malformed pointer.
    """
    if not isinstance(raw, list):
        raise JsonPatchError("a patch is an array of operations")
    return Patch(tuple(_compile_op(op, f"operation {i}") for i, op in enumerate(raw)))


# ---- patching a response body (grip.md §5.1) ------------------------------------------------

def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def patch_body(body: bytes, patch: Patch | None) -> bytes:
    """Apply ``patch`` to a response body holding a JSON object or array.

    The result is written compactly (no spaces; non-ASCII as UTF-8) and the body's
    trailing ``\\r\\n`` or ``\\n``, if any, is put back. A body that is not a JSON object or
    array, a ``None`` patch (one that did not compile) or a failed operation gives an empty
    body, as Pushpin answers.
    """
    if patch is None:
        return b""
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return b""
    if not isinstance(doc, dict | list):
        return b""
    try:
        doc = patch.apply(doc)
    except (JsonPatchError, RecursionError):
        return b""
    try:
        # allow_nan=False: a number too large for a float (1e999) has no JSON form.
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        try:
            out = text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (from a "\ud800" escape) has no UTF-8 form: keep it escaped.
            out = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (ValueError, RecursionError):
        return b""
    ending = b"\r\n" if body.endswith(b"\r\n") else b"\n" if body.endswith(b"\n") else b""
    return out + ending

