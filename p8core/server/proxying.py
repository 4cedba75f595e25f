"""The way of a client request: route, forward, then relay the answer or hold it."""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
import httpx
import structlog

from ..connector import (
    OriginError,
    OriginRequest,
    OriginResponse,
    OriginTimeout,
    RequestTooLarge,
)
from ..errors import InstructionError, one_line
from ..grip.instructions import Instruct, is_grip_response, parse_instruct
from ..hold import Fetch, Fetched, HeldRequest, Hold
from ..proxy.crossorigin import CorsShaper, JsonpError, JsonpShaper, jsonp_request
from ..proxy.headers import GRIP_FEATURE, request_body_length, request_headers, response_headers
from ..proxy.routes import Route, rewrite_path
from .connection import ClientRequest, ConnectionGone, HttpConnection
from .held import HeldExchange

if TYPE_CHECKING:
    from ..app import App

log = structlog.get_logger(component="proxy")

Headers = tuple[tuple[bytes, bytes], ...]

STREAM_MODE = "stream"
ERROR_BODY = b"Error while proxying to origin.\n"
"""What a client is told of a backend or GRIP failure, unless the route has ``debug``."""
UPDATE_RATE = 10.0
"""Low-priority retries and next-link fetches per second, process-wide (grip.md §7.4)."""


class BodyRecorder:
    """Passes at most ``max_size`` bytes of a request body through, keeping its first
    ``limit`` bytes for retries."""

    __slots__ = ("consumed", "kept", "limit", "max_size", "overflowed", "source")

    def __init__(self, source: AsyncIterator[bytes], limit: int, max_size: int) -> None:
        self.source, self.limit, self.max_size = source, limit, max_size
        self.kept = bytearray()
        self.consumed = 0
        self.overflowed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self.source:
            self.consumed += len(chunk)
            if self.consumed > self.max_size:
                raise body_too_large(self.max_size)
            if not self.overflowed:
                if len(self.kept) + len(chunk) > self.limit:
                    self.overflowed = True
                    self.kept.clear()
                else:
                    self.kept += chunk
            yield chunk


def body_too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"Request body too large: over {limit} bytes.")


async def _replay(body: bytes) -> AsyncIterator[bytes]:
    if body:
        yield body


