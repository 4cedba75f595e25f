"""Which headers pass between client and backend, and which the proxy adds (grip.md §2, §3.1).

Plain functions over h11-style header lists (lowercase ``bytes`` names).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

Headers = list[tuple[bytes, bytes]]

PROTO_MODES = ("proto-only", "both", "off")
"""Values of ``[proxy] set_x_forwarded_protocol``."""
_PROTO_HEADERS = (b"x-forwarded-proto", b"x-forwarded-protocol")


class Forwarding(Protocol):
    """The ``[proxy]`` keys that say how a backend learns where a request came from."""

    @property
    def x_forwarded_for(self) -> tuple[str, ...]: ...

    @property
    def x_forwarded_for_trusted(self) -> tuple[str, ...]: ...

    @property
    def set_x_forwarded_protocol(self) -> str: ...

    @property
    def accept_x_forwarded_protocol(self) -> bool: ...

GRIP_FEATURE = (b"status, session, link:next, filter:skip-self, filter:skip-users, "
                b"filter:require-sub, filter:build-id, filter:var-subst")

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                        b"transfer-encoding", b"upgrade"})
# Content-Length is set again from the body the proxy actually sends; Accept-Encoding is
# dropped so that GRIP bodies and published content share one (identity) encoding.
_REQUEST_DROP = HOP_BY_HOP | {b"accept-encoding", b"expect", b"content-length"}


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """Header names listed in ``Connection`` (they are hop-by-hop too)."""
    return {t.strip().lower() for n, v in headers
            if n.lower() == b"connection" for t in v.split(b",")}


def forwarded_for(headers: Sequence[tuple[bytes, bytes]], peer: str,
                  rules: Sequence[str]) -> bytes | None:
    """The ``X-Forwarded-For`` value to send after applying ``rules`` (``truncate:N``,
    ``append``), or ``None`` to send none. No rules: the client's value, untouched."""
    values = [v for n, v in headers if n == b"x-forwarded-for"]
    if not rules:
        return b", ".join(values) if values else None
    hops = [h.strip() for v in values for h in v.split(b",") if h.strip()]
    for rule in rules:
        if rule == "append":
            hops.append(peer.encode())
        else:
            keep = int(rule.partition(":")[2])
            hops = hops[len(hops) - keep:] if keep else []
    return b", ".join(hops) if hops else None


def says_secure(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether the client's ``X-Forwarded-Proto`` or ``X-Forwarded-Protocol`` names a TLS
    scheme (``https``, ``wss``): what ``accept_x_forwarded_protocol`` trusts."""
    return any(n in _PROTO_HEADERS and v.strip().lower() in (b"https", b"wss")
               for n, v in headers)


def request_headers(headers: Sequence[tuple[bytes, bytes]], *, trusted: bool,
                    overrides: Sequence[tuple[str, str]] = (), host: bytes | None = None,
                    peer: str = "", secure: bool = False, websocket: bool = False,
                    forwarding: Forwarding | None = None,
                    added: Sequence[tuple[bytes, bytes]] = ()) -> Headers:
    """The headers a backend receives for a client request.

    :param trusted: the client is a trusted upstream proxy: its ``Grip-*`` headers stay.
    :param overrides: the route's ``header`` settings; an empty value only removes.
    :param host: a replacement ``Host`` value (``as_host``).
    :param secure: the client's connection is TLS (or says so and is believed).
    :param websocket: the client's connection is a WebSocket (``wss``, not ``https``).
    :param forwarding: the ``X-Forwarded-*`` rules; none passes the client's untouched.
    :param added: headers the proxy adds last (``Grip-Sig``, ``Grip-Feature``, ...).
    """
    drop = {*_REQUEST_DROP, *_connection_tokens(headers), b"x-forwarded-for"}
    proto = forwarding.set_x_forwarded_protocol if forwarding else "off"
    if proto != "off" or (forwarding and forwarding.accept_x_forwarded_protocol):
        drop.update(_PROTO_HEADERS)
    drop |= {name.lower().encode() for name, _ in overrides}
    if host is not None:
        drop.add(b"host")
    out = [(n, v) for n, v in headers
           if n not in drop and (trusted or not n.startswith(b"grip-"))]
    if host is not None:
        out.insert(0, (b"host", host))
    out.extend((n.lower().encode(), v.encode()) for n, v in overrides if v)
    rules = ((forwarding.x_forwarded_for_trusted if trusted else forwarding.x_forwarded_for)
             if forwarding else ())
    if (xff := forwarded_for(headers, peer, rules)) is not None:
        out.append((b"x-forwarded-for", xff))
    if secure and proto != "off":
        scheme = b"wss" if websocket else b"https"
        out.append((b"x-forwarded-proto", scheme))
        if proto == "both":
            out.append((b"x-forwarded-protocol", scheme))
    out.extend(added)
    return out


def response_headers(headers: Sequence[tuple[bytes, bytes]]) -> Headers:
    """The headers a client receives for a plain (non-GRIP) backend response."""
    drop = HOP_BY_HOP | _connection_tokens(headers)
    return [(n.lower(), v) for n, v in headers if n.lower() not in drop]


def request_body_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    """The request body's length from its head: ``None`` when chunked, ``0`` when absent."""
    if any(n == b"transfer-encoding" for n, _ in headers):
        return None
    for n, v in headers:
        if n == b"content-length":
            return int(v)
    return 0
