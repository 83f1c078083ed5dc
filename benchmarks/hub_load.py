"""The hub under load: N running sessions, M browsing users, the culler and a spawn burst.

Both hubs are real processes on loopback with their real proxy (configurable-http-proxy)
and a real PostgreSQL database each (a throw-away server, `tests.postgres`):

- *naic-hub*: `naic up --db-url …` on the test cluster's catalogue (the browsing users are
  members of project `demo`; a 40-seat workshop `load` on `testcluster:cpu` has them as
  teaching assistants, so its dashboard is theirs to open).
- *stock*: plain `jupyterhub` on the same PostgreSQL server, `DummyAuthenticator`.

The sessions are stand-ins (`benchmarks.standin`): they start through each hub's real spawn
path (REST, and on naic the request gate, admission, ledger), get a proxy route and the
hub's readiness check, but all point at one small Tornado server. Locust
(`benchmarks/hub_locustfile.py`, in its own process) then drives, at the same time: every
session reporting activity with its own token at the local site's report interval, the
culler's poll at its interval, M users browsing (home, REST, and on naic the spawn form
with its estimate on the Slurm site, usage and the workshop dashboard) and, 10 s in, a
burst of K spawns. Latency is what locust measures (p50/p95/p99 per endpoint and for all);
the hub's CPU and peak memory are sampled from /proc with psutil over the same window.

The browsing users are Unix accounts `browse001`… with Slurm associations in account `demo`
(the estimate runs as them), created when missing and left in place, as the workshop burst
leaves its students. Run as root from the repository root with the test cluster up:
`.venv/bin/python -m benchmarks.hub_load` (`--sessions 50,200,500 --users 50 --burst 40
--duration 60`; `--quick`: 50 sessions, 20 s). Needs locust: `.venv/bin/pip install -e
'.[bench]'`. Writes `benchmarks/results/hub_load.json`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import yaml

from benchmarks import harness, workshop_burst
from naic.hub import catalogue
from naic.hub.sessions import estimate
from naic.hub.sessions.activity import check_every_s, report_every_s
from tests.hub_process import start_hub
from tests.postgres import create_database, postgres_server

RESULT = harness.RESULTS / "hub_load.json"
LOCUSTFILE = Path(__file__).with_name("hub_locustfile.py")
SESSION = {"site": "local", "resource": "cpu-small"}
ESTIMATE = {"site": "testcluster", "resource": "a100", "gpus": "1", "hours": "1", "project": "demo"}
WORKSHOP = "load"
WARMUP_S = 10  # logins and the ramp, not counted
#: naic-hub: the local site's sessions are stand-ins (the router's backend table).
NAIC_CONFIG = """\
import sys
sys.path.insert(0, {repo!r})
import naic.spawners.router
from benchmarks.standin import StandinSpawner
naic.spawners.router.BACKENDS["local"] = StandinSpawner
c.JupyterHub.concurrent_spawn_limit = 0
"""
STOCK_CONFIG = """
import sys
sys.path.insert(0, {repo!r})
c.JupyterHub.spawner_class = "benchmarks.standin.StockStandinSpawner"
c.JupyterHub.db_url = {db_url!r}
c.JupyterHub.concurrent_spawn_limit = 0
"""


# --- pure: what locust measured, as rows ------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Pure: the q-th percentile (nearest rank) of `values`, None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)], 1)


def figures(records: list[list]) -> dict:
    """Pure: count, errors and p50/p95/p99 (ms) of [start s, name, ms, error] records; with
    errors, also what they were (each kind's count), to find out why afterwards."""
    ms = [r[2] for r in records]
    out = {"count": len(ms), "errors": sum(1 for r in records if r[3]),
           **{f"p{q}_ms": percentile(ms, q) for q in (50, 95, 99)}}  # fmt: skip
    if out["errors"]:
        out["error_kinds"] = dict(Counter(r[3] for r in records if r[3]).most_common(5))
    return out


def burst_window(records: list[list]) -> tuple[float, float] | None:
    """Pure: from the burst's start to its last session ready, in the records' seconds."""
    burst = [r for r in records if r[1].startswith("BURST")]
    if not burst:
        return None
    return min(r[0] for r in burst), max(r[0] + r[2] / 1000 for r in burst)


def summarise(records: list[list]) -> dict:
    """Pure: the hub's figures from every request: all of them (the burst's requests but
    not its spawn-to-ready times, which are no request), per endpoint, and outside the
    burst's window (the steady load alone); the burst's own figures."""
    requests = [r for r in records if not r[1].startswith("BURST")]
    window = burst_window(records)
    steady = requests
    if window:
        steady = [r for r in requests if r[0] + r[2] / 1000 < window[0] or r[0] > window[1]]
    names = sorted({r[1] for r in requests})
    ready = [r[2] for r in records if r[1].startswith("BURST") and not r[3]]
    return {
        "all": figures(requests),
        "steady": figures(steady),
        "endpoints": {n: figures([r for r in requests if r[1] == n]) for n in names},
        "burst": {
            "spawns": sum(1 for r in records if r[1].startswith("BURST")),
            "failed": sum(1 for r in records if r[1].startswith("BURST") and r[3]),
            "first_ready_ms": min(ready, default=None),
            "ready_p50_ms": percentile(ready, 50),
            "all_ready_ms": max(ready, default=None),
        },
    }


def hub_row(sessions: int, users: int, summary: dict, cpu: dict) -> dict:
    """Pure: the row `results/hub_load.json` holds for one level: the whole hub, all
    endpoints, the burst included; then the steady load's figures and the burst's."""
    total, steady = summary["all"], summary["steady"]
    return {
        "sessions": sessions,
        "users": users,
        "p50_ms": total["p50_ms"],
        "p95_ms": total["p95_ms"],
        "p99_ms": total["p99_ms"],
        "errors": total["errors"],
        "hub_cpu_pct": cpu["hub_cpu_pct"],
        "hub_rss_mb": cpu["hub_rss_mb"],
        "proxy_cpu_pct": cpu["proxy_cpu_pct"],
        "requests": total["count"],
        "steady_p99_ms": steady["p99_ms"],
        "steady_errors": steady["errors"],
        "burst": summary["burst"],
    }


# --- the hubs -----------------------------------------------------------------------------


def start_naic(base: Path, db_url: str, browsers: list[str]) -> harness.Hub:
    cat = yaml.safe_load((harness.REPO / "examples" / "catalogue-testcluster.yaml").read_text())
    cat["environments"]["python"]["venv"] = sys.prefix
    cat["projects"]["demo"]["members"] += browsers
    cat["projects"]["demo"]["gpu_hours"] = 100_000
    base.mkdir(mode=0o755, exist_ok=True)
    (base / "catalogue.yaml").write_text(yaml.safe_dump(cat))
    config_d = base / "data" / "jupyterhub_config.d"
    config_d.mkdir(mode=0o700, parents=True)
    (base / "data").chmod(0o711)
    (config_d / "10-bench.py").write_text(NAIC_CONFIG.format(repo=str(harness.REPO)))
    args = ("--catalogue", str(base / "catalogue.yaml"), "--db-url", db_url)
    return start_hub(base / "data", *args)


def policy_intervals() -> tuple[float, float]:
    cat = catalogue.load(harness.REPO / "examples" / "catalogue-testcluster.yaml")
    return report_every_s(cat.sites["local"].culling), check_every_s(cat)


def create_workshop(hub: harness.Hub, tas: list[str]) -> None:
    now = datetime.now(UTC)
    spec = {"name": WORKSHOP, "seats": 40, "resource": "testcluster:cpu", "hours": 0.5,
            "start": (now - timedelta(minutes=1)).isoformat(),
            "end": (now + timedelta(hours=2)).isoformat(), "staff": {"ta": tas}}  # fmt: skip
    with hub.api() as api:
        resp = api.post("/naic/workshops", json=spec)
        if resp.status_code != 201:
            raise RuntimeError(f"workshop: {resp.status_code} {resp.text}")


def end_workshop(hub: harness.Hub) -> None:
    with hub.api() as api, contextlib.suppress(httpx.HTTPError):
        api.delete(f"/naic/workshops/{WORKSHOP}")


def spawn_all(hub: harness.Hub, users: list[str], options: dict | None) -> None:
    """Start stand-in sessions for `users` through REST, 10 at a time; wait until ready."""

    def one(user: str) -> None:
        with hub.api() as api:
            harness.ensure_user(api, user)
            harness.request_spawn(api, user, "", options)
            harness.wait_ready(api, user, "", 120)

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(one, users))


