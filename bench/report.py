"""Turning samples into ``bench/RESULTS.md``: one row per measured value, both servers."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .scenarios import Sample

Check = Callable[["Row"], bool | None]


@dataclass
class Row:
    scenario: str
    case: str
    metric: str
    unit: str
    better: str
    pushpin: Sample | None
    p8: Sample | None

    @property
    def ratio(self) -> float | None:
        """How many times better p8 is (> 1: p8 better), when both values exist."""
        a = self.pushpin.value if self.pushpin else None
        b = self.p8.value if self.p8 else None
        if a is None or b is None or not self.better:
            return None
        if self.better == "higher":
            return b / a if a else None
        return a / b if b else None

    def value(self, kind: str) -> float | None:
        s = self.pushpin if kind == "pushpin" else self.p8
        return s.value if s else None


def _at_most(limit: float) -> Check:
    return lambda r: None if r.value("p8") is None else r.value("p8") <= limit  # type: ignore[operator]


def _at_least(limit: float) -> Check:
    return lambda r: None if r.value("p8") is None else r.value("p8") >= limit  # type: ignore[operator]


def _ratio(times: float) -> Check:
    return lambda r: None if r.ratio is None else r.ratio >= times


def _all(*checks: Check) -> Check:
    def check(r: Row) -> bool | None:
        results = [c(r) for c in checks]
        return None if None in results else all(results)
    return check


# (scenario, case or "*", metric) -> (target text, check of the p8 value)
TARGETS: dict[tuple[str, str, str], tuple[str, Check]] = {
    ("idle_streams", "*", "RSS per held stream"): ("≤ 10 KB (stretch 5)", _at_most(10)),
    ("idle_streams", "*", "opens/s"): ("≥ 2,000", _at_least(2000)),
    ("idle_streams", "N=19,000", "full GC pause"): ("≤ 100 ms at 19,000", _at_most(100)),
    ("fanout_latency", "N=5,000", "p99"): ("≤ 100 ms and ≥ 5x better",
                                           _all(_at_most(100), _ratio(5))),
    ("many_channels_throughput", "*", "delivered msgs/s"): ("≥ 5x Pushpin", _ratio(5)),
    ("passthrough_rps", "*", "req/s"): ("≥ 2.5x Pushpin", _ratio(2.5)),
    ("passthrough_rps", "*", "p99"): ("≤ 40 ms", _at_most(40)),
    ("ws_echo", "*", "round trips/s"): ("≥ 2.5x Pushpin", _ratio(2.5)),
    ("longpoll_cycle", "*", "cycles/s"): ("≥ 2.5x Pushpin", _ratio(2.5)),
    ("*", "*", "losses"): ("0", _at_most(0)),
}


def target_of(row: Row) -> tuple[str, bool | None]:
    for key in ((row.scenario, row.case, row.metric), (row.scenario, "*", row.metric),
                ("*", "*", row.metric)):
        if key in TARGETS:
            text, check = TARGETS[key]
            return text, check(row)
    return "", None


def rows_of(samples: Sequence[Sample]) -> list[Row]:
    rows: dict[tuple[str, str, str], Row] = {}
    for s in samples:
        key = (s.scenario, s.case, s.metric)
        row = rows.setdefault(key, Row(s.scenario, s.case, s.metric, s.unit, s.better,
                                       None, None))
        setattr(row, s.kind, s)
    return list(rows.values())


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("ms",) and value < 10:
        text = f"{value:.2f}"
    elif abs(value) >= 100 or unit in ("/s", "/cpu-s", ""):
        text = f"{value:,.0f}"
    else:
        text = f"{value:.1f}"
    return f"{text} {unit}".strip() if unit not in ("/s", "/cpu-s", "") else text


def _cell(s: Sample | None, unit: str) -> str:
    if s is None:
        return "—"
    text = _fmt(s.value, unit)
    return text if s.valid else f"{text} †"


def _util(s: Sample | None) -> str:
    if s is None or s.load_util is None:
        return "—"
    return f"{s.load_util:.0%}"


def _server_util(s: Sample | None) -> str:
    if s is None or s.server_util is None:
        return "—"
    return f"{s.server_util:.0%}"


def machine() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pushpin = subprocess.run(["pushpin", "--version"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pushpin = "not installed"
    return {"nproc": str(os.cpu_count()), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "pushpin": pushpin, "p8": _revision()}


def _revision() -> str:
    """The p8 commit measured, and whether the core or plugins had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "p8core", "plugins"],
                               cwd=root, text=True, capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' with uncommitted changes' if dirty.strip() else ''}"


