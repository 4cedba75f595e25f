"""ws_echo: WebSocket clients through an ``over_http`` route to an echoing origin.

The origin (``bench.woh_origin``: asyncio + h11, its own process on the load CPU) answers
every WebSocket-over-HTTP request with the same events. C clients each keep one message
in flight: send ``@<ns>``, wait for it to come back, send the next, for D seconds.
Measures round trips/s and the round-trip p99; losses are messages never echoed (after a
10 s grace), wrong echoes and dropped connections.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

from ..aio import HOST, WsEchoClient, WsState, latency_summary
from ..harness import LoadGen, Route, Window, start_woh_origin
from . import Context, Sample

NAME = "ws_echo"


def run(ctx: Context, kind: str) -> list[Sample]:
    clients = ctx.pick(5, 50, 50)
    seconds = ctx.pick(1.0, 3.0, 10.0)
    case = f"{clients} clients, {seconds:g} s"
    origin, oport = start_woh_origin(ctx.subdir(f"{NAME}-origin-{kind}"), ctx.load_cpu)
    try:
        with ctx.server(kind, Route(f"127.0.0.1:{oport}", over_http=True), NAME) as server:
            lg = LoadGen(NAME, {"port": server.port, "clients": clients, "seconds": seconds},
                         workdir=server.workdir, cpu=ctx.load_cpu)
            try:
                lg.expect("ready", 30)
                lg.send("open")
                opened = lg.expect("opened", 60)
                win = Window(server, [lg, origin]).start()
                lg.send("go")
                lg.expect("stopped", seconds + 30)
                win.stop()
                done = lg.expect("done", 30)
            finally:
                lg.finish()
    finally:
        origin.stop()
    ctx.log(f"  {kind}: {done}; load {win.parts}")
    note = (f"load: client {win.parts[lg.proc.name] / win.wall:.0%} + origin "
            f"{win.parts[origin.name] / win.wall:.0%}")

    def sample(metric: str, value: float | None, unit: str, better: str, n: str = ""
               ) -> Sample:
        return Sample(NAME, case, metric, value, unit, better, win.load_util,
                      win.server_util, n)

    return [
        sample("round trips/s", done["in_window"] / done["seconds"], "/s", "higher", note),
        sample("p99 round trip", done["p99_ms"], "ms", "lower"),
        sample("losses", done["sent"] - done["received"] + done["errors"]
               + opened["failures"] + done["closed"], "", "lower"),
    ]


async def generate(params: dict[str, Any], control: Any) -> None:
    loop = asyncio.get_running_loop()
    control.event("ready")
    await control.wait("open")
    state = WsState()
    rtts: list[int] = []
    clients: list[WsEchoClient] = []
    failures = 0
    for i in range(params["clients"]):
        try:
            _, client = await loop.create_connection(
                partial(WsEchoClient, b"/ws/%d" % i, rtts.append, state), HOST, params["port"])
            await asyncio.wait_for(asyncio.shield(client.opened), 30)
            clients.append(client)
        except (TimeoutError, OSError, ConnectionError):
            failures += 1
    control.event("opened", opened=len(clients), failures=failures)
    await control.wait("go")
    t0 = time.monotonic()
    for c in clients:
        c.send_next()
    await asyncio.sleep(params["seconds"])
    state.running = False
    seconds = time.monotonic() - t0
    in_window = state.received
    control.event("stopped")
    for c in clients:
        if c.outstanding:
            c.idle = loop.create_future()
    pending = [c.idle for c in clients if c.idle is not None]
    if pending:
        await asyncio.wait(pending, timeout=10)
    closed_early = state.closed
    control.event("done", seconds=seconds, in_window=in_window, sent=state.sent,
                  received=state.received, errors=state.errors, closed=closed_early,
                  **latency_summary(rtts))
    await control.wait("exit")
    for c in clients:
        c.close()
