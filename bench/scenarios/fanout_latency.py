"""fanout_latency: N held streams on one channel, 20 publishes carrying a timestamp.

Each publish (one item, format ``http-stream``, content ``@<ns>\\n``, POSTed to the control
API) waits until every subscriber has it (or a timeout) before the next one, 50 ms later.
Measures publish→delivery p50/p99/max over all Nx20 deliveries, the time to the last
subscriber (median of the 20 publishes) and the fan-out rate it implies (streams held /
that time), and losses: deliveries that never came, counted
against all N streams asked for (a stream that failed to open or was closed loses its
share; the row's note says which).

20,000 subscribers (one target) do not fit: the server would need more than the 20,000
file descriptors a process may have here. The full scale runs 1,000, 5,000 and 10,000.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from ..aio import OPEN_CONCURRENCY, Sink, latency_summary, open_streams, publish, stamp
from ..harness import LoadGen, Route, Window
from . import Context, Sample, stream_losses

NAME = "fanout_latency"
PUBLISHES = 20
GAP = 0.05


def run(ctx: Context, kind: str) -> list[Sample]:
    sizes = ctx.pick([20], [1_000], [1_000, 5_000, 10_000])
    samples: list[Sample] = []
    for n in sizes:
        samples += _one(ctx, kind, n)
    return samples


def _one(ctx: Context, kind: str, n: int) -> list[Sample]:
    case = f"N={n:,}"
    publishes = ctx.pick(5, PUBLISHES, PUBLISHES)
    with ctx.server(kind, Route("test"), f"{NAME}-{n}") as server:
        lg = LoadGen(NAME, {"port": server.port, "control": server.control, "n": n,
                            "publishes": publishes},
                     workdir=server.workdir, cpu=ctx.load_cpu)
        try:
            lg.expect("ready", 30)
            lg.send("open")
            opened = lg.expect("opened", 60 + n / 100)
            time.sleep(ctx.pick(0.2, 1.0, 1.0))
            win = Window(server, [lg]).start()
            lg.send("publish")
            done = lg.expect("done", publishes * (15 + n / 500))
            win.stop()
        finally:
            lg.finish()
    ctx.log(f"  {kind} {case}: opened {opened}; {done}")

    def sample(metric: str, value: float | None, unit: str, better: str) -> Sample:
        return Sample(NAME, case, metric, value, unit, better, win.load_util, win.server_util)

    last = done["last_median_ms"]
    rate = done["expected"] / publishes / (last / 1000) if last else None
    return [
        sample("deliveries/s (streams / time to last)", rate, "/s", "higher"),
        sample("p50", done["p50_ms"], "ms", "lower"),
        sample("p99", done["p99_ms"], "ms", "lower"),
        sample("max", done["max_ms"], "ms", "lower"),
        sample("time to last subscriber (median)", done["last_median_ms"], "ms", "lower"),
        Sample(NAME, case, "losses", n * publishes - done["delivered"], "", "lower",
               win.load_util, win.server_util, stream_losses(opened, done)),
    ]



async def generate(params: dict[str, Any], control: Any) -> None:
    n, port, ctl_port = params["n"], params["port"], params["control"]
    control.event("ready")
    await control.wait("open")
    sink = Sink(by_stamp=True)
    opened = await open_streams(port, ("/stream?channel=fan" for _ in range(n)), sink,
                                concurrency=OPEN_CONCURRENCY, timeout=60)
    control.event("opened", **opened.report())
    await control.wait("publish")
    held = len(opened.clients)
    last: list[float] = []
    errors = 0
    for _ in range(params["publishes"]):
        mark = len(sink.latencies)
        content = stamp()
        key = content[1:-1].encode()
        status = await publish(ctl_port, [("fan", "http-stream", {"content": content})])
        if status != 200:
            errors += 1
        deadline = time.monotonic() + 10 + n / 1000
        while (sink.per_stamp[key] < held - sink.closed  # type: ignore[index]
               and time.monotonic() < deadline):
            await asyncio.sleep(0.002)
        if len(sink.latencies) > mark:
            last.append(max(sink.latencies[mark:]) / 1e6)
        await asyncio.sleep(GAP)
    control.event("done", expected=held * params["publishes"], delivered=sink.count,
                  publish_errors=errors, closed=sink.closed,
                  last_median_ms=statistics.median(last) if last else None,
                  last_max_ms=max(last) if last else None,
                  **latency_summary(sink.latencies))
    await control.wait("exit")
    for c in opened.clients:
        c.close()