def aggregate(samples: Sequence[Sample]) -> list[Sample]:
    """One sample per (scenario, case, metric, server) over repeated runs: the median value
    (losses: the sum), the median server CPU, the highest load CPU."""
    groups: dict[tuple[str, str, str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.scenario, s.case, s.metric, s.kind), []).append(s)
    out = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        values = [s.value for s in group if s.value is not None]
        if group[0].metric == "losses":
            value: float | None = sum(values)
        else:
            value = statistics.median(values) if values else None
        loads = [s.load_util for s in group if s.load_util is not None]
        servers = [s.server_util for s in group if s.server_util is not None]
        notes = [s.note for s in group if s.note]
        out.append(replace(group[0], value=value, load_util=max(loads) if loads else None,
                           server_util=statistics.median(servers) if servers else None,
                           note=" | ".join(dict.fromkeys(notes))))
    return out


def render(samples: Sequence[Sample], *, date: str, command: str, info: dict[str, str],
           elapsed: float, load_before: float, load_after: float, scale: str,
           pinned: bool, notes: Sequence[str], repeat: int = 1) -> str:
    rows = rows_of(samples)
    out = [
        "# Benchmark results: p8 vs Pushpin, one core each",
        "",
        f"- date: {date}",
        f"- machine: {info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']}, "
        f"Python {info['python']}, {info['pushpin']}",
        f"- p8: commit {info['p8']}",
        f"- command: `{command}` (scale {scale}, {elapsed / 60:.1f} min)",
        f"- load average (1 min) before/after: {load_before:.2f} / {load_after:.2f}",
        "- pinning: " + ("server tree on CPU 0, load generators, nginx and the "
                         "WebSocket-over-HTTP origin on CPU 1 (taskset)" if pinned else
                         "none (taskset or a second CPU missing)"),
        "",
        (f"Each value is the median of {repeat} runs, the servers taking turns (losses: the "
         "sum of all runs; load CPU: the highest). " if repeat > 1 else "") +
        "ratio = how many times better p8 is (p8/Pushpin for rates, Pushpin/p8 for "
        "latencies, memory and CPU). load CPU = share of one core used on the load CPU "
        "during the measurement (Pushpin run / p8 run); † marks a value whose load "
        "generator was saturated (≥ 95 %), which makes it invalid. server CPU = share of one "
        "core used by the server's process tree.",
        "",
        "| scenario | case | metric | Pushpin | p8 | ratio | target | met | "
        "load CPU (Pushpin / p8) | server CPU (Pushpin / p8) |",
        "|---|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        target, met = target_of(r)
        mark = "" if met is None else ("yes" if met else "**no**")
        out.append(f"| {r.scenario} | {r.case} | {r.metric} | {_cell(r.pushpin, r.unit)} | "
                   f"{_cell(r.p8, r.unit)} | {ratio} | {target} | {mark} | "
                   f"{_util(r.pushpin)} / {_util(r.p8)} | "
                   f"{_server_util(r.pushpin)} / {_server_util(r.p8)} |")
    extra = [f"- {r.scenario} {r.metric}: Pushpin {r.pushpin.note}" if r.pushpin and
             r.pushpin.note else "" for r in rows]
    extra += [f"- {r.scenario} {r.metric}: p8 {r.p8.note}" if r.p8 and r.p8.note else ""
              for r in rows]
    details = [e for e in extra if e]
    if details or notes:
        out += ["", "## Notes", "", *notes, *details]
    return "\n".join(out) + "\n"


WORKERS = "## Workers"


def render_workers(samples: Sequence[Sample], kinds: Sequence[str], *, date: str,
                   command: str, info: dict[str, str], elapsed: float, load_before: float,
                   load_after: float, scale: str, pinned: bool, repeat: int = 1) -> str:
    """The section comparing p8 with different ``[server] workers`` (kinds ``p8-w<N>``),
    side by side from one run; the ratio is the last against the first."""
    counts = [kind.removeprefix("p8-w") for kind in kinds]
    rows: dict[tuple[str, str, str], dict[str, Sample]] = {}
    for s in samples:
        rows.setdefault((s.scenario, s.case, s.metric), {})[s.kind] = s
    out = [
        f"{WORKERS}: p8 with workers = {' and '.join(counts)}, side by side",
        "",
        f"- date: {date}; p8 commit {info['p8']}; {info['nproc']} CPUs, {info['cpu']}",
        f"- command: `{command}` (scale {scale}, {elapsed / 60:.1f} min)",
        f"- load average (1 min) before/after: {load_before:.2f} / {load_after:.2f}",
        "- pinning: " + ("with N workers the server tree runs on CPUs 0 to N-1; load "
                         "generators, nginx and wrk stay on CPU 1, so from 2 workers on they "
                         "share it with the server" if pinned else "none"),
        "",
        (f"Each value is the median of {repeat} runs, the configurations taking turns. "
         if repeat > 1 else "") +
        f"ratio = workers = {counts[-1]} against workers = {counts[0]} (> 1: better). "
        "load CPU = share of one core used by the load generators, nginx and wrk; "
        "server CPU = share of one core used by p8's whole process tree (supervisor, "
        "workers), so above 100 % with several workers.",
        "",
        "| scenario | case | metric | " + " | ".join(f"workers = {c}" for c in counts)
        + " | ratio | load CPU | server CPU |",
        "|---|---|---|" + "---:|" * len(counts) + "---:|---|---|",
    ]
    for (scenario, case, metric), by_kind in rows.items():
        cells = [by_kind.get(kind) for kind in kinds]
        some = next(c for c in cells if c is not None)
        first, last = cells[0], cells[-1]
        ratio = ""
        if first and last and first.value and last.value and some.better:
            r = (last.value / first.value if some.better == "higher"
                 else first.value / last.value)
            ratio = f"{r:.2f}x"
        out.append(f"| {scenario} | {case} | {metric} | "
                   + " | ".join(_cell(c, some.unit) for c in cells) + f" | {ratio} | "
                   + " / ".join(_util(c) for c in cells) + " | "
                   + " / ".join(_server_util(c) for c in cells) + " |")
    notes = [f"- {s.scenario} {s.metric}, {s.kind}: {s.note}" for s in samples if s.note]
    if notes:
        out += ["", *notes]
    return "\n".join(out) + "\n"


def with_section(text: str, heading: str, section: str) -> str:
    """``text`` with the section that starts with ``heading`` replaced by ``section`` (or
    ``section`` appended): up to the next heading of the same level, or the end."""
    start = text.find(heading)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section if text.strip() else section
    end = text.find("\n## ", start + len(heading))
    rest = text[end + 1:] if end >= 0 else ""
    return text[:start] + section + ("\n" + rest if rest else "")


def dump_json(samples: Sequence[Sample], path: Path, meta: dict[str, object]) -> None:
    data = {"meta": meta,
            "samples": [{**asdict(s), "valid": s.valid} for s in samples]}
    path.write_text(json.dumps(data, indent=1) + "\n")
