"""The reverse proxy over real sockets: methods, bodies, headers, signing, errors."""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import ssl
import subprocess
import time
from pathlib import Path

import anyio
import gripcontrol
import httpx
import jwt
import pytest
from anyio.streams.tls import TLSListener

from p8core.testing import Reply, SeenRequest, run_origin, run_p8

pytestmark = pytest.mark.anyio


def hs256(claims: dict[str, object], key: bytes) -> str:
    """A JWT signed with any key, the empty one included (PyJWT refuses that)."""
    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing = part(b'{"typ":"JWT","alg":"HS256"}') + b"." + part(json.dumps(claims).encode())
    return (signing + b"." + part(hmac.digest(key, signing, "sha256"))).decode()


def echo(req: SeenRequest) -> Reply:
    return Reply(201, [("X-Method", req.method), ("X-Len", str(len(req.body)))],
                 req.method + b" " + req.target + b"\n" + req.body)


async def _raw(port: int, data: bytes, *, until_close: bool = True) -> bytes:
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(data)
            out = b""
            try:
                while True:
                    out += await stream.receive()
                    if not until_close and b"\r\n\r\n" in out:
                        return out
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return out


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_every_method_and_body_passes_both_ways(method: str) -> None:
    async with run_origin(echo) as origin, \
            run_p8({"routes": [{"target": origin.target}]}) as p8, \
            httpx.AsyncClient() as client:
        for body in (b"", b"x" * 10, b"y" * 200_000):
            resp = await client.request(method, f"{p8.url}/p/a?q=1&r=%20", content=body)
            assert resp.status_code == 201
            assert resp.headers["x-method"] == method
            assert resp.content == method.encode() + b" /p/a?q=1&r=%20\n" + body
            assert origin.requests[-1].body == body


async def test_chunked_upload_and_head() -> None:
    async def parts():  # type: ignore[no-untyped-def]
        for i in range(5):
            yield b"part%d," % i

    async with run_origin(echo) as origin, \
            run_p8({"routes": [{"target": origin.target}]}) as p8, \
            httpx.AsyncClient() as client:
        resp = await client.post(f"{p8.url}/up", content=parts())
        assert resp.content.endswith(b"part0,part1,part2,part3,part4,")
        assert origin.requests[-1].header(b"transfer-encoding") == b"chunked"
        head = await client.head(f"{p8.url}/h")
        assert (head.status_code, head.content) == (201, b"")
        assert origin.requests[-1].method == b"HEAD"


async def test_headers_removed_added_and_signed() -> None:
    async with run_origin(lambda r: Reply(200, [("Keep-Alive", "timeout=5"),
                                                ("Connection", "X-Hop"), ("X-Hop", "1"),
                                                ("X-Kept", "yes")], b"ok")) as origin, \
            run_p8({"routes": [{"target": origin.target}]}) as p8, \
            httpx.AsyncClient() as client:
        resp = await client.get(f"{p8.url}/", headers={
            "Host": "example.com", "Connection": "keep-alive, X-Private", "X-Private": "p",
            "TE": "trailers", "Accept-Encoding": "gzip", "Grip-Sig": "forged",
            "Grip-Last": "c; last-id=1", "X-Forwarded-For": "10.0.0.1", "X-App": "kept"})
        seen = origin.requests[-1]
        names = {n for n, _ in seen.headers}
        assert {b"x-private", b"te", b"accept-encoding", b"grip-last"}.isdisjoint(names)
        assert seen.header(b"host") == b"example.com"
        assert seen.header(b"x-app") == b"kept"
        assert seen.header(b"x-forwarded-for") == b"10.0.0.1"
        assert seen.header(b"grip-feature").startswith(b"status, session, link:next")
        token = seen.header(b"grip-sig")
        assert token is not None and token != b"forged"
        assert gripcontrol.validate_sig(token.decode(), "changeme")
        assert not gripcontrol.validate_sig(token.decode(), "other")
        claims = jwt.decode(token, "changeme", algorithms=["HS256"])
        assert claims["iss"] == "pushpin" and 3590 < claims["exp"] - time.time() <= 3600
        assert resp.headers["x-kept"] == "yes"
        assert "keep-alive" not in resp.headers and "x-hop" not in resp.headers


