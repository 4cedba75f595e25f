"""tnetstrings: ``<length>:<payload><type>``, the encoding of Pushpin's ZeroMQ messages.

Types: ``,`` bytes, ``#`` integer, ``^`` float, ``!`` boolean, ``~`` null, ``}`` dict
(keys are byte strings), ``]`` list. Strings stay ``bytes`` both ways; ``str`` values are
encoded as UTF-8 on the way out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Value = bytes | int | float | bool | None | dict[bytes, "Value"] | list["Value"]

MAX_DEPTH = 64


class TNetStringError(ValueError):
    """The bytes are not one well-formed tnetstring."""


def dumps(value: object) -> bytes:
    """Encode ``value`` (bytes/str, int, float, bool, None, mappings, sequences)."""
    out = bytearray()
    _dump(value, out)
    return bytes(out)


def _dump(value: object, out: bytearray) -> None:
    if isinstance(value, bool):
        payload, kind = (b"true" if value else b"false"), b"!"
    elif isinstance(value, int):
        payload, kind = str(value).encode(), b"#"
    elif isinstance(value, float):
        payload, kind = repr(value).encode(), b"^"
    elif value is None:
        payload, kind = b"", b"~"
    elif isinstance(value, bytes | bytearray | memoryview):
        payload, kind = bytes(value), b","
    elif isinstance(value, str):
        payload, kind = value.encode(), b","
    elif isinstance(value, Mapping):
        inner = bytearray()
        for key, item in value.items():
            if not isinstance(key, bytes | str):
                raise TypeError(f"tnetstring dict keys must be strings, not {key!r}")
            _dump(key, inner)
            _dump(item, inner)
        payload, kind = bytes(inner), b"}"
    elif isinstance(value, Sequence):
        inner = bytearray()
        for item in value:
            _dump(item, inner)
        payload, kind = bytes(inner), b"]"
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as a tnetstring")
    out += b"%d:" % len(payload)
    out += payload
    out += kind


def loads(data: bytes) -> Value:
    """Decode exactly one tnetstring; trailing bytes are an error.

    :raises TNetStringError: with what is wrong and where.
    """
    value, end = _load(memoryview(data), 0, 0)
    if end != len(data):
        raise TNetStringError(f"{len(data) - end} bytes after the value")
    return value


def _load(data: memoryview, pos: int, depth: int) -> tuple[Value, int]:
    if depth > MAX_DEPTH:
        raise TNetStringError("nested too deeply")
    colon = _find_colon(data, pos)
    digits = bytes(data[pos:colon])
    if not digits.isdigit() or (len(digits) > 1 and digits[0:1] == b"0"):
        raise TNetStringError(f"bad length {digits[:12]!r} at byte {pos}")
    start = colon + 1
    end = start + int(digits)
    if end >= len(data):
        raise TNetStringError(f"value at byte {pos} runs past the end")
    payload, kind = data[start:end], data[end]
    if kind == ord(","):
        return bytes(payload), end + 1
    if kind == ord("#"):
        text = bytes(payload)
        if not text.lstrip(b"-").isdigit() or len(text) > 40:
            raise TNetStringError(f"bad integer at byte {pos}")
        return int(text), end + 1
    if kind == ord("^"):
        try:
            return float(bytes(payload)), end + 1
        except ValueError:
            raise TNetStringError(f"bad float at byte {pos}") from None
    if kind == ord("!"):
        flag = bytes(payload)
        if flag in (b"true", b"false"):
            return flag == b"true", end + 1
        raise TNetStringError(f"bad boolean at byte {pos}")
    if kind == ord("~"):
        if len(payload):
            raise TNetStringError(f"null with a payload at byte {pos}")
        return None, end + 1
    if kind == ord("]"):
        items: list[Value] = []
        inner = start
        while inner < end:
            item, inner = _load(data[:end], inner, depth + 1)
            items.append(item)
        return items, end + 1
    if kind == ord("}"):
        result: dict[bytes, Value] = {}
        inner = start
        while inner < end:
            key, inner = _load(data[:end], inner, depth + 1)
            if not isinstance(key, bytes):
                raise TNetStringError(f"dict key at byte {inner} is not a string")
            if inner >= end:
                raise TNetStringError(f"dict key at byte {inner} has no value")
            result[key], inner = _load(data[:end], inner, depth + 1)
        return result, end + 1
    raise TNetStringError(f"unknown type {chr(kind)!r} at byte {end}")


def _find_colon(data: memoryview, pos: int) -> int:
    limit = min(len(data), pos + 11)
    for i in range(pos, limit):
        if data[i] == ord(":"):
            return i
    raise TNetStringError(f"no length at byte {pos}")
