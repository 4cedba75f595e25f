"""Auto cross-origin: CORS headers and JSON-P, as on Pushpin's ``aco`` routes (grip.md §9).

Everything here is pure. :func:`cors_headers` adds the CORS headers to a response head.
:func:`jsonp_request` turns a GET carrying a callback parameter into the request it stands
for. A :class:`ResponseShaper` reshapes every response written for one client request:
:class:`CorsShaper` adds the CORS headers, :class:`JsonpShaper` wraps the response in a
call of the callback. The client connection applies the shaper to whatever it writes, so
plain responses, errors and held long-polls and streams are all reshaped the same way.
"""

from __future__ import annotations

import codecs
import http
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import unquote_to_bytes

if TYPE_CHECKING:
    from .routes import Route

__all__ = [
    "CorsShaper",
    "JsonpCall",
    "JsonpError",
    "JsonpShaper",
    "ResponseShaper",
    "cors_headers",
    "is_callback",
    "jsonp_request",
]

Headers = list[tuple[bytes, bytes]]

_SIMPLE_RESPONSE_HEADERS: Final = frozenset({
    b"cache-control", b"content-language", b"content-length", b"content-type", b"expires",
    b"last-modified", b"pragma",
})
_ALL_METHODS: Final = b"OPTIONS, HEAD, GET, POST, PUT, DELETE"
_MAX_AGE: Final = b"3600"
_CALLBACK: Final = re.compile(rb"[A-Za-z_$][A-Za-z0-9_$.\[\]]*")
_TOKEN: Final = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 method or header name
_SET_BY_PROXY: Final = frozenset({b"host", b"accept"})  # _headers cannot set these


def _first(headers: Headers, name: bytes) -> bytes | None:
    return next((v for n, v in headers if n == name), None)


def cors_headers(request: Headers, response: Headers) -> Headers:
    """``response`` plus the CORS headers it does not set itself.

    ``Access-Control-Allow-Methods`` echoes the preflight's requested method (else a fixed
    list), ``-Allow-Headers`` the requested headers, ``-Expose-Headers`` lists the
    response's non-simple headers, ``-Allow-Credentials`` is ``true``, ``-Allow-Origin``
    echoes ``Origin`` (else ``*``) and ``-Max-Age`` is 3600 seconds.

    :param request: the client's request headers (lowercase names).
    :param response: the response headers (lowercase names).
    """
    present = {name.lower() for name, _ in response}
    out = list(response)

    def add(name: bytes, value: bytes | None) -> None:
        if value and name not in present:
            out.append((name, value))

    add(b"access-control-allow-methods",
        _first(request, b"access-control-request-method") or _ALL_METHODS)
    asked = [part.strip() for name, value in request
             if name == b"access-control-request-headers" for part in value.split(b",")]
    add(b"access-control-allow-headers", b", ".join(p for p in asked if p))
    exposed: list[bytes] = []
    for name, _ in response:
        lower = name.lower()
        if (lower not in _SIMPLE_RESPONSE_HEADERS and lower not in exposed
                and not lower.startswith((b"access-control-", b"grip-"))):
            exposed.append(lower)
    add(b"access-control-expose-headers", b", ".join(exposed))
    add(b"access-control-allow-credentials", b"true")
    add(b"access-control-allow-origin", _first(request, b"origin") or b"*")
    add(b"access-control-max-age", _MAX_AGE)
    return out


def is_callback(name: bytes) -> bool:
    """Whether ``name`` may be a JSON-P callback: a JavaScript name such as ``cb``,
    ``jQuery123_456`` or ``app.callbacks[0]``. Anything else would let a query string
    write arbitrary script."""
    return bool(_CALLBACK.fullmatch(name))


class JsonpError(ValueError):
    """A JSON-P parameter is invalid; the message is the client's ``400`` answer."""


@dataclass(frozen=True, slots=True)
class JsonpCall:
    """A JSON-P request: the callback, and the request it stands for."""

    callback: bytes
    extended: bool
    method: bytes
    target: bytes
    headers: Headers
    body: bytes