async def test_empty_sig_key_sends_no_signature_and_route_keys_override() -> None:
    config = {"proxy": {"sig_key": ""},
              "routes": [{"target": "", "path_prefix": "/own", "sig_iss": "me",
                          "sig_key": "routekey"}, {"target": ""}]}
    async with run_origin(echo) as origin:
        for route in config["routes"]:
            route["target"] = origin.target
        async with run_p8(config) as p8, httpx.AsyncClient() as client:
            await client.get(f"{p8.url}/")
            assert origin.requests[-1].header(b"grip-sig") is None
            await client.get(f"{p8.url}/own")
            token = origin.requests[-1].header(b"grip-sig")
            assert token is not None
            assert jwt.decode(token, "routekey", algorithms=["HS256"])["iss"] == "me"


async def test_trusted_upstream_keeps_grip_and_gets_instructions_verbatim() -> None:
    grip = Reply(200, [("Grip-Hold", "stream"), ("Grip-Channel", "up")], b"held\n")
    async with run_origin(lambda r: grip) as origin, \
            run_p8({"proxy": {"upstream_key": "upkey"},
                    "routes": [{"target": origin.target}]}) as p8, \
            httpx.AsyncClient() as client:
        good = jwt.encode({"iss": "x", "exp": int(time.time()) + 60}, "upkey")
        resp = await client.get(f"{p8.url}/", headers={"Grip-Sig": good, "Grip-Last": "a"})
        assert resp.headers["grip-hold"] == "stream" and resp.text == "held\n"
        seen = origin.requests[-1]
        assert seen.header(b"grip-sig") == good.encode()
        assert seen.header(b"grip-last") == b"a"
        assert seen.header(b"grip-feature") is None
        empty = hs256({"exp": int(time.time()) + 60}, b"")
        with anyio.fail_after(5):
            async with client.stream("GET", f"{p8.url}/", headers={"Grip-Sig": empty}) as held:
                assert "grip-hold" not in held.headers, "an empty-key token is never trusted"


async def test_no_upstream_key_trusts_nobody() -> None:
    grip = Reply(200, [("Grip-Status", "299 Custom Thing"), ("Grip-Foo", "x"),
                       ("X-Keep", "1")], b"direct\n")
    async with run_origin(lambda r: grip) as origin, \
            run_p8({"proxy": {"upstream_key": ""},
                    "routes": [{"target": origin.target}]}) as p8, \
            httpx.AsyncClient() as client:
        empty = hs256({"exp": int(time.time()) + 60}, b"")
        resp = await client.get(f"{p8.url}/", headers={"Grip-Sig": empty})
        assert (resp.status_code, resp.reason_phrase, resp.text) == (
            299, "Custom Thing", "direct\n")
        assert "grip-foo" not in resp.headers and resp.headers["x-keep"] == "1"
        assert origin.requests[-1].header(b"grip-sig") != empty.encode()


async def test_grip_errors_are_502_with_a_reason_on_debug_routes() -> None:
    replies = {
        b"/bad": Reply(200, [("Grip-Hold", "stream"), ("Grip-Timeout", "soon")], b""),
        b"/mode": Reply(200, [("Grip-Hold", "carrier-pigeon"), ("Grip-Channel", "c")], b""),
    }
    async with run_origin(lambda r: replies[r.target]) as origin, \
            run_p8({"routes": [{"target": origin.target, "debug": True},
                               {"path_prefix": "/quiet/", "replace_beg": "/",
                                "target": origin.target}]}) as p8, \
            httpx.AsyncClient() as client:
        resp = await client.get(f"{p8.url}/mode")
        assert (resp.status_code, resp.text) == (
            502, "no enabled plugin provides hold mode 'carrier-pigeon'\n")
        resp = await client.get(f"{p8.url}/bad")
        assert resp.status_code == 502
        assert resp.text.startswith("Failed to parse accept instructions: ")
        for path in ("/quiet/mode", "/quiet/bad"):
            resp = await client.get(f"{p8.url}{path}")
            assert (resp.status_code, resp.text) == (502, "Error while proxying to origin.\n")


async def test_grip_body_and_request_limits() -> None:
    big = Reply(200, [("Grip-Hold", "response"), ("Grip-Channel", "c")], b"x" * 100_001)
    small = Reply(200, [("Grip-Hold", "response"), ("Grip-Channel", "c")], b"")
    async with run_origin(lambda r: big if r.target == b"/big" else small) as origin, \
            run_p8({"routes": [{"target": origin.target, "debug": True}]}) as p8, \
            httpx.AsyncClient() as client:
        resp = await client.get(f"{p8.url}/big")
        assert resp.status_code == 502 and "too large" in resp.text
        resp = await client.post(f"{p8.url}/small", content=b"y" * 100_001)
        assert (resp.status_code, resp.text) == (400,
                                                 "Request too large to accept GRIP instruct.\n")


