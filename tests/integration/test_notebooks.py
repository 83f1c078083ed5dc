"""The onboarding notebooks run top to bottom inside real sessions, as a student runs them.

One hub, three spawns of alice: a Slurm A100 session (1 fake GPU, project demo) that runs
the onboarding notebooks, a Slurm CPU session (the second spawn: a student's edit
survives), and a local session that runs them again without Slurm or project. Each
notebook is executed with nbclient *inside* the session's kernel, so its own kernel
inherits the session's environment (`NAIC_SESSION`, `SLURM_JOB_ID`, `JUPYTERHUB_*`);
nothing is written back to the notebook.
"""

from __future__ import annotations

import asyncio
import json
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.hub_process import Hub, start_hub, stop_hub
from tests.integration.helpers import squeue, user_token, wait_ready
from tests.kernel import run_cell

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
MATERIAL = REPO / "notebooks"
NOTEBOOKS = (
    "00-start-here",
    "01-storage-and-data",
    "02-compute-and-gpus",
    "03-scale-out-with-dask",
    "04-from-notebook-to-batch-job",
    "05-data-in-and-out",
)
SHIPPED = sorted(p.name for p in MATERIAL.iterdir() if p.is_file() and not p.name.startswith("."))
USER = "alice"
A100 = {"site": "testcluster", "resource": "a100", "gpus": 1, "hours": 0.5, "project": "demo"}
CPU = {"site": "testcluster", "resource": "cpu", "hours": 0.5}
LOCAL = {"site": "local", "resource": "cpu-small", "hours": 0.5}
STUDENT_NOTE = "My own notes: ask Ola about the GPU quota."
MARK = "NOTEBOOK-SUMMARY "

# Runs in the session's kernel: executes one notebook from the home in a fresh kernel.
RUN_NOTEBOOK = """
import json, os
from pathlib import Path
import nbclient, nbformat

home = Path.home()
book = nbformat.read(home / (NAME + ".ipynb"), as_version=4)
client = nbclient.NotebookClient(
    book, kernel_name="python3", timeout=TIMEOUT, allow_errors=True,
    resources={"metadata": {"path": str(home)}},
)
failure = None
try:
    await client.async_execute()
except Exception as exc:
    failure = repr(exc)
cells = []
for cell in book.cells:
    if cell.cell_type != "code":
        continue
    text, errors = [], []
    for out in cell.get("outputs", []):
        if out.output_type == "stream" and out.name == "stdout":
            text.append(out.text)
        elif out.output_type == "error":
            errors.append(f"{out.ename}: {out.evalue}")
    cells.append({"text": "".join(text), "errors": errors})
summary = {"failure": failure, "job_id": os.environ.get("SLURM_JOB_ID"), "home": str(home),
           "cells": cells}
print(MARK + json.dumps(summary), flush=True)
"""


def alice_home() -> Path:
    return Path(pwd.getpwnam(USER).pw_dir)


def forget_material(home: Path) -> None:
    """Make alice's home look like a new user's: no onboarding material, nothing ticked."""
    for name in SHIPPED:
        (home / name).unlink(missing_ok=True)
    (home / ".naic" / "onboarding.json").unlink(missing_ok=True)
    shutil.rmtree(home / "naic-sample-data", ignore_errors=True)


def copied(home: Path) -> dict[str, bool]:
    """Which shipped files are in `home`, identical to the repository's, owned by its owner."""
    owner = home.stat().st_uid
    return {
        name: (home / name).is_file()
        and (home / name).read_bytes() == (MATERIAL / name).read_bytes()
        and (home / name).stat().st_uid == owner
        for name in SHIPPED
    }


def start_session(api: httpx.Client, options: dict) -> None:
    resp = api.post(f"/users/{USER}/server", json={"user_options": options})
    assert resp.status_code in (201, 202), resp.text
    wait_ready(api, USER)


