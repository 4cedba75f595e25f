"""A p8 cluster on one machine: one publisher, three p8 instances with two workers each.

``python examples/cluster/cluster.py`` starts the publisher (an XPUB socket), writes each
node's config and runs ``p8 run`` on it, connects clients to every node, publishes a few
messages, prints what each client received, and exits 0 when every client got every
message once, in order (1 otherwise). ``--interactive`` keeps the cluster running instead
and publishes each line typed on stdin, for clients of your own (``curl -N``).

Run it from the repository root after ``make setup``, with ``.venv/bin/python``.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import zmq
import zmq.asyncio
from anyio.abc import SocketStream

CHANNEL = "news"
WAIT = 20.0  # seconds any step may take before the demonstration gives up

NODE_CONFIG = """\
# Node {index} of the example cluster: clients on :{port}, control API on :{control}.
[server]
listen = ["127.0.0.1:{port}"]
workers = {workers}                    # processes sharing :{port}

[control]
listen = "127.0.0.1:{control}"

[plugins.zmq_pubsub]
pull = ""                              # this example publishes through SUB only
sub = ["{publisher}"]                  # the publisher's XPUB socket
sub_connect = true                     # nodes connect; the publisher binds
command = "tcp://127.0.0.1:{command}"    # each node its own command socket

[[routes]]
target = "test"                        # the built-in backend: /stream?channel=... holds
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """One p8 instance of the cluster."""

    index: int
    port: int
    control: int
    proc: subprocess.Popen[bytes]
    log: Path
    clients: list[Client] = field(default_factory=list)

    def workers(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"http://127.0.0.1:{self.control}/workers", timeout=5)
        workers: list[dict[str, Any]] = answer.json()["workers"]
        return workers


@dataclass
class Client:
    """A client holding a stream open on one node, and what it has read."""

    conn: SocketStream
    data: bytes = b""

    async def read_until(self, text: bytes) -> None:
        while text not in self.data:
            self.data += await self.conn.receive()

    def messages(self) -> list[str]:
        return [m.decode() for m in re.findall(rb"(message \d+)\n", self.data)]


@contextmanager
def nodes_running(count: int, workers: int, publisher: str, workdir: Path) -> Iterator[
        list[Node]]:
    """Write each node's config, run ``p8 run`` on it, and stop them all at the end."""
    nodes: list[Node] = []
    try:
        for index in range(1, count + 1):
            port, control, command = free_port(), free_port(), free_port()
            config = workdir / f"node{index}.toml"
            config.write_text(NODE_CONFIG.format(index=index, port=port, control=control,
                                                 command=command, workers=workers,
                                                 publisher=publisher))
            log = workdir / f"node{index}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "p8core.cli", "run", "--config", str(config),
                     "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT)
            nodes.append(Node(index, port, control, proc, log))
        for node in nodes:
            _wait_ready(node, workers)
        yield nodes
    finally:
        for node in nodes:
            node.proc.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                node.proc.kill()


def _wait_ready(node: Node, workers: int) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            sys.exit(f"node {node.index} stopped:\n{node.log.read_text()}")
        try:
            if sum(w["ready"] for w in node.workers()) == workers:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    sys.exit(f"node {node.index}: its workers did not start within {WAIT:g} s")


async def connect(node: Node, count: int) -> None:
    for _ in range(count):
        client = Client(await anyio.connect_tcp("127.0.0.1", node.port))
        node.clients.append(client)
        await client.conn.send(f"GET /stream?channel={CHANNEL} HTTP/1.1\r\nHost: x\r\n\r\n"
                               .encode())
        await client.read_until(b"[stream opened]\n")


async def send(xpub: zmq.asyncio.Socket, content: str) -> None:
    """Publish ``content`` on the channel: frame 1 the channel, frame 2 the item."""
    item = {"formats": {"http-stream": {"content": content}}}
    await xpub.send_multipart([CHANNEL.encode(), b"J" + json.dumps(item).encode()])


async def greet(xpub: zmq.asyncio.Socket, clients: list[Client]) -> None:
    """Say hello until every client has heard it. A client's subscription travels from
    its worker to its node and on to the publisher through ZeroMQ, asynchronously, so a
    publisher cannot know exactly when it has arrived; the hello shows it."""
    for client in clients:
        while b"hello\n" not in client.data:
            await send(xpub, "hello\n")
            with anyio.move_on_after(0.2):
                await client.read_until(b"hello\n")


async def demonstrate(args: argparse.Namespace, xpub: zmq.asyncio.Socket,
                      nodes: list[Node]) -> bool:
    with anyio.fail_after(WAIT):
        for node in nodes:
            await connect(node, args.clients)
            while sum(w["held"] for w in node.workers()) < args.clients:
                await anyio.sleep(0.05)  # until its workers have reported their clients
        clients = [c for node in nodes for c in node.clients]
        await greet(xpub, clients)
        expected = [f"message {n}" for n in range(1, args.messages + 1)]
        for text in expected:
            await send(xpub, text + "\n")
        last = expected[-1].encode() + b"\n"
        for client in clients:
            await client.read_until(last)
    ok = True
    for node in nodes:
        held = ", ".join(f"worker {w['worker']}: {w['held']}" for w in node.workers())
        print(f"node {node.index} (:{node.port}; clients per worker: {held})")
        for i, client in enumerate(node.clients, 1):
            got = client.messages()
            verdict = "ok" if got == expected else "WRONG"
            ok &= got == expected
            print(f"  client {i}: {', '.join(got)}  [{verdict}]")
        for client in node.clients:
            await client.conn.aclose()
    total = len(nodes) * args.clients
    print(f"{total} clients on {len(nodes)} nodes x {args.workers} workers: "
          + ("every client got every message once, in order" if ok else "MISMATCH"))
    return ok


async def interactive(xpub: zmq.asyncio.Socket, nodes: list[Node]) -> bool:
    for node in nodes:
        print(f"node {node.index}: curl -N 'localhost:{node.port}/stream?channel={CHANNEL}'")
    print(f"type lines to publish to {CHANNEL!r}; end with Ctrl-D")
    while line := await anyio.to_thread.run_sync(sys.stdin.readline):
        await send(xpub, line)
    return True


async def main(args: argparse.Namespace) -> int:
    ctx = zmq.asyncio.Context()
    xpub = ctx.socket(zmq.XPUB)
    try:
        port = xpub.bind_to_random_port("tcp://127.0.0.1")
        with tempfile.TemporaryDirectory(prefix="p8-cluster-") as workdir, nodes_running(
                args.nodes, args.workers, f"tcp://127.0.0.1:{port}", Path(workdir)) as nodes:
            print(f"publisher: XPUB on tcp://127.0.0.1:{port}; configs in {workdir}")
            ok = await (interactive(xpub, nodes) if args.interactive
                        else demonstrate(args, xpub, nodes))
    finally:
        xpub.close(linger=0)
        ctx.term()
    return 0 if ok else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="workers per node")
    parser.add_argument("--clients", type=int, default=4, help="clients per node")
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--interactive", action="store_true",
                        help="publish lines from stdin instead of the demonstration")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(anyio.run(main, parse_args()))
