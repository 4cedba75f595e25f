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
