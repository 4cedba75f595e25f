"""Fixtures for ZHTTP tests over real sockets: a ZeroMQ context and free loopback ports."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Iterator

import pytest
import zmq.asyncio


@pytest.fixture
def ctx() -> Iterator[zmq.asyncio.Context]:
    context = zmq.asyncio.Context()
    yield context
    context.destroy(linger=0)


# Below Linux's ephemeral range (32768-60999): a port there could be taken by any
# outgoing connection between the check here and p8's bind.
_PORTS = range(20000, 32000)


def _free_ports(count: int) -> int:
    """A port P such that P .. P+count-1 are free on 127.0.0.1 right now."""
    for _ in range(200):
        port = random.randrange(_PORTS.start, _PORTS.stop - count)
        held: list[socket.socket] = []
        try:
            for offset in range(count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError("no run of free ports found")


@pytest.fixture
def free_ports() -> Callable[[int], int]:
    """Call with ``n``: the first of ``n`` consecutive free loopback ports."""
    return _free_ports
