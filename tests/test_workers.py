"""``[server] workers = 2`` as users run it: ``p8 run`` in a subprocess, real clients.

Clients spread over both workers and each gets every publish once, in order; repeats are
dropped once for all workers and prev-id ordering holds in each; a killed worker is back
within 2 s while the other's clients stay; SIGHUP reaches every worker; SIGTERM ends them
all cleanly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketStream

from p8core import ConfigError
from p8core.app import App
from p8core.testing import Samples, self_signed_cert

pytestmark = pytest.mark.anyio

P8 = [sys.executable, "-m", "p8core.cli"]
WAIT = 10.0  # bound of every wait below; a healthy run needs a fraction of it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Instance:
    """A ``p8 run`` with workers, logging into ``log``."""

    proc: subprocess.Popen[bytes]
    port: int
    control: int
    log: Path

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control}"

    def workers(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.control_url}/workers", timeout=5)
        assert answer.headers["content-type"] == "application/json"
        workers: list[dict[str, Any]] = answer.json()["workers"]
        return workers

    def wait_workers(self, check: Any, what: str) -> list[dict[str, Any]]:
        """Poll ``GET /workers`` until ``check(workers)`` holds."""
        deadline = time.monotonic() + WAIT
        while True:
            workers = self.workers()
            if check(workers):
                return workers
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: never true; workers: {workers}")
            time.sleep(0.05)

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [e for e in map(json.loads, filter(None, lines)) if e["event"] == name]


@contextmanager
def p8_with_workers(tmp_path: Path, server: str = "", routes: str = "") -> Iterator[Instance]:
    """Run p8 with two workers and only the http_stream plugin, on ports the system picks
    (read from its log); stop it at the end. ``routes``: TOML for ``[[routes]]``."""
    config = tmp_path / "p8.toml"
    config.write_text(f'[server]\nlisten = ["127.0.0.1:0"]\nworkers = 2\n{server}\n'
                      '[control]\nlisten = "127.0.0.1:0"\n'
                      f'[plugins]\nenabled = ["http_stream"]\n{routes}')
    log = tmp_path / "p8.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*P8, "run", "--config", str(config)], stderr=out,
                                stdout=subprocess.DEVNULL)
    p8 = Instance(proc, 0, 0, log)
    try:
        deadline = time.monotonic() + WAIT
        while not (p8.events("workers_starting") and p8.events("listening")):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        p8.port = p8.events("workers_starting")[0]["ports"][0]
        p8.control = next(e for e in p8.events("listening") if "worker" not in e)["control"]
        p8.wait_workers(lambda ws: all(w["ready"] for w in ws), "workers ready")
        yield p8
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    """One instance for the tests that leave its workers as they found them."""
    routes = '[[routes]]\ntarget = "test"\nwildcard = true\n'
    with p8_with_workers(tmp_path_factory.mktemp("shared"), routes=routes) as p8:
        yield p8


class Stream:
    """A client holding ``/stream?channel=...`` open, and what it has read so far."""

    def __init__(self, conn: SocketStream) -> None:
        self.conn, self.data, self.ended = conn, b"", False

    async def read_until(self, pattern: bytes) -> None:
        while pattern not in self.data:
            try:
                self.data += await self.conn.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                self.ended = True
                raise

    async def read_to_end(self) -> None:
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            while True:
                await self.read_until(b"\x00never")

    def messages(self) -> list[str]:
        """What was published to it, probes left out."""
        found = re.findall(rb"msg-(\w+)\n", self.data)
        return [m.decode() for m in found if m != b"probe"]


class Clients:
    """Every stream a test opens, closed when it ends, whatever happened."""

    def __init__(self) -> None:
        self.streams: list[Stream] = []

    async def open(self, p8: Instance, channel: str, n: int) -> list[Stream]:
        opened = []
        for _ in range(n):
            conn = await anyio.connect_tcp("127.0.0.1", p8.port)
            stream = Stream(conn)
            self.streams.append(stream)
            await conn.send(f"GET /stream?channel={channel} HTTP/1.1\r\nHost: x\r\n\r\n"
                            .encode())
            await stream.read_until(b"[stream opened]\n")
            opened.append(stream)
        return opened


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    opened = Clients()
    yield opened
    for stream in opened.streams:
        await stream.conn.aclose()


@dataclass
class Answer:
    status_code: int
    text: str


async def publish(p8: Instance, *items: Mapping[str, Any]) -> Answer:
    """POST to the control API over a plain socket (quicker than a new HTTP client each
    time, which the probes and batches below would pay for hundreds of times)."""
    body = json.dumps({"items": list(items)}).encode()
    async with await anyio.connect_tcp("127.0.0.1", p8.control) as conn:
        await conn.send(b"POST /publish/ HTTP/1.1\r\nHost: x\r\nContent-Type: "
                        b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        answer = b""
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                answer += await conn.receive()
    head, _, text = answer.partition(b"\r\n\r\n")
    return Answer(int(head.split(b" ", 2)[1]), text.decode())


def item(channel: str, text: str, **fields: str) -> dict[str, Any]:
    return {"channel": channel, "formats": {"http-stream": {"content": f"msg-{text}\n"}},
            **fields}


async def probe(p8: Instance, channel: str, streams: Sequence[Stream]) -> None:
    """Publish until every stream has seen a probe: the workers' subscriptions have
    reached the supervisor (ZeroMQ carries them asynchronously, as between instances)."""
    for stream in streams:
        while b"msg-probe\n" not in stream.data:
            assert (await publish(p8, item(channel, "probe"))).status_code == 200
            with anyio.move_on_after(0.2):
                await stream.read_until(b"msg-probe\n")


def settled_items(p8: Instance) -> list[int]:
    """Each worker's count of items taken, once two reports in a row agree."""
    last = None
    while True:
        now = [w["items_taken"] for w in p8.workers()]
        if now == last:
            return now
        last = now
        time.sleep(0.6)  # just over the interval between two reports


