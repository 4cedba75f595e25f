"""GRIP instructions: recognising a GRIP response and parsing its ``Grip-*`` headers or its
``application/grip-instruct`` JSON body (grip.md §1, §3).

Sans-I/O: headers are ``(name, value)`` byte pairs as received (names in any case), and
every problem is an :class:`~p8core.errors.InstructionError` carrying Pushpin's message,
so that a debug route shows the same ``Failed to parse accept instructions: ...`` line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType
from typing import TypeVar
from urllib.parse import urldefrag, urljoin, urlsplit

from p8core.codec.b64 import decode_base64
from p8core.errors import InstructionError

__all__ = [
    "DEFAULT_KEEP_ALIVE_TIMEOUT",
    "DEFAULT_NEXT_LINK_TIMEOUT",
    "DEFAULT_RESPONSE_TIMEOUT",
    "INSTRUCT_MEDIA_TYPE",
    "MIN_KEEP_ALIVE_TIMEOUT",
    "MIN_RESPONSE_TIMEOUT",
    "Channel",
    "Instruct",
    "KeepAlive",
    "NextLink",
    "Params",
    "get_param",
    "grip_last_headers",
    "has_param",
    "is_grip_response",
    "parse_header_params",
    "parse_instruct",
    "parse_param_list",
    "split_header_list",
    "status_reason",
    "strip_grip_headers",
]

Header = tuple[bytes, bytes]
#: Parameters of one header element: ``(name, value)``, ``value`` is ``None`` for a flag.
Params = tuple[tuple[str, str | None], ...]

DEFAULT_RESPONSE_TIMEOUT = 55
MIN_RESPONSE_TIMEOUT = 5
DEFAULT_KEEP_ALIVE_TIMEOUT = 55
MIN_KEEP_ALIVE_TIMEOUT = 1
DEFAULT_NEXT_LINK_TIMEOUT = 120
INSTRUCT_MEDIA_TYPE = b"application/grip-instruct"

# Pushpin reads numbers with Qt's toInt(): 32-bit, so larger values fail to parse.
_INT_MAX = 2**31 - 1
# What Qt's trimmed() removes; str.strip() would also remove e.g. U+0085 and U+00A0,
# which are ordinary bytes in a latin-1 decoded header value.
_WS = " \t\n\v\f\r"
_INT_RE = re.compile(r"[+-]?[0-9]{1,10}")
_EQ_OR_SEMI = re.compile(r"[=;]")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX_DIGITS = b"0123456789abcdefABCDEF"

# Removed from the response a GRIP instruction describes: the proxy frames the body itself.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"te",
                         b"trailer", b"upgrade", b"content-length"})

_T = TypeVar("_T")

_HOLD_ERROR = "Grip-Hold must be set to either 'response' or 'stream'"
_JSON_HOLD_ERROR = "hold 'mode' must be set to either 'response' or 'stream'"


# ---- values ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Channel:
    """A channel to subscribe to, with the backend's ``prev-id`` and filter names."""

    name: str
    prev_id: str | None = None
    filters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """What a stream hold writes when idle, and when.

    ``mode`` is ``"idle"`` (timer restarts on every published write) or ``"interval"``.
    The JSON form has no ``mode``; Pushpin 1.36 never resets its timer on data, so a
    JSON keep-alive is parsed as ``"interval"`` (grip.md §3.3, §11.4).
    """

    data: bytes
    timeout: int = DEFAULT_KEEP_ALIVE_TIMEOUT
    mode: str = "idle"


@dataclass(frozen=True, slots=True)
class NextLink:
    """A ``Grip-Link: <...>; rel=next``: absolute URL (request URL applied), seconds."""

    url: str
    timeout: int = DEFAULT_NEXT_LINK_TIMEOUT