def stop_session(api: httpx.Client) -> None:
    assert api.delete(f"/users/{USER}/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while api.get(f"/users/{USER}").json()["servers"]:
        assert time.monotonic() < deadline, "the session did not stop"
        time.sleep(0.5)


def run_notebook(hub: Hub, token: str, name: str, timeout_s: float = 240) -> dict[str, Any]:
    code = (
        RUN_NOTEBOOK.replace("NAME", json.dumps(name))
        .replace("TIMEOUT", str(int(timeout_s)))
        .replace("MARK", json.dumps(MARK))
    )
    out = asyncio.run(run_cell(hub.url + f"user/{USER}/", token, code, timeout_s=timeout_s + 30))
    lines = [line for line in out.splitlines() if line.startswith(MARK)]
    assert lines, f"{name} printed no summary:\n{out}"
    summary = json.loads(lines[-1][len(MARK) :])
    summary["text"] = "".join(cell["text"] for cell in summary["cells"])
    return summary


def edit_as_alice(path: Path) -> None:
    """What a student does in JupyterLab: add a cell of their own and save."""
    code = (
        "import sys, nbformat\n"
        "book = nbformat.read(sys.argv[1], as_version=4)\n"
        "book.cells.append(nbformat.v4.new_markdown_cell(sys.argv[2]))\n"
        "nbformat.write(book, sys.argv[1])\n"
    )
    subprocess.run(
        ["runuser", "-u", USER, "--", sys.executable, "-c", code, str(path), STUDENT_NOTE],
        check=True,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(slurm_cluster) -> Iterator[dict[str, Any]]:
    """Every session of this module, run once; the tests below check what they showed."""
    base = Path(tempfile.mkdtemp(prefix="naic-test-notebooks-", dir="/var/tmp"))
    base.chmod(0o755)  # user accounts must reach their local homes inside it
    accounts_before = {p.pw_name for p in pwd.getpwall()}
    cat = yaml.safe_load((REPO / "examples" / "catalogue-testcluster.yaml").read_text())
    cat["environments"]["python"]["venv"] = sys.prefix
    (base / "catalogue.yaml").write_text(yaml.safe_dump(cat))
    home = alice_home()
    forget_material(home)
    hub = start_hub(base / "data", "--catalogue", str(base / "catalogue.yaml"))
    result: dict[str, Any] = {}
    try:
        token = user_token(hub, USER)
        api = httpx.Client(
            base_url=hub.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=30
        )

        start_session(api, A100)  # alice's first spawn
        result["slurm_copied"] = copied(home)
        result["slurm"] = {name: run_notebook(hub, token, name) for name in NOTEBOOKS}
        job_id = result["slurm"]["03-scale-out-with-dask"]["job_id"]
        result["dask_jobs_left"] = squeue(
            "--states=PENDING,RUNNING", f"--user={USER}", f"--name=naic-dask-{job_id}"
        )
        result["onboarding"] = json.loads((home / ".naic" / "onboarding.json").read_text())
        stop_session(api)

        edit_as_alice(home / "00-start-here.ipynb")
        start_session(api, CPU)  # the second spawn copies again, never over her edit
        result["edited"] = (home / "00-start-here.ipynb").read_text()
        stop_session(api)

        start_session(api, LOCAL)
        result["local_home"] = base / "data" / "users" / USER
        result["local_account"] = pwd.getpwuid(result["local_home"].stat().st_uid).pw_name
        result["local_copied"] = copied(result["local_home"])
        result["local"] = {name: run_notebook(hub, token, name) for name in NOTEBOOKS}
        stop_session(api)
        yield result
    finally:
        stop_hub(hub)
        forget_material(home)
        for p in pwd.getpwall():
            if p.pw_name.startswith("naic-") and p.pw_name not in accounts_before:
                subprocess.run(["userdel", p.pw_name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def ran_cleanly(summary: dict[str, Any]) -> None:
    errors = [e for cell in summary["cells"] for e in cell["errors"]]
    assert summary["failure"] is None and not errors, (summary["failure"], errors)


def helped(text: str, where: str) -> None:
    """The "Where to get help" cell: the site's links (the test cluster's catalogue has
    them; its local site none) and the hub's help page."""
    assert "Where to get help:\n" in text
    if where == "slurm":
        assert "- Documentation for Test cluster (Slurm on this machine): " in text
        assert "https://docs.example.org/testcluster\n" in text
        assert "- Support, to report a problem: mailto:support@example.org\n" in text
    else:
        assert "- Documentation: this site lists no link;" in text
        assert "- Support: this site lists no address;" in text
    assert re.search(r"^- The hub's help page \(.*\): \S*/hub/naic/help$", text, re.M), text


def dask_against_numpy(text: str) -> None:
    """03's "when is Dask worth it": both timed on notebook 01's sample, same result."""
    assert re.search(r"^Data: \S+/naic-sample-data/measurements\.npy \(32 MB\)$", text, re.M)
    assert re.search(r"^NumPy \(all in memory at once\): \d+\.\d\d s$", text, re.M), text
    assert re.search(
        r"^dask\.array \(10 chunks, threads in this session\): \d+\.\d\d s$", text, re.M
    )
    assert "Same result both ways: True" in text
    assert re.search(r"^(NumPy|dask\.array) won here, [\d.]+ times faster", text, re.M), text
    assert "Rule of thumb: NumPy while the data fits in memory" in text


def test_the_notebooks_are_in_a_new_home_at_first_spawn(runs: dict[str, Any]) -> None:
    assert "00-start-here.ipynb" in SHIPPED and "README.md" in SHIPPED
    assert all(runs["slurm_copied"].values()), runs["slurm_copied"]
    assert all(runs["local_copied"].values()), runs["local_copied"]


def test_a_students_edit_survives_the_next_spawn(runs: dict[str, Any]) -> None:
    assert STUDENT_NOTE in runs["edited"]
    assert "Start here" in runs["edited"]


@pytest.mark.parametrize("where", ["slurm", "local"])
def test_start_here_greets_the_student_with_their_projects(runs: dict, where: str) -> None:
    nb = runs[where]["00-start-here"]
    ran_cleanly(nb)
    text = nb["text"]
    assert "You are alice on naic-hub" in text
    assert re.search(r"Project demo \(Demo project\): [\d.]+ of 100 GPU-hours used", text), text
    assert "Time left:" in text and "Stop My Server" in text
    assert "Home: " in text and "Scratch: /var/tmp/naic-scratch/alice" in text
    home = "/home/alice" if where == "slurm" else str(runs["local_home"])
    assert f"This session's home folder (where these notebooks are): {home}\n" in text
    assert "Done: 00-start-here" in text
    if where == "slurm":
        assert "It charges project demo (Demo project)." in text
        assert "Resources: 1 × a100 GPU, 2 CPUs" in text
        # Slurm's fake GPUs are real to the scheduler, unknown to NVML: say so, do not fail.
        assert "asked for 1 GPU(s), but the GPU driver (NVML) cannot see them" in text
    else:
        assert "It charges no project." in text
        assert "This session has no GPU, so the GPU check is skipped" in text


@pytest.mark.parametrize("where", ["slurm", "local"])
def test_storage_and_data_reads_the_same_data_both_ways(runs: dict, where: str) -> None:
    nb = runs[where]["01-storage-and-data"]
    ran_cleanly(nb)
    text = nb["text"]
    # Slurm sessions use the cluster account's home; local ones the home the hub made.
    home = "/home/alice" if where == "slurm" else "/data/users/alice"
    assert re.search(rf"^- home: \S*{home} ", text, re.M), text
    assert "- scratch: /var/tmp/naic-scratch/alice" in text
    assert re.search(r"^home: .*GB", text, re.M) and re.search(r"^scratch: ", text, re.M), text
    whole = re.search(r"Checksum \(all at once\): ([0-9a-f]{16})", text)
    chunks = re.search(r"Checksum \(memory-mapped, in chunks\): ([0-9a-f]{16})", text)
    assert whole and chunks, text
    assert whole.group(1) == chunks.group(1)
    assert "Same data both ways: True" in text


@pytest.mark.parametrize("where", ["slurm", "local"])
def test_compute_and_gpus_says_honestly_there_is_no_usable_gpu(runs: dict, where: str) -> None:
    nb = runs[where]["02-compute-and-gpus"]
    ran_cleanly(nb)
    text = nb["text"]
    assert "NVML sees no GPU in this session." in text
    assert "so the GPU part is skipped" in text
    assert "Computed on: CPU (NumPy)" in text
    assert "Result check (sum of all entries): True" in text
    assert "Kernels you can choose (Kernel > Change kernel):" in text
    # No PyTorch on the test cluster: one sentence says so and how to get it, once.
    no_torch = "PyTorch is not installed in this kernel's environment, so the PyTorch examples"
    assert text.count(no_torch) == 1, text
    assert "`naic-env create mytorch --install torch`" in text
    assert re.search(
        r"DataLoader\(dataset, batch_size=\.\.\., num_workers=\d+, pin_memory=False", text
    )
    assert "No GPU that PyTorch and NVML can both see here" in text
    # The out-of-memory helper, shown with a simulated memory error on the CPU.
    assert (
        "batch 256 ran out of memory; trying 128\n"
        "batch 128 ran out of memory; trying 64\n"
        "ran with batch 64\n"
    ) in text, text
    helped(text, where)
    assert "Done: 02-compute-and-gpus" in text
    if where == "slurm":
        assert f"This session is Slurm job {nb['job_id']}" in text
        assert re.search(r"CUDA_VISIBLE_DEVICES: \d+\n", text), text
        assert "PyTorch is not installed" in text  # the session asked for a GPU
    else:
        assert "not a Slurm job" in text
        assert "this session has no GPU" in text


def test_dask_scales_out_on_slurm_and_leaves_no_workers(runs: dict[str, Any]) -> None:
    nb = runs["slurm"]["03-scale-out-with-dask"]
    ran_cleanly(nb)
    assert re.search(r"^2 of 2 workers are up \(after \d+ s\)\.$", nb["text"], re.M), nb["text"]
    assert "Sum on the workers: 499999500000" in nb["text"]
    assert "Cluster closed" in nb["text"]
    dask_against_numpy(nb["text"])
    helped(nb["text"], "slurm")
    assert runs["dask_jobs_left"] == ""
    assert runs["onboarding"]["done"] == dict.fromkeys(NOTEBOOKS, True)


def test_dask_on_a_local_session_explains_and_skips(runs: dict[str, Any]) -> None:
    nb = runs["local"]["03-scale-out-with-dask"]
    ran_cleanly(nb)
    assert "Dask on Slurm needs a Slurm session" in nb["text"]
    assert "workers are up" not in nb["text"]
    dask_against_numpy(nb["text"])
    helped(nb["text"], "local")
    assert "Done: 03-scale-out-with-dask" in nb["text"]


@pytest.mark.parametrize("where", ["slurm", "local"])
def test_data_in_and_out_fills_in_the_students_own_names_and_paths(runs: dict, where: str) -> None:
    nb = runs[where]["05-data-in-and-out"]
    ran_cleanly(nb)
    text = nb["text"]
    account = USER if where == "slurm" else runs["local_account"]
    home = "/home/alice" if where == "slurm" else str(runs["local_home"])
    scratch = "/var/tmp/naic-scratch/alice"
    said = re.search(
        rf"^You are {account}; the commands below copy to {account}@(\S+)\.$", text, re.M
    )
    assert said, text
    remote = f"{account}@{said.group(1)}"
    host = "the site's name" if where == "slurm" else "this machine's name"
    assert re.search(rf"^The host is (the hub's public address|{host})", text, re.M), text
    # Data into scratch, results back from the home: the session's real paths.
    assert f"  scp results.csv {remote}:{scratch}/\n" in text, text
    assert f"  rsync -avP mydata/ {remote}:{scratch}/mydata/\n" in text
    assert f"  rsync -avP {remote}:{home}/results/ ./results/\n" in text
    assert "Scratch deletes files not used for 21 days" in text
    assert "rclone is not installed in this session" in text or "rclone is installed here" in text
    assert f"  naic-data put {scratch}/results mys3:my-bucket/results\n" in text
    # The site's datasets: listed as the user may see them, one staged to scratch there.
    assert re.search(r"^- iris: Iris flowers \(150 rows\) \(Test cluster .*; yours to read\)$",
                     text, re.M), text  # fmt: skip
    if where == "slurm":  # alice is in project demo
        assert re.search(r"^- imagenet-mini: .*; yours to read\)$", text, re.M), text
        staged = f"{scratch}/datasets/iris"
        assert f"Your copy of iris: {staged} (in code: staged_path('iris') = {staged})" in text
    else:
        assert "None of them lives at this session's site; they are at Test cluster" in text
    # The caches, measured, and how to move them to scratch.
    assert re.search(
        r"^pip's downloads \(PIP_CACHE_DIR\): (none yet|[\d.]+ k?[MGT]?B) in /", text, re.M
    )
    assert re.search(r"^Hugging Face \(HF_HOME\): ", text, re.M), text
    assert re.search(
        r"^Caches take [\d.]+ k?[MGT]?B in all; your home's quota is 20 GB\.$", text, re.M
    )
    assert f"  export HF_HOME={scratch}/cache/huggingface\n" in text
    assert f"  export TORCH_HOME={scratch}/cache/torch\n" in text
    assert "  naic-env create mytools --install seaborn\n" in text
    assert "Your environments now (naic-env list):" in text
    helped(text, where)
    assert "Done: 05-data-in-and-out. You have finished the onboarding notebooks." in text


@pytest.mark.parametrize("where", ["slurm", "local"])
def test_notebook_to_batch_job_resumes_and_shows_the_jobs_script(runs: dict, where: str) -> None:
    """04 in a session: the checkpoint demo stops and resumes; the batch job's script on a
    Slurm site, the reason there is none on the local one (the job itself runs in
    test_batch_jobs)."""
    nb = runs[where]["04-from-notebook-to-batch-job"]
    ran_cleanly(nb)
    text = nb["text"]
    assert "Running in your interactive session" in text
    assert ("started fresh: no checkpoint yet\nstep 5/40: loss") in text, text
    assert "stopped after step 25, as a time limit would stop it\n" in text
    assert "resumed from step 25 (checkpoint 04-demo.npz)\n" in text
    assert "finished all 40 steps" in text
    assert re.search(r"^The real training runs in a batch job; its checkpoint is ", text, re.M)
    if where == "slurm":
        assert "#SBATCH --job-name=naic-batch\n" in text, text
        assert (
            "exec python -m naic.extensions.batch run 04-from-notebook-to-batch-job.ipynb" in text
        )
        assert (
            "The executed notebook will be ~/04-from-notebook-to-batch-job.batch-JOBID.ipynb"
            in text
        )
    else:
        assert "Batch jobs run on Slurm sites; this session runs on" in text, text
    assert "Done: 04-from-notebook-to-batch-job" in text
