"""The HTTP control API: ``POST /publish/`` and ``POST /recover`` (publishing.md §2), and
the read-only views of ``App.control_views`` (``/metrics``, ``/channels/<name>``, …)."""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING

import structlog

from ..errors import PublishError, one_line
from ..proxy.headers import request_body_length
from ..pubsub.feedback import Feedback
from .connection import ClientRequest, HttpConnection
from .views import ControlView, find_view, json_answer

if TYPE_CHECKING:
    from ..app import App

log = structlog.get_logger(component="control")

AUTHENTICATE = b'Bearer realm="p8"'
NOT_ACCEPTABLE = b"Not Acceptable. Supported formats are text/plain and application/json.\n"


def wants_json(accept: bytes | None) -> bool | None:
    """Content negotiation: True for JSON, False for text, None when neither is accepted."""
    if accept is None:
        return False
    choice: bool | None = None
    for part in accept.split(b","):
        media = part.split(b";", 1)[0].strip().lower()
        if media in (b"text/plain", b"text/*", b"*/*", b"*"):
            choice = False
        elif media in (b"application/json", b"application/*"):
            choice = True
    return choice


def wants_verbose(target: bytes) -> bool:
    """Whether the query asks for the verbose publish answer (``?verbose=1``)."""
    query = target.partition(b"?")[2]
    return any(p in (b"verbose", b"verbose=1", b"verbose=true")
               for p in query.split(b"&"))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class ControlApi:
    """Serves the control listener's requests; every answer closes the connection."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.routes = {"/publish": self._publish, "/recover": self._recover}
        address = app.config.control.address
        if app.publish_auth is None and not _is_loopback(address.host):
            log.warning("control_api_unauthenticated", listen=str(address),
                        hint="anyone who reaches this address can publish; set [control] key")

    async def handle(self, conn: HttpConnection, req: ClientRequest) -> bool:
        path = req.path[:-1] if req.path.endswith("/") and req.path != "/" else req.path
        if path == "/":
            self._answer(conn, 200, b"p8 API\n")
            return False
        try:
            found = find_view(self.app.control_views, path)
        except ValueError:
            self._answer(conn, 400, b"Path is not UTF-8 once URL-decoded.\n")
            return False
        if found is not None:
            self._view(conn, req, *found)
            return False
        action = self.routes.get(path)
        if action is None:
            self._answer(conn, 404, b"Not Found\n")
            return False
        if req.method != b"POST":
            self._answer(conn, 405, b"Method not allowed: %s.\n" % req.method,
                         [(b"allow", b"POST")])
            return False
        if not self._authorized(conn, req):
            return False
        as_json = wants_json(req.header(b"accept"))
        if as_json is None:
            self._answer(conn, 406, NOT_ACCEPTABLE)
            return False
        length = request_body_length(req.headers)
        if length is None:
            self._answer(conn, 411, b"Request requires Content-Length.\n")
            return False
        max_body = self.app.config.control.max_body
        if length > max_body:
            self.app.metrics.rejected_publish_too_large += 1
            self._answer(conn, 413, b"Request body too large: over %d bytes.\n" % max_body)
            return False
        body = bytearray()
        async for chunk in conn.body():
            body += chunk
        verbose = path == "/publish" and (as_json or wants_verbose(req.target))
        feedback = Feedback() if verbose else None
        try:
            message = action(bytes(body), feedback)
        except PublishError as e:
            log.warning("publish_rejected", reason=str(e))
            self._answer(conn, e.status_hint, f"{one_line(str(e))}\n".encode())
            return False
        if as_json or feedback is not None:
            report = feedback.report() if feedback is not None else {}
            self._answer(conn, *json_answer({"message": message, **report}))
        else:
            self._answer(conn, 200, f"{message}\n".encode())
        return False

    def _view(self, conn: HttpConnection, req: ClientRequest, view: ControlView,
              rest: str) -> None:
        """A read-only answer; for publishers only, unless the view is public."""
        if req.method != b"GET":
            self._answer(conn, 405, b"Method not allowed: %s.\n" % req.method,
                         [(b"allow", b"GET")])
            return
        if not view.public and not self._authorized(conn, req):
            return
        self._answer(conn, *view.answer(rest))

    def _authorized(self, conn: HttpConnection, req: ClientRequest) -> bool:
        """Whether the request may go on; if not, it was answered ``401`` with the reason."""
        auth = self.app.publish_auth
        if auth is None:
            return True
        reason = auth.check(req.header(b"authorization"), time.time())
        if reason is None:
            return True
        self.app.metrics.publishes_unauthorized += 1
        log.warning("unauthorized", path=req.path, peer=req.peer, reason=reason)
        self._answer(conn, 401, f"{reason}\n".encode(), [(b"www-authenticate", AUTHENTICATE)])
        return False

    def _publish(self, body: bytes, feedback: Feedback | None) -> str:
        count = self.app.publish_body(body, feedback)
        log.debug("published", items=count)
        return "Published"

    def _recover(self, body: bytes, feedback: Feedback | None) -> str:
        self.app.recover()
        log.info("recovered")
        return "Updated"

    @staticmethod
    def _answer(conn: HttpConnection, status: int, body: bytes,
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
        head = headers if headers and headers[0][0] == b"content-type" else [
            (b"content-type", b"text/plain"), *(headers or [])]
        conn.respond(status, body, [*head, (b"connection", b"close")])
        conn.close()
