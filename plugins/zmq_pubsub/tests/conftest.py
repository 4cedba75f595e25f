"""Fixtures for ZeroMQ tests over real sockets: a context and free loopback endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import zmq
import zmq.asyncio


@pytest.fixture
def ctx() -> Iterator[zmq.asyncio.Context]:
    context = zmq.asyncio.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def free_endpoint(ctx: zmq.asyncio.Context) -> Callable[[], str]:
    """Makes ``tcp://127.0.0.1:<port>`` endpoints that nothing listens on right now."""

    def make() -> str:
        sock = ctx.socket(zmq.PULL)
        try:
            port = sock.bind_to_random_port("tcp://127.0.0.1")
            sock.unbind(f"tcp://127.0.0.1:{port}")
            return f"tcp://127.0.0.1:{port}"
        finally:
            sock.close(linger=0)

    return make