def held_by_worker(p8: Instance, total: int) -> list[int]:
    workers = p8.wait_workers(lambda ws: sum(w["held"] for w in ws) == total,
                              f"{total} held streams reported")
    return [w["held"] for w in workers]


async def test_clients_spread_and_every_publish_arrives_once_in_order(
        shared: Instance, clients: Clients) -> None:
    with anyio.fail_after(WAIT * 2):
        streams = await clients.open(shared, "news", 16)
        held = held_by_worker(shared, 16)
        assert all(held), f"SO_REUSEPORT spreads 16 clients over both workers: {held}"
        await probe(shared, "news", streams)
        before = settled_items(shared)

        assert (await publish(shared, item("nobody", "lost"))).status_code == 200
        for n in range(1, 6):
            assert (await publish(shared, item("news", str(n)))).status_code == 200
        batch = [item("news", str(n)) for n in range(6, 11)]
        assert (await publish(shared, *batch)).status_code == 200
        for stream in streams:
            await stream.read_until(b"msg-10\n")
        assert {tuple(s.messages()) for s in streams} == {tuple(map(str, range(1, 11)))}

        after = shared.wait_workers(
            lambda ws: [w["items_taken"] for w in ws] == [b + 10 for b in before],
            "each worker took the 10 items of its channel, not the one nobody wants")
        assert [w["connections_open"] for w in after] == held

        bad = await publish(shared, {"channel": "news"})
        assert (bad.status_code, bad.text) == (400, "Invalid format: no formats specified\n")
        streams[0].data = b""
        with pytest.raises(TimeoutError), anyio.fail_after(0.3):
            await streams[0].read_until(b"msg-")


