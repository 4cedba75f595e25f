"""passthrough_rps: plain proxied GETs to nginx under wrk, and nginx alone as the ceiling.

nginx (one worker, a fixed 200 from memory) is started by the harness on a free port, on
the load CPU beside wrk. wrk runs one thread and 50 keep-alive connections: a warm-up,
then the measured run, against the server and then against nginx directly. Losses are
non-2xx answers plus socket errors. Without wrk (or nginx) a Python keep-alive GET loop
(or the WebSocket-over-HTTP origin, which answers plain GETs) stands in; the row says so.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from ..aio import HOST, latency_summary
from ..harness import (
    LoadGen,
    Proc,
    Route,
    Window,
    nginx_available,
    pinned,
    start_nginx,
    start_woh_origin,
)
from . import Context, Sample

NAME = "passthrough_rps"
CONNECTIONS = 50


def run(ctx: Context, kind: str) -> list[Sample]:
    seconds = ctx.pick(1, 5, 10)
    warmup = ctx.pick(0, 1, 2)
    connections = ctx.pick(10, CONNECTIONS, CONNECTIONS)
    case = f"{connections} conns, {seconds} s"
    odir = ctx.subdir(f"{NAME}-origin-{kind}")
    if nginx_available():
        origin, oport = start_nginx(odir, ctx.load_cpu)
        origin_name = "nginx"
    else:
        origin, oport = start_woh_origin(odir, ctx.load_cpu)
        origin_name = "python origin"
    notes = [] if origin_name == "nginx" else ["origin: python (no nginx)"]
    try:
        with ctx.server(kind, Route(f"127.0.0.1:{oport}"), NAME) as server:
            if warmup:
                _load(ctx, server.port, connections, warmup, server.workdir, None, None)
            win = Window(server, [origin]).start()
            res = _load(ctx, server.port, connections, seconds, server.workdir, win, origin)
            win.stop()
            win.load_cpu += res["client_cpu"]
        ceiling = _load(ctx, oport, connections, seconds, odir, None, origin)
    finally:
        origin.stop()
    notes.append(f"load: {res['tool']} {res['client_cpu'] / win.wall:.0%} + "
                 f"{origin_name} {win.parts.get(origin.name, 0) / win.wall:.0%}")
    ctx.log(f"  {kind}: {res['rps']:.0f} req/s p99 {res['p99_ms']} ms; "
            f"{origin_name} alone {ceiling['rps']:.0f} req/s; {'; '.join(notes)}")

    def sample(metric: str, value: float | None, unit: str, better: str, note: str = ""
               ) -> Sample:
        return Sample(NAME, case, metric, value, unit, better, win.load_util,
                      win.server_util, note)

    return [
        sample("req/s", res["rps"], "/s", "higher", "; ".join(notes)),
        sample("p99", res["p99_ms"], "ms", "lower"),
        Sample(NAME, case, f"{origin_name} alone (ceiling) req/s", ceiling["rps"], "/s", "",
               ceiling["client_cpu"] / seconds, ceiling["origin_cpu"] / seconds,
               "its server CPU column is the origin's"),
        sample("losses", res["errors"], "", "lower"),
    ]


def _load(ctx: Context, port: int, connections: int, seconds: int, workdir: Path,
          win: Window | None, origin: Proc | None) -> dict[str, Any]:
    """Load ``port`` for ``seconds``: wrk if installed, else the Python GET loop."""
    origin_cpu0 = origin.cpu() if origin is not None else 0.0
    if shutil.which("wrk"):
        out = _wrk(ctx, port, connections, seconds)
    else:
        lg = LoadGen(NAME, {"port": port, "connections": connections, "seconds": seconds},
                     workdir=workdir, cpu=ctx.load_cpu)
        try:
            lg.expect("ready", 30)
            cpu0 = lg.cpu()
            lg.send("go")
            out = lg.expect("done", seconds + 60)
            out["client_cpu"] = lg.cpu() - cpu0
            out["tool"] = "python GET loop"
        finally:
            lg.finish()
    out["origin_cpu"] = (origin.cpu() - origin_cpu0) if origin is not None else 0.0
    return out


def _wrk(ctx: Context, port: int, connections: int, seconds: int) -> dict[str, Any]:
    cmd = pinned(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                  f"http://{HOST}:{port}/"], ctx.load_cpu)
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert popen.stdout is not None
    text = popen.stdout.read().decode()
    _, status, usage = os.wait4(popen.pid, 0)
    popen.returncode = os.waitstatus_to_exitcode(status)
    if popen.returncode != 0:
        raise RuntimeError(f"wrk failed: {text}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      text):
        errors += sum(int(g) for g in m.groups())
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None,
            "errors": errors, "client_cpu": usage.ru_utime + usage.ru_stime, "tool": "wrk",
            "raw": text}


async def generate(params: dict[str, Any], control: Any) -> None:
    """The stand-in for wrk: keep-alive GET / loops on N connections for D seconds."""
    control.event("ready")
    await control.wait("go")
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    latencies: list[int] = []
    count = errors = 0
    end = time.monotonic() + params["seconds"]

    async def loop() -> None:
        nonlocal count, errors
        reader, writer = await asyncio.open_connection(HOST, params["port"])
        try:
            while time.monotonic() < end:
                t0 = time.time_ns()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)",  # type: ignore[union-attr]
                                       head).group(1))
                await reader.readexactly(length)
                latencies.append(time.time_ns() - t0)
                if head.startswith(b"HTTP/1.1 2"):
                    count += 1
                else:
                    errors += 1
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(params["connections"])))
    summary = latency_summary(latencies)
    control.event("done", rps=count / (time.monotonic() - t0), p99_ms=summary["p99_ms"],
                  errors=errors)
    await control.wait("exit")