def stop_all(hub: harness.Hub, users: list[str]) -> None:
    def one(user: str) -> None:
        with hub.api() as api:
            api.delete(f"/users/{user}/server")

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(one, users))


# --- one measurement ----------------------------------------------------------------------


class Sampler:
    """CPU time and peak memory of the hub process and of its proxy, over a window."""

    def __init__(self, pid: int) -> None:
        self.hub = psutil.Process(pid)
        self.proxy = [
            p for p in self.hub.children(recursive=True) if "proxy" in " ".join(p.cmdline())
        ]
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _cpu(self) -> tuple[float, float]:
        def t(p: psutil.Process) -> float:
            c = p.cpu_times()
            return c.user + c.system

        return t(self.hub), sum(t(p) for p in self.proxy)

    def _watch(self) -> None:
        while not self._stop.wait(1):
            self.peak_rss = max(self.peak_rss, self.hub.memory_info().rss)

    def __enter__(self) -> Sampler:
        self.t0, (self.hub0, self.proxy0) = time.monotonic(), self._cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        wall = time.monotonic() - self.t0
        hub, proxy = self._cpu()
        self.result = {
            "hub_cpu_pct": round(100 * (hub - self.hub0) / wall, 1),
            "proxy_cpu_pct": round(100 * (proxy - self.proxy0) / wall, 1),
            "hub_rss_mb": round(self.peak_rss / 2**20, 1),
        }


