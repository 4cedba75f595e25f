"""The client listeners: plain TCP, TLS and Unix sockets, and the TLS context they use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import cast

import structlog

from ..config import Config, parse_address
from ..errors import ConfigError, P8Error

log = structlog.get_logger(component="server")

BACKLOG = 4096
TLS_HANDSHAKE_TIMEOUT = 30.0

ProtocolFactory = Callable[[], asyncio.Protocol]


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server TLS context for ``[server] tls_listen``, or None without TLS listeners.

    With ``tls_cert_dir``, a client that names a host (SNI) with a certificate there gets
    that one: ``<host>.crt`` exactly, else ``*.<parent domain>.crt``.

    :raises ConfigError: a certificate or key cannot be read or do not match, naming
        ``server.tls_cert``, ``server.tls_key`` or ``server.tls_cert_dir``.
    """
    server = config.server
    if not server.tls_listen:
        return None
    cert = config.base_dir / server.tls_cert
    key = config.base_dir / server.tls_key if server.tls_key else None
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        if path is not None and not path.is_file():
            raise ConfigError(config.source, f"server.{name}", f"cannot read {path}")
    context = _server_context(cert, key, config.source,
                              "server.tls_key" if key else "server.tls_cert")
    if server.tls_cert_dir:
        hosts = _host_contexts(config.base_dir / server.tls_cert_dir, config.source)
        context.sni_callback = partial(_choose_by_host, hosts)
    return context


def _server_context(cert: Path, key: Path | None, source: str, what: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(source, what, f"not a PEM certificate and matching key: {e}") from None
    return context


def _host_contexts(directory: Path, source: str) -> dict[str, ssl.SSLContext]:
    """A context per ``<host>.crt`` in ``directory`` (its key in ``<host>.key`` beside it,
    or in the same file), by lower-cased host name."""
    if not directory.is_dir():
        raise ConfigError(source, "server.tls_cert_dir", f"not a directory: {directory}")
    hosts: dict[str, ssl.SSLContext] = {}
    for cert in sorted(directory.glob("*.crt")):
        key = cert.with_suffix(".key")
        hosts[cert.stem.lower()] = _server_context(
            cert, key if key.is_file() else None, source, f"server.tls_cert_dir ({cert.name})")
    return hosts


def _choose_by_host(hosts: dict[str, ssl.SSLContext], conn: ssl.SSLObject,
                    server_name: str | None, _default: ssl.SSLContext) -> None:
    """SNI: switch ``conn`` to the certificate of the host the client names, if any."""
    if server_name:
        name = server_name.lower()
        chosen = hosts.get(name) or hosts.get("*." + name.partition(".")[2])
        if chosen is not None:
            conn.context = chosen


@dataclass
class Listeners:
    """The listening servers, and what the client ones are bound to (port 0 resolved)."""

    servers: list[asyncio.Server] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    tls_ports: list[int] = field(default_factory=list)
    unix_paths: list[Path] = field(default_factory=list)

    def close(self) -> None:
        """Stop listening and remove the Unix socket files."""
        for server in self.servers:
            server.close()
        for path in self.unix_paths:
            path.unlink(missing_ok=True)


class TlsHandshake(asyncio.Protocol):
    """Runs the TLS handshake of a new connection, then hands the connection to the
    protocol made for it. A client that fails the handshake is closed and logged at debug
    level, without disturbing anything else."""

    def __init__(self, context: ssl.SSLContext, factory: ProtocolFactory,
                 spawn: Callable[..., object]) -> None:
        self.context, self.factory, self.spawn = context, factory, spawn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)
        raw.pause_reading()  # the ClientHello waits for start_tls
        self.spawn(self._handshake, raw)

    async def _handshake(self, raw: asyncio.Transport) -> None:
        protocol = self.factory()
        error: Exception | None = None
        try:
            secure = await asyncio.get_running_loop().start_tls(
                raw, protocol, self.context, server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError, TimeoutError) as e:
            secure, error = None, e
        if secure is None:
            raw.abort()
            log.debug("tls_handshake_failed", peer=raw.get_extra_info("peername"),
                      error=str(error))
            protocol.connection_lost(error)
            return
        protocol.connection_made(secure)