async def test_repeats_dropped_once_and_prev_id_order_kept_in_every_worker(
        shared: Instance, clients: Clients) -> None:
    with anyio.fail_after(WAIT * 2):
        # Seen while nobody listened: the id still enters the cache (publishing.md §5).
        assert (await publish(shared, item("seq", "X", id="x"))).status_code == 200
        streams = await clients.open(shared, "seq", 8)
        held_by_worker(shared, 8)
        await probe(shared, "seq", streams)
        for published in (item("seq", "X", id="x"), item("seq", "A", id="a"),
                          item("seq", "C", id="c", **{"prev-id": "b"}),
                          item("seq", "B", id="b", **{"prev-id": "a"}),
                          item("seq", "B2", id="b"), item("seq", "end")):
            assert (await publish(shared, published)).status_code == 200
        for stream in streams:
            await stream.read_until(b"msg-end\n")
            assert stream.messages() == ["A", "B", "C", "end"]


async def test_a_pattern_gets_every_matching_channel_through_the_workers(
        shared: Instance, clients: Clients) -> None:
    with anyio.fail_after(WAIT * 2):
        streams = await clients.open(shared, "live.*", 8)
        await probe(shared, "live.probe", streams)
        for channel, text in (("live.a", "a"), ("lively", "no"), ("other", "no"),
                              ("live.b.c", "bc"), ("live.end", "end")):
            assert (await publish(shared, item(channel, text))).status_code == 200
        for stream in streams:
            await stream.read_until(b"msg-end\n")
            assert stream.messages() == ["a", "bc", "end"]


async def test_control_api_answers_for_the_workers(shared: Instance) -> None:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        wrong = await client.post(f"{shared.control_url}/workers")
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET")
        recover = await client.post(f"{shared.control_url}/recover")
        assert (recover.status_code, recover.text) == (200, "Updated\n")
    workers = shared.workers()
    assert [w["worker"] for w in workers] == [1, 2]
    assert all(w["restarts"] == 0 and w["pid"] != shared.proc.pid for w in workers)


async def test_metrics_of_the_supervisor_include_every_worker_by_label(
        shared: Instance, clients: Clients) -> None:
    with anyio.fail_after(WAIT * 2):
        streams = await clients.open(shared, "metered", 6)
        held = held_by_worker(shared, 6)
        await probe(shared, "metered", streams)
        assert (await publish(shared, item("metered", "counted"))).status_code == 200
        for stream in streams:
            await stream.read_until(b"msg-counted\n")
        deadline = time.monotonic() + WAIT
        while True:  # the workers' texts ride on every few status reports
            async with httpx.AsyncClient(timeout=WAIT) as client:
                metrics = Samples((await client.get(f"{shared.control_url}/metrics")).text)
            per_worker = [metrics("p8_held_connections", mode="stream", worker=str(w))
                          for w in (1, 2)]
            delivered = sum(metrics("p8_deliveries_total", format="http-stream", worker=str(w))
                            for w in (1, 2))
            if (per_worker == held and delivered >= len(streams)) \
                    or time.monotonic() > deadline:
                break
            await anyio.sleep(0.2)
    assert per_worker == held
    assert delivered >= len(streams), "the workers' deliveries show in the supervisor's"
    assert metrics("p8_deliveries_total", format="http-stream", worker="supervisor") == 0
    assert metrics("p8_publish_requests_accepted_total", worker="supervisor") >= 2
    assert metrics("p8_publish_requests_accepted_total", worker="1") == 0
    assert metrics("process_cpu_seconds_total", worker="supervisor") > 0


async def test_a_killed_worker_is_back_within_2_s_and_the_others_clients_stay(
        tmp_path: Path, clients: Clients) -> None:
    with p8_with_workers(tmp_path) as p8, anyio.fail_after(WAIT * 2):
        streams = await clients.open(p8, "k", 12)
        held = held_by_worker(p8, 12)
        await probe(p8, "k", streams)
        victim = p8.workers()[0]
        os.kill(victim["pid"], signal.SIGKILL)
        with anyio.fail_after(2):
            while True:
                back = p8.workers()[0]
                if back["ready"] and back["pid"] != victim["pid"]:
                    break
                await anyio.sleep(0.02)
        assert back["restarts"] == 1

        survivors = []
        for stream in streams:
            with anyio.move_on_after(0.1):
                await stream.read_to_end()
            if not stream.ended:
                survivors.append(stream)
        assert len(survivors) == held[1], "only the killed worker's clients lost their stream"
        [event] = p8.events("worker_exited")
        assert (event["worker"], event["status"]) == (1, "SIGKILL")

        assert (await publish(p8, item("k", "after"))).status_code == 200
        for stream in survivors:
            await stream.read_until(b"msg-after\n")
            assert stream.messages() == ["after"]
        await clients.open(p8, "k", 4)
        held_by_worker(p8, len(survivors) + 4)


