"""A workshop burst: N students start their sessions at the same moment.

    .venv/bin/python -m benchmarks.workshop_burst [--students 40] [--timeout 600]
                                                  [--floor-runs 3] [--keep]

Three figures, measured in the same run on the test cluster, one after the other:

- `naic-hub`: `naic up` on examples/catalogue-testcluster.yaml. The operator's token creates
  the workshop `burst` (`POST /hub/api/naic/workshops`: N seats, `testcluster:cpu`, 0.5 h,
  open since a minute ago for 2 h; this also creates the Slurm reservation `naic-ws-burst`).
  Then N threads, each with its own student's token, are released together by a barrier
  (the clock starts there) and each redeems the code (`POST /hub/api/naic/workshops/join`,
  which adds the student to the reservation) and starts the named server it gives
  (`POST /hub/api/users/{name}/servers/burst` with `{"workshop": "burst"}`): 1 CPU, 2 GB.
- `stock batchspawner`: plain JupyterHub with `batchspawner.SlurmSpawner` (benchmarks.harness:
  1 CPU, 2G, 30 min on partition `normal`, as in spawn_latency), the same N users, each
  posting `POST /hub/api/users/{name}/server` (no options) behind the same barrier.
- the CPU floor: `jupyterhub-singleuser` alone, run `--floor-runs` times as a student with
  this venv and a valid token (as spawn_latency's bare row), and its CPU time (user +
  system, from /proc) read the moment its URL answers below HTTP 500; the floor is
  N × the median of that ÷ the machine's cores: how soon N servers could all be up if
  starting them were the only work and the cores were perfectly shared.

Per student: seconds from the barrier until the server shows `ready`, observed by one
poller (`GET /hub/api/users` with the operator's token every 0.25 s, for both hubs alike).
A failure is a refused request (any non-2xx), a server that goes away before it is ready,
or one not ready within `--timeout`. Reported: median, p90 (linear interpolation) and max
over the students that got ready, failures, the time until all were ready, and the CPU
seconds (user + system) the hub used in that window: the hub's process tree (`naic up`,
jupyterhub, its services and every sbatch/squeue/scontrol it ran) apart from
configurable-http-proxy, which is shown on its own. Sessions run under slurmd, outside it.
Verdict: PASS when naic-hub had no failure and all its students were ready in ≤ 0.8 × the
stock time (issue 6; stock's time is that of its last ready student, failures or not); a
report, not a test.

Assumptions: run as root from the repository root with the venv readable by all (the jobs
run as the students). The students are Unix accounts `burst01`… that the benchmark creates
when missing (`useradd --create-home --user-group --shell /bin/bash`) and leaves in place for
the next run (`userdel -r burst01` … removes them); the same names are hub users with their
own tokens. N sessions of 2 GB must fit the free memory of partition `normal` at once (the
test node's 60000 MB hold 29), or the rest would queue: the benchmark refuses then. Both
hubs' sessions end (the workshop is ended, the stock hub stops its servers) and their jobs
are gone before the next setup; other jobs on the partition at the start are counted and
reported (the cluster is shared). Results: a table on stdout and
benchmarks/results/workshop_burst.json.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchmarks import harness
from tests.hub_process import Hub

WORKSHOP = "burst"
RESERVATION = f"naic-ws-{WORKSHOP}"
PARTITION = "normal"
SESSION_MB = 2048  # `testcluster:cpu`'s default memory, and the stock hub's req_memory
POLL_S = 0.25
STEP_TIMEOUT_S = 120  # one student's redeem or start request
END_TIMEOUT_S = 300  # ending the workshop stops every session
TARGET = 0.8
SETUPS = ("naic-hub", "stock batchspawner")


def student_names(n: int) -> list[str]:
    return [f"burst{i:02d}" for i in range(1, n + 1)]


# --- pure helpers -----------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100), interpolated linearly between the closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def burst_summary(ready_s: list[float], failures: int) -> dict:
    """Per-student figures of one burst; `all_ready_s` only when nobody failed."""
    out: dict = {"ready": len(ready_s), "failures": failures}
    if ready_s:
        out |= {
            "median_s": round(statistics.median(ready_s), 2),
            "p90_s": round(percentile(ready_s, 90), 2),
            "max_s": round(max(ready_s), 2),
        }
    out["all_ready_s"] = out.get("max_s") if ready_s and not failures else None
    return out


def verdict(naic: dict, stock: dict, target: float = TARGET) -> tuple[float | None, str]:
    """naic/stock time until all ready, and PASS/FAIL against `target` and 0 failures."""
    ours, theirs = naic.get("all_ready_s"), stock.get("max_s")
    ratio = round(ours / theirs, 3) if ours is not None and theirs else None
    passed = naic["failures"] == 0 and ratio is not None and ratio <= target
    return ratio, "PASS" if passed else "FAIL"


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    ticks: int  # utime + stime + cutime + cstime: its own CPU and its reaped children's


def parse_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line (the command name may hold spaces and parentheses)."""
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    # After the name: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
    return ProcStat(
        pid=int(head.split("(", 1)[0]),
        ppid=int(fields[1]),
        ticks=sum(int(f) for f in fields[11:15]),
    )


