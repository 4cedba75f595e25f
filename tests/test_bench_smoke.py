"""The benchmark harness runs: every scenario, tiny sizes, p8 only, without pinning.

Asserts only that each scenario completes and loses nothing — never a timing. It runs the
harness as ``make bench`` does, in its own process (which starts p8, its load generators,
nginx or a Python origin, and wrk or a Python load loop, whichever is installed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.scenarios import NAMES

ROOT = Path(__file__).resolve().parent.parent


def test_every_scenario_completes_without_loss(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--scale", "smoke", "--no-pushpin", "--no-pin",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    samples = json.loads(out.with_suffix(".json").read_text())["samples"]
    assert {s["scenario"] for s in samples} == set(NAMES)
    losses = {s["scenario"]: s["value"] for s in samples if s["metric"] == "losses"}
    assert losses == dict.fromkeys(NAMES, 0)
    assert all(s["kind"] == "p8" for s in samples)
    assert "| idle_streams |" in out.read_text()


def test_workers_comparison_writes_its_own_section(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    before = "# Benchmark results\n\n| a table |\n\n## Analysis\n\nWritten by hand.\n"
    out.write_text(before)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--scale", "smoke", "--workers", "1,2",
         "--scenario", "passthrough_rps", "--no-pin", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert text.startswith(before), "the rest of the file stays"
    assert "## Workers: p8 with workers = 1 and 2, side by side" in text
    assert "| scenario | case | metric | workers = 1 | workers = 2 | ratio |" in text
    samples = json.loads((tmp_path / "RESULTS-workers.json").read_text())["samples"]
    assert {s["kind"] for s in samples} == {"p8-w1", "p8-w2"}
    assert [s["value"] for s in samples if s["metric"] == "losses"] == [0, 0]


def test_soak_churn_leaves_an_empty_hub(tmp_path: Path) -> None:
    """A few seconds of the soak test: every client kind connects and leaves while
    publishes flow, and once they are gone the hub and the held exchanges are empty."""
    out = tmp_path / "SOAK.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "0.05", "--sample-every", "1.5",
         "--streams", "4", "--longpolls", "4", "--websockets", "4", "--max-lifetime", "1",
         "--linger", "0.5", "--id-ttl", "0.5", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out.read_text()
    assert report.startswith("## Soak\n") and "| minute | RSS MiB |" in report
    assert '"channels": 0, "subscribers": 0' in report and "— empty." in report