async def test_sighup_reaches_every_worker_and_sigterm_ends_them_all(
        tmp_path: Path, clients: Clients) -> None:
    with p8_with_workers(tmp_path) as p8, anyio.fail_after(WAIT * 2):
        streams = await clients.open(p8, "t", 8)
        held_by_worker(p8, 8)
        pids = [w["pid"] for w in p8.workers()]

        p8.proc.send_signal(signal.SIGHUP)
        p8.wait_workers(lambda ws: len(p8.events("reloaded")) == 3, "SIGHUP passed on")
        assert sorted(e.get("worker", 0) for e in p8.events("reloaded")) == [0, 1, 2]
        assert [w["pid"] for w in p8.workers()] == pids, "no worker restarted"

        p8.proc.send_signal(signal.SIGTERM)
        for stream in streams:
            await stream.read_to_end()
            assert stream.data.endswith(b"0\r\n\r\n"), "each stream ends with its last chunk"
        assert await anyio.to_thread.run_sync(p8.proc.wait, WAIT) == 0
        assert sorted(e.get("worker", 0) for e in p8.events("stopped")) == [0, 1, 2]
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


@asynccontextmanager
async def reading(streams: Sequence[Stream]) -> AsyncIterator[None]:
    """Keep reading every stream in the background."""

    async def read(stream: Stream) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while True:
                stream.data += await stream.conn.receive()

    async with anyio.create_task_group() as tg:
        for stream in streams:
            tg.start_soon(read, stream)
        yield
        tg.cancel_scope.cancel()


def received_by(streams: Sequence[Stream], message: str, count: int) -> bool:
    return sum(f"{message}\n".encode() in s.data for s in streams) >= count


async def until(check: Callable[[], bool]) -> None:
    while not check():
        await anyio.sleep(0.005)


async def test_a_stalled_worker_misses_and_counts_only_its_own_items(
        tmp_path: Path, clients: Clients) -> None:
    with p8_with_workers(tmp_path, "worker_queue = 200") as p8, anyio.fail_after(WAIT * 2):
        streams = await clients.open(p8, "q", 8)
        held = held_by_worker(p8, 8)
        assert all(held), held
        await probe(p8, "q", streams)
        stalled = p8.workers()[0]["pid"]
        async with reading(streams):
            os.kill(stalled, signal.SIGSTOP)
            try:
                for start in range(1, 4001, 50):
                    batch = [item("q", str(n)) for n in range(start, start + 50)]
                    assert (await publish(p8, *batch)).status_code == 200
                    # At the pace of the worker that runs: its clients get each batch.
                    await until(partial(received_by, streams, f"msg-{start + 49}", held[1]))
            finally:
                os.kill(stalled, signal.SIGCONT)
            await anyio.to_thread.run_sync(settled_items, p8)  # it has taken what it kept
            assert (await publish(p8, item("q", "end"))).status_code == 200
            await until(partial(received_by, streams, "msg-end", len(streams)))

        whole = [str(n) for n in range(1, 4001)] + ["end"]
        gaps = [s.messages() for s in streams if s.messages() != whole]
        assert len(gaps) == held[0], "only the stalled worker's clients missed items"
        got = gaps[0]
        assert got[-1] == "end" and all(g == got for g in gaps)
        assert [int(n) for n in got[:-1]] == sorted(int(n) for n in got[:-1])
        workers = p8.wait_workers(lambda ws: ws[0]["items_missed"] == len(whole) - len(got),
                                  "the stalled worker counted what it missed")
        assert workers[1]["items_missed"] == 0
        assert p8.events("items_missed")[0]["worker"] == 1


