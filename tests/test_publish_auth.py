"""Publish authentication: with ``[control] key`` set, only publishers holding the key get
through, with the credentials gripcontrol and pubcontrol send; everyone else gets a 401
with a one-line reason and nothing is published."""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from gripcontrol import GripPubControl, parse_grip_uri  # type: ignore[import-untyped]
from p8_http_stream.testing import open_stream
from structlog.testing import capture_logs

from p8core.config import DEFAULT_ROUTES, Config, ControlConfig
from p8core.errors import ConfigError
from p8core.proxy.routes import Route
from p8core.server.publish_auth import PublishAuth
from p8core.testing import Running, run_p8

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0
ITEM = {"channel": "c", "formats": {"http-stream": {"content": "hi\n"}}}


def auth_for(key: str, iss: str = "", routes: tuple[Route, ...] = ()) -> PublishAuth:
    config = Config(control=ControlConfig(key=key, iss=iss), routes=routes or DEFAULT_ROUTES)
    auth = PublishAuth.from_config(config)
    assert auth is not None
    return auth


def bearer(claims: dict[str, Any], key: str | bytes = "s3cret") -> bytes:
    return b"Bearer " + jwt.encode(claims, key, algorithm="HS256").encode()


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def test_no_key_means_no_check() -> None:
    assert PublishAuth.from_config(Config()) is None


@pytest.mark.parametrize(("authorization", "reason"), [
    (None, "Missing Authorization header."),
    (b"Digest abc", "Unsupported Authorization scheme: Digest."),
    (bearer({"iss": "pub", "exp": NOW + 60}, "wrong"),
     "Invalid token: signature does not verify."),
    (b"Bearer a.b.c", "Invalid token: signature does not verify."),
    (bearer({"iss": "pub", "exp": NOW - 1}), "Invalid token: expired."),
    (bearer({"iss": "pub"}), "Invalid token: no numeric exp claim."),
    (bearer({"iss": "pub", "exp": "later"}), "Invalid token: no numeric exp claim."),
    (bearer({"iss": "other", "exp": NOW + 60}), "Invalid token: iss not accepted."),
    (bearer({"exp": NOW + 60}), "Invalid token: iss not accepted."),
    (b"Bearer s3cret", "Invalid bearer token."),
    (basic("other", "s3cret"), "Invalid user or password."),
    (basic("pub", "wrong"), "Invalid user or password."),
    (b"Basic !!!", "Invalid Basic credentials: expected base64 of user:password."),
])
def test_refusals_say_why(authorization: bytes | None, reason: str) -> None:
    assert auth_for("s3cret", iss="pub").check(authorization, NOW) == reason


@pytest.mark.parametrize("authorization", [
    bearer({"iss": "pub", "exp": NOW + 60}),
    bearer({"iss": "pub", "exp": NOW + 0.5}),
    basic("pub", "s3cret"),
    b"basic " + base64.b64encode(b"pub:s3cret"),
    b"Basic b'" + base64.b64encode(b"pub:s3cret") + b"'",  # what pubcontrol sends
])
def test_accepted_with_iss(authorization: bytes) -> None:
    assert auth_for("s3cret", iss="pub").check(authorization, NOW) is None


def test_without_iss_any_issuer_the_bare_key_and_any_basic_user_pass() -> None:
    auth = auth_for("s3cret")
    for authorization in (bearer({"iss": "anyone", "exp": NOW + 60}),
                          bearer({"exp": NOW + 60}), b"Bearer s3cret", basic("x", "s3cret")):
        assert auth.check(authorization, NOW) is None, authorization
    assert auth.check(b"Bearer s3cre", NOW) == "Invalid bearer token."
    assert auth_for("a.b.c").check(b"Bearer a.b.c", NOW) is None, "a key shaped like a JWT"


def test_base64_key_is_the_binary_secret() -> None:
    auth = auth_for("base64:" + base64.b64encode(b"\x00\xffkey").decode(), iss="pub")
    assert auth.check(bearer({"iss": "pub", "exp": NOW + 60}, b"\x00\xffkey"), NOW) is None
    assert auth.check(bearer({"iss": "pub", "exp": NOW + 60}, "base64:AP9rZXk="), NOW) == (
        "Invalid token: signature does not verify.")


def test_a_route_key_signs_for_its_own_issuer_only() -> None:
    routes = (Route(targets=("test",), path_prefix="/a", sig_iss="app-a", sig_key="akey"),
              Route(targets=("test",), path_prefix="/b", sig_key="half"))
    auth = auth_for("s3cret", iss="pub", routes=routes)
    assert auth.check(bearer({"iss": "app-a", "exp": NOW + 60}, "akey"), NOW) is None
    assert auth.check(basic("app-a", "akey"), NOW) is None
    assert auth.check(bearer({"iss": "pub", "exp": NOW + 60}, "akey"), NOW) == (
        "Invalid token: iss not accepted.")
    assert auth.check(bearer({"iss": "pub", "exp": NOW + 60}, "half"), NOW) == (
        "Invalid token: signature does not verify."), "a route key needs its sig_iss"


