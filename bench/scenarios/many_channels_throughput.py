"""many_channels_throughput: 1,000 channels x 2 held streams, publishing flat out.

Four publishers POST batches of 100 items (one item per channel, round robin over the
channels, content ``@<ns>\\n``) back to back for D seconds; then the generator waits until
every delivery has arrived or none has for 3 s. Delivered messages/s is counted from the
first publish to the last delivery; messages per server CPU-second, and both CPU shares,
over that same interval. Losses are (items published x 2) - deliveries. Four publishers
gave both servers their best rate in a sweep of 2, 4 and 8.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from ..aio import OPEN_CONCURRENCY, Sink, latency_summary, open_streams, publish
from ..harness import LoadGen, Route, Window
from . import Context, Sample, stream_losses

NAME = "many_channels_throughput"
SUBSCRIBERS = 2
PUBLISHERS = 4


def run(ctx: Context, kind: str) -> list[Sample]:
    channels = ctx.pick(20, 1_000, 1_000)
    seconds = ctx.pick(1.0, 3.0, 10.0)
    batch = ctx.pick(10, 100, 100)
    case = f"{channels:,}x{SUBSCRIBERS}, {seconds:g} s"
    with ctx.server(kind, Route("test"), NAME) as server:
        lg = LoadGen(NAME, {"port": server.port, "control": server.control,
                            "channels": channels, "seconds": seconds, "batch": batch},
                     workdir=server.workdir, cpu=ctx.load_cpu)
        try:
            lg.expect("ready", 30)
            lg.send("open")
            opened = lg.expect("opened", 120)
            time.sleep(ctx.pick(0.2, 1.0, 1.0))
            win = Window(server, [lg]).start()
            lg.send("go")
            done = lg.expect("done", seconds + 120)
            win.stop().narrow(done["t_first"], done["t_last"])
        finally:
            lg.finish()
    ctx.log(f"  {kind} {case}: opened {opened}; {done}")
    rate = done["delivered"] / done["seconds"] if done["seconds"] else None
    per_cpu = done["delivered"] / win.server_cpu if win.server_cpu else None

    def sample(metric: str, value: float | None, unit: str, better: str, note: str = ""
               ) -> Sample:
        return Sample(NAME, case, metric, value, unit, better, win.load_util,
                      win.server_util, note)

    return [
        sample("delivered msgs/s", rate, "/s", "higher",
               f"{done['published']:,} items published"),
        sample("msgs per server CPU-second", per_cpu, "/cpu-s", "higher"),
        sample("p50 publish→delivery", done["p50_ms"], "ms", "lower"),
        sample("losses", done["expected"] - done["delivered"], "", "lower",
               stream_losses(opened, done)),
    ]


async def generate(params: dict[str, Any], control: Any) -> None:
    channels, batch = params["channels"], params["batch"]
    control.event("ready")
    await control.wait("open")
    sink = Sink()
    names = [f"mc-{i}" for i in range(channels)]
    paths = (f"/stream?channel={names[i // SUBSCRIBERS]}"
             for i in range(channels * SUBSCRIBERS))
    opened = await open_streams(params["port"], paths, sink, concurrency=OPEN_CONCURRENCY,
                                timeout=60)
    control.event("opened", **opened.report())
    await control.wait("go")
    rotation = itertools.cycle(names)
    published = errors = 0
    t0 = time.monotonic()
    t0_ns = time.time_ns()
    end = t0 + params["seconds"]

    async def publisher() -> None:
        nonlocal published, errors
        while time.monotonic() < end:
            content = f"@{time.time_ns()}\n"
            items = [(next(rotation), "http-stream", {"content": content})
                     for _ in range(batch)]
            if await publish(params["control"], items) == 200:
                published += batch
            else:
                errors += 1

    await asyncio.gather(*(publisher() for _ in range(PUBLISHERS)))
    expected = published * SUBSCRIBERS
    seen, quiet_since = sink.count, time.monotonic()
    while sink.count < expected and time.monotonic() - quiet_since < 3.0:
        await asyncio.sleep(0.05)
        if sink.count != seen:
            seen, quiet_since = sink.count, time.monotonic()
    seconds = (max(sink.last_at, t0_ns) - t0_ns) / 1e9
    control.event("done", published=published, publish_errors=errors, expected=expected,
                  delivered=sink.count, closed=sink.closed, seconds=seconds,
                  t_first=t0, t_last=t0 + seconds,
                  **latency_summary(sink.latencies))
    await control.wait("exit")
    for c in opened.clients:
        c.close()
