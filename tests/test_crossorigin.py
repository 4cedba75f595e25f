"""Auto cross-origin routes (``aco``): CORS headers and JSON-P, unit and end to end."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from p8core.proxy.crossorigin import (
    JsonpError,
    JsonpShaper,
    cors_headers,
    jsonp_request,
)
from p8core.proxy.routes import Route
from p8core.testing import Reply, Running, SeenRequest, publish, run_origin, run_p8

pytestmark = pytest.mark.anyio

ACO = Route(("test",), aco=True)
GET = b"GET"


# ---- CORS headers -----------------------------------------------------------------------

def test_cors_headers_answer_a_preflight() -> None:
    request = [(b"origin", b"https://app.example"), (b"access-control-request-method", b"PUT"),
               (b"access-control-request-headers", b"X-A, x-b"),
               (b"access-control-request-headers", b"X-C")]
    response = [(b"content-type", b"text/plain"), (b"x-custom", b"1"), (b"date", b"d"),
                (b"grip-hold", b"stream"), (b"x-custom", b"2"), (b"cache-control", b"no")]
    assert cors_headers(request, response)[len(response):] == [
        (b"access-control-allow-methods", b"PUT"),
        (b"access-control-allow-headers", b"X-A, x-b, X-C"),
        (b"access-control-expose-headers", b"x-custom, date"),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-allow-origin", b"https://app.example"),
        (b"access-control-max-age", b"3600"),
    ]


def test_cors_headers_keep_what_the_backend_set() -> None:
    response = [(b"Access-Control-Allow-Origin", b"https://only.example"),
                (b"content-length", b"2")]
    added = dict(cors_headers([], response)[2:])
    assert added == {b"access-control-allow-methods": b"OPTIONS, HEAD, GET, POST, PUT, DELETE",
                     b"access-control-allow-credentials": b"true",
                     b"access-control-max-age": b"3600"}


# ---- JSON-P requests --------------------------------------------------------------------

def test_a_get_with_a_callback_stands_for_another_request() -> None:
    headers = [(b"host", b"h:1"), (b"accept", b"text/html"), (b"user-agent", b"ua")]
    target = (b"/api/x?a=1&callback=cb&_method=PUT&b=%20&"
              b"_headers=%7B%22X-H%22%3A%22v%22%2C%22Host%22%3A%22evil%22%7D&_body=hi%20there")
    call = jsonp_request(ACO, GET, target, headers)
    assert call is not None
    assert (call.callback, call.extended, call.method, call.target, call.body) == (
        b"cb", True, b"PUT", b"/api/x?a=1&b=%20", b"hi there")
    assert call.headers == [(b"x-h", b"v"), (b"host", b"h:1"), (b"accept", b"*/*"),
                            (b"user-agent", b"ua")]


def test_jsonp_defaults_body_parameter_and_basic_mode() -> None:
    route = Route(("test",), aco=True, jsonp_mode="basic", jsonp_cb="cb", jsonp_body="data",
                  jsonp_defcb="app.handle")
    call = jsonp_request(route, GET, b"/x?data=%7B%22a%22%3A1%7D", [])
    assert call is not None
    assert (call.callback, call.extended, call.method, call.target, call.body) == (
        b"app.handle", False, b"POST", b"/x", b'{"a":1}')
    assert (b"content-type", b"application/json") in call.headers
    assert jsonp_request(route, GET, b"/x?callback=f", []) is None, "jsonp_cb renames it"
    explicit = Route(("test",), aco=True, jsonp_defmethod="PATCH")
    assert jsonp_request(explicit, GET, b"/?callback=f", []).method == b"PATCH"  # type: ignore[union-attr]


@pytest.mark.parametrize("target", [b"/x", b"/x?cb=f", b"/x?_body=1"])
def test_not_a_jsonp_request(target: bytes) -> None:
    assert jsonp_request(ACO, GET, target, []) is None
    assert jsonp_request(ACO, b"POST", target + b"&callback=f", []) is None


@pytest.mark.parametrize(("query", "error"), [
    (b"callback=", "Invalid callback parameter."),
    (b"callback=alert(document.cookie)", "Invalid callback parameter."),
    (b"callback=f&_method=", "Invalid _method parameter."),
    (b"callback=f&_method=GET%0D%0AX:%201", "Invalid _method parameter."),
    (b"callback=f&_headers=xx", "Invalid _headers parameter."),
    (b"callback=f&_headers=%5B%5D", "Invalid _headers parameter."),
    (b"callback=f&_headers=%7B%22X%22%3A1%7D", "Invalid _headers parameter."),
    (b"callback=f&_headers=%7B%22X%22%3A%22a%5Cnb%22%7D", "Invalid _headers parameter."),
])
def test_bad_jsonp_parameters(query: bytes, error: str) -> None:
    with pytest.raises(JsonpError, match=f"^{error}$"):
        jsonp_request(ACO, GET, b"/x?" + query, [])


# ---- JSON-P responses -------------------------------------------------------------------

def test_extended_wrapping_of_a_whole_response() -> None:
    shaper = JsonpShaper(b"cb", extended=True)
    status, headers, reason, body = shaper.whole(
        404, [(b"content-type", b"text/plain"), (b"x-a", b"1"), (b"x-a", b"2"),
              (b"cache-control", b"no-cache")], b"Not Here", b'nope "x"\n')
    assert (status, reason) == (200, b"OK")
    assert headers == [(b"content-type", b"application/javascript"),
                       (b"cache-control", b"no-cache")]
    assert body.startswith(b"/**/cb(") and body.endswith(b");\n")
    assert json.loads(body[len(b"/**/cb("):-len(b");\n")]) == {
        "code": 404, "reason": "Not Here", "body": 'nope "x"\n',
        "headers": {"Content-Type": "text/plain", "X-A": "1, 2", "Cache-Control": "no-cache"}}


def test_streamed_wrapping_survives_split_characters() -> None:
    shaper = JsonpShaper(b"cb", extended=True)
    _, _, _, start = shaper.head(200, [], b"OK")
    text = "é\u2028€\n".encode()
    pieces = [shaper.body(text[:1]), shaper.body(text[1:5]), shaper.body(text[5:])]
    out = start + b"".join(pieces) + shaper.end()
    assert json.loads(out[len(b"/**/cb("):-3])["body"] == "é\u2028€\n"
    assert out.isascii(), "non-ASCII is escaped, so any JavaScript parser takes it"


def test_basic_wrapping_drops_one_trailing_newline() -> None:
    shaper = JsonpShaper(b"cb", extended=False)
    _, _, _, start = shaper.head(500, [], b"")
    pieces = [shaper.body(b'{"a":\r\n'), shaper.body(b"1}\n"), shaper.body(b"")]
    assert start + b"".join(pieces) + shaper.end() == b'/**/cb({"a":\r\n1});\n'


# ---- end to end -----------------------------------------------------------------------------

def p8_config(target: str, **route: Any) -> dict[str, Any]:
    return {"plugins": {"enabled": ["long_poll", "http_stream"]},
            "routes": [{"target": target, "aco": True, **route},
                       {"path_prefix": "/plain/", "target": target}]}


def echo(req: SeenRequest) -> Reply:
    """Answers what it received, as JSON; ``/status`` answers 404."""
    seen = {"method": req.method.decode(), "target": req.target.decode(),
            "body": req.body.decode(), "x-h": (req.header(b"x-h") or b"").decode()}
    status = 404 if req.target.startswith(b"/status") else 200
    return Reply(status, [("Content-Type", "application/json"), ("X-Custom", "1")],
                 json.dumps(seen).encode())


def unwrap(text: str, callback: str = "cb") -> Any:
    prefix, suffix = f"/**/{callback}(", ");\n"
    assert text.startswith(prefix) and text.endswith(suffix), text
    return json.loads(text[len(prefix):-len(suffix)])


async def test_cors_preflight_reaches_the_backend_and_gets_cors_headers() -> None:
    async with run_origin(echo) as origin, run_p8(p8_config(origin.target)) as p8, \
            httpx.AsyncClient() as client:
        resp = await client.options(f"{p8.url}/x", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "X-H"})
        assert resp.json()["method"] == "OPTIONS"
        assert resp.headers["access-control-allow-origin"] == "https://app.example"
        assert resp.headers["access-control-allow-methods"] == "PUT"
        assert resp.headers["access-control-allow-headers"] == "X-H"
        assert resp.headers["access-control-expose-headers"] == "x-custom"
        assert resp.headers["access-control-allow-credentials"] == "true"
        assert resp.headers["access-control-max-age"] == "3600"
        plain = await client.options(f"{p8.url}/plain/x", headers={"Origin": "https://a.b"})
        assert "access-control-allow-origin" not in plain.headers


async def test_jsonp_wraps_a_plain_response_and_converts_the_request() -> None:
    async with run_origin(echo) as origin, run_p8(p8_config(origin.target)) as p8, \
            httpx.AsyncClient() as client:
        resp = await client.get(f"{p8.url}/status?a=1&callback=cb&_method=POST"
                                "&_headers=%7B%22X-H%22%3A%22v%22%7D&_body=hello")
        assert (resp.status_code, resp.headers["content-type"]) == (
            200, "application/javascript")
        assert "access-control-allow-origin" not in resp.headers
        call = unwrap(resp.text)
        assert (call["code"], call["reason"], call["headers"]["X-Custom"]) == (
            404, "Not Found", "1")
        assert json.loads(call["body"]) == {"method": "POST", "target": "/status?a=1",
                                            "body": "hello", "x-h": "v"}
        bad = await client.get(f"{p8.url}/x?callback=x%3Dalert(1)")
        assert (bad.status_code, bad.text) == (400, "Invalid callback parameter.\n")
        assert bad.headers["access-control-allow-origin"] == "*"


async def test_jsonp_basic_mode_and_global_auto_cross_origin() -> None:
    reply = Reply(200, [("Content-Type", "application/json")], b'{"n": 1}\n')
    config = {"plugins": {"enabled": []}, "proxy": {"auto_cross_origin": True},
              "routes": [{"target": "test", "path_prefix": "/t/"},
                         {"target": "", "jsonp_mode": "basic"}]}
    async with run_origin(lambda r: reply) as origin:
        config["routes"][1]["target"] = origin.target
        async with run_p8(config) as p8, httpx.AsyncClient() as client:
            resp = await client.get(f"{p8.url}/x?callback=cb")
            assert resp.text == '/**/cb({"n": 1});\n'
            assert origin.requests[-1].method == b"POST", "basic mode defaults to POST"
            resp = await client.get(f"{p8.url}/t/")
            assert resp.headers["access-control-allow-origin"] == "*"
        config["routes"] = [{"host": "only.example", "target": "test"}]
        async with run_p8(config) as p8, httpx.AsyncClient() as client:
            resp = await client.get(f"{p8.url}/", headers={"Origin": "https://a.b"})
            assert (resp.status_code, resp.headers["access-control-allow-origin"]) == (
                502, "https://a.b"), "even an answer without a route"


async def _held(p8: Running, channel: str) -> None:
    with anyio.fail_after(5):
        while p8.app.hub.subscriber_count(channel) < 1:
            await anyio.sleep(0.005)


async def test_held_long_poll_is_wrapped_also_after_a_retry() -> None:
    held = Reply(200, [("Content-Type", "text/plain"), ("Grip-Hold", "response"),
                       ("Grip-Channel", "lp")], b"timeout\n")
    answers = [held, Reply(200, [("Content-Type", "text/plain")], b"fresh\n")]
    async with run_origin(lambda r: answers.pop(0) if len(answers) > 1 else answers[0]) \
            as origin, run_p8(p8_config(origin.target)) as p8, httpx.AsyncClient() as client:
        async with anyio.create_task_group() as tg:
            got: list[httpx.Response] = []

            async def poll(path: str) -> None:
                got.append(await client.get(f"{p8.url}{path}", timeout=5))

            tg.start_soon(poll, "/lp?callback=first")
            await _held(p8, "lp")
            await publish(p8, {"channel": "lp", "formats": {"http-response": {
                "code": 201, "headers": {"X-Pub": "p"}, "body": "published\n"}}})
        call = unwrap(got[0].text, "first")
        assert (call["code"], call["body"], call["headers"]["X-Pub"]) == (
            201, "published\n", "p")
        answers[:] = [held, Reply(200, [("Content-Type", "text/plain")], b"fresh\n")]
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll, "/lp?callback=second")
            await _held(p8, "lp")
            await publish(p8, {"channel": "lp", "formats": {"http-response": {
                "action": "hint"}}})
        call = unwrap(got[1].text, "second")
        assert (call["code"], call["body"]) == (200, "fresh\n")
        assert origin.requests[-1].target == b"/lp", "the retry sends the converted request"


async def test_held_stream_gets_cors_headers_or_is_wrapped_piece_by_piece() -> None:
    stream = Reply(200, [("Content-Type", "text/plain"), ("Grip-Hold", "stream"),
                         ("Grip-Channel", "s")], b"[open]\n")
    close = {"channel": "s", "formats": {"http-stream": {"action": "close"}}}
    async with run_origin(lambda r: stream) as origin, \
            run_p8(p8_config(origin.target)) as p8, httpx.AsyncClient() as client:
        for query in ("", "?callback=cb"):
            async with client.stream("GET", f"{p8.url}/s{query}",
                                     headers={"Origin": "https://a.b"}) as resp:
                await _held(p8, "s")
                await publish(p8, {"channel": "s", "formats": {"http-stream": {
                    "content": "data 1\n"}}})
                await publish(p8, close)
                with anyio.fail_after(5):
                    body = (await resp.aread()).decode()
            if query:
                assert resp.headers["content-type"] == "application/javascript"
                call = unwrap(body)
                assert (call["code"], call["body"]) == (200, "[open]\ndata 1\n")
            else:
                assert resp.headers["access-control-allow-origin"] == "https://a.b"
                assert body == "[open]\ndata 1\n"
