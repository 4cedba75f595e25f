"""Run the benchmark: ``python -m bench.run [--quick] [--scenario NAME ...] [--no-pushpin]
[--out FILE]``.

Every scenario runs against Pushpin (when installed and not ``--no-pushpin``) and then
p8, each server started fresh for it. A full run writes ``bench/RESULTS.md`` (and the raw
samples beside it as ``RESULTS.json``); a quick run prints the table and writes only with
``--out``.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from . import harness, report
from .scenarios import NAMES, Context, Sample

HERE = Path(__file__).resolve().parent
ANALYSIS = "## Analysis"


def run_benchmark(*, scale: str, scenarios: Sequence[str] = NAMES,
                  kinds: Sequence[str] = ("pushpin", "p8"), pin: bool | None = None,
                  repeat: int = 1, keep: bool = False, profile: Path | None = None,
                  log: Callable[[str], None] = print) -> tuple[list[Sample], list[str], bool, bool]:
    """Run ``scenarios`` against ``kinds``, ``repeat`` times each (the servers taking
    turns): (every sample, notes, pinned, whether a scenario failed)."""
    harness.raise_fd_limit()
    pin = harness.can_pin() if pin is None else pin and harness.can_pin()
    if pin:  # the harness's own work (sampling /proc, reading events) stays off CPU 0
        os.sched_setaffinity(0, {harness.LOAD_CPU})
    samples: list[Sample] = []
    notes: list[str] = []
    failed = False
    with harness.workspace(keep) as workdir:
        if keep:
            log(f"work directory: {workdir}")
        for name in scenarios:
            module = importlib.import_module(f"bench.scenarios.{name}")
            for run, kind in itertools.product(range(repeat), kinds):
                ctx = Context(scale, pin, workdir / f"{name}-{run}", log, profile=profile)
                log(f"{name} / {kind}" + (f" (run {run + 1} of {repeat})" if repeat > 1 else ""))
                t0 = time.monotonic()
                try:
                    got: list[Sample] = module.run(ctx, kind)
                except Exception as e:
                    traceback.print_exc()
                    notes.append(f"- {name} on {kind} failed: {type(e).__name__}: {e}")
                    failed = True
                    continue
                for s in got:
                    s.kind = kind
                samples += got
                notes += ctx.notes
                log(f"  ({time.monotonic() - t0:.1f} s)")
    return samples, notes, pin, failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs")
    parser.add_argument("--scale", choices=["smoke", "quick", "full"],
                        help="overrides --quick (smoke: the test suite's tiny sizes)")
    parser.add_argument("--scenario", action="append", choices=NAMES, metavar="NAME",
                        help=f"run only this scenario (repeatable): {', '.join(NAMES)}")
    parser.add_argument("--no-pushpin", action="store_true", help="run p8 only")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run everything N times; the table shows medians")
    parser.add_argument("--out", type=Path, help="results file (default for a full run: "
                        "bench/RESULTS.md)")
    parser.add_argument("--keep", action="store_true", help="keep configs and logs")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record p8 with py-spy during each measurement (into DIR)")
    parser.add_argument("--workers", metavar="N,M", type=_counts,
                        help="compare p8 with these [server] workers instead of Pushpin; "
                             "writes the section '## Workers' of the results file")
    args = parser.parse_args(argv)

    scale = args.scale or ("quick" if args.quick else "full")
    kinds = ["p8"] if args.no_pushpin or not harness.pushpin_available() else ["pushpin",
                                                                                "p8"]
    if args.workers:
        kinds = [f"p8-w{n}" for n in args.workers]
    out = args.out or (HERE / "RESULTS.md" if scale == "full" else None)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    info = report.machine()  # before the run: the commit measured
    load_before = harness.load_average()
    started = time.monotonic()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    samples, notes, pinned, failed = run_benchmark(
        scale=scale, scenarios=args.scenario or NAMES, kinds=kinds, pin=not args.no_pin,
        repeat=max(1, args.repeat), keep=args.keep, profile=args.profile)
    elapsed = time.monotonic() - started
    if "pushpin" not in kinds and not args.workers:
        notes.insert(0, "- Pushpin not run" + (" (not installed)" if not args.no_pushpin
                                                else " (--no-pushpin)"))
    measured = {"date": date, "command": command.strip(), "info": info, "elapsed": elapsed,
                "load_before": load_before, "load_after": harness.load_average(),
                "scale": scale, "pinned": pinned, "repeat": max(1, args.repeat)}
    if args.workers:
        text = report.render_workers(report.aggregate(samples), kinds, **measured)
        text += "".join(f"{note}\n" for note in notes)
    else:
        text = report.render(report.aggregate(samples), notes=notes, **measured)
    print(text)
    if out is not None:
        previous = out.read_text() if out.exists() else ""
        if args.workers:  # a section of its own; the rest of the file stays
            text = report.with_section(previous, report.WORKERS, text)
        elif ANALYSIS in previous:  # the hand-written analysis (and after) survives
            text += "\n" + previous[previous.index(ANALYSIS):]
        out.write_text(text)
        raw = out.with_name(out.stem + "-workers.json") if args.workers else out.with_suffix(
            ".json")
        report.dump_json(samples, raw,
                         {"date": date, "command": command, "scale": scale,
                          "elapsed_s": elapsed})
        print(f"written to {out}")
    return 1 if failed else 0


def _counts(text: str) -> list[int]:
    """``"1,2"`` → ``[1, 2]``: worker counts, each at least 1."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if len(counts) < 2 or min(counts) < 1:
        raise argparse.ArgumentTypeError("give two or more counts, each at least 1")
    return counts


if __name__ == "__main__":
    sys.exit(main())
