"""Pure parts of a workshop's environment, its budget check and `naic workshop check`."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from naic.hub.workshops import checks
from naic.hub.workshops.budget import budget_fits, budget_refusal, seats_sentence
from naic.hub.workshops.rules import WorkshopSpec, _slurm_time, catalogue_problems
from naic.spawners.request import RequestError, UserFacts, WorkshopPreset, parse_request
from tests.unit.test_workshops import SAGA4, spec


def test_the_budget_sentence_gives_the_numbers() -> None:
    assert seats_sentence(40, 1, 6) == "40 seats × 1 GPU × 6 h = 240 GPU-hours"
    said = budget_refusal(seats=40, gpus=1, hours=6, project="demo", left=100, period="month")
    assert said == (
        "40 seats × 1 GPU × 6 h = 240 GPU-hours, but project demo has 100 left this month; "
        "lower the seats, GPUs or hours, or ask the project's PI for more."
    )
    never = budget_refusal(seats=2, gpus=2, hours=1.5, project="p", left=-3, period="never")
    assert never.startswith("2 seats × 2 GPUs × 1.5 h = 6 GPU-hours, but project p has 0 left;")


@pytest.mark.parametrize(
    ("seats", "gpus", "project", "left"),
    [(10, 1, "demo", 10), (10, 0, "demo", 0), (10, 1, None, 0), (10, 1, "demo", None)],
)
def test_what_fits_is_not_refused(seats, gpus, project, left) -> None:
    args = dict(seats=seats, gpus=gpus, hours=1, project=project, left=left, period="year")
    assert budget_refusal(**args) is None
    assert budget_fits(**args)


def test_the_failing_cell_is_named_with_its_first_line_and_error() -> None:
    book = {
        "cells": [
            {"cell_type": "markdown", "source": "# Title"},
            {"cell_type": "code", "source": "x = 1", "outputs": []},
            {
                "cell_type": "code",
                "source": ["\n", "raise ValueError('no')\n", "print(2)"],
                "outputs": [{"output_type": "error", "ename": "ValueError", "evalue": "no"}],
            },
        ]
    }
    assert checks.failing_cell(json.dumps(book)) == (
        "cell 3 (index 2) `raise ValueError('no')`: ValueError: no"
    )
    assert checks.failing_cell(json.dumps({"cells": []})) is None
    assert checks.failing_cell("not json") is None


def test_the_jobs_log_says_which_notebooks_ran() -> None:
    log = (
        "naic-check: material /x copied\nnaic-check: notebook a.ipynb\nnaic-batch: cell 1/2 "
        "done\nnaic-check: PASS a.ipynb\nnaic-check: notebook b c.ipynb\nnaic-check: FAIL b "
        "c.ipynb\n"
    )
    assert checks.notebook_results(log) == [("a.ipynb", True), ("b c.ipynb", False)]
    assert checks.progress_lines(log) == [
        "naic-check: notebook a.ipynb",
        "naic-batch: cell 1/2 done",
        "naic-check: notebook b c.ipynb",
    ]
    assert not checks.material_failed(log)
    assert checks.material_failed("naic-check: material FAILED\n")


def test_the_job_command_passes_the_material_as_an_argument() -> None:
    argv = checks.job_command("https://example.org/c.git", "ml-intro")
    assert argv[:2] == ["bash", "-c"] and "\n" not in argv[2]
    assert argv[3:] == ["naic-check", "https://example.org/c.git", ".naic-check/ml-intro"]


def test_a_reservation_that_differs_from_the_workshops_is_described() -> None:
    start = datetime(2027, 1, 20, 8, tzinfo=UTC)
    end = start + timedelta(hours=7)
    shown = (
        f"ReservationName=naic-ws-x StartTime={_slurm_time(start)} "
        f"EndTime={_slurm_time(end)} Duration=07:00:00 Nodes=vm NodeCnt=1 CoreCnt=64 "
        "PartitionName=accel Flags= Users=(null) Accounts=demo State=INACTIVE"
    )
    good = dict(start=start, end=end, nodes=1, cores=0, accounts=("demo",))
    assert checks.reservation_problems(shown, **good) == []
    bad = checks.reservation_problems(shown, **{**good, "nodes": 2, "accounts": ("other",)})
    assert bad == ["it holds 1 nodes, not 2", "it is for the accounts ['demo'], not ['other']"]
    moved = checks.reservation_problems(shown, **{**good, "end": end + timedelta(hours=1)})
    assert len(moved) == 1 and moved[0].startswith("its EndTime is")
    assert checks.begin_line(start) == f"#SBATCH --begin={_slurm_time(start)}"


def test_a_workshops_environment_must_be_one_the_resource_offers() -> None:
    offered = SAGA4.environments_for("saga", "a100")
    assert catalogue_problems(spec(environment=offered[-1]), SAGA4) == []
    assert catalogue_problems(spec(environment="nope"), SAGA4) == [
        f"`environment` 'nope' is not offered on {SAGA4.sites['saga'].resources['a100'].title}; "
        f"choose one of: {', '.join(offered)}."
    ]
    assert spec().environment is None
    with pytest.raises(ValueError, match="environment"):
        WorkshopSpec.model_validate({**spec().model_dump(), "environment": "Bad Name!"})


def test_the_preset_session_runs_the_workshops_environment() -> None:
    offered = SAGA4.environments_for("saga", "a100")
    seat = WorkshopPreset(
        name="ml-intro", title="ML", site="saga", resource="a100", gpus=1, hours=3.0,
        project="nn1234k", reservation=None, environment=offered[-1],
    )  # fmt: skip
    facts = UserFacts(name="kari", workshops=(seat,))
    assert parse_request({"workshop": "ml-intro"}, SAGA4, facts).environment == offered[-1]
    default = UserFacts(name="kari", workshops=(replace(seat, environment=None),))
    assert parse_request({"workshop": "ml-intro"}, SAGA4, default).environment == offered[0]
    gone = UserFacts(name="kari", workshops=(replace(seat, environment="gone"),))
    with pytest.raises(RequestError, match="no longer offered"):
        parse_request({"workshop": "ml-intro"}, SAGA4, gone)