async def test_dead_backend_502_and_slow_backend_504() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    silent = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener:
        free = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        refused = free.extra(anyio.abc.SocketAttribute.local_port)
        await free.aclose()
        config = {"proxy": {"backend_timeout": 0.3, "debug": True},
                  "routes": [{"path_prefix": "/dead", "target": f"http://127.0.0.1:{refused}"},
                             {"path_prefix": "/slow", "target": f"http://127.0.0.1:{silent}"}]}
        async with run_p8(config) as p8, httpx.AsyncClient() as client:
            resp = await client.get(f"{p8.url}/dead")
            assert resp.status_code == 502
            assert resp.text.count("\n") == 1 and "cannot reach" in resp.text
            started = time.monotonic()
            resp = await client.get(f"{p8.url}/slow")
            assert resp.status_code == 504 and resp.text.count("\n") == 1
            assert time.monotonic() - started < 2


async def test_failover_to_the_next_target() -> None:
    free = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    refused = free.extra(anyio.abc.SocketAttribute.local_port)
    await free.aclose()
    async with run_origin(echo) as origin, \
            run_p8({"routes": [{"target": [f"http://127.0.0.1:{refused}", origin.target]}]}) \
            as p8, httpx.AsyncClient() as client:
        assert (await client.get(f"{p8.url}/f")).status_code == 201


async def test_no_route_for_host() -> None:
    config = {"routes": [{"host": "example.org", "path_prefix": "/only/", "target": "test"},
                         {"target": "test"}]}
    async with run_p8(config) as p8, httpx.AsyncClient() as client:
        resp = await client.get(f"{p8.url}/other", headers={"Host": "example.org"})
        assert (resp.status_code, resp.text) == (502, "No route for host: example.org\n")
        resp = await client.get(f"{p8.url}/only/", headers={"Host": "Example.ORG:8080"})
        assert resp.status_code == 200


async def test_malformed_oversized_and_too_many_connections() -> None:
    async with run_p8({"server": {"client_buffer_size": 1024, "max_connections": 2}}) as p8:
        bad = await _raw(p8.bound.port, b"NOT HTTP AT ALL\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        big = await _raw(p8.bound.port, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 2000
                         + b"\r\n\r\n")
        assert big.startswith(b"HTTP/1.1 431 ")
        with anyio.fail_after(5):
            a = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
            b = await anyio.connect_tcp("127.0.0.1", p8.bound.port)
            await anyio.sleep(0.05)
            third = await _raw(p8.bound.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert third.startswith(b"HTTP/1.1 503 ")
            await a.aclose()
            await b.aclose()
            await anyio.sleep(0.05)
        ok = await _raw(p8.bound.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 ")
        assert p8.app.metrics.connections_refused == 1


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    async with run_origin(echo) as origin, \
            run_p8({"routes": [{"target": origin.target}]}) as p8:
        out = await _raw(p8.bound.port,
                         b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                         b"GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert out.count(b"HTTP/1.1 201 ") == 3
        assert b"POST /2\nabc" in out
        assert origin.connections == 1, "the origin connection is pooled"


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a certificate for 127.0.0.1 that nobody trusts."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_https_backend_verified_unless_the_route_is_insecure(
        self_signed: ssl.SSLContext) -> None:
    async def serve(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, ssl.SSLError):
                while b"\r\n\r\n" not in await stream.receive():
                    pass
                await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nTLS")

    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener = TLSListener(tcp, self_signed, standard_compatible=False)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        target = f"https://127.0.0.1:{port}"
        config = {"routes": [{"path_prefix": "/trusting", "target": target, "insecure": True},
                             {"path_prefix": "/strict", "target": target, "debug": True}]}
        async with run_p8(config) as p8, httpx.AsyncClient() as client:
            resp = await client.get(f"{p8.url}/trusting")
            assert (resp.status_code, resp.text) == (200, "TLS")
            resp = await client.get(f"{p8.url}/strict")
            assert resp.status_code == 502 and "CERTIFICATE_VERIFY_FAILED" in resp.text
        tg.cancel_scope.cancel()
