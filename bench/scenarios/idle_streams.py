"""idle_streams: N held HTTP streams, each on its own channel, then nothing happens.

Measures the open rate (N streams opened through the ``test`` target, 100 at a time, each
counted once ``[stream opened]`` has arrived), the RSS per held stream (growth of the whole
server process tree's RSS over N), the server's CPU while they sit idle, and — p8 only —
the pause of a full ``gc.collect()`` with all of them held.

The load generator is a separate process, so its N sockets count against its own
RLIMIT_NOFILE (20,000 here), not the server's: the full scale holds 19,000 streams, and
the server tree holds 19,000 client sockets plus its listeners.
"""

from __future__ import annotations

import time
from typing import Any

from ..aio import OPEN_CONCURRENCY, Sink, open_streams
from ..harness import LoadGen, Route, Window
from . import Context, Sample

NAME = "idle_streams"
IDLE_SECONDS = 5.0


def run(ctx: Context, kind: str) -> list[Sample]:
    n = ctx.pick(100, 2_000, 19_000)
    idle = ctx.pick(0.5, 3.0, IDLE_SECONDS)
    settle = ctx.pick(0.2, 1.0, 1.0)
    case = f"N={n:,}"
    with ctx.server(kind, Route("test"), NAME) as server:
        time.sleep(settle)
        base_rss = server.rss()
        lg = LoadGen(NAME, {"port": server.port, "n": n, "concurrency": OPEN_CONCURRENCY,
                            "timeout": 60},
                     workdir=server.workdir, cpu=ctx.load_cpu)
        try:
            lg.expect("ready", 30)
            opening = Window(server, [lg]).start()
            lg.send("open")
            opened = lg.expect("opened", 60 + n / 100)
            opening.stop()
            time.sleep(settle)
            rss = server.rss()
            fds = server.fds()
            quiet = Window(server, [lg]).start()
            time.sleep(idle)
            quiet.stop()
            gc = server.full_gc_pause()
            lg.send("check")
            checked = lg.expect("checked", 60)
        finally:
            lg.finish()
    held = opened["opened"]
    ctx.log(f"  {kind}: {held} streams in {opened['seconds']:.2f} s (failed: {opened['why']}), "
            f"RSS {rss / 1e6:.1f} MB "
            f"(base {base_rss / 1e6:.1f} MB), {fds} fds, idle CPU {quiet.server_util:.1%}, "
            f"gc {gc}")

    def sample(metric: str, value: float | None, unit: str, better: str, win: Window | None,
               note: str = "") -> Sample:
        return Sample(NAME, case, metric, value, unit, better,
                      win.load_util if win else None, win.server_util if win else None, note)

    per_stream = (rss - base_rss) / held / 1024 if held else None
    return [
        sample("opens/s", held / opened["seconds"] if opened["seconds"] else None, "/s",
               "higher", opening),
        sample("RSS per held stream", per_stream, "KB", "lower", None,
               f"server tree {rss / 1e6:.0f} MB"),
        sample("CPU while idle", quiet.server_util * 100, "% core", "lower", quiet),
        sample("full GC pause", gc["full_gc_ms"] if gc else None, "ms", "lower", None,
               "" if gc else "no GC (C++/Rust)"),
        sample("losses", opened["failures"] + checked["closed"], "", "lower", opening,
               "; ".join(([f"{opened['failures']} failed to open {opened['why']}"]
                          if opened["failures"] else [])
                         + ([f"{checked['closed']} closed by the server while idle"]
                            if checked["closed"] else []))),
    ]


async def generate(params: dict[str, Any], control: Any) -> None:
    control.event("ready")
    await control.wait("open")
    sink = Sink()
    paths = (f"/stream?channel=idle-{i}" for i in range(params["n"]))
    opened = await open_streams(params["port"], paths, sink,
                                concurrency=params["concurrency"], timeout=params["timeout"])
    control.event("opened", **opened.report())
    await control.wait("check")
    alive = sum(not c.lost for c in opened.clients)
    control.event("checked", alive=alive, closed=len(opened.clients) - alive)
    await control.wait("exit")
    for c in opened.clients:
        c.close()