class Proxy:
    """Forwards client requests to backends and acts on GRIP instructions."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.updates: deque[tuple[HeldExchange, Callable[[], None]]] = deque()
        self.updates_waiting = anyio.Event()

    async def handle(self, conn: HttpConnection, req: ClientRequest) -> bool:
        """Serve one client request. Returns False when a hold now owns the connection."""
        started = time.perf_counter()
        self.app.metrics.requests += 1
        if req.method == b"CONNECT":
            # p8 is no tunnel; a 2xx answer would switch the connection's protocol.
            self.app.metrics.rejected_bad_request += 1
            conn.respond(405, b"Method not allowed: CONNECT.\n")
            self._log(req, None, 405, started)
            return True
        route = self.app.router.match(req.host, req.path, websocket=False, ssl=req.ssl)
        if self.app.config.proxy.auto_cross_origin or (route is not None and route.aco):
            conn.shaper = CorsShaper(req.headers)
        if route is None:
            conn.respond(502, f"No route for host: {req.host}\n".encode())
            self._log(req, None, 502, started)
            return True
        conn.route = route
        body, length = conn.body(), request_body_length(req.headers)
        if conn.shaper is not None:
            try:
                call = jsonp_request(route, req.method, req.target, req.headers)
            except JsonpError as e:
                conn.respond(400, f"{e}\n".encode())
                self._log(req, route, 400, started)
                return True
            if call is not None:
                conn.shaper = JsonpShaper(call.callback, call.extended)
                req = dataclasses.replace(req, method=call.method, target=call.target,
                                          headers=call.headers)
                body, length = _replay(call.body), len(call.body)
        max_size = self.app.config.server.max_request_body
        if length is not None and length > max_size:
            return self._origin_failed(conn, req, route, body_too_large(max_size), started)
        recorder = BodyRecorder(body, self.app.config.proxy.max_grip_body, max_size)
        return await self._forward(conn, req, route, recorder.chunks(), length, recorder, (),
                                   started)

    def queue_update(self, exchange: HeldExchange, update: Callable[[], None]) -> None:
        """Run a low-priority retry or fetch for ``exchange`` within the process-wide rate
        (grip.md §7.4). The exchange stays held meanwhile: if a publish answers it first,
        its turn is skipped."""
        self.updates.append((exchange, update))
        self.updates_waiting.set()

    async def run_updates(self) -> None:
        """Release queued updates at ``UPDATE_RATE`` per second."""
        while True:
            await self.updates_waiting.wait()
            while self.updates:
                exchange, update = self.updates.popleft()
                if not exchange.done:
                    update()
                    await anyio.sleep(1 / UPDATE_RATE)
            self.updates_waiting = anyio.Event()

    async def fetch(self, exchange: HeldExchange, fetch: Fetch) -> None:
        """GET a hold's next link and hand the answer to the exchange."""
        hold = exchange.mode.hold
        try:
            result = await self._fetch(hold, fetch)
        except OriginError as e:
            result = Fetched(error=str(e))
        except Exception as e:
            log.exception("fetch_failed", url=fetch.url)
            result = Fetched(error=f"cannot fetch {fetch.url}: {e}")
        exchange.fetched(result)

    async def _fetch(self, hold: Hold, fetch: Fetch) -> Fetched:
        link, origin = urlsplit(fetch.url), urlsplit(hold.url)
        route = hold.route
        headers = [(b"host", link.netloc.encode()), *fetch.headers]
        if not route.no_grip:
            headers += self.grip_headers(route)
        limit = self.app.config.proxy.max_grip_body
        if (link.scheme, link.netloc) != (origin.scheme, origin.netloc):
            return await self._fetch_external(fetch.url, headers, limit)
        target = rewrite_path(route, link.path or "/") + (f"?{link.query}" if link.query else "")
        resp = await self._send(route, OriginRequest(b"GET", target.encode("latin-1"), headers,
                                                     route=route))
        try:
            body = await resp.read(limit)
        finally:
            await resp.aclose()
        if body is None:
            return Fetched(error=f"next link response larger than {limit} bytes")
        return Fetched(resp.status, resp.reason, tuple(resp.headers), body)

    async def _fetch_external(self, url: str, headers: list[tuple[bytes, bytes]],
                              limit: int) -> Fetched:
        """A link to another origin goes out through httpx (off the hot path)."""
        client = self.app.http_client()
        try:
            async with client.stream("GET", url, headers=headers[1:],
                                     timeout=self.app.config.proxy.backend_timeout) as resp:
                body = bytearray()
                async for chunk in resp.aiter_raw():
                    body += chunk
                    if len(body) > limit:
                        return Fetched(error=f"next link response larger than {limit} bytes")
                raw_headers = tuple((k.lower(), v) for k, v in resp.headers.raw)
                return Fetched(resp.status_code, resp.reason_phrase.encode(), raw_headers,
                               bytes(body))
        except httpx.HTTPError as e:
            return Fetched(error=f"cannot fetch {url}: {e}")

    async def retry(self, conn: HttpConnection, hold: Hold, extra: Headers) -> None:
        """Send a held request to the backend again (``Retry``), then serve the answer."""
        request = hold.request
        req = ClientRequest(request.method, request.target, list(request.headers),
                            b"1.1", request.peer, request.ssl)
        recorder = BodyRecorder(_replay(request.body), len(request.body), len(request.body))
        served = False
        try:
            if await self._forward(conn, req, hold.route, recorder.chunks(),
                                   len(request.body), recorder, extra, time.perf_counter()):
                conn.finish_exchange()
            served = True
        except ConnectionGone:
            pass
        finally:
            if not served:
                conn.abort()

    async def _forward(self, conn: HttpConnection, req: ClientRequest, route: Route,
                       body: AsyncIterator[bytes], length: int | None,
                       recorder: BodyRecorder, extra: Headers, started: float) -> bool:
        app = self.app
        grip = not route.no_grip
        trusted = grip and self.is_trusted(req)
        added = [*extra, *self.grip_headers(route)] if grip and not trusted else list(extra)
        host = route.as_host.encode() if route.as_host else None
        headers = request_headers(req.headers, trusted=trusted, overrides=route.headers,
                                  host=host, peer=req.peer, secure=req.ssl,
                                  forwarding=app.config.proxy, added=added)
        path, _, query = req.target.decode("latin-1").partition("?")
        target = rewrite_path(route, path) + (f"?{query}" if query else "")
        outbound = OriginRequest(req.method, target.encode("latin-1"), headers, body, length,
                                 route, secure=req.ssl)
        try:
            resp = await self._send(route, outbound, recorder)
        except OriginError as e:
            return self._origin_failed(conn, req, route, e, started)
        app.metrics.requests_proxied += 1
        try:
            if grip and not trusted and is_grip_response(resp.headers):
                return await self._grip(conn, req, route, resp, recorder, started)
            return await self._relay(conn, req, route, resp, started)
        finally:
            await resp.aclose()

    async def _send(self, route: Route, outbound: OriginRequest,
                    recorder: BodyRecorder | None = None) -> OriginResponse:
        """Try the route's targets in order while nothing of the body was sent yet."""
        timeout = self.app.config.proxy.backend_timeout
        for i, target in enumerate(route.targets):
            try:
                with self.app.telemetry.origin_call("proxy", target) as call:
                    resp = await self.app.connector(target, route).request(outbound,
                                                                           timeout=timeout)
                    call.status = resp.status
                return resp
            except OriginError:
                if i + 1 == len(route.targets) or (recorder and recorder.consumed):
                    raise
        raise AssertionError("a route has at least one target")

    def grip_headers(self, route: Route) -> list[tuple[bytes, bytes]]:
        """What the proxy tells a backend about itself: ``Grip-Sig``, ``Grip-Feature``."""
        signer = self.app.route_signer(route.sig_iss, route.sig_key)
        sig = [(b"grip-sig", signer.token(time.time()).encode())] if signer else []
        return [*sig, (b"grip-feature", GRIP_FEATURE)]

    def is_trusted(self, req: ClientRequest) -> bool:
        """A client whose Grip-Sig validates with ``upstream_key`` is a trusted proxy."""
        verifier = self.app.verifier
        token = req.header(b"grip-sig")
        return bool(verifier and token and verifier.is_valid(token.decode("latin-1"),
                                                             time.time()))

    async def _relay(self, conn: HttpConnection, req: ClientRequest, route: Route,
                     resp: OriginResponse, started: float) -> bool:
        """Stream a plain response back as it arrives, with the client's backpressure."""
        conn.send_head(resp.status, response_headers(resp.headers), resp.reason)
        sent = 0
        try:
            async for chunk in resp.chunks():
                conn.send_data(chunk)
                sent += len(chunk)
                await conn.drain()
        except ConnectionGone:
            self.app.metrics.clients_gone_mid_response += 1
            raise
        except OriginError as e:
            self.app.metrics.origin_broke_off += 1
            log.warning("origin_broke_off", route=route.route_id, reason=str(e))
            conn.abort()
            self._log(req, route, resp.status, started, sent)
            return False
        conn.send_end()
        self._log(req, route, resp.status, started, sent)
        return True

    async def _grip(self, conn: HttpConnection, req: ClientRequest, route: Route,
                    resp: OriginResponse, recorder: BodyRecorder, started: float) -> bool:
        """Read the instruction and answer, or start the hold it asks for."""
        limit = self.app.config.proxy.max_grip_body
        try:
            body = await resp.read(limit)
        except OriginError as e:
            return self._origin_failed(conn, req, route, e, started)
        if body is None:
            return self._fail(conn, req, route, started, 502,
                              f"GRIP instruct response too large from {route.targets[0]}")
        if recorder.overflowed:
            conn.respond(400, b"Request too large to accept GRIP instruct.\n")
            self._log(req, route, 400, started)
            return True
        # Relative links resolve against the Host header as sent, port included.
        host = (req.header(b"host") or b"localhost").decode("latin-1")
        url = f"{'https' if req.ssl else 'http'}://{host}{req.path}"
        try:
            instruct = parse_instruct(resp.status, resp.reason, resp.headers, body,
                                      request_url=url, channel_prefix=route.prefix,
                                      max_channels=self.app.config.pubsub
                                      .connection_subscription_max)
        except InstructionError as e:
            return self._fail(conn, req, route, started, 502,
                              f"Failed to parse accept instructions: {e}")
        if instruct.hold is None and instruct.next_link is None:
            if not 200 <= instruct.status <= 999:
                return self._fail(conn, req, route, started, 502,
                                  f"Invalid Grip-Status code {instruct.status}.")
            conn.respond(instruct.status, instruct.body, list(instruct.headers), instruct.reason)
            self._log(req, route, instruct.status, started, len(instruct.body))
            return True
        return self._hold(conn, req, route, instruct, bytes(recorder.kept), started)

    def _hold(self, conn: HttpConnection, req: ClientRequest, route: Route,
              instruct: Instruct, body: bytes, started: float) -> bool:
        # A response without a hold but with a next link streams on (grip.md §6).
        name = instruct.hold or STREAM_MODE
        mode = self.app.hold_modes.get(name)
        if mode is None:
            return self._fail(conn, req, route, started, 502,
                              f"no enabled plugin provides hold mode {name!r}")
        request = HeldRequest(req.method, req.target, tuple(req.headers), body, req.peer,
                              req.ssl)
        hub = self.app.hub
        last_ids = {c.name: hub.last_id(c.name) for c in instruct.channels}
        hold = Hold(instruct, request, route, last_ids)
        replay = [item for offered in self.app.pm.hook.p8_hold_replay(
                      app=self.app, hold=hold, format=mode.format) for item in offered]
        if replay:
            # The replay brings its channels up to date: no prev-id of theirs is behind.
            caught_up = {item.channel: None for item in replay}
            hold = dataclasses.replace(hold, last_ids={**last_ids, **caught_up})
        exchange = HeldExchange(self.app, conn, mode(hold))
        self.app.metrics.holds_started += 1
        self.app.metrics.rejected_subscriptions += instruct.dropped_channels
        self._log(req, route, instruct.status, started, hold=name)
        exchange.start([c.name for c in instruct.channels], replay)
        return False

    def _origin_failed(self, conn: HttpConnection, req: ClientRequest, route: Route,
                       e: OriginError, started: float) -> bool:
        """Answer a request its backend did not serve: ``e``'s status and one line."""
        metrics = self.app.metrics
        if isinstance(e, RequestTooLarge):
            metrics.rejected_body_too_large += 1
        elif isinstance(e, OriginTimeout):
            metrics.origin_timeouts += 1
        else:
            metrics.origin_failures += 1
        status = e.status_hint
        conn.respond(status, self._error_body(route, str(e), status))
        log.warning("origin_failed", route=route.route_id, reason=str(e), status=status)
        self._log(req, route, status, started)
        return True

    def _fail(self, conn: HttpConnection, req: ClientRequest, route: Route, started: float,
              status: int, reason: str) -> bool:
        self.app.metrics.origin_failures += 1
        log.warning("grip_failed", route=route.route_id, reason=reason)
        conn.respond(status, self._error_body(route, reason, status))
        self._log(req, route, status, started)
        return True

    def _error_body(self, route: Route, reason: str, status: int) -> bytes:
        """The reason of a client error (``4xx``); of a backend or GRIP failure only on a
        ``debug`` route (or with ``[proxy] debug``), else a fixed line."""
        if status < 500 or route.debug or self.app.config.proxy.debug:
            return f"{one_line(reason)}\n".encode()
        return ERROR_BODY

    def _log(self, req: ClientRequest, route: Route | None, status: int, started: float,
             sent: int = 0, **extra: object) -> None:
        emit = getattr(log, route.log_level) if route else log.info
        emit("request", method=req.method.decode(), path=req.path,
             route=route.route_id if route else None, status=status,
             duration_ms=round((time.perf_counter() - started) * 1000, 2), bytes=sent, **extra)