def test_unusable_key_is_a_config_error_naming_it(tmp_path: Path) -> None:
    config = Config(control=ControlConfig(key="file:missing.pem"), source="p8.toml",
                    base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^p8\.toml: control\.key: "):
        PublishAuth.from_config(config)


def grip_url(p8: Running, query: str) -> dict[str, Any]:
    return dict(parse_grip_uri(f"{p8.control_url}/?{query}"))


async def publish_with(pub: GripPubControl, channel: str, text: str) -> str | None:
    """Publish through the library (it blocks, so in a thread); its error, or None."""

    def send() -> None:
        pub.publish_http_stream(channel, text, blocking=True)

    try:
        await anyio.to_thread.run_sync(send)
    except ValueError as e:
        return str(e)
    return None


async def test_gripcontrol_publishes_with_the_key_and_others_get_401() -> None:
    config = {"control": {"key": "s3cret", "iss": "pushpin"},
              "plugins": {"enabled": ["http_stream"]}}
    async with run_p8(config) as p8, open_stream(p8.bound.port, "/stream?channel=news") as client:
        with anyio.fail_after(10):
            assert await client.chunk() == b"[stream opened]\n"
            good = GripPubControl(grip_url(p8, "iss=pushpin&key=s3cret"))
            assert await publish_with(good, "news", "with the key\n") is None
            assert await client.chunk() == b"with the key\n"

            attempts: dict[str, Callable[[], GripPubControl]] = {
                "Missing Authorization header.": lambda: GripPubControl(
                    {"control_uri": p8.control_url}),
                "Invalid token: signature does not verify.": lambda: GripPubControl(
                    grip_url(p8, "iss=pushpin&key=guess")),
                "Invalid token: iss not accepted.": lambda: GripPubControl(
                    grip_url(p8, "iss=someone&key=s3cret")),
                "Invalid bearer token.": lambda: GripPubControl(grip_url(p8, "key=s3cret")),
            }
            for reason, make in attempts.items():
                error = await publish_with(make(), "news", "forged\n")
                assert error == f"failed to publish: received failed status code 401 with " \
                                f"message: {reason}\n", reason
            basic_pub = GripPubControl({"control_uri": p8.control_url})
            basic_pub.clients[0].set_auth_basic("pushpin", "s3cret")
            assert await publish_with(basic_pub, "news", "with basic\n") is None
            assert await client.chunk() == b"with basic\n"
        assert p8.app.metrics.items_published == 2
        assert p8.app.metrics.publishes_unauthorized == len(attempts)


async def test_every_control_action_is_guarded_and_401_is_complete() -> None:
    async with run_p8({"control": {"key": "s3cret"}, "plugins": {"enabled": []}}) as p8, \
            httpx.AsyncClient(base_url=p8.control_url) as client:
        for path in ("/publish/", "/recover"):
            resp = await client.post(path, json={"items": [ITEM]})
            assert (resp.status_code, resp.text) == (401, "Missing Authorization header.\n")
            assert resp.headers["www-authenticate"] == 'Bearer realm="p8"'
            assert resp.headers["content-type"] == "text/plain"
        token = jwt.encode({"iss": "x", "exp": int(time.time()) + 60}, "s3cret")
        ok = await client.post("/publish/", json={"items": [ITEM]},
                               headers={"Authorization": f"Bearer {token}"})
        assert (ok.status_code, ok.text) == (200, "Published\n")
        assert (await client.get("/")).status_code == 200
        assert p8.app.metrics.items_published == 1


async def test_p8_publish_signs_with_a_grip_url_or_basic() -> None:
    async with run_p8({"control": {"key": "s3cret", "iss": "ops"},
                       "plugins": {"enabled": []}}) as p8:
        async def p8_publish(*args: str) -> tuple[int, str]:
            done = await anyio.run_process([sys.executable, "-m", "p8core.cli", "publish",
                                            *args, "c", "hello"], check=False)
            return done.returncode, (done.stdout + done.stderr).decode()

        assert await p8_publish("--url", f"{p8.control_url}/?iss=ops&key=s3cret") == (
            0, "Published\n")
        assert await p8_publish("--url", p8.control_url, "-u", "ops:s3cret") == (
            0, "Published\n")
        assert await p8_publish("--url", p8.control_url) == (
            1, "Error: Missing Authorization header.\n")
        assert p8.app.metrics.items_published == 2


async def test_a_control_api_open_beyond_loopback_without_a_key_is_warned_about() -> None:
    assert ControlConfig().listen.startswith("127.0.0.1:"), "the default stays on loopback"
    with capture_logs() as logs:
        async with run_p8({"control": {"listen": "0.0.0.0:0"}, "plugins": {"enabled": []}}):
            pass
        async with run_p8({"control": {"listen": "0.0.0.0:0", "key": "k"},
                           "plugins": {"enabled": []}}):
            pass
    warnings = [e for e in logs if e["event"] == "control_api_unauthenticated"]
    assert len(warnings) == 1 and warnings[0]["listen"].startswith("0.0.0.0:")
