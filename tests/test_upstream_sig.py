"""A client's Grip-Sig is honoured (the client is a trusted upstream GRIP proxy) only when it
validates with ``[proxy] upstream_key``: right key, right algorithm, ``exp`` in the future.
Any other Grip-Sig is dropped, replaced by p8's own, and p8 acts on the GRIP answer itself."""

from __future__ import annotations

import time

import anyio
import httpx
import jwt
import pytest

from p8core.testing import Reply, run_origin, run_p8

pytestmark = pytest.mark.anyio

GRIP = Reply(200, [("Grip-Hold", "stream"), ("Grip-Channel", "up")], b"held\n")
LATER = int(time.time()) + 600


@pytest.mark.parametrize(("token", "trusted"), [
    (jwt.encode({"iss": "edge", "exp": LATER}, "upkey"), True),
    (jwt.encode({"iss": "edge", "exp": LATER}, "guess"), False),
    (jwt.encode({"iss": "pushpin", "exp": LATER}, "changeme"), False),
    (jwt.encode({"iss": "edge", "exp": int(time.time()) - 1}, "upkey"), False),
    (jwt.encode({"iss": "edge"}, "upkey"), False),
    (jwt.encode({"iss": "edge", "exp": LATER}, "upkey", algorithm="HS384"), False),
    (jwt.encode({"iss": "edge", "exp": LATER}, None, algorithm="none"), False),
], ids=["valid", "wrong-key", "p8s-own-key", "expired", "no-exp", "other-alg", "alg-none"])
async def test_grip_sig_is_honoured_only_when_it_validates(token: str, trusted: bool) -> None:
    async with run_origin(lambda r: GRIP) as origin, \
            run_p8({"proxy": {"upstream_key": "upkey"}, "plugins": {"enabled": ["http_stream"]},
                    "routes": [{"target": origin.target}]}) as p8, \
            httpx.AsyncClient() as client:
        with anyio.fail_after(5):
            async with client.stream("GET", f"{p8.url}/", headers={
                    "Grip-Sig": token, "Grip-Last": "up; last-id=7"}) as resp:
                seen = origin.requests[-1]
                if trusted:
                    await resp.aread()
                    assert resp.headers["grip-hold"] == "stream", "relayed to the upstream"
                    assert seen.header(b"grip-sig") == token.encode()
                    assert seen.header(b"grip-last") == b"up; last-id=7"
                else:
                    assert "grip-hold" not in resp.headers, "held by p8 itself"
                    assert seen.header(b"grip-sig") not in (None, token.encode())
                    assert seen.header(b"grip-last") is None
                    assert p8.app.hub.subscriber_count("up") == 1
