"""The hub-load benchmark's arithmetic: exact percentiles, the burst's window kept apart from
the steady load, and the row `results/hub_load.json` holds."""

from __future__ import annotations

from benchmarks.hub_load import burst_window, hub_row, percentile, summarise

#: [start s, name, ms, error]: steady requests, a burst of two spawns from 10 s, and one
#: slow request inside the burst's window.
RECORDS = [
    [1.0, "GET /hub/home", 10.0, None],
    [2.0, "GET /hub/home", 20.0, None],
    [3.0, "POST naic activity", 30.0, "HTTPError('500')"],
    [10.0, "POST spawn (burst)", 2000.0, None],
    [10.5, "GET /hub/home", 900.0, None],
    [10.0, "BURST spawn to ready", 2500.0, None],
    [10.0, "BURST spawn to ready", 3000.0, None],
    [14.0, "GET /hub/home", 40.0, None],
]


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_the_burst_window_runs_from_its_start_to_its_last_ready() -> None:
    assert burst_window(RECORDS) == (10.0, 13.0)
    assert burst_window(RECORDS[:3]) is None


def test_summary_keeps_the_steady_load_apart_from_the_burst() -> None:
    got = summarise(RECORDS)
    # All requests: the spawn-to-ready times are no request and are not among them.
    assert got["all"]["count"] == 6 and got["all"]["errors"] == 1
    assert got["endpoints"]["POST naic activity"]["error_kinds"] == {"HTTPError('500')": 1}
    assert "error_kinds" not in got["endpoints"]["GET /hub/home"]  # none: nothing to say
    assert got["all"]["p99_ms"] == 2000.0
    # Outside 10–13 s: the 900 ms home page and the spawn POST are left out.
    assert got["steady"]["count"] == 4
    assert got["steady"]["p99_ms"] == 40.0
    assert got["endpoints"]["GET /hub/home"]["count"] == 4
    assert got["burst"] == {"spawns": 2, "failed": 0, "first_ready_ms": 2500.0,
                            "ready_p50_ms": 2500.0, "all_ready_ms": 3000.0}  # fmt: skip


def test_the_row_has_the_issues_fields() -> None:
    cpu = {"hub_cpu_pct": 31.5, "hub_rss_mb": 190.0, "proxy_cpu_pct": 4.0}
    row = hub_row(200, 50, summarise(RECORDS), cpu)
    assert {"sessions", "users", "p50_ms", "p95_ms", "p99_ms", "errors", "hub_cpu_pct"} <= set(row)
    assert (row["sessions"], row["users"], row["errors"], row["hub_cpu_pct"]) == (200, 50, 1, 31.5)
    assert row["steady_p99_ms"] == 40.0