async def listen(loop: asyncio.AbstractEventLoop, factory: ProtocolFactory, host: str,
                 port: int) -> asyncio.Server:
    """Listen on TCP with a kernel accept queue that takes bursts (accepting in batches).

    :raises P8Error: the address cannot be bound, naming it.
    """
    return await loop.create_server(factory, sock=bind_tcp(host, port), backlog=BACKLOG)


def bind_tcp(host: str, port: int, *, reuse_port: bool = False,
             listening: bool = True) -> socket.socket:
    """A TCP socket bound to ``host:port`` (listening, unless ``listening`` is false).

    :param reuse_port: share the port with the other sockets bound with SO_REUSEPORT (the
        workers of one supervisor); the kernel spreads connections over those listening.
    :raises P8Error: the address cannot be bound, naming it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        if listening:
            sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise P8Error(f"cannot listen on {where}: {_reason(e)}") from None
    return sock


def bind_unix(path: Path, mode: int) -> socket.socket:
    """A listening Unix socket at ``path`` (a stale socket file is replaced) with
    permissions ``mode``.

    :raises P8Error: the path cannot be bound, naming it.
    """
    sock = socket.socket(socket.AF_UNIX)
    try:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(path.stat().st_mode):
                path.unlink()
        sock.bind(os.fspath(path))
        path.chmod(mode)
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise P8Error(f"cannot listen on {path}: {_reason(e)}") from None
    return sock


@dataclass
class ClientSockets:
    """Listening sockets for the client listeners, by kind. Made by
    :func:`bind_client_sockets`, or by the supervisor of several workers for them."""

    plain: list[socket.socket] = field(default_factory=list)
    tls: list[socket.socket] = field(default_factory=list)
    unix: list[socket.socket] = field(default_factory=list)

    def close(self) -> None:
        for sock in (*self.plain, *self.tls, *self.unix):
            sock.close()


def bind_client_sockets(config: Config, *, tcp: bool = True) -> ClientSockets:
    """Listening sockets for every ``[server]`` address (only the Unix ones without
    ``tcp``).

    :raises P8Error: an address cannot be bound; what was bound is closed again.
    """
    server = config.server
    made = ClientSockets()
    try:
        for text in server.listen if tcp else ():
            address = parse_address(text, "", "")
            made.plain.append(bind_tcp(address.host, address.port))
        for text in server.tls_listen if tcp else ():
            address = parse_address(text, "", "")
            made.tls.append(bind_tcp(address.host, address.port))
        for text in server.unix_listen:
            made.unix.append(bind_unix(config.base_dir / text, server.unix_mode))
    except BaseException:
        made.close()
        raise
    return made


async def open_client_listeners(loop: asyncio.AbstractEventLoop, config: Config,
                                factory: Callable[[bool], asyncio.Protocol],
                                tls: ssl.SSLContext | None,
                                spawn: Callable[..., object],
                                sockets: ClientSockets | None = None) -> Listeners:
    """Listen on every ``[server]`` address, or on ``sockets``.

    :param factory: makes the protocol for a new connection; its argument says whether
        the connection is TLS.
    :param tls: the context for ``tls_listen`` (see :func:`tls_context`).
    :param spawn: starts a task in the server's task group (for TLS handshakes).
    :param sockets: sockets made elsewhere (a worker's); their Unix socket files belong to
        whoever made them.
    :raises P8Error: an address cannot be bound; what was opened is closed again.
    """
    made = sockets or bind_client_sockets(config)
    opened = Listeners()
    try:
        for sock in made.plain:
            opened.servers.append(await loop.create_server(
                lambda: factory(False), sock=sock, backlog=BACKLOG))
            opened.ports.append(_port(opened.servers[-1]))
        for sock in made.tls:
            assert tls is not None, "tls_context() makes one whenever tls_listen is set"
            opened.servers.append(await loop.create_server(
                lambda: TlsHandshake(tls, lambda: factory(True), spawn), sock=sock,
                backlog=BACKLOG))
            opened.tls_ports.append(_port(opened.servers[-1]))
        for sock in made.unix:
            opened.servers.append(await loop.create_unix_server(
                lambda: factory(False), sock=sock, backlog=BACKLOG))
            if sockets is None:
                opened.unix_paths.append(Path(sock.getsockname()))
    except BaseException:
        opened.close()
        made.close()
        raise
    return opened


def _reason(error: OSError) -> str:
    """The system's words for a failed bind (asyncio wraps them in a longer message)."""
    return os.strerror(error.errno) if error.errno else str(error)


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
