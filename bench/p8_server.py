"""``p8 run`` for the benchmark: the same server, plus a timed full GC on request.

``python -m bench.p8_server --config FILE --gc-report PATH`` runs ``p8 run --config FILE``
in this process. On SIGUSR1 it times one ``gc.collect()`` (a full, generation-2
collection) and writes ``{"full_gc_ms": ..., "max_gen2_ms": ...}`` to PATH, where
``max_gen2_ms`` is the longest generation-2 collection that happened by itself so far,
plus what the soak test watches: the hub's table sizes, held exchanges, armed timers and
pooled backend connectors.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.p8_server")
    parser.add_argument("--config", required=True)
    parser.add_argument("--gc-report", type=Path, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    from p8core.app import App
    from p8core.cli import _run, configure_logging
    from p8core.errors import P8Error

    configure_logging(args.log_level)
    try:
        app = App.from_file(Path(args.config))
    except P8Error as e:
        print(f"p8: error: {e}", file=sys.stderr)
        return 2

    started = [0.0]
    worst = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        elif started[0]:
            worst[0] = max(worst[0], time.perf_counter() - started[0])

    gc.callbacks.append(on_gc)

    def full_gc(signum: int, frame: object) -> None:
        gc.callbacks.remove(on_gc)
        try:
            t0 = time.perf_counter()
            gc.collect()
            pause = time.perf_counter() - t0
        finally:
            gc.callbacks.append(on_gc)
        report = {"full_gc_ms": pause * 1000, "max_gen2_ms": worst[0] * 1000,
                  "frozen": gc.get_freeze_count(), "hub": app.hub.sizes(),
                  "held": len(app.held), "timers": len(app.timers),
                  "connectors": len(app.connectors)}
        tmp = args.gc_report.with_suffix(".tmp")
        tmp.write_text(json.dumps(report) + "\n")
        tmp.replace(args.gc_report)

    signal.signal(signal.SIGUSR1, full_gc)
    return _run(app)


if __name__ == "__main__":
    sys.exit(main())
