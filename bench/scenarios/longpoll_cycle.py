"""longpoll_cycle: C clients long-polling one channel in a loop through publishes.

Each client holds ``GET /response?channel=lp`` (the ``test`` target's response hold) on a
keep-alive connection and asks again as soon as an answer arrives. One publisher posts an
``http-response`` item (body ``@<ns>\\n``), waits for the control API's answer and 2 ms
more, and posts the next, for D seconds: each publish answers whoever is held at that
moment; a client whose new request is not held yet gets the next one, as long-polling
does. Measures cycles (answers) per second and publish→answer p99 (from the publish that
answered); losses are answers without the published body, and dropped connections.

Both servers retry every held request ~1 s after a channel's first subscription (grip.md
§7.3), through a rate limiter: during that, clients are not held and publishes miss them.
So one client opens first and is answered once after that update; then the channel stays
subscribed (it lingers 60 s) and the other clients join without another.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..aio import HOST, LongPollClient, LongPollState, Sink, latency_summary, publish, stamp
from ..harness import LoadGen, Route, Window
from . import Context, Sample

NAME = "longpoll_cycle"
GAP = 0.002
WARM_UP = 1.5


def run(ctx: Context, kind: str) -> list[Sample]:
    clients = ctx.pick(5, 100, 200)
    seconds = ctx.pick(1.0, 3.0, 10.0)
    case = f"{clients} clients, {seconds:g} s"
    with ctx.server(kind, Route("test"), NAME) as server:
        lg = LoadGen(NAME, {"port": server.port, "control": server.control,
                            "clients": clients, "seconds": seconds},
                     workdir=server.workdir, cpu=ctx.load_cpu)
        try:
            lg.expect("ready", 30)
            lg.send("open")
            opened = lg.expect("opened", 60)
            win = Window(server, [lg]).start()
            lg.send("go")
            done = lg.expect("done", seconds + 60)
            win.stop()
        finally:
            lg.finish()
    ctx.log(f"  {kind}: {done}")

    def sample(metric: str, value: float | None, unit: str, better: str, note: str = ""
               ) -> Sample:
        return Sample(NAME, case, metric, value, unit, better, win.load_util,
                      win.server_util, note)

    return [
        sample("cycles/s", done["cycles"] / done["seconds"], "/s", "higher",
               f"{done['publishes']:,} publishes"),
        sample("p99 publish→answer", done["p99_ms"], "ms", "lower"),
        sample("losses", done["errors"] + done["closed"] + opened["failures"], "", "lower",
               "; ".join(f"{n} x {why}" for why, n in done["why"].items())),
    ]


async def generate(params: dict[str, Any], control: Any) -> None:
    loop = asyncio.get_running_loop()
    n = params["clients"]
    control.event("ready")
    await control.wait("open")
    sink = Sink()
    state = LongPollState()
    request = b"GET /response?channel=lp HTTP/1.1\r\nHost: localhost\r\n\r\n"
    clients: list[LongPollClient] = []
    failures = 0

    async def connect() -> None:
        nonlocal failures
        try:
            _, client = await loop.create_connection(
                lambda: LongPollClient(request, sink, state), HOST, params["port"])
            clients.append(client)
        except OSError:
            failures += 1

    # One client first: its subscription is the channel's first, whose update (a retry of
    # every held request, ~1 s later, rate-limited) both servers run. Once a publish has
    # answered it after that, the channel stays subscribed (it lingers), and the others join.
    await connect()
    await asyncio.sleep(WARM_UP)
    for _ in range(20):
        await publish(params["control"], [("lp", "http-response", {"body": stamp()})])
        t = time.monotonic()
        while state.responses == 0 and time.monotonic() - t < 0.5:
            await asyncio.sleep(0.01)
        if state.responses:
            break
    for _ in range(n - 1):
        await connect()
    await asyncio.sleep(0.5)  # let every first request be held
    state.responses = 0
    sink.count = 0
    del sink.latencies[:]
    control.event("opened", opened=len(clients), failures=failures)
    await control.wait("go")
    publishes = 0
    t0 = time.monotonic()
    end = t0 + params["seconds"]
    while time.monotonic() < end:
        status = await publish(params["control"], [("lp", "http-response",
                                                    {"body": stamp()})])
        publishes += 1
        if status != 200:
            state.error(f"publish answered {status}")
        await asyncio.sleep(GAP)
    seconds = time.monotonic() - t0
    cycles = state.responses
    state.running = False
    control.event("done", seconds=seconds, cycles=cycles, publishes=publishes,
                  errors=state.errors, why=dict(state.why), closed=state.closed,
                  **latency_summary(sink.latencies))
    await control.wait("exit")
    for c in clients:
        if c.transport is not None:
            c.transport.close()
