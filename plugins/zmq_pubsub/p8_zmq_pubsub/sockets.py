"""What every socket of the plugin shares: binding with a start-up error people can read."""

from __future__ import annotations

from typing import Any

import zmq

from p8core import P8Error


def bind(sock: zmq.Socket[Any], spec: str) -> None:
    """Bind ``sock`` to ``spec``.

    :raises P8Error: the endpoint is taken or invalid; stops start-up with the reason.
    """
    try:
        sock.bind(spec)
    except zmq.ZMQError as e:
        raise P8Error(f"zmq_pubsub: cannot bind {spec}: {e}") from None
