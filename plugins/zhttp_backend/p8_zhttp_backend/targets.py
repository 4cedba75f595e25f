"""Route targets to ZeroMQ endpoints, and HTTP requests/responses to ZHTTP fields.

Plain functions, no sockets: what a ``zhttp+…``/``zhttpreq+…`` target binds
(``zhttp.md`` §3, §4.1) and how an :class:`OriginRequest` becomes packet fields.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Final

from p8core import OriginRequest

from .packets import Headers, ResponseHead

# Methods that get ``Content-Length: 0`` when they have no body, as with HTTP backends.
_LENGTH_REQUIRED_METHODS: Final = frozenset({b"POST", b"PUT", b"PATCH"})
_FRAMING: Final = frozenset({b"content-length", b"transfer-encoding"})


def instance_address() -> bytes:
    """This process's ZHTTP address (``from``), unique even across hosts."""
    return b"p8-proxy_%d_%s" % (os.getpid(), os.urandom(4).hex().encode())


def zmq_spec(target: str) -> str:
    """The ZeroMQ endpoint of ``zhttp+tcp://HOST:PORT``, ``zhttpreq+ipc://PATH``, ….

    :raises ValueError: the target is not ``<kind>+tcp://HOST:PORT`` or ``<kind>+ipc://PATH``.
    """
    kind, plus, spec = target.partition("+")
    transport, sep, address = spec.partition("://")
    transport = transport.lower()
    if not plus or not sep or kind.lower() not in ("zhttp", "zhttpreq"):
        raise ValueError(f"bad target {target!r}: expected zhttp+tcp://HOST:PORT, "
                         "zhttpreq+tcp://HOST:PORT or zhttp(req)+ipc://PATH")
    if transport == "ipc":
        if not address:
            raise ValueError(f"bad target {target!r}: an ipc target needs a path")
        return f"ipc://{address}"
    if transport != "tcp":
        raise ValueError(f"bad target {target!r}: the transport must be tcp or ipc")
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"bad target {target!r}: expected tcp://HOST:PORT")
    return f"tcp://{host}:{int(port)}"


def stream_endpoints(spec: str) -> tuple[str, str, str]:
    """The three endpoints of a streaming target: PUSH, ROUTER and SUB (``zhttp.md`` §4.1).

    ``tcp://HOST:PORT`` gives ports PORT, PORT+1 and PORT+2; ``ipc://PATH`` gives
    ``PATH-out``, ``PATH-out-stream`` and ``PATH-in``.

    :raises ValueError: PORT+2 is not a valid port.
    """
    if spec.startswith("ipc://"):
        return f"{spec}-out", f"{spec}-out-stream", f"{spec}-in"
    base, _, port_text = spec.rpartition(":")
    port = int(port_text)
    if port + 2 > 65535:
        raise ValueError(f"bad target: a streaming target uses ports {port}-{port + 2}")
    return spec, f"{base}:{port + 1}", f"{base}:{port + 2}"


def request_uri(req: OriginRequest, *, websocket: bool = False) -> bytes:
    """The absolute URI a handler gets: ``http://`` (``https://`` for a client on TLS;
    ``ws://`` or ``wss://`` for a WebSocket handshake) + the request's Host + its target."""
    host = next((value for name, value in req.headers if name.lower() == b"host"),
                b"localhost")
    scheme = (b"ws" if websocket else b"http") + (b"s" if req.secure else b"")
    return scheme + b"://" + host + req.target


def request_headers(req: OriginRequest, length: int | None) -> Headers:
    """The request's headers with the body length the handler is told, if known.

    :param length: the body's length, or None when it streams without a known length.
    """
    headers = [(name, value) for name, value in req.headers if name.lower() not in _FRAMING]
    if length or (length == 0 and req.method in _LENGTH_REQUIRED_METHODS):
        headers.append((b"content-length", b"%d" % length))
    return tuple(headers)


def client_headers(head: ResponseHead, length: int | None) -> list[tuple[bytes, bytes]]:
    """The response headers for the client; framing is p8's, from the body it relays.

    :param length: the body's length to announce, or None to keep the handler's
        ``Content-Length`` (if any) and otherwise let the client connection choose.
    """
    drop = _FRAMING if length is not None else frozenset({b"transfer-encoding"})
    headers = [(name, value) for name, value in head.headers if name not in drop]
    if length is not None:
        headers.append((b"content-length", b"%d" % length))
    return headers


def mentioned_id(raw: bytes, ids: Iterable[bytes]) -> bytes | None:
    """The one outstanding session id that occurs in an unreadable reply, if exactly one does.

    Ids are random, so a reply that mentions one was meant for that session even when
    it cannot be parsed (a ``J``-prefixed JSON reply, say).
    """
    found = [ident for ident in ids if ident in raw]
    return found[0] if len(found) == 1 else None