async def test_shared_listening_sockets_without_reuse_port(
        tmp_path: Path, clients: Clients) -> None:
    with p8_with_workers(tmp_path, "reuse_port = false") as p8, anyio.fail_after(WAIT * 2):
        streams = await clients.open(p8, "inherit", 10)
        held_by_worker(p8, 10)
        await probe(p8, "inherit", streams)
        assert (await publish(p8, item("inherit", "1"), item("inherit", "2"))).status_code \
            == 200
        for stream in streams:
            await stream.read_until(b"msg-2\n")
            assert stream.messages() == ["1", "2"]
        assert p8.events("workers_starting")[0]["reuse_port"] is False


async def test_tls_and_unix_listeners_serve_through_the_workers(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    server = (f'tls_listen = ["127.0.0.1:0"]\ntls_cert = "{cert}"\n'
              f'tls_key = "{key}"\nunix_listen = ["p8.sock"]\n')
    sock = tmp_path / "p8.sock"
    trust = ssl.create_default_context(cafile=cert)
    hello = "Hello from the Pushpin test handler!\n"
    with p8_with_workers(tmp_path, server) as p8:
        tls_port = p8.events("workers_starting")[0]["tls_ports"][0]
        async with httpx.AsyncClient(verify=trust, timeout=WAIT) as https:
            for _ in range(8):
                assert (await https.get(f"https://127.0.0.1:{tls_port}/")).text == hello
        unix = httpx.AsyncHTTPTransport(uds=str(sock))
        async with httpx.AsyncClient(transport=unix, timeout=WAIT) as client:
            for _ in range(8):
                assert (await client.get("http://p8.local/")).text == hello
        served = p8.wait_workers(lambda ws: sum(w["requests"] for w in ws) == 16,
                                 "16 requests over TLS and the Unix socket")
        assert [w["ready"] for w in served] == [True, True]
    assert not sock.exists(), "the supervisor removes the socket file it made"


@pytest.mark.parametrize(("value", "problem"), [
    (0, 'server.workers: expected a number of processes (1 or more) or "auto", got 0'),
    ("many", "server.workers: expected a number of processes"),
    (True, "server.workers: expected an integer or a string"),
])
def test_bad_workers_value_stops_start_up(value: object, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"^p8.toml: {re.escape(problem)}"):
        App.from_raw({"server": {"workers": value}}, "p8.toml")


def test_workers_auto_is_one_per_cpu() -> None:
    app = App.from_raw({"server": {"workers": "auto"}})
    assert app.config.server.worker_count == len(os.sched_getaffinity(0))


def test_a_port_in_use_stops_start_up_with_its_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "p8.toml").write_text(
            f'[server]\nlisten = ["127.0.0.1:{port}"]\nworkers = 2\n'
            f'[control]\nlisten = "127.0.0.1:{free_port()}"\n[plugins]\nenabled = []\n')
        result = subprocess.run([*P8, "run", "--config", str(tmp_path / "p8.toml")],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"p8: error: cannot listen on 127.0.0.1:{port}: Address already in use")


async def test_feedback_from_the_supervisor_leaves_the_counting_to_the_workers(
        shared: Instance, clients: Clients) -> None:
    async with httpx.AsyncClient(base_url=shared.control_url, timeout=WAIT) as control:
        with anyio.fail_after(WAIT):
            [stream] = await clients.open(shared, "fb", 1)
            while not (await control.get("/channels/fb")).json()["subscribed"]:
                await anyio.sleep(0.02)
            view = (await control.get("/channels/fb")).json()
            assert (view["subscribers"], view["by_format"]) == (None, None)
            resp = await control.post("/publish/?verbose=1", json={"items": [
                item("fb", "one", id="1"), item("fb", "one", id="1")]})
            answer = resp.json()
            assert [(i["result"], i["receivers"]) for i in answer["items"]] == [
                ("forwarded", None), ("duplicate", 0)]
            assert "workers" in answer["receivers_unknown"]
            await stream.read_until(b"msg-one\n")
