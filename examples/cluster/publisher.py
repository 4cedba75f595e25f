"""The cluster's publisher: one XPUB socket that every p8 node's SUB connects to.

It prints each channel a node starts or stops listening to (subscription forwarding) and
publishes every line typed on stdin to channel ``news`` as an http-stream item.
Run: ``python publisher.py`` (from the project's virtualenv).
"""

from __future__ import annotations

import json
import sys

import zmq

ENDPOINT = "tcp://127.0.0.1:5590"


def main() -> None:
    xpub = zmq.Context.instance().socket(zmq.XPUB)
    xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
    xpub.bind(ENDPOINT)
    poller = zmq.Poller()
    poller.register(xpub, zmq.POLLIN)
    poller.register(sys.stdin, zmq.POLLIN)
    print(f"publisher bound on {ENDPOINT}; type lines to publish to 'news'", flush=True)
    while True:
        for source, _ in poller.poll():
            if source is xpub:
                event = xpub.recv()
                action = "listening to" if event[:1] == b"\x01" else "no longer listening to"
                print(f"a node is {action} {event[1:].decode()!r}", flush=True)
                continue
            line = sys.stdin.readline()
            if not line:
                return
            item = {"formats": {"http-stream": {"content": line}}}
            xpub.send_multipart([b"news", b"J" + json.dumps(item).encode()])


if __name__ == "__main__":
    main()
