"""A session's notebook as a batch job: the pure parts (naic.spawners.batch), byte for byte."""

from __future__ import annotations

import pytest

from naic.extensions.batch import output_path
from naic.spawners import batch
from naic.spawners.request import RequestError, SessionRequest, parse_request
from tests.unit.examples import ALICE, TC

SESSION = SessionRequest(
    site="testcluster",
    resource="a100",
    gpus=1,
    cpus=2,
    memory_gb=4,
    hours=2.0,
    environment="python",
    project="demo",
)

SCRIPT = """#!/bin/bash
#SBATCH --job-name=naic-batch
#SBATCH --partition=accel
#SBATCH --time=1:30:00
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --gres=gpu:a100:2
#SBATCH --account=demo
#SBATCH --chdir=/home/alice
#SBATCH --output=/home/alice/.naic-batch-%j.log
#SBATCH --export=NONE

export NAIC_BATCH=1
export SLURM_EXPORT_ENV=ALL
fail() { echo "naic-hub: $*" >&2; exit 1; }
[ -f /opt/naic/envs/base/bin/activate ] || fail 'the environment /opt/naic/envs/base is missing on this node; tell the hub operators'
source /opt/naic/envs/base/bin/activate
set -euo pipefail
echo "naic-hub: session starting on $(hostname) at $(date -Is)"
exec python -m naic.extensions.batch run 'My thesis/train model.ipynb'
"""  # noqa: E501 - the script's own line


def test_the_script_is_the_sessions_with_the_changes_and_the_runner() -> None:
    req = parse_request(batch.derive_request(SESSION, 1.5, 2), TC, ALICE)
    text = batch.render(req, TC, home="/home/alice", notebook="My thesis/train model.ipynb")
    assert text == SCRIPT


def test_unchanged_hours_and_gpus_are_the_sessions() -> None:
    raw = batch.derive_request(SESSION)
    assert parse_request(raw, TC, ALICE) == SESSION


@pytest.mark.parametrize(
    ("hours", "gpus", "field", "words"),
    [
        (100, None, "hours", '"hours" must be'),
        (None, 9, "gpus", '"gpus" must be'),
        ("2; rm -rf ~", None, "hours", '"hours" must be'),
        (None, -1, "gpus", '"gpus" must be'),
    ],
)
def test_hostile_hours_and_gpus_get_the_spawn_forms_sentence(hours, gpus, field, words) -> None:
    raw = batch.derive_request(SESSION, hours, gpus)
    with pytest.raises(RequestError) as err:
        parse_request(raw, TC, ALICE)
    assert err.value.field == field
    assert words in str(err.value) and "NVIDIA A100 (fake) at Test cluster" in str(err.value)


@pytest.mark.parametrize(
    "raw",
    ["/etc/shadow.ipynb", "../bob/secret.ipynb", "a/../../x.ipynb", "~bob/x.ipynb", "notes.txt"],
)
def test_only_notebooks_below_the_home(raw: str) -> None:
    with pytest.raises(RequestError) as err:
        batch.notebook_path(raw)
    assert err.value.field == "notebook"


def test_notebook_paths_are_normalised() -> None:
    assert batch.notebook_path(" work/./train.ipynb ") == "work/train.ipynb"
    with pytest.raises(RequestError, match="control characters"):
        batch.notebook_path("a\nb.ipynb")
    with pytest.raises(RequestError, match="Name the notebook"):
        batch.notebook_path(None)


def test_the_output_notebook_lies_next_to_it() -> None:
    assert output_path("work/train.ipynb", "42") == "work/train.batch-42.ipynb"
    assert batch.log_path("/home/alice", "42") == "/home/alice/.naic-batch-42.log"


@pytest.mark.parametrize(
    ("line", "state", "words"),
    [
        ("naic-batch|PENDING|0:0", "queued", "waiting in the queue"),
        ("naic-batch|RUNNING|0:0", "running", "running"),
        ("naic-batch|COMPLETED|0:0", "done", "done: every cell ran"),
        ("naic-batch|FAILED|1:0", "failed", "failed (exit code 1:0)"),
        ("naic-batch|TIMEOUT|0:15", "failed", "ended: time limit reached"),
        ("naic-batch|CANCELLED by 1001|0:15", "failed", "ended: cancelled"),
        ("naic-batch|OUT_OF_MEMORY|0:125", "failed", "ended: out of memory"),
    ],
)
def test_job_states_in_words(line: str, state: str, words: str) -> None:
    got = batch.state_from_sacct(line + "\n")
    assert got is not None and got.state == state and got.words.startswith(words)


def test_a_session_job_is_not_a_batch_job() -> None:
    assert batch.state_from_sacct("naic-alice|RUNNING|0:0\n") is None
    assert batch.state_from_sacct("") is None