def measure(hub, kind, plan: dict, base: Path, duration_s: int) -> tuple[dict, dict]:
    """Locust for `duration_s` after a warm-up (logins, ramp) whose requests are not counted."""
    path = base / f"plan-{kind}-{len(plan['sessions'])}.json"
    plan["out"] = str(base / f"requests-{kind}-{len(plan['sessions'])}.json")
    path.write_text(json.dumps(plan))
    path.chmod(0o600)
    prefix = base / f"locust-{kind}-{len(plan['sessions'])}"
    users = len(plan["sessions"]) + len(plan["browsers"]) + 1 + bool(plan["burst"]["users"])
    cmd = [str(harness.VENV_BIN / "locust"), "-f", str(LOCUSTFILE), "--headless",
           "--host", hub.url.rstrip("/"), "-u", str(users), "-r", str(max(users, 100)),
           "-t", f"{duration_s + plan['warmup_s']}s", "--csv", str(prefix), "--only-summary",
           "--loglevel", "WARNING", "--stop-timeout", "5"]  # fmt: skip
    env = dict(os.environ, NAIC_BENCH_PLAN=str(path))
    records = Path(plan["out"])
    with Sampler(hub.process.pid) as sampler:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration_s + 120)
    (base / f"locust-{kind}-{len(plan['sessions'])}.log").write_text(out.stdout + out.stderr)
    if not records.exists():
        raise RuntimeError(f"locust wrote no records:\n{harness.tail(out.stderr)}")
    return summarise(json.loads(records.read_text())), sampler.result