def _empty_meta() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Instruct:
    """One parsed GRIP instruction.

    ``status``/``reason``/``headers``/``body`` are the response the client would get
    (no hold, the initial part of a stream, or a response hold's timeout answer):
    Grip-Status applied, ``Grip-*``, Content-Length and hop-by-hop headers removed,
    Grip-Expose-Headers applied. ``timeout`` is the effective response-hold timeout.
    ``dropped_channels`` counts channels cut off by ``max_channels``.
    """

    hold: str | None = None
    channels: tuple[Channel, ...] = ()
    timeout: int = DEFAULT_RESPONSE_TIMEOUT
    keep_alive: KeepAlive | None = None
    next_link: NextLink | None = None
    meta: Mapping[str, str] = field(default_factory=_empty_meta, hash=False)
    status: int = 200
    reason: bytes = b"OK"
    headers: tuple[Header, ...] = ()
    body: bytes = b""
    dropped_channels: int = 0

    def __post_init__(self) -> None:
        if type(self.meta) is not MappingProxyType:
            object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))


# ---- header parameter syntax (grip.md §3.2) ---------------------------------------------

def _find_list_comma(value: str, pos: int) -> int:
    """Index of the next comma outside double quotes; ``len(value)`` if none, -1 when a
    quote or an escape is left open."""
    in_quote = False
    i, n = pos, len(value)
    while i < n:
        c = value[i]
        if in_quote:
            if c == "\\":
                i += 1
                if i >= n:
                    return -1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == ",":
            return i
        i += 1
    return -1 if in_quote else n


def split_header_list(value: str) -> list[str]:
    """Split a list header on commas outside double quotes; elements are trimmed.

    As Pushpin: an empty value gives no element, a final comma adds none, but an empty
    element between commas is kept (``"a,,b"`` gives ``["a", "", "b"]``).
    """
    if not value:
        return []
    if '"' not in value:
        parts = value.split(",")
        if value.endswith(","):
            parts.pop()
        return [p.strip(_WS) for p in parts]
    out: list[str] = []
    pos, n = 0, len(value)
    while pos < n:
        end = _find_list_comma(value, pos)
        if end < 0:
            out.append(value[pos:].strip(_WS))
            break
        out.append(value[pos:end].strip(_WS))
        pos = end + 1
    return out


def _parse_params(value: str, start: int) -> Params:
    out: list[tuple[str, str | None]] = []
    n = len(value)
    while start < n:
        m = _EQ_OR_SEMI.search(value, start)
        if m is None:
            out.append((value[start:].strip(_WS), None))
            break
        at = m.start()
        name = value[start:at].strip(_WS)
        if value[at] == ";":
            out.append((name, None))
            start = at + 1
            continue
        at += 1
        while at < n and value[at] in _WS:
            at += 1
        if at < n and value[at] == '"':
            q = _QUOTED.match(value, at)
            if q is None:
                raise ValueError("unterminated quoted parameter value")
            out.append((name, _ESCAPED.sub(r"\1", q.group(1))))
            # Pushpin ignores anything between the closing quote and the next ';'.
            semi = value.find(";", q.end())
        else:
            semi = value.find(";", at)
            out.append((name, (value[at:] if semi < 0 else value[at:semi]).strip(_WS)))
        start = n if semi < 0 else semi + 1
    return tuple(out)


def parse_header_params(value: str) -> tuple[str, Params]:
    """Parse one element ``first; name=value; name="q \\" v"; flag``.

    ``first`` is everything before the first ``;``, trimmed, taken verbatim. Values may be
    double-quoted with ``\\`` escapes; a flag's value is ``None``.

    :raises ValueError: a quoted value is not terminated.
    """
    semi = value.find(";")
    if semi < 0:
        return value.strip(_WS), ()
    return value[:semi].strip(_WS), _parse_params(value, semi + 1)


def parse_param_list(value: str) -> Params:
    """Parse an element that is parameters only (``user="alice"; x``), as Grip-Set-Meta.

    :raises ValueError: a quoted value is not terminated.
    """
    return _parse_params(value, 0)


def get_param(params: Params, name: str) -> str | None:
    """The value of the first parameter called ``name`` (any case); ``None`` if absent or
    a flag."""
    name = name.lower()
    for key, val in params:
        if key.lower() == name:
            return val
    return None


