"""``p8 publish``: publish one item, as ``pushpin-publish`` does (spec ``publishing.md`` §7).

The spec is a GRIP URL (``http://localhost:5561/?iss=pushpin&key=changeme``: the control
API, with credentials for a ``Bearer`` token) or a ZeroMQ PUSH endpoint (``tcp://…``,
``ipc://…``), which gets one bare tnetstring.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from .codec.tnetstring import dumps
from .grip.sig import Signer
from .pubsub.items import STANDARD_FORMATS

__all__ = ["add_parser", "build_item", "run"]

DEFAULT_SPEC = "http://localhost:5561"
ZMQ_SCHEMES = ("tcp://", "ipc://")
ZMQ_CONNECT_MS = 5000
"""How long to wait for a ZeroMQ endpoint to accept the connection."""


class PublishFailed(Exception):
    """Printed as ``Error: <message>``; the command exits 1."""


def add_parser(sub: Any) -> None:
    """Add ``publish`` to the ``p8`` subcommands, with pushpin-publish's options."""
    pub = sub.add_parser("publish", help="publish one item (pushpin-publish compatible)")
    pub.add_argument("channel")
    pub.add_argument("content", nargs="?", help="HTTP body and WebSocket message; "
                     "@file reads a file")
    pub.add_argument("--spec", "--url", dest="spec",
                     help="GRIP URL or ZeroMQ PUSH spec; several, comma-separated, publish "
                     f"to each instance (default: $GRIP_URL or {DEFAULT_SPEC})")
    pub.add_argument("--id", help="item id")
    pub.add_argument("--prev-id", help="previous item id")
    pub.add_argument("--sender", help="sets meta 'sender'")
    pub.add_argument("-M", "--meta", action="append", default=[], metavar="K=V",
                     help="add a meta variable")
    pub.add_argument("--code", default="200", help="http-response status code (default 200)")
    pub.add_argument("-H", "--header", action="append", default=[], metavar="'K: V'",
                     help="add an http-response header")
    action = pub.add_mutually_exclusive_group()
    action.add_argument("--hint", action="store_true", help="send hint instead of content")
    action.add_argument("--close", action="store_true",
                        help="close streaming and WebSocket connections")
    action.add_argument("--patch", action="store_true", help="content is a JSON patch")
    pub.add_argument("--no-seq", action="store_true", help="bypass the sequencing buffer")
    pub.add_argument("--no-eol", action="store_true", help="no newline after HTTP payloads")
    pub.add_argument("-u", "--user", metavar="USER:PASS",
                     help="basic auth (https, or http to a loopback address)")


def run(args: argparse.Namespace) -> int:
    """Publish to each comma-separated spec, as gripcontrol publishes to several proxies;
    print ``Published`` (exit 0) or an ``Error: <reason>`` line per failed spec (exit 1)."""
    specs = [spec.strip() for spec in
             (args.spec or os.environ.get("GRIP_URL") or DEFAULT_SPEC).split(",")]
    try:
        item = build_item(args)
    except PublishFailed as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    failed = 0
    for spec in specs:
        try:
            _publish(spec, item, args.user)
        except PublishFailed as e:
            failed += 1
            where = f"{spec.split('?', 1)[0]}: " if len(specs) > 1 else ""
            print(f"Error: {where}{e}", file=sys.stderr)
    if failed:
        return 1
    print("Published")
    return 0


def _publish(spec: str, item: dict[str, Any], user: str | None) -> None:
    if spec.startswith(ZMQ_SCHEMES):
        _push(spec, item)
    elif spec.startswith(("http://", "https://")):
        _post(spec, item, user)
    else:
        raise PublishFailed(f"unsupported spec {spec!r}: use http(s)://, tcp:// or ipc://")