class _Query:
    """A query string's ``name=value`` pairs, kept as sent; values are taken out by name."""

    def __init__(self, query: bytes) -> None:
        self.pairs = [pair for pair in query.split(b"&") if pair] if query else []

    def has(self, name: bytes) -> bool:
        return any(unquote_to_bytes(p.partition(b"=")[0]) == name for p in self.pairs)

    def take(self, name: bytes) -> bytes | None:
        """The first value of ``name``, percent-decoded, and every pair of it removed."""
        found: bytes | None = None
        kept = []
        for pair in self.pairs:
            key, _, value = pair.partition(b"=")
            if unquote_to_bytes(key) == name:
                found = unquote_to_bytes(value) if found is None else found
            else:
                kept.append(pair)
        self.pairs = kept
        return found

    def __bytes__(self) -> bytes:
        return b"?" + b"&".join(self.pairs) if self.pairs else b""


def _headers_param(value: bytes) -> Headers:
    """The ``_headers`` parameter: a JSON object of header names to string values."""
    try:
        parsed = json.loads(value)
    except ValueError:
        raise JsonpError("Invalid _headers parameter.") from None
    if not isinstance(parsed, dict):
        raise JsonpError("Invalid _headers parameter.")
    headers: Headers = []
    for name, item in parsed.items():
        raw_name = name.encode("utf-8").lower()
        if not isinstance(item, str) or not _TOKEN.fullmatch(raw_name):
            raise JsonpError("Invalid _headers parameter.")
        raw_value = item.encode("utf-8")
        if any(c in raw_value for c in b"\r\n\0"):
            raise JsonpError("Invalid _headers parameter.")
        if raw_name not in _SET_BY_PROXY:
            headers.append((raw_name, raw_value))
    return headers


def jsonp_request(route: Route, method: bytes, target: bytes,
                  headers: Headers) -> JsonpCall | None:
    """Read a JSON-P request, or None when ``method``/``target`` is not one.

    A GET is a JSON-P request when its query has the callback parameter (``jsonp_cb``),
    or when the route has a default callback (``jsonp_defcb``) and the query has the body
    parameter (``jsonp_body``). The request it stands for takes its method from
    ``_method`` (else ``jsonp_defmethod``, else GET in extended and POST in basic mode),
    extra headers from ``_headers`` (a JSON object; ``Host`` and ``Accept`` are kept),
    and its body from the body parameter (sent as ``application/json``) or from
    ``_body``. These parameters leave the query; ``Accept`` becomes ``*/*``.

    :raises JsonpError: an empty or unsafe callback, a bad ``_method`` or ``_headers``.
    """
    if method != b"GET":
        return None
    path, _, raw_query = target.partition(b"?")
    query = _Query(raw_query)
    callback_param = route.jsonp_cb.encode()
    body_param = route.jsonp_body.encode()
    if not query.has(callback_param) and not (
            route.jsonp_defcb and body_param and query.has(body_param)):
        return None
    callback = query.take(callback_param)
    if callback is None:
        callback = route.jsonp_defcb.encode()
    elif not is_callback(callback):
        raise JsonpError("Invalid callback parameter.")
    new_method = query.take(b"_method")
    if new_method is not None and not _TOKEN.fullmatch(new_method):
        raise JsonpError("Invalid _method parameter.")
    extra = query.take(b"_headers")
    added = _headers_param(extra) if extra is not None else []
    body = b""
    if body_param:
        param = query.take(body_param)
        if param is not None:
            body = param
            added = [h for h in added if h[0] != b"content-type"]
            added.append((b"content-type", b"application/json"))
    else:
        body = query.take(b"_body") or b""
    extended = route.jsonp_mode == "extended"
    default_method = route.jsonp_defmethod.encode() or (b"GET" if extended else b"POST")
    host = [(b"host", v) for v in [_first(headers, b"host")] if v is not None]
    rest = [(n, v) for n, v in headers if n not in _SET_BY_PROXY]
    return JsonpCall(callback, extended, new_method or default_method, path + bytes(query),
                     [*added, *host, (b"accept", b"*/*"), *rest], body)


