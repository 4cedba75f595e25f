"""The soak test: ``python -m bench.soak [--minutes 30] [--out FILE]`` (``make soak``).

p8 runs for M minutes under churn: streams, long-polls and WebSockets connect, stay for a
random while and leave, replaced at once, while publishes flow to their channels. Once a
minute the server's RSS is read from /proc after a full ``gc.collect()`` in the server
(``bench.p8_server``'s SIGUSR1 report, which also gives the hub's table sizes). When the
time is up every client leaves, and after the subscription linger and the id cache's TTL
the hub must be empty. The report gives the RSS slope after warm-up (least squares) and the
final hub size. A run of 30 minutes or more records its report as the ``## Soak`` section of
``bench/RESULTS.md``; a shorter one prints it (and writes it only with ``--out``).

Exit status 1 when something was lost on the way: the hub or the held exchanges not empty
at the end, a publish refused, or a client that could not connect or was dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from . import harness
from .aio import (
    HOST,
    MESSAGE,
    LongPollClient,
    LongPollState,
    Sink,
    StreamClient,
    WsEchoClient,
    WsState,
    post,
    stamp,
)
from .report import with_section

HERE = Path(__file__).resolve().parent
SECTION = "## Soak"
KINDS = ("stream", "long-poll", "websocket")
CONNECT_TIMEOUT = 10.0
SETTLE_SECONDS = 10.0
"""How long after the cooldown the server may take to end the exchanges of clients that
just left (a busy machine) before what remains counts as a leak."""
MiB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """What the churn does: how many clients of each kind, how long they stay, publishes."""

    minutes: float
    streams: int
    longpolls: int
    websockets: int
    channels: int
    rate: float
    max_lifetime: float
    linger: float
    id_ttl: float
    sample_every: float
    warm_up: float

    @property
    def cooldown(self) -> float:
        """Seconds after the last client left until the hub must be empty."""
        return max(self.linger, self.id_ttl) + 2.0


@dataclass
class Tally:
    """What the churn did so far, per client kind."""

    connects: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    why: Counter[str] = field(default_factory=Counter)
    sinks: dict[str, Sink] = field(default_factory=lambda: {k: Sink() for k in KINDS})
    connected: Counter[str] = field(default_factory=Counter)
    publishes: int = 0
    publish_errors: int = 0
    lp_errors: int = 0
    lp_why: Counter[str] = field(default_factory=Counter)

    def delivered(self) -> int:
        return sum(s.count for s in self.sinks.values())

    def fail(self, kind: str, why: str) -> None:
        self.failures[kind] += 1
        self.why[f"{kind}: {why}"[:100]] += 1


@dataclass
class Sample:
    """One reading of the server."""

    minute: float
    rss: int
    fds: int
    report: dict[str, Any]
    connected: int
    connects: int
    delivered: int


class WsListener(WsEchoClient):
    """A WebSocket client that only listens: every published ``@<ns>`` goes to ``sink``."""

    def __init__(self, path: bytes, sink: Sink, state: WsState) -> None:
        super().__init__(path, lambda ns: None, state)
        self.sink = sink
        self.lost = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        super().connection_lost(exc)

    def on_message(self, payload: bytes) -> None:
        found = MESSAGE.findall(payload)
        if found:
            self.sink.feed(found, time.time_ns())


class Churn:
    """Keeps the planned number of clients connected, each for a random lifetime, and
    publishes to their channels at the planned rate."""

    def __init__(self, plan: Plan, port: int, control: int) -> None:
        self.plan, self.port, self.control = plan, port, control
        self.tally = Tally()
        self.running = True
        self.lp_state = LongPollState()
        self.ws_state = WsState()
        self.rng = random.Random(8)

    def channel(self) -> str:
        return f"soak-{self.rng.randrange(self.plan.channels)}"

    def lifetime(self) -> float:
        top = self.plan.max_lifetime
        return self.rng.uniform(top / 10, top)

    async def run(self, stop: asyncio.Event) -> None:
        slots = [(self._stream, self.plan.streams), (self._longpoll, self.plan.longpolls),
                 (self._websocket, self.plan.websockets)]
        tasks = [asyncio.create_task(self._slot(connect)) for connect, n in slots
                 for _ in range(n)]
        tasks.append(asyncio.create_task(self._publisher()))
        await stop.wait()
        self.running = False
        self.lp_state.running = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tally.lp_errors, self.tally.lp_why = self.lp_state.errors, self.lp_state.why

    async def _slot(self, connect: Callable[[], Any]) -> None:
        await asyncio.sleep(self.rng.uniform(0, 2))  # not all at once
        while self.running:
            await connect()

    async def _hold(self, kind: str, client: Any, lost: Callable[[], bool],
                    close: Callable[[], None]) -> None:
        """Keep ``client`` for its lifetime, then leave; a client the server closed first
        counts as dropped."""
        self.tally.connects[kind] += 1
        self.tally.connected[kind] += 1
        try:
            await asyncio.sleep(self.lifetime())
        finally:
            self.tally.connected[kind] -= 1
            if lost():
                self.tally.dropped[kind] += 1
            close()

    async def _connect(self, kind: str, factory: Callable[[], asyncio.Protocol],
                       ready: Callable[[Any], Any]) -> Any:
        loop = asyncio.get_running_loop()
        transport = None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                transport, client = await loop.create_connection(factory, HOST, self.port)
                await ready(client)
            return client
        except (TimeoutError, OSError, ConnectionError) as e:
            self.tally.fail(kind, f"{type(e).__name__}: {e}")
            if transport is not None:
                transport.abort()
            await asyncio.sleep(1)
            return None

    async def _stream(self) -> None:
        request = f"GET /stream?channel={self.channel()} HTTP/1.1\r\nHost: soak\r\n\r\n"
        client = await self._connect("stream", partial(StreamClient, request.encode(),
                                                        self.tally.sinks["stream"]),
                                     lambda c: c.opened)
        if client is not None:
            await self._hold("stream", client, lambda: client.lost, client.close)

    async def _longpoll(self) -> None:
        request = f"GET /response?channel={self.channel()} HTTP/1.1\r\nHost: soak\r\n\r\n"
        client = await self._connect("long-poll", partial(LongPollClient, request.encode(),
                                                           self.tally.sinks["long-poll"],
                                                           self.lp_state),
                                     lambda c: c.connected)
        if client is not None:
            await self._hold("long-poll", client, client.gone.done,
                             lambda: client.transport and client.transport.close())

    async def _websocket(self) -> None:
        path = f"/ws?channel={self.channel()}".encode()
        client = await self._connect("websocket", partial(WsListener, path,
                                                           self.tally.sinks["websocket"],
                                                           self.ws_state),
                                     lambda c: c.opened)
        if client is not None:
            await self._hold("websocket", client, lambda: client.lost, client.close)

    async def _publisher(self) -> None:
        gap = 1 / self.plan.rate
        n = 0
        while self.running:
            n += 1
            payload = stamp()
            item = {"channel": self.channel(), "id": f"soak-{n}", "formats": {
                "http-stream": {"content": payload}, "http-response": {"body": payload},
                "ws-message": {"content": payload}}}
            body = json.dumps({"items": [item]}).encode()
            t0 = time.monotonic()
            try:
                status = await post(self.control, "/publish/", body, timeout=10)
            except (OSError, TimeoutError):
                status = 0
            self.tally.publishes += 1
            if status != 200:
                self.tally.publish_errors += 1
            await asyncio.sleep(max(0.0, gap - (time.monotonic() - t0)))


def slope_kib_per_min(samples: Sequence[Sample]) -> float | None:
    """Least-squares slope of RSS over time, KiB per minute; None for fewer than 2."""
    if len(samples) < 2:
        return None
    xs = [s.minute for s in samples]
    ys = [s.rss / 1024 for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else None


def read(server: harness.Server, minute: float, tally: Tally) -> Sample:
    """Full GC in the server, then its RSS, descriptors and table sizes."""
    report = server.full_gc_pause() or {}
    return Sample(minute, server.rss(), server.fds(), report,
                  sum(tally.connected.values()), sum(tally.connects.values()),
                  tally.delivered())


async def soak(plan: Plan, log: Callable[[str], None]) -> tuple[list[Sample], Sample, Tally]:
    """Run the churn against a fresh p8; the samples, the final reading, the tally."""
    harness.raise_fd_limit()
    loop = asyncio.get_running_loop()
    with harness.workspace() as workdir:
        origin, woh_port = harness.start_woh_origin(workdir, None)
        try:
            extra = (f"\n[pubsub]\nsubscription_linger = {plan.linger}\n"
                     f"id_cache_ttl = {plan.id_ttl}\n\n"
                     f'[[routes]]\nhost = "*"\npath_prefix = "/ws"\n'
                     f'target = "http://127.0.0.1:{woh_port}"\nover_http = true\n')
            server = harness.start_p8(workdir, harness.Route("test"), None, extra=extra)
            try:
                return await _drive(plan, server, loop, log)
            finally:
                server.stop()
        finally:
            origin.stop()


async def _drive(plan: Plan, server: harness.Server, loop: asyncio.AbstractEventLoop,
                 log: Callable[[str], None]) -> tuple[list[Sample], Sample, Tally]:
    churn = Churn(plan, server.port, server.control)
    stop = asyncio.Event()
    running = asyncio.create_task(churn.run(stop))
    samples: list[Sample] = []
    t0 = time.monotonic()
    end = t0 + plan.minutes * 60
    while (now := time.monotonic()) < end:
        await asyncio.sleep(min(plan.sample_every, end - now))
        minute = (time.monotonic() - t0) / 60
        sample = await loop.run_in_executor(None, read, server, minute, churn.tally)
        samples.append(sample)
        log(f"  {minute:5.1f} min  RSS {sample.rss / MiB:6.1f} MiB  "
            f"held {sample.report.get('held')}  hub {sample.report.get('hub')}  "
            f"connects {sample.connects:,}  delivered {sample.delivered:,}")
    stop.set()
    await running
    log(f"  clients gone; waiting {plan.cooldown:g} s for linger and id cache to expire")
    await asyncio.sleep(plan.cooldown)
    settled_by = loop.time() + SETTLE_SECONDS
    while True:
        final = await loop.run_in_executor(None, read, server,
                                           plan.minutes + plan.cooldown / 60, churn.tally)
        if not leftovers(final) or loop.time() > settled_by:
            return samples, final, churn.tally
        await asyncio.sleep(0.5)


def leftovers(final: Sample) -> dict[str, int]:
    """What is still in the server when nothing should be: non-zero tables only."""
    sizes = {**final.report.get("hub", {}), "held": final.report.get("held", -1)}
    sizes.pop("last_ids", None)  # one per channel ever sequenced, bounded: kept on purpose
    return {k: v for k, v in sizes.items() if v}


def render(plan: Plan, samples: Sequence[Sample], final: Sample, tally: Tally,
           command: str, started: str, loads: tuple[float, float]) -> str:
    after = [s for s in samples if s.minute >= plan.warm_up] or samples[-1:]
    slope = slope_kib_per_min(after)
    lines = [
        SECTION, "",
        f"`{command}` on {started}; load average {loads[0]:.2f} before, {loads[1]:.2f} "
        "after (the machine is shared).", "",
        f"Churn for {plan.minutes:g} min: {plan.streams} streams, {plan.longpolls} long-polls "
        f"and {plan.websockets} WebSockets (over_http) on {plan.channels} channels, each "
        f"connected for {plan.max_lifetime / 10:g} to {plan.max_lifetime:g} s then replaced; "
        f"{plan.rate:g} publishes/s (one item, three formats, a unique id). "
        f"`subscription_linger = {plan.linger:g}`, `id_cache_ttl = {plan.id_ttl:g}`. RSS is "
        "the server's, read after a full `gc.collect()` in it.", "",
        "| minute | RSS MiB | fds | held | channels | subscribers | ids cached | deadlines "
        "| connects | delivered |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in [*samples, final]:
        hub = s.report.get("hub", {})
        lines.append(
            f"| {s.minute:.1f} | {s.rss / MiB:.1f} | {s.fds} | {s.report.get('held')} | "
            f"{hub.get('channels')} | {hub.get('subscribers')} | {hub.get('ids_cached')} | "
            f"{hub.get('deadlines')} | {s.connects:,} | {s.delivered:,} |")
    rest = leftovers(final)
    lines += [
        "", f"The last row is {plan.cooldown:g} s after every client left.", "",
        f"- **RSS slope after warm-up** (minute {plan.warm_up:g} on, {len(after)} samples): "
        + (f"{slope:+.1f} KiB/min" if slope is not None else "n/a")
        + f"; RSS {after[0].rss / MiB:.1f} → {after[-1].rss / MiB:.1f} MiB.",
        "- **Final hub**: " + json.dumps(final.report.get("hub", {})) + f", held "
        f"{final.report.get('held')}, timers {final.report.get('timers')} — "
        + ("empty." if not rest else f"NOT empty: {rest}."),
        f"- Connects: {dict(tally.connects)}; failed {sum(tally.failures.values())}, dropped by "
        f"the server {sum(tally.dropped.values())}"
        + (f" ({dict(tally.why.most_common(3))})" if tally.why else "") + ".",
        f"- Publishes: {tally.publishes:,}, refused {tally.publish_errors}; delivered "
        + ", ".join(f"{k} {s.count:,}" for k, s in tally.sinks.items())
        + f"; long-poll answers without a published body: {tally.lp_errors}"
        + (f" ({dict(tally.lp_why.most_common(3))})" if tally.lp_why else "") + ".",
    ]
    return "\n".join(lines) + "\n"


def record(text: str, out: Path) -> None:
    """Put ``text`` as the ``## Soak`` section of ``out`` (replacing an earlier one)."""
    out.write_text(with_section(out.read_text() if out.exists() else "", SECTION, text))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--streams", type=int, default=150)
    parser.add_argument("--longpolls", type=int, default=100)
    parser.add_argument("--websockets", type=int, default=100)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="publishes per second")
    parser.add_argument("--max-lifetime", type=float, default=20.0,
                        help="seconds a client stays at most (at least a tenth of it)")
    parser.add_argument("--linger", type=float, default=10.0, help="subscription_linger")
    parser.add_argument("--id-ttl", type=float, default=60.0, help="id_cache_ttl")
    parser.add_argument("--sample-every", type=float, default=60.0, help="seconds")
    parser.add_argument("--warm-up", type=float, help="minutes left out of the slope "
                        "(default: 5, or a third of a shorter run)")
    parser.add_argument("--out", type=Path, help="write the report here (default for a run "
                        "of 30 minutes or more: the ## Soak section of bench/RESULTS.md)")
    args = parser.parse_args(argv)
    warm_up = args.warm_up if args.warm_up is not None else min(5.0, args.minutes / 3)
    plan = Plan(args.minutes, args.streams, args.longpolls, args.websockets, args.channels,
                args.rate, args.max_lifetime, args.linger, args.id_ttl, args.sample_every,
                warm_up)
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python -m bench.soak", *([shlex.join(given)] if given else [])])
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = harness.load_average()
    print(f"soak: {plan}", flush=True)
    samples, final, tally = asyncio.run(soak(plan, partial(print, flush=True)))
    text = render(plan, samples, final, tally, command, started,
                  (load_before, harness.load_average()))
    print(text)
    out = args.out or (HERE / "RESULTS.md" if args.minutes >= 30 else None)
    if out is not None:
        record(text, out)
        print(f"written to {out}")
    lost = (leftovers(final) or tally.publish_errors or tally.lp_errors
            or sum(tally.failures.values()) or sum(tally.dropped.values()))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
