"""Helpers for testing p8 and its plugins over real sockets.

``run_p8`` starts p8 in-process on free ports; ``Origin`` is a tiny backend on a free port
whose answers a test scripts; ``publish`` posts items to the control API; ``scrape`` reads
its metrics; ``self_signed_cert`` makes a certificate for TLS listeners.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import h11
import httpx
from anyio.abc import SocketStream, TaskGroup
from prometheus_client.parser import text_string_to_metric_families

from .app import App
from .server.serve import Bound, serve


@dataclass
class Running:
    """A p8 started by :func:`run_p8`."""

    app: App
    bound: Bound

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.bound.port}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.bound.control}"

    @property
    def tls_url(self) -> str:
        """The first ``tls_listen`` address, as an ``https://`` URL."""
        return f"https://127.0.0.1:{self.bound.tls[0]}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a config that must name its port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_config(raw: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``raw`` with the listeners moved to free loopback ports (unless it sets them)."""
    config = copy.deepcopy(dict(raw or {}))
    config.setdefault("server", {}).setdefault("listen", ["127.0.0.1:0"])
    config.setdefault("control", {}).setdefault("listen", "127.0.0.1:0")
    return config


@asynccontextmanager
async def run_p8(raw: Mapping[str, Any] | None = None, *, base_dir: Path = Path("."),
                 plugins: Sequence[object] = ()) -> AsyncIterator[Running]:
    """Run p8 with config ``raw`` (a parsed TOML document) until the block exits.

    :param plugins: plugin objects registered besides the installed ones.
    """
    app = App.from_raw(loopback_config(raw), "<test>", base_dir, plugins)
    async with anyio.create_task_group() as tg:
        bound = await tg.start(serve, app)
        try:
            yield Running(app, bound)
        finally:
            tg.cancel_scope.cancel()


async def publish(running: Running, *items: Mapping[str, Any]) -> httpx.Response:
    """POST ``items`` to p8's control API and return the answer."""
    async with httpx.AsyncClient() as client:
        return await client.post(f"{running.control_url}/publish/", json={"items": items})


class Samples:
    """One scrape of p8's ``/metrics``; call it with a sample's name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [(s.name, s.labels, s.value)
                        for family in text_string_to_metric_families(text)
                        for s in family.samples]

    def __call__(self, name: str, **labels: str) -> float:
        """The value of sample ``name`` with exactly ``labels``; 0 when there is none."""
        for found, found_labels, value in self.samples:
            if found == name and found_labels == labels:
                return value
        return 0.0


async def scrape(running: Running) -> Samples:
    """GET the control API's ``/metrics``."""
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{running.control_url}/metrics")
    resp.raise_for_status()
    return Samples(resp.text)
BYSTANDER_CHANNEL = "bystander"


@dataclass
class Bystander:
    """A client holding a stream on channel ``bystander``, to prove that whatever a test
    did to p8 harmed no other connection: :meth:`check` publishes and waits for it.

    Needs the ``stream`` hold mode (plugin ``http_stream``) and a route to the ``test``
    target for ``path``.
    """

    running: Running
    stream: SocketStream
    received: bytearray = field(default_factory=bytearray)
    checks: int = 0

    @classmethod
    @asynccontextmanager
    async def hold(cls, running: Running, path: str = "/stream") -> AsyncIterator[Bystander]:
        """Open the held stream (``?channel=bystander`` is added to ``path``)."""
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp("127.0.0.1", running.bound.port)
        async with stream:
            await stream.send(f"GET {path}?channel={BYSTANDER_CHANNEL} HTTP/1.1\r\n"
                              "Host: bystander\r\n\r\n".encode())
            bystander = cls(running, stream)
            await bystander.expect(b"[stream opened]\n")
            yield bystander

    async def check(self) -> None:
        """Publish to the bystander's channel; fail unless the stream receives it."""
        self.checks += 1
        content = f"bystander check {self.checks}\n"
        resp = await publish(self.running, {"channel": BYSTANDER_CHANNEL,
                                            "formats": {"http-stream": {"content": content}}})
        assert resp.status_code == 200, resp.text
        await self.expect(content.encode())

    async def expect(self, data: bytes) -> None:
        """Read the stream until ``data`` arrives (at most 5 s)."""
        with anyio.fail_after(5):
            while data not in self.received:
                try:
                    self.received += await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    raise AssertionError("the bystander's stream was closed") from None
        del self.received[:self.received.index(data) + len(data)]


@dataclass
class SeenRequest:
    """A request as the test origin received it."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name.lower():
                return v
        return None


@dataclass
class Reply:
    """What the test origin answers: status, headers, body (sent with Content-Length)."""

    status: int = 200
    headers: Sequence[tuple[str | bytes, str | bytes]] = ()
    body: bytes = b""


OriginHandler = Callable[[SeenRequest], Awaitable[Reply] | Reply]


@dataclass
class Origin:
    """A scripted HTTP/1.1 backend on a free loopback port; records every request."""

    handler: OriginHandler
    port: int = 0
    requests: list[SeenRequest] = field(default_factory=list)
    connections: int = 0

    @property
    def target(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve_one(self, stream: SocketStream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                event = await _next(conn, stream)
                if not isinstance(event, h11.Request):
                    return
                body = bytearray()
                while isinstance(ev := await _next(conn, stream), h11.Data):
                    body += ev.data
                if not isinstance(ev, h11.EndOfMessage):
                    return
                seen = SeenRequest(event.method, event.target, list(event.headers), bytes(body))
                self.requests.append(seen)
                reply = self.handler(seen)
                if not isinstance(reply, Reply):
                    reply = await reply
                headers = [(_bytes(n), _bytes(v)) for n, v in reply.headers]
                headers.append((b"content-length", b"%d" % len(reply.body)))
                await stream.send(conn.send(h11.Response(status_code=reply.status,
                                                         headers=headers)) or b"")
                if event.method != b"HEAD":
                    await stream.send(conn.send(h11.Data(data=reply.body)) or b"")
                await stream.send(conn.send(h11.EndOfMessage()) or b"")
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


async def _next(conn: h11.Connection, stream: SocketStream) -> Any:
    """The next h11 event; a request broken off midway reads as ``ConnectionClosed``."""
    try:
        while (event := conn.next_event()) is h11.NEED_DATA:
            try:
                conn.receive_data(await stream.receive(65536))
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                conn.receive_data(b"")
    except h11.RemoteProtocolError:
        return h11.ConnectionClosed()
    return event


@asynccontextmanager
async def run_origin(handler: OriginHandler) -> AsyncIterator[Origin]:
    """Serve ``handler`` as an HTTP backend until the block exits."""
    origin = Origin(handler)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    origin.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    tg: TaskGroup
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, origin._serve_one)
        try:
            yield origin
        finally:
            tg.cancel_scope.cancel()


def self_signed_cert(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """Write a self-signed certificate for ``host`` (an IP address or a DNS name), valid
    for a day, and its key, as PEM files in ``directory``. Needs ``cryptography``.

    :returns: the certificate's and the key's paths; a client trusts the certificate by
        using it as its CA file.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
