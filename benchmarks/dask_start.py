"""A 2-worker Dask cluster from a session vs two plain Slurm job starts, on the test cluster.

    .venv/bin/python -m benchmarks.dask_start [--runs 3] [--warmup 1] [--keep]

All is timed inside a session: a Slurm job of alice on partition `normal` (1 CPU, 2 GB, 2 h)
with the environment the Dask integration tests give a session (`NAIC_SESSION` with this
venv, `HOME`, `JUPYTERHUB_SERVICE_PREFIX`) and its real `SLURM_JOB_ID`, where this file runs
as the driver (`--in-session`). dask, distributed and dask_jobqueue are imported before any
clock, as by a notebook's earlier cell (that import is timed once, apart). Per round, with
`time.perf_counter` in the driver:

- `dask slurm_cluster`: from calling `naic.extensions.dask.slurm_cluster()` through
  `cluster.scale(2)`, `Client(cluster)`, `client.wait_for_workers(2)` (distributed polls
  every 0.1 s) until `client.run(os.getpid)` has answered from both workers (default 1 core,
  2 GB, 1 h each). Also kept: the seconds until `slurm_cluster()` returned.
- `plain job starts` (the baseline): two `sbatch --wrap 'touch F && exec sleep 300'` asking
  what a worker job asks (`-p normal -n 1 --cpus-per-task=1 --mem=2G -t 01:00:00`, checked
  against dask-jobqueue's `#SBATCH` lines), one after the other as `scale(2)` submits, until
  both files exist (checked every 0.05 s): each job's first command has run, later than
  squeue's `RUNNING`. No Python in them: the difference is what a Dask worker costs beyond
  a job start (interpreter, imports, nanny and worker process, TLS, registering).

The two alternate which goes first; after each, its jobs are cancelled and gone from squeue.
Before each, the driver waits 2 × Slurm's `batch_sched_delay` (3 s), so that no scheduling
pass of the one before delays the next. One warm-up round is not counted. Target (#21):
dask ≤ 1.5 × plain. Results: a table and benchmarks/results/dask_start.json. Run as root.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

USER = "alice"
PARTITION = "normal"
#: What slurm_cluster() asks per worker by default, as dask-jobqueue's script header says it.
WORKER_REQUEST = ["-p", PARTITION, "-n", "1", "--cpus-per-task=1", "--mem=2G", "-t", "01:00:00"]
#: 2 h, so that the workers' walltime (capped to the session's end) is their default 1 h.
SESSION_REQUEST = ["-p", PARTITION, "-c", "1", "--mem=2G", "-t", "02:00:00"]
SETUPS = ("dask slurm_cluster", "plain job starts")
WORKERS = 2
TIMEOUT_S = 120
TARGET = 1.5  # issue #21: usable within 1.5 × two job starts
LIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"}


def sh(*argv: str, **kw) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw).stdout


def squeue_live(name: str) -> list[str]:
    """Ids of this user's jobs of that name that Slurm still runs or holds."""
    out = sh("squeue", "-h", "--states=all", f"--user={USER}", f"--name={name}", "-o", "%i %T")
    return [line.split()[0] for line in out.splitlines() if line.split()[-1] in LIVE]


def wait_gone(name: str, timeout_s: float = 60) -> None:
    """Wait until no job of that name is live; cancel what still is, then."""
    deadline = time.monotonic() + timeout_s
    while squeue_live(name) and time.monotonic() < deadline:
        time.sleep(0.2)
    if squeue_live(name):
        sh("scancel", f"--user={USER}", f"--name={name}")


# --- in the session: run by the session's job, as alice ---------------------------------


