"""Which headers pass between client and backend, and which the proxy adds (grip.md §2, §3.1).

Plain functions over h11-style header lists (lowercase ``bytes`` names).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Headers = list[tuple[bytes, bytes]]

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


def request_headers(headers: Sequence[tuple[bytes, bytes]], *, trusted: bool,
                    overrides: Sequence[tuple[str, str]] = (), host: bytes | None = None,
                    peer: str = "", xff_rules: Sequence[str] = (),
                    added: Sequence[tuple[bytes, bytes]] = ()) -> Headers:
    """The headers a backend receives for a client request.

    :param trusted: the client is a trusted upstream proxy: its ``Grip-*`` headers stay.
    :param overrides: the route's ``header`` settings; an empty value only removes.
    :param host: a replacement ``Host`` value (``as_host``).
    :param added: headers the proxy adds last (``Grip-Sig``, ``Grip-Feature``, ...).
    """
    drop = {*_REQUEST_DROP, *_connection_tokens(headers), b"x-forwarded-for"}
    drop |= {name.lower().encode() for name, _ in overrides}
    if host is not None:
        drop.add(b"host")
    out = [(n, v) for n, v in headers
           if n not in drop and (trusted or not n.startswith(b"grip-"))]
    if host is not None:
        out.insert(0, (b"host", host))
    out.extend((n.lower().encode(), v.encode()) for n, v in overrides if v)
    if (xff := forwarded_for(headers, peer, xff_rules)) is not None:
        out.append((b"x-forwarded-for", xff))
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
