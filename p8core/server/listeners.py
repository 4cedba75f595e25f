"""The client listeners: plain TCP, TLS and Unix sockets, and the TLS context they use."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, parse_address
from ..errors import ConfigError, P8Error

BACKLOG = 4096

ProtocolFactory = Callable[[], asyncio.Protocol]


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server TLS context for ``[server] tls_listen``, or None without TLS listeners.

    :raises ConfigError: the certificate or key cannot be read or do not match, naming
        ``server.tls_cert`` or ``server.tls_key``.
    """
    server = config.server
    if not server.tls_listen:
        return None
    cert = config.base_dir / server.tls_cert
    key = config.base_dir / server.tls_key if server.tls_key else None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        if path is not None and not path.is_file():
            raise ConfigError(config.source, f"server.{name}", f"cannot read {path}")
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(config.source, "server.tls_key" if key else "server.tls_cert",
                          f"not a PEM certificate and matching key: {e}") from None
    return context


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


async def listen(loop: asyncio.AbstractEventLoop, factory: ProtocolFactory, host: str,
                 port: int, tls: ssl.SSLContext | None = None) -> asyncio.Server:
    """Listen on TCP with a kernel accept queue that takes bursts (accepting in batches).

    :raises P8Error: the address cannot be bound, naming it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return await loop.create_server(factory, host, port, family=family, backlog=BACKLOG,
                                        reuse_address=True, ssl=tls)
    except OSError as e:
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise P8Error(f"cannot listen on {where}: {e.strerror or e}") from None


async def open_client_listeners(loop: asyncio.AbstractEventLoop, config: Config,
                                factory: Callable[[bool], asyncio.Protocol],
                                tls: ssl.SSLContext | None) -> Listeners:
    """Listen on every ``[server]`` address.

    :param factory: makes the protocol for a new connection; its argument says whether
        the connection is TLS.
    :raises P8Error: an address cannot be bound; what was opened is closed again.
    """
    server = config.server
    opened = Listeners()
    try:
        for text in server.listen:
            address = parse_address(text, "", "")
            opened.servers.append(await listen(loop, lambda: factory(False), address.host,
                                               address.port))
            opened.ports.append(_port(opened.servers[-1]))
        for text in server.tls_listen:
            address = parse_address(text, "", "")
            opened.servers.append(await listen(loop, lambda: factory(True), address.host,
                                               address.port, tls))
            opened.tls_ports.append(_port(opened.servers[-1]))
        for text in server.unix_listen:
            path = config.base_dir / text
            opened.servers.append(await _listen_unix(loop, lambda: factory(False), path,
                                                     server.unix_mode))
            opened.unix_paths.append(path)
    except BaseException:
        opened.close()
        raise
    return opened


async def _listen_unix(loop: asyncio.AbstractEventLoop, factory: ProtocolFactory, path: Path,
                       mode: int) -> asyncio.Server:
    """Listen on a Unix socket (a stale socket file is replaced) with permissions ``mode``."""
    try:
        server = await loop.create_unix_server(factory, os.fspath(path), backlog=BACKLOG)
    except OSError as e:
        raise P8Error(f"cannot listen on {path}: {e.strerror or e}") from None
    path.chmod(mode)
    return server


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
