"""The start estimate: its sentences, and how Slurm's answers (faked here) become JSON."""

from __future__ import annotations

from datetime import datetime

import pytest

from naic.spawners.estimate import (
    SlurmRefused,
    SlurmUnreachable,
    estimate_slurm,
    slurm_answer,
    start_message,
)
from naic.spawners.request import parse_request
from tests.unit.examples import ALICE, TC

NOW = datetime(2026, 11, 27, 4, 0, 0)


@pytest.mark.parametrize(
    ("wait_s", "ahead", "message"),
    [
        (0, 0, "Starts now"),
        (59, 3, "Starts now"),  # Slurm plans it within the minute: queue length is moot
        (60, 0, "Expected start in about 1 min"),
        (25 * 60 + 10, 3, "Expected start in about 25 min, behind 3 jobs"),
        (25 * 60, 1, "Expected start in about 25 min, behind 1 job"),
        (59 * 60 + 29, 0, "Expected start in about 59 min"),
        (60 * 60, 0, "Expected start in about 1 h"),
        (83 * 60, 2, "Expected start in about 1 h 25 min, behind 2 jobs"),
        (2 * 3600 + 58 * 60, 0, "Expected start in about 3 h"),
        (47 * 3600, 12, "Expected start in about 47 h, behind 12 jobs"),
        (3 * 86400 + 3600, 0, "Expected start in about 3 days"),
    ],
)
def test_start_message(wait_s, ahead, message):
    assert start_message(wait_s, ahead) == message


def test_slurm_answer_in_the_past_is_now_and_times_carry_their_zone():
    answer = slurm_answer(datetime(2026, 11, 27, 3, 59, 0), NOW, 0)
    assert answer["wait_s"] == 0 and answer["message"] == "Starts now"
    assert datetime.fromisoformat(answer["start"]).utcoffset() is not None
    later = slurm_answer(datetime(2026, 11, 27, 4, 20, 0), NOW, 3)
    assert later["wait_s"] == 1200 and later["ahead"] == 3
    assert later["message"] == "Expected start in about 20 min, behind 3 jobs"


# --- estimate_slurm with a fake Slurm -------------------------------------------------------


class FakeSlurm:
    def __init__(self, sbatch=(0, "", ""), squeue=(0, "", "")):
        self.answers = {"sbatch": sbatch, "squeue": squeue}
        self.calls: list[tuple[list[str], str | None]] = []

    async def __call__(self, argv: list[str], stdin: str | None):
        self.calls.append((argv, stdin))
        return self.answers["sbatch" if "sbatch" in argv else "squeue"]


def a100(**options):
    raw = {"site": "testcluster", "resource": "a100", "gpus": 1, **options}
    return parse_request(raw, TC, ALICE)


async def estimate(fake: FakeSlurm, **kw):
    return await estimate_slurm(
        a100(), TC, user="alice", group="1001", as_root=True, sudo=False, run=fake,
        now=lambda: NOW, **kw,
    )  # fmt: skip


WILL_RUN = "sbatch: Job 12 to start at {} using 2 processors on nodes vm in partition accel\n"


async def test_an_idle_cluster_starts_now_and_sbatch_tests_the_sessions_own_script():
    fake = FakeSlurm(sbatch=(0, "", WILL_RUN.format("2026-11-27T04:00:00")))
    answer = await estimate(fake)
    assert answer["message"] == "Starts now" and answer["wait_s"] == 0 and answer["ahead"] == 0
    (sbatch, script), (squeue, none) = fake.calls
    assert sbatch == ["sbatch", "--test-only", "--uid=alice", "--gid=1001"]
    assert "#SBATCH --gres=gpu:a100:1\n" in script and "#SBATCH --account=demo\n" in script
    assert script.endswith("exec true\n")
    assert squeue == [
        "squeue", "--noheader", "--states=PENDING", "--partition=accel", "--format=%i",
    ]  # fmt: skip
    assert none is None


async def test_a_full_node_gives_the_wait_and_the_jobs_ahead():
    fake = FakeSlurm(
        sbatch=(0, "", WILL_RUN.format("2026-11-27T04:25:00")),
        squeue=(0, "41\n42\n43\n", ""),
    )
    answer = await estimate(fake)
    assert answer["wait_s"] == 25 * 60 and answer["ahead"] == 3
    assert answer["message"] == "Expected start in about 25 min, behind 3 jobs"


@pytest.mark.parametrize(
    ("sbatch", "squeue"),
    [
        (
            (
                1,
                "",
                "sbatch: error: Batch job submission failed: Unable to contact slurm "
                "controller (connect failure)\n",
            ),
            (0, "", ""),
        ),
        ((124, "", "sbatch did not answer within 15 s"), (0, "", "")),
        ((0, "", WILL_RUN.format("2026-11-27T04:00:00")), (1, "", "slurm_load_jobs error")),
        ((0, "", "sbatch: something unexpected\n"), (0, "", "")),
    ],
)
async def test_a_silent_scheduler_is_unreachable_never_a_guess(sbatch, squeue):
    with pytest.raises(SlurmUnreachable) as caught:
        await estimate(FakeSlurm(sbatch=sbatch, squeue=squeue))
    assert str(caught.value).startswith("The scheduler at Test cluster (Slurm on this machine)")
    assert str(caught.value).endswith("try again in a minute.")


async def test_a_job_slurm_would_refuse_says_why():
    err = (
        "sbatch: error: Batch job submission failed: Invalid account or account/partition "
        "combination specified\n"
    )
    with pytest.raises(SlurmRefused) as caught:
        await estimate(FakeSlurm(sbatch=(1, "", err)))
    assert str(caught.value) == (
        "Test cluster (Slurm on this machine) would refuse this session: Batch job submission "
        "failed: Invalid account or account/partition combination specified."
    )


async def test_as_a_service_account_it_asks_through_sudo():
    fake = FakeSlurm(sbatch=(0, "", WILL_RUN.format("2026-11-27T04:00:00")))
    await estimate_slurm(
        a100(), TC, user="alice", group="1001", as_root=False, sudo=True, run=fake,
        now=lambda: NOW,
    )  # fmt: skip
    assert fake.calls[0][0] == ["sudo", "-n", "-E", "-u", "alice", "sbatch", "--test-only"]
