"""The ``http-response`` publish format (publishing.md §1.1): parsed once per publish.

Every check and message follows Pushpin 1.36, so a publisher reads the same
``Invalid format: ...`` line from p8. Where p8 checks more than Pushpin (values an HTTP/1.1
response cannot carry), its messages are worded like Pushpin's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from p8core import PublishError, PublishFormat
from p8core.grip.instructions import status_reason
from p8core.pubsub.fields import (
    as_bytes,
    as_text,
    filter_names,
    from_base64,
    tnetstring_input,
    to_bytes,
    wrong_type,
)

from .jsonpatch import JsonPatchError, Patch, compile_patch

__all__ = ["FORMAT", "HttpResponse", "HttpResponseFormat"]

FORMAT = "http-response"

Header = tuple[bytes, bytes]

#: Header names an item may not set: the proxy frames the response itself, and ``Grip-*``
#: never reaches a client (grip.md §3.2).
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive",
                      b"te", b"trailer", b"upgrade"})

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# What an HTTP/1.1 field value and reason phrase may hold (RFC 9110 §5.5, §4 of RFC 9112).
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
_REASON = re.compile(rb"(?:[ \t]|[^\x00\s])*")
_INT = re.compile(r"[+-]?[0-9]{1,10}")
_INT_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One ``http-response`` format object, ready for every response hold.

    ``headers`` are the item's own, cleaned (no ``Grip-*``, no framing headers) and in
    Pushpin's order; ``names`` their lowercased names, which replace the stored headers of
    the same names. The body is ``body``, or the stored body patched by ``patch`` when
    ``patched`` (``patch`` is ``None`` when the patch did not compile: the body is then
    empty, as Pushpin answers). ``content_filters`` is ``None`` when the item names none.
    """

    action: str = "send"
    code: int = 200
    reason: bytes = b"OK"
    headers: tuple[Header, ...] = ()
    names: frozenset[bytes] = frozenset()
    body: bytes = b""
    patched: bool = False
    patch: Patch | None = None
    content_filters: tuple[str, ...] | None = None


class HttpResponseFormat(PublishFormat):
    """Parses ``formats["http-response"]``; one instance serves every publish."""

    name = FORMAT

    def parse(self, raw: Mapping[str, object], where: str) -> HttpResponse:
        """Validate one format object, in Pushpin's order of checks.

        JSON ``null`` counts as absent. Values from tnetstring inputs arrive as ``bytes``
        and are taken as strings (bodies raw); ``body-bin`` exists for JSON inputs only.

        :raises PublishError: Pushpin's message; an empty one for an unknown ``action``.
        """
        tnetstring = tnetstring_input(raw)
        action = _string(raw, "action", where)
        if action is None or action == "send":
            action = "send"
        elif action not in ("hint", "close"):
            # Pushpin 1.36 rejects an unknown action without a message [Q].
            raise PublishError("")
        if action != "send":
            return HttpResponse(action, content_filters=_content_filters(raw, where))
        code = _code(raw.get("code"), where)
        reason = _reason(raw, code, where)
        headers = tuple((n, v) for n, v in _headers(raw.get("headers"), where)
                        if (low := n.lower()) not in _FRAMING and not low.startswith(b"grip-"))
        body, patched, patch = _body(raw, where, tnetstring)
        return HttpResponse(action, code, reason, headers, frozenset(n.lower() for n, _ in headers),
                            body, patched, patch, _content_filters(raw, where))


def _body(raw: Mapping[str, object], where: str,
          tnetstring: bool) -> tuple[bytes, bool, Patch | None]:
    """``body-bin``, else ``body``, else ``body-patch``: (body, patched, patch)."""
    body_bin = raw.get("body-bin")
    # tnetstring inputs carry raw bodies and have no body-bin (publishing.md §1.1).
    if body_bin is not None and not isinstance(body_bin, bytes):
        return from_base64(body_bin, "body-bin", where), False, None
    body = raw.get("body")
    if body is not None:
        return as_bytes(body, "body", where), False, None
    body_patch = raw.get("body-patch")
    if body_patch is not None:
        if not isinstance(body_patch, list):
            raise wrong_type(where, "body-patch")
        try:
            return b"", True, compile_patch(_texts(body_patch))
        except (JsonPatchError, RecursionError):
            # Pushpin checks the operations only when it applies them, and an unusable
            # patch empties the body: the publish itself is accepted.
            return b"", True, None
    if tnetstring:
        raise PublishError(f"{where} does not contain 'body' or 'body-patch'")
    raise PublishError(f"{where} does not contain 'body', 'body-bin', or 'body-patch'")


