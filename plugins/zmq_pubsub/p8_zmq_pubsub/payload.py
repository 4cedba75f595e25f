"""One publish message from a ZeroMQ input: ``J`` + JSON, ``T`` + tnetstring, or a bare
tnetstring (publishing.md §3.1). Sans-I/O."""

from __future__ import annotations

import json

from p8core import PublishError
from p8core.codec.tnetstring import TNetStringError, loads
from p8core.pubsub.items import from_tnetstring


def decode_payload(data: bytes) -> object:
    """The item a payload carries, in the shape ``PublishItem.from_json`` reads.

    :raises PublishError: with Pushpin's log wording (``invalid format (json parse failed)``).
    """
    if data[:1] == b"J":
        try:
            item = json.loads(data[1:])
        except (ValueError, RecursionError):
            raise PublishError("received message with invalid format (json parse failed)") \
                from None
        if not isinstance(item, dict):
            raise PublishError("received message with invalid format (not a valid json object)")
        return item
    body = data[1:] if data[:1] == b"T" else data
    try:
        return from_tnetstring(loads(body))
    except TNetStringError:
        raise PublishError("received message with invalid format (tnetstring parse failed)") \
            from None
