"""ZRPC, the command socket's protocol (spec ``stats.md`` §3). Sans-I/O.

A request is one bare tnetstring ``{"id": <optional>, "method": <name>, "args": <dict>}``;
the answer echoes ``id`` and carries either ``"success": true, "value": ...`` or
``"success": false, "condition": <name>`` with an optional ``value``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from p8core.codec.tnetstring import TNetStringError, dumps, loads
from p8core.commands import CommandError, text

if TYPE_CHECKING:
    from p8core.app import App

log = structlog.get_logger(component="zmq_pubsub")


def answer(request: bytes, app: App) -> bytes:
    """Run the command of ``app.commands`` that ``request`` names and encode the answer;
    never raises."""
    try:
        raw = loads(request)
    except TNetStringError as e:
        return _failure(None, "bad-format", f"not a tnetstring: {e}")
    if not isinstance(raw, dict):
        return _failure(None, "bad-format", "request is not a dict")
    rid = raw.get(b"id")
    method = text(raw.get(b"method"))
    if method is None:
        return _failure(rid, "bad-format", "request has no 'method' string")
    args = raw.get(b"args", {})
    if not isinstance(args, dict):
        return _failure(rid, "bad-format", "'args' is not a dict")
    command = app.commands.get(method)
    if command is None:
        return _failure(rid, "method-not-found")
    try:
        value = command.run(app, {k.decode(errors="replace"): v for k, v in args.items()})
    except CommandError as e:
        return _failure(rid, e.condition, e.value)
    except Exception:
        log.exception("command_failed", method=method)
        return _failure(rid, "internal-error")
    return _encode(rid, {"success": True, "value": value})


def _failure(rid: object, condition: str, value: object = None) -> bytes:
    fields: dict[str, object] = {"success": False, "condition": condition}
    if value is not None:
        fields["value"] = value
    return _encode(rid, fields)


def _encode(rid: object, fields: dict[str, object]) -> bytes:
    return dumps(fields if rid is None else {"id": rid, **fields})