def _string(raw: Mapping[str, object], key: str, where: str) -> str | None:
    """An optional string member (``bytes`` from tnetstring inputs decoded as UTF-8)."""
    value = raw.get(key)
    return None if value is None else as_text(value, key, where, "replace")


def _code(value: object, where: str) -> int:
    """The status code: an integer, or a string read as Qt's ``toInt`` reads it.

    Pushpin 1.36 reads a string that is not a number as 0 and sends that [Q]. p8 reads
    strings the same way but accepts only codes an HTTP/1.1 server can send as a final
    response (200-999), so such a string is refused as an invalid value.
    """
    if value is None:
        return 200
    code: int
    if isinstance(value, bool):
        raise wrong_type(where, "code")
    if isinstance(value, int):
        code = value
    elif isinstance(value, float) and value.is_integer():
        code = int(value)
    elif isinstance(value, str | bytes):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        text = text.strip(" \t\n\v\f\r")
        code = int(text) if _INT.fullmatch(text) else 0
        if not -_INT_MAX - 1 <= code <= _INT_MAX:
            code = 0
    else:
        raise wrong_type(where, "code")
    if not 200 <= code <= 999:
        raise PublishError(f"{where} contains 'code' with invalid value")
    return code


def _reason(raw: Mapping[str, object], code: int, where: str) -> bytes:
    reason = _string(raw, "reason", where)
    if not reason:
        return status_reason(code)
    encoded = reason.encode("utf-8")
    if not _REASON.fullmatch(encoded):
        raise PublishError(f"{where} contains 'reason' with invalid value")
    return encoded


def _headers(value: object, where: str) -> list[Header]:
    """``[[name, value], ...]`` or ``{name: value}``, as Pushpin reads them.

    Pushpin keeps an object's members in key order (it reads JSON objects into sorted
    maps), which also decides which bad member is named.
    """
    pairs: list[Header] = []
    if value is None:
        return pairs
    if isinstance(value, list):
        for element in value:
            if not isinstance(element, list):
                raise PublishError("headers contains element with wrong type")
            if len(element) != 2:
                raise PublishError("headers contains list with wrong number of elements")
            name = to_bytes(element[0])
            if name is None:
                raise PublishError("header contains name element with wrong type")
            val = to_bytes(element[1])
            if val is None:
                raise PublishError("header contains value element with wrong type")
            pairs.append((name, val))
    elif isinstance(value, dict):
        for key in sorted(value):
            val = to_bytes(value[key])
            if val is None:
                raise PublishError(f"headers contains '{key}' with wrong type")
            pairs.append((key.encode("utf-8"), val))
    else:
        raise wrong_type(where, "headers")
    out: list[Header] = []
    for name, val in pairs:
        # Checked here, so that a header no HTTP/1.1 response can carry is the publisher's
        # error, not a failure when the response is written.
        text = name.decode("utf-8", "replace")
        if not _TOKEN.fullmatch(name):
            raise PublishError(f"headers contains invalid name '{text}'")
        val = val.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(val):
            raise PublishError(f"headers contains '{text}' with invalid value")
        out.append((name, val))
    return out


def _content_filters(raw: Mapping[str, object], where: str) -> tuple[str, ...] | None:
    value = raw.get("content-filters")
    return None if value is None else filter_names(value, where, errors="replace")


def _texts(value: object) -> object:
    """A patch with the byte strings of tnetstring inputs read as UTF-8 text, as JSON
    holds them."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_texts(v) for v in value]
    if isinstance(value, dict):
        return {k: _texts(v) for k, v in value.items()}
    return value