def build_item(args: argparse.Namespace) -> dict[str, Any]:
    """The item the options describe; payloads are ``bytes``.

    :raises PublishFailed: a bad option value, or no content where one is needed.
    """
    item: dict[str, Any] = {"channel": args.channel}
    if args.id:
        item["id"] = args.id
    if args.prev_id:
        item["prev-id"] = args.prev_id
    meta = dict(_pair(kv, "=", "meta must be K=V") for kv in args.meta)
    if args.sender:
        meta["sender"] = args.sender
    if meta:
        item["meta"] = meta
    if args.no_seq:
        item["no-seq"] = True
    if args.hint:
        item["formats"] = {f: {"action": "hint"} for f in STANDARD_FORMATS}
        return item
    if args.close:
        item["formats"] = {"http-stream": {"action": "close"}, "ws-message": {"action": "close"}}
        return item
    if args.content is None:
        raise PublishFailed("must specify content")
    code = _code(args.code)
    if args.patch:
        try:
            patch = json.loads(args.content)
        except ValueError:
            patch = None
        if not isinstance(patch, list):
            raise PublishFailed("patch content must be a JSON array")
        item["formats"] = {"http-response": {"code": code, "body-patch": patch}}
        return item
    if args.content.startswith("@"):
        try:
            message = http = Path(args.content[1:]).read_bytes()
        except OSError as e:
            raise PublishFailed(f"cannot read {args.content[1:]}: {e.strerror}") from None
    else:
        message = os.fsencode(args.content)
        http = message if args.no_eol else message + b"\n"
    response: dict[str, Any] = {"code": code, "body": http}
    if args.header:
        response["headers"] = [list(_pair(h, ":", "header must be 'Name: value'"))
                               for h in args.header]
    item["formats"] = {"http-response": response, "http-stream": {"content": http},
                       "ws-message": {"content": message}}
    return item


def _pair(text: str, sep: str, problem: str) -> tuple[str, str]:
    name, found, value = text.partition(sep)
    if not found or not name.strip():
        raise PublishFailed(f"{problem}: {text!r}")
    return name.strip(), value.strip()


def _code(text: str) -> int:
    if not text.isdigit() or int(text) > 999:
        raise PublishFailed("code must be an integer between 0 and 999")
    return int(text)


def _as_json(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` for the JSON control API: a payload that is not UTF-8 goes base64-encoded
    under ``body-bin`` / ``content-bin``."""
    formats = {}
    for name, fmt in item.get("formats", {}).items():
        out = {}
        for key, value in fmt.items():
            if isinstance(value, bytes):
                try:
                    out[key] = value.decode()
                except UnicodeDecodeError:
                    out[f"{key}-bin"] = base64.b64encode(value).decode()
            else:
                out[key] = value
        formats[name] = out
    return {**item, "formats": formats}


def _control_endpoint(spec: str) -> tuple[str, dict[str, str]]:
    """The publish URL of a GRIP URL and the headers its credentials ask for.

    ``iss`` and ``key`` (``base64:`` allowed) in the query become a ``Bearer`` JWT, as
    gripcontrol sends it; every other query parameter stays.
    """
    parts = urlsplit(spec)
    params = parse_qs(parts.query.replace("+", "%2B"))
    iss, key = params.pop("iss", [""])[0], params.pop("key", [""])[0]
    headers: dict[str, str] = {}
    if key:
        try:
            signer = Signer(iss, key)
        except ValueError as e:
            raise PublishFailed(f"bad key in spec: {e}") from None
        headers["authorization"] = f"Bearer {signer.token(time.time())}"
    path = parts.path.rstrip("/") + "/publish/"
    url = urlunsplit((parts.scheme, parts.netloc, path, urlencode(params, doseq=True), ""))
    return url, headers


LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
"""Hosts a password may be sent to over plain HTTP: it never leaves the machine."""


def _post(spec: str, item: dict[str, Any], user: str | None) -> None:
    import httpx

    url, headers = _control_endpoint(spec)
    auth = None
    if user is not None:
        if not (spec.startswith("https://") or urlsplit(spec).hostname in LOOPBACK):
            raise PublishFailed("Authentication requires https (or a loopback address)")
        name, _, password = user.partition(":")
        auth = httpx.BasicAuth(name, password)
    try:
        resp = httpx.post(url, json={"items": [_as_json(item)]}, headers=headers, auth=auth)
    except httpx.HTTPError as e:
        raise PublishFailed(str(e) or type(e).__name__) from None
    if resp.status_code != 200:
        raise PublishFailed(resp.text.strip())


def _push(spec: str, item: dict[str, Any]) -> None:
    try:
        import zmq
    except ImportError:
        raise PublishFailed("ZeroMQ specs need pyzmq (pip install pyzmq)") from None
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    try:
        sock.immediate = True  # only a connected peer makes the socket writable
        sock.connect(spec)
        if not sock.poll(ZMQ_CONNECT_MS, zmq.POLLOUT):
            raise PublishFailed(f"cannot reach {spec}")
        sock.send(dumps(item))
    except zmq.ZMQError as e:
        raise PublishFailed(str(e)) from None
    finally:
        sock.close(linger=ZMQ_CONNECT_MS)
        ctx.term()
