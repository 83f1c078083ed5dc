"""Request → ready on an idle node: naic-hub vs stock batchspawner vs a bare server.

    .venv/bin/python -m benchmarks.spawn_latency [--runs 5] [--warmup 1] [--keep]

Three setups, measured in the same run, interleaved round by round (the order rotates) so
that load from anything else on the machine hits all three alike:

- `naic-hub`: `POST /hub/api/users/alice/server` with
  `{"user_options": {"site": "testcluster", "resource": "cpu", "hours": 0.5}}` to `naic up`
  (Router → naic SlurmSpawner), then `GET /hub/api/users/alice` every 0.1 s until the
  server is `ready`. The clock starts just before the POST.
- `stock batchspawner`: the same POST (no options) and polling to a plain JupyterHub with
  `batchspawner.SlurmSpawner`: 1 CPU, 2G, 30 min on partition `normal`, like `cpu` above.
- `bare jupyterhub-singleuser`: the floor. The server command alone, run as alice with this
  venv and a valid token of alice on the naic hub (the server checks the hub's version
  before it listens), no Slurm, no hub in the path; the clock runs from process start until
  `GET /user/alice/` answers anything below 500, which is the test JupyterHub itself applies.

Both hubs stop each session after it is ready and wait until Slurm has ended its job before
the next measurement. One warm-up round is not counted. Results: a table on stdout and
benchmarks/results/spawn_latency.json.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import harness
from tests.hub_process import Hub

USER = "alice"
NAIC_OPTIONS = {"site": "testcluster", "resource": "cpu", "hours": 0.5}
SETUPS = ("naic-hub", "stock batchspawner", "bare jupyterhub-singleuser")


def spawn_once(hub: Hub, options: dict | None, job_ids: list[str]) -> float:
    """Seconds from the spawn request until the hub reports the server ready; then stop it."""
    with hub.api() as api:
        t0 = time.perf_counter()
        harness.request_spawn(api, USER, "", options)
        server = harness.wait_ready(api, USER)
        elapsed = time.perf_counter() - t0
        job = harness.job_id_of(server)
        if job:
            job_ids.append(job)
        harness.stop_server(api, USER)
    harness.wait_jobs_gone([job] if job else [])
    return elapsed


def bare_once(hub_api_url: str, token: str, log: Path) -> float:
    """Seconds from starting `jupyterhub-singleuser` as alice until its URL answers."""
    for _proc, wall in harness.bare_singleuser(USER, hub_api_url, token, log):
        return wall
    raise RuntimeError("jupyterhub-singleuser did not start")


def user_token(hub: Hub, user: str) -> str:
    with hub.api() as api:
        resp = api.post(f"/users/{user}/tokens", json={"note": "spawn_latency bare baseline"})
        resp.raise_for_status()
        return resp.json()["token"]


def run(runs: int, warmup: int, keep: bool, session_env: bool = False) -> dict:
    harness.check_host()
    times: dict[str, list[float]] = {s: [] for s in SETUPS}
    job_ids: list[str] = []
    with harness.workdir(keep) as base:
        hubs: list[Hub] = []
        try:
            naic = harness.start_naic(base / "naic", session_env=session_env)
            hubs.append(naic)
            stock = harness.start_stock(base / "stock")
            hubs.append(stock)
            for hub in hubs:
                with hub.api() as api:
                    harness.ensure_user(api, USER)
            token = user_token(naic, USER)
            measure = {
                "naic-hub": lambda: spawn_once(naic, NAIC_OPTIONS, job_ids),
                "stock batchspawner": lambda: spawn_once(stock, None, job_ids),
                "bare jupyterhub-singleuser": lambda: bare_once(
                    naic.url + "hub/api", token, base / "bare.log"
                ),
            }
            for round_no in range(warmup + runs):
                order = SETUPS[round_no % 3 :] + SETUPS[: round_no % 3]
                for setup in order:
                    harness.wait_controller()
                    seconds = measure[setup]()
                    counted = round_no >= warmup
                    if counted:
                        times[setup].append(seconds)
                    label = "" if counted else " (warm-up, not counted)"
                    print(f"round {round_no + 1 - warmup}: {setup}: {seconds:.2f} s{label}")
        except BaseException:
            for hub in hubs:
                print(f"--- {hub.log} (tail) ---\n{harness.tail(hub.log_text())}")
            raise
        finally:
            for hub in hubs:
                harness.stop(hub)
            harness.wait_jobs_gone(job_ids)
            harness.remove_job_logs(job_ids, base / "jobs" if keep else None)

    stats = {s: harness.summary(v) for s, v in times.items()}
    ratio = stats["naic-hub"]["median_s"] / stats["stock batchspawner"]["median_s"]
    return {
        "benchmark": "spawn_latency",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": f"{os.uname().nodename}, {os.cpu_count()} CPUs",
        "what": "request → ready on an idle node, seconds (bare: process start → HTTP answer)",
        "runs": runs,
        "warmup": warmup,
        "setups": stats,
        "samples_s": {s: [round(x, 3) for x in v] for s, v in times.items()},
        "ratio_naic_over_stock": round(ratio, 3),
    }


def report(result: dict) -> str:
    rows = [
        [setup, s["n"], f"{s['median_s']:.2f}", f"{s['min_s']:.2f}", f"{s['max_s']:.2f}"]
        for setup, s in result["setups"].items()
    ]
    text = harness.table(["setup", "n", "median s", "min s", "max s"], rows)
    return text + f"\n\nnaic-hub / stock median: {result['ratio_naic_over_stock']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds first")
    parser.add_argument("--keep", action="store_true", help="keep the hubs' logs")
    parser.add_argument(
        "--json", type=Path, default=harness.RESULTS / "spawn_latency.json", help="output file"
    )
    parser.add_argument(
        "--session-env",
        action="store_true",
        help="naic-hub with a site session environment: servers from it, environments as "
        "kernels (written at each start)",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    result = run(args.runs, args.warmup, args.keep, args.session_env)
    harness.publish(report(result), result, args.json)


if __name__ == "__main__":
    main()
