"""The accumulators behind the metrics: what a scrape reads is what was counted."""

from __future__ import annotations

import pytest

from p8core.observe.tally import Histogram, LabelledCounts, LabelledHistograms


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    hist = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        hist.observe(value)
    assert list(hist.cumulative()) == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
    assert hist.sum == pytest.approx(8.65)


def test_labelled_counts_and_histograms() -> None:
    counts = LabelledCounts("input", "format")
    counts.add(("http", "ws-message"))
    counts.add(("http", "ws-message"))
    counts.add(("zmq-pull", "ws-message"))
    assert counts.get(("http", "ws-message")) == 2
    assert counts.get(("command", "ws-message")) == 0
    assert counts.labels == ("input", "format")
    hists = LabelledHistograms("kind", bounds=(1.0,))
    hists.observe(("proxy",), 0.5)
    hists.observe(("proxy",), 2.0)
    [(key, hist)] = hists.items()
    assert key == ("proxy",) and list(hist.cumulative()) == [("1.0", 1), ("+Inf", 2)]