# ---- reshaping responses --------------------------------------------------------------------

class ResponseShaper(Protocol):
    """Reshapes one response as the client connection writes it."""

    def head(self, status: int, headers: Headers,
             reason: bytes) -> tuple[int, Headers, bytes, bytes]:
        """The head to write instead, and the first body bytes to write after it."""

    def body(self, data: bytes) -> bytes:
        """The bytes to write for a piece of the body."""

    def end(self) -> bytes:
        """The last bytes to write before the response ends."""

    def whole(self, status: int, headers: Headers, reason: bytes,
              body: bytes) -> tuple[int, Headers, bytes, bytes]:
        """A complete response (written with a Content-Length) reshaped at once."""


class CorsShaper:
    """Adds the CORS headers (:func:`cors_headers`) to the response head."""

    __slots__ = ("request",)

    def __init__(self, request: Headers) -> None:
        self.request = request

    def head(self, status: int, headers: Headers,
             reason: bytes) -> tuple[int, Headers, bytes, bytes]:
        return status, cors_headers(self.request, headers), reason, b""

    def body(self, data: bytes) -> bytes:
        return data

    def end(self) -> bytes:
        return b""

    def whole(self, status: int, headers: Headers, reason: bytes,
              body: bytes) -> tuple[int, Headers, bytes, bytes]:
        return status, cors_headers(self.request, headers), reason, body


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _title(name: bytes) -> str:
    """``content-type`` as ``Content-Type``: how backends usually spell header names."""
    return "-".join(part.capitalize() for part in name.decode("latin-1").split("-"))


class JsonpShaper:
    """Writes a response as a call of the JSON-P callback, always ``200 OK`` with
    ``Content-Type: application/javascript`` (and the backend's ``Cache-Control``).

    Extended mode passes one object, ``/**/cb({"code": 404, "reason": "Not Found",
    "headers": {...}, "body": "..."});``, header names title-cased and repeated headers
    joined with ``, ``. Basic mode passes the body as it is, less one trailing newline:
    ``/**/cb(<body>);``. A streamed body is wrapped piece by piece, so the call completes
    when the response ends.
    """

    __slots__ = ("_decoder", "_held", "callback", "extended")

    def __init__(self, callback: bytes, extended: bool) -> None:
        self.callback, self.extended = callback, extended
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._held = b""

    def head(self, status: int, headers: Headers,
             reason: bytes) -> tuple[int, Headers, bytes, bytes]:
        wrapper = [(b"content-type", b"application/javascript")]
        wrapper += [(n, v) for n, v in headers if n.lower() == b"cache-control"]
        start = b"/**/" + self.callback + b"("
        if self.extended:
            merged: dict[str, str] = {}
            for name, value in headers:
                key, text = _title(name), value.decode("utf-8", "replace")
                merged[key] = f"{merged[key]}, {text}" if key in merged else text
            text = reason.decode("utf-8", "replace") or _phrase(status)
            start += (b'{"code": %d, "reason": %s, "headers": %s, "body": "' % (
                status, json.dumps(text).encode(),
                json.dumps(merged, separators=(",", ":")).encode()))
        return 200, wrapper, b"OK", start

    def body(self, data: bytes) -> bytes:
        if self.extended:
            return json.dumps(self._decoder.decode(data))[1:-1].encode()
        data, self._held = self._held + data, b""
        for newline in (b"\r\n", b"\n"):
            if data.endswith(newline):
                data, self._held = data[:-len(newline)], newline
                break
        return data

    def end(self) -> bytes:
        if self.extended:
            return json.dumps(self._decoder.decode(b"", final=True))[1:-1].encode() + b'"});\n'
        return b");\n"

    def whole(self, status: int, headers: Headers, reason: bytes,
              body: bytes) -> tuple[int, Headers, bytes, bytes]:
        status, wrapper, reason, start = self.head(status, headers, reason)
        return status, wrapper, reason, start + self.body(body) + self.end()
