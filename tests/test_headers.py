"""Header policies between client and backend (grip.md §2.2, §2.3, §3.1), without sockets."""

from __future__ import annotations

from p8core.proxy.headers import (
    forwarded_for,
    request_body_length,
    request_headers,
    response_headers,
)

CLIENT = [(b"host", b"a.example"), (b"connection", b"keep-alive, x-secret"),
          (b"x-secret", b"1"), (b"keep-alive", b"300"), (b"te", b"trailers"),
          (b"accept-encoding", b"gzip"), (b"expect", b"100-continue"),
          (b"content-length", b"5"), (b"grip-sig", b"forged"), (b"cookie", b"c=1"),
          (b"x-forwarded-for", b"10.0.0.1, 10.0.0.2")]


def test_hop_by_hop_and_grip_headers_never_reach_the_backend() -> None:
    out = request_headers(CLIENT, trusted=False, added=[(b"grip-sig", b"real")])
    assert out == [(b"host", b"a.example"), (b"cookie", b"c=1"),
                   (b"x-forwarded-for", b"10.0.0.1, 10.0.0.2"), (b"grip-sig", b"real")]


def test_trusted_clients_keep_their_grip_headers() -> None:
    assert (b"grip-sig", b"forged") in request_headers(CLIENT, trusted=True)


def test_route_overrides_and_host() -> None:
    out = request_headers(CLIENT, trusted=False, host=b"internal:8080",
                          overrides=[("Cookie", ""), ("X-Route", "r")])
    assert out[0] == (b"host", b"internal:8080")
    assert (b"cookie", b"c=1") not in out and (b"x-route", b"r") in out


def test_forwarded_for_rules() -> None:
    headers = [(b"x-forwarded-for", b"1.1.1.1, 2.2.2.2"), (b"x-forwarded-for", b"3.3.3.3")]
    assert forwarded_for(headers, "9.9.9.9", []) == b"1.1.1.1, 2.2.2.2, 3.3.3.3"
    assert forwarded_for(headers, "9.9.9.9", ["append"]) == b"1.1.1.1, 2.2.2.2, 3.3.3.3, 9.9.9.9"
    assert forwarded_for(headers, "9.9.9.9", ["truncate:1", "append"]) == b"3.3.3.3, 9.9.9.9"
    assert forwarded_for(headers, "9.9.9.9", ["truncate:0"]) is None
    assert forwarded_for([], "9.9.9.9", []) is None


def test_response_headers_drop_hop_by_hop_in_any_case() -> None:
    out = response_headers([(b"Connection", b"X-Hop"), (b"X-Hop", b"1"),
                            (b"Transfer-Encoding", b"chunked"), (b"X-Kept", b"k")])
    assert out == [(b"x-kept", b"k")]


def test_request_body_length() -> None:
    assert request_body_length([(b"content-length", b"12")]) == 12
    assert request_body_length([(b"transfer-encoding", b"chunked")]) is None
    assert request_body_length([]) == 0


class _Rules:
    """A ``[proxy]`` table's forwarding keys."""

    def __init__(self, proto: str = "proto-only", accept: bool = False) -> None:
        self.x_forwarded_for = ("append",)
        self.x_forwarded_for_trusted = ("truncate:0", "append")
        self.set_x_forwarded_protocol = proto
        self.accept_x_forwarded_protocol = accept


FORGED = [(b"x-forwarded-proto", b"https"), (b"x-forwarded-protocol", b"https")]


def test_forwarded_proto_for_tls_clients_and_forged_copies_removed() -> None:
    out = request_headers(FORGED, trusted=False, secure=True, forwarding=_Rules())
    assert [h for h in out if h[0].startswith(b"x-forwarded-proto")] == [
        (b"x-forwarded-proto", b"https")]
    out = request_headers(FORGED, trusted=False, secure=True, websocket=True,
                          forwarding=_Rules("both"))
    assert out[-2:] == [(b"x-forwarded-proto", b"wss"), (b"x-forwarded-protocol", b"wss")]
    assert not any(n.startswith(b"x-forwarded-proto")
                   for n, _ in request_headers(FORGED, trusted=False, forwarding=_Rules()))
    off = request_headers(FORGED, trusted=False, secure=True, forwarding=_Rules("off"))
    assert off[:2] == FORGED, "off, and not accepted: the client's copies pass untouched"


def test_trusted_clients_have_their_own_forwarded_for_rules() -> None:
    headers = [(b"x-forwarded-for", b"1.1.1.1")]
    assert (b"x-forwarded-for", b"1.1.1.1, 9.9.9.9") in request_headers(
        headers, trusted=False, peer="9.9.9.9", forwarding=_Rules())
    assert (b"x-forwarded-for", b"9.9.9.9") in request_headers(
        headers, trusted=True, peer="9.9.9.9", forwarding=_Rules())
