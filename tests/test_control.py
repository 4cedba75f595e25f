"""The control API: every answer of POST /publish/ and /recover, as Pushpin gives them."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from p8core.testing import run_p8

pytestmark = pytest.mark.anyio

ITEM = {"channel": "c", "formats": {"http-stream": {"content": "hi\n"}}}


async def _raw(port: int, request: bytes) -> bytes:
    """Send raw bytes to the control port and read the whole answer."""
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(request)
            out = b""
            try:
                while True:
                    out += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return out


async def test_publish_answers() -> None:
    async with run_p8() as p8, httpx.AsyncClient(base_url=p8.control_url) as client:
        cases = [
            ({"items": [ITEM]}, 200, "Published\n"),
            ({"items": []}, 200, "Published\n"),
            ([], 400, "Invalid format.\n"),
            ({}, 400, "Invalid format: object does not contain 'items'\n"),
            ({"items": {}}, 400, "Invalid format: object contains 'items' with wrong type\n"),
            ({"items": [5]}, 400, "Invalid format: publish item object is not an object\n"),
            ({"items": [{"channel": "c"}]}, 400, "Invalid format: no formats specified\n"),
            ({"items": [{"channel": 5, "formats": {}}]}, 400,
             "Invalid format: publish item object contains 'channel' with wrong type\n"),
        ]
        for body, status, text in cases:
            resp = await client.post("/publish/", json=body)
            assert (resp.status_code, resp.text) == (status, text), body
            assert resp.headers["connection"] == "close"
            assert resp.headers["content-type"] == "text/plain"
        bad = await client.post("/publish", content=b"{not json")
        assert (bad.status_code, bad.text) == (400, "Body is not valid JSON.\n")


async def test_publish_is_all_or_nothing_and_counts() -> None:
    async with run_p8() as p8, httpx.AsyncClient(base_url=p8.control_url) as client:
        good = {"channel": "c", "formats": {"unknown-format": {}}}
        resp = await client.post("/publish/", json={"items": [good, {"formats": {}}]})
        assert resp.status_code == 400
        assert p8.app.metrics.items_published == 0
        resp = await client.post("/publish/", json={"items": [good]})
        assert resp.status_code == 200
        assert p8.app.metrics.items_published == 1
        assert p8.app.metrics.formats_ignored == 1, "formats no plugin owns are counted"


async def test_publish_content_negotiation() -> None:
    async with run_p8() as p8, httpx.AsyncClient(base_url=p8.control_url) as client:
        resp = await client.post("/publish/", json={"items": [ITEM]},
                                 headers={"Accept": "text/plain, application/json"})
        assert resp.headers["content-type"] == "application/json"
        assert json.loads(resp.text)["message"] == "Published", "Pushpin's field, kept"
        resp = await client.post("/publish/", json={"items": [ITEM]},
                                 headers={"Accept": "image/png"})
        assert resp.status_code == 406
        assert resp.text == ("Not Acceptable. Supported formats are text/plain and "
                             "application/json.\n")
        err = await client.post("/publish/", content=b"x", headers={"Accept": "application/json"})
        assert (err.status_code, err.headers["content-type"]) == (400, "text/plain")


async def test_publish_method_length_size_and_paths() -> None:
    async with run_p8({"control": {"max_body": 100}}) as p8, \
            httpx.AsyncClient(base_url=p8.control_url) as client:
        get = await client.get("/publish/")
        assert (get.status_code, get.text, get.headers["allow"]) == (
            405, "Method not allowed: GET.\n", "POST")
        big = await client.post("/publish/", json={"items": [ITEM] * 10})
        assert (big.status_code, big.text) == (413, "Request body too large: over 100 bytes.\n")
        assert p8.app.metrics.rejected_publish_too_large == 1
        assert (await client.get("/nope")).status_code == 404
        assert (await client.get("/nope")).text == "Not Found\n"
        chunked = await _raw(p8.bound.control, b"POST /publish/ HTTP/1.1\r\nHost: x\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        assert chunked.startswith(b"HTTP/1.1 411 ")
        assert chunked.endswith(b"Request requires Content-Length.\n")
        huge = await _raw(p8.bound.control, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: "
                          + b"a" * 20_000 + b"\r\n\r\n")
        assert huge.startswith(b"HTTP/1.1 400 ")
        assert huge.endswith(b"Request header too large.\n")
        assert p8.app.metrics.rejected_head_too_large == 1


async def test_recover() -> None:
    async with run_p8() as p8, httpx.AsyncClient(base_url=p8.control_url) as client:
        resp = await client.post("/recover")
        assert (resp.status_code, resp.text) == (200, "Updated\n")
        resp = await client.get("/recover")
        assert (resp.status_code, resp.text) == (405, "Method not allowed: GET.\n")