def tree_ticks(stats: list[ProcStat], root: int, proxy: set[int]) -> dict[str, int]:
    """CPU ticks of `root` and its descendants, split into `proxy` (those pids) and `hub`."""
    children: dict[int, list[ProcStat]] = {}
    for s in stats:
        children.setdefault(s.ppid, []).append(s)
    totals = {"hub": 0, "proxy": 0}
    todo = [s for s in stats if s.pid == root]
    while todo:
        s = todo.pop()
        totals["proxy" if s.pid in proxy else "hub"] += s.ticks
        todo.extend(children.get(s.pid, ()))
    return totals


# --- reading the machine ----------------------------------------------------------------

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def process_stats() -> tuple[list[ProcStat], set[int]]:
    """Every process's CPU, and the pids of configurable-http-proxy."""
    stats, proxy = [], set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stats.append(parse_stat(Path(entry.path, "stat").read_text()))
            if b"configurable-http-proxy" in Path(entry.path, "cmdline").read_bytes():
                proxy.add(int(entry.name))
    return stats, proxy


def hub_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of a hub's process tree, hub and proxy apart."""
    stats, proxy = process_stats()
    return {k: v * TICK_S for k, v in tree_ticks(stats, pid, proxy).items()}


def node_free_mb(partition: str) -> int:
    """Memory no job holds on the partition's nodes, in MB (RealMemory − AllocMem)."""
    nodes = subprocess.run(
        ["sinfo", "-h", "-p", partition, "-N", "-o", "%N"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    free = 0
    for node in sorted(set(nodes)):
        out = subprocess.run(
            ["scontrol", "show", "node", "-o", node],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        real = int(re.search(r"RealMemory=(\d+)", out).group(1))
        alloc = int(re.search(r"AllocMem=(\d+)", out).group(1))
        free += real - alloc
    return free


def jobs_of(users: list[str]) -> list[str]:
    """The jobs of these accounts (squeue refuses the whole list if one does not exist)."""
    users = [u for u in users if _exists(u)]
    if not users:
        return []
    out = subprocess.run(
        [harness.SQUEUE, "-h", "-u", ",".join(users), "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return out.split()


def other_jobs(partition: str) -> int:
    """Jobs of anybody on the partition (the cluster is shared; they share its node)."""
    out = subprocess.run(
        [harness.SQUEUE, "-h", "-p", partition, "-t", "PENDING,RUNNING", "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return len(out.split())


def clear_leftovers(users: list[str]) -> None:
    """What an interrupted run of this benchmark may have left: its reservation, its jobs."""
    subprocess.run(
        ["scontrol", "delete", f"ReservationName={RESERVATION}"], capture_output=True, timeout=30
    )
    left = jobs_of(users)
    if left:
        subprocess.run([harness.SCANCEL, *left], timeout=30, check=False)
        harness.wait_jobs_gone(left)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def remove_job_logs(users: list[str], keep_in: Path | None) -> None:
    """Every job log in the students' homes (the accounts are this benchmark's own: also
    those of jobs whose start failed before the hub knew their id); moved to `keep_in`."""
    if keep_in is not None:
        keep_in.mkdir(exist_ok=True)
    for user in users:
        home = Path(os.path.expanduser(f"~{user}"))
        for pattern in (".naic-session-*.log", "jupyterhub_slurmspawner_*.log"):
            for path in home.glob(pattern):
                if keep_in is not None:
                    shutil.move(path, keep_in / f"{user}-{path.name.lstrip('.')}")
                path.unlink(missing_ok=True)


def ensure_accounts(users: list[str]) -> None:
    for user in users:
        if not _exists(user):
            subprocess.run(
                ["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", user],
                check=True,
                timeout=60,
            )


def hub_tokens(hub: Hub, users: list[str]) -> dict[str, str]:
    """Hub users of these names, and a token of each."""
    tokens = {}
    with hub.api() as api:
        for user in users:
            harness.ensure_user(api, user)
            resp = api.post(f"/users/{user}/tokens", json={"note": "workshop_burst"})
            resp.raise_for_status()
            tokens[user] = resp.json()["token"]
    return tokens


# --- the burst --------------------------------------------------------------------------


@dataclass
class Student:
    name: str
    token: str
    redeemed_s: float | None = None
    accepted_s: float | None = None  # the start request answered
    ready_s: float | None = None
    job: str = ""
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


def all_servers(api: httpx.Client, server: str) -> dict[str, dict]:
    """Each user's model of `server`, from the paginated user list."""
    out, offset, limit = {}, 0, 200
    while True:
        resp = api.get("/users", params={"limit": limit, "offset": offset})
        resp.raise_for_status()
        page = resp.json()
        if isinstance(page, dict):  # a pagination envelope
            page = page["items"]
        for user in page:
            model = (user.get("servers") or {}).get(server)
            if model is not None:
                out[user["name"]] = model
        if len(page) < limit:
            return out
        offset += limit


StartFn = Callable[[httpx.Client, Student, Callable[[], float]], None]


def burst(hub: Hub, students: list[Student], server: str, start: StartFn, timeout_s: float) -> dict:
    """Release every student's `start` at once; watch until each is ready or has failed."""
    clock: dict[str, object] = {}
    released = threading.Event()

    def release() -> None:  # runs once, in the last thread to reach the barrier
        clock["cpu"] = hub_cpu(hub.process.pid)
        clock["t0"] = time.perf_counter()
        released.set()

    def elapsed() -> float:
        return time.perf_counter() - clock["t0"]

    barrier = threading.Barrier(len(students), action=release)

    def student(s: Student) -> None:
        headers = {"Authorization": f"token {s.token}"}
        with httpx.Client(
            base_url=hub.url + "hub/api", headers=headers, timeout=STEP_TIMEOUT_S
        ) as client:
            barrier.wait()
            try:
                start(client, s, elapsed)
                s.accepted_s = elapsed()
            except (RuntimeError, httpx.HTTPError) as exc:
                s.error = f"{type(exc).__name__}: {exc}"[:300]
                s.done.set()

    threads = [threading.Thread(target=student, args=(s,), daemon=True) for s in students]
    for t in threads:
        t.start()
    released.wait()
    with hub.api() as api:
        while not all(s.done.is_set() for s in students) and elapsed() < timeout_s:
            asked = elapsed()
            try:
                models = all_servers(api, server)
            except httpx.HTTPError as exc:  # a hub too busy to answer: ask again
                print(f"benchmark: the poller's request failed ({exc}); again", flush=True)
                time.sleep(POLL_S)
                continue
            now = elapsed()
            for s in students:
                if s.done.is_set() or s.accepted_s is None or s.accepted_s > asked:
                    continue
                model = models.get(s.name)
                if model is None:
                    s.error = "the server went away before it was ready (see the hub log)"
                    s.done.set()
                elif model["ready"]:
                    s.ready_s, s.job = now, harness.job_id_of(model)
                    s.done.set()
            time.sleep(max(0.0, POLL_S - (elapsed() - now)))
    window = elapsed()
    cpu_end = hub_cpu(hub.process.pid)
    for s in students:
        if not s.done.is_set():
            s.error = f"not ready within {timeout_s:g} s"
    for t in threads:
        t.join(timeout=STEP_TIMEOUT_S)
    ready = [s.ready_s for s in students if s.ready_s is not None]
    failed = [s for s in students if s.ready_s is None]
    result = burst_summary(ready, len(failed))
    cpu = {k: round(cpu_end[k] - clock["cpu"][k], 2) for k in cpu_end}
    result |= {
        "window_s": round(window, 2),
        "hub_cpu_s": cpu["hub"],
        "proxy_cpu_s": cpu["proxy"],
        "hub_cpu_pct_of_one_core": round(100 * cpu["hub"] / window, 1) if window else None,
        "accepted_median_s": _median([s.accepted_s for s in students]),
        "accepted_max_s": _max([s.accepted_s for s in students]),
        "samples_s": sorted(round(x, 2) for x in ready),
        "errors": {s.name: s.error for s in failed},
    }
    if any(s.redeemed_s is not None for s in students):
        result["redeemed_median_s"] = _median([s.redeemed_s for s in students])
        result["redeemed_max_s"] = _max([s.redeemed_s for s in students])
    print(f"{len(ready)}/{len(students)} ready, last at {result.get('max_s')} s", flush=True)
    for name, error in list(result["errors"].items())[:5]:
        print(f"  {name}: {error}", flush=True)
    return result


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


def _max(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(max(known), 2) if known else None


def checked(resp: httpx.Response, what: str, ok: tuple[int, ...]) -> httpx.Response:
    if resp.status_code not in ok:
        raise RuntimeError(f"{what}: HTTP {resp.status_code} {resp.text[:200]}")
    return resp


def naic_burst(hub: Hub, students: list[Student], timeout_s: float) -> tuple[dict, list[str]]:
    """The workshop: create it, let everyone redeem and start, then end it."""
    now = datetime.now(UTC)
    spec = {
        "name": WORKSHOP,
        "seats": len(students),
        "start": (now - timedelta(minutes=1)).isoformat(),
        "end": (now + timedelta(hours=2)).isoformat(),
        "resource": "testcluster:cpu",
        "hours": 0.5,
    }
    with hub.api() as api:
        code = checked(api.post("/naic/workshops", json=spec), "create", (201,)).json()["code"]

    def start(client: httpx.Client, s: Student, elapsed: Callable[[], float]) -> None:
        joined = checked(
            client.post("/naic/workshops/join", json={"code": code}), "redeem", (200,)
        ).json()
        s.redeemed_s = elapsed()
        body = {"user_options": joined["user_options"]}
        path = f"/users/{s.name}/servers/{joined['server']}"
        checked(client.post(path, json=body), "start", (201, 202))

    result = burst(hub, students, WORKSHOP, start, timeout_s)
    jobs = [s.job for s in students if s.job]
    with hub.api() as api:
        api.timeout = httpx.Timeout(END_TIMEOUT_S)
        t0 = time.perf_counter()
        checked(api.delete(f"/naic/workshops/{WORKSHOP}"), "end", (200,))
        result["end_workshop_s"] = round(time.perf_counter() - t0, 2)
    return result, jobs


def stock_burst(hub: Hub, students: list[Student], timeout_s: float) -> tuple[dict, list[str]]:
    def start(client: httpx.Client, s: Student, elapsed: Callable[[], float]) -> None:
        checked(client.post(f"/users/{s.name}/server"), "start", (201, 202))

    result = burst(hub, students, "", start, timeout_s)
    return result, [s.job for s in students if s.job]


# --- the floor --------------------------------------------------------------------------


def startup_cpu(hub_api_url: str, user: str, token: str, log: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds of `jupyterhub-singleuser` as `user` until it answers."""
    for proc, wall in harness.bare_singleuser(user, hub_api_url, token, log):
        return wall, hub_cpu(proc.pid)["hub"]
    raise RuntimeError("jupyterhub-singleuser did not start")


def floor(hub: Hub, user: str, token: str, n: int, runs: int, log: Path) -> dict:
    samples = [startup_cpu(hub.url + "hub/api", user, token, log) for _ in range(runs)]
    cpu = statistics.median(c for _, c in samples)
    cores = os.cpu_count() or 1
    return {
        "runs": runs,
        "server_startup_cpu_s": round(cpu, 2),
        "server_startup_wall_s": round(statistics.median(w for w, _ in samples), 2),
        "samples_cpu_s": [round(c, 2) for _, c in samples],
        "cores": cores,
        "floor_s": round(n * cpu / cores, 2),
    }


# --- the run ----------------------------------------------------------------------------


def run(n: int, timeout_s: float, floor_runs: int, keep: bool) -> dict:
    harness.check_host()
    harness.wait_controller()
    users = student_names(n)
    clear_leftovers(users)
    free = node_free_mb(PARTITION)
    if n * SESSION_MB > free:
        harness.fail(
            f"{n} sessions of {SESSION_MB} MB need {n * SESSION_MB} MB at once, and partition "
            f"{PARTITION} has {free} MB free: the rest would queue. Use --students "
            f"{free // SESSION_MB} or fewer."
        )
    ensure_accounts(users)
    others = other_jobs(PARTITION)
    if others:
        print(f"benchmark: {others} other jobs run on partition {PARTITION}", flush=True)
    results: dict[str, dict] = {}
    job_ids: list[str] = []
    with harness.workdir(keep) as base:
        hub: Hub | None = None
        try:
            print(f"naic-hub: {n} students", flush=True)
            hub = harness.start_naic(base / "naic")
            tokens = hub_tokens(hub, users)
            print(f"floor: jupyterhub-singleuser × {floor_runs}", flush=True)
            results["floor"] = floor(
                hub, users[0], tokens[users[0]], n, floor_runs, base / "bare.log"
            )
            students = [Student(u, tokens[u]) for u in users]
            results["naic-hub"], jobs = naic_burst(hub, students, timeout_s)
            job_ids += jobs + jobs_of(users)
            harness.wait_jobs_gone(job_ids, 120)
            harness.stop(hub)
            hub = None

            print(f"stock batchspawner: {n} students", flush=True)
            hub = harness.start_stock(base / "stock")
            tokens = hub_tokens(hub, users)
            students = [Student(u, tokens[u]) for u in users]
            results["stock batchspawner"], jobs = stock_burst(hub, students, timeout_s)
            job_ids += jobs + jobs_of(users)
        except BaseException:
            if hub is not None:
                print(f"--- {hub.log} (tail) ---\n{harness.tail(hub.log_text())}")
            raise
        finally:
            if hub is not None:
                harness.stop(hub)
            job_ids += jobs_of(users)
            harness.wait_jobs_gone(sorted(set(job_ids)), 120)
            clear_leftovers(users)
            remove_job_logs(users, base / "jobs" if keep else None)

    ratio, outcome = verdict(results["naic-hub"], results["stock batchspawner"])
    return {
        "benchmark": "workshop_burst",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": f"{os.uname().nodename}, {os.cpu_count()} CPUs",
        "what": "N students start at one moment; seconds from then until each session is ready",
        "students": n,
        "timeout_s": timeout_s,
        "other_jobs_at_start": others,
        "setups": {s: results[s] for s in SETUPS},
        "floor": results["floor"],
        "ratio_naic_over_stock_all_ready": ratio,
        "target": f"naic all ready ≤ {TARGET} × stock, 0 failures",
        "verdict": outcome,
    }


def report(result: dict) -> str:
    def fmt(x: float | None) -> str:
        return "—" if x is None else f"{x:.2f}"

    rows = []
    for setup, s in result["setups"].items():
        rows.append(
            [
                setup,
                s["ready"],
                s["failures"],
                fmt(s.get("median_s")),
                fmt(s.get("p90_s")),
                fmt(s.get("max_s")),
                fmt(s["all_ready_s"]),
                f"{s['hub_cpu_s']:.1f}",
                f"{s['proxy_cpu_s']:.1f}",
            ]
        )
    f = result["floor"]
    rows.append(["CPU floor", "", "", "", "", "", fmt(f["floor_s"]), "", ""])
    header = ["setup", "ready", "failures", "median s", "p90 s", "max s", "all ready s"]
    text = harness.table([*header, "hub CPU s", "proxy CPU s"], rows)
    naic = result["setups"]["naic-hub"]
    ratio = result["ratio_naic_over_stock_all_ready"]
    lines = [
        text,
        "",
        f"{result['students']} students ({result['other_jobs_at_start']} other jobs on the "
        f"partition at the start); floor = {result['students']} × "
        f"{f['server_startup_cpu_s']:.2f} s CPU per server start ÷ {f['cores']} cores.",
        f"naic-hub: redeem answered by {fmt(naic.get('redeemed_median_s'))} s (median), "
        f"{fmt(naic.get('redeemed_max_s'))} s (last); start answered by "
        f"{fmt(naic.get('accepted_median_s'))} / {fmt(naic.get('accepted_max_s'))} s; "
        f"ending the workshop took {fmt(naic.get('end_workshop_s'))} s.",
        f"naic-hub / stock, time until all ready: {fmt(ratio)} "
        f"(target ≤ {TARGET}, 0 failures): {result['verdict']}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40, help="students (default 40)")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds a student may wait (default 600)"
    )
    parser.add_argument(
        "--floor-runs", type=int, default=3, help="bare server starts for the floor (default 3)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the hubs' and jobs' logs")
    parser.add_argument(
        "--json", type=Path, default=harness.RESULTS / "workshop_burst.json", help="output file"
    )
    args = parser.parse_args()
    if not 1 <= args.students <= 99:
        parser.error("--students must be from 1 to 99")
    if args.floor_runs < 1:
        parser.error("--floor-runs must be at least 1")
    result = run(args.students, args.timeout, args.floor_runs, args.keep)
    harness.publish(report(result), result, args.json)


if __name__ == "__main__":
    main()
