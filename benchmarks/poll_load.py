"""Scheduler load from status polling: squeue calls and slurmctld RPCs per poll interval.

    .venv/bin/python -m benchmarks.poll_load [--sessions 1,10,30] [--interval 10]
                                             [--window 30] [--quick] [--keep]

For naic-hub and then stock batchspawner (one hub at a time, so slurmctld's counters see
one of them), sessions are started up to each level (named servers, alternately alice's
and bob's; 1 CPU, 1 GB, 30 min on partition `normal`), left to settle, and then, for a
fixed window:

- every `squeue` the hub runs is counted exactly, by a wrapper first on the hub's PATH;
- `sdiag --reset` before and `sdiag` after give slurmctld's RPC counts by message type.
  A job query is REQUEST_JOB_INFO (our one squeue for the whole site) or
  REQUEST_JOB_INFO_SINGLE (stock's `squeue -j ID`); every squeue also costs one more small
  RPC (partition or federation info). sdiag counts the whole cluster, which is shared:
  anything else using it in the window shows up there, never in the squeue count.

Both hubs poll every `--interval` seconds (`c.Spawner.poll_interval`, JupyterHub's ±5 %
jitter); naic-hub's shared snapshot lives as long (`c.SlurmSpawner.status_max_age`).
Results: a table on stdout and benchmarks/results/poll_load.json.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import harness
from tests.hub_process import Hub

USERS = ("alice", "bob")
NAIC_OPTIONS = {"site": "testcluster", "resource": "cpu", "memory_gb": 1, "hours": 0.5}
STOCK_EXTRA = 'c.SlurmSpawner.req_memory = "1G"\n'
JOB_QUERIES = ("REQUEST_JOB_INFO", "REQUEST_JOB_INFO_SINGLE", "REQUEST_JOB_USER_INFO")
SETTLE_S = 5
SPAWN_BATCH = 5


def session_names(start: int, stop: int) -> list[tuple[str, str]]:
    return [(USERS[i % len(USERS)], f"s{i + 1:02d}") for i in range(start, stop)]


def start_sessions(hub: Hub, new: list[tuple[str, str]], options: dict | None) -> list[str]:
    """Start sessions a few at a time (a 2-core machine); their job ids."""
    jobs = []
    with hub.api() as api:
        for i in range(0, len(new), SPAWN_BATCH):
            batch = new[i : i + SPAWN_BATCH]
            for user, name in batch:
                harness.request_spawn(api, user, name, options)
            for user, name in batch:
                jobs.append(harness.job_id_of(harness.wait_ready(api, user, name)))
    return jobs


def ready_count(hub: Hub, sessions: list[tuple[str, str]]) -> int:
    with hub.api() as api:
        models = {u: api.get(f"/users/{u}").json()["servers"] for u in USERS}
    return sum(1 for u, n in sessions if (models[u].get(n) or {}).get("ready"))


def stop_sessions(hub: Hub, sessions: list[tuple[str, str]]) -> list[str]:
    """Stop all sessions at once (each stop may take several seconds); their job ids."""
    with hub.api() as api:
        models = {u: api.get(f"/users/{u}").json()["servers"] for u in USERS}
    jobs = [harness.job_id_of(models[u].get(n)) for u, n in sessions]

    def stop_one(session: tuple[str, str]) -> None:
        with hub.api() as api:
            harness.stop_server(api, *session)

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(stop_one, sessions))
    return [j for j in jobs if j]


def measure(
    kind: str, base: Path, levels: list[int], interval: float, window: float, jobs: list[str]
) -> list[dict]:
    """One hub through all levels; the job ids of its sessions are added to `jobs`."""
    folder = base / kind.split()[0]
    counter = harness.SqueueCounter.install(folder)
    extra = harness.NAMED_SERVERS.format(interval=interval)
    with harness.path_first(counter.bin_dir):
        if kind == "naic-hub":
            extra += f"c.SlurmSpawner.status_max_age = {interval}\n"
            hub = harness.start_naic(folder / "hub", extra)
            options: dict | None = NAIC_OPTIONS
        else:
            hub = harness.start_stock(folder / "hub", extra + STOCK_EXTRA)
            options = None
    rows: list[dict] = []
    sessions: list[tuple[str, str]] = []
    try:
        with hub.api() as api:
            for user in USERS:
                harness.ensure_user(api, user)
        for level in levels:
            harness.wait_controller()
            new = session_names(len(sessions), level)
            sessions += new
            t_spawn = time.monotonic()
            jobs += start_sessions(hub, new, options)
            spawn_s = time.monotonic() - t_spawn
            time.sleep(SETTLE_S)
            harness.sdiag_reset()
            t0 = time.time()
            time.sleep(window)
            t1 = time.time()
            rpcs = harness.sdiag_rpcs()
            calls = counter.calls(t0, t1)
            intervals = (t1 - t0) / interval
            rpcs.pop("REQUEST_STATS_INFO", None)  # sdiag's own
            job_queries = sum(rpcs.get(k, 0) for k in JOB_QUERIES)
            row = {
                "setup": kind,
                "sessions": level,
                "ready_after_window": ready_count(hub, sessions),
                "window_s": round(t1 - t0, 1),
                "intervals": round(intervals, 2),
                "squeue_calls": len(calls),
                "squeue_per_interval": round(len(calls) / intervals, 2),
                "sdiag_job_queries": job_queries,
                "sdiag_job_queries_per_interval": round(job_queries / intervals, 2),
                "sdiag_rpcs": sum(rpcs.values()),
                "sdiag_rpcs_per_interval": round(sum(rpcs.values()) / intervals, 2),
                "sdiag_by_type": rpcs,
                "spawn_s": round(spawn_s, 1),
            }
            rows.append(row)
            print(
                f"{kind}: {level} sessions ({row['ready_after_window']} ready): "
                f"{row['squeue_per_interval']} squeue/interval, "
                f"{row['sdiag_job_queries_per_interval']} job-info RPCs/interval (sdiag)"
            )
    except BaseException:
        print(f"--- {hub.log} (tail) ---\n{harness.tail(hub.log_text())}")
        raise
    finally:
        try:
            jobs += stop_sessions(hub, sessions)
        finally:
            harness.stop(hub)
            harness.wait_jobs_gone(sorted({j for j in jobs if j}))
    return rows


def run(levels: list[int], interval: float, window: float, keep: bool) -> dict:
    harness.check_host()
    rows: list[dict] = []
    jobs: list[str] = []
    with harness.workdir(keep) as base:
        try:
            for kind in ("naic-hub", "stock batchspawner"):
                rows += measure(kind, base, levels, interval, window, jobs)
        finally:
            harness.remove_job_logs(sorted(set(jobs)), base / "jobs" if keep else None)
    return {
        "benchmark": "poll_load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": f"{os.uname().nodename}, {os.cpu_count()} CPUs",
        "poll_interval_s": interval,
        "window_s": window,
        "rows": rows,
    }


def report(result: dict) -> str:
    rows = [
        [
            r["setup"],
            r["sessions"],
            r["squeue_calls"],
            f"{r['squeue_per_interval']:.1f}",
            f"{r['sdiag_job_queries_per_interval']:.1f}",
            f"{r['sdiag_rpcs_per_interval']:.1f}",
        ]
        for r in result["rows"]
    ]
    header = [
        "setup",
        "sessions",
        f"squeue calls in {result['window_s']:g} s",
        f"squeue / {result['poll_interval_s']:g} s interval",
        "job-info RPCs / interval (sdiag)",
        "all RPCs / interval (sdiag)",
    ]
    return harness.table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,10,30", help="levels, ascending (1,10,30)")
    parser.add_argument("--interval", type=float, default=10, help="poll interval, s (10)")
    parser.add_argument("--window", type=float, default=30, help="counting window, s (30)")
    parser.add_argument("--quick", action="store_true", help="levels 1,5 and a 20 s window")
    parser.add_argument("--keep", action="store_true", help="keep the hubs' and jobs' logs")
    parser.add_argument(
        "--json", type=Path, default=harness.RESULTS / "poll_load.json", help="output file"
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.sessions.split(",")]
    window = args.window
    if args.quick:
        levels, window = [1, 5], 20
    if levels != sorted(set(levels)) or levels[0] < 1:
        parser.error("--sessions must be ascending positive numbers")
    result = run(levels, args.interval, window, args.keep)
    harness.publish(report(result), result, args.json)


if __name__ == "__main__":
    main()