def run_kind(kind: str, args, pg_url: str, base: Path, port: int) -> list[dict]:
    report_s, cull_s = policy_intervals()
    browsers = [f"browse{i:03d}" for i in range(1, args.users + 1)]
    tokens = base / f"tokens-{kind}"
    tokens.mkdir(mode=0o700)
    os.environ.update(NAIC_BENCH_TOKENS=str(tokens), NAIC_BENCH_STANDIN_PORT=str(port))
    db_url = create_database(pg_url)
    if kind == "naic":
        # The estimate's default reuse, not the tests' 0 (tests.hub_process.start_hub).
        os.environ["NAIC_ESTIMATE_FRESH_S"] = str(estimate.FRESH_S)
        workshop_burst.ensure_accounts(browsers)  # the estimate needs their Slurm accounts
        subprocess.run(["sacctmgr", "-i", "add", "user", ",".join(browsers), "account=demo"],
                       capture_output=True, check=False, timeout=60)  # fmt: skip
        hub = start_naic(base / kind, db_url, browsers)
    else:
        hub = harness.start_stock(
            base / kind, STOCK_CONFIG.format(repo=str(harness.REPO), db_url=db_url)
        )
    rows, running = [], []
    print(f"[{kind}] hub pid {hub.process.pid}", file=sys.stderr)
    try:
        password = hub.password if kind == "naic" else "any"  # stock: DummyAuthenticator
        with hub.api() as api:
            for user in browsers:
                harness.ensure_user(api, user)
        if kind == "naic":
            create_workshop(hub, browsers)
        plan = {"kind": kind, "admin_token": hub.admin_token, "report_every_s": report_s,
                "cull_every_s": cull_s, "browsers": browsers,
                "password": password,
                "estimate": ESTIMATE, "workshop": WORKSHOP if kind == "naic" else None}  # fmt: skip
        options = SESSION if kind == "naic" else None
        for n in args.sessions:
            wanted = [f"sess{i:04d}" for i in range(1, n + 1)]
            print(f"[{kind}] starting sessions {len(running) + 1}..{n}", file=sys.stderr)
            spawn_all(hub, wanted[len(running) :], options)
            running = wanted
            burst = [f"burst{n}-{i:03d}" for i in range(1, args.burst + 1)]
            with hub.api() as api:
                for user in burst:
                    harness.ensure_user(api, user)
            plan.update(
                sessions=[(u, (tokens / u).read_text()) for u in running],
                warmup_s=WARMUP_S,
                burst={"users": burst, "at_s": WARMUP_S + 10, "options": options, "timeout_s": 120},
            )
            print(f"[{kind}] {n} sessions, {args.users} users: {args.duration} s", file=sys.stderr)
            summary, cpu = measure(hub, kind, plan, base, args.duration)
            row = hub_row(n, args.users, summary, cpu)
            rows.append({"hub": kind, **row, "endpoints": summary["endpoints"]})
            stop_all(hub, burst)
    finally:
        if kind == "naic":
            end_workshop(hub)
        harness.stop(hub)
    return rows


def report(rows: list[dict]) -> str:
    head = ["hub", "sessions", "users", "requests", "p50 ms", "p95 ms", "p99 ms", "errors",
            "p99 ms w/o burst", "hub CPU %", "hub MB", "proxy CPU %", "burst: first ready s",
            "all ready s"]  # fmt: skip

    def s(ms: float | None) -> str:
        return "-" if ms is None else f"{ms / 1000:.1f}"

    out = [harness.table(head, [
        [r["hub"], r["sessions"], r["users"], r["requests"], r["p50_ms"], r["p95_ms"],
         r["p99_ms"], r["errors"], r["steady_p99_ms"], r["hub_cpu_pct"], r["hub_rss_mb"],
         r["proxy_cpu_pct"], s(r["burst"]["first_ready_ms"]), s(r["burst"]["all_ready_ms"])]
        for r in rows])]  # fmt: skip
    for r in rows:
        out.append(f"\n{r['hub']}, {r['sessions']} sessions, per endpoint (ms):")
        out.append(harness.table(["endpoint", "count", "errors", "p50", "p95", "p99"], [
            [name, e["count"], e["errors"], e["p50_ms"], e["p95_ms"], e["p99_ms"]]
            for name, e in r["endpoints"].items()]))  # fmt: skip
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="50,200,500", help="levels N, ascending")
    parser.add_argument("--users", type=int, default=50, help="browsing users M")
    parser.add_argument("--burst", type=int, default=40, help="spawns K in the burst")
    parser.add_argument("--duration", type=int, default=60, help="seconds measured per level")
    parser.add_argument("--hubs", default="naic,stock")
    parser.add_argument("--quick", action="store_true", help="50 sessions, 20 s")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.duration = "50", 20
    args.sessions = sorted(int(n) for n in args.sessions.split(","))
    harness.check_host()
    if not (harness.VENV_BIN / "locust").exists():
        harness.fail("locust is missing: .venv/bin/pip install -e '.[bench]'")
    rows = []
    with postgres_server() as pg_url, harness.workdir(args.keep) as base:
        port = harness._free_port()
        standin = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.standin", "--port", str(port)],
            cwd=harness.REPO, start_new_session=True,
        )  # fmt: skip
        try:
            for kind in args.hubs.split(","):
                rows += run_kind(kind, args, pg_url, base, port)
        finally:
            harness.kill_group(standin)
    result = {"benchmark": "hub_load", "date": datetime.now(UTC).date().isoformat(),
              "parameters": {"sessions": args.sessions, "users": args.users,
                             "burst": args.burst, "duration_s": args.duration},
              "rows": rows}  # fmt: skip
    harness.publish(report(rows), result, RESULT)


if __name__ == "__main__":
    main()
