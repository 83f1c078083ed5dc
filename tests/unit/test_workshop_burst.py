"""The workshop burst benchmark's pure parts: percentiles, the verdict, /proc CPU."""

from __future__ import annotations

import pytest

from benchmarks.workshop_burst import (
    ProcStat,
    burst_summary,
    parse_stat,
    percentile,
    tree_ticks,
    verdict,
)


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0, 5.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 90) == pytest.approx(4.6)
    assert percentile(values, 100) == 5.0
    assert percentile([7.0], 90) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_and_verdict() -> None:
    naic = burst_summary([1.0, 2.0, 3.0, 4.0], failures=0)
    assert naic == {
        "ready": 4,
        "failures": 0,
        "median_s": 2.5,
        "p90_s": 3.7,
        "max_s": 4.0,
        "all_ready_s": 4.0,
    }
    stock = burst_summary([5.0, 10.0], failures=0)
    assert verdict(naic, stock) == (0.4, "PASS")
    assert verdict(naic, burst_summary([4.5], failures=0)) == (0.889, "FAIL")
    broken = burst_summary([1.0], failures=1)
    assert broken["all_ready_s"] is None
    assert verdict(broken, stock) == (None, "FAIL")
    assert burst_summary([], failures=3) == {"ready": 0, "failures": 3, "all_ready_s": None}


def test_parse_stat_survives_odd_command_names() -> None:
    line = "4242 (node (proxy) x) S 17 4242 4242 0 -1 4194304 1 0 0 0 120 30 7 3 20 0 1 0 99 0"
    assert parse_stat(line) == ProcStat(pid=4242, ppid=17, ticks=160)


def test_tree_ticks_counts_descendants_only_and_splits_the_proxy() -> None:
    stats = [
        ProcStat(1, 0, 1000),  # init: not ours
        ProcStat(10, 1, 50),  # naic up
        ProcStat(11, 10, 300),  # jupyterhub
        ProcStat(12, 11, 40),  # configurable-http-proxy
        ProcStat(13, 11, 5),  # squeue
        ProcStat(20, 1, 700),  # something else
    ]
    assert tree_ticks(stats, 10, proxy={12}) == {"hub": 355, "proxy": 40}