def plain_starts(folder: Path, name: str) -> float:
    """Seconds from the first sbatch until both jobs have touched their file."""
    files = [folder / f"started-{i}" for i in range(WORKERS)]
    for f in files:
        f.unlink(missing_ok=True)
    t0 = time.perf_counter()
    sbatch = ("sbatch", "-J", name, "-o", "/dev/null", *WORKER_REQUEST, "--wrap")
    for f in files:
        sh(*sbatch, f"touch {f} && exec sleep 300", check=True)
    while not all(f.exists() for f in files):
        if time.perf_counter() - t0 > TIMEOUT_S:
            raise RuntimeError(f"the plain jobs did not start within {TIMEOUT_S} s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    sh("scancel", f"--user={USER}", f"--name={name}", check=True)
    wait_gone(name)
    return elapsed


def same_request(script: str) -> None:
    """The plain jobs must ask what a worker job asks (its name and logs aside)."""
    asked = [line.split(None, 1)[1] for line in script.splitlines() if line[:7] == "#SBATCH"]
    asked = [a for a in asked if a[:2] not in ("-J", "-e", "-o")]
    if " ".join(asked) != " ".join(WORKER_REQUEST):
        raise RuntimeError(f"a worker job asks {asked}, the plain jobs {WORKER_REQUEST}")


def dask_start(name: str, show_script: bool) -> tuple[float, float]:
    """Seconds from `slurm_cluster()` until both workers answered `client.run`, and until
    `slurm_cluster()` returned."""
    from distributed import Client

    from naic.extensions.dask import slurm_cluster

    t0 = time.perf_counter()
    cluster = slurm_cluster()
    built = time.perf_counter() - t0
    cluster.scale(WORKERS)
    client = Client(cluster)
    client.wait_for_workers(WORKERS, timeout=TIMEOUT_S)
    pids = client.run(os.getpid)
    elapsed = time.perf_counter() - t0
    if len(set(pids.values())) != WORKERS:
        raise RuntimeError(f"client.run answered from {pids}, not {WORKERS} workers")
    if show_script:
        print(cluster.job_script(), flush=True)
        same_request(cluster.job_script())
    client.close()
    cluster.close()
    wait_gone(name)
    return elapsed, built


def in_session(out: Path, rounds: int, warmup: int) -> None:
    t0 = time.perf_counter()
    import dask_jobqueue  # noqa: F401
    import distributed  # noqa: F401

    import naic.extensions.dask  # noqa: F401

    imports = time.perf_counter() - t0
    job = os.environ["SLURM_JOB_ID"]
    # slurmctld starts batch jobs in a pass at most once per batch_sched_delay, and the jobs
    # that just ended trigger one more pass, up to one delay later.
    found = re.search(r"batch_sched_delay=(\d+)", sh("scontrol", "show", "config"))
    settle_s = 2 * float(found.group(1) if found else 3)
    samples: dict[str, list[float]] = {s: [] for s in (*SETUPS, "slurm_cluster() returned")}
    for round_no in range(rounds):
        counted = round_no >= warmup
        for setup in SETUPS if round_no % 2 else SETUPS[::-1]:
            time.sleep(settle_s)  # no scheduling pass of the one before delays this one
            if setup == "plain job starts":
                seconds = plain_starts(out.parent, f"naic-bench-plain-{job}")
            else:
                seconds, built = dask_start(f"naic-dask-{job}", show_script=round_no == 0)
                if counted:
                    samples["slurm_cluster() returned"].append(built)
            if counted:
                samples[setup].append(seconds)
            label = "" if counted else " (warm-up, not counted)"
            print(f"round {round_no + 1 - warmup}: {setup}: {seconds:.2f} s{label}", flush=True)
    out.write_text(json.dumps({"import_s": imports, "settle_s": settle_s, "samples_s": samples}))


# --- as root: the session job and the report --------------------------------------------


def session_env(venv_bin: Path) -> dict[str, str]:
    """What the Dask integration tests give a session; the job adds its own SLURM_* ones."""
    session = {"site": "testcluster", "partition": PARTITION, "slurm_account": None}
    session |= {"environment": "python", "activate": {"venv": sys.prefix, "modules": []}}
    # No ends_at: slurm_cluster() asks squeue for the session job's end.
    session |= {"project": None, "cpus": 1, "memory_gb": 2}
    return {
        "PATH": f"{venv_bin}:/usr/bin:/bin",
        "HOME": f"/home/{USER}",
        "USER": USER,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "NAIC_SESSION": json.dumps(session),
        "JUPYTERHUB_SERVICE_PREFIX": f"/user/{USER}/",
        # Dask settings to compare (DASK_DISTRIBUTED__…): the session's, and its workers'.
        **{k: v for k, v in os.environ.items() if k.startswith("DASK_")},
    }


def run(runs: int, warmup: int, keep: bool) -> dict:
    from benchmarks import harness

    harness.check_host()
    harness.wait_controller()
    with harness.workdir(keep) as base:
        folder = base / "session"
        folder.mkdir()
        account = pwd.getpwnam(USER)
        os.chown(folder, account.pw_uid, account.pw_gid)
        out, log = folder / "result.json", folder / "session.log"
        driver = f"exec {sys.executable} {__file__} --in-session {out} --runs {runs}"
        sbatch = ["sbatch", "--parsable", f"--uid={USER}", f"--gid={USER}", *SESSION_REQUEST]
        sbatch += ["-J", "naic-bench-dask-session", "-o", str(log), "-D", str(folder)]
        env = session_env(harness.VENV_BIN)
        job = sh(*sbatch, "--wrap", f"{driver} --warmup {warmup}", env=env, check=True).strip()
        shown = 0
        try:
            deadline = time.monotonic() + 60 + (runs + warmup) * 2 * TIMEOUT_S
            while harness.job_states([job]).get(job) in LIVE and time.monotonic() < deadline:
                text = log.read_text() if log.exists() else ""
                print(text[shown:], end="", flush=True)
                shown = len(text)
                time.sleep(1)
            print(log.read_text()[shown:] if log.exists() else "", end="")
            if not out.exists():
                raise RuntimeError(f"the session job {job} wrote no result (see above)")
            measured = json.loads(out.read_text())
        finally:  # whatever a failed or interrupted run left behind
            harness.wait_jobs_gone([job], timeout_s=0)
            for name in (f"naic-dask-{job}", f"naic-bench-plain-{job}"):
                wait_gone(name, timeout_s=0)
            home = Path(f"/home/{USER}/.naic")
            for path in (home / "dask-logs").glob(f"naic-dask-{job}-*"):
                shutil.move(path, folder / path.name)  # kept with --keep, else removed
            for path in (home / "dask").glob(f"{job}-*"):
                shutil.rmtree(path)

    samples = measured["samples_s"]
    stats = {s: harness.summary(v) for s, v in samples.items()}
    dask, plain = stats[SETUPS[0]]["median_s"], stats[SETUPS[1]]["median_s"]
    return {
        "benchmark": "dask_start",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": f"{os.uname().nodename}, {os.cpu_count()} CPUs",
        "what": "seconds, in a session job: slurm_cluster() → 2 workers answer client.run; "
        "baseline: 2 sbatch → both jobs ran their first command",
        "partition": PARTITION,
        "workers": WORKERS,
        "per_worker": "1 core, 2 GB, 1 h",
        "runs": runs,
        "warmup": warmup,
        "settle_s": measured["settle_s"],
        "import_s": round(measured["import_s"], 3),
        "setups": stats,
        "samples_s": {s: [round(x, 3) for x in v] for s, v in samples.items()},
        "ratio_dask_over_plain": round(dask / plain, 3),
        "dask_minus_plain_s": round(dask - plain, 3),
        "target_ratio": TARGET,
    }


def report(result: dict) -> str:
    from benchmarks import harness

    rows = [
        [setup, s["n"], *(f"{s[k]:.2f}" for k in ("median_s", "min_s", "max_s"))]
        for setup, s in result["setups"].items()
    ]
    for row in rows:
        row.append(", ".join(f"{x:.2f}" for x in result["samples_s"][row[0]]))
    text = harness.table(["setup", "n", "median s", "min s", "max s", "runs s"], rows)
    ratio = result["ratio_dask_over_plain"]
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    return (
        f"{text}\n\ndask / plain job starts median: {ratio:.2f} (target ≤ {TARGET}: {verdict});"
        f" dask − plain: {result['dask_minus_plain_s']:.2f} s; importing dask, distributed and"
        f" dask_jobqueue (once, not in the times): {result['import_s']:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds first")
    parser.add_argument("--keep", action="store_true", help="keep the session's, workers' logs")
    parser.add_argument("--json", type=Path, help="output file (default results/dask_start.json)")
    parser.add_argument("--in-session", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.in_session:  # the driver, in the session job
        in_session(args.in_session, args.warmup + args.runs, args.warmup)
        return
    from benchmarks import harness

    result = run(args.runs, args.warmup, args.keep)
    harness.publish(report(result), result, args.json or harness.RESULTS / "dask_start.json")


if __name__ == "__main__":
    main()