def has_param(params: Params, name: str) -> bool:
    """Whether a parameter called ``name`` (any case) is present, flag or not."""
    name = name.lower()
    return any(key.lower() == name for key, _ in params)


# ---- small helpers ----------------------------------------------------------------------

def _text(raw: str) -> str:
    """A latin-1 decoded header fragment as text: Pushpin reads names and ids as UTF-8."""
    if raw.isascii():
        return raw
    return raw.encode("latin-1").decode("utf-8", "replace")


def _breaks_line(text: str) -> bool:
    """Whether ``text`` holds CR, LF or NUL, which a header line cannot carry."""
    return "\r" in text or "\n" in text or "\0" in text


def _parse_int(raw: str | None) -> int | None:
    """An integer as Qt's ``toInt`` reads it, or ``None``."""
    if raw is None:
        return None
    raw = raw.strip(_WS)
    if not _INT_RE.fullmatch(raw):
        return None
    value = int(raw)
    return value if -_INT_MAX - 1 <= value <= _INT_MAX else None


def _json_int(raw: object) -> int | None:
    """A JSON number holding an integer that fits 32 bits, or ``None``."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, float):
        if not raw.is_integer():
            return None
        raw = int(raw)
    if isinstance(raw, int) and -_INT_MAX - 1 <= raw <= _INT_MAX:
        return raw
    return None


def _unescape_cstring(raw: bytes) -> bytes | None:
    r"""Undo ``\\``, ``\r``, ``\n`` and ``\xHH``; another escaped character yields nothing.

    :returns: ``None`` on a trailing lone backslash or a bad ``\x`` escape.
    """
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            return None
        e = raw[i + 1]
        if e == 0x5C:
            out.append(0x5C)
        elif e == 0x72:
            out.append(0x0D)
        elif e == 0x6E:
            out.append(0x0A)
        elif e == 0x78:
            hexdigits = raw[i + 2:i + 4]
            if len(hexdigits) != 2 or not all(d in _HEX_DIGITS for d in hexdigits):
                return None
            out.append(int(hexdigits, 16))
            i += 2
        i += 2
    return bytes(out)


def status_reason(status: int) -> bytes:
    """The standard reason phrase for ``status``; ``Undefined Reason`` as Pushpin for an
    unknown code."""
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Undefined Reason"


def _media_type(value: bytes) -> bytes:
    return value.split(b";", 1)[0].strip()


def _final_headers(headers: Sequence[Header]) -> tuple[Header, ...]:
    """Drop ``Grip-*``, Content-Length, hop-by-hop and Connection-listed headers."""
    drop = set(_HOP_BY_HOP)
    for name, value in headers:
        if name.lower() == b"connection":
            drop.update(t.strip().lower() for t in value.split(b","))
    return tuple(
        (name, value) for name, value in headers
        if (low := name.lower()) not in drop
        and not low.startswith(b"grip-") and not low.startswith(b"proxy-")
    )


# ---- recognising and stripping ----------------------------------------------------------

def is_grip_response(headers: Sequence[Header]) -> bool:
    """Whether a backend response carries GRIP instructions (grip.md §1): a header name
    starting with ``Grip-`` (any case), or a first ``Content-Type`` whose media type is
    exactly ``application/grip-instruct``."""
    seen_type = False
    for name, value in headers:
        size = len(name)
        if size >= 5 and name[:5].lower() == b"grip-":
            return True
        if (size == 12 and not seen_type and name.lower() == b"content-type"):
            seen_type = True
            if _media_type(value) == INSTRUCT_MEDIA_TYPE:
                return True
    return False


def strip_grip_headers(headers: Sequence[Header]) -> list[Header]:
    """``headers`` without any whose name starts with ``Grip-`` (any case)."""
    return [(n, v) for n, v in headers if n[:5].lower() != b"grip-"]


def _quote_param(value: str) -> str:
    if value and not any(c in value for c in ';,"\\ \t'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def grip_last_headers(last_ids: Mapping[str, str]) -> list[Header]:
    """``Grip-Last: <channel>; last-id=<id>`` headers, one per channel (grip.md §6, §7).

    The id is quoted when it holds ``;``, ``,``, ``"``, ``\\`` or whitespace, or is empty.
    A channel whose name or id holds CR, LF or NUL cannot be sent in a header and is
    left out.
    """
    out: list[Header] = []
    for channel, last_id in last_ids.items():
        line = f"{channel}; last-id={_quote_param(last_id)}"
        if _breaks_line(line):
            continue
        out.append((b"Grip-Last", line.encode("utf-8")))
    return out


# ---- parsing ------------------------------------------------------------------------------

def _fail(message: str) -> InstructionError:
    return InstructionError(message)


def _timeout(seconds: int | None, unreadable: str, invalid: str) -> int:
    """A header's timeout as :func:`_parse_int` read it.

    :raises InstructionError: ``unreadable`` when it is None, ``invalid`` when negative.
    """
    if seconds is None:
        raise _fail(unreadable)
    if seconds < 0:
        raise _fail(invalid)
    return seconds


def _param_timeout(params: Params, header: str, default: int) -> int:
    """The ``timeout`` parameter of ``header`` (Grip-Keep-Alive, Grip-Link); ``default``
    when absent."""
    if not has_param(params, "timeout"):
        return default
    return _timeout(_parse_int(get_param(params, "timeout")),
                    f"failed to parse {header} timeout value",
                    f"{header} timeout has invalid value")


def _member(obj: Mapping[str, object], key: str, kind: type[_T], owner: str) -> _T | None:
    """``obj[key]`` of the JSON object ``owner``, or None when absent.

    :raises InstructionError: ``<owner> contains '<key>' with wrong type``: not a ``kind``.
    """
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, kind):
        raise _fail(f"{owner} contains '{key}' with wrong type")
    return value


def _json_uint(obj: Mapping[str, object], key: str, owner: str, top: int = _INT_MAX) -> int:
    """``obj[key]`` of the JSON object ``owner``: an integer from 0 to ``top``.

    :raises InstructionError: ``... with wrong type`` or ``... with invalid value``.
    """
    value = _json_int(obj[key])
    if value is None:
        raise _fail(f"{owner} contains '{key}' with wrong type")
    if not 0 <= value <= top:
        raise _fail(f"{owner} contains '{key}' with invalid value")
    return value


def _list_elements(values: list[bytes]) -> list[str]:
    return [el for v in values for el in split_header_list(v.decode("latin-1"))]


def _parsed_elements(values: list[bytes], parse: Callable[[str], _T],
                     unparsable: str) -> Iterator[_T]:
    """Each element of a list header, read by ``parse`` (which raises ValueError).

    :raises InstructionError: ``unparsable`` when an element cannot be read.
    """
    for element in _list_elements(values):
        try:
            parsed = parse(element)
        except ValueError:
            raise _fail(unparsable) from None
        yield parsed


def _parse_channel_header(values: list[bytes]) -> list[Channel]:
    out: list[Channel] = []
    for name, params in _parsed_elements(values, parse_header_params,
                                         "failed to parse Grip-Channel"):
        if not name:
            raise _fail("failed to parse Grip-Channel")
        prev_id = get_param(params, "prev-id")
        filters = tuple(_text(v) for k, v in params if v and k.lower() == "filter")
        out.append(Channel(_text(name), _text(prev_id) if prev_id else None, filters))
    return out


def _parse_keep_alive_header(value: bytes) -> KeepAlive | None:
    try:
        data, params = parse_header_params(value.decode("latin-1"))
    except ValueError:
        raise _fail("failed to parse Grip-Keep-Alive") from None
    if not data:
        raise _fail("Grip-Keep-Alive cannot be empty")
    mode = get_param(params, "mode")
    if not mode:
        mode = "idle"
    elif mode not in ("idle", "interval"):
        raise _fail(f"no such Grip-Keep-Alive mode '{_text(mode)}'")
    timeout = _param_timeout(params, "Grip-Keep-Alive", DEFAULT_KEEP_ALIVE_TIMEOUT)
    fmt = get_param(params, "format")
    raw = data.encode("latin-1")
    if not fmt or fmt == "raw":
        content: bytes | None = raw
    elif fmt == "cstring":
        content = _unescape_cstring(raw)
        if content is None:
            raise _fail("failed to parse Grip-Keep-Alive cstring format")
    elif fmt == "base64":
        content = decode_base64(raw)
    else:
        raise _fail(f"no such Grip-Keep-Alive format '{_text(fmt)}'")
    # An empty keep-alive would be an empty body chunk, which chunked framing cannot carry.
    if not content:
        return None
    return KeepAlive(content, max(timeout, MIN_KEEP_ALIVE_TIMEOUT), mode)


def _parse_meta_header(values: list[bytes], meta: dict[str, str]) -> None:
    for params in _parsed_elements(values, parse_param_list, "failed to parse Grip-Set-Meta"):
        if not params or not params[0][0]:
            raise _fail("Grip-Set-Meta cannot be empty")
        key, val = params[0]
        meta[_text(key)] = _text(val or "")


def _parse_status_header(value: bytes) -> tuple[int, bytes]:
    code_raw, _, reason = value.partition(b" ")
    code = _parse_int(code_raw.decode("latin-1"))
    if code is None or not 0 <= code <= 999:
        raise _fail("Grip-Status contains invalid status code")
    return code, reason


def _resolve_link(link: str, request_url: str) -> str:
    invalid = _fail("Grip-Link contains invalid link")
    if not all("\x21" <= c <= "\x7e" for c in link):
        raise invalid
    try:
        # Reading the port validates it (a non-numeric port raises ValueError).
        _ = urlsplit(link).port
        url = urldefrag(urljoin(request_url, link)).url
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise invalid from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid
    return url


def _parse_link_header(values: list[bytes], request_url: str) -> NextLink | None:
    found: NextLink | None = None
    for first, params in _parsed_elements(values, parse_header_params,
                                          "failed to parse Grip-Link value"):
        if not params:
            continue
        if len(first) <= 2 or first[0] != "<" or first[-1] != ">":
            raise _fail("failed to parse Grip-Link value")
        link = first[1:-1]
        if get_param(params, "rel") != "next":
            # Still validated, as Pushpin does for every link with parameters.
            _resolve_link(link, request_url)
            continue
        url = _resolve_link(link, request_url)
        timeout = _param_timeout(params, "Grip-Link", DEFAULT_NEXT_LINK_TIMEOUT)
        found = NextLink(url, timeout)  # the last rel=next wins
    return found


class _Json:
    """Accumulates what the JSON body adds to the header-derived instruction."""

    def __init__(self, hold: str | None, timeout: int | None, keep_alive: KeepAlive | None,
                 status: int, reason: bytes) -> None:
        self.hold, self.timeout, self.keep_alive = hold, timeout, keep_alive
        self.status, self.reason = status, reason
        self.channels: list[Channel] = []
        self.meta: dict[str, str] = {}
        self.headers: list[Header] = []
        self.body = b""

    def parse(self, body: bytes) -> None:
        try:
            doc = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise _fail("failed to parse application/grip-instruct content as JSON") from None
        if not isinstance(doc, dict):
            raise _fail("instruct must be an object")
        if (hold := _member(doc, "hold", dict, "instruct")) is not None:
            self._hold(hold)
        if (response := _member(doc, "response", dict, "instruct")) is not None:
            self._response(response)

    def _hold(self, hold: dict[str, object]) -> None:
        mode = hold.get("mode")
        if mode is None:
            self.hold = "response"
        elif not isinstance(mode, str):
            raise _fail("hold contains 'mode' with wrong type")
        elif not mode:
            raise _fail(_JSON_HOLD_ERROR)
        else:
            self.hold = mode
        channels = _member(hold, "channels", list, "hold")
        if channels is None:
            raise _fail("hold does not contain 'channels'")
        self.channels.extend(_json_channel(raw) for raw in channels)
        if "timeout" in hold:
            self.timeout = _json_uint(hold, "timeout", "hold")
        if (ka := _member(hold, "keep-alive", dict, "hold")) is not None:
            self.keep_alive = _json_keep_alive(ka)
        if (meta := _member(hold, "meta", dict, "hold")) is not None:
            for key, val in meta.items():
                if not isinstance(val, str):
                    raise _fail(f"'meta' contains '{key}' with wrong type")
                self.meta[key] = val

    def _response(self, response: dict[str, object]) -> None:
        if "code" in response:
            self.status, self.reason = _json_uint(response, "code", "response", 999), b""
        if (reason := _member(response, "reason", str, "response")) is not None:
            if _breaks_line(reason):
                raise _fail("response contains 'reason' with invalid value")
            if reason:
                self.reason = reason.encode("utf-8")
        if "headers" in response:
            self._headers(response["headers"])
        if (body_bin := _member(response, "body-bin", str, "response")) is not None:
            self.body = decode_base64(body_bin)
        elif (text := _member(response, "body", str, "response")) is not None:
            self.body = text.encode("utf-8")

    def _headers(self, raw: object) -> None:
        pairs: list[tuple[str, str]] = []
        if isinstance(raw, list):
            for item in raw:
                if not isinstance(item, list):
                    raise _fail("headers contains element with wrong type")
                if len(item) != 2:
                    raise _fail("headers contains list with wrong number of elements")
                name, val = item
                if not isinstance(name, str):
                    raise _fail("header contains name element with wrong type")
                if not isinstance(val, str):
                    raise _fail("header contains value element with wrong type")
                pairs.append((name, val))
        elif isinstance(raw, dict):
            for name, val in raw.items():
                if not isinstance(val, str):
                    raise _fail(f"headers contains '{name}' with wrong type")
                pairs.append((name, val))
        else:
            raise _fail("response contains 'headers' with wrong type")
        for name, val in pairs:
            # Checked here so that a bad header is the backend's error, not a crash
            # when the response is written.
            if not _TOKEN.fullmatch(name):
                raise _fail(f"headers contains invalid name '{name}'")
            if _breaks_line(val):
                raise _fail(f"headers contains '{name}' with invalid value")
            self.headers.append((name.encode("ascii"), val.encode("utf-8")))


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _json_channel(raw: object) -> Channel:
    if not isinstance(raw, dict):
        raise _fail("channel is not an object")
    name = _member(raw, "name", str, "channel")
    if name is None:
        raise _fail("channel does not contain 'name'")
    if not name:
        raise _fail("channel contains 'name' with invalid value")
    prev_id = raw.get("prev-id")
    if prev_id is not None and not isinstance(prev_id, str):
        raise _fail("channel contains 'prev-id' with wrong type")
    filters: list[str] = []
    for f in _member(raw, "filters", list, "channel") or ():
        if not isinstance(f, str):
            raise _fail("filters contains value with wrong type")
        if f:
            filters.append(f)
    return Channel(name, prev_id or None, tuple(filters))


def _json_keep_alive(raw: dict[str, object]) -> KeepAlive | None:
    data = b""
    if (content_bin := _member(raw, "content-bin", str, "keep-alive")) is not None:
        data = decode_base64(content_bin)
    elif (content := _member(raw, "content", str, "keep-alive")) is not None:
        data = content.encode("utf-8")
    timeout = DEFAULT_KEEP_ALIVE_TIMEOUT
    if "timeout" in raw:
        timeout = _json_uint(raw, "timeout", "keep-alive")
    if not data:
        return None
    return KeepAlive(data, max(timeout, MIN_KEEP_ALIVE_TIMEOUT), "interval")


def _finish_channels(channels: list[Channel], prefix: str,
                     max_channels: int) -> tuple[tuple[Channel, ...], int]:
    """Prefix names, drop repeats (the first one wins), cap at ``max_channels``."""
    out: list[Channel] = []
    seen: set[str] = set()
    for c in channels:
        name = prefix + c.name
        if name in seen:
            continue
        seen.add(name)
        out.append(Channel(name, c.prev_id, c.filters) if prefix else c)
    limit = max(max_channels, 0)
    return tuple(out[:limit]), max(len(out) - limit, 0)


def parse_instruct(status: int, reason: bytes, headers: Sequence[Header], body: bytes, *,
                   request_url: str, channel_prefix: str = "",
                   max_channels: int = 20) -> Instruct:
    """Parse a backend response that :func:`is_grip_response` accepted (grip.md §3).

    Both forms are read: ``Grip-*`` headers, and an ``application/grip-instruct`` JSON
    body (which discards the HTTP headers and body but keeps the ``Grip-*`` ones). Any
    non-empty Grip-Hold value (or JSON ``hold.mode``) is accepted: the caller looks it up
    among the registered hold modes.

    :param status: the backend's status code.
    :param reason: the backend's reason phrase; empty means the standard phrase.
    :param request_url: the absolute URL of the request, for relative Grip-Link URLs.
    :param channel_prefix: the route's ``prefix``, put before every channel name.
    :param max_channels: channels beyond this many are dropped (counted in
        ``dropped_channels``).
    :raises InstructionError: with Pushpin's message for the first problem found.
    """
    grip: dict[bytes, list[bytes]] = {}
    plain: list[Header] = []
    content_type: bytes | None = None
    for name, value in headers:
        low = name.lower()
        if low[:5] == b"grip-":
            grip.setdefault(low, []).append(value)
            continue
        if content_type is None and low == b"content-type":
            content_type = value
        plain.append((name, value))

    def first(name: bytes) -> bytes | None:
        values = grip.get(name)
        return values[0].strip() if values else None

    hold: str | None = None
    if (raw_hold := first(b"grip-hold")) is not None:
        hold = _text(raw_hold.decode("latin-1"))
        if not hold:
            raise _fail(_HOLD_ERROR)

    channels = _parse_channel_header(grip.get(b"grip-channel", []))

    timeout: int | None = None
    if (raw_timeout := first(b"grip-timeout")) is not None:
        timeout = _timeout(_parse_int(raw_timeout.decode("latin-1")),
                           "failed to parse Grip-Timeout", "Grip-Timeout has invalid value")

    expose = {el.encode("latin-1").lower()
              for el in _list_elements(grip.get(b"grip-expose-headers", [])) if el}

    keep_alive: KeepAlive | None = None
    if (raw_ka := first(b"grip-keep-alive")) is not None:
        keep_alive = _parse_keep_alive_header(raw_ka)

    meta: dict[str, str] = {}
    _parse_meta_header(grip.get(b"grip-set-meta", []), meta)

    code, phrase = status, reason
    if raw_status := first(b"grip-status"):
        code, phrase = _parse_status_header(raw_status)

    next_link = _parse_link_header(grip.get(b"grip-link", []), request_url)

    if content_type is not None and _media_type(content_type) == INSTRUCT_MEDIA_TYPE:
        if status != 200:
            raise _fail("response code for application/grip-instruct content must be 200")
        js = _Json(hold, timeout, keep_alive, code, phrase)
        js.parse(body)
        hold, timeout, keep_alive = js.hold, js.timeout, js.keep_alive
        code, phrase = js.status, js.reason
        channels += js.channels
        meta.update(js.meta)
        out_headers: Sequence[Header] = js.headers
        out_body = js.body
    else:
        out_headers = [h for h in plain if h[0].lower() in expose] if expose else plain
        out_body = body

    final_channels, dropped = _finish_channels(channels, channel_prefix, max_channels)
    return Instruct(
        hold=hold,
        channels=final_channels,
        timeout=max(DEFAULT_RESPONSE_TIMEOUT if timeout is None else timeout,
                    MIN_RESPONSE_TIMEOUT),
        keep_alive=keep_alive,
        next_link=next_link,
        meta=MappingProxyType(meta),
        status=code,
        reason=phrase or status_reason(code),
        headers=_final_headers(out_headers),
        body=out_body,
        dropped_channels=dropped,
    )
