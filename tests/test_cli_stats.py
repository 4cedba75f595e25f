"""``p8 stats``: the live counters of a running p8 as a terminal table."""

from __future__ import annotations

import anyio
import pytest
from p8_http_stream.testing import open_stream

from p8core.cli import main
from p8core.cli_stats import read_samples, render
from p8core.testing import run_p8

pytestmark = pytest.mark.anyio


async def test_stats_prints_a_table_of_the_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    async with run_p8({"plugins": {"enabled": ["http_stream"]}}) as p8, \
            open_stream(p8.bound.port, "/stream?channel=t") as stream:
        with anyio.fail_after(5):
            await stream.read_until(b"[stream opened]\n")
        capsys.readouterr()
        code = await anyio.to_thread.run_sync(main, ["stats", "--url", p8.control_url])
    rows = {line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1]
            for line in capsys.readouterr().out.splitlines() if line.startswith("p8_")}
    assert code == 0
    assert rows["p8_connections{route=*,*,*,*,transport=http}"] == "1"
    assert rows["p8_held_connections{mode=stream}"] == "1"
    assert rows["p8_requests_total"] == "1"
    assert "p8_origin_request_duration_seconds_count{kind=proxy}" in rows
    assert not any("_bucket" in name for name in rows)


async def test_stats_without_a_p8_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = await anyio.to_thread.run_sync(main, ["stats", "--url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("Error: cannot read http://127.0.0.1:9/metrics")


def test_watching_adds_rates_per_second() -> None:
    before = read_samples("# TYPE p8_requests counter\np8_requests_total 10\n"
                          "# TYPE p8_channels gauge\np8_channels 2\n")
    now = {**before, "p8_requests_total": 40.0, "p8_channels": 2.5}
    assert render(now, before, 2.0).splitlines() == [
        "metric                      value       per s",
        "p8_requests_total              40          15",
        "p8_channels                   2.5        0.25",
    ]
